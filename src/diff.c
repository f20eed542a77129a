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
 * Cookbook); see docs/design.md. */
#include "gradc.h"

#include <math.h>
#include <string.h>

typedef VEC(int) IntVec;
typedef VEC(Node *) NodeVec;

typedef struct Diff {
    Module *m;
    Ir *ir;
    Arena *a;
    int nfwd_nodes, nfwd_slots;   /* what existed before differentiation */
    SlotSet *slot_active;
    signed char *node_active;     /* memo: -1 unknown */
    bool *wrt_input;
    Node **input_adj;
    int *uses;                    /* references to a node in the whole forward program */
    /* per forward construct id */
    bool *reversed;
    IntVec *needed;               /* carried slots pushed each iteration */
    int *count_slot;              /* WHILE trip count */
    bool *count_pushed;           /* … kept on the tape (the while is inside a loop) */
    bool *checkpointed;           /* loops that store only every k-th state */
    bool keep_detach;             /* the adjoints will be differentiated again (grad() in a program) */
    NodeVec stack;                /* scratch of the DAG walks */
    /* per forward slot: the block of the statement that produces it, and
     * 1 + its index there (a node's "time" in that block's frame) */
    const Block **slot_block;
    int *slot_index;
} Diff;

typedef struct Frame {
    Diff *d;
    Block *blk;          /* the forward block being reversed */
    Block *out;          /* its reverse, as statements */
    const SlotSet *local;/* slots that make a time-0 node local (loop: carried, index) */
    const IntMap *only;  /* if branch: ids of nodes used nowhere else, reversed inside it */
    bool top;
    bool in_loop;        /* inside a loop body: constructs may run many times */
    IntMap *pending;     /* node id → adjoint so far */
    IntVec *heaps;       /* per time: max-heap of node ids */
    NodeVec boundary;    /* nodes of the enclosing scope with adjoints to hand back */
    IntMap *slot_adj;    /* forward slot → adjoint reaching that SLOT leaf */
    bool capture;        /* diff_partials: add() records each operand's raw adjoint */
} Frame;

/* ---- walking statements ---- */

/* Calls visit on every node a statement refers to directly (values,
 * conditions, counts), nested blocks included. */
typedef void RootVisit(const Node *n, void *ctx);

static void block_roots(const Block *b, RootVisit *visit, void *ctx);

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
    block_roots(s->then_block, visit, ctx);
    block_roots(s->else_block, visit, ctx);
    block_roots(s->body, visit, ctx);
}

static void block_roots(const Block *b, RootVisit *visit, void *ctx)
{
    for (int i = 0; b && i < b->n; i++)
        stmt_roots(b->stmts[i], visit, ctx);
}

/* Marks every slot n reads (a statement-root visitor). */
static void node_reads(const Node *n, void *set)
{
    for (int i = 0; i < n->nslots; i++)
        slotset_add(set, n->slots[i]);
}

static void stmt_reads(const Stmt *s, SlotSet *set) { stmt_roots(s, node_reads, set); }
static void block_reads(const Block *b, SlotSet *set) { block_roots(b, node_reads, set); }

/* ---- activity: does a node depend on a wrt input? ---- */

typedef void AdjointRule(Frame *F, Node *n, Node *g);
static AdjointRule *const adjoint_rules[OP_COUNT];

static bool active(Diff *d, Node *n)
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
            if (!adjoint_rules[x->op])   /* no rule: a zero derivative (sign, floor, comparisons) */
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
        if (active(d, vals[i]))
            return true;
    return false;
}

/* Marks slots active until nothing changes (a loop can activate its own carried slot). */
static bool mark_block(Diff *d, Block *b);

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
        return mark_slot(d, s->slots[0], d->wrt_input[s->call->input] || active(d, s->call->e));
    bool changed = false;
    for (int k = 0; k < s->n; k++) {
        bool act = s->kind == S_IF ? active(d, s->then_vals[k]) || active(d, s->else_vals[k])
                                   : active(d, s->vals[k]) || active(d, s->next[k]);
        changed |= mark_slot(d, s->slots[k], act);
    }
    if (s->kind == S_IF)
        return mark_block(d, s->then_block) | mark_block(d, s->else_block) | changed;
    return mark_block(d, s->body) | changed;
}

static bool mark_block(Diff *d, Block *b)
{
    bool changed = false;
    for (int i = 0; i < b->n; i++)
        changed |= mark_stmt(d, b->stmts[i]);
    return changed;
}

/* slot_block and slot_index for the statements of b and nested blocks. */
static void index_slots(Diff *d, const Block *b)
{
    for (int j = 0; b && j < b->n; j++) {
        const Stmt *s = b->stmts[j];
        for (int k = 0; k < s->n; k++) {
            d->slot_block[s->slots[k]] = b;
            d->slot_index[s->slots[k]] = j + 1;
        }
        if (s->call)   /* its blocks re-run earlier statements: their slots stay theirs */
            continue;
        index_slots(d, s->then_block);
        index_slots(d, s->else_block);
        index_slots(d, s->body);
    }
}

