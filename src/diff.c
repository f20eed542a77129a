/* diff.c — symbolic reverse mode through structured control flow.
 *
 * The forward program is a Block of constructs (IF/WHILE/FOR) whose results
 * are slots, around a hash-consed DAG.  Reverse mode walks a block's
 * statements backwards.  Between two constructs it is ordinary reverse mode
 * over the DAG: a node's adjoint is complete once every node above it has
 * been processed, and nodes are processed in "time" order (the index of the
 * last construct whose results they read), newest first, and within one
 * time by decreasing id (children are always older than parents).
 *
 * A construct's reverse is emitted as statements of the gradient program:
 *   IF    the same condition (its inputs are intact when the reverse runs)
 *         selects the reverse of the branch that ran;
 *   loop  a reverse FOR over the recorded trip count; each iteration pops the
 *         iteration-start values of the carried slots that the reverse reads
 *         (the forward sweep pushed them), re-runs the body's own constructs
 *         with recording, then runs the body's reverse.  A linear body such as
 *         `b = 2*b` reads no carried value and so stores nothing.
 * Adjoints that must survive a construct's reverse (because they read slots
 * it overwrites) are first stored in slots ("materialised").
 * The adjoint rules are a table indexed by op (Giles 2008; the Matrix
 * Cookbook; docs/design.md) in diff_rules.c; the analyses the sweep reads
 * (activity, uses, branch-only nodes) are in diff_activity.c; what the
 * three share is in diff.h. */
#include "diff.h"

#include <math.h>
#include <string.h>

/* ---- frames and pending adjoints ---- */

static int node_time(Frame *F, const Node *n)
{
    Diff *d = F->d;
    int t = 0;
    for (int i = 0; i < n->nslots; i++) {
        int x = n->slots[i];
        if (x < d->nfwd_slots && d->slot_block[x] == F->blk && d->slot_index[x] > t)
            t = d->slot_index[x];
    }
    return t;
}

/* The adjoint so far of node id (of slot, for slot_adj), NULL if none. */
static Node *adj_of(const IntMap *m, int id)
{
    void **p = intmap_find(m, id);
    return p ? *p : NULL;
}

static bool is_local(Frame *F, const Node *n, int time)
{
    if (F->top || time > 0 || (F->only && intmap_find(F->only, n->id)))
        return true;
    for (int i = 0; i < n->nslots; i++)
        if (n->slots[i] < F->d->nfwd_slots && slotset_has(F->local, n->slots[i]))
            return true;
    return false;
}

static Frame *frame_new(Diff *d, Block *blk, const SlotSet *local, bool top)
{
    Arena *a = d->a;
    Frame *F = arena_alloc(a, sizeof *F);
    F->d = d;
    F->blk = blk;
    F->out = block_new(a);
    F->local = local;
    F->top = top;
    F->pending = intmap_new(a);
    F->heaps = arena_alloc(a, sizeof(IntVec) * (size_t)(blk->n + 1));
    F->slot_adj = intmap_new(a);
    return F;
}


static bool cheap_linear(const Node *n)
{
    return n->op == OP_NEG || n->op == OP_TRANSPOSE ||
           (n->op == OP_MUL && n->args[0]->op == OP_CONST);
}

/* Two adjoint contributions summed.  Masked ones (where's rule: PICK(k, h)
 * is h where k holds, an exact 0 elsewhere) stay masked, so that the rules
 * below them still see the mask: under one mask PICK(k, h1 + h2), under
 * two PICK(k1 or k2, x + y), equal since both terms are 0 outside. */
static Node *sum_adjoints(Ir *ir, Node *x, Node *y)
{
    Node *kx = diff_mask_of(ir, x), *ky = kx ? diff_mask_of(ir, y) : NULL;
    if (!kx || !ky)
        return mk2(ir, OP_ADD, x, y);
    if (x->op == OP_PICK && y->op == OP_PICK && kx == ky)
        return mk2(ir, OP_PICK, kx, mk2(ir, OP_ADD, x->args[1], y->args[1]));
    return mk2(ir, OP_PICK, kx == ky ? kx : mk2(ir, OP_OR, kx, ky), mk2(ir, OP_ADD, x, y));
}

