/* kernels.c — products written once, called by every statement of every
 * generated program that needs them (gradc/runtime.h). */
#include "gradc/runtime.h"
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>

/* GCC's -O2 vectorises only loops whose trip count the vector length
 * divides (its "very cheap" cost model): the elementwise loops here are
 * worth a vector body and a scalar remainder (gradc_scale: 2x). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=dynamic")
#endif

/* Below this many multiply-adds (or with a dimension under BLAS_EDGE) the
 * loops beat OpenBLAS's call overhead (outer products, thin matrices). */
enum { BLAS_WORK = 32768, BLAS_EDGE = 8 };

void gradc_gemm(int32_t flags, int64_t m, int64_t n, int64_t k, const double *a, const double *b,
                double *c)
{
    gradc_gemm_scaled(flags, m, n, k, 1.0, a, b, c);
}

void gradc_gemm_scaled(int32_t flags, int64_t m, int64_t n, int64_t k, double alpha, const double *a,
                       const double *b, double *c)
{
    bool ta = flags & GRADC_GEMM_TA, tb = flags & GRADC_GEMM_TB, acc = flags & GRADC_GEMM_ACC;
    int64_t lda = ta ? m : k, ldb = tb ? k : n;
    if (m >= BLAS_EDGE && n >= BLAS_EDGE && k >= BLAS_EDGE && m * n * k >= BLAS_WORK &&
        m <= INT_MAX && n <= INT_MAX && k <= INT_MAX) {
        cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)(lda ? lda : 1), b,
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
            double aip = alpha * (ta ? a[p * lda + i] : a[i * lda + p]);
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

/* Products with a diag or fill factor are O(m·n), never a dense product
 * (issue 7: diag(u)*K*diag(v) is a row and a column scaling).  An operand
 * given as NULL is a fill: every entry is its constant. */

/* op(b)[i][j]: b (m×n), or with tb the transpose of b stored n×m */
static inline double opb(const double *b, double bk, bool tb, int64_t m, int64_t n, int64_t i, int64_t j)
{
    return !b ? bk : tb ? b[j * m + i] : b[i * n + j];
}

/* clones for AVX-512 and AVX2, as passes.c's kernels: a scaled copy of a
 * matrix in L2 is bound by the width of its loads and stores */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
void gradc_scale(int32_t flags, int64_t m, int64_t n, const double *d, double dk, const double *b, double bk,
                 double *c)
{
    bool tb = flags & GRADC_GEMM_TB, cols = flags & GRADC_SCALE_COLS;
    if (!tb && b && d) { /* rows of b read in order: vectorised (ivdep: c is
                           * b itself or apart from it, so no entry is
                           * written before it is read; GCC's run-time
                           * overlap check would send c == b, a scaling in
                           * place, to the scalar loop) */
        for (int64_t i = 0; i < m; i++) {
            const double *bi = b + i * n;
            double *ci = c + i * n;
            if (cols) {
#pragma GCC ivdep
                for (int64_t j = 0; j < n; j++)
                    ci[j] = bi[j] * d[j];
            } else {
                double di = d[i];
#pragma GCC ivdep
                for (int64_t j = 0; j < n; j++)
                    ci[j] = di * bi[j];
            }
        }
        return;
    }
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double x = opb(b, bk, tb, m, n, i, j);
            c[i * n + j] = cols ? x * (d ? d[j] : dk) : (d ? d[i] : dk) * x;
        }
}

void gradc_sums(int32_t flags, int64_t m, int64_t n, int64_t kdim, double k, const double *x, double xk,
                double *c)
{
    bool tx = flags & GRADC_GEMM_TB, rows = flags & GRADC_SUMS_ROWS;
    /* the sums into the first row (cols) or first column (rows) of c */
    if (rows) {
        /* op(x) is m×kdim: c[i][0] = k · Σ_p op(x)[i][p] */
        for (int64_t i = 0; i < m; i++) {
            double s = 0;
            for (int64_t p = 0; p < kdim; p++)
                s += k * opb(x, xk, tx, m, kdim, i, p);
            for (int64_t j = 0; j < n; j++)
                c[i * n + j] = s;
        }
        return;
    }
    /* op(x) is kdim×n: c[i][j] = k · Σ_p op(x)[p][j], the same in every row */
    for (int64_t j = 0; j < n && m > 0; j++)
        c[j] = 0;
    for (int64_t p = 0; p < kdim && m > 0; p++)
        for (int64_t j = 0; j < n; j++)
            c[j] += k * opb(x, xk, tx, kdim, n, p, j);
    for (int64_t i = 1; i < m; i++)
        for (int64_t j = 0; j < n; j++)
            c[i * n + j] = c[j];
}

void gradc_diag_gemm(int32_t flags, int64_t m, int64_t kdim, const double *a, double ak, const double *w, double wk,
                     const double *b, double bk, double *out)
{
    bool ta = flags & GRADC_GEMM_TA, tb = flags & GRADC_GEMM_TB;
    if (ta && a && !b) { /* k · Σ_p a[p][i]·w[p]: rows of a in order, not columns */
        for (int64_t i = 0; i < m; i++)
            out[i] = 0;
        for (int64_t p = 0; p < kdim; p++) {
            const double *ap = a + p * m;
            double wp = w ? w[p] : wk;
            for (int64_t i = 0; i < m; i++)
                out[i] += ap[i] * wp;
        }
        for (int64_t i = 0; i < m; i++)
            out[i] *= bk;
        return;
    }
    for (int64_t i = 0; i < m; i++) {
        double s[4] = {0};
        int64_t p = 0;
        if (!ta && tb && a && b) { /* row i of a and row i of b: both in order */
            const double *ai = a + i * kdim, *bi = b + i * kdim;
            if (w)
                for (; p + 4 <= kdim; p += 4)
                    for (int l = 0; l < 4; l++)
                        s[l] += ai[p + l] * w[p + l] * bi[p + l];
            else
                for (; p + 4 <= kdim; p += 4)
                    for (int l = 0; l < 4; l++)
                        s[l] += ai[p + l] * bi[p + l];
        } else if (!a && tb && b) { /* a fill: row i of b, weighted */
            const double *bi = b + i * kdim;
            for (; p + 4 <= kdim; p += 4)
                for (int l = 0; l < 4; l++)
                    s[l] += ak * (w ? w[p + l] : wk) * bi[p + l];
        }
        double t = (s[0] + s[1]) + (s[2] + s[3]);
        for (; p < kdim; p++)
            t += opb(a, ak, ta, m, kdim, i, p) * (w ? w[p] : wk) * opb(b, bk, tb, kdim, m, p, i);
        out[i] = t;
    }
}
