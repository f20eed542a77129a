/* plan.c — a Func as a plan, without LLVM: which nodes are reached, which
 * are fused into their consumer's loop, which need a buffer in work, which
 * matrix–vector products share a pass over their matrix, and whether
 * recorded values go to a stack in work or to the runtime tape. */
#include "plan.h"

/* ===================================================================== */
/* Planning                                                              */
/* ===================================================================== */

/* Does p read its arguments entry by entry (so they can be fused into it)? */
static bool fuses_args(const Node *p)
{
    if (p->op == OP_SUM)
        return true;
    return !is_scalar(p) && (kind_of(p) == OK_U || kind_of(p) == OK_B);
}

bool is_fused(const Plan *p, const Node *n)
{
    if (is_scalar(n) || p->nofuse[n->id])
        return false;
    if (n->op == OP_FILL)
        return true;
    return (kind_of(n) == OK_U || kind_of(n) == OK_B) && p->uses[n->id] == 1;
}

/* A transpose of a vector is its argument's memory. */
bool is_alias(const Node *n)
{
    return n->op == OP_TRANSPOSE && !is_scalar(n) &&
           (dim_eq(n->shape.rows, dim_lit(1)) || dim_eq(n->shape.cols, dim_lit(1)));
}

/* Matrix–vector products.  A product P*x whose result is a column (or a
 * row x'*P, read as P'*x) is computed from the terms of P: sums,
 * differences, negations, scalar factors and transposes of P are read
 * through, so (A + A')*x is A*x + A'*x and never builds the n×n matrix
 * A + A' (nor A').  The terms are flattened here, once per node. */
enum { MV_MAX_TERMS = 16 };

static bool lit1(Dim d) { return dim_eq(d, dim_lit(1)); }

/* Adds the terms of k * coef * op(P) (op: transpose when trans); false when
 * there would be too many (then P is read as one matrix). */
static bool mv_terms(Mv *v, Node *P, bool trans, double k, Node *coef)
{
    Node *a = P->nargs > 0 ? P->args[0] : NULL, *b = P->nargs > 1 ? P->args[1] : NULL;
    switch (P->op) {
    case OP_ADD:
    case OP_SUB:
        if (is_scalar(a) || is_scalar(b))
            break; /* a broadcast: not a sum of matrices */
        return mv_terms(v, a, trans, k, coef) && mv_terms(v, b, trans, P->op == OP_ADD ? k : -k, coef);
    case OP_NEG: return mv_terms(v, a, trans, -k, coef);
    case OP_TRANSPOSE: return mv_terms(v, a, !trans, k, coef);
    case OP_MUL:
        if (is_scalar(b) && !is_scalar(a)) {
            Node *t = a; a = b; b = t;
        }
        if (!is_scalar(a) || is_scalar(b))
            break;
        if (a->op == OP_CONST)
            return mv_terms(v, b, trans, k * a->num, coef);
        if (!coef)
            return mv_terms(v, b, trans, k, a);
        break;
    case OP_EYE: P = NULL; break;
    default: break;
    }
    if (v->nterms == MV_MAX_TERMS)
        return false;
    v->terms[v->nterms++] = (Term){P, trans, k, coef};
    return true;
}

/* n as a matrix–vector product, or NULL when it is not one. */
static Mv *mv_form(Arena *a, Node *n)
{
    if (n->op != OP_MATMUL || is_scalar(n))
        return NULL;
    Node *x = n->args[0], *y = n->args[1];
    Node *P, *vec;
    bool trans;
    if (lit1(n->shape.cols) && lit1(y->shape.cols) && !lit1(x->shape.cols))
        P = x, vec = y, trans = false;          /* P*y, a column */
    else if (lit1(n->shape.rows) && lit1(x->shape.rows) && !lit1(y->shape.rows))
        P = y, vec = x, trans = true;           /* x*P = (P'*x')', a row */
    else
        return NULL;
    Mv *v = arena_alloc(a, sizeof *v);
    v->vec = vec;
    v->terms = arena_alloc(a, sizeof *v->terms * MV_MAX_TERMS);
    v->group = -1;
    if (!mv_terms(v, P, trans, 1, NULL)) {
        v->nterms = 0;
        v->terms[v->nterms++] = (Term){P, trans, 1, NULL};
    }
    return v;
}

