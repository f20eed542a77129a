/* diff_activity.c — what reverse mode must visit, decided before the sweep.
 *
 * Walking a statement's roots, activity (does a node or slot depend on a wrt
 * input; a loop can activate its own carried slot, so to a fixed point), use
 * counts over the whole forward program, and the nodes an if branch alone
 * uses (whose reverse can run inside the branch's reverse).  Split from
 * diff.c: these are analyses of the forward program, the sweep only reads
 * their results (diff.h). */
#include "diff.h"

#include <string.h>

/* ---- walking statements ---- */

/* Calls visit on every node a statement refers to directly (values,
 * conditions, counts), nested blocks included. */
static void nodes_roots(Node *const *v, int n, RootVisit *visit, void *ctx)
{
    for (int k = 0; k < n; k++)
        visit(v[k], ctx);
}

static void stmt_roots(const Stmt *s, RootVisit *visit, void *ctx)
{
    if (s->kind == S_IF) {
        nodes_roots(s->then_vals, s->n, visit, ctx);
        nodes_roots(s->else_vals, s->n, visit, ctx);
    } else if (s->kind != S_POP) {
        nodes_roots(s->vals, s->n, visit, ctx);
    }
    if (s->kind == S_WHILE || s->kind == S_FOR)
        nodes_roots(s->next, s->n, visit, ctx);
    if (s->cond)
        visit(s->cond, ctx);
    if (s->count)
        visit(s->count, ctx);
    diff_block_roots(s->then_block, visit, ctx);
    diff_block_roots(s->else_block, visit, ctx);
    diff_block_roots(s->body, visit, ctx);
}

void diff_block_roots(const Block *b, RootVisit *visit, void *ctx)
{
    for (int i = 0; b && i < b->n; i++)
        stmt_roots(b->stmts[i], visit, ctx);
}

/* Marks every slot n reads (a statement-root visitor). */
void diff_node_reads(const Node *n, void *set)
{
    for (int i = 0; i < n->nslots; i++)
        slotset_add(set, n->slots[i]);
}

void diff_stmt_reads(const Stmt *s, SlotSet *set) { stmt_roots(s, diff_node_reads, set); }
void diff_block_reads(const Block *b, SlotSet *set) { diff_block_roots(b, diff_node_reads, set); }

/* ---- activity: does a node depend on a wrt input? ---- */

bool diff_active(Diff *d, Node *n)
{
    if (n->id >= d->nfwd_nodes)
        return false;
    signed char *memo = d->node_active;
    if (memo[n->id] >= 0)
        return memo[n->id];
    /* operands first, with an explicit stack (the DAG is as deep as the
     * program); an operand found active settles its parent, as || would */
    NodeVec *st = &d->stack;
    int base = st->len;
    vec_push(d->a, st, n);
    while (st->len > base) {
        Node *x = st->data[st->len - 1];
        if (memo[x->id] >= 0) {
            st->len--;
            continue;
        }
        bool act = false, wait = false;
        switch (x->op) {
        case OP_INPUT: act = d->wrt_input[x->index]; break;
        case OP_SLOT: act = slotset_has(d->slot_active, x->index); break;
        case OP_DETACH: act = false; break;
        default:
            if (!diff_adjoint_rules[x->op])   /* no rule: a zero derivative (sign, floor, comparisons) */
                break;
            for (int i = 0; i < x->nargs && !act && !wait; i++) {
                Node *c = x->args[i];
                if (c->id >= d->nfwd_nodes)
                    continue;
                if (memo[c->id] < 0) {
                    vec_push(d->a, st, c);
                    wait = true;
                }
                act = memo[c->id] > 0;
            }
        }
        if (wait)
            continue;
        memo[x->id] = act;
        st->len--;
    }
    return memo[n->id];
}

static bool any_active(Diff *d, Node **vals, int n)
{
    for (int i = 0; i < n; i++)
        if (diff_active(d, vals[i]))
            return true;
    return false;
}

/* Marks slots active until nothing changes (a loop can activate its own carried slot). */
static bool mark_slot(Diff *d, int slot, bool act)
{
    if (!act || slotset_has(d->slot_active, slot))
        return false;
    slotset_add(d->slot_active, slot);
    return true;
}

