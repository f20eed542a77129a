/* codegen.c — a Func (forward or gradient) as an LLVM function with the ABI
 * of spec §7, through the LLVM-C API.
 *
 * Values.  A 1×1 node is an SSA double.  Any other node is either
 * materialised in a buffer (row-major, in the caller's `work`) or, when it is
 * elementwise and has exactly one consumer that reads it elementwise, fused:
 * its entries are computed inline inside the consumer's loop (elem), so an
 * elementwise chain is one loop and no buffer.  A value is cached per node
 * while it is valid: computing in a branch or loop body opens a scope whose
 * values are dropped at its end (they do not dominate what follows), and
 * writing a slot drops every cached value that reads it (node->slots).  A
 * materialised node has one buffer wherever it is computed: a valid cache
 * entry means nothing has overwritten it since.
 *
 * Memory.  Every buffer (non-scalar slots, materialised nodes, LAPACK
 * scratch, SET shadows) has a size that depends on the dimensions only, so
 * its offset in `work` is computed at entry (layout, shared with
 * NAME_work_size).  Scalar slots are allocas (promoted to registers).  Size
 * arithmetic is checked for overflow: GRADC_EDIM.  Recorded values (PUSH,
 * POP) go to a stack at the end of `work` when its peak depth is known from
 * the dimensions (every loop around a push or pop is a for with a literal or
 * dimension count: stack_sizable, stack_depth); otherwise to the runtime
 * tape, which grows with realloc and is freed at cleanup.
 *
 * Each function is generated as an internal `impl` with one signature
 * (dims, inputs, cotangent, out, grads, flags, work, where); the ABI
 * functions and the JIT's entries are thin wrappers around it (abi.c);
 * what is computed where comes from the plan (plan.c).  This file emits
 * values and kernels; cgsum.c the loop of a sum, cgoutline.c a kernel's
 * loop as a function of its own, codegen_stmt.c the plan's points,
 * statements and results. */
#include "cg.h"

#include <gradc/runtime.h>
#include <math.h>

#include <string.h>

void internal(Cg *c, const char *what)
{
    if (!c->failed)
        diag_plain("internal error in code generation: %s", what);
    c->failed = true;
}

/* ===================================================================== */
/* Elementwise operators                                                 */
/* ===================================================================== */

/* Each is the exact formula of ir.c's scalar function, so compiled code and
 * the interpreter agree bit for bit. */
static LLVMValueRef e_sigmoid(Cg *c, LLVMValueRef x)
{
    LLVMValueRef e = libm(c, "exp", 1, LLVMBuildFNeg(c->b, fabs_(c, x), ""), NULL);
    LLVMValueRef den = fplus(c, cf(c, 1), e);
    return sel(c, fcmp(c, LLVMRealOGE, x, cf(c, 0)), LLVMBuildFDiv(c->b, cf(c, 1), den, ""),
               LLVMBuildFDiv(c->b, e, den, ""));
}
static LLVMValueRef e_softplus(Cg *c, LLVMValueRef x)
{
    LLVMValueRef e = libm(c, "exp", 1, LLVMBuildFNeg(c->b, fabs_(c, x), ""), NULL);
    return fplus(c, sel(c, fcmp(c, LLVMRealOGT, x, cf(c, 0)), x, cf(c, 0)), libm(c, "log1p", 1, e, NULL));
}
static LLVMValueRef e_logsigmoid(Cg *c, LLVMValueRef x)
{
    LLVMValueRef e = libm(c, "exp", 1, LLVMBuildFNeg(c->b, fabs_(c, x), ""), NULL);
    return LLVMBuildFSub(c->b, sel(c, fcmp(c, LLVMRealOLT, x, cf(c, 0)), x, cf(c, 0)),
                         libm(c, "log1p", 1, e, NULL), "");
}
static LLVMValueRef e_relu(Cg *c, LLVMValueRef x) { return sel(c, fcmp(c, LLVMRealOGT, x, cf(c, 0)), x, cf(c, 0)); }
static LLVMValueRef e_sign(Cg *c, LLVMValueRef x)
{
    return sel(c, fcmp(c, LLVMRealOGT, x, cf(c, 0)), cf(c, 1),
               sel(c, fcmp(c, LLVMRealOLT, x, cf(c, 0)), cf(c, -1), cf(c, 0)));
}
static LLVMValueRef e_not(Cg *c, LLVMValueRef x) { return b2f(c, fcmp(c, LLVMRealOEQ, x, cf(c, 0))); }
static LLVMValueRef e_neg(Cg *c, LLVMValueRef x) { return LLVMBuildFNeg(c->b, x, ""); }
static LLVMValueRef e_id(Cg *c, LLVMValueRef x) { (void)c; return x; }
static LLVMValueRef e_sqrt(Cg *c, LLVMValueRef x) { return intrinsic(c, "llvm.sqrt", c->f64, 1, &x); }
static LLVMValueRef e_abs(Cg *c, LLVMValueRef x) { return fabs_(c, x); }
/* mathfn.c's sequences, inline and vectorisable (cgmath.c) */
static LLVMValueRef e_exp(Cg *c, LLVMValueRef x) { return cg_exp(c->b, x); }
static LLVMValueRef e_tanh(Cg *c, LLVMValueRef x) { return cg_tanh(c->b, x); }

static LLVMValueRef (*const emit1[OP_COUNT])(Cg *, LLVMValueRef) = {
    [OP_NEG] = e_neg, [OP_SQRT] = e_sqrt, [OP_ABS] = e_abs, [OP_SIGMOID] = e_sigmoid,
    [OP_RELU] = e_relu, [OP_SOFTPLUS] = e_softplus, [OP_SIGN] = e_sign, [OP_NOT] = e_not,
    [OP_DETACH] = e_id, [OP_LOGSIGMOID] = e_logsigmoid, [OP_EXP] = e_exp, [OP_TANH] = e_tanh,
};

