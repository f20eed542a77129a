/* check_expr.c — the checker's rules for expressions (spec §3, §8): the
 * shape of every operator, built-in call, concatenation, index and slice,
 * the integer expressions of sizes and bounds, and if/while conditions.
 * value() turns an expression into its forward-IR node or fails with a
 * message (check.c recovers); a call of a user function goes to
 * check_fn.c, which inlines it. */
#include "check.h"

#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/* ---- expressions ---- */

/* ---- integer expressions: sizes, indices, slice bounds (spec §8) ---- */

/* k + sum coefs[i] * key[i], where a key >= 0 is a dimension symbol and
 * key < 0 the for index of name id -key - 1.  linear: false when a product
 * of two non-constants (or too many terms) made it something else. */
#define LIN_TERMS 16
typedef struct Lin {
    int64_t k;
    int n;
    int keys[LIN_TERMS];
    int64_t coefs[LIN_TERMS];
    bool linear;
} Lin;

static Lin lin_const(int64_t k) { return (Lin){.k = k, .linear = true}; }

static Lin lin_term(int key)
{
    Lin l = lin_const(0);
    l.n = 1, l.keys[0] = key, l.coefs[0] = 1;
    return l;
}

/* a + s*b, like terms merged */
static Lin lin_axpy(Lin a, int64_t s, Lin b)
{
    a.linear = a.linear && b.linear;
    a.k += s * b.k;
    for (int i = 0; i < b.n && a.linear; i++) {
        int j = 0;
        while (j < a.n && a.keys[j] != b.keys[i])
            j++;
        if (j == a.n) {
            if (a.n == LIN_TERMS) {
                a.linear = false;
                break;
            }
            a.keys[a.n] = b.keys[i], a.coefs[a.n++] = 0;
        }
        a.coefs[j] += s * b.coefs[i];
    }
    int z = 0;
    for (int i = 0; i < a.n; i++)
        if (a.coefs[i])
            a.keys[z] = a.keys[i], a.coefs[z++] = a.coefs[i];
    a.n = z;
    return a;
}

static bool lin_is_const(Lin l) { return l.linear && l.n == 0; }

static Lin lin_scale(Lin a, int64_t s) { return lin_axpy(lin_const(0), s, a); }

static Lin lin_of_dim(Dim d)
{
    DimView v = dim_view(d);
    Lin l = lin_const(v.k);
    for (int i = 0; i < v.n; i++)
        l = lin_axpy(l, v.coefs[i], lin_term(dim_view_sym(&v, i)));
    return l;
}

/* A dimension when the form has no for index in it. */
static bool lin_dim(Lin l, Dim *d)
{
    if (!l.linear)
        return false;
    for (int i = 0; i < l.n; i++)
        if (l.keys[i] < 0)
            return false;
    *d = dim_form(l.k, l.n, l.keys, l.coefs);
    return true;
}

static bool lin_has_index(Lin l)
{
    for (int i = 0; i < l.n; i++)
        if (l.keys[i] < 0)
            return true;
    return false;
}

/* e as an integer expression of literals, dimension symbols, for indices
 * and + - *; NULL, or the subexpression that is not one. */
static const Expr *lin_of(Checker *c, const Expr *e, Lin *out)
{
    if (++c->depth > MAX_EXPR_DEPTH)
        fail(c, e->loc, "expression nested too deeply");
    const Expr *bad = NULL;
    Lin a, b;
    Dim da, db;
    switch (e->kind) {
    case EX_NUM:
        if (e->num != floor(e->num) || fabs(e->num) > 9007199254740992.0)
            bad = e;
        else
            *out = lin_const((int64_t)e->num);
        break;
    case EX_NAME: {
        Var v = lookup(c, e->name);
        if (v.kind == V_POISON)
            fail_quietly(c);
        if (v.kind == V_DIM)
            *out = lin_of_dim(v.dim);   /* in a function, the caller's size: maybe a form */
        else if (v.kind == V_INDEX) {
            *v.used = true;
            *out = lin_term(-intern(c, e->name) - 1);
        } else
            bad = e;
        break;
    }
    case EX_NEG:
        if (!(bad = lin_of(c, e->lhs, &a)))
            *out = lin_scale(a, -1);
        break;
    case EX_BINARY:
        if (e->op != B_ADD && e->op != B_SUB && e->op != B_MUL)
            return e;
        if ((bad = lin_of(c, e->lhs, &a)) || (bad = lin_of(c, e->rhs, &b)))
            break;
        if (e->op != B_MUL)
            *out = lin_axpy(a, e->op == B_ADD ? 1 : -1, b);
        else if (lin_is_const(a))
            *out = lin_scale(b, a.k);
        else if (lin_is_const(b))
            *out = lin_scale(a, b.k);
        else if (lin_dim(a, &da) && lin_dim(b, &db))   /* sizes: m*n rows, kron's */
            *out = lin_of_dim(dim_mul(da, db));
        else
            *out = (Lin){.linear = false};
        break;
    default:
        bad = e;
    }
    c->depth--;
    return bad;
}

