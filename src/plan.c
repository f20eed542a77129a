/* plan.c — a Func as a plan, without LLVM: which nodes are reached, which
 * are fused into their consumer's loop, which need a buffer in work, which
 * matrix–vector products share a pass over their matrix, and whether
 * recorded values go to a stack in work or to the runtime tape. */
#include "plansim.h"

#include <stdlib.h>
#include <string.h>

/* ===================================================================== */
/* Planning                                                              */
/* ===================================================================== */

/* Does p read its arguments entry by entry (so they can be fused into it)? */
static bool fuses_args(const Node *p)
{
    if (p->op == OP_SUM || p->op == OP_SUMD)
        return true;
    if (p->op == OP_DIAGV && !is_scalar(p)) /* diag(bcast(K*v)): n entries, no n×n buffer */
        return true;
    return !is_scalar(p) && (kind_of(p) == OK_U || kind_of(p) == OK_B);
}

/* One cheap operation on stored entries (2 .* db, x - y): recomputed in
 * each of its few consumers' loops rather than stored and read back (a
 * reverse loop's `db = 2 .* db` that is also the gradient is one pass, not
 * a pass and a copy). */
static bool cheap(const Plan *p, const Node *n)
{
    static const bool op_cheap[OP_COUNT] = {
        [OP_NEG] = 1, [OP_ADD] = 1, [OP_SUB] = 1, [OP_MUL] = 1, [OP_ABS] = 1, [OP_MAX] = 1, [OP_MIN] = 1,
    };
    if (!op_cheap[n->op] || p->uses[n->id] > 4)
        return false;
    for (int i = 0; i < n->nargs; i++) {
        Op a = n->args[i]->op;
        if (!is_scalar(n->args[i]) && a != OP_INPUT && a != OP_SLOT && a != OP_COTAN && a != OP_FILL &&
            a != OP_BCAST)
            return false;
    }
    return true;
}

static bool is_leaf(const Node *n);

int placed_blocks(const Node *g, Placed *out)
{
    if (g->op != OP_VCAT && g->op != OP_HCAT)
        return 0;
    Placed st[CAT_MAX + 2];
    int ns = 0, n = 0;
    st[ns++] = (Placed){(Node *)g, dim_lit(0), dim_lit(0)};
    while (ns) {   /* depth first, a before b: the blocks in row-major order of corners */
        Placed x = st[--ns];
        Node *b = x.block;
        if (b->op != OP_VCAT && b->op != OP_HCAT) {
            if (n == CAT_MAX)
                return 0;
            if (out)
                out[n] = x;
            n++;
            continue;
        }
        if (ns + 2 > CAT_MAX + 2)
            return 0;
        Node *a = b->args[0];
        st[ns++] = b->op == OP_VCAT ? (Placed){b->args[1], dim_add(x.r, a->shape.rows), x.c}
                                    : (Placed){b->args[1], x.r, dim_add(x.c, a->shape.cols)};
        st[ns++] = (Placed){a, x.r, x.c};
    }
    return n;
}

/* A matrix transpose whose consumers all read it entry by entry, of a
 * matrix in memory that no statement writes (an input, or a buffer of its
 * own that reads no slot): read in place at (j, i) inside the consumer's
 * loop, which then runs in tiles (codegen.c), instead of a copy and a
 * second pass (A + A' is one pass over A). */
static bool read_transposed(const Plan *p, const Node *n)
{
    if (n->op != OP_TRANSPOSE || is_alias(n))
        return false;
    const Node *a = n->args[0];
    if (a->op == OP_INPUT)
        return true;
    return !is_leaf(a) && a->nslots == 0 && !is_fused(p, a) && !is_alias(a) && !is_view(a);
}

bool is_fused(const Plan *p, const Node *n)
{
    if (p->forced && p->forced[n->id])
        return true;   /* merge_results: read by a merged sum and map only */
    if (is_scalar(n) || p->nofuse[n->id])
        return false;
    if (read_transposed(p, n))
        return true;
    if (n->op == OP_FILL || n->op == OP_BCAST || n->op == OP_PAD || n->op == OP_EYE)
        return true;   /* a broadcast is read through: its argument's entries, never a copy;
                        * a pad too: its block's entries, zeros elsewhere (no dense temporary);
                        * eye(n) is i == j (4*eye(n) is one pass, no n×n identity).  Not
                        * kron: read in place it costs two divisions per entry, and
                        * least squares' 2*kron(eye(m), x*x') took 4.0 ms against 2.6 ms
                        * for the kron's own loop nest and a pass (m = 60, n = 25) */
    return (kind_of(n) == OK_U || kind_of(n) == OK_B) && (p->uses[n->id] == 1 || cheap(p, n));
}

/* A transpose of a vector is its argument's memory. */
bool is_alias(const Node *n)
{
    return n->op == OP_TRANSPOSE && !is_scalar(n) &&
           (dim_eq(n->shape.rows, dim_lit(1)) || dim_eq(n->shape.cols, dim_lit(1)));
}

int scatter_form(const Node *x, int slot, Node **pads)
{
    const Node *todo[SCATTER_MAX + 2];
    int nt = 0, np = 0, nslot = 0;
    if (x->op != OP_ADD || is_scalar(x))
        return 0;
    todo[nt++] = x;
    while (nt) {
        const Node *y = todo[--nt];
        if (y->op == OP_ADD && nt + 2 <= SCATTER_MAX + 2) {
            todo[nt++] = y->args[0];
            todo[nt++] = y->args[1];
        } else if (y->op == OP_SLOT && y->index == slot) {
            nslot++;
        } else if (y->op == OP_PAD && np < SCATTER_MAX) {
            const Node *g = y->args[0];
            /* g is read while the slot is written: not memory of the slot */
            if (node_reads_slot(g, slot) && (g->op == OP_SLOT || is_alias(g) || is_view(g)))
                return 0;
            pads[np++] = (Node *)y;
        } else {
            return 0;
        }
    }
    return nslot == 1 ? np : 0;
}

bool is_view(const Node *n)
{
    if (n->op != OP_SLICE || is_scalar(n))
        return false;
    return dim_eq(n->shape.cols, n->args[0]->shape.cols) || dim_eq(n->shape.rows, dim_lit(1));
}

/* Matrix–vector products.  A product P*x whose result is a column (or a
 * row x'*P, read as P'*x) is computed from the terms of P: sums,
 * differences, negations, scalar factors and transposes of P are read
 * through, so (A + A')*x is A*x + A'*x and never builds the n×n matrix
 * A + A' (nor A').  The terms are flattened here, once per node. */

/* Adds the terms of k * coef * op(P) (op: transpose when trans); false when
 * there would be too many (then P is read as one matrix). */
