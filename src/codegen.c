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
 * what is computed where comes from the plan (plan.c). */
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
    LLVMValueRef e = libm(c, "exp", 1, LLVMBuildFNeg(c->b, intrinsic(c, "llvm.fabs", c->f64, 1, &x), ""), NULL);
    LLVMValueRef den = fplus(c, cf(c, 1), e);
    return sel(c, fcmp(c, LLVMRealOGE, x, cf(c, 0)), LLVMBuildFDiv(c->b, cf(c, 1), den, ""),
               LLVMBuildFDiv(c->b, e, den, ""));
}
static LLVMValueRef e_softplus(Cg *c, LLVMValueRef x)
{
    LLVMValueRef e = libm(c, "exp", 1, LLVMBuildFNeg(c->b, intrinsic(c, "llvm.fabs", c->f64, 1, &x), ""), NULL);
    return fplus(c, sel(c, fcmp(c, LLVMRealOGT, x, cf(c, 0)), x, cf(c, 0)), libm(c, "log1p", 1, e, NULL));
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
static LLVMValueRef e_abs(Cg *c, LLVMValueRef x) { return intrinsic(c, "llvm.fabs", c->f64, 1, &x); }

static LLVMValueRef (*const emit1[OP_COUNT])(Cg *, LLVMValueRef) = {
    [OP_NEG] = e_neg, [OP_SQRT] = e_sqrt, [OP_ABS] = e_abs, [OP_SIGMOID] = e_sigmoid,
    [OP_RELU] = e_relu, [OP_SOFTPLUS] = e_softplus, [OP_SIGN] = e_sign, [OP_NOT] = e_not,
    [OP_DETACH] = e_id,
};
/* the rest call libm, as ir.c does */
static const char *const libm1[OP_COUNT] = {
    [OP_EXP] = "exp", [OP_LOG] = "log", [OP_SIN] = "sin", [OP_COS] = "cos",
    [OP_TAN] = "tan", [OP_TANH] = "tanh", [OP_LOG1P] = "log1p",
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
static LLVMValueRef e_pow(Cg *c, LLVMValueRef x, LLVMValueRef y) { return libm(c, "pow", 2, x, y); }
static LLVMValueRef e_max(Cg *c, LLVMValueRef x, LLVMValueRef y) { return sel(c, fcmp(c, LLVMRealOGT, x, y), x, y); }
static LLVMValueRef e_min(Cg *c, LLVMValueRef x, LLVMValueRef y) { return sel(c, fcmp(c, LLVMRealOLT, x, y), x, y); }
static LLVMValueRef e_and(Cg *c, LLVMValueRef x, LLVMValueRef y)
{
    return b2f(c, LLVMBuildAnd(c->b, fcmp(c, LLVMRealUNE, x, cf(c, 0)), fcmp(c, LLVMRealUNE, y, cf(c, 0)), ""));
}
static LLVMValueRef e_or(Cg *c, LLVMValueRef x, LLVMValueRef y)
{
    return b2f(c, LLVMBuildOr(c->b, fcmp(c, LLVMRealUNE, x, cf(c, 0)), fcmp(c, LLVMRealUNE, y, cf(c, 0)), ""));
}

static LLVMValueRef (*const emit2[OP_COUNT])(Cg *, LLVMValueRef, LLVMValueRef) = {
    [OP_ADD] = e_add, [OP_SUB] = e_sub, [OP_MUL] = e_mul, [OP_DIV] = e_div, [OP_DIVSAFE] = e_divsafe, [OP_POW] = e_pow,
    [OP_MAX] = e_max, [OP_MIN] = e_min, [OP_AND] = e_and, [OP_OR] = e_or,
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
    if (libm1[op])
        return libm(c, libm1[op], 1, x, NULL);
    internal(c, arena_printf(c->a, "no code for unary operator %s", op_info[op].name));
    return cf(c, 0);
}

static LLVMValueRef apply2(Cg *c, Op op, LLVMValueRef x, LLVMValueRef y)
{
    if (emit2[op])
        return emit2[op](c, x, y);
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

/* Entry k of an elementwise node from its arguments' entries (a 1×1
 * argument broadcasts). */
static LLVMValueRef elem_op(Cg *c, Node *n, LLVMValueRef k)
{
    if (n->op == OP_FILL)
        return cf(c, n->num);
    if (kind_of(n) == OK_U)
        return apply1(c, n->op, elem(c, n->args[0], k));
    return apply2(c, n->op, elem(c, n->args[0], k), elem(c, n->args[1], k));
}

static LLVMValueRef elem(Cg *c, Node *n, LLVMValueRef k)
{
    if (is_fused(c->p, n))
        return elem_op(c, n, k);
    LLVMValueRef v = get(c, n);
    return is_scalar(n) ? v : load(c, v, k);
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

/* Sum of f(k) for k in [0, count).  Rounding: LANES partial sums
 * s_l = f(l) + f(l+LANES) + … run over the first count - count % LANES
 * entries, are combined as (s0 + s1) + (s2 + s3), and the remaining entries
 * are then added one by one.  The partial sums are independent chains, so
 * the loop vectorises without fast-math (no reassociation is needed); the
 * result differs from a left-to-right sum by rounding only, within the usual
 * summation bound (count · eps · sum |f|). */
typedef LLVMValueRef (*ElemFn)(Cg *c, void *ctx, LLVMValueRef k);

static LLVMValueRef reduce_sum(Cg *c, LLVMValueRef n, ElemFn f, void *ctx)
{
    LLVMValueRef acc[LANES], t = alloca_(c, c->f64);
    for (int l = 0; l < LANES; l++) {
        acc[l] = alloca_(c, c->f64);
        LLVMBuildStore(c->b, cf(c, 0), acc[l]);
    }
    LLVMValueRef blocks = LLVMBuildSDiv(c->b, n, ci(c, LANES), "");
    Loop lp;
    LLVMValueRef i = loop_begin(c, &lp, ci(c, 0), blocks);
    LLVMValueRef base = mul(c, i, ci(c, LANES));
    for (int l = 0; l < LANES; l++) {
        LLVMValueRef x = f(c, ctx, add(c, base, ci(c, l)));
        LLVMBuildStore(c->b, fplus(c, LLVMBuildLoad2(c->b, c->f64, acc[l], ""), x), acc[l]);
    }
    loop_end(c, &lp);
    LLVMValueRef s[LANES];
    for (int l = 0; l < LANES; l++)
        s[l] = LLVMBuildLoad2(c->b, c->f64, acc[l], "");
    LLVMBuildStore(c->b, fplus(c, fplus(c, s[0], s[1]), fplus(c, s[2], s[3])), t);
    i = loop_begin(c, &lp, mul(c, blocks, ci(c, LANES)), n);
    LLVMBuildStore(c->b, fplus(c, LLVMBuildLoad2(c->b, c->f64, t, ""), f(c, ctx, i)), t);
    loop_end(c, &lp);
    return LLVMBuildLoad2(c->b, c->f64, t, "");
}

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

typedef struct Two {
    Cg *c;
    LLVMValueRef p, q, stride, shift;
} Two;

static LLVMValueRef f_elem(Cg *c, void *n, LLVMValueRef k) { return elem(c, n, k); }
/* (p[k] / shift)^2 */
static LLVMValueRef f_scaled_square(Cg *c, void *t, LLVMValueRef k)
{
    Two *w = t;
    LLVMValueRef x = LLVMBuildFDiv(c->b, load(c, w->p, k), w->shift, "");
    return LLVMBuildFMul(c->b, x, x, "");
}
/* p[k * stride] (the diagonal with stride n + 1) */
static LLVMValueRef f_strided(Cg *c, void *t, LLVMValueRef k)
{
    Two *w = t;
    return load(c, w->p, mul(c, k, w->stride));
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
    return libm(c, "exp", 1, LLVMBuildFSub(c->b, load(c, w->p, k), w->shift, ""), NULL);
}

/* big * sqrt(sum (x/big)^2) with big = max |x|, so that squares neither
 * overflow nor underflow (the interpreter's formula); NaN if any entry is. */
static LLVMValueRef gen_norm(Cg *c, Node *n)
{
    Node *x = n->args[0];
    LLVMValueRef p = argbuf(c, x), len = count(c, x);
    LLVMValueRef big = alloca_(c, c->f64), nan = alloca_(c, c->i1);
    LLVMBuildStore(c->b, cf(c, 0), big);
    LLVMBuildStore(c->b, LLVMConstInt(c->i1, 0, 0), nan);
    Loop lp;
    LLVMValueRef k = loop_begin(c, &lp, ci(c, 0), len);
    LLVMValueRef v = load(c, p, k), a = e_abs(c, v), b = LLVMBuildLoad2(c->b, c->f64, big, "");
    LLVMBuildStore(c->b, sel(c, fcmp(c, LLVMRealOGT, a, b), a, b), big);
    LLVMBuildStore(c->b, LLVMBuildOr(c->b, LLVMBuildLoad2(c->b, c->i1, nan, ""), fcmp(c, LLVMRealUNO, v, v), ""), nan);
    loop_end(c, &lp);
    LLVMValueRef m = LLVMBuildLoad2(c->b, c->f64, big, "");
    Two w = {c, p, NULL, NULL, m};
    LLVMValueRef r = LLVMBuildFMul(c->b, m, e_sqrt(c, reduce_sum(c, len, f_scaled_square, &w)), "");
    LLVMValueRef edge = LLVMBuildOr(c->b, fcmp(c, LLVMRealOEQ, m, cf(c, 0)), fcmp(c, LLVMRealOEQ, m, cf(c, INFINITY)), "");
    r = sel(c, edge, m, r);
    return sel(c, LLVMBuildLoad2(c->b, c->i1, nan, ""), cf(c, NAN), r);
}

static LLVMValueRef gen_logsumexp(Cg *c, Node *n)
{
    Node *x = n->args[0];
    LLVMValueRef p = argbuf(c, x), len = count(c, x);
    LLVMValueRef m = reduce_max(c, p, len);
    Two w = {c, p, NULL, NULL, m};
    LLVMValueRef s = reduce_sum(c, len, f_expshift, &w);
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
        return reduce_sum(c, count(c, x), f_elem, x);
    case OP_NORM:
        return gen_norm(c, n);
    case OP_TRACE: {
        Two w = {c, argbuf(c, x), NULL, add(c, rows(c, x), ci(c, 1)), NULL};
        return reduce_sum(c, rows(c, x), f_strided, &w);
    }
    case OP_LOGSUMEXP:
        return gen_logsumexp(c, n);
    case OP_MATMUL: {
        Two w = {c, argbuf(c, x), argbuf(c, n->args[1]), NULL, NULL};
        return reduce_sum(c, cols(c, x), f_dot, &w);
    }
    case OP_DET:
    case OP_LOGDET: {
        LLVMTypeRef pt[3] = {c->i64, c->ptr, c->ptr};
        LLVMValueRef args[3] = {rows(c, x), argbuf(c, x), c->bufp[c->p->scratch[n->id]]};
        return callf(c, n->op == OP_DET ? "gradc_det" : "gradc_logdet", c->f64, pt, 3, args);
    }
    default:
        return NULL;
    }
}

static void gen_matmul(Cg *c, Node *n, LLVMValueRef out)
{
    Node *x = n->args[0], *y = n->args[1];
    LLVMValueRef A = argbuf(c, x), B = argbuf(c, y);
    LLVMValueRef r = rows(c, n), k = cols(c, x), m = cols(c, n);
    Loop li, lj, lp;
    if (dim_eq(n->shape.cols, dim_lit(1))) {
        /* matrix × vector: a dot product per row */
        LLVMValueRef i = loop_begin(c, &li, ci(c, 0), r);
        Two w = {c, at(c, A, mul(c, i, k)), B, NULL, NULL};
        store(c, reduce_sum(c, k, f_dot, &w), out, i);
        loop_end(c, &li);
        return;
    }
    LLVMBasicBlockRef done = block(c, "mm.done");
    bool small = (n->shape.rows.sym < 0 && n->shape.rows.n < BLAS_MIN) ||
                 (n->shape.cols.sym < 0 && n->shape.cols.n < BLAS_MIN) ||
                 (x->shape.cols.sym < 0 && x->shape.cols.n < BLAS_MIN);
    if (!small) {
        /* large products: OpenBLAS, decided at run time */
        LLVMBasicBlockRef blas = block(c, "mm.blas"), loops = block(c, "mm.loops");
        LLVMValueRef big = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, r, ci(c, BLAS_MIN), ""),
                                        LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, k, ci(c, BLAS_MIN), ""),
                                                     LLVMBuildICmp(c->b, LLVMIntSGE, m, ci(c, BLAS_MIN), ""), ""), "");
        LLVMBuildCondBr(c->b, big, blas, loops);
        enter(c, blas);
        LLVMTypeRef pt[6] = {c->i64, c->i64, c->i64, c->ptr, c->ptr, c->ptr};
        LLVMValueRef args[6] = {r, m, k, A, B, out};
        callf(c, "gradc_dgemm", LLVMVoidTypeInContext(c->ctx), pt, 6, args);
        LLVMBuildBr(c->b, done);
        enter(c, loops);
    }
    /* i-p-j order: each out entry sums its products in p order (as a plain
     * dot product would) while the inner loop over j vectorises */
    LLVMValueRef i = loop_begin(c, &li, ci(c, 0), r);
    LLVMValueRef orow = at(c, out, mul(c, i, m));
    zero(c, orow, m);
    LLVMValueRef p = loop_begin(c, &lp, ci(c, 0), k);
    LLVMValueRef aip = load(c, A, add(c, mul(c, i, k), p));
    LLVMValueRef brow = at(c, B, mul(c, p, m));
    LLVMValueRef j = loop_begin(c, &lj, ci(c, 0), m);
    store(c, fplus(c, load(c, orow, j), LLVMBuildFMul(c->b, aip, load(c, brow, j), "")), orow, j);
    loop_end(c, &lj);
    loop_end(c, &lp);
    loop_end(c, &li);
    LLVMBuildBr(c->b, done);
    enter(c, done);
}

