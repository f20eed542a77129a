/* planpass.c — matrix passes the plan finds beyond grouping products by
 * matrix: a 1×1 product summed as a dot in a pass (x'*A*y), and the row
 * pass (X*w, an elementwise chain on its rows, X'*t: one read of X). */
#include "plansim.h"

#include <stdlib.h>

/* Values at hand wherever a product is computed: no kernel makes them. */
static bool at_hand(const Node *n)
{
    if (is_alias(n))
        n = n->args[0];
    return n->op == OP_INPUT || n->op == OP_SLOT || n->op == OP_COTAN || n->op == OP_FILL;
}

/* x'*A*y as one pass: a 1×1 product a*b one side of which is a
 * matrix–vector product P of one matrix term that nothing else reads is
 * Σ_i w[i]·(M*v)[i] (P = M'*u: v the other side, w = u; P = M*u: v = u,
 * w the other side), summed in the pass over M as its row dots come out.
 * With the gradients of x'*A*x that pass computes A*x anyway, so the
 * value's x'*A is neither a buffer nor a second loop (its dot with x).
 * Only when v and w are at hand anywhere, so that the dot joins its
 * matrix's pass; P (and a transpose of it) are then not reached. */
void plan_dot_form(Plan *p, Node *r)
{
    for (int side = 0; side < 2; side++) {
        Node *q = r->args[side], *o = r->args[1 - side], *P = is_alias(q) ? q->args[0] : q;
        const Mv *v = p->mv[P->id];
        if (!v || v->nterms != 1 || !v->terms[0].m || p->user[q->id] != r || p->uses[q->id] != 1 ||
            (q != P && (p->user[P->id] != q || p->uses[P->id] != 1)) || !at_hand(o) || !at_hand(v->vec))
            continue;
        Node *vec = v->terms[0].trans ? o : v->vec, *w = v->terms[0].trans ? v->vec : o;
        if (w->op == OP_FILL || (is_alias(w) && w->args[0]->op == OP_FILL))
            continue;
        Mv *d = arena_alloc(p->arena, sizeof *d);
        *d = (Mv){vec, arena_alloc(p->arena, sizeof(Term)), 1, -1, w};
        d->terms[0] = (Term){v->terms[0].m, false, v->terms[0].k, v->terms[0].coef};
        p->mv[r->id] = d;
        p->nodes[q->id] = p->nodes[P->id] = NULL;
        /* uses stay: o, u, M and the factor lose a consumer (r, P) and gain r */
        p->nofuse[vec->id] = p->nofuse[w->id] = true;
        return;
    }
}

/* ---- row passes ---- */

/* A row pass (K_ROWS) reads a matrix once for products M*v, an elementwise
 * chain on their entries and products M'*t of the chain's values, a block
 * of rows at a time, as hand C does for the logistic loss (z = X*w,
 * t = f(z, y), X'*t): the block's row dots, then its entries of the chain,
 * then its rows times t while they are in L1 — one read of X instead of
 * two.  Recognised generally: sources are products M*v of one term, sinks
 * products M'*t of one term (both outside statements: after them every
 * value is final), t computed entry by entry from the sources' entries (an
 * entry i from entries i only) and from values that do not depend on the
 * sources (1×1 values, other vectors), which are computed first when they
 * are not at hand.  Chain values that have a buffer (more than one reader)
 * are stored as they come out, so the loss's sum reads them afterwards.
 * Several sinks share a pass when their chains read only inputs, their own
 * sources and each other's row values (row_pass). */
enum { ROLE_NONE, ROLE_SRC, ROLE_MAP, ROLE_CHAIN, ROLE_SINK };
enum { ROW_WALK_MAX = 1 << 14 };   /* nodes a dependence walk may visit */
/* A row pass's chain is a few elementwise nodes between products of one
 * matrix; trying every product of that matrix as the sink for every source,
 * each with a walk through every elementwise node before it, was quadratic
 * (3 s to plan a 300-statement matrix chain, whose adjoints are one long
 * elementwise chain).  A pass is tried with at most ROW_TRIES sinks per
 * source, and a chain of more than ROW_CHAIN_MAX nodes is not one. */
enum { ROW_TRIES = 8, ROW_CHAIN_MAX = 256 };

bool plan_vec_of_len(const Node *n, Dim d)
{
    return !is_scalar(n) && ((lit1(n->shape.rows) && dim_eq(n->shape.cols, d)) ||
                             (lit1(n->shape.cols) && dim_eq(n->shape.rows, d)));
}

/* a product op(M)*vec of one term, outside statements (trans: M'*vec) */
static bool row_prod(const Plan *p, const Node *n, const Node *M, bool trans)
{
    const Mv *v = p->mv[n->id];
    return v && !v->w && v->nterms == 1 && v->terms[0].m == M && v->terms[0].trans == trans && !p->instmt[n->id];
}

static Node *unaliased(Node *n) { return is_alias(n) ? n->args[0] : n; }

