/* abi.c — the functions of a module around the emitted bodies: the work
 * layout and the entry checks (negative dimensions, size overflow, the
 * work stack's depth), the internal impl's frame (work, slots, tape,
 * cleanup), the ABI wrappers of spec §7 and the JIT's entries,
 * NAME_work_size; and the target machine and optimisation passes. */
#include "cg.h"

#include <gradc/runtime.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Support.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <stdlib.h>
#include <string.h>

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

/* Saturating unsigned arithmetic for the layout: an overflow gives
 * UINT64_MAX, which stays above the 2^60 bound through the additions and
 * the multiplications by positive counts that follow, so one comparison
 * of the total checks every size.  (Each overflow bit or'ed into one flag
 * made InstCombine's implied-condition queries a third of -O2's time on
 * samples/mlp.expr.) */
static LLVMValueRef satmul(Cg *c, LLVMValueRef x, LLVMValueRef y)
{
    if (is_int(x, 1) || is_int(y, 1))
        return mul(c, x, y);
    LLVMValueRef args[2] = {x, y};
    LLVMValueRef r = intrinsic(c, "llvm.umul.with.overflow", c->i64, 2, args);
    return sel(c, LLVMBuildExtractValue(c->b, r, 1, ""), ci(c, -1), LLVMBuildExtractValue(c->b, r, 0, ""));
}

static LLVMValueRef satadd(Cg *c, LLVMValueRef x, LLVMValueRef y)
{
    if (is_int(x, 0) || is_int(y, 0))
        return add(c, x, y);
    /* not llvm.uadd.sat: x86 FastISel cannot select it, and each one sent
     * the rest of its block to SelectionDAG in eval's -O0 JIT (InstCombine
     * turns this form into uadd.sat at -O2) */
    LLVMValueRef s = add(c, x, y);
    return sel(c, LLVMBuildICmp(c->b, LLVMIntULT, s, x, ""), ci(c, -1), s);
}

/* Index of d among the nd dimensions in dv, added when new. */
static int dim_slot(Dim *dv, int *nd, Dim d)
{
    for (int i = 0; i < *nd; i++)
        if (dim_eq(dv[i], d))
            return i;
    dv[*nd] = d;
    return (*nd)++;
}

/* The layout computed by the runtime's gradc_layout from a constant table
 * of the dimensions each shape and class multiplies (runtime.h): the
 * dimensions stored in an array, one call, each class's size and base
 * loaded after it (into size and base when not NULL).  Returns the total,
 * -1 for a bad size. */
static LLVMValueRef layout_call(Cg *c, const Plan *p, const int *first, const int *cnt, int ncls,
                                LLVMValueRef *size, LLVMValueRef *base)
{
    int ns = p->shapes.len, nmax = c->m->ndims + 2 * ns + 2 * ncls + 1, nd = 0, t = 3;
    Dim *dv = arena_alloc(c->a, sizeof *dv * (size_t)nmax);
    LLVMValueRef *tab = arena_alloc(c->a, sizeof *tab * (size_t)(3 + 2 * ns + 4 * ncls));
    for (int i = 0; i < c->m->ndims; i++)
        dv[nd++] = (Dim){i, 0};
    for (int i = 0; i < ns; i++) {
        Shape sh = p->shapes.data[i];
        tab[t++] = LLVMConstInt(c->i32, (unsigned)dim_slot(dv, &nd, sh.rows), 0);
        tab[t++] = LLVMConstInt(c->i32, (unsigned)dim_slot(dv, &nd, sh.cols), 0);
    }
    for (int k = 0; k < ncls; k++) {
        Buf b = p->bufs.data[first[k]];
        tab[t++] = LLVMConstInt(c->i32, (unsigned)dim_slot(dv, &nd, b.a), 0);
        tab[t++] = LLVMConstInt(c->i32, (unsigned)dim_slot(dv, &nd, b.b), 0);
        tab[t++] = LLVMConstInt(c->i32, b.plus_a, 0);
        tab[t++] = LLVMConstInt(c->i32, (unsigned)cnt[k], 0);
    }
    tab[0] = LLVMConstInt(c->i32, (unsigned)nd, 0);
    tab[1] = LLVMConstInt(c->i32, (unsigned)ns, 0);
    tab[2] = LLVMConstInt(c->i32, (unsigned)ncls, 0);
    LLVMValueRef init = LLVMConstArray2(c->i32, tab, (uint64_t)t);
    LLVMValueRef g = LLVMAddGlobal(c->mod, LLVMTypeOf(init), "gradc.layout");
    LLVMSetInitializer(g, init);
    LLVMSetGlobalConstant(g, 1);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
    LLVMValueRef d = LLVMBuildAlloca(c->ab, LLVMArrayType(c->i64, (unsigned)nd), "dims");
    for (int i = 0; i < nd; i++) {
        LLVMValueRef idx = ci(c, i);
        LLVMBuildStore(c->b, dimv(c, dv[i]), LLVMBuildInBoundsGEP2(c->b, c->i64, d, &idx, 1, ""));
    }
    LLVMValueRef out = size ? LLVMBuildAlloca(c->ab, LLVMArrayType(c->i64, (unsigned)(2 * ncls + 1)), "cls")
                            : LLVMConstNull(c->ptr);
    LLVMTypeRef pt[3] = {c->ptr, c->ptr, c->ptr};
    LLVMValueRef args[3] = {d, g, out};
    LLVMValueRef total = callrt(c, RT_layout, c->i64, pt, 3, args);
    for (int k = 0; size && k < 2 * ncls; k++) {
        LLVMValueRef idx = ci(c, k);
        LLVMValueRef v = LLVMBuildLoad2(c->b, c->i64, LLVMBuildInBoundsGEP2(c->b, c->i64, out, &idx, 1, ""), "");
        if (k % 2)
            base[k / 2] = v;
        else
            size[k / 2] = v;
    }
    return total;
}