static void mv_group(Plan *p, int nn)
{
    /* group ids: the id of a group's first member; nn + id for a product alone */
    for (int i = 0; i < nn; i++) {
        if (!p->nodes[i] || !p->mv[i])
            continue;
        p->mv[i]->group = p->instmt[i] ? nn + i : i;
        if (p->instmt[i])
            continue;
        for (int j = 0; j < i && p->mv[i]->group == i; j++) {
            if (!p->nodes[j] || !p->mv[j] || p->mv[j]->group >= nn)
                continue;
            for (int s = 0; s < p->mv[i]->nterms; s++)
                for (int t = 0; t < p->mv[j]->nterms; t++)
                    if (p->mv[i]->terms[s].m && p->mv[i]->terms[s].m == p->mv[j]->terms[t].m)
                        p->mv[i]->group = p->mv[j]->group;
        }
    }
}

static void visit(Plan *p, Node *n);

static void visit_arg(Plan *p, Node *x, bool fuse)
{
    visit(p, x);
    p->uses[x->id]++;
    if (!fuse)
        p->nofuse[x->id] = true;
}

static void visit(Plan *p, Node *n)
{
    if (p->nodes[n->id])
        return;
    p->nodes[n->id] = n;
    if ((p->mv[n->id] = mv_form(p->arena, n))) {
        /* the matrix operand's sums and transposes are read through, never built */
        Mv *v = p->mv[n->id];
        visit_arg(p, v->vec, v->vec->op == OP_FILL);
        for (int t = 0; t < v->nterms; t++) {
            if (v->terms[t].m)
                visit_arg(p, v->terms[t].m, false);
            if (v->terms[t].coef)
                visit_arg(p, v->terms[t].coef, false);
        }
        return;
    }
    for (int i = 0; i < n->nargs; i++) {
        visit(p, n->args[i]);
        p->uses[n->args[i]->id]++;
        if (!fuses_args(n))
            p->nofuse[n->args[i]->id] = true;
    }
}

static void root(Plan *p, Node *n, bool store)
{
    visit(p, n);
    p->uses[n->id]++;
    if (!store)
        p->nofuse[n->id] = true;
}

static void plan_slot(Plan *p, int s) { if (s >= 0) p->slotused[s] = true; }

static void plan_assign(Plan *p, const Module *m, int n, const int *slots, Node **vals)
{
    for (int i = 0; i < n; i++) {
        root(p, vals[i], true);
        plan_slot(p, slots[i]);
        if (n > 1 && !shape_is_scalar(m->ir->slots.data[slots[i]].shape))
            p->shadow[slots[i]] = 0; /* needed; given a buffer later */
    }
}

static void plan_block(Plan *p, const Module *m, const Block *b)
{
    for (int i = 0; b && i < b->n; i++) {
        const Stmt *s = b->stmts[i];
        switch (s->kind) {
        case S_SET: plan_assign(p, m, s->n, s->slots, s->vals); break;
        case S_IF:
            root(p, s->cond, false);
            plan_block(p, m, s->then_block);
            plan_assign(p, m, s->n, s->slots, s->then_vals);
            plan_block(p, m, s->else_block);
            plan_assign(p, m, s->n, s->slots, s->else_vals);
            break;
        case S_WHILE:
        case S_FOR:
            plan_assign(p, m, s->n, s->slots, s->vals);
            root(p, s->kind == S_WHILE ? s->cond : s->count, false);
            plan_slot(p, s->count_slot);
            plan_slot(p, s->index_slot);
            plan_block(p, m, s->body);
            plan_assign(p, m, s->n, s->slots, s->next);
            break;
        case S_PUSH:
            p->tape = true;
            for (int j = 0; j < s->n; j++)
                root(p, s->vals[j], false);
            break;
        case S_POP:
            p->tape = true;
            for (int j = 0; j < s->n; j++)
                plan_slot(p, s->slots[j]);
            break;
        }
    }
}

/* Recorded values.  A function whose every push and pop sits only inside
 * `for` loops with a literal or dimension count (and ifs) needs a stack
 * whose peak depth is a function of the dimensions: it is computed at entry
 * (stack_depth) and the stack is one more region of work.  Any other
 * function (a push or pop inside a while, or inside a for whose count is a
 * popped trip count or a checkpoint segment's length) uses the runtime tape
 * for all of them, since a pop must read the storage its push wrote. */
static bool block_records(const Block *b);

bool stmt_records(const Stmt *s)
{
    return s->kind == S_PUSH || s->kind == S_POP || block_records(s->then_block) ||
           block_records(s->else_block) || block_records(s->body);
}

