/* cg.h — what codegen.c and codegen_stmt.c (value and statement emission),
 * layout.c and abi.c (the functions' frames and wrappers) share: the emitter's state
 * and its small LLVM helpers.  Private to the LLVM stage. */
#ifndef GRADC_CG_H
#define GRADC_CG_H

#include "codegen.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "plan.h"

/* LANES: the doubles of a matrix pass's vectors (cgpass.c), one AVX-512
 * register (two AVX2 ones): the hand loops' width */
enum { LANES = 8, BLAS_MIN = 32, SUM_LANES = 16 };

typedef struct Cg {
    const Module *m;
    Arena *a;
    Plan *p;
    CgInfo *info;
    int64_t max_iter;
    int opt_level;        /* -O: at 0 (the JIT's eval) FastISel selects the code, a
                           * block it cannot select goes to SelectionDAG, and nothing
                           * vectorises: sums have one lane, products no llvm.fmuladd */
    bool entries;         /* the JIT's module: its entries pass flags = 0 */
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b, ab;  /* ab: allocas, in the first block */
    LLVMTypeRef f64, i64, i32, i8, i1, ptr;
    LLVMValueRef fn, impl; /* the function being built; the impl it belongs to */
    LLVMValueRef *dims, *inputs, cot, out, *aux, *grads, flags, work, where;
    LLVMValueRef flag;    /* while cg_outlined builds a function with a flag: its parameter */
    LLVMValueRef *bufs, *slotvar, status, tape, one;
    /* buffers of one size are a class (abi.c, layout): buffer i is entry
     * bufidx[i] of class bufcls[i], at clsoff + bufidx * clssize in work;
     * addresses (bufs, clsptr) are made on first use, before addrs_at */
    int *bufcls, *bufidx, ncls;
    LLVMValueRef *clsoff, *clssize, *clsptr, workbase, addrs_at;
    LLVMValueRef stack, sp; /* the work stack and its depth in entries (an alloca) */
    LLVMBasicBlockRef cleanup;
    LLVMValueRef *cache;  /* per node: a double, or a pointer to the entries */
    LLVMValueRef *keptvar;/* per kept node (plan: kept): the alloca its slot's stores update */
    struct SharedEntry *shared; /* per shared node (plan: fuse_shared): its last entry made */
    LLVMValueRef ri, cj;  /* row and column of the elementwise loop being emitted when it
                           * reads a broadcast (NULL: a flat loop, derived from the index) */
    LLVMValueRef rck;     /* that loop's entry index ri*cols + cj: a transpose read at
                           * exactly this index takes ri and cj, else divides */
    int pc;               /* the next point of the plan */
    const Kernel *rest;   /* the value's kernels after the plan's one-pass sum */
    int nrest;
    bool failed;
    /* chunk.c: a point of very many kernels in chunk functions */
    LLVMValueRef env;     /* the chunk environment in work (an impl value) */
    int envlen;           /* its entries so far */
    struct Chunk *ck;     /* the chunk function being built, or NULL */
    struct ChunkTabs *ct; /* what chunks of this impl computed (NULL before the first) */
    LLVMBuilderRef sb;    /* spills, inserted into finished chunks */
} Cg;

/* An entry of a node fused into a kernel that reads it more than once:
 * made once in block at, for index k, and read again there. */
typedef struct SharedEntry {
    LLVMValueRef v, k;
    LLVMBasicBlockRef at;
} SharedEntry;

/* Where the builders are: saved while an internal kernel function is built
 * in the middle of another function (frame_begin … frame_end). */
typedef struct Frame {
    LLVMValueRef fn;
    LLVMBasicBlockRef at, allocas, entry;
} Frame;

/* codegen.c and codegen_stmt.c: emission of values and statements (the
 * bodies of functions) */
void internal(Cg *c, const char *what);
void gen_block(Cg *c, const Block *b);
void gen_results(Cg *c);

/* chunk.c: a point's kernels in chunk functions when it has very many
 * (chunk_wanted); gen emits one kernel.  A node's value in the function
 * being built: node_bound as bound there (NULL: none), node_value also
 * from what an earlier chunk computed or the impl holds (NULL: nowhere);
 * node_bind binds it, node_made records that the function computed it. */
