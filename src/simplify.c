/* simplify.c — smart constructors: every node is built through mk1/mk2, so
 * the DAG is simplified as it grows and no separate pass is needed.
 *
 * Rules, in the order they are tried (each returns a smaller or canonical
 * form, so rewriting terminates):
 *   - constant folding (CONST and FILL operands, with op_info's functions);
 *   - broadcasts undone: FILL(v) or s*ones next to a full-shaped operand of an
 *     elementwise op becomes the scalar itself;
 *   - canonical order of commutative operands (constants, then scalars, then
 *     by creation order), so `a + b` and `b + a` are one node;
 *   - per-op identities (0 and 1, x - x, --x, (x')' …), like-term collection
 *     (2*x + 2*x → 4*x), scalar factors pulled out of products, transposes
 *     pushed inwards ((A*B)' → B'*A'), and matrix products factored
 *     (P*x + Q*x → (P + Q)*x).
 * Rewrites keep values exact up to rounding; they may turn a NaN or Inf that
 * would arise from 0*Inf into 0 (documented in docs/design.md). */
#include "gradc.h"

#include <math.h>
#include <stdlib.h>

static _Noreturn void ir_bug(const char *what)
{
    fprintf(stderr, "gradc: internal error: %s\n", what);
#ifdef GRADC_FUZZING
    abort();   /* under libFuzzer: a crash it reports and saves, not a quiet exit */
#endif
    exit(70);
}

/* ---- leaves ---- */

Node *mk_const(Ir *ir, double v)
{
    return ir_node(ir, OP_CONST, shape_scalar(), NULL, NULL, v == 0 ? 0.0 : v, 0);
}

Node *mk_fill(Ir *ir, double v, Shape s)
{
    if (shape_is_scalar(s))
        return mk_const(ir, v);
    return ir_node(ir, OP_FILL, s, NULL, NULL, v == 0 ? 0.0 : v, 0);
}

Node *mk_zero(Ir *ir, Shape s) { return mk_fill(ir, 0.0, s); }

Node *mk_eye(Ir *ir, Dim n)
{
    if (dim_eq(n, dim_lit(1)))
        return mk_const(ir, 1.0);
    return ir_node(ir, OP_EYE, shape_make(n, n), NULL, NULL, 0.0, 0);
}

Node *mk_input(Ir *ir, int index, Shape s) { return ir_node(ir, OP_INPUT, s, NULL, NULL, 0.0, index); }
Node *mk_slot(Ir *ir, int slot) { return ir_node(ir, OP_SLOT, ir->slots.data[slot].shape, NULL, NULL, 0.0, slot); }
Node *mk_dimval(Ir *ir, int sym) { return ir_node(ir, OP_DIMVAL, shape_scalar(), NULL, NULL, 0.0, sym); }
Node *mk_cotan(Ir *ir, Shape s) { return ir_node(ir, OP_COTAN, s, NULL, NULL, 0.0, 0); }

bool node_is_const(const Node *n, double v)
{
    return (n->op == OP_CONST || n->op == OP_FILL) && n->num == v;
}

bool node_is_zero(const Node *n) { return node_is_const(n, 0.0); }

static bool is_constant(const Node *n) { return n->op == OP_CONST || n->op == OP_FILL; }
static bool is_scalar(const Node *n) { return shape_is_scalar(n->shape); }
static bool is(const Node *n, Op op) { return n->op == op; }

/* s spread over shape: FILL for a constant, s .* ones for a scalar, a
 * BCAST for a row or a column. */
static Node *broadcast(Ir *ir, Node *s, Shape shape)
{
    if (shape_eq(s->shape, shape))
        return s;
    if (s->op == OP_CONST)
        return mk_fill(ir, s->num, shape);
    if (!is_scalar(s))
        return mk_bcast(ir, s, shape);
    return ir_node(ir, OP_MUL, shape, s, mk_fill(ir, 1.0, shape), 0.0, 0);
}

/* The scalar behind a broadcast (FILL v, or s .* ones), else NULL. */
static Node *unbroadcast(Ir *ir, Node *n)
{
    if (is_scalar(n))
        return NULL;
    if (n->op == OP_FILL)
        return mk_const(ir, n->num);
    if (n->op == OP_MUL && is_scalar(n->args[0]) && node_is_const(n->args[1], 1.0))
        return n->args[0];
    return NULL;
}

/* ---- broadcasting and reductions along a dimension ---- */

static bool lit1(Dim d);
static bool bcast_dim(Dim a, Dim b, Dim *out);

int bcast_dims(const Node *n)
{
    Shape a = n->args[0]->shape;
    return (int)!dim_eq(a.rows, n->shape.rows) | (int)!dim_eq(a.cols, n->shape.cols) << 1;
}

/* A BCAST is always of a row or column that is not itself a broadcast, so
 * it is the outermost op of an elementwise expression (mk1/mk2 push it out:
 * exp(b') + 1 over rows is one BCAST of exp(b') + 1), and derive can print
 * it as its argument wherever an elementwise operator re-expands it. */
Node *mk_bcast(Ir *ir, Node *x, Shape shape)
{
    if (shape_eq(x->shape, shape))
        return x;
    Node *s = unbroadcast(ir, x);
    if (is_scalar(x) || s)
        return broadcast(ir, s ? s : x, shape);
    if (x->op == OP_BCAST)
        x = x->args[0];
    Dim r, c;
    if (!bcast_dim(shape.rows, x->shape.rows, &r) || !bcast_dim(shape.cols, x->shape.cols, &c) ||
        !shape_eq(shape_make(r, c), shape))
        ir_bug("broadcast to a shape that does not fit");
    return ir_node(ir, OP_BCAST, shape, x, NULL, 0.0, 0);
}

static Node *dim_value(Ir *ir, Dim d) { return mk_dim(ir, d); }   /* literal, symbol or form */

/* The reduction over all entries that op along d is for a vector along its
 * length (OP_COUNT: none). */
static Op along_all(Op op, int d)
{
    switch (op) {
    case OP_SUMD: return OP_SUM;
    case OP_AMAXD: return OP_AMAX;
    case OP_AMIND: return OP_AMIN;
    case OP_LSED: return OP_LOGSUMEXP;
    case OP_SOFTMAXD: return d == 1 ? OP_SOFTMAX : OP_COUNT;   /* a column: the first edition's op */
    default: return OP_COUNT;
    }
}

