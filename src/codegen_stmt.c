/* codegen_stmt.c — the second half of codegen.c: the plan's points (which
 * kernels run where, need), then statements (stores to slots, if, while,
 * for, the work stack and tape of PUSH and POP) and the function's results
 * (gen_results: the gradients, with the plan's one pass).  Values and
 * kernels are emitted by codegen.c. */
#include "cg.h"

#include <gradc/runtime.h>
#include <math.h>

#include <string.h>

/* The alloca of a kept sum or norm (0 at entry, as its slot). */
static LLVMValueRef kept_var(Cg *c, int id)
{
    if (!c->keptvar[id]) {
        c->keptvar[id] = alloca_(c, c->f64);
        LLVMBuildStore(c->ab, cf(c, 0), c->keptvar[id]);
    }
    return c->keptvar[id];
}

/* The product stored into gradient i's buffer by gen_results (plan:
 * Gemm.out), or NULL. */
static Node *grad_product(const Plan *p, Node *g, int i)
{
    Node *m = g->op == OP_MUL && !is_scalar(g) ? g->args[g->args[0]->op == OP_CONST] : g;
    const Gemm *gm = m->op == OP_MATMUL ? p->gemm[m->id] : NULL;
    return gm && gm->out == i ? m : NULL;
}

/* A map and a sum over entries of its shape in one loop (plan: merge_sums):
 * each block's terms and entries are loaded, then the entries stored. */
typedef struct MapSum {
    Node *map, *sum;
    LLVMValueRef out;
    VEC(LLVMValueRef) at, val;
} MapSum;

static LLVMValueRef f_mapsum(Cg *c, void *ctx, LLVMValueRef k)
{
    MapSum *o = ctx;
    LLVMValueRef s = cg_elem(c, o->sum->args[0], k);
    vec_push(c->a, &o->at, at(c, o->out, k));
    vec_push(c->a, &o->val, cg_elem_op(c, o->map, k));
    return s;
}

static void flush_mapsum(Cg *c, void *ctx)
{
    MapSum *o = ctx;
    for (int i = 0; i < o->at.len; i++)
        LLVMBuildStore(c->b, o->val.data[i], o->at.data[i]);
    o->at.len = o->val.len = 0;
}

static void gen_mapsum(Cg *c, const Kernel *k)
{
    MapSum o = {k->node, k->members[0], bufp(c, c->p->buf[k->node->id]), {0}, {0}};
    LLVMValueRef s = cg_reduce_sum_flush(c, count(c, o.map), f_mapsum, flush_mapsum, &o);
    node_bind(c, o.map, o.out);
    node_made(c, o.map);
    node_bind(c, o.sum, s);
    node_made(c, o.sum);
}

static void gen_kernel(Cg *c, const Kernel *k)
{
    Node *n = k->node;
    if (k->kind == K_MAP && k->nmembers) {
        gen_mapsum(c, k);
        return;
    }
    const Gemm *g = k->kind == K_GEMM ? c->p->gemm[n->id] : NULL;
    if (g && ((g->out >= 0 && !g->early) || g->slot >= 0))
        return; /* computed into its gradient's buffer by gen_results, its slot's by assign */
    if (k->kind == K_MATVEC || k->kind == K_ROWS) {
        (k->kind == K_MATVEC ? cg_matvec : cg_rows)(c, k);
        return;
    }
    if (k->kind == K_KEPT)
        node_bind(c, n, LLVMBuildLoad2(c->b, c->f64, kept_var(c, n->id), ""));
    else
        node_bind(c, n, one_value(c->p, n) ? gen_scalar(c, n) : gen_buffer(c, n));
    node_made(c, n);
}

/* Whether a point goes into chunk functions (chunk.c).  A chunk is a
 * function of its own, and a kept sum's variable (plan.h: kept) and the
 * one-pass value live in the impl's frame: a plan with kept slots, or a point
 * holding the one-pass sum, stays whole. */
