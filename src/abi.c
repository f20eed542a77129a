/* abi.c — the functions of a module around the emitted bodies: the
 * internal impl's frame (work, slots, tape, cleanup; its entry's layout
 * and checks are layout.c's), the ABI wrappers of spec §7 and the JIT's
 * entries, NAME_work_size, the second order's NAME_hvp and NAME_hessian,
 * and codegen_module, which builds them all. */
#include "cg.h"

#include <gradc/runtime.h>

#include <stdlib.h>
#include <string.h>

/* ===================================================================== */
/* Functions                                                             */
/* ===================================================================== */

/* Called in the block that found no work space given: malloc(total + 64)
 * (64 for the alignment), GRADC_ENOMEM through nomem when that fails, else on
 * to start through mal_ok; leaves the builder in start. */
static LLVMValueRef work_malloc(Cg *c, LLVMValueRef total, LLVMBasicBlockRef nomem, LLVMBasicBlockRef mal_ok,
                                LLVMBasicBlockRef start)
{
    LLVMTypeRef i64t = c->i64;
    LLVMValueRef sz = add(c, total, ci(c, 64));
    LLVMValueRef mem = callf(c, "malloc", c->ptr, &i64t, 1, &sz);
    LLVMBuildCondBr(c->b, LLVMBuildIsNull(c->b, mem, ""), nomem, mal_ok);
    enter(c, nomem);
    LLVMBuildRet(c->b, LLVMConstInt(c->i32, GRADC_ENOMEM, 0));
    enter(c, mal_ok);
    LLVMBuildBr(c->b, start);
    enter(c, start);
    return mem;
}

/* The end of an entry: free work if the function allocated it (owned),
 * then return the status kept in status. */
