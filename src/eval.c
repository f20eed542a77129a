/* eval.c — the reference evaluator: plain loops over the IR.
 *
 * This is the oracle the LLVM backend is tested against, so it favours
 * obvious code over fast code.  A value is a row-major array of doubles of
 * its node's shape.
 *
 * Node values are cached by node id, because the DAG shares subterms.  A
 * cached value is stale once a slot it reads has been written since it was
 * computed: every slot write takes a new tick of a clock (`written[slot]`),
 * every cache entry records the clock when it was filled (`stamp`), and an
 * entry is valid while no slot in node->slots has a later tick.
 *
 * Statements follow the comment on StmtKind in gradc.h.  Every assignment
 * of several slots (SET, an if's results, a loop's init and next) is
 * parallel: all right-hand sides are evaluated and copied aside before any
 * slot is written, so `a, b = b, a` swaps. */
#include "gradc.h"

#include "gradc/runtime.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Entry {
    double *data;       /* malloc'd, the node's size; NULL until first use */
    uint64_t stamp;     /* clock when data was computed */
    bool valid;
} Entry;

typedef struct Eval {
    const Module *m;
    const Bindings *b;
    int64_t max_iter;
    uint64_t clock;
    double **slot;      /* current value of each slot (zeros until written) */
    uint64_t *written;  /* clock of each slot's last write */
    int nslots;
    Entry *cache;       /* by node id */
    int nnodes;
    double *tape;       /* PUSH/POP, LIFO */
    size_t top, cap;
    const Node **stack; /* eval_node's nodes to compute */
    size_t depth, depth_cap;
    DetachRecord *det;  /* eval_func_frozen only */
    int status;         /* first error, 0 while none */
    Loc where;
} Eval;

/* ---- sizes and buffers ---- */

static int64_t rows_of(Eval *e, Shape s) { return shape_rows(s, e->b->dims); }
static int64_t cols_of(Eval *e, Shape s) { return shape_cols(s, e->b->dims); }

/* Entries of a shape, or -1 (and GRADC_EDIM) when it overflows. */
static int64_t size_of(Eval *e, Shape s)
{
    int64_t r = rows_of(e, s), c = cols_of(e, s);
    if (r < 0 || c < 0 || (c && r > (int64_t)(SIZE_MAX / sizeof(double)) / c)) {
        if (!e->status)
            e->status = GRADC_EDIM;
        return -1;
    }
    return r * c;
}

static double *alloc_doubles(Eval *e, int64_t n)
{
    double *p = calloc(n ? (size_t)n : 1, sizeof *p);
    if (!p && !e->status)
        e->status = GRADC_ENOMEM;
    return p;
}

/* ---- slots ---- */

static void write_slot(Eval *e, int s, const double *v)
{
    int64_t n = size_of(e, e->m->ir->slots.data[s].shape);
    if (n > 0)
        memcpy(e->slot[s], v, sizeof(double) * (size_t)n);
    e->written[s] = ++e->clock;
}

static void write_slot_scalar(Eval *e, int s, double v) { write_slot(e, s, &v); }

/* ---- the ops that are not elementwise ---- */

typedef struct Mat {
    const double *d;
    int64_t r, c;
} Mat;

static void op_matmul(Mat a, Mat b, double *out)
{
    for (int64_t i = 0; i < a.r; i++)
        for (int64_t j = 0; j < b.c; j++) {
            double s = 0;
            for (int64_t k = 0; k < a.c; k++)
                s += a.d[i * a.c + k] * b.d[k * b.c + j];
            out[i * b.c + j] = s;
        }
}

static void op_transpose(Mat a, double *out)
{
    for (int64_t i = 0; i < a.r; i++)
        for (int64_t j = 0; j < a.c; j++)
            out[j * a.r + i] = a.d[i * a.c + j];
}

static double sum_of(Mat a)
{
    double s = 0;
    for (int64_t i = 0; i < a.r * a.c; i++)
        s += a.d[i];
    return s;
}

