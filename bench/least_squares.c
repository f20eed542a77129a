/* bench/least_squares.c — gradc's generated least-squares gradient against a
 * hand-written one on OpenBLAS.
 *
 * f = ‖Ax − b‖² (samples/least_squares.expr, compiled with --name lsq);
 * by hand: r = Ax − b (dgemv), grad_x = 2Aᵀr (dgemv), grad_A = 2rxᵀ (dger),
 * grad_b = −2r.  Both run on the same random data; the results must agree
 * to 1e-12 (relative) before any time is reported.
 *
 *   usage: least_squares M N REPS */
#include "lsq.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double *random_array(size_t n, unsigned *seed)
{
    double *v = malloc(n * sizeof *v);
    for (size_t i = 0; v && i < n; i++)
        v[i] = (double)rand_r(seed) / RAND_MAX - 0.5;
    return v;
}

/* f and the three gradients by hand; r is scratch of length m. */
static double by_hand(int m, int n, const double *A, const double *x, const double *b,
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

static double max_rel_diff(const double *a, const double *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(a[i] - b[i]) / fmax(1.0, fabs(b[i])));
    return worst;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s M N REPS\n", argv[0]);
        return 2;
    }
    int m = atoi(argv[1]), n = atoi(argv[2]), reps = atoi(argv[3]);
    size_t mn = (size_t)m * (size_t)n;
    unsigned seed = 1;
    double *A = random_array(mn, &seed), *x = random_array((size_t)n, &seed),
           *b = random_array((size_t)m, &seed);
    double *gA = malloc(mn * sizeof *gA), *gx = malloc((size_t)n * sizeof *gx),
           *gb = malloc((size_t)m * sizeof *gb);
    double *hA = malloc(mn * sizeof *hA), *hx = malloc((size_t)n * sizeof *hx),
           *hb = malloc((size_t)m * sizeof *hb), *r = malloc((size_t)m * sizeof *r);
    void *work = aligned_alloc(16, (lsq_work_size(m, n) + 15) / 16 * 16 + 16);
    if (!A || !x || !b || !gA || !gx || !gb || !hA || !hx || !hb || !r || !work) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }

    double f, fh = by_hand(m, n, A, x, b, hA, hx, hb, r);
    int st = lsq_grad(m, n, A, x, b, &f, gA, gx, gb, 0, work);
    if (st) {
        fprintf(stderr, "lsq_grad: %s\n", gradc_strerror(st));
        return 1;
    }
    double err = fmax(fabs(f - fh) / fmax(1.0, fabs(fh)),
                      fmax(max_rel_diff(gA, hA, mn),
                           fmax(max_rel_diff(gx, hx, (size_t)n), max_rel_diff(gb, hb, (size_t)m))));
    if (!(err <= 1e-12)) {
        fprintf(stderr, "gradc and the hand-written gradient differ: %g\n", err);
        return 1;
    }

    double t0 = now();
    for (int i = 0; i < reps; i++)
        lsq_grad(m, n, A, x, b, &f, gA, gx, gb, 0, work);
    double t1 = now();
    for (int i = 0; i < reps; i++)
        by_hand(m, n, A, x, b, hA, hx, hb, r);
    double t2 = now();
    printf("least_squares m=%d n=%d: gradc %.1f us/call, hand-written BLAS %.1f us/call "
           "(ratio %.2f), max rel diff %.1e\n", m, n, 1e6 * (t1 - t0) / reps,
           1e6 * (t2 - t1) / reps, (t1 - t0) / (t2 - t1), err);
    free(A); free(x); free(b); free(gA); free(gx); free(gb);
    free(hA); free(hx); free(hb); free(r); free(work);
    return 0;
}
