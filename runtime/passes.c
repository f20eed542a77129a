/* passes.c — a matrix times a vector in one pass over rows lo .. R-1 of a
 * row-major R×C matrix M, four rows at a time, then the last rows one by
 * one: the kernels src/cgpass.c would write as gradc.pass.N, .Nw, .Nwx,
 * .T and their tails, and .NT, .NwT (M x and M'v from one read of M:
 * x'*A*x's gradient), when a size is symbolic.  Compiled once here instead
 * of in every module's IR, where they were most of the IR of a program
 * with products (samples/quadratic_form.expr: 635 of 972 lines at -O0).
 * Each sums in cgpass.c's order: 8 partial sums per row, combined
 * pairwise, then the remaining columns one by one.
 *
 * Built twice: a*b + c fused where the target has FMA
 * (-ffp-contract=fast), as llvm.fmuladd is at -O1 and up; and, with
 * -DNOFMA, never fused (gradc_pass_n_nofma …), as -O0's IR (eval's JIT)
 * multiplies and adds.  A value is then the same to the last bit whether
 * a plan computes M*x here or in a row pass of its own IR (tests/wrt.py:
 * the value with --wrt X,y and with --wrt w).  On x86-64 with GCC each
 * kernel has clones for AVX-512 (x86-64-v4) and AVX2 (x86-64-v3), chosen
 * when the library loads. */
#include "gradc/runtime.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif
#ifdef NOFMA
#define PASS(name) name##_nofma
#else
#define PASS(name) name
#endif
#define INLINE static inline __attribute__((always_inline))

/* Loops over a block's rows are unrolled (GCC unroll 4): each row's sum in
 * a register, where GCC at -O2 kept them in memory.  A scalar operand of a
 * vector operation is broadcast once, outside the loop: a vector built of
 * 8 copies was rebuilt in every iteration. */
enum { ROWS = 4, L = 8 };
typedef double v8 __attribute__((vector_size(64)));
typedef double v8u __attribute__((vector_size(64), aligned(8), may_alias));

INLINE v8 ld(const double *p) { return *(const v8u *)p; }
INLINE void st(double *p, v8 v) { *(v8u *)p = v; }
/* a load whose value has two uses: volatile, or GCC reloads it for each
 * (a memory operand of each FMA: twice the loads of rows_nt's inner loop,
 * 1.6x its time where M is in cache) */
INLINE v8 ld_once(const double *p) { return *(const volatile v8u *)p; }
/* lane e plus lane e+4, then +2, then +1 (cgpass.c's hsum): three
 * shuffles and adds (lane by lane it was 14 instructions a row, a fifth
 * of a row's work at 100 columns) */
INLINE double hsum(v8 v)
{
#if defined(__GNUC__) && !defined(__clang__)
    typedef int64_t v8i __attribute__((vector_size(64)));
    v = v + __builtin_shuffle(v, (v8i){4, 5, 6, 7, 0, 1, 2, 3});
    v = v + __builtin_shuffle(v, (v8i){2, 3, 4, 5, 6, 7, 0, 1});
    return v[0] + v[1];
#else
    return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
#endif
}
/* x, never fused into the add it feeds (cgpass.c adds kc*s unfused) */
INLINE double unfused(double x)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __asm__("" : "+x"(x));
    return x;
#else
    volatile double v = x;
    return v;
#endif
}

/* Rows i .. i+nr-1's dots s: out[i+r] += kc*s[r] when out, d[r] +=
 * w[i+r]*s[r] when w. */
INLINE void row_results(int nr, int64_t i, const double *s, double *out, double kc, const double *w, double *d)
{
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nr; r++) {
        if (out)
            out[i + r] = out[i + r] + unfused(kc * s[r]);
        if (w)
            d[r] = w[i + r] * s[r] + d[r];
    }
}

/* The weighted dot: the blocks' four partial sums d, then the last rows' t
 * (cgpass.c adds the pass's, then its tail's) */
INLINE void add_dot(double *dot, const double *d, const double *t)
{
    *dot = (*dot + ((d[0] + d[1]) + (d[2] + d[3]))) + ((t[0] + t[1]) + (t[2] + t[3]));
}

/* Rows i .. i+nr-1 times x (NULL: every entry xf): out[i+r] += kc*s when
 * out, d[r] += w[i+r]*s when w. */