/* Whether every dimension of p's shapes and buffers is a literal: then the
 * layout is written out, for LLVM to fold to constants. */
static bool layout_literal(const Plan *p)
{
    int64_t n;
    for (int i = 0; i < p->shapes.len; i++)
        if (!dim_is_lit(p->shapes.data[i].rows, &n) || !dim_is_lit(p->shapes.data[i].cols, &n))
            return false;
    for (int i = 0; i < p->bufs.len; i++)
        if (!dim_is_lit(p->bufs.data[i].a, &n) || !dim_is_lit(p->bufs.data[i].b, &n))
            return false;
    return true;
}

/* Written out (layout_literal): no dimension is negative, every shape's
 * bytes (times 2) fit: the largest did not saturate. */
static LLVMValueRef layout_checks(Cg *c, const Plan *p)
{
    LLVMValueRef dor = ci(c, 0);   /* negative: the or of all has the sign bit */
    for (int i = 0; i < c->m->ndims; i++)
        dor = LLVMBuildOr(c->b, dor, c->dims[i], "");
    LLVMValueRef bad = LLVMBuildICmp(c->b, LLVMIntSLT, dor, ci(c, 0), "");
    LLVMValueRef shmax = ci(c, 0);
    for (int i = 0; i < p->shapes.len; i++) {
        Shape s = p->shapes.data[i];
        LLVMValueRef bytes = satmul(c, satmul(c, dimv(c, s.rows), dimv(c, s.cols)), ci(c, 16));
        shmax = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntUGT, bytes, shmax, ""), bytes, shmax, "");
    }
    return LLVMBuildOr(c->b, bad, LLVMBuildICmp(c->b, LLVMIntEQ, shmax, ci(c, -1), ""), "");
}

/* Written out: each class's size and base, and the total. */
static LLVMValueRef layout_sizes(Cg *c, const Plan *p, const int *first, const int *cnt, int ncls,
                                 LLVMValueRef *size, LLVMValueRef *base)
{
    LLVMValueRef total = ci(c, 0);
    for (int k = 0; k < ncls; k++) {
        Buf b = p->bufs.data[first[k]];
        LLVMValueRef n = satmul(c, dimv(c, b.a), dimv(c, b.b));
        if (b.plus_a)
            n = satadd(c, n, dimv(c, b.a));
        n = satadd(c, satmul(c, n, ci(c, 8)), ci(c, 63));
        size[k] = LLVMBuildAnd(c->b, n, ci(c, ~(int64_t)63), ""); /* 64-byte aligned buffers */
        base[k] = total;
        total = satadd(c, total, satmul(c, size[k], ci(c, cnt[k])));
    }
    return total;
}

/* The bytes of work p needs and, when offs is not NULL, each buffer's class
 * and index in it, each class's offset and buffer size (c->bufcls …),
 * offs[p->bufs.len] the stack's offset and offs[p->bufs.len + 1] the chunk
 * environment's, of envbytes (NULL: none); *bad: a negative dimension or an
 * overflow anywhere. */