static bool chunk_ok(Cg *c, const Point *pt)
{
    if (!chunk_wanted(pt))
        return false;
    for (int s = 0; c->p->kept_by && s < c->m->ir->slots.len; s++)
        if (c->p->kept_by[s] >= 0)
            return false;
    for (int i = 0; i < pt->nk; i++)
        if (pt->ks[i].kind == K_KEPT || (pt->ks[i].node == c->p->onepass && c->pc - 1 == c->p->onepass_point))
            return false;
    return true;
}

/* The next point of the plan: its kernels, which must be for root. */
static void need(Cg *c, Node *root)
{
    if (c->pc >= c->p->points.len || c->p->points.data[c->pc].root != root) {
        internal(c, "the plan and the code generator disagree on the order of points");
        return;
    }
    const Point *pt = &c->p->points.data[c->pc++];
    if (chunk_ok(c, pt)) {
        chunk_point(c, pt, gen_kernel);
        return;
    }
    for (int i = 0; i < pt->nk && !c->failed; i++) {
        if (pt->ks[i].node == c->p->onepass && c->pc - 1 == c->p->onepass_point) {
            c->rest = pt->ks + i + 1; /* gen_results: the sum, then these */
            c->nrest = pt->nk - i - 1;
            return;
        }
        gen_kernel(c, &pt->ks[i]);
    }
}

/* ===================================================================== */
/* Statements                                                            */
/* ===================================================================== */

/* dst[k] = x[k] (or += when acc), for every entry. */
void cg_store_all(Cg *c, Node *x, LLVMValueRef dst, LLVMValueRef acc)
{
    Loop2 lp;
    LLVMValueRef k = loop2_begin(c, &lp, x->shape, is_fused(c->p, x) && cg_reads_bcast(c, x, true));
    LLVMValueRef v = cg_elem(c, x, k);
    store(c, acc_value(c, acc, at(c, dst, k), v), dst, k);
    loop2_end(c, &lp);
}

/* ‖p‖ from the sum of squares ss of its n entries: sqrt(ss), or the
 * runtime's rescaled pass when ss overflowed or underflowed (as gradc_norm). */
static LLVMValueRef norm_from(Cg *c, LLVMValueRef ss, LLVMValueRef n, LLVMValueRef p)
{
    LLVMValueRef r = alloca_(c, c->f64);
    LLVMValueRef fine = LLVMBuildOr(c->b, fcmp(c, LLVMRealUNO, ss, ss),
                                    LLVMBuildAnd(c->b, fcmp(c, LLVMRealOGT, ss, cf(c, 0x1p-900)),
                                                 fcmp(c, LLVMRealOLT, ss, cf(c, INFINITY)), ""), "");
    LLVMBasicBlockRef yes = block(c, "norm.sqrt"), no = block(c, "norm.scaled"), done = block(c, "norm");
    LLVMBuildCondBr(c->b, fine, yes, no);
    enter(c, yes);
    LLVMBuildStore(c->b, intrinsic(c, "llvm.sqrt", c->f64, 1, &ss), r);
    LLVMBuildBr(c->b, done);
    enter(c, no);
    LLVMTypeRef pt[2] = {c->i64, c->ptr};
    LLVMValueRef args[2] = {n, p};
    LLVMBuildStore(c->b, callrt(c, RT_norm, c->f64, pt, 2, args), r);
    LLVMBuildBr(c->b, done);
    enter(c, done);
    return LLVMBuildLoad2(c->b, c->f64, r, "");
}

/* dst[k] = src(k) for k < n, with the sums and norms ids[0..nr-1] of those
 * entries (plan: kept) summed in the same loop; their values into res.
 * The kept sums' additions may be reassociated (LLVM's loop vectoriser
 * then keeps as many vector partial sums as the target wants): a kept sum
 * differs from a separate one by rounding only, within the usual
 * count · eps · Σ|x|. */
