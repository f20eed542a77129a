/* codegen.c — a Func (forward or gradient) as an LLVM function with the ABI
 * of spec §7, through the LLVM-C API.
 *
 * Values.  A 1×1 node is an SSA double.  Any other node is either
 * materialised in a buffer (row-major, in the caller's `work`) or, when it is
 * elementwise and has exactly one consumer that reads it elementwise, fused:
 * its entries are computed inline inside the consumer's loop (elem), so an
 * elementwise chain is one loop and no buffer.  A value is cached per node
 * while it is valid: computing in a branch or loop body opens a scope whose
 * values are dropped at its end (they do not dominate what follows), and
 * writing a slot drops every cached value that reads it (node->slots).  A
 * materialised node has one buffer wherever it is computed: a valid cache
 * entry means nothing has overwritten it since.
 *
 * Memory.  Every buffer (non-scalar slots, materialised nodes, LAPACK
 * scratch, SET shadows) has a size that depends on the dimensions only, so
 * its offset in `work` is computed at entry (layout, shared with
 * NAME_work_size).  Scalar slots are allocas (promoted to registers).  Size
 * arithmetic is checked for overflow: GRADC_EDIM.  Recorded values (PUSH,
 * POP) go to a stack at the end of `work` when its peak depth is known from
 * the dimensions (every loop around a push or pop is a for with a literal or
 * dimension count: stack_sizable, stack_depth); otherwise to the runtime
 * tape, which grows with realloc and is freed at cleanup.
 *
 * Each function is generated as an internal `impl` with one signature
 * (dims, inputs, cotangent, out, grads, flags, work, where); the ABI
 * functions and the JIT's entries are thin wrappers around it. */
#include "codegen.h"

#include <gradc/runtime.h>
#include <math.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Support.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <string.h>

enum { LANES = 4, BLAS_MIN = 32 };

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

typedef struct Val {
    LLVMValueRef v;       /* a double, or a pointer to the entries */
    int level;            /* scope depth where it was computed */
} Val;

typedef struct Cg {
    const Module *m;
    Arena *a;
    Plan *p;
    CgInfo *info;
    int64_t max_iter;
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b, ab;  /* ab: allocas, in the first block */
    LLVMTypeRef f64, i64, i32, i8, i1, ptr;
    LLVMValueRef fn;
    LLVMValueRef *dims, *inputs, cot, out, *grads, flags, work, where;
    LLVMValueRef *bufp, *slotvar, status, tape, one;
    LLVMValueRef stack, sp; /* the work stack and its depth in entries (an alloca) */
    LLVMBasicBlockRef cleanup;
    Val *cache;
    int depth;
    bool failed;
} Cg;

static bool is_scalar(const Node *n) { return shape_is_scalar(n->shape); }
static OpKind kind_of(const Node *n) { return op_info[n->op].kind; }

static void internal(Cg *c, const char *what)
{
    if (!c->failed)
        diag_plain("internal error in code generation: %s", what);
    c->failed = true;
}

/* ===================================================================== */
/* Planning                                                              */
/* ===================================================================== */

/* Does p read its arguments entry by entry (so they can be fused into it)? */
static bool fuses_args(const Node *p)
{
    if (p->op == OP_SUM)
        return true;
    return !is_scalar(p) && (kind_of(p) == OK_U || kind_of(p) == OK_B);
}

static bool is_fused(const Plan *p, const Node *n)
{
    if (is_scalar(n) || p->nofuse[n->id])
        return false;
    if (n->op == OP_FILL)
        return true;
    return (kind_of(n) == OK_U || kind_of(n) == OK_B) && p->uses[n->id] == 1;
}

/* A transpose of a vector is its argument's memory. */
static bool is_alias(const Node *n)
{
    return n->op == OP_TRANSPOSE && !is_scalar(n) &&
           (dim_eq(n->shape.rows, dim_lit(1)) || dim_eq(n->shape.cols, dim_lit(1)));
}

/* Matrix–vector products.  A product P*x whose result is a column (or a
 * row x'*P, read as P'*x) is computed from the terms of P: sums,
 * differences, negations, scalar factors and transposes of P are read
 * through, so (A + A')*x is A*x + A'*x and never builds the n×n matrix
 * A + A' (nor A').  The terms are flattened here, once per node. */
enum { MV_MAX_TERMS = 16 };

static bool lit1(Dim d) { return dim_eq(d, dim_lit(1)); }

/* Adds the terms of k * coef * op(P) (op: transpose when trans); false when
 * there would be too many (then P is read as one matrix). */
static bool mv_terms(Mv *v, Node *P, bool trans, double k, Node *coef)
{
    Node *a = P->nargs > 0 ? P->args[0] : NULL, *b = P->nargs > 1 ? P->args[1] : NULL;
    switch (P->op) {
    case OP_ADD:
    case OP_SUB:
        if (is_scalar(a) || is_scalar(b))
            break; /* a broadcast: not a sum of matrices */
        return mv_terms(v, a, trans, k, coef) && mv_terms(v, b, trans, P->op == OP_ADD ? k : -k, coef);
    case OP_NEG: return mv_terms(v, a, trans, -k, coef);
    case OP_TRANSPOSE: return mv_terms(v, a, !trans, k, coef);
    case OP_MUL:
        if (is_scalar(b) && !is_scalar(a)) {
            Node *t = a; a = b; b = t;
        }
        if (!is_scalar(a) || is_scalar(b))
            break;
        if (a->op == OP_CONST)
            return mv_terms(v, b, trans, k * a->num, coef);
        if (!coef)
            return mv_terms(v, b, trans, k, a);
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
    if (!mv_terms(v, P, trans, 1, NULL)) {
        v->nterms = 0;
        v->terms[v->nterms++] = (Term){P, trans, 1, NULL};
    }
    return v;
}

static void mv_group(Plan *p, int nn)
{
    /* group ids: the id of a group's first member; nn + id for a product alone */
    for (int i = 0; i < nn; i++) {
        if (!p->nodes[i] || !p->mv[i])
            continue;
        p->mv[i]->group = p->instmt[i] ? nn + i : i;
        if (p->instmt[i])
            continue;
        for (int j = 0; j < i && p->mv[i]->group == i; j++) {
            if (!p->nodes[j] || !p->mv[j] || p->mv[j]->group >= nn)
                continue;
            for (int s = 0; s < p->mv[i]->nterms; s++)
                for (int t = 0; t < p->mv[j]->nterms; t++)
                    if (p->mv[i]->terms[s].m && p->mv[i]->terms[s].m == p->mv[j]->terms[t].m)
                        p->mv[i]->group = p->mv[j]->group;
        }
    }
}

static void visit(Plan *p, Node *n);

static void visit_arg(Plan *p, Node *x, bool fuse)
{
    visit(p, x);
    p->uses[x->id]++;
    if (!fuse)
        p->nofuse[x->id] = true;
}

static void visit(Plan *p, Node *n)
{
    if (p->nodes[n->id])
        return;
    p->nodes[n->id] = n;
    if ((p->mv[n->id] = mv_form(p->arena, n))) {
        /* the matrix operand's sums and transposes are read through, never built */
        Mv *v = p->mv[n->id];
        visit_arg(p, v->vec, v->vec->op == OP_FILL);
        for (int t = 0; t < v->nterms; t++) {
            if (v->terms[t].m)
                visit_arg(p, v->terms[t].m, false);
            if (v->terms[t].coef)
                visit_arg(p, v->terms[t].coef, false);
        }
        return;
    }
    for (int i = 0; i < n->nargs; i++) {
        visit(p, n->args[i]);
        p->uses[n->args[i]->id]++;
        if (!fuses_args(n))
            p->nofuse[n->args[i]->id] = true;
    }
}

static void root(Plan *p, Node *n, bool store)
{
    visit(p, n);
    p->uses[n->id]++;
    if (!store)
        p->nofuse[n->id] = true;
}

static void plan_slot(Plan *p, int s) { if (s >= 0) p->slotused[s] = true; }

static void plan_assign(Plan *p, const Module *m, int n, const int *slots, Node **vals)
{
    for (int i = 0; i < n; i++) {
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

static bool stmt_records(const Stmt *s)
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
    if (is_scalar(n) || is_fused(p, n) || is_alias(n))
        return false;
    return n->op != OP_INPUT && n->op != OP_SLOT && n->op != OP_COTAN;
}

static Plan *plan_func(const Module *m, const Func *f, bool grad)
{
    Arena *a = m->arena;
    int nn = m->ir->nnodes, ns = m->ir->slots.len;
    Plan *p = arena_alloc(a, sizeof *p);
    p->arena = a;
    p->f = f;
    p->grad = grad;
    p->mv = arena_alloc(a, sizeof(Mv *) * (size_t)(nn + 1));
    p->instmt = arena_alloc(a, sizeof(bool) * (size_t)(nn + 1));
    p->nodes = arena_alloc(a, sizeof(Node *) * (size_t)(nn + 1));
    p->uses = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    p->nofuse = arena_alloc(a, sizeof(bool) * (size_t)(nn + 1));
    p->buf = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    p->scratch = arena_alloc(a, sizeof(int) * (size_t)(nn + 1));
    p->slotbuf = arena_alloc(a, sizeof(int) * (size_t)(ns + 1));
    p->shadow = arena_alloc(a, sizeof(int) * (size_t)(ns + 1));
    p->slotused = arena_alloc(a, sizeof(bool) * (size_t)(ns + 1));
    p->onesbuf = -1;
    for (int i = 0; i < ns; i++)
        p->shadow[i] = -1;

    plan_block(p, m, f->body);
    p->stack = p->tape && stack_sizable(f->body);
    p->tape = p->tape && !p->stack;
    for (int i = 0; i < nn; i++)
        p->instmt[i] = p->nodes[i] != NULL;
    root(p, f->value, true);
    for (int i = 0; f->grads && i < m->nwrt; i++)
        root(p, f->grads[i], true);

    mv_group(p, nn);
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
        if (needs_buf(p, n))
            p->buf[i] = add_buf(p, a, n->shape.rows, n->shape.cols, false);
        if (n->op == OP_DET || n->op == OP_LOGDET || n->op == OP_INV)
            p->scratch[i] = add_buf(p, a, n->args[0]->shape.rows, n->args[0]->shape.rows, true);
        if (n->op == OP_COTAN && !is_scalar(n) && p->onesbuf < 0)
            p->onesbuf = add_buf(p, a, n->shape.rows, n->shape.cols, false);
    }
    for (int s = 0; s < ns; s++) {
        Shape sh = m->ir->slots.data[s].shape;
        p->slotbuf[s] = -1;
        if (!p->slotused[s])
            continue;
        add_shape(p, a, sh);
        if (!shape_is_scalar(sh)) {
            p->slotbuf[s] = add_buf(p, a, sh.rows, sh.cols, false);
            if (p->shadow[s] == 0)
                p->shadow[s] = add_buf(p, a, sh.rows, sh.cols, false);
        }
    }
    return p;
}

/* ===================================================================== */
/* LLVM helpers                                                          */
/* ===================================================================== */

static LLVMValueRef cf(Cg *c, double v) { return LLVMConstReal(c->f64, v); }
static LLVMValueRef ci(Cg *c, int64_t v) { return LLVMConstInt(c->i64, (unsigned long long)v, 1); }

static LLVMBasicBlockRef block(Cg *c, const char *name)
{
    return LLVMAppendBasicBlockInContext(c->ctx, c->fn, name);
}

static void enter(Cg *c, LLVMBasicBlockRef bb) { LLVMPositionBuilderAtEnd(c->b, bb); }

static LLVMValueRef alloca_(Cg *c, LLVMTypeRef t) { return LLVMBuildAlloca(c->ab, t, ""); }

static LLVMValueRef at(Cg *c, LLVMValueRef p, LLVMValueRef k)
{
    return LLVMBuildInBoundsGEP2(c->b, c->f64, p, &k, 1, "");
}
static LLVMValueRef load(Cg *c, LLVMValueRef p, LLVMValueRef k)
{
    return LLVMBuildLoad2(c->b, c->f64, at(c, p, k), "");
}
static void store(Cg *c, LLVMValueRef v, LLVMValueRef p, LLVMValueRef k)
{
    LLVMBuildStore(c->b, v, at(c, p, k));
}

static LLVMValueRef add(Cg *c, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildAdd(c->b, x, y, ""); }
static LLVMValueRef mul(Cg *c, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildMul(c->b, x, y, ""); }
static LLVMValueRef fplus(Cg *c, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFAdd(c->b, x, y, ""); }

/* A declared external function (libm, the runtime, libc). */
static LLVMValueRef callf(Cg *c, const char *name, LLVMTypeRef ret, LLVMTypeRef *pt, int n,
                          LLVMValueRef *args)
{
    LLVMTypeRef ft = LLVMFunctionType(ret, pt, (unsigned)n, 0);
    LLVMValueRef f = LLVMGetNamedFunction(c->mod, name);
    if (!f)
        f = LLVMAddFunction(c->mod, name, ft);
    return LLVMBuildCall2(c->b, ft, f, args, (unsigned)n, "");
}

static LLVMValueRef libm(Cg *c, const char *name, int n, LLVMValueRef x, LLVMValueRef y)
{
    LLVMTypeRef pt[2] = {c->f64, c->f64};
    LLVMValueRef args[2] = {x, y};
    return callf(c, name, c->f64, pt, n, args);
}

static LLVMValueRef intrinsic(Cg *c, const char *name, LLVMTypeRef t, int n, LLVMValueRef *args)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->mod, id, &t, 1);
    LLVMTypeRef ft = LLVMIntrinsicGetType(c->ctx, id, &t, 1);
    return LLVMBuildCall2(c->b, ft, f, args, (unsigned)n, "");
}

