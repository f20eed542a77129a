/* bench/harness.c — gradc's generated value+gradient functions against the
 * hand-written baselines (bench/hand.c), one table row per case.
 *
 * Each case fills a Data (inputs, two sets of outputs), runs gradc and the
 * baseline once, checks that they agree to 1e-12 (relative, per entry),
 * then times ROUNDS interleaved rounds of each (reps calls per round, so
 * that a round lasts ~20 ms) and reports the medians and their ratio
 * against the case's target.  The read bandwidth is measured first (a
 * vectorised sum over BW_N doubles) first and again in the rounds of each
 * bandwidth row, which reports, at the largest size, the bytes a call reads
 * and writes over its time as a fraction of it.
 *
 *   harness [--smoke] [WHAT]   --smoke: every size at most 40, one round, one rep;
 *                              WHAT: only the rows whose name contains it (for perf) */
#include "bench.h"
#include "hand.h"

#include "d2l.h"
#include "dk.h"
#include "dot.h"
#include "logreg.h"
#include "lsq.h"
#include "mlp.h"
#include "qf.h"
#include "qf4.h"
#include "uvk.h"

#include <stdbool.h>
#include <string.h>

enum { MAXIN = 6, MAXOUT = 4, MAXALLOC = 24 };

typedef struct Data {
    long s[4];                  /* the case's sizes */
    double *in[MAXIN];
    double *out[2][MAXOUT];     /* [gradc, baseline][value, gradients...] */
    size_t len[MAXOUT];         /* entries of each output */
    int nout;
    void *work;                 /* gradc's work */
    double *scratch;            /* the baseline's */
    double bytes;               /* read + written by one call (bandwidth rows) */
    void *alloc[MAXALLOC];
    int nalloc;
} Data;

static unsigned seed = 1;

static void *keep(Data *d, void *p)
{
    if (!p || d->nalloc == MAXALLOC) {
        fprintf(stderr, "harness: out of memory\n");
        exit(1);
    }
    return d->alloc[d->nalloc++] = p;
}

/* n random entries in [-0.5, 0.5), 64-byte aligned. */
static double *rnd(Data *d, size_t n)
{
    double *v = keep(d, aligned_alloc(64, (n * sizeof *v + 64) / 64 * 64));
    for (size_t i = 0; i < n; i++)
        v[i] = (double)rand_r(&seed) / RAND_MAX - 0.5;
    return v;
}

static void inputs(Data *d, int n, const size_t *lens)
{
    for (int i = 0; i < n; i++)
        d->in[i] = rnd(d, lens[i]);
}

/* The value (one entry) and n gradients of the given lengths, twice. */
static void outputs(Data *d, int n, const size_t *lens)
{
    d->nout = n + 1;
    d->len[0] = 1;
    for (int i = 0; i < n; i++)
        d->len[i + 1] = lens[i];
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < d->nout; i++)
            d->out[v][i] = rnd(d, d->len[i]);
}

static void *work(Data *d, size_t bytes) { return d->work = keep(d, aligned_alloc(64, (bytes + 64) / 64 * 64)); }

#define IN(...) inputs(d, sizeof((size_t[]){__VA_ARGS__}) / sizeof(size_t), (size_t[]){__VA_ARGS__})
#define OUT(...) outputs(d, sizeof((size_t[]){__VA_ARGS__}) / sizeof(size_t), (size_t[]){__VA_ARGS__})
#define G(i) d->out[0][i]
#define H(i) d->out[1][i]

static int status(int st, const char *what)
{
    if (st) {
        fprintf(stderr, "harness: %s: %s\n", what, gradc_strerror(st));
        exit(1);
    }
    return st;
}

/* ---- the cases: inputs, gradc's call, the baseline's call ---- */

static void dot_init(Data *d)
{
    long n = d->s[0];
    IN(n);
    OUT(n);
    work(d, dot_work_size(n));
    d->bytes = 16.0 * n;
}
static void dot_gradc(Data *d) { status(dot_grad(d->s[0], d->in[0], G(0), G(1), 0, d->work), "dot"); }
static void dot_hand(Data *d) { *H(0) = hand_dot(d->s[0], d->in[0], H(1)); }