static bool block_records(const Block *b)
{
    for (int i = 0; b && i < b->n; i++)
        if (stmt_records(b->stmts[i]))
            return true;
    return false;
}

static bool known_count(const Node *n) { return n->op == OP_CONST || n->op == OP_DIMVAL; }

static bool stack_sizable(const Block *b)
{
    for (int i = 0; b && i < b->n; i++) {
        const Stmt *s = b->stmts[i];
        if (!stmt_records(s))
            continue;
        if (s->kind == S_WHILE || (s->kind == S_FOR && !known_count(s->count)))
            return false;
        if (!stack_sizable(s->then_block) || !stack_sizable(s->else_block) || !stack_sizable(s->body))
            return false;
    }
    return true;
}

static int add_buf(Plan *p, Arena *a, Dim d1, Dim d2, bool plus)
{
    vec_push(a, &p->bufs, ((Buf){d1, d2, plus}));
    return p->bufs.len - 1;
}

static void add_shape(Plan *p, Arena *a, Shape s)
{
    for (int i = 0; i < p->shapes.len; i++)
        if (shape_eq(p->shapes.data[i], s))
            return;
    vec_push(a, &p->shapes, s);
}

static bool needs_buf(const Plan *p, const Node *n)
{
    if (is_scalar(n) || is_fused(p, n) || is_alias(n))
        return false;
    return n->op != OP_INPUT && n->op != OP_SLOT && n->op != OP_COTAN;
}

Plan *plan_func(const Module *m, const Func *f, bool grad)
{
    Arena *a = m->arena;
    int nn = m->ir->nnodes, ns = m->ir->slots.len;
    Plan *p = arena_alloc(a, sizeof *p);
    p->arena = a;
    p->f = f;
    p->grad = grad;
    p->mv = arena_alloc(a, sizeof(Mv *) * (size_t)(nn + 1));
    p->instmt = arena_alloc(a, sizeof(bool) * (size_t)(nn + 1));
    p->nodes = arena_alloc(a, sizeof(Node *) * (size_t)(nn + 1));
    p->uses = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    p->nofuse = arena_alloc(a, sizeof(bool) * (size_t)(nn + 1));
    p->buf = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    p->scratch = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    p->slotbuf = arena_alloc(a, sizeof(int) * (size_t)(ns + 1));
    p->shadow = arena_alloc(a, sizeof(int) * (size_t)(ns + 1));
    p->slotused = arena_alloc(a, sizeof(bool) * (size_t)(ns + 1));
    p->onesbuf = -1;
    for (int i = 0; i < ns; i++)
        p->shadow[i] = -1;

    plan_block(p, m, f->body);
    p->stack = p->tape && stack_sizable(f->body);
    p->tape = p->tape && !p->stack;
    for (int i = 0; i < nn; i++)
        p->instmt[i] = p->nodes[i] != NULL;
    root(p, f->value, true);
    for (int i = 0; f->grads && i < m->nwrt; i++)
        root(p, f->grads[i], true);

    mv_group(p, nn);
    for (int i = 0; i < m->ninputs; i++)
        add_shape(p, a, m->inputs[i].shape);
    for (int i = 0; i < nn; i++) {
        Node *n = p->nodes[i];
        p->buf[i] = p->scratch[i] = -1;
        if (!n)
            continue;
        add_shape(p, a, n->shape);
        if (n->op == OP_SLOT)
            p->slotused[n->index] = true;
        if (needs_buf(p, n))
            p->buf[i] = add_buf(p, a, n->shape.rows, n->shape.cols, false);
        if (n->op == OP_DET || n->op == OP_LOGDET || n->op == OP_INV)
            p->scratch[i] = add_buf(p, a, n->args[0]->shape.rows, n->args[0]->shape.rows, true);
        if (n->op == OP_COTAN && !is_scalar(n) && p->onesbuf < 0)
            p->onesbuf = add_buf(p, a, n->shape.rows, n->shape.cols, false);
    }
    for (int s = 0; s < ns; s++) {
        Shape sh = m->ir->slots.data[s].shape;
        p->slotbuf[s] = -1;
        if (!p->slotused[s])
            continue;
        add_shape(p, a, sh);
        if (!shape_is_scalar(sh)) {
            p->slotbuf[s] = add_buf(p, a, sh.rows, sh.cols, false);
            if (p->shadow[s] == 0)
                p->shadow[s] = add_buf(p, a, sh.rows, sh.cols, false);
        }
    }
    return p;
}
