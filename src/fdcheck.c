/* fdcheck.c — `gradc check`: the gradient against central finite differences.
 *
 * Inputs are drawn from a seeded splitmix64 generator: every entry uniform
 * in [0.5, 1.5], and a square n×n matrix input (same row and column
 * dimension) gets n·I added.  Why that is enough: such a U is J + E with J
 * all ones and |E_ij| <= 1/2, so ||E||_2 <= n/2; J + nI is symmetric with
 * eigenvalues n and 2n.  So every eigenvalue of U + nI has real part >= n/2
 * (Bauer–Fike): det > 0 and logdet is defined; and every singular value
 * lies in [n/2, 5n/2] (Weyl): the condition number is at most 5.  A
 * non-scalar output is contracted with a random cotangent drawn the same
 * way.
 *
 * With --inputs FILE the check is made at the user's point instead (the
 * dimensions are the file's).  A check whose gradients and differences are
 * all zero, or not finite, checked nothing and says so instead of "ok".
 *
 * For each entry x_i of each wrt input, the derivative of <cotangent, f(x)>
 * is estimated as (F(x_i + h) - F(x_i - h)) / 2h with h = 1e-6 max(1, |x_i|)
 * from the forward function, and compared with the gradient function's
 * entry relative to max(1, |fd|).  Subterms under detach() keep their values
 * from the unperturbed run, since the gradient treats them as constants. */
#include "gradc.h"

#include "gradc/runtime.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Rng {
    uint64_t s;
} Rng;