static void free_and_return(Cg *c, LLVMValueRef owned, LLVMValueRef base, LLVMValueRef status)
{
    LLVMBasicBlockRef fr = block(c, "free"), ret = block(c, "return");
    LLVMBuildCondBr(c->b, owned, fr, ret);
    enter(c, fr);
    LLVMTypeRef pt = c->ptr;
    callf(c, "free", LLVMVoidTypeInContext(c->ctx), &pt, 1, &base);
    LLVMBuildBr(c->b, ret);
    enter(c, ret);
    LLVMBuildRet(c->b, LLVMBuildLoad2(c->b, c->i32, status, ""));
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

/* impl(dims..., inputs..., cot, out, aux..., grads..., flags, work, where) */
static LLVMTypeRef impl_type(Cg *c, int ngrads)
{
    const Module *m = c->m;
    int np = m->ndims + m->ninputs + m->naux + ngrads + 5, k = 0;
    LLVMTypeRef *pt = arena_alloc(c->a, sizeof *pt * (size_t)np);
    for (int i = 0; i < m->ndims; i++)
        pt[k++] = c->i64;
    for (int i = 0; i < m->ninputs; i++)
        pt[k++] = m->inputs[i].ndims == 0 ? c->f64 : c->ptr;
    pt[k++] = c->ptr;
    pt[k++] = c->ptr;
    for (int i = 0; i < m->naux + ngrads; i++)
        pt[k++] = c->ptr;
    pt[k++] = c->i32;
    pt[k++] = c->ptr;
    pt[k++] = c->ptr;
    return LLVMFunctionType(c->i32, pt, (unsigned)np, 0);
}

/* Stores the value (when out != NULL) and the gradients at the end. */

static LLVMValueRef gen_impl(Cg *c, Plan *p, const char *name)
{
    const Module *m = c->m;
    int ng = p->f->grads ? m->nwrt : 0, k = 0;
    c->p = p;
    c->fn = c->impl = LLVMAddFunction(c->mod, name, impl_type(c, ng));
    LLVMSetLinkage(c->fn, LLVMInternalLinkage);
    c->dims = arena_alloc(c->a, sizeof(LLVMValueRef) * (size_t)(m->ndims + 1));
    c->inputs = arena_alloc(c->a, sizeof(LLVMValueRef) * (size_t)(m->ninputs + 1));
    c->grads = arena_alloc(c->a, sizeof(LLVMValueRef) * (size_t)(ng + 1));
    c->aux = arena_alloc(c->a, sizeof(LLVMValueRef) * (size_t)(m->naux + 1));
    for (int i = 0; i < m->ndims; i++)
        c->dims[i] = LLVMGetParam(c->fn, (unsigned)k++);
    for (int i = 0; i < m->ninputs; i++)
        c->inputs[i] = LLVMGetParam(c->fn, (unsigned)k++);
    c->cot = LLVMGetParam(c->fn, (unsigned)k++);
    c->out = LLVMGetParam(c->fn, (unsigned)k++);
    for (int i = 0; i < m->naux; i++)
        c->aux[i] = LLVMGetParam(c->fn, (unsigned)k++);
    for (int i = 0; i < ng; i++)
        c->grads[i] = LLVMGetParam(c->fn, (unsigned)k++);
    c->flags = c->entries ? LLVMConstInt(c->i32, 0, 0) : LLVMGetParam(c->fn, (unsigned)k);
    k++;
    c->work = LLVMGetParam(c->fn, (unsigned)k++);
    c->where = LLVMGetParam(c->fn, (unsigned)k++);
    c->cache = arena_alloc(c->a, sizeof(LLVMValueRef) * (size_t)(m->ir->nnodes + 1));
    c->keptvar = arena_alloc(c->a, sizeof(LLVMValueRef) * (size_t)(m->ir->nnodes + 1));
    c->shared = arena_alloc(c->a, sizeof(SharedEntry) * (size_t)(m->ir->nnodes + 1));
    c->pc = 0;

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
    /* the chunk environment's size is known when the body is done: a
     * placeholder until then */
    bool chunks = chunk_any(p);
    LLVMValueRef envbytes = chunks ? LLVMBuildFreeze(c->b, ci(c, 0), "envbytes") : NULL;
    LLVMValueRef bad, *offs = arena_alloc(c->a, sizeof *offs * (size_t)(p->bufs.len + 2));
    LLVMValueRef total = work_layout(c, p, offs, envbytes, &bad);
    LLVMBasicBlockRef fine = block(c, "dims.ok");
    LLVMBuildCondBr(c->b, bad, edim, fine);
    enter(c, edim);
    LLVMBuildRet(c->b, LLVMConstInt(c->i32, GRADC_EDIM, 0));
    enter(c, fine);
    /* a chunked function's environment sits after the buffers in work, a
     * size known only after the chunks are emitted: no frame for it */
    int64_t local = chunks ? -1 : literal_work(p);
    LLVMValueRef frame = c->work;
    if (local >= 0) {
        frame = LLVMBuildAlloca(c->ab, LLVMArrayType(c->i8, (unsigned)(local ? local : 1)), "frame");
        LLVMSetAlignment(frame, 64);
    }
    LLVMValueRef given = local >= 0 ? cbool(c, 1) : LLVMBuildIsNotNull(c->b, c->work, "");
    LLVMBuildCondBr(c->b, given, start, mal);
    enter(c, mal);
    LLVMBasicBlockRef mal_ok = block(c, "malloc.ok");
    LLVMValueRef mem = work_malloc(c, total, nomem, mal_ok, start);
    LLVMValueRef base = LLVMBuildPhi(c->b, c->ptr, "work");
    LLVMValueRef owned = LLVMBuildPhi(c->b, c->i1, "owned");
    LLVMValueRef inb[2] = {frame, mem}, ino[2] = {cbool(c, 0), cbool(c, 1)};
    LLVMBasicBlockRef from[2] = {fine, mal_ok};
    LLVMAddIncoming(base, inb, from, 2);
    LLVMAddIncoming(owned, ino, from, 2);
    /* a buffer's address is made on first use, before this branch (a
     * program of thousands of statements has thousands of buffers, and
     * its chunks import a class's base and size, not every address) */
    c->bufs = arena_alloc(c->a, sizeof(LLVMValueRef) * (size_t)(p->bufs.len + 1));
    c->clsptr = arena_alloc(c->a, sizeof(LLVMValueRef) * (size_t)(c->ncls + 1));
    c->workbase = base;
    LLVMBasicBlockRef body = block(c, "body");
    c->addrs_at = LLVMBuildBr(c->b, body);
    enter(c, body);
    c->env = chunks ? LLVMBuildInBoundsGEP2(c->b, c->i8, base, &offs[p->bufs.len + 1], 1, "env") : NULL;
    c->envlen = 0;
    c->ct = NULL;
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
            if (!p->unzeroed[s])
                zero(c, bufp(c, p->slotbuf[s]), mul(c, dimv(c, sh.rows), dimv(c, sh.cols)));
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
        LLVMValueRef ones = bufp(c, p->onesbuf);
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
        callrt(c, RT_tape_free, LLVMVoidTypeInContext(c->ctx), &pt, 1, &c->tape);
    }
    free_and_return(c, owned, base, c->status);
    LLVMBuildBr(c->ab, entry);
    p->envslots = c->envlen;
    if (envbytes) {
        LLVMReplaceAllUsesWith(envbytes, ci(c, (int64_t)c->envlen * 8));
        LLVMInstructionEraseFromParent(envbytes);
    }
    return c->fn;
}

