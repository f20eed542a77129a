/* bench/hvp.c — second order (issue 10): NAME_hvp (value, gradient and a
 * Hessian-vector product in one call, `gradc compile --hessian`) against the
 * same program's NAME_grad, and NAME_hessian of x'*A*x against a hand-written
 * H = A + A'.  Before timing, NAME_hvp's value and gradient must equal
 * NAME_grad's to 1e-12.  Medians of ROUNDS interleaved rounds, CPU time.
 *
 *   hvp [--smoke] */
#include "bench.h"

#include "h_d2l.h"
#include "h_dot.h"
#include "h_logreg.h"
#include "h_lsq.h"
#include "h_mlp.h"
#include "h_qf.h"

#include <stdbool.h>
#include <string.h>

enum { MAXW = 3 };
static unsigned seed = 7;

typedef struct Case {
    const char *what;
    long s[4];
    int nin, nw;             /* inputs; wrt inputs (the last nw... see idx) */
    size_t in_len[6];
    int wrt[MAXW];           /* which inputs are wrt, in order */
    int (*grad)(const struct Case *, double **in, double *f, double **g, void *work);
    int (*hvp)(const struct Case *, double **in, double **v, double *f, double **g, double **hv, void *work);
    size_t (*work)(const struct Case *);
    double target;
} Case;

#define S c->s
static int dot_g(const Case *c, double **in, double *f, double **g, void *w) { return h_dot_grad(S[0], in[0], f, g[0], 0, w); }
static int dot_h(const Case *c, double **in, double **v, double *f, double **g, double **hv, void *w)
{
    return h_dot_hvp(S[0], in[0], v[0], f, g[0], hv[0], 0, w);
}
static size_t dot_w(const Case *c) { return fmax(h_dot_work_size(S[0]), h_dot_hvp_work_size(S[0])); }

static int qf_g(const Case *c, double **in, double *f, double **g, void *w) { return h_qf_grad(S[0], in[0], in[1], f, g[0], 0, w); }
static int qf_h(const Case *c, double **in, double **v, double *f, double **g, double **hv, void *w)
{
    return h_qf_hvp(S[0], in[0], in[1], v[0], f, g[0], hv[0], 0, w);
}
static size_t qf_w(const Case *c) { return fmax(h_qf_work_size(S[0]), h_qf_hvp_work_size(S[0])); }

static int lr_g(const Case *c, double **in, double *f, double **g, void *w)
{
    return h_logreg_grad(S[0], S[1], in[0], in[1], in[2], in[3][0], f, g[0], 0, w);
}
static int lr_h(const Case *c, double **in, double **v, double *f, double **g, double **hv, void *w)
{
    return h_logreg_hvp(S[0], S[1], in[0], in[1], in[2], in[3][0], v[0], f, g[0], hv[0], 0, w);
}
static size_t lr_w(const Case *c) { return fmax(h_logreg_work_size(S[0], S[1]), h_logreg_hvp_work_size(S[0], S[1])); }

static int mlp_g(const Case *c, double **in, double *f, double **g, void *w)
{
    return h_mlp_grad(S[0], S[1], S[2], S[3], in[0], in[1], in[2], in[3], in[4], f, g[0], g[1], g[2], 0, w);
}
static int mlp_h(const Case *c, double **in, double **v, double *f, double **g, double **hv, void *w)
{
    return h_mlp_hvp(S[0], S[1], S[2], S[3], in[0], in[1], in[2], in[3], in[4], v[0], v[1], v[2], f, g[0], g[1],
                     g[2], hv[0], hv[1], hv[2], 0, w);
}
static size_t mlp_w(const Case *c)
{
    return fmax(h_mlp_work_size(S[0], S[1], S[2], S[3]), h_mlp_hvp_work_size(S[0], S[1], S[2], S[3]));
}

static int d2l_g(const Case *c, double **in, double *f, double **g, void *w) { return h_d2l_grad(S[0], in[0], f, g[0], 0, w); }
static int d2l_h(const Case *c, double **in, double **v, double *f, double **g, double **hv, void *w)
{
    return h_d2l_hvp(S[0], in[0], v[0], f, g[0], hv[0], 0, w);
}
static size_t d2l_w(const Case *c) { return fmax(h_d2l_work_size(S[0]), h_d2l_hvp_work_size(S[0])); }

