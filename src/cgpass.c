/* cgpass.c — matrix–vector products (K_MATVEC kernels): one pass over
 * each matrix for every product of the kernel that reads it, a few rows
 * at a time, written once per module as an internal function per
 * combination of terms. */
#include "cg.h"

enum { PASS_ROWS = 4 };   /* rows read at once (pass_rows) */

/* One term of a pass: out += kc * op(M) * vec; an M*vec term with a
 * weight w also sums w[i] * (M*vec)[i] into *dot (x'*A*y), and may have no
 * out (NULL). */
typedef struct PassTerm {
    bool trans;
    LLVMValueRef v, fill;    /* the vector's entries, or (v NULL) its constant */
    LLVMValueRef out, kc;    /* the result, the factor */
    LLVMValueRef w, dot;     /* the weight and the dot's result, or NULL */
    LLVMValueRef dacc[PASS_ROWS]; /* the dot's partial sums, one per row of a block (allocas) */
} PassTerm;

static LLVMTypeRef vec_t(Cg *c) { return LLVMVectorType(c->f64, LANES); }

/* x*y + z, fused when the target has FMA (llvm.fmuladd: as C's default
 * -ffp-contract=on does for the hand-written loops); at -O0 a multiply
 * and an add, which FastISel selects (llvm.fmuladd sent each pass's inner
 * loop to SelectionDAG) */
static LLVMValueRef fmadd(Cg *c, LLVMValueRef x, LLVMValueRef y, LLVMValueRef z)
{
    if (c->opt_level < 1)
        return LLVMBuildFAdd(c->b, LLVMBuildFMul(c->b, x, y, ""), z, "");
    LLVMValueRef args[3] = {x, y, z};
    return intrinsic(c, "llvm.fmuladd", LLVMTypeOf(x), 3, args);
}

static LLVMValueRef vload(Cg *c, LLVMValueRef p, LLVMValueRef k)
{
    LLVMValueRef v = LLVMBuildLoad2(c->b, vec_t(c), at(c, p, k), "");
    LLVMSetAlignment(v, 8);
    return v;
}
static LLVMValueRef splat(Cg *c, LLVMValueRef x)
{
    LLVMValueRef v = LLVMBuildInsertElement(c->b, LLVMGetPoison(vec_t(c)), x, LLVMConstInt(c->i32, 0, 0), "");
    return LLVMBuildShuffleVector(c->b, v, LLVMGetPoison(vec_t(c)), LLVMConstNull(LLVMVectorType(c->i32, LANES)), "");
}

/* The sum of v's lanes, pairwise: lane e plus lane e + LANES/2, and so on
 * (a few shuffles, not an extract per lane). */
static LLVMValueRef hsum(Cg *c, LLVMValueRef v)
{
    for (int w = LANES / 2; w >= 1; w /= 2) {
        LLVMValueRef mask[LANES];
        for (int e = 0; e < LANES; e++)
            mask[e] = LLVMConstInt(c->i32, (unsigned)((e + w) % LANES), 0);
        v = fplus(c, v, LLVMBuildShuffleVector(c->b, v, LLVMGetPoison(vec_t(c)), LLVMConstVector(mask, LANES), ""));
    }
    return LLVMBuildExtractElement(c->b, v, LLVMConstInt(c->i32, 0, 0), "");
}

/* LANES entries of a product's vector from k on (a FILL: its constant). */
static LLVMValueRef vec_lanes(Cg *c, PassTerm *t, LLVMValueRef k)
{
    return t->v ? vload(c, t->v, k) : splat(c, t->fill);
}
static LLVMValueRef vec_at(Cg *c, PassTerm *t, LLVMValueRef k)
{
    return t->v ? load(c, t->v, k) : t->fill;
}

