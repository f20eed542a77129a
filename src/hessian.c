/* hessian.c — second derivatives as ordinary DAG nodes.
 *
 * grad(e, x) inside a program is diff.c's reverse mode over e's DAG alone
 * (diff_dag_grad): its result is a node like any other, so the program's
 * own reverse mode differentiates through it (reverse over reverse).
 *
 * hessian(e, x) and `derive --hessian` take the Jacobian of that gradient by
 * a forward pass over its DAG with a matrix tangent seeded by eye(N): a
 * node V (r×c) carries T(V), the (r*c)×N matrix of the derivatives of its
 * entries in row-major order (vec_r; a vector's entries in order), N the
 * entries of x.  Row-major vectorisation makes products Kronecker products,
 * vec_r(A*X*B) = kron(A, B')*vec_r(X), and kron is a builtin, so every
 * tangent prints and parses back.  The local derivatives of elementwise ops
 * come from diff.c's adjoint rules applied to a seed of ones
 * (diff_partials), so no rule is written twice; matrix products,
 * transposes, reductions, broadcasts and softmax have their forward rules
 * here (docs/design.md has the table).  A matrix-valued op with no rule
 * (a concatenation of matrices, kron of a side that depends on x) is
 * refused with a message.
 * The tangent of a diagonal scaling is built in the forms a textbook
 * writes (diag(p)*eye → diag(p), diag(p)*(u*w') → (p.*u)*w'), which is what
 * makes `derive --hessian` print `diag(p) - p*p'` for logsumexp. */
#include "gradc.h"

#include <string.h>

typedef VEC(Node *) NodeVec;

typedef struct Jac {
    Ir *ir;
    int input;
    const char *xname;
    Shape xshape;
    bool textbook;         /* diag(p)*T as such (derive), else p .* T broadcast (values) */
    IntMap *memo;          /* node id → tangent, or &zero_tangent */
    const char *why;
} Jac;

static Node zero_tangent;  /* the memo's mark for a zero tangent */

static bool is_col(Shape s) { return dim_eq(s.cols, dim_lit(1)); }
static bool is_vec(Shape s) { return is_col(s) || dim_eq(s.rows, dim_lit(1)); }
/* How many entries a scalar or vector has. */
static Dim vec_len(Shape s) { return is_col(s) ? s.rows : s.cols; }
/* A scalar or vector as a column. */
static Node *col(Ir *ir, Node *v) { return is_col(v->shape) ? v : mk1(ir, OP_TRANSPOSE, v); }

static Node *tangent_of(const Jac *J, const Node *n)
{
    void **p = intmap_find(J->memo, n->id);
    return p && *p != &zero_tangent ? *p : NULL;
}

/* The vector v when n is diag(v), -diag(u) (v = -u) or s*diag(u) (v = s*u), else NULL. */
static Node *diag_of(Ir *ir, Node *n)
{
    if (n->op == OP_DIAGM)
        return n->args[0];
    if (n->op == OP_NEG && n->args[0]->op == OP_DIAGM)
        return mk1(ir, OP_NEG, n->args[0]->args[0]);
    if (n->op == OP_MUL && shape_is_scalar(n->args[0]->shape) && n->args[1]->op == OP_DIAGM)
        return mk2(ir, OP_MUL, n->args[0], n->args[1]->args[0]);
    return NULL;
}

/* how far the factoring below looks into a product or a sum: a bound, so
 * that no recursion grows with the program */
#define PEEL_DEPTH 8

/* n as rest*R with R its rightmost matrix factor (right), or as L*rest
 * with L its leftmost (!right), through scalar factors, divisors and
 * signs; NULL when n is not a product. */
static Node *peel(Ir *ir, Node *n, Node **rest, bool right, int depth)
{
    if (depth > PEEL_DEPTH)
        return NULL;
    Node *f, *x;
    switch (n->op) {
    case OP_MATMUL: {
        Node *outer = n->args[right ? 1 : 0], *inner = n->args[right ? 0 : 1];
        if (!(f = peel(ir, outer, &x, right, depth + 1))) {
            *rest = inner;
            return outer;
        }
        *rest = right ? mk2(ir, OP_MATMUL, inner, x) : mk2(ir, OP_MATMUL, x, inner);
        return f;
    }
    case OP_MUL:
        if (!shape_is_scalar(n->args[0]->shape) || !(f = peel(ir, n->args[1], &x, right, depth + 1)))
            return NULL;
        *rest = mk2(ir, OP_MUL, n->args[0], x);
        return f;
    case OP_DIV:
        if (!shape_is_scalar(n->args[1]->shape) || !(f = peel(ir, n->args[0], &x, right, depth + 1)))
            return NULL;
        *rest = mk2(ir, OP_DIV, x, n->args[1]);
        return f;
    case OP_NEG:
        if (!(f = peel(ir, n->args[0], &x, right, depth + 1)))
            return NULL;
        *rest = mk1(ir, OP_NEG, x);
        return f;
    default:
        return NULL;
    }
}

static Node *peel_right(Ir *ir, Node *n, Node **rest) { return peel(ir, n, rest, true, 0); }
static Node *peel_left(Ir *ir, Node *n, Node **rest) { return peel(ir, n, rest, false, 0); }

/* a scalar rest as a multiple of eye, to meet a matrix one */
static Node *as_square(Ir *ir, Node *x, Dim n)
{
    return shape_is_scalar(x->shape) && !dim_eq(n, dim_lit(1)) ? mk2(ir, OP_MUL, x, mk_eye(ir, n)) : x;
}

/* a ± b, with diag(u) ± diag(v) as diag(u ± v): one diagonal, as written by
 * hand; A*R ± B*R as (A ± B)*R: a Jacobian's common right factor once */