INLINE void rows_n(int nr, const double *M, int64_t i, int64_t C, const double *x, double xf, double *out,
                   double kc, const double *w, double *d)
{
    const double *row[ROWS];
    v8 acc[ROWS];
    double s[ROWS];
    int64_t nb = C / L, j = nb * L;
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nr; r++)
        row[r] = M + (i + r) * C, acc[r] = (v8){0};
    if (x)
        for (int64_t b = 0; b < nb; b++) {
            v8 xv = ld(x + b * L);
            _Pragma("GCC unroll 4")
            for (int r = 0; r < nr; r++)
                acc[r] = ld(row[r] + b * L) * xv + acc[r];
        }
    else
        for (int64_t b = 0; b < nb; b++)
            _Pragma("GCC unroll 4")
            for (int r = 0; r < nr; r++)
                acc[r] = ld(row[r] + b * L) * xf + acc[r];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nr; r++)
        s[r] = hsum(acc[r]);
    for (; j < C; j++) {
        double xj = x ? x[j] : xf;
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nr; r++)
            s[r] = row[r][j] * xj + s[r];
    }
    row_results(nr, i, s, out, kc, w, d);
}

CLONES void PASS(gradc_pass_n)(int64_t lo, int64_t R, int64_t C, const double *M, const double *x,
                               double xfill, double *out, double kc, const double *w, double *dot)
{
    double d[ROWS] = {0}, t[ROWS] = {0};
    int64_t nb = (R - lo) / ROWS, i = lo + nb * ROWS;
    for (int64_t b = 0; b < nb; b++)
        rows_n(ROWS, M, lo + b * ROWS, C, x, xfill, out, kc, w, d);
    for (; i < R; i++)
        rows_n(1, M, i, C, x, xfill, out, kc, w, t);
    if (w)
        add_dot(dot, d, t);
}

/* out += M(rows i .. i+nr-1)' * (kc * v(i .. i+nr-1)), v NULL: every entry vf. */
INLINE void rows_t(int nr, const double *M, int64_t i, int64_t C, const double *v, double vf, double *out,
                   double kc)
{
    const double *row[ROWS];
    double y[ROWS];
    int64_t nb = C / L, j = nb * L;
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nr; r++)
        row[r] = M + (i + r) * C, y[r] = kc * (v ? v[i + r] : vf);
    for (int64_t b = 0; b < nb; b++) {
        v8 o = ld(out + b * L);
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nr; r++)
            o = ld(row[r] + b * L) * y[r] + o;
        st(out + b * L, o);
    }
    for (; j < C; j++) {
        double o = out[j];
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nr; r++)
            o = row[r][j] * y[r] + o;
        out[j] = o;
    }
}

CLONES void PASS(gradc_pass_t)(int64_t lo, int64_t R, int64_t C, const double *M, const double *v,
                               double vfill, double *out, double kc)
{
    int64_t nb = (R - lo) / ROWS, i = lo + nb * ROWS;
    for (int64_t b = 0; b < nb; b++)
        rows_t(ROWS, M, lo + b * ROWS, C, v, vfill, out, kc);
    for (; i < R; i++)
        rows_t(1, M, i, C, v, vfill, out, kc);
}

/* Both: M x as rows_n, and out_t += M' (kt * v) as rows_t, from one load
 * of each block of rows. */
INLINE void rows_nt(int nr, const double *M, int64_t i, int64_t C, const double *x, double xf, double *out,
                    double kc, const double *w, double *d, const double *v, double vf, double *out_t, double kt)
{
    const double *row[ROWS];
    v8 acc[ROWS];
    double s[ROWS], y[ROWS];
    int64_t nb = C / L, j = nb * L;
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nr; r++)
        row[r] = M + (i + r) * C, acc[r] = (v8){0}, y[r] = kt * (v ? v[i + r] : vf);
    for (int64_t b = 0; b < nb; b++) {
        v8 xv = x ? ld(x + b * L) : xf + (v8){0}, o = ld(out_t + b * L);
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nr; r++) {   /* each block of a row loaded once */
            v8 a = ld_once(row[r] + b * L);
            acc[r] = a * xv + acc[r];
            o = a * y[r] + o;
        }
        st(out_t + b * L, o);
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nr; r++)
        s[r] = hsum(acc[r]);
    for (; j < C; j++) {
        double xj = x ? x[j] : xf, o = out_t[j];
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nr; r++)
            s[r] = row[r][j] * xj + s[r];
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nr; r++)
            o = row[r][j] * y[r] + o;
        out_t[j] = o;
    }
    row_results(nr, i, s, out, kc, w, d);
}

CLONES void PASS(gradc_pass_nt)(int64_t lo, int64_t R, int64_t C, const double *M, const double *x,
                                double xfill, double *out, double kc, const double *w, double *dot,
                                const double *v, double vfill, double *out_t, double kt)
{
    double d[ROWS] = {0}, t[ROWS] = {0};
    int64_t nb = (R - lo) / ROWS, i = lo + nb * ROWS;
    for (int64_t b = 0; b < nb; b++)
        rows_nt(ROWS, M, lo + b * ROWS, C, x, xfill, out, kc, w, d, v, vfill, out_t, kt);
    for (; i < R; i++)
        rows_nt(1, M, i, C, x, xfill, out, kc, w, t, v, vfill, out_t, kt);
    if (w)
        add_dot(dot, d, t);
}