static void compute_activity(Diff *d)
{
    do
        memset(d->node_active, -1, (size_t)d->nfwd_nodes);
    while (mark_block(d, d->m->fwd.body));
}

/* ---- uses: how often the program refers to each node ---- */

/* Counting references: uses[n] counts statement references plus edges from
 * the nodes they reach; seen marks what was reached. */
typedef struct Counts {
    int *uses;
    bool *seen;
    Arena *a;
    NodeVec *stack;
} Counts;

static void count_uses(const Node *n, void *ctx)
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
static void heap_push(Arena *a, IntVec *h, int id);
static int heap_pop(IntVec *h);

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

static IntMap *branch_only(Diff *d, const Block *b, Node *const *vals, int n)
{
    IntMap *only = intmap_new(d->a);
    Support sup = {.a = d->a, .count = intmap_new(d->a)};
    block_roots(b, support, &sup);
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

static void heap_push(Arena *a, IntVec *h, int id)
{
    vec_push(a, h, id);
    for (int i = h->len - 1; i > 0 && h->data[(i - 1) / 2] < h->data[i]; i = (i - 1) / 2) {
        int p = (i - 1) / 2, t = h->data[p];
        h->data[p] = h->data[i];
        h->data[i] = t;
    }
}

static int heap_pop(IntVec *h)
{
    int top = h->data[0];
    h->data[0] = h->data[--h->len];
    for (int i = 0;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->len && h->data[l] > h->data[m])
            m = l;
        if (r < h->len && h->data[r] > h->data[m])
            m = r;
        if (m == i)
            break;
        int t = h->data[m];
        h->data[m] = h->data[i];
        h->data[i] = t;
        i = m;
    }
    return top;
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
static Node *mask_of(Ir *ir, Node *g);
static Node *sum_adjoints(Ir *ir, Node *x, Node *y)
{
    Node *kx = mask_of(ir, x), *ky = kx ? mask_of(ir, y) : NULL;
    if (!kx || !ky)
        return mk2(ir, OP_ADD, x, y);
    if (x->op == OP_PICK && y->op == OP_PICK && kx == ky)
        return mk2(ir, OP_PICK, kx, mk2(ir, OP_ADD, x->args[1], y->args[1]));
    return mk2(ir, OP_PICK, kx == ky ? kx : mk2(ir, OP_OR, kx, ky), mk2(ir, OP_ADD, x, y));
}

static Node *build(Frame *F, Op op, Node *x, Node *y);

/* Adds g to the adjoint of forward node c, summing a broadcast back to a
 * scalar operand and spreading a scalar adjoint over a full operand. */
static void add(Frame *F, Node *c, Node *g)
{
    Diff *d = F->d;
    if (F->capture) {   /* as the rule gives it: no activity, no broadcast undone */
        void **p = intmap_put(F->pending, c->id);
        *p = *p ? mk2(d->ir, OP_ADD, *p, g) : g;
        return;
    }
    if (!active(d, c) || node_is_zero(g))
        return;
    if (!shape_eq(c->shape, g->shape)) {   /* through build: where's masks stay outside */
        if (shape_is_scalar(c->shape))
            g = build(F, OP_SUM, g, NULL);
        else
            g = build(F, OP_MUL, g, mk_fill(d->ir, 1.0, c->shape));
    }
    int t = node_time(F, c);
    if (!is_local(F, c, t) && cheap_linear(c)) {
        /* pass it straight through to its operand rather than hand back an
         * adjoint for `2*b` or `A'`: linear, so contributions can go one by one */
        adjoint_rules[c->op](F, c, g);
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

/* ---- the adjoint rules: g is the adjoint of n; each adds to n's operands ---- */

#define IR (F->d->ir)
#define A (n->args[0])
#define B (n->args[1])
/* The gradient program's adjoint expressions are not differentiated again
 * unless a grad() value inside a program is (Diff.keep_detach) or --hessian
 * pushes tangents through them (Module.keep_detach): only then does
 * detach(e) stay a constant in them; otherwise it is just the value e. */
static Node *val_of(const Frame *F, Node *x)
{
    return x->op == OP_DETACH && !F->d->keep_detach && !F->d->m->keep_detach ? x->args[0] : x;
}
#define val(x) val_of(F, x)
static Node *K(Frame *F, double v) { return mk_const(IR, v); }

/* The side of a where that was not taken contributes an exact 0 to the
 * gradient, even where its own derivative is Inf or NaN (spec §8): its
 * adjoint is masked, PICK(k, h), and a derivative factor d is applied
 * inside the mask, PICK(k, h .* d), never as PICK(k, h) .* d, where 0 * Inf
 * = NaN.  So the mask is re-applied after every step of the chain rule
 * through elementwise ops (JAX's "double where", made automatic;
 * docs/design.md).  Nested masks are peeled with a loop (a chain of wheres
 * nests them as deep as the program). */
static bool finite_const(const Node *n)
{
    return (n->op == OP_CONST || n->op == OP_FILL) && isfinite(n->num);
}
/* A masked adjoint reduced to a scalar or along a dimension (a side of the
 * where that was broadcast): sum(PICK(k, h)) or sum(PICK(k, h), d), times
 * constants, negated; that sum, else NULL. */
static Node *summed_mask(Node *g)
{
    while (g->op == OP_NEG || (g->op == OP_MUL && finite_const(g->args[0])))
        g = g->args[g->op == OP_MUL];
    return (g->op == OP_SUM || g->op == OP_SUMD) && g->args[0]->op == OP_PICK ? g : NULL;
}
/* PICK(k, h), or PICK(k, h) expanded (BCAST) */
static bool is_pick(const Node *g)
{
    return g->op == OP_PICK || (g->op == OP_BCAST && g->args[0]->op == OP_PICK);
}
static bool is_masked(Node *g) { return is_pick(g) || summed_mask(g); }
/* The mask of a masked adjoint, else NULL.  A sum is masked by "some entry
 * of it was taken", the same sum of PICK(k, 1) > 0, built only where it is
 * needed (a derivative factor, or a sum with another masked adjoint). */
static Node *mask_of(Ir *ir, Node *g)
{
    if (is_pick(g))
        return g->op == OP_PICK ? g->args[0] : g->args[0]->args[0];
    Node *s = summed_mask(g);
    if (!s)
        return NULL;
    Node *k = s->args[0]->args[0], *ones = mk2(ir, OP_PICK, k, mk_const(ir, 1));
    if (shape_is_scalar(k->shape))
        return k;
    Node *taken = s->op == OP_SUM ? mk1(ir, OP_SUM, ones) : mk_along(ir, OP_SUMD, ones, s->index);
    return mk2(ir, OP_GT, taken, mk_const(ir, 0));
}
static Node *masked(Frame *F, Op op, Node *g, Node *d)
{
    NodeVec ks = {0};
    if (!is_pick(g))
        return mk2(IR, OP_PICK, mask_of(IR, g), mk2(IR, op, g, d));
    /* PICK(k, h) expanded is PICK(k, h expanded): h meets d at d's shape */
    for (; is_pick(g); g = g->args[1]) {
        if (g->op == OP_BCAST)
            g = g->args[0];
        vec_push(F->d->a, &ks, g->args[0]);
    }
    Node *r = op == OP_NEG ? mk1(IR, OP_NEG, g) : mk2(IR, op, g, d);
    for (int i = ks.len - 1; i >= 0; i--)
        r = mk2(IR, OP_PICK, ks.data[i], r);
    return r;
}

/* A where whose condition is a scalar chose a whole value: its mask stays
 * outside every op the adjoint then goes through that is linear in it (a
 * product with a NaN matrix, a solve on singular factors, a transpose):
 * PICK(k, f(h)), not f(PICK(k, h)).  zero_in: op is 0 where its operand i
 * is 0, whatever the other operand. */
static bool zero_in(Op op, int i)
{
    switch (op) {
    case OP_MUL: case OP_MATMUL: case OP_TRANSPOSE: case OP_NEG: case OP_SUM: case OP_TRIL:
    case OP_DIAGM: case OP_DIAGV: case OP_KRON: case OP_FLATTEN:
        return true;
    case OP_DIV: case OP_DIVSAFE: return i == 0;
    case OP_SOLVE: case OP_SOLVET: return i == 1;
    default: return false;
    }
}
/* The scalar mask of x = PICK(k, h), or of x = PICK(k, h) expanded (the
 * simplifier keeps BCAST outermost), else NULL; unmask gives h (expanded). */
static Node *whole_mask(const Node *x)
{
    const Node *p = x->op == OP_BCAST ? x->args[0] : x;
    return p->op == OP_PICK && shape_is_scalar(p->args[0]->shape) ? p->args[0] : NULL;
}
static Node *unmask(Frame *F, Node *x)
{
    return x->op == OP_BCAST ? mk_bcast(IR, x->args[0]->args[1], x->shape) : x->args[1];
}
static Node *peel(Frame *F, Node *x, NodeVec *ks)
{
    for (Node *k; (k = whole_mask(x)); x = unmask(F, x))
        vec_push(F->d->a, ks, k);
    return x;
}

/* op(x) or op(x, y) in an adjoint rule, keeping where's masks outside
 * (above): whole-value masks through linear ops (through + and - when both
 * sides have the same ones), elementwise masks through *, / and -. */
static Node *build(Frame *F, Op op, Node *x, Node *y)
{
    NodeVec ks = {0};
    x = val(x);
    y = y ? val(y) : NULL;
    if (y && (op == OP_ADD || op == OP_SUB)) {
        for (Node *k; (k = whole_mask(x)) && k == whole_mask(y); x = unmask(F, x), y = unmask(F, y))
            vec_push(F->d->a, &ks, k);
    } else {
        if (zero_in(op, 0))
            x = peel(F, x, &ks);
        if (y && zero_in(op, 1))
            y = peel(F, y, &ks);
    }
    Node *r;
    if (op == OP_MUL && ((summed_mask(x) && finite_const(y)) || (summed_mask(y) && finite_const(x))))
        r = mk2(IR, op, x, y);   /* 0 times it is 0: no mask needed */
    else if ((op == OP_MUL || op == OP_DIV || op == OP_DIVSAFE) && is_masked(x))
        r = masked(F, op, x, y);
    else if (op == OP_MUL && is_masked(y))
        r = masked(F, op, y, x);
    else if (op == OP_NEG && is_pick(x))
        r = masked(F, op, x, NULL);
    else
        r = y ? mk2(IR, op, x, y) : mk1(IR, op, x);
    for (int i = ks.len - 1; i >= 0; i--)
        r = mk2(IR, OP_PICK, ks.data[i], r);
    return r;
}
static Node *neg(Frame *F, Node *x) { return build(F, OP_NEG, x, NULL); }
/* a' \ b (b an adjoint: whole-value masks outside) */
static Node *solve_t(Frame *F, Node *a, Node *b)
{
    NodeVec ks = {0};
    Node *r = mk_solve(IR, a, peel(F, val(b), &ks), true);
    for (int i = ks.len - 1; i >= 0; i--)
        r = mk2(IR, OP_PICK, ks.data[i], r);
    return r;
}
static Node *tr(Frame *F, Node *x) { return build(F, OP_TRANSPOSE, x, NULL); }
static Node *op1(Frame *F, Op op, Node *x) { return build(F, op, x, NULL); }
static Node *op2(Frame *F, Op op, Node *x, Node *y) { return build(F, op, x, y); }
static Node *mul(Frame *F, Node *x, Node *y) { return build(F, OP_MUL, x, y); }
static Node *half_tie(Frame *F, Op strict, Node *x, Node *y)
{
    /* max/min: the winner takes g; a tie splits it, as PyTorch's maximum does */
    return op2(F, OP_ADD, op2(F, strict, x, y), mul(F, K(F, 0.5), op2(F, OP_EQ, x, y)));
}

static void adj_add(Frame *F, Node *n, Node *g) { add(F, A, g); add(F, B, g); }
static void adj_sub(Frame *F, Node *n, Node *g) { add(F, A, g); add(F, B, neg(F, g)); }
static void adj_mul(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, B)); add(F, B, mul(F, g, A)); }
static void adj_div(Frame *F, Node *n, Node *g)
{
    add(F, A, op2(F, OP_DIV, g, B));
    add(F, B, neg(F, op2(F, OP_DIV, mul(F, g, A), mul(F, B, B))));
}
static void adj_divsafe(Frame *F, Node *n, Node *g)
{
    add(F, A, op2(F, OP_DIVSAFE, g, B));
    add(F, B, neg(F, op2(F, OP_DIVSAFE, mul(F, g, A), mul(F, B, B))));
}
static void adj_pow(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, g, mul(F, B, op2(F, OP_POW, A, op2(F, OP_SUB, B, K(F, 1))))));
    add(F, B, mul(F, g, mul(F, n, op1(F, OP_LOG, A))));
}
static void adj_max(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, g, half_tie(F, OP_GT, A, B)));
    add(F, B, mul(F, g, half_tie(F, OP_LT, A, B)));
}
static void adj_min(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, g, half_tie(F, OP_LT, A, B)));
    add(F, B, mul(F, g, half_tie(F, OP_GT, A, B)));
}
static void adj_neg(Frame *F, Node *n, Node *g) { add(F, A, neg(F, g)); }
static void adj_exp(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, n)); }
static void adj_log(Frame *F, Node *n, Node *g) { add(F, A, op2(F, OP_DIV, g, A)); }
static void adj_sin(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op1(F, OP_COS, A))); }
static void adj_cos(Frame *F, Node *n, Node *g) { add(F, A, neg(F, mul(F, g, op1(F, OP_SIN, A)))); }
static void adj_tan(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, g, op2(F, OP_ADD, K(F, 1), mul(F, n, n))));
}
static void adj_tanh(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, g, op2(F, OP_SUB, K(F, 1), mul(F, n, n))));
}
static void adj_sqrt(Frame *F, Node *n, Node *g) { add(F, A, op2(F, OP_DIV, g, mul(F, K(F, 2), n))); }
/* abs'(0) = 0 and relu'(0) = 0, as PyTorch */
static void adj_abs(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op1(F, OP_SIGN, A))); }
static void adj_relu(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op2(F, OP_GT, A, K(F, 0)))); }
static void adj_log1p(Frame *F, Node *n, Node *g) { add(F, A, op2(F, OP_DIV, g, op2(F, OP_ADD, K(F, 1), A))); }
static void adj_sigmoid(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, g, mul(F, n, op2(F, OP_SUB, K(F, 1), n))));
}
static void adj_softplus(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op1(F, OP_SIGMOID, A))); }
static void adj_expm1(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op1(F, OP_EXP, A))); }
static Node *one_minus_sq(Frame *F, Node *x) { return op2(F, OP_SUB, K(F, 1), mul(F, x, x)); }
static void adj_atan(Frame *F, Node *n, Node *g)
{
    add(F, A, op2(F, OP_DIV, g, op2(F, OP_ADD, K(F, 1), mul(F, A, A))));
}
static void adj_asin(Frame *F, Node *n, Node *g) { add(F, A, op2(F, OP_DIV, g, op1(F, OP_SQRT, one_minus_sq(F, A)))); }
static void adj_acos(Frame *F, Node *n, Node *g)
{
    add(F, A, neg(F, op2(F, OP_DIV, g, op1(F, OP_SQRT, one_minus_sq(F, A)))));
}
static void adj_sinh(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op1(F, OP_COSH, A))); }
static void adj_cosh(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op1(F, OP_SINH, A))); }
/* erf'(x) = 2/sqrt(pi) exp(-x^2) = -erfc'(x) */
static Node *erf_slope(Frame *F, Node *n, Node *g)
{
    return mul(F, mul(F, K(F, 2 / sqrt(M_PI)), g), op1(F, OP_EXP, neg(F, mul(F, A, A))));
}
static void adj_erf(Frame *F, Node *n, Node *g) { add(F, A, erf_slope(F, n, g)); }
static void adj_erfc(Frame *F, Node *n, Node *g) { add(F, A, neg(F, erf_slope(F, n, g))); }
static void adj_lgamma(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op1(F, OP_DIGAMMA, A))); }
/* digamma' = trigamma = polygamma(1, x); polygamma(k, x)' = polygamma(k + 1, x) */
static void adj_digamma(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op2(F, OP_POLYGAMMA, K(F, 1), A))); }
static void adj_polygamma(Frame *F, Node *n, Node *g)
{
    add(F, B, mul(F, g, op2(F, OP_POLYGAMMA, op2(F, OP_ADD, A, K(F, 1)), B)));
}
/* logsigmoid'(x) = 1 - sigmoid(x) = sigmoid(-x), which cannot overflow */
static void adj_logsigmoid(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, op1(F, OP_SIGMOID, neg(F, A)))); }
/* clamp(x, lo, hi) = CLAMPHI(CLAMPLO(x, lo), hi): x gets g where lo <= x <= hi,
 * lo where x < lo, hi where the clamped value exceeds hi (PyTorch's clamp;
 * with lo > hi the value is hi and hi takes g) */
