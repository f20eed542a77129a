/* tangent.c — forward mode over the gradient program: Hessian-vector
 * products (spec §9), forward-over-reverse (Pearlmutter 1994).
 *
 * Module.grad computes the value and the gradient g(x) with statements
 * (SET, IF, WHILE, FOR, PUSH, POP) around the DAG.  Pushing a direction v
 * forward through that program — every quantity q paired with its tangent
 * dq = (d/de) q(x + e v) at e = 0 — gives at the gradient nodes
 * dg = H v.  So:
 *   - every slot whose value can depend on v gets a tangent slot, written by
 *     every statement that writes the slot, with the tangent of its value,
 *     in the same parallel assignment (an IF's results, a loop's initial and
 *     next values, SET); PUSH pushes a slot's tangent after the slots, POP
 *     pops it back, so the tape carries tangents with values;
 *   - every node gets a tangent node by a rule per op (jvp_rules below, the
 *     directional derivative of the op); a node's tangent is an expression
 *     of the same slots and tangent slots, so one tangent node serves every
 *     place the node is evaluated;
 *   - conditions, loop counts and trip counts are not differentiated:
 *     control follows the path the values take, as the gradient does.
 * The result is a module whose inputs are the program's followed by one
 * direction v_k per wrt input, and whose gradient function returns the
 * value, the gradient and H v (docs/design.md, "Second order").
 *
 * Conventions fall out of the first-order rules: relu' = (x > 0) and
 * abs' = sign(x) have zero tangents, so relu'' = abs'' = 0 at every point,
 * kinks included (PyTorch's double backward); so do max/min's tie rules.
 * An op with no rule here stops the pass with an error, never a silent 0. */
#include "gradc.h"

#include "gradc/runtime.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef VEC(Node *) NodeVec;

typedef struct Tan {
    Module *m;
    Ir *ir;
    Arena *a;
    int nnodes;           /* nodes of the program: the pass asks tangents of these only */
    int ninputs;          /* the program's inputs; directions follow */
    int *dir;             /* per input: its wrt position k (direction input ninputs + k), -1 */
    signed char *dep;     /* per node: may depend on the direction */
    SlotSet *active;      /* slots that carry a tangent */
    IntMap *tslot;        /* slot → its tangent slot (as intptr_t + 1) */
    Node **tan;           /* per node: its tangent (NULL: zero) once done[] */
    bool *done;
    NodeVec stack;
    bool failed;
} Tan;

typedef Node *JvpRule(Tan *t, Node *n, Node *ta, Node *tb);
static JvpRule *const jvp_rules[OP_COUNT];
static JvpRule jvp_zero;

/* ---- tangent arithmetic: NULL is a zero tangent ---- */

#define IR (t->ir)
#define A (n->args[0])
#define B (n->args[1])
static Node *K(Tan *t, double v) { return mk_const(IR, v); }
static Node *op1(Tan *t, Op op, Node *x) { return mk1(IR, op, x); }
static Node *op2(Tan *t, Op op, Node *x, Node *y) { return mk2(IR, op, x, y); }
static Node *mul(Tan *t, Node *x, Node *y) { return x && y ? mk2(IR, OP_MUL, x, y) : NULL; }
static Node *dvd(Tan *t, Node *x, Node *y) { return x ? mk2(IR, OP_DIV, x, y) : NULL; }
static Node *neg(Tan *t, Node *x) { return x ? mk1(IR, OP_NEG, x) : NULL; }
static Node *plus(Tan *t, Node *x, Node *y) { return !x ? y : !y ? x : mk2(IR, OP_ADD, x, y); }
static Node *minus(Tan *t, Node *x, Node *y) { return !y ? x : !x ? neg(t, y) : mk2(IR, OP_SUB, x, y); }
static Node *matmul(Tan *t, Node *x, Node *y) { return x && y ? mk2(IR, OP_MATMUL, x, y) : NULL; }
static Node *unary(Tan *t, Op op, Node *x) { return x ? mk1(IR, op, x) : NULL; }

/* A tangent of a node's shape: a scalar, row or column one expanded over a
 * broadcast result. */
static Node *fit(Tan *t, Node *d, Shape s)
{
    if (!d || shape_eq(d->shape, s))
        return d;
    return mk_bcast(IR, d, s);
}