static LLVMValueRef fcmp(Cg *c, LLVMRealPredicate p, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildFCmp(c->b, p, x, y, "");
}
static LLVMValueRef sel(Cg *c, LLVMValueRef t, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildSelect(c->b, t, x, y, "");
}
static LLVMValueRef b2f(Cg *c, LLVMValueRef t) { return LLVMBuildUIToFP(c->b, t, c->f64, ""); }

/* A counted loop i = lo .. hi-1; loop_end closes it. */
typedef struct Loop {
    LLVMBasicBlockRef head, exit;
    LLVMValueRef i;
} Loop;

static LLVMValueRef loop_begin(Cg *c, Loop *l, LLVMValueRef lo, LLVMValueRef hi)
{
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b), body = block(c, "body");
    l->head = block(c, "head");
    l->exit = block(c, "exit");
    LLVMBuildBr(c->b, l->head);
    enter(c, l->head);
    l->i = LLVMBuildPhi(c->b, c->i64, "i");
    LLVMAddIncoming(l->i, &lo, &pre, 1);
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, l->i, hi, ""), body, l->exit);
    enter(c, body);
    return l->i;
}

static void loop_end(Cg *c, Loop *l)
{
    LLVMValueRef next = add(c, l->i, ci(c, 1));
    LLVMBasicBlockRef from = LLVMGetInsertBlock(c->b);
    LLVMAddIncoming(l->i, &next, &from, 1);
    LLVMBuildBr(c->b, l->head);
    enter(c, l->exit);
}

static LLVMValueRef dimv(Cg *c, Dim d) { return d.sym >= 0 ? c->dims[d.sym] : ci(c, d.n); }
static LLVMValueRef rows(Cg *c, const Node *n) { return dimv(c, n->shape.rows); }
static LLVMValueRef cols(Cg *c, const Node *n) { return dimv(c, n->shape.cols); }
static LLVMValueRef count(Cg *c, const Node *n) { return mul(c, rows(c, n), cols(c, n)); }

/* The iterations of a for whose count has value v: rounded down; NaN or
 * below 1 runs none (as eval.c). */
static LLVMValueRef trips(Cg *c, LLVMValueRef v)
{
    LLVMValueRef f = intrinsic(c, "llvm.floor", c->f64, 1, &v);
    f = sel(c, fcmp(c, LLVMRealOGE, f, cf(c, 1)), f, cf(c, 0));
    f = sel(c, fcmp(c, LLVMRealOGT, f, cf(c, 0x1p62)), cf(c, 0x1p62), f);
    return LLVMBuildFPToSI(c->b, f, c->i64, "");
}

/* Leaves the function with status (cleanup frees what we own). */
static void fail_with(Cg *c, int status)
{
    LLVMBuildStore(c->b, LLVMConstInt(c->i32, (unsigned)status, 0), c->status);
    LLVMBuildBr(c->b, c->cleanup);
}

/* ===================================================================== */
/* Elementwise operators                                                 */
/* ===================================================================== */

/* Each is the exact formula of ir.c's scalar function, so compiled code and
 * the interpreter agree bit for bit. */
static LLVMValueRef e_sigmoid(Cg *c, LLVMValueRef x)
{
    LLVMValueRef e = libm(c, "exp", 1, LLVMBuildFNeg(c->b, intrinsic(c, "llvm.fabs", c->f64, 1, &x), ""), NULL);
    LLVMValueRef den = fplus(c, cf(c, 1), e);
    return sel(c, fcmp(c, LLVMRealOGE, x, cf(c, 0)), LLVMBuildFDiv(c->b, cf(c, 1), den, ""),
               LLVMBuildFDiv(c->b, e, den, ""));
}
static LLVMValueRef e_softplus(Cg *c, LLVMValueRef x)
{
    LLVMValueRef e = libm(c, "exp", 1, LLVMBuildFNeg(c->b, intrinsic(c, "llvm.fabs", c->f64, 1, &x), ""), NULL);
    return fplus(c, sel(c, fcmp(c, LLVMRealOGT, x, cf(c, 0)), x, cf(c, 0)), libm(c, "log1p", 1, e, NULL));
}
static LLVMValueRef e_relu(Cg *c, LLVMValueRef x) { return sel(c, fcmp(c, LLVMRealOGT, x, cf(c, 0)), x, cf(c, 0)); }
static LLVMValueRef e_sign(Cg *c, LLVMValueRef x)
{
    return sel(c, fcmp(c, LLVMRealOGT, x, cf(c, 0)), cf(c, 1),
               sel(c, fcmp(c, LLVMRealOLT, x, cf(c, 0)), cf(c, -1), cf(c, 0)));
}
static LLVMValueRef e_not(Cg *c, LLVMValueRef x) { return b2f(c, fcmp(c, LLVMRealOEQ, x, cf(c, 0))); }
static LLVMValueRef e_neg(Cg *c, LLVMValueRef x) { return LLVMBuildFNeg(c->b, x, ""); }
static LLVMValueRef e_id(Cg *c, LLVMValueRef x) { (void)c; return x; }
static LLVMValueRef e_sqrt(Cg *c, LLVMValueRef x) { return intrinsic(c, "llvm.sqrt", c->f64, 1, &x); }
static LLVMValueRef e_abs(Cg *c, LLVMValueRef x) { return intrinsic(c, "llvm.fabs", c->f64, 1, &x); }

static LLVMValueRef (*const emit1[OP_COUNT])(Cg *, LLVMValueRef) = {
    [OP_NEG] = e_neg, [OP_SQRT] = e_sqrt, [OP_ABS] = e_abs, [OP_SIGMOID] = e_sigmoid,
    [OP_RELU] = e_relu, [OP_SOFTPLUS] = e_softplus, [OP_SIGN] = e_sign, [OP_NOT] = e_not,
    [OP_DETACH] = e_id,
};

static LLVMValueRef e_add(Cg *c, LLVMValueRef x, LLVMValueRef y) { return fplus(c, x, y); }
static LLVMValueRef e_sub(Cg *c, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFSub(c->b, x, y, ""); }
static LLVMValueRef e_mul(Cg *c, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFMul(c->b, x, y, ""); }
static LLVMValueRef e_div(Cg *c, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFDiv(c->b, x, y, ""); }
/* 0 where b == 0 (an adjoint of x/b that must not make NaN from 0/0) */
static LLVMValueRef e_divsafe(Cg *c, LLVMValueRef x, LLVMValueRef y)
{
    return sel(c, fcmp(c, LLVMRealOEQ, y, cf(c, 0)), cf(c, 0), LLVMBuildFDiv(c->b, x, y, ""));
}
static LLVMValueRef e_max(Cg *c, LLVMValueRef x, LLVMValueRef y) { return sel(c, fcmp(c, LLVMRealOGT, x, y), x, y); }
static LLVMValueRef e_min(Cg *c, LLVMValueRef x, LLVMValueRef y) { return sel(c, fcmp(c, LLVMRealOLT, x, y), x, y); }
static LLVMValueRef e_and(Cg *c, LLVMValueRef x, LLVMValueRef y)
{
    return b2f(c, LLVMBuildAnd(c->b, fcmp(c, LLVMRealUNE, x, cf(c, 0)), fcmp(c, LLVMRealUNE, y, cf(c, 0)), ""));
}
static LLVMValueRef e_or(Cg *c, LLVMValueRef x, LLVMValueRef y)
{
    return b2f(c, LLVMBuildOr(c->b, fcmp(c, LLVMRealUNE, x, cf(c, 0)), fcmp(c, LLVMRealUNE, y, cf(c, 0)), ""));
}

static LLVMValueRef (*const emit2[OP_COUNT])(Cg *, LLVMValueRef, LLVMValueRef) = {
    [OP_ADD] = e_add, [OP_SUB] = e_sub, [OP_MUL] = e_mul, [OP_DIV] = e_div, [OP_DIVSAFE] = e_divsafe,
    [OP_MAX] = e_max, [OP_MIN] = e_min, [OP_AND] = e_and, [OP_OR] = e_or,
};
/* comparisons give 1.0 or 0.0; != is true for NaN, as in C */
static const LLVMRealPredicate cmp_pred[OP_COUNT] = {
    [OP_LT] = LLVMRealOLT, [OP_LE] = LLVMRealOLE, [OP_GT] = LLVMRealOGT,
    [OP_GE] = LLVMRealOGE, [OP_EQ] = LLVMRealOEQ, [OP_NE] = LLVMRealUNE,
};

static LLVMValueRef apply1(Cg *c, Op op, LLVMValueRef x)
{
    if (emit1[op])
        return emit1[op](c, x);
    if (op_info[op].libm)   /* GRADC_OPS's libm column: the function ir.c calls */
        return libm(c, op_info[op].libm, 1, x, NULL);
    internal(c, arena_printf(c->a, "no code for unary operator %s", op_info[op].name));
    return cf(c, 0);
}

static LLVMValueRef apply2(Cg *c, Op op, LLVMValueRef x, LLVMValueRef y)
{
    if (emit2[op])
        return emit2[op](c, x, y);
    if (op_info[op].libm)
        return libm(c, op_info[op].libm, 2, x, y);
    if (cmp_pred[op])
        return b2f(c, fcmp(c, cmp_pred[op], x, y));
    internal(c, arena_printf(c->a, "no code for binary operator %s", op_info[op].name));
    return cf(c, 0);
}

/* ===================================================================== */
/* The value cache                                                       */
/* ===================================================================== */

static void scope_push(Cg *c) { c->depth++; }

static void scope_pop(Cg *c)
{
    for (int i = 0; i < c->m->ir->nnodes; i++)
        if (c->cache[i].v && c->cache[i].level >= c->depth)
            c->cache[i].v = NULL;
    c->depth--;
}

/* Drops every value that reads a slot marked in written[]. */
static void invalidate(Cg *c, const SlotSet *written)
{
    for (int i = 0; i < c->m->ir->nnodes; i++) {
        const Node *n = c->p->nodes[i];
        if (!c->cache[i].v)
            continue;
        for (int j = 0; j < n->nslots; j++)
            if (slotset_has(written, n->slots[j])) {
                c->cache[i].v = NULL;
                break;
            }
    }
}

