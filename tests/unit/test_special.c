/* test_special.c — runtime/special.c against known values (mpmath at 40
 * digits): digamma, trigamma and higher polygamma to ~1e-15 relative, lgamma
 * (thread-safe), the poles, and the interpreter's scalar functions being
 * these same functions. */
#include "check.h"
#include "gradc.h"

#include <gradc/runtime.h>
#include <math.h>

static const struct { int k; double x, want; } poly[] = {
    {0, 1.0, -0.57721566490153286061},
    {0, 0.5, -1.9635100260214234794},
    {0, 1.4616321449683622, -9.2412655217294275168e-17},
    {0, 1.3, -0.16919088886679960526},
    {0, 1.6, 0.12604745277347632815},
    {0, 2.0, 0.42278433509846713939},
    {0, 7.25, 1.9104535268837360284},
    {0, 1e-06, -1000000.5772140200139},
    {0, 1000000.0, 13.815510057964190771},
    {0, -0.5, 0.036489973978576520559},
    {0, -2.25, 4.1585835646579722748},
    {0, 9.5, 2.1977378764029495332},
    {0, 10.5, 2.3030010342976863753},
    {1, 1.0, 1.6449340668482264365},
    {1, 0.5, 4.9348022005446793094},
    {1, 3.7, 0.31003785767003830216},
    {1, 25.0, 0.040810663257225579187},
    {1, 1e-05, 10000000001.64490839},
    {1, -1.5, 9.3792466449891237539},
    {1, -7.3, 14.951383181433921153},
    {2, 1.0, -2.4041138063191885708},
    {2, 0.25, -129.32773993753692033},
    {2, 12.0, -0.0075472053689989119399},
    {3, 2.5, 0.22390584881725205126},
};
static const struct { double x, want; } lgam[] = {
    {0.5, 0.57236494292470008707},
    {1.0, 0.0},
    {2.0, 0.0},
    {3.5, 1.2009736023470742248},
    {1e-08, 18.420680738180208884},
    {100.0, 359.13420536957539878},
    {-0.5, 1.2655121234846453965},
    {-2.5, -0.056243716497674050673},
};

static double rel(double got, double want) { return fabs(got - want) / fmax(fabs(want), 1e-300); }

int main(void)
{
    for (size_t i = 0; i < sizeof poly / sizeof *poly; i++) {
        double got = gradc_polygamma(poly[i].k, poly[i].x);
        CHECK(rel(got, poly[i].want) < 3e-15);
        if (poly[i].k == 0)
            CHECK(gradc_digamma(poly[i].x) == got);
    }
    for (size_t i = 0; i < sizeof lgam / sizeof *lgam; i++)
        CHECK(rel(gradc_lgamma(lgam[i].x), lgam[i].want) < 2e-15);
    /* digamma's root: tiny and of the right size, not cancellation noise */
    CHECK(fabs(gradc_digamma(1.4616321449683623)) < 1e-16);
    /* poles: digamma -inf at 0, NaN at negative integers (PyTorch); trigamma +inf */
    CHECK(gradc_digamma(0) == -INFINITY);
    CHECK(isnan(gradc_digamma(-3)));
    CHECK(gradc_polygamma(1, -2) == INFINITY);
    CHECK(isnan(gradc_polygamma(1.5, 2)));
    CHECK(gradc_digamma(INFINITY) == INFINITY && gradc_polygamma(1, INFINITY) == 0);
    /* the interpreter's ops call the same functions */
    CHECK(op_info[OP_DIGAMMA].fn1(2.5) == gradc_digamma(2.5));
    CHECK(op_info[OP_POLYGAMMA].fn2(1, 2.5) == gradc_polygamma(1, 2.5));
    CHECK(op_info[OP_LGAMMA].fn1(-2.5) == gradc_lgamma(-2.5));
    /* logsigmoid without overflow */
    CHECK(op_info[OP_LOGSIGMOID].fn1(-800) == -800);
    CHECK(op_info[OP_LOGSIGMOID].fn1(800) == 0);
    CHECK(rel(op_info[OP_LOGSIGMOID].fn1(0), -log(2)) < 1e-16);
    return check_report("test_special");
}
