/* codegen_along.c — reductions and normalisations along a dimension
 * (sum, amax, amin, logsumexp, softmax, log_softmax of X along d, spec §8)
 * and amax/amin over all entries, as LLVM IR.
 *
 * Along d = 2, X is read one row at a time: one pass over the row for
 * amax/amin, two for logsumexp (its max, then the shifted sum), three for
 * softmax (max, the exponentials stored with their sum, the division) and
 * log_softmax.  Along d = 1 the same passes run over X in row order, each
 * column's running max and sum in a row of scratch (plan.c), so X is never
 * read down a column.  Every sum runs in the order eval.c's does (down a
 * column, along a row), so both executors agree bit for bit.
 * sum(X, d) instead reads X's fused expression in row order: for d = 1
 * every row is added into the result row, for d = 2 each row is summed
 * with the partial sums of codegen.c's reduce_sum. */
#include "cg.h"

#include <math.h>

/* Entries base + t*stride, t < len, of p. */
typedef struct Line {
    LLVMValueRef p, base, stride, len;
} Line;

static LLVMValueRef line_at(Cg *c, const Line *l, LLVMValueRef t)
{
    return at(c, l->p, add(c, l->base, mul(c, t, l->stride)));
}

static LLVMValueRef line_load(Cg *c, const Line *l, LLVMValueRef t)
{
    return LLVMBuildLoad2(c->b, c->f64, line_at(c, l, t), "");
}

static LLVMValueRef var(Cg *c, double init)
{
    LLVMValueRef v = alloca_(c, c->f64);
    LLVMBuildStore(c->b, cf(c, init), v);
    return v;
}

static LLVMValueRef get_var(Cg *c, LLVMValueRef v) { return LLVMBuildLoad2(c->b, c->f64, v, ""); }

/* The largest (max) or smallest entry: NaN from the first NaN on, ∓inf
 * when the line is empty (eval.c's extreme_of). */
static LLVMValueRef line_extreme(Cg *c, const Line *l, bool max)
{
    LLVMValueRef m = var(c, max ? -INFINITY : INFINITY);
    Loop lp;
    LLVMValueRef t = loop_begin(c, &lp, ci(c, 0), l->len);
    LLVMValueRef x = line_load(c, l, t), cur = get_var(c, m);
    LLVMValueRef better = fcmp(c, max ? LLVMRealOGT : LLVMRealOLT, x, cur);
    LLVMValueRef take = LLVMBuildOr(c->b, better, fcmp(c, LLVMRealUNO, x, x), "");
    LLVMBuildStore(c->b, sel(c, take, x, cur), m);
    loop_end(c, &lp);
    return get_var(c, m);
}

/* max + log(sum exp(x - max)): no overflow; a max of ±inf (or NaN) is the
 * result itself (eval.c's logsumexp_of). */
static LLVMValueRef line_lse(Cg *c, const Line *l)
{
    LLVMValueRef m = line_extreme(c, l, true), s = var(c, 0);
    Loop lp;
    LLVMValueRef t = loop_begin(c, &lp, ci(c, 0), l->len);
    LLVMValueRef e = cg_exp(c->b, LLVMBuildFSub(c->b, line_load(c, l, t), m, ""));
    LLVMBuildStore(c->b, fplus(c, get_var(c, s), e), s);
    loop_end(c, &lp);
    LLVMValueRef r = fplus(c, m, libm(c, "log", 1, get_var(c, s), NULL));
    LLVMValueRef inf = fcmp(c, LLVMRealOEQ, fabs_(c, m), cf(c, INFINITY));
    return sel(c, inf, m, r);
}

/* out = exp(x - max) / sum, as eval.c's op_softmax. */
static void line_softmax(Cg *c, const Line *in, const Line *out)
{
    LLVMValueRef m = line_extreme(c, in, true), s = var(c, 0);
    Loop lp;
    LLVMValueRef t = loop_begin(c, &lp, ci(c, 0), in->len);
    LLVMValueRef e = cg_exp(c->b, LLVMBuildFSub(c->b, line_load(c, in, t), m, ""));
    LLVMBuildStore(c->b, e, line_at(c, out, t));
    LLVMBuildStore(c->b, fplus(c, get_var(c, s), e), s);
    loop_end(c, &lp);
    LLVMValueRef sum = get_var(c, s);
    t = loop_begin(c, &lp, ci(c, 0), in->len);
    LLVMBuildStore(c->b, LLVMBuildFDiv(c->b, line_load(c, out, t), sum, ""), line_at(c, out, t));
    loop_end(c, &lp);
}

/* out = x - logsumexp(x) */
static void line_log_softmax(Cg *c, const Line *in, const Line *out)
{
    LLVMValueRef lse = line_lse(c, in);
    Loop lp;
    LLVMValueRef t = loop_begin(c, &lp, ci(c, 0), in->len);
    LLVMBuildStore(c->b, LLVMBuildFSub(c->b, line_load(c, in, t), lse, ""), line_at(c, out, t));
    loop_end(c, &lp);
}

static void gen_sumd(Cg *c, Node *n, LLVMValueRef out)
{
    Node *x = n->args[0];
    LLVMValueRef ri = c->ri, cj = c->cj, R = rows(c, x), C = cols(c, x);
    Loop li, lj;
    if (n->index == 1) {   /* each row added into the result row: sums in row order, as eval.c */
        zero(c, out, C);
        c->ri = loop_begin(c, &li, ci(c, 0), R);
        c->cj = loop_begin(c, &lj, ci(c, 0), C);
        LLVMValueRef v = cg_elem(c, x, add(c, mul(c, c->ri, C), c->cj));
        store(c, fplus(c, load(c, out, c->cj), v), out, c->cj);
        loop_end(c, &lj);
        loop_end(c, &li);
    } else {
        LLVMValueRef i = loop_begin(c, &li, ci(c, 0), R);
        store(c, cg_row_sum(c, x, i, C), out, i);
        loop_end(c, &li);
    }
    c->ri = ri, c->cj = cj;
}