static void invalidate_slot(Cg *c, int s)
{
    SlotSet *w = slotset_new(c->a);
    slotset_add(w, s);
    invalidate(c, w);
}

/* ===================================================================== */
/* Nodes                                                                 */
/* ===================================================================== */

static LLVMValueRef get(Cg *c, Node *n);

/* Makes every non-fused value a fused node reads available, so its entries
 * can then be computed inside a loop without computing anything else. */
static void prepare(Cg *c, Node *n)
{
    if (!is_fused(c->p, n)) {
        get(c, n);
        return;
    }
    for (int i = 0; i < n->nargs; i++)
        prepare(c, n->args[i]);
}

static LLVMValueRef elem(Cg *c, Node *n, LLVMValueRef k);

/* Entry k of an elementwise node from its arguments' entries (a 1×1
 * argument broadcasts). */
static LLVMValueRef elem_op(Cg *c, Node *n, LLVMValueRef k)
{
    if (n->op == OP_FILL)
        return cf(c, n->num);
    if (kind_of(n) == OK_U)
        return apply1(c, n->op, elem(c, n->args[0], k));
    return apply2(c, n->op, elem(c, n->args[0], k), elem(c, n->args[1], k));
}

static LLVMValueRef elem(Cg *c, Node *n, LLVMValueRef k)
{
    if (is_fused(c->p, n))
        return elem_op(c, n, k);
    if (!c->cache[n->id].v)
        internal(c, "value used before it was prepared");
    LLVMValueRef v = get(c, n);
    return is_scalar(n) ? v : load(c, v, k);
}

/* A pointer to n's entries: a 1×1 value is stored to a stack slot. */
static LLVMValueRef argbuf(Cg *c, Node *n)
{
    LLVMValueRef v = get(c, n);
    if (!is_scalar(n))
        return v;
    LLVMValueRef p = alloca_(c, c->f64);
    LLVMBuildStore(c->b, v, p);
    return p;
}

/* Sum of f(k) for k in [0, count).  Rounding: LANES partial sums
 * s_l = f(l) + f(l+LANES) + … run over the first count - count % LANES
 * entries, are combined as (s0 + s1) + (s2 + s3), and the remaining entries
 * are then added one by one.  The partial sums are independent chains, so
 * the loop vectorises without fast-math (no reassociation is needed); the
 * result differs from a left-to-right sum by rounding only, within the usual
 * summation bound (count · eps · sum |f|). */
typedef LLVMValueRef (*ElemFn)(Cg *c, void *ctx, LLVMValueRef k);

static LLVMValueRef reduce_sum(Cg *c, LLVMValueRef n, ElemFn f, void *ctx)
{
    LLVMValueRef acc[LANES], t = alloca_(c, c->f64);
    for (int l = 0; l < LANES; l++) {
        acc[l] = alloca_(c, c->f64);
        LLVMBuildStore(c->b, cf(c, 0), acc[l]);
    }
    LLVMValueRef blocks = LLVMBuildSDiv(c->b, n, ci(c, LANES), "");
    Loop lp;
    LLVMValueRef i = loop_begin(c, &lp, ci(c, 0), blocks);
    LLVMValueRef base = mul(c, i, ci(c, LANES));
    for (int l = 0; l < LANES; l++) {
        LLVMValueRef x = f(c, ctx, add(c, base, ci(c, l)));
        LLVMBuildStore(c->b, fplus(c, LLVMBuildLoad2(c->b, c->f64, acc[l], ""), x), acc[l]);
    }
    loop_end(c, &lp);
    LLVMValueRef s[LANES];
    for (int l = 0; l < LANES; l++)
        s[l] = LLVMBuildLoad2(c->b, c->f64, acc[l], "");
    LLVMBuildStore(c->b, fplus(c, fplus(c, s[0], s[1]), fplus(c, s[2], s[3])), t);
    i = loop_begin(c, &lp, mul(c, blocks, ci(c, LANES)), n);
    LLVMBuildStore(c->b, fplus(c, LLVMBuildLoad2(c->b, c->f64, t, ""), f(c, ctx, i)), t);
    loop_end(c, &lp);
    return LLVMBuildLoad2(c->b, c->f64, t, "");
}

/* max over k of p[k]: NaN when an entry is NaN, -inf when empty */
static LLVMValueRef reduce_max(Cg *c, LLVMValueRef p, LLVMValueRef n)
{
    LLVMValueRef m = alloca_(c, c->f64);
    LLVMBuildStore(c->b, cf(c, -INFINITY), m);
    Loop lp;
    LLVMValueRef k = loop_begin(c, &lp, ci(c, 0), n);
    LLVMValueRef x = load(c, p, k);
    LLVMBuildStore(c->b, sel(c, fcmp(c, LLVMRealUNO, x, x), x, e_max(c, x, LLVMBuildLoad2(c->b, c->f64, m, ""))), m);
    loop_end(c, &lp);
    return LLVMBuildLoad2(c->b, c->f64, m, "");
}

typedef struct Two {
    Cg *c;
    LLVMValueRef p, q, stride, shift;
} Two;

static LLVMValueRef f_elem(Cg *c, void *n, LLVMValueRef k) { return elem(c, n, k); }
/* (p[k] / shift)^2 */
static LLVMValueRef f_scaled_square(Cg *c, void *t, LLVMValueRef k)
{
    Two *w = t;
    LLVMValueRef x = LLVMBuildFDiv(c->b, load(c, w->p, k), w->shift, "");
    return LLVMBuildFMul(c->b, x, x, "");
}
/* p[k * stride] (the diagonal with stride n + 1) */
static LLVMValueRef f_strided(Cg *c, void *t, LLVMValueRef k)
{
    Two *w = t;
    return load(c, w->p, mul(c, k, w->stride));
}
/* p[k] * q[k] */
static LLVMValueRef f_dot(Cg *c, void *t, LLVMValueRef k)
{
    Two *w = t;
    return LLVMBuildFMul(c->b, load(c, w->p, k), load(c, w->q, k), "");
}
/* exp(p[k] - shift) */
static LLVMValueRef f_expshift(Cg *c, void *t, LLVMValueRef k)
{
    Two *w = t;
    return libm(c, "exp", 1, LLVMBuildFSub(c->b, load(c, w->p, k), w->shift, ""), NULL);
}

/* big * sqrt(sum (x/big)^2) with big = max |x|, so that squares neither
 * overflow nor underflow (the interpreter's formula); NaN if any entry is. */
static LLVMValueRef gen_norm(Cg *c, Node *n)
{
    Node *x = n->args[0];
    LLVMValueRef p = argbuf(c, x), len = count(c, x);
    LLVMValueRef big = alloca_(c, c->f64), nan = alloca_(c, c->i1);
    LLVMBuildStore(c->b, cf(c, 0), big);
    LLVMBuildStore(c->b, LLVMConstInt(c->i1, 0, 0), nan);
    Loop lp;
    LLVMValueRef k = loop_begin(c, &lp, ci(c, 0), len);
    LLVMValueRef v = load(c, p, k), a = e_abs(c, v), b = LLVMBuildLoad2(c->b, c->f64, big, "");
    LLVMBuildStore(c->b, sel(c, fcmp(c, LLVMRealOGT, a, b), a, b), big);
    LLVMBuildStore(c->b, LLVMBuildOr(c->b, LLVMBuildLoad2(c->b, c->i1, nan, ""), fcmp(c, LLVMRealUNO, v, v), ""), nan);
    loop_end(c, &lp);
    LLVMValueRef m = LLVMBuildLoad2(c->b, c->f64, big, "");
    Two w = {c, p, NULL, NULL, m};
    LLVMValueRef r = LLVMBuildFMul(c->b, m, e_sqrt(c, reduce_sum(c, len, f_scaled_square, &w)), "");
    LLVMValueRef edge = LLVMBuildOr(c->b, fcmp(c, LLVMRealOEQ, m, cf(c, 0)), fcmp(c, LLVMRealOEQ, m, cf(c, INFINITY)), "");
    r = sel(c, edge, m, r);
    return sel(c, LLVMBuildLoad2(c->b, c->i1, nan, ""), cf(c, NAN), r);
}

static LLVMValueRef gen_logsumexp(Cg *c, Node *n)
{
    Node *x = n->args[0];
    LLVMValueRef p = argbuf(c, x), len = count(c, x);
    LLVMValueRef m = reduce_max(c, p, len);
    Two w = {c, p, NULL, NULL, m};
    LLVMValueRef s = reduce_sum(c, len, f_expshift, &w);
    LLVMValueRef r = fplus(c, m, libm(c, "log", 1, s, NULL));
    /* all -inf (or empty): -inf; a +inf entry: +inf — not inf - inf = NaN */
    LLVMValueRef inf = fcmp(c, LLVMRealOEQ, e_abs(c, m), cf(c, INFINITY));
    return sel(c, inf, m, r);
}

/* M ops whose result is 1×1 and computed as a value. */
static LLVMValueRef gen_reduction(Cg *c, Node *n)
{
    Node *x = n->args[0];
    switch (n->op) {
    case OP_SUM:
        prepare(c, x);
        return reduce_sum(c, count(c, x), f_elem, x);
    case OP_NORM:
        return gen_norm(c, n);
    case OP_TRACE: {
        Two w = {c, argbuf(c, x), NULL, add(c, rows(c, x), ci(c, 1)), NULL};
        return reduce_sum(c, rows(c, x), f_strided, &w);
    }
    case OP_LOGSUMEXP:
        return gen_logsumexp(c, n);
    case OP_MATMUL: {
        Two w = {c, argbuf(c, x), argbuf(c, n->args[1]), NULL, NULL};
        return reduce_sum(c, cols(c, x), f_dot, &w);
    }
    case OP_DET:
    case OP_LOGDET: {
        LLVMTypeRef pt[3] = {c->i64, c->ptr, c->ptr};
        LLVMValueRef args[3] = {rows(c, x), argbuf(c, x), c->bufp[c->p->scratch[n->id]]};
        return callf(c, n->op == OP_DET ? "gradc_det" : "gradc_logdet", c->f64, pt, 3, args);
    }
    default:
        return NULL;
    }
}

static void zero(Cg *c, LLVMValueRef p, LLVMValueRef ndoubles)
{
    LLVMBuildMemSet(c->b, p, LLVMConstInt(c->i8, 0, 0), mul(c, ndoubles, ci(c, 8)), 8);
}