static void gen_softmax(Cg *c, Node *n, LLVMValueRef out)
{
    Node *x = n->args[0];
    LLVMValueRef p = argbuf(c, x), len = count(c, x);
    LLVMValueRef m = reduce_max(c, p, len);
    Loop lp;
    LLVMValueRef k = loop_begin(c, &lp, ci(c, 0), len);
    store(c, libm(c, "exp", 1, LLVMBuildFSub(c->b, load(c, p, k), m, ""), NULL), out, k);
    loop_end(c, &lp);
    Two w = {c, out, NULL, ci(c, 1), NULL};
    LLVMValueRef s = reduce_sum(c, len, f_strided, &w);
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
    if (kind_of(n) == OK_U || kind_of(n) == OK_B || n->op == OP_FILL) {
        i = loop_begin(c, &li, ci(c, 0), count(c, n));
        store(c, elem_op(c, n, i), out, i);
        loop_end(c, &li);
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
        LLVMValueRef d = rows(c, n), src = argbuf(c, x);
        i = loop_begin(c, &li, ci(c, 0), d);
        store(c, load(c, src, mul(c, i, add(c, d, ci(c, 1)))), out, i);
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
    case OP_INV: {
        LLVMTypeRef pt[4] = {c->i64, c->ptr, c->ptr, c->ptr};
        LLVMValueRef args[4] = {rows(c, x), argbuf(c, x), out, c->bufp[c->p->scratch[n->id]]};
        callf(c, "gradc_inv", LLVMVoidTypeInContext(c->ctx), pt, 4, args);
        return;
    }
    default:
        internal(c, "operator has no code");
    }
}