static void store_loop(Cg *c, const int *ids, int nr, LLVMValueRef n, ElemFn src, void *ctx, LLVMValueRef dst,
                       LLVMValueRef *res)
{
    const Plan *p = c->p;
    LLVMValueRef *acc = arena_alloc(c->a, sizeof *acc * (size_t)(nr + 1));
    for (int r = 0; r < nr; r++) {
        acc[r] = alloca_(c, c->f64);
        LLVMBuildStore(c->b, cf(c, 0), acc[r]);
    }
    Loop lp;
    LLVMValueRef k = loop_begin(c, &lp, ci(c, 0), n);
    LLVMValueRef v = src(c, ctx, k);
    store(c, v, dst, k);
    for (int r = 0; r < nr; r++) {
        bool sq = p->nodes[ids[r]]->op == OP_NORM;
        LLVMValueRef x = sq ? LLVMBuildFMul(c->b, v, v, "") : v;
        LLVMValueRef sum = fplus(c, LLVMBuildLoad2(c->b, c->f64, acc[r], ""), x);
        LLVMSetFastMathFlags(sum, LLVMFastMathAllowReassoc);
        if (sq && c->opt_level >= 1) { /* one FMA where the target has it, as the hand loop's q += b*b */
            LLVMSetFastMathFlags(x, LLVMFastMathAllowContract);
            LLVMSetFastMathFlags(sum, LLVMFastMathAllowReassoc | LLVMFastMathAllowContract);
        }
        LLVMBuildStore(c->b, sum, acc[r]);
    }
    loop_end(c, &lp);
    for (int r = 0; r < nr; r++) {
        res[r] = LLVMBuildLoad2(c->b, c->f64, acc[r], "");
        if (p->nodes[ids[r]]->op == OP_NORM)
            res[r] = norm_from(c, res[r], n, dst);
    }
}

typedef struct KeptStore {
    Node *x;
    const int *ids;
    int nr;
} KeptStore;

/* { double × nr }: the kept values an outlined store returns */
static LLVMTypeRef kept_type(Cg *c, int nr)
{
    LLVMTypeRef *ft = arena_alloc(c->a, sizeof *ft * (size_t)nr);
    for (int r = 0; r < nr; r++)
        ft[r] = c->f64;
    return LLVMStructTypeInContext(c->ctx, ft, (unsigned)nr, 0);
}

/* store_loop in a function of its own, its kept values returned as a struct */
static LLVMValueRef kept_store_fn(Cg *c, void *ctx, LLVMValueRef out)
{
    KeptStore *k = ctx;
    LLVMValueRef *res = arena_alloc(c->a, sizeof *res * (size_t)k->nr);
    store_loop(c, k->ids, k->nr, count(c, k->x), f_elem, k->x, out, res);
    LLVMValueRef agg = LLVMGetUndef(kept_type(c, k->nr));
    for (int r = 0; r < k->nr; r++)
        agg = LLVMBuildInsertValue(c->b, agg, res[r], (unsigned)r, "");
    return agg;
}

/* slot s = x with its kept values into res, through gradc.keep.KEY: keyed
 * by x's structure and size, which leaf is s's own buffer, and which kept
 * values (sum or norm) */
static void store_kept_outlined(Cg *c, int s, Node *x, const int *ids, int nr, LLVMValueRef dst, LLVMValueRef *res)
{
    NodeVec leaves = {0};   /* a stored x (a buffer's copy) is itself a leaf */
    uint64_t h = cg_key_node(c, cg_key_bytes(0, "keep", 4), x, &leaves, is_fused(c->p, x));
    h = cg_key_shape(h, x->shape);
    int self = -1;
    for (int i = 0; i < leaves.len; i++)
        if (cg_reads_slot_buffer(c, leaves.data[i], s))
            self = i;
    h = cg_key_bytes(h, &self, sizeof self);
    for (int r = 0; r < nr; r++)
        h = cg_key_bytes(h, &c->p->nodes[ids[r]]->op, sizeof c->p->nodes[ids[r]]->op);
    KeptStore ks = {x, ids, nr};
    LLVMValueRef agg = cg_outlined(c, "keep", h, &leaves, self, kept_type(c, nr), dst, NULL, kept_store_fn, &ks);
    for (int r = 0; r < nr; r++)
        res[r] = LLVMBuildExtractValue(c->b, agg, (unsigned)r, "");
}