static void gen_matmul(Cg *c, Node *n, LLVMValueRef out)
{
    Node *x = n->args[0], *y = n->args[1];
    LLVMValueRef A = argbuf(c, x), B = argbuf(c, y);
    LLVMValueRef r = rows(c, n), k = cols(c, x), m = cols(c, n);
    Loop li, lj, lp;
    if (dim_eq(n->shape.cols, dim_lit(1))) {
        /* matrix × vector: a dot product per row */
        LLVMValueRef i = loop_begin(c, &li, ci(c, 0), r);
        Two w = {c, at(c, A, mul(c, i, k)), B, NULL, NULL};
        store(c, reduce_sum(c, k, f_dot, &w), out, i);
        loop_end(c, &li);
        return;
    }
    LLVMBasicBlockRef done = block(c, "mm.done");
    bool small = (n->shape.rows.sym < 0 && n->shape.rows.n < BLAS_MIN) ||
                 (n->shape.cols.sym < 0 && n->shape.cols.n < BLAS_MIN) ||
                 (x->shape.cols.sym < 0 && x->shape.cols.n < BLAS_MIN);
    if (!small) {
        /* large products: OpenBLAS, decided at run time */
        LLVMBasicBlockRef blas = block(c, "mm.blas"), loops = block(c, "mm.loops");
        LLVMValueRef big = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, r, ci(c, BLAS_MIN), ""),
                                        LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, k, ci(c, BLAS_MIN), ""),
                                                     LLVMBuildICmp(c->b, LLVMIntSGE, m, ci(c, BLAS_MIN), ""), ""), "");
        LLVMBuildCondBr(c->b, big, blas, loops);
        enter(c, blas);
        LLVMTypeRef pt[6] = {c->i64, c->i64, c->i64, c->ptr, c->ptr, c->ptr};
        LLVMValueRef args[6] = {r, m, k, A, B, out};
        callf(c, "gradc_dgemm", LLVMVoidTypeInContext(c->ctx), pt, 6, args);
        LLVMBuildBr(c->b, done);
        enter(c, loops);
    }
    /* i-p-j order: each out entry sums its products in p order (as a plain
     * dot product would) while the inner loop over j vectorises */
    LLVMValueRef i = loop_begin(c, &li, ci(c, 0), r);
    LLVMValueRef orow = at(c, out, mul(c, i, m));
    zero(c, orow, m);
    LLVMValueRef p = loop_begin(c, &lp, ci(c, 0), k);
    LLVMValueRef aip = load(c, A, add(c, mul(c, i, k), p));
    LLVMValueRef brow = at(c, B, mul(c, p, m));
    LLVMValueRef j = loop_begin(c, &lj, ci(c, 0), m);
    store(c, fplus(c, load(c, orow, j), LLVMBuildFMul(c->b, aip, load(c, brow, j), "")), orow, j);
    loop_end(c, &lj);
    loop_end(c, &lp);
    loop_end(c, &li);
    LLVMBuildBr(c->b, done);
    enter(c, done);
}

static void gen_softmax(Cg *c, Node *n, LLVMValueRef out)
{
    Node *x = n->args[0];
    LLVMValueRef p = argbuf(c, x), len = count(c, x);
    LLVMValueRef m = reduce_max(c, p, len);
    Loop lp;
    LLVMValueRef k = loop_begin(c, &lp, ci(c, 0), len);
    store(c, libm(c, "exp", 1, LLVMBuildFSub(c->b, load(c, p, k), m, ""), NULL), out, k);
    loop_end(c, &lp);
    Two w = {c, out, NULL, ci(c, 1), NULL};
    LLVMValueRef s = reduce_sum(c, len, f_strided, &w);
    k = loop_begin(c, &lp, ci(c, 0), len);
    store(c, LLVMBuildFDiv(c->b, load(c, out, k), s, ""), out, k);
    loop_end(c, &lp);
}

/* M ops (and EYE, FILL, unfused elementwise nodes) into the buffer out. */
static void gen_into(Cg *c, Node *n, LLVMValueRef out)
{
    Node *x = n->nargs ? n->args[0] : NULL;
    Loop li, lj;
    LLVMValueRef i, j;
    if (kind_of(n) == OK_U || kind_of(n) == OK_B || n->op == OP_FILL) {
        for (int a = 0; a < n->nargs; a++)
            prepare(c, n->args[a]);
        i = loop_begin(c, &li, ci(c, 0), count(c, n));
        store(c, elem_op(c, n, i), out, i);
        loop_end(c, &li);
        return;
    }
    switch (n->op) {
    case OP_EYE:
    case OP_DIAGM: {
        LLVMValueRef d = rows(c, n), src = x ? argbuf(c, x) : NULL;
        zero(c, out, mul(c, d, d));
        i = loop_begin(c, &li, ci(c, 0), d);
        store(c, src ? load(c, src, i) : cf(c, 1), out, mul(c, i, add(c, d, ci(c, 1))));
        loop_end(c, &li);
        return;
    }
    case OP_DIAGV: {
        LLVMValueRef d = rows(c, n), src = argbuf(c, x);
        i = loop_begin(c, &li, ci(c, 0), d);
        store(c, load(c, src, mul(c, i, add(c, d, ci(c, 1)))), out, i);
        loop_end(c, &li);
        return;
    }
    case OP_TRANSPOSE: {
        LLVMValueRef src = argbuf(c, x), r = rows(c, x), m = cols(c, x);
        i = loop_begin(c, &li, ci(c, 0), r);
        j = loop_begin(c, &lj, ci(c, 0), m);
        store(c, load(c, src, add(c, mul(c, i, m), j)), out, add(c, mul(c, j, r), i));
        loop_end(c, &lj);
        loop_end(c, &li);
        return;
    }
    case OP_MATMUL: gen_matmul(c, n, out); return;
    case OP_SOFTMAX: gen_softmax(c, n, out); return;
    case OP_INV: {
        LLVMTypeRef pt[4] = {c->i64, c->ptr, c->ptr, c->ptr};
        LLVMValueRef args[4] = {rows(c, x), argbuf(c, x), out, c->bufp[c->p->scratch[n->id]]};
        callf(c, "gradc_inv", LLVMVoidTypeInContext(c->ctx), pt, 4, args);
        return;
    }
    default:
        internal(c, "operator has no code");
    }
}

static LLVMValueRef gen_scalar(Cg *c, Node *n)
{
    switch (n->op) {
    case OP_CONST:
    case OP_FILL: return cf(c, n->num);
    case OP_EYE: return cf(c, 1);
    case OP_INPUT:
        return c->m->inputs[n->index].ndims == 0 ? c->inputs[n->index] : load(c, c->inputs[n->index], ci(c, 0));
    case OP_SLOT: return LLVMBuildLoad2(c->b, c->f64, c->slotvar[n->index], "");
    case OP_DIMVAL: return LLVMBuildSIToFP(c->b, c->dims[n->index], c->f64, "");
    case OP_COTAN: /* NULL: a cotangent of 1 */
        return LLVMBuildLoad2(c->b, c->f64, sel(c, LLVMBuildIsNull(c->b, c->cot, ""), c->one, c->cot), "");
    case OP_TRANSPOSE:
    case OP_DIAGV:
    case OP_DIAGM: return get(c, n->args[0]);
    default: break;
    }
    if (kind_of(n) == OK_U)
        return apply1(c, n->op, get(c, n->args[0]));
    if (kind_of(n) == OK_B)
        return apply2(c, n->op, get(c, n->args[0]), get(c, n->args[1]));
    LLVMValueRef r = gen_reduction(c, n);
    if (r)
        return r;
    /* inv or softmax of a 1×1: the general code on one entry */
    LLVMValueRef out = alloca_(c, c->f64);
    gen_into(c, n, out);
    return LLVMBuildLoad2(c->b, c->f64, out, "");
}

static LLVMValueRef gen_buffer(Cg *c, Node *n)
{
    switch (n->op) {
    case OP_INPUT: return c->inputs[n->index];
    case OP_SLOT: return c->bufp[c->p->slotbuf[n->index]];
    case OP_COTAN: return c->cot;
    case OP_TRANSPOSE:
        if (is_alias(n))
            return get(c, n->args[0]);
        break;
    default: break;
    }
    int b = c->p->buf[n->id];
    if (b < 0) {
        internal(c, "a fused value has no buffer");
        return LLVMConstNull(c->ptr);
    }
    gen_into(c, n, c->bufp[b]);
    return c->bufp[b];
}

/* ---- matrix–vector products, one pass per matrix ---- */

/* One term of a pass: out += kc * op(M) * vec. */
typedef struct PassTerm {
    const Term *t;
    Node *vec;
    LLVMValueRef v, out, kc; /* vec's entries (NULL for a FILL), the result, the factor */
    LLVMValueRef acc, lanes; /* M*vec: the row's sum, its LANES partial sums (allocas) */
    LLVMValueRef y;          /* M'*vec: kc * vec[i] for the current row i */
} PassTerm;

static LLVMTypeRef vec_t(Cg *c) { return LLVMVectorType(c->f64, LANES); }

static LLVMValueRef vload(Cg *c, LLVMValueRef p, LLVMValueRef k)
{
    LLVMValueRef v = LLVMBuildLoad2(c->b, vec_t(c), at(c, p, k), "");
    LLVMSetAlignment(v, 8);
    return v;
}
static void vstore(Cg *c, LLVMValueRef v, LLVMValueRef p, LLVMValueRef k)
{
    LLVMSetAlignment(LLVMBuildStore(c->b, v, at(c, p, k)), 8);
}
static LLVMValueRef splat(Cg *c, LLVMValueRef x)
{
    LLVMValueRef v = LLVMBuildInsertElement(c->b, LLVMGetPoison(vec_t(c)), x, LLVMConstInt(c->i32, 0, 0), "");
    return LLVMBuildShuffleVector(c->b, v, LLVMGetPoison(vec_t(c)), LLVMConstNull(LLVMVectorType(c->i32, LANES)), "");
}

/* LANES entries of a product's vector from k on (a FILL: its constant). */
static LLVMValueRef vec_lanes(Cg *c, PassTerm *t, LLVMValueRef k)
{
    return t->v ? vload(c, t->v, k) : splat(c, cf(c, t->vec->num));
}
static LLVMValueRef vec_at(Cg *c, PassTerm *t, LLVMValueRef k)
{
    return t->v ? load(c, t->v, k) : cf(c, t->vec->num);
}

/* Entry j of a row in every term: acc += row[j] * vec[j], or
 * out[j] += row[j] * y. */
static void pass_entry(Cg *c, PassTerm *ts, int nt, LLVMValueRef row, LLVMValueRef j)
{
    LLVMValueRef a = load(c, row, j);
    for (int t = 0; t < nt; t++) {
        if (ts[t].t->trans) {
            store(c, fplus(c, load(c, ts[t].out, j), LLVMBuildFMul(c->b, a, ts[t].y, "")), ts[t].out, j);
        } else {
            LLVMValueRef s = LLVMBuildLoad2(c->b, c->f64, ts[t].acc, "");
            LLVMBuildStore(c->b, fplus(c, s, LLVMBuildFMul(c->b, a, vec_at(c, &ts[t], j), "")), ts[t].acc);
        }
    }
}

/* One read of M (R×C, row-major) for every term that reads it.  A row's
 * dot product (M*vec) is summed as reduce_sum sums: LANES partial sums,
 * combined as (s0 + s1) + (s2 + s3), then the remainder one by one; here
 * the lanes are one vector register.  M'*vec accumulates row by row into
 * its result (a sum in row order), from the same loaded entries. */
static void gen_pass(Cg *c, Node *M, PassTerm *ts, int nt)
{
    LLVMValueRef A = get(c, M), R = rows(c, M), C = cols(c, M);
    LLVMTypeRef vt = vec_t(c);
    for (int t = 0; t < nt; t++)
        if (!ts[t].t->trans) {
            ts[t].acc = alloca_(c, c->f64);
            ts[t].lanes = alloca_(c, vt);
        }
    LLVMValueRef blocks = LLVMBuildSDiv(c->b, C, ci(c, LANES), "");
    Loop li, lj;
    LLVMValueRef i = loop_begin(c, &li, ci(c, 0), R);
    LLVMValueRef row = at(c, A, mul(c, i, C));
    for (int t = 0; t < nt; t++) {
        if (ts[t].t->trans)
            ts[t].y = LLVMBuildFMul(c->b, ts[t].kc, vec_at(c, &ts[t], i), "");
        else
            LLVMBuildStore(c->b, LLVMConstNull(vt), ts[t].lanes);
    }
    LLVMValueRef jb = loop_begin(c, &lj, ci(c, 0), blocks);
    LLVMValueRef j = mul(c, jb, ci(c, LANES));
    LLVMValueRef a = vload(c, row, j);
    for (int t = 0; t < nt; t++) {
        if (ts[t].t->trans) {
            LLVMValueRef o = fplus(c, vload(c, ts[t].out, j), LLVMBuildFMul(c->b, a, splat(c, ts[t].y), ""));
            vstore(c, o, ts[t].out, j);
        } else {
            LLVMValueRef s = LLVMBuildLoad2(c->b, vt, ts[t].lanes, "");
            LLVMBuildStore(c->b, fplus(c, s, LLVMBuildFMul(c->b, a, vec_lanes(c, &ts[t], j), "")), ts[t].lanes);
        }
    }
    loop_end(c, &lj);
    for (int t = 0; t < nt; t++) {
        if (ts[t].t->trans)
            continue;
        LLVMValueRef s = LLVMBuildLoad2(c->b, vt, ts[t].lanes, ""), l[LANES];
        for (int k = 0; k < LANES; k++)
            l[k] = LLVMBuildExtractElement(c->b, s, LLVMConstInt(c->i32, (unsigned)k, 0), "");
        LLVMBuildStore(c->b, fplus(c, fplus(c, l[0], l[1]), fplus(c, l[2], l[3])), ts[t].acc);
    }
    j = loop_begin(c, &lj, mul(c, blocks, ci(c, LANES)), C);
    pass_entry(c, ts, nt, row, j);
    loop_end(c, &lj);
    for (int t = 0; t < nt; t++) {
        if (ts[t].t->trans)
            continue;
        LLVMValueRef s = LLVMBuildFMul(c->b, ts[t].kc, LLVMBuildLoad2(c->b, c->f64, ts[t].acc, ""), "");
        store(c, fplus(c, load(c, ts[t].out, i), s), ts[t].out, i);
    }
    loop_end(c, &li);
}