static Node *jvp_zero(Tan *t, Node *n, Node *ta, Node *tb)
{
    (void)t, (void)n, (void)ta, (void)tb;
    return NULL;
}
static Node *jvp_add(Tan *t, Node *n, Node *ta, Node *tb) { (void)n; return plus(t, ta, tb); }
static Node *jvp_sub(Tan *t, Node *n, Node *ta, Node *tb) { (void)n; return minus(t, ta, tb); }
static Node *jvp_mul(Tan *t, Node *n, Node *ta, Node *tb) { return plus(t, mul(t, ta, B), mul(t, A, tb)); }
/* d(a/b) = da/b - a db/b^2, the adjoint's form (diff.c) */
static Node *jvp_div(Tan *t, Node *n, Node *ta, Node *tb)
{
    return minus(t, dvd(t, ta, B), dvd(t, mul(t, A, tb), mul(t, B, B)));
}
static Node *jvp_divsafe(Tan *t, Node *n, Node *ta, Node *tb)
{
    Node *x = ta ? op2(t, OP_DIVSAFE, ta, B) : NULL;
    Node *y = tb ? op2(t, OP_DIVSAFE, mul(t, A, tb), mul(t, B, B)) : NULL;
    return minus(t, x, y);
}
/* d(a^b) = b a^(b-1) da + a^b log(a) db; the log term only when b varies */
static Node *jvp_pow(Tan *t, Node *n, Node *ta, Node *tb)
{
    Node *x = mul(t, ta, mul(t, B, op2(t, OP_POW, A, op2(t, OP_SUB, B, K(t, 1)))));
    return plus(t, x, mul(t, tb, mul(t, n, op1(t, OP_LOG, A))));
}
/* max/min: the winner's tangent; a tie averages them (the adjoint's split) */
static Node *tie(Tan *t, Op strict, Node *x, Node *y)
{
    return op2(t, OP_ADD, op2(t, strict, x, y), mul(t, K(t, 0.5), op2(t, OP_EQ, x, y)));
}
static Node *jvp_max(Tan *t, Node *n, Node *ta, Node *tb)
{
    return plus(t, mul(t, ta, tie(t, OP_GT, A, B)), mul(t, tb, tie(t, OP_LT, A, B)));
}
static Node *jvp_min(Tan *t, Node *n, Node *ta, Node *tb)
{
    return plus(t, mul(t, ta, tie(t, OP_LT, A, B)), mul(t, tb, tie(t, OP_GT, A, B)));
}
static Node *jvp_clamplo(Tan *t, Node *n, Node *ta, Node *tb)
{
    return plus(t, mul(t, ta, op2(t, OP_GE, A, B)), mul(t, tb, op2(t, OP_LT, A, B)));
}
static Node *jvp_clamphi(Tan *t, Node *n, Node *ta, Node *tb)
{
    return plus(t, mul(t, ta, op2(t, OP_LE, A, B)), mul(t, tb, op2(t, OP_GT, A, B)));
}
/* polygamma(k, x): k is a literal order */
static Node *jvp_polygamma(Tan *t, Node *n, Node *ta, Node *tb)
{
    (void)ta;
    return mul(t, tb, op2(t, OP_POLYGAMMA, op2(t, OP_ADD, A, K(t, 1)), B));
}

/* Elementwise unary ops: the tangent is ta .* f'(a). */
#define SLOPE(name, expr)                                                    \
    static Node *jvp_##name(Tan *t, Node *n, Node *ta, Node *tb)             \
    {                                                                        \
        (void)tb;                                                            \
        return ta ? mul(t, ta, (expr)) : NULL;                               \
    }
static Node *one_minus_sq(Tan *t, Node *x) { return op2(t, OP_SUB, K(t, 1), op2(t, OP_MUL, x, x)); }
static Node *one_plus_sq(Tan *t, Node *x) { return op2(t, OP_ADD, K(t, 1), op2(t, OP_MUL, x, x)); }
static Node *erf_slope(Tan *t, Node *x)
{
    return op2(t, OP_MUL, K(t, 2 / sqrt(M_PI)), op1(t, OP_EXP, op1(t, OP_NEG, op2(t, OP_MUL, x, x))));
}
static Node *jvp_neg(Tan *t, Node *n, Node *ta, Node *tb) { (void)n, (void)tb; return neg(t, ta); }
SLOPE(exp, n)
SLOPE(log, op2(t, OP_DIV, K(t, 1), A))
SLOPE(sin, op1(t, OP_COS, A))
SLOPE(cos, op1(t, OP_NEG, op1(t, OP_SIN, A)))
SLOPE(tan, one_plus_sq(t, n))
SLOPE(tanh, one_minus_sq(t, n))
SLOPE(sqrt, op2(t, OP_DIV, K(t, 0.5), n))
SLOPE(abs, op1(t, OP_SIGN, A))
SLOPE(relu, op2(t, OP_GT, A, K(t, 0)))
SLOPE(log1p, op2(t, OP_DIV, K(t, 1), op2(t, OP_ADD, K(t, 1), A)))
SLOPE(sigmoid, op2(t, OP_MUL, n, op2(t, OP_SUB, K(t, 1), n)))
SLOPE(softplus, op1(t, OP_SIGMOID, A))
SLOPE(expm1, op1(t, OP_EXP, A))
SLOPE(atan, op2(t, OP_DIV, K(t, 1), one_plus_sq(t, A)))
SLOPE(asin, op2(t, OP_DIV, K(t, 1), op1(t, OP_SQRT, one_minus_sq(t, A))))
SLOPE(acos, op2(t, OP_DIV, K(t, -1), op1(t, OP_SQRT, one_minus_sq(t, A))))
SLOPE(sinh, op1(t, OP_COSH, A))
SLOPE(cosh, op1(t, OP_SINH, A))
SLOPE(erf, erf_slope(t, A))
SLOPE(erfc, op1(t, OP_NEG, erf_slope(t, A)))
SLOPE(lgamma, op1(t, OP_DIGAMMA, A))
SLOPE(digamma, op2(t, OP_POLYGAMMA, K(t, 1), A))
SLOPE(logsigmoid, op1(t, OP_SIGMOID, op1(t, OP_NEG, A)))
#undef SLOPE