typedef struct Chunk Chunk;
typedef struct ChunkTabs ChunkTabs;
bool chunk_wanted(const Point *pt);
bool chunk_any(const Plan *p);    /* some point of p is chunked: the impl has an env */
void chunk_point(Cg *c, const Point *pt, void (*gen)(Cg *, const Kernel *));
LLVMValueRef chunk_buf(Cg *c, int i);
/* layout.c: buffer i's address in the impl; buffer class k's base */
LLVMValueRef impl_buf(Cg *c, int i);
LLVMValueRef impl_cls(Cg *c, int k);
/* The bytes of work p needs, its buffers' offsets (offs) and the checks on
 * the dimensions (*bad: a negative one or an overflow), at the entry */
LLVMValueRef work_layout(Cg *c, const Plan *p, LLVMValueRef *offs, LLVMValueRef envbytes, LLVMValueRef *bad);
int64_t literal_work(const Plan *p);   /* p's work when it is a literal, else -1 */
/* x op y through an i64 overflow intrinsic ("llvm.smul.with.overflow" …),
 * its overflow bit or-ed into *bad; shape_entries: rows*cols, so checked */
LLVMValueRef checked_op(Cg *c, const char *name, LLVMValueRef x, LLVMValueRef y, LLVMValueRef *bad);
LLVMValueRef shape_entries(Cg *c, Shape sh, LLVMValueRef *bad);
LLVMValueRef node_bound(Cg *c, const Node *n);
LLVMValueRef node_value(Cg *c, const Node *n);
void node_bind(Cg *c, const Node *n, LLVMValueRef v);
void node_made(Cg *c, const Node *n);

/* codegen.c, for codegen_along.c: entry k of n (fused or stored), a pointer
 * to n's entries */
LLVMValueRef cg_elem(Cg *c, Node *n, LLVMValueRef k);
/* entry k of an elementwise node computed from its arguments' entries */
LLVMValueRef cg_elem_op(Cg *c, Node *n, LLVMValueRef k);
LLVMValueRef cg_argbuf(Cg *c, Node *n);
/* n's value as the plan computed it: a double or a pointer to its entries */
LLVMValueRef cg_get(Cg *c, Node *n);
/* a call attribute: the callee (a kernel written once) stays a function */
LLVMAttributeRef cg_noinline(Cg *c);
/* the sum of row i (of cols entries) of x's fused entries */
LLVMValueRef cg_row_sum(Cg *c, Node *x, LLVMValueRef i, LLVMValueRef cols);

/* cgsum.c: the sum of f(k) for k < count (its shapes: see there) */
typedef LLVMValueRef (*ElemFn)(Cg *c, void *ctx, LLVMValueRef k);
LLVMValueRef cg_reduce_sum(Cg *c, LLVMValueRef count, ElemFn f, void *ctx);
typedef void (*FlushFn)(Cg *c, void *ctx);
/* With flush: called after each entry (-O2: the vectoriser then loads a
 * vector's entries before it stores) or, at -O1, after each block of
 * SUM_LANES entries, so that f loads a whole block before anything is
 * stored (stores the block's loads could alias would keep it scalar). */
LLVMValueRef cg_reduce_sum_flush(Cg *c, LLVMValueRef n, ElemFn f, FlushFn flush, void *ctx);
/* the loop whose back edge is latch is not vectorised */
void cg_no_vectorise(Cg *c, LLVMValueRef latch);

/* codegen.c, for codegen_stmt.c: a node's value (1×1) or buffer, the
 * runtime's product into out, whether n's loop runs over rows and columns;
 * codegen_stmt.c, for codegen.c: dst[k] = x[k] for every entry, or dst[k]
 * += x[k] when acc (an i1: the GRADC_ACCUMULATE flag, or a constant; NULL:
 * never) */
LLVMValueRef gen_scalar(Cg *c, Node *n);
LLVMValueRef gen_buffer(Cg *c, Node *n);
void cg_gemm_call(Cg *c, Node *n, const Gemm *g, LLVMValueRef out, double alpha, LLVMValueRef acc);
bool cg_reads_bcast(Cg *c, Node *n, bool top);
void cg_store_all(Cg *c, Node *x, LLVMValueRef dst, LLVMValueRef acc);
void cg_store_map(Cg *c, Node *x, LLVMValueRef out, int slot);
void cg_store_out(Cg *c, Node *x, LLVMValueRef dst, LLVMValueRef acc);
bool cg_reads_slot_buffer(Cg *c, const Node *y, int s);

