/* d2l_control_flow.c — D2L 2.5.4's function with a while and an if, compiled
 * by gradc to objects this program links (samples/c/meson.build):
 *
 *   d2l_scalar   samples/c/d2l_scalar.expr, a scalar a, as in the book
 *   d2l_cf       samples/d2l_control_flow.expr, a vector a[n]
 *   d2l_cf9      the same file compiled with --max-iter 9
 *
 * Why the answers are what they are.  b starts at 2a and is doubled j times
 * until |b| >= 1000; then c = b if b (or sum(b)) is positive, else c = 100 b.
 * So c = k a with k = 2^(j+1) or 100 · 2^(j+1), and j and the branch do not
 * change under a small change of a (they are recorded on the forward sweep and
 * replayed, as PyTorch does).  Hence
 *   scalar: dc/da = k = c / a                                (D2L's check)
 *   vector: y = sum(c) = k sum(a), so dy/da = k (1, …, 1), which is again
 *           c ./ a entry by entry: one factor k for every entry.
 * Exits 0 when every check holds. */
#include "d2l_cf.h"
#include "d2l_cf9.h"
#include "d2l_scalar.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int failures;

/* |got - want| <= 1e-12 max(1, |want|) */
static void near(const char *what, double got, double want)
{
    if (!(fabs(got - want) <= 1e-12 * fmax(1, fabs(want)))) {
        fprintf(stderr, "%s: got %.17g, want %.17g\n", what, got, want);
        failures++;
    }
}

static void status(const char *what, int got, int want)
{
    if (got != want) {
        fprintf(stderr, "%s: returned \"%s\", want \"%s\"\n", what,
                gradc_strerror(got), gradc_strerror(want));
        failures++;
    }
}

/* The book's scalar version: dc/da = c/a on both branches. */
static void scalar(void)
{
    /* a = 0.7: b = 1.4 doubles 10 times to 1433.6 > 0, so c = b = 2048 a */
    double c, dc;
    status("d2l_scalar_grad(0.7)", d2l_scalar_grad(0.7, &c, &dc, 0, NULL), GRADC_OK);
    near("c(0.7)", c, 2048 * 0.7);
    near("dc/da(0.7)", dc, 2048);
    near("dc/da(0.7) = c/a", dc, c / 0.7);

    /* a = -0.7: the same 10 doublings, b < 0, so c = 100 b = 204800 a */
    status("d2l_scalar_grad(-0.7)", d2l_scalar_grad(-0.7, &c, &dc, 0, NULL), GRADC_OK);
    near("c(-0.7)", c, 204800 * -0.7);
    near("dc/da(-0.7)", dc, 204800);
    near("dc/da(-0.7) = c/a", dc, c / -0.7);
}

/* The sample's vector version, on its shipped input and its negation. */
static void vector(void)
{
    /* |2a| = 2.9274: 9 doublings reach 1498.8, sum(b) = 1024 · 1.05 > 0,
     * so k = 1024 and y = 1024 sum(a) = 1075.2 */
    double a[4] = {0.3, -0.8, 1.1, 0.45}, neg[4], y, g[4];
    void *work = aligned_alloc(16, (d2l_cf_work_size(4) + 15) / 16 * 16 + 16);
    status("d2l_cf_grad(a)", d2l_cf_grad(4, a, &y, g, 0, work), GRADC_OK);
    near("y(a)", y, 1075.2);
    for (int i = 0; i < 4; i++) {
        near("dy/da(a)", g[i], 1024);
        near("dy/da(a) = y / sum(a)", g[i], y / 1.05);   /* y = k sum(a) */
    }

    /* -a: the same 9 doublings, sum(b) < 0, so k = 100 · 1024 */
    for (int i = 0; i < 4; i++)
        neg[i] = -a[i];
    status("d2l_cf_grad(-a)", d2l_cf_grad(4, neg, &y, g, 0, work), GRADC_OK);
    near("y(-a)", y, -107520);
    for (int i = 0; i < 4; i++)
        near("dy/da(-a)", g[i], 102400);

    /* the forward function alone agrees */
    status("d2l_cf(-a)", d2l_cf(4, neg, &y, work), GRADC_OK);
    near("y(-a), forward", y, -107520);
    free(work);
}

/* The iteration limit, through the linked object.  A while may run exactly
 * --max-iter times; one more is GRADC_EMAXITER, and a = 0 never ends. */
static void limit(void)
{
    double a[4] = {0.3, -0.8, 1.1, 0.45}, half[4], zero[4] = {0}, y, g[4];
    void *work = aligned_alloc(16, (d2l_cf9_work_size(4) + 15) / 16 * 16 + 16);
    for (int i = 0; i < 4; i++)
        half[i] = a[i] / 2;

    /* a needs exactly 9 iterations: allowed */
    status("d2l_cf9_grad(a)", d2l_cf9_grad(4, a, &y, g, 0, work), GRADC_OK);
    near("y(a), --max-iter 9", y, 1075.2);
    near("dy/da(a), --max-iter 9", g[0], 1024);

    /* a/2 needs 10: past the limit (the default limit allows it, k = 2048) */
    status("d2l_cf9(a/2)", d2l_cf9(4, half, &y, work), GRADC_EMAXITER);
    status("d2l_cf9_grad(a/2)", d2l_cf9_grad(4, half, &y, g, 0, work), GRADC_EMAXITER);
    status("d2l_cf_grad(a/2)", d2l_cf_grad(4, half, &y, g, 0, NULL), GRADC_OK);
    near("dy/da(a/2), default limit", g[0], 2048);

    /* a = 0: |b| stays 0 and the loop never ends; with work and with NULL */
    status("d2l_cf9(0)", d2l_cf9(4, zero, &y, work), GRADC_EMAXITER);
    status("d2l_cf9_grad(0)", d2l_cf9_grad(4, zero, &y, g, 0, work), GRADC_EMAXITER);
    status("d2l_cf9_grad(0), work NULL", d2l_cf9_grad(4, zero, &y, g, 0, NULL), GRADC_EMAXITER);

    /* an error leaves nothing behind: the next call works */
    status("d2l_cf9_grad(a) after errors", d2l_cf9_grad(4, a, &y, g, 0, work), GRADC_OK);
    near("dy/da(a) after errors", g[3], 1024);
    free(work);
}

int main(void)
{
    scalar();
    vector();
    limit();
    if (failures) {
        fprintf(stderr, "d2l_control_flow: %d failures\n", failures);
        return 1;
    }
    printf("d2l_control_flow: values, gradients and the iteration limit as derived\n");
    return 0;
}