static LLVMValueRef e_add(Cg *c, LLVMValueRef x, LLVMValueRef y) { return fplus(c, x, y); }
static LLVMValueRef e_sub(Cg *c, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFSub(c->b, x, y, ""); }
static LLVMValueRef e_mul(Cg *c, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFMul(c->b, x, y, ""); }
static LLVMValueRef e_div(Cg *c, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFDiv(c->b, x, y, ""); }
/* 0 where b == 0 (an adjoint of x/b that must not make NaN from 0/0) */
static LLVMValueRef e_divsafe(Cg *c, LLVMValueRef x, LLVMValueRef y)
{
    return sel(c, fcmp(c, LLVMRealOEQ, y, cf(c, 0)), cf(c, 0), LLVMBuildFDiv(c->b, x, y, ""));
}
/* An integer power with a literal exponent (x.^2 in every squared loss and
 * its gradient) is multiplications, by squaring; x.^2 is exactly pow(x, 2).
 * The interpreter rounds alike (ir.c pow_literal: keep the two in step). */
static LLVMValueRef e_pow(Cg *c, LLVMValueRef x, LLVMValueRef y)
{
    LLVMBool lossy = 0;
    double e = LLVMIsAConstantFP(y) ? LLVMConstRealGetDouble(y, &lossy) : 0.5;
    if (!pow_by_squaring(e))
        return libm(c, "pow", 2, x, y);
    int k = (int)(e < 0 ? -e : e);
    LLVMValueRef r = NULL, sq = x;
    for (; k; k >>= 1) {
        if (k & 1)
            r = r ? LLVMBuildFMul(c->b, r, sq, "") : sq;
        if (k > 1)
            sq = LLVMBuildFMul(c->b, sq, sq, "");
    }
    r = r ? r : cf(c, 1);
    return e < 0 ? LLVMBuildFDiv(c->b, cf(c, 1), r, "") : r;
}
static LLVMValueRef e_max(Cg *c, LLVMValueRef x, LLVMValueRef y) { return sel(c, fcmp(c, LLVMRealOGT, x, y), x, y); }
static LLVMValueRef e_min(Cg *c, LLVMValueRef x, LLVMValueRef y) { return sel(c, fcmp(c, LLVMRealOLT, x, y), x, y); }
static LLVMValueRef e_clamplo(Cg *c, LLVMValueRef x, LLVMValueRef y) { return sel(c, fcmp(c, LLVMRealOLT, x, y), y, x); }
static LLVMValueRef e_clamphi(Cg *c, LLVMValueRef x, LLVMValueRef y) { return sel(c, fcmp(c, LLVMRealOGT, x, y), y, x); }
static LLVMValueRef e_and(Cg *c, LLVMValueRef x, LLVMValueRef y)
{
    return b2f(c, LLVMBuildAnd(c->b, fcmp(c, LLVMRealUNE, x, cf(c, 0)), fcmp(c, LLVMRealUNE, y, cf(c, 0)), ""));
}
static LLVMValueRef e_or(Cg *c, LLVMValueRef x, LLVMValueRef y)
{
    return b2f(c, LLVMBuildOr(c->b, fcmp(c, LLVMRealUNE, x, cf(c, 0)), fcmp(c, LLVMRealUNE, y, cf(c, 0)), ""));
}
/* where's half: y where x != 0 (NaN too, as f_pick), else an exact 0 */
static LLVMValueRef e_pick(Cg *c, LLVMValueRef x, LLVMValueRef y)
{
    return sel(c, fcmp(c, LLVMRealUNE, x, cf(c, 0)), y, cf(c, 0));
}

static LLVMValueRef (*const emit2[OP_COUNT])(Cg *, LLVMValueRef, LLVMValueRef) = {
    [OP_ADD] = e_add, [OP_SUB] = e_sub, [OP_MUL] = e_mul, [OP_DIV] = e_div, [OP_DIVSAFE] = e_divsafe,
    [OP_POW] = e_pow, [OP_MAX] = e_max, [OP_MIN] = e_min, [OP_AND] = e_and, [OP_OR] = e_or,
    [OP_CLAMPLO] = e_clamplo, [OP_CLAMPHI] = e_clamphi, [OP_PICK] = e_pick,
};
const char *const rt_names[RT_COUNT] = {
#define RT_NAME(f) "gradc_" #f,
    GRADC_RUNTIME(RT_NAME)
#undef RT_NAME
};

/* comparisons give 1.0 or 0.0; != is true for NaN, as in C */
static const LLVMRealPredicate cmp_pred[OP_COUNT] = {
    [OP_LT] = LLVMRealOLT, [OP_LE] = LLVMRealOLE, [OP_GT] = LLVMRealOGT,
    [OP_GE] = LLVMRealOGE, [OP_EQ] = LLVMRealOEQ, [OP_NE] = LLVMRealUNE,
};

static LLVMValueRef apply1(Cg *c, Op op, LLVMValueRef x)
{
    if (emit1[op])
        return emit1[op](c, x);
    if (op_info[op].libm)   /* GRADC_OPS's libm column: the function ir.c calls */
        return libm(c, op_info[op].libm, 1, x, NULL);
    internal(c, arena_printf(c->a, "no code for unary operator %s", op_info[op].name));
    return cf(c, 0);
}

static LLVMValueRef apply2(Cg *c, Op op, LLVMValueRef x, LLVMValueRef y)
{
    if (emit2[op])
        return emit2[op](c, x, y);
    if (op_info[op].libm)
        return libm(c, op_info[op].libm, 2, x, y);
    if (cmp_pred[op])
        return b2f(c, fcmp(c, cmp_pred[op], x, y));
    internal(c, arena_printf(c->a, "no code for binary operator %s", op_info[op].name));
    return cf(c, 0);
}

/* ===================================================================== */
/* Nodes                                                                 */
/* ===================================================================== */

static LLVMValueRef get(Cg *c, Node *n);

static LLVMValueRef elem(Cg *c, Node *n, LLVMValueRef k);
static LLVMValueRef outline(Cg *c, Node *n, LLVMValueRef out, int slot);
static LLVMValueRef outline_logsumexp(Cg *c, Node *n);

