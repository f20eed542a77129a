/* plan.h — the plan of a Func: which nodes are computed, fused or buffered,
 * and how (plan.c).  It knows nothing of LLVM; codegen.c emits it. */
#ifndef GRADC_PLAN_H
#define GRADC_PLAN_H

#include "gradc.h"

typedef VEC(Node *) NodeVec;

/* A buffer of a*b doubles, plus a more when plus_a (LAPACK pivots). */
typedef struct Buf {
    Dim a, b;
    bool plus_a;
} Buf;

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
    Node *w;              /* a dot (dot_form): the node is the 1×1 Σ_i w[i]·(terms·vec)[i],
                             in the pass over the term's matrix, no buffer; else NULL */
} Mv;

/* A matrix–matrix product op(a) * op(b): a transpose operand is read in
 * place (BLAS's transpose flags), never copied.  A diag or fill factor
 * makes it O(m·n), never a dense product. */
typedef enum GemmMode {
    G_DENSE,      /* op(a) * op(b) (under diag, an operand may be a fill) */
    G_ROWSCALE,   /* diag(a) * op(b): row i of op(b) times a[i] (a: the vector) */
    G_COLSCALE,   /* op(a) * diag(b): column j of op(a) times b[j] */
    G_COLSUMS,    /* fill(k) * op(b): every row the column sums of op(b), times k */
    G_ROWSUMS,    /* op(a) * fill(k): every column the row sums of op(a), times k */
} GemmMode;

typedef struct Gemm {
    Node *a, *b;
    bool ta, tb;
    GemmMode mode;
    bool diag;            /* the node is diag(op(a) * op(b)): the diagonal only (G_DENSE) */
    Node *w;              /* diag only: diag(op(a) * diag(w) * op(b)), or NULL */
    Node *add;            /* G_DENSE: op(a) * op(b) + add, the product accumulated onto add's
                             entries (BLAS's beta = 1; plan_reuse.c), or NULL */
    int out;              /* G_DENSE: alpha * op(a) * op(b) is gradient out, stored into its
                             buffer by the product (no buffer, no copy); -1: not */
    double alpha;
    bool early;           /* with out: computed at its point into a buffer of work, with
                             alpha, and copied into the gradient (or added) with the
                             results, rather than computed there (plan_reuse.c) */
    int slot;             /* G_DENSE with add == that slot: `slot = op(a) * op(b) + slot`
                             accumulates into the slot's buffer when stored; -1: not */
} Gemm;

/* What a kernel computes.  The schedule is a list of points — the places
 * where a statement (or the results) needs values — each with the kernels
 * that run there, in node id order (arguments before their consumers). */
typedef enum KernelKind {
    K_LEAF,     /* an input, slot, cotangent, dimension or constant: no loop */
    K_SCALAR,   /* a 1×1 value from 1×1 values */
    K_MAP,      /* one elementwise loop (fused arguments inline) into a buffer */
    K_REDUCE,   /* a 1×1 value from a pass over entries: sum, norm, dot, trace … */
    K_MATVEC,   /* matrix–vector products: one pass per distinct matrix */
    K_GEMM,     /* matrix × matrix (BLAS when large) */
    K_SCALE,    /* diag(u) * M, M * diag(v): a row or column scaling */
    K_SUMS,     /* fill * M, M * fill: row or column sums */
    K_DIAGDOT,  /* diag(A * B): n dot products, no product */
    K_KEPT,     /* sum or norm of a slot, kept up to date by the slot's stores */
    K_LAPACK,   /* det, logdet, inv: the runtime's LU */
    K_LAYOUT,   /* transpose, diag, eye, softmax into a buffer */
    K_ALIAS,    /* a vector's transpose: its argument's memory */
    K_ROWS,     /* a row pass: products M*v, elementwise values of their rows and
                   products M'*t of those, a block of rows at a time (plan.c: row_pass) */
} KernelKind;

