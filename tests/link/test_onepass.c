/* test_onepass.c — a value computed from a sum in the loop that stores the
 * elementwise gradients (plan.c one_pass): the value, the gradients
 * overwritten and accumulated, every length around the 16-entry blocks;
 * the same for onepass_hvp (compile --hessian), whose gradients and
 * products may be NULL (stored to a buffer of work instead, plan_sink). */
#include "onepass.h"

#include "common.h"

#include <fenv.h>
#include <math.h>

/* y = 2*dot(x, x) + sum(w .* x): H = [4I I; I 0], so H v = (4 v_x + v_w, v_x) */
static void check_hvp(int64_t n)
{
    double x[40], w[40], vx[40], vw[40], gx[40], gw[40], hx[40], hw[40], f = -1;
    for (int i = 0; i < n; i++) {
        x[i] = 0.25 * i - 3, w[i] = 1.0 / (i + 1), vx[i] = 0.5 * i, vw[i] = 2 - i;
        gx[i] = gw[i] = hx[i] = hw[i] = 1;
    }
    void *work = work_for(onepass_hvp_work_size(n));
    CHECK(onepass_hvp(n, x, w, vx, vw, &f, gx, gw, hx, hw, 0, work) == GRADC_OK);
    for (int i = 0; i < n; i++) {
        near("hvp d/dx", gx[i], 4 * x[i] + w[i], 1e-15);
        near("hvp d/dw", gw[i], x[i], 1e-15);
        near("hvp (Hv)_x", hx[i], 4 * vx[i] + vw[i], 1e-15);
        near("hvp (Hv)_w", hw[i], vx[i], 1e-15);
    }
    /* no gradients, products accumulated; then one gradient only, no work */
    CHECK(onepass_hvp(n, x, w, vx, vw, NULL, NULL, NULL, hx, hw, GRADC_ACCUMULATE, work) == GRADC_OK);
    CHECK(onepass_hvp(n, x, w, vx, vw, NULL, NULL, gw, NULL, hw, GRADC_ACCUMULATE, NULL) == GRADC_OK);
    for (int i = 0; i < n; i++) {
        near("hvp (Hv)_x, accumulate", hx[i], 2 * (4 * vx[i] + vw[i]), 1e-15);
        near("hvp (Hv)_w, accumulate", hw[i], 3 * vx[i], 1e-15);
        near("hvp d/dw, accumulate", gw[i], 2 * x[i], 1e-15);
        near("hvp d/dx, untouched", gx[i], 4 * x[i] + w[i], 1e-15);
    }
    free(work);
}

/* An overwrite never computes with the buffers' old contents (one loop
 * serves both flags, acc_value): signalling NaNs there raise no invalid
 * operation, and a -0.0 gradient stays -0.0. */
static void check_overwrite(void)
{
    double x[40], w[40], gx[40], gw[40], f = -1;
    for (int i = 0; i < 40; i++) {
        x[i] = i % 2 ? -0.0 : 0.5 * i, w[i] = i % 2 ? -0.0 : 1;
        gx[i] = gw[i] = __builtin_nans("");
    }
    feclearexcept(FE_ALL_EXCEPT);
    CHECK(onepass_grad(40, x, w, &f, gx, gw, 0, NULL) == GRADC_OK);
    CHECK(!fetestexcept(FE_INVALID));
    for (int i = 0; i < 40; i++) {
        near("d/dx over NaNs", gx[i], 4 * x[i] + w[i], 1e-15);
        near("d/dw over NaNs", gw[i], x[i], 1e-15);
        CHECK(!!signbit(gx[i]) == !!(i % 2) && !!signbit(gw[i]) == !!(i % 2));
    }
}

int main(void)
{
    check_overwrite();
    for (int64_t n = 0; n <= 40; n++) {
        double x[40], w[40], gx[40], gw[40], f = -1;
        double want = 0;
        for (int i = 0; i < n; i++) {
            x[i] = 0.25 * i - 3, w[i] = 1.0 / (i + 1);
            want += 2 * x[i] * x[i] + w[i] * x[i];
            gx[i] = gw[i] = 1;
        }
        CHECK(onepass_grad(n, x, w, &f, gx, gw, 0, NULL) == GRADC_OK);
        near("value", f, want, 1e-13);
        for (int i = 0; i < n; i++) {
            near("d/dx, overwrite", gx[i], 4 * x[i] + w[i], 1e-15);
            near("d/dw, overwrite", gw[i], x[i], 1e-15);
        }
        CHECK(onepass_grad(n, x, w, NULL, gx, gw, GRADC_ACCUMULATE, NULL) == GRADC_OK);
        for (int i = 0; i < n; i++) {
            near("d/dx, accumulate", gx[i], 2 * (4 * x[i] + w[i]), 1e-15);
            near("d/dw, accumulate", gw[i], 2 * x[i], 1e-15);
        }
    }
    for (int64_t n = 0; n <= 40; n++)
        check_hvp(n);
    if (failures)
        fprintf(stderr, "%d failures\n", failures);
    return failures != 0;
}
