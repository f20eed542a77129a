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
 * -ffp-contract=on does for the hand-written loops) */
static LLVMValueRef fmadd(Cg *c, LLVMValueRef x, LLVMValueRef y, LLVMValueRef z)
{
    LLVMValueRef args[3] = {x, y, z};
    return intrinsic(c, "llvm.fmuladd", LLVMTypeOf(x), 3, args);
}

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
    return t->v ? vload(c, t->v, k) : splat(c, t->fill);
}
static LLVMValueRef vec_at(Cg *c, PassTerm *t, LLVMValueRef k)
{
    return t->v ? load(c, t->v, k) : t->fill;
}

/* Rows i .. i+nr-1 of M (R×C, row-major) read once for every term that
 * reads M.  Each row's dot product (M*vec) is summed as reduce_sum sums:
 * LANES partial sums (one vector register per row, so nr independent
 * chains), combined pairwise ((s0 + s1) + (s2 + s3)) + …, then the
 * remainder one by one; a*b + c is fused where the target has FMA, as in
 * the hand loops (clang's default contraction).  M'*vec accumulates
 * into its result from the same loaded entries, loaded and stored once per
 * nr rows (in row order, entry by entry).  A weighted term's dot adds
 * w[i] * (M*vec)[i] to the partial sum of the row's place in the block. */

static void pass_rows(Cg *c, LLVMValueRef A, LLVMValueRef i, int nr, LLVMValueRef C, LLVMValueRef blocks,
                      PassTerm *ts, int nt)
{
    LLVMTypeRef vt = vec_t(c);
    LLVMValueRef row[PASS_ROWS], *y = arena_alloc(c->a, sizeof *y * (size_t)(nt * PASS_ROWS));
    LLVMValueRef *lanes = arena_alloc(c->a, sizeof *lanes * (size_t)(nt * PASS_ROWS));
    LLVMValueRef *acc = arena_alloc(c->a, sizeof *acc * (size_t)(nt * PASS_ROWS));
    for (int r = 0; r < nr; r++)
        row[r] = at(c, A, mul(c, add(c, i, ci(c, r)), C));
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < nr; r++) {
            int k = t * PASS_ROWS + r;
            if (ts[t].trans) {
                y[k] = LLVMBuildFMul(c->b, ts[t].kc, vec_at(c, &ts[t], add(c, i, ci(c, r))), "");
                continue;
            }
            lanes[k] = alloca_(c, vt);
            acc[k] = alloca_(c, c->f64);
            LLVMBuildStore(c->b, LLVMConstNull(vt), lanes[k]);
        }
    Loop lj;
    LLVMValueRef jb = loop_begin(c, &lj, ci(c, 0), blocks);
    LLVMValueRef j = mul(c, jb, ci(c, LANES)), a[PASS_ROWS];
    for (int r = 0; r < nr; r++)
        a[r] = vload(c, row[r], j);
    for (int t = 0; t < nt; t++) {
        if (ts[t].trans) {
            LLVMValueRef o = vload(c, ts[t].out, j);
            for (int r = 0; r < nr; r++)
                o = fmadd(c, a[r], splat(c, y[t * PASS_ROWS + r]), o);
            vstore(c, o, ts[t].out, j);
            continue;
        }
        LLVMValueRef x = vec_lanes(c, &ts[t], j);
        for (int r = 0; r < nr; r++) {
            LLVMValueRef l = lanes[t * PASS_ROWS + r];
            LLVMBuildStore(c->b, fmadd(c, a[r], x, LLVMBuildLoad2(c->b, vt, l, "")), l);
        }
    }
    loop_end(c, &lj);
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < nr && !ts[t].trans; r++) {
            int k = t * PASS_ROWS + r;
            LLVMValueRef s = LLVMBuildLoad2(c->b, vt, lanes[k], ""), l[LANES];
            for (int e = 0; e < LANES; e++)
                l[e] = LLVMBuildExtractElement(c->b, s, LLVMConstInt(c->i32, (unsigned)e, 0), "");
            for (int w = LANES; w > 1; w /= 2)
                for (int e = 0; e < w / 2; e++)
                    l[e] = fplus(c, l[2 * e], l[2 * e + 1]);
            LLVMBuildStore(c->b, l[0], acc[k]);
        }
    j = loop_begin(c, &lj, mul(c, blocks, ci(c, LANES)), C);
    for (int r = 0; r < nr; r++) {
        LLVMValueRef e = load(c, row[r], j);
        for (int t = 0; t < nt; t++) {
            int k = t * PASS_ROWS + r;
            if (ts[t].trans) {
                store(c, fmadd(c, e, y[k], load(c, ts[t].out, j)), ts[t].out, j);
            } else {
                LLVMValueRef s = LLVMBuildLoad2(c->b, c->f64, acc[k], "");
                LLVMBuildStore(c->b, fmadd(c, e, vec_at(c, &ts[t], j), s), acc[k]);
            }
        }
    }
    loop_end(c, &lj);
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < nr && !ts[t].trans; r++) {
            LLVMValueRef s = LLVMBuildLoad2(c->b, c->f64, acc[t * PASS_ROWS + r], "");
            LLVMValueRef o = add(c, i, ci(c, r));
            if (ts[t].out)
                store(c, fplus(c, load(c, ts[t].out, o), LLVMBuildFMul(c->b, ts[t].kc, s, "")), ts[t].out, o);
            if (ts[t].w) {
                LLVMValueRef d = ts[t].dacc[r];
                LLVMBuildStore(c->b, fmadd(c, load(c, ts[t].w, o), s, LLVMBuildLoad2(c->b, c->f64, d, "")), d);
            }
        }
}