typedef struct Kernel {
    KernelKind kind;
    Node *node;
    Node **members;       /* K_MATVEC: every product of the pass (node first);
                             K_ROWS: the products M*v, the elementwise values
                             stored row by row, the products M'*t, in id order */
    int nmembers;
} Kernel;

typedef struct Point {
    Node *root;           /* the value the statement needs (NULL: a hoist point) */
    Kernel *ks;
    int nk;
} Point;

typedef struct Plan {
    Arena *arena;
    const Module *m;
    const Func *f;
    bool grad;
    Node **nodes;         /* reached nodes, by id (NULL: not reached) */
    int *uses;            /* consumers, counting statement roots */
    Node **user;          /* a node's consumer, when it has one (uses 1) that is not a root */
    bool *nofuse;         /* some consumer needs the node as a buffer */
    int *buf, *scratch;   /* per node: buffer index or -1 */
    int *slotbuf, *shadow;/* per slot: buffer index or -1 */
    bool *slotused;
    const char **slotname;/* per slot: its name as derive prints it (dA_2), for --dump-plan */
    bool *uniform;        /* per slot: every entry always equal (db = fill(1); db = 2 .* db):
                             kept as one double, no buffer */
    bool *unzeroed;       /* per slot: written at the top level before anything reads
                             it, so not zeroed at entry */
    int *inplace;         /* per node: the argument whose buffer its elementwise kernel
                             writes into (that argument is read by it only, and computed
                             with it each time: plan_reuse.c), or -1 */
    bool *forced;         /* per node: fused after all (merge_results), or NULL */
    bool *shared;         /* per node: fused though read more than once, every read in one
                             kernel's loop at that loop's entry (fuse_shared) */
    int *slotshare;       /* per slot: the slot whose buffer it takes over (plan_reuse.c:
                             that one is not read or written from then on), or -1 */
    int onesbuf;          /* all-ones cotangent when the caller passes NULL */
    VEC(Buf) bufs;
    VEC(Shape) shapes;    /* every shape, for the overflow check */
    bool tape;            /* pushes and pops go through the runtime tape */
    bool stack;           /* … or through a stack region at the end of work */
    struct Mv **mv;       /* per node: its matrix–vector form, or NULL */
    Gemm **gemm;          /* per node: its matrix–matrix form, or NULL */
    bool *instmt;         /* reached from a statement (may be computed in a loop or branch) */
    bool *guarded;        /* reads a slice checked at run time: never hoisted out of a loop,
                           * whose body may not run (its index is then not taken) */
    int *gnext;           /* per product: the next member of its group (mv_group), or -1 */
    VEC(Point) points;    /* the schedule, in the order codegen walks the Func */
    int64_t envslots;     /* codegen: 8-byte entries of the chunk environment (chunk.c) */
    int *kept;            /* per node: the next sum or norm of the same slot that
                             the slot's stores keep (kept_by), -1 at the end; -2: not kept */
    int *kept_by;         /* per slot: its first kept node, or -1 */
    int *nwrites;         /* per slot: the statements that write it */
    int onepass_point;    /* the point (the value's) whose onepass kernel that is */
    Node *onepass;        /* a sum the value is computed from (then by scalar kernels
                             only), computed in the pass that stores the elementwise
                             gradients of its argument's shape; or NULL */
    int *gorder;          /* the wrt indices in the order their gradients' points run:
                             by the gradient's node id, the order the reverse sweep
                             finishes them (plan.c: gradient_order), or NULL */
    int sink;             /* the buffer the one pass stores a NULL gradient to
                             (NAME_hvp: plan_sink), or -1 */
    int hess_nwrt;        /* the dump of NAME_hessian (plan_dump_hessian): the result is
                             the Hessian over this many wrt inputs, labelled d2y/dx2;
                             0: gradients, labelled d/dx */
} Plan;

static inline bool is_scalar(const Node *n) { return shape_is_scalar(n->shape); }
static inline OpKind kind_of(const Node *n) { return op_info[n->op].kind; }

