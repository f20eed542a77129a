/* test_newton.c — `gradc compile --hessian` (spec §9) linked and used as a
 * Newton solver would: regularised logistic regression (logreg.expr) by
 * Newton's method with logreg_hessian and a Cholesky solve (LAPACKE), and
 * by Newton–CG with logreg_hvp; both converge in a handful of steps.  Also:
 * H against the closed form X' diag(s (1 - s)) X / m + lambda I, exact
 * symmetry, NULL work against caller work, GRADC_ACCUMULATE, NULL outputs,
 * EDIM. */
#include "logreg.h"

#include "common.h"

#include <lapacke.h>
#include <string.h>

enum { M = 200, D = 6 };
static double X[M * D], y[M];
static const double lambda = 0.05;

static double sigmoid(double z) { return 1 / (1 + exp(-z)); }

/* A fixed data set: X uniform in [-1, 1] by an LCG, labels drawn from a
 * logistic model with true weights (1, -2, 0.5, ...). */
static void make_data(void)
{
    uint64_t s = 12345;
    double u[M * D + M];
    for (int i = 0; i < M * D + M; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        u[i] = (double)(s >> 11) * 0x1p-53;
    }
    for (int i = 0; i < M * D; i++)
        X[i] = 2 * u[i] - 1;
    for (int i = 0; i < M; i++) {
        double z = 0;
        for (int j = 0; j < D; j++)
            z += X[i * D + j] * (j % 2 ? -2.0 : 1.0) / (1 + j);
        y[i] = u[M * D + i] < sigmoid(3 * z) ? 1 : 0;
    }
}

static double norm(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i] * v[i];
    return sqrt(s);
}

/* The Hessian against its closed form, exactly symmetric. */
static void check_hessian(const double *w)
{
    double H[D * D], f = 0, want[D * D] = {0};
    CHECK(logreg_hessian(M, D, X, y, w, lambda, &f, H, 0, NULL) == GRADC_OK);
    for (int i = 0; i < M; i++) {
        double z = 0;
        for (int j = 0; j < D; j++)
            z += X[i * D + j] * w[j];
        double p = sigmoid(z) * (1 - sigmoid(z)) / M;
        for (int a = 0; a < D; a++)
            for (int b = 0; b < D; b++)
                want[a * D + b] += p * X[i * D + a] * X[i * D + b];
    }
    for (int a = 0; a < D; a++) {
        want[a * D + a] += lambda;
        for (int b = 0; b < D; b++) {
            near("H", H[a * D + b], want[a * D + b], 1e-12);
            CHECK(H[a * D + b] == H[b * D + a]);
        }
    }
    /* caller work, and GRADC_ACCUMULATE adds another H */
    size_t bytes = logreg_hessian_work_size(M, D);
    CHECK(bytes != SIZE_MAX);
    void *work = work_for(bytes);
    double H2[D * D];
    memcpy(H2, H, sizeof H);
    CHECK(logreg_hessian(M, D, X, y, w, lambda, NULL, H2, GRADC_ACCUMULATE, work) == GRADC_OK);
    for (int k = 0; k < D * D; k++)
        CHECK(H2[k] == 2 * H[k]);
    CHECK(logreg_hessian(M, D, X, y, w, lambda, NULL, H2, 0, work) == GRADC_OK);
    CHECK(memcmp(H, H2, sizeof H) == 0);
    CHECK(logreg_hessian(-1, D, X, y, w, lambda, NULL, H2, 0, work) == GRADC_EDIM);
    CHECK(logreg_hessian_work_size(-1, D) == SIZE_MAX);
    free(work);
}