/* a and b share a left or right matrix factor */
static bool shares(Ir *ir, Node *a, Node *b)
{
    Node *x, *y, *p, *q;
    if ((p = peel_right(ir, a, &x)) && (q = peel_right(ir, b, &y)) && p == q &&
        !shape_is_scalar(p->shape))
        return true;
    return (p = peel_left(ir, a, &x)) && (q = peel_left(ir, b, &y)) && p == q &&
           !shape_is_scalar(p->shape);
}

static Node *combine_at(Ir *ir, Op op, Node *a, Node *b, int depth);
static Node *combine(Ir *ir, Op op, Node *a, Node *b) { return combine_at(ir, op, a, b, 0); }
static Node *combine_at(Ir *ir, Op op, Node *a, Node *b, int depth)
{
    if (depth > PEEL_DEPTH)
        return mk2(ir, op, a, b);
    Node *ra, *rb, *xa, *xb;
    if ((ra = peel_right(ir, a, &xa)) && (rb = peel_right(ir, b, &xb)) && ra == rb &&
        !shape_is_scalar(ra->shape)) {
        Dim k = ra->shape.rows;
        return mk2(ir, OP_MATMUL, combine_at(ir, op, as_square(ir, xa, k), as_square(ir, xb, k), depth + 1), ra);
    }
    if ((ra = peel_left(ir, a, &xa)) && (rb = peel_left(ir, b, &xb)) && ra == rb &&
        !shape_is_scalar(ra->shape)) {   /* L*A ± L*B as L*(A ± B) */
        Dim k = ra->shape.cols;
        return mk2(ir, OP_MATMUL, ra, combine_at(ir, op, as_square(ir, xa, k), as_square(ir, xb, k), depth + 1));
    }
    if (a->op == b->op && (a->op == OP_DIV || a->op == OP_MUL)) {   /* A/s ± B/s = (A ± B)/s */
        int f = a->op == OP_DIV;
        if (a->args[f] == b->args[f] && shape_is_scalar(a->args[f]->shape) &&
            shape_eq(a->args[1 - f]->shape, b->args[1 - f]->shape)) {
            Node *d = combine_at(ir, op, a->args[1 - f], b->args[1 - f], depth + 1);
            return f ? mk2(ir, OP_DIV, d, a->args[1]) : mk2(ir, OP_MUL, a->args[0], d);
        }
    }
    if (a->op == OP_KRON && b->op == OP_KRON) {   /* kron(A, v) ± kron(B, v) = kron(A ± B, v) */
        for (int i = 0; i < 2; i++)
            if (a->args[i] == b->args[i] && shape_eq(a->args[1 - i]->shape, b->args[1 - i]->shape)) {
                Node *d = combine_at(ir, op, a->args[1 - i], b->args[1 - i], depth + 1);
                return i ? mk2(ir, OP_KRON, d, a->args[1]) : mk2(ir, OP_KRON, a->args[0], d);
            }
    }
    if ((a->op == OP_ADD || a->op == OP_SUB) && !shares(ir, a, b)) {   /* (p ± q) ± b, regrouped */
        if (shares(ir, a->args[1], b))
            return mk2(ir, a->op, a->args[0], combine_at(ir, a->op == op ? OP_ADD : OP_SUB,
                                                         a->args[1], b, depth + 1));
        if (shares(ir, a->args[0], b))
            return mk2(ir, a->op, combine_at(ir, op, a->args[0], b, depth + 1), a->args[1]);
    }
    if ((b->op == OP_ADD || b->op == OP_SUB) && !shares(ir, a, b)) {   /* a ± (p ± q), regrouped */
        Op flip = b->op == OP_ADD ? OP_SUB : OP_ADD;
        if (shares(ir, a, b->args[1]))
            return mk2(ir, op, combine_at(ir, op == OP_ADD ? b->op : flip, a, b->args[1], depth + 1),
                       b->args[0]);
        if (shares(ir, a, b->args[0]))
            return mk2(ir, op == OP_ADD ? b->op : flip, combine_at(ir, op, a, b->args[0], depth + 1),
                       b->args[1]);
    }
    Node *u = diag_of(ir, a), *v = u ? diag_of(ir, b) : NULL;
    if (u && v)
        return mk1(ir, OP_DIAGM, mk2(ir, op, u, v));
    Node *l = a->nargs == 2 ? a->args[1] : NULL;   /* (r ± diag(u)) ± diag(v) */
    if ((a->op == OP_ADD || a->op == OP_SUB) && l && (u = diag_of(ir, l)) && (v = diag_of(ir, b))) {
        Op inner = a->op == op ? OP_ADD : OP_SUB;
        return mk2(ir, a->op, a->args[0], mk1(ir, OP_DIAGM, mk2(ir, inner, u, v)));
    }
    return mk2(ir, op, a, b);
}

static Node *sum(Ir *ir, Node *a, Node *b) { return !a ? b : !b ? a : combine(ir, OP_ADD, a, b); }

/* p .* q, with p .* (p .* r) as p.^2 .* r */
static Node *times(Ir *ir, Node *p, Node *q)
{
    for (int i = 0; q->op == OP_MUL && i < 2; i++)
        if (q->args[i] == p)
            return mk2(ir, OP_MUL, mk2(ir, OP_POW, p, mk_const(ir, 2.0)), q->args[1 - i]);
    return mk2(ir, OP_MUL, p, q);
}

/* The scalar every entry of p is (a fill, s .* ones, ones/s, a scalar
 * expanded, or a flatten of one of these), or NULL. */