/* The plan of f (m->fwd or m->grad); with dump, also printed there. */
Plan *plan_func(const Module *m, const Func *f, bool grad, FILE *dump);
/* n's entries are computed inside its one consumer's loop (no buffer) */
bool is_fused(const Plan *p, const Node *n);
/* sum(s) or norm(s) of a non-scalar slot s written by at most
 * KEEP_MAX_WRITES statements: kept by s's stores */
enum { KEEP_MAX_WRITES = 4 };
bool is_kept(const Plan *p, const Node *n);
/* n's entries are all one double: a 1×1 value or a uniform slot */
bool one_value(const Plan *p, const Node *n);
/* a transpose of a vector: its argument's memory */
bool is_alias(const Node *n);
/* A result that is a tree of vcat/hcat (NAME_hessian's blocks, hessian.c):
 * its blocks and their corners in the result, each written in place into
 * the result's buffer (the concatenations are never computed, so a block
 * that is elementwise or a transpose is fused into its store).  0 when g
 * is no such tree or has more than CAT_MAX blocks (out may be NULL: the
 * count only). */
enum { CAT_MAX = 64 };
typedef struct Placed {
    Node *block;
    Dim r, c;
} Placed;
int placed_blocks(const Node *g, Placed *out);
/* a slice that is a contiguous run of its argument: read in place (a
 * pointer into it, no buffer) */
bool is_view(const Node *n);
/* An assignment slot = slot + PAD(g1, r1, c1) + … (a slice's adjoint
 * accumulated in a loop): the pads, at most max, which are added in place
 * into the slot's buffer, so no dense temporary of the slot's size is built
 * per iteration; 0 when x is not of that form. */
enum { SCATTER_MAX = 8 };
int scatter_form(const Node *x, int slot, Node **pads);

/* The nodes a statement needs (its values, condition, count, and those
 * of its nested statements) pushed onto r. */
void stmt_roots(const Stmt *s, NodeVec *r, Arena *a);
/* plan_reuse.c: p->slotshare (after unzeroed and uniform are known) */
void find_shared(Plan *p, int ns);
/* plan_reuse.c, once every root is reached: a dense product that is added
 * to something (X*W1 + b1') accumulates onto it; one that is a gradient
 * (or a constant times one) is stored into the gradient's buffer. */
void fold_products(Plan *p);
/* plan_reuse.c, after the schedule: p->inplace, the buffers renumbered */
void find_inplace(Plan *p);
/* plan_reuse.c: a sum run in the loop of a later map of its argument's
 * shape (merged into that kernel: K_MAP with the sum as its one member);
 * the new count of ks */
int merge_sums(const Plan *p, Kernel *ks, int nk);
/* A sum right after a row pass, over its chain's entries, joins the pass
 * as its last member (plan_reuse.c); returns the new count. */
int merge_row_sums(const Plan *p, Kernel *ks, int nk);
/* planpass.c: is n a row or column of d entries? */
bool plan_vec_of_len(const Node *n, Dim d);
/* the same across the results' points (from vpoint: the value's, then the
 * auxiliary outputs' and the gradients'): a sum of the value's point runs
 * in the loop of a map a later one needs (MLP: sum((P - Y).^2) and the
 * cotangent (P - Y) ./ mk, one pass, as the hand loop) */
void merge_results(Plan *p, int vpoint);

/* NAME_hvp's gradients and products may be NULL (spec §9): one buffer of
 * work of the one pass's shape takes the stores of every NULL one, so the
 * pass (2*dot(x, x): x read once for the value, the gradient and H v)
 * stays. */
void plan_sink(Plan *p);
/* the gradient is stored by the one pass (p->onepass) */
bool in_onepass(const Plan *p, const Node *g);

/* Term t of member i of a K_MATVEC kernel that equals another member's
 * only term (x'*A*x: the gradient's A'*x is the value's x'*A): the index
 * of that member, whose result is added after the pass instead of a
 * second accumulation in it; else -1.  The dump and gen_mv both use it. */
int mv_copy_of(const Plan *p, const Kernel *k, int i, int t);

/* the statement pushes or pops (itself or nested) */
bool stmt_records(const Stmt *s);

#endif