static LLVMValueRef layout(Cg *c, const Plan *p, LLVMValueRef *offs, LLVMValueRef envbytes, LLVMValueRef *bad)
{
    /* Buffers of one size form a class: its size (64-byte aligned) and
     * its count are checked once, so the checks grow with the number of
     * distinct sizes, not with the program; a buffer's offset is its
     * class's base plus its index in the class times the size. */
    int nb = p->bufs.len, ncls = 0;
    int *cls = arena_alloc(c->a, sizeof(int) * (size_t)(nb + 1)), *idx = arena_alloc(c->a, sizeof(int) * (size_t)(nb + 1));
    int *first = arena_alloc(c->a, sizeof(int) * (size_t)(nb + 1)), *cnt = arena_alloc(c->a, sizeof(int) * (size_t)(nb + 1));
    for (int i = 0; i < nb; i++) {
        Buf b = p->bufs.data[i];
        int k = 0;
        while (k < ncls && !(dim_eq(p->bufs.data[first[k]].a, b.a) && dim_eq(p->bufs.data[first[k]].b, b.b) &&
                             p->bufs.data[first[k]].plus_a == b.plus_a))
            k++;
        if (k == ncls)
            first[ncls++] = i;
        cls[i] = k;
        idx[i] = cnt[k]++;
    }
    LLVMValueRef *size = arena_alloc(c->a, sizeof *size * (size_t)(ncls + 1));
    LLVMValueRef *base = arena_alloc(c->a, sizeof *base * (size_t)(ncls + 1));
    LLVMValueRef total;
    if (layout_literal(p)) {
        *bad = layout_checks(c, p);
        total = layout_sizes(c, p, first, cnt, ncls, size, base);
    } else {
        *bad = cbool(c, 0);   /* total: -1, above the bound */
        total = layout_call(c, p, first, cnt, ncls, offs ? size : NULL, base);
    }
    if (offs) { /* addresses are made where a function first asks (impl_buf, chunk_buf) */
        c->bufcls = cls;
        c->bufidx = idx;
        c->clsoff = base;
        c->clssize = size;
        c->ncls = ncls;
    }
    if (p->stack) {
        LLVMValueRef sbad = cbool(c, 0);
        LLVMValueRef n = ovf(c, "llvm.umul.with.overflow", stack_depth(c, p->f->body, &sbad).peak, ci(c, 8), &sbad);
        *bad = LLVMBuildOr(c->b, *bad, sbad, "");
        if (offs)
            offs[p->bufs.len] = total;
        total = satadd(c, total, n);
    }
    if (offs)
        offs[p->bufs.len + 1] = total;
    if (envbytes)
        total = satadd(c, total, envbytes);
    *bad = LLVMBuildOr(c->b, *bad, LLVMBuildICmp(c->b, LLVMIntUGT, total, ci(c, INT64_C(1) << 60), ""), "");
    return total;
}

/* The base of buffer class k in the impl (made once, before addrs_at). */
LLVMValueRef impl_cls(Cg *c, int k)
{
    if (!c->clsptr[k]) {
        LLVMPositionBuilderBefore(c->sb, c->addrs_at);
        c->clsptr[k] = LLVMBuildInBoundsGEP2(c->sb, c->i8, c->workbase, &c->clsoff[k], 1, "");
    }
    return c->clsptr[k];
}

/* Buffer i's address in the impl: its class's base plus its index times
 * the class's size. */
LLVMValueRef impl_buf(Cg *c, int i)
{
    if (!c->bufs[i]) {
        LLVMValueRef base = impl_cls(c, c->bufcls[i]);
        LLVMPositionBuilderBefore(c->sb, c->addrs_at);
        LLVMValueRef off = LLVMBuildMul(c->sb, c->clssize[c->bufcls[i]], ci(c, c->bufidx[i]), "");
        c->bufs[i] = c->bufidx[i] ? LLVMBuildInBoundsGEP2(c->sb, c->i8, base, &off, 1, "") : base;
    }
    return c->bufs[i];
}

/* The bytes of p's buffers when every size is a literal and there is no
 * work stack, or -1.  Up to LOCAL_WORK, such a function keeps its buffers
 * in its own frame instead of the caller's work: LLVM then sees every
 * entry (x'*A*x at n = 4 lives in registers, no stores and reloads). */
enum { LOCAL_WORK = 2048 };

static int64_t literal_work(const Plan *p)
{
    int64_t total = 0;
    if (p->stack)
        return -1;
    for (int i = 0; i < p->bufs.len; i++) {
        Buf b = p->bufs.data[i];
        int64_t r, k;
        if (!dim_is_lit(b.a, &r) || !dim_is_lit(b.b, &k))
            return -1;
        int64_t n = r * k + (b.plus_a ? r : 0);
        total += (n * 8 + 63) / 64 * 64;
        if (total > LOCAL_WORK)
            return -1;
    }
    return total;
}

