/* hess_chol.c — identities of a Cholesky factor, for derive --hessian.
 *
 * A program that factors K = L*L' (L = chol(K)) and solves with L and L'
 * differentiates, twice, into the adjoint of chol differentiated again:
 * tril, diag(diag()), nested solves.  The textbook Hessian (Rasmussen &
 * Williams §5.4) is written with K itself.  Before the printed closed forms
 * are built, hess_chol_identities rewrites the output's DAG (a copy: the
 * hash-consed nodes are never changed) with identities that hold wherever
 * chol(K) is defined, i.e. K symmetric positive definite:
 *
 *   solve(L', solve(L, B))           = K \ B
 *   sum(log(diag(L)))                = 0.5*logdet(K)
 *   sum(solve(L, B) .* solve(L, C))  = sum(B .* (K \ C))     (tr(B'K⁻¹C))
 *   sum(solve(L, B).^2)              = sum(B .* (K \ B))
 *   L*L'                             = K
 *   solve(A, eye(n))                 = inv(A)
 *
 * chol reads K's lower triangle only, so each identity needs K symmetric as
 * a function of the inputs (not only at a point): K is checked by its form
 * (A + A', X*X', s + s' of a column, eye, diag, and entrywise functions,
 * sums and products of such; symmetric()).  A K not seen to be symmetric
 * keeps its Cholesky form.  Only derive --hessian's printed blocks use the
 * rewrite: the compiled code, gradients and eval keep the factor and its
 * solves (a solve with K would factor it again). */
#include "gradc.h"

#include <stdint.h>
#include <string.h>

typedef struct Rw {
    Ir *ir;
    IntMap *memo;          /* node id → its rewritten form */
    IntMap *sym;           /* node id → non-NULL when symmetric by its form */
} Rw;

static bool is_sym(const Rw *w, const Node *n)
{
    if (shape_is_scalar(n->shape))
        return true;
    void **p = intmap_find(w->sym, n->id);
    return p && *p;
}

static bool is_col(const Node *n) { return dim_eq(n->shape.cols, dim_lit(1)); }
static bool transposes(const Node *a, const Node *b) { return b->op == OP_TRANSPOSE && b->args[0] == a; }

/* A*B symmetric by its form: X*X', X'*X, S*S and P*S*P' with S symmetric */
static bool sym_product(const Rw *w, const Node *a, const Node *b)
{
    if (transposes(a, b) || transposes(b, a) || (a == b && is_sym(w, a)))
        return true;
    if (a->op == OP_MATMUL && is_sym(w, a->args[1]) &&
        (transposes(a->args[0], b) || (a->args[0] == b && is_sym(w, b))))
        return true;
    return b->op == OP_MATMUL && is_sym(w, b->args[0]) &&
           (transposes(b->args[1], a) || (b->args[1] == a && is_sym(w, a)));
}

/* n symmetric as a function of the inputs, judged from its operands'
 * marks (children first: the walk is by id) */
static bool symmetric(const Rw *w, const Node *n)
{
    if (!dim_eq(n->shape.rows, n->shape.cols))
        return false;
    if (shape_is_scalar(n->shape))
        return true;
    const Node *a = n->nargs > 0 ? n->args[0] : NULL, *b = n->nargs > 1 ? n->args[1] : NULL;
    switch (n->op) {
    case OP_EYE: case OP_FILL: case OP_DIAGM:
        return true;
    case OP_TRANSPOSE: case OP_INV: case OP_DETACH:
        return is_sym(w, a);
    case OP_MATMUL:
        return sym_product(w, a, b);
    case OP_KRON:
        return is_sym(w, a) && is_sym(w, b);
    case OP_PICK:
        return shape_is_scalar(a->shape) && is_sym(w, b);
    case OP_BCAST:   /* a scalar everywhere */
        return shape_is_scalar(a->shape);
    case OP_ADD: case OP_MUL: {   /* s + s', s .* s' of a column s (broadcast) */
        const Node *p = a->op == OP_BCAST ? a->args[0] : a, *q = b->op == OP_BCAST ? b->args[0] : b;
        if ((is_col(p) && transposes(p, q)) || (is_col(q) && transposes(q, p)))
            return true;
        break;
    }
    default:
        break;
    }
    OpKind k = op_info[n->op].kind;
    if (k == OK_U)
        return is_sym(w, a);
    if (k == OK_B && n->op != OP_PICK)
        return is_sym(w, a) && is_sym(w, b);
    return false;
}

/* K when n is chol(K) of a K symmetric by its form, else NULL */
static Node *chol_of(const Rw *w, const Node *n)
{
    return n->op == OP_CHOL && is_sym(w, n->args[0]) ? n->args[0] : NULL;
}

/* K when n is solve(L, B) (not L'), L = chol(K) of a symmetric K; *b = B */
static Node *lower_solve(const Rw *w, const Node *n, Node **b)
{
    if (n->op != OP_SOLVE || n->args[0]->op != OP_LU)
        return NULL;
    *b = n->args[1];
    return chol_of(w, n->args[0]->args[0]);
}