/* Adds g to the adjoint of forward node c, summing a broadcast back to a
 * scalar operand and spreading a scalar adjoint over a full operand. */
void diff_add(Frame *F, Node *c, Node *g)
{
    Diff *d = F->d;
    if (F->capture) {   /* as the rule gives it: no activity, no broadcast undone */
        void **p = intmap_put(F->pending, c->id);
        *p = *p ? mk2(d->ir, OP_ADD, *p, g) : g;
        return;
    }
    if (!diff_active(d, c) || node_is_zero(g))
        return;
    if (!shape_eq(c->shape, g->shape)) {   /* through build: where's masks stay outside */
        if (shape_is_scalar(c->shape))
            g = diff_build(F, OP_SUM, g, NULL);
        else
            g = diff_build(F, OP_MUL, g, mk_fill(d->ir, 1.0, c->shape));
    }
    int t = node_time(F, c);
    if (!is_local(F, c, t) && cheap_linear(c)) {
        /* pass it straight through to its operand rather than hand back an
         * adjoint for `2*b` or `A'`: linear, so contributions can go one by one */
        diff_adjoint_rules[c->op](F, c, g);
        return;
    }
    void **p = intmap_put(F->pending, c->id);
    if (*p) {
        *p = sum_adjoints(d->ir, *p, g);
        return;
    }
    *p = g;
    if (is_local(F, c, t))
        heap_push(d->a, &F->heaps[t], c->id);
    else
        vec_push(d->a, &F->boundary, c);
}

/* ---- the reverse sweep over a block ---- */

static void rev_block(Frame *F);

/* Applies the rule of one node whose adjoint is complete. */
static void process(Frame *F, Node *n)
{
    Node *g = adj_of(F->pending, n->id);
    if (n->op == OP_SLOT)
        *intmap_put(F->slot_adj, n->index) = g;
    else if (n->op == OP_INPUT)
        F->d->input_adj[n->index] = g;
    else if (diff_adjoint_rules[n->op])
        diff_adjoint_rules[n->op](F, n, g);
}

/* Processes the pending nodes of one time, newest first. */
static void drain(Frame *F, int t)
{
    while (F->heaps[t].len)
        process(F, F->d->ir->nodes.data[heap_pop(&F->heaps[t])]);
}

/* ---- statement helpers ---- */

static int new_slot(Diff *d, const char *prefix, const char *name, Shape s)
{
    return ir_slot(d->ir, arena_printf(d->a, "%s%s", prefix, name), s);
}

static const char *slot_name(Diff *d, int slot) { return d->ir->slots.data[slot].name; }


static SlotSet *slot_set(Diff *d) { return slotset_new(d->a); }

static bool reads_any(const Node *n, const SlotSet *set)
{
    for (int i = 0; i < n->nslots; i++)
        if (slotset_has(set, n->slots[i]))
            return true;
    return false;
}


static Node *zero_like(Diff *d, const Node *n) { return mk_zero(d->ir, n->shape); }

/* A readable name for the adjoint of a node: dx for an input or slot x. */
static const char *adj_name(Diff *d, const Node *n)
{
    if (n->op == OP_INPUT)
        return arena_printf(d->a, "d%s", d->m->inputs[n->index].name);
    if (n->op == OP_SLOT)
        return arena_printf(d->a, "d%s", slot_name(d, n->index));
    return "t";
}

/* Moves the pending adjoint of node id into a fresh slot (through set) when
 * it reads a slot in w. */
static void spill(Frame *F, int id, const SlotSet *w, NodeVec *vals, IntVec *slots)
{
    Diff *d = F->d;
    Node *g = adj_of(F->pending, id);
    if (!reads_any(g, w))   /* a bare forward slot counts: the reverse pops it */
        return;
    int slot = ir_slot(d->ir, adj_name(d, d->ir->nodes.data[id]), g->shape);
    vec_push(d->a, vals, g);
    vec_push(d->a, slots, slot);
    Node *v = mk_slot(d->ir, slot);
    *intmap_put(F->pending, id) = v;
}