static const char lin_hint[] = "an integer expression of literals, dimension symbols, for "
    "indices and + - *";

typedef enum BinRule { R_ELEM, R_MUL, R_DIV, R_POW, R_COND, R_SOLVE } BinRule;

static const struct {
    BinRule rule;
    Op op;
    const char *what;   /* for shape errors */
} binops[] = {
    [B_ADD] = {R_ELEM, OP_ADD, "elementwise sum"},
    [B_SUB] = {R_ELEM, OP_SUB, "elementwise difference"},
    [B_MUL] = {R_MUL, OP_MATMUL, "matrix product"},
    [B_DIV] = {R_DIV, OP_DIV, "division"},
    [B_EMUL] = {R_ELEM, OP_MUL, "elementwise product"},
    [B_EDIV] = {R_ELEM, OP_DIV, "elementwise quotient"},
    [B_POW] = {R_POW, OP_POW, "power"},
    [B_EPOW] = {R_ELEM, OP_POW, "elementwise power"},
    [B_LT] = {R_COND, OP_LT, NULL},
    [B_LE] = {R_COND, OP_LE, NULL},
    [B_GT] = {R_COND, OP_GT, NULL},
    [B_GE] = {R_COND, OP_GE, NULL},
    [B_EQ] = {R_COND, OP_EQ, NULL},
    [B_NE] = {R_COND, OP_NE, NULL},
    [B_AND] = {R_COND, OP_AND, NULL},
    [B_OR] = {R_COND, OP_OR, NULL},
    [B_SOLVE] = {R_SOLVE, OP_SOLVE, "solve"},
};
_Static_assert(sizeof binops / sizeof *binops == B_COUNT, "a rule per BinOp");

static bool is_comparison(BinOp op) { return op >= B_LT && op <= B_NE; }

/* Broadcasting (spec §8): for rows and columns alike, the dimensions agree
 * or one of them is the literal 1 (a scalar is the case 1×1). */
static bool dims_fit(Dim a, Dim b)
{
    return dim_eq(a, b) || dim_eq(a, dim_lit(1)) || dim_eq(b, dim_lit(1));
}

/* Why a comparison (or and, or, not) is not a value here. */
static const char *cond_only(Checker *c, const char *op)
{
    return arena_printf(c->a, "'%s' gives a value only inside where's first argument "
                        "(where(x > 0, a, b)) or an if or while condition", op);
}

/* solve(A, B) and A \ B: A square, B with A's rows; errors at loc (the
 * function's name, the operator). */
static Node *solve(Checker *c, Loc loc, const char *what, Node *a, Node *b)
{
    if (!dim_eq(a->shape.rows, a->shape.cols))
        fail(c, loc, "%s needs a square matrix on the left, got %s", what, shape_s(c, a->shape));
    if (!dim_eq(a->shape.rows, b->shape.rows))
        fail(c, loc, "%s of %s and %s: the rows %s and %s differ", what, shape_s(c, a->shape),
             shape_s(c, b->shape), dim_s(c, a->shape.rows), dim_s(c, b->shape.rows));
    return mk_solve(c->ir, a, b, false);
}

static bool elem_ok(const Node *a, const Node *b)
{
    return dims_fit(a->shape.rows, b->shape.rows) && dims_fit(a->shape.cols, b->shape.cols);
}

/* "rows m and n differ and neither is 1": where a and b do not broadcast. */
static const char *no_fit(Checker *c, Shape a, Shape b)
{
    bool rows = !dims_fit(a.rows, b.rows);
    return arena_printf(c->a, "%s %s and %s differ and neither is 1", rows ? "rows" : "columns",
                        dim_s(c, rows ? a.rows : a.cols), dim_s(c, rows ? b.rows : b.cols));
}