/* sqrt(sum x^2): the runtime's gradc_norm, which compiled code calls (one
 * pass, rescaled by the largest |x| only when the squares overflow or
 * underflow), so both engines round it alike: norm(z*ones(3,3)/3) was z in
 * a scaled pass here and z minus an ulp in the JIT, and max(z, norm(...))
 * then took the other branch's gradient (fuzz-diff, crashers/diff/norm-tie-max).
 * A norm the plan keeps in the loop that stores its argument (`kept`) is
 * summed there, in that loop's order, by compiled code. */
static double norm_of(Mat a) { return gradc_norm(a.r * a.c, a.d); }

static double trace_of(Mat a)
{
    double s = 0;
    for (int64_t i = 0; i < a.r && i < a.c; i++)
        s += a.d[i * a.c + i];
    return s;
}

/* The largest entry; NaN if any entry is NaN, -inf if there are none. */
static double max_of(Mat a)
{
    double mx = -INFINITY;
    for (int64_t i = 0; i < a.r * a.c; i++) {
        if (isnan(a.d[i]))
            return NAN;
        if (a.d[i] > mx)
            mx = a.d[i];
    }
    return mx;
}

/* log(sum exp x) = max + log(sum exp(x - max)): no overflow. */
static double logsumexp_of(Mat a)
{
    double mx = max_of(a);
    if (isnan(mx) || isinf(mx))
        return mx;             /* NaN, all -inf (or empty), or some +inf */
    double s = 0;
    for (int64_t i = 0; i < a.r * a.c; i++)
        s += gradc_exp(a.d[i] - mx);
    return mx + log(s);
}

static void op_softmax(Mat a, double *out)
{
    double mx = max_of(a), s = 0;
    int64_t n = a.r * a.c;
    for (int64_t i = 0; i < n; i++)
        s += out[i] = gradc_exp(a.d[i] - mx);
    for (int64_t i = 0; i < n; i++)
        out[i] /= s;
}

/* The largest (sign 1) or smallest (sign -1) entry; NaN if any is NaN. */
static double extreme_of(Mat a, double sign)
{
    double m = -sign * INFINITY;
    for (int64_t i = 0; i < a.r * a.c; i++) {
        if (isnan(a.d[i]))
            return NAN;
        if (sign * a.d[i] > sign * m)
            m = a.d[i];
    }
    return m;
}

/* The reductions and normalisations along d, one line at a time: line k
 * of a along d is a.d[k*step + t*stride] for t < len (a column for d = 1, a
 * row for d = 2), computed into out with the same stride (normalisations)
 * or into out[k] (reductions). */
static void along(Eval *e, Op op, int d, Mat a, double *out)
{
    int64_t nlines = d == 1 ? a.c : a.r, len = d == 1 ? a.r : a.c;
    int64_t stride = d == 1 ? a.c : 1, step = d == 1 ? 1 : a.c;
    double *line = alloc_doubles(e, len), *res = alloc_doubles(e, len);
    for (int64_t k = 0; line && res && k < nlines; k++) {
        for (int64_t t = 0; t < len; t++)
            line[t] = a.d[k * step + t * stride];
        Mat l = {line, len, 1};
        switch (op) {
        case OP_SUMD: out[k] = sum_of(l); break;
        case OP_AMAXD: out[k] = extreme_of(l, 1); break;
        case OP_AMIND: out[k] = extreme_of(l, -1); break;
        case OP_LSED: out[k] = logsumexp_of(l); break;
        case OP_SOFTMAXD: op_softmax(l, res); break;
        default: { /* log_softmax: x - logsumexp(x) */
            double lse = logsumexp_of(l);
            for (int64_t t = 0; t < len; t++)
                res[t] = line[t] - lse;
        }
        }
        if (op == OP_SOFTMAXD || op == OP_LOGSOFTMAXD)
            for (int64_t t = 0; t < len; t++)
                out[k * step + t * stride] = res[t];
    }
    free(line);
    free(res);
}

