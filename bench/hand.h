/* bench/hand.h — the hand-written baselines, one file each (bench/hand_*.c),
 * kept apart from the timing programs so that `cc -O2` of exactly these
 * files is the compile-time baseline of bench/run. */
#ifndef BENCH_HAND_H
#define BENCH_HAND_H

/* f = ‖Ax − b‖² and its gradients through OpenBLAS; r: scratch [m]. */
double hand_least_squares(int m, int n, const double *A, const double *x, const double *b,
                          double *gA, double *gx, double *gb, double *r);
/* f = xᵀAx and ∇f = Ax + Aᵀx from one pass over A; u, v: scratch [n]. */
double hand_quadratic_form(int n, const double *A, const double *x, double *g, double *u, double *v);
/* samples/mlp.expr by hand with OpenBLAS; scratch: hand_mlp_scratch doubles. */
long hand_mlp_scratch(int m, int d, int h, int k);
double hand_mlp(int m, int d, int h, int k, const double *X, const double *W1, const double *b1,
                const double *W2, const double *Y, double *gW1, double *gb1, double *gW2,
                double *scratch);

#endif