/* One read of M for every term that reads it: PASS_ROWS rows at a time,
 * then the remaining rows one by one. */
static void gen_pass(Cg *c, LLVMValueRef A, LLVMValueRef R, LLVMValueRef C, PassTerm *ts, int nt)
{
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < PASS_ROWS && ts[t].w; r++) {
            ts[t].dacc[r] = alloca_(c, c->f64);
            LLVMBuildStore(c->b, cf(c, 0), ts[t].dacc[r]);
        }
    LLVMValueRef blocks = LLVMBuildSDiv(c->b, C, ci(c, LANES), "");
    LLVMValueRef nb = LLVMBuildSDiv(c->b, R, ci(c, PASS_ROWS), "");
    Loop li;
    LLVMValueRef ib = loop_begin(c, &li, ci(c, 0), nb);
    pass_rows(c, A, mul(c, ib, ci(c, PASS_ROWS)), PASS_ROWS, C, blocks, ts, nt);
    loop_end(c, &li);
    LLVMValueRef i = loop_begin(c, &li, mul(c, nb, ci(c, PASS_ROWS)), R);
    pass_rows(c, A, i, 1, C, blocks, ts, nt);
    loop_end(c, &li);
    for (int t = 0; t < nt; t++) {
        if (!ts[t].w)
            continue;
        LLVMValueRef d[PASS_ROWS];
        for (int r = 0; r < PASS_ROWS; r++)
            d[r] = LLVMBuildLoad2(c->b, c->f64, ts[t].dacc[r], "");
        LLVMBuildStore(c->b, fplus(c, fplus(c, d[0], d[1]), fplus(c, d[2], d[3])), ts[t].dot);
    }
}

/* A pass over one matrix is a kernel written once per module: an internal
 * function per combination of terms ("NT": M*x and M'*y in one read of M;
 * lower case: a constant vector, passed by value; "w": with a weighted
 * dot, "x": without a result vector), called by every product of that
 * form, so a program of many products stays small and compiles in linear
 * time.  Parameters: R, C, M, then per term its vector (pointer or
 * constant), its result and its factor, and a weighted term's weight and
 * dot. */
