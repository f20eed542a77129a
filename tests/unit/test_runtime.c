/* test_runtime.c — runtime/runtime.c's gradc_layout, the entry checks and
 * buffer offsets of every generated function with symbolic dimensions:
 * sizes rounded up to 64 bytes, classes laid out in order, and -1 for a
 * negative dimension, an overflowing product or more than 2^60 bytes; and
 * runtime/passes.c's matrix passes: the _nofma kernels bit for bit against
 * a model of cgpass.c's order (this file is ISO C: GCC does not contract),
 * the fused ones within 1e-13, over sizes with and without remainders. */
#include "check.h"

#include <gradc/runtime.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void layout_sizes(void)
{
    /* d = {3, 5, 1}: a shape 3x5, classes 2 x (3x5) and 1 x (3x1 + 3) */
    const int64_t d[] = {3, 5, 1};
    const int32_t tab[] = {3, 1, 2, 0, 1, 0, 1, 0, 2, 0, 2, 1, 1};
    int64_t cls[4] = {0};
    CHECK(gradc_layout(d, tab, cls) == 2 * 128 + 64);
    CHECK(cls[0] == 128 && cls[1] == 0);     /* 15 doubles: 120 bytes, 128 aligned */
    CHECK(cls[2] == 64 && cls[3] == 256);    /* 6 doubles: 48 bytes */
    CHECK(gradc_layout(d, tab, NULL) == 320);
    const int32_t none[] = {0, 0, 0};
    CHECK(gradc_layout(d, none, NULL) == 0);
    const int64_t z[] = {0, 7};              /* an empty class still has its count */
    const int32_t empty[] = {2, 0, 1, 0, 1, 0, 3};
    CHECK(gradc_layout(z, empty, cls) == 0 && cls[0] == 0 && cls[1] == 0);
}

static void layout_errors(void)
{
    const int32_t tab[] = {2, 1, 1, 0, 1, 0, 1, 0, 1};
    CHECK(gradc_layout((const int64_t[]){-1, 5}, tab, NULL) == -1);
    CHECK(gradc_layout((const int64_t[]){5, INT64_MIN}, tab, NULL) == -1);
    /* a shape's bytes times 2 must fit 64 bits: 2^30 x 2^29 x 16 does, 2^30 x 2^30 x 16 not */
    const int32_t shape[] = {2, 1, 0, 0, 1};
    CHECK(gradc_layout((const int64_t[]){INT64_C(1) << 30, INT64_C(1) << 29}, shape, NULL) == 0);
    CHECK(gradc_layout((const int64_t[]){INT64_C(1) << 30, INT64_C(1) << 30}, shape, NULL) == -1);
    CHECK(gradc_layout((const int64_t[]){INT64_C(1) << 40, INT64_C(1) << 40}, shape, NULL) == -1);
    /* 2^57 doubles are 2^60 bytes, the most; twice that, or one more, not */
    const int32_t big[] = {2, 0, 1, 0, 1, 0, 1}, two[] = {2, 0, 1, 0, 1, 0, 2};
    const int64_t d[] = {INT64_C(1) << 30, INT64_C(1) << 27};
    CHECK(gradc_layout(d, big, NULL) == INT64_C(1) << 60);
    CHECK(gradc_layout(d, two, NULL) == -1);
    const int32_t plus[] = {2, 0, 1, 0, 1, 1, 1};   /* + d[0] doubles */
    CHECK(gradc_layout(d, plus, NULL) == -1);
    /* a count that overflows the total */
    const int32_t many[] = {2, 0, 1, 0, 1, 0, INT32_MAX};
    CHECK(gradc_layout((const int64_t[]){INT64_C(1) << 20, INT64_C(1) << 20}, many, NULL) == -1);
}

/* Row i of M times x in cgpass.c's order: 8 partial sums, lane e plus
 * lane e+4, +2, +1, then the remaining columns one by one. */
static double row_dot(const double *Mi, int64_t C, const double *x, double xf)
{
    double a[8] = {0};
    int64_t nb = C / 8;
    for (int64_t b = 0; b < nb; b++)
        for (int l = 0; l < 8; l++)
            a[l] = Mi[b * 8 + l] * (x ? x[b * 8 + l] : xf) + a[l];
    double s = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
    for (int64_t j = nb * 8; j < C; j++)
        s = Mi[j] * (x ? x[j] : xf) + s;
    return s;
}

