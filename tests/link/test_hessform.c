/* test_hessform.c — NAME_hessian from closed forms (`gradc compile
 * --hessian`, spec §9; issue 10): on five programs (x'*A*x, 2*dot(x, x),
 * least squares over x, b and a scalar, a logistic loss over w and lambda,
 * logsumexp) H must equal the matrix whose columns NAME_hvp returns for
 * the unit directions, be exactly symmetric, give the same bits with the
 * caller's work, add itself under GRADC_ACCUMULATE, and return the value.
 * x'*A*x and 2*dot(x, x) must use no N×N scratch (the closed form, not N
 * products).  Matrix inputs (H's rows and columns in row-major order of
 * their entries, spec §9): least squares over A, x and a scalar, the
 * squared Frobenius norm, softmax cross-entropy over W and b, and softmax
 * regression over W (the N-product path: its closed form multiplies a
 * kron densely). */
#include "hdot.h"
#include "hfro.h"
#include "hlogreg.h"
#include "hlse.h"
#include "hlsq.h"
#include "hlsqa.h"
#include "hqf.h"
#include "hsmr.h"
#include "hsmx.h"

#include "common.h"

#include <stdint.h>
#include <string.h>

static unsigned seed = 12345;

static double *random_vec(int64_t n)
{
    double *v = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = (double)(seed >> 8 & 0xffff) / 32768.0 - 1.0;
    }
    return v;
}

/* One program: its Hessian (out: the value), and H v from NAME_hvp. */
typedef struct Prog {
    const char *name;
    int64_t N, d[2];
    double *in[4], s;
    int (*hess)(const struct Prog *, double *out, double *H, unsigned flags, void *work);
    int (*hvp)(const struct Prog *, const double *v, double *hv);
    size_t (*work)(const struct Prog *);
    double value;           /* NAME's value */
} Prog;

#define D p->d
#define I p->in
static int qf_h(const Prog *p, double *o, double *H, unsigned f, void *w) { return hqf_hessian(D[0], I[0], I[1], o, H, f, w); }
static int qf_v(const Prog *p, const double *v, double *hv)
{
    double y;
    return hqf_hvp(D[0], I[0], I[1], v, &y, NULL, hv, 0, NULL);
}
static size_t qf_w(const Prog *p) { return hqf_hessian_work_size(D[0]); }

static int dot_h(const Prog *p, double *o, double *H, unsigned f, void *w) { return hdot_hessian(D[0], I[0], o, H, f, w); }
static int dot_v(const Prog *p, const double *v, double *hv) { return hdot_hvp(D[0], I[0], v, NULL, NULL, hv, 0, NULL); }
static size_t dot_w(const Prog *p) { return hdot_hessian_work_size(D[0]); }

static int lsq_h(const Prog *p, double *o, double *H, unsigned f, void *w)
{
    return hlsq_hessian(D[0], D[1], I[0], I[1], I[2], p->s, o, H, f, w);
}
static int lsq_v(const Prog *p, const double *v, double *hv)
{
    int64_t n = D[1], m = D[0];
    return hlsq_hvp(m, n, I[0], I[1], I[2], p->s, v, v + n, v + n + m, NULL, NULL, NULL, NULL, hv, hv + n,
                    hv + n + m, 0, NULL);
}
static size_t lsq_w(const Prog *p) { return hlsq_hessian_work_size(D[0], D[1]); }

static int lr_h(const Prog *p, double *o, double *H, unsigned f, void *w)
{
    return hlogreg_hessian(D[0], D[1], I[0], I[1], I[2], p->s, o, H, f, w);
}
static int lr_v(const Prog *p, const double *v, double *hv)
{
    int64_t n = D[1];
    return hlogreg_hvp(D[0], n, I[0], I[1], I[2], p->s, v, v + n, NULL, NULL, NULL, hv, hv + n, 0, NULL);
}
static size_t lr_w(const Prog *p) { return hlogreg_hessian_work_size(D[0], D[1]); }