/* Stores every pending adjoint that reads a slot written by s, so that the
 * reverse of s (which pops and recomputes those slots) cannot change it. */
static void materialize(Frame *F, Stmt *s, int upto)
{
    Diff *d = F->d;
    SlotSet *w = slot_set(d);
    stmt_writes(s, w);
    NodeVec vals = {0};
    IntVec slots = {0};
    for (int t = 0; t < upto; t++)
        for (int i = 0; i < F->heaps[t].len; i++)
            spill(F, F->heaps[t].data[i], w, &vals, &slots);
    for (int i = 0; i < F->boundary.len; i++)
        spill(F, F->boundary.data[i]->id, w, &vals, &slots);
    if (!vals.len)
        return;
    Stmt *set = stmt_new(d->a, S_SET, vals.len);
    for (int k = 0; k < vals.len; k++) {
        set->slots[k] = slots.data[k];
        set->vals[k] = vals.data[k];
    }
    block_push(d->a, F->out, set);
}

/* ---- recording: the forward sweep, storing what the reverse reads ---- */

static Block *record_block(Diff *d, Block *b);

static Stmt *stmt_copy(Diff *d, const Stmt *s)
{
    Stmt *c = arena_alloc(d->a, sizeof *c);
    *c = *s;
    return c;
}

static Stmt *push_of(Diff *d, const IntVec *slots)
{
    Stmt *p = stmt_new(d->a, S_PUSH, slots->len);
    for (int k = 0; k < slots->len; k++)
        p->vals[k] = mk_slot(d->ir, slots->data[k]);
    return p;
}

/* ---- checkpointing: store every k-th iteration start, recompute the rest ---- */

static Node *num(Diff *d, double v) { return mk_const(d->ir, v); }

/* The loop with one more carried value, a counter ck = 0, 1, …, k-1, 0, …
 * that says when an iteration starts a segment (the body is set later). */
static Stmt *record_checkpoints(Diff *d, const Stmt *s)
{
    Ir *ir = d->ir;
    Stmt *c = stmt_new(d->a, s->kind, s->n + 1);
    Stmt keep = *c;
    *c = *s;
    c->slots = keep.slots;      /* every per-slot array has the new n entries */
    c->vals = keep.vals;
    c->next = keep.next;
    c->then_vals = keep.then_vals;
    c->else_vals = keep.else_vals;
    c->n = s->n + 1;
    memcpy(c->slots, s->slots, sizeof(int) * (size_t)s->n);
    memcpy(c->vals, s->vals, sizeof(Node *) * (size_t)s->n);
    memcpy(c->next, s->next, sizeof(Node *) * (size_t)s->n);
    int ck = ir_slot(ir, "since_checkpoint", shape_scalar());
    Node *ck1 = mk2(ir, OP_ADD, mk_slot(ir, ck), num(d, 1));
    c->slots[s->n] = ck;
    c->vals[s->n] = num(d, 0);
    c->next[s->n] = mk2(ir, OP_MUL, ck1, mk2(ir, OP_LT, ck1, num(d, (double)d->m->checkpoint)));
    return c;
}

/* if ck == 0: push every carried value (the counter aside). */
static Stmt *push_checkpoint(Diff *d, const Stmt *c)
{
    Stmt *when = stmt_new(d->a, S_IF, 0);
    when->loc = c->loc;
    when->cond = mk2(d->ir, OP_EQ, mk_slot(d->ir, c->slots[c->n - 1]), num(d, 0));
    when->then_block = block_new(d->a);
    when->else_block = block_new(d->a);
    IntVec all = {0};
    for (int k = 0; k < c->n - 1; k++)
        vec_push(d->a, &all, c->slots[k]);
    block_push(d->a, when->then_block, push_of(d, &all));
    return when;
}

/* SET i = start + j: the forward index of a segment's j-th iteration. */
static Stmt *set_index(Diff *d, int index, Node *start, int j)
{
    Stmt *set = stmt_new(d->a, S_SET, 1);
    set->slots[0] = index;
    set->vals[0] = mk2(d->ir, OP_ADD, start, mk_slot(d->ir, j));
    return set;
}