static bool near(double a, double b) { return fabs(a - b) <= 1e-13 * (1 + fabs(b)); }

static void pass_case(int64_t lo, int64_t R, int64_t C, bool fill)
{
    double *M = malloc(sizeof *M * (size_t)(R * C + 1)), x[40], w[40], v[40];
    double out[40] = {0}, ref[40] = {0}, fo[40] = {0}, ot[40] = {0}, rt[40] = {0}, ft[40] = {0};
    for (int64_t k = 0; k < R * C; k++)
        M[k] = sin(1.0 + (double)k * 0.37);
    for (int k = 0; k < 40; k++)
        x[k] = cos(0.5 * k), w[k] = 1.0 / (1 + k), v[k] = 0.25 * k - 3;
    const double *xp = fill ? NULL : x;
    double xf = fill ? 0.75 : 0, kc = 1.5, kt = -0.5;
    /* the model: blocks of 4 rows' dots into d[r], the last rows into t[0] */
    double d[4] = {0}, t[4] = {0}, dot = 2, want = 2, fdot = 2;
    int64_t nb = (R - lo) / 4;
    for (int64_t i = lo; i < R; i++) {
        double s = row_dot(M + i * C, C, xp, xf);
        ref[i] = ref[i] + kc * s;
        double *acc = i < lo + 4 * nb ? &d[(i - lo) % 4] : &t[0];
        *acc = w[i] * s + *acc;
    }
    want = (want + ((d[0] + d[1]) + (d[2] + d[3]))) + ((t[0] + t[1]) + (t[2] + t[3]));
    gradc_pass_n_nofma(lo, R, C, M, xp, xf, out, kc, w, &dot);
    gradc_pass_n(lo, R, C, M, xp, xf, fo, kc, w, &fdot);
    CHECK(memcmp(out, ref, sizeof out) == 0);
    CHECK(dot == want);
    CHECK(near(fdot, want));
    for (int k = 0; k < 40; k++)
        CHECK(near(fo[k], ref[k]));
    /* M' v: row by row in row order, each column's entry updated in turn */
    for (int64_t i = lo; i < R; i++)
        for (int64_t j = 0; j < C; j++)
            rt[j] = M[i * C + j] * (kt * (fill ? 0.75 : v[i])) + rt[j];
    gradc_pass_t_nofma(lo, R, C, M, fill ? NULL : v, 0.75, ot, kt);
    gradc_pass_t(lo, R, C, M, fill ? NULL : v, 0.75, ft, kt);
    bool same = true;
    for (int k = 0; k < 40; k++)
        same = same && near(ot[k], rt[k]) && near(ft[k], rt[k]);
    CHECK(same);
    /* both in one pass, into one buffer (x'*A*x's gradient: A x + A' x) and
     * without a result for M x (only the weighted dot) */
    double both[40] = {0}, sep[40] = {0}, bdot = 0, sdot = 0;
    gradc_pass_nt_nofma(lo, R, C, M, xp, xf, both, kc, w, &bdot, fill ? NULL : v, 0.75, both, kt);
    gradc_pass_t_nofma(lo, R, C, M, fill ? NULL : v, 0.75, sep, kt);
    gradc_pass_n_nofma(lo, R, C, M, xp, xf, sep, kc, w, &sdot);
    same = bdot == sdot;
    for (int k = 0; k < 40; k++)
        same = same && near(both[k], sep[k]);
    CHECK(same);
    double none = 0;
    gradc_pass_nt(lo, R, C, M, xp, xf, NULL, kc, w, &none, fill ? NULL : v, 0.75, ft, kt);
    CHECK(near(none, want - 2));
    free(M);
}

static void passes(void)
{
    static const int64_t sizes[][3] = {{0, 0, 0}, {0, 1, 1}, {0, 3, 7}, {0, 4, 8}, {0, 9, 17},
                                       {2, 13, 33}, {5, 6, 16}, {0, 32, 40}, {4, 4, 5}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        for (int fill = 0; fill < 2; fill++)
            pass_case(sizes[k][0], sizes[k][1], sizes[k][2], fill);
}

int main(void)
{
    layout_sizes();
    layout_errors();
    passes();
    return check_report("test_runtime");
}