/* The entry of a broadcast's argument under entry k of the broadcast: its
 * column j for a row expanded down, its row i for a column expanded across.
 * A loop that reads broadcasts runs over rows and columns (c->ri, c->cj);
 * a flat one (an assignment's copy) derives them from k. */
static LLVMValueRef bcast_index(Cg *c, Node *n, LLVMValueRef k)
{
    bool row = bcast_dims(n) == 1;
    if (c->ri)
        return row ? c->cj : c->ri;
    LLVMValueRef m = cols(c, n);
    return row ? LLVMBuildSRem(c->b, k, m, "") : LLVMBuildSDiv(c->b, k, m, "");
}

/* Entry k = (i, j) of a transpose read in place (plan.c: read_transposed):
 * entry (j, i) of its argument, (i, j) the loop's own when k is its index. */
static LLVMValueRef transposed_elem(Cg *c, Node *n, LLVMValueRef k)
{
    LLVMValueRef i, j, m = cols(c, n);
    if (c->ri && k == c->rck) {
        i = c->ri, j = c->cj;
    } else {
        i = LLVMBuildSDiv(c->b, k, m, "");
        j = LLVMBuildSRem(c->b, k, m, "");
    }
    return load(c, get(c, n->args[0]), add(c, mul(c, j, rows(c, n)), i));
}

/* Entry k of an elementwise node from its arguments' entries (a 1×1
 * argument broadcasts). */
static LLVMValueRef elem_op(Cg *c, Node *n, LLVMValueRef k)
{
    if (n->op == OP_FILL)
        return cf(c, n->num);
    if (n->op == OP_TRANSPOSE)
        return transposed_elem(c, n, k);
    if (n->op == OP_EYE) {   /* read through: entry k = i*n + j is on the diagonal when k % (n+1) = 0 */
        LLVMValueRef on = c->ri && k == c->rck
                        ? LLVMBuildICmp(c->b, LLVMIntEQ, c->ri, c->cj, "")
                        : LLVMBuildICmp(c->b, LLVMIntEQ, LLVMBuildSRem(c->b, k, add(c, rows(c, n), ci(c, 1)), ""),
                                        ci(c, 0), "");
        return b2f(c, on);
    }
    if (n->op == OP_BCAST)
        return elem(c, n->args[0], bcast_index(c, n, k));
    if (n->op == OP_PAD)
        return cg_pad_elem(c, n, k);
    if (kind_of(n) == OK_U)
        return apply1(c, n->op, elem(c, n->args[0], k));
    return apply2(c, n->op, elem(c, n->args[0], k), elem(c, n->args[1], k));
}

static LLVMValueRef elem(Cg *c, Node *n, LLVMValueRef k)
{
    if (is_fused(c->p, n) && c->p->shared && c->p->shared[n->id]) {
        /* read more than once in this loop: made once per entry, in the
         * block that reads it (what it dominates) */
        SharedEntry *e = &c->shared[n->id];
        if (e->at != LLVMGetInsertBlock(c->b) || e->k != k) {
            e->v = elem_op(c, n, k);
            e->at = LLVMGetInsertBlock(c->b);
            e->k = k;
        }
        return e->v;
    }
    if (is_fused(c->p, n))
        return elem_op(c, n, k);
    LLVMValueRef v = get(c, n);
    return one_value(c->p, n) ? v : load(c, v, k);
}

LLVMValueRef cg_elem(Cg *c, Node *n, LLVMValueRef k) { return elem(c, n, k); }
LLVMValueRef cg_elem_op(Cg *c, Node *n, LLVMValueRef k) { return elem_op(c, n, k); }

/* Does n's fused expression read a broadcast or a transpose in place?
 * Then its loop runs over rows and columns.  (A transpose read in tiles
 * was measured slower at n = 1000: the columns a row of A + A' reads stay
 * in L2 from one row to the next, and short tile loops cost more than
 * they save.)  Recursion is bounded by the fusion depth. */
bool cg_reads_bcast(Cg *c, Node *n, bool top)
{
    if (!top && !is_fused(c->p, n))
        return false;
    if (n->op == OP_BCAST || n->op == OP_TRANSPOSE)
        return true;
    for (int i = 0; i < n->nargs; i++)
        if (cg_reads_bcast(c, n->args[i], false))
            return true;
    return false;
}

/* A pointer to n's entries: a 1×1 value is stored to a stack slot. */
static LLVMValueRef argbuf(Cg *c, Node *n)
{
    LLVMValueRef v = get(c, n);
    if (!is_scalar(n))
        return v;
    LLVMValueRef p = alloca_(c, c->f64);
    LLVMBuildStore(c->b, v, p);
    return p;
}

LLVMValueRef cg_argbuf(Cg *c, Node *n) { return argbuf(c, n); }

/* max over k of p[k]: NaN when an entry is NaN, -inf when empty */
static LLVMValueRef reduce_max(Cg *c, LLVMValueRef p, LLVMValueRef n)
{
    LLVMValueRef m = alloca_(c, c->f64);
    LLVMBuildStore(c->b, cf(c, -INFINITY), m);
    Loop lp;
    LLVMValueRef k = loop_begin(c, &lp, ci(c, 0), n);
    LLVMValueRef x = load(c, p, k);
    LLVMBuildStore(c->b, sel(c, fcmp(c, LLVMRealUNO, x, x), x, e_max(c, x, LLVMBuildLoad2(c->b, c->f64, m, ""))), m);
    loop_end(c, &lp);
    return LLVMBuildLoad2(c->b, c->f64, m, "");
}

/* p[k] * q[k] */
static LLVMValueRef f_dot(Cg *c, void *t, LLVMValueRef k)
{
    Two *w = t;
    return LLVMBuildFMul(c->b, load(c, w->p, k), load(c, w->q, k), "");
}
/* exp(p[k] - shift) */
static LLVMValueRef f_expshift(Cg *c, void *t, LLVMValueRef k)
{
    Two *w = t;
    return cg_exp(c->b, LLVMBuildFSub(c->b, load(c, w->p, k), w->shift, ""));
}