/* The ABI function: its own parameters, forwarded to impl. */
static void gen_abi(Cg *c, LLVMValueRef impl, const char *name, bool grad, bool cotparam)
{
    const Module *m = c->m;
    int ng = grad ? m->nwrt : 0;
    int np = m->ndims + m->ninputs + (cotparam ? 1 : 0) + 1 + m->naux + ng + (grad ? 1 : 0) + 1, k = 0;
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
    int na = m->ndims + m->ninputs + 5 + m->naux + ng, j = 0;
    k = 0;
    LLVMValueRef *args = arena_alloc(c->a, sizeof *args * (size_t)na);
    for (int i = 0; i < m->ndims + m->ninputs; i++)
        args[j++] = LLVMGetParam(fn, (unsigned)k++);
    args[j++] = cotparam ? LLVMGetParam(fn, (unsigned)k++) : LLVMConstNull(c->ptr);
    args[j++] = LLVMGetParam(fn, (unsigned)k++);
    for (int i = 0; i < m->naux + ng; i++)
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
    LLVMTypeRef pt[8] = {c->ptr, c->ptr, c->ptr, c->ptr, c->ptr, c->ptr, c->ptr, c->ptr};
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, LLVMFunctionType(c->i32, pt, 8, 0));
    LLVMBuilderRef b = c->b;
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
    int na = m->ndims + m->ninputs + 5 + m->naux + ng, j = 0;
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
    for (int i = 0; i < m->naux; i++) {   /* param 7: the aux buffers (each may be NULL) */
        LLVMValueRef idx = ci(c, i);
        args[j++] = LLVMBuildLoad2(b, c->ptr, LLVMBuildInBoundsGEP2(b, c->ptr, LLVMGetParam(fn, 7), &idx, 1, ""), "");
    }
    for (int i = 0; i < ng; i++) {
        LLVMValueRef idx = ci(c, i);
        args[j++] = LLVMBuildLoad2(b, c->ptr, LLVMBuildInBoundsGEP2(b, c->ptr, LLVMGetParam(fn, 4), &idx, 1, ""), "");
    }
    args[j++] = LLVMConstInt(c->i32, 0, 0);
    args[j++] = LLVMGetParam(fn, 5);
    args[j++] = LLVMGetParam(fn, 6);
    LLVMBuildRet(b, LLVMBuildCall2(b, impl_type(c, ng), impl, args, (unsigned)na, ""));
}

/* Starts an exported function of the dims (and more) with its allocas block. */
static LLVMBasicBlockRef begin_exported(Cg *c, const char *name, LLVMTypeRef ft)
{
    c->fn = LLVMAddFunction(c->mod, name, ft);
    LLVMBasicBlockRef allocas = block(c, "allocas"), entry = block(c, "entry");
    LLVMPositionBuilderAtEnd(c->ab, allocas);
    enter(c, entry);
    c->dims = arena_alloc(c->a, sizeof(LLVMValueRef) * (size_t)(c->m->ndims + 1));
    for (int i = 0; i < c->m->ndims; i++)
        c->dims[i] = LLVMGetParam(c->fn, (unsigned)i);
    return entry;
}