static bool in_list(const NodeVec *v, const Node *n)
{
    for (int i = 0; i < v->len; i++)
        if (v->data[i] == n)
            return true;
    return false;
}

/* Does d (not valid) read, through anything, a node with a role?  Nodes
 * below min cannot (ids grow from arguments to consumers); false also when
 * the walk is too long to tell. */
static bool reads_role(Sim *s, Node *d, int min)
{
    Plan *p = s->p;
    NodeVec todo = {0};
    int visits = 0;
    s->repoch++;
    vec_push(p->arena, &todo, d);
    while (todo.len) {
        Node *y = todo.data[--todo.len], *a[DEPS_MAX];
        bool fuse[DEPS_MAX];
        if (y->id < min || s->rmark[y->id] == s->repoch || s->valid[y->id])
            continue;
        s->rmark[y->id] = s->repoch;
        if (s->role[y->id] != ROLE_NONE || ++visits > ROW_WALK_MAX)
            return true;
        int na = plan_deps(p, y, a, fuse);
        for (int i = 0; i < na; i++)
            vec_push(p->arena, &todo, a[i]);
    }
    return false;
}

/* What computing n's entries inline reads that the pass does not make:
 * through fused values to stored ones (into needs); false when a fused
 * value there reads the pass's own values other than as a chain does. */
static bool row_needs(Sim *s, Node *n, NodeVec *needs)
{
    Plan *p = s->p;
    NodeVec todo = {0};
    for (int i = 0; i < n->nargs; i++)
        vec_push(p->arena, &todo, n->args[i]);
    while (todo.len) {
        Node *y = todo.data[--todo.len];
        int r = s->role[y->id];
        if (r == ROLE_SRC || r == ROLE_CHAIN)
            continue;
        if (r == ROLE_SINK)
            return false;
        if (!is_fused(p, y)) {
            vec_push(p->arena, needs, y);
            continue;
        }
        for (int i = 0; i < y->nargs; i++)   /* bounded by the fusion depth */
            vec_push(p->arena, &todo, y->args[i]);
    }
    return true;
}

/* Sink q and the chain to it: roles set, the nodes seen in seen (in id
 * order); false when the chain is longer than ROW_CHAIN_MAX. */
static bool row_scan(Sim *s, Node *q, const Node *M, NodeVec *seen)
{
    Plan *p = s->p;
    NodeVec todo = {0};
    s->role[q->id] = ROLE_SINK;
    vec_push(p->arena, seen, q);
    vec_push(p->arena, &todo, unaliased(p->mv[q->id]->vec));
    while (todo.len) {
        if (seen->len > ROW_CHAIN_MAX)
            return false;
        Node *y = todo.data[--todo.len];
        if (s->role[y->id] || s->valid[y->id])
            continue;
        if (row_prod(p, y, M, false)) {
            s->role[y->id] = ROLE_SRC;
        } else if ((kind_of(y) == OK_U || kind_of(y) == OK_B) && plan_vec_of_len(y, M->shape.rows)) {
            s->role[y->id] = ROLE_MAP;
            for (int i = 0; i < y->nargs; i++)
                vec_push(p->arena, &todo, y->args[i]);
        } else {
            continue;
        }
        vec_push(p->arena, seen, y);
    }
    if (seen->len > 1)
        qsort(seen->data, (size_t)seen->len, sizeof(Node *), plan_by_id);
    for (int i = 0; i < seen->len; i++) {   /* arguments first */
        Node *y = seen->data[i];
        for (int a = 0; a < y->nargs && s->role[y->id] == ROLE_MAP; a++)
            if (s->role[y->args[a]->id] == ROLE_SRC || s->role[y->args[a]->id] == ROLE_CHAIN)
                s->role[y->id] = ROLE_CHAIN;
    }
    return true;
}

/* The pass's members (sources read by the chain, stored chain values,
 * sinks whose t is in the chain) and what they need; false when x is not
 * one of its sources, a sink's t (of nq) is not in the chain or something
 * would read the pass's own values. */
static bool row_members(Sim *s, Node *x, NodeVec *seen, NodeVec *mem, NodeVec *needs, int nq)
{
    Plan *p = s->p;
    bool has_x = false;
    int nsinks = 0;
    for (int i = 0; i < seen->len; i++) {
        Node *y = seen->data[i];
        int r = s->role[y->id];
        const Mv *v = p->mv[y->id];
        if (r == ROLE_SINK && s->role[unaliased(v->vec)->id] == ROLE_CHAIN) {
            vec_push(p->arena, mem, y);
            nsinks++;
            if (v->terms[0].coef)
                vec_push(p->arena, needs, v->terms[0].coef);
        } else if (r == ROLE_CHAIN) {
            for (int a = 0; a < y->nargs; a++)
                if (s->role[y->args[a]->id] == ROLE_SRC && !in_list(mem, y->args[a])) {
                    Node *src = y->args[a];
                    const Mv *sv = p->mv[src->id];
                    has_x |= src == x;
                    vec_push(p->arena, mem, src);
                    vec_push(p->arena, needs, sv->vec);
                    if (sv->terms[0].coef)
                        vec_push(p->arena, needs, sv->terms[0].coef);
                }
            if (!is_fused(p, y))
                vec_push(p->arena, mem, y);
            if (!row_needs(s, y, needs))
                return false;
        }
    }
    if (mem->len > 1)
        qsort(mem->data, (size_t)mem->len, sizeof(Node *), plan_by_id);
    return has_x && nsinks == nq;
}