static Node *uniform_at(Ir *ir, Node *p, int depth)
{
    if (depth > PEEL_DEPTH)
        return NULL;
    while (p->op == OP_FLATTEN || p->op == OP_BCAST)
        p = p->args[0];
    if (shape_is_scalar(p->shape))
        return p;
    if (p->op == OP_FILL)
        return mk_const(ir, p->num);
    Node *u;
    if (p->op == OP_MUL && shape_is_scalar(p->args[0]->shape) && (u = uniform_at(ir, p->args[1], depth + 1)))
        return mk2(ir, OP_MUL, p->args[0], u);
    if ((p->op == OP_DIV || p->op == OP_DIVSAFE) && shape_is_scalar(p->args[1]->shape) &&
        (u = uniform_at(ir, p->args[0], depth + 1)))
        return mk2(ir, p->op, u, p->args[1]);
    return NULL;
}
static Node *uniform(Ir *ir, Node *p) { return uniform_at(ir, p, 0); }

/* diag(p) * T for a column p, in simplified forms; depth bounds how far it
 * distributes over sums.  Unless textbook, what is left is p .* T with p
 * broadcast along T's rows, read in place (no m×m diagonal times T). */
static Node *dscale(Ir *ir, Node *p, Node *t, int depth, bool textbook)
{
    Node *s = uniform(ir, p);
    if (s)
        return mk2(ir, OP_MUL, s, t);
    if (t->op == OP_EYE)
        return mk1(ir, OP_DIAGM, p);
    if (t->op == OP_DIAGM)
        return mk1(ir, OP_DIAGM, times(ir, p, t->args[0]));
    if (depth < 4) {
        Node *a = t->nargs > 0 ? t->args[0] : NULL, *b = t->nargs > 1 ? t->args[1] : NULL;
        switch (t->op) {
        case OP_ADD:
        case OP_SUB:
            return combine(ir, t->op, dscale(ir, p, a, depth + 1, textbook),
                           dscale(ir, p, b, depth + 1, textbook));
        case OP_NEG:
            return mk1(ir, OP_NEG, dscale(ir, p, a, depth + 1, textbook));
        case OP_DIV:      /* diag(p)*(T/s) = (diag(p)*T)/s */
            if (shape_is_scalar(b->shape))
                return mk2(ir, OP_DIV, dscale(ir, p, a, depth + 1, textbook), b);
            break;
        case OP_MUL:
            if (shape_is_scalar(a->shape))
                return mk2(ir, OP_MUL, a, dscale(ir, p, b, depth + 1, textbook));
            break;
        case OP_BCAST:    /* diag(p)*(a row r repeated) = p*r */
            if (dim_eq(a->shape.rows, dim_lit(1)) && !shape_is_scalar(a->shape))
                return mk2(ir, OP_MATMUL, p, a);
            break;
        case OP_MATMUL:   /* diag(p)*(u*w) = (p.*u)*w for a column u */
            if (is_col(a->shape))
                return mk2(ir, OP_MATMUL, times(ir, p, a), b);
            if (a->op == OP_DIAGM)
                return mk2(ir, OP_MATMUL, dscale(ir, p, a, depth + 1, textbook), b);
            break;
        default:
            break;
        }
    }
    if (!textbook)
        return mk2(ir, OP_MUL, p, t);
    return mk2(ir, OP_MATMUL, mk1(ir, OP_DIAGM, p), t);
}

/* An elementwise op: each operand's entrywise partials times its tangent. */
static Node *elementwise(Jac *J, Node *n)
{
    Ir *ir = J->ir;
    Node *part[2];
    if (!diff_partials(ir, n, mk_fill(ir, 1.0, n->shape), part))
        return NULL;   /* sign, floor, comparisons, detach: zero */
    Node *t = NULL;
    for (int i = 0; i < n->nargs; i++) {
        Node *a = n->args[i], *ta = tangent_of(J, a), *p = part[i];
        if (!ta || !p)
            continue;
        Node *pv = mk1(ir, OP_FLATTEN, p);   /* entries in the order of T's rows */
        if (shape_is_scalar(a->shape) && !shape_is_scalar(n->shape))
            t = sum(ir, t, mk2(ir, OP_MATMUL, pv, ta));   /* a broadcast scalar */
        else
            t = sum(ir, t, dscale(ir, pv, ta, 0, J->textbook));
    }
    return t;
}

/* Q's entries as a row, row-major */
static Node *row_of(Ir *ir, Node *q)
{
    if (dim_eq(q->shape.rows, dim_lit(1)))
        return q;
    return mk1(ir, OP_TRANSPOSE, is_col(q->shape) ? q : mk1(ir, OP_FLATTEN, q));
}

/* flatten(P)'*T for derive, taken into T's Kronecker products as a textbook
 * does: flatten(P)'*kron(A, B) = flatten(A'*P*B)' (row-major, vec_r(A*X*B)
 * = kron(A, B')*vec_r(X)), through sums, scalar factors and products
 * (flatten(P)'*(X*M) = (flatten(P)'*X)*M); depth bounds the walk. */