/* LU factorisation of a copy of a (n×n) for det, logdet and inv.
 * Returns LAPACK's info: 0 ok, > 0 an exactly zero pivot (the factors are
 * still complete), < 0 refused (LAPACKE's NaN check). */
static int lu(Eval *e, Mat a, double **lu_out, lapack_int **piv_out)
{
    int64_t n = a.r;
    double *f = alloc_doubles(e, n * n);
    lapack_int *piv = calloc(n ? (size_t)n : 1, sizeof *piv);
    *lu_out = f;
    *piv_out = piv;
    if (!f || !piv) {
        e->status = e->status ? e->status : GRADC_ENOMEM;
        return -1;
    }
    if (n == 0)
        return 0;
    memcpy(f, a.d, sizeof(double) * (size_t)(n * n));
    return LAPACKE_dgetrf(LAPACK_ROW_MAJOR, (lapack_int)n, (lapack_int)n, f, (lapack_int)n, piv);
}

/* det(A) = sign(P) * prod diag(U).  logdet is log|u_ii| summed with the
 * sign tracked apart, so it does not overflow where det would: NaN where
 * det < 0, -inf where det = 0. */
static void det_logdet(Eval *e, Mat a, double *det, double *logdet)
{
    double *f;
    lapack_int *piv;
    int info = lu(e, a, &f, &piv);
    double d = 1, l = 0;
    bool neg = false, zero = false;
    for (int64_t i = 0; info >= 0 && i < a.r; i++) {
        double u = f[i * a.r + i];
        if (piv[i] != i + 1)
            u = -u;          /* each row swap flips the sign */
        d *= u;
        l += log(fabs(u));
        neg ^= u < 0;
        zero |= u == 0;
    }
    *det = info < 0 ? NAN : d;
    *logdet = info < 0 || isnan(l) ? NAN : zero ? -INFINITY : neg ? NAN : l;
    free(f);
    free(piv);
}

/* The inverse from the LU factors; a singular (or NaN) matrix gives all
 * NaN entries, as a matrix with no inverse has no meaningful entries. */
static void op_inv(Eval *e, Mat a, double *out)
{
    double *f;
    lapack_int *piv;
    int64_t n = a.r;
    int info = lu(e, a, &f, &piv);
    if (info == 0 && n > 0)
        info = LAPACKE_dgetri(LAPACK_ROW_MAJOR, (lapack_int)n, f, (lapack_int)n, piv);
    for (int64_t i = 0; f && i < n * n; i++)
        out[i] = info == 0 ? f[i] : NAN;
    free(f);
    free(piv);
}

/* SLICE: out = x's block at (r, c) of n's shape; PAD: out (zeros of n's
 * shape) gets x at (r, c).  The offsets are integers held as doubles; a
 * slice out of range is GRADC_EINDEX at its source position (it can only be
 * one whose range was not known at compile time); a pad out of range stays
 * zero (the slice it undoes was never taken: its adjoint was moved out of a
 * loop that ran no iteration). */
static bool block_copy(Eval *e, const Node *n, Mat x, double r, double c, double *out)
{
    bool pad = n->op == OP_PAD;
    int64_t br = pad ? x.r : rows_of(e, n->shape), bc = pad ? x.c : cols_of(e, n->shape);
    int64_t fr = pad ? rows_of(e, n->shape) : x.r, fc = pad ? cols_of(e, n->shape) : x.c;
    if (!(r >= 0 && c >= 0 && r + (double)br <= (double)fr && c + (double)bc <= (double)fc &&
          br >= 0 && bc >= 0)) {
        if (pad)
            return true;   /* zeros: the slice it undoes was never taken */
        if (!e->status) {
            e->status = GRADC_EINDEX;
            e->where = node_loc(n);
        }
        return false;
    }
    int64_t r0 = (int64_t)r, c0 = (int64_t)c;
    for (int64_t i = 0; i < br; i++)
        for (int64_t j = 0; j < bc; j++) {
            if (pad)
                out[(r0 + i) * fc + c0 + j] = x.d[i * x.c + j];
            else
                out[i * bc + j] = x.d[(r0 + i) * x.c + c0 + j];
        }
    return true;
}

