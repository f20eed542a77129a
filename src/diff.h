/* diff.h — private to diff.c, diff_activity.c and diff_rules.c (reverse mode).
 *
 * Reverse mode is one stage in three files: diff_activity.c decides what the
 * sweep must visit (activity, use counts, branch-only nodes), diff_rules.c
 * holds the adjoint rule table (one rule per op, where's masks kept outside),
 * diff.c runs the reverse sweep over blocks and constructs.  This header holds
 * what they share: the sweep's state (Diff, Frame) and the few functions one
 * part calls in another.  Nothing outside the diff*.c files includes it. */
#ifndef GRADC_DIFF_H
#define GRADC_DIFF_H

#include "gradc.h"

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

/* ---- diff_activity.c: walking statements, activity, uses ---- */

/* Calls visit on every node a statement refers to directly (values,
 * conditions, counts), nested blocks included. */
typedef void RootVisit(const Node *n, void *ctx);
void diff_block_roots(const Block *b, RootVisit *visit, void *ctx);
/* Marks every slot n (the statement, the block) reads: diff_node_reads is a
 * RootVisit on a SlotSet. */
void diff_node_reads(const Node *n, void *set);
void diff_stmt_reads(const Stmt *s, SlotSet *set);
void diff_block_reads(const Block *b, SlotSet *set);
/* Does n depend on a wrt input (memoised in Diff.node_active)? */
bool diff_active(Diff *d, Node *n);
void diff_index_slots(Diff *d, const Block *b);
void diff_compute_activity(Diff *d);
/* Marks b's slots active; true if any changed (iterate to a fixed point). */
bool diff_mark_block(Diff *d, Block *b);
/* Counting references: uses[n] counts statement references plus edges from
 * the nodes they reach; seen marks what was reached. */
typedef struct Counts {
    int *uses;
    bool *seen;
    Arena *a;
    NodeVec *stack;
} Counts;

void diff_count_uses(const Node *n, void *ctx);   /* a RootVisit on a Counts */
IntMap *diff_branch_only(Diff *d, const Block *b, Node *const *vals, int n);

/* ---- diff_rules.c: the adjoint rules ---- */

/* g is the adjoint of n; the rule adds to n's operands (diff_add). */
typedef void AdjointRule(Frame *F, Node *n, Node *g);
extern AdjointRule *const diff_adjoint_rules[OP_COUNT];
/* op(x) or op(x, y) in an adjoint rule, keeping where's masks outside. */
Node *diff_build(Frame *F, Op op, Node *x, Node *y);
/* The mask of a masked adjoint, else NULL. */
Node *diff_mask_of(Ir *ir, Node *g);

/* ---- diff.c: the reverse sweep ---- */

/* Adds g to the adjoint of forward node c. */
void diff_add(Frame *F, Node *c, Node *g);

/* A max-heap of node ids (the sweep's pending nodes, branch_only's walk). */
static inline void heap_push(Arena *a, IntVec *h, int id)
{
    vec_push(a, h, id);
    for (int i = h->len - 1; i > 0 && h->data[(i - 1) / 2] < h->data[i]; i = (i - 1) / 2) {
        int p = (i - 1) / 2, t = h->data[p];
        h->data[p] = h->data[i];
        h->data[i] = t;
    }
}

static inline int heap_pop(IntVec *h)
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

#endif