/* Can n be had without computing anything that could need a product? */
static bool available(Cg *c, Node *n)
{
    switch (n->op) {
    case OP_INPUT: case OP_SLOT: case OP_COTAN: case OP_CONST: case OP_FILL: case OP_DIMVAL: return true;
    default: return c->cache[n->id].v || (is_alias(n) && available(c, n->args[0]));
    }
}

static bool mv_ready(Cg *c, const Mv *v)
{
    bool ok = available(c, v->vec);
    for (int t = 0; t < v->nterms && ok; t++)
        ok = (!v->terms[t].m || available(c, v->terms[t].m)) && (!v->terms[t].coef || available(c, v->terms[t].coef));
    return ok;
}

/* Computes n, with the products of its group whose inputs are at hand (so
 * nothing is computed out of order): inputs first, results zeroed, the
 * identity terms, then one pass per distinct matrix. */
static void gen_mv(Cg *c, Node *n)
{
    Plan *p = c->p;
    int g = p->mv[n->id]->group, nn = c->m->ir->nnodes, nt = 0;
    PassTerm *ts = NULL;
    VEC(Node *) members = {0};
    Mv *self = p->mv[n->id];
    if (self->vec->op != OP_FILL)
        get(c, self->vec);
    for (int t = 0; t < self->nterms; t++) {
        if (self->terms[t].m)
            get(c, self->terms[t].m);
        if (self->terms[t].coef)
            get(c, self->terms[t].coef);
    }
    vec_push(c->a, &members, n);
    for (int i = 0; i < nn; i++)
        if (i != n->id && p->nodes[i] && p->mv[i] && p->mv[i]->group == g && !c->cache[i].v &&
            mv_ready(c, p->mv[i]))
            vec_push(c->a, &members, p->nodes[i]);
    for (int i = 0; i < members.len; i++)
        nt += p->mv[members.data[i]->id]->nterms;
    ts = arena_alloc(c->a, sizeof *ts * (size_t)(nt + 1));
    nt = 0;
    for (int i = 0; i < members.len; i++) {
        Node *x = members.data[i];
        Mv *v = p->mv[x->id];
        LLVMValueRef vp = v->vec->op == OP_FILL ? NULL : argbuf(c, v->vec);
        LLVMValueRef out = c->bufp[p->buf[x->id]];
        for (int t = 0; t < v->nterms; t++) {
            const Term *tm = &v->terms[t];
            if (tm->m)
                get(c, tm->m);
            LLVMValueRef kc = cf(c, tm->k);
            if (tm->coef)
                kc = LLVMBuildFMul(c->b, kc, get(c, tm->coef), "");
            ts[nt++] = (PassTerm){tm, v->vec, vp, out, kc, NULL, NULL, NULL};
        }
    }
    for (int i = 0; i < members.len; i++)
        zero(c, c->bufp[p->buf[members.data[i]->id]], count(c, members.data[i]));
    for (int t = 0; t < nt; t++) {
        if (ts[t].t->m)
            continue;
        Loop lp;
        LLVMValueRef k = loop_begin(c, &lp, ci(c, 0), count(c, ts[t].vec));
        LLVMValueRef y = LLVMBuildFMul(c->b, ts[t].kc, vec_at(c, &ts[t], k), "");
        store(c, fplus(c, load(c, ts[t].out, k), y), ts[t].out, k);
        loop_end(c, &lp);
    }
    /* one pass per matrix, over every term that reads it */
    bool *done = arena_alloc(c->a, (size_t)nt + 1);
    PassTerm *same = arena_alloc(c->a, sizeof *same * (size_t)(nt + 1));
    for (int t = 0; t < nt; t++) {
        if (done[t] || !ts[t].t->m)
            continue;
        int ns = 0;
        for (int u = t; u < nt; u++)
            if (!done[u] && ts[u].t->m == ts[t].t->m) {
                done[u] = true;
                same[ns++] = ts[u];
            }
        gen_pass(c, ts[t].t->m, same, ns);
    }
    for (int i = 0; i < members.len; i++) {
        Node *x = members.data[i];
        c->cache[x->id] = (Val){c->bufp[p->buf[x->id]], c->depth};
    }
}

/* n's value: a double (1×1) or a pointer to its entries; cached. */
static LLVMValueRef get(Cg *c, Node *n)
{
    if (c->cache[n->id].v)
        return c->cache[n->id].v;
    if (c->p->mv[n->id]) {
        gen_mv(c, n);
        return c->cache[n->id].v;
    }
    if (is_fused(c->p, n)) {
        internal(c, "a fused value used as a whole");
        return is_scalar(n) ? cf(c, 0) : LLVMConstNull(c->ptr);
    }
    LLVMValueRef v = is_scalar(n) ? gen_scalar(c, n) : gen_buffer(c, n);
    c->cache[n->id] = (Val){v, c->depth};
    return v;
}

/* ===================================================================== */
/* Statements                                                            */
/* ===================================================================== */

/* dst[k] = x[k] (or += when add), for every entry. */
static void store_all(Cg *c, Node *x, LLVMValueRef dst, bool addto)
{
    Loop lp;
    LLVMValueRef k = loop_begin(c, &lp, ci(c, 0), count(c, x));
    LLVMValueRef v = elem(c, x, k);
    store(c, addto ? fplus(c, load(c, dst, k), v) : v, dst, k);
    loop_end(c, &lp);
}

static bool reads_other(const Node *x, int n, const int *slots, int self)
{
    for (int j = 0; j < n; j++)
        if (j != self && node_reads_slot(x, slots[j]))
            return true;
    return false;
}

/* slots[i] = vals[i] for all i, in parallel: every value is computed (into
 * the slot's shadow buffer when a later store could clobber what it reads)
 * before any slot is written. */
static void assign(Cg *c, int n, const int *slots, Node **vals)
{
    LLVMValueRef *v = arena_alloc(c->a, sizeof *v * (size_t)(n + 1));
    bool *direct = arena_alloc(c->a, (size_t)n + 1);
    for (int i = 0; i < n; i++) {
        Node *x = vals[i];
        int s = slots[i];
        if (c->p->slotbuf[s] < 0) {
            v[i] = get(c, x);
            continue;
        }
        prepare(c, x);
        bool other = reads_other(x, n, slots, i);
        if (!other && is_fused(c->p, x)) {
            direct[i] = true; /* reads entry k of its own slot at most */
        } else if (other) {
            v[i] = c->bufp[c->p->shadow[s]];
            store_all(c, x, v[i], false);
        } else {
            v[i] = get(c, x);
        }
    }
    for (int i = 0; i < n; i++) {
        Node *x = vals[i];
        int s = slots[i];
        if (c->p->slotbuf[s] < 0) {
            LLVMBuildStore(c->b, v[i], c->slotvar[s]);
        } else if (direct[i]) {
            store_all(c, x, c->bufp[c->p->slotbuf[s]], false);
        } else if (!(x->op == OP_SLOT && x->index == s)) {
            Loop lp;
            LLVMValueRef k = loop_begin(c, &lp, ci(c, 0), count(c, x));
            store(c, load(c, v[i], k), c->bufp[c->p->slotbuf[s]], k);
            loop_end(c, &lp);
        }
    }
    SlotSet *w = slotset_new(c->a);
    for (int i = 0; i < n; i++)
        slotset_add(w, slots[i]);
    invalidate(c, w);
}

static void store_scalar_slot(Cg *c, int s, LLVMValueRef v)
{
    LLVMBuildStore(c->b, v, c->slotvar[s]);
    invalidate_slot(c, s);
}

static void gen_block(Cg *c, const Block *b);

static LLVMValueRef truth(Cg *c, Node *cond)
{
    return fcmp(c, LLVMRealUNE, get(c, cond), cf(c, 0));
}

static void gen_if(Cg *c, const Stmt *s)
{
    LLVMBasicBlockRef yes = block(c, "then"), no = block(c, "else"), join = block(c, "endif");
    LLVMBuildCondBr(c->b, truth(c, s->cond), yes, no);
    enter(c, yes);
    scope_push(c);
    gen_block(c, s->then_block);
    assign(c, s->n, s->slots, s->then_vals);
    scope_pop(c);
    LLVMBuildBr(c->b, join);
    enter(c, no);
    scope_push(c);
    gen_block(c, s->else_block);
    assign(c, s->n, s->slots, s->else_vals);
    scope_pop(c);
    LLVMBuildBr(c->b, join);
    enter(c, join);
}

/* Values cached before a loop that read a slot the loop writes are stale
 * from its second iteration on. */
static void invalidate_loop(Cg *c, const Stmt *s)
{
    SlotSet *w = slotset_new(c->a);
    stmt_writes(s, w);
    invalidate(c, w);
}

static void gen_while(Cg *c, const Stmt *s)
{
    assign(c, s->n, s->slots, s->vals);
    invalidate_loop(c, s);
    int index = c->info->nwhiles++;
    Loc *locs = arena_alloc(c->a, sizeof *locs * (size_t)c->info->nwhiles);
    if (index)
        memcpy(locs, c->info->whiles, sizeof *locs * (size_t)index);
    locs[index] = s->loc;
    c->info->whiles = locs;

    LLVMValueRef iter = alloca_(c, c->i64);
    LLVMBuildStore(c->b, ci(c, 0), iter);
    LLVMBasicBlockRef head = block(c, "while"), check = block(c, "while.check"),
                      over = block(c, "while.maxiter"), body = block(c, "while.body"),
                      done = block(c, "while.end");
    LLVMBuildBr(c->b, head);
    enter(c, head);
    scope_push(c);
    LLVMBuildCondBr(c->b, truth(c, s->cond), check, done);
    scope_pop(c);
    enter(c, check);
    LLVMValueRef it = LLVMBuildLoad2(c->b, c->i64, iter, "");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, it, ci(c, c->max_iter), ""), over, body);
    enter(c, over);
    LLVMBuildStore(c->b, LLVMConstInt(c->i32, (unsigned)index, 0), c->where);
    fail_with(c, GRADC_EMAXITER);
    enter(c, body);
    scope_push(c);
    gen_block(c, s->body);
    assign(c, s->n, s->slots, s->next);
    scope_pop(c);
    LLVMBuildStore(c->b, add(c, it, ci(c, 1)), iter);
    LLVMBuildBr(c->b, head);
    enter(c, done);
    if (s->count_slot >= 0)
        store_scalar_slot(c, s->count_slot,
                          LLVMBuildSIToFP(c->b, LLVMBuildLoad2(c->b, c->i64, iter, ""), c->f64, ""));
}

