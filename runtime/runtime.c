/* runtime.c — the library generated code links against: status messages,
 * the tape of control flow, and thin shims over LAPACK and BLAS that work
 * in caller-provided scratch memory. */
#include "gradc/runtime.h"

#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *gradc_strerror(int status)
{
    switch (status) {
    case GRADC_OK: return "success";
    case GRADC_EDIM: return "a dimension is negative or a size overflows";
    case GRADC_EMAXITER: return "a while loop reached its iteration limit";
    case GRADC_ENOMEM: return "out of memory";
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

/* ---- LU-based shims ----
 * A row-major matrix is the column-major storage of its transpose, and
 * det(A') = det(A), inv(A') = inv(A)': so we factor the memory as it is,
 * column-major, which makes LAPACKE's *_work routines call LAPACK directly
 * without the transposed copies (allocations) of its row-major path. */

/* LU of a (copied into lu); returns the sign of the permutation, 0 when n
 * is too large for LAPACK's 32-bit integers. */
static int lu_factor(int64_t n, const double *a, double *lu, lapack_int *ipiv)
{
    if (n > INT_MAX / 2)
        return 0;
    memcpy(lu, a, (size_t)(n * n) * sizeof *lu);
    LAPACKE_dgetrf_work(LAPACK_COL_MAJOR, (lapack_int)n, (lapack_int)n, lu, (lapack_int)n, ipiv);
    int sign = 1;
    for (int64_t i = 0; i < n; i++)
        if (ipiv[i] != (lapack_int)(i + 1))
            sign = -sign;
    return sign;
}

double gradc_det(int64_t n, const double *a, double *scratch)
{
    double *lu = scratch;
    int sign = lu_factor(n, a, lu, (lapack_int *)(scratch + n * n));
    if (sign == 0)
        return NAN;
    double d = sign;
    for (int64_t i = 0; i < n; i++)
        d *= lu[i * n + i];
    return d;
}

double gradc_logdet(int64_t n, const double *a, double *scratch)
{
    double *lu = scratch;
    int sign = lu_factor(n, a, lu, (lapack_int *)(scratch + n * n));
    if (sign == 0)
        return NAN;
    double d = sign, logs = 0;
    for (int64_t i = 0; i < n; i++) {
        double u = lu[i * n + i];
        d *= u;
        logs += log(fabs(u));
        if (u < 0)
            sign = -sign;
    }
    if (sign < 0)
        return NAN;
    if (logs == -INFINITY)
        return -INFINITY;
    /* log of the product when it is representable (what log(det(A)) gives,
     * so the two agree to the last bit); the sum of logs when the product
     * over- or underflows */
    return isfinite(d) && d != 0 ? log(d) : logs;
}

void gradc_inv(int64_t n, const double *a, double *out, double *scratch)
{
    lapack_int *ipiv = (lapack_int *)scratch;
    int sign = lu_factor(n, a, out, ipiv);
    int singular = sign == 0;
    for (int64_t i = 0; i < n && !singular; i++)
        singular = out[i * n + i] == 0;
    if (singular) {
        for (int64_t i = 0; i < n * n; i++)
            out[i] = INFINITY;
        return;
    }
    /* the work area of dgetri: n*n doubles after ipiv (lwork >= n) */
    LAPACKE_dgetri_work(LAPACK_COL_MAJOR, (lapack_int)n, out, (lapack_int)n, ipiv, scratch + n,
                        (lapack_int)(n * n > 0 ? n * n : 1));
}

/* ---- BLAS ---- */

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