/* ---- detach, recorded and replayed (eval_func_frozen) ---- */

/* Each DETACH evaluation is logged as its node id, then its entries. */
static void detach_record(Eval *e, const Node *n, const double *v, int64_t size)
{
    DetachRecord *r = e->det;
    size_t need = r->len + 1 + (size_t)size;
    if (need > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < need)
            cap *= 2;
        double *p = realloc(r->vals, cap * sizeof *p);
        if (!p) {
            e->status = e->status ? e->status : GRADC_ENOMEM;
            return;
        }
        r->vals = p;
        r->cap = cap;
    }
    r->vals[r->len++] = n->id;
    if (size)
        memcpy(r->vals + r->len, v, sizeof(double) * (size_t)size);
    r->len += (size_t)size;
}

/* Replaces out by the recorded value when the log is at this node. */
static void detach_replay(Eval *e, const Node *n, double *out, int64_t size)
{
    DetachRecord *r = e->det;
    if (r->mismatch || r->pos + 1 + (size_t)size > r->len || r->vals[r->pos] != n->id) {
        r->mismatch = true;
        return;
    }
    if (size)
        memcpy(out, r->vals + r->pos + 1, sizeof(double) * (size_t)size);
    r->pos += 1 + (size_t)size;
}

/* ---- nodes ---- */

static const double *eval_node(Eval *e, const Node *n);

static bool entry_fresh(const Eval *e, const Node *n, const Entry *c)
{
    if (!c->valid)
        return false;
    for (int i = 0; i < n->nslots; i++)
        if (e->written[n->slots[i]] > c->stamp)
            return false;
    return true;
}

