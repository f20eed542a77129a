/* plansim.h — what plan.c (the plan), plan_sched.c (the schedule's walk)
 * and planpass.c (matrix passes the plan finds: dots in a pass, row passes)
 * share.  Private to those three files. */
#ifndef GRADC_PLANSIM_H
#define GRADC_PLANSIM_H

#include "plan.h"

enum { MV_MAX_TERMS = 16, DEPS_MAX = 2 * MV_MAX_TERMS + 2 };

static inline bool lit1(Dim d) { return dim_eq(d, dim_lit(1)); }

/* an input, slot, cotangent, dimension or constant (a 1×1 fill or eye):
 * no kernel computes it */
static inline bool is_leaf(const Node *n)
{
    switch (n->op) {
    case OP_INPUT: case OP_SLOT: case OP_COTAN: case OP_CONST: case OP_DIMVAL: return true;
    case OP_FILL: case OP_EYE: return is_scalar(n);
    default: return false;
    }
}

/* Walks the Func in the order codegen.c does and records, at each point
 * where a statement needs a value, the kernels that compute what is not
 * valid there.  A value stays valid until the scope (branch, loop body) it
 * was computed in ends, or a slot it reads is written; live lists the valid
 * nodes so that both are proportional to what is valid, not to the DAG. */
typedef struct Sim {
    Plan *p;
    FILE *out;            /* the dump, or NULL */
    bool *valid;
    int *level, *mark, epoch, depth, indent;
    VEC(int) live;
    NodeVec todo, got;
    SlotSet *written;     /* scratch slot set */
    int nslots;
    char *role;           /* row_pass: each node's part in the pass being tried */
    int *rmark, repoch;   /* row_pass: nodes visited by the dependence walk */
} Sim;

typedef struct KernelVec {
    Kernel *data;
    int len, cap;
} KernelVec;

/* plan.c */
/* the values n reads (at most DEPS_MAX), with whether each can be fused */
int plan_deps(const Plan *p, const Node *n, Node **out, bool *fuse);

/* plan_sched.c */
bool plan_available(const Sim *s, const Node *n);   /* at hand: valid or a leaf */
void plan_set_valid(Sim *s, Node *n);
/* into got: what roots need that is neither valid nor fused (hoist: only
 * what reads no slot in s->written) */
void plan_collect(Sim *s, Node **roots, int nroots, bool hoist, NodeVec *got);
int plan_by_id(const void *x, const void *y);       /* qsort of Node *, by id */
KernelKind plan_kernel_kind(const Plan *p, const Node *n);
void plan_dump_kernel(Sim *s, const Kernel *k);
/* the schedule of p->f into p->points (and the dump into out, if not NULL) */
void plan_schedule(Plan *p, FILE *out);

/* planpass.c */
/* r (a 1×1 product) as a dot in a matrix pass, when it is one (dot_form) */
void plan_dot_form(Plan *p, Node *r);
/* x (a product M*v, not valid) as the first source of a row pass: the
 * kernels for what it needs that is not at hand, then the pass; false
 * when it is not one */
bool row_pass(Sim *s, Node *x, KernelVec *ks);

#endif