static int lsq_g(const Case *c, double **in, double *f, double **g, void *w)
{
    return h_lsq_grad(S[0], S[1], in[0], in[1], in[2], f, g[0], g[1], g[2], 0, w);
}
static int lsq_h(const Case *c, double **in, double **v, double *f, double **g, double **hv, void *w)
{
    return h_lsq_hvp(S[0], S[1], in[0], in[1], in[2], v[0], v[1], v[2], f, g[0], g[1], g[2], hv[0], hv[1], hv[2], 0, w);
}
static size_t lsq_w(const Case *c) { return fmax(h_lsq_work_size(S[0], S[1]), h_lsq_hvp_work_size(S[0], S[1])); }
#undef S

static void check(int st, const char *what)
{
    if (st) {
        fprintf(stderr, "hvp: %s: status %d\n", what, st);
        exit(1);
    }
}

static double median_of(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return t[n / 2];
}

static void row(const char *what, const char *size, double tg, const char *base, double tb, double target)
{
    double r = tg / tb;
    printf("| %-26s | %-19s | %9.3g ms | %-22s %9.3g ms | %5.2f | <= %.2f | %-6s |\n", what, size, 1e3 * tg, base,
           1e3 * tb, r, target, r <= target ? "met" : "missed");
}

static void run_case(Case *c, bool smoke)
{
    for (int i = 0; i < 4; i++)
        if (smoke && c->s[i] > 40)
            c->s[i] = 40;
    /* sizes again after --smoke */
    long *s = c->s;
    if (c->grad == qf_g) { c->in_len[0] = s[0] * s[0]; c->in_len[1] = s[0]; }
    if (c->grad == dot_g || c->grad == d2l_g) c->in_len[0] = s[0];
    if (c->grad == lr_g) { c->in_len[0] = s[0] * s[1]; c->in_len[1] = s[0]; c->in_len[2] = s[1]; c->in_len[3] = 1; }
    if (c->grad == mlp_g) {
        size_t l[5] = {s[0] * s[1], s[1] * s[2], s[2], s[2] * s[3], s[0] * s[3]};
        memcpy(c->in_len, l, sizeof l);
    }
    if (c->grad == lsq_g) { c->in_len[0] = s[0] * s[1]; c->in_len[1] = s[1]; c->in_len[2] = s[0]; }
    double *in[6], *v[MAXW], *g1[MAXW], *g2[MAXW], *hv[MAXW], f1, f2;
    for (int i = 0; i < c->nin; i++)
        in[i] = random_array(c->in_len[i], &seed);
    if (c->grad == lr_g)
        in[3][0] = 0.1;
    for (int k = 0; k < c->nw; k++) {
        size_t n = c->in_len[c->wrt[k]];
        v[k] = random_array(n, &seed), g1[k] = random_array(n, &seed);
        g2[k] = random_array(n, &seed), hv[k] = random_array(n, &seed);
    }
    void *work = aligned_alloc(64, (c->work(c) + 64) / 64 * 64);
    check(c->grad(c, in, &f1, g1, work), c->what);
    check(c->hvp(c, in, v, &f2, g2, hv, work), c->what);
    double err = fabs(f1 - f2) / fmax(1, fabs(f1));
    for (int k = 0; k < c->nw; k++)
        err = fmax(err, max_rel_diff(g2[k], g1[k], c->in_len[c->wrt[k]]));
    if (!(err <= 1e-12)) {
        fprintf(stderr, "hvp: %s: NAME_hvp's value and gradient differ from NAME_grad's by %g\n", c->what, err);
        exit(1);
    }
    double t0 = now();
    check(c->hvp(c, in, v, &f2, g2, hv, work), c->what);
    double once = fmax(now() - t0, 1e-9);
    int reps = smoke ? 1 : (int)fmin(1e6, fmax(1, 0.02 / once)), rounds = smoke ? 1 : ROUNDS;
    double tg[ROUNDS], th[ROUNDS];
    for (int r = 0; r < rounds; r++) {
        TIME_ROUND(th[r], reps, c->hvp(c, in, v, &f2, g2, hv, work));
        TIME_ROUND(tg[r], reps, c->grad(c, in, &f1, g1, work));
    }
    char size[48];
    snprintf(size, sizeof size, s[3] ? "%ldx%ld,h=%ld,k=%ld" : s[1] ? "%ldx%ld" : "n=%ld", s[0], s[1], s[2], s[3]);
    row(c->what, size, median_of(th, rounds), "NAME_grad", median_of(tg, rounds), c->target);
    for (int i = 0; i < c->nin; i++)
        free(in[i]);
    for (int k = 0; k < c->nw; k++)
        free(v[k]), free(g1[k]), free(g2[k]), free(hv[k]);
    free(work);
}