static LLVMValueRef gen_scalar(Cg *c, Node *n)
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

static LLVMValueRef gen_buffer(Cg *c, Node *n)
{
    switch (n->op) {
    case OP_INPUT: return c->inputs[n->index];
    case OP_SLOT: return c->bufp[c->p->slotbuf[n->index]];
    case OP_COTAN: return c->cot;
    case OP_TRANSPOSE:
        if (is_alias(n))
            return get(c, n->args[0]);
        break;
    default: break;
    }
    int b = c->p->buf[n->id];
    if (b < 0) {
        internal(c, "a fused value has no buffer");
        return LLVMConstNull(c->ptr);
    }
    gen_into(c, n, c->bufp[b]);
    return c->bufp[b];
}

/* ---- matrix–vector products, one pass per matrix ---- */

/* One term of a pass: out += kc * op(M) * vec. */
typedef struct PassTerm {
    const Term *t;
    Node *vec;
    LLVMValueRef v, out, kc; /* vec's entries (NULL for a FILL), the result, the factor */
    LLVMValueRef acc, lanes; /* M*vec: the row's sum, its LANES partial sums (allocas) */
    LLVMValueRef y;          /* M'*vec: kc * vec[i] for the current row i */
} PassTerm;

static LLVMTypeRef vec_t(Cg *c) { return LLVMVectorType(c->f64, LANES); }

