/* diff_rules.c — the adjoint rules of reverse mode, one per op.
 *
 * A table indexed by op (GRADC_OPS's adj column; Giles 2008, the Matrix
 * Cookbook; docs/design.md), and the helpers that build an adjoint
 * expression while keeping where's masks outside it (spec §8).  Split from
 * diff.c: the rules only call diff_add (diff.c) and know nothing of frames'
 * bookkeeping; diff.c applies them through diff_adjoint_rules. */
#include "diff.h"

#include <math.h>

/* The rules' short name for diff_add. */
static void add(Frame *F, Node *c, Node *g) { diff_add(F, c, g); }

/* ---- the adjoint rules: g is the adjoint of n; each adds to n's operands ---- */

#define IR (F->d->ir)
#define A (n->args[0])
#define B (n->args[1])
/* The gradient program's adjoint expressions are not differentiated again
 * unless a grad() value inside a program is (Diff.keep_detach) or --hessian
 * pushes tangents through them (Module.keep_detach): only then does
 * detach(e) stay a constant in them; otherwise it is just the value e. */
static Node *val_of(const Frame *F, Node *x)
{
    return x->op == OP_DETACH && !F->d->keep_detach && !F->d->m->keep_detach ? x->args[0] : x;
}
#define val(x) val_of(F, x)
static Node *K(Frame *F, double v) { return mk_const(IR, v); }

/* The side of a where that was not taken contributes an exact 0 to the
 * gradient, even where its own derivative is Inf or NaN (spec §8): its
 * adjoint is masked, PICK(k, h), and a derivative factor d is applied
 * inside the mask, PICK(k, h .* d), never as PICK(k, h) .* d, where 0 * Inf
 * = NaN.  So the mask is re-applied after every step of the chain rule
 * through elementwise ops (JAX's "double where", made automatic;
 * docs/design.md).  Nested masks are peeled with a loop (a chain of wheres
 * nests them as deep as the program). */
static bool finite_const(const Node *n)
{
    return (n->op == OP_CONST || n->op == OP_FILL) && isfinite(n->num);
}
/* A masked adjoint reduced to a scalar or along a dimension (a side of the
 * where that was broadcast): sum(PICK(k, h)) or sum(PICK(k, h), d), times
 * constants, negated; that sum, else NULL. */
static Node *summed_mask(Node *g)
{
    while (g->op == OP_NEG || (g->op == OP_MUL && finite_const(g->args[0])))
        g = g->args[g->op == OP_MUL];
    return (g->op == OP_SUM || g->op == OP_SUMD) && g->args[0]->op == OP_PICK ? g : NULL;
}
/* PICK(k, h), or PICK(k, h) expanded (BCAST) */
static bool is_pick(const Node *g)
{
    return g->op == OP_PICK || (g->op == OP_BCAST && g->args[0]->op == OP_PICK);
}
static bool is_masked(Node *g) { return is_pick(g) || summed_mask(g); }
/* The mask of a masked adjoint, else NULL.  A sum is masked by "some entry
 * of it was taken", the same sum of PICK(k, 1) > 0, built only where it is
 * needed (a derivative factor, or a sum with another masked adjoint). */
Node *diff_mask_of(Ir *ir, Node *g)
{
    if (is_pick(g))
        return g->op == OP_PICK ? g->args[0] : g->args[0]->args[0];
    Node *s = summed_mask(g);
    if (!s)
        return NULL;
    Node *k = s->args[0]->args[0], *ones = mk2(ir, OP_PICK, k, mk_const(ir, 1));
    if (shape_is_scalar(k->shape))
        return k;
    Node *taken = s->op == OP_SUM ? mk1(ir, OP_SUM, ones) : mk_along(ir, OP_SUMD, ones, s->index);
    return mk2(ir, OP_GT, taken, mk_const(ir, 0));
}
static Node *masked(Frame *F, Op op, Node *g, Node *d)
{
    NodeVec ks = {0};
    if (!is_pick(g))
        return mk2(IR, OP_PICK, diff_mask_of(IR, g), mk2(IR, op, g, d));
    /* PICK(k, h) expanded is PICK(k, h expanded): h meets d at d's shape */
    for (; is_pick(g); g = g->args[1]) {
        if (g->op == OP_BCAST)
            g = g->args[0];
        vec_push(F->d->a, &ks, g->args[0]);
    }
    Node *r = op == OP_NEG ? mk1(IR, OP_NEG, g) : mk2(IR, op, g, d);
    for (int i = ks.len - 1; i >= 0; i--)
        r = mk2(IR, OP_PICK, ks.data[i], r);
    return r;
}