static Node *row_times(Ir *ir, Node *p, Node *t, int depth)
{
    Node *a = t->nargs > 0 ? t->args[0] : NULL, *b = t->nargs > 1 ? t->args[1] : NULL;
    switch (depth > PEEL_DEPTH ? OP_COUNT : t->op) {
    case OP_KRON:      /* a column A'*P*B as the row B'*P'*A */
        if (!dim_eq(p->shape.rows, a->shape.rows) || !dim_eq(p->shape.cols, b->shape.rows))
            break;
        if (is_col(b->shape))
            return mk2(ir, OP_MATMUL, mk2(ir, OP_MATMUL, mk1(ir, OP_TRANSPOSE, b), mk1(ir, OP_TRANSPOSE, p)), a);
        return row_of(ir, mk2(ir, OP_MATMUL, mk2(ir, OP_MATMUL, mk1(ir, OP_TRANSPOSE, a), p), b));
    case OP_MATMUL:
        return mk2(ir, OP_MATMUL, row_times(ir, p, a, depth + 1), b);
    case OP_ADD:
    case OP_SUB:
        return combine(ir, t->op, row_times(ir, p, a, depth + 1), row_times(ir, p, b, depth + 1));
    case OP_NEG:
        return mk1(ir, OP_NEG, row_times(ir, p, a, depth + 1));
    case OP_MUL:
        if (shape_is_scalar(a->shape))
            return mk2(ir, OP_MUL, a, row_times(ir, p, b, depth + 1));
        break;
    case OP_DIV:
        if (shape_is_scalar(b->shape))
            return mk2(ir, OP_DIV, row_times(ir, p, a, depth + 1), b);
        break;
    default:
        break;
    }
    return mk2(ir, OP_MATMUL, mk1(ir, OP_TRANSPOSE, mk1(ir, OP_FLATTEN, p)), t);
}

/* r, a reduction's tangent ±s*flatten(P)'*T (ones*diag(flatten(P))
 * simplifies to that), with row_times taking it into T */
static Node *kron_rows(Ir *ir, Node *r)
{
    Node *s = NULL, *x;
    bool neg = r->op == OP_NEG;
    if (neg)
        r = r->args[0];
    if (r->op == OP_MUL && shape_is_scalar(r->args[0]->shape)) {
        s = r->args[0];
        r = r->args[1];
    }
    if (r->op == OP_MATMUL && (x = r->args[0])->op == OP_TRANSPOSE && x->args[0]->op == OP_FLATTEN)
        r = row_times(ir, x->args[0]->args[0], r->args[1], 0);
    r = s ? mk2(ir, OP_MUL, s, r) : r;
    return neg ? mk1(ir, OP_NEG, r) : r;
}

/* sum, norm, logsumexp of a vector: the gradient p (a's shape, or a scalar
 * spread over a) times a's tangent. */
static Node *reduction(Jac *J, Node *n, Node *ta)
{
    Ir *ir = J->ir;
    Node *a = n->args[0], *part[2];
    diff_partials(ir, n, mk_const(ir, 1.0), part);
    Node *p = part[0];
    if (!p)
        return NULL;
    if (shape_is_scalar(a->shape))
        return mk2(ir, OP_MUL, p, ta);
    Node *r;
    if (shape_is_scalar(p->shape)) {
        Node *ones = mk_fill(ir, 1.0, shape_make(dim_lit(1), dim_mul(a->shape.rows, a->shape.cols)));
        r = mk2(ir, OP_MUL, p, mk2(ir, OP_MATMUL, ones, ta));
    } else {
        r = mk2(ir, OP_MATMUL, mk1(ir, OP_TRANSPOSE, mk1(ir, OP_FLATTEN, p)), ta);
    }
    return J->textbook ? kron_rows(ir, r) : r;
}

/* ---- with respect to a scalar: directional derivatives of any shape ---- */

/* The partial p as the factor of a tangent t of n's shape: for derive, the
 * scalar s when p is a uniform ones(..)/s (sum(A .* ones(n, n)/s) reads as
 * sum(A)/s, as written by hand). */
static Node *entrywise_factor(const Jac *J, Node *p, Node *t, const Node *n)
{
    Node *u = J->textbook && shape_eq(t->shape, n->shape) ? uniform(J->ir, p) : NULL;
    return u ? u : p;
}

/* T(n) of n's own shape when x is a scalar: matrices are carried too (a
 * Gaussian process's kernel matrix with respect to a length scale). */
