/* bench/hand.c — the hand-written baselines bench/harness.c times gradc
 * against: the best plain C we can write for each, built with clang-19 -O3
 * -march=native.  Long reductions keep 4 vector accumulators of 8 lanes
 * (clang's vector extension; 2 AVX2 or 1 AVX-512 register each), matrices
 * are read once (several rows at a time, so x and the row sums stay in
 * registers and the column sums in L1), products go to OpenBLAS.  No
 * fast-math: every reordering here is written out. */
#include "hand.h"

#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

/* The MLP's tanh as gradc computes it (src/mathfn.c, included so that it
 * inlines and the loop vectorises): the best hand code uses a vectorisable
 * tanh too (PyTorch uses SLEEF's), so the ratio measures the rest of the
 * work, not libm's scalar tanh. */
#include "mathfn.c"

typedef double vd __attribute__((vector_size(64), aligned(8), may_alias));
enum { L = 8 };    /* lanes of vd */

static inline vd load(const double *p) { return *(const vd *)p; }
static inline void store(double *p, vd v) { *(vd *)p = v; }
static inline vd splat(double a) { return (vd){0} + a; }
static inline double hsum(vd v)
{
    double s = 0;
    for (int i = 0; i < L; i++)
        s += v[i];
    return s;
}

/* Σ x over 4 quarters of x read at once (4 streams keep more cache misses
 * in flight than one, as a matrix read R rows at a time does), an 8-lane
 * accumulator pair per quarter. */
double hand_read_sum(long n, const double *x)
{
    enum { S = 4 };
    long q = n / S / (2 * L) * (2 * L);
    vd a[S][2] = {{{0}}};
    for (long i = 0; i < q; i += 2 * L)
        for (int k = 0; k < S; k++) {
            a[k][0] += load(x + k * q + i);
            a[k][1] += load(x + k * q + i + L);
        }
    vd t = {0};
    for (int k = 0; k < S; k++)
        t += a[k][0] + a[k][1];
    double s = hsum(t);
    for (long i = S * q; i < n; i++)
        s += x[i];
    return s;
}

/* 2*dot(x,x) and its gradient 4x in one pass. */
double hand_dot(long n, const double *x, double *g)
{
    vd a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    long i = 0;
    for (; i + 4 * L <= n; i += 4 * L) {
        vd x0 = load(x + i), x1 = load(x + i + L), x2 = load(x + i + 2 * L), x3 = load(x + i + 3 * L);
        a0 += x0 * x0, a1 += x1 * x1, a2 += x2 * x2, a3 += x3 * x3;
        store(g + i, 4 * x0), store(g + i + L, 4 * x1), store(g + i + 2 * L, 4 * x2), store(g + i + 3 * L, 4 * x3);
    }
    double s = hsum(a0 + a1 + a2 + a3);
    for (; i < n; i++) {
        s += x[i] * x[i];
        g[i] = 4 * x[i];
    }
    return 2 * s;
}

/* R rows r[0..R) of a matrix with n columns, read once: s[k] = r[k]·x and
 * acc += Σ_k c[k] r[k] (acc: n entries, stays in L1). */
enum { R = 4 };
static void rows_dot_axpy(long n, const double *const r[R], const double *x, const double c[R],
                          double s[R], double *acc)
{
    vd d[R] = {{0}}, ck[R];
    for (int k = 0; k < R; k++)
        ck[k] = splat(c[k]);
    long j = 0;
    for (; j + L <= n; j += L) {
        vd xj = load(x + j), a = load(acc + j);
        for (int k = 0; k < R; k++) {
            vd rk = load(r[k] + j);
            d[k] += rk * xj;
            a += rk * ck[k];
        }
        store(acc + j, a);
    }
    for (int k = 0; k < R; k++)
        s[k] = hsum(d[k]);
    for (; j < n; j++)
        for (int k = 0; k < R; k++) {
            s[k] += r[k][j] * x[j];
            acc[j] += r[k][j] * c[k];
        }
}