static void qf_init(Data *d)
{
    long n = d->s[0];
    IN(n * n, n);
    OUT(n);
    work(d, qf_work_size(n));
    d->scratch = rnd(d, 2 * n);
    d->bytes = 8.0 * n * n + 24.0 * n;
}
static void qf_gradc(Data *d) { status(qf_grad(d->s[0], d->in[0], d->in[1], G(0), G(1), 0, d->work), "qf"); }
static void qf_hand(Data *d)
{
    *H(0) = hand_quadratic_form(d->s[0], d->in[0], d->in[1], H(1), d->scratch, d->scratch + d->s[0]);
}

static void qf4_init(Data *d)
{
    IN(16, 4);
    OUT(4);
    work(d, qf4_work_size());
}
static void qf4_gradc(Data *d) { status(qf4_grad(d->in[0], d->in[1], G(0), G(1), 0, d->work), "qf4"); }
static void qf4_hand(Data *d) { *H(0) = hand_quadratic_form4(d->in[0], d->in[1], H(1)); }

static void logreg_init(Data *d)
{
    long m = d->s[0], n = d->s[1];
    IN(m * n, m, n, 1);
    for (long i = 0; i < m; i++)
        d->in[1][i] = d->in[1][i] < 0 ? -1 : 1;
    d->in[3][0] = 0.1;
    OUT(n);
    work(d, logreg_work_size(m, n));
}
static void logreg_gradc(Data *d)
{
    status(logreg_grad(d->s[0], d->s[1], d->in[0], d->in[1], d->in[2], d->in[3][0], G(0), G(1), 0, d->work),
           "logreg");
}
static void logreg_hand(Data *d)
{
    *H(0) = hand_logistic(d->s[0], d->s[1], d->in[0], d->in[1], d->in[2], d->in[3][0], H(1));
}

static void d2l_init(Data *d)
{
    long n = d->s[0];
    IN(n);
    OUT(n);
    work(d, d2l_work_size(n));
    d->scratch = rnd(d, n);
}
static void d2l_gradc(Data *d) { status(d2l_grad(d->s[0], d->in[0], G(0), G(1), 0, d->work), "d2l"); }
static void d2l_hand(Data *d) { *H(0) = hand_d2l_control_flow(d->s[0], d->in[0], H(1), d->scratch); }

static void mlp_init(Data *d)
{
    long m = d->s[0], dd = d->s[1], h = d->s[2], k = d->s[3];
    IN(m * dd, dd * h, h, h * k, m * k);
    OUT(dd * h, h, h * k);
    work(d, mlp_work_size(m, dd, h, k));
    d->scratch = rnd(d, (size_t)hand_mlp_scratch(m, dd, h, k));
}
static void mlp_gradc(Data *d)
{
    long *s = d->s;
    status(mlp_grad(s[0], s[1], s[2], s[3], d->in[0], d->in[1], d->in[2], d->in[3], d->in[4], G(0), G(1), G(2),
                    G(3), 0, d->work),
           "mlp");
}
static void mlp_hand(Data *d)
{
    long *s = d->s;
    *H(0) = hand_mlp(s[0], s[1], s[2], s[3], d->in[0], d->in[1], d->in[2], d->in[3], d->in[4], H(1), H(2), H(3),
                     d->scratch);
}

static void lsq_init(Data *d)
{
    long m = d->s[0], n = d->s[1];
    IN(m * n, n, m);
    OUT(m * n, n, m);
    work(d, lsq_work_size(m, n));
    d->scratch = rnd(d, m);
}
static void lsq_gradc(Data *d)
{
    status(lsq_grad(d->s[0], d->s[1], d->in[0], d->in[1], d->in[2], G(0), G(1), G(2), G(3), 0, d->work), "lsq");
}
static void lsq_hand(Data *d)
{
    *H(0) = hand_least_squares(d->s[0], d->s[1], d->in[0], d->in[1], d->in[2], H(1), H(2), H(3), d->scratch);
}

/* diag(u)*K*diag(v) (gradc) against (u*v').*K (gradc): the same function. */
static void diag_init(Data *d)
{
    long n = d->s[0];
    IN(n * n, n, n);
    OUT(n, n);
    work(d, dk_work_size(n) > uvk_work_size(n) ? dk_work_size(n) : uvk_work_size(n));
}
static void diag_gradc(Data *d)
{
    status(dk_grad(d->s[0], d->in[0], d->in[1], d->in[2], G(0), G(1), G(2), 0, d->work), "dk");
}
static void outer_gradc(Data *d)
{
    status(uvk_grad(d->s[0], d->in[0], d->in[1], d->in[2], H(0), H(1), H(2), 0, d->work), "uvk");
}