static Node *directional(Jac *J, Node *n, Node *ta, Node *tb)
{
    Ir *ir = J->ir;
    Node *a = n->args[0], *b = n->nargs > 1 ? n->args[1] : NULL, *part[2];
    Node *za = ta ? ta : mk_zero(ir, a->shape), *zb = b && !tb ? mk_zero(ir, b->shape) : tb;
    switch (op_info[n->op].kind) {
    case OK_U:
    case OK_B: {
        if (!diff_partials(ir, n, mk_fill(ir, 1.0, n->shape), part))
            return NULL;
        Node *t = NULL, *tt[2] = {ta, tb};
        for (int i = 0; i < n->nargs; i++)
            if (tt[i] && part[i])
                t = sum(ir, t, mk2(ir, OP_MUL, entrywise_factor(J, part[i], tt[i], n), tt[i]));
        return t;
    }
    default:
        break;
    }
    switch (n->op) {
    case OP_MATMUL:
        return sum(ir, ta ? mk2(ir, OP_MATMUL, ta, b) : NULL, tb ? mk2(ir, OP_MATMUL, a, tb) : NULL);
    case OP_TRANSPOSE:
    case OP_DIAGM:
    case OP_DIAGV:
    case OP_TRIL:
    case OP_BCAST:
    case OP_SUMD:
        return mk_like(ir, n, ta, NULL);   /* linear */
    case OP_VCAT:
    case OP_HCAT:
        return mk2(ir, n->op, za, zb);
    case OP_SLICE:
    case OP_PAD:
        return mk3(ir, n->op, n->shape, ta, n->args[1], n->args[2], n->num);
    case OP_SUM:
    case OP_NORM:
    case OP_LOGSUMEXP:
    case OP_AMAX:
    case OP_AMIN:
    case OP_TRACE:
    case OP_DET:
    case OP_LOGDET:   /* a scalar of a: sum(p .* T(a)), p its gradient */
        diff_partials(ir, n, mk_const(ir, 1.0), part);
        if (!part[0])
            return NULL;
        if (shape_is_scalar(part[0]->shape))
            return mk2(ir, OP_MUL, part[0], mk1(ir, OP_SUM, ta));
        return mk1(ir, OP_SUM, mk2(ir, OP_MUL, part[0], ta));
    case OP_LSED:
    case OP_AMAXD:
    case OP_AMIND:    /* along d: sum(p .* T(a), d) */
        diff_partials(ir, n, mk_fill(ir, 1.0, n->shape), part);
        return part[0] ? mk_along(ir, OP_SUMD, mk2(ir, OP_MUL, part[0], ta), n->index) : NULL;
    case OP_SOFTMAX:
    case OP_SOFTMAXD: /* a symmetric Jacobian: its adjoint rule applied to T(a) */
        diff_partials(ir, n, ta, part);
        return part[0];
    case OP_INV:      /* -inv(A) T(A) inv(A) */
        return mk1(ir, OP_NEG, mk2(ir, OP_MATMUL, mk2(ir, OP_MATMUL, n, ta), n));
    case OP_CHOL: {   /* L Φ(L \\ T(A) / L'), Φ: the lower triangle, half the diagonal (Murray 2016) */
        Node *m = mk_solve(ir, n, mk1(ir, OP_TRANSPOSE, mk_solve(ir, n, ta, false)), false);
        Node *phi = mk2(ir, OP_SUB, mk1(ir, OP_TRIL, m),
                        mk2(ir, OP_MUL, mk_const(ir, 0.5), mk1(ir, OP_DIAGM, mk1(ir, OP_DIAGV, m))));
        return mk2(ir, OP_MATMUL, n, phi);
    }
    case OP_LU:       /* the factors stand for A: SOLVE reads T(A) here */
        return ta;
    case OP_SOLVE:    /* X = A \ B: A \ (T(B) - T(A) X), on A's factors */
    case OP_SOLVET: {
        Node *rhs = tb;
        if (ta) {
            Node *tA = n->op == OP_SOLVE ? ta : mk1(ir, OP_TRANSPOSE, ta);
            Node *d = mk2(ir, OP_MATMUL, tA, n);
            rhs = rhs ? mk2(ir, OP_SUB, rhs, d) : mk1(ir, OP_NEG, d);
        }
        return mk2(ir, n->op, a, rhs);
    }
    default:
        J->why = arena_printf(ir->arena, "'%s' has no second-order rule yet", op_info[n->op].text);
        return NULL;
    }
}

/* ---- with respect to a vector or matrix: Jacobians over row-major entries ---- */

/* How many entries a shape has (a product of symbols for a matrix). */
static Dim numel(Shape s) { return dim_mul(s.rows, s.cols); }
static Node *ones(Ir *ir, Dim r, Dim c) { return mk_fill(ir, 1.0, shape_make(r, c)); }
static Node *kron(Ir *ir, Node *a, Node *b) { return mk2(ir, OP_KRON, a, b); }

/* The matrix S with vec(sum(A, d)) = S vec(A) for A of shape s; S' spreads
 * a vector along d back over A's entries (a broadcast). */
static Node *along_sum(Ir *ir, int d, Shape s)
{
    return d == 2 ? kron(ir, mk_eye(ir, s.rows), ones(ir, dim_lit(1), s.cols))
                  : kron(ir, ones(ir, dim_lit(1), s.rows), mk_eye(ir, s.cols));
}

/* The commutation matrix K, vec(V') = K vec(V) for V of shape s (r×c): 1
 * where entry (j, i) of V' meets entry (i, j) of V, written with kron as
 * the product of the masks i = i' and j = j'. */
static Node *commutation(Ir *ir, Shape s)
{
    Dim r = s.rows, c = s.cols;
    Node *same_i = kron(ir, ones(ir, c, dim_lit(1)), kron(ir, mk_eye(ir, r), ones(ir, dim_lit(1), c)));
    Node *same_j = kron(ir, kron(ir, ones(ir, dim_lit(1), r), mk_eye(ir, c)), ones(ir, r, dim_lit(1)));
    return mk2(ir, OP_MUL, same_i, same_j);
}

/* A softmax (log: a log-softmax) along d of a: (D - D S' S D) T or
 * (I - S' S D) T, D = diag(p), p the softmax's entries. */
static Node *softmax_tangent(Jac *J, Node *n, Node *ta, bool log)
{
    Ir *ir = J->ir;
    Node *a = n->args[0];
    int d = n->op == OP_SOFTMAX ? (is_col(a->shape) ? 1 : 2) : n->index;
    Node *p = mk1(ir, OP_FLATTEN, log ? mk1(ir, OP_EXP, n) : n);
    Node *S = along_sum(ir, d, a->shape);
    if (is_vec(a->shape)) {   /* S is ones(1, len): p*(p'*T), a rank-1 term */
        Node *ps = mk2(ir, OP_MATMUL, mk1(ir, OP_TRANSPOSE, p), ta);
        if (log)
            return mk2(ir, OP_SUB, ta, mk2(ir, OP_MATMUL, ones(ir, vec_len(a->shape), dim_lit(1)), ps));
        return mk2(ir, OP_SUB, dscale(ir, p, ta, 0, J->textbook), mk2(ir, OP_MATMUL, p, ps));
    }
    Node *spread = mk2(ir, OP_MATMUL, mk1(ir, OP_TRANSPOSE, S),
                       mk2(ir, OP_MATMUL, S, dscale(ir, p, ta, 0, J->textbook)));
    if (log)
        return mk2(ir, OP_SUB, ta, spread);
    return mk2(ir, OP_SUB, dscale(ir, p, ta, 0, J->textbook), dscale(ir, p, spread, 0, J->textbook));
}

/* A reduction along d (sum, logsumexp, amax, amin of each row or column):
 * S (p .* T), p its entrywise partials. */