/* lhs (already built) OP rhs; errors point at the operator. */
static Node *binary(Checker *c, const Expr *e, Node *l)
{
    if (binops[e->op].rule == R_COND)
        fail(c, e->loc, "%s", cond_only(c, binop_text[e->op]));
    Node *r = value(c, e->rhs);
    const char *what = binops[e->op].what;
    switch (binops[e->op].rule) {
    case R_ELEM:
        if (!elem_ok(l, r))
            fail(c, e->loc, "%s of %s and %s: %s", what, shape_s(c, l->shape),
                 shape_s(c, r->shape), no_fit(c, l->shape, r->shape));
        return mk2(c->ir, binops[e->op].op, l, r);
    case R_MUL:
        if (is_scalar(l) || is_scalar(r))
            return mk2(c->ir, OP_MUL, l, r);
        if (!dim_eq(l->shape.cols, r->shape.rows))
            fail(c, e->loc, "matrix product of %s and %s: inner dimensions %s and %s differ",
                 shape_s(c, l->shape), shape_s(c, r->shape), dim_s(c, l->shape.cols),
                 dim_s(c, r->shape.rows));
        return mk2(c->ir, OP_MATMUL, l, r);
    case R_DIV:
        if (!is_scalar(r))
            fail(c, e->loc, "division of %s by %s: the divisor must be a scalar "
                 "(use ./ to divide elementwise)", shape_s(c, l->shape), shape_s(c, r->shape));
        return mk2(c->ir, OP_DIV, l, r);
    case R_POW:
        if (!is_scalar(l) || !is_scalar(r))
            fail(c, e->loc, "power of %s and %s: ^ takes scalars (use .^ for an elementwise "
                 "power)", shape_s(c, l->shape), shape_s(c, r->shape));
        return mk2(c->ir, OP_POW, l, r);
    case R_SOLVE:
        return solve(c, e->loc, "\\", l, r);
    case R_COND:
        break;
    }
    return NULL; /* unreachable: R_COND failed above */
}

/* A chain like a + b + c + ... or x'''' nests down its left operands; walk
 * it with a loop so that a long sum cannot exhaust the C stack. */
static Node *left_chain(Checker *c, const Expr *e)
{
    VEC(const Expr *) up = {0};
    for (; e->kind == EX_BINARY || e->kind == EX_TRANSPOSE; e = e->lhs)
        vec_push(c->a, &up, e);
    Node *v = value(c, e);
    for (int i = up.len - 1; i >= 0; i--) {
        const Expr *x = up.data[i];
        v = x->kind == EX_TRANSPOSE ? mk1(c->ir, OP_TRANSPOSE, v) : binary(c, x, v);
    }
    return v;
}

static Node *name_value(Checker *c, const Expr *e)
{
    Var v = lookup(c, e->name);
    switch (v.kind) {
    case V_INPUT:
    case V_VAR:
        return v.node;
    case V_INDEX:
        *v.used = true;
        return v.node;
    case V_DIM:
        return dim_node(c, v.dim);
    case V_POISON:
        fail_quietly(c);
    default:
        if (v.kind == V_NONE && builtin(e->name) && builtin(e->name)->rule == F_CONST)
            return mk_const(c->ir, builtin(e->name)->fill);
        fail(c, e->loc, "%s", why_undefined(c, e->name, v));
    }
}

/* An argument of ones/zeros/eye: a size, not a value. */
static Dim size_arg(Checker *c, const Builtin *f, const Expr *x)
{
    if (x->kind == EX_NUM && integral(x->num) && x->num >= 1)
        return dim_lit((int64_t)x->num);
    Lin l;
    Dim d;
    if (x->kind != EX_NUM && x->kind != EX_NAME && !lin_of(c, x, &l) && lin_dim(l, &d) &&
        (!lin_is_const(l) || l.k >= 1))
        return d;   /* a form such as n - 1 (spec §8), or one that is a positive literal */
    if (x->kind == EX_NAME) {
        Var v = lookup(c, x->name);
        if (v.kind == V_DIM)
            return v.dim;
        if (v.kind == V_POISON)
            fail_quietly(c);
        if (v.kind == V_NONE && !builtin(x->name))
            fail(c, x->loc, "unknown dimension symbol %s (dimension symbols come from the "
                 "input declarations)%s", x->name, did_you_mean(c, x->name, true));
    }
    fail(c, expr_start(x), "each size given to %s must be a positive integer literal, a "
         "dimension symbol, or a form of them such as n - 1", f->name);
}

/* clamp(x, lo, hi): the three broadcast together; the two halves carry
 * PyTorch's gradient convention (diff.c).  Errors point at the name. */
static Node *clamp(Checker *c, const Expr *e, Node *x, Node *lo, Node *hi)
{
    Node *xlo = NULL;
    if (elem_ok(x, lo) && elem_ok((xlo = mk2(c->ir, OP_CLAMPLO, x, lo)), hi))
        return mk2(c->ir, OP_CLAMPHI, xlo, hi);
    Shape s = xlo ? xlo->shape : x->shape, t = xlo ? hi->shape : lo->shape;
    fail(c, e->loc, "clamp of %s between %s and %s: %s", shape_s(c, x->shape),
         shape_s(c, lo->shape), shape_s(c, hi->shape), no_fit(c, s, t));
}