/* size_t NAME_work_size(dims...): the larger of the two functions' needs;
 * SIZE_MAX for a negative dimension or an overflow. */
static void gen_work_size(Cg *c, const char *name, Plan **plans, int nplans)
{
    const Module *m = c->m;
    LLVMTypeRef *pt = arena_alloc(c->a, sizeof *pt * (size_t)(m->ndims + 1));
    for (int i = 0; i < m->ndims; i++)
        pt[i] = c->i64;
    LLVMBasicBlockRef entry = begin_exported(c, name, LLVMFunctionType(c->i64, pt, (unsigned)m->ndims, 0));
    LLVMValueRef size = ci(c, 0), anybad = cbool(c, 0), bad;
    for (int i = 0; i < nplans; i++) {
        LLVMValueRef t = work_layout(c, plans[i], NULL, plans[i]->envslots ? ci(c, plans[i]->envslots * 8) : NULL, &bad);
        anybad = LLVMBuildOr(c->b, anybad, bad, "");
        size = sel(c, LLVMBuildICmp(c->b, LLVMIntUGT, t, size, ""), t, size);
    }
    LLVMBuildRet(c->b, sel(c, anybad, ci(c, -1), size));
    LLVMBuildBr(c->ab, entry);
}

/* ===================================================================== */
/* Second order (spec §9): NAME_hvp, NAME_hessian and their work sizes   */
/* ===================================================================== */

/* NAME_hessian's work, after the entry's parameters are in c->dims: the
 * order N (entries of the wrt inputs), the work of its product
 * NAME_hessian.hv rounded up to 64 bytes (at the start), then the unit
 * direction (N doubles, rounded up)
 * and room for the unsymmetrised H (N×N; used under GRADC_ACCUMULATE, when
 * H itself cannot hold it).  *bad: a negative dimension or an overflow. */
typedef struct HessLayout {
    LLVMValueRef n, dir, raw, total, bad;
} HessLayout;

static HessLayout hess_layout(Cg *c, const char *name)
{
    const Module *h = c->m;
    HessLayout l = {.n = ci(c, 0), .bad = cbool(c, 0)};
    for (int i = 0; i < h->ndims; i++)
        l.bad = LLVMBuildOr(c->b, l.bad, LLVMBuildICmp(c->b, LLVMIntSLT, c->dims[i], ci(c, 0), ""), "");
    for (int i = 0; i < h->nwrt / 2; i++)
        l.n = checked_op(c, "llvm.sadd.with.overflow", l.n, shape_entries(c, h->inputs[h->wrt[i]].shape, &l.bad), &l.bad);
    LLVMValueRef ws = LLVMGetNamedFunction(c->mod, arena_printf(c->a, "%s_hessian.hv_work_size", name));
    LLVMValueRef hw = LLVMBuildCall2(c->b, LLVMGlobalGetValueType(ws), ws, c->dims, (unsigned)h->ndims, "");
    l.bad = LLVMBuildOr(c->b, l.bad, LLVMBuildICmp(c->b, LLVMIntEQ, hw, ci(c, -1), ""), "");
    LLVMValueRef mask = ci(c, ~(int64_t)63);
    l.dir = LLVMBuildAnd(c->b, checked_op(c, "llvm.uadd.with.overflow", hw, ci(c, 63), &l.bad), mask, "");
    /* one entry more: a run with N = 0 still writes and clears entry 0 */
    LLVMValueRef vb = checked_op(c, "llvm.umul.with.overflow", l.n, ci(c, 8), &l.bad);
    vb = LLVMBuildAnd(c->b, checked_op(c, "llvm.uadd.with.overflow", vb, ci(c, 8 + 63), &l.bad), mask, "");
    l.raw = checked_op(c, "llvm.uadd.with.overflow", l.dir, vb, &l.bad);
    LLVMValueRef nn = checked_op(c, "llvm.umul.with.overflow", l.n, l.n, &l.bad);
    l.total = checked_op(c, "llvm.uadd.with.overflow", l.raw, checked_op(c, "llvm.umul.with.overflow", nn, ci(c, 8), &l.bad), &l.bad);
    l.bad = LLVMBuildOr(c->b, l.bad, LLVMBuildICmp(c->b, LLVMIntUGT, l.total, ci(c, INT64_C(1) << 60), ""), "");
    return l;
}