static Node *sumd_rule(Ir *ir, Node *x, int d, Dim along)
{
    if (x->op == OP_NEG)
        return mk1(ir, OP_NEG, mk_along(ir, OP_SUMD, x->args[0], d));
    if (x->op == OP_MUL && x->args[0]->op == OP_CONST)   /* constants merge: no deep recursion */
        return mk2(ir, OP_MUL, x->args[0], mk_along(ir, OP_SUMD, x->args[1], d));
    if (x->op == OP_BCAST && (bcast_dims(x) & d))   /* n copies of v summed: n*v */
        return mk2(ir, OP_MUL, dim_value(ir, along), x->args[0]);
    Shape s = d == 1 ? shape_make(dim_lit(1), x->shape.cols) : shape_make(x->shape.rows, dim_lit(1));
    if (x->op == OP_FILL)
        return mk2(ir, OP_MUL, dim_value(ir, along), mk_fill(ir, x->num, s));
    if (x->op == OP_EYE)   /* the adjoint of trace, summed */
        return mk_fill(ir, 1.0, s);
    if (x->op == OP_DIAGM)   /* one nonzero per row and column: the vector itself */
        return d == 2 ? x->args[0] : mk1(ir, OP_TRANSPOSE, x->args[0]);
    /* the rows of M*diag(u) sum to M*u, the columns of diag(u)*M to u'*M:
     * no scaled copy of M */
    if (x->op == OP_MATMUL && d == 2 && x->args[1]->op == OP_DIAGM)
        return mk2(ir, OP_MATMUL, x->args[0], x->args[1]->args[0]);
    if (x->op == OP_MATMUL && d == 1 && x->args[0]->op == OP_DIAGM)
        return mk2(ir, OP_MATMUL, mk1(ir, OP_TRANSPOSE, x->args[0]->args[0]), x->args[1]);
    return NULL;
}

Node *mk_along(Ir *ir, Op op, Node *x, int d)
{
    bool norm = op == OP_SOFTMAXD || op == OP_LOGSOFTMAXD;
    if ((op < OP_SUMD || op > OP_LOGSOFTMAXD) || (d != 1 && d != 2))
        ir_bug("mk_along of an op that is not along a dimension");
    Dim along = d == 1 ? x->shape.rows : x->shape.cols, other = d == 1 ? x->shape.cols : x->shape.rows;
    if (lit1(along))   /* one entry along d: itself, or softmax's 1 */
        return op == OP_SOFTMAXD ? mk_fill(ir, 1.0, x->shape) : op == OP_LOGSOFTMAXD ? mk_zero(ir, x->shape) : x;
    if (lit1(other) && along_all(op, d) != OP_COUNT)
        return mk1(ir, along_all(op, d), x);
    if (x->op == OP_TRANSPOSE)   /* along d of X' is along 3 - d of X, transposed: no copy of X' */
        return mk1(ir, OP_TRANSPOSE, mk_along(ir, op, x->args[0], 3 - d));
    Node *r = NULL;
    if (op == OP_SUMD)
        r = sumd_rule(ir, x, d, along);
    else if ((op == OP_AMAXD || op == OP_AMIND) && x->op == OP_BCAST && (bcast_dims(x) & d))
        r = x->args[0];
    if (r)
        return r;
    Shape s = norm ? x->shape : d == 1 ? shape_make(dim_lit(1), x->shape.cols) : shape_make(x->shape.rows, dim_lit(1));
    return ir_node(ir, op, s, x, NULL, 0.0, d);
}

Node *mk_like(Ir *ir, const Node *n, Node *a, Node *b)
{
    if (n->op == OP_BCAST)
        return mk_bcast(ir, a, n->shape);
    if (n->op >= OP_SUMD && n->op <= OP_LOGSOFTMAXD)
        return mk_along(ir, n->op, a, n->index);
    return n->nargs == 1 ? mk1(ir, n->op, a) : mk2(ir, n->op, a, b);
}

Node *mk_like_args(Ir *ir, const Node *n, Node *const *a)
{
    if (n->nargs == 3)
        return mk3(ir, n->op, n->shape, a[0], a[1], a[2], n->num);
    return mk_like(ir, n, a[0], n->nargs > 1 ? a[1] : NULL);
}

/* ---- shapes of results (the checker has already reported user errors) ---- */

static bool lit1(Dim d) { return dim_eq(d, dim_lit(1)); }

/* Broadcasting, one dimension: equal, or one side the literal 1. */
static bool bcast_dim(Dim a, Dim b, Dim *out)
{
    if (dim_eq(a, b) || lit1(b))
        *out = a;
    else if (lit1(a))
        *out = b;
    else
        return false;
    return true;
}

static Shape shape_of1(Op op, const Node *a)
{
    Shape s = a->shape;
    switch (op) {
    case OP_TRANSPOSE: return shape_make(s.cols, s.rows);
    case OP_SUM: case OP_NORM: case OP_TRACE: case OP_DET: case OP_LOGDET:
    case OP_LOGSUMEXP: case OP_AMAX: case OP_AMIN: return shape_scalar();
    case OP_DIAGM: return shape_make(s.rows, s.rows);
    case OP_DIAGV: return shape_make(s.rows, dim_lit(1));
    case OP_FLATTEN: return shape_make(dim_mul(s.rows, s.cols), dim_lit(1));
    default: return s; /* elementwise, INV, SOFTMAX */
    }
}

static Shape shape_of2(Op op, const Node *a, const Node *b)
{
    if (op == OP_VCAT)
        return shape_make(dim_add(a->shape.rows, b->shape.rows), a->shape.cols);
    if (op == OP_HCAT)
        return shape_make(a->shape.rows, dim_add(a->shape.cols, b->shape.cols));
    if (op == OP_MATMUL) {
        if (!dim_eq(a->shape.cols, b->shape.rows))
            ir_bug("matrix product of mismatched shapes");
        return shape_make(a->shape.rows, b->shape.cols);
    }
    if (op == OP_KRON)
        return shape_make(dim_mul(a->shape.rows, b->shape.rows), dim_mul(a->shape.cols, b->shape.cols));
    if (op == OP_SOLVE || op == OP_SOLVET) {
        if (a->op != OP_LU || !dim_eq(a->shape.rows, b->shape.rows))
            ir_bug("solve of mismatched shapes");
        return b->shape;
    }
    Shape r;
    if (!bcast_dim(a->shape.rows, b->shape.rows, &r.rows) ||
        !bcast_dim(a->shape.cols, b->shape.cols, &r.cols))
        ir_bug("elementwise operation on mismatched shapes");
    return r;
}

/* ---- like terms: n = coef * term ---- */