/* Linear ops: the op of the tangent. */
static Node *jvp_linear(Tan *t, Node *n, Node *ta, Node *tb) { (void)tb; return unary(t, n->op, ta); }
/* x*y; an outer product (a column times a row) as the elementwise product
 * of their broadcasts, so that a sum of them (least squares' dA*x-side
 * tangent r*dx' + dr*x') is one fused loop, not an m×n buffer each */
static Node *product(Tan *t, Node *x, Node *y)
{
    if (!x || !y)
        return NULL;
    Dim one = dim_lit(1);
    if (!dim_eq(x->shape.cols, one) || !dim_eq(y->shape.rows, one) || dim_eq(x->shape.rows, one) ||
        dim_eq(y->shape.cols, one))
        return mk2(IR, OP_MATMUL, x, y);
    Shape s = shape_make(x->shape.rows, y->shape.cols);
    return mk2(IR, OP_MUL, mk_bcast(IR, x, s), mk_bcast(IR, y, s));
}
static Node *jvp_matmul(Tan *t, Node *n, Node *ta, Node *tb) { return plus(t, product(t, ta, B), product(t, A, tb)); }
/* d||a|| = <a, da>/||a||, and 0 at a = 0 (the adjoint's convention) */
static Node *jvp_norm(Tan *t, Node *n, Node *ta, Node *tb)
{
    (void)tb;
    return ta ? op2(t, OP_DIVSAFE, op1(t, OP_SUM, op2(t, OP_MUL, A, ta)), n) : NULL;
}
/* d logdet(A) = tr(inv(A) dA); d det(A) = det(A) tr(inv(A) dA) (Giles §2.2.2) */
static Node *jvp_logdet(Tan *t, Node *n, Node *ta, Node *tb)
{
    (void)tb, (void)n;
    return ta ? op1(t, OP_TRACE, op2(t, OP_MATMUL, op1(t, OP_INV, A), ta)) : NULL;
}
static Node *jvp_det(Tan *t, Node *n, Node *ta, Node *tb) { return mul(t, n, jvp_logdet(t, n, ta, tb)); }
/* d inv(A) = -inv(A) dA inv(A) */
static Node *jvp_inv(Tan *t, Node *n, Node *ta, Node *tb)
{
    (void)tb;
    return ta ? op1(t, OP_NEG, op2(t, OP_MATMUL, op2(t, OP_MATMUL, n, ta), n)) : NULL;
}
/* d logsumexp(a) = sum(softmax(a) .* da), softmax(a) = exp(a - n) */
static Node *jvp_logsumexp(Tan *t, Node *n, Node *ta, Node *tb)
{
    (void)tb;
    return ta ? op1(t, OP_SUM, op2(t, OP_MUL, op1(t, OP_EXP, op2(t, OP_SUB, A, n)), ta)) : NULL;
}
/* p = softmax(a): dp = p .* (da - sum(p .* da)) */
static Node *jvp_softmax(Tan *t, Node *n, Node *ta, Node *tb)
{
    (void)tb;
    return ta ? op2(t, OP_MUL, n, op2(t, OP_SUB, ta, op1(t, OP_SUM, op2(t, OP_MUL, n, ta)))) : NULL;
}

/* ---- broadcasting, reductions along a dimension, where (spec §8) ---- */

/* Linear ops of one operand (transpose, sum, sum along d, broadcast, diag,
 * tril …): the op of the tangent, with the node's index and shape. */
static Node *jvp_like(Tan *t, Node *n, Node *ta, Node *tb) { (void)tb; return ta ? mk_like(IR, n, ta, NULL) : NULL; }
static Node *along(Tan *t, Op op, Node *x, int d) { return mk_along(IR, op, x, d); }
/* amax/amin: the mean of the tangents of the entries equal to the result
 * (the adjoint shares g evenly among them, as PyTorch) */
static Node *jvp_extreme(Tan *t, Node *n, Node *ta, Node *tb)
{
    (void)tb;
    if (!ta)
        return NULL;
    Node *mask = op2(t, OP_EQ, A, n);
    if (shape_is_scalar(n->shape))
        return op2(t, OP_DIV, op1(t, OP_SUM, op2(t, OP_MUL, mask, ta)), op1(t, OP_SUM, mask));
    return op2(t, OP_DIV, along(t, OP_SUMD, op2(t, OP_MUL, mask, ta), n->index), along(t, OP_SUMD, mask, n->index));
}
/* l = logsumexp(X, d): dl = sum(exp(X - l) .* dX, d) */
static Node *jvp_lsed(Tan *t, Node *n, Node *ta, Node *tb)
{
    (void)tb;
    return ta ? along(t, OP_SUMD, op2(t, OP_MUL, op1(t, OP_EXP, op2(t, OP_SUB, A, n)), ta), n->index) : NULL;
}
/* P = softmax(X, d): dP = P .* (dX - sum(P .* dX, d)) */
static Node *jvp_softmaxd(Tan *t, Node *n, Node *ta, Node *tb)
{
    (void)tb;
    return ta ? op2(t, OP_MUL, n, op2(t, OP_SUB, ta, along(t, OP_SUMD, op2(t, OP_MUL, n, ta), n->index))) : NULL;
}
/* L = log_softmax(X, d): dL = dX - sum(exp(L) .* dX, d) */
static Node *jvp_logsoftmaxd(Tan *t, Node *n, Node *ta, Node *tb)
{
    (void)tb;
    return ta ? op2(t, OP_SUB, ta, along(t, OP_SUMD, op2(t, OP_MUL, op1(t, OP_EXP, n), ta), n->index)) : NULL;
}
/* PICK(c, a): a where c holds, exactly 0 elsewhere; c has no derivative */
static Node *jvp_pick(Tan *t, Node *n, Node *ta, Node *tb) { (void)ta; return tb ? op2(t, OP_PICK, A, tb) : NULL; }