/* A where whose condition is a scalar chose a whole value: its mask stays
 * outside every op the adjoint then goes through that is linear in it (a
 * product with a NaN matrix, a solve on singular factors, a transpose):
 * PICK(k, f(h)), not f(PICK(k, h)).  zero_in: op is 0 where its operand i
 * is 0, whatever the other operand. */
static bool zero_in(Op op, int i)
{
    switch (op) {
    case OP_MUL: case OP_MATMUL: case OP_TRANSPOSE: case OP_NEG: case OP_SUM: case OP_TRIL:
    case OP_DIAGM: case OP_DIAGV: case OP_KRON: case OP_FLATTEN:
        return true;
    case OP_DIV: case OP_DIVSAFE: return i == 0;
    case OP_SOLVE: case OP_SOLVET: return i == 1;
    default: return false;
    }
}
/* The scalar mask of x = PICK(k, h), or of x = PICK(k, h) expanded (the
 * simplifier keeps BCAST outermost), else NULL; unmask gives h (expanded). */
static Node *whole_mask(const Node *x)
{
    const Node *p = x->op == OP_BCAST ? x->args[0] : x;
    return p->op == OP_PICK && shape_is_scalar(p->args[0]->shape) ? p->args[0] : NULL;
}
static Node *unmask(Frame *F, Node *x)
{
    return x->op == OP_BCAST ? mk_bcast(IR, x->args[0]->args[1], x->shape) : x->args[1];
}
static Node *peel(Frame *F, Node *x, NodeVec *ks)
{
    for (Node *k; (k = whole_mask(x)); x = unmask(F, x))
        vec_push(F->d->a, ks, k);
    return x;
}

/* op(x) or op(x, y) in an adjoint rule, keeping where's masks outside
 * (above): whole-value masks through linear ops (through + and - when both
 * sides have the same ones), elementwise masks through *, / and -. */
Node *diff_build(Frame *F, Op op, Node *x, Node *y)
{
    NodeVec ks = {0};
    x = val(x);
    y = y ? val(y) : NULL;
    if (y && (op == OP_ADD || op == OP_SUB)) {
        for (Node *k; (k = whole_mask(x)) && k == whole_mask(y); x = unmask(F, x), y = unmask(F, y))
            vec_push(F->d->a, &ks, k);
    } else {
        if (zero_in(op, 0))
            x = peel(F, x, &ks);
        if (y && zero_in(op, 1))
            y = peel(F, y, &ks);
    }
    Node *r;
    if (op == OP_MUL && ((summed_mask(x) && finite_const(y)) || (summed_mask(y) && finite_const(x))))
        r = mk2(IR, op, x, y);   /* 0 times it is 0: no mask needed */
    else if ((op == OP_MUL || op == OP_DIV || op == OP_DIVSAFE) && is_masked(x))
        r = masked(F, op, x, y);
    else if (op == OP_MUL && is_masked(y))
        r = masked(F, op, y, x);
    else if (op == OP_NEG && is_pick(x))
        r = masked(F, op, x, NULL);
    else
        r = y ? mk2(IR, op, x, y) : mk1(IR, op, x);
    for (int i = ks.len - 1; i >= 0; i--)
        r = mk2(IR, OP_PICK, ks.data[i], r);
    return r;
}
static Node *neg(Frame *F, Node *x) { return diff_build(F, OP_NEG, x, NULL); }
/* a' \ b (b an adjoint: whole-value masks outside) */
static Node *solve_t(Frame *F, Node *a, Node *b)
{
    NodeVec ks = {0};
    Node *r = mk_solve(IR, a, peel(F, val(b), &ks), true);
    for (int i = ks.len - 1; i >= 0; i--)
        r = mk2(IR, OP_PICK, ks.data[i], r);
    return r;
}
static Node *tr(Frame *F, Node *x) { return diff_build(F, OP_TRANSPOSE, x, NULL); }
static Node *op1(Frame *F, Op op, Node *x) { return diff_build(F, op, x, NULL); }
static Node *op2(Frame *F, Op op, Node *x, Node *y) { return diff_build(F, op, x, y); }
static Node *mul(Frame *F, Node *x, Node *y) { return diff_build(F, OP_MUL, x, y); }
static Node *half_tie(Frame *F, Op strict, Node *x, Node *y)
{
    /* max/min: the winner takes g; a tie splits it, as PyTorch's maximum does */
    return op2(F, OP_ADD, op2(F, strict, x, y), mul(F, K(F, 0.5), op2(F, OP_EQ, x, y)));
}