static int lse_h(const Prog *p, double *o, double *H, unsigned f, void *w) { return hlse_hessian(D[0], I[0], o, H, f, w); }
static int lse_v(const Prog *p, const double *v, double *hv) { return hlse_hvp(D[0], I[0], v, NULL, NULL, hv, 0, NULL); }
static size_t lse_w(const Prog *p) { return hlse_hessian_work_size(D[0]); }
static int lsqa_h(const Prog *p, double *o, double *H, unsigned f, void *w)
{
    return hlsqa_hessian(D[0], D[1], I[0], I[1], I[2], p->s, o, H, f, w);
}
static int lsqa_v(const Prog *p, const double *v, double *hv)
{
    int64_t mn = D[0] * D[1], n = D[1];
    return hlsqa_hvp(D[0], n, I[0], I[1], I[2], p->s, v, v + mn, v + mn + n, NULL, NULL, NULL, NULL, hv, hv + mn,
                     hv + mn + n, 0, NULL);
}
static size_t lsqa_w(const Prog *p) { return hlsqa_hessian_work_size(D[0], D[1]); }

static int fro_h(const Prog *p, double *o, double *H, unsigned f, void *w) { return hfro_hessian(D[0], D[1], I[0], o, H, f, w); }
static int fro_v(const Prog *p, const double *v, double *hv) { return hfro_hvp(D[0], D[1], I[0], v, NULL, NULL, hv, 0, NULL); }
static size_t fro_w(const Prog *p) { return hfro_hessian_work_size(D[0], D[1]); }

static int smx_h(const Prog *p, double *o, double *H, unsigned f, void *w)
{
    return hsmx_hessian(D[0], D[1], I[0], I[1], I[2], I[3], o, H, f, w);
}
static int smx_v(const Prog *p, const double *v, double *hv)
{
    int64_t cd = D[0] * D[1];
    return hsmx_hvp(D[0], D[1], I[0], I[1], I[2], I[3], v, v + cd, NULL, NULL, NULL, hv, hv + cd, 0, NULL);
}
static size_t smx_w(const Prog *p) { return hsmx_hessian_work_size(D[0], D[1]); }

/* d[2] carries softmax regression's third dimension (m, d, c) */
static int smr_h(const Prog *p, double *o, double *H, unsigned f, void *w)
{
    return hsmr_hessian(D[0], D[1], (int64_t)p->s, I[0], I[1], I[2], o, H, f, w);
}
static int smr_v(const Prog *p, const double *v, double *hv)
{
    return hsmr_hvp(D[0], D[1], (int64_t)p->s, I[0], I[1], I[2], v, NULL, NULL, hv, 0, NULL);
}
static size_t smr_w(const Prog *p) { return hsmr_hessian_work_size(D[0], D[1], (int64_t)p->s); }
#undef D
#undef I

static void check_prog(const Prog *p)
{
    int64_t N = p->N;
    size_t bytes = sizeof(double) * (size_t)(N * N);
    double *H = malloc(bytes), *H2 = malloc(bytes), *e = calloc((size_t)N, sizeof(double));
    double *hv = malloc(sizeof(double) * (size_t)N), out = 0, out2 = 0;
    CHECK(p->hess(p, &out, H, 0, NULL) == GRADC_OK);
    near(p->name, out, p->value, 1e-13);
    /* exactly symmetric, whatever the closed form's rounding */
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < i; j++)
            if (H[i * N + j] != H[j * N + i]) {
                fprintf(stderr, "%s: H[%lld][%lld] = %.17g but H[%lld][%lld] = %.17g\n", p->name, (long long)i,
                        (long long)j, H[i * N + j], (long long)j, (long long)i, H[j * N + i]);
                failures++;
                i = N;
                break;
            }
    /* column j is H e_j from NAME_hvp, to rounding */
    double scale = 0, worst = 0;
    for (int64_t k = 0; k < N * N; k++)
        scale = fmax(scale, fabs(H[k]));
    for (int64_t j = 0; j < N; j++) {
        e[j] = 1;
        CHECK(p->hvp(p, e, hv) == GRADC_OK);
        e[j] = 0;
        for (int64_t i = 0; i < N; i++)
            worst = fmax(worst, fabs(H[i * N + j] - hv[i]));
    }
    if (!(worst <= 1e-12 * fmax(1, scale))) {
        fprintf(stderr, "%s: NAME_hessian differs from NAME_hvp's columns by %g (scale %g)\n", p->name, worst,
                scale);
        failures++;
    }
    /* the caller's work gives the same bits; GRADC_ACCUMULATE adds */
    void *w = work_for(p->work(p));
    CHECK(p->hess(p, &out2, H2, 0, w) == GRADC_OK);
    CHECK(out2 == out && memcmp(H, H2, bytes) == 0);
    CHECK(p->hess(p, NULL, H2, GRADC_ACCUMULATE, w) == GRADC_OK);
    for (int64_t k = 0; k < N * N; k++)
        if (H2[k] != 2 * H[k]) {
            fprintf(stderr, "%s: GRADC_ACCUMULATE: entry %lld is %.17g, not 2 * %.17g\n", p->name,
                    (long long)k, H2[k], H[k]);
            failures++;
            break;
        }
    free(w), free(H), free(H2), free(e), free(hv);
}

