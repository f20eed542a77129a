/* prog.c — a user's program against an installed gradc: tiny.h and tiny.o
 * come from the installed `gradc compile`, <gradc/runtime.h> and libgradc
 * from the installed tree through pkg-config (tests/install/run.sh). */
#include "tiny.h"

#include <math.h>
#include <stdio.h>

int main(void)
{
    /* A x = (0, ln 2, -ln 2), exp of it (1, 2, 1/2): f = 3.5 + det S = 8.5,
     * df/dx = Aᵀ (1, 2, 1/2) = (1.5, 1.5), df/dS = det(S) inv(S)ᵀ = [3 -1; -1 2] */
    const double A[6] = {1, 0, 0, 1, 1, -1}, x[2] = {0, log(2)}, S[4] = {2, 1, 1, 3};
    const double want_x[2] = {1.5, 1.5}, want_S[4] = {3, -1, -1, 2};
    double f, gx[2], gS[4];
    int status = tiny_grad(3, 2, A, x, S, &f, gx, gS, 0, NULL), bad = 0;
    if (status != GRADC_OK) {
        fprintf(stderr, "prog: tiny_grad: %s\n", gradc_strerror(status));
        return 1;
    }
    bad |= !(fabs(f - 8.5) < 1e-12);
    for (int i = 0; i < 2; i++)
        bad |= !(fabs(gx[i] - want_x[i]) < 1e-12);
    for (int i = 0; i < 4; i++)
        bad |= !(fabs(gS[i] - want_S[i]) < 1e-12);
    printf("f = %g, df/dx = (%g, %g), df/dS = [%g %g; %g %g]\n",
           f, gx[0], gx[1], gS[0], gS[1], gS[2], gS[3]);
    return bad;
}