static void adj_clamplo(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, g, op2(F, OP_GE, A, B)));
    add(F, B, mul(F, g, op2(F, OP_LT, A, B)));
}
static void adj_clamphi(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, g, op2(F, OP_LE, A, B)));
    add(F, B, mul(F, g, op2(F, OP_GT, A, B)));
}
/* C = A*B: dA += dC*B', dB += A'*dC (Giles 2008, §2.3.2) */
static void adj_matmul(Frame *F, Node *n, Node *g)
{
    add(F, A, op2(F, OP_MATMUL, g, tr(F, B)));
    add(F, B, op2(F, OP_MATMUL, tr(F, A), g));
}
static void adj_transpose(Frame *F, Node *n, Node *g) { add(F, A, tr(F, g)); }
static void adj_sum(Frame *F, Node *n, Node *g) { add(F, A, g); }
/* x/||x||, and 0 at x = 0 as PyTorch */
static void adj_norm(Frame *F, Node *n, Node *g) { add(F, A, mul(F, op2(F, OP_DIVSAFE, g, n), A)); }
static void adj_trace(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, mk_eye(IR, A->shape.rows))); }
/* d det(A) = det(A) inv(A)' : dA;  d logdet(A) = inv(A)' : dA (Giles §2.3.4) */
static void adj_det(Frame *F, Node *n, Node *g) { add(F, A, mul(F, mul(F, g, n), tr(F, op1(F, OP_INV, A)))); }
static void adj_logdet(Frame *F, Node *n, Node *g) { add(F, A, mul(F, g, tr(F, op1(F, OP_INV, A)))); }
/* C = inv(A): dA += -C' * dC * C' (Giles §2.3.3) */
static void adj_inv(Frame *F, Node *n, Node *g)
{
    add(F, A, neg(F, op2(F, OP_MATMUL, op2(F, OP_MATMUL, tr(F, n), g), tr(F, n))));
}
static void adj_logsumexp(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, g, op1(F, OP_EXP, op2(F, OP_SUB, A, n))));
}
/* p = softmax(x): dx = p .* (g - dot(g, p)) */
static void adj_softmax(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, n, op2(F, OP_SUB, g, op1(F, OP_SUM, mul(F, g, n)))));
}
/* ---- broadcasting and reductions along a dimension (spec §8) ---- */
static Node *along(Frame *F, Op op, Node *x, int d) { return mk_along(IR, op, val(x), d); }
static Node *spread(Frame *F, Node *x, Shape s) { return mk_bcast(IR, val(x), s); }
/* v expanded: its adjoint is g summed over the expanded dimensions */
static void adj_bcast(Frame *F, Node *n, Node *g)
{
    int e = bcast_dims(n);
    if (e & 1)
        g = along(F, OP_SUMD, g, 1);
    if (e & 2)
        g = along(F, OP_SUMD, g, 2);
    add(F, A, g);
}
static void adj_sumd(Frame *F, Node *n, Node *g) { add(F, A, spread(F, g, A->shape)); }
/* amax/amin: g shared evenly by the entries equal to the result (PyTorch's
 * amax/amin backward: mask / count) */