int main(void)
{
    int64_t n = 150, m = 70;
    double *A = random_vec(n * n), *x = random_vec(n), *B = random_vec(m * n), *b = random_vec(m);
    double *X = random_vec(m * n), *y = random_vec(m), *w = random_vec(n), v;
    Prog p;

    p = (Prog){"x'*A*x", n, {n, 0}, {A, x}, 0, qf_h, qf_v, qf_w, 0};
    CHECK(hqf(n, A, x, &p.value, NULL) == GRADC_OK);
    check_prog(&p);
    /* A + A' itself, bit for bit, with no N×N scratch (not N products) */
    double *H = malloc(sizeof(double) * (size_t)(n * n));
    CHECK(hqf_hessian(n, A, x, &v, H, 0, NULL) == GRADC_OK);
    for (int64_t i = 0; i < n * n; i++)
        if (H[i] != A[i] + A[i % n * n + i / n]) {
            fprintf(stderr, "x'*A*x: H is not A + A' at %lld\n", (long long)i);
            failures++;
            break;
        }
    CHECK(hqf_hessian_work_size(n) < sizeof(double) * (size_t)(n * n));
    CHECK(hqf_hessian(-1, A, x, &v, H, 0, NULL) == GRADC_EDIM);
    CHECK(hqf_hessian(0, A, x, &v, H, 0, NULL) == GRADC_OK && v == 0);   /* N = 0: nothing written */
    CHECK(hqf_hessian_work_size(-1) == SIZE_MAX);

    p = (Prog){"2*dot(x,x)", n, {n, 0}, {x}, 0, dot_h, dot_v, dot_w, 0};
    CHECK(hdot(n, x, &p.value, NULL) == GRADC_OK);
    check_prog(&p);
    CHECK(hdot_hessian(n, x, NULL, H, 0, NULL) == GRADC_OK);
    for (int64_t i = 0; i < n * n; i++)
        CHECK(H[i] == (i % (n + 1) == 0 ? 4 : 0) && !signbit(H[i]));
    CHECK(hdot_hessian_work_size(n) < sizeof(double) * (size_t)(n * n));

    p = (Prog){"least squares over x, b, s", n + m + 1, {m, n}, {B, x, b}, 0.7, lsq_h, lsq_v, lsq_w, 0};
    CHECK(hlsq(m, n, B, x, b, 0.7, &p.value, NULL) == GRADC_OK);
    check_prog(&p);

    p = (Prog){"logistic loss over w, lambda", n + 1, {m, n}, {X, y, w}, 0.1, lr_h, lr_v, lr_w, 0};
    CHECK(hlogreg(m, n, X, y, w, 0.1, &p.value, NULL) == GRADC_OK);
    check_prog(&p);

    p = (Prog){"logsumexp", n, {n, 0}, {x}, 0, lse_h, lse_v, lse_w, 0};
    CHECK(hlse(n, x, &p.value, NULL) == GRADC_OK);
    check_prog(&p);
    /* diag(p) - p*p' */
    double *q = malloc(sizeof(double) * (size_t)n), mx = -INFINITY, z = 0;
    for (int64_t i = 0; i < n; i++)
        mx = fmax(mx, x[i]);
    for (int64_t i = 0; i < n; i++)
        z += q[i] = exp(x[i] - mx);
    CHECK(hlse_hessian(n, x, NULL, H, 0, NULL) == GRADC_OK);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            near("logsumexp: diag(p) - p*p'", H[i * n + j], (i == j ? q[i] / z : 0) - q[i] / z * q[j] / z, 1e-13);

    /* matrix inputs: least squares over A (m×n), x and s; H's first m*n
     * rows and columns are A's entries in row-major order */
    int64_t mm = 12, nn = 9, mn = mm * nn, N = mn + nn + 1;
    double *B2 = random_vec(mn), *x2 = random_vec(nn), *b2 = random_vec(mm);
    double *HA = malloc(sizeof(double) * (size_t)(N * N));
    p = (Prog){"least squares over A, x, s", N, {mm, nn}, {B2, x2, b2}, -0.6, lsqa_h, lsqa_v, lsqa_w, 0};
    CHECK(hlsqa(mm, nn, B2, x2, b2, -0.6, &p.value, NULL) == GRADC_OK);
    check_prog(&p);
    /* d2f/dA2 = 2*kron(eye(m), x*x') exactly: entry (i*n + k, j*n + l) */
    CHECK(hlsqa_hessian(mm, nn, B2, x2, b2, -0.6, NULL, HA, 0, NULL) == GRADC_OK);
    for (int64_t r = 0; r < mn; r++)
        for (int64_t c = 0; c < mn; c++) {
            double want = r / nn == c / nn ? 2 * (x2[r % nn] * x2[c % nn]) : 0;
            if (HA[r * N + c] != want) {
                fprintf(stderr, "least squares: d2f/dA2[%lld][%lld] = %.17g, not %.17g\n", (long long)r,
                        (long long)c, HA[r * N + c], want);
                failures++;
                r = mn;
                break;
            }
        }
    /* d2f/dAds = 2*s*ones: the column of s */
    for (int64_t r = 0; r < mn; r++)
        near("least squares: d2f/dAds", HA[r * N + N - 1], 2 * -0.6, 1e-15);

    p = (Prog){"frobenius", mn, {mm, nn}, {B2}, 0, fro_h, fro_v, fro_w, 0};
    CHECK(hfro(mm, nn, B2, &p.value, NULL) == GRADC_OK);
    check_prog(&p);
    CHECK(hfro_hessian(mm, nn, B2, NULL, HA, 0, NULL) == GRADC_OK);
    for (int64_t k = 0; k < mn * mn; k++)
        CHECK(HA[k] == (k % (mn + 1) == 0 ? 2 : 0));
    CHECK(hfro_hessian_work_size(mm, nn) < sizeof(double) * (size_t)(mn * mn));

    int64_t cc = 7, dd = 11;
    double *W = random_vec(cc * dd), *bb = random_vec(cc), *xx = random_vec(dd), *yy = calloc((size_t)cc, sizeof(double));
    yy[2] = 1;
    p = (Prog){"softmax cross-entropy over W, b", cc * dd + cc, {cc, dd}, {W, bb, xx, yy}, 0, smx_h, smx_v, smx_w, 0};
    CHECK(hsmx(cc, dd, W, bb, xx, yy, &p.value, NULL) == GRADC_OK);
    check_prog(&p);

    int64_t ms = 13;
    double *Xs = random_vec(ms * dd), *Ws = random_vec(dd * cc), *Ys = calloc((size_t)(ms * cc), sizeof(double));
    for (int64_t i = 0; i < ms; i++)
        Ys[i * cc + i % cc] = 1;
    p = (Prog){"softmax regression over W", dd * cc, {ms, dd}, {Xs, Ws, Ys}, (double)cc, smr_h, smr_v, smr_w, 0};
    CHECK(hsmr(ms, dd, cc, Xs, Ws, Ys, &p.value, NULL) == GRADC_OK);
    check_prog(&p);

    free(B2), free(x2), free(b2), free(HA), free(W), free(bb), free(xx), free(yy), free(Xs), free(Ws), free(Ys);
    free(A), free(x), free(B), free(b), free(X), free(y), free(w), free(H), free(q);
    return check_report("test_hessform");
}