/* ---- the table ---- */

typedef struct Case {
    const char *what, *baseline;
    long s[4];
    void (*init)(Data *);
    void (*gradc)(Data *), (*base)(Data *);
    double target;      /* gradc/baseline must be at most this; 0: no target */
    bool bandwidth;     /* also a row: bytes/time against the read bandwidth */
} Case;

#define DOT "2*dot(x,x) value+grad", "hand C, one pass", dot_init, dot_gradc, dot_hand, 1.10
#define QF "x'*A*x value+grad", "hand C, one pass over A", qf_init, qf_gradc, qf_hand, 1.10
#define LOGREG "logistic loss+grad", "hand C, one pass over X", logreg_init, logreg_gradc, logreg_hand, 1.10
#define MLP "MLP value+grad", "hand C + OpenBLAS", mlp_init, mlp_gradc, mlp_hand, 1.05
#define D2L "D2L while/if value+grad", "hand C, same loop", d2l_init, d2l_gradc, d2l_hand, 1.10
#define LSQ "least squares grad", "hand C + OpenBLAS", lsq_init, lsq_gradc, lsq_hand, 0

#define ROW(spec, bw, ...) row_of(spec, (long[4]){__VA_ARGS__}, bw)
static Case row_of(const char *what, const char *baseline, void (*init)(Data *), void (*g)(Data *),
                   void (*b)(Data *), double target, const long s[4], bool bw)
{
    return (Case){what, baseline, {s[0], s[1], s[2], s[3]}, init, g, b, target, bw};
}

#define QF4 "x'*A*x, literal 4x4", "hand C, fixed 4x4", qf4_init, qf4_gradc, qf4_hand, 1.20
#define DIAG "diag(u)*K*diag(v) v+grad", "gradc (u*v').*K", diag_init, diag_gradc, outer_gradc, 1.10

static const Case *table(int *n)
{
    static Case rows[32];
    Case r[] = {
        ROW(DOT, false, 100000), ROW(DOT, false, 1000000), ROW(DOT, true, 10000000),
        ROW(QF, false, 317), ROW(QF, false, 1000), ROW(QF, true, 3163),
        ROW(LOGREG, false, 1000, 100), ROW(LOGREG, false, 10000, 100), ROW(LOGREG, false, 25000, 400),
        ROW(MLP, false, 512, 32, 128, 10), ROW(MLP, false, 3000, 160, 200, 12), ROW(MLP, false, 20000, 50, 64, 10),
        ROW(D2L, false, 100000), ROW(D2L, false, 1000000), ROW(D2L, false, 10000000),
        ROW(QF4, false, 4), ROW(DIAG, false, 300),
        ROW(LSQ, false, 1000, 100), ROW(LSQ, false, 4000, 500),
    };
    *n = (int)(sizeof r / sizeof r[0]);
    memcpy(rows, r, sizeof r);
    return rows;
}

/* ---- timing and printing ---- */

static const char *fmt_time(char *buf, double t)
{
    if (t < 1e-6)
        snprintf(buf, 32, "%.1f ns", 1e9 * t);
    else if (t < 1e-3)
        snprintf(buf, 32, "%.2f us", 1e6 * t);
    else
        snprintf(buf, 32, "%.2f ms", 1e3 * t);
    return buf;
}

static void row(const char *what, const char *size, const char *g, const char *b, double ratio, const char *target,
                const char *verdict)
{
    printf("| %-26s | %-19s | %-18s | %-34s | %5.2f | %-7s | %-6s |\n", what, size, g, b, ratio, target, verdict);
}

static double agree(const Data *d)
{
    double worst = 0;
    for (int i = 0; i < d->nout; i++)
        worst = fmax(worst, max_rel_diff(d->out[0][i], d->out[1][i], d->len[i]));
    return worst;
}

/* The read-bandwidth probe: a vectorised sum over BW_N doubles, far more
 * than the caches hold.  Bytes per second. */
static struct {
    double *x;
    long n;
} probe;
static volatile double probe_sink;

static double probe_time(void)
{
    double t;
    TIME_ROUND(t, 3, probe_sink += hand_read_sum(probe.n, probe.x));
    return t;
}