/* The reverse of loop s in segments of k iterations, last segment first:
 * pop the segment's checkpoint, re-run its iterations forward pushing what
 * the reverse reads, then run the reverse r over them.  The tape holds
 * T/k checkpoints and k iteration states instead of T states. */
static void emit_checkpointed(Frame *F, Stmt *s, Stmt *r, const IntVec *needed)
{
    Diff *d = F->d;
    Ir *ir = d->ir;
    double k = (double)d->m->checkpoint;
    Node *total = r->count;
    int seg = ir_slot(ir, "segment", shape_scalar());
    Node *before = mk2(ir, OP_MUL, mk2(ir, OP_SUB, mk_slot(ir, seg), num(d, 1)), num(d, k));
    Node *len = mk2(ir, OP_MIN, num(d, k), mk2(ir, OP_SUB, total, before));

    Stmt *outer = stmt_new(d->a, S_FOR, r->n);
    outer->loc = s->loc;
    outer->reverse = true;
    outer->index_slot = seg;
    /* ceil(T/k) = floor((T + k - 1/2)/k), robust to rounding for integral T */
    outer->count = total->op == OP_CONST
                       ? num(d, ceil(total->num / k))
                       : mk2(ir, OP_DIV, mk2(ir, OP_ADD, total, num(d, k - 0.5)), num(d, k));
    for (int i = 0; i < r->n; i++) {
        outer->slots[i] = r->slots[i];
        outer->vals[i] = r->vals[i];
        outer->next[i] = r->vals[i] = mk_slot(ir, r->slots[i]);   /* carried through */
    }
    outer->body = block_new(d->a);
    Stmt *pop = stmt_new(d->a, S_POP, s->n);
    memcpy(pop->slots, s->slots, sizeof(int) * (size_t)s->n);
    block_push(d->a, outer->body, pop);

    Stmt *rerun = stmt_new(d->a, S_FOR, s->n);
    rerun->loc = s->loc;
    rerun->count = len;
    rerun->index_slot = ir_slot(ir, "j", shape_scalar());
    rerun->body = block_new(d->a);
    if (s->index_slot >= 0)
        block_push(d->a, rerun->body, set_index(d, s->index_slot, before, rerun->index_slot));
    block_push(d->a, rerun->body, push_of(d, needed));
    for (int i = 0; i < s->body->n; i++)
        block_push(d->a, rerun->body, s->body->stmts[i]);
    for (int i = 0; i < s->n; i++) {
        rerun->slots[i] = s->slots[i];
        rerun->vals[i] = mk_slot(ir, s->slots[i]);
        rerun->next[i] = s->next[i];
    }
    block_push(d->a, outer->body, rerun);

    r->count = len;
    if (s->index_slot >= 0) {
        r->index_slot = ir_slot(ir, "j", shape_scalar());
        Block *body = block_new(d->a);
        block_push(d->a, body, set_index(d, s->index_slot, before, r->index_slot));
        for (int i = 0; i < r->body->n; i++)
            block_push(d->a, body, r->body->stmts[i]);
        r->body = body;
    }
    block_push(d->a, outer->body, r);
    block_push(d->a, F->out, outer);
    d->checkpointed[s->id] = true;
}

/* A construct whose reverse exists runs with recording: a loop pushes the
 * carried values its reverse needs at each iteration start (and a while its
 * trip count after it); an if records inside its branches. */