/* R rows r[0..R): s[k] = r[k]·x (vector accumulators, as above). */
static void rows_dot(long n, const double *const r[R], const double *x, double s[R])
{
    vd d[R] = {{0}};
    long j = 0;
    for (; j + L <= n; j += L) {
        vd xj = load(x + j);
        for (int k = 0; k < R; k++)
            d[k] += load(r[k] + j) * xj;
    }
    for (int k = 0; k < R; k++)
        s[k] = hsum(d[k]);
    for (; j < n; j++)
        for (int k = 0; k < R; k++)
            s[k] += r[k][j] * x[j];
}

/* acc += Σ_k c[k] r[k] over R rows. */
static void rows_axpy(long n, const double *const r[R], const double c[R], double *acc)
{
    vd ck[R];
    for (int k = 0; k < R; k++)
        ck[k] = splat(c[k]);
    long j = 0;
    for (; j + L <= n; j += L) {
        vd a = load(acc + j);
        for (int k = 0; k < R; k++)
            a += load(r[k] + j) * ck[k];
        store(acc + j, a);
    }
    for (; j < n; j++)
        for (int k = 0; k < R; k++)
            acc[j] += r[k][j] * c[k];
}

/* The rows i..i+R of A (m×n), clamped to the last row (a repeated row is
 * given a zero coefficient by the callers). */
static void row_block(const double *A, long m, long n, long i, const double *r[R])
{
    for (int k = 0; k < R; k++)
        r[k] = A + (i + k < m ? i + k : m - 1) * n;
}

/* xᵀAx and ∇ = Ax + Aᵀx from one pass over A, R rows at a time;
 * u, v: scratch [n]. */
double hand_quadratic_form(long n, const double *A, const double *x, double *g, double *u, double *v)
{
    memset(v, 0, (size_t)n * sizeof *v);
    for (long i = 0; i < n; i += R) {
        const double *r[R];
        double c[R], s[R];
        row_block(A, n, n, i, r);
        for (int k = 0; k < R; k++)
            c[k] = i + k < n ? x[i + k] : 0;
        rows_dot_axpy(n, r, x, c, s, v);
        for (int k = 0; k < R && i + k < n; k++)
            u[i + k] = s[k];
    }
    double f = 0;
    for (long i = 0; i < n; i++) {
        f += x[i] * u[i];
        g[i] = u[i] + v[i];
    }
    return f;
}

/* Fixed 4×4: clang unrolls it completely. */
double hand_quadratic_form4(const double *A, const double *x, double *g)
{
    double f = 0;
    for (int i = 0; i < 4; i++) {
        double u = 0, v = 0;
        for (int j = 0; j < 4; j++) {
            u += A[4 * i + j] * x[j];
            v += A[4 * j + i] * x[j];
        }
        g[i] = u + v;
        f += x[i] * u;
    }
    return f;
}

/* softplus(t) and its derivative sigmoid(t) from one exp, without overflow. */
static double softplus_sigmoid(double t, double *sig)
{
    double q = exp(-fabs(t));
    *sig = t > 0 ? 1 / (1 + q) : q / (1 + q);
    return fmax(t, 0) + log1p(q);
}

/* Σ softplus(−yᵢ xᵢᵀw) + lam/2 w·w and its gradient in w; R rows of X at a
 * time: their dots with w, then (rows still in L1) g += Σ tᵢ xᵢ. */
double hand_logistic(long m, long n, const double *X, const double *y, const double *w, double lam,
                     double *g)
{
    double loss = 0;
    for (long j = 0; j < n; j++)
        g[j] = lam * w[j];
    for (long i = 0; i < m; i += R) {
        const double *r[R];
        double z[R], t[R];
        row_block(X, m, n, i, r);
        rows_dot(n, r, w, z);
        for (int k = 0; k < R; k++) {
            bool real = i + k < m;
            double yk = real ? y[i + k] : 0, sig, sp = softplus_sigmoid(-yk * z[k], &sig);
            loss += real ? sp : 0;
            t[k] = -yk * sig;
        }
        rows_axpy(n, r, t, g);
    }
    double ww = 0;
    for (long j = 0; j < n; j++)
        ww += w[j] * w[j];
    return loss + 0.5 * lam * ww;
}