static void adj_add(Frame *F, Node *n, Node *g) { add(F, A, g); add(F, B, g); }
static void adj_sub(Frame *F, Node *n, Node *g) { add(F, A, g); add(F, B, neg(F, g)); }
static void adj_mul(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, B)); add(F, B, mul(F, g, A)); }
static void adj_div(Frame *F, Node *n, Node *g)
{
    add(F, A, op2(F, OP_DIV, g, B));
    add(F, B, neg(F, op2(F, OP_DIV, mul(F, g, A), mul(F, B, B))));
}
static void adj_divsafe(Frame *F, Node *n, Node *g)
{
    add(F, A, op2(F, OP_DIVSAFE, g, B));
    add(F, B, neg(F, op2(F, OP_DIVSAFE, mul(F, g, A), mul(F, B, B))));
}
static void adj_pow(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, g, mul(F, B, op2(F, OP_POW, A, op2(F, OP_SUB, B, K(F, 1))))));
    add(F, B, mul(F, g, mul(F, n, op1(F, OP_LOG, A))));
}
static void adj_max(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, g, half_tie(F, OP_GT, A, B)));
    add(F, B, mul(F, g, half_tie(F, OP_LT, A, B)));
}
static void adj_min(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, g, half_tie(F, OP_LT, A, B)));
    add(F, B, mul(F, g, half_tie(F, OP_GT, A, B)));
}
static void adj_neg(Frame *F, Node *n, Node *g) { add(F, A, neg(F, g)); }
static void adj_exp(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, n)); }
static void adj_log(Frame *F, Node *n, Node *g) { add(F, A, op2(F, OP_DIV, g, A)); }
static void adj_sin(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op1(F, OP_COS, A))); }
static void adj_cos(Frame *F, Node *n, Node *g) { add(F, A, neg(F, mul(F, g, op1(F, OP_SIN, A)))); }
static void adj_tan(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, g, op2(F, OP_ADD, K(F, 1), mul(F, n, n))));
}
static void adj_tanh(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, g, op2(F, OP_SUB, K(F, 1), mul(F, n, n))));
}
static void adj_sqrt(Frame *F, Node *n, Node *g) { add(F, A, op2(F, OP_DIV, g, mul(F, K(F, 2), n))); }
/* abs'(0) = 0 and relu'(0) = 0, as PyTorch */
static void adj_abs(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op1(F, OP_SIGN, A))); }
static void adj_relu(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op2(F, OP_GT, A, K(F, 0)))); }
static void adj_log1p(Frame *F, Node *n, Node *g) { add(F, A, op2(F, OP_DIV, g, op2(F, OP_ADD, K(F, 1), A))); }
static void adj_sigmoid(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, g, mul(F, n, op2(F, OP_SUB, K(F, 1), n))));
}
static void adj_softplus(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op1(F, OP_SIGMOID, A))); }
static void adj_expm1(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op1(F, OP_EXP, A))); }
static Node *one_minus_sq(Frame *F, Node *x) { return op2(F, OP_SUB, K(F, 1), mul(F, x, x)); }
static void adj_atan(Frame *F, Node *n, Node *g)
{
    add(F, A, op2(F, OP_DIV, g, op2(F, OP_ADD, K(F, 1), mul(F, A, A))));
}
static void adj_asin(Frame *F, Node *n, Node *g) { add(F, A, op2(F, OP_DIV, g, op1(F, OP_SQRT, one_minus_sq(F, A)))); }
static void adj_acos(Frame *F, Node *n, Node *g)
{
    add(F, A, neg(F, op2(F, OP_DIV, g, op1(F, OP_SQRT, one_minus_sq(F, A)))));
}
static void adj_sinh(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op1(F, OP_COSH, A))); }
static void adj_cosh(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op1(F, OP_SINH, A))); }
/* erf'(x) = 2/sqrt(pi) exp(-x^2) = -erfc'(x) */
static Node *erf_slope(Frame *F, Node *n, Node *g)
{
    return mul(F, mul(F, K(F, 2 / sqrt(M_PI)), g), op1(F, OP_EXP, neg(F, mul(F, A, A))));
}
static void adj_erf(Frame *F, Node *n, Node *g) { add(F, A, erf_slope(F, n, g)); }
static void adj_erfc(Frame *F, Node *n, Node *g) { add(F, A, neg(F, erf_slope(F, n, g))); }
static void adj_lgamma(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op1(F, OP_DIGAMMA, A))); }
/* digamma' = trigamma = polygamma(1, x); polygamma(k, x)' = polygamma(k + 1, x) */
static void adj_digamma(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op2(F, OP_POLYGAMMA, K(F, 1), A))); }
static void adj_polygamma(Frame *F, Node *n, Node *g)
{
    add(F, B, mul(F, g, op2(F, OP_POLYGAMMA, op2(F, OP_ADD, A, K(F, 1)), B)));
}
/* logsigmoid'(x) = 1 - sigmoid(x) = sigmoid(-x), which cannot overflow */
static void adj_logsigmoid(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op1(F, OP_SIGMOID, neg(F, A)))); }
/* clamp(x, lo, hi) = CLAMPHI(CLAMPLO(x, lo), hi): x gets g where lo <= x <= hi,
 * lo where x < lo, hi where the clamped value exceeds hi (PyTorch's clamp;
 * with lo > hi the value is hi and hi takes g) */