static Node *along_tangent(Jac *J, Node *n, Node *ta)
{
    Ir *ir = J->ir;
    Node *a = n->args[0], *part[2];
    if (n->op == OP_SUMD)
        return mk2(ir, OP_MATMUL, along_sum(ir, n->index, a->shape), ta);
    diff_partials(ir, n, mk_fill(ir, 1.0, n->shape), part);
    if (!part[0])
        return NULL;
    Node *pt = dscale(ir, mk1(ir, OP_FLATTEN, part[0]), ta, 0, J->textbook);
    return mk2(ir, OP_MATMUL, along_sum(ir, n->index, a->shape), pt);
}

/* A row or column (or scalar) v broadcast to n's shape: the rows of T(v)
 * repeated as n's entries repeat v's. */
static Node *bcast_tangent(Ir *ir, Node *n, Node *ta)
{
    Node *v = n->args[0];
    Shape s = n->shape;
    if (shape_is_scalar(v->shape))
        return mk2(ir, OP_MATMUL, ones(ir, numel(s), dim_lit(1)), ta);
    if (dim_eq(v->shape.rows, dim_lit(1)))   /* a row repeated down the rows */
        return mk2(ir, OP_MATMUL, kron(ir, ones(ir, s.rows, dim_lit(1)), mk_eye(ir, s.cols)), ta);
    return mk2(ir, OP_MATMUL, kron(ir, mk_eye(ir, s.rows), ones(ir, s.cols, dim_lit(1))), ta);
}

/* The tangent of n from its operands' (NULL: zero), or NULL with J->why.
 * A node of shape r×c carries the (r*c)×N matrix of the derivatives of its
 * entries in row-major order (vec_r; a vector's entries in order): then
 * vec_r(A*X*B) = kron(A, B') vec_r(X). */
static Node *tangent(Jac *J, Node *n)
{
    Ir *ir = J->ir;
    if (n->op == OP_INPUT && n->index == J->input)
        return shape_is_scalar(J->xshape) ? mk_const(ir, 1.0) : mk_eye(ir, numel(J->xshape));
    Node *ta = n->nargs > 0 ? tangent_of(J, n->args[0]) : NULL;
    Node *tb = n->nargs > 1 ? tangent_of(J, n->args[1]) : NULL;
    if (!ta && !tb)
        return NULL;
    if (shape_is_scalar(J->xshape))
        return directional(J, n, ta, tb);
    switch (op_info[n->op].kind) {
    case OK_U:
    case OK_B:
        return elementwise(J, n);
    default:
        break;
    }
    Node *a = n->args[0];
    Dim nx = numel(J->xshape);
    bool vec = is_vec(n->shape) && (n->nargs == 0 || is_vec(a->shape));
    switch (n->op) {
    case OP_TRANSPOSE:
        return is_vec(n->shape) ? ta : mk2(ir, OP_MATMUL, commutation(ir, a->shape), ta);
    case OP_INV:        /* vec(dA^-1) = -kron(A^-1, A^-T) vec(dA) */
        return mk1(ir, OP_NEG, mk2(ir, OP_MATMUL, kron(ir, n, mk1(ir, OP_TRANSPOSE, n)), ta));
    case OP_FLATTEN:
        return ta;
    case OP_MATMUL: {   /* A*B, A r×k, B k×c: kron(eye(r), B') T(A) + kron(A, eye(c)) T(B) */
        Node *b = n->args[1];
        return sum(ir, ta ? mk2(ir, OP_MATMUL, kron(ir, mk_eye(ir, a->shape.rows),
                                                     mk1(ir, OP_TRANSPOSE, b)), ta) : NULL,
                   tb ? mk2(ir, OP_MATMUL, kron(ir, a, mk_eye(ir, b->shape.cols)), tb) : NULL);
    }
    case OP_KRON: {     /* kron(A, B) is bilinear; only a constant side is written so far */
        break;
    }
    case OP_SUM:
    case OP_NORM:
    case OP_LOGSUMEXP:
    case OP_AMAX:
    case OP_AMIN:
    case OP_TRACE:
    case OP_DET:
    case OP_LOGDET:
        return reduction(J, n, ta);
    case OP_SUMD:
    case OP_LSED:
    case OP_AMAXD:
    case OP_AMIND:
        return along_tangent(J, n, ta);
    case OP_SOFTMAX:
    case OP_SOFTMAXD:
        return softmax_tangent(J, n, ta, false);
    case OP_LOGSOFTMAXD:
        return softmax_tangent(J, n, ta, true);
    case OP_BCAST:
        return bcast_tangent(ir, n, ta);
    case OP_SLICE:     /* the same entries of the tangent's rows */
    case OP_PAD: {
        if (!vec)
            break;
        Node *at = n->args[is_col(n->shape) ? 1 : 2];
        return mk3(ir, n->op, shape_make(vec_len(n->shape), nx), ta, at, mk_const(ir, 0), n->num);
    }
    case OP_VCAT:      /* a column of columns, or (HCAT) a row of rows: stacked tangents */
    case OP_HCAT: {
        Node *b = n->args[1];
        if (!vec || !is_vec(b->shape))
            break;
        ta = ta ? ta : mk_zero(ir, shape_make(vec_len(a->shape), nx));
        tb = tb ? tb : mk_zero(ir, shape_make(vec_len(b->shape), nx));
        return mk2(ir, OP_VCAT, ta, tb);
    }
    case OP_SOLVE:     /* A \ b, A constant here (a matrix A that depends on x is refused); */
    case OP_SOLVET:    /* a is A's factors: b's shape is n's */
        if (ta || !is_vec(n->shape))
            break;
        return mk2(ir, n->op, a, tb);
    default:
        J->why = arena_printf(ir->arena, "'%s' has no second-order rule yet", op_info[n->op].text);
        return NULL;
    }
    J->why = arena_printf(ir->arena, "a matrix-valued '%s' depends on %s (not carried yet)",
                          op_info[n->op].text, J->xname);
    return NULL;
}