/* cgoutline.c: a kernel's loop as an internal function "gradc.KIND.KEY" (written once
 * per key: the structure of what it computes, cg_key_node), whose
 * parameters are the dimensions, the leaves' values (bound to them while
 * body builds it; leaf self, if >= 0, is read through extra instead) and
 * extra (a pointer passed to body, or NULL), and flag (an i1, c->flag
 * while body builds, or NULL: no such parameter); called
 * here, not inlined.  Returns the call's value when ret (else void).
 * self -1: extra is work no leaf shares (a plan buffer or a slot's, not
 * taken in place), so it is noalias and the vectoriser checks no overlap;
 * CG_EXTRA_SHARED: the caller's memory, which an input may share. */
enum { CG_EXTRA_SHARED = -2 };
typedef LLVMValueRef (*OutlineFn)(Cg *c, void *ctx, LLVMValueRef extra);
LLVMValueRef cg_outlined(Cg *c, const char *kind, uint64_t key, const NodeVec *leaves, int self,
                         LLVMTypeRef ret, LLVMValueRef extra, LLVMValueRef flag, OutlineFn body, void *ctx);
/* hash h extended by n's structure (FNV-1a; top: n itself is hashed, not
 * taken as a leaf), n's non-fused values appended to leaves; by bytes */
uint64_t cg_key_node(Cg *c, uint64_t h, Node *n, NodeVec *leaves, bool top);
uint64_t cg_key_bytes(uint64_t h, const void *p, size_t n);
/* a shape's dimensions, field by field (Dim has padding) */
uint64_t cg_key_shape(uint64_t h, Shape s);

/* cgpass.c: a K_MATVEC kernel (its products, one pass per matrix) and a
 * K_ROWS kernel (products, a chain on their rows, products of it: one pass) */
void cg_matvec(Cg *c, const Kernel *k);
void cg_rows(Cg *c, const Kernel *k);

/* codegen_along.c: reductions and normalisations along a dimension (SUMD …
 * LOGSOFTMAXD) into out, amax/amin over all entries as a value */
void gen_along(Cg *c, Node *n, LLVMValueRef out);
LLVMValueRef gen_extreme(Cg *c, Node *n);
/* cgslice.c: concatenation and slices (xp, ap, bp: the arguments' entries;
 * r, col: the offsets' values, doubles).  A view (plan.c: is_view) is a
 * pointer into xp; an element, one load; the rest copy into out. */
LLVMValueRef cg_view(Cg *c, const Node *n, LLVMValueRef xp, LLVMValueRef r, LLVMValueRef col);
LLVMValueRef cg_element(Cg *c, const Node *n, LLVMValueRef xp, LLVMValueRef r, LLVMValueRef col);
void cg_block_into(Cg *c, const Node *n, LLVMValueRef out, LLVMValueRef xp, LLVMValueRef r,
                   LLVMValueRef col);
void cg_cat_into(Cg *c, const Node *n, LLVMValueRef out, LLVMValueRef ap, LLVMValueRef bp);
/* Entry k of a pad read through in its consumer's loop: its block's entry,
 * or 0 (all 0 when the block is out of range, as cg_block_into). */
LLVMValueRef cg_pad_elem(Cg *c, Node *pad, LLVMValueRef k);
/* dst (the full matrix of pad's shape) += pad's block gp at its offsets. */
void cg_scatter_add(Cg *c, const Node *pad, LLVMValueRef dst, LLVMValueRef gp, LLVMValueRef r,
                    LLVMValueRef col);

/* ===================================================================== */
/* LLVM helpers                                                          */
/* ===================================================================== */

static inline LLVMValueRef cf(Cg *c, double v) { return LLVMConstReal(c->f64, v); }
static inline LLVMValueRef ci(Cg *c, int64_t v) { return LLVMConstInt(c->i64, (unsigned long long)v, 1); }
static inline LLVMValueRef cbool(Cg *c, bool v) { return LLVMConstInt(c->i1, v, 0); }

static inline LLVMBasicBlockRef block(Cg *c, const char *name)
{
    return LLVMAppendBasicBlockInContext(c->ctx, c->fn, name);
}

static inline void enter(Cg *c, LLVMBasicBlockRef bb) { LLVMPositionBuilderAtEnd(c->b, bb); }