/* ---- solve, chol, concatenation, slices ---- */

/* LU(A) is only an operand of SOLVE/SOLVET: its "tangent" is dA itself,
 * which their rules read (tangent() does not reshape it). */
static Node *jvp_lu(Tan *t, Node *n, Node *ta, Node *tb) { (void)t, (void)n, (void)tb; return ta; }
/* C = A \ B: dC = A \ (dB - dA C); C = A' \ B: dC = A' \ (dB - dA' C) */
static Node *jvp_solve(Tan *t, Node *n, Node *ta, Node *tb)
{
    Node *r = minus(t, tb, matmul(t, ta, n));
    return r ? op2(t, OP_SOLVE, A, r) : NULL;
}
static Node *jvp_solvet(Tan *t, Node *n, Node *ta, Node *tb)
{
    Node *r = minus(t, tb, matmul(t, unary(t, OP_TRANSPOSE, ta), n));
    return r ? op2(t, OP_SOLVET, A, r) : NULL;
}
/* L = chol(A) reads A's lower triangle, so it sees the symmetric S made of
 * dA's lower triangle; dL = L Phi(L^-1 S L^-T), Phi: the lower triangle
 * with half the diagonal (Murray 2016, eq. 8) */
static Node *jvp_chol(Tan *t, Node *n, Node *ta, Node *tb)
{
    (void)tb;
    if (!ta)
        return NULL;
    Node *low = op1(t, OP_TRIL, ta);
    Node *sym = op2(t, OP_SUB, op2(t, OP_ADD, low, op1(t, OP_TRANSPOSE, low)), op1(t, OP_DIAGM, op1(t, OP_DIAGV, ta)));
    Node *x = mk_solve(IR, n, sym, false);
    Node *m = mk_solve(IR, n, op1(t, OP_TRANSPOSE, x), false);
    Node *phi = op2(t, OP_SUB, op1(t, OP_TRIL, m), op2(t, OP_MUL, K(t, 0.5), op1(t, OP_DIAGM, op1(t, OP_DIAGV, m))));
    return op2(t, OP_MATMUL, n, phi);
}
static Node *jvp_cat(Tan *t, Node *n, Node *ta, Node *tb)
{
    if (!ta && !tb)
        return NULL;
    return op2(t, n->op, ta ? ta : mk_zero(IR, A->shape), tb ? tb : mk_zero(IR, B->shape));
}
/* SLICE and PAD are linear in their first operand; the offsets are integers */
static Node *jvp_block(Tan *t, Node *n, Node *ta, Node *tb)
{
    (void)tb;
    return ta ? mk3(IR, n->op, n->shape, ta, n->args[1], n->args[2], n->num) : NULL;
}
#undef A
#undef B

/* The forward-mode rule of each op, keyed by op.  An op missing here is an
 * error when a tangent reaches it (tangent_module), and the unit test
 * test_tangent fails for it: a new op needs its rule.  jvp_zero: the op's
 * derivative is zero (comparisons, sign, floor, not, detach) or it is a
 * leaf (INPUT and SLOT are the pass's own). */