/* Newton: w -= H \ g, H by logreg_hessian, solved by Cholesky. */
static void newton(double *w)
{
    memset(w, 0, sizeof(double) * D);
    int steps = 0;
    for (;; steps++) {
        double f, g[D], H[D * D];
        CHECK(logreg_grad(M, D, X, y, w, lambda, &f, g, 0, NULL) == GRADC_OK);
        if (norm(g, D) < 1e-12 || steps == 20)
            break;
        CHECK(logreg_hessian(M, D, X, y, w, lambda, NULL, H, 0, NULL) == GRADC_OK);
        CHECK(LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', D, 1, H, D, g, 1) == 0);
        for (int j = 0; j < D; j++)
            w[j] -= g[j];
    }
    printf("newton: %d steps\n", steps);
    CHECK(steps <= 8);
}

/* Newton-CG: each step solves H p = -g by conjugate gradients, one
 * logreg_hvp per iteration (the first also gives the value and gradient). */
static void newton_cg(double *w, const double *reference)
{
    memset(w, 0, sizeof(double) * D);
    int steps = 0, products = 0;
    for (;; steps++) {
        double f, g[D], zero[D] = {0}, unused[D];
        CHECK(logreg_hvp(M, D, X, y, w, lambda, zero, &f, g, unused, 0, NULL) == GRADC_OK);
        products++;
        if (norm(g, D) < 1e-12 || steps == 20)
            break;
        double p[D] = {0}, r[D], d[D], Hd[D];
        for (int j = 0; j < D; j++)
            r[j] = d[j] = -g[j];
        double rr = norm(r, D) * norm(r, D);
        for (int it = 0; it < D && sqrt(rr) > 1e-14; it++) {
            CHECK(logreg_hvp(M, D, X, y, w, lambda, d, NULL, NULL, Hd, 0, NULL) == GRADC_OK);
            products++;
            double dHd = 0;
            for (int j = 0; j < D; j++)
                dHd += d[j] * Hd[j];
            double alpha = rr / dHd, rr2 = 0;
            for (int j = 0; j < D; j++) {
                p[j] += alpha * d[j];
                r[j] -= alpha * Hd[j];
                rr2 += r[j] * r[j];
            }
            for (int j = 0; j < D; j++)
                d[j] = r[j] + rr2 / rr * d[j];
            rr = rr2;
        }
        for (int j = 0; j < D; j++)
            w[j] += p[j];
    }
    printf("newton-cg: %d steps, %d Hessian-vector products\n", steps, products);
    CHECK(steps <= 8);
    for (int j = 0; j < D; j++)
        near("w", w[j], reference[j], 1e-9);
}

/* hvp: value and gradient as logreg_grad's; ACCUMULATE adds; H v against
 * the Hessian's product. */
static void check_hvp(const double *w)
{
    double v[D], f1, f2, g1[D], g2[D], hv[D], H[D * D];
    for (int j = 0; j < D; j++)
        v[j] = 0.25 * (j + 1) - 1;
    CHECK(logreg_grad(M, D, X, y, w, lambda, &f1, g1, 0, NULL) == GRADC_OK);
    size_t bytes = logreg_hvp_work_size(M, D);
    void *work = work_for(bytes);
    CHECK(logreg_hvp(M, D, X, y, w, lambda, v, &f2, g2, hv, 0, work) == GRADC_OK);
    near("f", f2, f1, 1e-14);
    CHECK(logreg_hessian(M, D, X, y, w, lambda, NULL, H, 0, NULL) == GRADC_OK);
    for (int a = 0; a < D; a++) {
        double want = 0;
        for (int b = 0; b < D; b++)
            want += H[a * D + b] * v[b];
        near("grad", g2[a], g1[a], 1e-14);
        near("hv", hv[a], want, 1e-13);
    }
    double hv2[D];
    memcpy(hv2, hv, sizeof hv);
    CHECK(logreg_hvp(M, D, X, y, w, lambda, v, NULL, NULL, hv2, GRADC_ACCUMULATE, work) == GRADC_OK);
    for (int a = 0; a < D; a++)
        CHECK(hv2[a] == 2 * hv[a]);
    free(work);
}

int main(void)
{
    make_data();
    double w0[D] = {0}, w[D], w2[D];
    check_hessian(w0);
    newton(w);
    check_hessian(w);
    check_hvp(w);
    newton_cg(w2, w);
    return check_report("link-newton");
}
