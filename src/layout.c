/* layout.c — what a function's entry computes before its body: the work
 * layout (each buffer's offset in `work`, from the dimensions, through
 * gradc_layout or as literals), the checks on the dimensions (negative,
 * size overflow: GRADC_EDIM) and the work stack's peak depth; and the
 * addresses of buffers and buffer classes in the impl (abi.c builds the
 * functions around it). */
#include "cg.h"

#include <gradc/runtime.h>

LLVMValueRef checked_op(Cg *c, const char *name, LLVMValueRef x, LLVMValueRef y, LLVMValueRef *bad)
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

LLVMValueRef shape_entries(Cg *c, Shape sh, LLVMValueRef *bad)
{
    return checked_op(c, "llvm.smul.with.overflow", dimv(c, sh.rows), dimv(c, sh.cols), bad);
}

static Depth stack_depth(Cg *c, const Block *b, LLVMValueRef *bad);

static Depth stmt_depth(Cg *c, const Stmt *s, LLVMValueRef *bad)
{
    LLVMValueRef zero = ci(c, 0), n = zero;
    switch (s->kind) {
    case S_PUSH:
        for (int i = 0; i < s->n; i++)
            n = checked_op(c, "llvm.sadd.with.overflow", n, shape_entries(c, s->vals[i]->shape, bad), bad);
        return (Depth){n, n};
    case S_POP:
        for (int i = 0; i < s->n; i++)
            n = checked_op(c, "llvm.ssub.with.overflow", n, shape_entries(c, c->m->ir->slots.data[s->slots[i]].shape, bad), bad);
        return (Depth){n, zero};
    case S_FOR: {
        /* stack_sizable: the count is a literal or a dimension */
        LLVMValueRef v = s->count->op == OP_CONST ? cf(c, s->count->num)
                                                  : LLVMBuildSIToFP(c->b, c->dims[s->count->index], c->f64, "");
        LLVMValueRef k = trips(c, v);
        Depth d = stack_depth(c, s->body, bad);
        LLVMValueRef grows = LLVMBuildICmp(c->b, LLVMIntSGE, d.net, zero, "");
        LLVMValueRef reps = sel(c, grows, LLVMBuildSub(c->b, k, ci(c, 1), ""), zero);
        LLVMValueRef peak = checked_op(c, "llvm.sadd.with.overflow",
                                checked_op(c, "llvm.smul.with.overflow", reps, d.net, bad), d.peak, bad);
        LLVMValueRef none = LLVMBuildICmp(c->b, LLVMIntEQ, k, zero, "");
        return (Depth){checked_op(c, "llvm.smul.with.overflow", k, d.net, bad), sel(c, none, zero, peak)};
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
            p.peak = smax(c, p.peak, checked_op(c, "llvm.sadd.with.overflow", p.net, x.peak, bad));
            p.net = checked_op(c, "llvm.sadd.with.overflow", p.net, x.net, bad);
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
LLVMValueRef work_layout(Cg *c, const Plan *p, LLVMValueRef *offs, LLVMValueRef envbytes, LLVMValueRef *bad)
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
        LLVMValueRef n = checked_op(c, "llvm.umul.with.overflow", stack_depth(c, p->f->body, &sbad).peak, ci(c, 8), &sbad);
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

int64_t literal_work(const Plan *p)
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