static void adj_clamplo(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, g, op2(F, OP_GE, A, B)));
    add(F, B, mul(F, g, op2(F, OP_LT, A, B)));
}
static void adj_clamphi(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, g, op2(F, OP_LE, A, B)));
    add(F, B, mul(F, g, op2(F, OP_GT, A, B)));
}
/* C = A*B: dA += dC*B', dB += A'*dC (Giles 2008, §2.3.2) */
static void adj_matmul(Frame *F, Node *n, Node *g)
{
    add(F, A, op2(F, OP_MATMUL, g, tr(F, B)));
    add(F, B, op2(F, OP_MATMUL, tr(F, A), g));
}
static void adj_transpose(Frame *F, Node *n, Node *g) { add(F, A, tr(F, g)); }
static void adj_sum(Frame *F, Node *n, Node *g) { add(F, A, g); }
/* x/||x||, and 0 at x = 0 as PyTorch */
static void adj_norm(Frame *F, Node *n, Node *g) { add(F, A, mul(F, op2(F, OP_DIVSAFE, g, n), A)); }
static void adj_trace(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, mk_eye(IR, A->shape.rows))); }
/* d det(A) = det(A) inv(A)' : dA;  d logdet(A) = inv(A)' : dA (Giles §2.3.4) */
static void adj_det(Frame *F, Node *n, Node *g) { add(F, A, mul(F, mul(F, g, n), tr(F, op1(F, OP_INV, A)))); }
static void adj_logdet(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, tr(F, op1(F, OP_INV, A)))); }
/* C = inv(A): dA += -C' * dC * C' (Giles §2.3.3) */
static void adj_inv(Frame *F, Node *n, Node *g)
{
    add(F, A, neg(F, op2(F, OP_MATMUL, op2(F, OP_MATMUL, tr(F, n), g), tr(F, n))));
}
static void adj_logsumexp(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, g, op1(F, OP_EXP, op2(F, OP_SUB, A, n))));
}
/* p = softmax(x): dx = p .* (g - dot(g, p)) */
static void adj_softmax(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, n, op2(F, OP_SUB, g, op1(F, OP_SUM, mul(F, g, n)))));
}
/* ---- broadcasting and reductions along a dimension (spec §8) ---- */
static Node *along(Frame *F, Op op, Node *x, int d) { return mk_along(IR, op, val(x), d); }
static Node *spread(Frame *F, Node *x, Shape s) { return mk_bcast(IR, val(x), s); }
/* v expanded: its adjoint is g summed over the expanded dimensions */
static void adj_bcast(Frame *F, Node *n, Node *g)
{
    int e = bcast_dims(n);
    if (e & 1)
        g = along(F, OP_SUMD, g, 1);
    if (e & 2)
        g = along(F, OP_SUMD, g, 2);
    add(F, A, g);
}
static void adj_sumd(Frame *F, Node *n, Node *g) { add(F, A, spread(F, g, A->shape)); }
/* amax/amin: g shared evenly by the entries equal to the result (PyTorch's
 * amax/amin backward: mask / count) */