static void extreme(Frame *F, Node *n, Node *g)
{
    Node *mask = op2(F, OP_EQ, A, n);
    if (shape_is_scalar(n->shape)) {
        add(F, A, mul(F, op2(F, OP_DIV, g, op1(F, OP_SUM, mask)), mask));
        return;
    }
    Node *count = along(F, OP_SUMD, mask, n->index);
    add(F, A, mul(F, spread(F, op2(F, OP_DIV, g, count), A->shape), mask));
}
static void adj_amax(Frame *F, Node *n, Node *g) { extreme(F, n, g); }
static void adj_amin(Frame *F, Node *n, Node *g) { extreme(F, n, g); }
static void adj_amaxd(Frame *F, Node *n, Node *g) { extreme(F, n, g); }
static void adj_amind(Frame *F, Node *n, Node *g) { extreme(F, n, g); }
/* l = logsumexp(X, d): dX = g .* exp(X - l), expanded along d */
static void adj_lsed(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, spread(F, g, A->shape), op1(F, OP_EXP, op2(F, OP_SUB, A, n))));
}
/* P = softmax(X, d): dX = P .* (g - sum(g .* P, d)) */
static void adj_softmaxd(Frame *F, Node *n, Node *g)
{
    add(F, A, mul(F, n, op2(F, OP_SUB, g, along(F, OP_SUMD, mul(F, g, n), n->index))));
}
/* L = log_softmax(X, d): dX = g - exp(L) .* sum(g, d) */
static void adj_logsoftmaxd(Frame *F, Node *n, Node *g)
{
    add(F, A, op2(F, OP_SUB, g, mul(F, op1(F, OP_EXP, n), along(F, OP_SUMD, g, n->index))));
}
static void adj_diagm(Frame *F, Node *n, Node *g) { add(F, A, op1(F, OP_DIAGV, g)); }
static void adj_diagv(Frame *F, Node *n, Node *g) { add(F, A, op1(F, OP_DIAGM, g)); }
/* where(k, a, b) = PICK(k, a) + PICK(not k, b): the side gets the masked
 * adjoint; the condition has a zero derivative */
