/* bench/hand_quadratic_form.c — xᵀAx and its gradient (A + Aᵀ)x the way one
 * would write it by hand: u = Ax and v = Aᵀx from one read of A, then
 * f = x·u and ∇f = u + v.  Plain C, no BLAS, no fast-math. */
#include "hand.h"

#include <string.h>

double hand_quadratic_form(int n, const double *A, const double *x, double *g, double *u, double *v)
{
    memset(v, 0, (size_t)n * sizeof *v);
    for (int i = 0; i < n; i++) {
        const double *row = A + (size_t)i * (size_t)n;
        double xi = x[i], s = 0;
        for (int j = 0; j < n; j++) {
            s += row[j] * x[j];
            v[j] += row[j] * xi;
        }
        u[i] = s;
    }
    double f = 0;
    for (int i = 0; i < n; i++) {
        f += x[i] * u[i];
        g[i] = u[i] + v[i];
    }
    return f;
}
