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
    if (p->shared && p->shared[n->id])
        return true;
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
    if (is_scalar(n) || is_fused(p, n) || is_alias(n) || is_view(n))
        return false;
    if (g && ((g->out >= 0 && !g->early) || g->slot >= 0))
        return false;   /* computed into a gradient's or a slot's buffer */
    return n->op != OP_INPUT && n->op != OP_SLOT && n->op != OP_COTAN;
}

/* An elementwise node read several times, every read inside one sum's
 * loop at the loop's own entry (huber's r = A*x - b, read by abs(r) and by
 * r .^ 2 in one sum), is fused like a node read once: it would otherwise
 * be a loop of its own and a buffer the sum reads back.  (Not into a map:
 * logistic regression's Hessian lost a merged loop, its sigmoid read twice
 * by a map whose argument then needed a loop of its own.)
 *
 * Codegen makes its entry once (elem); the plan's walks over a kernel's
 * fused tree meet it once per read, so a node is shared only while the
 * reads of it, its consumers' reads multiplied through (mult), stay at
 * most SHARED_MAX: what a walk visits stays within SHARED_MAX times the
 * kernel's nodes, and no path through it meets more than SHARED_MAX shared
 * nodes (each one raises mult), nor recurses deeper than that many
 * FUSE_MAX chains.  One pass from the last node down: a node's consumers
 * come after it, so the kernel each belongs to (root) is known when the
 * node is reached.  After limit_fusion, whose cuts would otherwise move
 * some of a shared node's reads into another kernel. */
enum { SHARED_MAX = 8 };

/* Does c read its argument n entry by entry, at the entry its own loop is
 * at?  (Not a broadcast, a transpose or a pad, which read elsewhere.) */
static bool reads_in_step(const Node *c, const Node *n)
{
    if (c->op == OP_SUM)
        return true;
    return (kind_of(c) == OK_U || kind_of(c) == OK_B) && c->op != OP_BCAST && c->op != OP_TRANSPOSE &&
           c->op != OP_PAD && shape_eq(c->shape, n->shape);
}

static bool may_share(const Plan *p, const Node *n)
{
    return !is_fused(p, n) && !p->nofuse[n->id] && !is_scalar(n) && (kind_of(n) == OK_U || kind_of(n) == OK_B) &&
           n->op != OP_BCAST && n->op != OP_TRANSPOSE && n->op != OP_PAD && p->uses[n->id] > 1;
}

static void fuse_shared(Plan *p, int nn)
{
    Arena *a = p->arena;
    int *root = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));    /* the kernel a node is computed in */
    int *common = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));  /* its consumers' kernel; -1: several */
    int *seen = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));    /* consumers met */
    int *mult = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));    /* reads of it in that kernel's tree */
    bool *step = arena_alloc(a, sizeof(bool) * (size_t)(nn + 1));  /* every consumer reads in step */
    p->shared = arena_alloc(a, sizeof(bool) * (size_t)(nn + 1));
    for (int i = 0; i < nn; i++)
        common[i] = -2, step[i] = true;
    for (int i = nn - 1; i >= 0; i--) {
        Node *n = p->nodes[i], *d[DEPS_MAX];
        bool fuse[DEPS_MAX];
        if (!n)
            continue;
        p->shared[i] = may_share(p, n) && seen[i] == p->uses[i] && common[i] >= 0 && step[i] &&
                       mult[i] <= SHARED_MAX && p->nodes[common[i]]->op == OP_SUM;
        if (!is_fused(p, n) || !seen[i])
            root[i] = i, mult[i] = 1;   /* its own loop, or the store of a result or statement */
        else if (seen[i] != p->uses[i] || (p->uses[i] > 1 && !p->shared[i]))
            root[i] = -1;               /* recomputed in each of its consumers' loops (cheap) */
        else
            root[i] = common[i];
        int nd = plan_deps(p, n, d, fuse);
        for (int k = 0; k < nd; k++) {
            int id = d[k]->id, r = fuse[k] ? root[i] : -1;
            seen[id]++;
            step[id] = step[id] && reads_in_step(n, d[k]);
            common[id] = common[id] == -2 || common[id] == r ? r : -1;
            mult[id] = mult[id] + mult[i] > SHARED_MAX ? SHARED_MAX + 1 : mult[id] + mult[i];
        }
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

/* The gradients' points run in the order the reverse sweep finishes the
 * gradients (by node id), not in wrt order: what a gradient's kernels read
 * was then written last, and is still in cache.  The MLP's dW2 = H'*T2
 * right after T2, before T2*W2' and dW1 = X'*T3 (as hand C orders it): in
 * wrt order it ran last, after 20 MB of other traffic, and hand C in that
 * order took 8% longer (20000x50). */
static int *gradient_order(const Plan *p)
{
    const Func *f = p->f;
    int n = p->m->nwrt;
    if (!f->grads || n < 1)
        return NULL;
    int *o = arena_alloc(p->arena, sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) {   /* insertion sort, stable: few gradients */
        int j = i;
        for (; j > 0 && f->grads[o[j - 1]]->id > f->grads[i]->id; j--)
            o[j] = o[j - 1];
        o[j] = i;
    }
    return o;
}

static Plan *plan_build(const Module *m, const Func *f, bool grad, FILE *dump, int hess_nwrt)
{
    Arena *a = m->arena;
    int nn = m->ir->nnodes, ns = m->ir->slots.len;
    Plan *p = arena_alloc(a, sizeof *p);
    p->arena = a;
    p->m = m;
    p->f = f;
    p->grad = grad;
    p->hess_nwrt = hess_nwrt;
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

    p->gorder = gradient_order(p);
    for (int i = 0; i < nn; i++)
        if (p->nodes[i] && p->nodes[i]->op == OP_MATMUL && is_scalar(p->nodes[i]))
            plan_dot_form(p, p->nodes[i]);
    fold_products(p);
    mv_group(p, nn);
    limit_fusion(p, nn);
    fuse_shared(p, nn);
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
    p->slotname = dump ? slot_print_names(m) : NULL;
    plan_schedule(p, body);
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
                fprintf(dump, "%s%s", sep, p->slotname[s]);
                sep = ", ";
            }
        if (sep[0] == ',')
            fputs("\n", dump);
        for (int s = 0; s < ns; s++)
            if (p->slotshare[s] >= 0)
                fprintf(dump, "  %s in %s's buffer (%s is not used after)\n", p->slotname[s],
                        p->slotname[p->slotshare[s]], p->slotname[p->slotshare[s]]);
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

Plan *plan_func(const Module *m, const Func *f, bool grad, FILE *dump)
{
    return plan_build(m, f, grad, dump, 0);
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

int plan_dump_hessian(const Module *hess, int nwrt, FILE *out)
{
    plan_build(hess, &hess->grad, true, out, nwrt);
    return 0;
}