/* Computes n (not a SLOT or INPUT) into out, whose size is n's. */
static bool compute(Eval *e, const Node *n, double *out, int64_t size)
{
    const double *x = NULL, *y = NULL, *z = NULL;
    Mat a = {0}, b = {0};
    if (n->nargs > 0) {
        if (!(x = eval_node(e, n->args[0])))
            return false;
        a = (Mat){x, rows_of(e, n->args[0]->shape), cols_of(e, n->args[0]->shape)};
    }
    if (n->nargs > 1) {
        if (!(y = eval_node(e, n->args[1])))
            return false;
        b = (Mat){y, rows_of(e, n->args[1]->shape), cols_of(e, n->args[1]->shape)};
    }
    if (n->nargs > 2 && !(z = eval_node(e, n->args[2])))
        return false;
    const OpInfo *info = &op_info[n->op];
    if (info->kind == OK_U) {
        for (int64_t i = 0; i < size; i++)
            out[i] = info->fn1(x[i]);
        if (n->op == OP_DETACH && e->det) {
            if (e->det->replay)
                detach_replay(e, n, out, size);
            else
                detach_record(e, n, out, size);
        }
        return e->status == 0;
    }
    if (info->kind == OK_B) {
        /* a 1×1 side broadcasts over the other */
        int64_t sa = a.r * a.c == 1 ? 0 : 1, sb = b.r * b.c == 1 ? 0 : 1;
        Op lit = n->args[1]->op;
        double (*fn2)(double, double) =
            n->op == OP_POW && (lit == OP_CONST || lit == OP_FILL) ? pow_literal : info->fn2;
        for (int64_t i = 0; i < size; i++)
            out[i] = fn2(x[i * sa], y[i * sb]);
        return true;
    }
    switch (n->op) {
    case OP_CONST: out[0] = n->num; break;
    case OP_FILL:
        for (int64_t i = 0; i < size; i++)
            out[i] = n->num;
        break;
    case OP_EYE: {
        int64_t r = rows_of(e, n->shape), c = cols_of(e, n->shape);
        for (int64_t i = 0; i < r && i < c; i++)
            out[i * c + i] = 1;
        break;
    }
    case OP_DIMVAL: out[0] = (double)e->b->dims[n->index]; break;
    case OP_COTAN:
        for (int64_t i = 0; i < size; i++)
            out[i] = e->b->cotangent ? e->b->cotangent[i] : 1.0;
        break;
    case OP_MATMUL: op_matmul(a, b, out); break;
    case OP_TRANSPOSE: op_transpose(a, out); break;
    case OP_SUM: out[0] = sum_of(a); break;
    case OP_NORM: out[0] = norm_of(a); break;
    case OP_TRACE: out[0] = trace_of(a); break;
    case OP_DET: {
        double l;
        det_logdet(e, a, &out[0], &l);
        break;
    }
    case OP_LOGDET: {
        double d;
        det_logdet(e, a, &d, &out[0]);
        break;
    }
    case OP_INV: op_inv(e, a, out); break;
    /* the runtime's own functions, so that compiled code agrees to the bit */
    case OP_LU: gradc_lu(a.r, x, out); break;
    case OP_SOLVE:
    case OP_SOLVET: {
        double *scratch = alloc_doubles(e, b.r * b.c);
        if (scratch)
            gradc_lu_solve(a.r, b.c, x, n->op == OP_SOLVET, y, out, scratch);
        free(scratch);
        break;
    }
    case OP_CHOL: gradc_chol(a.r, x, out); break;
    case OP_TRIL:
        for (int64_t i = 0; i < a.r; i++)
            for (int64_t j = 0; j <= i && j < a.c; j++)
                out[i * a.c + j] = x[i * a.c + j];
        break;
    case OP_LOGSUMEXP: out[0] = logsumexp_of(a); break;
    case OP_SOFTMAX: op_softmax(a, out); break;
    case OP_DIAGM:
        for (int64_t i = 0; i < a.r * a.c; i++)
            out[i * (a.r * a.c) + i] = x[i];
        break;
    case OP_BCAST: {
        int64_t r = rows_of(e, n->shape), c = cols_of(e, n->shape);
        for (int64_t i = 0; i < r; i++)
            for (int64_t j = 0; j < c; j++)
                out[i * c + j] = x[(a.r == 1 ? 0 : i) * a.c + (a.c == 1 ? 0 : j)];
        break;
    }
    case OP_AMAX: out[0] = extreme_of(a, 1); break;
    case OP_AMIN: out[0] = extreme_of(a, -1); break;
    case OP_SUMD: case OP_AMAXD: case OP_AMIND: case OP_LSED: case OP_SOFTMAXD: case OP_LOGSOFTMAXD:
        along(e, n->op, n->index, a, out);
        break;
    case OP_DIAGV:
        for (int64_t i = 0; i < a.r && i < a.c; i++)
            out[i] = x[i * a.c + i];
        break;
    case OP_VCAT:
        memcpy(out, x, sizeof(double) * (size_t)(a.r * a.c));
        memcpy(out + a.r * a.c, y, sizeof(double) * (size_t)(b.r * b.c));
        break;
    case OP_HCAT:
        for (int64_t i = 0; i < a.r; i++) {
            memcpy(out + i * (a.c + b.c), x + i * a.c, sizeof(double) * (size_t)a.c);
            memcpy(out + i * (a.c + b.c) + a.c, y + i * b.c, sizeof(double) * (size_t)b.c);
        }
        break;
    case OP_SLICE:
    case OP_PAD:
        return block_copy(e, n, a, y[0], z[0], out);
    case OP_KRON:   /* entry (i*b.r + k, j*b.c + l) = A[i, j] * B[k, l] */
        for (int64_t i = 0; i < a.r; i++)
            for (int64_t k = 0; k < b.r; k++)
                for (int64_t j = 0; j < a.c; j++)
                    for (int64_t l = 0; l < b.c; l++)
                        out[((i * b.r + k) * a.c + j) * b.c + l] = x[i * a.c + j] * y[k * b.c + l];
        break;
    case OP_FLATTEN: memcpy(out, x, sizeof(double) * (size_t)(a.r * a.c)); break;   /* row-major already */
    default:
        diag_plain("internal error: the evaluator has no rule for %s", info->name);
        e->status = e->status ? e->status : -1;
        return false;
    }
    return e->status == 0;
}