/* the runtime's one-pass norm (rescaled only on overflow or underflow) */
static LLVMValueRef gen_norm(Cg *c, Node *n)
{
    Node *x = n->args[0];
    LLVMTypeRef pt[2] = {c->i64, c->ptr};
    LLVMValueRef args[2] = {count(c, x), argbuf(c, x)};
    return callrt(c, RT_norm, c->f64, pt, 2, args);
}

static LLVMValueRef gen_logsumexp(Cg *c, Node *n)
{
    Node *x = n->args[0];
    LLVMValueRef p = argbuf(c, x), len = count(c, x);
    LLVMValueRef m = reduce_max(c, p, len);
    Two w = {c, p, NULL, NULL, m};
    LLVMValueRef s = cg_reduce_sum(c, len, f_expshift, &w);
    LLVMValueRef r = fplus(c, m, libm(c, "log", 1, s, NULL));
    /* all -inf (or empty): -inf; a +inf entry: +inf — not inf - inf = NaN */
    LLVMValueRef inf = fcmp(c, LLVMRealOEQ, e_abs(c, m), cf(c, INFINITY));
    return sel(c, inf, m, r);
}

/* M ops whose result is 1×1 and computed as a value. */
static LLVMValueRef gen_reduction(Cg *c, Node *n)
{
    Node *x = n->args[0];
    switch (n->op) {
    case OP_SUM:
        return outline(c, n, NULL, -1);
    case OP_NORM:
        return gen_norm(c, n);
    case OP_TRACE: {
        Two w = {c, argbuf(c, x), NULL, add(c, rows(c, x), ci(c, 1)), NULL};
        return cg_reduce_sum(c, rows(c, x), f_strided, &w);
    }
    case OP_LOGSUMEXP:
        return outline_logsumexp(c, n);
    case OP_AMAX:
    case OP_AMIN:
        return gen_extreme(c, n);
    case OP_MATMUL: {
        Two w = {c, argbuf(c, x), argbuf(c, n->args[1]), NULL, NULL};
        return cg_reduce_sum(c, cols(c, x), f_dot, &w);
    }
    case OP_DET:
    case OP_LOGDET: {
        LLVMTypeRef pt[3] = {c->i64, c->ptr, c->ptr};
        LLVMValueRef args[3] = {rows(c, x), argbuf(c, x), bufp(c, c->p->scratch[n->id])};
        return callrt(c, n->op == OP_DET ? RT_det : RT_logdet, c->f64, pt, 3, args);
    }
    default:
        return NULL;
    }
}

static bool lit_small(Dim d) { return d.sym == -1 && d.n <= 8; }

/* The sum of row i of x's entries (a fused expression that reads broadcasts:
 * the loop's row and column are c->ri and c->cj). */
typedef struct RowSum {
    Node *x;
    LLVMValueRef i, cols;
} RowSum;

static LLVMValueRef f_row(Cg *c, void *ctx, LLVMValueRef j)
{
    RowSum *r = ctx;
    c->ri = r->i, c->cj = j;
    return elem(c, r->x, c->rck = add(c, mul(c, r->i, r->cols), j));
}

LLVMValueRef cg_row_sum(Cg *c, Node *x, LLVMValueRef i, LLVMValueRef cols)
{
    RowSum r = {x, i, cols};
    LLVMValueRef rck = c->rck, s = cg_reduce_sum(c, cols, f_row, &r);
    c->rck = rck;
    return s;
}

/* The loop itself: n's entries into out, or (out NULL) the sum of n's
 * argument's entries; over rows and columns when rc (it reads broadcasts),
 * a sum then row by row. */
static LLVMValueRef loop_body(Cg *c, Node *n, LLVMValueRef out, bool rc)
{
    Loop2 l;
    if (out) {
        LLVMValueRef k = loop2_begin(c, &l, n->shape, rc);
        store(c, elem_op(c, n, k), out, k);
        loop2_end(c, &l);
        return NULL;
    }
    Node *x = n->args[0];
    if (!rc)
        return cg_reduce_sum(c, count(c, x), f_elem, x);
    LLVMValueRef ri = c->ri, cj = c->cj, t = alloca_(c, c->f64);
    LLVMBuildStore(c->b, cf(c, 0), t);
    Loop li;
    LLVMValueRef i = loop_begin(c, &li, ci(c, 0), rows(c, x));
    LLVMValueRef s = cg_row_sum(c, x, i, cols(c, x));
    LLVMBuildStore(c->b, fplus(c, LLVMBuildLoad2(c->b, c->f64, t, ""), s), t);
    loop_end(c, &li);
    c->ri = ri, c->cj = cj;
    return LLVMBuildLoad2(c->b, c->f64, t, "");
}

/* The loop of a map (n's entries into out) or of a sum (out NULL: n is the
 * SUM, its value returned).  Each is its own internal function, called
 * from the statement, whose parameters are the dimensions and the values
 * the fused expression reads: LLVM then optimises many small functions,
 * in time linear in the program, instead of one function with a loop nest
 * per statement (super-linear).  Literal small sizes stay inline, where
 * they are specialised. */
typedef struct LoopCtx {
    Node *n;
    bool rc;      /* loop_fn: over rows and columns */
} LoopCtx;

static LLVMValueRef loop_fn(Cg *c, void *ctx, LLVMValueRef out)
{
    LoopCtx *l = ctx;
    return loop_body(c, l->n, out, l->rc);
}

/* Whether leaf y is a slot in slot s's buffer: s itself, or one whose
 * buffer s took over (c = 100 .* b, c in b's buffer).  Read through the
 * output pointer, not a parameter of its own, so that LLVM sees one array:
 * two pointers to the same buffer fail the vectoriser's overlap check,
 * and the loop ran scalar (the D2L sample at 1e6: 1.9x the hand loop). */
bool cg_reads_slot_buffer(Cg *c, const Node *y, int s)
{
    return y->op == OP_SLOT && (y->index == s || c->p->slotbuf[y->index] == c->p->slotbuf[s]);
}