static void adj_pick(Frame *F, Node *n, Node *g) { add(F, B, op2(F, OP_PICK, A, g)); }
/* LU(A) is only ever an operand of SOLVE/SOLVET, whose rules add to A
 * itself; the rule exists so that LU(A) is active when A is */
static void adj_lu(Frame *F, Node *n, Node *g) { (void)F, (void)n, (void)g; }
/* C = A \ B (Giles 2008, §2.3): B̄ = A' \ C̄ on A's factors, Ā = -B̄ C' */
static void adj_solve(Frame *F, Node *n, Node *g)
{
    Node *bb = op2(F, OP_SOLVET, A, g);
    add(F, B, bb);
    add(F, A->args[0], neg(F, op2(F, OP_MATMUL, bb, tr(F, n))));
}
/* C = A' \ B: B̄ = A \ C̄, Ā = -C B̄' */
static void adj_solvet(Frame *F, Node *n, Node *g)
{
    Node *bb = op2(F, OP_SOLVE, A, g);
    add(F, B, bb);
    add(F, A->args[0], neg(F, op2(F, OP_MATMUL, n, tr(F, bb))));
}
/* L = chol(A), the symmetric gradient (Murray 2016, eq. 10 with its
 * symmetrisation; PyTorch's cholesky_backward): P = tril(L' L̄),
 * Φ = P - diag(diag(P))/2, Ā = L^-T (Φ + Φ')/2 L^-1, by two solves with L'
 * on one factorisation */
