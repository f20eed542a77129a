/* bench/bench.h — timing helpers shared by the bench programs: random data,
 * the calling thread's CPU clock, the median of repeated runs, relative
 * differences. */
#ifndef BENCH_BENCH_H
#define BENCH_BENCH_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { ROUNDS = 7 };    /* timed rounds per variant; the median is reported */

/* CPU time of the calling thread, not wall time: on a shared machine the
 * time a process waits for a core is not the code's (everything timed runs
 * in this thread: OPENBLAS_NUM_THREADS=1). */
static inline double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline double *random_array(size_t n, unsigned *seed)
{
    double *v = malloc((n ? n : 1) * sizeof *v);
    if (!v) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        v[i] = (double)rand_r(seed) / RAND_MAX - 0.5;
    return v;
}

static inline double max_rel_diff(const double *a, const double *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(a[i] - b[i]) / fmax(1.0, fabs(b[i])));
    return worst;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median over ROUNDS rounds of the time per call of `body` run reps times
 * (seconds).  The rounds of the variants being compared are interleaved by
 * the caller, so slow drift of the machine hits all of them alike. */
#define TIME_ROUND(out, reps, body)                                          \
    do {                                                                     \
        double t0_ = now();                                                  \
        for (int r_ = 0; r_ < (reps); r_++) { body; }                        \
        (out) = (now() - t0_) / (reps);                                      \
    } while (0)

static inline double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

#endif