/* Starts an internal function name of type ft (its allocas block and entry
 * block); frame_end closes it and returns the builders to where they were. */
static inline Frame frame_begin(Cg *c, const char *name, LLVMTypeRef ft)
{
    Frame f = {c->fn, LLVMGetInsertBlock(c->b), LLVMGetInsertBlock(c->ab), NULL};
    c->fn = LLVMAddFunction(c->mod, name, ft);
    LLVMSetLinkage(c->fn, LLVMInternalLinkage);
    LLVMPositionBuilderAtEnd(c->ab, LLVMAppendBasicBlockInContext(c->ctx, c->fn, "allocas"));
    f.entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
    LLVMPositionBuilderAtEnd(c->b, f.entry);
    return f;
}

static inline void frame_end(Cg *c, const Frame *f)
{
    LLVMBuildBr(c->ab, f->entry);
    c->fn = f->fn;
    LLVMPositionBuilderAtEnd(c->b, f->at);
    LLVMPositionBuilderAtEnd(c->ab, f->allocas);
}

static inline LLVMValueRef alloca_(Cg *c, LLVMTypeRef t) { return LLVMBuildAlloca(c->ab, t, ""); }

static inline LLVMValueRef at(Cg *c, LLVMValueRef p, LLVMValueRef k)
{
    return LLVMBuildInBoundsGEP2(c->b, c->f64, p, &k, 1, "");
}
static inline LLVMValueRef load(Cg *c, LLVMValueRef p, LLVMValueRef k)
{
    return LLVMBuildLoad2(c->b, c->f64, at(c, p, k), "");
}
static inline void store(Cg *c, LLVMValueRef v, LLVMValueRef p, LLVMValueRef k)
{
    LLVMBuildStore(c->b, v, at(c, p, k));
}

/* i64 arithmetic; x + 0 and x * 1 (vectors' sizes, the first buffer's
 * offset) are x, so that -O0 IR and the optimiser have less to look at */
static inline bool is_int(LLVMValueRef v, long long k)
{
    return LLVMIsAConstantInt(v) && LLVMConstIntGetSExtValue(v) == k;
}
static inline LLVMValueRef add(Cg *c, LLVMValueRef x, LLVMValueRef y)
{
    return is_int(y, 0) ? x : is_int(x, 0) ? y : LLVMBuildAdd(c->b, x, y, "");
}
static inline LLVMValueRef mul(Cg *c, LLVMValueRef x, LLVMValueRef y)
{
    return is_int(y, 1) ? x : is_int(x, 1) ? y : LLVMBuildMul(c->b, x, y, "");
}
static inline LLVMValueRef fplus(Cg *c, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFAdd(c->b, x, y, ""); }

/* A declared external function (libm, the runtime, libc). */
static inline LLVMValueRef callf(Cg *c, const char *name, LLVMTypeRef ret, LLVMTypeRef *pt, int n,
                          LLVMValueRef *args)
{
    LLVMTypeRef ft = LLVMFunctionType(ret, pt, (unsigned)n, 0);
    LLVMValueRef f = LLVMGetNamedFunction(c->mod, name);
    if (!f)
        f = LLVMAddFunction(c->mod, name, ft);
    return LLVMBuildCall2(c->b, ft, f, args, (unsigned)n, "");
}

/* A call of the runtime's function f (codegen.h: GRADC_RUNTIME). */
static inline LLVMValueRef callrt(Cg *c, RtFn f, LLVMTypeRef ret, LLVMTypeRef *pt, int n, LLVMValueRef *args)
{
    return callf(c, rt_names[f], ret, pt, n, args);
}

static inline LLVMValueRef libm(Cg *c, const char *name, int n, LLVMValueRef x, LLVMValueRef y)
{
    LLVMTypeRef pt[2] = {c->f64, c->f64};
    LLVMValueRef args[2] = {x, y};
    return callf(c, name, c->f64, pt, n, args);
}

static inline LLVMValueRef intrinsic(Cg *c, const char *name, LLVMTypeRef t, int n, LLVMValueRef *args)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->mod, id, &t, 1);
    LLVMTypeRef ft = LLVMIntrinsicGetType(c->ctx, id, &t, 1);
    return LLVMBuildCall2(c->b, ft, f, args, (unsigned)n, "");
}
/* |x| as a cleared sign bit, not llvm.fabs: x86 FastISel cannot select
 * the intrinsic, so each one sent the rest of its block to SelectionDAG in
 * eval's -O0 JIT; InstCombine turns this back into llvm.fabs at -O2. */