static double split_term(Ir *ir, Node *n, Node **term)
{
    if (n->op == OP_BCAST) {   /* bcast(c*t) = c * bcast(t) */
        Node *t;
        double c = split_term(ir, n->args[0], &t);
        *term = c == 1.0 ? n : mk_bcast(ir, t, n->shape);
        return c;
    }
    if (n->op == OP_MUL && n->args[0]->op == OP_CONST) {
        *term = n->args[1];
        return n->args[0]->num;
    }
    if (n->op == OP_NEG) {
        *term = n->args[0];
        return -1.0;
    }
    *term = n;
    return 1.0;
}

static bool commutative(Op op)
{
    return op == OP_ADD || op == OP_MUL || op == OP_MAX || op == OP_MIN || op == OP_EQ ||
           op == OP_NE || op == OP_AND || op == OP_OR;
}

/* Canonical operand order: constants first, then scalars, then by age. */
static bool goes_first(const Node *a, const Node *b)
{
    if (is_constant(a) != is_constant(b))
        return is_constant(a);
    if (is_scalar(a) != is_scalar(b))
        return is_scalar(a);
    return a->id <= b->id;
}

/* ---- per-op rules: return a simpler node, or NULL to build the op as is ---- */

typedef Node *Rule2(Ir *ir, Node *a, Node *b, Shape shape);
typedef Node *Rule1(Ir *ir, Node *a, Shape shape);

/* Returns x if it already has the result's shape, else x spread over it. */
static Node *as_shape(Ir *ir, Node *x, Shape shape) { return broadcast(ir, x, shape); }

/* P*x ± Q*x → (P ± Q)*x and P*x ± P*y → P*(x ± y), else NULL.  Only when
 * both products have one shape: x'*x - K*x broadcasts a 1×1 product, and
 * x' - K would not be an elementwise difference. */
static Node *factor_products(Ir *ir, Op op, Node *a, Node *b)
{
    if (!is(a, OP_MATMUL) || !is(b, OP_MATMUL) || !shape_eq(a->shape, b->shape))
        return NULL;
    if (a->args[1] == b->args[1])
        return mk2(ir, OP_MATMUL, mk2(ir, op, a->args[0], b->args[0]), a->args[1]);
    if (a->args[0] == b->args[0])
        return mk2(ir, OP_MATMUL, a->args[0], mk2(ir, op, a->args[1], b->args[1]));
    return NULL;
}

/* (p ± q) ± r where r's term is q's (or p's): the like terms meet,
 * (x - t) - t → x - 2*t.  One level deep: a sum built left to right meets
 * each new term with the two it ends in.  Same shapes only (no broadcast). */
static Node *absorb(Ir *ir, Node *a, double sign, Node *b, Shape shape)
{
    if ((a->op != OP_ADD && a->op != OP_SUB) || !shape_eq(a->shape, shape) ||
        !shape_eq(b->shape, shape))
        return NULL;
    Node *p = a->args[0], *q = a->args[1], *tp, *tq, *tr;
    if (!shape_eq(p->shape, shape) || !shape_eq(q->shape, shape))
        return NULL;
    double cp = split_term(ir, p, &tp);
    double cq = split_term(ir, q, &tq) * (a->op == OP_SUB ? -1 : 1);
    double cr = split_term(ir, b, &tr) * sign;
    if (tq == tr)
        return mk2(ir, OP_ADD, p, mk2(ir, OP_MUL, mk_const(ir, cq + cr), tq));
    if (tp == tr)
        return mk2(ir, a->op, mk2(ir, OP_MUL, mk_const(ir, cp + cr), tp), q);
    return NULL;
}

static Node *rule_add(Ir *ir, Node *a, Node *b, Shape shape)
{
    if (node_is_zero(a))
        return as_shape(ir, b, shape);
    if (node_is_zero(b))
        return as_shape(ir, a, shape);
    Node *ta, *tb;
    double ca = split_term(ir, a, &ta), cb = split_term(ir, b, &tb);
    if (ta == tb)
        return as_shape(ir, mk2(ir, OP_MUL, mk_const(ir, ca + cb), ta), shape);
    if (ca == cb && ca != 1 && shape_eq(ta->shape, tb->shape))   /* c*a + c*b → c*(a + b) */
        return mk2(ir, OP_MUL, mk_const(ir, ca), mk2(ir, OP_ADD, ta, tb));
    if (cb < 0)      /* a + (-c)*t → a - c*t */
        return mk2(ir, OP_SUB, a, mk2(ir, OP_MUL, mk_const(ir, -cb), tb));
    if (ca < 0)
        return mk2(ir, OP_SUB, b, mk2(ir, OP_MUL, mk_const(ir, -ca), ta));
    Node *r = absorb(ir, a, 1, b, shape);
    if (r || (r = absorb(ir, b, 1, a, shape)))
        return r;
    return factor_products(ir, OP_ADD, a, b);
}

static Node *rule_sub(Ir *ir, Node *a, Node *b, Shape shape)
{
    if (node_is_zero(b))
        return as_shape(ir, a, shape);
    if (node_is_zero(a))
        return as_shape(ir, mk1(ir, OP_NEG, b), shape);
    if (a == b)
        return mk_zero(ir, shape);
    Node *ta, *tb;
    double ca = split_term(ir, a, &ta), cb = split_term(ir, b, &tb);
    if (ta == tb)
        return as_shape(ir, mk2(ir, OP_MUL, mk_const(ir, ca - cb), ta), shape);
    if (ca == cb && ca != 1 && shape_eq(ta->shape, tb->shape))   /* c*a - c*b → c*(a - b) */
        return mk2(ir, OP_MUL, mk_const(ir, ca), mk2(ir, OP_SUB, ta, tb));
    if (ca == -cb && ca != 1 && ca != -1 && shape_eq(ta->shape, tb->shape))  /* -c*a - c*b */
        return mk2(ir, OP_MUL, mk_const(ir, ca), mk2(ir, OP_ADD, ta, tb));
    if (cb < 0)      /* a - (-c)*t → a + c*t */
        return mk2(ir, OP_ADD, a, mk2(ir, OP_MUL, mk_const(ir, -cb), tb));
    Node *r = absorb(ir, a, -1, b, shape);
    if (r)
        return r;
    return factor_products(ir, OP_SUB, a, b);
}

