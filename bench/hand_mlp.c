/* bench/hand_mlp.c — samples/mlp.expr by hand on OpenBLAS:
 *   H = tanh(X W1 + 1 b1ᵀ), P = H W2, L = mean((P − Y)²)
 *   T2 = 2 (P − Y) / (m k):  dW2 = Hᵀ T2,  T3 = (T2 W2ᵀ) .* (1 − H²),
 *   dW1 = Xᵀ T3,  db1 = column sums of T3. */
#include "hand.h"

#include <cblas.h>
#include <math.h>

long hand_mlp_scratch(int m, int d, int h, int k)
{
    (void)d;
    return (long)m * h * 2 + (long)m * k;
}

double hand_mlp(int m, int d, int h, int k, const double *X, const double *W1, const double *b1,
                const double *W2, const double *Y, double *gW1, double *gb1, double *gW2,
                double *scratch)
{
    double *H = scratch, *T3 = H + (long)m * h, *T2 = T3 + (long)m * h;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < h; j++)
            H[(long)i * h + j] = b1[j];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, h, d, 1.0, X, d, W1, h, 1.0, H, h);
    for (long i = 0; i < (long)m * h; i++)
        H[i] = tanh(H[i]);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, h, 1.0, H, h, W2, k, 0.0, T2, k);
    double L = 0, s = 2.0 / ((double)m * k);
    for (long i = 0; i < (long)m * k; i++) {
        double r = T2[i] - Y[i];
        L += r * r;
        T2[i] = s * r;
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, h, k, m, 1.0, H, h, T2, k, 0.0, gW2, k);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, h, k, 1.0, T2, k, W2, k, 0.0, T3, h);
    for (long i = 0; i < (long)m * h; i++)
        T3[i] *= 1 - H[i] * H[i];
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, h, m, 1.0, X, d, T3, h, 0.0, gW1, h);
    for (int j = 0; j < h; j++)
        gb1[j] = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < h; j++)
            gb1[j] += T3[(long)i * h + j];
    return L / ((double)m * k);
}