static void record_stmt(Diff *d, Stmt *s, Block *out)
{
    if (!d->reversed[s->id]) {
        block_push(d->a, out, s);
        return;
    }
    Stmt *c = stmt_copy(d, s);
    if (s->kind == S_IF) {
        c->then_block = record_block(d, s->then_block);
        c->else_block = record_block(d, s->else_block);
        block_push(d->a, out, c);
        return;
    }
    IntVec *needed = &d->needed[s->id];
    if (d->checkpointed[s->id])
        c = record_checkpoints(d, s);
    c->body = block_new(d->a);
    if (d->checkpointed[s->id])
        block_push(d->a, c->body, push_checkpoint(d, c));
    else if (needed->len)
        block_push(d->a, c->body, push_of(d, needed));
    for (int i = 0; i < s->body->n; i++)
        block_push(d->a, c->body, s->body->stmts[i]);
    block_push(d->a, out, c);
    if (s->kind == S_WHILE) {
        c->count_slot = d->count_slot[s->id];
        if (d->count_pushed[s->id]) {
            IntVec count = {0};
            vec_push(d->a, &count, c->count_slot);
            block_push(d->a, out, push_of(d, &count));
        }
    }
}

static Block *record_block(Diff *d, Block *b)
{
    Block *out = block_new(d->a);
    for (int i = 0; i < b->n; i++)
        record_stmt(d, b->stmts[i], out);
    return out;
}

/* The constructs of a loop body that its reverse needs re-run: those with a
 * reverse (they push what it pops) and those whose results it reads. */
static Block *record_live(Diff *d, Block *b, SlotSet *live)
{
    bool *keep = arena_alloc(d->a, (size_t)b->n + 1);
    for (int j = b->n - 1; j >= 0; j--) {
        Stmt *s = b->stmts[j];
        keep[j] = d->reversed[s->id];
        for (int k = 0; k < s->n; k++)
            keep[j] = keep[j] || slotset_has(live, s->slots[k]);
        if (keep[j])
            diff_stmt_reads(s, live);
    }
    Block *out = block_new(d->a);
    for (int j = 0; j < b->n; j++)
        if (keep[j])
            record_stmt(d, b->stmts[j], out);
    return out;
}

/* ---- reverse of constructs ---- */

static bool has_seed(Frame *F, Stmt *s)
{
    for (int k = 0; k < s->n; k++)
        if (adj_of(F->slot_adj, s->slots[k]))
            return true;
    return false;
}

static Node *or_zero(Diff *d, Node *g, const Node *like) { return g ? g : zero_like(d, like); }

/* The adjoint a branch hands back for c: none when c was local to it (its
 * reverse already ran there), even if the other branch hands c back. */
static Node *handed_back(Frame *B, const Node *c)
{
    return is_local(B, c, node_time(B, c)) ? NULL : adj_of(B->pending, c->id);
}

/* if c then A else B: the same condition picks the reverse of the branch that ran. */
static void rev_if(Frame *F, Stmt *s)
{
    Diff *d = F->d;
    Block *blocks[2] = {s->then_block, s->else_block};
    Node **vals[2] = {s->then_vals, s->else_vals};
    SlotSet *no_local = slotset_new(d->a);
    Frame *br[2];
    for (int b = 0; b < 2; b++) {
        br[b] = frame_new(d, blocks[b], no_local, false);
        br[b]->only = diff_branch_only(d, blocks[b], vals[b], s->n);
        br[b]->in_loop = F->in_loop;
        for (int k = 0; k < s->n; k++)
            if (adj_of(F->slot_adj, s->slots[k]))
                diff_add(br[b], vals[b][k], adj_of(F->slot_adj, s->slots[k]));
        rev_block(br[b]);
    }
    NodeVec handed = br[0]->boundary;
    for (int i = 0; i < br[1]->boundary.len; i++)
        if (!handed_back(br[0], br[1]->boundary.data[i]))
            vec_push(d->a, &handed, br[1]->boundary.data[i]);
    if (!handed.len && !br[0]->out->n && !br[1]->out->n)
        return;
    Stmt *r = stmt_new(d->a, S_IF, handed.len);
    r->loc = s->loc;
    r->cond = s->cond;
    r->then_block = br[0]->out;
    r->else_block = br[1]->out;
    for (int u = 0; u < handed.len; u++) {
        Node *c = handed.data[u];
        r->slots[u] = ir_slot(d->ir, adj_name(d, c), c->shape);
        r->then_vals[u] = or_zero(d, handed_back(br[0], c), c);
        r->else_vals[u] = or_zero(d, handed_back(br[1], c), c);
    }
    block_push(d->a, F->out, r);
    d->reversed[s->id] = true;
    for (int u = 0; u < handed.len; u++)
        diff_add(F, handed.data[u], mk_slot(d->ir, r->slots[u]));
}