static inline LLVMValueRef fabs_(Cg *c, LLVMValueRef x)
{
    LLVMValueRef bits = LLVMBuildBitCast(c->b, x, c->i64, "");
    bits = LLVMBuildAnd(c->b, bits, LLVMConstInt(c->i64, INT64_MAX, false), "");
    return LLVMBuildBitCast(c->b, bits, c->f64, "");
}

static inline LLVMValueRef fcmp(Cg *c, LLVMRealPredicate p, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildFCmp(c->b, p, x, y, "");
}
static inline LLVMValueRef sel(Cg *c, LLVMValueRef t, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildSelect(c->b, t, x, y, "");
}

/* What is stored at p for v: v, or *p + v when acc (see cg_store_all).
 * Under a run-time flag one loop serves both: the old entry is loaded either
 * way (the store brings its cache line in anyway) and replaced by -0.0
 * unless acc, so what an overwrite adds v to is never the caller's old
 * contents (which may be any bits: no invalid-operation flag from them),
 * and -0.0 + v is v, -0.0 and NaN included. */
static inline LLVMValueRef acc_value(Cg *c, LLVMValueRef acc, LLVMValueRef p, LLVMValueRef v)
{
    bool known = acc && LLVMIsAConstantInt(acc);
    if (!acc || (known && !LLVMConstIntGetZExtValue(acc)))
        return v;
    LLVMValueRef old = LLVMBuildLoad2(c->b, c->f64, p, "");
    return fplus(c, known ? old : sel(c, acc, old, cf(c, -0.0)), v);
}

/* at -O0 a select, not uitofp: the fast instruction selector has no
 * uitofp of an i1 and would take its slow path for the whole block */
static inline LLVMValueRef b2f(Cg *c, LLVMValueRef t)
{
    return c->opt_level < 1 ? LLVMBuildSelect(c->b, t, cf(c, 1), cf(c, 0), "") : LLVMBuildUIToFP(c->b, t, c->f64, "");
}

/* A counted loop i = lo .. hi-1; loop_end closes it. */
typedef struct Loop {
    LLVMBasicBlockRef head, exit;
    LLVMValueRef i;
} Loop;

static inline LLVMValueRef loop_begin(Cg *c, Loop *l, LLVMValueRef lo, LLVMValueRef hi)
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

static inline void loop_end(Cg *c, Loop *l)
{
    LLVMValueRef next = add(c, l->i, ci(c, 1));
    LLVMBasicBlockRef from = LLVMGetInsertBlock(c->b);
    LLVMAddIncoming(l->i, &next, &from, 1);
    LLVMBuildBr(c->b, l->head);
    enter(c, l->exit);
}

/* A dimension's run-time value: a form in the dimension arguments. */
static inline LLVMValueRef dimv(Cg *c, Dim d)
{
    if (d.sym >= 0)
        return c->dims[d.sym];
    DimView v = dim_view(d);
    LLVMValueRef r = ci(c, v.k);
    for (int i = 0; i < v.n; i++) {
        const int *f;
        int nf = dim_key_factors(dim_view_sym(&v, i), &f);
        LLVMValueRef t = c->dims[f[0]];
        for (int j = 1; j < nf; j++)   /* a product of symbols (kron's shapes) */
            t = LLVMBuildMul(c->b, t, c->dims[f[j]], "");
        t = v.coefs[i] == 1 ? t : LLVMBuildMul(c->b, t, ci(c, v.coefs[i]), "");
        r = v.k == 0 && i == 0 ? t : LLVMBuildAdd(c->b, r, t, "");
    }
    return r;
}
static inline LLVMValueRef rows(Cg *c, const Node *n) { return dimv(c, n->shape.rows); }
static inline LLVMValueRef cols(Cg *c, const Node *n) { return dimv(c, n->shape.cols); }
static inline LLVMValueRef count(Cg *c, const Node *n) { return mul(c, rows(c, n), cols(c, n)); }

/* A loop over the entries k of shape s: flat, or over rows i and columns j
 * (k = i*cols + j, in c->ri and c->cj; c->rck = k) when rc. */
