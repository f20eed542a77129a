/* runtime.c — the library generated code links against: status messages,
 * the tape of control flow, and thin shims over LAPACK and BLAS that work
 * in caller-provided scratch memory. */
#include "gradc/runtime.h"

#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

const char *gradc_strerror(int status)
{
    switch (status) {
    case GRADC_OK: return "success";
    case GRADC_EDIM: return "a dimension is negative or a size overflows";
    case GRADC_EMAXITER: return "a while loop reached its iteration limit";
    case GRADC_ENOMEM: return "out of memory";
    case GRADC_EINDEX: return "index out of range";
    default: return "unknown status";
    }
}

/* ---- the tape ---- */

int gradc_tape_push(gradc_tape *t, const double *x, int64_t n)
{
    if (n <= 0)
        return GRADC_OK;
    if ((size_t)n > t->cap - t->len) {
        size_t cap = t->cap ? t->cap : 512;
        while (cap - t->len < (size_t)n) {
            if (cap > SIZE_MAX / 2 / sizeof(double))
                return GRADC_ENOMEM;
            cap *= 2;
        }
        double *p = realloc(t->data, cap * sizeof *p);
        if (!p)
            return GRADC_ENOMEM;
        t->data = p;
        t->cap = cap;
    }
    memcpy(t->data + t->len, x, (size_t)n * sizeof *x);
    t->len += (size_t)n;
    return GRADC_OK;
}

void gradc_tape_pop(gradc_tape *t, double *x, int64_t n)
{
    if (n <= 0)
        return;
    /* generated code pops exactly what it pushed; an underflow would be a
     * compiler bug, so give zeros rather than read out of bounds */
    if ((size_t)n > t->len) {
        memset(x, 0, (size_t)n * sizeof *x);
        t->len = 0;
        return;
    }
    t->len -= (size_t)n;
    memcpy(x, t->data + t->len, (size_t)n * sizeof *x);
}

void gradc_tape_free(gradc_tape *t)
{
    free(t->data);
    t->data = NULL;
    t->len = t->cap = 0;
}

/* ---- the work layout ----
 * What a generated function's entry checks and where its buffers go, from
 * its dimensions: written out in IR, the saturating products of every
 * shape and buffer class were a third of a sample's IR and of its
 * compile (samples/mlp.expr: 430 of 995 lines).  Every product and sum is
 * checked; any overflow, a negative dimension, or more than 2^60 bytes
 * gives -1 (GRADC_EDIM in the caller). */
static bool mul_ok(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_mul_overflow(a, b, r); }
static bool add_ok(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_add_overflow(a, b, r); }

int64_t gradc_layout(const int64_t *d, const int32_t *tab, int64_t *cls)
{
    int32_t nd = tab[0], ns = tab[1], nc = tab[2];
    const int32_t *s = tab + 3, *k = s + 2 * ns;
    uint64_t total = 0, n;
    for (int32_t i = 0; i < nd; i++)
        if (d[i] < 0)
            return -1;
    for (int32_t i = 0; i < ns; i++, s += 2)   /* twice a shape's bytes fit */
        if (!mul_ok((uint64_t)d[s[0]], (uint64_t)d[s[1]], &n) || !mul_ok(n, 16, &n))
            return -1;
    for (int32_t i = 0; i < nc; i++, k += 4) {
        uint64_t a = (uint64_t)d[k[0]];
        if (!mul_ok(a, (uint64_t)d[k[1]], &n) || (k[2] && !add_ok(n, a, &n)) || !mul_ok(n, 8, &n) ||
            !add_ok(n, 63, &n))
            return -1;
        n &= ~(uint64_t)63;   /* 64-byte aligned buffers */
        if (cls)
            cls[2 * i] = (int64_t)n, cls[2 * i + 1] = (int64_t)total;
        if (!mul_ok(n, (uint64_t)k[3], &n) || !add_ok(total, n, &total))
            return -1;
    }
    return total > (UINT64_C(1) << 60) ? -1 : (int64_t)total;
}

/* ---- LU-based shims ----
 * They factor exactly what gradc's interpreter factors through LAPACKE's
 * row-major interface (the matrix itself, as column-major), so compiled code
 * and the interpreter agree to the last bit; but they transpose into the
 * caller's scratch themselves instead of letting LAPACKE allocate, and call
 * the *_work routines, which do not allocate for column-major data. */

static bool has_nan(int64_t n, const double *a)
{
    for (int64_t i = 0; i < n * n; i++)
        if (isnan(a[i]))
            return true;
    return false;
}

/* lu = a transposed (a as column-major), factored; false when it cannot be
 * (a NaN entry, as LAPACKE's check refuses, or n too large for LAPACK). */
static bool lu_factor(int64_t n, const double *a, double *lu, lapack_int *ipiv)
{
    if (n > INT_MAX / 2 || has_nan(n, a))
        return false;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            lu[j * n + i] = a[i * n + j];
    if (n > 0)
        LAPACKE_dgetrf_work(LAPACK_COL_MAJOR, (lapack_int)n, (lapack_int)n, lu, (lapack_int)n, ipiv);
    return true;
}

