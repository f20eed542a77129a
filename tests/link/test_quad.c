/* test_quad.c — the spec's quad example compiled by `gradc compile` and
 * linked: values and gradients against hand-computed numbers, the flags,
 * work == NULL against caller work, EDIM, and two threads at once. */
#include "quad.h"

#include "common.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

static void small_case(void)
{
    /* f = 0.5 x'Ax - b'x = 0.5 * 61 - 6; grad = (A + A')x / 2 - b */
    const double A[9] = {2, 1, 0, 0, 3, 1, 1, 0, 4}, x[3] = {1, 2, 3}, b[3] = {1, 1, 1};
    const double want[3] = {3.5, 7, 12.5};
    double f = 0, g[3] = {1, 1, 1};
    CHECK(quad(3, A, x, b, &f, NULL) == GRADC_OK);
    near("f", f, 24.5, 1e-15);
    f = 0;
    CHECK(quad_grad(3, A, x, b, &f, g, 0, NULL) == GRADC_OK);
    near("f (grad)", f, 24.5, 1e-15);
    for (int i = 0; i < 3; i++)
        near("grad_x, overwrite", g[i], want[i], 1e-15);
    CHECK(quad_grad(3, A, x, b, NULL, g, GRADC_ACCUMULATE, NULL) == GRADC_OK);
    for (int i = 0; i < 3; i++)
        near("grad_x, accumulate", g[i], 2 * want[i], 1e-15);
    CHECK(quad_grad(3, A, x, b, NULL, g, 0, NULL) == GRADC_OK);
    for (int i = 0; i < 3; i++)
        near("grad_x, overwrite again", g[i], want[i], 1e-15);

    /* the caller's work gives the same bits */
    void *w = work_for(quad_work_size(3));
    double f2, g2[3] = {0};
    CHECK(quad_grad(3, A, x, b, &f2, g2, 0, w) == GRADC_OK);
    CHECK(f2 == f && memcmp(g, g2, sizeof g) == 0);
    CHECK(quad(3, A, x, b, &f2, w) == GRADC_OK && f2 == f);
    free(w);

    /* bad dimensions are a status, not a crash */
    CHECK(quad(-1, A, x, b, &f, NULL) == GRADC_EDIM);
    CHECK(quad_grad(INT64_C(1) << 40, A, x, b, &f, g, 0, NULL) == GRADC_EDIM);
    CHECK(quad_work_size(-1) == SIZE_MAX);
    CHECK(quad(0, A, x, b, &f, NULL) == GRADC_OK && f == 0);
}

/* A larger random case against plain loops (the BLAS-free path is a
 * matrix-vector product; the sums are laned, so compare to 1e-12). */
typedef struct Job {
    int64_t n;
    double *A, *x, *b, f, *g;
    int status;
} Job;

static void fill(Job *j, int64_t n, unsigned seed)
{
    j->n = n;
    j->A = malloc(sizeof(double) * (size_t)(n * n));
    j->x = malloc(sizeof(double) * (size_t)n);
    j->b = malloc(sizeof(double) * (size_t)n);
    j->g = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n * n; i++)
        j->A[i] = (double)((seed * 2654435761u + (unsigned)i * 40503u) % 1000) / 250.0 - 2.0;
    for (int64_t i = 0; i < n; i++) {
        j->x[i] = (double)((seed + (unsigned)i * 7919u) % 100) / 50.0 - 1.0;
        j->b[i] = (double)((seed + (unsigned)i * 104729u) % 100) / 25.0 - 2.0;
    }
}

static void check_against_loops(const Job *j)
{
    int64_t n = j->n;
    double f = 0;
    for (int64_t i = 0; i < n; i++) {
        double ax = 0, atx = 0;
        for (int64_t k = 0; k < n; k++) {
            ax += j->A[i * n + k] * j->x[k];
            atx += j->A[k * n + i] * j->x[k];
        }
        f += 0.5 * j->x[i] * ax - j->b[i] * j->x[i];
        near("grad_x (random)", j->g[i], 0.5 * (ax + atx) - j->b[i], 1e-12);
    }
    near("f (random)", j->f, f, 1e-12);
}

static void *run(void *arg)
{
    Job *j = arg;
    void *w = work_for(quad_work_size(j->n));
    double f0 = 0, *g0 = malloc(sizeof(double) * (size_t)j->n);
    j->status = quad_grad(j->n, j->A, j->x, j->b, &f0, g0, 0, w);
    for (int rep = 0; rep < 300 && j->status == GRADC_OK; rep++) {
        j->status = quad_grad(j->n, j->A, j->x, j->b, &j->f, j->g, 0, rep % 2 ? w : NULL);
        if (j->f != f0 || memcmp(j->g, g0, sizeof(double) * (size_t)j->n) != 0)
            j->status = -1;
    }
    free(g0);
    free(w);
    return NULL;
}

static void threads(void)
{
    Job jobs[2];
    fill(&jobs[0], 70, 1);
    fill(&jobs[1], 45, 2);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, run, &jobs[i]) == 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        CHECK(jobs[i].status == GRADC_OK);
        check_against_loops(&jobs[i]);
        free(jobs[i].A);
        free(jobs[i].x);
        free(jobs[i].b);
        free(jobs[i].g);
    }
}

int main(void)
{
    small_case();
    threads();
    CHECK(strcmp(gradc_strerror(GRADC_EMAXITER), "a while loop reached its iteration limit") == 0);
    if (failures)
        fprintf(stderr, "%d failures\n", failures);
    return failures != 0;
}