/* slot: out is that slot's buffer, which n reads at entry k at most (a
 * statement's store), else -1 */
static LLVMValueRef outline(Cg *c, Node *n, LLVMValueRef out, int slot)
{
    Node *x = out ? n : n->args[0];
    Shape sh = x->shape;
    bool rc = cg_reads_bcast(c, x, out != NULL);
    if (lit_small(sh.rows) && lit_small(sh.cols))
        return loop_body(c, n, out, rc);
    /* the non-fused values the loop reads, and the loop's structure */
    NodeVec leaves = {0};
    uint64_t key = cg_key_node(c, cg_key_shape(0, sh), n, &leaves, true);
    /* in place (plan: inplace): the argument's entries are read from out
     * itself, so that LLVM sees one array (a load and a store of entry k)
     * and vectorises without a run-time overlap check, which would fail */
    int self = -1;
    for (int i = 0; out && i < leaves.len; i++) {
        Node *y = leaves.data[i];
        if (slot >= 0 ? cg_reads_slot_buffer(c, y, slot) : y->id == c->p->inplace[n->id])
            self = i;
    }
    key = cg_key_bytes(key, &self, sizeof self);
    LoopCtx l = {n, rc};
    return cg_outlined(c, out ? "map" : "sum", key, &leaves, self, out ? NULL : c->f64, out, NULL, loop_fn, &l);
}

/* A store of x's entries into slot's buffer out, where x reads that slot
 * at entry k at most, as a map's loop (-O1 and up): one function with any
 * map of the same structure, so the value function's loop of a forward
 * statement is the gradient's (rnn's s = tanh(...)); at -O0, where no
 * function is shared (eval compiles the gradient alone), inline. */
void cg_store_map(Cg *c, Node *x, LLVMValueRef out, int slot)
{
    if (c->opt_level < 1)
        cg_store_all(c, x, out, NULL);
    else
        outline(c, x, out, slot);
}

static LLVMValueRef put_fn(Cg *c, void *ctx, LLVMValueRef out)
{
    LoopCtx *l = ctx;
    cg_store_all(c, l->n, out, c->flag);
    return NULL;
}

/* An output's entries (a result, a gradient, a product's addend):
 * dst[k] = x[k], or dst[k] += x[k] when acc.  A buffer's copy is the
 * runtime's (a memmove, or BLAS's daxpy); from -O1 any other store is a
 * function of its own per structure, as a map's loop is, taking the flag:
 * one loop for both (the results' stores were once per flag value, twice
 * the code to compile).  Inline, each was a vectorised loop (a body, a
 * remainder, an overlap check): layer_norm's gradient kept five of them.
 * Small literal sizes stay an inline loop, which LLVM specialises and
 * unrolls (x'*A*x at n = 4), one per value of a run-time flag: short, and
 * the overwriting one loads nothing (one for both took x'*A*x's 5.0 ns a
 * call to 5.3). */
void cg_store_out(Cg *c, Node *x, LLVMValueRef dst, LLVMValueRef acc)
{
    if (lit_small(x->shape.rows) && lit_small(x->shape.cols)) {
        if (!acc || LLVMIsAConstantInt(acc)) {
            cg_store_all(c, x, dst, acc);
            return;
        }
        LLVMBasicBlockRef add_bb = block(c, "add"), put_bb = block(c, "put"), done = block(c, "stored");
        LLVMBuildCondBr(c->b, acc, add_bb, put_bb);
        enter(c, add_bb);
        cg_store_all(c, x, dst, cbool(c, 1));
        LLVMBuildBr(c->b, done);
        enter(c, put_bb);
        cg_store_all(c, x, dst, NULL);
        LLVMBuildBr(c->b, done);
        enter(c, done);
        return;
    }
    if (!is_fused(c->p, x) && !one_value(c->p, x)) {
        store_entries(c, dst, get(c, x), count(c, x), acc);
        return;
    }
    if (c->opt_level < 1) {
        cg_store_all(c, x, dst, acc);
        return;
    }
    NodeVec leaves = {0};
    bool flag = acc != NULL;
    uint64_t key = cg_key_bytes(cg_key_shape(0, x->shape), &flag, sizeof flag);
    key = cg_key_node(c, key, x, &leaves, false);
    LoopCtx l = {x, false};
    cg_outlined(c, flag ? "acc" : "put", key, &leaves, CG_EXTRA_SHARED, NULL, dst, acc, put_fn, &l);
}

static LLVMValueRef along_fn(Cg *c, void *ctx, LLVMValueRef out)
{
    gen_along(c, ctx, out);
    return NULL;
}

/* A reduction or normalisation along a dimension as its own function per
 * structure, as a map's loop is: the value and the gradient functions
 * (log_softmax, the row sums of layer_norm) call one copy, and the impl
 * keeps no loop nest of it (samples/layer_norm.expr: 20 loops in its
 * gradient's impl; -O2 compile 449M -> 360M instructions).  Inline where
 * the sizes are small literals, where it needs the plan's scratch row
 * (along d = 1, codegen_along.c: gen_down), an address of the impl's
 * work, and at -O0, where a function of its own cost eval's JIT more
 * than the copy it saved (layer_norm: 8% more instructions). */
static void outline_along(Cg *c, Node *n, LLVMValueRef out)
{
    Node *x = n->args[0];
    if (c->p->scratch[n->id] >= 0 || c->opt_level < 1 || (lit_small(x->shape.rows) && lit_small(x->shape.cols))) {
        gen_along(c, n, out);
        return;
    }
    NodeVec leaves = {0};
    uint64_t key = cg_key_bytes(cg_key_shape(0, x->shape), &n->index, sizeof n->index);
    key = cg_key_node(c, key, n, &leaves, true);
    cg_outlined(c, "along", key, &leaves, -1, NULL, out, NULL, along_fn, n);
}

static LLVMValueRef logsumexp_fn(Cg *c, void *n, LLVMValueRef out)
{
    (void)out;
    return gen_logsumexp(c, n);
}