/* Rows i .. i+nr-1 of M (R×C, row-major) read once for every term that
 * reads M.  Each row's dot product (M*vec) is summed as reduce_sum sums:
 * LANES partial sums (one vector register per row, so nr independent
 * chains), combined pairwise (hsum), then the
 * remainder one by one; a*b + c is fused where the target has FMA, as in
 * the hand loops (clang's default contraction).  M'*vec accumulates
 * into its result from the same loaded entries, loaded and stored once per
 * nr rows (in row order, entry by entry).  A weighted term's dot adds
 * w[i] * (M*vec)[i] to the partial sum of the row's place in the block. */

/* A value carried around loop l (a phi in its head, init on entry);
 * carry_next gives its next value, before loop_end. */
static LLVMValueRef carry(Cg *c, Loop *l, LLVMTypeRef t, LLVMValueRef init)
{
    LLVMBuilderRef b = LLVMCreateBuilderInContext(c->ctx);
    LLVMPositionBuilderBefore(b, LLVMGetNextInstruction(l->i));
    LLVMValueRef phi = LLVMBuildPhi(b, t, "");
    LLVMBasicBlockRef pre = LLVMGetIncomingBlock(l->i, 0);
    LLVMAddIncoming(phi, &init, &pre, 1);
    LLVMDisposeBuilder(b);
    return phi;
}

static void carry_next(Cg *c, LLVMValueRef phi, LLVMValueRef next)
{
    LLVMBasicBlockRef from = LLVMGetInsertBlock(c->b);
    LLVMAddIncoming(phi, &next, &from, 1);
}

/* i + r (i itself for r = 0: no instruction) */
static LLVMValueRef plus(Cg *c, LLVMValueRef i, int r) { return r ? add(c, i, ci(c, r)) : i; }

static void pass_rows(Cg *c, LLVMValueRef A, LLVMValueRef i, int nr, LLVMValueRef C, LLVMValueRef blocks,
                      PassTerm *ts, int nt)
{
    LLVMTypeRef vt = vec_t(c);
    size_t nk = (size_t)(nt * PASS_ROWS);
    LLVMValueRef row[PASS_ROWS], *y = arena_alloc(c->a, sizeof *y * nk), *acc = arena_alloc(c->a, sizeof *acc * nk);
    LLVMValueRef *next = arena_alloc(c->a, sizeof *next * nk);
    for (int r = 0; r < nr; r++)
        row[r] = at(c, A, mul(c, plus(c, i, r), C));
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < nr && ts[t].trans; r++)
            y[t * PASS_ROWS + r] = LLVMBuildFMul(c->b, ts[t].kc, vec_at(c, &ts[t], plus(c, i, r)), "");
    Loop lj;
    LLVMValueRef jb = loop_begin(c, &lj, ci(c, 0), blocks);
    LLVMValueRef j = mul(c, jb, ci(c, LANES)), a[PASS_ROWS];
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < nr && !ts[t].trans; r++)
            acc[t * PASS_ROWS + r] = carry(c, &lj, vt, LLVMConstNull(vt));
    for (int r = 0; r < nr; r++)
        a[r] = vload(c, row[r], j);
    for (int t = 0; t < nt; t++) {
        if (ts[t].trans) {
            LLVMValueRef op = at(c, ts[t].out, j), o = LLVMBuildLoad2(c->b, vt, op, "");
            LLVMSetAlignment(o, 8);
            for (int r = 0; r < nr; r++)
                o = fmadd(c, a[r], splat(c, y[t * PASS_ROWS + r]), o);
            LLVMSetAlignment(LLVMBuildStore(c->b, o, op), 8);
            continue;
        }
        LLVMValueRef x = vec_lanes(c, &ts[t], j);
        for (int r = 0; r < nr; r++)
            next[t * PASS_ROWS + r] = fmadd(c, a[r], x, acc[t * PASS_ROWS + r]);
    }
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < nr && !ts[t].trans; r++)
            carry_next(c, acc[t * PASS_ROWS + r], next[t * PASS_ROWS + r]);
    loop_end(c, &lj);
    LLVMValueRef *sum = arena_alloc(c->a, sizeof *sum * nk);
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < nr && !ts[t].trans; r++)
            sum[t * PASS_ROWS + r] = hsum(c, acc[t * PASS_ROWS + r]);
    j = loop_begin(c, &lj, mul(c, blocks, ci(c, LANES)), C);
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < nr && !ts[t].trans; r++)
            acc[t * PASS_ROWS + r] = carry(c, &lj, c->f64, sum[t * PASS_ROWS + r]);
    LLVMValueRef e[PASS_ROWS];
    for (int r = 0; r < nr; r++)
        e[r] = load(c, row[r], j);
    for (int t = 0; t < nt; t++) {
        if (ts[t].trans) {   /* row by row, as the vector loop */
            LLVMValueRef op = at(c, ts[t].out, j), o = LLVMBuildLoad2(c->b, c->f64, op, "");
            for (int r = 0; r < nr; r++)
                o = fmadd(c, e[r], y[t * PASS_ROWS + r], o);
            LLVMBuildStore(c->b, o, op);
            continue;
        }
        LLVMValueRef x = vec_at(c, &ts[t], j);
        for (int r = 0; r < nr; r++)
            next[t * PASS_ROWS + r] = fmadd(c, e[r], x, acc[t * PASS_ROWS + r]);
    }
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < nr && !ts[t].trans; r++)
            carry_next(c, acc[t * PASS_ROWS + r], next[t * PASS_ROWS + r]);
    loop_end(c, &lj);
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < nr && !ts[t].trans; r++) {
            LLVMValueRef s = acc[t * PASS_ROWS + r], o = plus(c, i, r);
            if (ts[t].out) {
                LLVMValueRef op = at(c, ts[t].out, o);
                LLVMBuildStore(c->b, fplus(c, LLVMBuildLoad2(c->b, c->f64, op, ""), LLVMBuildFMul(c->b, ts[t].kc, s, "")), op);
            }
            if (ts[t].w) {
                LLVMValueRef d = ts[t].dacc[r];
                LLVMBuildStore(c->b, fmadd(c, load(c, ts[t].w, o), s, LLVMBuildLoad2(c->b, c->f64, d, "")), d);
            }
        }
}