/* NAME_hessian of x'*A*x against H = A + A' written by hand. */
static void hessian_qf(long n, bool smoke)
{
    if (smoke)
        n = 40;
    double *A = random_array((size_t)(n * n), &seed), *x = random_array((size_t)n, &seed);
    double *H = malloc(sizeof(double) * (size_t)(n * n)), *W = malloc(sizeof(double) * (size_t)(n * n)), f;
    void *work = aligned_alloc(64, (h_qf_hessian_work_size(n) + 64) / 64 * 64);
    check(h_qf_hessian(n, A, x, &f, H, 0, work), "qf hessian");
    for (long i = 0; i < n; i++)
        for (long j = 0; j < n; j++)
            W[i * n + j] = A[i * n + j] + A[j * n + i];
    if (!(max_rel_diff(H, W, (size_t)(n * n)) <= 1e-12)) {
        fprintf(stderr, "hvp: NAME_hessian of x'*A*x is not A + A'\n");
        exit(1);
    }
    /* NAME_hessian is the closed form A + A' (one pass over A, and the
     * value's product), so both are timed the same way */
    int rounds = smoke ? 1 : ROUNDS;
    double tg[ROUNDS], th[ROUNDS];
    for (int r = 0; r < rounds; r++) {
        TIME_ROUND(tg[r], smoke ? 1 : 20, check(h_qf_hessian(n, A, x, &f, H, 0, work), "qf hessian"));
        TIME_ROUND(th[r], smoke ? 1 : 20, for (long i = 0; i < n; i++) for (long j = 0; j < n; j++)
                                              W[i * n + j] = A[i * n + j] + A[j * n + i]);
    }
    char size[32];
    snprintf(size, sizeof size, "n=%ld", n);
    row("x'*A*x NAME_hessian", size, median_of(tg, rounds), "hand C, H = A + A'", median_of(th, rounds), 1.5);
    free(A), free(x), free(H), free(W), free(work);
}

int main(int argc, char **argv)
{
    bool smoke = argc > 1 && strcmp(argv[1], "--smoke") == 0;
    Case cases[] = {
        {"2*dot(x,x) NAME_hvp", {1000000}, 1, 1, {0}, {0}, dot_g, dot_h, dot_w, 4},
        {"x'*A*x NAME_hvp", {1000}, 2, 1, {0}, {1}, qf_g, qf_h, qf_w, 1.5},
        {"logistic loss NAME_hvp", {10000, 100}, 4, 1, {0}, {2}, lr_g, lr_h, lr_w, 1.5},
        {"MLP NAME_hvp", {512, 32, 128, 10}, 5, 3, {0}, {1, 2, 3}, mlp_g, mlp_h, mlp_w, 4},
        {"D2L while/if NAME_hvp", {100000}, 1, 1, {0}, {0}, d2l_g, d2l_h, d2l_w, 4},
        {"least squares NAME_hvp", {1000, 100}, 3, 3, {0}, {0, 1, 2}, lsq_g, lsq_h, lsq_w, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_case(&cases[i], smoke);
        fflush(stdout);
    }
    hessian_qf(1000, smoke);
    return 0;
}