/* logsumexp of a buffer as a function of its own per shape from -O1, as a
 * sum's loop is: the value and the gradient functions call one copy of its
 * two vectorised passes (softmax_xent).  Inline at -O0, for literal small
 * sizes, and over a fused argument (its two passes read a buffer). */
static LLVMValueRef outline_logsumexp(Cg *c, Node *n)
{
    Node *x = n->args[0];
    if (c->opt_level < 1 || is_fused(c->p, x) || (lit_small(x->shape.rows) && lit_small(x->shape.cols)))
        return gen_logsumexp(c, n);
    NodeVec leaves = {0};
    uint64_t key = cg_key_node(c, cg_key_shape(0, x->shape), n, &leaves, true);
    return cg_outlined(c, "lse", key, &leaves, -1, c->f64, NULL, NULL, logsumexp_fn, n);
}

/* An operand of a product kernel: its entries, or NULL for a fill (whose
 * constant is *k). */
static LLVMValueRef operand(Cg *c, Node *x, bool read, LLVMValueRef *k)
{
    *k = cf(c, x->op == OP_FILL ? x->num : 0);
    return x->op == OP_FILL || !read ? LLVMConstNull(c->ptr) : argbuf(c, x);
}

/* The O(m·n) products: a diag or fill factor (scalings and sums), or the
 * diagonal of a product (gradc/runtime.h).  The fill of a sums mode is
 * not read: only its constant. */
static void gen_special(Cg *c, Node *n, const Gemm *g, LLVMValueRef out)
{
    LLVMValueRef ka, kb, A = operand(c, g->a, g->mode != G_COLSUMS, &ka);
    LLVMValueRef B = operand(c, g->b, g->mode != G_ROWSUMS, &kb);
    LLVMTypeRef v = LLVMVoidTypeInContext(c->ctx);
    int tf = (g->ta ? GRADC_GEMM_TA : 0) | (g->tb ? GRADC_GEMM_TB : 0);
    if (g->diag) {
        Node *x = n->args[0];
        Dim dk = g->ta ? g->a->shape.rows : g->a->shape.cols;
        LLVMValueRef kw = cf(c, 1), W = g->w ? operand(c, g->w, true, &kw) : LLVMConstNull(c->ptr);
        LLVMTypeRef pt[10] = {c->i32, c->i64, c->i64, c->ptr, c->f64, c->ptr, c->f64, c->ptr, c->f64, c->ptr};
        LLVMValueRef args[10] = {LLVMConstInt(c->i32, (unsigned)tf, 0), rows(c, x), dimv(c, dk), A, ka, W, kw, B, kb, out};
        callrt(c, RT_diag_gemm, v, pt, 10, args);
        return;
    }
    if (g->mode == G_ROWSCALE || g->mode == G_COLSCALE) {
        bool bycol = g->mode == G_COLSCALE;
        int f = bycol ? GRADC_SCALE_COLS | (g->ta ? GRADC_GEMM_TB : 0) : (g->tb ? GRADC_GEMM_TB : 0);
        LLVMTypeRef pt[8] = {c->i32, c->i64, c->i64, c->ptr, c->f64, c->ptr, c->f64, c->ptr};
        LLVMValueRef args[8] = {LLVMConstInt(c->i32, (unsigned)f, 0), rows(c, n), cols(c, n),
                                bycol ? B : A, bycol ? kb : ka, bycol ? A : B, bycol ? ka : kb, out};
        callrt(c, RT_scale, v, pt, 8, args);
        return;
    }
    bool rs = g->mode == G_ROWSUMS;
    Node *x = rs ? g->a : g->b;
    bool tx = rs ? g->ta : g->tb;
    Dim dk = rs ? (tx ? x->shape.rows : x->shape.cols) : (tx ? x->shape.cols : x->shape.rows);
    int f = (rs ? GRADC_SUMS_ROWS : 0) | (tx ? GRADC_GEMM_TB : 0);
    LLVMTypeRef pt[8] = {c->i32, c->i64, c->i64, c->i64, c->f64, c->ptr, c->f64, c->ptr};
    LLVMValueRef args[8] = {LLVMConstInt(c->i32, (unsigned)f, 0), rows(c, n), cols(c, n), dimv(c, dk),
                            rs ? kb : ka, rs ? A : B, rs ? ka : kb, out};
    callrt(c, RT_sums, v, pt, 8, args);
}

/* out = alpha * op(a) * op(b) (+ out when acc) through the runtime. */
void cg_gemm_call(Cg *c, Node *n, const Gemm *g, LLVMValueRef out, double alpha, LLVMValueRef acc)
{
    Dim dk = g->ta ? g->a->shape.rows : g->a->shape.cols;
    LLVMTypeRef pt[8] = {c->i32, c->i64, c->i64, c->i64, c->f64, c->ptr, c->ptr, c->ptr};
    unsigned tf = (g->ta ? GRADC_GEMM_TA : 0) | (g->tb ? GRADC_GEMM_TB : 0);
    LLVMValueRef flags = LLVMConstInt(c->i32, tf, 0);
    if (acc)   /* beta = 1 */
        flags = sel(c, acc, LLVMConstInt(c->i32, tf | GRADC_GEMM_ACC, 0), flags);
    LLVMValueRef args[8] = {flags, rows(c, n), cols(c, n), dimv(c, dk),
                            cf(c, alpha), argbuf(c, g->a), argbuf(c, g->b), out};
    callrt(c, RT_gemm_scaled, LLVMVoidTypeInContext(c->ctx), pt, 8, args);
}

/* out = op(a) * op(b): the runtime's gradc_gemm (OpenBLAS with transpose
 * flags when large, loops when small), or inline loops when every size is
 * a small literal (they are then specialised and unrolled); a diagonal or
 * fill factor, gen_special. */