/* Needs no computing now: an input, a slot or a fresh cache entry. */
static bool ready(const Eval *e, const Node *n)
{
    return n->op == OP_INPUT || n->op == OP_SLOT || entry_fresh(e, n, &e->cache[n->id]);
}

/* Recomputes the cache entry of n, whose operands are ready. */
static bool fill_entry(Eval *e, const Node *n)
{
    Entry *c = &e->cache[n->id];
    int64_t size = size_of(e, n->shape);
    if (size < 0)
        return false;
    if (n->op == OP_LU)   /* the factors, then room for the pivots */
        size += rows_of(e, n->shape);
    if (!c->data && !(c->data = alloc_doubles(e, size)))
        return false;
    memset(c->data, 0, sizeof(double) * (size_t)size);
    if (!compute(e, n, c->data, size))
        return false;
    c->stamp = e->clock;
    c->valid = true;
    return true;
}

static bool push_node(Eval *e, const Node *n)
{
    if (e->depth == e->depth_cap) {
        size_t cap = e->depth_cap ? 2 * e->depth_cap : 256;
        const Node **p = realloc(e->stack, cap * sizeof *p);
        if (!p) {
            e->status = e->status ? e->status : GRADC_ENOMEM;
            return false;
        }
        e->stack = p;
        e->depth_cap = cap;
    }
    e->stack[e->depth++] = n;
    return true;
}

/* The current value of n, computing what is stale below it with an explicit
 * stack (a chain of statements makes the DAG as deep as the program): a
 * node is computed once its operands are ready, operands in order, as a
 * recursive evaluation would.  NULL (and e->status) on failure. */
static const double *eval_node(Eval *e, const Node *n)
{
    if (n->op == OP_INPUT)
        return e->b->inputs[n->index];
    if (n->op == OP_SLOT)
        return e->slot[n->index];
    if (entry_fresh(e, n, &e->cache[n->id]))
        return e->cache[n->id].data;
    size_t base = e->depth;
    bool ok = push_node(e, n);
    while (ok && e->depth > base) {
        const Node *x = e->stack[e->depth - 1];
        if (ready(e, x)) {
            e->depth--;
            continue;
        }
        int i = 0;
        while (i < x->nargs && ready(e, x->args[i]))
            i++;
        if (i < x->nargs) {
            ok = push_node(e, x->args[i]);
            continue;
        }
        e->depth--;
        ok = fill_entry(e, x);
    }
    e->depth = base;
    return ok ? e->cache[n->id].data : NULL;
}

static bool eval_scalar(Eval *e, const Node *n, double *v)
{
    const double *p = eval_node(e, n);
    if (p)
        *v = p[0];
    return p != NULL;
}

/* slots[i] = vals[i] for all i, in parallel: every value is evaluated and
 * copied aside before the first write. */
static bool assign(Eval *e, int n, const int *slots, Node *const *vals)
{
    double **tmp = calloc(n ? (size_t)n : 1, sizeof *tmp);
    bool ok = tmp != NULL;
    for (int i = 0; ok && i < n; i++) {
        int64_t size = size_of(e, vals[i]->shape);
        const double *v = size < 0 ? NULL : eval_node(e, vals[i]);
        ok = v && (tmp[i] = alloc_doubles(e, size));
        if (ok && size)
            memcpy(tmp[i], v, sizeof(double) * (size_t)size);
    }
    for (int i = 0; ok && i < n; i++)
        write_slot(e, slots[i], tmp[i]);
    for (int i = 0; tmp && i < n; i++)
        free(tmp[i]);
    free(tmp);
    if (!tmp && !e->status)
        e->status = GRADC_ENOMEM;
    return ok;
}