/* splitmix64 (Steele, Lea, Flood 2014): tiny and good enough for test data. */
static uint64_t rng_next(Rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* uniform in [0.5, 1.5): 53 random bits */
static double rng_entry(Rng *r) { return 0.5 + (double)(rng_next(r) >> 11) * 0x1p-53; }

/* Parses "n=5,m=3" into dims (every symbol 3 unless given). */
static bool parse_dims(const Module *m, const char *spec, int64_t *dims)
{
    for (int d = 0; d < m->ndims; d++)
        dims[d] = 3;
    for (const char *p = spec; p && *p;) {
        while (*p == ' ')
            p++;
        const char *eq = strchr(p, '='), *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        if (!eq || eq > end) {
            diag_plain("--dims: expected NAME=SIZE, as in n=5,m=3, not '%.*s'", (int)(end - p), p);
            return false;
        }
        int d = 0;
        while (d < m->ndims && !(strlen(m->dims[d]) == (size_t)(eq - p) &&
                                 strncmp(m->dims[d], p, (size_t)(eq - p)) == 0))
            d++;
        char *stop;
        long long n = strtoll(eq + 1, &stop, 10);
        if (d == m->ndims) {
            diag_plain("--dims: the program has no dimension '%.*s'", (int)(eq - p), p);
            return false;
        }
        if (stop != end || eq + 1 == end || n < 0 || n > 100000) {
            diag_plain("--dims: '%.*s' is not a size (0 to 100000)", (int)(end - eq - 1), eq + 1);
            return false;
        }
        dims[d] = n;
        p = *end ? end + 1 : end;
    }
    return true;
}

typedef struct Check {
    const Module *m;
    const FdCheckOptions *o;
    Jit *jit;             /* with --jit: the compiled module, else NULL */
    Bindings b;
    double **in;       /* the inputs, writable (b.inputs aliases them) */
    int64_t nout;      /* entries of the output */
    double *out;       /* forward output buffer */
    DetachRecord det;  /* detach values at the base point (none: len 0) */
} Check;

static int64_t count(const Check *c, Shape s)
{
    return shape_rows(s, c->b.dims) * shape_cols(s, c->b.dims);
}

/* Every input and the output fit in memory's address range (rows × cols ×
 * 8 bytes without overflow), as eval's buffers require; else a message. */
static bool sizes_fit(const Check *c)
{
    const Module *m = c->m;
    for (int i = 0; i <= m->ninputs; i++) {
        Shape s = i < m->ninputs ? m->inputs[i].shape : m->fwd.value->shape;
        int64_t r = shape_rows(s, c->b.dims), k = shape_cols(s, c->b.dims);
        if (r >= 0 && k >= 0 && (r == 0 || k <= INT64_MAX / 8 / r))
            continue;
        diag_plain("%s '%s' of %lld x %lld entries is too large",
                   i < m->ninputs ? "input" : "the output",
                   i < m->ninputs ? m->inputs[i].name : m->output_name, (long long)r,
                   (long long)k);
        return false;
    }
    return true;
}

static void report_status(const Module *m, int status, Loc where)
{
    if (status == GRADC_EMAXITER || (status == GRADC_EINDEX && where.line))
        diag_error(m->src, where, "%s", gradc_strerror(status));
    else
        diag_plain("evaluation failed: %s", gradc_strerror(status));
}

/* <cotangent, f(inputs)> from the forward function. */
static bool objective(Check *c, double *v)
{
    Loc where = {0, 0};
    int st;
    if (c->det.len) {
        st = eval_func_frozen(c->m, &c->m->fwd, &c->b, c->out, &where, &c->det);
        if (c->det.mismatch && !st) {
            fprintf(stderr, "gradc: warning: a perturbed run took another path; "
                            "detach() was not held constant there\n");
            c->det.mismatch = false;
        }
    } else {
        st = c->jit ? jit_run(c->jit, false, &c->b, c->out, NULL, &where)
                    : eval_func(c->m, &c->m->fwd, &c->b, c->out, NULL, &where);
    }
    if (st) {
        report_status(c->m, st, where);
        return false;
    }
    double s = 0;
    for (int64_t i = 0; i < c->nout; i++)
        s += (c->b.cotangent ? c->b.cotangent[i] : 1.0) * c->out[i];
    *v = s;
    return true;
}

/* What one wrt input's comparison found. */
typedef struct Compared {
    double worst;         /* the worst relative error; NaN if any is NaN */
    double largest;       /* the largest |gradient| or |difference| */
    bool nonfinite;       /* some gradient entry or difference is NaN or infinite */
} Compared;

/* Whether some chol argument is computed from input x (through its
 * operands; children are older than parents, so one pass by id). */
static bool feeds_chol(const Module *m, int x)
{
    const Ir *ir = m->ir;
    bool *reach = calloc((size_t)ir->nodes.len + 1, 1), found = false;
    for (int i = 0; reach && i < ir->nodes.len && !found; i++) {
        const Node *n = ir->nodes.data[i];
        reach[i] = n->op == OP_INPUT && n->index == x;
        for (int a = 0; a < n->nargs; a++)
            reach[i] |= reach[n->args[a]->id];
        found = n->op == OP_CHOL && reach[i];
    }
    free(reach);
    return found;
}

/* Compares the entries of input k; false on an evaluation error.  A square
 * input that a chol argument is computed from is perturbed symmetrically,
 * (i, j) and (j, i) together, against grad_ij + grad_ji: chol reads one
 * triangle, and its gradient is the symmetric one (spec §8), which is the
 * derivative along symmetric perturbations only. */
static bool check_input(Check *c, int k, const double *grad, Compared *cmp)
{
    int x = c->m->wrt[k];
    double *v = c->in[x];
    double *worst = &cmp->worst;
    Shape s = c->m->inputs[x].shape;
    int64_t cols = shape_cols(s, c->b.dims);
    bool sym = c->m->inputs[x].ndims == 2 && dim_eq(s.rows, s.cols) && feeds_chol(c->m, x);
    *cmp = (Compared){0};
    for (int64_t i = 0; i < count(c, s); i++) {
        int64_t row = i / cols, col = i % cols, j = sym ? col * cols + row : i;
        if (sym && col > row)
            continue;   /* done with its mirror */
        double xi = v[i], xj = v[j], h = 1e-6 * fmax(1.0, fabs(xi)), fp, fm;
        v[i] = xi + h;
        double hp = v[i] - xi;   /* the step actually taken, after rounding */
        v[j] = xj + hp;
        bool ok = objective(c, &fp);
        v[i] = xi - h;
        double hm = xi - v[i];
        v[j] = xj - hm;
        ok = ok && objective(c, &fm);
        v[i] = xi;
        v[j] = xj;
        if (!ok)
            return false;
        double fd = (fp - fm) / (hp + hm), g = grad[i] + (j != i ? grad[j] : 0);
        double err = fabs(g - fd) / fmax(1.0, fabs(fd));
        cmp->nonfinite |= !isfinite(fd) || !isfinite(g);
        cmp->largest = fmax(cmp->largest, fmax(fabs(fd), fabs(g)));
        if (isnan(err) || err > *worst)
            *worst = isnan(*worst) ? *worst : err;
    }
    return true;
}

/* The gradient, flattened over the wrt inputs in order, into g (N entries);
 * with detach(e) at its values at the base point, by the interpreter, when
 * the gradient program has any (rec->len: the Hessian holds them constant). */
static bool gradient_at(Check *c, double **bufs, double *g, DetachRecord *rec)
{
    const Module *m = c->m;
    Loc where = {0, 0};
    int st = rec->len ? eval_grads_frozen(m, &m->grad, &c->b, c->out, bufs, &where, rec)
             : c->jit ? jit_run(c->jit, true, &c->b, c->out, bufs, &where)
                      : eval_func(m, &m->grad, &c->b, c->out, bufs, &where);
    if (rec->mismatch && !st) {
        fprintf(stderr, "gradc: warning: a perturbed run took another path; "
                        "detach() was not held constant there\n");
        rec->mismatch = false;
    }
    if (st) {
        report_status(m, st, where);
        return false;
    }
    for (int k = 0, off = 0; k < m->nwrt; k++) {
        int64_t n = count(c, m->inputs[m->wrt[k]].shape);
        memcpy(g + off, bufs[k], sizeof(double) * (size_t)n);
        off += (int)n;
    }
    return true;
}

static bool differences(Check *c, double **grads, const double *H, int64_t n, DetachRecord *rec,
                        Compared *cmp);

/* --hessian: H from Hessian-vector products against central differences
 * of the gradient, column by column: (g(x + h e_j) - g(x - h e_j)) / 2h,
 * relative to max(1, |difference|).  The gradient at the perturbed points
 * comes from the same engine (JIT or interpreter) as the check's. */
static bool check_hessian(Check *c, double **grads, Compared *cmp)
{
    const Module *m = c->m, *h = c->o->hvp, *hc = c->o->hess;
    Arena *a = m->arena;
    int64_t n = hessian_size(m, c->b.dims);
    double *H = arena_alloc(a, sizeof(double) * (size_t)(n * n + 1));
    Jit *hj = c->jit ? jit_open(hc ? hc : h, 0, 0) : NULL;
    Loc where = {0, 0};
    int st = c->jit && !hj ? -1
           : hc ? hessian_closed_eval(hc, hj, &c->b, H, &where)
                : hessian_eval(h, hj, &c->b, c->out, NULL, H, &where);
    jit_close(hj);
    DetachRecord rec = {0};
    if (!st)
        st = eval_grads_frozen(m, &m->grad, &c->b, c->out, NULL, &where, &rec);
    rec.replay = true;
    if (st) {
        if (st > 0)
            report_status(m, st, where);
        free(rec.vals);
        return false;
    }
    bool ok = differences(c, grads, H, n, &rec, cmp);
    free(rec.vals);
    return ok;
}

/* H against the symmetric part of the Jacobian of the gradient, by central
 * differences along each e_j (column j): H is returned as (J + J')/2, and J
 * itself is not symmetric where the gradient follows a convention (chol's
 * symmetric gradient). */
static bool differences(Check *c, double **grads, const double *H, int64_t n, DetachRecord *rec,
                        Compared *cmp)
{
    const Module *m = c->m;
    Arena *a = m->arena;
    double *gp = arena_alloc(a, sizeof(double) * (size_t)(n + 1));
    double *gm = arena_alloc(a, sizeof(double) * (size_t)(n + 1));
    double *J = arena_alloc(a, sizeof(double) * (size_t)(n * n + 1));
    *cmp = (Compared){0};
    for (int k = 0, j = 0; k < m->nwrt; k++) {
        double *v = c->in[m->wrt[k]];
        for (int64_t i = 0; i < count(c, m->inputs[m->wrt[k]].shape); i++, j++) {
            double xi = v[i], step = 1e-6 * fmax(1.0, fabs(xi));
            v[i] = xi + step;
            double hp = v[i] - xi;
            bool ok = gradient_at(c, grads, gp, rec);
            v[i] = xi - step;
            double hm = xi - v[i];
            ok = ok && gradient_at(c, grads, gm, rec);
            v[i] = xi;
            if (!ok)
                return false;
            for (int64_t r = 0; r < n; r++)
                J[r * n + j] = (gp[r] - gm[r]) / (hp + hm);
        }
    }
    for (int64_t i = 0; i < n * n; i++) {
        double fd = 0.5 * (J[i] + J[i % n * n + i / n]), got = H[i];
        double err = fabs(got - fd) / fmax(1.0, fabs(fd));
        cmp->nonfinite |= !isfinite(fd) || !isfinite(got);
        cmp->largest = fmax(cmp->largest, fmax(fabs(fd), fabs(got)));
        if (isnan(err) || err > cmp->worst)
            cmp->worst = isnan(cmp->worst) ? cmp->worst : err;
    }
    return true;
}

static int run(Check *c, Rng *rng)
{
    const Module *m = c->m;
    Arena *a = m->arena;
    for (int i = 0; i < m->ninputs && !c->o->inputs; i++) {
        Shape s = m->inputs[i].shape;
        int64_t n = count(c, s), rows = shape_rows(s, c->b.dims);
        c->in[i] = arena_alloc(a, sizeof(double) * (size_t)(n > 0 ? n : 1));
        for (int64_t j = 0; j < n; j++)
            c->in[i][j] = rng_entry(rng);
        if (m->inputs[i].ndims == 2 && dim_eq(s.rows, s.cols))
            for (int64_t j = 0; j < rows; j++)
                c->in[i][j * rows + j] += (double)rows;
        c->b.inputs[i] = c->in[i];
    }
    Shape os = m->fwd.value->shape;
    c->nout = count(c, os);
    c->out = arena_alloc(a, sizeof(double) * (size_t)(c->nout > 0 ? c->nout : 1));
    if (!shape_is_scalar(os)) {
        double *cot = arena_alloc(a, sizeof(double) * (size_t)(c->nout > 0 ? c->nout : 1));
        for (int64_t j = 0; j < c->nout; j++)
            cot[j] = rng_entry(rng);
        c->b.cotangent = cot;
    }

    double **grads = arena_alloc(a, sizeof(double *) * (size_t)(m->nwrt + 1));
    for (int k = 0; k < m->nwrt; k++) {
        int64_t n = count(c, m->inputs[m->wrt[k]].shape);
        grads[k] = arena_alloc(a, sizeof(double) * (size_t)(n > 0 ? n : 1));
    }
    Loc where = {0, 0};
    int st = c->jit ? jit_run(c->jit, true, &c->b, c->out, grads, &where)
                    : eval_func(m, &m->grad, &c->b, c->out, grads, &where);
    if (st) {
        report_status(m, st, where);
        return 1;
    }

    /* The differences see detach(e) as a constant, as the gradient does:
     * its values at the base point are recorded and replayed. */
    st = eval_func_frozen(m, &m->fwd, &c->b, c->out, &where, &c->det);
    c->det.replay = true;
    if (st) {
        report_status(m, st, where);
        return 1;
    }

    /* A check that compared only zeros, or values that are not finite,
     * checked nothing: it says so rather than "ok". */
    double tol = c->o->tol;
    bool pass = true, nonfinite = false, all_zero = true;
    for (int k = 0; k < m->nwrt; k++) {
        Compared cmp;
        if (!check_input(c, k, grads[k], &cmp))
            return 1;
        const char *name = m->inputs[m->wrt[k]].name;
        printf("%s: max relative error %.1e%s\n", name, cmp.worst,
               cmp.nonfinite ? " (the gradient or the differences are not finite)"
               : cmp.largest == 0 ? " (the gradient and the differences are all zero)" : "");
        pass = pass && cmp.worst <= tol;   /* false for NaN */
        nonfinite |= cmp.nonfinite;
        all_zero = all_zero && cmp.largest == 0;
    }
    if (c->o->hvp || c->o->hess) {
        Compared cmp;
        if (!check_hessian(c, grads, &cmp))
            return 1;
        printf("hessian: max relative error %.1e%s\n", cmp.worst,
               cmp.nonfinite ? " (the Hessian or the differences are not finite)"
               : cmp.largest == 0 ? " (the Hessian and the differences are all zero)" : "");
        pass = pass && cmp.worst <= tol;
        nonfinite |= cmp.nonfinite;
    }
    if (nonfinite)
        printf("FAILED: the gradient or the differences are not finite (NaN or infinite) "
               "at this point; nothing was checked there\n");
    else if (all_zero)
        printf("NOT CHECKED: the gradient and the differences are all zero at this point "
               "(try another --seed or --inputs)\n");
    else if (pass)
        printf("ok\n");
    else
        printf("FAILED (tol %g)\n", tol);
    return pass && !nonfinite && !all_zero ? 0 : 1;
}

/* --inputs FILE: the point to check at, and the dimensions, from the file;
 * copied, since the differences perturb the inputs entry by entry. */
static bool user_point(Check *c)
{
    const Module *m = c->m;
    Bindings read = {0};
    if (c->o->dims) {
        diag_plain("check: --dims and --inputs exclude each other (the inputs give the dimensions)");
        return false;
    }
    if (!json_read_inputs(m, c->o->inputs, &read, m->arena))
        return false;
    c->b.dims = read.dims;
    for (int i = 0; i < m->ninputs; i++) {
        size_t n = (size_t)count(c, m->inputs[i].shape);
        c->in[i] = arena_alloc(m->arena, sizeof(double) * (n > 0 ? n : 1));
        memcpy(c->in[i], read.inputs[i], sizeof(double) * n);
        c->b.inputs[i] = c->in[i];
    }
    return true;
}

int fdcheck_run(const Module *m, const FdCheckOptions *o)
{
    Arena *a = m->arena;
    Check c = {.m = m, .o = o};
    c.b.dims = arena_alloc(a, sizeof(int64_t) * (size_t)(m->ndims + 1));
    c.b.inputs = arena_alloc(a, sizeof(double *) * (size_t)(m->ninputs + 1));
    c.in = arena_alloc(a, sizeof(double *) * (size_t)(m->ninputs + 1));
    if (o->inputs && !user_point(&c))
        return 1;
    if (!o->inputs && (!parse_dims(m, o->dims, c.b.dims) || !sizes_fit(&c)))
        return 1;
    if (o->use_jit && !(c.jit = jit_open(m, 0, 0)))   /* compiled once for every run */
        return 1;
    Rng rng = {o->seed};
    int status = run(&c, &rng);
    jit_close(c.jit);
    free(c.det.vals);
    return status;
}
