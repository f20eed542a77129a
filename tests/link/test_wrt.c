/* test_wrt.c — quad.expr (whose file says `wrt x`) compiled with
 * `--wrt b,A`: the header's NAME_grad takes grad_b then grad_A, in that
 * order, and they are df/db = -x and df/dA = x x' / 2. */
#include "quadwrt.h"

#include "common.h"

int main(void)
{
    const double A[4] = {2, 1, 0, 3}, x[2] = {1, 2}, b[2] = {5, -1};
    double f = 0, gb[2] = {7, 7}, gA[4] = {7, 7, 7, 7};
    /* x'Ax = 2 + 2 + 12 = 16; b'x = 3 */
    CHECK(quadwrt_grad(2, A, x, b, &f, gb, gA, 0, NULL) == GRADC_OK);
    near("f", f, 5, 1e-15);
    near("grad_b[0]", gb[0], -1, 1e-15);
    near("grad_b[1]", gb[1], -2, 1e-15);
    const double wantA[4] = {0.5, 1, 1, 2};
    for (int i = 0; i < 4; i++)
        near("grad_A", gA[i], wantA[i], 1e-15);
    return check_report("link-quadwrt");
}