/* The d of sum(X, d) and the others: the literal 1 or 2. */
static int along_arg(Checker *c, const Expr *e)
{
    const Expr *d = e->args[1];
    if (d->kind != EX_NUM || (d->num != 1 && d->num != 2))
        fail(c, e->loc, "the dimension d of %s(X, d) is the literal 1 (down each column) or 2 "
             "(across each row)", e->name);
    return (int)d->num;
}

/* The op of a builtin along a dimension. */
static Op along_op(Op op)
{
    switch (op) {
    case OP_SUM: return OP_SUMD;
    case OP_LOGSUMEXP: return OP_LSED;
    case OP_AMAX: return OP_AMAXD;
    case OP_AMIN: return OP_AMIND;
    case OP_SOFTMAX: return OP_SOFTMAXD;
    default: return op;   /* LOGSOFTMAXD */
    }
}

/* where's condition: comparisons of values entry by entry, combined with
 * and, or, not; a bare value v means v != 0 (as an if reads its condition).
 * Recursion as deep as the parser's nesting limit, as cond's. */
static Node *mask(Checker *c, const Expr *e)
{
    if (++c->depth > MAX_EXPR_DEPTH)
        fail(c, e->loc, "condition nested too deeply");
    Node *n, *l, *r;
    if (e->kind == EX_NOT) {
        n = mk1(c->ir, OP_NOT, mask(c, e->lhs));
    } else if (e->kind == EX_BINARY && (binops[e->op].rule == R_COND)) {
        bool logic = e->op == B_AND || e->op == B_OR;
        l = logic ? mask(c, e->lhs) : value(c, e->lhs);
        r = logic ? mask(c, e->rhs) : value(c, e->rhs);
        if (!elem_ok(l, r))
            fail(c, e->loc, "'%s' of %s and %s: %s", binop_text[e->op], shape_s(c, l->shape),
                 shape_s(c, r->shape), differ(c, l->shape, r->shape));
        n = mk2(c->ir, binops[e->op].op, l, r);
    } else {
        n = value(c, e);
    }
    c->depth--;
    return n;
}

/* where(k, a, b) = PICK(k, a) + PICK(not k, b): each PICK is its side where
 * it is chosen and an exact 0 elsewhere, so a NaN or Inf of the side not
 * taken never reaches the value (nor, diff.c, the gradient). */
static Node *where(Checker *c, const Expr *e)
{
    Node *k = mask(c, e->args[0]), *a = value(c, e->args[1]), *b = value(c, e->args[2]);
    Node *v[3] = {k, a, b};
    for (int i = 0; i < 3; i++) {
        Node *x = v[i], *y = v[(i + 1) % 3];
        if (!elem_ok(x, y))
            fail(c, e->loc, "where of %s, %s and %s: %s", shape_s(c, k->shape),
                 shape_s(c, a->shape), shape_s(c, b->shape), differ(c, x->shape, y->shape));
    }
    return mk2(c->ir, OP_ADD, mk2(c->ir, OP_PICK, k, a), mk2(c->ir, OP_PICK, mk1(c->ir, OP_NOT, k), b));
}

/* grad(e, x) or hessian(e, x) whose e depends on x through a loop or a
 * nested construct (or a hessian through a matrix that depends on x, which
 * hess_jacobian does not carry): a sub-program statement (gradcall.c) whose
 * result is the value.  e reads no slot of an open construct (hess_straighten said
 * so), so the statement goes at top level, before the construct the call
 * is in: it runs once, not at every iteration. */
static Node *through_loops(Checker *c, const Expr *e, Node *y, Var v, bool hessian)
{
    const char *fn = hessian ? "hessian" : "grad", *x = e->args[1]->name;
    if (gradcall_depth(c->a, c->m->fwd.body, y) > GRADCALL_MAX_DEPTH)
        fail(c, e->loc, "%s(e, %s): e reads a chain of %d grad()/hessian() values computed "
             "through loops, each reading the one before; every level runs the ones below it "
             "again with their derivatives (about 4 times the work per level), so gradc stops "
             "at %d", fn, x, GRADCALL_MAX_DEPTH, GRADCALL_MAX_DEPTH);
    Module at = *c->m;
    at.inputs = c->inputs.data;
    at.ninputs = c->inputs.len;
    at.dims = c->dims.data;
    at.ndims = c->dims.len;
    Stmt *s = gradcall_stmt(&at, y, v.aux, v.shape, hessian, e->loc);
    s->id = c->m->nconstructs++;
    c->m->has_control = true;
    block_push(c->a, c->m->fwd.body, s);
    return mk_slot(c->ir, s->slots[0]);
}