/* ---- the tape ---- */

static bool tape_push(Eval *e, const double *v, int64_t n)
{
    if (e->top + (size_t)n > e->cap) {
        size_t cap = e->cap ? e->cap : 256;
        while (cap < e->top + (size_t)n)
            cap *= 2;
        double *t = realloc(e->tape, cap * sizeof *t);
        if (!t) {
            e->status = e->status ? e->status : GRADC_ENOMEM;
            return false;
        }
        e->tape = t;
        e->cap = cap;
    }
    if (n)
        memcpy(e->tape + e->top, v, sizeof(double) * (size_t)n);
    e->top += (size_t)n;
    return true;
}

static bool tape_pop(Eval *e, int slot)
{
    int64_t n = size_of(e, e->m->ir->slots.data[slot].shape);
    if (n < 0)
        return false;
    if ((size_t)n > e->top) {
        diag_plain("internal error: the tape is empty at a POP");
        e->status = e->status ? e->status : -1;
        return false;
    }
    e->top -= (size_t)n;
    write_slot(e, slot, e->tape + e->top);
    return true;
}

/* ---- statements ---- */

static bool run_block(Eval *e, const Block *blk);

static bool run_if(Eval *e, const Stmt *s)
{
    double c;
    if (!eval_scalar(e, s->cond, &c))
        return false;
    if (c != 0)
        return run_block(e, s->then_block) && assign(e, s->n, s->slots, s->then_vals);
    return run_block(e, s->else_block) && assign(e, s->n, s->slots, s->else_vals);
}

static bool run_while(Eval *e, const Stmt *s)
{
    if (!assign(e, s->n, s->slots, s->vals))
        return false;
    int64_t iter = 0;
    for (;;) {
        double c;
        if (!eval_scalar(e, s->cond, &c))
            return false;
        if (c == 0)
            break;
        if (iter == e->max_iter) {
            e->status = GRADC_EMAXITER;
            e->where = s->loc;
            return false;
        }
        if (!run_block(e, s->body) || !assign(e, s->n, s->slots, s->next))
            return false;
        iter++;
    }
    if (s->count_slot >= 0)
        write_slot_scalar(e, s->count_slot, (double)iter);
    return true;
}

/* The count is evaluated before the slots are initialised. */
static bool run_for(Eval *e, const Stmt *s)
{
    double c;
    if (!eval_scalar(e, s->count, &c) || !assign(e, s->n, s->slots, s->vals))
        return false;
    c = floor(c);
    int64_t count = !(c >= 1) ? 0 : c > 9e18 ? INT64_MAX : (int64_t)c;
    for (int64_t k = 1; k <= count; k++) {
        if (s->index_slot >= 0)
            write_slot_scalar(e, s->index_slot, (double)(s->reverse ? count + 1 - k : k));
        if (!run_block(e, s->body) || !assign(e, s->n, s->slots, s->next))
            return false;
    }
    return true;
}

static bool run_push(Eval *e, const Stmt *s)
{
    for (int i = 0; i < s->n; i++) {
        int64_t size = size_of(e, s->vals[i]->shape);
        const double *v = size < 0 ? NULL : eval_node(e, s->vals[i]);
        if (!v || !tape_push(e, v, size))
            return false;
    }
    return true;
}

static bool run_pop(Eval *e, const Stmt *s)
{
    for (int i = s->n - 1; i >= 0; i--)
        if (!tape_pop(e, s->slots[i]))
            return false;
    return true;
}