static JvpRule *const jvp_rules[OP_COUNT] = {
    [OP_CONST] = jvp_zero, [OP_FILL] = jvp_zero, [OP_EYE] = jvp_zero, [OP_INPUT] = jvp_zero,
    [OP_SLOT] = jvp_zero, [OP_DIMVAL] = jvp_zero, [OP_COTAN] = jvp_zero,
    [OP_NEG] = jvp_neg, [OP_EXP] = jvp_exp, [OP_LOG] = jvp_log, [OP_SIN] = jvp_sin,
    [OP_COS] = jvp_cos, [OP_TAN] = jvp_tan, [OP_TANH] = jvp_tanh, [OP_SQRT] = jvp_sqrt,
    [OP_ABS] = jvp_abs, [OP_LOG1P] = jvp_log1p, [OP_SIGMOID] = jvp_sigmoid, [OP_RELU] = jvp_relu,
    [OP_SOFTPLUS] = jvp_softplus, [OP_EXPM1] = jvp_expm1, [OP_ATAN] = jvp_atan,
    [OP_ASIN] = jvp_asin, [OP_ACOS] = jvp_acos, [OP_SINH] = jvp_sinh, [OP_COSH] = jvp_cosh,
    [OP_ERF] = jvp_erf, [OP_ERFC] = jvp_erfc, [OP_LGAMMA] = jvp_lgamma,
    [OP_DIGAMMA] = jvp_digamma, [OP_LOGSIGMOID] = jvp_logsigmoid,
    [OP_FLOOR] = jvp_zero, [OP_SIGN] = jvp_zero, [OP_NOT] = jvp_zero, [OP_DETACH] = jvp_zero,
    [OP_ADD] = jvp_add, [OP_SUB] = jvp_sub, [OP_MUL] = jvp_mul, [OP_DIV] = jvp_div,
    [OP_DIVSAFE] = jvp_divsafe, [OP_POW] = jvp_pow, [OP_MAX] = jvp_max, [OP_MIN] = jvp_min,
    [OP_POLYGAMMA] = jvp_polygamma, [OP_CLAMPLO] = jvp_clamplo, [OP_CLAMPHI] = jvp_clamphi,
    [OP_LT] = jvp_zero, [OP_LE] = jvp_zero, [OP_GT] = jvp_zero, [OP_GE] = jvp_zero,
    [OP_EQ] = jvp_zero, [OP_NE] = jvp_zero, [OP_AND] = jvp_zero, [OP_OR] = jvp_zero,
    [OP_MATMUL] = jvp_matmul, [OP_TRANSPOSE] = jvp_linear, [OP_SUM] = jvp_linear,
    [OP_NORM] = jvp_norm, [OP_TRACE] = jvp_linear, [OP_DET] = jvp_det, [OP_LOGDET] = jvp_logdet,
    [OP_LOGSUMEXP] = jvp_logsumexp, [OP_INV] = jvp_inv, [OP_SOFTMAX] = jvp_softmax,
    [OP_DIAGM] = jvp_linear, [OP_DIAGV] = jvp_linear,
    /* spec §8 */
    [OP_BCAST] = jvp_like, [OP_SUMD] = jvp_like, [OP_TRIL] = jvp_like,
    [OP_AMAX] = jvp_extreme, [OP_AMIN] = jvp_extreme, [OP_AMAXD] = jvp_extreme, [OP_AMIND] = jvp_extreme,
    [OP_LSED] = jvp_lsed, [OP_SOFTMAXD] = jvp_softmaxd, [OP_LOGSOFTMAXD] = jvp_logsoftmaxd,
    [OP_PICK] = jvp_pick, [OP_LU] = jvp_lu, [OP_SOLVE] = jvp_solve, [OP_SOLVET] = jvp_solvet,
    [OP_CHOL] = jvp_chol, [OP_VCAT] = jvp_cat, [OP_HCAT] = jvp_cat,
    [OP_SLICE] = jvp_block, [OP_PAD] = jvp_block,
};

bool tangent_has_rule(Op op) { return op >= 0 && op < OP_COUNT && jvp_rules[op] != NULL; }

/* ---- which nodes and slots carry a tangent ---- */

/* dep[] for every node of the program, by id (operands are older). */
static void mark_nodes(Tan *t)
{
    for (int id = 0; id < t->nnodes; id++) {
        Node *n = t->ir->nodes.data[id];
        bool d = false;
        if (n->op == OP_INPUT)
            d = t->dir[n->index] >= 0;
        else if (n->op == OP_SLOT)
            d = slotset_has(t->active, n->index);
        else if (jvp_rules[n->op] != jvp_zero)   /* a missing rule counts: it is reported */
            for (int i = 0; i < n->nargs && !d; i++)
                d = t->dep[n->args[i]->id];
        t->dep[id] = d;
    }
}

static bool mark_slot(Tan *t, int slot, bool d)
{
    if (!d || slotset_has(t->active, slot))
        return false;
    slotset_add(t->active, slot);
    return true;
}

static bool mark_block(Tan *t, const Block *b);

static bool mark_stmt(Tan *t, const Stmt *s)
{
    bool changed = false;
    for (int k = 0; k < s->n; k++) {
        bool d = false;
        switch (s->kind) {
        case S_SET: d = t->dep[s->vals[k]->id]; break;
        case S_IF: d = t->dep[s->then_vals[k]->id] || t->dep[s->else_vals[k]->id]; break;
        case S_WHILE:
        case S_FOR: d = t->dep[s->vals[k]->id] || t->dep[s->next[k]->id]; break;
        case S_PUSH:
            /* the tape pairs a pushed slot with the same slot popped
             * (diff.c); anything else cannot carry its tangent */
            if (s->vals[k]->op != OP_SLOT) {
                diag_plain("internal error: --hessian: a pushed value is not a slot");
                t->failed = true;
            }
            break;
        case S_POP: break;   /* a popped slot is written by its construct too */
        }
        if (s->kind != S_PUSH && s->kind != S_POP)
            changed |= mark_slot(t, s->slots[k], d);
    }
    changed |= mark_block(t, s->then_block);
    changed |= mark_block(t, s->else_block);
    changed |= mark_block(t, s->body);
    return changed;
}

static bool mark_block(Tan *t, const Block *b)
{
    bool changed = false;
    for (int i = 0; b && i < b->n; i++)
        changed |= mark_stmt(t, b->stmts[i]);
    return changed;
}

/* ---- tangents of nodes ---- */

static int tslot_of(Tan *t, int slot)
{
    void **p = intmap_put(t->tslot, slot);
    if (!*p) {
        const Slot *s = &t->ir->slots.data[slot];
        int ts = ir_slot(t->ir, arena_printf(t->a, "t_%s", s->name), s->shape);
        *p = (void *)(intptr_t)(ts + 1);
    }
    return (int)(intptr_t)*p - 1;
}

