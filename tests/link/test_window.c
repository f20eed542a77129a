/* test_window.c — a slice moving with a loop whose bound is an input: in
 * range it is differentiated; past the end the functions return
 * GRADC_EINDEX (with and without work), write nothing out of bounds, and
 * work again afterwards.  The output has a form shape, [n + 1]. */
#include "window.h"

#include "common.h"

#include <string.h>

int main(void)
{
    /* x = (1, 2, 3), k = 2: s = (1 + 4) + (4 + 9) = 18, v = (18, 1, 2, 3);
     * with an all-ones cotangent, d/dx = 2*(x1, 2*x2, x3) + 1 = (3, 9, 7) */
    double x[3] = {1, 2, 3}, v[4] = {0}, gx[3] = {0}, gk = 0;
    CHECK(window(3, x, 2, v, NULL) == GRADC_OK);
    near("v[0]", v[0], 18, 0);
    near("v[3]", v[3], 3, 0);
    CHECK(window_grad(3, x, 2, NULL, v, gx, &gk, 0, NULL) == GRADC_OK);
    near("dx[0]", gx[0], 3, 0);
    near("dx[1]", gx[1], 9, 0);
    near("dx[2]", gx[2], 7, 0);
    near("dk", gk, 0, 0);

    /* k = 3: x[3:4] is past the end of x[3] */
    void *w = work_for(window_work_size(3));
    CHECK(window(3, x, 3, v, NULL) == GRADC_EINDEX);
    CHECK(window(3, x, 3, v, w) == GRADC_EINDEX);
    CHECK(window_grad(3, x, 3, NULL, v, gx, &gk, 0, w) == GRADC_EINDEX);
    CHECK(window_grad(3, x, 3, NULL, NULL, gx, &gk, 0, NULL) == GRADC_EINDEX);
    CHECK(strcmp(gradc_strerror(GRADC_EINDEX), "index out of range") == 0);
    /* and still right afterwards */
    CHECK(window_grad(3, x, 2, NULL, v, gx, &gk, 0, w) == GRADC_OK);
    near("dx[1] (after an error)", gx[1], 9, 0);
    free(w);
    if (failures)
        fprintf(stderr, "%d failures\n", failures);
    return failures != 0;
}