static void gen_matmul(Cg *c, Node *n, LLVMValueRef out)
{
    const Gemm *g = c->p->gemm[n->id];
    if (g->mode != G_DENSE || g->diag) {
        gen_special(c, n, g, out);
        return;
    }
    if (g->add)   /* the addend's entries, then the product added onto them */
        cg_store_out(c, g->add, out, NULL);
    LLVMValueRef A = argbuf(c, g->a), B = argbuf(c, g->b);
    Dim dk = g->ta ? g->a->shape.rows : g->a->shape.cols;
    LLVMValueRef r = rows(c, n), m = cols(c, n), k = dimv(c, dk);
    if (!lit_small(n->shape.rows) || !lit_small(n->shape.cols) || !lit_small(dk)) {
        cg_gemm_call(c, n, g, out, g->early ? g->alpha : 1, g->add ? cbool(c, 1) : NULL);
        return;
    }
    /* i-p-j order: each out entry sums its products in p order */
    Loop li, lj, lp;
    LLVMValueRef i = loop_begin(c, &li, ci(c, 0), r);
    LLVMValueRef orow = at(c, out, mul(c, i, m));
    if (!g->add)
        zero(c, orow, m);
    LLVMValueRef p = loop_begin(c, &lp, ci(c, 0), k);
    LLVMValueRef aip = load(c, A, g->ta ? add(c, mul(c, p, r), i) : add(c, mul(c, i, k), p));
    LLVMValueRef j = loop_begin(c, &lj, ci(c, 0), m);
    LLVMValueRef bpj = load(c, B, g->tb ? add(c, mul(c, j, k), p) : add(c, mul(c, p, m), j));
    store(c, fplus(c, load(c, orow, j), LLVMBuildFMul(c->b, aip, bpj, "")), orow, j);
    loop_end(c, &lj);
    loop_end(c, &lp);
    loop_end(c, &li);
}

static void gen_softmax(Cg *c, Node *n, LLVMValueRef out)
{
    Node *x = n->args[0];
    LLVMValueRef p = argbuf(c, x), len = count(c, x);
    LLVMValueRef m = reduce_max(c, p, len);
    Loop lp;
    LLVMValueRef k = loop_begin(c, &lp, ci(c, 0), len);
    store(c, cg_exp(c->b, LLVMBuildFSub(c->b, load(c, p, k), m, "")), out, k);
    loop_end(c, &lp);
    Two w = {c, out, NULL, ci(c, 1), NULL};
    LLVMValueRef s = cg_reduce_sum(c, len, f_strided, &w);
    k = loop_begin(c, &lp, ci(c, 0), len);
    store(c, LLVMBuildFDiv(c->b, load(c, out, k), s, ""), out, k);
    loop_end(c, &lp);
}

/* M ops (and EYE, FILL, unfused elementwise nodes) into the buffer out. */
static void gen_into(Cg *c, Node *n, LLVMValueRef out)
{
    Node *x = n->nargs ? n->args[0] : NULL;
    Loop li, lj;
    LLVMValueRef i, j;
    if (n->op == OP_ADD && c->p->gemm[n->id]) { /* a product plus its addend (plan: Gemm.add) */
        gen_matmul(c, n, out);
        return;
    }
    if (kind_of(n) == OK_U || kind_of(n) == OK_B || n->op == OP_FILL || n->op == OP_BCAST) {
        outline(c, n, out, -1);
        return;
    }
    if (n->op >= OP_SUMD && n->op <= OP_LOGSOFTMAXD) {
        outline_along(c, n, out);
        return;
    }
    switch (n->op) {
    case OP_EYE:
    case OP_DIAGM: {
        LLVMValueRef d = rows(c, n), src = x ? argbuf(c, x) : NULL;
        zero(c, out, mul(c, d, d));
        i = loop_begin(c, &li, ci(c, 0), d);
        store(c, src ? load(c, src, i) : cf(c, 1), out, mul(c, i, add(c, d, ci(c, 1))));
        loop_end(c, &li);
        return;
    }
    case OP_DIAGV: {
        if (c->p->gemm[n->id]) {
            gen_matmul(c, n, out);
            return;
        }
        LLVMValueRef d = rows(c, n); /* its argument's entries i*(d+1), fused or stored */
        i = loop_begin(c, &li, ci(c, 0), d);
        store(c, elem(c, x, mul(c, i, add(c, d, ci(c, 1)))), out, i);
        loop_end(c, &li);
        return;
    }
    case OP_TRANSPOSE: {
        LLVMValueRef src = argbuf(c, x), r = rows(c, x), m = cols(c, x);
        i = loop_begin(c, &li, ci(c, 0), r);
        j = loop_begin(c, &lj, ci(c, 0), m);
        store(c, load(c, src, add(c, mul(c, i, m), j)), out, add(c, mul(c, j, r), i));
        loop_end(c, &lj);
        loop_end(c, &li);
        return;
    }
    case OP_MATMUL: gen_matmul(c, n, out); return;
    case OP_SOFTMAX: gen_softmax(c, n, out); return;
    case OP_VCAT:
    case OP_HCAT: cg_cat_into(c, n, out, argbuf(c, x), argbuf(c, n->args[1])); return;
    case OP_SLICE:
    case OP_PAD: cg_block_into(c, n, out, argbuf(c, x), get(c, n->args[1]), get(c, n->args[2])); return;
    case OP_INV: {
        LLVMTypeRef pt[4] = {c->i64, c->ptr, c->ptr, c->ptr};
        LLVMValueRef args[4] = {rows(c, x), argbuf(c, x), out, bufp(c, c->p->scratch[n->id])};
        callrt(c, RT_inv, LLVMVoidTypeInContext(c->ctx), pt, 4, args);
        return;
    }
    case OP_LU:
    case OP_CHOL: {
        LLVMTypeRef pt[3] = {c->i64, c->ptr, c->ptr};
        LLVMValueRef args[3] = {rows(c, x), argbuf(c, x), out};
        callrt(c, n->op == OP_LU ? RT_lu : RT_chol, LLVMVoidTypeInContext(c->ctx), pt, 3, args);
        return;
    }
    case OP_SOLVE:
    case OP_SOLVET: {
        Node *y = n->args[1];
        LLVMTypeRef pt[7] = {c->i64, c->i64, c->ptr, c->i32, c->ptr, c->ptr, c->ptr};
        LLVMValueRef args[7] = {rows(c, x), cols(c, y), argbuf(c, x),
                                LLVMConstInt(c->i32, n->op == OP_SOLVET, 0), argbuf(c, y), out,
                                bufp(c, c->p->scratch[n->id])};
        callrt(c, RT_lu_solve, LLVMVoidTypeInContext(c->ctx), pt, 7, args);
        return;
    }
    case OP_KRON: {   /* out[(i*rb + k)*(ca*cb) + j*cb + l] = A[i, j] * B[k, l] */
        Node *y = n->args[1];
        LLVMValueRef pa = argbuf(c, x), pb = argbuf(c, y), ra = rows(c, x), ca = cols(c, x);
        LLVMValueRef rb = rows(c, y), cb = cols(c, y), w = cols(c, n);
        Loop lk, ll;
        i = loop_begin(c, &li, ci(c, 0), ra);
        LLVMValueRef k = loop_begin(c, &lk, ci(c, 0), rb);
        LLVMValueRef orow = at(c, out, mul(c, add(c, mul(c, i, rb), k), w));
        j = loop_begin(c, &lj, ci(c, 0), ca);
        LLVMValueRef aij = load(c, pa, add(c, mul(c, i, ca), j)), oblk = at(c, orow, mul(c, j, cb));
        LLVMValueRef l = loop_begin(c, &ll, ci(c, 0), cb);
        store(c, LLVMBuildFMul(c->b, aij, load(c, pb, add(c, mul(c, k, cb), l)), ""), oblk, l);
        loop_end(c, &ll);
        loop_end(c, &lj);
        loop_end(c, &lk);
        loop_end(c, &li);
        return;
    }
    case OP_FLATTEN: {   /* row-major already: a copy */
        LLVMValueRef src = argbuf(c, x);
        i = loop_begin(c, &li, ci(c, 0), count(c, x));
        store(c, load(c, src, i), out, i);
        loop_end(c, &li);
        return;
    }
    case OP_TRIL: {
        LLVMValueRef src = argbuf(c, x), r = rows(c, x), m = cols(c, x);
        zero(c, out, mul(c, r, m));
        i = loop_begin(c, &li, ci(c, 0), r);
        LLVMValueRef end = add(c, i, ci(c, 1));
        j = loop_begin(c, &lj, ci(c, 0), sel(c, LLVMBuildICmp(c->b, LLVMIntSLT, end, m, ""), end, m));
        LLVMValueRef k = add(c, mul(c, i, m), j);
        store(c, load(c, src, k), out, k);
        loop_end(c, &lj);
        loop_end(c, &li);
        return;
    }
    default:
        internal(c, "operator has no code");
    }
}