Node *hess_jacobian(Ir *ir, Node *g, int input, const char *xname, Shape xshape, bool textbook,
                    const char **why)
{
    Jac J = {.ir = ir, .input = input, .xname = xname, .xshape = xshape, .textbook = textbook,
             .memo = intmap_new(ir->arena)};
    NodeVec st = {0};
    vec_push(ir->arena, &st, g);
    /* operands first, with an explicit stack (the DAG is as deep as the program) */
    while (st.len) {
        Node *x = st.data[st.len - 1];
        if (intmap_find(J.memo, x->id)) {
            st.len--;
            continue;
        }
        bool wait = false;
        for (int i = 0; i < x->nargs; i++)
            if (!intmap_find(J.memo, x->args[i]->id)) {
                vec_push(ir->arena, &st, x->args[i]);
                wait = true;
            }
        if (wait)
            continue;
        st.len--;
        Node *t = tangent(&J, x);
        if (J.why) {
            *why = J.why;
            return NULL;
        }
        *intmap_put(J.memo, x->id) = t ? t : &zero_tangent;
    }
    Node *t = tangent_of(&J, g);
    return t ? t : mk_zero(ir, shape_make(numel(g->shape), numel(xshape)));
}

/* ---- derive --hessian ---- */

/* A*(B/s) → (A*B)/s at the top of a block, as it is written by hand */
static Node *divisor_out(Ir *ir, Node *h)
{
    if (h->op != OP_MATMUL)
        return h;
    for (int i = 0; i < 2; i++) {
        Node *d = h->args[i];
        if (d->op == OP_DIV && shape_is_scalar(d->args[1]->shape)) {
            Node *p = i ? mk2(ir, OP_MATMUL, h->args[0], d->args[0]) : mk2(ir, OP_MATMUL, d->args[0], h->args[1]);
            return mk2(ir, OP_DIV, p, d->args[1]);
        }
    }
    return h;
}

/* The blocks of every pair i <= j (textbook: derive's forms, else the
 * cheaper ones for values), as hess_closed_forms. */
static Node **closed_blocks(Module *m, bool textbook, const char **why, const char ***block_why)
{
    Ir *ir = m->ir;
    Arena *a = m->arena;
    Node *y = m->fwd.value;
    int k = m->nwrt;
    if (!shape_is_scalar(y->shape)) {
        *why = arena_printf(a, "the output %s is %s, not a scalar",
                            m->output_name ? m->output_name : "y", shape_str(a, y->shape, m->dims));
        return NULL;
    }
    Node **g = arena_alloc(a, sizeof(Node *) * (size_t)(k + 1));
    Node **H = arena_alloc(a, sizeof(Node *) * (size_t)(k * k + 1));
    const char **bw = arena_alloc(a, sizeof(char *) * (size_t)(k * k + 1));
    bool chol = false;   /* the output was rewritten by chol's identities */
    for (int i = 0; i < k; i++) {
        const Input *x = &m->inputs[m->wrt[i]];
        const char *p = NULL;
        Node *e = hess_straighten(ir, m->fwd.body, y, m->wrt[i], x->name, m->ninputs, &p, NULL);
        if (!e) {
            *why = arena_printf(a, "the output %s (derive without --hessian prints the "
                                "gradient program)", p);
            return NULL;
        }
        /* K's Hessian as a textbook writes it, not chol's adjoint's */
        Node *t = textbook ? hess_chol_identities(ir, e, false) : e;
        g[i] = diff_dag_grad(ir, t, m->wrt[i], x->shape, m->ninputs);
        if (t != e)
            g[i] = hess_chol_identities(ir, g[i], true);
        chol |= t != e;
    }
    for (int i = 0; i < k; i++)
        for (int j = i; j < k; j++) {
            const Input *xj = &m->inputs[m->wrt[j]];
            const char *w = NULL;
            H[i * k + j] = hess_jacobian(ir, g[i], m->wrt[j], xj->name, xj->shape, textbook, &w);
            if (H[i * k + j] && chol)
                H[i * k + j] = hess_chol_identities(ir, H[i * k + j], true);
            if (H[i * k + j] && textbook)
                H[i * k + j] = divisor_out(ir, H[i * k + j]);
            bw[i * k + j] = H[i * k + j] ? NULL : w;
        }
    *block_why = bw;
    return H;
}

Node **hess_closed_forms(Module *m, const char **why, const char ***block_why)
{
    return closed_blocks(m, true, why, block_why);
}

/* ---- the whole Hessian as one node (NAME_hessian, eval --hessian) ---- */

/* Whether n's entries (i, j) and (j, i) are computed by the same operations
 * on the same numbers, so that n is exactly symmetric in floating point
 * (a + b = b + a and a*b = b*a hold exactly): A + A', diagonals, scalar
 * multiples, sums and entrywise products of such.  depth bounds the
 * walk (a deeper form is averaged, which is also exact). */