static bool run_stmt(Eval *e, const Stmt *s)
{
    switch (s->kind) {
    case S_SET: return assign(e, s->n, s->slots, s->vals);
    case S_IF: return run_if(e, s);
    case S_WHILE: return run_while(e, s);
    case S_FOR: return run_for(e, s);
    case S_PUSH: return run_push(e, s);
    case S_POP: return run_pop(e, s);
    }
    return false;
}

static bool run_block(Eval *e, const Block *blk)
{
    for (int i = 0; blk && i < blk->n; i++)
        if (!run_stmt(e, blk->stmts[i]))
            return false;
    return true;
}

/* ---- the function ---- */

/* Evaluates n into out (may be NULL: skipped). */
static bool result(Eval *e, const Node *n, double *out)
{
    if (!out)
        return true;
    int64_t size = size_of(e, n->shape);
    const double *v = size < 0 ? NULL : eval_node(e, n);
    if (v && size)
        memcpy(out, v, sizeof(double) * (size_t)size);
    return v != NULL;
}

static bool setup(Eval *e)
{
    const Module *m = e->m;
    for (int i = 0; i < m->ndims; i++)
        if (e->b->dims[i] < 0)
            return e->status = GRADC_EDIM, false;
    e->nslots = m->ir->slots.len;
    e->nnodes = m->ir->nnodes;
    e->slot = calloc((size_t)e->nslots + 1, sizeof *e->slot);
    e->written = calloc((size_t)e->nslots + 1, sizeof *e->written);
    e->cache = calloc((size_t)e->nnodes + 1, sizeof *e->cache);
    if (!e->slot || !e->written || !e->cache)
        return e->status = GRADC_ENOMEM, false;
    for (int i = 0; i < e->nslots; i++) {
        int64_t size = size_of(e, m->ir->slots.data[i].shape);
        if (size < 0 || !(e->slot[i] = alloc_doubles(e, size)))
            return false;
    }
    return true;
}

static void teardown(Eval *e)
{
    for (int i = 0; e->slot && i < e->nslots; i++)
        free(e->slot[i]);
    for (int i = 0; e->cache && i < e->nnodes; i++)
        free(e->cache[i].data);
    free(e->slot);
    free(e->written);
    free(e->cache);
    free(e->tape);
    free(e->stack);
}

static int run_func(const Module *m, const Func *f, const Bindings *b, double *value,
                    double **grads, Loc *where, DetachRecord *det)
{
    Eval e = {.m = m, .b = b, .max_iter = b->max_iter > 0 ? b->max_iter : GRADC_DEFAULT_MAX_ITER,
              .det = det};
    if (setup(&e) && run_block(&e, f->body) && result(&e, f->value, value)) {
        for (int k = 0; f->grads && grads && k < m->nwrt; k++)
            if (!result(&e, f->grads[k], grads[k]))
                break;
        for (int k = 0; f->aux && b->aux && k < m->naux && !e.status; k++)
            if (b->aux[k] && !result(&e, f->aux[k], b->aux[k]))
                break;
    }
    teardown(&e);
    if ((e.status == GRADC_EMAXITER || e.status == GRADC_EINDEX) && where)
        *where = e.where;
    return e.status;
}

int eval_func(const Module *m, const Func *f, const Bindings *b,
              double *value, double **grads, Loc *where)
{
    return run_func(m, f, b, value, grads, where, NULL);
}

int eval_func_frozen(const Module *m, const Func *f, const Bindings *b,
                     double *value, Loc *where, DetachRecord *rec)
{
    return eval_grads_frozen(m, f, b, value, NULL, where, rec);
}

int eval_grads_frozen(const Module *m, const Func *f, const Bindings *b,
                      double *value, double **grads, Loc *where, DetachRecord *rec)
{
    if (rec->replay)
        rec->pos = 0;
    else
        rec->len = 0;
    return run_func(m, f, b, value, grads, where, rec);
}