LLVMValueRef gen_scalar(Cg *c, Node *n)
{
    switch (n->op) {
    case OP_CONST:
    case OP_FILL: return cf(c, n->num);
    case OP_EYE: return cf(c, 1);
    case OP_INPUT:
        return c->m->inputs[n->index].ndims == 0 ? c->inputs[n->index] : load(c, c->inputs[n->index], ci(c, 0));
    case OP_SLOT: return LLVMBuildLoad2(c->b, c->f64, c->slotvar[n->index], "");
    case OP_DIMVAL: return LLVMBuildSIToFP(c->b, c->dims[n->index], c->f64, "");
    case OP_COTAN: /* NULL: a cotangent of 1 */
        return LLVMBuildLoad2(c->b, c->f64, sel(c, LLVMBuildIsNull(c->b, c->cot, ""), c->one, c->cot), "");
    case OP_TRANSPOSE:
    case OP_DIAGV:
    case OP_DIAGM: return get(c, n->args[0]);
    case OP_SLICE: return cg_element(c, n, argbuf(c, n->args[0]), get(c, n->args[1]), get(c, n->args[2]));
    default: break;
    }
    if (kind_of(n) == OK_U)
        return apply1(c, n->op, get(c, n->args[0]));
    if (kind_of(n) == OK_B)
        return apply2(c, n->op, get(c, n->args[0]), get(c, n->args[1]));
    LLVMValueRef r = gen_reduction(c, n);
    if (r)
        return r;
    /* inv or softmax of a 1×1: the general code on one entry */
    LLVMValueRef out = alloca_(c, c->f64);
    gen_into(c, n, out);
    return LLVMBuildLoad2(c->b, c->f64, out, "");
}

LLVMValueRef gen_buffer(Cg *c, Node *n)
{
    switch (n->op) {
    case OP_INPUT: return c->inputs[n->index];
    case OP_SLOT: return bufp(c, c->p->slotbuf[n->index]);
    case OP_COTAN: return c->cot;
    case OP_TRANSPOSE:
        if (is_alias(n))
            return get(c, n->args[0]);
        break;
    case OP_SLICE:
        if (is_view(n))
            return cg_view(c, n, argbuf(c, n->args[0]), get(c, n->args[1]), get(c, n->args[2]));
        break;
    default: break;
    }
    int b = c->p->buf[n->id];
    if (b < 0) {
        internal(c, "a fused value has no buffer");
        return LLVMConstNull(c->ptr);
    }
    gen_into(c, n, bufp(c, b));
    return bufp(c, b);
}

LLVMAttributeRef cg_noinline(Cg *c)
{
    unsigned kind = LLVMGetEnumAttributeKindForName("noinline", 8);
    return LLVMCreateEnumAttribute(c->ctx, kind, 0);
}

/* n's value: a double (1×1) or a pointer to its entries, computed by a
 * kernel of the plan at this point or before. */
static LLVMValueRef get(Cg *c, Node *n)
{
    LLVMValueRef v = node_value(c, n);
    if (!v) {
        internal(c, arena_printf(c->a, "node %d (%s) used where the plan did not compute it", n->id, op_info[n->op].text));
        return is_scalar(n) ? cf(c, 0) : LLVMConstNull(c->ptr);
    }
    return v;
}

LLVMValueRef cg_get(Cg *c, Node *n) { return get(c, n); }