static Node *rule_mul(Ir *ir, Node *a, Node *b, Shape shape)
{
    if (node_is_zero(a) || node_is_zero(b))
        return mk_zero(ir, shape);
    if (node_is_const(a, 1.0))
        return as_shape(ir, b, shape);
    if (node_is_const(b, 1.0))
        return as_shape(ir, a, shape);
    if (a->op == OP_CONST) {
        double c = a->num;
        if (b->op == OP_MUL && b->args[0]->op == OP_CONST)
            return mk2(ir, OP_MUL, mk_const(ir, c * b->args[0]->num), b->args[1]);
        if (b->op == OP_NEG)
            return mk2(ir, OP_MUL, mk_const(ir, -c), b->args[0]);
        /* constants meet: c*(c2/x) → (c*c2)/x, so 2*(0.5/n) is 1/n, and
         * c*(a/(c2*b)) → (c/c2)*(a/b), so 2*(x/(2*n)) is x/n */
        Node *d = b->op == OP_DIV || b->op == OP_DIVSAFE ? b->args[1] : NULL;
        if (d && is_scalar(d) && d->op == OP_MUL && d->args[0]->op == OP_CONST && d->args[0]->num != 0)
            return mk2(ir, OP_MUL, mk_const(ir, c / d->args[0]->num), mk2(ir, b->op, b->args[0], d->args[1]));
        if (d && b->args[0]->op == OP_CONST)
            return mk2(ir, b->op, mk_const(ir, c * b->args[0]->num), d);
        if (c == -1.0)
            return mk1(ir, OP_NEG, b);
        return NULL;
    }
    if (a == b)
        return mk2(ir, OP_POW, a, mk_const(ir, 2.0));
    /* flatten(A) .* flatten(B) → flatten(A .* B): one diagonal in derive --hessian */
    if (a->op == OP_FLATTEN && b->op == OP_FLATTEN && shape_eq(a->args[0]->shape, b->args[0]->shape))
        return mk1(ir, OP_FLATTEN, mk2(ir, OP_MUL, a->args[0], b->args[0]));
    /* pull constant factors and signs out: (c*x) .* y → c*(x .* y) */
    if (a->op == OP_MUL && a->args[0]->op == OP_CONST)
        return mk2(ir, OP_MUL, a->args[0], mk2(ir, OP_MUL, a->args[1], b));
    if (b->op == OP_MUL && b->args[0]->op == OP_CONST)
        return mk2(ir, OP_MUL, b->args[0], mk2(ir, OP_MUL, a, b->args[1]));
    if (a->op == OP_NEG)
        return mk1(ir, OP_NEG, mk2(ir, OP_MUL, a->args[0], b));
    if (b->op == OP_NEG)
        return mk1(ir, OP_NEG, mk2(ir, OP_MUL, a, b->args[0]));
    /* … and out of a broadcast: x .* bcast(-v) → -(x .* bcast(v)) */
    for (int i = 0; i < 2; i++) {
        Node *e = i ? b : a, *o = i ? a : b, *v = e->op == OP_BCAST ? e->args[0] : NULL;
        if (v && v->op == OP_NEG)
            return mk1(ir, OP_NEG, mk2(ir, OP_MUL, o, mk_bcast(ir, v->args[0], shape)));
        if (v && v->op == OP_MUL && v->args[0]->op == OP_CONST)
            return mk2(ir, OP_MUL, v->args[0], mk2(ir, OP_MUL, o, mk_bcast(ir, v->args[1], shape)));
    }
    /* (c/s) .* x → c*(x/s): the constant joins the others */
    if (a->op == OP_DIV && is_scalar(a) && a->args[0]->op == OP_CONST && a->args[0]->num != 1.0)
        return mk2(ir, OP_MUL, a->args[0], mk2(ir, OP_DIV, b, a->args[1]));
    /* (1/s) .* x → x/s, so x/norm(x) prints as such */
    if (a->op == OP_DIV && is_scalar(a) && node_is_const(a->args[0], 1.0))
        return mk2(ir, OP_DIV, b, a->args[1]);
    if (a->op == OP_DIVSAFE && is_scalar(a) && node_is_const(a->args[0], 1.0))
        return mk2(ir, OP_DIVSAFE, b, a->args[1]);
    return NULL;
}

/* a ./ b and the safe division (0 where b == 0) simplify alike, except that
 * a safe division by the constant 0 is not a multiplication by Inf. */
static Node *rule_quotient(Ir *ir, Op op, Node *a, Node *b, Shape shape)
{
    if (node_is_zero(a))
        return mk_zero(ir, shape);
    if (node_is_const(b, 1.0))
        return as_shape(ir, a, shape);
    if (b->op == OP_CONST && (op == OP_DIV || b->num != 0))
        return mk2(ir, OP_MUL, mk_const(ir, 1.0 / b->num), a);
    if (a->op == OP_NEG)
        return mk1(ir, OP_NEG, mk2(ir, op, a->args[0], b));
    if (a->op == OP_CONST && a->num < 0)     /* -c/x → -(c/x) */
        return mk1(ir, OP_NEG, mk2(ir, op, mk_const(ir, -a->num), b));
    if (a->op == OP_MUL && a->args[0]->op == OP_CONST)
        return mk2(ir, OP_MUL, a->args[0], mk2(ir, op, a->args[1], b));
    return NULL;
}

static Node *rule_div(Ir *ir, Node *a, Node *b, Shape shape) { return rule_quotient(ir, OP_DIV, a, b, shape); }
static Node *rule_divsafe(Ir *ir, Node *a, Node *b, Shape shape)
{
    return rule_quotient(ir, OP_DIVSAFE, a, b, shape);
}

static Node *rule_pow(Ir *ir, Node *a, Node *p, Shape shape)
{
    if (node_is_const(p, 1.0))
        return as_shape(ir, a, shape);
    if (node_is_zero(p))
        return mk_fill(ir, 1.0, shape);
    if (node_is_const(p, 2.0) && a->op == OP_NORM)   /* ||x||^2 = dot(x, x) */
        return mk1(ir, OP_SUM, mk2(ir, OP_MUL, a->args[0], a->args[0]));
    if (node_is_const(p, 2.0) && a->op == OP_SQRT)
        return a->args[0];
    return NULL;
}

static bool outer_product(const Node *n)
{
    return n->op == OP_MATMUL && dim_eq(n->args[0]->shape.cols, dim_lit(1));
}