/* A loop: a reverse FOR over the trip count whose carried slots are the
 * adjoints of the carried values and accumulators for captured values. */
static void rev_loop(Frame *F, Stmt *s)
{
    Diff *d = F->d;
    Ir *ir = d->ir;
    SlotSet *local = slotset_new(d->a);
    for (int k = 0; k < s->n; k++)
        slotset_add(local, s->slots[k]);
    if (s->index_slot >= 0)
        slotset_add(local, s->index_slot);

    Frame *B = frame_new(d, s->body, local, false);
    B->in_loop = true;
    int *adj = arena_alloc(d->a, sizeof(int) * (size_t)(s->n + 1)), nadj = 0;
    for (int k = 0; k < s->n; k++) {
        adj[k] = -1;
        if (!slotset_has(d->slot_active, s->slots[k]))
            continue;
        adj[k] = new_slot(d, "d", slot_name(d, s->slots[k]), ir->slots.data[s->slots[k]].shape);
        nadj++;
        diff_add(B, s->next[k], mk_slot(ir, adj[k]));
    }
    rev_block(B);

    Stmt *r = stmt_new(d->a, S_FOR, nadj + B->boundary.len);
    r->reverse = true;
    r->loc = s->loc;
    r->index_slot = s->index_slot;
    int i = 0;
    for (int k = 0; k < s->n; k++) {
        if (adj[k] < 0)
            continue;
        Node *carried = mk_slot(ir, s->slots[k]);
        r->slots[i] = adj[k];
        r->vals[i] = or_zero(d, adj_of(F->slot_adj, s->slots[k]), carried);
        r->next[i++] = or_zero(d, adj_of(B->slot_adj, s->slots[k]), carried);
    }
    for (int m = 0; m < B->boundary.len; m++, i++) {
        Node *c = B->boundary.data[m];
        r->slots[i] = ir_slot(ir, adj_name(d, c), c->shape);
        r->vals[i] = zero_like(d, c);
        r->next[i] = mk2(ir, OP_ADD, mk_slot(ir, r->slots[i]), adj_of(B->pending, c->id));
    }

    /* the reverse body: restore the iteration's start, re-run its constructs, reverse */
    SlotSet *live = slot_set(d);
    diff_block_reads(B->out, live);
    for (int k = 0; k < r->n; k++)
        diff_node_reads(r->next[k], live);
    Block *rerun = record_live(d, s->body, live);
    diff_block_reads(rerun, live);
    IntVec *needed = &d->needed[s->id];
    for (int k = 0; k < s->n; k++)
        if (slotset_has(live, s->slots[k]))
            vec_push(d->a, needed, s->slots[k]);
    r->body = block_new(d->a);
    if (needed->len) {
        Stmt *pop = stmt_new(d->a, S_POP, needed->len);
        memcpy(pop->slots, needed->data, sizeof(int) * (size_t)needed->len);
        block_push(d->a, r->body, pop);
    }
    for (int j = 0; j < rerun->n; j++)
        block_push(d->a, r->body, rerun->stmts[j]);
    for (int j = 0; j < B->out->n; j++)
        block_push(d->a, r->body, B->out->stmts[j]);

    if (s->kind == S_WHILE) {
        /* a while that runs once keeps its count in a slot; one inside a
         * loop runs again before its reverse, so its counts go on the tape */
        int count = ir_slot(ir, "iterations", shape_scalar());
        d->count_slot[s->id] = count;
        d->count_pushed[s->id] = F->in_loop;
        if (F->in_loop) {
            Stmt *pop = stmt_new(d->a, S_POP, 1);
            pop->slots[0] = count;
            block_push(d->a, F->out, pop);
        }
        r->count = mk_slot(ir, count);
    } else {
        r->count = s->count;
    }
    if (d->m->checkpoint > 0 && needed->len)
        emit_checkpointed(F, s, r, needed);
    else
        block_push(d->a, F->out, r);
    d->reversed[s->id] = true;

    for (int k = 0, j = 0; k < s->n; k++)
        if (adj[k] >= 0)
            diff_add(F, s->vals[k], mk_slot(ir, r->slots[j++]));
    for (int m = 0; m < B->boundary.len; m++)
        diff_add(F, B->boundary.data[m], mk_slot(ir, r->slots[nadj + m]));
}