/* u_ii with the sign of the row swap at step i: det = the product of these */
static double lu_pivot(int64_t n, const double *lu, const lapack_int *ipiv, int64_t i)
{
    return ipiv[i] != (lapack_int)(i + 1) ? -lu[i * n + i] : lu[i * n + i];
}

double gradc_det(int64_t n, const double *a, double *scratch)
{
    lapack_int *ipiv = (lapack_int *)(scratch + n * n);
    if (!lu_factor(n, a, scratch, ipiv))
        return NAN;
    double d = 1;
    for (int64_t i = 0; i < n; i++)
        d *= lu_pivot(n, scratch, ipiv, i);
    return d;
}

/* the sum of log|u_ii| with the sign tracked apart: no overflow where det
 * would overflow */
double gradc_logdet(int64_t n, const double *a, double *scratch)
{
    lapack_int *ipiv = (lapack_int *)(scratch + n * n);
    if (!lu_factor(n, a, scratch, ipiv))
        return NAN;
    double l = 0;
    bool neg = false, zero = false;
    for (int64_t i = 0; i < n; i++) {
        double u = lu_pivot(n, scratch, ipiv, i);
        l += log(fabs(u));
        neg ^= u < 0;
        zero |= u == 0;
    }
    return isnan(l) ? NAN : zero ? -INFINITY : neg ? NAN : l;
}

void gradc_inv(int64_t n, const double *a, double *out, double *scratch)
{
    lapack_int *ipiv = (lapack_int *)(scratch + n * n);
    bool ok = lu_factor(n, a, scratch, ipiv);
    for (int64_t i = 0; ok && i < n; i++)
        ok = scratch[i * n + i] != 0;
    /* out is dgetri's work area (n*n >= n doubles) until the result lands */
    if (ok && n > 0)
        ok = LAPACKE_dgetri_work(LAPACK_COL_MAJOR, (lapack_int)n, scratch, (lapack_int)n, ipiv, out,
                                 (lapack_int)(n * n)) == 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            out[i * n + j] = ok ? scratch[j * n + i] : NAN;
}

/* ---- solve and chol (spec §8) ---- */

void gradc_lu(int64_t n, const double *a, double *f)
{
    lapack_int *ipiv = (lapack_int *)(f + n * n);
    if (lu_factor(n, a, f, ipiv))
        return;
    /* refused: NaN factors, and pivots that index nothing out of range */
    for (int64_t i = 0; i < n * n; i++)
        f[i] = NAN;
    for (int64_t i = 0; i < n; i++)
        ipiv[i] = (lapack_int)(i + 1);
}

void gradc_lu_solve(int64_t n, int64_t k, const double *f, int32_t trans, const double *b,
                    double *x, double *scratch)
{
    if (n <= 0 || k <= 0)
        return;
    const lapack_int *ipiv = (const lapack_int *)(f + n * n);
    /* LAPACK wants b column-major: a vector already is, a matrix is
     * transposed into scratch and back */
    double *cm = k == 1 ? x : scratch;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < k; j++)
            cm[j * n + i] = b[i * k + j];
    if (k > INT_MAX || n > INT_MAX / 2)
        for (int64_t i = 0; i < n * k; i++)
            cm[i] = NAN;
    else
        LAPACKE_dgetrs_work(LAPACK_COL_MAJOR, trans ? 'T' : 'N', (lapack_int)n, (lapack_int)k, f,
                            (lapack_int)n, ipiv, cm, (lapack_int)n);
    if (k > 1)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < k; j++)
                x[i * k + j] = cm[j * n + i];
}

void gradc_chol(int64_t n, const double *a, double *l)
{
    bool ok = n <= INT_MAX / 2;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double v = j <= i ? a[i * n + j] : 0;
            ok = ok && !isnan(v);
            l[i * n + j] = v;
        }
    /* row-major l is column-major l': its upper triangle is a's lower one,
     * and the upper factor U of l' (U'U = a) read row-major is L = U' */
    if (ok && n > 0)
        ok = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'U', (lapack_int)n, l, (lapack_int)n) == 0;
    for (int64_t i = 0; !ok && i < n * n; i++)
        l[i] = NAN;
}

/* ---- BLAS ---- */

void gradc_store(int32_t add, int64_t n, const double *x, double *y)
{
    if (!add)
        memmove(y, x, (size_t)n * sizeof *y);
    else if (n <= INT_MAX)
        cblas_daxpy((blasint)n, 1.0, x, 1, y, 1);
    else
        for (int64_t i = 0; i < n; i++)
            y[i] += x[i];
}

void gradc_dgemm(int64_t m, int64_t n, int64_t k, const double *a, const double *b, double *c)
{
    if (m <= INT_MAX && n <= INT_MAX && k <= INT_MAX) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)m, (blasint)n, (blasint)k,
                    1.0, a, (blasint)(k ? k : 1), b, (blasint)(n ? n : 1), 0.0, c,
                    (blasint)(n ? n : 1));
        return;
    }
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++)
            c[i * n + j] = 0;
        for (int64_t p = 0; p < k; p++)
            for (int64_t j = 0; j < n; j++)
                c[i * n + j] += a[i * k + p] * b[p * n + j];
    }
}