static LLVMValueRef vload(Cg *c, LLVMValueRef p, LLVMValueRef k)
{
    LLVMValueRef v = LLVMBuildLoad2(c->b, vec_t(c), at(c, p, k), "");
    LLVMSetAlignment(v, 8);
    return v;
}
static void vstore(Cg *c, LLVMValueRef v, LLVMValueRef p, LLVMValueRef k)
{
    LLVMSetAlignment(LLVMBuildStore(c->b, v, at(c, p, k)), 8);
}
static LLVMValueRef splat(Cg *c, LLVMValueRef x)
{
    LLVMValueRef v = LLVMBuildInsertElement(c->b, LLVMGetPoison(vec_t(c)), x, LLVMConstInt(c->i32, 0, 0), "");
    return LLVMBuildShuffleVector(c->b, v, LLVMGetPoison(vec_t(c)), LLVMConstNull(LLVMVectorType(c->i32, LANES)), "");
}

/* LANES entries of a product's vector from k on (a FILL: its constant). */
static LLVMValueRef vec_lanes(Cg *c, PassTerm *t, LLVMValueRef k)
{
    return t->v ? vload(c, t->v, k) : splat(c, cf(c, t->vec->num));
}
static LLVMValueRef vec_at(Cg *c, PassTerm *t, LLVMValueRef k)
{
    return t->v ? load(c, t->v, k) : cf(c, t->vec->num);
}

/* Entry j of a row in every term: acc += row[j] * vec[j], or
 * out[j] += row[j] * y. */
static void pass_entry(Cg *c, PassTerm *ts, int nt, LLVMValueRef row, LLVMValueRef j)
{
    LLVMValueRef a = load(c, row, j);
    for (int t = 0; t < nt; t++) {
        if (ts[t].t->trans) {
            store(c, fplus(c, load(c, ts[t].out, j), LLVMBuildFMul(c->b, a, ts[t].y, "")), ts[t].out, j);
        } else {
            LLVMValueRef s = LLVMBuildLoad2(c->b, c->f64, ts[t].acc, "");
            LLVMBuildStore(c->b, fplus(c, s, LLVMBuildFMul(c->b, a, vec_at(c, &ts[t], j), "")), ts[t].acc);
        }
    }
}

