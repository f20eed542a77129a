/* test_loop.c — control flow compiled with --max-iter 5: the tape carries
 * the loop and the branch into the reverse sweep; the limit is a status. */
#include "loop.h"

#include "common.h"

int main(void)
{
    /* a = 10: b = 10, 20, 40, 80, 160 (4 iterations) = 16a;
     * y = (16a)^2 |x|^2, dy/da = 512 a |x|^2, dy/dx = 2 (16a)^2 x */
    double a = 10, x[2] = {1, 2}, y = 0, ga = 0, gx[2] = {0, 0};
    CHECK(loop(2, a, x, &y, NULL) == GRADC_OK);
    near("y", y, 128000, 1e-15);
    CHECK(loop_grad(2, a, x, &y, &ga, gx, 0, NULL) == GRADC_OK);
    near("y (grad)", y, 128000, 1e-15);
    near("dy/da", ga, 25600, 1e-15);
    near("dy/dx[0]", gx[0], 51200, 1e-15);
    near("dy/dx[1]", gx[1], 102400, 1e-15);

    /* the else branch: c = -b x gives the same y, dy/dx = 2 b^2 x */
    double xn[2] = {-1, -2};
    void *w = work_for(loop_work_size(2));
    CHECK(loop_grad(2, a, xn, &y, &ga, gx, 0, w) == GRADC_OK);
    near("y (else)", y, 128000, 1e-15);
    near("dy/da (else)", ga, 25600, 1e-15);
    near("dy/dx[0] (else)", gx[0], -51200, 1e-15);
    CHECK(loop_grad(2, a, xn, NULL, &ga, gx, GRADC_ACCUMULATE, w) == GRADC_OK);
    near("dy/da (accumulated)", ga, 51200, 1e-15);
    near("dy/dx[1] (accumulated)", gx[1], -204800, 1e-15);

    /* a = 3 needs 6 iterations: past --max-iter 5 */
    CHECK(loop(2, 3, x, &y, NULL) == GRADC_EMAXITER);
    CHECK(loop_grad(2, 3, x, &y, &ga, gx, 0, w) == GRADC_EMAXITER);
    CHECK(loop_grad(2, 3, x, &y, &ga, gx, 0, NULL) == GRADC_EMAXITER);
    /* and the function still works afterwards (nothing left behind) */
    CHECK(loop_grad(2, a, x, &y, &ga, gx, 0, w) == GRADC_OK);
    near("dy/da (after an error)", ga, 25600, 1e-15);
    free(w);
    if (failures)
        fprintf(stderr, "%d failures\n", failures);
    return failures != 0;
}
