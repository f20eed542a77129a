/* bench/hand_least_squares.c — ‖Ax − b‖² by hand: r = Ax − b (dgemv),
 * grad_x = 2Aᵀr (dgemv), grad_A = 2rxᵀ (dger), grad_b = −2r. */
#include "hand.h"

#include <cblas.h>
#include <string.h>

double hand_least_squares(int m, int n, const double *A, const double *x, const double *b,
                          double *gA, double *gx, double *gb, double *r)
{
    memcpy(r, b, (size_t)m * sizeof *r);
    cblas_dgemv(CblasRowMajor, CblasNoTrans, m, n, 1.0, A, n, x, 1, -1.0, r, 1);
    cblas_dgemv(CblasRowMajor, CblasTrans, m, n, 2.0, A, n, r, 1, 0.0, gx, 1);
    memset(gA, 0, (size_t)m * (size_t)n * sizeof *gA);
    cblas_dger(CblasRowMajor, m, n, 2.0, r, 1, x, 1, gA, n);
    for (int i = 0; i < m; i++)
        gb[i] = -2.0 * r[i];
    return cblas_ddot(m, r, 1, r, 1);
}