/* One read of M (R×C, row-major) for every term that reads it.  A row's
 * dot product (M*vec) is summed as reduce_sum sums: LANES partial sums,
 * combined as (s0 + s1) + (s2 + s3), then the remainder one by one; here
 * the lanes are one vector register.  M'*vec accumulates row by row into
 * its result (a sum in row order), from the same loaded entries. */
static void gen_pass(Cg *c, Node *M, PassTerm *ts, int nt)
{
    LLVMValueRef A = get(c, M), R = rows(c, M), C = cols(c, M);
    LLVMTypeRef vt = vec_t(c);
    for (int t = 0; t < nt; t++)
        if (!ts[t].t->trans) {
            ts[t].acc = alloca_(c, c->f64);
            ts[t].lanes = alloca_(c, vt);
        }
    LLVMValueRef blocks = LLVMBuildSDiv(c->b, C, ci(c, LANES), "");
    Loop li, lj;
    LLVMValueRef i = loop_begin(c, &li, ci(c, 0), R);
    LLVMValueRef row = at(c, A, mul(c, i, C));
    for (int t = 0; t < nt; t++) {
        if (ts[t].t->trans)
            ts[t].y = LLVMBuildFMul(c->b, ts[t].kc, vec_at(c, &ts[t], i), "");
        else
            LLVMBuildStore(c->b, LLVMConstNull(vt), ts[t].lanes);
    }
    LLVMValueRef jb = loop_begin(c, &lj, ci(c, 0), blocks);
    LLVMValueRef j = mul(c, jb, ci(c, LANES));
    LLVMValueRef a = vload(c, row, j);
    for (int t = 0; t < nt; t++) {
        if (ts[t].t->trans) {
            LLVMValueRef o = fplus(c, vload(c, ts[t].out, j), LLVMBuildFMul(c->b, a, splat(c, ts[t].y), ""));
            vstore(c, o, ts[t].out, j);
        } else {
            LLVMValueRef s = LLVMBuildLoad2(c->b, vt, ts[t].lanes, "");
            LLVMBuildStore(c->b, fplus(c, s, LLVMBuildFMul(c->b, a, vec_lanes(c, &ts[t], j), "")), ts[t].lanes);
        }
    }
    loop_end(c, &lj);
    for (int t = 0; t < nt; t++) {
        if (ts[t].t->trans)
            continue;
        LLVMValueRef s = LLVMBuildLoad2(c->b, vt, ts[t].lanes, ""), l[LANES];
        for (int k = 0; k < LANES; k++)
            l[k] = LLVMBuildExtractElement(c->b, s, LLVMConstInt(c->i32, (unsigned)k, 0), "");
        LLVMBuildStore(c->b, fplus(c, fplus(c, l[0], l[1]), fplus(c, l[2], l[3])), ts[t].acc);
    }
    j = loop_begin(c, &lj, mul(c, blocks, ci(c, LANES)), C);
    pass_entry(c, ts, nt, row, j);
    loop_end(c, &lj);
    for (int t = 0; t < nt; t++) {
        if (ts[t].t->trans)
            continue;
        LLVMValueRef s = LLVMBuildFMul(c->b, ts[t].kc, LLVMBuildLoad2(c->b, c->f64, ts[t].acc, ""), "");
        store(c, fplus(c, load(c, ts[t].out, i), s), ts[t].out, i);
    }
    loop_end(c, &li);
}

/* The products of a K_MATVEC kernel (the plan chose members whose inputs
 * are at hand): results zeroed, the identity terms, then one pass per
 * distinct matrix. */
