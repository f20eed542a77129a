/* bench/hand.h — the hand-written baselines (bench/hand.c): value and
 * gradient of each benchmark program the best way we can write it in C. */
#ifndef BENCH_HAND_H
#define BENCH_HAND_H

/* Σ x, 4 streams at once (the read-bandwidth probe). */
double hand_read_sum(long n, const double *x);
/* 2*dot(x,x); g = 4x. */
double hand_dot(long n, const double *x, double *g);
/* xᵀAx; g = Ax + Aᵀx, one pass over A; u, v: scratch [n]. */
double hand_quadratic_form(long n, const double *A, const double *x, double *g, double *u, double *v);
double hand_quadratic_form4(const double *A, const double *x, double *g);
/* samples/logistic_regression.expr; g: its gradient in w. */
double hand_logistic(long m, long n, const double *X, const double *y, const double *w, double lam,
                     double *g);
/* samples/d2l_control_flow.expr; g: dy/da; b: scratch [n]. */
double hand_d2l_control_flow(long n, const double *a, double *g, double *b);
/* ‖Ax − b‖² through OpenBLAS; r: scratch [m]. */
double hand_least_squares(int m, int n, const double *A, const double *x, const double *b, double *gA,
                          double *gx, double *gb, double *r);
/* samples/mlp.expr through OpenBLAS; scratch: hand_mlp_scratch doubles. */
long hand_mlp_scratch(int m, int d, int h, int k);
double hand_mlp(int m, int d, int h, int k, const double *X, const double *W1, const double *b1,
                const double *W2, const double *Y, double *gW1, double *gb1, double *gW2, double *scratch);

#endif