/* The end of an entry: free work if the function allocated it (owned),
 * then return the status kept in status. */
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
    LLVMValueRef total = layout(c, p, offs, envbytes, &bad);
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
        LLVMValueRef t = layout(c, plans[i], NULL, plans[i]->envslots ? ci(c, plans[i]->envslots * 8) : NULL, &bad);
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
        l.n = ovf(c, "llvm.sadd.with.overflow", l.n, entries(c, h->inputs[h->wrt[i]].shape, &l.bad), &l.bad);
    LLVMValueRef ws = LLVMGetNamedFunction(c->mod, arena_printf(c->a, "%s_hessian.hv_work_size", name));
    LLVMValueRef hw = LLVMBuildCall2(c->b, LLVMGlobalGetValueType(ws), ws, c->dims, (unsigned)h->ndims, "");
    l.bad = LLVMBuildOr(c->b, l.bad, LLVMBuildICmp(c->b, LLVMIntEQ, hw, ci(c, -1), ""), "");
    LLVMValueRef mask = ci(c, ~(int64_t)63);
    l.dir = LLVMBuildAnd(c->b, ovf(c, "llvm.uadd.with.overflow", hw, ci(c, 63), &l.bad), mask, "");
    /* one entry more: a run with N = 0 still writes and clears entry 0 */
    LLVMValueRef vb = ovf(c, "llvm.umul.with.overflow", l.n, ci(c, 8), &l.bad);
    vb = LLVMBuildAnd(c->b, ovf(c, "llvm.uadd.with.overflow", vb, ci(c, 8 + 63), &l.bad), mask, "");
    l.raw = ovf(c, "llvm.uadd.with.overflow", l.dir, vb, &l.bad);
    LLVMValueRef nn = ovf(c, "llvm.umul.with.overflow", l.n, l.n, &l.bad);
    l.total = ovf(c, "llvm.uadd.with.overflow", l.raw, ovf(c, "llvm.umul.with.overflow", nn, ci(c, 8), &l.bad), &l.bad);
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
        off[i] = add(c, off[i - 1], entries(c, h->inputs[h->wrt[i - 1]].shape, &bad));
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

/* The host's enabled features ("+avx2,+fma,..." of LLVM's "+x,-y,..."),
 * for a target machine named for the baseline "x86-64" CPU: the same
 * instructions, without the host CPU's tuning and without parsing the
 * disabled half of the list.  -O0 (eval's JIT) has nothing to tune, and
 * the feature list was parsed twice per compile (the target machine and
 * the subtarget), 8% of a small sample's eval. */
static char *enabled_features(const char *features)
{
    size_t n = strlen(features);
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *f = features; *f;) {
        const char *end = strchr(f, ',');
        size_t len = end ? (size_t)(end - f) : strlen(f);
        if (*f == '+') {
            if (o != out)
                *o++ = ',';
            memcpy(o, f, len);
            o += len;
        }
        f += len + (end != NULL);
    }
    *o = 0;
    return out;
}

/* Read once per process, and never freed: a JIT miss wants them for its
 * cache key and again for its target machine, and reading the features
 * costs 0.13M instructions (1% of a small program's eval). */
void codegen_host_cpu(const char **name, const char **features)
{
    static char *n, *f;
    if (!n) {
        n = LLVMGetHostCPUName();
        f = LLVMGetHostCPUFeatures();
    }
    *name = n;
    *features = f;
}

LLVMTargetMachineRef codegen_target_machine(const char *triple, int opt_level)
{
    init_targets();
    char *t = triple ? LLVMNormalizeTargetTriple(triple) : LLVMGetDefaultTargetTriple();
    const char *cpu = NULL, *features = NULL;
    if (!triple)
        codegen_host_cpu(&cpu, &features);
    LLVMTargetRef target;
    char *err = NULL;
    LLVMTargetMachineRef tm = NULL;
    if (LLVMGetTargetFromTriple(t, &target, &err)) {
        diag_plain("unsupported target '%s': %s", triple ? triple : t, err);
        LLVMDisposeMessage(err);
    } else {
        LLVMCodeGenOptLevel lv = opt_level <= 0 ? LLVMCodeGenLevelNone : opt_level == 1 ? LLVMCodeGenLevelLess
                               : opt_level == 2 ? LLVMCodeGenLevelDefault : LLVMCodeGenLevelAggressive;
        char *enabled = features && opt_level <= 0 && strstr(t, "x86_64") == t ? enabled_features(features) : NULL;
        tm = LLVMCreateTargetMachine(target, t, enabled ? "x86-64" : cpu ? cpu : "generic",
                                     enabled ? enabled : features ? features : "", lv, LLVMRelocPIC,
                                     LLVMCodeModelDefault);
        free(enabled);
        if (!tm)
            diag_plain("cannot create a target machine for '%s'", t);
    }
    LLVMDisposeMessage(t);
    return tm;
}

