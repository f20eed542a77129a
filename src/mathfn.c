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
 * Accuracy against mpmath (docs/design.md; tests/unit/test_mathfn.c against libm):
 * exp within 1.19 ulp, tanh within 2.79 ulp, on 10^6 points each. */
#include "gradc.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* The interpreter and eval's JIT at -O0 (jit.c) call these once per
 * element: with FMA each fma is an instruction, not a call of libm's. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

const double mathfn_taylor[MATHFN_NTAYLOR] = {
    0x1p-1,                0x1.5555555555555p-3,  0x1.5555555555555p-5,  /* 1/2!, 1/3!, 1/4! */
    0x1.1111111111111p-7,  0x1.6c16c16c16c17p-10, 0x1.a01a01a01a01ap-13, /* 1/5!, 1/6!, 1/7! */
    0x1.a01a01a01a01ap-16, 0x1.71de3a556c734p-19, 0x1.27e4fb7789f5cp-22, /* 1/8!, 1/9!, 1/10! */
    0x1.ae64567f544e4p-26, 0x1.1eed8eff8d898p-29, 0x1.6124613a86d09p-33, /* 1/11!, 1/12!, 1/13! */
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
 * x·log2e rounded to nearest by adding 1.5·2^52 in one fma (its bits minus
 * the shifter's are n), r by two fmas with ln2 split in a double and its
 * remainder, p by Taylor's series to r^13/13! (remainder < 5e-18 of 1) as
 * r + r²·b0 + r^6·(b1 + r^4·b2), b0..b2 of Estrin's scheme: p is 4 fmas or
 * multiplications deep after r, not Horner's 12 (where code waits for one
 * exp, its latency counts).  Meaningful for |x| < 2^51; n wraps (unsigned)
 * beyond, and callers select their result for such x. */
static inline __attribute__((always_inline)) double reduce(double x, uint64_t *n)
{
    const double *c = mathfn_taylor;
    double k = fma(x, MATHFN_LOG2E, MATHFN_SHIFT);
    double nd = k - MATHFN_SHIFT;
    *n = bits_of(k) - bits_of(MATHFN_SHIFT);
    double r = fma(nd, -MATHFN_LN2HI, x);
    r = fma(nd, -MATHFN_LN2LO, r);
    double r2 = r * r, r4 = r2 * r2, r6 = r2 * r4, a[6];
    for (int j = 0; j < 6; j++)
        a[j] = fma(c[2 * j + 1], r, c[2 * j]);
    double b0 = fma(a[1], r2, a[0]), b1 = fma(a[3], r2, a[2]), b2 = fma(a[5], r2, a[4]);
    return fma(r6, fma(r4, b2, b1), fma(r2, b0, r));
}

/* 2^n for -1022 <= n <= 1023, from the exponent bits */
static double pow2(uint64_t n) { return from_bits((n + 1023) << 52); }

/* 2^n·(1 + p) as fma(p, 2^n1, 2^n1)·2^(n - n1): two factors, so that n =
 * 1024 and subnormal results work; 0 below -745.2 and +Inf above 709.8
 * selected afterwards (n within [-1075, 1024] between), off the chain from
 * x to the result; NaN returned as it came. */
CLONES double gradc_exp(double x)
{
    uint64_t n;
    double p = reduce(x, &n);
    uint64_t n1 = (uint64_t)((int64_t)n >> 1);
    double s = pow2(n1);
    double y = fma(p, s, s) * pow2(n - n1);
    y = x > 709.8 ? INFINITY : y;
    y = x < -745.2 ? 0.0 : y;
    return isnan(x) ? x : y;
}

/* sign(x)·(−u/(2 + u)) with u = expm1(−2|x|) = 2^n·p + (2^n − 1) (one fma:
 * accurate near 0, where n = 0 and u = p); 1 selected for |x| > 20 (tanh
 * is 1 in double there); the sign copied from x's bit (tanh(−0) = −0). */
CLONES double gradc_tanh(double x)
{
    double a = from_bits(bits_of(x) & ~MATHFN_SIGN);
    uint64_t n;
    double p = reduce(-2.0 * a, &n);
    double s = pow2(n);
    double u = fma(s, p, s - 1.0);
    double t = -u / (2.0 + u);
    t = a > 20.0 ? 1.0 : t;
    t = from_bits((bits_of(t) & ~MATHFN_SIGN) | (bits_of(x) & MATHFN_SIGN));
    return isnan(x) ? x : t;
}