typedef struct Loop2 {
    Loop li, lj;
    bool rc;
    LLVMValueRef ri, cj, rck;   /* the enclosing loop's, restored at the end */
} Loop2;

static inline LLVMValueRef loop2_begin(Cg *c, Loop2 *l, Shape s, bool rc)
{
    l->rc = rc, l->ri = c->ri, l->cj = c->cj, l->rck = c->rck;
    LLVMValueRef r = dimv(c, s.rows), m = dimv(c, s.cols);
    if (!rc)
        return loop_begin(c, &l->li, ci(c, 0), mul(c, r, m));
    c->ri = loop_begin(c, &l->li, ci(c, 0), r);
    c->cj = loop_begin(c, &l->lj, ci(c, 0), m);
    return c->rck = add(c, mul(c, c->ri, m), c->cj);
}

static inline void loop2_end(Cg *c, Loop2 *l)
{
    if (l->rc)
        loop_end(c, &l->lj);
    loop_end(c, &l->li);
    c->ri = l->ri, c->cj = l->cj, c->rck = l->rck;
}

typedef struct Two {
    Cg *c;
    LLVMValueRef p, q, stride, shift;
} Two;

static inline LLVMValueRef f_elem(Cg *c, void *n, LLVMValueRef k) { return cg_elem(c, n, k); }
/* p[k * stride] (the diagonal with stride n + 1) */
static inline LLVMValueRef f_strided(Cg *c, void *t, LLVMValueRef k)
{
    Two *w = t;
    return load(c, w->p, mul(c, k, w->stride));
}

/* The iterations of a for whose count has value v: rounded down; NaN or
 * below 1 runs none (as eval.c). */
static inline LLVMValueRef trips(Cg *c, LLVMValueRef v)
{
    /* floor(v) clamped to [0, 2^62]: clamped first, the conversion's
     * truncation is the floor (floor(v) >= 1 exactly when v >= 1; NaN
     * gives 0), so no llvm.floor, which x86 FastISel cannot select (the
     * rest of its block went to SelectionDAG in eval's -O0 JIT) */
    LLVMValueRef f = sel(c, fcmp(c, LLVMRealOGE, v, cf(c, 1)), v, cf(c, 0));
    f = sel(c, fcmp(c, LLVMRealOGT, f, cf(c, 0x1p62)), cf(c, 0x1p62), f);
    return LLVMBuildFPToSI(c->b, f, c->i64, "");
}

/* Leaves the function with status (cleanup frees what we own). */
static inline void fail_with(Cg *c, int status)
{
    LLVMBuildStore(c->b, LLVMConstInt(c->i32, (unsigned)status, 0), c->status);
    LLVMBuildBr(c->b, c->cleanup);
}

/* Buffer i's address (computed at entry from the layout; a chunk imports it). */
static inline LLVMValueRef bufp(Cg *c, int i) { return c->ck ? chunk_buf(c, i) : impl_buf(c, i); }

static inline void zero(Cg *c, LLVMValueRef p, LLVMValueRef ndoubles)
{
    LLVMBuildMemSet(c->b, p, LLVMConstInt(c->i8, 0, 0), mul(c, ndoubles, ci(c, 8)), 8);
}

/* dst[0..ndoubles) = src[0..ndoubles); they may overlap */
static inline void copy_entries(Cg *c, LLVMValueRef dst, LLVMValueRef src, LLVMValueRef ndoubles)
{
    LLVMBuildMemMove(c->b, dst, 8, src, 8, mul(c, ndoubles, ci(c, 8)));
}

/* A buffer into an output: copied, or under a run-time acc copied or
 * added by the runtime (gradc_store: one call, no loop of our own). */
static inline void store_entries(Cg *c, LLVMValueRef dst, LLVMValueRef src, LLVMValueRef ndoubles,
                                 LLVMValueRef acc)
{
    if (!acc) {
        copy_entries(c, dst, src, ndoubles);
        return;
    }
    LLVMTypeRef pt[4] = {c->i32, c->i64, c->ptr, c->ptr};
    LLVMValueRef args[4] = {LLVMBuildZExt(c->b, acc, c->i32, ""), ndoubles, src, dst};
    callrt(c, RT_store, LLVMVoidTypeInContext(c->ctx), pt, 4, args);
}

#endif
