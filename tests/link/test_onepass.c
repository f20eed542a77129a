/* test_onepass.c — a value computed from a sum in the loop that stores the
 * elementwise gradients (plan.c one_pass): the value, the gradients
 * overwritten and accumulated, every length around the 16-entry blocks. */
#include "onepass.h"

#include "common.h"

int main(void)
{
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
    if (failures)
        fprintf(stderr, "%d failures\n", failures);
    return failures != 0;
}