/* Median seconds per call of gradc and the baseline, interleaved; with bw,
 * also the read bandwidth measured in the same rounds. */
static void time_case(const Case *c, Data *d, bool smoke, double *tg, double *tb, double *bw)
{
    double t0 = now();
    c->gradc(d);
    double once = fmax(now() - t0, 1e-9);
    int reps = smoke ? 1 : (int)fmin(1e6, fmax(1, 0.02 / once)), rounds = smoke ? 1 : ROUNDS;
    double g[ROUNDS], b[ROUNDS], p[ROUNDS];
    for (int r = 0; r < rounds; r++) {
        TIME_ROUND(g[r], reps, c->gradc(d));
        TIME_ROUND(b[r], reps, c->base(d));
        if (bw)
            p[r] = probe_time();
    }
    *tg = median(g, rounds), *tb = median(b, rounds);
    if (bw)
        *bw = 8.0 * probe.n / median(p, rounds);
}

static void bandwidth(Data *d, bool smoke)
{
    enum { BW_N = 20000000 };
    probe.n = smoke ? 1000 : BW_N;
    probe.x = rnd(d, (size_t)probe.n);
    double t[ROUNDS];
    for (int r = 0; r < (smoke ? 1 : ROUNDS); r++)
        t[r] = probe_time();
    char size[32], g[40];
    snprintf(size, sizeof size, "%.0f MB", 8e-6 * probe.n);
    snprintf(g, sizeof g, "%.1f GB/s", 1e-9 * 8.0 * probe.n / median(t, smoke ? 1 : ROUNDS));
    printf("| %-26s | %-19s | %-18s | %-34s | %5s | %-7s | %-6s |\n", "read bandwidth, one thread", size, g,
           "vectorised sum, 4 streams x 8 lanes", "", "", "");
}

static void run_case(const Case *c, bool smoke)
{
    Data d = {0};
    for (int i = 0; i < 4; i++)
        d.s[i] = smoke && c->s[i] > 40 ? 40 : c->s[i];
    c->init(&d);
    c->gradc(&d);
    c->base(&d);
    double err = agree(&d);
    char size[48], g[32], b[64], tb_s[32], tgt[16];
    snprintf(size, sizeof size, d.s[3] ? "%ldx%ld,h=%ld,k=%ld" : d.s[1] ? "%ldx%ld" : "n=%ld", d.s[0], d.s[1], d.s[2],
             d.s[3]);
    if (!(err <= 1e-12)) {
        fprintf(stderr, "harness: %s %s: gradc and the baseline differ by %g\n", c->what, size, err);
        exit(1);
    }
    double tg, tb, bw;
    time_case(c, &d, smoke, &tg, &tb, c->bandwidth ? &bw : NULL);
    fmt_time(g, tg);
    snprintf(b, sizeof b, "%s %s", c->baseline, fmt_time(tb_s, tb));
    snprintf(tgt, sizeof tgt, c->target ? "<= %.2f" : "-", c->target);
    row(c->what, size, g, b, tg / tb, tgt, !c->target ? "" : tg / tb <= c->target ? "met" : "missed");
    if (c->bandwidth) {
        snprintf(g, sizeof g, "%.1f GB/s", 1e-9 * d.bytes / tg);
        snprintf(b, sizeof b, "hand C %.1f GB/s; read %.1f", 1e-9 * d.bytes / tb, 1e-9 * bw);
        row("  ... share of bandwidth", size, g, b, d.bytes / tg / bw, ">= 0.90",
            d.bytes / tg / bw >= 0.9 ? "met" : "missed");
    }
    for (int i = 0; i < d.nalloc; i++)
        free(d.alloc[i]);
}

int main(int argc, char **argv)
{
    bool smoke = argc > 1 && strcmp(argv[1], "--smoke") == 0;
    const char *only = argc > 1 + smoke ? argv[1 + smoke] : NULL;
    int ncases;
    const Case *cases = table(&ncases);
    Data probe_data = {0};
    bandwidth(&probe_data, smoke);
    for (int i = 0; i < ncases; i++) {
        if (only && !strstr(cases[i].what, only))
            continue;
        run_case(&cases[i], smoke);
        fflush(stdout);
    }
    free(probe.x);
    return 0;
}
