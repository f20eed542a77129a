/* plan.h — the plan of a Func: which nodes are computed, fused or buffered,
 * and how (plan.c).  It knows nothing of LLVM; codegen.c emits it. */
#ifndef GRADC_PLAN_H
#define GRADC_PLAN_H

#include "gradc.h"


/* A buffer of a*b doubles, plus a more when plus_a (LAPACK pivots). */
typedef struct Buf {
    Dim a, b;
    bool plus_a;
} Buf;

/* The static plan of one Func: which nodes are reached, fused, buffered. */
/* A matrix–vector product read as a sum of terms (see mv_form). */
typedef struct Term {
    Node *m;              /* the matrix read; NULL: the identity */
    bool trans;           /* the term is m' * vec */
    double k;             /* constant factor */
    Node *coef;           /* scalar factor, or NULL */
} Term;

typedef struct Mv {
    Node *vec;            /* the vector (its entries in order; a FILL is not stored) */
    Term *terms;
    int nterms;
    int group;            /* products computed in one pass over their matrices */
} Mv;

typedef struct Plan {
    Arena *arena;
    const Func *f;
    bool grad;
    Node **nodes;         /* reached nodes, by id (NULL: not reached) */
    int *uses;            /* consumers, counting statement roots */
    bool *nofuse;         /* some consumer needs the node as a buffer */
    int *buf, *scratch;   /* per node: buffer index or -1 */
    int *slotbuf, *shadow;/* per slot: buffer index or -1 */
    bool *slotused;
    int onesbuf;          /* all-ones cotangent when the caller passes NULL */
    VEC(Buf) bufs;
    VEC(Shape) shapes;    /* every shape, for the overflow check */
    bool tape;            /* pushes and pops go through the runtime tape */
    bool stack;           /* … or through a stack region at the end of work */
    struct Mv **mv;       /* per node: its matrix–vector form, or NULL */
    bool *instmt;         /* reached from a statement (may be computed in a loop or branch) */
} Plan;


static inline bool is_scalar(const Node *n) { return shape_is_scalar(n->shape); }
static inline OpKind kind_of(const Node *n) { return op_info[n->op].kind; }

Plan *plan_func(const Module *m, const Func *f, bool grad);
/* n's entries are computed inside its one consumer's loop (no buffer) */
bool is_fused(const Plan *p, const Node *n);
/* a transpose of a vector: its argument's memory */
bool is_alias(const Node *n);
/* the statement pushes or pops (itself or nested) */
bool stmt_records(const Stmt *s);

#endif