static Node *leaf_tangent(Tan *t, Node *n)
{
    if (n->op == OP_INPUT)
        return mk_input(t->ir, t->ninputs + t->dir[n->index], n->shape);
    return mk_slot(t->ir, tslot_of(t, n->index));
}

/* The tangent of n (NULL: zero), operands first with an explicit stack (the
 * DAG is as deep as the program). */
static Node *tangent(Tan *t, Node *n)
{
    if (n->id >= t->nnodes || !t->dep[n->id])
        return NULL;
    NodeVec *st = &t->stack;
    int base = st->len;
    vec_push(t->a, st, n);
    while (st->len > base && !t->failed) {
        Node *x = st->data[st->len - 1];
        if (t->done[x->id]) {
            st->len--;
            continue;
        }
        bool wait = false;
        for (int i = 0; i < x->nargs; i++) {
            Node *c = x->args[i];
            if (t->dep[c->id] && !t->done[c->id]) {
                vec_push(t->a, st, c);
                wait = true;
            }
        }
        if (wait)
            continue;
        st->len--;
        Node *d = NULL;
        if (x->op == OP_INPUT || x->op == OP_SLOT) {
            d = leaf_tangent(t, x);
        } else if (!jvp_rules[x->op]) {
            diag_plain("internal error: --hessian: no forward-mode (tangent) rule for '%s' (%s); "
                       "second derivatives through it are not implemented",
                       op_info[x->op].text, op_info[x->op].name);
            t->failed = true;
        } else {
            Node *ta = x->nargs > 0 ? t->tan[x->args[0]->id] : NULL;
            Node *tb = x->nargs > 1 ? t->tan[x->args[1]->id] : NULL;
            d = jvp_rules[x->op](t, x, ta, tb);
            if (x->op != OP_LU)   /* LU's tangent is dA (jvp_lu) */
                d = fit(t, d, x->shape);
            if (d && node_is_zero(d))
                d = NULL;
        }
        t->tan[x->id] = d;
        t->done[x->id] = true;
    }
    st->len = base;
    return t->failed ? NULL : t->tan[n->id];
}

/* The tangent as a value to store: a zero of n's shape for none. */
static Node *tangent_value(Tan *t, Node *n)
{
    Node *d = tangent(t, n);
    return d ? d : mk_zero(t->ir, n->shape);
}

/* ---- tangents of statements ---- */

static Block *tan_block(Tan *t, const Block *b);

/* s with every active slot followed by its tangent slot (the same order in
 * slots and in every list of values, so PUSH and POP still pair up). */
static Stmt *tan_stmt(Tan *t, const Stmt *s)
{
    int extra = 0;
    for (int k = 0; k < s->n; k++) {
        int slot = s->kind == S_PUSH ? s->vals[k]->index : s->slots[k];
        extra += slotset_has(t->active, slot);
    }
    Stmt *c = stmt_new(t->a, s->kind, s->n + extra);
    Stmt fresh = *c;
    *c = *s;
    c->n = fresh.n;
    c->slots = fresh.slots;
    c->vals = fresh.vals;
    c->then_vals = fresh.then_vals;
    c->else_vals = fresh.else_vals;
    c->next = fresh.next;
    int j = s->n;
    for (int k = 0; k < s->n; k++) {
        c->slots[k] = s->slots[k];
        c->vals[k] = s->vals[k];
        if (s->kind == S_IF) {
            c->then_vals[k] = s->then_vals[k];
            c->else_vals[k] = s->else_vals[k];
        }
        if (s->kind == S_WHILE || s->kind == S_FOR)
            c->next[k] = s->next[k];
        int slot = s->kind == S_PUSH ? s->vals[k]->index : s->slots[k];
        if (!slotset_has(t->active, slot))
            continue;
        int ts = tslot_of(t, slot);
        switch (s->kind) {
        case S_SET: c->vals[j] = tangent_value(t, s->vals[k]); break;
        case S_PUSH: c->vals[j] = mk_slot(t->ir, ts); break;
        case S_POP: break;
        case S_IF:
            c->then_vals[j] = tangent_value(t, s->then_vals[k]);
            c->else_vals[j] = tangent_value(t, s->else_vals[k]);
            break;
        case S_WHILE:
        case S_FOR:
            c->vals[j] = tangent_value(t, s->vals[k]);
            c->next[j] = tangent_value(t, s->next[k]);
            break;
        }
        c->slots[j++] = ts;
    }
    if (s->then_block)
        c->then_block = tan_block(t, s->then_block);
    if (s->else_block)
        c->else_block = tan_block(t, s->else_block);
    if (s->body)
        c->body = tan_block(t, s->body);
    return c;
}

static Block *tan_block(Tan *t, const Block *b)
{
    Block *out = block_new(t->a);
    for (int i = 0; i < b->n && !t->failed; i++)
        block_push(t->a, out, tan_stmt(t, b->stmts[i]));
    return out;
}

/* ---- tangent slots no result reads ---- */

/* Tangents never feed values or conditions, so a tangent slot is needed
 * only when H v reads it, directly or through the values of needed tangent
 * slots; the others are dropped from every statement (D2L's while/if is
 * piecewise linear: H v = 0, and t_b = 2 .* t_b per iteration is dead).  A
 * pushed tangent slot is popped back into itself, so push and pop go
 * together. */