static void pass_ir(Cg *c, LLVMValueRef A, LLVMValueRef lo, LLVMValueRef R, LLVMValueRef C, PassTerm *ts, int nt,
                    bool tail);

/* Rows lo .. R-1 of M read once for every term that reads it: PASS_ROWS
 * rows at a time, then (tail) the remaining rows one by one, in a function
 * of their own that the row pass's remainder calls too.  A weighted term's
 * dot is added to *dot. */
static void gen_pass(Cg *c, LLVMValueRef A, LLVMValueRef lo, LLVMValueRef R, LLVMValueRef C, PassTerm *ts, int nt,
                     bool tail)
{
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < PASS_ROWS && ts[t].w; r++) {
            ts[t].dacc[r] = alloca_(c, c->f64);
            LLVMBuildStore(c->b, cf(c, 0), ts[t].dacc[r]);
        }
    LLVMValueRef blocks = LLVMBuildSDiv(c->b, C, ci(c, LANES), "");
    LLVMValueRef nb = LLVMBuildSDiv(c->b, LLVMBuildSub(c->b, R, lo, ""), ci(c, tail ? 1 : PASS_ROWS), "");
    Loop li;
    LLVMValueRef ib = loop_begin(c, &li, ci(c, 0), nb);
    pass_rows(c, A, add(c, lo, mul(c, ib, ci(c, tail ? 1 : PASS_ROWS))), tail ? 1 : PASS_ROWS, C, blocks, ts, nt);
    loop_end(c, &li);
    for (int t = 0; t < nt; t++) {
        if (!ts[t].w)
            continue;
        LLVMValueRef d[PASS_ROWS];
        for (int r = 0; r < PASS_ROWS; r++)
            d[r] = LLVMBuildLoad2(c->b, c->f64, ts[t].dacc[r], "");
        LLVMValueRef sum = fplus(c, fplus(c, d[0], d[1]), fplus(c, d[2], d[3]));
        LLVMBuildStore(c->b, fplus(c, LLVMBuildLoad2(c->b, c->f64, ts[t].dot, ""), sum), ts[t].dot);
    }
    if (!tail) /* R and C are parameters here, whatever they are at the call */
        pass_ir(c, A, add(c, lo, mul(c, nb, ci(c, PASS_ROWS))), R, C, ts, nt, true);
}