static void gen_hessian_work_size(Cg *c, const char *name)
{
    const Module *h = c->m;
    LLVMTypeRef *pt = arena_alloc(c->a, sizeof *pt * (size_t)(h->ndims + 1));
    for (int i = 0; i < h->ndims; i++)
        pt[i] = c->i64;
    LLVMBasicBlockRef entry = begin_exported(c, arena_printf(c->a, "%s_hessian_work_size", name),
                                             LLVMFunctionType(c->i64, pt, (unsigned)h->ndims, 0));
    HessLayout l = hess_layout(c, name);
    LLVMBuildRet(c->b, sel(c, l.bad, ci(c, -1), l.total));
    LLVMBuildBr(c->ab, entry);
}

/* H[i][j] and H[j][i] = s, or += s under GRADC_ACCUMULATE (i != j). */
static void put_pair(Cg *c, LLVMValueRef H, LLVMValueRef ij, LLVMValueRef ji, LLVMValueRef s, LLVMValueRef acc)
{
    store(c, sel(c, acc, fplus(c, load(c, H, ij), s), s), H, ij);
    store(c, sel(c, acc, fplus(c, load(c, H, ji), s), s), H, ji);
}

/* int NAME_hessian(dims..., inputs..., double *out, double *H, unsigned
 * flags, void *work): N products with the unit directions e_j (NAME_hessian.hv,
 * gen_hv_only), H e_j written as row j, then (H + H')/2, so exactly
 * symmetric. */