/* grad(e, x) and hessian(e, x) (spec §9): reverse mode over e's DAG, then
 * for hessian the Jacobian of that gradient; both ordinary nodes, so the
 * program's own reverse mode differentiates through them. */
static Node *derivative_call(Checker *c, const Expr *e, const Builtin *f)
{
    const Expr *xa = e->args[1];
    Var v = xa->kind == EX_NAME ? lookup(c, xa->name) : (Var){0};
    if (v.kind == V_POISON)
        fail_quietly(c);
    if (v.kind != V_INPUT)
        fail(c, expr_start(xa), "%s(e, x) differentiates with respect to an input; %s", f->name,
             xa->kind == EX_NAME ? arena_printf(c->a, "%s is not an input", xa->name)
                                 : "name one here");
    Node *y = value(c, e->args[0]);
    const char *x = xa->name;
    if (!is_scalar(y))
        fail(c, e->loc, "%s(e, %s) needs a scalar e; e is %s", f->name, x, shape_s(c, y->shape));
    if (f->rule == F_HESSIAN && !dim_eq(v.shape.cols, dim_lit(1)))
        fail(c, e->loc, "hessian(e, %s) needs %s to be a scalar or a vector; it is %s", x, x,
             shape_s(c, v.shape));
    /* after an error, an if may stand with no condition (its body checked
     * all the same): the program is rejected, and e is not straightened */
    if (c->nerrors || c->parse_errors)
        fail_quietly(c);
    const char *why = NULL;
    bool open = false;
    Node *ys = hess_straighten(c->ir, c->m->fwd.body, y, v.aux, x, c->inputs.len, &why, &open);
    if (!ys && open)
        fail(c, e->loc, "%s(e, %s): e %s; in a construct's body, grad and hessian follow %s "
             "through the values computed before the construct, so e cannot read one it changes",
             f->name, x, why, x);
    if (!ys)
        return through_loops(c, e, y, v, f->rule == F_HESSIAN);
    y = ys;
    Node *g = diff_dag_grad(c->ir, y, v.aux, v.shape, c->inputs.len);
    if (f->rule == F_GRAD)
        return g;
    Node *h = hess_jacobian(c->ir, g, v.aux, x, v.shape, false, &why);
    if (!h)   /* a matrix that depends on x[n]: n Hessian-vector products instead */
        return through_loops(c, e, y, v, true);
    /* exactly symmetric, as spec §9 asks, whatever the rounding of h; the
     * transpose is built raw, so that h is computed once and read twice
     * rather than simplified into a second product */
    if (mk1(c->ir, OP_TRANSPOSE, h) == h)
        return h;
    Node *ht = ir_node(c->ir, OP_TRANSPOSE, h->shape, h, NULL, 0.0, 0);
    return mk2(c->ir, OP_MUL, mk_const(c->ir, 0.5), mk2(c->ir, OP_ADD, h, ht));
}

static const char *arity_s(Checker *c, const Builtin *f)
{
    if (f->lo != f->hi)
        return arena_printf(c->a, "%d or %d arguments", f->lo, f->hi);
    return arena_printf(c->a, "%d argument%s", f->lo, f->lo == 1 ? "" : "s");
}