static void extreme(Frame *F, Node *n, Node *g)
{
    Node *mask = op2(F, OP_EQ, A, n);
    if (shape_is_scalar(n->shape)) {
        add(F, A, mul(F, op2(F, OP_DIV, g, op1(F, OP_SUM, mask)), mask));
        return;
    }
    Node *count = along(F, OP_SUMD, mask, n->index);
    add(F, A, mul(F, spread(F, op2(F, OP_DIV, g, count), A->shape), mask));
}
static void adj_amax(Frame *F, Node *n, Node *g) { extreme(F, n, g); }
static void adj_amin(Frame *F, Node *n, Node *g) { extreme(F, n, g); }
static void adj_amaxd(Frame *F, Node *n, Node *g) { extreme(F, n, g); }
static void adj_amind(Frame *F, Node *n, Node *g) { extreme(F, n, g); }
/* l = logsumexp(X, d): dX = g .* exp(X - l), expanded along d */
static void adj_lsed(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, spread(F, g, A->shape), op1(F, OP_EXP, op2(F, OP_SUB, A, n))));
}
/* P = softmax(X, d): dX = P .* (g - sum(g .* P, d)) */
static void adj_softmaxd(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, n, op2(F, OP_SUB, g, along(F, OP_SUMD, mul(F, g, n), n->index))));
}
/* L = log_softmax(X, d): dX = g - exp(L) .* sum(g, d) */
static void adj_logsoftmaxd(Frame *F, Node *n, Node *g)
{
    add(F, A, op2(F, OP_SUB, g, mul(F, op1(F, OP_EXP, n), along(F, OP_SUMD, g, n->index))));
}
static void adj_diagm(Frame *F, Node *n, Node *g) { add(F, A, op1(F, OP_DIAGV, g)); }
static void adj_diagv(Frame *F, Node *n, Node *g) { add(F, A, op1(F, OP_DIAGM, g)); }
/* where(k, a, b) = PICK(k, a) + PICK(not k, b): the side gets the masked
 * adjoint; the condition has a zero derivative */
static void adj_pick(Frame *F, Node *n, Node *g) { add(F, B, op2(F, OP_PICK, A, g)); }
/* LU(A) is only ever an operand of SOLVE/SOLVET, whose rules add to A
 * itself; the rule exists so that LU(A) is active when A is */
static void adj_lu(Frame *F, Node *n, Node *g) { (void)F, (void)n, (void)g; }
/* C = A \ B (Giles 2008, §2.3): B̄ = A' \ C̄ on A's factors, Ā = -B̄ C' */
static void adj_solve(Frame *F, Node *n, Node *g)
{
    Node *bb = op2(F, OP_SOLVET, A, g);
    add(F, B, bb);
    add(F, A->args[0], neg(F, op2(F, OP_MATMUL, bb, tr(F, n))));
}
/* C = A' \ B: B̄ = A \ C̄, Ā = -C B̄' */
static void adj_solvet(Frame *F, Node *n, Node *g)
{
    Node *bb = op2(F, OP_SOLVE, A, g);
    add(F, B, bb);
    add(F, A->args[0], neg(F, op2(F, OP_MATMUL, n, tr(F, bb))));
}
/* L = chol(A), the symmetric gradient (Murray 2016, eq. 10 with its
 * symmetrisation; PyTorch's cholesky_backward): P = tril(L' L̄),
 * Φ = P - diag(diag(P))/2, Ā = L^-T (Φ + Φ')/2 L^-1, by two solves with L'
 * on one factorisation */
static void adj_chol(Frame *F, Node *n, Node *g)
{
    Node *p = op1(F, OP_TRIL, op2(F, OP_MATMUL, tr(F, n), g));
    Node *phi = op2(F, OP_SUB, p, mul(F, K(F, 0.5), op1(F, OP_DIAGM, op1(F, OP_DIAGV, p))));
    Node *s = mul(F, K(F, 0.5), op2(F, OP_ADD, phi, tr(F, phi)));
    Node *y = solve_t(F, n, s);
    add(F, A, tr(F, solve_t(F, n, tr(F, y))));
}
static void adj_tril(Frame *F, Node *n, Node *g) { add(F, A, op1(F, OP_TRIL, g)); }
/* Concatenation: each part takes its block of the adjoint.  A slice (or an
 * element) adds its adjoint into a zero of x's shape at its offsets; a pad
 * gives back the block it placed.  The offsets are integers: no adjoint. */