static void gen_hessian(Cg *c, const char *name)
{
    const Module *h = c->m;
    int k = h->nwrt / 2, ni = h->ninputs - k, np = h->ndims + ni + 4;
    LLVMTypeRef *pt = arena_alloc(c->a, sizeof *pt * (size_t)np);
    int q = 0;
    for (int i = 0; i < h->ndims; i++)
        pt[q++] = c->i64;
    for (int i = 0; i < ni; i++)
        pt[q++] = h->inputs[i].ndims == 0 ? c->f64 : c->ptr;
    pt[q++] = c->ptr;
    pt[q++] = c->ptr;
    pt[q++] = c->i32;
    pt[q++] = c->ptr;
    LLVMBasicBlockRef entry = begin_exported(c, arena_printf(c->a, "%s_hessian", name),
                                             LLVMFunctionType(c->i32, pt, (unsigned)np, 0));
    LLVMValueRef out = LLVMGetParam(c->fn, (unsigned)(np - 4)), H = LLVMGetParam(c->fn, (unsigned)(np - 3));
    LLVMValueRef flags = LLVMGetParam(c->fn, (unsigned)(np - 2)), work = LLVMGetParam(c->fn, (unsigned)(np - 1));
    HessLayout l = hess_layout(c, name);
    LLVMBasicBlockRef edim = block(c, "edim"), fine = block(c, "dims.ok"), mal = block(c, "malloc"),
                      nomem = block(c, "nomem"), mal_ok = block(c, "malloc.ok"), start = block(c, "start");
    LLVMBuildCondBr(c->b, l.bad, edim, fine);
    enter(c, edim);
    LLVMBuildRet(c->b, LLVMConstInt(c->i32, GRADC_EDIM, 0));
    enter(c, fine);
    LLVMBuildCondBr(c->b, LLVMBuildIsNotNull(c->b, work, ""), start, mal);
    enter(c, mal);
    LLVMValueRef mem = work_malloc(c, l.total, nomem, mal_ok, start);
    LLVMValueRef base = LLVMBuildPhi(c->b, c->ptr, "work"), owned = LLVMBuildPhi(c->b, c->i1, "owned");
    LLVMValueRef inb[2] = {work, mem}, ino[2] = {cbool(c, 0), cbool(c, 1)};
    LLVMBasicBlockRef from[2] = {fine, mal_ok};
    LLVMAddIncoming(base, inb, from, 2);
    LLVMAddIncoming(owned, ino, from, 2);
    LLVMValueRef dir = LLVMBuildInBoundsGEP2(c->b, c->i8, base, &l.dir, 1, "");
    LLVMValueRef acc = LLVMBuildICmp(c->b, LLVMIntNE, LLVMBuildAnd(c->b, flags, LLVMConstInt(c->i32, 1, 0), ""),
                                     LLVMConstInt(c->i32, 0, 0), "");
    LLVMValueRef raw = sel(c, acc, LLVMBuildInBoundsGEP2(c->b, c->i8, base, &l.raw, 1, ""), H);
    LLVMValueRef status = alloca_(c, c->i32);
    LLVMBuildStore(c->b, LLVMConstInt(c->i32, 0, 0), status);
    zero(c, dir, l.n);

    /* column j: the product at e_j (once when N = 0, for the value) */
    LLVMValueRef hvp = LLVMGetNamedFunction(c->mod, arena_printf(c->a, "%s_hessian.hv", name));
    int na = h->ndims + h->ninputs + 1 + k + 2;
    LLVMValueRef *args = arena_alloc(c->a, sizeof *args * (size_t)na), *off = arena_alloc(c->a, sizeof *off * (size_t)(k + 1));
    LLVMValueRef bad = cbool(c, 0);
    off[0] = ci(c, 0);
    for (int i = 1; i < k; i++)
        off[i] = add(c, off[i - 1], shape_entries(c, h->inputs[h->wrt[i - 1]].shape, &bad));
    LLVMValueRef one = LLVMBuildICmp(c->b, LLVMIntSGT, l.n, ci(c, 1), "");
    Loop lj;
    LLVMValueRef j = loop_begin(c, &lj, ci(c, 0), sel(c, one, l.n, ci(c, 1)));
    LLVMValueRef inside = LLVMBuildICmp(c->b, LLVMIntSLT, j, l.n, "");
    LLVMValueRef jc = sel(c, inside, j, ci(c, 0));   /* e_j's index, in range */
    LLVMBasicBlockRef set = block(c, "unit"), go = block(c, "call");
    LLVMBuildCondBr(c->b, inside, set, go);
    enter(c, set);
    store(c, cf(c, 1), dir, jc);
    LLVMBuildBr(c->b, go);
    enter(c, go);
    int a = 0;
    for (int i = 0; i < h->ndims + ni; i++)
        args[a++] = LLVMGetParam(c->fn, (unsigned)i);
    for (int i = 0; i < k; i++)
        args[a++] = at(c, dir, off[i]);
    args[a++] = sel(c, LLVMBuildICmp(c->b, LLVMIntEQ, j, ci(c, 0), ""), out, LLVMConstNull(c->ptr));
    LLVMValueRef row = mul(c, jc, l.n);
    for (int i = 0; i < k; i++)
        args[a++] = at(c, raw, add(c, row, off[i]));
    args[a++] = LLVMConstInt(c->i32, 0, 0);
    args[a++] = base;
    LLVMValueRef st = LLVMBuildCall2(c->b, LLVMGlobalGetValueType(hvp), hvp, args, (unsigned)a, "");
    LLVMBuildStore(c->b, cf(c, 0), at(c, dir, jc));
    LLVMBuildStore(c->b, st, status);
    LLVMBasicBlockRef failed = block(c, "failed"), next = block(c, "next");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntNE, st, LLVMConstInt(c->i32, 0, 0), ""), failed, next);
    enter(c, next);
    loop_end(c, &lj);

    /* (H + H')/2: one rounding shared by the pair */
    Loop li, lk;
    LLVMValueRef i = loop_begin(c, &li, ci(c, 0), l.n);
    LLVMValueRef ii = add(c, mul(c, i, l.n), i), d = fplus(c, load(c, raw, ii), cf(c, 0.0));
    store(c, sel(c, acc, fplus(c, load(c, H, ii), d), d), H, ii);
    LLVMValueRef jj = loop_begin(c, &lk, add(c, i, ci(c, 1)), l.n);
    LLVMValueRef ij = add(c, mul(c, i, l.n), jj), ji = add(c, mul(c, jj, l.n), i);
    LLVMValueRef s = LLVMBuildFMul(c->b, cf(c, 0.5), fplus(c, load(c, raw, ij), load(c, raw, ji)), "");
    s = fplus(c, s, cf(c, 0.0));   /* a zero is +0, as eval --hessian's */
    put_pair(c, H, ij, ji, s, acc);
    loop_end(c, &lk);
    loop_end(c, &li);
    LLVMBasicBlockRef done = block(c, "done");
    LLVMBuildBr(c->b, done);
    enter(c, failed);
    LLVMBuildBr(c->b, done);
    enter(c, done);
    free_and_return(c, owned, base, status);
    LLVMBuildBr(c->ab, entry);
}