static void gen_mv(Cg *c, const Kernel *k)
{
    Plan *p = c->p;
    int nt = 0;
    PassTerm *ts = NULL;
    struct { Node **data; int len; } members = {k->members, k->nmembers};
    for (int i = 0; i < members.len; i++)
        nt += p->mv[members.data[i]->id]->nterms;
    ts = arena_alloc(c->a, sizeof *ts * (size_t)(nt + 1));
    nt = 0;
    for (int i = 0; i < members.len; i++) {
        Node *x = members.data[i];
        Mv *v = p->mv[x->id];
        LLVMValueRef vp = v->vec->op == OP_FILL ? NULL : argbuf(c, v->vec);
        LLVMValueRef out = c->bufp[p->buf[x->id]];
        for (int t = 0; t < v->nterms; t++) {
            const Term *tm = &v->terms[t];
            if (tm->m)
                get(c, tm->m);
            LLVMValueRef kc = cf(c, tm->k);
            if (tm->coef)
                kc = LLVMBuildFMul(c->b, kc, get(c, tm->coef), "");
            ts[nt++] = (PassTerm){tm, v->vec, vp, out, kc, NULL, NULL, NULL};
        }
    }
    for (int i = 0; i < members.len; i++)
        zero(c, c->bufp[p->buf[members.data[i]->id]], count(c, members.data[i]));
    for (int t = 0; t < nt; t++) {
        if (ts[t].t->m)
            continue;
        Loop lp;
        LLVMValueRef k = loop_begin(c, &lp, ci(c, 0), count(c, ts[t].vec));
        LLVMValueRef y = LLVMBuildFMul(c->b, ts[t].kc, vec_at(c, &ts[t], k), "");
        store(c, fplus(c, load(c, ts[t].out, k), y), ts[t].out, k);
        loop_end(c, &lp);
    }
    /* one pass per matrix, over every term that reads it */
    bool *done = arena_alloc(c->a, (size_t)nt + 1);
    PassTerm *same = arena_alloc(c->a, sizeof *same * (size_t)(nt + 1));
    for (int t = 0; t < nt; t++) {
        if (done[t] || !ts[t].t->m)
            continue;
        int ns = 0;
        for (int u = t; u < nt; u++)
            if (!done[u] && ts[u].t->m == ts[t].t->m) {
                done[u] = true;
                same[ns++] = ts[u];
            }
        gen_pass(c, ts[t].t->m, same, ns);
    }
    for (int i = 0; i < members.len; i++) {
        Node *x = members.data[i];
        c->cache[x->id] = c->bufp[p->buf[x->id]];
    }
}

/* n's value: a double (1×1) or a pointer to its entries, computed by a
 * kernel of the plan at this point or before. */
static LLVMValueRef get(Cg *c, Node *n)
{
    if (!c->cache[n->id]) {
        internal(c, arena_printf(c->a, "node %d used where the plan did not compute it", n->id));
        return is_scalar(n) ? cf(c, 0) : LLVMConstNull(c->ptr);
    }
    return c->cache[n->id];
}

static void gen_kernel(Cg *c, const Kernel *k)
{
    Node *n = k->node;
    if (k->kind == K_MATVEC)
        gen_mv(c, k);
    else
        c->cache[n->id] = is_scalar(n) ? gen_scalar(c, n) : gen_buffer(c, n);
}

/* The next point of the plan: its kernels, which must be for root. */
static void need(Cg *c, Node *root)
{
    if (c->pc >= c->p->points.len || c->p->points.data[c->pc].root != root) {
        internal(c, "the plan and the code generator disagree on the order of points");
        return;
    }
    const Point *pt = &c->p->points.data[c->pc++];
    for (int i = 0; i < pt->nk && !c->failed; i++)
        gen_kernel(c, &pt->ks[i]);
}

/* ===================================================================== */
/* Statements                                                            */
/* ===================================================================== */

/* dst[k] = x[k] (or += when add), for every entry. */
static void store_all(Cg *c, Node *x, LLVMValueRef dst, bool addto)
{
    Loop lp;
    LLVMValueRef k = loop_begin(c, &lp, ci(c, 0), count(c, x));
    LLVMValueRef v = elem(c, x, k);
    store(c, addto ? fplus(c, load(c, dst, k), v) : v, dst, k);
    loop_end(c, &lp);
}

static bool reads_other(const Node *x, int n, const int *slots, int self)
{
    for (int j = 0; j < n; j++)
        if (j != self && node_reads_slot(x, slots[j]))
            return true;
    return false;
}

/* slots[i] = vals[i] for all i, in parallel: every value is computed (into
 * the slot's shadow buffer when a later store could clobber what it reads)
 * before any slot is written. */
static void assign(Cg *c, int n, const int *slots, Node **vals)
{
    LLVMValueRef *v = arena_alloc(c->a, sizeof *v * (size_t)(n + 1));
    bool *direct = arena_alloc(c->a, (size_t)n + 1);
    for (int i = 0; i < n; i++) {
        Node *x = vals[i];
        int s = slots[i];
        need(c, x);
        if (c->p->slotbuf[s] < 0) {
            v[i] = get(c, x);
            continue;
        }
        bool other = reads_other(x, n, slots, i);
        if (!other && is_fused(c->p, x)) {
            direct[i] = true; /* reads entry k of its own slot at most */
        } else if (other) {
            v[i] = c->bufp[c->p->shadow[s]];
            store_all(c, x, v[i], false);
        } else {
            v[i] = get(c, x);
        }
    }
    for (int i = 0; i < n; i++) {
        Node *x = vals[i];
        int s = slots[i];
        if (c->p->slotbuf[s] < 0) {
            LLVMBuildStore(c->b, v[i], c->slotvar[s]);
        } else if (direct[i]) {
            store_all(c, x, c->bufp[c->p->slotbuf[s]], false);
        } else if (!(x->op == OP_SLOT && x->index == s)) {
            Loop lp;
            LLVMValueRef k = loop_begin(c, &lp, ci(c, 0), count(c, x));
            store(c, load(c, v[i], k), c->bufp[c->p->slotbuf[s]], k);
            loop_end(c, &lp);
        }
    }
}


