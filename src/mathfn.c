/* mathfn.c — exp and tanh as fixed sequences of IEEE operations, for the
 * interpreter and constant folding; cgmath.c emits the same sequences as
 * LLVM IR for compiled code.
 *
 * Why not libm: the interpreter is the oracle the JIT is compared with
 * (tests/differential.py, fuzz-diff), and a one-ulp difference between two
 * exp implementations becomes any difference after amplification (cos of
 * 1e16·tanh(x)).  A libm call is also scalar: the loop vectoriser cannot
 * vectorise it (an MLP's 600,000 tanh per evaluation were most of its time).
 * Each operation here (+ − × ÷, fma, integer operations on the bits,
 * selects) is correctly rounded or exact, so C and IR give the same bits
 * whatever the vector width.  This file is compiled with -ffp-contract=off
 * (src/meson.build; gcc ignores the STDC pragma): a contracted a*b + c
 * would round differently.
 *
 * Accuracy (tests/unit/test_mathfn.c against mpmath's values, docs/design.md):
 * exp within 1 ulp, tanh within 2 ulp, on 10^6 points each. */
#include "gradc.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

const double mathfn_taylor[MATHFN_NTAYLOR] = {
    0x1.6124613a86d09p-33, 0x1.1eed8eff8d898p-29, 0x1.ae64567f544e4p-26, /* 1/13!, 1/12!, 1/11! */
    0x1.27e4fb7789f5cp-22, 0x1.71de3a556c734p-19, 0x1.a01a01a01a01ap-16, /* 1/10!, 1/9!, 1/8! */
    0x1.a01a01a01a01ap-13, 0x1.6c16c16c16c17p-10, 0x1.1111111111111p-7,  /* 1/7!, 1/6!, 1/5! */
    0x1.5555555555555p-5,  0x1.5555555555555p-3,  0x1p-1,                /* 1/4!, 1/3!, 1/2! */
};

static uint64_t bits_of(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}
static double from_bits(uint64_t u)
{
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* x = n·ln2 + r, |r| <= ln2/2 (plus rounding), and p = expm1(r): n is
 * x·log2e rounded to nearest by adding 1.5·2^52 (its bits minus the
 * shifter's are n), r by two fmas with ln2 split in a double and its
 * remainder, p by Taylor's series to r^13/13! (remainder < 5e-18 of 1),
 * as r + r²·q(r), exact in r.  |x| < 2^51 (callers clamp). */
static double reduce(double x, int64_t *n)
{
    double k = x * MATHFN_LOG2E + MATHFN_SHIFT;
    double nd = k - MATHFN_SHIFT;
    *n = (int64_t)(bits_of(k) - bits_of(MATHFN_SHIFT));
    double r = fma(nd, -MATHFN_LN2HI, x);
    r = fma(nd, -MATHFN_LN2LO, r);
    double q = mathfn_taylor[0];
    for (int i = 1; i < MATHFN_NTAYLOR; i++)
        q = fma(q, r, mathfn_taylor[i]);
    return fma(q, r * r, r);
}

/* 2^n for -1022 <= n <= 1023, from the exponent bits */
static double pow2(int64_t n) { return from_bits((uint64_t)(n + 1023) << 52); }

/* 2^n·(1 + p), the scale in two factors so that a subnormal result rounds
 * once and n = 1024 works; x clamped to [-746, 710] first (0 and +Inf
 * beyond, n within [-1076, 1024]); NaN returned as it came. */
double gradc_exp(double x)
{
    double xc = x > 710.0 ? 710.0 : x;
    xc = xc < -746.0 ? -746.0 : xc;
    int64_t n;
    double p = reduce(xc, &n);
    int64_t n1 = n >> 1;
    double y = (1.0 + p) * pow2(n1) * pow2(n - n1);
    return isnan(x) ? x : y;
}

/* sign(x)·(−u/(2 + u)) with u = expm1(−2|x|) = 2^n·p + (2^n − 1) (one fma:
 * accurate near 0, where n = 0 and u = p); |x| clamped to 20, where tanh is
 * 1 in double; the sign copied from x's bit (tanh(−0) = −0). */
double gradc_tanh(double x)
{
    double a = from_bits(bits_of(x) & ~MATHFN_SIGN);
    a = a > 20.0 ? 20.0 : a;
    int64_t n;
    double p = reduce(-2.0 * a, &n);
    double s = pow2(n);
    double u = fma(s, p, s - 1.0);
    double t = -u / (2.0 + u);
    t = from_bits((bits_of(t) & ~MATHFN_SIGN) | (bits_of(x) & MATHFN_SIGN));
    return isnan(x) ? x : t;
}