/* dst[k] = src(k) for the n entries of slot s, updating the sums and norms
 * of s that its stores keep in the same loop.  A store of an expression x
 * (src f_elem) is, from -O1 and at a symbolic size, a function per
 * structure, as a map is: the value function's and the gradient's forward
 * loops are one (the D2L sample's while loop: b = 2 .* b keeping norm(b)
 * and sum(b)). */
static void store_slot(Cg *c, int s, LLVMValueRef n, ElemFn src, void *ctx, LLVMValueRef dst)
{
    const Plan *p = c->p;
    int nr = 0;
    for (int id = p->kept_by[s]; id >= 0; id = p->kept[id])
        nr++;
    int *ids = arena_alloc(c->a, sizeof(int) * (size_t)(nr + 1));
    LLVMValueRef *res = arena_alloc(c->a, sizeof *res * (size_t)(nr + 1));
    nr = 0;
    for (int id = p->kept_by[s]; id >= 0; id = p->kept[id])
        ids[nr++] = id;
    if (src == f_elem && nr > 0 && c->opt_level >= 1 && !LLVMIsAConstantInt(n))
        store_kept_outlined(c, s, ctx, ids, nr, dst, res);
    else
        store_loop(c, ids, nr, n, src, ctx, dst, res);
    for (int r = 0; r < nr; r++)
        LLVMBuildStore(c->b, res[r], kept_var(c, ids[r]));
}

/* the same value for every k */
static LLVMValueRef f_value(Cg *c, void *v, LLVMValueRef k)
{
    (void)c, (void)k;
    return v;
}

/* After a pop into slot s: its kept sums and norms from its entries. */
static void rekeep(Cg *c, int s)
{
    const Plan *p = c->p;
    Shape sh = c->m->ir->slots.data[s].shape;
    LLVMValueRef n = mul(c, dimv(c, sh.rows), dimv(c, sh.cols)), dst = bufp(c, p->slotbuf[s]);
    for (int id = p->kept_by[s]; id >= 0; id = p->kept[id]) {
        LLVMValueRef t;
        if (p->nodes[id]->op == OP_NORM) {
            LLVMTypeRef pt[2] = {c->i64, c->ptr};
            LLVMValueRef args[2] = {n, dst};
            t = callrt(c, RT_norm, c->f64, pt, 2, args);
        } else {
            Two w = {c, dst, NULL, ci(c, 1), NULL};
            t = cg_reduce_sum(c, n, f_strided, &w);
        }
        LLVMBuildStore(c->b, t, kept_var(c, id));
    }
}

/* Slot s now holds slot from's entries in from's buffer (plan: slotshare):
 * s's kept sums and norms are from's of the same kind, or from a pass. */
static void keep_from(Cg *c, int s, int from)
{
    const Plan *p = c->p;
    bool all = true;
    for (int id = p->kept_by[s]; id >= 0; id = p->kept[id]) {
        int same = p->kept_by[from];
        while (same >= 0 && p->nodes[same]->op != p->nodes[id]->op)
            same = p->kept[same];
        if (same >= 0)
            LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, c->f64, kept_var(c, same), ""), kept_var(c, id));
        all &= same >= 0;
    }
    if (!all)
        rekeep(c, s);
}

static bool reads_other(const Node *x, int n, const int *slots, int self)
{
    for (int j = 0; j < n; j++)
        if (j != self && node_reads_slot(x, slots[j]))
            return true;
    return false;
}

/* +0.0, all of whose bytes are zero (not -0.0) */
static bool is_plus_zero(LLVMValueRef v)
{
    LLVMBool lost;
    double d = v && LLVMIsAConstantFP(v) ? LLVMConstRealGetDouble(v, &lost) : 1;
    return d == 0 && !signbit(d);
}