static void push_kernel(Sim *s, KernelVec *ks, Kernel k)
{
    vec_push(s->p->arena, ks, k);
    if (s->out && k.kind != K_LEAF && k.kind != K_ALIAS)
        plan_dump_kernel(s, &k);
}

/* The pass with sinks qs (their chains, sources including x): its members,
 * and in todo what it needs computed first; false when there is none.  The
 * chains are scanned into one set of roles, so a later sink's chain stops
 * at an earlier one's values and reads them row by row. */
static bool row_try(Sim *s, Node *x, Node **qs, int nq, NodeVec *mem, NodeVec *todo)
{
    Plan *p = s->p;
    const Node *M = p->mv[x->id]->terms[0].m;
    NodeVec seen = {0}, needs = {0};
    bool ok = true;
    for (int i = 0; ok && i < nq; i++)
        ok = row_scan(s, qs[i], M, &seen);
    int min = seen.data[0]->id;
    ok = ok && row_members(s, x, &seen, mem, &needs, nq);
    vec_push(p->arena, &needs, (Node *)M);
    for (int i = 0; ok && i < needs.len; i++) {
        Node *d = needs.data[i];   /* leaves too: codegen binds them in kernels */
        if (s->role[d->id] != ROLE_NONE)
            ok = false;            /* a source's vector from the chain */
        else if (!s->valid[d->id]) {
            ok = !reads_role(s, d, min);
            vec_push(p->arena, todo, d);
        }
    }
    for (int i = 0; i < seen.len; i++)
        s->role[seen.data[i]->id] = ROLE_NONE;
    return ok;
}

/* A pass's sinks: the first that makes a pass with x, then every other
 * whose chain joins it.  The logistic loss's NAME_hvp: X'*r of the
 * gradient's chain and X'*s of the chain from X*v, which reads the
 * gradient chain's sigmoid row by row, are one read of X for four
 * products (X*w, X*v, X'*r, X'*s), as a hand-written H·v (1.5–1.7× →
 * 1.15–1.25× NAME_grad, where two row passes read X twice).  A sink joins
 * when the pass stays one (nothing it needs first reads the pass's
 * values); at most ROW_TRIES candidates, each tried at most twice, and
 * ROW_SINKS_MAX sinks (each is a load and store of its result per block of
 * rows and lanes). */
enum { ROW_SINKS_MAX = 4 };

bool row_pass(Sim *s, Node *x, KernelVec *ks)
{
    Plan *p = s->p;
    const Mv *xv = p->mv[x->id];
    if (xv->w || xv->nterms != 1 || !xv->terms[0].m || xv->terms[0].trans || p->instmt[x->id] ||
        xv->group >= p->m->ir->nnodes)
        return false;
    Node *cand[ROW_TRIES], *qs[ROW_SINKS_MAX];
    int nc = 0, nq = 0;
    for (int j = xv->group; j >= 0 && nc < ROW_TRIES; j = p->gnext[j]) {
        Node *q = p->nodes[j];
        if (q && !s->valid[j] && row_prod(p, q, xv->terms[0].m, true))
            cand[nc++] = q;
    }
    NodeVec mem = {0}, todo = {0}, pre = {0};
    int first = -1;
    for (int i = 0; i < nc && first < 0; i++) {
        mem.len = todo.len = 0;
        if (row_try(s, x, &cand[i], 1, &mem, &todo))
            first = i, qs[nq++] = cand[i];
    }
    if (first < 0)
        return false;
    for (int i = 0; i < nc && nq < ROW_SINKS_MAX; i++) {
        NodeVec m2 = {0}, t2 = {0};
        qs[nq] = cand[i];
        if (i != first && row_try(s, x, qs, nq + 1, &m2, &t2))
            nq++, mem = m2, todo = t2;
    }
    plan_collect(s, todo.data, todo.len, false, &pre);
    if (pre.len > 1)
        qsort(pre.data, (size_t)pre.len, sizeof(Node *), plan_by_id);
    for (int i = 0; i < pre.len; i++) {   /* computed first, each alone */
        Kernel k = {plan_kernel_kind(p, pre.data[i]), pre.data[i], NULL, 0};
        if (k.kind == K_MATVEC)
            k.members = &pre.data[i], k.nmembers = 1;
        plan_set_valid(s, pre.data[i]);
        push_kernel(s, ks, k);
    }
    for (int i = 0; i < mem.len; i++)
        plan_set_valid(s, mem.data[i]);
    push_kernel(s, ks, (Kernel){K_ROWS, mem.data[0], mem.data, mem.len});
    return true;
}