static Node *rule_matmul(Ir *ir, Node *a, Node *b, Shape shape)
{
    if (node_is_zero(a) || node_is_zero(b))
        return mk_zero(ir, shape);
    if (a->op == OP_EYE)
        return b;
    if (b->op == OP_EYE)
        return a;
    if (is_scalar(a) || is_scalar(b))      /* a 1×1 factor scales */
        return mk2(ir, OP_MUL, a, b);
    /* a constant matrix factor sums the other: A*v*ones(k, p) is v times A's
     * row sums expanded (ones(m)*b' is b' expanded, no outer product) */
    if (b->op == OP_FILL)
        return mk2(ir, OP_MUL, mk_const(ir, b->num), mk_bcast(ir, mk_along(ir, OP_SUMD, a, 2), shape));
    if (a->op == OP_FILL)
        return mk2(ir, OP_MUL, mk_const(ir, a->num), mk_bcast(ir, mk_along(ir, OP_SUMD, b, 1), shape));
    /* a broadcast factor is never built: rows that repeat v give rows that
     * repeat v*B; columns that repeat v give v times B's column sums */
    if (a->op == OP_BCAST)
        return bcast_dims(a) == 1 ? mk_bcast(ir, mk2(ir, OP_MATMUL, a->args[0], b), shape)
                                  : mk2(ir, OP_MATMUL, a->args[0], mk_along(ir, OP_SUMD, b, 1));
    if (b->op == OP_BCAST)
        return bcast_dims(b) == 2 ? mk_bcast(ir, mk2(ir, OP_MATMUL, a, b->args[0]), shape)
                                  : mk2(ir, OP_MATMUL, mk_along(ir, OP_SUMD, a, 2), b->args[0]);
    /* the mixed product: kron(A, B)*kron(C, D) = kron(A*C, B*D), also
     * where the second starts a product: kron(A, B)*(kron(C, D)*R) */
    Node *k = b->op == OP_MATMUL && b->args[0]->op == OP_KRON ? b->args[0] : b;
    if (a->op == OP_KRON && k->op == OP_KRON &&
        dim_eq(a->args[0]->shape.cols, k->args[0]->shape.rows) &&
        dim_eq(a->args[1]->shape.cols, k->args[1]->shape.rows)) {
        Node *p = mk2(ir, OP_KRON, mk2(ir, OP_MATMUL, a->args[0], k->args[0]),
                      mk2(ir, OP_MATMUL, a->args[1], k->args[1]));
        return k == b ? p : mk2(ir, OP_MATMUL, p, b->args[1]);
    }
    /* form a rank-1 product u*v' last: A*(u*v') → (A*u)*v', (u*v')*B → u*(v'*B),
     * so no n×n outer product is built where two vectors do */
    if (b->op == OP_MATMUL && outer_product(b) && !outer_product(a))
        return mk2(ir, OP_MATMUL, mk2(ir, OP_MATMUL, a, b->args[0]), b->args[1]);
    if (a->op == OP_MATMUL && outer_product(a) && !outer_product(b))
        return mk2(ir, OP_MATMUL, a->args[0], mk2(ir, OP_MATMUL, a->args[1], b));
    /* scalar factors and signs out of products: (s*A)*B → s*(A*B) */
    if (a->op == OP_MUL && is_scalar(a->args[0]))
        return mk2(ir, OP_MUL, a->args[0], mk2(ir, OP_MATMUL, a->args[1], b));
    if (b->op == OP_MUL && is_scalar(b->args[0]))
        return mk2(ir, OP_MUL, b->args[0], mk2(ir, OP_MATMUL, a, b->args[1]));
    for (int i = 0; i < 2; i++) {   /* (A/s)*B → (A*B)/s next to a kron, so kron products meet */
        Node *x = i ? b : a, *o = i ? a : b;
        if ((x->op == OP_DIV || x->op == OP_DIVSAFE) && is_scalar(x->args[1]) &&
            (o->op == OP_KRON || x->args[0]->op == OP_KRON))
            return mk2(ir, x->op, i ? mk2(ir, OP_MATMUL, a, x->args[0]) : mk2(ir, OP_MATMUL, x->args[0], b),
                       x->args[1]);
    }
    /* a vector factor of a kron rides outside: kron(A, u)*M = kron(A*M, u) for a
     * column u, M*kron(C, v) = kron(M*C, v) for a row v (M = kron(M, 1)) */
    if (a->op == OP_KRON && dim_eq(a->args[1]->shape.cols, dim_lit(1)) && b->op != OP_KRON)
        return mk2(ir, OP_KRON, mk2(ir, OP_MATMUL, a->args[0], b), a->args[1]);
    if (b->op == OP_KRON && dim_eq(b->args[1]->shape.rows, dim_lit(1)) && a->op != OP_KRON)
        return mk2(ir, OP_KRON, mk2(ir, OP_MATMUL, a, b->args[0]), b->args[1]);
    if (a->op == OP_NEG)
        return mk1(ir, OP_NEG, mk2(ir, OP_MATMUL, a->args[0], b));
    if (b->op == OP_NEG)
        return mk1(ir, OP_NEG, mk2(ir, OP_MATMUL, a, b->args[0]));
    return NULL;
}

static Node *rule_neg(Ir *ir, Node *a, Shape shape)
{
    (void)shape;
    if (a->op == OP_NEG)
        return a->args[0];
    if (a->op == OP_MUL && a->args[0]->op == OP_CONST)
        return mk2(ir, OP_MUL, mk_const(ir, -a->args[0]->num), a->args[1]);
    if (a->op == OP_SUB)
        return mk2(ir, OP_SUB, a->args[1], a->args[0]);
    return NULL;
}

/* x' is no extra work: x is a transpose, symmetric, constant or scalar. */
static bool cancels_transpose(const Node *x)
{
    return x->op == OP_TRANSPOSE || x->op == OP_EYE || x->op == OP_DIAGM || is_scalar(x) ||
           x->op == OP_FILL;
}