typedef struct Live {
    Tan *t;
    bool *is_tan, *live, *seen;   /* per slot, per slot, per node */
    VEC(NodeVec) writers;          /* per slot: the values written to it */
    VEC(int) work;
    NodeVec stack;
} Live;

static int entry_slot(const Stmt *s, int k) { return s->kind == S_PUSH ? s->vals[k]->index : s->slots[k]; }

static void add_writer(Live *l, int slot, Node *v)
{
    if (v && l->is_tan[slot])
        vec_push(l->t->a, &l->writers.data[slot], v);
}

static void find_writers(Live *l, const Block *b)
{
    for (int i = 0; b && i < b->n; i++) {
        const Stmt *s = b->stmts[i];
        for (int k = 0; s->kind != S_PUSH && s->kind != S_POP && k < s->n; k++) {
            add_writer(l, s->slots[k], s->vals[k]);
            add_writer(l, s->slots[k], s->then_vals[k]);
            add_writer(l, s->slots[k], s->else_vals[k]);
            add_writer(l, s->slots[k], s->next[k]);
        }
        find_writers(l, s->then_block);
        find_writers(l, s->else_block);
        find_writers(l, s->body);
    }
}

/* Marks the tangent slots root reads (each node walked once in all). */
static void read_slots(Live *l, Node *root)
{
    vec_push(l->t->a, &l->stack, root);
    while (l->stack.len) {
        Node *n = l->stack.data[--l->stack.len];
        if (l->seen[n->id])
            continue;
        l->seen[n->id] = true;
        if (n->op == OP_SLOT && l->is_tan[n->index] && !l->live[n->index]) {
            l->live[n->index] = true;
            vec_push(l->t->a, &l->work, n->index);
        }
        for (int i = 0; i < n->nargs; i++)
            vec_push(l->t->a, &l->stack, n->args[i]);
    }
}

static void drop_dead(Live *l, Block *b)
{
    for (int i = 0; b && i < b->n; i++) {
        Stmt *s = b->stmts[i];
        int n = 0;
        for (int k = 0; k < s->n; k++) {
            int slot = entry_slot(s, k);
            if (l->is_tan[slot] && !l->live[slot])
                continue;
            s->slots[n] = s->slots[k], s->vals[n] = s->vals[k], s->then_vals[n] = s->then_vals[k];
            s->else_vals[n] = s->else_vals[k], s->next[n] = s->next[k];
            n++;
        }
        s->n = n;
        drop_dead(l, s->then_block);
        drop_dead(l, s->else_block);
        drop_dead(l, s->body);
    }
}

static void prune_tangents(Tan *t, Block *body, Node **hv, int k)
{
    int ns = t->ir->slots.len, nn = t->ir->nnodes;
    Live l = {.t = t};
    l.is_tan = arena_alloc(t->a, (size_t)ns + 1);
    l.live = arena_alloc(t->a, (size_t)ns + 1);
    l.seen = arena_alloc(t->a, (size_t)nn + 1);
    for (int s = 0; s < ns; s++) {
        void **p = intmap_find(t->tslot, s);
        if (p && *p)
            l.is_tan[(int)(intptr_t)*p - 1] = true;
    }
    for (int s = 0; s < ns; s++)
        vec_push(t->a, &l.writers, ((NodeVec){0}));
    find_writers(&l, body);
    for (int i = 0; i < k; i++)
        read_slots(&l, hv[i]);
    while (l.work.len) {
        NodeVec *w = &l.writers.data[l.work.data[--l.work.len]];
        for (int i = 0; i < w->len; i++)
            read_slots(&l, w->data[i]);
    }
    drop_dead(&l, body);
}

/* ---- the Hessian-vector module ---- */