/* b = c·x and Σ b², Σ b in one pass (b may be x). */
static void scale_sums(long n, const double *x, double c, double *b, double *sq, double *sum)
{
    vd q0 = {0}, q1 = {0}, s0 = {0}, s1 = {0};
    long i = 0;
    for (; i + 2 * L <= n; i += 2 * L) {
        vd b0 = c * load(x + i), b1 = c * load(x + i + L);
        store(b + i, b0), store(b + i + L, b1);
        q0 += b0 * b0, q1 += b1 * b1, s0 += b0, s1 += b1;
    }
    double q = hsum(q0 + q1), s = hsum(s0 + s1);
    for (; i < n; i++) {
        b[i] = c * x[i];
        q += b[i] * b[i], s += b[i];
    }
    *sq = q, *sum = s;
}

/* samples/d2l_control_flow.expr: b = 2a; while ‖b‖ < 1000, b = 2b; c = b if
 * Σb > 0 else 100b; y = Σc.  One pass per iteration (scale, Σb², Σb), then
 * the gradient, the constant dy/da, written once.  b: scratch [n]. */
double hand_d2l_control_flow(long n, const double *a, double *g, double *b)
{
    double sq, sum, k = 2;
    scale_sums(n, a, 2, b, &sq, &sum);
    while (sqrt(sq) < 1000) {
        scale_sums(n, b, 2, b, &sq, &sum);
        k *= 2;
    }
    double f = sum > 0 ? 1 : 100, y = sum;
    if (f != 1) {
        double unused;
        scale_sums(n, b, f, b, &unused, &y);
    }
    for (long i = 0; i < n; i++)
        g[i] = f * k;
    return y;
}

double hand_least_squares(int m, int n, const double *A, const double *x, const double *b, double *gA,
                          double *gx, double *gb, double *r)
{
    memcpy(r, b, (size_t)m * sizeof *r);
    cblas_dgemv(CblasRowMajor, CblasNoTrans, m, n, 1.0, A, n, x, 1, -1.0, r, 1);
    cblas_dgemv(CblasRowMajor, CblasTrans, m, n, 2.0, A, n, r, 1, 0.0, gx, 1);
    memset(gA, 0, (size_t)m * (size_t)n * sizeof *gA);
    cblas_dger(CblasRowMajor, m, n, 2.0, r, 1, x, 1, gA, n);
    for (int i = 0; i < m; i++)
        gb[i] = -2.0 * r[i];
    return cblas_ddot(m, r, 1, r, 1);
}

long hand_mlp_scratch(int m, int d, int h, int k)
{
    (void)d;
    return (long)m * h * 2 + (long)m * k;
}

/* samples/mlp.expr on OpenBLAS:
 *   H = tanh(X W1 + 1 b1ᵀ), P = H W2, L = mean((P − Y)²)
 *   T2 = 2 (P − Y) / (m k):  dW2 = Hᵀ T2,  T3 = (T2 W2ᵀ) .* (1 − H²),
 *   dW1 = Xᵀ T3,  db1 = column sums of T3. */
double hand_mlp(int m, int d, int h, int k, const double *X, const double *W1, const double *b1,
                const double *W2, const double *Y, double *gW1, double *gb1, double *gW2, double *scratch)
{
    double *H = scratch, *T3 = H + (long)m * h, *T2 = T3 + (long)m * h;
    for (int i = 0; i < m; i++)
        memcpy(H + (long)i * h, b1, (size_t)h * sizeof *H);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, h, d, 1.0, X, d, W1, h, 1.0, H, h);
    for (long i = 0; i < (long)m * h; i++)
        H[i] = gradc_tanh(H[i]);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, h, 1.0, H, h, W2, k, 0.0, T2, k);
    double L2 = 0, s = 2.0 / ((double)m * k);
    for (long i = 0; i < (long)m * k; i++) {
        double r = T2[i] - Y[i];
        L2 += r * r;
        T2[i] = s * r;
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, h, k, m, 1.0, H, h, T2, k, 0.0, gW2, k);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, h, k, 1.0, T2, k, W2, k, 0.0, T3, h);
    for (long i = 0; i < (long)m * h; i++)
        T3[i] *= 1 - H[i] * H[i];
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, h, m, 1.0, X, d, T3, h, 0.0, gW1, h);
    memset(gb1, 0, (size_t)h * sizeof *gb1);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < h; j++)
            gb1[j] += T3[(long)i * h + j];
    return L2 / ((double)m * k);
}