static Node *rule_transpose(Ir *ir, Node *a, Shape shape)
{
    if (is_scalar(a) || a->op == OP_EYE || a->op == OP_DIAGM)
        return a;
    switch (a->op) {
    case OP_TRANSPOSE: return a->args[0];
    case OP_FILL: return mk_fill(ir, a->num, shape);
    case OP_BCAST: return mk_bcast(ir, mk1(ir, OP_TRANSPOSE, a->args[0]), shape);
    case OP_MATMUL:
        /* (A*B)' → B'*A' only when that cancels a transpose, so an existing
         * product (and its value) stays shared */
        if (!cancels_transpose(a->args[0]) && !cancels_transpose(a->args[1]))
            return NULL;
        return mk2(ir, OP_MATMUL, mk1(ir, OP_TRANSPOSE, a->args[1]), mk1(ir, OP_TRANSPOSE, a->args[0]));
    case OP_NEG: return mk1(ir, OP_NEG, mk1(ir, OP_TRANSPOSE, a->args[0]));
    case OP_KRON: return mk2(ir, OP_KRON, mk1(ir, OP_TRANSPOSE, a->args[0]), mk1(ir, OP_TRANSPOSE, a->args[1]));
    case OP_MUL: case OP_DIV: case OP_DIVSAFE:
        if (is_scalar(a->args[1]))
            return mk2(ir, a->op, mk1(ir, OP_TRANSPOSE, a->args[0]), a->args[1]);
        if (a->op == OP_MUL && is_scalar(a->args[0]))
            return mk2(ir, OP_MUL, a->args[0], mk1(ir, OP_TRANSPOSE, a->args[1]));
        return NULL;
    case OP_ADD: case OP_SUB:
        if (!is_scalar(a->args[0]) && !is_scalar(a->args[1]) &&
            (cancels_transpose(a->args[0]) || cancels_transpose(a->args[1])))
            return mk2(ir, a->op, mk1(ir, OP_TRANSPOSE, a->args[0]), mk1(ir, OP_TRANSPOSE, a->args[1]));
        return NULL;
    default: return NULL;
    }
}

static Node *rule_sum(Ir *ir, Node *a, Shape shape)
{
    (void)shape;
    if (is_scalar(a))
        return a;
    if (a->op == OP_NEG)
        return mk1(ir, OP_NEG, mk1(ir, OP_SUM, a->args[0]));
    if (a->op == OP_MUL && a->args[0]->op == OP_CONST)
        return mk2(ir, OP_MUL, a->args[0], mk1(ir, OP_SUM, a->args[1]));
    if (a->op == OP_MUL && (a->args[0]->op == OP_EYE || a->args[1]->op == OP_EYE))   /* the diagonal: n entries */
        return mk1(ir, OP_TRACE, a->args[a->args[0]->op == OP_EYE]);
    if (a->op == OP_FILL)
        return mk2(ir, OP_MUL, mk_const(ir, a->num),
                   mk2(ir, OP_MUL, dim_value(ir, a->shape.rows), dim_value(ir, a->shape.cols)));
    if (a->op == OP_BCAST) {   /* n copies of v: n*sum(v) */
        Dim n = bcast_dims(a) == 1 ? a->shape.rows : a->shape.cols;
        return mk2(ir, OP_MUL, dim_value(ir, n), mk1(ir, OP_SUM, a->args[0]));
    }
    return NULL;
}

/* trace(X') = trace(X); a scalar factor comes out (the adjoint of sn2 in
 * K = ... + sn2 * eye(n) is trace(G), not a sum over n^2 entries) */
static Node *rule_trace(Ir *ir, Node *a, Shape shape)
{
    (void)shape;
    if (a->op == OP_TRANSPOSE)
        return mk1(ir, OP_TRACE, a->args[0]);
    if (a->op == OP_MUL && is_scalar(a->args[0]))
        return mk2(ir, OP_MUL, a->args[0], mk1(ir, OP_TRACE, a->args[1]));
    if (a->op == OP_MUL && is_scalar(a->args[1]))
        return mk2(ir, OP_MUL, mk1(ir, OP_TRACE, a->args[0]), a->args[1]);
    return NULL;
}

static Node *rule_detach(Ir *ir, Node *a, Shape shape)
{
    (void)ir;
    (void)shape;
    return is_constant(a) || a->op == OP_DETACH ? a : NULL;
}

/* where's half: a constant condition picks a side or 0; 0 picked is 0 */
static Node *rule_pick(Ir *ir, Node *c, Node *a, Shape shape)
{
    if (node_is_zero(a) || node_is_zero(c))
        return mk_zero(ir, shape);
    if (is_constant(c))   /* nonzero (zero was above) */
        return as_shape(ir, a, shape);
    if (a->op == OP_PICK)   /* nested masks are one: no chain of PICKs to peel */
        return mk2(ir, OP_PICK, a->args[0] == c ? c : mk2(ir, OP_AND, c, a->args[0]), a->args[1]);
    return NULL;
}

/* a or not a: every entry is true (NaN != 0 too); a and not a: none.  Also
 * a or (not a or b), one level down: where's masked adjoints build such ORs. */
static bool negates(const Node *a, const Node *b)
{
    return (b->op == OP_NOT && b->args[0] == a) || (a->op == OP_NOT && a->args[0] == b);
}
static Node *rule_excluded_middle(Ir *ir, Node *a, Node *b, Shape shape, double v)
{
    if (negates(a, b))
        return mk_fill(ir, v, shape);
    return NULL;
}
static Node *rule_or(Ir *ir, Node *a, Node *b, Shape shape)
{
    for (int i = 0; i < 2; i++) {
        Node *x = i ? b : a, *y = i ? a : b;
        if (y->op == OP_OR && (negates(x, y->args[0]) || negates(x, y->args[1])))
            return mk_fill(ir, 1, shape);
    }
    return rule_excluded_middle(ir, a, b, shape, 1);
}
static Node *rule_and(Ir *ir, Node *a, Node *b, Shape shape) { return rule_excluded_middle(ir, a, b, shape, 0); }

/* chol of a 1×1 a: sqrt(a), and NaN unless a > 0 (0/0 at a = 0), as the
 * factorisation fails there */
static Node *rule_chol(Ir *ir, Node *a, Shape shape)
{
    (void)shape;
    return is_scalar(a) ? mk2(ir, OP_DIV, mk1(ir, OP_SQRT, a), mk2(ir, OP_GT, a, mk_const(ir, 0)))
                        : NULL;
}

static Node *rule_tril(Ir *ir, Node *a, Shape shape)
{
    (void)ir;
    (void)shape;
    return is_scalar(a) || a->op == OP_TRIL || a->op == OP_CHOL ? a : NULL;
}

Node *mk_solve(Ir *ir, Node *a, Node *b, bool trans)
{
    if (is_scalar(a))
        return mk2(ir, OP_DIV, b, a);
    /* X' \ B is SOLVET(LU(X), B): the solves with X and with X' share one
     * factorisation (chol's adjoint solves with L' for an L it solved with) */
    if (a->op == OP_TRANSPOSE)
        return mk_solve(ir, a->args[0], b, !trans);
    return mk2(ir, trans ? OP_SOLVET : OP_SOLVE, mk1(ir, OP_LU, a), b);
}