static bool mark_stmt(Diff *d, Stmt *s)
{
    if (s->call)   /* a grad() value depends on x and on whatever e does */
        return mark_slot(d, s->slots[0], d->wrt_input[s->call->input] || diff_active(d, s->call->e));
    bool changed = false;
    for (int k = 0; k < s->n; k++) {
        bool act = s->kind == S_IF ? diff_active(d, s->then_vals[k]) || diff_active(d, s->else_vals[k])
                                   : diff_active(d, s->vals[k]) || diff_active(d, s->next[k]);
        changed |= mark_slot(d, s->slots[k], act);
    }
    if (s->kind == S_IF)
        return diff_mark_block(d, s->then_block) | diff_mark_block(d, s->else_block) | changed;
    return diff_mark_block(d, s->body) | changed;
}

bool diff_mark_block(Diff *d, Block *b)
{
    bool changed = false;
    for (int i = 0; i < b->n; i++)
        changed |= mark_stmt(d, b->stmts[i]);
    return changed;
}

/* slot_block and slot_index for the statements of b and nested blocks. */
void diff_index_slots(Diff *d, const Block *b)
{
    for (int j = 0; b && j < b->n; j++) {
        const Stmt *s = b->stmts[j];
        for (int k = 0; k < s->n; k++) {
            d->slot_block[s->slots[k]] = b;
            d->slot_index[s->slots[k]] = j + 1;
        }
        if (s->call)   /* its blocks re-run earlier statements: their slots stay theirs */
            continue;
        diff_index_slots(d, s->then_block);
        diff_index_slots(d, s->else_block);
        diff_index_slots(d, s->body);
    }
}

void diff_compute_activity(Diff *d)
{
    do
        memset(d->node_active, -1, (size_t)d->nfwd_nodes);
    while (diff_mark_block(d, d->m->fwd.body));
}

/* ---- uses: how often the program refers to each node ---- */

void diff_count_uses(const Node *n, void *ctx)
{
    Counts *c = ctx;
    NodeVec *st = c->stack;
    vec_push(c->a, st, (Node *)n);
    while (st->len) {
        const Node *x = st->data[--st->len];
        c->uses[x->id]++;
        if (c->seen[x->id])
            continue;
        c->seen[x->id] = true;
        for (int i = 0; i < x->nargs; i++)
            vec_push(c->a, st, x->args[i]);
    }
}

/* The nodes an if branch alone uses: every reference to them comes from the
 * branch's own statements and values, or from nodes that are themselves the
 * branch's alone (decided parents first: parents have larger ids).  Their
 * reverse can run inside the branch's reverse.  Leaves never qualify: their
 * adjoints belong to the enclosing scope. */
typedef struct Support {
    Arena *a;
    IntMap *count;   /* node id → references from the branch (as intptr_t) */
    IntVec heap;     /* ids with a count, largest first */
} Support;

static void support(const Node *n, void *ctx)
{
    Support *s = ctx;
    void **c = intmap_put(s->count, n->id);
    if (!*c)
        heap_push(s->a, &s->heap, n->id);
    *c = (void *)((intptr_t)*c + 1);
}

IntMap *diff_branch_only(Diff *d, const Block *b, Node *const *vals, int n)
{
    IntMap *only = intmap_new(d->a);
    Support sup = {.a = d->a, .count = intmap_new(d->a)};
    diff_block_roots(b, support, &sup);
    nodes_roots(vals, n, support, &sup);
    /* only what the branch reaches, by decreasing id: a cost in the branch's
     * size, not the program's */
    while (sup.heap.len) {
        Node *x = d->ir->nodes.data[heap_pop(&sup.heap)];
        if ((intptr_t)*intmap_find(sup.count, x->id) != d->uses[x->id] ||
            op_info[x->op].kind == OK_L)
            continue;
        *intmap_put(only, x->id) = x;
        for (int i = 0; i < x->nargs; i++)
            support(x->args[i], &sup);
    }
    return only;
}