static void adj_chol(Frame *F, Node *n, Node *g)
{
    Node *p = op1(F, OP_TRIL, op2(F, OP_MATMUL, tr(F, n), g));
    Node *phi = op2(F, OP_SUB, p, mul(F, K(F, 0.5), op1(F, OP_DIAGM, op1(F, OP_DIAGV, p))));
    Node *s = mul(F, K(F, 0.5), op2(F, OP_ADD, phi, tr(F, phi)));
    Node *y = solve_t(F, n, s);
    add(F, A, tr(F, solve_t(F, n, tr(F, y))));
}
static void adj_tril(Frame *F, Node *n, Node *g) { add(F, A, op1(F, OP_TRIL, g)); }
/* Concatenation: each part takes its block of the adjoint.  A slice (or an
 * element) adds its adjoint into a zero of x's shape at its offsets; a pad
 * gives back the block it placed.  The offsets are integers: no adjoint. */
static Node *cut(Frame *F, Node *g, Node *r, Node *c, Shape s) { return mk3(IR, OP_SLICE, s, val(g), r, c, 0); }
static void adj_vcat(Frame *F, Node *n, Node *g)
{
    add(F, A, cut(F, g, K(F, 0), K(F, 0), A->shape));
    add(F, B, cut(F, g, mk_dim(IR, A->shape.rows), K(F, 0), B->shape));
}
static void adj_hcat(Frame *F, Node *n, Node *g)
{
    add(F, A, cut(F, g, K(F, 0), K(F, 0), A->shape));
    add(F, B, cut(F, g, K(F, 0), mk_dim(IR, A->shape.cols), B->shape));
}
static void adj_slice(Frame *F, Node *n, Node *g)
{
    add(F, A, mk3(IR, OP_PAD, A->shape, val(g), n->args[1], n->args[2], 0));
}
static void adj_pad(Frame *F, Node *n, Node *g) { add(F, A, cut(F, g, n->args[1], n->args[2], A->shape)); }
/* C = kron(A, B), [ra*rb, ca*cb]: Ā[i, j] = sum over B's block (i, j) of
 * C̄ .* B, Ā = kron(eye(ra), ones(1, rb)) * (C̄ .* kron(ones(ra, ca), B)) *
 * kron(eye(ca), ones(cb, 1)); B̄ the sum of the blocks of C̄ .* kron(A, ones),
 * the same way (MATLAB has no kron adjoint; these are its definitions summed). */