/* solve(A, c*B) = c*solve(A, B) and solve(A, -B) = -solve(A, B), so that
 * solves of one right-hand side up to a factor are one node */
static Node *rule_solve_factor(Ir *ir, Op op, Node *lu, Node *b)
{
    if (b->op == OP_NEG)
        return mk1(ir, OP_NEG, mk2(ir, op, lu, b->args[0]));
    for (int i = 0; i < 2 && b->op == OP_MUL; i++)
        if (is_scalar(b->args[i]) && !is_scalar(b->args[1 - i]))
            return mk2(ir, OP_MUL, b->args[i], mk2(ir, op, lu, b->args[1 - i]));
    return NULL;
}
static Node *rule_solve(Ir *ir, Node *a, Node *b, Shape shape)
{
    (void)shape;
    return rule_solve_factor(ir, OP_SOLVE, a, b);
}
static Node *rule_solvet(Ir *ir, Node *a, Node *b, Shape shape)
{
    (void)shape;
    return rule_solve_factor(ir, OP_SOLVET, a, b);
}

/* [c; c] of one constant is that constant's fill (a zero adjoint stays zero). */
static Node *rule_cat(Ir *ir, Node *a, Node *b, Shape shape)
{
    if (is_constant(a) && is_constant(b) && a->num == b->num)
        return mk_fill(ir, a->num, shape);
    return NULL;
}

/* kron(A, B): a scalar side scales; eye ⊗ eye is eye; scalar factors,
 * signs and divisors come out, so kron(2*A, B)/m prints as it reads. */
static Node *rule_kron(Ir *ir, Node *a, Node *b, Shape shape)
{
    if (node_is_zero(a) || node_is_zero(b))
        return mk_zero(ir, shape);
    if (is_scalar(a) || is_scalar(b))
        return mk2(ir, OP_MUL, a, b);
    if (a->op == OP_EYE && b->op == OP_EYE)
        return mk_eye(ir, shape.rows);
    if (a->op == OP_FILL && b->op == OP_FILL)
        return mk_fill(ir, a->num * b->num, shape);
    /* kron(kron(A, v), u) = kron(A, u*v) for a row v and a column u (or v, u the
     * other way round): the vectors' entries index the inner blocks alike */
    if (a->op == OP_KRON) {
        Node *v = a->args[1];
        bool vrow = dim_eq(v->shape.rows, dim_lit(1)), vcol = dim_eq(v->shape.cols, dim_lit(1));
        bool brow = dim_eq(b->shape.rows, dim_lit(1)), bcol = dim_eq(b->shape.cols, dim_lit(1));
        if (vrow && bcol)
            return mk2(ir, OP_KRON, a->args[0], mk2(ir, OP_MATMUL, b, v));
        if (vcol && brow)
            return mk2(ir, OP_KRON, a->args[0], mk2(ir, OP_MATMUL, v, b));
    }
    for (int i = 0; i < 2; i++) {
        Node *x = i ? b : a, *y = i ? a : b, *f = NULL, *r;
        if (x->op == OP_NEG)
            return mk1(ir, OP_NEG, i ? mk2(ir, OP_KRON, y, x->args[0]) : mk2(ir, OP_KRON, x->args[0], y));
        if (x->op == OP_MUL && is_scalar(x->args[0]))
            f = x->args[0], r = x->args[1];
        else if ((x->op == OP_DIV || x->op == OP_DIVSAFE) && is_scalar(x->args[1]))
            f = x->args[1], r = x->args[0];
        else
            continue;
        Node *k = i ? mk2(ir, OP_KRON, y, r) : mk2(ir, OP_KRON, r, y);
        return x->op == OP_MUL ? mk2(ir, OP_MUL, f, k) : mk2(ir, x->op, k, f);
    }
    return NULL;
}

static Rule2 *const rules2[OP_COUNT] = {
    [OP_KRON] = rule_kron,
    [OP_VCAT] = rule_cat, [OP_HCAT] = rule_cat,
    [OP_ADD] = rule_add, [OP_SUB] = rule_sub, [OP_MUL] = rule_mul, [OP_DIV] = rule_div,
    [OP_DIVSAFE] = rule_divsafe, [OP_POW] = rule_pow, [OP_MATMUL] = rule_matmul,
    [OP_SOLVE] = rule_solve, [OP_SOLVET] = rule_solvet,
    [OP_PICK] = rule_pick, [OP_OR] = rule_or, [OP_AND] = rule_and,
};

/* The diagonal of a column or row expanded to a square is that vector;
 * diag(diag(u)) = u. */
static Node *rule_diagv(Ir *ir, Node *a, Shape shape)
{
    if (a->op == OP_DIAGM)
        return a->args[0];
    if (a->op != OP_BCAST)
        return NULL;
    Node *v = a->args[0];
    if (shape_eq(v->shape, shape))
        return v;
    if (dim_eq(v->shape.rows, dim_lit(1)) && dim_eq(v->shape.cols, shape.rows))
        return mk1(ir, OP_TRANSPOSE, v);
    return NULL;
}

/* flatten of a vector is the vector as a column; factors come out */
static Node *rule_flatten(Ir *ir, Node *a, Shape shape)
{
    if (dim_eq(a->shape.cols, dim_lit(1)))
        return a;
    if (dim_eq(a->shape.rows, dim_lit(1)))
        return mk1(ir, OP_TRANSPOSE, a);
    if (a->op == OP_FILL)
        return mk_fill(ir, a->num, shape);
    if (a->op == OP_NEG)
        return mk1(ir, OP_NEG, mk1(ir, OP_FLATTEN, a->args[0]));
    if (a->op == OP_MUL && is_scalar(a->args[0]))
        return mk2(ir, OP_MUL, a->args[0], mk1(ir, OP_FLATTEN, a->args[1]));
    if ((a->op == OP_DIV || a->op == OP_DIVSAFE) && is_scalar(a->args[1]))
        return mk2(ir, a->op, mk1(ir, OP_FLATTEN, a->args[0]), a->args[1]);
    return NULL;
}

static Rule1 *const rules1[OP_COUNT] = {
    [OP_FLATTEN] = rule_flatten,
    [OP_DIAGV] = rule_diagv,
    [OP_NEG] = rule_neg, [OP_TRANSPOSE] = rule_transpose, [OP_SUM] = rule_sum, [OP_TRACE] = rule_trace,
    [OP_DETACH] = rule_detach, [OP_CHOL] = rule_chol, [OP_TRIL] = rule_tril,
};

/* ---- the constructors ---- */