static LLVMValueRef truth(Cg *c, Node *cond)
{
    need(c, cond);
    return fcmp(c, LLVMRealUNE, get(c, cond), cf(c, 0));
}

static void gen_if(Cg *c, const Stmt *s)
{
    LLVMBasicBlockRef yes = block(c, "then"), no = block(c, "else"), join = block(c, "endif");
    LLVMBuildCondBr(c->b, truth(c, s->cond), yes, no);
    enter(c, yes);
    gen_block(c, s->then_block);
    assign(c, s->n, s->slots, s->then_vals);
    LLVMBuildBr(c->b, join);
    enter(c, no);
    gen_block(c, s->else_block);
    assign(c, s->n, s->slots, s->else_vals);
    LLVMBuildBr(c->b, join);
    enter(c, join);
}

static void gen_while(Cg *c, const Stmt *s)
{
    assign(c, s->n, s->slots, s->vals);
    need(c, NULL); /* the loop's invariants */
    int index = c->info->nwhiles++;
    Loc *locs = arena_alloc(c->a, sizeof *locs * (size_t)c->info->nwhiles);
    if (index)
        memcpy(locs, c->info->whiles, sizeof *locs * (size_t)index);
    locs[index] = s->loc;
    c->info->whiles = locs;

    LLVMValueRef iter = alloca_(c, c->i64);
    LLVMBuildStore(c->b, ci(c, 0), iter);
    LLVMBasicBlockRef head = block(c, "while"), check = block(c, "while.check"),
                      over = block(c, "while.maxiter"), body = block(c, "while.body"),
                      done = block(c, "while.end");
    LLVMBuildBr(c->b, head);
    enter(c, head);
    LLVMBuildCondBr(c->b, truth(c, s->cond), check, done);
    enter(c, check);
    LLVMValueRef it = LLVMBuildLoad2(c->b, c->i64, iter, "");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, it, ci(c, c->max_iter), ""), over, body);
    enter(c, over);
    LLVMBuildStore(c->b, LLVMConstInt(c->i32, (unsigned)index, 0), c->where);
    fail_with(c, GRADC_EMAXITER);
    enter(c, body);
    gen_block(c, s->body);
    assign(c, s->n, s->slots, s->next);
    LLVMBuildStore(c->b, add(c, it, ci(c, 1)), iter);
    LLVMBuildBr(c->b, head);
    enter(c, done);
    if (s->count_slot >= 0)
        LLVMBuildStore(c->b, LLVMBuildSIToFP(c->b, LLVMBuildLoad2(c->b, c->i64, iter, ""), c->f64, ""),
                       c->slotvar[s->count_slot]);
}

static void gen_for(Cg *c, const Stmt *s)
{
    assign(c, s->n, s->slots, s->vals);
    need(c, s->count);
    LLVMValueRef n = trips(c, get(c, s->count));
    need(c, NULL); /* the loop's invariants */
    Loop lp;
    LLVMValueRef t = loop_begin(c, &lp, ci(c, 0), n);
    if (s->index_slot >= 0) {
        LLVMValueRef i = s->reverse ? LLVMBuildSub(c->b, n, t, "") : add(c, t, ci(c, 1));
        LLVMBuildStore(c->b, LLVMBuildSIToFP(c->b, i, c->f64, ""), c->slotvar[s->index_slot]);
    }
    gen_block(c, s->body);
    assign(c, s->n, s->slots, s->next);
    loop_end(c, &lp);
}

/* The work stack: entries are copied to and from stack[sp..], sp counted in
 * doubles; its size was checked at entry, so no bound is tested here. */
static LLVMValueRef stack_at(Cg *c) { return at(c, c->stack, LLVMBuildLoad2(c->b, c->i64, c->sp, "")); }

static void stack_move(Cg *c, LLVMValueRef sp) { LLVMBuildStore(c->b, sp, c->sp); }

static void push_stack(Cg *c, const Stmt *s)
{
    for (int i = 0; i < s->n; i++) {
        Node *x = s->vals[i];
        need(c, x);
        LLVMValueRef top = stack_at(c), n = count(c, x);
        if (is_scalar(x))
            LLVMBuildStore(c->b, get(c, x), top);
        else
            LLVMBuildMemCpy(c->b, top, 8, get(c, x), 8, mul(c, n, ci(c, 8)));
        stack_move(c, add(c, LLVMBuildLoad2(c->b, c->i64, c->sp, ""), n));
    }
}