static Node *block_sums(Frame *F, Node *g, Shape outer, Shape inner, bool of_outer)
{
    Ir *ir = IR;
    Node *l, *r;
    if (of_outer) {
        l = mk2(ir, OP_KRON, mk_eye(ir, outer.rows), mk_fill(ir, 1, shape_make(dim_lit(1), inner.rows)));
        r = mk2(ir, OP_KRON, mk_eye(ir, outer.cols), mk_fill(ir, 1, shape_make(inner.cols, dim_lit(1))));
    } else {
        l = mk2(ir, OP_KRON, mk_fill(ir, 1, shape_make(dim_lit(1), outer.rows)), mk_eye(ir, inner.rows));
        r = mk2(ir, OP_KRON, mk_fill(ir, 1, shape_make(outer.cols, dim_lit(1))), mk_eye(ir, inner.cols));
    }
    return op2(F, OP_MATMUL, op2(F, OP_MATMUL, l, g), r);
}
static void adj_kron(Frame *F, Node *n, Node *g)
{
    Node *ob = mk2(IR, OP_KRON, mk_fill(IR, 1, A->shape), B);
    Node *oa = mk2(IR, OP_KRON, A, mk_fill(IR, 1, B->shape));
    add(F, A, block_sums(F, mul(F, g, ob), A->shape, B->shape, true));
    add(F, B, block_sums(F, mul(F, g, oa), A->shape, B->shape, false));
}
/* flatten(A): Ā[i, j] = C̄[i*c + j], the rows of kron(eye(r), ones(1, c)) picking
 * C̄'s entries on the diagonal blocks of kron(ones(r, 1), eye(c)) */
static void adj_flatten(Frame *F, Node *n, Node *g)
{
    Ir *ir = IR;
    Dim r = A->shape.rows, c = A->shape.cols;
    Node *l = mk2(ir, OP_KRON, mk_eye(ir, r), mk_fill(ir, 1, shape_make(dim_lit(1), c)));
    Node *e = mk2(ir, OP_KRON, mk_fill(ir, 1, shape_make(r, dim_lit(1))), mk_eye(ir, c));
    add(F, A, op2(F, OP_MATMUL, l, mul(F, g, e)));
}
#undef A
#undef B
#undef val

/* GRADC_OPS's adj column: adj_<adj>, or none (leaves, comparisons, sign,
 * not, detach), so a row whose rule is missing here does not compile. */