/* A code generator for another module's functions (the second-order ones)
 * in m's LLVM module, sharing m's builders, its while table and its limit. */
static Cg sub_cg(Cg *m, const Module *h)
{
    Cg c = {0};
    types(&c, m->ctx, m->mod, h);
    c.info = m->info;
    c.max_iter = m->max_iter;
    c.opt_level = m->opt_level;
    c.b = m->b;
    c.ab = m->ab;
    c.sb = m->sb;
    return c;
}

/* h's gradient function with the products H v as its only gradients (h's
 * wrt list: the directions), as the internal NAME_hessian.hv and its work
 * size: NAME_hessian's column j, without the gradient NAME_hvp also returns
 * (x'*A*x: two products of A per column instead of four). */
static void gen_hv_only(Cg *m, const Module *h, const char *name)
{
    int k = h->nwrt / 2;
    Module *hv = arena_alloc(m->a, sizeof *hv);
    *hv = *h;
    hv->nwrt = k;
    hv->wrt = h->wrt + k;
    hv->grad.grads = h->grad.grads + k;
    Cg c = sub_cg(m, hv);
    Plan *p = plan_func(hv, &hv->grad, true, NULL);
    LLVMValueRef impl = gen_impl(&c, p, arena_printf(c.a, "%s_hessian.hv.impl", name));
    if (!c.failed) {
        const char *fn = arena_printf(c.a, "%s_hessian.hv", name), *ws = arena_printf(c.a, "%s_work_size", fn);
        gen_abi(&c, impl, fn, true, false);
        gen_work_size(&c, ws, &p, 1);
        LLVMSetLinkage(LLVMGetNamedFunction(c.mod, fn), LLVMInternalLinkage);
        LLVMSetLinkage(LLVMGetNamedFunction(c.mod, ws), LLVMInternalLinkage);
    }
    m->failed |= c.failed;
}

/* NAME_hessian and its work size from the closed form: hc's gradient
 * function (the value and H, hess_closed_module) through the ordinary plan
 * and code generator, whose ABI is NAME_hessian's (one result buffer). */
static void gen_closed_hessian(Cg *m, const Module *hc, const char *name)
{
    Cg c = sub_cg(m, hc);
    Plan *p = plan_func(hc, &hc->grad, true, NULL);
    LLVMValueRef impl = gen_impl(&c, p, arena_printf(c.a, "%s_hessian.impl", name));
    if (!c.failed) {
        gen_abi(&c, impl, arena_printf(c.a, "%s_hessian", name), true, false);
        gen_work_size(&c, arena_printf(c.a, "%s_hessian_work_size", name), &p, 1);
    }
    m->failed |= c.failed;
}

/* compile --hessian: h's gradient function (value, gradient, H v) as
 * NAME_hvp with NAME_hvp_work_size, then NAME_hessian and its work size
 * (from the closed form hc when there is one, else from N products), in
 * the module of m's functions. */