/* slots[i] = vals[i] for all i, in parallel: every value is computed (into
 * the slot's shadow buffer when a later store could clobber what it reads)
 * before any slot is written.  Where a slot keeps no sum, a fill with +0.0
 * or a copy of another buffer is a memset or memmove (as loops, LLVM
 * vectorised each: a vector body, a remainder and an overlap check; rnn's
 * gradient had eight), and a store of an expression is a map's function
 * (cg_store_map). */
static void assign(Cg *c, int n, const int *slots, Node **vals)
{
    LLVMValueRef *v = arena_alloc(c->a, sizeof *v * (size_t)(n + 1));
    bool *direct = arena_alloc(c->a, (size_t)n + 1);
    int *nscatter = arena_alloc(c->a, sizeof(int) * (size_t)(n + 1));
    Node *(*pads)[SCATTER_MAX] = arena_alloc(c->a, sizeof *pads * (size_t)(n + 1));
    for (int i = 0; i < n; i++) {
        Node *x = vals[i];
        int s = slots[i];
        if ((nscatter[i] = scatter_form(x, s, pads[i]))) {
            for (int k = 0; k < nscatter[i]; k++)
                for (int a = 0; a < 3; a++)
                    need(c, pads[i][k]->args[a]);
            continue;
        }
        need(c, x);
        if (x->op == OP_ADD && c->p->gemm[x->id] && c->p->gemm[x->id]->slot == s)
            continue; /* accumulated into the slot below */
        if (c->p->slotbuf[s] < 0) { /* a scalar or uniform slot: one value */
            v[i] = one_value(c->p, x) ? cg_get(c, x) : cg_elem(c, x, ci(c, 0));
            continue;
        }
        if (one_value(c->p, x)) { /* a uniform slot into a buffer: every entry */
            v[i] = cg_get(c, x);
            continue;
        }
        bool other = reads_other(x, n, slots, i);
        if (!other && is_fused(c->p, x)) {
            direct[i] = true; /* reads entry k of its own slot at most */
        } else if (other) {
            v[i] = bufp(c, c->p->shadow[s]);
            cg_store_all(c, x, v[i], NULL);
        } else {
            v[i] = cg_get(c, x);
        }
    }
    /* the in-place sums first: what they read is not written before them */
    for (int i = 0; i < n; i++)
        for (int k = 0; k < nscatter[i]; k++) {
            Node *pad = pads[i][k];
            cg_scatter_add(c, pad, bufp(c, c->p->slotbuf[slots[i]]), cg_argbuf(c, pad->args[0]),
                           cg_get(c, pad->args[1]), cg_get(c, pad->args[2]));
        }
    for (int i = 0; i < n; i++) {
        Node *x = vals[i];
        int s = slots[i];
        const Gemm *g = x->op == OP_ADD ? c->p->gemm[x->id] : NULL;
        if (nscatter[i]) {
            continue;
        } else if (g && g->slot == s) {
            cg_gemm_call(c, x, g, bufp(c, c->p->slotbuf[s]), 1, cbool(c, 1));
            if (c->p->kept_by[s] >= 0)
                rekeep(c, s);
        } else if (c->p->slotbuf[s] < 0) {
            LLVMBuildStore(c->b, v[i], c->slotvar[s]);
        } else if (one_value(c->p, x) && c->p->kept_by[s] < 0 && is_plus_zero(v[i])) {
            zero(c, bufp(c, c->p->slotbuf[s]), count(c, x));
        } else if (one_value(c->p, x)) {
            store_slot(c, s, count(c, x), f_value, v[i], bufp(c, c->p->slotbuf[s]));
        } else if (direct[i] && c->p->kept_by[s] < 0) {
            cg_store_map(c, x, bufp(c, c->p->slotbuf[s]), s);
        } else if (direct[i]) {
            store_slot(c, s, count(c, x), f_elem, x, bufp(c, c->p->slotbuf[s]));
        } else if (x->op == OP_SLOT && c->p->slotbuf[x->index] == c->p->slotbuf[s]) {
            if (x->index != s)
                keep_from(c, s, x->index); /* s took over x's buffer (plan: slotshare): no copy */
        } else if (c->p->kept_by[s] < 0) { /* a buffer's copy */
            copy_entries(c, bufp(c, c->p->slotbuf[s]), v[i], count(c, x));
        } else { /* a buffer's copy keeping sums: as an expression's store, shared */
            store_slot(c, s, count(c, x), f_elem, x, bufp(c, c->p->slotbuf[s]));
        }
    }
}