/* -O2: the passes of LLVM's default<O2> that gradc's IR needs, once each,
 * in half the time (layer_norm: 150 -> 45 ms; bench/run's run-time rows
 * unchanged).  The IR comes already shaped: maps and sums are loops over
 * flat indices, a sum's loop carries the vectoriser's hints (codegen.c),
 * products call kernels, values live in allocas.  So: inline the per-module
 * kernels (gradc.exp, a literal 4x4 product's pass) where their constant
 * arguments then fold; allocas to registers, common subexpressions and
 * peepholes; rotate loops (the vectoriser needs their exit at the latch),
 * hoist invariants, canonical induction variables; unroll loops of
 * literal trip count fully (x'*A*x at 4x4: 2.3x slower without), and
 * redo SROA and GVN on what that exposes; then vectorise loops (maps,
 * sums) and straight-line code (what full unrolling left), and tidy; last,
 * infer the functions' attributes (an unread work pointer is readnone: a
 * caller's compiler may then skip it) and drop what inlining left unused.
 * default<O2> runs the simplification pipeline per call graph SCC and
 * again per function, with jump threading, loop unswitching, idiom
 * recognition and more, which gradc's IR does not need; -O3 is still
 * default<O3>. */
#define O2_PIPELINE(slp)                                                                                   \
    "cgscc(inline),"                                                                                       \
    "function(sroa,early-cse,simplifycfg,instcombine<no-verify-fixpoint>,"                                 \
    "loop-mssa(loop-rotate,licm),indvars,loop(loop-unroll-full),sroa,gvn,instcombine<no-verify-fixpoint>," \
    "loop-vectorize," slp "instcombine<no-verify-fixpoint>,simplifycfg),"                                  \
    "cgscc(function-attrs),globaldce"

/* Whether mod has straight-line code for the SLP vectoriser: what full
 * unrolling will leave of a loop with a literal trip count, and a row
 * pass's remainder, whose rows' scalar sums it packs into one vector.
 * Elsewhere it changed no sample's code and cost 7% of -O2's instructions
 * (gp_nll 15%). */
static bool wants_slp(LLVMModuleRef mod)
{
    for (LLVMValueRef f = LLVMGetFirstFunction(mod); f; f = LLVMGetNextFunction(f)) {
        size_t len;
        if (strncmp(LLVMGetValueName2(f, &len), "gradc.rows", 10) == 0)
            return true;
        for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(f); bb; bb = LLVMGetNextBasicBlock(bb)) {
            LLVMValueRef br = LLVMGetBasicBlockTerminator(bb), cmp;   /* loop_begin's i < hi */
            if (br && LLVMIsABranchInst(br) && LLVMIsConditional(br) && (cmp = LLVMIsAICmpInst(LLVMGetCondition(br))) &&
                LLVMIsAPHINode(LLVMGetOperand(cmp, 0)) && LLVMIsAConstantInt(LLVMGetOperand(cmp, 1)))
                return true;
        }
    }
    return false;
}

bool codegen_optimize(LLVMModuleRef mod, LLVMTargetMachineRef tm, int opt_level)
{
#ifndef NDEBUG
    /* here rather than in codegen_module: a JIT cache hit compiles nothing,
     * and its object was stored after the same module verified */
    char *msg = NULL;
    bool bad = LLVMVerifyModule(mod, LLVMReturnStatusAction, &msg);
    if (bad)
        diag_plain("internal error: generated LLVM IR does not verify: %.2000s", msg);
    LLVMDisposeMessage(msg);
    if (bad)
        return false;
#endif
    char *t = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(mod, t);
    LLVMDisposeMessage(t);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(mod, td);
    LLVMDisposeTargetData(td);
    if (opt_level >= 1)
        cg_math_inline(mod);
    char passes[sizeof O2_PIPELINE("slp-vectorizer,")];
    if (opt_level == 2)
        snprintf(passes, sizeof passes, "%s", wants_slp(mod) ? O2_PIPELINE("slp-vectorizer,") : O2_PIPELINE(""));
    else
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