/* take x over cur: a larger (max) or smaller entry, or a NaN, which then stays */
static LLVMValueRef take(Cg *c, LLVMValueRef x, LLVMValueRef cur, bool max)
{
    LLVMValueRef better = fcmp(c, max ? LLVMRealOGT : LLVMRealOLT, x, cur);
    return sel(c, LLVMBuildOr(c->b, better, fcmp(c, LLVMRealUNO, x, x), ""), x, cur);
}

/* A loop over the entries of an R×C matrix in row order; *k the entry,
 * *j the column; close with two loop_end (j, then i). */
static void rows_begin(Cg *c, Loop *li, Loop *lj, LLVMValueRef R, LLVMValueRef C, LLVMValueRef *k,
                       LLVMValueRef *j)
{
    LLVMValueRef i = loop_begin(c, li, ci(c, 0), R);
    *j = loop_begin(c, lj, ci(c, 0), C);
    *k = add(c, mul(c, i, C), *j);
}

/* Along d = 1 in row order: mx (out itself for amax/amin) gets each
 * column's extreme, s (the second row of scratch) its sum of exp(x - mx). */
static void gen_down(Cg *c, Node *n, LLVMValueRef out)
{
    Node *x = n->args[0];
    LLVMValueRef R = rows(c, x), C = cols(c, x), p = cg_argbuf(c, x), k, j;
    bool ext = n->op == OP_AMAXD || n->op == OP_AMIND, max = n->op != OP_AMIND;
    LLVMValueRef mx = ext ? out : bufp(c, c->p->scratch[n->id]), s = at(c, mx, C);
    Loop li, lj;
    j = loop_begin(c, &lj, ci(c, 0), C);
    store(c, cf(c, max ? -INFINITY : INFINITY), mx, j);
    if (!ext)
        store(c, cf(c, 0), s, j);
    loop_end(c, &lj);
    rows_begin(c, &li, &lj, R, C, &k, &j);
    store(c, take(c, load(c, p, k), load(c, mx, j), max), mx, j);
    loop_end(c, &lj);
    loop_end(c, &li);
    if (ext)
        return;
    rows_begin(c, &li, &lj, R, C, &k, &j);
    LLVMValueRef e = cg_exp(c->b, LLVMBuildFSub(c->b, load(c, p, k), load(c, mx, j), ""));
    if (n->op == OP_SOFTMAXD)
        store(c, e, out, k);
    store(c, fplus(c, load(c, s, j), e), s, j);
    loop_end(c, &lj);
    loop_end(c, &li);
    if (n->op != OP_SOFTMAXD) {   /* logsumexp of each column, into out or s */
        j = loop_begin(c, &lj, ci(c, 0), C);
        LLVMValueRef m = load(c, mx, j), r = fplus(c, m, libm(c, "log", 1, load(c, s, j), NULL));
        LLVMValueRef inf = fcmp(c, LLVMRealOEQ, fabs_(c, m), cf(c, INFINITY));
        store(c, sel(c, inf, m, r), n->op == OP_LSED ? out : s, j);
        loop_end(c, &lj);
        if (n->op == OP_LSED)
            return;
    }
    rows_begin(c, &li, &lj, R, C, &k, &j);   /* softmax: divide; log_softmax: x - lse */
    store(c, n->op == OP_SOFTMAXD ? LLVMBuildFDiv(c->b, load(c, out, k), load(c, s, j), "")
                                  : LLVMBuildFSub(c->b, load(c, p, k), load(c, s, j), ""), out, k);
    loop_end(c, &lj);
    loop_end(c, &li);
}

void gen_along(Cg *c, Node *n, LLVMValueRef out)
{
    if (n->op == OP_SUMD) {
        gen_sumd(c, n, out);
        return;
    }
    if (n->index == 1) {
        gen_down(c, n, out);
        return;
    }
    Node *x = n->args[0];
    bool down = n->index == 1;   /* the lines are columns */
    LLVMValueRef R = rows(c, x), C = cols(c, x), one = ci(c, 1);
    LLVMValueRef p = cg_argbuf(c, x);
    Loop lk;
    LLVMValueRef k = loop_begin(c, &lk, ci(c, 0), down ? C : R);
    LLVMValueRef base = down ? k : mul(c, k, C);
    Line in = {p, base, down ? C : one, down ? R : C}, o = {out, base, in.stride, in.len};
    switch (n->op) {
    case OP_AMAXD: store(c, line_extreme(c, &in, true), out, k); break;
    case OP_AMIND: store(c, line_extreme(c, &in, false), out, k); break;
    case OP_LSED: store(c, line_lse(c, &in), out, k); break;
    case OP_SOFTMAXD: line_softmax(c, &in, &o); break;
    case OP_LOGSOFTMAXD: line_log_softmax(c, &in, &o); break;
    default: internal(c, "not an op along a dimension"); break;
    }
    loop_end(c, &lk);
}

LLVMValueRef gen_extreme(Cg *c, Node *n)
{
    Node *x = n->args[0];
    Line all = {cg_argbuf(c, x), ci(c, 0), ci(c, 1), count(c, x)};
    return line_extreme(c, &all, n->op == OP_AMAX);
}