static void gen_for(Cg *c, const Stmt *s)
{
    assign(c, s->n, s->slots, s->vals);
    LLVMValueRef n = trips(c, get(c, s->count));
    invalidate_loop(c, s);
    Loop lp;
    LLVMValueRef t = loop_begin(c, &lp, ci(c, 0), n);
    scope_push(c);
    if (s->index_slot >= 0) {
        LLVMValueRef i = s->reverse ? LLVMBuildSub(c->b, n, t, "") : add(c, t, ci(c, 1));
        store_scalar_slot(c, s->index_slot, LLVMBuildSIToFP(c->b, i, c->f64, ""));
    }
    gen_block(c, s->body);
    assign(c, s->n, s->slots, s->next);
    scope_pop(c);
    loop_end(c, &lp);
}

/* The work stack: entries are copied to and from stack[sp..], sp counted in
 * doubles; its size was checked at entry, so no bound is tested here. */
static LLVMValueRef stack_at(Cg *c) { return at(c, c->stack, LLVMBuildLoad2(c->b, c->i64, c->sp, "")); }

static void stack_move(Cg *c, LLVMValueRef sp) { LLVMBuildStore(c->b, sp, c->sp); }

static void push_stack(Cg *c, const Stmt *s)
{
    for (int i = 0; i < s->n; i++) {
        Node *x = s->vals[i];
        LLVMValueRef top = stack_at(c), n = count(c, x);
        if (is_scalar(x))
            LLVMBuildStore(c->b, get(c, x), top);
        else
            LLVMBuildMemCpy(c->b, top, 8, get(c, x), 8, mul(c, n, ci(c, 8)));
        stack_move(c, add(c, LLVMBuildLoad2(c->b, c->i64, c->sp, ""), n));
    }
}

static void pop_stack(Cg *c, const Stmt *s)
{
    for (int i = s->n - 1; i >= 0; i--) {
        int sl = s->slots[i];
        Shape sh = c->m->ir->slots.data[sl].shape;
        LLVMValueRef n = mul(c, dimv(c, sh.rows), dimv(c, sh.cols));
        stack_move(c, LLVMBuildSub(c->b, LLVMBuildLoad2(c->b, c->i64, c->sp, ""), n, ""));
        LLVMValueRef top = stack_at(c);
        if (c->p->slotbuf[sl] >= 0)
            LLVMBuildMemCpy(c->b, c->bufp[c->p->slotbuf[sl]], 8, top, 8, mul(c, n, ci(c, 8)));
        else
            LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, c->f64, top, ""), c->slotvar[sl]);
        invalidate_slot(c, sl);
    }
}

static void gen_push(Cg *c, const Stmt *s)
{
    if (c->p->stack) {
        push_stack(c, s);
        return;
    }
    LLVMTypeRef pt[3] = {c->ptr, c->ptr, c->i64};
    LLVMValueRef bad = LLVMConstInt(c->i1, 0, 0);
    for (int i = 0; i < s->n; i++) {
        Node *x = s->vals[i];
        LLVMValueRef args[3] = {c->tape, argbuf(c, x), count(c, x)};
        LLVMValueRef st = callf(c, "gradc_tape_push", c->i32, pt, 3, args);
        bad = LLVMBuildOr(c->b, bad, LLVMBuildICmp(c->b, LLVMIntNE, st, LLVMConstInt(c->i32, 0, 0), ""), "");
    }
    LLVMBasicBlockRef oom = block(c, "push.nomem"), ok = block(c, "push.ok");
    LLVMBuildCondBr(c->b, bad, oom, ok);
    enter(c, oom);
    fail_with(c, GRADC_ENOMEM);
    enter(c, ok);
}

static void gen_pop(Cg *c, const Stmt *s)
{
    if (c->p->stack) {
        pop_stack(c, s);
        return;
    }
    LLVMTypeRef pt[3] = {c->ptr, c->ptr, c->i64};
    for (int i = s->n - 1; i >= 0; i--) {
        int sl = s->slots[i];
        Shape sh = c->m->ir->slots.data[sl].shape;
        LLVMValueRef dst = c->p->slotbuf[sl] >= 0 ? c->bufp[c->p->slotbuf[sl]] : c->slotvar[sl];
        LLVMValueRef args[3] = {c->tape, dst, mul(c, dimv(c, sh.rows), dimv(c, sh.cols))};
        callf(c, "gradc_tape_pop", LLVMVoidTypeInContext(c->ctx), pt, 3, args);
        invalidate_slot(c, sl);
    }
}

static void gen_block(Cg *c, const Block *b)
{
    for (int i = 0; b && i < b->n && !c->failed; i++) {
        const Stmt *s = b->stmts[i];
        switch (s->kind) {
        case S_SET: assign(c, s->n, s->slots, s->vals); break;
        case S_IF: gen_if(c, s); break;
        case S_WHILE: gen_while(c, s); break;
        case S_FOR: gen_for(c, s); break;
        case S_PUSH: gen_push(c, s); break;
        case S_POP: gen_pop(c, s); break;
        }
    }
}

/* ===================================================================== */
/* Functions                                                             */
/* ===================================================================== */

static LLVMValueRef ovf(Cg *c, const char *name, LLVMValueRef x, LLVMValueRef y, LLVMValueRef *bad)
{
    LLVMValueRef args[2] = {x, y};
    LLVMValueRef r = intrinsic(c, name, c->i64, 2, args);
    *bad = LLVMBuildOr(c->b, *bad, LLVMBuildExtractValue(c->b, r, 1, ""), "");
    return LLVMBuildExtractValue(c->b, r, 0, "");
}

/* The work stack's peak depth (entries) over block b, from the dimensions:
 * per block the net change and the peak above the start.  A push adds its
 * entries, a pop removes them; an if takes the branch it runs where a
 * later if of the block re-tests its condition (see stack_depth), else the
 * larger net and peak of its branches (an upper bound); a for of K iterations whose body has net d and
 * peak q reaches (K-1)*d + q when d >= 0, else q (the first iteration), and
 * nothing when K = 0.  A reverse loop pops an iteration's values, re-runs
 * the body's inner loops (which push) and reverses them (which pop), so its
 * body's net is negative and its peak that of one re-run. */
typedef struct Depth {
    LLVMValueRef net, peak;
} Depth;

static LLVMValueRef smax(Cg *c, LLVMValueRef x, LLVMValueRef y)
{
    return sel(c, LLVMBuildICmp(c->b, LLVMIntSGT, x, y, ""), x, y);
}

static LLVMValueRef entries(Cg *c, Shape sh, LLVMValueRef *bad)
{
    return ovf(c, "llvm.smul.with.overflow", dimv(c, sh.rows), dimv(c, sh.cols), bad);
}

static Depth stack_depth(Cg *c, const Block *b, LLVMValueRef *bad);

static Depth stmt_depth(Cg *c, const Stmt *s, LLVMValueRef *bad)
{
    LLVMValueRef zero = ci(c, 0), n = zero;
    switch (s->kind) {
    case S_PUSH:
        for (int i = 0; i < s->n; i++)
            n = ovf(c, "llvm.sadd.with.overflow", n, entries(c, s->vals[i]->shape, bad), bad);
        return (Depth){n, n};
    case S_POP:
        for (int i = 0; i < s->n; i++)
            n = ovf(c, "llvm.ssub.with.overflow", n, entries(c, c->m->ir->slots.data[s->slots[i]].shape, bad), bad);
        return (Depth){n, zero};
    case S_FOR: {
        /* stack_sizable: the count is a literal or a dimension */
        LLVMValueRef v = s->count->op == OP_CONST ? cf(c, s->count->num)
                                                  : LLVMBuildSIToFP(c->b, c->dims[s->count->index], c->f64, "");
        LLVMValueRef k = trips(c, v);
        Depth d = stack_depth(c, s->body, bad);
        LLVMValueRef grows = LLVMBuildICmp(c->b, LLVMIntSGE, d.net, zero, "");
        LLVMValueRef reps = sel(c, grows, LLVMBuildSub(c->b, k, ci(c, 1), ""), zero);
        LLVMValueRef peak = ovf(c, "llvm.sadd.with.overflow",
                                ovf(c, "llvm.smul.with.overflow", reps, d.net, bad), d.peak, bad);
        LLVMValueRef none = LLVMBuildICmp(c->b, LLVMIntEQ, k, zero, "");
        return (Depth){ovf(c, "llvm.smul.with.overflow", k, d.net, bad), sel(c, none, zero, peak)};
    }
    default: return (Depth){zero, zero}; /* ifs: stack_depth; a while here records nothing */
    }
}

/* The recording if before b->stmts[i] (an if) that tests the same condition
 * node with none of its slots written in between, or -1: both take the same
 * branch.  That is how the reverse sweep's ifs repeat the forward's test. */
static int same_test(Cg *c, const Block *b, int i)
{
    const Node *cond = b->stmts[i]->cond;
    SlotSet *w = slotset_new(c->a);
    for (int j = i - 1; j >= 0; j--) {
        const Stmt *t = b->stmts[j];
        stmt_writes(t, w);
        for (int k = 0; k < cond->nslots; k++)
            if (slotset_has(w, cond->slots[k]))
                return -1;
        if (t->kind == S_IF && t->cond == cond && stmt_records(t))
            return j;
    }
    return -1;
}

enum { TESTS_MAX = 4 }; /* conditions followed jointly in one block: 16 paths */

/* Each statement is measured once (an if: both branches); then the block is
 * summed along every combination of the conditions its ifs share (a
 * recording if and the reverse's if that pops what it pushed), any other if
 * counting the larger net and peak of its branches. */
static Depth stack_depth(Cg *c, const Block *b, LLVMValueRef *bad)
{
    int n = b ? b->n : 0, ntests = 0;
    Depth *d = arena_alloc(c->a, sizeof *d * (size_t)(n + 1)), *e = arena_alloc(c->a, sizeof *e * (size_t)(n + 1));
    int *test = arena_alloc(c->a, sizeof *test * (size_t)(n + 1));
    for (int i = 0; i < n; i++) {
        const Stmt *s = b->stmts[i];
        test[i] = -1;
        if (!stmt_records(s))
            continue;
        if (s->kind != S_IF) {
            d[i] = stmt_depth(c, s, bad);
            continue;
        }
        d[i] = stack_depth(c, s->then_block, bad);
        e[i] = stack_depth(c, s->else_block, bad);
        int j = same_test(c, b, i);
        if (j >= 0 && test[j] < 0 && ntests < TESTS_MAX)
            test[j] = ntests++;
        if (j >= 0)
            test[i] = test[j];
    }
    Depth r = {ci(c, 0), ci(c, 0)};
    for (int path = 0; path < 1 << ntests; path++) {
        Depth p = {ci(c, 0), ci(c, 0)};
        for (int i = 0; i < n; i++) {
            if (!stmt_records(b->stmts[i]))
                continue;
            Depth x = d[i];
            if (b->stmts[i]->kind == S_IF && test[i] < 0)
                x = (Depth){smax(c, d[i].net, e[i].net), smax(c, d[i].peak, e[i].peak)};
            else if (b->stmts[i]->kind == S_IF && !(path >> test[i] & 1))
                x = e[i];
            p.peak = smax(c, p.peak, ovf(c, "llvm.sadd.with.overflow", p.net, x.peak, bad));
            p.net = ovf(c, "llvm.sadd.with.overflow", p.net, x.net, bad);
        }
        r = path ? (Depth){smax(c, r.net, p.net), smax(c, r.peak, p.peak)} : p;
    }
    return r;
}

/* The bytes of work p needs and each buffer's offset (offs may be NULL;
 * offs[p->bufs.len] is the stack's); *bad: a negative dimension or an
 * overflow anywhere. */