/* A grad() or hessian() value (gradcall.c): its adjoint gbar reaches every
 * wrt input u as (d2e/du dx) gbar (a hessian: the third derivatives against
 * gbar), computed by statements that run e's gradient program forward over
 * reverse (forward over forward over reverse). */
static void rev_call(Frame *F, Stmt *s)
{
    Diff *d = F->d;
    const GradCall *gc = s->call;
    Node **adj = arena_alloc(d->a, sizeof(Node *) * (size_t)(gc->sub->ninputs + 1));
    Block *b = gradcall_vjp(s, adj_of(F->slot_adj, s->slots[0]), d->wrt_input, adj);
    for (int i = 0; i < b->n; i++)
        block_push(d->a, F->out, b->stmts[i]);
    for (int u = 0; u < gc->sub->ninputs; u++)
        if (adj[u])
            diff_add(F, mk_input(d->ir, u, gc->sub->inputs[u].shape), adj[u]);
}

/* Statements backwards; between constructs, plain reverse mode over the DAG. */
static void rev_block(Frame *F)
{
    for (int j = F->blk->n; j >= 1; j--) {
        drain(F, j);
        Stmt *s = F->blk->stmts[j - 1];
        if (!has_seed(F, s))
            continue;
        materialize(F, s, j);
        if (s->call)
            rev_call(F, s);
        else if (s->kind == S_IF)
            rev_if(F, s);
        else
            rev_loop(F, s);
    }
    drain(F, 0);
}

/* A result of the gradient function: the reverse sweep restores slots, so a
 * value that reads one it writes is kept in a slot of its own first. */
static Node *kept(Diff *d, Block *body, const SlotSet *written, Node *x, const char *name)
{
    if (!reads_any(x, written))
        return x;
    Stmt *set = stmt_new(d->a, S_SET, 1);
    set->slots[0] = ir_slot(d->ir, name, x->shape);
    set->vals[0] = x;
    block_push(d->a, body, set);
    return mk_slot(d->ir, set->slots[0]);
}

/* A Diff of what ir holds so far (its nodes and slots are the forward
 * program's), for ninputs inputs, none of them wrt yet; its caller sizes
 * node_active if it asks which nodes are active (diff_partials, per node
 * of a Hessian, does not). */
static Diff *diff_new(Ir *ir, int ninputs)
{
    Arena *a = ir->arena;
    Diff *d = arena_alloc(a, sizeof *d);
    d->ir = ir;
    d->a = a;
    d->nfwd_nodes = ir->nnodes;
    d->nfwd_slots = ir->slots.len;
    d->slot_active = slotset_new(a);
    d->wrt_input = arena_alloc(a, (size_t)ninputs + 1);
    d->input_adj = arena_alloc(a, sizeof(Node *) * (size_t)(ninputs + 1));
    d->slot_block = arena_alloc(a, sizeof(Block *) * (size_t)(d->nfwd_slots + 1));
    d->slot_index = arena_alloc(a, sizeof(int) * (size_t)(d->nfwd_slots + 1));
    return d;
}