static void pop_stack(Cg *c, const Stmt *s)
{
    for (int i = s->n - 1; i >= 0; i--) {
        int sl = s->slots[i];
        Shape sh = c->m->ir->slots.data[sl].shape;
        LLVMValueRef n = mul(c, dimv(c, sh.rows), dimv(c, sh.cols));
        stack_move(c, LLVMBuildSub(c->b, LLVMBuildLoad2(c->b, c->i64, c->sp, ""), n, ""));
        LLVMValueRef top = stack_at(c);
        if (c->p->slotbuf[sl] >= 0)
            LLVMBuildMemCpy(c->b, c->bufp[c->p->slotbuf[sl]], 8, top, 8, mul(c, n, ci(c, 8)));
        else
            LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, c->f64, top, ""), c->slotvar[sl]);
    }
}

static void gen_push(Cg *c, const Stmt *s)
{
    if (c->p->stack) {
        push_stack(c, s);
        return;
    }
    LLVMTypeRef pt[3] = {c->ptr, c->ptr, c->i64};
    LLVMValueRef bad = LLVMConstInt(c->i1, 0, 0);
    for (int i = 0; i < s->n; i++) {
        Node *x = s->vals[i];
        need(c, x);
        LLVMValueRef args[3] = {c->tape, argbuf(c, x), count(c, x)};
        LLVMValueRef st = callf(c, "gradc_tape_push", c->i32, pt, 3, args);
        bad = LLVMBuildOr(c->b, bad, LLVMBuildICmp(c->b, LLVMIntNE, st, LLVMConstInt(c->i32, 0, 0), ""), "");
    }
    LLVMBasicBlockRef oom = block(c, "push.nomem"), ok = block(c, "push.ok");
    LLVMBuildCondBr(c->b, bad, oom, ok);
    enter(c, oom);
    fail_with(c, GRADC_ENOMEM);
    enter(c, ok);
}

static void gen_pop(Cg *c, const Stmt *s)
{
    if (c->p->stack) {
        pop_stack(c, s);
        return;
    }
    LLVMTypeRef pt[3] = {c->ptr, c->ptr, c->i64};
    for (int i = s->n - 1; i >= 0; i--) {
        int sl = s->slots[i];
        Shape sh = c->m->ir->slots.data[sl].shape;
        LLVMValueRef dst = c->p->slotbuf[sl] >= 0 ? c->bufp[c->p->slotbuf[sl]] : c->slotvar[sl];
        LLVMValueRef args[3] = {c->tape, dst, mul(c, dimv(c, sh.rows), dimv(c, sh.cols))};
        callf(c, "gradc_tape_pop", LLVMVoidTypeInContext(c->ctx), pt, 3, args);
    }
}

void gen_block(Cg *c, const Block *b)
{
    for (int i = 0; b && i < b->n && !c->failed; i++) {
        const Stmt *s = b->stmts[i];
        switch (s->kind) {
        case S_SET: assign(c, s->n, s->slots, s->vals); break;
        case S_IF: gen_if(c, s); break;
        case S_WHILE: gen_while(c, s); break;
        case S_FOR: gen_for(c, s); break;
        case S_PUSH: gen_push(c, s); break;
        case S_POP: gen_pop(c, s); break;
        }
    }
}

void gen_results(Cg *c)
{
    const Func *f = c->p->f;
    int ng = f->grads ? c->m->nwrt : 0;
    need(c, f->value);
    for (int i = 0; i < ng; i++)
        need(c, f->grads[i]);
    LLVMBasicBlockRef has = block(c, "out"), next = block(c, "grads");
    LLVMBuildCondBr(c->b, LLVMBuildIsNull(c->b, c->out, ""), next, has);
    enter(c, has);
    if (is_scalar(f->value))
        LLVMBuildStore(c->b, get(c, f->value), c->out);
    else
        store_all(c, f->value, c->out, false);
    LLVMBuildBr(c->b, next);
    enter(c, next);
    if (!ng)
        return;
    LLVMValueRef acc = LLVMBuildICmp(c->b, LLVMIntNE, LLVMBuildAnd(c->b, c->flags, LLVMConstInt(c->i32, 1, 0), ""),
                                     LLVMConstInt(c->i32, 0, 0), "");
    LLVMBasicBlockRef yes = block(c, "accumulate"), no = block(c, "overwrite"), done = block(c, "stored");
    LLVMBuildCondBr(c->b, acc, yes, no);
    for (int addto = 1; addto >= 0; addto--) {
        enter(c, addto ? yes : no);
        for (int i = 0; i < ng; i++) {
            Node *g = f->grads[i];
            if (is_scalar(g)) {
                LLVMValueRef v = get(c, g);
                if (addto)
                    v = fplus(c, LLVMBuildLoad2(c->b, c->f64, c->grads[i], ""), v);
                LLVMBuildStore(c->b, v, c->grads[i]);
            } else {
                store_all(c, g, c->grads[i], addto);
            }
        }
        LLVMBuildBr(c->b, done);
    }
    enter(c, done);
}