static Node *call(Checker *c, const Expr *e)
{
    Node *user = user_call(c, e);
    if (user)
        return user;
    const Builtin *f = builtin(e->name);
    if (!f) {
        Var v = lookup(c, e->name);
        static const char *const what[] = {
            [V_INPUT] = "an input", [V_VAR] = "a variable", [V_INDEX] = "a loop index",
            [V_DIM] = "a dimension symbol",
        };
        if (v.kind == V_POISON)
            fail_quietly(c);
        if (v.kind <= V_INDEX && what[v.kind])
            fail(c, e->loc, "%s is %s, not a function; to index it, use square brackets: "
                 "%s[...]", e->name, what[v.kind], e->name);
        fail(c, e->loc, "unknown function %s%s", e->name, did_you_mean(c, e->name, false));
    }
    if (f->rule == F_CONST)
        fail(c, e->loc, "%s is a constant, not a function: write %s without arguments", f->name, f->name);
    if (e->nargs < f->lo || e->nargs > f->hi)
        fail(c, e->loc, "%s takes %s but was given %d", f->name, arity_s(c, f), e->nargs);

    if (f->rule == F_FILL || f->rule == F_EYE) {
        Dim d0 = size_arg(c, f, e->args[0]);
        if (f->rule == F_EYE)
            return mk_eye(c->ir, d0);
        Dim d1 = e->nargs == 2 ? size_arg(c, f, e->args[1]) : dim_lit(1);
        return mk_fill(c->ir, f->fill, shape_make(d0, d1));
    }

    if (f->rule == F_GRAD || f->rule == F_HESSIAN)
        return derivative_call(c, e, f);
    if (f->rule == F_WHERE)
        return where(c, e);
    if (f->rule == F_POLYGAMMA && !(e->args[0]->kind == EX_NUM && integral(e->args[0]->num) &&
                                    e->args[0]->num >= 0 && e->args[0]->num <= 64))
        fail(c, expr_start(e->args[0]), "the order k of polygamma(k, x) must be an integer "
             "literal from 0 to 64");
    bool along = (f->rule == F_ALONG || f->rule == F_SOFTMAX || f->rule == F_MEAN) && e->nargs == 2;
    int d = along ? along_arg(c, e) : 0;
    Node *x = value(c, e->args[0]);
    Node *y = e->nargs >= 2 && !along ? value(c, e->args[1]) : NULL;
    Shape s = x->shape;
    switch (f->rule) {
    case F_ELEM:
    case F_REDUCE:
        return mk1(c->ir, f->op, x);
    case F_ALONG:
        return d ? mk_along(c->ir, along_op(f->op), x, d) : mk1(c->ir, f->op, x);
    case F_SQUARE:
        if (!dim_eq(s.rows, s.cols))
            fail(c, e->loc, "%s needs a square matrix, got %s", f->name, shape_s(c, s));
        return mk1(c->ir, f->op, x);
    case F_PAIR:
        if (!elem_ok(x, y))
            fail(c, e->loc, "%s of %s and %s: %s", f->name, shape_s(c, s),
                 shape_s(c, y->shape), no_fit(c, s, y->shape));
        return mk2(c->ir, f->op, x, y);
    case F_POLYGAMMA:
        return mk2(c->ir, OP_POLYGAMMA, x, y);
    case F_CLAMP:
        return clamp(c, e, x, y, value(c, e->args[2]));
    case F_DOT:
        if (!shape_eq(s, y->shape))
            fail(c, e->loc, "dot of %s and %s: %s (dot takes two arguments of one shape)",
                 shape_s(c, s), shape_s(c, y->shape), differ(c, s, y->shape));
        return mk1(c->ir, OP_SUM, mk2(c->ir, OP_MUL, x, y));
    case F_MEAN: {
        if (d)
            return mk2(c->ir, OP_DIV, mk_along(c->ir, OP_SUMD, x, d), dim_node(c, d == 1 ? s.rows : s.cols));
        Node *numel = mk2(c->ir, OP_MUL, dim_node(c, s.rows), dim_node(c, s.cols));
        return mk2(c->ir, OP_DIV, mk1(c->ir, OP_SUM, x), numel);
    }
    case F_SOFTMAX:   /* a vector along its length; a matrix needs d */
        if (!d && !dim_eq(s.cols, dim_lit(1)) && !dim_eq(s.rows, dim_lit(1)))
            fail(c, e->loc, "%s of the matrix %s needs the dimension d: %s(X, 1) normalises "
                 "each column, %s(X, 2) each row", f->name, shape_s(c, s), f->name, f->name);
        return mk_along(c->ir, along_op(f->op), x, d ? d : dim_eq(s.cols, dim_lit(1)) ? 1 : 2);
    case F_DIAG:
        if (dim_eq(s.cols, dim_lit(1)))
            return mk1(c->ir, OP_DIAGM, x);
        if (dim_eq(s.rows, dim_lit(1)))   /* a row vector, as MATLAB allows */
            return mk1(c->ir, OP_DIAGM, mk1(c->ir, OP_TRANSPOSE, x));
        if (!dim_eq(s.rows, s.cols))
            fail(c, e->loc, "diag needs a vector or a square matrix, got %s", shape_s(c, s));
        return mk1(c->ir, OP_DIAGV, x);
    case F_SOLVE:
        return solve(c, e->loc, "solve", x, y);
    case F_KRON:
        return mk2(c->ir, OP_KRON, x, y);
    case F_FILL:
    case F_EYE:
    case F_NONE:
    case F_CONST:
    case F_GRAD:
    case F_HESSIAN:
    case F_WHERE:
        break;
    }
    return NULL; /* unreachable: handled above */
}

/* ---- concatenation (spec §8): [a, b] side by side, [a; b] stacked ---- */