/* A pass where a size is symbolic: a call of the runtime's compiled
 * kernel (runtime/passes.c: the same loops and order, fused as fmadd is)
 * instead of IR of the module's own, for one product or an M*vec with an
 * M'*vec; false for another form (three products, a weighted M'*vec) and
 * for literal sizes, where the IR is inlined and specialised. */
static bool pass_runtime(Cg *c, LLVMValueRef A, LLVMValueRef lo, LLVMValueRef R, LLVMValueRef C, PassTerm *ts,
                         int nt)
{
    PassTerm *n = NULL, *t = NULL;
    for (int i = 0; i < nt; i++)
        if (ts[i].trans && !ts[i].w && !t)
            t = &ts[i];
        else if (!ts[i].trans && !n)
            n = &ts[i];
        else
            return false;
    if (!nt || (LLVMIsAConstantInt(R) && LLVMIsAConstantInt(C)))
        return false;
    LLVMValueRef null = LLVMConstNull(c->ptr), args[14] = {lo, R, C, A};
    LLVMTypeRef pt[14] = {c->i64, c->i64, c->i64, c->ptr};
    int na = 4;
    PassTerm *terms[2] = {n, t};   /* the kernels' order: M*x's, then M'*y's */
    for (int i = 0; i < 2; i++) {
        PassTerm *u = terms[i];
        if (!u)
            continue;
        LLVMValueRef a[6] = {u->v ? u->v : null, u->v ? cf(c, 0) : u->fill, u->out ? u->out : null, u->kc,
                             u->w ? u->w : null, u->w ? u->dot : null};
        for (int e = 0; e < (u->trans ? 4 : 6); e++, na++)
            args[na] = a[e], pt[na] = LLVMTypeOf(a[e]);
    }
    /* -O0: the unfused kernels, as fmadd is there */
    static const RtFn fns[2][3] = {{RT_pass_n, RT_pass_t, RT_pass_nt},
                                   {RT_pass_n_nofma, RT_pass_t_nofma, RT_pass_nt_nofma}};
    callrt(c, fns[c->opt_level < 1][!n ? 1 : !t ? 0 : 2], LLVMVoidTypeInContext(c->ctx), pt, na, args);
    return true;
}

/* A pass over one matrix is a kernel written once per module: an internal
 * function per combination of terms ("NT": M*x and M'*y in one read of M;
 * lower case: a constant vector, passed by value; "w": with a weighted
 * dot, "x": without a result vector), called by every product of that
 * form, so a program of many products stays small and compiles in linear
 * time; its last rows one by one are "gradc.tail.…".  Parameters: lo, R,
 * C, M, then per term its vector (pointer or constant), its result and its
 * factor, and a weighted term's weight and dot. */