static void pass_call(Cg *c, LLVMValueRef A, LLVMValueRef R, LLVMValueRef C, PassTerm *ts, int nt)
{
    char *key = arena_alloc(c->a, 3 * (size_t)nt + 16);
    int np = 3, len = (int)strlen(strcpy(key, "gradc.pass."));
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
    pt[0] = pt[1] = c->i64, pt[2] = c->ptr;
    args[0] = R, args[1] = C, args[2] = A;
    for (int t = 0, q = 3; t < nt; t++) {
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
        for (int t = 0, q = 3; t < nt; t++) {
            LLVMValueRef v = LLVMGetParam(fn, (unsigned)q);
            fs[t] = (PassTerm){ts[t].trans, ts[t].v ? v : NULL, v,
                               ts[t].out ? LLVMGetParam(fn, (unsigned)q + 1) : NULL, LLVMGetParam(fn, (unsigned)q + 2),
                               ts[t].w ? LLVMGetParam(fn, (unsigned)q + 3) : NULL,
                               ts[t].w ? LLVMGetParam(fn, (unsigned)q + 4) : NULL, {NULL}};
            q += ts[t].w ? 5 : 3;
        }
        gen_pass(c, LLVMGetParam(fn, 2), LLVMGetParam(fn, 0), LLVMGetParam(fn, 1), fs, nt);
        LLVMBuildRetVoid(c->b);
        frame_end(c, &saved);
    }
    LLVMValueRef call = LLVMBuildCall2(c->b, ft, fn, args, (unsigned)np, "");
    if (!LLVMIsAConstantInt(R) || !LLVMIsAConstantInt(C)) /* literal sizes: inlined, specialised */
        LLVMAddCallSiteAttribute(call, LLVMAttributeFunctionIndex, cg_noinline(c));
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
    bool *alone = arena_alloc(c->a, (size_t)nt + 1);
    LLVMValueRef *dots = arena_alloc(c->a, sizeof *dots * (size_t)(k->nmembers + 1));
    nt = 0;
    for (int i = 0; i < k->nmembers; i++) {
        Node *x = k->members[i];
        Mv *v = p->mv[x->id];
        bool fill = v->vec->op == OP_FILL;
        LLVMValueRef vp = fill ? NULL : cg_argbuf(c, v->vec), out = v->w ? NULL : bufp(c, p->buf[x->id]);
        LLVMValueRef w = v->w ? cg_argbuf(c, v->w) : NULL;
        dots[i] = v->w ? alloca_(c, c->f64) : NULL;
        for (int t = 0; t < v->nterms; t++) {
            const Term *tm = &v->terms[t];
            LLVMValueRef kc = cf(c, tm->k);
            if (tm->coef)
                kc = LLVMBuildFMul(c->b, kc, cg_get(c, tm->coef), "");
            tms[nt] = tm;
            vecs[nt] = v->vec;
            alone[nt] = v->nterms == 1 && !v->w;
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
     * a second accumulation in it; a dot joins an unweighted M*vec term of
     * its matrix and vector (its factor is applied to the dot afterwards) */
    bool *done = arena_alloc(c->a, (size_t)nt + 1);
    int *copy = arena_alloc(c->a, sizeof(int) * (size_t)(nt + 1));
    for (int u = 0; u < nt; u++) {
        copy[u] = -1;
        for (int t = 0; t < u && copy[u] < 0; t++)
            if (alone[t] && alone[u] && tms[t]->m && tms[t]->m == tms[u]->m && tms[t]->trans == tms[u]->trans &&
                tms[t]->k == tms[u]->k && tms[t]->coef == tms[u]->coef && ts[t].v == ts[u].v &&
                (ts[t].v || vecs[t]->num == vecs[u]->num) && ts[t].out != ts[u].out)
                copy[u] = t, done[u] = true;
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
        pass_call(c, cg_get(c, M), rows(c, M), cols(c, M), same, ns);
    }
    for (int u = 0; u < nt; u++) {
        if (copy[u] < 0)
            continue;
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