static LLVMValueRef truth(Cg *c, Node *cond)
{
    need(c, cond);
    return fcmp(c, LLVMRealUNE, cg_get(c, cond), cf(c, 0));
}

static void gen_if(Cg *c, const Stmt *s)
{
    LLVMBasicBlockRef yes = block(c, "then"), no = block(c, "else"), join = block(c, "endif");
    LLVMBuildCondBr(c->b, truth(c, s->cond), yes, no);
    enter(c, yes);
    gen_block(c, s->then_block);
    assign(c, s->n, s->slots, s->then_vals);
    LLVMBuildBr(c->b, join);
    enter(c, no);
    gen_block(c, s->else_block);
    assign(c, s->n, s->slots, s->else_vals);
    LLVMBuildBr(c->b, join);
    enter(c, join);
}

static void gen_while(Cg *c, const Stmt *s)
{
    assign(c, s->n, s->slots, s->vals);
    need(c, NULL); /* the loop's invariants */
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
    LLVMBuildCondBr(c->b, truth(c, s->cond), check, done);
    enter(c, check);
    LLVMValueRef it = LLVMBuildLoad2(c->b, c->i64, iter, "");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, it, ci(c, c->max_iter), ""), over, body);
    enter(c, over);
    LLVMBuildStore(c->b, LLVMConstInt(c->i32, (unsigned)index, 0), c->where);
    fail_with(c, GRADC_EMAXITER);
    enter(c, body);
    gen_block(c, s->body);
    assign(c, s->n, s->slots, s->next);
    LLVMBuildStore(c->b, add(c, it, ci(c, 1)), iter);
    LLVMBuildBr(c->b, head);
    enter(c, done);
    if (s->count_slot >= 0)
        LLVMBuildStore(c->b, LLVMBuildSIToFP(c->b, LLVMBuildLoad2(c->b, c->i64, iter, ""), c->f64, ""),
                       c->slotvar[s->count_slot]);
}

static void gen_for(Cg *c, const Stmt *s)
{
    assign(c, s->n, s->slots, s->vals);
    need(c, s->count);
    LLVMValueRef n = trips(c, cg_get(c, s->count));
    need(c, NULL); /* the loop's invariants */
    Loop lp;
    LLVMValueRef t = loop_begin(c, &lp, ci(c, 0), n);
    if (s->index_slot >= 0) {
        LLVMValueRef i = s->reverse ? LLVMBuildSub(c->b, n, t, "") : add(c, t, ci(c, 1));
        LLVMBuildStore(c->b, LLVMBuildSIToFP(c->b, i, c->f64, ""), c->slotvar[s->index_slot]);
    }
    gen_block(c, s->body);
    assign(c, s->n, s->slots, s->next);
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
        need(c, x);
        LLVMValueRef top = stack_at(c), n = count(c, x);
        if (is_scalar(x))
            LLVMBuildStore(c->b, cg_get(c, x), top);
        else
            LLVMBuildMemCpy(c->b, top, 8, cg_get(c, x), 8, mul(c, n, ci(c, 8)));
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
        if (c->p->slotbuf[sl] >= 0) {
            LLVMBuildMemCpy(c->b, bufp(c, c->p->slotbuf[sl]), 8, top, 8, mul(c, n, ci(c, 8)));
            rekeep(c, sl);
        }
        else
            LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, c->f64, top, ""), c->slotvar[sl]);
    }
}

