/* test_mlp.c — samples/mlp.expr compiled and linked: the gradients, which
 * the products compute scaled by BLAS's alpha (plan: Gemm.out), d/dW1 into
 * the caller's buffer and d/dW2 early into work, then copied (Gemm.early),
 * against the hand-derived formulas, at sizes that take both
 * gradc_gemm_scaled paths (OpenBLAS and loops); with GRADC_ACCUMULATE
 * (beta = 1; gradc_store for the early one) and with a NULL gradient buffer
 * (that product is skipped, or its copy). */
#include "mlp.h"

#include "common.h"

#include <string.h>

enum { M = 64, D = 24, H = 32, K = 10 };

static double X[M * D], W1[D * H], b1[H], W2[H * K], Y[M * K];
static double gW1[D * H], gb1[H], gW2[H * K], rW1[D * H], rb1[H], rW2[H * K];

/* the reference: T2 = 2 (H W2 - Y) / (m k), T3 = T2 W2' .* (1 - H.^2) */
static double reference(void)
{
    static double Hh[M * H], T2[M * K], T3[M * H];
    double L = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < H; j++) {
            double s = b1[j];
            for (int p = 0; p < D; p++)
                s += X[i * D + p] * W1[p * H + j];
            Hh[i * H + j] = tanh(s);
        }
    for (int i = 0; i < M; i++)
        for (int c = 0; c < K; c++) {
            double s = -Y[i * K + c];
            for (int j = 0; j < H; j++)
                s += Hh[i * H + j] * W2[j * K + c];
            L += s * s;
            T2[i * K + c] = 2 * s / (M * K);
        }
    for (int i = 0; i < M; i++)
        for (int j = 0; j < H; j++) {
            double s = 0;
            for (int c = 0; c < K; c++)
                s += T2[i * K + c] * W2[j * K + c];
            T3[i * H + j] = s * (1 - Hh[i * H + j] * Hh[i * H + j]);
        }
    memset(rW1, 0, sizeof rW1), memset(rb1, 0, sizeof rb1), memset(rW2, 0, sizeof rW2);
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < H; j++) {
            rb1[j] += T3[i * H + j];
            for (int p = 0; p < D; p++)
                rW1[p * H + j] += X[i * D + p] * T3[i * H + j];
            for (int c = 0; c < K; c++)
                rW2[j * K + c] += Hh[i * H + j] * T2[i * K + c];
        }
    }
    return L / (M * K);
}

static void compare(const char *what, const double *got, const double *want, int n, double plus)
{
    for (int i = 0; i < n; i++)
        near(what, got[i], want[i] + plus, 1e-13);
}

int main(void)
{
    for (int i = 0; i < M * D; i++)
        X[i] = sin(0.37 * i);
    for (int i = 0; i < D * H; i++)
        W1[i] = 0.2 * cos(0.11 * i);
    for (int i = 0; i < H; i++)
        b1[i] = 0.01 * i - 0.1;
    for (int i = 0; i < H * K; i++)
        W2[i] = 0.3 * sin(0.23 * i + 1);
    for (int i = 0; i < M * K; i++)
        Y[i] = cos(0.05 * i);
    double want = reference(), L = NAN;
    void *work = work_for((size_t)mlp_work_size(M, D, H, K));
    CHECK(mlp_grad(M, D, H, K, X, W1, b1, W2, Y, &L, gW1, gb1, gW2, 0, work) == GRADC_OK);
    near("loss", L, want, 1e-14);
    compare("d/dW1", gW1, rW1, D * H, 0);
    compare("d/db1", gb1, rb1, H, 0);
    compare("d/dW2", gW2, rW2, H * K, 0);
    /* accumulate onto 1 */
    for (int i = 0; i < D * H; i++)
        gW1[i] = 1;
    for (int i = 0; i < H; i++)
        gb1[i] = 1;
    for (int i = 0; i < H * K; i++)
        gW2[i] = 1;
    CHECK(mlp_grad(M, D, H, K, X, W1, b1, W2, Y, &L, gW1, gb1, gW2, GRADC_ACCUMULATE, work) == GRADC_OK);
    compare("d/dW1, accumulate", gW1, rW1, D * H, 1);
    compare("d/db1, accumulate", gb1, rb1, H, 1);
    compare("d/dW2, accumulate", gW2, rW2, H * K, 1);
    /* a NULL gradient is not written; the others are */
    memset(gW2, 0, sizeof gW2);
    CHECK(mlp_grad(M, D, H, K, X, W1, b1, W2, Y, NULL, NULL, gb1, gW2, 0, work) == GRADC_OK);
    compare("d/dW2, with d/dW1 NULL", gW2, rW2, H * K, 0);
    compare("d/db1, with d/dW1 NULL", gb1, rb1, H, 0);
    memset(gW1, 0, sizeof gW1);
    CHECK(mlp_grad(M, D, H, K, X, W1, b1, W2, Y, NULL, gW1, gb1, NULL, 0, work) == GRADC_OK);
    compare("d/dW1, with d/dW2 NULL", gW1, rW1, D * H, 0);
    free(work);
    if (failures)
        fprintf(stderr, "%d failures\n", failures);
    return failures != 0;
}