static LLVMValueRef layout(Cg *c, const Plan *p, LLVMValueRef *offs, LLVMValueRef *bad)
{
    *bad = LLVMConstInt(c->i1, 0, 0);
    for (int i = 0; i < c->m->ndims; i++)
        *bad = LLVMBuildOr(c->b, *bad, LLVMBuildICmp(c->b, LLVMIntSLT, c->dims[i], ci(c, 0), ""), "");
    for (int i = 0; i < p->shapes.len; i++) {
        Shape s = p->shapes.data[i];
        ovf(c, "llvm.umul.with.overflow", ovf(c, "llvm.umul.with.overflow", dimv(c, s.rows), dimv(c, s.cols), bad),
            ci(c, 16), bad);
    }
    LLVMValueRef total = ci(c, 0);
    for (int i = 0; i < p->bufs.len; i++) {
        Buf b = p->bufs.data[i];
        LLVMValueRef n = ovf(c, "llvm.umul.with.overflow", dimv(c, b.a), dimv(c, b.b), bad);
        if (b.plus_a)
            n = ovf(c, "llvm.uadd.with.overflow", n, dimv(c, b.a), bad);
        n = ovf(c, "llvm.umul.with.overflow", n, ci(c, 8), bad);
        n = ovf(c, "llvm.uadd.with.overflow", n, ci(c, 63), bad);
        n = LLVMBuildAnd(c->b, n, ci(c, ~(int64_t)63), ""); /* 64-byte aligned buffers */
        if (offs)
            offs[i] = total;
        total = ovf(c, "llvm.uadd.with.overflow", total, n, bad);
    }
    if (p->stack) {
        LLVMValueRef n = ovf(c, "llvm.umul.with.overflow", stack_depth(c, p->f->body, bad).peak, ci(c, 8), bad);
        if (offs)
            offs[p->bufs.len] = total;
        total = ovf(c, "llvm.uadd.with.overflow", total, n, bad);
    }
    *bad = LLVMBuildOr(c->b, *bad, LLVMBuildICmp(c->b, LLVMIntUGT, total, ci(c, INT64_C(1) << 60), ""), "");
    return total;
}

static void types(Cg *c, LLVMContextRef ctx, LLVMModuleRef mod, const Module *m)
{
    c->m = m;
    c->a = m->arena;
    c->ctx = ctx;
    c->mod = mod;
    c->f64 = LLVMDoubleTypeInContext(ctx);
    c->i64 = LLVMInt64TypeInContext(ctx);
    c->i32 = LLVMInt32TypeInContext(ctx);
    c->i8 = LLVMInt8TypeInContext(ctx);
    c->i1 = LLVMInt1TypeInContext(ctx);
    c->ptr = LLVMPointerTypeInContext(ctx, 0);
}

/* impl(dims..., inputs..., cot, out, grads..., flags, work, where) */
static LLVMTypeRef impl_type(Cg *c, int ngrads)
{
    const Module *m = c->m;
    int np = m->ndims + m->ninputs + ngrads + 5, k = 0;
    LLVMTypeRef *pt = arena_alloc(c->a, sizeof *pt * (size_t)np);
    for (int i = 0; i < m->ndims; i++)
        pt[k++] = c->i64;
    for (int i = 0; i < m->ninputs; i++)
        pt[k++] = m->inputs[i].ndims == 0 ? c->f64 : c->ptr;
    pt[k++] = c->ptr;
    pt[k++] = c->ptr;
    for (int i = 0; i < ngrads; i++)
        pt[k++] = c->ptr;
    pt[k++] = c->i32;
    pt[k++] = c->ptr;
    pt[k++] = c->ptr;
    return LLVMFunctionType(c->i32, pt, (unsigned)np, 0);
}

/* Stores the value (when out != NULL) and the gradients at the end. */
static void gen_results(Cg *c)
{
    const Func *f = c->p->f;
    int ng = f->grads ? c->m->nwrt : 0;
    prepare(c, f->value);
    for (int i = 0; i < ng; i++)
        prepare(c, f->grads[i]);
    LLVMBasicBlockRef has = block(c, "out"), next = block(c, "grads");
    LLVMBuildCondBr(c->b, LLVMBuildIsNull(c->b, c->out, ""), next, has);
    enter(c, has);
    if (is_scalar(f->value))
        LLVMBuildStore(c->b, get(c, f->value), c->out);
    else
        store_all(c, f->value, c->out, false);
    LLVMBuildBr(c->b, next);
    enter(c, next);
    if (!ng)
        return;
    LLVMValueRef acc = LLVMBuildICmp(c->b, LLVMIntNE, LLVMBuildAnd(c->b, c->flags, LLVMConstInt(c->i32, 1, 0), ""),
                                     LLVMConstInt(c->i32, 0, 0), "");
    LLVMBasicBlockRef yes = block(c, "accumulate"), no = block(c, "overwrite"), done = block(c, "stored");
    LLVMBuildCondBr(c->b, acc, yes, no);
    for (int addto = 1; addto >= 0; addto--) {
        enter(c, addto ? yes : no);
        for (int i = 0; i < ng; i++) {
            Node *g = f->grads[i];
            if (is_scalar(g)) {
                LLVMValueRef v = get(c, g);
                if (addto)
                    v = fplus(c, LLVMBuildLoad2(c->b, c->f64, c->grads[i], ""), v);
                LLVMBuildStore(c->b, v, c->grads[i]);
            } else {
                store_all(c, g, c->grads[i], addto);
            }
        }
        LLVMBuildBr(c->b, done);
    }
    enter(c, done);
}

static LLVMValueRef gen_impl(Cg *c, Plan *p, const char *name)
{
    const Module *m = c->m;
    int ng = p->f->grads ? m->nwrt : 0, k = 0;
    c->p = p;
    c->fn = LLVMAddFunction(c->mod, name, impl_type(c, ng));
    LLVMSetLinkage(c->fn, LLVMInternalLinkage);
    c->dims = arena_alloc(c->a, sizeof(LLVMValueRef) * (size_t)(m->ndims + 1));
    c->inputs = arena_alloc(c->a, sizeof(LLVMValueRef) * (size_t)(m->ninputs + 1));
    c->grads = arena_alloc(c->a, sizeof(LLVMValueRef) * (size_t)(ng + 1));
    for (int i = 0; i < m->ndims; i++)
        c->dims[i] = LLVMGetParam(c->fn, (unsigned)k++);
    for (int i = 0; i < m->ninputs; i++)
        c->inputs[i] = LLVMGetParam(c->fn, (unsigned)k++);
    c->cot = LLVMGetParam(c->fn, (unsigned)k++);
    c->out = LLVMGetParam(c->fn, (unsigned)k++);
    for (int i = 0; i < ng; i++)
        c->grads[i] = LLVMGetParam(c->fn, (unsigned)k++);
    c->flags = LLVMGetParam(c->fn, (unsigned)k++);
    c->work = LLVMGetParam(c->fn, (unsigned)k++);
    c->where = LLVMGetParam(c->fn, (unsigned)k++);
    c->cache = arena_alloc(c->a, sizeof(Val) * (size_t)(m->ir->nnodes + 1));
    c->depth = 0;

    LLVMBasicBlockRef allocas = block(c, "allocas"), entry = block(c, "entry");
    LLVMBasicBlockRef edim = block(c, "edim"), mal = block(c, "malloc"), nomem = block(c, "nomem"),
                      start = block(c, "start");
    c->cleanup = block(c, "cleanup");
    LLVMPositionBuilderAtEnd(c->ab, allocas);
    enter(c, entry);
    c->status = alloca_(c, c->i32);
    LLVMBuildStore(c->b, LLVMConstInt(c->i32, 0, 0), c->status);
    c->one = alloca_(c, c->f64);
    LLVMBuildStore(c->b, cf(c, 1), c->one);

    /* layout, EDIM, work */
    LLVMValueRef bad, *offs = arena_alloc(c->a, sizeof *offs * (size_t)(p->bufs.len + 1));
    LLVMValueRef total = layout(c, p, offs, &bad);
    LLVMBasicBlockRef fine = block(c, "dims.ok");
    LLVMBuildCondBr(c->b, bad, edim, fine);
    enter(c, edim);
    LLVMBuildRet(c->b, LLVMConstInt(c->i32, GRADC_EDIM, 0));
    enter(c, fine);
    LLVMValueRef given = LLVMBuildIsNotNull(c->b, c->work, "");
    LLVMBuildCondBr(c->b, given, start, mal);
    enter(c, mal);
    LLVMTypeRef i64t = c->i64;
    LLVMValueRef sz = add(c, total, ci(c, 64));
    LLVMValueRef mem = callf(c, "malloc", c->ptr, &i64t, 1, &sz);
    LLVMBasicBlockRef mal_ok = block(c, "malloc.ok");
    LLVMBuildCondBr(c->b, LLVMBuildIsNull(c->b, mem, ""), nomem, mal_ok);
    enter(c, nomem);
    LLVMBuildRet(c->b, LLVMConstInt(c->i32, GRADC_ENOMEM, 0));
    enter(c, mal_ok);
    LLVMBuildBr(c->b, start);
    enter(c, start);
    LLVMValueRef base = LLVMBuildPhi(c->b, c->ptr, "work");
    LLVMValueRef owned = LLVMBuildPhi(c->b, c->i1, "owned");
    LLVMValueRef inb[2] = {c->work, mem}, ino[2] = {LLVMConstInt(c->i1, 0, 0), LLVMConstInt(c->i1, 1, 0)};
    LLVMBasicBlockRef from[2] = {fine, mal_ok};
    LLVMAddIncoming(base, inb, from, 2);
    LLVMAddIncoming(owned, ino, from, 2);
    c->bufp = arena_alloc(c->a, sizeof(LLVMValueRef) * (size_t)(p->bufs.len + 1));
    for (int i = 0; i < p->bufs.len; i++)
        c->bufp[i] = LLVMBuildInBoundsGEP2(c->b, c->i8, base, &offs[i], 1, "");
    if (p->stack) {
        c->stack = LLVMBuildInBoundsGEP2(c->b, c->i8, base, &offs[p->bufs.len], 1, "");
        c->sp = alloca_(c, c->i64);
        LLVMBuildStore(c->b, ci(c, 0), c->sp);
    }

    /* slots start at zero; the tape empty */
    int ns = m->ir->slots.len;
    c->slotvar = arena_alloc(c->a, sizeof(LLVMValueRef) * (size_t)(ns + 1));
    for (int s = 0; s < ns; s++) {
        if (!p->slotused[s])
            continue;
        Shape sh = m->ir->slots.data[s].shape;
        if (p->slotbuf[s] >= 0) {
            zero(c, c->bufp[p->slotbuf[s]], mul(c, dimv(c, sh.rows), dimv(c, sh.cols)));
        } else {
            c->slotvar[s] = alloca_(c, c->f64);
            LLVMBuildStore(c->b, cf(c, 0), c->slotvar[s]);
        }
    }
    LLVMTypeRef tape_t = LLVMArrayType(c->i64, 3);
    if (p->tape) {
        c->tape = alloca_(c, tape_t);
        LLVMBuildStore(c->b, LLVMConstNull(tape_t), c->tape);
    }
    if (p->onesbuf >= 0) {
        /* a NULL cotangent is all ones */
        LLVMValueRef ones = c->bufp[p->onesbuf];
        Node *cn = NULL;
        for (int i = 0; i < m->ir->nnodes && !cn; i++)
            if (p->nodes[i] && p->nodes[i]->op == OP_COTAN && !is_scalar(p->nodes[i]))
                cn = p->nodes[i];
        LLVMBasicBlockRef fill = block(c, "ones"), go = block(c, "ones.done");
        LLVMValueRef isnull = LLVMBuildIsNull(c->b, c->cot, "");
        LLVMBuildCondBr(c->b, isnull, fill, go);
        enter(c, fill);
        Loop lp;
        LLVMValueRef kk = loop_begin(c, &lp, ci(c, 0), count(c, cn));
        store(c, cf(c, 1), ones, kk);
        loop_end(c, &lp);
        LLVMBuildBr(c->b, go);
        enter(c, go);
        c->cot = sel(c, isnull, ones, c->cot);
    }

    gen_block(c, p->f->body);
    if (!c->failed)
        gen_results(c);
    LLVMBuildBr(c->b, c->cleanup);

    enter(c, c->cleanup);
    if (p->tape) {
        LLVMTypeRef pt = c->ptr;
        callf(c, "gradc_tape_free", LLVMVoidTypeInContext(c->ctx), &pt, 1, &c->tape);
    }
    LLVMBasicBlockRef fr = block(c, "free"), ret = block(c, "return");
    LLVMBuildCondBr(c->b, owned, fr, ret);
    enter(c, fr);
    LLVMTypeRef pt = c->ptr;
    callf(c, "free", LLVMVoidTypeInContext(c->ctx), &pt, 1, &base);
    LLVMBuildBr(c->b, ret);
    enter(c, ret);
    LLVMBuildRet(c->b, LLVMBuildLoad2(c->b, c->i32, c->status, ""));
    LLVMBuildBr(c->ab, entry);
    return c->fn;
}