static bool mv_terms(Mv *v, Node *P, bool trans, double k, Node *coef, int depth)
{
    if (depth > 2 * MV_MAX_TERMS)
        return false; /* a long chain of sums: read as one matrix */
    Node *a = P->nargs > 0 ? P->args[0] : NULL, *b = P->nargs > 1 ? P->args[1] : NULL;
    switch (P->op) {
    case OP_ADD:
    case OP_SUB:
        if (is_scalar(a) || is_scalar(b))
            break; /* a broadcast: not a sum of matrices */
        return mv_terms(v, a, trans, k, coef, depth + 1) &&
               mv_terms(v, b, trans, P->op == OP_ADD ? k : -k, coef, depth + 1);
    case OP_NEG: return mv_terms(v, a, trans, -k, coef, depth + 1);
    case OP_TRANSPOSE: return mv_terms(v, a, !trans, k, coef, depth + 1);
    case OP_MUL:
        if (is_scalar(b) && !is_scalar(a)) {
            Node *t = a; a = b; b = t;
        }
        if (!is_scalar(a) || is_scalar(b))
            break;
        if (a->op == OP_CONST)
            return mv_terms(v, b, trans, k * a->num, coef, depth + 1);
        if (!coef)
            return mv_terms(v, b, trans, k, a, depth + 1);
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
    if (!mv_terms(v, P, trans, 1, NULL, 0)) {
        v->nterms = 0;
        v->terms[v->nterms++] = (Term){P, trans, 1, NULL};
    }
    return v;
}

static const Node *vec_memory(const Node *v) { return is_alias(v) ? v->args[0] : v; }

int mv_copy_of(const Plan *p, const Kernel *k, int i, int t)
{
    const Mv *v = p->mv[k->members[i]->id];
    const Term *a = &v->terms[t];
    for (int j = 0; j < i && a->m && !v->w; j++) {   /* a dot is neither copy nor copied */
        const Mv *w = p->mv[k->members[j]->id];
        const Term *b = &w->terms[0];
        bool same_vec = vec_memory(v->vec) == vec_memory(w->vec) ||
                        (v->vec->op == OP_FILL && w->vec->op == OP_FILL && v->vec->num == w->vec->num);
        if (w->nterms == 1 && !w->w && b->m == a->m && b->trans == a->trans && b->k == a->k && b->coef == a->coef && same_vec)
            return j;
    }
    return -1;
}

/* Products outside statements that read a common matrix form a group,
 * computed in one pass per matrix (x'*A*x: A*x for the value, A'*x for the
 * gradient).  A group's id is its first member's id; a product alone (or
 * reached from a statement, so maybe inside a loop) has group nn + id.
 * p->gnext chains a group's members in id order, -1 at the end.  Linear:
 * first[m] is the group of the first product reading matrix m. */
static void mv_group(Plan *p, int nn)
{
    int *first = arena_alloc(p->arena, sizeof(int) * (size_t)(nn + 1));
    int *last = arena_alloc(p->arena, sizeof(int) * (size_t)(nn + 1));
    p->gnext = arena_alloc(p->arena, sizeof(int) * (size_t)(nn + 1));
    for (int i = 0; i < nn; i++)
        first[i] = -1, p->gnext[i] = -1;
    for (int i = 0; i < nn; i++) {
        Mv *v = p->nodes[i] ? p->mv[i] : NULL;
        if (!v)
            continue;
        v->group = p->instmt[i] ? nn + i : i;
        if (p->instmt[i])
            continue;
        for (int t = 0; t < v->nterms; t++)
            if (v->terms[t].m && first[v->terms[t].m->id] >= 0 && first[v->terms[t].m->id] < v->group)
                v->group = first[v->terms[t].m->id];
        for (int t = 0; t < v->nterms; t++)
            if (v->terms[t].m && first[v->terms[t].m->id] < 0)
                first[v->terms[t].m->id] = v->group;
        if (v->group != i)
            p->gnext[last[v->group]] = i;
        last[v->group] = i;
    }
}

static Node *untransposed(Node *x, bool *t)
{
    *t = false;
    while (x->op == OP_TRANSPOSE)
        x = x->args[0], *t = !*t;
    return x;
}

static bool is_diagm(const Node *x) { return x->op == OP_DIAGM && !is_scalar(x); }
static bool is_fill(const Node *x) { return x->op == OP_FILL && !is_scalar(x); }

/* n as a matrix–matrix product (not a matrix–vector one), or NULL.  A diag
 * or fill factor (symmetric: a transpose of it is itself) picks a mode. */
static Gemm *gemm_form(Arena *a, Node *n, const Mv *mv)
{
    if (n->op != OP_MATMUL || is_scalar(n) || mv)
        return NULL;
    Gemm *g = arena_alloc(a, sizeof *g);
    g->out = -1, g->alpha = 1, g->slot = -1;
    g->a = untransposed(n->args[0], &g->ta);
    g->b = untransposed(n->args[1], &g->tb);
    if (is_diagm(g->a))
        g->mode = G_ROWSCALE, g->a = g->a->args[0], g->ta = false;
    else if (is_diagm(g->b))
        g->mode = G_COLSCALE, g->b = g->b->args[0], g->tb = false;
    else if (is_fill(g->a))
        g->mode = G_COLSUMS, g->ta = false;
    else if (is_fill(g->b))
        g->mode = G_ROWSUMS, g->tb = false;
    return g;
}

/* diag(A * B) of a dense product: its diagonal, n dot products. */
static Gemm *diag_form(Arena *a, Node *n)
{
    if (n->op != OP_DIAGV || is_scalar(n) || n->args[0]->op != OP_MATMUL || is_scalar(n->args[0]))
        return NULL;
    Node *x = n->args[0];
    if (lit1(x->shape.rows) || lit1(x->shape.cols))
        return NULL;
    Gemm *g = gemm_form(a, x, NULL);
    if (g->mode == G_ROWSCALE || g->mode == G_COLSCALE)
        return NULL;
    g->mode = G_DENSE; /* a fill operand is read as its constant */
    g->diag = true;
    /* a scaling operand is a weight between the two: diag(ones*diag(v)*K')
     * is Σ_p v[p]·K[i][p], one read of K, no n×n buffer */
    Gemm *in = !g->ta && g->a->op == OP_MATMUL ? gemm_form(a, g->a, NULL) : NULL;
    if (in && in->mode == G_COLSCALE && !is_scalar(g->a)) {
        g->w = in->b, g->a = in->a, g->ta = in->ta;
        return g;
    }
    in = !g->tb && g->b->op == OP_MATMUL ? gemm_form(a, g->b, NULL) : NULL;
    if (in && in->mode == G_ROWSCALE && !is_scalar(g->b))
        g->w = in->a, g->b = in->b, g->tb = in->tb;
    return g;
}

/* sum(s) and norm(s) of a matrix or vector slot are kept up to date by
 * every store to s (computed in the store's loop, as hand C does), so a
 * `while norm(b) < 1000` reads no b. */
bool is_kept(const Plan *p, const Node *n)
{
    return (n->op == OP_SUM || n->op == OP_NORM) && n->args[0]->op == OP_SLOT && !is_scalar(n->args[0]) &&
           p->nwrites[n->args[0]->index] <= KEEP_MAX_WRITES;
}

/* Counts the statements that write each slot (a set in a loop counts
 * once: it is one loop).  A slot set by many statements (300 of a chain
 * v = tanh(A*v) + 0.5*v) does not keep its sums: each store would sum
 * for the one read at the end. */
static void count_writes(Plan *p, const Block *b)
{
    for (int i = 0; b && i < b->n; i++) {
        const Stmt *st = b->stmts[i];
        for (int j = 0; st->kind != S_PUSH && st->slots && j < st->n; j++)
            p->nwrites[st->slots[j]]++;
        count_writes(p, st->then_block);
        count_writes(p, st->else_block);
        count_writes(p, st->body);
    }
}

static void forms(Plan *p, Node *n)
{
    p->mv[n->id] = mv_form(p->arena, n);
    p->gemm[n->id] = n->op == OP_DIAGV ? diag_form(p->arena, n) : gemm_form(p->arena, n, p->mv[n->id]);
}

/* The values node n reads (the operands of a matrix–vector form; else its
 * arguments) into out (at most 2 * MV_MAX_TERMS + 1), with whether each can
 * be fused into n's loop. */
int plan_deps(const Plan *p, const Node *n, Node **out, bool *fuse)
{
    const Mv *v = p->mv[n->id];
    const Gemm *g = p->gemm[n->id];
    int k = 0;
    if (is_kept(p, n))
        return 0; /* read from the value the slot's stores keep */
    if (g) {
        /* a fill operand is its constant; the fill of a sums mode is not read */
        if (g->mode != G_COLSUMS)
            out[k] = g->a, fuse[k++] = g->a->op == OP_FILL;
        if (g->mode != G_ROWSUMS)
            out[k] = g->b, fuse[k++] = g->b->op == OP_FILL;
        if (g->w)
            out[k] = g->w, fuse[k++] = g->w->op == OP_FILL;
        if (g->add)   /* its entries are the product's starting values */
            out[k] = g->add, fuse[k++] = true;
        return k;
    }
    if (!v) {
        for (int i = 0; i < n->nargs; i++, k++)
            out[k] = n->args[i], fuse[k] = fuses_args(n);
        return k;
    }
    out[k] = v->vec, fuse[k++] = v->vec->op == OP_FILL;
    if (v->w)
        out[k] = v->w, fuse[k++] = false;
    for (int t = 0; t < v->nterms; t++) {
        if (v->terms[t].m)
            out[k] = v->terms[t].m, fuse[k++] = false;
        if (v->terms[t].coef)
            out[k] = v->terms[t].coef, fuse[k++] = false;
    }
    return k;
}


/* Marks everything n reads as reached, counting each consumer once;
 * iterative (a DAG as deep as the program is long must not overflow). */
static void reach(Plan *p, Node *n)
{
    if (p->nodes[n->id])
        return;
    NodeVec todo = {0};
    p->nodes[n->id] = n;
    forms(p, n);
    vec_push(p->arena, &todo, n);
    while (todo.len) {
        Node *x = todo.data[--todo.len], *d[DEPS_MAX];
        bool fuse[DEPS_MAX];
        int nd = plan_deps(p, x, d, fuse);
        for (int i = 0; i < nd; i++) {
            p->uses[d[i]->id]++;
            p->user[d[i]->id] = x;
            if (!fuse[i])
                p->nofuse[d[i]->id] = true;
            if (!p->nodes[d[i]->id]) {
                p->nodes[d[i]->id] = d[i];
                forms(p, d[i]);
                vec_push(p->arena, &todo, d[i]);
            }
        }
    }
}

static void root(Plan *p, Node *n, bool store)
{
    reach(p, n);
    p->uses[n->id]++;
    if (!store)
        p->nofuse[n->id] = true;
}

static void plan_slot(Plan *p, int s) { if (s >= 0) p->slotused[s] = true; }

static void plan_assign(Plan *p, const Module *m, int n, const int *slots, Node **vals)
{
    for (int i = 0; i < n; i++) {
        Node *pads[SCATTER_MAX];
        int np = scatter_form(vals[i], slots[i], pads);
        for (int k = 0; k < np; k++)
            for (int a = 0; a < 3; a++)
                root(p, pads[k]->args[a], false);
        if (!np)
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
    const Gemm *g = p->gemm[n->id];
    if (is_scalar(n) || is_fused(p, n) || is_alias(n) || is_view(n) || (g && (g->out >= 0 || g->slot >= 0)))
        return false;
    return n->op != OP_INPUT && n->op != OP_SLOT && n->op != OP_COTAN;
}

/* ===================================================================== */
/* The schedule: what is computed at each point                         */
/* ===================================================================== */

/* (Sim, the walk's state: plansim.h) */

static bool is_leaf(const Node *n)
{
    switch (n->op) {
    case OP_INPUT: case OP_SLOT: case OP_COTAN: case OP_CONST: case OP_DIMVAL: return true;
    case OP_FILL: case OP_EYE: return is_scalar(n);
    default: return false;
    }
}

KernelKind plan_kernel_kind(const Plan *p, const Node *n)
{
    if (is_leaf(n))
        return K_LEAF;
    if (p->mv[n->id])
        return K_MATVEC;
    if (is_kept(p, n))
        return K_KEPT;
    if (p->gemm[n->id]) {
        static const KernelKind by_mode[] = {
            [G_DENSE] = K_GEMM, [G_ROWSCALE] = K_SCALE, [G_COLSCALE] = K_SCALE,
            [G_COLSUMS] = K_SUMS, [G_ROWSUMS] = K_SUMS,
        };
        return p->gemm[n->id]->diag ? K_DIAGDOT : by_mode[p->gemm[n->id]->mode];
    }
    if (n->op == OP_DET || n->op == OP_LOGDET || (n->op == OP_INV && !is_scalar(n)) ||
        n->op == OP_LU || n->op == OP_SOLVE || n->op == OP_SOLVET || n->op == OP_CHOL)
        return K_LAPACK;
    if (is_scalar(n)) {
        switch (n->op) {
        case OP_SUM: case OP_NORM: case OP_TRACE: case OP_LOGSUMEXP: case OP_MATMUL:
        case OP_AMAX: case OP_AMIN: return K_REDUCE;
        default: return K_SCALAR;
        }
    }
    if (is_alias(n))
        return K_ALIAS;
    if (kind_of(n) == OK_U || kind_of(n) == OK_B || n->op == OP_FILL || n->op == OP_BCAST)
        return K_MAP;
    return n->op == OP_MATMUL ? K_GEMM : K_LAYOUT;
}

void plan_set_valid(Sim *s, Node *n)
{
    if (s->valid[n->id])
        return;
    s->valid[n->id] = true;
    s->level[n->id] = s->depth;
    vec_push(s->p->arena, &s->live, n->id);
}

/* Keeps the live values for which keep() holds. */
static void filter_live(Sim *s, bool (*keep)(Sim *, const Node *))
{
    int k = 0;
    for (int i = 0; i < s->live.len; i++) {
        int id = s->live.data[i];
        if (keep(s, s->p->nodes[id]))
            s->live.data[k++] = id;
        else
            s->valid[id] = false;
    }
    s->live.len = k;
}

static bool outer(Sim *s, const Node *n) { return s->level[n->id] < s->depth; }

static bool unwritten(Sim *s, const Node *n)
{
    for (int j = 0; j < n->nslots; j++)
        if (slotset_has(s->written, n->slots[j]))
            return false;
    return true;
}

static void scope_pop(Sim *s)
{
    filter_live(s, outer);
    s->depth--;
}

/* Drops the values that read a slot marked in s->written, then clears it. */
static void invalidate(Sim *s)
{
    filter_live(s, unwritten);
    slotset_clear(s->written);
}

bool plan_available(const Sim *s, const Node *n)
{
    if (is_alias(n))
        n = n->args[0];
    return s->valid[n->id] || n->op == OP_INPUT || n->op == OP_SLOT || n->op == OP_COTAN ||
           n->op == OP_CONST || n->op == OP_FILL || n->op == OP_DIMVAL;
}

static bool mv_ready(const Sim *s, const Mv *v)
{
    bool ok = plan_available(s, v->vec);
    for (int t = 0; t < v->nterms && ok; t++)
        ok = (!v->terms[t].m || plan_available(s, v->terms[t].m)) && (!v->terms[t].coef || plan_available(s, v->terms[t].coef));
    return ok;
}

/* v reads n (its vector, a matrix or a coefficient): a product of n's own
 * pass cannot read n, which that pass is still computing. */
static bool mv_reads(const Mv *v, const Node *n)
{
    const Node *vec = is_alias(v->vec) ? v->vec->args[0] : v->vec;
    bool r = vec == n;
    for (int t = 0; t < v->nterms && !r; t++)
        r = v->terms[t].m == n || v->terms[t].coef == n;
    return r;
}

int plan_by_id(const void *x, const void *y)
{
    int a = (*(Node *const *)x)->id, b = (*(Node *const *)y)->id;
    return (a > b) - (a < b);
}

/* Collects into got every node that roots need and that is neither valid
 * nor fused (a fused node is computed inside its consumer's loop, from its
 * own arguments); with hoist, only nodes that read no slot in s->written,
 * the loop's. */
void plan_collect(Sim *s, Node **roots, int nroots, bool hoist, NodeVec *got)
{
    Plan *p = s->p;
    s->epoch++;
    got->len = 0;
    for (int i = 0; i < nroots; i++)
        vec_push(p->arena, &s->todo, roots[i]);
    while (s->todo.len) {
        Node *x = s->todo.data[--s->todo.len], *d[DEPS_MAX];
        bool fuse[DEPS_MAX];
        if (s->mark[x->id] == s->epoch || s->valid[x->id])
            continue;
        s->mark[x->id] = s->epoch;
        bool variant = hoist && (!unwritten(s, x) || p->guarded[x->id]);
        if (!variant && !is_fused(p, x) && !(hoist && is_leaf(x)))
            vec_push(p->arena, got, x);
        if (hoist && !variant && !is_fused(p, x))
            continue; /* hoisted whole: its arguments come with it */
        int nd = plan_deps(p, x, d, fuse);
        for (int i = 0; i < nd; i++)
            vec_push(p->arena, &s->todo, d[i]);
    }
}

static void collect(Sim *s, Node **roots, int nroots, bool hoist)
{
    plan_collect(s, roots, nroots, hoist, &s->got);
}



/* A point: the kernels for roots, in id order. */
static void point(Sim *s, Node **roots, int nroots, Node *root)
{
    Plan *p = s->p;
    collect(s, roots, nroots, false);
    if (s->got.len > 1)       /* data is NULL when nothing was collected */
        qsort(s->got.data, (size_t)s->got.len, sizeof(Node *), plan_by_id);
    KernelVec ks = {0};
    for (int i = 0; i < s->got.len; i++) {
        Node *x = s->got.data[i];
        if (s->valid[x->id])
            continue; /* computed with its matrix–vector group or row pass */
        Kernel k = {plan_kernel_kind(p, x), x, NULL, 0};
        if (k.kind == K_MATVEC && row_pass(s, x, &ks))
            continue;
        plan_set_valid(s, x);
        if (k.kind == K_MATVEC) {
            int g = p->mv[x->id]->group, n = 1;
            for (int j = g < p->m->ir->nnodes ? g : -1; j >= 0; j = p->gnext[j])
                n++;
            k.members = arena_alloc(p->arena, sizeof(Node *) * (size_t)n);
            k.members[k.nmembers++] = x;
            for (int j = g < p->m->ir->nnodes ? g : -1; j >= 0; j = p->gnext[j])
                if (j != x->id && !s->valid[j] && mv_ready(s, p->mv[j]) && !mv_reads(p->mv[j], x))
                    k.members[k.nmembers++] = p->nodes[j];
            for (int j = 1; j < k.nmembers; j++) {
                /* the other members' leaves (inputs, slots, transposed vectors) */
                Node *d[DEPS_MAX];
                bool fuse[DEPS_MAX];
                int nd = plan_deps(p, k.members[j], d, fuse);
                for (int e = 0; e < nd; e++)
                    for (int a = is_alias(d[e]); a >= 0; a--) {
                        Node *y = a ? d[e]->args[0] : d[e];
                        if (s->valid[y->id] || fuse[e])
                            continue;
                        vec_push(p->arena, &ks, ((Kernel){plan_kernel_kind(p, y), y, NULL, 0}));
                        plan_set_valid(s, y);
                    }
                plan_set_valid(s, k.members[j]);
            }
        }
        vec_push(p->arena, &ks, k);
    }
    ks.len = merge_sums(p, ks.data, ks.len);
    for (int i = 0; s->out && i < ks.len; i++)
        if (ks.data[i].kind != K_LEAF && ks.data[i].kind != K_ALIAS)
            plan_dump_kernel(s, &ks.data[i]);
    vec_push(p->arena, &p->points, ((Point){root, ks.data, ks.len}));
}

static void need(Sim *s, Node *n) { point(s, &n, 1, n); }

/* ---- the dump ---- */

static void indent(Sim *s) { fprintf(s->out, "%*s", 2 * s->indent, ""); }

/* A value as the dump names it: inputs, slots and dimensions by name,
 * constants by value, a fused node as its expression, anything else %id. */
/* Binary ops dumped as calls: max(a, b), where(k, a) (PICK), solve(F, B). */
static bool call_form(const Node *n)
{
    return n->op == OP_MAX || n->op == OP_MIN || n->op == OP_PICK || n->op == OP_SOLVE ||
           n->op == OP_SOLVET;
}

static void ref(Sim *s, const Node *n)
{
    const Module *m = s->p->m;
    FILE *o = s->out;
    switch (n->op) {
    case OP_INPUT: fputs(m->inputs[n->index].name, o); return;
    case OP_SLOT: fputs(m->ir->slots.data[n->index].name, o); return;
    case OP_DIMVAL: fputs(m->dims[n->index], o); return;
    case OP_COTAN: fputs("cotangent", o); return;
    case OP_CONST: fprintf(o, "%.17g", n->num); return;
    case OP_FILL: fprintf(o, "fill(%.17g)", n->num); return;
    case OP_EYE:
        if (is_fused(s->p, n)) {
            fputs("eye", o);
            return;
        }
        break;
    default: break;
    }
    if (is_alias(n) || (n->op == OP_TRANSPOSE && is_fused(s->p, n))) {   /* read in place */
        ref(s, n->args[0]);
        fputs("'", o);
        return;
    }
    if (!is_fused(s->p, n)) {
        fprintf(o, "%%%d", n->id);
        return;
    }
    const char *t = op_info[n->op].text;
    if (n->op == OP_PAD) {   /* read through: pad(g, r, c) */
        fputs("pad(", o);
        for (int i = 0; i < 3; i++) {
            fputs(i ? ", " : "", o);
            ref(s, n->args[i]);
        }
        fputs(")", o);
        return;
    }
    if (n->nargs == 1) {
        fprintf(o, n->op == OP_NEG ? "-" : "%s(", t);
        ref(s, n->args[0]);
        fputs(n->op == OP_NEG ? "" : ")", o);
        return;
    }
    bool word = call_form(n);
    fprintf(o, word ? "%s(" : "(", t);
    ref(s, n->args[0]);
    fprintf(o, word ? ", " : " %s ", t);
    ref(s, n->args[1]);
    fputs(")", o);
}

static const char *const kernel_name[] = {
    [K_LEAF] = "leaf", [K_SCALAR] = "scalar", [K_MAP] = "map", [K_REDUCE] = "reduce",
    [K_MATVEC] = "matvec", [K_GEMM] = "gemm", [K_LAPACK] = "lapack", [K_LAYOUT] = "layout",
    [K_ALIAS] = "alias", [K_SCALE] = "scale", [K_SUMS] = "sums", [K_DIAGDOT] = "diagmm", [K_KEPT] = "kept",
    [K_ROWS] = "rows",
};

static void dump_shape(Sim *s, const Node *n)
{
    if (!is_scalar(n))
        fputs(shape_str(s->p->arena, n->shape, s->p->m->dims), s->out);
}

/* op(args) with the arguments as refs (the kernel's own operation). */
static void dump_op(Sim *s, const Node *n)
{
    FILE *o = s->out;
    const char *t = op_info[n->op].text;
    if (call_form(n)) {
        fprintf(o, "%s(", t);
        ref(s, n->args[0]);
        fputs(n->op == OP_SOLVET ? "', " : ", ", o);   /* SOLVET: A' \ B */
        ref(s, n->args[1]);
        fputs(")", o);
        return;
    }
    if (kind_of(n) == OK_B || n->op == OP_MATMUL) {
        ref(s, n->args[0]);
        fprintf(o, " %s ", t);
        ref(s, n->args[1]);
        return;
    }
    if (n->op == OP_TRANSPOSE) {
        ref(s, n->args[0]);
        fputs("'", o);
        return;
    }
    fputs(n->op == OP_NEG ? "-" : t, o);
    if (n->nargs) {
        fputs(n->op == OP_NEG ? "" : "(", o);
        ref(s, n->args[0]);
        if (n->op >= OP_SUMD && n->op <= OP_LOGSOFTMAXD)
            fprintf(o, ", %d", n->index);
        fputs(n->op == OP_NEG ? "" : ")", o);
    } else if (n->op == OP_FILL) {
        fprintf(o, "(%.17g)", n->num);
    }
}

static void dump_term(Sim *s, const Mv *v, const Term *t)
{
    FILE *o = s->out;
    if (t->k != 1)
        fprintf(o, "%.17g*", t->k);
    if (t->coef) {
        ref(s, t->coef);
        fputs("*", o);
    }
    if (t->m) {
        ref(s, t->m);
        fprintf(o, "%s*", t->trans ? "'" : "");
    }
    ref(s, v->vec);
}

void plan_dump_kernel(Sim *s, const Kernel *k)
{
    FILE *o = s->out;
    if (k->kind == K_MAP && k->nmembers) {   /* a map and a sum in one loop */
        Kernel map = {K_MAP, k->node, NULL, 0};
        plan_dump_kernel(s, &map);
        indent(s);
        fprintf(o, "%-7s%%%d = ", "", k->members[0]->id);
        dump_op(s, k->members[0]);
        fputs(", in the same loop\n", o);
        return;
    }
    bool many = k->kind == K_MATVEC || k->kind == K_ROWS;
    for (int i = 0; i < (many ? k->nmembers : 1); i++) {
        const Node *n = many ? k->members[i] : k->node;
        indent(s);
        fprintf(o, "%-7s%%%d", i ? "" : kernel_name[k->kind], n->id);
        dump_shape(s, n);
        fputs(" = ", o);
        if (s->p->mv[n->id]) {
            const Mv *v = s->p->mv[n->id];
            if (v->w) {
                fputs("dot(", o);
                ref(s, v->w);
                fputs(", ", o);
            }
            for (int t = 0; t < v->nterms; t++) {
                fputs(t ? " + " : "", o);
                int j = k->kind == K_MATVEC ? mv_copy_of(s->p, k, i, t) : -1;
                if (j < 0)
                    dump_term(s, v, &v->terms[t]);
                else   /* that member's result, not a product in the pass */
                    fprintf(o, "%%%d%s", k->members[j]->id,
                            dim_eq(k->members[j]->shape.rows, n->shape.rows) ? "" : "'");
            }
            fputs(v->w ? ")" : "", o);
        } else if (s->p->gemm[n->id]) {
            const Gemm *g = s->p->gemm[n->id];
            fputs(g->diag ? "diag(" : "", o);
            fputs(g->mode == G_ROWSCALE ? "diag(" : "", o);
            ref(s, g->a);
            fputs(g->mode == G_ROWSCALE ? ")" : g->ta ? "'" : "", o);
            if (g->w) {
                fputs(" * diag(", o);
                ref(s, g->w);
                fputs(")", o);
            }
            fputs(g->mode == G_COLSCALE ? " * diag(" : " * ", o);
            ref(s, g->b);
            fputs(g->mode == G_COLSCALE ? ")" : g->tb ? "'" : "", o);
            fputs(g->diag ? ")" : "", o);
            if (g->add) {
                fputs(" + ", o);
                ref(s, g->add);
            }
            if (g->slot >= 0)
                fprintf(o, ", into %s", s->p->m->ir->slots.data[g->slot].name);
            if (g->out >= 0 && g->alpha != 1)
                fprintf(o, ", times %.17g", g->alpha);
            if (g->out >= 0)
                fprintf(o, ", into d/d%s", s->p->m->inputs[s->p->m->wrt[g->out]].name);
        } else {
            dump_op(s, n);
        }
        fputs("\n", o);
    }
}

/* ---- the walk (codegen.c's order) ---- */

static const char *slot_name(Sim *s, int slot) { return s->p->m->ir->slots.data[slot].name; }

static void sim_assign(Sim *s, int n, const int *slots, Node **vals)
{
    for (int i = 0; i < n; i++) {
        Node *pads[SCATTER_MAX];
        int np = scatter_form(vals[i], slots[i], pads);
        for (int k = 0; k < np; k++)
            for (int a = 0; a < 3; a++)
                need(s, pads[k]->args[a]);
        if (!np)
            need(s, vals[i]);
    }
    if (s->out && n) {
        indent(s);
        fputs("set ", s->out);
        for (int i = 0; i < n; i++) {
            Node *pads[SCATTER_MAX];
            int np = scatter_form(vals[i], slots[i], pads);
            fprintf(s->out, "%s%s %s ", i ? ", " : "", slot_name(s, slots[i]), np ? "+=" : "=");
            for (int k = 0; k < np; k++) {
                fputs(k ? " + pad(" : "pad(", s->out);
                ref(s, pads[k]->args[0]);
                fputs(", ", s->out);
                ref(s, pads[k]->args[1]);
                fputs(", ", s->out);
                ref(s, pads[k]->args[2]);
                fputs(")", s->out);
            }
            if (!np)
                ref(s, vals[i]);
        }
        fputs("\n", s->out);
    }
    for (int i = 0; i < n; i++)
        slotset_add(s->written, slots[i]);
    invalidate(s);
}

static void write_slot(Sim *s, int slot)
{
    slotset_add(s->written, slot);
    invalidate(s);
}

static void block_roots(const Block *b, NodeVec *r, Arena *a);

void stmt_roots(const Stmt *s, NodeVec *r, Arena *a)
{
    Node **lists[4] = {s->vals, s->then_vals, s->else_vals, s->next};
    for (int l = 0; l < 4; l++)
        for (int i = 0; lists[l] && i < s->n; i++)
            if (lists[l][i])
                vec_push(a, r, lists[l][i]);
    if (s->cond)
        vec_push(a, r, s->cond);
    if (s->count)
        vec_push(a, r, s->count);
    block_roots(s->then_block, r, a);
    block_roots(s->else_block, r, a);
    block_roots(s->body, r, a);
}

static void block_roots(const Block *b, NodeVec *r, Arena *a)
{
    for (int i = 0; b && i < b->n; i++)
        stmt_roots(b->stmts[i], r, a);
}

/* Loop-invariant code motion: before loop s, everything its body, condition
 * and next values need that reads no slot the loop writes (exp(-C/eps) in
 * a Sinkhorn loop) is computed once; it stays valid through the loop. */
static void hoist(Sim *s, const Stmt *loop)
{
    NodeVec roots = {0};
    Arena *a = s->p->arena;
    block_roots(loop->body, &roots, a);
    for (int i = 0; i < loop->n; i++)
        vec_push(a, &roots, loop->next[i]);
    if (loop->cond)
        vec_push(a, &roots, loop->cond);
    stmt_writes(loop, s->written);
    collect(s, roots.data, roots.len, true);
    slotset_clear(s->written);
    NodeVec inv = {0};
    for (int i = 0; i < s->got.len; i++)
        vec_push(a, &inv, s->got.data[i]);
    if (s->out && inv.len) {
        indent(s);
        fputs("hoisted:\n", s->out);
    }
    point(s, inv.data, inv.len, NULL);
}

static void sim_block(Sim *s, const Block *b);

static void sim_loop(Sim *s, const Stmt *st)
{
    FILE *o = s->out;
    sim_assign(s, st->n, st->slots, st->vals);
    if (st->kind == S_FOR)
        need(s, st->count);
    stmt_writes(st, s->written);
    invalidate(s);
    hoist(s, st);
    if (o) {
        indent(s);
        fputs(st->kind == S_FOR ? (st->reverse ? "for reverse " : "for ") : "while", o);
        if (st->kind == S_FOR) {
            if (st->index_slot >= 0)
                fprintf(o, "%s = ", slot_name(s, st->index_slot));
            fputs("1:", o);
            ref(s, st->count);
        }
        fputs("\n", o);
    }
    s->indent++;
    if (st->kind == S_WHILE) {
        s->depth++;
        need(s, st->cond);
        if (o) {
            indent(s);
            fputs("test ", o);
            ref(s, st->cond);
            fputs("\n", o);
        }
        scope_pop(s);
    }
    s->depth++;
    if (st->index_slot >= 0)
        write_slot(s, st->index_slot);
    sim_block(s, st->body);
    sim_assign(s, st->n, st->slots, st->next);
    scope_pop(s);
    s->indent--;
    if (st->count_slot >= 0) {
        write_slot(s, st->count_slot);
        if (o) {
            indent(s);
            fprintf(o, "set %s = the number of iterations\n", slot_name(s, st->count_slot));
        }
    }
}

static void sim_if(Sim *s, const Stmt *st)
{
    need(s, st->cond);
    for (int br = 0; br < 2; br++) {
        if (s->out) {
            indent(s);
            fputs(br ? "else\n" : "if ", s->out);
            if (!br) {
                ref(s, st->cond);
                fputs("\n", s->out);
            }
        }
        s->indent++;
        s->depth++;
        sim_block(s, br ? st->else_block : st->then_block);
        sim_assign(s, st->n, st->slots, br ? st->else_vals : st->then_vals);
        scope_pop(s);
        s->indent--;
    }
}

static void sim_block(Sim *s, const Block *b)
{
    for (int i = 0; b && i < b->n; i++) {
        const Stmt *st = b->stmts[i];
        FILE *o = s->out;
        switch (st->kind) {
        case S_SET: sim_assign(s, st->n, st->slots, st->vals); break;
        case S_IF: sim_if(s, st); break;
        case S_WHILE:
        case S_FOR: sim_loop(s, st); break;
        case S_PUSH:
            for (int j = 0; j < st->n; j++)
                need(s, st->vals[j]);
            if (o) {
                indent(s);
                fputs("push", o);
                for (int j = 0; j < st->n; j++) {
                    fputs(j ? ", " : " ", o);
                    ref(s, st->vals[j]);
                }
                fputs("\n", o);
            }
            break;
        case S_POP:
            for (int j = st->n - 1; j >= 0; j--)
                write_slot(s, st->slots[j]);
            if (o) {
                indent(s);
                fputs("pop", o);
                for (int j = 0; j < st->n; j++)
                    fprintf(o, "%s%s", j ? ", " : " ", slot_name(s, st->slots[j]));
                fputs("\n", o);
            }
            break;
        }
    }
}

/* Does fused elementwise n read node r (a leaf of its fused tree)?  The
 * walk is bounded by the fusion depth (FUSE_MAX). */
static bool fused_reads(const Plan *p, const Node *n, const Node *r)
{
    if (n == r)
        return true;
    if (!is_fused(p, n))
        return false;
    for (int i = 0; i < n->nargs; i++)
        if (fused_reads(p, n->args[i], r))
            return true;
    return false;
}

static bool no_loop(const Kernel *k) { return k->kind == K_LEAF || k->kind == K_ALIAS; }

/* Value+gradient fusion: when the value is computed from sum(e) by scalar
 * kernels only and every gradient point is empty (what the gradients read
 * is at hand when the value is), the sum runs in the loop that stores the
 * gradients of e's shape, so that what both read is read once (x in
 * 2*dot(x,x): x.^2 for the value, 4 .* x for the gradient). */
static Node *one_pass(const Plan *p, int vpoint)
{
    const Func *f = p->f;
    const Point *pv = &p->points.data[vpoint];
    if (f->aux && p->m->naux)
        return NULL; /* auxiliary outputs may read the sum; kept simple */
    int s = pv->nk - 1;
    while (s >= 0 && (pv->ks[s].kind == K_SCALAR || pv->ks[s].kind == K_KEPT || no_loop(&pv->ks[s])))
        s--;
    if (!f->grads || s < 0 || pv->ks[s].node->op != OP_SUM || is_scalar(pv->ks[s].node->args[0]))
        return NULL;
    Node *sum = pv->ks[s].node;
    int with = 0;
    for (int i = 0; i < p->m->nwrt; i++) {
        Node *g = f->grads[i];
        const Point *pg = &p->points.data[vpoint + 1 + (f->aux ? p->m->naux : 0) + i];
        for (int k = 0; k < pg->nk; k++)
            if (!no_loop(&pg->ks[k]))
                return NULL;
        for (int k = s; k < pv->nk; k++)
            if (fused_reads(p, g, pv->ks[k].node))
                return NULL;
        with += is_fused(p, g) && shape_eq(g->shape, sum->args[0]->shape);
    }
    return with ? sum : NULL;
}

static void schedule(Plan *p, FILE *out)
{
    const Func *f = p->f;
    int nn = p->m->ir->nnodes;
    Sim s = {.p = p, .out = out, .indent = 1, .nslots = p->m->ir->slots.len};
    s.valid = arena_alloc(p->arena, (size_t)nn + 1);
    s.level = arena_alloc(p->arena, sizeof(int) * (size_t)(nn + 1));
    s.mark = arena_alloc(p->arena, sizeof(int) * (size_t)(nn + 1));
    s.role = arena_alloc(p->arena, (size_t)nn + 1);
    s.rmark = arena_alloc(p->arena, sizeof(int) * (size_t)(nn + 1));
    s.written = slotset_new(p->arena);
    sim_block(&s, f->body);
    int vpoint = p->points.len;
    s.out = NULL;   /* the results' kernels are dumped after merge_results */
    need(&s, f->value);
    for (int i = 0; f->aux && i < p->m->naux; i++)
        need(&s, f->aux[i]);
    for (int i = 0; f->grads && i < p->m->nwrt; i++) {
        Placed pl[CAT_MAX];
        Node *blocks[CAT_MAX];
        int np = placed_blocks(f->grads[i], pl);
        for (int j = 0; j < np; j++)
            blocks[j] = pl[j].block;
        if (np)
            point(&s, blocks, np, f->grads[i]);
        else
            need(&s, f->grads[i]);
    }
    s.out = out;
    merge_results(p, vpoint);
    for (int pt = vpoint; out && pt < p->points.len; pt++)
        for (int k = 0; k < p->points.data[pt].nk; k++)
            if (p->points.data[pt].ks[k].kind != K_LEAF && p->points.data[pt].ks[k].kind != K_ALIAS)
                plan_dump_kernel(&s, &p->points.data[pt].ks[k]);
    p->onepass = one_pass(p, vpoint);
    p->onepass_point = vpoint;   /* the same sum may also be computed in an earlier point */
    if (out) {
        if (p->onepass)
            fprintf(out, "  one pass: %%%d with the gradients of its shape\n", p->onepass->id);
        fputs("  return ", out);
        ref(&s, f->value);
        for (int i = 0; f->aux && i < p->m->naux; i++) {
            fprintf(out, ", %s = ", p->m->aux_names[i]);
            ref(&s, f->aux[i]);
        }
        for (int i = 0; f->grads && i < p->m->nwrt; i++) {
            fprintf(out, ", d/d%s = ", p->m->inputs[p->m->wrt[i]].name);
            Placed pl[CAT_MAX];
            int np = placed_blocks(f->grads[i], pl);
            for (int j = 0; j < np; j++) {   /* blocks written in place: BLOCK at (r, c) */
                fputs(j ? "; " : "[", out);
                ref(&s, pl[j].block);
                fprintf(out, " at (%s, %s)", dim_str(p->arena, pl[j].r, p->m->dims),
                        dim_str(p->arena, pl[j].c, p->m->dims));
            }
            if (np)
                fputs("]", out);
            else
                ref(&s, f->grads[i]);
        }
        fputs("\n", out);
    }
}

/* Fused elementwise chains are cut every FUSE_MAX operations: a loop body
 * stays small, and emitting it (recursive over the fused tree) never
 * recurses deeper than that, however long the program's chain. */
enum { FUSE_MAX = 24 };

static void limit_fusion(Plan *p, int nn)
{
    int *depth = arena_alloc(p->arena, sizeof(int) * (size_t)(nn + 1));
    for (int i = 0; i < nn; i++) {
        Node *n = p->nodes[i];
        if (!n || !is_fused(p, n))
            continue;
        for (int a = 0; a < n->nargs; a++)
            if (is_fused(p, n->args[a]) && depth[n->args[a]->id] > depth[i])
                depth[i] = depth[n->args[a]->id];
        if (++depth[i] > FUSE_MAX) {
            p->nofuse[i] = true;
            depth[i] = 0;
        }
    }
}


bool one_value(const Plan *p, const Node *n)
{
    return is_scalar(n) || (n->op == OP_SLOT && p->uniform && p->uniform[n->index]);
}

/* Are x's entries all equal, given the slots now thought uniform?  x is a
 * fill, a uniform slot, or a fused elementwise expression of those and
 * 1×1 values (depth bounded by FUSE_MAX). */
static bool uniform_value(const Plan *p, const Node *x)
{
    if (is_scalar(x) || x->op == OP_FILL)
        return true;
    if (x->op == OP_SLOT)
        return p->uniform[x->index];
    if (!is_fused(p, x) || !(kind_of(x) == OK_U || kind_of(x) == OK_B || x->op == OP_BCAST))
        return false;
    for (int i = 0; i < x->nargs; i++)
        if (!uniform_value(p, x->args[i]))
            return false;
    return true;
}

/* Clears uniform[s] for every slot some statement of b sets to a value
 * that is not uniform (or pops); true when one was cleared. */
static bool unset_block(Plan *p, const Block *b);

static bool unset_list(Plan *p, int n, const int *slots, Node **vals)
{
    bool changed = false;
    for (int i = 0; vals && i < n; i++)
        if (vals[i] && p->uniform[slots[i]] && !uniform_value(p, vals[i]))
            p->uniform[slots[i]] = false, changed = true;
    return changed;
}

static bool unset_block(Plan *p, const Block *b)
{
    bool changed = false;
    for (int i = 0; b && i < b->n; i++) {
        const Stmt *st = b->stmts[i];
        if (st->kind == S_POP) {
            for (int j = 0; j < st->n; j++)
                changed |= p->uniform[st->slots[j]], p->uniform[st->slots[j]] = false;
            continue;
        }
        changed |= unset_list(p, st->n, st->slots, st->vals);
        changed |= unset_list(p, st->n, st->slots, st->then_vals);
        changed |= unset_list(p, st->n, st->slots, st->else_vals);
        changed |= unset_list(p, st->n, st->slots, st->next);
        changed |= unset_block(p, st->then_block) | unset_block(p, st->else_block) | unset_block(p, st->body);
    }
    return changed;
}

/* Uniform slots: non-scalar slots whose every value has all entries equal
 * and that are only read entry by entry (no consumer needs their buffer,
 * no kept sum): the reverse sweep's db = 2 .* db of the D2L sample is one
 * multiplication per iteration, not an n-entry pass.  Optimistic, then
 * cleared to a fixed point (a slot is uniform when what it is set to is). */
static void find_uniform(Plan *p, int ns)
{
    p->uniform = arena_alloc(p->arena, (size_t)ns + 1);
    for (int s = 0; s < ns; s++)
        p->uniform[s] = !shape_is_scalar(p->m->ir->slots.data[s].shape) && p->kept_by[s] < 0;
    for (int i = 0; i < p->m->ir->nnodes; i++) {
        Node *n = p->nodes[i];
        if (n && n->op == OP_SLOT && p->nofuse[i])
            p->uniform[n->index] = false;
    }
    while (unset_block(p, p->f->body))
        ;
}

/* Slots that a top-level set writes before any statement reads them need
 * not start at zero (b, c and db of the D2L sample: three n-entry memsets
 * per call saved).  Linear: each statement's roots once. */
static void mark_read(Plan *p, bool *read, Node **roots, int n)
{
    for (int r = 0; r < n; r++)
        for (int j = 0; roots[r] && j < roots[r]->nslots; j++)
            read[roots[r]->slots[j]] |= !p->unzeroed[roots[r]->slots[j]];
}

static void find_unzeroed(Plan *p, int ns)
{
    bool *read = arena_alloc(p->arena, (size_t)ns + 1);
    p->unzeroed = arena_alloc(p->arena, (size_t)ns + 1);
    const Block *b = p->f->body;
    for (int i = 0; b && i < b->n; i++) {
        const Stmt *st = b->stmts[i];
        bool loop = st->kind == S_WHILE || st->kind == S_FOR;
        if (loop && st->vals) /* a loop's initial values, then its slots are set */
            mark_read(p, read, st->vals, st->n);
        NodeVec roots = {0};
        stmt_roots(st, &roots, p->arena);
        if (!loop)
            mark_read(p, read, roots.data, roots.len);
        bool sets = st->kind == S_SET || (st->kind == S_IF && st->then_vals && st->else_vals) || (loop && st->vals);
        for (int j = 0; sets && j < st->n; j++) /* an if: in both branches */
            if (st->kind != S_IF || (st->then_vals[j] && st->else_vals[j]))
                p->unzeroed[st->slots[j]] |= !read[st->slots[j]];
        mark_read(p, read, roots.data, roots.len);
    }
}

Plan *plan_func(const Module *m, const Func *f, bool grad, FILE *dump)
{
    Arena *a = m->arena;
    int nn = m->ir->nnodes, ns = m->ir->slots.len;
    Plan *p = arena_alloc(a, sizeof *p);
    p->arena = a;
    p->m = m;
    p->f = f;
    p->grad = grad;
    p->mv = arena_alloc(a, sizeof(Mv *) * (size_t)(nn + 1));
    p->gemm = arena_alloc(a, sizeof(Gemm *) * (size_t)(nn + 1));
    p->instmt = arena_alloc(a, sizeof(bool) * (size_t)(nn + 1));
    p->nodes = arena_alloc(a, sizeof(Node *) * (size_t)(nn + 1));
    p->uses = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    p->user = arena_alloc(a, sizeof(Node *) * (size_t)(nn + 1));
    p->nofuse = arena_alloc(a, sizeof(bool) * (size_t)(nn + 1));
    p->buf = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    p->scratch = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    p->slotbuf = arena_alloc(a, sizeof(int) * (size_t)(ns + 1));
    p->shadow = arena_alloc(a, sizeof(int) * (size_t)(ns + 1));
    p->slotused = arena_alloc(a, sizeof(bool) * (size_t)(ns + 1));
    p->onesbuf = -1;
    p->sink = -1;
    for (int i = 0; i < ns; i++)
        p->shadow[i] = -1;

    p->nwrites = arena_alloc(a, sizeof(int) * (size_t)(ns + 1));
    count_writes(p, f->body);
    p->guarded = arena_alloc(a, sizeof(bool) * (size_t)(nn + 1));
    for (int i = 0; i < nn; i++) {   /* arguments first: they have smaller ids */
        const Node *n = m->ir->nodes.data[i];
        bool g = n->op == OP_SLICE && n->num != 0;
        for (int k = 0; k < n->nargs && !g; k++)
            g = p->guarded[n->args[k]->id];
        p->guarded[i] = g;
    }
    plan_block(p, m, f->body);
    find_unzeroed(p, ns);
    p->stack = p->tape && stack_sizable(f->body);
    p->tape = p->tape && !p->stack;
    for (int i = 0; i < nn; i++)
        p->instmt[i] = p->nodes[i] != NULL;
    root(p, f->value, true);
    for (int i = 0; f->aux && i < m->naux; i++)
        root(p, f->aux[i], true);
    for (int i = 0; f->grads && i < m->nwrt; i++) {
        Placed pl[CAT_MAX];
        int np = placed_blocks(f->grads[i], pl);
        for (int j = 0; j < np; j++)
            root(p, pl[j].block, true);
        if (!np)
            root(p, f->grads[i], true);
    }

    for (int i = 0; i < nn; i++)
        if (p->nodes[i] && p->nodes[i]->op == OP_MATMUL && is_scalar(p->nodes[i]))
            plan_dot_form(p, p->nodes[i]);
    fold_products(p);
    mv_group(p, nn);
    limit_fusion(p, nn);
    p->kept = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    p->kept_by = arena_alloc(a, sizeof(int) * (size_t)(ns + 1));
    for (int s = 0; s < ns; s++)
        p->kept_by[s] = -1;
    for (int i = nn - 1; i >= 0; i--) {
        p->kept[i] = -2;
        if (p->nodes[i] && is_kept(p, p->nodes[i])) {
            int s = p->nodes[i]->args[0]->index;
            p->kept[i] = p->kept_by[s];
            p->kept_by[s] = i;
            p->slotused[s] = true;
        }
    }
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
        if (needs_buf(p, n))   /* LU: the factors, then the pivots */
            p->buf[i] = add_buf(p, a, n->shape.rows, n->shape.cols, n->op == OP_LU);
        if (n->op == OP_SOLVE || n->op == OP_SOLVET)   /* the right side, column-major */
            p->scratch[i] = add_buf(p, a, n->shape.rows, n->shape.cols, false);
        if (n->op >= OP_LSED && n->op <= OP_LOGSOFTMAXD && n->index == 1)   /* columns' max and sum */
            p->scratch[i] = add_buf(p, a, dim_lit(2), n->args[0]->shape.cols, false);
        if (n->op == OP_DET || n->op == OP_LOGDET || n->op == OP_INV)
            p->scratch[i] = add_buf(p, a, n->args[0]->shape.rows, n->args[0]->shape.rows, true);
        if (n->op == OP_COTAN && !is_scalar(n) && p->onesbuf < 0)
            p->onesbuf = add_buf(p, a, n->shape.rows, n->shape.cols, false);
    }
    find_uniform(p, ns);
    find_shared(p, ns);
    for (int s = 0; s < ns; s++)
        p->slotbuf[s] = -1;
    for (int pass = 0; pass < 2; pass++)   /* a slot that takes over a buffer after its owner */
        for (int s = 0; s < ns; s++) {
            Shape sh = m->ir->slots.data[s].shape;
            if (!p->slotused[s] || (p->slotshare[s] >= 0) != pass)
                continue;
            add_shape(p, a, sh);
            if (shape_is_scalar(sh) || p->uniform[s])
                continue;
            if (pass)
                p->slotbuf[s] = -2;   /* resolved below, along the chain of owners */
            else
                p->slotbuf[s] = add_buf(p, a, sh.rows, sh.cols, false);
            if (p->shadow[s] == 0)
                p->shadow[s] = add_buf(p, a, sh.rows, sh.cols, false);
        }
    for (int s = 0; s < ns; s++) {
        int o = s;
        while (p->slotshare[o] >= 0)
            o = p->slotshare[o];
        if (p->slotbuf[s] == -2)
            p->slotbuf[s] = p->slotbuf[o];
    }
    /* the schedule first (its text held back): which kernels may write in
     * place is known from it, and the buffer count after */
    char *text = NULL;
    size_t len = 0;
    FILE *body = dump ? open_memstream(&text, &len) : NULL;
    schedule(p, body);
    find_inplace(p);
    if (body)
        fclose(body);
    if (dump) {
        fprintf(dump, "%s: %d buffer%s in work%s\n", grad ? "gradient" : "forward", p->bufs.len,
                p->bufs.len == 1 ? "" : "s",
                p->stack ? ", recorded values on a stack in work" : p->tape ? ", recorded values on the tape" : "");
        const char *sep = "  uniform (one value, no buffer): ";
        for (int s = 0; s < ns; s++)
            if (p->slotused[s] && p->uniform[s]) {
                fprintf(dump, "%s%s", sep, m->ir->slots.data[s].name);
                sep = ", ";
            }
        if (sep[0] == ',')
            fputs("\n", dump);
        for (int s = 0; s < ns; s++)
            if (p->slotshare[s] >= 0)
                fprintf(dump, "  %s in %s's buffer (%s is not used after)\n", m->ir->slots.data[s].name,
                        m->ir->slots.data[p->slotshare[s]].name, m->ir->slots.data[p->slotshare[s]].name);
        sep = "  in place (into the buffer of an argument read there last): ";
        for (int i = 0; i < nn; i++)
            if (p->inplace[i] >= 0) {
                fprintf(dump, "%s%%%d in %%%d", sep, i, p->inplace[i]);
                sep = ", ";
            }
        if (sep[0] == ',')
            fputs("\n", dump);
        fwrite(text, 1, len, dump);
    }
    free(text);
    return p;
}

bool in_onepass(const Plan *p, const Node *g)
{
    return p->onepass && is_fused(p, g) && shape_eq(g->shape, p->onepass->args[0]->shape);
}

void plan_sink(Plan *p)
{
    if (p->onepass)
        p->sink = add_buf(p, p->arena, p->onepass->args[0]->shape.rows, p->onepass->args[0]->shape.cols, false);
}

int plan_dump(const Module *m, FILE *out)
{
    plan_func(m, &m->fwd, false, out);
    if (m->grad.value) {
        fputs("\n", out);
        plan_func(m, &m->grad, true, out);
    }
    return 0;
}

int plan_dump_hvp(const Module *hvp, FILE *out)
{
    Module *h = arena_alloc(hvp->arena, sizeof *h);
    *h = *hvp;   /* without auxiliary outputs, as NAME_hvp (abi.c) */
    h->naux = 0;
    h->aux_names = NULL;
    h->fwd.aux = h->grad.aux = NULL;
    Plan *p = plan_func(h, &h->grad, true, out);
    plan_sink(p);
    if (p->sink >= 0)
        fputs("  and a buffer in work the one pass stores NULL gradients to\n", out);
    return 0;
}

int plan_dump_grad(const Module *m, FILE *out)
{
    plan_func(m, &m->grad, true, out);
    return 0;
}