#define adj_none NULL
static AdjointRule *const adjoint_rules[OP_COUNT] = {
#define X(name, text, arity, kind, fn, libm, builtin, prec, latex, adj) [OP_##name] = adj_##adj,
    GRADC_OPS(X)
#undef X
};
#undef adj_none

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
    else if (adjoint_rules[n->op])
        adjoint_rules[n->op](F, n, g);
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
            stmt_reads(s, live);
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
        br[b]->only = branch_only(d, blocks[b], vals[b], s->n);
        br[b]->in_loop = F->in_loop;
        for (int k = 0; k < s->n; k++)
            if (adj_of(F->slot_adj, s->slots[k]))
                add(br[b], vals[b][k], adj_of(F->slot_adj, s->slots[k]));
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
        add(F, handed.data[u], mk_slot(d->ir, r->slots[u]));
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
        add(B, s->next[k], mk_slot(ir, adj[k]));
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
    block_reads(B->out, live);
    for (int k = 0; k < r->n; k++)
        node_reads(r->next[k], live);
    Block *rerun = record_live(d, s->body, live);
    block_reads(rerun, live);
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
            add(F, s->vals[k], mk_slot(ir, r->slots[j++]));
    for (int m = 0; m < B->boundary.len; m++)
        add(F, B->boundary.data[m], mk_slot(ir, r->slots[nadj + m]));
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
            add(F, mk_input(d->ir, u, gc->sub->inputs[u].shape), adj[u]);
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

void diff_reverse(Module *m)
{
    Arena *a = m->arena;
    Ir *ir = m->ir;
    Diff *d = arena_alloc(a, sizeof *d);
    d->m = m;
    d->ir = ir;
    d->a = a;
    d->nfwd_nodes = ir->nnodes;
    d->nfwd_slots = ir->slots.len;
    d->slot_active = slotset_new(a);
    d->node_active = arena_alloc(a, (size_t)d->nfwd_nodes + 1);
    d->wrt_input = arena_alloc(a, (size_t)m->ninputs + 1);
    d->input_adj = arena_alloc(a, sizeof(Node *) * (size_t)(m->ninputs + 1));
    int nc = m->nconstructs + 1;
    d->reversed = arena_alloc(a, (size_t)nc);
    d->needed = arena_alloc(a, sizeof *d->needed * (size_t)nc);
    d->count_slot = arena_alloc(a, sizeof(int) * (size_t)nc);
    d->checkpointed = arena_alloc(a, (size_t)nc);
    d->count_pushed = arena_alloc(a, (size_t)nc);
    for (int k = 0; k < m->nwrt; k++)
        d->wrt_input[m->wrt[k]] = true;
    compute_activity(d);
    d->slot_block = arena_alloc(a, sizeof(Block *) * (size_t)(d->nfwd_slots + 1));
    d->slot_index = arena_alloc(a, sizeof(int) * (size_t)(d->nfwd_slots + 1));
    index_slots(d, m->fwd.body);
    Counts counts = {.uses = arena_alloc(a, sizeof(int) * (size_t)d->nfwd_nodes),
                     .seen = arena_alloc(a, (size_t)d->nfwd_nodes), .a = a, .stack = &d->stack};
    block_roots(m->fwd.body, count_uses, &counts);
    count_uses(m->fwd.value, &counts);
    d->uses = counts.uses;

    Frame *F = frame_new(d, m->fwd.body, NULL, true);
    Node *out = m->fwd.value;
    add(F, out, shape_is_scalar(out->shape) ? mk_const(ir, 1.0) : mk_cotan(ir, out->shape));
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

static Diff *dag_diff(Ir *ir, int ninputs)
{
    Arena *a = ir->arena;
    Diff *d = arena_alloc(a, sizeof *d);
    d->ir = ir;
    d->a = a;
    d->keep_detach = true;
    d->nfwd_nodes = ir->nnodes;
    d->nfwd_slots = ir->slots.len;
    d->slot_active = slotset_new(a);   /* slots are constants here (the caller checks) */
    d->wrt_input = arena_alloc(a, (size_t)ninputs + 1);
    d->input_adj = arena_alloc(a, sizeof(Node *) * (size_t)(ninputs + 1));
    d->slot_block = arena_alloc(a, sizeof(Block *) * (size_t)(d->nfwd_slots + 1));
    d->slot_index = arena_alloc(a, sizeof(int) * (size_t)(d->nfwd_slots + 1));
    return d;
}

Node *diff_dag_grad(Ir *ir, Node *e, int input, Shape xshape, int ninputs)
{
    Diff *d = dag_diff(ir, ninputs);
    d->node_active = arena_alloc(ir->arena, (size_t)d->nfwd_nodes + 1);
    memset(d->node_active, -1, (size_t)d->nfwd_nodes);
    d->wrt_input[input] = true;
    Frame *F = frame_new(d, block_new(ir->arena), NULL, true);
    add(F, e, mk_const(ir, 1.0));
    drain(F, 0);
    return d->input_adj[input] ? d->input_adj[input] : mk_zero(ir, xshape);
}

bool diff_partials(Ir *ir, Node *n, Node *seed, Node *parts[2])
{
    parts[0] = parts[1] = NULL;
    if (!adjoint_rules[n->op])
        return false;
    Diff *d = dag_diff(ir, 0);
    Frame *F = frame_new(d, block_new(ir->arena), NULL, true);
    F->capture = true;
    adjoint_rules[n->op](F, n, seed);
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
    while (mark_block(d, body));
    return d->slot_active;
}