/* The ABI function: its own parameters, forwarded to impl. */
static void gen_abi(Cg *c, LLVMValueRef impl, const char *name, bool grad, bool cotparam)
{
    const Module *m = c->m;
    int ng = grad ? m->nwrt : 0;
    int np = m->ndims + m->ninputs + (cotparam ? 1 : 0) + 1 + ng + (grad ? 1 : 0) + 1, k = 0;
    LLVMTypeRef *pt = arena_alloc(c->a, sizeof *pt * (size_t)np);
    for (int i = 0; i < m->ndims; i++)
        pt[k++] = c->i64;
    for (int i = 0; i < m->ninputs; i++)
        pt[k++] = m->inputs[i].ndims == 0 ? c->f64 : c->ptr;
    while (k < np)
        pt[k++] = c->ptr;
    if (grad)
        pt[np - 2] = c->i32;
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, LLVMFunctionType(c->i32, pt, (unsigned)np, 0));
    LLVMBuilderRef b = c->b;
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
    LLVMValueRef where = LLVMBuildAlloca(b, c->i32, "");
    int na = m->ndims + m->ninputs + 5 + ng, j = 0;
    k = 0;
    LLVMValueRef *args = arena_alloc(c->a, sizeof *args * (size_t)na);
    for (int i = 0; i < m->ndims + m->ninputs; i++)
        args[j++] = LLVMGetParam(fn, (unsigned)k++);
    args[j++] = cotparam ? LLVMGetParam(fn, (unsigned)k++) : LLVMConstNull(c->ptr);
    args[j++] = LLVMGetParam(fn, (unsigned)k++);
    for (int i = 0; i < ng; i++)
        args[j++] = LLVMGetParam(fn, (unsigned)k++);
    args[j++] = grad ? LLVMGetParam(fn, (unsigned)k++) : LLVMConstInt(c->i32, 0, 0);
    args[j++] = LLVMGetParam(fn, (unsigned)k++);
    args[j++] = where;
    LLVMBuildRet(b, LLVMBuildCall2(b, impl_type(c, ng), impl, args, (unsigned)na, ""));
}

/* The JIT's entry: arrays in, unpacked, impl called. */
static void gen_entry(Cg *c, LLVMValueRef impl, const char *name, bool grad)
{
    const Module *m = c->m;
    int ng = grad ? m->nwrt : 0;
    LLVMTypeRef pt[7] = {c->ptr, c->ptr, c->ptr, c->ptr, c->ptr, c->ptr, c->ptr};
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, LLVMFunctionType(c->i32, pt, 7, 0));
    LLVMBuilderRef b = c->b;
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
    int na = m->ndims + m->ninputs + 5 + ng, j = 0;
    LLVMValueRef *args = arena_alloc(c->a, sizeof *args * (size_t)na);
    for (int i = 0; i < m->ndims; i++) {
        LLVMValueRef idx = ci(c, i);
        args[j++] = LLVMBuildLoad2(b, c->i64, LLVMBuildInBoundsGEP2(b, c->i64, LLVMGetParam(fn, 0), &idx, 1, ""), "");
    }
    for (int i = 0; i < m->ninputs; i++) {
        LLVMValueRef idx = ci(c, i);
        LLVMValueRef p = LLVMBuildLoad2(b, c->ptr, LLVMBuildInBoundsGEP2(b, c->ptr, LLVMGetParam(fn, 1), &idx, 1, ""), "");
        args[j++] = m->inputs[i].ndims == 0 ? LLVMBuildLoad2(b, c->f64, p, "") : p;
    }
    args[j++] = LLVMGetParam(fn, 2);
    args[j++] = LLVMGetParam(fn, 3);
    for (int i = 0; i < ng; i++) {
        LLVMValueRef idx = ci(c, i);
        args[j++] = LLVMBuildLoad2(b, c->ptr, LLVMBuildInBoundsGEP2(b, c->ptr, LLVMGetParam(fn, 4), &idx, 1, ""), "");
    }
    args[j++] = LLVMConstInt(c->i32, 0, 0);
    args[j++] = LLVMGetParam(fn, 5);
    args[j++] = LLVMGetParam(fn, 6);
    LLVMBuildRet(b, LLVMBuildCall2(b, impl_type(c, ng), impl, args, (unsigned)na, ""));
}

/* size_t NAME_work_size(dims...): the larger of the two functions' needs;
 * SIZE_MAX for a negative dimension or an overflow. */
static void gen_work_size(Cg *c, const char *name, Plan **plans, int nplans)
{
    const Module *m = c->m;
    LLVMTypeRef *pt = arena_alloc(c->a, sizeof *pt * (size_t)(m->ndims + 1));
    for (int i = 0; i < m->ndims; i++)
        pt[i] = c->i64;
    c->fn = LLVMAddFunction(c->mod, name, LLVMFunctionType(c->i64, pt, (unsigned)m->ndims, 0));
    c->dims = arena_alloc(c->a, sizeof(LLVMValueRef) * (size_t)(m->ndims + 1));
    for (int i = 0; i < m->ndims; i++)
        c->dims[i] = LLVMGetParam(c->fn, (unsigned)i);
    enter(c, block(c, "entry"));
    LLVMValueRef size = ci(c, 0), anybad = LLVMConstInt(c->i1, 0, 0), bad;
    for (int i = 0; i < nplans; i++) {
        LLVMValueRef t = layout(c, plans[i], NULL, &bad);
        anybad = LLVMBuildOr(c->b, anybad, bad, "");
        size = sel(c, LLVMBuildICmp(c->b, LLVMIntUGT, t, size, ""), t, size);
    }
    LLVMBuildRet(c->b, sel(c, anybad, ci(c, -1), size));
}

LLVMModuleRef codegen_module(const Module *m, const CodegenOptions *o, LLVMContextRef ctx,
                             bool entries, CgInfo *info)
{
    Arena *a = m->arena;
    const char *name = o->name;
    LLVMModuleRef mod = LLVMModuleCreateWithNameInContext(name, ctx);
    Cg c = {0};
    types(&c, ctx, mod, m);
    c.info = info;
    info->whiles = NULL;
    info->nwhiles = 0;
    c.max_iter = o->max_iter > 0 ? o->max_iter : GRADC_DEFAULT_MAX_ITER;
    c.b = LLVMCreateBuilderInContext(ctx);
    c.ab = LLVMCreateBuilderInContext(ctx);

    Plan *plans[2];
    int np = 0;
    plans[np++] = plan_func(m, &m->fwd, false);
    bool grad = m->grad.value != NULL;
    if (grad)
        plans[np++] = plan_func(m, &m->grad, true);
    LLVMValueRef fimpl = gen_impl(&c, plans[0], arena_printf(a, "%s.impl", name));
    LLVMValueRef gimpl = grad && !c.failed ? gen_impl(&c, plans[1], arena_printf(a, "%s_grad.impl", name)) : NULL;
    if (!c.failed) {
        gen_abi(&c, fimpl, name, false, false);
        if (grad)
            gen_abi(&c, gimpl, arena_printf(a, "%s_grad", name), true, !is_scalar(m->grad.value));
        gen_work_size(&c, arena_printf(a, "%s_work_size", name), plans, np);
        if (entries) {
            gen_entry(&c, fimpl, arena_printf(a, "%s_entry", name), false);
            if (grad)
                gen_entry(&c, gimpl, arena_printf(a, "%s_grad_entry", name), true);
        }
    }
    LLVMDisposeBuilder(c.b);
    LLVMDisposeBuilder(c.ab);
#ifndef NDEBUG
    char *msg = NULL;
    if (!c.failed && LLVMVerifyModule(mod, LLVMReturnStatusAction, &msg)) {
        diag_plain("internal error: generated LLVM IR does not verify: %.2000s", msg);
        c.failed = true;
    }
    LLVMDisposeMessage(msg);
#endif
    if (c.failed) {
        LLVMDisposeModule(mod);
        return NULL;
    }
    return mod;
}

/* ===================================================================== */
/* Targets and optimisation                                              */
/* ===================================================================== */

static void init_targets(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    LLVMInitializeX86TargetInfo();
    LLVMInitializeX86Target();
    LLVMInitializeX86TargetMC();
    LLVMInitializeX86AsmPrinter();
    LLVMInitializeAArch64TargetInfo();
    LLVMInitializeAArch64Target();
    LLVMInitializeAArch64TargetMC();
    LLVMInitializeAArch64AsmPrinter();
    /* Loop strength reduction is super-linear on the many loop nests of one
     * large generated function: it took 88% of a 17 s JIT compile of a
     * 100-line program (0.6 s without it), and bench/run shows no run-time
     * loss without it (x86 addressing modes already scale the index). */
    static const char *const options[] = {"gradc", "-disable-lsr"};
    LLVMParseCommandLineOptions(2, options, NULL);
}

LLVMTargetMachineRef codegen_target_machine(const char *triple, int opt_level)
{
    init_targets();
    char *t = triple ? LLVMNormalizeTargetTriple(triple) : LLVMGetDefaultTargetTriple();
    char *cpu = triple ? NULL : LLVMGetHostCPUName(), *features = triple ? NULL : LLVMGetHostCPUFeatures();
    LLVMTargetRef target;
    char *err = NULL;
    LLVMTargetMachineRef tm = NULL;
    if (LLVMGetTargetFromTriple(t, &target, &err)) {
        diag_plain("unsupported target '%s': %s", triple ? triple : t, err);
        LLVMDisposeMessage(err);
    } else {
        LLVMCodeGenOptLevel lv = opt_level <= 0 ? LLVMCodeGenLevelNone : opt_level == 1 ? LLVMCodeGenLevelLess
                               : opt_level == 2 ? LLVMCodeGenLevelDefault : LLVMCodeGenLevelAggressive;
        tm = LLVMCreateTargetMachine(target, t, cpu ? cpu : "generic", features ? features : "", lv,
                                     LLVMRelocPIC, LLVMCodeModelDefault);
        if (!tm)
            diag_plain("cannot create a target machine for '%s'", t);
    }
    LLVMDisposeMessage(t);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(features);
    return tm;
}

bool codegen_optimize(LLVMModuleRef mod, LLVMTargetMachineRef tm, int opt_level)
{
    char *t = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(mod, t);
    LLVMDisposeMessage(t);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(mod, td);
    LLVMDisposeTargetData(td);
    char passes[32];
    snprintf(passes, sizeof passes, "default<O%d>", opt_level < 0 ? 0 : opt_level > 3 ? 3 : opt_level);
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(po, opt_level >= 2);
    LLVMPassBuilderOptionsSetSLPVectorization(po, opt_level >= 2);
    LLVMErrorRef e = LLVMRunPasses(mod, passes, tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (e) {
        char *msg = LLVMGetErrorMessage(e);
        diag_plain("internal error: LLVM passes failed: %s", msg);
        LLVMDisposeErrorMessage(msg);
        return false;
    }
    return true;
}
