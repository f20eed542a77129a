/* test_aux.c — auxiliary outputs (spec §8): their buffers follow the
 * output's in aux() and aux_grad(), each may be NULL, and they hold
 * z = A*x and s = (1 + 1/2 + 1/3) z'z whether or not the gradient is wanted;
 * the gradient is loss's alone: grad_x = 2 c A'z + exp(x), grad_A = 2 c z x'
 * with c = 11/6. */
#include "aux.h"

#include "common.h"

enum { M = 3, N = 2 };

int main(void)
{
    double A[M * N] = {0.5, -1, 2, 0.25, -0.75, 1.5}, x[N] = {0.3, -0.6};
    double z[M], want_z[M], zz = 0, c = 1 + 1.0 / 2 + 1.0 / 3;
    for (int i = 0; i < M; i++) {
        want_z[i] = A[i * N] * x[0] + A[i * N + 1] * x[1];
        zz += want_z[i] * want_z[i];
    }
    double want_loss = c * zz + exp(x[0]) + exp(x[1]);

    double loss, s, loss2, s2, z2[M], gA[M * N], gx[N];
    void *work = work_for(aux_work_size(M, N));
    CHECK(aux(M, N, A, x, &loss, z, &s, work) == GRADC_OK);
    near("loss", loss, want_loss, 1e-14);
    near("s", s, c * zz, 1e-14);
    for (int i = 0; i < M; i++)
        near("z", z[i], want_z[i], 1e-15);
    CHECK(aux_grad(M, N, A, x, &loss2, z2, &s2, gA, gx, 0, work) == GRADC_OK);
    near("loss (grad)", loss2, want_loss, 1e-14);
    near("s (grad)", s2, c * zz, 1e-14);
    for (int i = 0; i < M; i++)
        near("z (grad)", z2[i], want_z[i], 1e-15);
    for (int j = 0; j < N; j++) {
        double atz = 0;
        for (int i = 0; i < M; i++) {
            atz += A[i * N + j] * want_z[i];
            near("grad_A", gA[i * N + j], 2 * c * want_z[i] * x[j], 1e-13);
        }
        near("grad_x", gx[j], 2 * c * atz + exp(x[j]), 1e-13);
    }
    /* NULL skips an auxiliary output (and the value) without changing the gradient */
    double gx2[N];
    CHECK(aux_grad(M, N, A, x, NULL, NULL, NULL, gA, gx2, 0, NULL) == GRADC_OK);
    for (int j = 0; j < N; j++)
        CHECK(gx2[j] == gx[j]);
    s2 = -1;
    CHECK(aux(M, N, A, x, &loss2, NULL, &s2, NULL) == GRADC_OK);
    near("s (z NULL)", s2, c * zz, 1e-14);
    free(work);
    if (failures)
        fprintf(stderr, "%d failures\n", failures);
    return failures != 0;
}