static Node *cut(Frame *F, Node *g, Node *r, Node *c, Shape s) { return mk3(IR, OP_SLICE, s, val(g), r, c, 0); }
static void adj_vcat(Frame *F, Node *n, Node *g)
{
    add(F, A, cut(F, g, K(F, 0), K(F, 0), A->shape));
    add(F, B, cut(F, g, mk_dim(IR, A->shape.rows), K(F, 0), B->shape));
}
static void adj_hcat(Frame *F, Node *n, Node *g)
{
    add(F, A, cut(F, g, K(F, 0), K(F, 0), A->shape));
    add(F, B, cut(F, g, K(F, 0), mk_dim(IR, A->shape.cols), B->shape));
}
static void adj_slice(Frame *F, Node *n, Node *g)
{
    add(F, A, mk3(IR, OP_PAD, A->shape, val(g), n->args[1], n->args[2], 0));
}
static void adj_pad(Frame *F, Node *n, Node *g) { add(F, A, cut(F, g, n->args[1], n->args[2], A->shape)); }
/* C = kron(A, B), [ra*rb, ca*cb]: Ā[i, j] = sum over B's block (i, j) of
 * C̄ .* B, Ā = kron(eye(ra), ones(1, rb)) * (C̄ .* kron(ones(ra, ca), B)) *
 * kron(eye(ca), ones(cb, 1)); B̄ the sum of the blocks of C̄ .* kron(A, ones),
 * the same way (MATLAB has no kron adjoint; these are its definitions summed). */
static Node *block_sums(Frame *F, Node *g, Shape outer, Shape inner, bool of_outer)
{
    Ir *ir = IR;
    Node *l, *r;
    if (of_outer) {
        l = mk2(ir, OP_KRON, mk_eye(ir, outer.rows), mk_fill(ir, 1, shape_make(dim_lit(1), inner.rows)));
        r = mk2(ir, OP_KRON, mk_eye(ir, outer.cols), mk_fill(ir, 1, shape_make(inner.cols, dim_lit(1))));
    } else {
        l = mk2(ir, OP_KRON, mk_fill(ir, 1, shape_make(dim_lit(1), outer.rows)), mk_eye(ir, inner.rows));
        r = mk2(ir, OP_KRON, mk_fill(ir, 1, shape_make(outer.cols, dim_lit(1))), mk_eye(ir, inner.cols));
    }
    return op2(F, OP_MATMUL, op2(F, OP_MATMUL, l, g), r);
}
static void adj_kron(Frame *F, Node *n, Node *g)
{
    Node *ob = mk2(IR, OP_KRON, mk_fill(IR, 1, A->shape), B);
    Node *oa = mk2(IR, OP_KRON, A, mk_fill(IR, 1, B->shape));
    add(F, A, block_sums(F, mul(F, g, ob), A->shape, B->shape, true));
    add(F, B, block_sums(F, mul(F, g, oa), A->shape, B->shape, false));
}
/* flatten(A): Ā[i, j] = C̄[i*c + j], the rows of kron(eye(r), ones(1, c)) picking
 * C̄'s entries on the diagonal blocks of kron(ones(r, 1), eye(c)) */
static void adj_flatten(Frame *F, Node *n, Node *g)
{
    Ir *ir = IR;
    Dim r = A->shape.rows, c = A->shape.cols;
    Node *l = mk2(ir, OP_KRON, mk_eye(ir, r), mk_fill(ir, 1, shape_make(dim_lit(1), c)));
    Node *e = mk2(ir, OP_KRON, mk_fill(ir, 1, shape_make(r, dim_lit(1))), mk_eye(ir, c));
    add(F, A, op2(F, OP_MATMUL, l, mul(F, g, e)));
}
#undef A
#undef B
#undef val

/* GRADC_OPS's adj column: adj_<adj>, or none (leaves, comparisons, sign,
 * not, detach), so a row whose rule is missing here does not compile. */
#define adj_none NULL
AdjointRule *const diff_adjoint_rules[OP_COUNT] = {
#define X(name, text, arity, kind, fn, libm, code, builtin, prec, latex, adj) [OP_##name] = adj_##adj,
    GRADC_OPS(X)
#undef X
};
#undef adj_none
