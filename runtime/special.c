/* special.c — the special functions libm lacks or gets wrong for gradc:
 * digamma, polygamma (trigamma is polygamma(1, x)) and a thread-safe lgamma.
 * The interpreter (ir.c's scalar functions) and generated code call these
 * same functions, so both executors agree bit for bit.
 *
 * Method (Abramowitz & Stegun 6.3.5, 6.3.18, 6.4.11, 6.4.7): the recurrence
 * psi^(k)(x) = psi^(k)(x + 1) - (-1)^k k! / x^(k+1) moves x up to where the
 * asymptotic series, ten Bernoulli terms, is accurate to an ulp or so; the
 * reflection formula handles negative x for digamma and trigamma.  Near
 * digamma's positive root x0 the recurrence's terms cancel, so there a
 * Taylor series about x0 (coefficients psi^(k)(x0)/k!, computed to 30 digits
 * with mpmath) keeps the relative error small. */
#include <gradc/runtime.h>

#include <math.h>

/* B_2j, j = 1..10 */
static const double bernoulli[10] = {
    1.0 / 6, -1.0 / 30, 1.0 / 42, -1.0 / 30, 5.0 / 66,
    -691.0 / 2730, 7.0 / 6, -3617.0 / 510, 43867.0 / 798, -174611.0 / 330,
};

double gradc_lgamma(double x)
{
    int sign;   /* lgamma_r: lgamma writes the global signgam, a data race */
    return lgamma_r(x, &sign);
}

/* digamma's positive root, and its Taylor coefficients psi^(k)(x0)/k!, k = 1..22 */
static const double root_x0 = 1.4616321449683623412626595423257213;
static const double root_x0_lo = 9.549995429965697e-17;   /* x0 - (double)x0 */
static const double root_taylor[22] = {
#include "digamma_root.inc"
};

static double digamma_near_root(double x)
{
    double d = (x - root_x0) - root_x0_lo, s = 0;
    for (int k = 21; k >= 0; k--)
        s = s * d + root_taylor[k];
    return s * d;
}

/* pi cot(pi x) with x reduced to [-1/2, 1/2] (period 1, exact), so that
 * near a pole tan sees a small argument without cancellation */
static double pi_cot_pi(double x)
{
    double r = x - round(x), a = fabs(r);
    if (a >= 0.25)   /* cot(pi r) = tan(pi (1/2 - |r|)) sign r, 1/2 - |r| exact: 0 at 1/2 */
        return copysign(M_PI * tan(M_PI * (0.5 - a)), r);
    return M_PI / tan(M_PI * r);
}

double gradc_digamma(double x)
{
    if (isnan(x) || x == INFINITY)
        return x;
    if (x <= 0 && floor(x) == x)   /* a pole: -inf at 0 and NaN below, as PyTorch */
        return x == 0 ? -INFINITY : NAN;
    if (x < 0)   /* psi(x) = psi(1 - x) - pi cot(pi x) */
        return gradc_digamma(1 - x) - pi_cot_pi(x);
    if (fabs(x - root_x0) < 0.25)
        return digamma_near_root(x);
    double acc = 0;
    for (; x < 10; x += 1)
        acc -= 1 / x;
    /* psi(x) ~ log x - 1/(2x) - sum B_2j / (2j x^2j) */
    double z = 1 / (x * x), s = 0;
    for (int j = 9; j >= 0; j--)
        s = (s + bernoulli[j] / (2 * (j + 1))) * z;
    return acc + log(x) - 0.5 / x - s;
}

/* psi^(k)(x) for integer k >= 1 and x > 0 (or any x by the recurrence) */
static double polygamma_pos(int k, double x)
{
    double kfact = 1;
    for (int i = 2; i <= k; i++)
        kfact *= i;
    double sign = k % 2 ? 1 : -1;   /* (-1)^(k+1) */
    double acc = 0;
    for (; x < 10 + 2 * k; x += 1)
        acc += kfact / pow(x, k + 1);
    /* (k-1)!/x^k + k!/(2x^(k+1)) + sum B_2j (2j+k-1)!/((2j)! x^(2j+k)) */
    double z = 1 / (x * x), s = 0;
    for (int j = 10; j >= 1; j--) {
        double c = bernoulli[j - 1];   /* (2j+k-1)! / (2j)! = prod_{i=1}^{k-1} (2j+i) */
        for (int i = 1; i < k; i++)
            c *= 2 * j + i;
        s = (s + c) * z;
    }
    double tail = (kfact / k + kfact / (2 * x) + s) / pow(x, k);
    return sign * (acc + tail);
}

double gradc_polygamma(double k, double x)
{
    if (k == 0)
        return gradc_digamma(x);
    if (!(k >= 1 && k <= 64 && floor(k) == k) || isnan(x) || x == -INFINITY)
        return NAN;
    int n = (int)k;
    if (x == INFINITY)
        return 0;
    if (x <= 0 && floor(x) == x)   /* a pole */
        return n % 2 ? INFINITY : NAN;
    if (x < -1e5)   /* the recurrence below would take too many steps */
        return NAN;
    if (x < 0 && n == 1) {   /* psi1(x) = pi^2 / sin^2(pi x) - psi1(1 - x) */
        double s = sin(M_PI * (x - round(x)));
        return M_PI * M_PI / (s * s) - polygamma_pos(1, 1 - x);
    }
    return polygamma_pos(n, x);
}