void diff_reverse(Module *m)
{
    Arena *a = m->arena;
    Ir *ir = m->ir;
    Diff *d = diff_new(ir, m->ninputs);
    d->m = m;
    d->node_active = arena_alloc(a, (size_t)d->nfwd_nodes + 1);
    int nc = m->nconstructs + 1;
    d->reversed = arena_alloc(a, (size_t)nc);
    d->needed = arena_alloc(a, sizeof *d->needed * (size_t)nc);
    d->count_slot = arena_alloc(a, sizeof(int) * (size_t)nc);
    d->checkpointed = arena_alloc(a, (size_t)nc);
    d->count_pushed = arena_alloc(a, (size_t)nc);
    for (int k = 0; k < m->nwrt; k++)
        d->wrt_input[m->wrt[k]] = true;
    diff_compute_activity(d);
    diff_index_slots(d, m->fwd.body);
    Counts counts = {.uses = arena_alloc(a, sizeof(int) * (size_t)d->nfwd_nodes),
                     .seen = arena_alloc(a, (size_t)d->nfwd_nodes), .a = a, .stack = &d->stack};
    diff_block_roots(m->fwd.body, diff_count_uses, &counts);
    diff_count_uses(m->fwd.value, &counts);
    d->uses = counts.uses;

    Frame *F = frame_new(d, m->fwd.body, NULL, true);
    Node *out = m->fwd.value;
    diff_add(F, out, shape_is_scalar(out->shape) ? mk_const(ir, 1.0) : mk_cotan(ir, out->shape));
    rev_block(F);

    Node **grads = arena_alloc(a, sizeof(Node *) * (size_t)(m->nwrt + 1));
    for (int k = 0; k < m->nwrt; k++) {
        Node *g = d->input_adj[m->wrt[k]];
        grads[k] = g ? g : mk_zero(ir, m->inputs[m->wrt[k]].shape);
    }
    Block *body = record_block(d, m->fwd.body);
    Node *value = out;
    SlotSet *written = slot_set(d);
    block_writes(F->out, written);
    value = kept(d, body, written, out, m->output_name ? m->output_name : "value");
    Node **aux = arena_alloc(a, sizeof(Node *) * (size_t)(m->naux + 1));
    for (int k = 0; k < m->naux; k++)   /* auxiliary outputs: values only (spec §8) */
        aux[k] = kept(d, body, written, m->fwd.aux[k], m->aux_names[k]);
    for (int j = 0; j < F->out->n; j++)
        block_push(a, body, F->out->stmts[j]);
    m->grad = (Func){.body = body, .value = value, .grads = grads, .aux = aux};
}

/* ---- reverse mode over the DAG alone, for grad()/hessian() in programs (hessian.c) ---- */

/* slots are constants here (the caller checks): none is active */
static Diff *dag_diff(Ir *ir, int ninputs)
{
    Diff *d = diff_new(ir, ninputs);
    d->keep_detach = true;
    return d;
}

Node *diff_dag_grad(Ir *ir, Node *e, int input, Shape xshape, int ninputs)
{
    Diff *d = dag_diff(ir, ninputs);
    d->node_active = arena_alloc(ir->arena, (size_t)d->nfwd_nodes + 1);
    memset(d->node_active, -1, (size_t)d->nfwd_nodes);
    d->wrt_input[input] = true;
    Frame *F = frame_new(d, block_new(ir->arena), NULL, true);
    diff_add(F, e, mk_const(ir, 1.0));
    drain(F, 0);
    return d->input_adj[input] ? d->input_adj[input] : mk_zero(ir, xshape);
}

bool diff_partials(Ir *ir, Node *n, Node *seed, Node *parts[2])
{
    parts[0] = parts[1] = NULL;
    if (!diff_adjoint_rules[n->op])
        return false;
    Diff *d = dag_diff(ir, 0);
    Frame *F = frame_new(d, block_new(ir->arena), NULL, true);
    F->capture = true;
    diff_adjoint_rules[n->op](F, n, seed);
    for (int i = 0; i < n->nargs; i++)
        if (i == 0 || n->args[1] != n->args[0])
            parts[i] = adj_of(F->pending, n->args[i]->id);
    return true;
}

SlotSet *diff_active_slots(Ir *ir, Block *body, int input, int ninputs)
{
    Diff *d = dag_diff(ir, ninputs);
    d->node_active = arena_alloc(ir->arena, (size_t)d->nfwd_nodes + 1);
    d->wrt_input[input] = true;
    do
        memset(d->node_active, -1, (size_t)d->nfwd_nodes);
    while (diff_mark_block(d, body));
    return d->slot_active;
}