Node *mk1(Ir *ir, Op op, Node *a)
{
    if (op_info[op].arity != 1)
        ir_bug("mk1 of an op that is not unary");
    if (op == OP_BCAST || (op >= OP_SUMD && op <= OP_LOGSOFTMAXD))
        ir_bug("mk1 of an op with a shape or a dimension (mk_bcast, mk_along)");
    Shape shape = shape_of1(op, a);
    if (op_info[op].fn1 && is_constant(a))
        return mk_fill(ir, op_info[op].fn1(a->num), shape);
    if (op_info[op].kind == OK_U && a->op == OP_BCAST)   /* f(v expanded) = f(v) expanded */
        return mk_bcast(ir, mk1(ir, op, a->args[0]), shape);
    if (rules1[op]) {
        Node *r = rules1[op](ir, a, shape);
        if (r)
            return r;
    }
    return ir_node(ir, op, shape, a, NULL, 0.0, 0);
}

Node *mk2(Ir *ir, Op op, Node *a, Node *b)
{
    if (op_info[op].arity != 2)
        ir_bug("mk2 of an op that is not binary");
    Shape shape = shape_of2(op, a, b);
    if (op_info[op].kind == OK_B) {
        /* a row or column operand is expanded by an explicit BCAST, so the
         * rules below see operands of the result's shape or scalars */
        if (!is_scalar(a))
            a = mk_bcast(ir, a, shape);
        if (!is_scalar(b))
            b = mk_bcast(ir, b, shape);
        if (is_constant(a) && is_constant(b))
            return mk_fill(ir, op_info[op].fn2(a->num, b->num), shape);
        Node *s;
        if (shape_eq(b->shape, shape) && (s = unbroadcast(ir, a)))
            return mk2(ir, op, s, b);
        if (shape_eq(a->shape, shape) && (s = unbroadcast(ir, b)))
            return mk2(ir, op, a, s);
        /* op(v expanded, s) = op(v, s) expanded, and the same for two
         * operands expanded from one shape; not a where's pick, whose
         * mask stays outermost for diff.c (a 0 that is exact) */
        Node *x = a->op == OP_BCAST ? a->args[0] : a, *y = b->op == OP_BCAST ? b->args[0] : b;
        if ((x != a || y != b) && op != OP_PICK &&
            (is_scalar(x) || is_scalar(y) || shape_eq(x->shape, y->shape)))
            return mk_bcast(ir, mk2(ir, op, x, y), shape);
        if (commutative(op) && !goes_first(a, b)) {
            Node *t = a;
            a = b;
            b = t;
        }
    }
    if (rules2[op]) {
        Node *r = rules2[op](ir, a, b, shape);
        if (r)
            return r;
    }
    return ir_node(ir, op, shape, a, b, 0.0, 0);
}

/* ---- dimensions as values; slices and pads (spec §8) ---- */

Node *mk_dim(Ir *ir, Dim d)
{
    if (d.sym >= 0)
        return mk_dimval(ir, d.sym);
    DimView v = dim_view(d);
    Node *r = NULL;
    for (int i = 0; i < v.n; i++) {
        const int *f;
        int nf = dim_key_factors(dim_view_sym(&v, i), &f);
        Node *t = mk_dimval(ir, f[0]);
        for (int j = 1; j < nf; j++)   /* a product of symbols (kron's shapes) */
            t = mk2(ir, OP_MUL, t, mk_dimval(ir, f[j]));
        if (v.coefs[i] != 1)
            t = mk2(ir, OP_MUL, mk_const(ir, (double)v.coefs[i]), t);
        r = r ? mk2(ir, OP_ADD, r, t) : t;
    }
    return !r ? mk_const(ir, (double)v.k) : v.k ? mk2(ir, OP_ADD, r, mk_const(ir, (double)v.k)) : r;
}

static bool const_at(const Node *n, double *v)
{
    if (n->op != OP_CONST)
        return false;
    *v = n->num;
    return true;
}

/* A slice of [a; b] (or [a, b]) that lies inside a or inside b is a slice
 * of that part: known when it starts at the seam (a's size), is all of a,
 * or its offset is a constant and every size a literal. */
static Node *slice_of_cat(Ir *ir, Node *x, Node *r, Node *c, Shape s, double num)
{
    bool v = x->op == OP_VCAT;
    Node *a = x->args[0], *b = x->args[1], *off = v ? r : c;
    Dim na = v ? a->shape.rows : a->shape.cols, len = v ? s.rows : s.cols;
    Node *zero = mk_const(ir, 0);
    if (off == mk_dim(ir, na))
        return mk3(ir, OP_SLICE, s, b, v ? zero : r, v ? c : zero, num);
    if (off == zero && dim_eq(len, na))
        return mk3(ir, OP_SLICE, s, a, r, c, num);
    double o;
    int64_t la, ls;
    if (!const_at(off, &o) || !dim_is_lit(na, &la) || !dim_is_lit(len, &ls))
        return NULL;
    if (o + (double)ls <= (double)la)
        return mk3(ir, OP_SLICE, s, a, r, c, num);
    if (o >= (double)la) {
        Node *rest = mk_const(ir, o - (double)la);
        return mk3(ir, OP_SLICE, s, b, v ? rest : r, v ? c : rest, num);
    }
    return NULL;
}

Node *mk3(Ir *ir, Op op, Shape s, Node *x, Node *r, Node *c, double num)
{
    if (op != OP_SLICE && op != OP_PAD)
        ir_bug("mk3 of an op that is not SLICE or PAD");
    bool origin = node_is_const(r, 0) && node_is_const(c, 0);
    if (op == OP_PAD) {
        if (node_is_zero(x))
            return mk_zero(ir, s);
        if (origin && shape_eq(x->shape, s))
            return x;
        return ir_node3(ir, op, s, x, r, c, num, 0);
    }
    if (origin && shape_eq(x->shape, s))
        return x;
    if (is_scalar(x) && shape_is_scalar(s) && num == 0)
        return x;
    if (is_constant(x) && num == 0)
        return mk_fill(ir, x->num, s);
    if (x->op == OP_VCAT || x->op == OP_HCAT) {
        Node *y = slice_of_cat(ir, x, r, c, s, num);
        if (y)
            return y;
    }
    if (x->op == OP_TRANSPOSE && num == 0)   /* a slice of x' is the transpose of x's slice */
        return mk1(ir, OP_TRANSPOSE, mk3(ir, OP_SLICE, shape_make(s.cols, s.rows), x->args[0], c, r, 0));
    return ir_node3(ir, op, s, x, r, c, num, 0);
}