static Node *concat(Checker *c, const Expr *e)
{
    bool v = e->kind == EX_VCAT;
    Node *acc = value(c, e->args[0]);
    for (int i = 1; i < e->nargs; i++) {
        Node *x = value(c, e->args[i]);
        Dim da = v ? acc->shape.cols : acc->shape.rows, db = v ? x->shape.cols : x->shape.rows;
        if (!dim_eq(da, db))
            fail(c, e->seps[i], "%s %s %s %s: %s %s and %s differ", v ? "stacking" : "placing",
                 shape_s(c, acc->shape), v ? "over" : "beside", shape_s(c, x->shape),
                 v ? "columns" : "rows", dim_s(c, da), dim_s(c, db));
        acc = mk2(c->ir, v ? OP_VCAT : OP_HCAT, acc, x);
    }
    return acc;
}

/* ---- indexing and slicing (spec §8), 1-based and inclusive ---- */

typedef struct Span {
    Node *off;      /* 0-based offset, a scalar value */
    Dim len;
    bool checked;   /* known in range at compile time */
} Span;

/* The bound x (an index, or one end of a range) as a form; fails unless it
 * is an integer expression; out of [1, extent] known now: an error there. */
static Lin bound(Checker *c, const Expr *x, Dim extent)
{
    Lin l;
    const Expr *bad = lin_of(c, x, &l);
    if (bad && bad->kind == EX_NAME && lookup(c, bad->name).kind == V_NONE)
        fail(c, bad->loc, "%s", why_undefined(c, bad->name, lookup(c, bad->name)));
    if (bad)
        fail(c, expr_start(bad), "an index or slice bound is %s%s", lin_hint,
             bad->kind == EX_NAME ? arena_printf(c->a, "; %s is not one", bad->name)
             : bad->kind == EX_NUM ? arena_printf(c->a, "; %g is not whole", bad->num) : "");
    Lin below = lin_axpy(l, -1, lin_const(1)), above = lin_axpy(l, -1, lin_of_dim(extent));
    if (lin_is_const(l) && (l.k < 1 || (lin_is_const(above) && above.k > 0)))
        fail(c, expr_start(x), "index out of range: %lld is not within 1 to %s", (long long)l.k,
             dim_s(c, extent));
    if ((lin_is_const(below) && below.k < 0) || (lin_is_const(above) && above.k > 0))
        fail(c, expr_start(x), "index out of range: it is %s %s %lld, past the end",
             dim_s(c, extent), above.k < 0 ? "-" : "+", (long long)(above.k < 0 ? -above.k : above.k));
    return l;
}

static bool in_range(Lin l, Dim extent)
{
    Lin below = lin_axpy(l, -1, lin_const(1)), above = lin_axpy(l, -1, lin_of_dim(extent));
    return lin_is_const(below) && below.k >= 0 && lin_is_const(above) && above.k <= 0;
}

/* The 0-based offset of the bound x, whose form is l: built from the form
 * (x[i + 1] reads at offset i, not (1 + i) - 1), or from x's value when it
 * is not linear. */
static Node *offset(Checker *c, const Expr *x, Lin l)
{
    if (!l.linear)
        return mk2(c->ir, OP_SUB, value(c, x), mk_const(c->ir, 1));
    Node *r = NULL;
    for (int i = 0; i < l.n; i++) {
        static const int64_t one = 1;
        Node *t = l.keys[i] >= 0 ? mk_dim(c->ir, dim_form(0, 1, &l.keys[i], &one))
                                 : lookup(c, c->names.data[-l.keys[i] - 1]).node;
        if (l.coefs[i] != 1)
            t = mk2(c->ir, OP_MUL, mk_const(c->ir, (double)l.coefs[i]), t);
        r = r ? mk2(c->ir, OP_ADD, r, t) : t;
    }
    Node *k = mk_const(c->ir, (double)(l.k - 1));
    return !r ? k : l.k == 1 ? r : mk2(c->ir, OP_ADD, r, k);
}

static Span span(Checker *c, const Expr *x, Dim extent)
{
    if (x->kind == EX_COLON)
        return (Span){mk_const(c->ir, 0), extent, true};
    if (x->kind != EX_RANGE) {
        Lin l = bound(c, x, extent);
        return (Span){offset(c, x, l), dim_lit(1), in_range(l, extent)};
    }
    Lin lo = bound(c, x->lhs, extent), hi = bound(c, x->rhs, extent);
    Lin n = lin_axpy(lin_axpy(hi, -1, lo), 1, lin_const(1));
    Dim len;
    if (!lin_dim(n, &len))
        fail(c, x->loc, "the length of a:b is b - a + 1, which must be a dimension (a form of "
             "literals and dimension symbols); here it %s", lin_has_index(n) ?
             "depends on a for index" : "is not linear");
    if (lin_is_const(n) && n.k < 0)
        fail(c, x->loc, "a:b runs backwards: its length b - a + 1 is %lld", (long long)n.k);
    return (Span){offset(c, x->lhs, lo), len, in_range(lo, extent) && in_range(hi, extent)};
}

