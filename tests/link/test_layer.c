/* test_layer.c — a vector output: NAME_grad takes a cotangent and returns
 * the vector–Jacobian product, against the hand-derived formulas
 * grad_x = A' (w .* (1 - y.^2)), grad_A = (w .* (1 - y.^2)) x'. */
#include "layer.h"

#include "common.h"

#include <string.h>

enum { M = 3, N = 4 };

int main(void)
{
    double A[M * N], x[N], w[M], y[M], y2[M], gA[M * N], gx[N];
    for (int i = 0; i < M * N; i++)
        A[i] = 0.1 * (i % 5) - 0.2;
    for (int j = 0; j < N; j++)
        x[j] = 0.5 - 0.3 * j;
    for (int i = 0; i < M; i++)
        w[i] = 1.0 + i;
    CHECK(layer(M, N, A, x, y, NULL) == GRADC_OK);
    CHECK(layer_grad(M, N, A, x, w, y2, gA, gx, 0, NULL) == GRADC_OK);
    double d[M];
    for (int i = 0; i < M; i++) {
        double s = 0;
        for (int j = 0; j < N; j++)
            s += A[i * N + j] * x[j];
        near("y", y[i], tanh(s), 1e-15);
        CHECK(y2[i] == y[i]);
        d[i] = w[i] * (1 - tanh(s) * tanh(s));
    }
    for (int j = 0; j < N; j++) {
        double s = 0;
        for (int i = 0; i < M; i++) {
            s += A[i * N + j] * d[i];
            near("grad_A", gA[i * N + j], d[i] * x[j], 1e-14);
        }
        near("grad_x", gx[j], s, 1e-14);
    }
    /* a NULL cotangent is all ones */
    double ones[M] = {1, 1, 1}, g1[N], g2[N];
    CHECK(layer_grad(M, N, A, x, ones, NULL, gA, g1, 0, NULL) == GRADC_OK);
    CHECK(layer_grad(M, N, A, x, NULL, NULL, gA, g2, 0, NULL) == GRADC_OK);
    CHECK(memcmp(g1, g2, sizeof g1) == 0);
    if (failures)
        fprintf(stderr, "%d failures\n", failures);
    return failures != 0;
}