static bool exactly_symmetric(const Node *n, int depth)
{
    const Node *a = n->nargs > 0 ? n->args[0] : NULL, *b = n->nargs > 1 ? n->args[1] : NULL;
    if (shape_is_scalar(n->shape) || n->op == OP_EYE || n->op == OP_DIAGM || n->op == OP_FILL ||
        n->op == OP_CONST)
        return true;
    if (depth > 16)
        return false;
    switch (n->op) {
    case OP_NEG:
        return exactly_symmetric(a, depth + 1);
    case OP_ADD:
        if ((a->op == OP_TRANSPOSE && a->args[0] == b) || (b->op == OP_TRANSPOSE && b->args[0] == a))
            return true;
        /* fall through */
    case OP_SUB:
    case OP_MUL:
        return (shape_is_scalar(a->shape) || exactly_symmetric(a, depth + 1)) &&
               (shape_is_scalar(b->shape) || exactly_symmetric(b, depth + 1));
    case OP_PICK:      /* where(c, S, 0) with a scalar condition */
        return shape_is_scalar(a->shape) && exactly_symmetric(b, depth + 1);
    case OP_KRON:      /* entry A[i,j]*B[k,l] against A[j,i]*B[l,k] */
        return exactly_symmetric(a, depth + 1) && exactly_symmetric(b, depth + 1);
    case OP_MATMUL:    /* u*u' for a column u: one product u_i*u_j per entry */
        return is_col(a->shape) && b->op == OP_TRANSPOSE && b->args[0] == a;
    default:           /* products: a BLAS may round (i, j) and (j, i) differently */
        return false;
    }
}

/* b + 0 (a zero result is +0, as the Hessian-vector path's), built raw:
 * the simplifier drops a + 0. */
static Node *plus_zero(Ir *ir, Node *b)
{
    return ir_node(ir, OP_ADD, b->shape, b, mk_const(ir, 0.0), 0.0, 0);
}

/* A diagonal block exactly symmetric: as it is when its form is
 * (exactly_symmetric), else (B + B')/2, built raw so that the simplifier
 * does not fold B' back into B. */
static Node *symmetric_block(Ir *ir, Node *b)
{
    if (exactly_symmetric(b, 0))
        return plus_zero(ir, b);
    Node *t = ir_node(ir, OP_TRANSPOSE, b->shape, b, NULL, 0.0, 0);
    Node *s = ir_node(ir, OP_ADD, b->shape, b, t, 0.0, 0);
    return plus_zero(ir, ir_node(ir, OP_MUL, b->shape, mk_const(ir, 0.5), s, 0.0, 0));
}

/* Whether a block multiplies a Kronecker product as a dense matrix: a
 * product whose operand is kron(.., ..) with an entry-count dimension
 * (softmax regression's kron(X', eye(c))*T, an MLP's
 * kron(eye(m), W2*W2')*T) costs more than the N Hessian-vector products
 * (each one pass over the program's data), so such a Hessian takes the
 * Hessian-vector path.  A kron that is a block of H itself (least squares'
 * 2*kron(eye(m), x*x')) is written entry by entry, one pass over its
 * entries.  Iterative over the block's DAG. */
static bool dense_kron_product(Ir *ir, Node *b)
{
    IntMap *seen = intmap_new(ir->arena);
    NodeVec st = {0};
    vec_push(ir->arena, &st, b);
    while (st.len) {
        Node *n = st.data[--st.len];
        if (intmap_find(seen, n->id))
            continue;
        *intmap_put(seen, n->id) = n;
        if (n->op == OP_MATMUL && (n->args[0]->op == OP_KRON || n->args[1]->op == OP_KRON))
            return true;
        for (int i = 0; i < n->nargs; i++)
            vec_push(ir->arena, &st, n->args[i]);
    }
    return false;
}

Node *hess_matrix(Module *m)
{
    Ir *ir = m->ir;
    int k = m->nwrt;
    const char *why = NULL, **bw = NULL;
    Node **B = k ? closed_blocks(m, false, &why, &bw) : NULL;
    for (int i = 0; B && i < k * k; i++)
        if (i / k <= i % k && (!B[i] || dense_kron_product(ir, B[i])))
            return NULL;
    if (!B)
        return NULL;
    /* a matrix gradient's derivative along a scalar comes in the
     * gradient's shape: H holds its entries as a column, row-major */
    for (int i = 0; i < k; i++)
        for (int j = i; j < k; j++) {
            Node *b = B[i * k + j];
            if (!is_col(b->shape) && shape_is_scalar(m->inputs[m->wrt[j]].shape))
                B[i * k + j] = mk1(ir, OP_FLATTEN, b);
        }
    /* row i: the blocks (i, j), those left of the diagonal the transposes
     * of the blocks above it, so that H_ji = H_ij' entry for entry */
    Node *H = NULL;
    for (int i = 0; i < k; i++) {
        Node *row = NULL;
        for (int j = 0; j < k; j++) {
            Node *b = j == i ? symmetric_block(ir, B[i * k + i])
                    : j > i  ? plus_zero(ir, B[i * k + j])
                             : ir_node(ir, OP_TRANSPOSE, shape_make(B[j * k + i]->shape.cols,
                                       B[j * k + i]->shape.rows), plus_zero(ir, B[j * k + i]),
                                       NULL, 0.0, 0);
            row = row ? mk2(ir, OP_HCAT, row, b) : b;
        }
        H = H ? mk2(ir, OP_VCAT, H, row) : row;
    }
    return H;
}

Module *hess_closed_module(Module *m)
{
    if (!shape_is_scalar(m->fwd.value->shape))
        return NULL;
    Node *H = hess_matrix(m);
    if (!H)
        return NULL;
    Module *h = arena_alloc(m->arena, sizeof *h);
    *h = *m;
    h->nwrt = 1;   /* one result, H; wrt[0] names it in plans */
    h->naux = 0;
    h->aux_names = NULL;
    h->fwd.aux = NULL;
    Node **g = arena_alloc(m->arena, sizeof(Node *) * 2);
    g[0] = H;
    h->grad = (Func){.body = m->fwd.body, .value = m->fwd.value, .grads = g};
    return h;
}