static void gen_push(Cg *c, const Stmt *s)
{
    if (c->p->stack) {
        push_stack(c, s);
        return;
    }
    LLVMTypeRef pt[3] = {c->ptr, c->ptr, c->i64};
    LLVMValueRef bad = cbool(c, 0);
    for (int i = 0; i < s->n; i++) {
        Node *x = s->vals[i];
        need(c, x);
        LLVMValueRef args[3] = {c->tape, cg_argbuf(c, x), count(c, x)};
        LLVMValueRef st = callrt(c, RT_tape_push, c->i32, pt, 3, args);
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
        LLVMValueRef dst = c->p->slotbuf[sl] >= 0 ? bufp(c, c->p->slotbuf[sl]) : c->slotvar[sl];
        LLVMValueRef args[3] = {c->tape, dst, mul(c, dimv(c, sh.rows), dimv(c, sh.cols))};
        callrt(c, RT_tape_pop, LLVMVoidTypeInContext(c->ctx), pt, 3, args);
        if (c->p->slotbuf[sl] >= 0)
            rekeep(c, sl);
    }
}

void gen_block(Cg *c, const Block *b)
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

/* The plan's one pass: entry k of the value's sum, after storing entry k
 * of every elementwise gradient of its shape (added to what is there when
 * acc). */
typedef struct OnePass {
    Node *sum;
    LLVMValueRef acc;
    VEC(LLVMValueRef) at, val; /* the block's stores, made by flush */
} OnePass;

static bool in_pass(Cg *c, Node *g) { return in_onepass(c->p, g); }

static LLVMValueRef f_onepass(Cg *c, void *ctx, LLVMValueRef k)
{
    OnePass *o = ctx;
    LLVMValueRef s = cg_elem(c, o->sum->args[0], k);
    for (int i = 0; i < c->m->nwrt; i++) {
        Node *g = c->p->f->grads[i];
        if (!in_pass(c, g))
            continue;
        LLVMValueRef v = cg_elem(c, g, k);
        vec_push(c->a, &o->at, at(c, c->grads[i], k));
        vec_push(c->a, &o->val, acc_value(c, o->acc, at(c, c->grads[i], k), v));
    }
    return s;
}

/* The block's stores gradient by gradient: a run of consecutive entries
 * each, which the SLP vectorizer makes vector stores even when two
 * gradients may be the same memory (NAME_hvp's NULL ones share the sink). */
static void flush_onepass(Cg *c, void *ctx)
{
    OnePass *o = ctx;
    int ng = 0;
    for (int i = 0; i < c->m->nwrt; i++)
        ng += in_pass(c, c->p->f->grads[i]);
    for (int g = 0; g < ng; g++)
        for (int i = g; i < o->at.len; i += ng)
            LLVMBuildStore(c->b, o->val.data[i], o->at.data[i]);
    o->at.len = o->val.len = 0;
}

/* A result that is a tree of concatenations (plan.h: placed_blocks): each
 * block's entries stored (or added) at its corner of dst, rows cols(g)
 * apart; a fused block is computed in this loop. */
static void store_placed(Cg *c, Node *g, LLVMValueRef dst, LLVMValueRef acc)
{
    Placed pl[CAT_MAX];
    int np = placed_blocks(g, pl);
    LLVMValueRef w = cols(c, g);
    for (int j = 0; j < np; j++) {
        Node *b = pl[j].block;
        LLVMValueRef corner = at(c, dst, add(c, mul(c, dimv(c, pl[j].r), w), dimv(c, pl[j].c)));
        LLVMValueRef sv = is_scalar(b) ? cg_get(c, b) : NULL;
        Loop2 l;
        LLVMValueRef k = loop2_begin(c, &l, b->shape, true);
        LLVMValueRef v = sv ? sv : cg_elem(c, b, k), d = at(c, corner, add(c, mul(c, c->ri, w), c->cj));
        LLVMBuildStore(c->b, acc_value(c, acc, d, v), d);
        loop2_end(c, &l);
    }
}

/* The GRADC_ACCUMULATE flag as an i1, or NULL when flags is the constant 0
 * (the JIT's entries: eval compiles no accumulation).  One copy of each
 * store serves both values of the flag (acc_value, gradc_store, BLAS's
 * beta): each was once emitted twice, under a branch on it, and the
 * accumulating copies were a tenth of the samples' compile time. */