static void gen_second_order(Cg *m, const Module *hvp, const Module *hc, const char *name)
{
    /* NAME_hvp has no auxiliary outputs (spec §9's signature): h without them */
    Module *h = arena_alloc(m->a, sizeof *h);
    *h = *hvp;
    h->naux = 0;
    h->aux_names = NULL;
    h->fwd.aux = h->grad.aux = NULL;
    Cg c = sub_cg(m, h);
    Plan *p = plan_func(h, &h->grad, true, NULL);
    plan_sink(p);   /* NAME_hvp's gradient buffers may be NULL (spec §9) */
    LLVMValueRef impl = gen_impl(&c, p, arena_printf(c.a, "%s_hvp.impl", name));
    if (!c.failed) {
        gen_abi(&c, impl, arena_printf(c.a, "%s_hvp", name), true, false);
        gen_work_size(&c, arena_printf(c.a, "%s_hvp_work_size", name), &p, 1);
        if (hc)
            gen_closed_hessian(&c, hc, name);
        else
            gen_hv_only(&c, h, name);
    }
    if (!c.failed && !hc) {
        gen_hessian_work_size(&c, name);
        gen_hessian(&c, name);
    }
    m->failed |= c.failed;
}

/* LLVM's diagnostics: errors and warnings as gradc's, remarks dropped (a
 * sum the vectoriser was asked for but could not make, codegen.c, is a
 * remark LLVM would otherwise print on every compile). */
static void llvm_diagnostic(LLVMDiagnosticInfoRef di, void *unused)
{
    (void)unused;
    LLVMDiagnosticSeverity sev = LLVMGetDiagInfoSeverity(di);
    if (sev != LLVMDSError && sev != LLVMDSWarning)
        return;
    char *text = LLVMGetDiagInfoDescription(di);
    diag_plain("LLVM %s: %s", sev == LLVMDSError ? "error" : "warning", text);
    LLVMDisposeMessage(text);
}

LLVMModuleRef codegen_module(const Module *m, const CodegenOptions *o, LLVMContextRef ctx,
                             bool entries, CgInfo *info)
{
    LLVMContextSetDiagnosticHandler(ctx, llvm_diagnostic, NULL);
    Arena *a = m->arena;
    const char *name = o->name;
    LLVMModuleRef mod = LLVMModuleCreateWithNameInContext(name, ctx);
    Cg c = {0};
    types(&c, ctx, mod, m);
    c.info = info;
    info->whiles = NULL;
    info->nwhiles = 0;
    c.max_iter = o->max_iter > 0 ? o->max_iter : GRADC_DEFAULT_MAX_ITER;
    c.opt_level = o->opt_level;
    c.entries = entries;
    c.b = LLVMCreateBuilderInContext(ctx);
    c.ab = LLVMCreateBuilderInContext(ctx);
    c.sb = LLVMCreateBuilderInContext(ctx);

    Plan *plans[2];
    int np = 0;
    bool grad = m->grad.value != NULL, fwd = !(entries && grad && o->grad_only);
    if (fwd)
        plans[np++] = plan_func(m, &m->fwd, false, NULL);
    if (grad)
        plans[np++] = plan_func(m, &m->grad, true, NULL);
    LLVMValueRef fimpl = fwd ? gen_impl(&c, plans[0], arena_printf(a, "%s.impl", name)) : NULL;
    LLVMValueRef gimpl = grad && !c.failed ? gen_impl(&c, plans[np - 1], arena_printf(a, "%s_grad.impl", name)) : NULL;
    if (!c.failed && entries) { /* the JIT calls the entries only */
        if (fwd)
            gen_entry(&c, fimpl, arena_printf(a, "%s_entry", name), false);
        if (grad)
            gen_entry(&c, gimpl, arena_printf(a, "%s_grad_entry", name), true);
    } else if (!c.failed) {
        gen_abi(&c, fimpl, name, false, false);
        if (grad)
            gen_abi(&c, gimpl, arena_printf(a, "%s_grad", name), true, !is_scalar(m->grad.value));
        gen_work_size(&c, arena_printf(a, "%s_work_size", name), plans, np);
        if (o->hvp)
            gen_second_order(&c, o->hvp, o->hess, name);
    }
    LLVMDisposeBuilder(c.b);
    LLVMDisposeBuilder(c.ab);
    LLVMDisposeBuilder(c.sb);
    if (c.failed) {
        LLVMDisposeModule(mod);
        return NULL;
    }
    return mod;
}