/* solve(L', solve(L, B)) → K \ B; solve(S', B) → S \ B for S symmetric */
static Node *rw_solvet(Rw *w, Node *n)
{
    Node *b, *k;
    if (n->args[0]->op != OP_LU)
        return NULL;
    if (is_sym(w, n->args[0]->args[0]))
        return mk_solve(w->ir, n->args[0]->args[0], n->args[1], false);
    if (!(k = lower_solve(w, n->args[1], &b)) ||
        chol_of(w, n->args[0]->args[0]) != k)
        return NULL;
    return mk_solve(w->ir, k, b, false);
}

/* sum(log(diag(L))) → 0.5*logdet(K); sum((L\B) .* (L\C)) → sum(B .* (K\C)),
 * (L\B).^2 as (L\B) .* (L\B) */
static Node *rw_sum(Rw *w, Node *n)
{
    Ir *ir = w->ir;
    Node *a = n->args[0], *k, *k2, *b, *c;
    if (a->op == OP_LOG && a->args[0]->op == OP_DIAGV && (k = chol_of(w, a->args[0]->args[0])))
        return mk2(ir, OP_MUL, mk_const(ir, 0.5), mk1(ir, OP_LOGDET, k));
    bool square = a->op == OP_POW && node_is_const(a->args[1], 2.0);
    if (a->op != OP_MUL && !square)
        return NULL;
    Node *p = a->args[0], *q = square ? a->args[0] : a->args[1];
    if (!(k = lower_solve(w, p, &b)) || !(k2 = lower_solve(w, q, &c)) || k != k2)
        return NULL;
    return mk1(ir, OP_SUM, mk2(ir, OP_MUL, b, mk_solve(ir, k, c, false)));
}

/* L*L' → K */
static Node *rw_matmul(Rw *w, Node *n)
{
    Node *k = chol_of(w, n->args[0]);
    return k && transposes(n->args[0], n->args[1]) ? k : NULL;
}

/* solve(A, eye(n)) → inv(A), as the gradient of logdet writes it */
static Node *rw_solve(Rw *w, Node *n)
{
    return n->args[0]->op == OP_LU && n->args[1]->op == OP_EYE ? mk1(w->ir, OP_INV, n->args[0]->args[0]) : NULL;
}

/* S' → S for S symmetric by its form */
static Node *rw_transpose(Rw *w, Node *n) { return is_sym(w, n->args[0]) ? n->args[0] : NULL; }

/* The identities by the op at the top of the form they rewrite. */
static Node *(*const rules[OP_COUNT])(Rw *, Node *) = {
    [OP_SOLVET] = rw_solvet, [OP_SUM] = rw_sum, [OP_MATMUL] = rw_matmul,
    [OP_TRANSPOSE] = rw_transpose, [OP_SOLVE] = rw_solve,
};

static Node *rewritten(const Rw *w, Node *n)
{
    void **p = intmap_find(w->memo, n->id);
    return p ? *p : n;
}

/* n on its operands' rewritten forms, then an identity at its top */
static Node *rewrite_node(Rw *w, Node *n)
{
    Node *a[3] = {NULL, NULL, NULL};
    bool same = true;
    for (int i = 0; i < n->nargs; i++)
        same &= (a[i] = rewritten(w, n->args[i])) == n->args[i];
    Node *r = same ? n : mk_like_args(w->ir, n, a);
    Node *t = r;
    for (int i = 0; t && i < 4; i++) {   /* an identity's result may meet another */
        r = t;
        if (symmetric(w, r))
            *intmap_put(w->sym, r->id) = r;
        t = rules[r->op] ? rules[r->op](w, r) : NULL;
    }
    return r;
}

Node *hess_chol_identities(Ir *ir, Node *e, bool always)
{
    Arena *ar = ir->arena;
    int n = e->id + 1;
    uint8_t *reach = arena_alloc(ar, (size_t)n);
    memset(reach, 0, (size_t)n);
    VEC(Node *) st = {0};
    bool any = false;
    vec_push(ar, &st, e);
    while (st.len) {   /* the nodes e reads, and whether a chol is among them */
        Node *x = st.data[--st.len];
        if (reach[x->id])
            continue;
        reach[x->id] = 1;
        any |= x->op == OP_CHOL;
        for (int i = 0; i < x->nargs; i++)
            vec_push(ar, &st, x->args[i]);
    }
    if (!any && !always)
        return e;
    Rw w = {.ir = ir, .memo = intmap_new(ar), .sym = intmap_new(ar)};
    for (int id = 0; id < n; id++) {   /* operands first: their ids are smaller */
        if (!reach[id])
            continue;
        Node *x = ir->nodes.data[id], *r = rewrite_node(&w, x);
        if (r != x)
            *intmap_put(w.memo, id) = r;
    }
    return rewritten(&w, e);
}
