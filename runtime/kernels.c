/* kernels.c — products written once, called by every statement of every
 * generated program that needs them (gradc/runtime.h). */
#include "gradc/runtime.h"
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>

/* Below this many multiply-adds (or with a dimension under BLAS_EDGE) the
 * loops beat OpenBLAS's call overhead (outer products, thin matrices). */
enum { BLAS_WORK = 32768, BLAS_EDGE = 8 };

void gradc_gemm(int32_t flags, int64_t m, int64_t n, int64_t k, const double *a, const double *b,
                double *c)
{
    bool ta = flags & GRADC_GEMM_TA, tb = flags & GRADC_GEMM_TB, acc = flags & GRADC_GEMM_ACC;
    int64_t lda = ta ? m : k, ldb = tb ? k : n;
    if (m >= BLAS_EDGE && n >= BLAS_EDGE && k >= BLAS_EDGE && m * n * k >= BLAS_WORK &&
        m <= INT_MAX && n <= INT_MAX && k <= INT_MAX) {
        cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    (blasint)m, (blasint)n, (blasint)k, 1.0, a, (blasint)(lda ? lda : 1), b,
                    (blasint)(ldb ? ldb : 1), acc ? 1.0 : 0.0, c, (blasint)(n ? n : 1));
        return;
    }
    /* i-p-j: each entry sums its products in p order while the j loop
     * vectorises (b read along rows when not transposed) */
    for (int64_t i = 0; i < m; i++) {
        double *ci = c + i * n;
        if (!acc)
            for (int64_t j = 0; j < n; j++)
                ci[j] = 0;
        for (int64_t p = 0; p < k; p++) {
            double aip = ta ? a[p * lda + i] : a[i * lda + p];
            if (tb)
                for (int64_t j = 0; j < n; j++)
                    ci[j] += aip * b[j * ldb + p];
            else
                for (int64_t j = 0; j < n; j++)
                    ci[j] += aip * b[p * ldb + j];
        }
    }
}

/* ‖x‖₂ in one pass of squares (8 partial sums); only when that sum
 * overflows, underflows towards the denormals or is 0 does a second,
 * scaled pass run (big · sqrt(Σ (x/big)²), big = max |x|).  NaN when an
 * entry is NaN (it propagates through the sum and through max). */
double gradc_norm(int64_t n, const double *x)
{
    double a[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            a[l] += x[i + l] * x[i + l];
    double s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    for (; i < n; i++)
        s += x[i] * x[i];
    if (s != s || (s > 0x1p-900 && s < HUGE_VAL))
        return sqrt(s);
    double big = 0, t = 0;
    for (i = 0; i < n; i++) {
        double v = fabs(x[i]);
        if (v != v)
            return v;
        big = v > big ? v : big;
    }
    if (big == 0 || big == HUGE_VAL)
        return big;
    for (i = 0; i < n; i++)
        t += (x[i] / big) * (x[i] / big);
    return big * sqrt(t);
}