static void pass_ir(Cg *c, LLVMValueRef A, LLVMValueRef lo, LLVMValueRef R, LLVMValueRef C, PassTerm *ts, int nt,
                    bool tail)
{
    char *key = arena_alloc(c->a, 3 * (size_t)nt + 16);
    int np = 4, len = (int)strlen(strcpy(key, tail ? "gradc.tail." : "gradc.pass."));
    for (int t = 0; t < nt; t++) {
        key[len++] = (char)((ts[t].trans ? 'T' : 'N') + (ts[t].v ? 0 : 'a' - 'A'));
        if (ts[t].w)
            key[len++] = 'w';
        if (!ts[t].out)
            key[len++] = 'x';
        np += ts[t].w ? 5 : 3;
    }
    LLVMTypeRef *pt = arena_alloc(c->a, sizeof *pt * (size_t)np);
    LLVMValueRef *args = arena_alloc(c->a, sizeof *args * (size_t)np);
    pt[0] = pt[1] = pt[2] = c->i64, pt[3] = c->ptr;
    args[0] = lo, args[1] = R, args[2] = C, args[3] = A;
    for (int t = 0, q = 4; t < nt; t++) {
        LLVMValueRef a[5] = {ts[t].v ? ts[t].v : ts[t].fill, ts[t].out ? ts[t].out : LLVMConstNull(c->ptr),
                             ts[t].kc, ts[t].w, ts[t].dot};
        for (int e = 0; e < (ts[t].w ? 5 : 3); e++, q++)
            pt[q] = LLVMTypeOf(a[e]), args[q] = a[e];
    }
    LLVMTypeRef ft = LLVMFunctionType(LLVMVoidTypeInContext(c->ctx), pt, (unsigned)np, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(c->mod, key);
    if (!fn) {
        Frame saved = frame_begin(c, key, ft);
        fn = c->fn;
        PassTerm *fs = arena_alloc(c->a, sizeof *fs * (size_t)nt);
        for (int t = 0, q = 4; t < nt; t++) {
            LLVMValueRef v = LLVMGetParam(fn, (unsigned)q);
            fs[t] = (PassTerm){ts[t].trans, ts[t].v ? v : NULL, v,
                               ts[t].out ? LLVMGetParam(fn, (unsigned)q + 1) : NULL, LLVMGetParam(fn, (unsigned)q + 2),
                               ts[t].w ? LLVMGetParam(fn, (unsigned)q + 3) : NULL,
                               ts[t].w ? LLVMGetParam(fn, (unsigned)q + 4) : NULL, {NULL}};
            q += ts[t].w ? 5 : 3;
        }
        gen_pass(c, LLVMGetParam(fn, 3), LLVMGetParam(fn, 0), LLVMGetParam(fn, 1), LLVMGetParam(fn, 2), fs, nt, tail);
        LLVMBuildRetVoid(c->b);
        frame_end(c, &saved);
    }
    LLVMValueRef call = LLVMBuildCall2(c->b, ft, fn, args, (unsigned)np, "");
    /* literal sizes: inlined, specialised; a tail (at most PASS_ROWS - 1
     * rows) is called from inside a pass, where R and C are parameters:
     * left to LLVM, so that a pass inlined at literal sizes takes its tail
     * with it (x'*A*x at 4x4 called an empty tail through the stack) */
    if (!tail && (!LLVMIsAConstantInt(R) || !LLVMIsAConstantInt(C)))
        LLVMAddCallSiteAttribute(call, LLVMAttributeFunctionIndex, cg_noinline(c));
}

/* Rows lo .. R-1 of M read once for every term: the runtime's kernel, or
 * the module's own (tail: the last rows one by one). */
static void pass_call(Cg *c, LLVMValueRef A, LLVMValueRef lo, LLVMValueRef R, LLVMValueRef C, PassTerm *ts,
                      int nt, bool tail)
{
    if (!pass_runtime(c, A, lo, R, C, ts, nt))
        pass_ir(c, A, lo, R, C, ts, nt, tail);
}

/* The products of a K_MATVEC kernel (the plan chose members whose inputs
 * are at hand): results zeroed, the identity terms, then one pass per
 * distinct matrix.  A dot member (plan.h: Mv.w) rides on an M*vec term of
 * the same matrix and vector when the kernel has one (x'*A*x: the
 * gradient's A*x), else is a term of its own without a result vector. */
void cg_matvec(Cg *c, const Kernel *k)
{
    Plan *p = c->p;
    int nt = 0;
    for (int i = 0; i < k->nmembers; i++)
        nt += p->mv[k->members[i]->id]->nterms;
    PassTerm *ts = arena_alloc(c->a, sizeof *ts * (size_t)(nt + 1));
    const Term **tms = arena_alloc(c->a, sizeof *tms * (size_t)(nt + 1));
    LLVMValueRef *lens = arena_alloc(c->a, sizeof *lens * (size_t)(nt + 1));
    LLVMValueRef *outlens = arena_alloc(c->a, sizeof *outlens * (size_t)(nt + 1));
    Node **vecs = arena_alloc(c->a, sizeof *vecs * (size_t)(nt + 1));
    int *first = arena_alloc(c->a, sizeof(int) * (size_t)(k->nmembers + 1));
    LLVMValueRef *dots = arena_alloc(c->a, sizeof *dots * (size_t)(k->nmembers + 1));
    nt = 0;
    for (int i = 0; i < k->nmembers; i++) {
        Node *x = k->members[i];
        Mv *v = p->mv[x->id];
        first[i] = nt;
        bool fill = v->vec->op == OP_FILL;
        LLVMValueRef vp = fill ? NULL : cg_argbuf(c, v->vec), out = v->w ? NULL : bufp(c, p->buf[x->id]);
        LLVMValueRef w = v->w ? cg_argbuf(c, v->w) : NULL;
        dots[i] = v->w ? alloca_(c, c->f64) : NULL;
        if (dots[i])
            LLVMBuildStore(c->b, cf(c, 0), dots[i]);
        for (int t = 0; t < v->nterms; t++) {
            const Term *tm = &v->terms[t];
            LLVMValueRef kc = cf(c, tm->k);
            if (tm->coef)
                kc = LLVMBuildFMul(c->b, kc, cg_get(c, tm->coef), "");
            tms[nt] = tm;
            vecs[nt] = v->vec;
            lens[nt] = count(c, v->vec);
            outlens[nt] = count(c, x);   /* x'*z: z's length is not x'*z's */
            ts[nt++] = (PassTerm){tm->trans, vp, cf(c, fill ? v->vec->num : 0), out, kc, w, dots[i], {NULL}};
        }
    }
    for (int i = 0; i < k->nmembers; i++)
        if (!p->mv[k->members[i]->id]->w)
            zero(c, bufp(c, p->buf[k->members[i]->id]), count(c, k->members[i]));
    for (int t = 0; t < nt; t++) {
        if (tms[t]->m)
            continue;
        Loop lp;
        LLVMValueRef j = loop_begin(c, &lp, ci(c, 0), lens[t]);
        LLVMValueRef y = LLVMBuildFMul(c->b, ts[t].kc, vec_at(c, &ts[t], j), "");
        store(c, fplus(c, load(c, ts[t].out, j), y), ts[t].out, j);
        loop_end(c, &lp);
    }
    /* a term equal to another member's only term (x'*A*y: the gradients'
     * A'*x and (x'*A)') is that member's result, added after the pass, not
     * a second accumulation in it (mv_copy_of); a dot joins an unweighted
     * M*vec term of its matrix and vector (its factor is applied to the dot
     * afterwards) */
    bool *done = arena_alloc(c->a, (size_t)nt + 1);
    int *copy = arena_alloc(c->a, sizeof(int) * (size_t)(nt + 1));
    for (int i = 0; i < k->nmembers; i++)
        for (int t = 0; t < p->mv[k->members[i]->id]->nterms; t++) {
            int u = first[i] + t, j = mv_copy_of(p, k, i, t);
            copy[u] = j < 0 ? -1 : first[j];
            done[u] = j >= 0;
        }
    for (int u = 0; u < nt; u++)
        for (int t = 0; ts[u].w && !ts[u].out && !done[u] && t < nt; t++)
            if (!done[t] && ts[t].out && !ts[t].w && !ts[t].trans && tms[t]->m == tms[u]->m && ts[t].v == ts[u].v &&
                (ts[t].v || vecs[t]->num == vecs[u]->num))
                ts[t].w = ts[u].w, ts[t].dot = ts[u].dot, done[u] = true;
    /* one pass per matrix, over every term that reads it */
    PassTerm *same = arena_alloc(c->a, sizeof *same * (size_t)(nt + 1));
    for (int t = 0; t < nt; t++) {
        if (done[t] || !tms[t]->m)
            continue;
        int ns = 0;
        for (int u = t; u < nt; u++)
            if (!done[u] && tms[u]->m == tms[t]->m) {
                done[u] = true;
                same[ns++] = ts[u];
            }
        Node *M = tms[t]->m;
        pass_call(c, cg_get(c, M), ci(c, 0), rows(c, M), cols(c, M), same, ns, false);
    }
    for (int u = 0; u < nt; u++) {
        if (copy[u] < 0)
            continue;
        if (c->opt_level >= 1 && !LLVMIsAConstantInt(outlens[u])) {
            /* the runtime's add (BLAS's daxpy, the same sums): no loop of our own,
             * vectorised with an overlap check (gaussian_nll had two) */
            store_entries(c, ts[u].out, ts[copy[u]].out, outlens[u], cbool(c, 1));
            continue;
        }
        Loop lp;
        LLVMValueRef j = loop_begin(c, &lp, ci(c, 0), outlens[u]);
        store(c, fplus(c, load(c, ts[u].out, j), load(c, ts[copy[u]].out, j)), ts[u].out, j);
        loop_end(c, &lp);
    }
    for (int i = 0, t = 0; i < k->nmembers; t += p->mv[k->members[i]->id]->nterms, i++) {
        Node *x = k->members[i];
        if (dots[i]) /* one term: the dot times its factor */
            node_bind(c, x, LLVMBuildFMul(c->b, ts[t].kc, LLVMBuildLoad2(c->b, c->f64, dots[i], ""), ""));
        else
            node_bind(c, x, bufp(c, p->buf[x->id]));
        node_made(c, x);
    }
}

/* Entries lo .. hi-1 of the stored chain values (arguments first), and
 * with sum (plan_reuse.c: merge_row_sums) its terms added to *acc, left to
 * right. */
static void rows_maps(Cg *c, LLVMValueRef lo, LLVMValueRef hi, Node **maps, int nm, Node *sum, LLVMValueRef acc)
{
    Loop lk;
    LLVMValueRef k = loop_begin(c, &lk, lo, hi);
    for (int j = 0; j < nm; j++)
        store(c, cg_elem_op(c, maps[j], k), cg_get(c, maps[j]), k);
    if (sum)
        LLVMBuildStore(c->b, fplus(c, LLVMBuildLoad2(c->b, c->f64, acc, ""), cg_elem(c, sum->args[0], k)), acc);
    loop_end(c, &lk);
}

/* A transposed vector is its argument's memory. */
static Node *vec_mem(Node *v) { return v->op == OP_TRANSPOSE && !is_scalar(v) ? v->args[0] : v; }

/* The sum added up in a row pass (plan_reuse.c: merge_row_sums, its last
 * member), or NULL. */
static Node *rows_sum(const Kernel *k)
{
    Node *x = k->members[k->nmembers - 1];
    return is_scalar(x) && x->op == OP_SUM ? x : NULL;
}

/* The body of a row pass (its function's): every value it reads or writes
 * is bound (cg_get); with a sum, its value. */
static LLVMValueRef rows_body(Cg *c, void *ctx, LLVMValueRef unused)
{
    (void)unused;
    const Kernel *k = ctx;
    Plan *p = c->p;
    Node *M = p->mv[k->members[0]->id]->terms[0].m, **maps = arena_alloc(c->a, sizeof *maps * (size_t)k->nmembers);
    PassTerm *ts = arena_alloc(c->a, sizeof *ts * (size_t)k->nmembers);
    Node *sum = rows_sum(k);
    LLVMValueRef acc = NULL;
    if (sum) {
        acc = alloca_(c, c->f64);
        LLVMBuildStore(c->b, cf(c, 0), acc);
    }
    int nt = 0, nm = 0, ns = 0;
    for (int pass = 0; pass < 2; pass++)   /* the sources' terms, then the sinks' */
        for (int i = 0; i < k->nmembers; i++) {
            Node *x = k->members[i];
            const Mv *v = p->mv[x->id];
            if (x == sum)
                continue;
            if (!v) {
                if (!pass)
                    maps[nm++] = x;
                continue;
            }
            if (v->terms[0].trans != pass)
                continue;
            Node *vec = vec_mem(v->vec);
            LLVMValueRef kc = cf(c, v->terms[0].k), out = cg_get(c, x);
            if (v->terms[0].coef)
                kc = LLVMBuildFMul(c->b, kc, cg_get(c, v->terms[0].coef), "");
            zero(c, out, count(c, x));
            ts[nt++] = (PassTerm){pass, vec->op == OP_FILL ? NULL : cg_get(c, vec),
                                  cf(c, vec->op == OP_FILL ? vec->num : 0), out, kc, NULL, NULL, {NULL}};
            ns += !pass;
        }
    LLVMValueRef A = cg_get(c, M), R = rows(c, M), C = cols(c, M);
    LLVMValueRef blocks = LLVMBuildSDiv(c->b, C, ci(c, LANES), ""), nb = LLVMBuildSDiv(c->b, R, ci(c, PASS_ROWS), "");
    /* per block of rows: the sources' dots, the block's chain entries, the
     * sinks' rows times them (the rows still in L1); then the last rows */
    Loop li;
    LLVMValueRef ib = loop_begin(c, &li, ci(c, 0), nb), i = mul(c, ib, ci(c, PASS_ROWS));
    pass_rows(c, A, i, PASS_ROWS, C, blocks, ts, ns);
    rows_maps(c, i, add(c, i, ci(c, PASS_ROWS)), maps, nm, sum, acc);
    pass_rows(c, A, i, PASS_ROWS, C, blocks, ts + ns, nt - ns);
    loop_end(c, &li);
    LLVMValueRef lo = mul(c, nb, ci(c, PASS_ROWS));
    pass_call(c, A, lo, R, C, ts, ns, true);
    rows_maps(c, lo, R, maps, nm, sum, acc);
    pass_call(c, A, lo, R, C, ts + ns, nt - ns, true);
    return sum ? LLVMBuildLoad2(c->b, c->f64, acc, "") : NULL;
}

/* A K_ROWS kernel (plan.c: row_pass): M read once, PASS_ROWS rows at a
 * time, for the sources, the chain and the sinks, in a function written
 * once per structure.  Every result is the sum its product's own pass
 * would compute, in the same order. */
void cg_rows(Cg *c, const Kernel *k)
{
    Plan *p = c->p;
    NodeVec leaves = {0};
    Node *sum = rows_sum(k);
    uint64_t h = cg_key_bytes(0, sum ? "rows+sum" : "rows", sum ? 8 : 4);
    for (int i = 0; i < k->nmembers; i++) {   /* the members first: their buffers */
        if (k->members[i] == sum)
            continue;
        node_bind(c, k->members[i], bufp(c, p->buf[k->members[i]->id]));
        h = cg_key_node(c, h, k->members[i], &leaves, false);
        h = cg_key_shape(h, k->members[i]->shape);
    }
    for (int i = 0; i < k->nmembers; i++) {
        Node *x = k->members[i];
        const Mv *v = p->mv[x->id];
        if (!v) {
            h = cg_key_node(c, h, x, &leaves, true);
            continue;
        }
        int tag[2] = {v->terms[0].trans, v->terms[0].coef != NULL};
        h = cg_key_bytes(cg_key_bytes(h, tag, sizeof tag), &v->terms[0].k, sizeof v->terms[0].k);
        h = cg_key_node(c, h, vec_mem(v->vec), &leaves, false);
        h = cg_key_node(c, h, v->terms[0].m, &leaves, false);
        h = cg_key_shape(h, v->terms[0].m->shape);
        if (v->terms[0].coef)
            h = cg_key_node(c, h, v->terms[0].coef, &leaves, false);
    }
    LLVMValueRef r = cg_outlined(c, "rows", h, &leaves, -1, sum ? c->f64 : NULL, NULL, NULL, rows_body, (void *)k);
    if (sum)
        node_bind(c, sum, r);
    for (int j = 0; j < k->nmembers; j++)
        node_made(c, k->members[j]);
}