static Node *index_expr(Checker *c, const Expr *e)
{
    Node *x = name_value(c, e);
    Shape s = x->shape;
    if (e->nargs > 2)
        fail(c, e->seps[2], "%s takes at most two indices, [i, j]", e->name);
    Span r, k;
    if (e->nargs == 2) {
        r = span(c, e->args[0], s.rows);
        k = span(c, e->args[1], s.cols);
    } else if (dim_eq(s.cols, dim_lit(1)) || !dim_eq(s.rows, dim_lit(1))) {
        if (!dim_eq(s.cols, dim_lit(1)))
            fail(c, expr_start(e->args[0]), "%s is %s: a matrix takes two indices, %s[i, j]",
                 e->name, shape_s(c, s), e->name);
        r = span(c, e->args[0], s.rows);
        k = (Span){mk_const(c->ir, 0), dim_lit(1), true};
    } else {   /* a row vector: one index counts along the row */
        r = (Span){mk_const(c->ir, 0), dim_lit(1), true};
        k = span(c, e->args[0], s.cols);
    }
    /* unknown now: checked at run time, reported at the first such index */
    Loc at = {0, 0};
    for (int i = 0; i < e->nargs && !at.line; i++)
        if (!(i == 0 && e->nargs == 2 ? r.checked : i == 1 ? k.checked : r.checked && k.checked))
            at = expr_start(e->args[i]->kind == EX_RANGE ? e->args[i]->lhs : e->args[i]);
    return mk3(c->ir, OP_SLICE, shape_make(r.len, k.len), x, r.off, k.off, loc_pack(at));
}

Node *value(Checker *c, const Expr *e)
{
    if (!e)
        fail(c, (Loc){0, 0}, "internal error: missing expression");
    if (++c->depth > MAX_EXPR_DEPTH)
        fail(c, e->loc, "expression nested too deeply");
    Node *n = NULL;
    switch (e->kind) {
    case EX_NUM:
        n = mk_const(c->ir, e->num);
        break;
    case EX_NAME:
        n = name_value(c, e);
        break;
    case EX_CALL:
        n = call(c, e);
        break;
    case EX_NEG:
        n = mk1(c->ir, OP_NEG, value(c, e->lhs));
        break;
    case EX_NOT:
        fail(c, e->loc, "%s", cond_only(c, "not"));
    case EX_BINARY:
    case EX_TRANSPOSE:
        n = left_chain(c, e);
        break;
    case EX_HCAT:
    case EX_VCAT:
        n = concat(c, e);
        break;
    case EX_INDEX:
        n = index_expr(c, e);
        break;
    case EX_RANGE:
    case EX_COLON:
        fail(c, e->loc, "a range a:b or ':' is only allowed as an index, x[a:b]");
    }
    if (!n)
        fail(c, e->loc, "internal error: unknown expression kind");
    c->depth--;
    return n;
}

/* What to do instead of an if on a vector. */
static const char cond_hint[] = "a condition is one scalar: reduce first (sum(...) > 0, "
    "norm(...) > 0), or choose entry by entry with where instead of an if "
    "(where(v > 0, a, b) is a where v > 0, else b)";

/* An if/while condition: comparisons of scalars combined with and/or/not; a
 * bare scalar means "!= 0", which is how IF and WHILE read cond anyway. */
Node *cond(Checker *c, const Expr *e)
{
    if (!e)
        fail(c, (Loc){0, 0}, "internal error: missing condition");
    if (++c->depth > MAX_EXPR_DEPTH)
        fail(c, e->loc, "condition nested too deeply");
    Node *n;
    if (e->kind == EX_NOT) {
        n = mk1(c->ir, OP_NOT, cond(c, e->lhs));
    } else if (e->kind == EX_BINARY && (e->op == B_AND || e->op == B_OR)) {
        Node *l = cond(c, e->lhs);
        n = mk2(c->ir, binops[e->op].op, l, cond(c, e->rhs));
    } else if (e->kind == EX_BINARY && is_comparison(e->op)) {
        Node *l = value(c, e->lhs), *r = value(c, e->rhs);
        if (!is_scalar(l) || !is_scalar(r))
            fail(c, e->loc, "condition compares %s with %s; %s", shape_s(c, l->shape),
                 shape_s(c, r->shape), cond_hint);
        n = mk2(c->ir, binops[e->op].op, l, r);
    } else {
        n = value(c, e);
        if (!is_scalar(n))
            fail(c, expr_start(e), "condition is %s, not a scalar; %s", shape_s(c, n->shape),
                 cond_hint);
    }
    c->depth--;
    return n;
}