Module *tangent_module(Module *m)
{
    if (!m->grad.value)
        diff_reverse(m);
    if (!shape_is_scalar(m->fwd.value->shape)) {
        const char *shape = shape_str(m->arena, m->fwd.value->shape, m->dims);
        diag_error(m->src, (Loc){0, 0}, "--hessian needs a scalar output; %s is %s",
                   m->output_name ? m->output_name : "the output", shape);
        return NULL;
    }
    Arena *a = m->arena;
    Tan *t = arena_alloc(a, sizeof *t);
    t->m = m;
    t->ir = m->ir;
    t->a = a;
    t->nnodes = m->ir->nnodes;
    t->ninputs = m->ninputs;
    t->dir = arena_alloc(a, sizeof(int) * (size_t)(m->ninputs + 1));
    for (int i = 0; i < m->ninputs; i++)
        t->dir[i] = -1;
    for (int k = 0; k < m->nwrt; k++)
        t->dir[m->wrt[k]] = k;
    t->dep = arena_alloc(a, (size_t)t->nnodes + 1);
    t->active = slotset_new(a);
    t->tslot = intmap_new(a);
    t->tan = arena_alloc(a, sizeof(Node *) * (size_t)(t->nnodes + 1));
    t->done = arena_alloc(a, (size_t)t->nnodes + 1);
    /* slots become active until nothing changes (a loop activates its own) */
    do
        mark_nodes(t);
    while (mark_block(t, m->grad.body) && !t->failed);

    Block *body = tan_block(t, m->grad.body);
    int k = m->nwrt;
    Node **grads = arena_alloc(a, sizeof(Node *) * (size_t)(2 * k + 1));
    for (int i = 0; i < k && !t->failed; i++) {
        grads[i] = m->grad.grads[i];
        grads[k + i] = tangent_value(t, m->grad.grads[i]);
    }
    if (t->failed)
        return NULL;
    prune_tangents(t, body, grads + k, k);

    Module *h = arena_alloc(a, sizeof *h);
    *h = *m;
    h->ninputs = m->ninputs + k;
    h->inputs = arena_alloc(a, sizeof(Input) * (size_t)(h->ninputs + 1));
    memcpy(h->inputs, m->inputs, sizeof(Input) * (size_t)m->ninputs);
    h->nwrt = 2 * k;
    h->wrt = arena_alloc(a, sizeof(int) * (size_t)(h->nwrt + 1));
    for (int i = 0; i < k; i++) {
        const Input *x = &m->inputs[m->wrt[i]];
        /* a direction is passed by pointer even for a scalar (spec §9) */
        h->inputs[m->ninputs + i] = (Input){arena_printf(a, "v_%s", x->name), x->loc,
                                            x->ndims ? x->ndims : 1, x->shape};
        h->wrt[i] = m->wrt[i];
        h->wrt[k + i] = m->ninputs + i;
    }
    /* auxiliary outputs (spec §8) come out with the value, as from m->grad */
    h->grad = (Func){.body = body, .value = m->grad.value, .grads = grads, .aux = m->grad.aux};
    return h;
}

/* ---- Hessians from Hessian-vector products ---- */

int64_t hessian_order(const Module *h, const int64_t *dims)
{
    int64_t n = 0;
    for (int i = 0; i < h->nwrt / 2; i++) {
        Shape s = h->inputs[h->wrt[i]].shape;
        n += shape_rows(s, dims) * shape_cols(s, dims);
    }
    return n;
}

int hessian_eval(const Module *h, Jit *jit, const Bindings *b, double *value, double **grads,
                 double *H, Loc *where)
{
    int k = h->nwrt / 2, ni = h->ninputs - k;
    int64_t n = hessian_order(h, b->dims);
    double *v = calloc((size_t)(n > 0 ? n : 1), sizeof *v), *hv = calloc((size_t)(n > 0 ? n : 1), sizeof *hv);
    const double **in = calloc((size_t)h->ninputs, sizeof *in);
    double **out = calloc((size_t)(2 * k + 1), sizeof *out), **scratch = calloc((size_t)(k + 1), sizeof *scratch);
    int status = v && hv && in && out && scratch ? GRADC_OK : GRADC_ENOMEM;
    for (int i = 0; i < ni && !status; i++)
        in[i] = b->inputs[i];
    for (int64_t off = 0, i = 0; i < k && !status; i++) {
        Shape s = h->inputs[h->wrt[i]].shape;
        in[ni + i] = v + off;
        out[k + i] = hv + off;
        out[i] = grads && grads[i] ? grads[i] : (scratch[i] = calloc((size_t)(shape_rows(s, b->dims) * shape_cols(s, b->dims)) + 1, sizeof(double)));
        if (!out[i])
            status = GRADC_ENOMEM;
        off += shape_rows(s, b->dims) * shape_cols(s, b->dims);
    }
    Bindings hb = *b;
    hb.inputs = in;
    /* column j of H is H e_j: one product per unit direction (one run when
     * there is nothing to differentiate, for the value and gradient) */
    for (int64_t j = 0; j < (n > 0 ? n : 1) && !status; j++) {
        if (n > 0)
            v[j] = 1;
        status = jit ? jit_run(jit, true, &hb, value, out, where)
                     : eval_func(h, &h->grad, &hb, value, out, where);
        if (n > 0) {
            v[j] = 0;
            memcpy(H + j * n, hv, sizeof(double) * (size_t)n);
        }
    }
    /* exactly symmetric: (H + H')/2, one rounding shared by both entries;
     * + 0.0 prints a zero as 0, not -0 (NAME_hessian does the same) */
    for (int64_t i = 0; i < n && !status; i++) {
        H[i * n + i] += 0.0;
        for (int64_t j = i + 1; j < n; j++)
            H[i * n + j] = H[j * n + i] = 0.5 * (H[i * n + j] + H[j * n + i]) + 0.0;
    }
    for (int i = 0; i < k && scratch; i++)
        free(scratch[i]);
    free(v), free(hv), free(in), free(out), free(scratch);
    return status;
}

int64_t hessian_size(const Module *m, const int64_t *dims)
{
    int64_t n = 0;
    for (int i = 0; i < m->nwrt; i++) {
        Shape s = m->inputs[m->wrt[i]].shape;
        n += shape_rows(s, dims) * shape_cols(s, dims);
    }
    return n;
}

int hessian_closed_eval(const Module *hc, Jit *jit, const Bindings *b, double *H, Loc *where)
{
    double value, *out[1] = {H};
    Bindings hb = *b;
    hb.cotangent = NULL;   /* H is of the output itself; callers scale it */
    hb.aux = NULL;
    return jit ? jit_run(jit, true, &hb, &value, out, where) : eval_func(hc, &hc->grad, &hb, &value, out, where);
}