static LLVMValueRef accumulate_flag(Cg *c)
{
    LLVMValueRef acc = LLVMBuildICmp(c->b, LLVMIntNE, LLVMBuildAnd(c->b, c->flags, LLVMConstInt(c->i32, 1, 0), ""),
                                     LLVMConstInt(c->i32, 0, 0), "");
    return LLVMIsAConstantInt(acc) && !LLVMConstIntGetZExtValue(acc) ? NULL : acc;
}

void gen_results(Cg *c)
{
    const Func *f = c->p->f;
    int ng = f->grads ? c->m->nwrt : 0;
    need(c, f->value);
    for (int i = 0; f->aux && i < c->m->naux; i++)
        need(c, f->aux[i]);
    for (int k = 0; k < ng; k++)
        need(c, f->grads[c->p->gorder[k]]);
    LLVMValueRef acc = ng ? accumulate_flag(c) : NULL;
    if (c->p->onepass) {
        /* a NULL gradient (NAME_hvp) is stored to the sink in work */
        LLVMValueRef *given = arena_alloc(c->a, sizeof *given * (size_t)(ng + 1));
        for (int i = 0; i < ng; i++) {
            given[i] = c->grads[i];
            if (c->p->sink >= 0 && in_pass(c, f->grads[i]))
                c->grads[i] = sel(c, LLVMBuildIsNull(c->b, given[i], ""), bufp(c, c->p->sink), given[i]);
        }
        /* the sum and the gradients of its shape in one loop */
        OnePass o = {c->p->onepass, acc, {0}, {0}};
        node_bind(c, c->p->onepass, cg_reduce_sum_flush(c, count(c, o.sum->args[0]), f_onepass, flush_onepass, &o));
        for (int i = 0; i < c->nrest; i++)
            gen_kernel(c, &c->rest[i]);
        memcpy(c->grads, given, sizeof *given * (size_t)ng);
    }
    /* the value, then each auxiliary output (spec §8): stored unless NULL */
    for (int i = -1; i < (f->aux ? c->m->naux : 0); i++) {
        Node *x = i < 0 ? f->value : f->aux[i];
        LLVMValueRef dst = i < 0 ? c->out : c->aux[i];
        LLVMBasicBlockRef has = block(c, "out"), next = block(c, "out.done");
        LLVMBuildCondBr(c->b, LLVMBuildIsNull(c->b, dst, ""), next, has);
        enter(c, has);
        if (is_scalar(x))
            LLVMBuildStore(c->b, cg_get(c, x), dst);
        else
            cg_store_out(c, x, dst, NULL);
        LLVMBuildBr(c->b, next);
        enter(c, next);
    }
    if (!ng)
        return;
    for (int i = 0; i < ng; i++) {
        Node *g = f->grads[i];
        if (in_pass(c, g))   /* stored by the one pass */
            continue;
        /* a NULL gradient buffer is not wanted (NAME_hvp, spec §9) */
        LLVMBasicBlockRef put = block(c, "grad"), skip = block(c, "grad.next");
        LLVMBuildCondBr(c->b, LLVMBuildIsNull(c->b, c->grads[i], ""), skip, put);
        enter(c, put);
        Node *prod = grad_product(c->p, g, i);
        if (prod && c->p->gemm[prod->id]->early) /* computed at its point, with its alpha */
            store_entries(c, c->grads[i], cg_get(c, prod), count(c, prod), acc);
        else if (prod)
            cg_gemm_call(c, prod, c->p->gemm[prod->id], c->grads[i], c->p->gemm[prod->id]->alpha, acc);
        else if (is_scalar(g))
            LLVMBuildStore(c->b, acc_value(c, acc, c->grads[i], cg_get(c, g)), c->grads[i]);
        else if (placed_blocks(g, NULL))
            store_placed(c, g, c->grads[i], acc);
        else
            cg_store_out(c, g, c->grads[i], acc);
        LLVMBuildBr(c->b, skip);
        enter(c, skip);
    }
}
