/* chunk.c — a point of the plan with very many kernels (a straight-line
 * program of thousands of statements is one point) is emitted as a
 * sequence of chunk functions of CHUNK_KERNELS kernels each (CHUNK_KERNELS_LARGE
 * in a program too large to optimise), called in
 * order from the impl, so that no LLVM function grows with the program:
 * LLVM's instruction selection and register allocation are super-linear in
 * the size of one function (a 40,000-statement chain took 4 s at -O0 as one
 * function, 10 times its 5,000-statement time).
 *
 * Values cross chunk boundaries through `env`, an array of 8-byte entries
 * at the end of work (its size is known when the impl is done: abi.c
 * patches it into the layout).  A chunk reads a value it did not compute
 * from env, in its entry block: an impl value (a leaf, a buffer class's
 * base or size, a dimension) is an import, stored by the impl just before the call; a
 * value an earlier chunk computed is spilled, by a store inserted before
 * that chunk's return when someone first asks for it, so only values used
 * across a boundary touch memory.  The impl reads a spilled value with a
 * load where it uses it.  Leaves (inputs, slots, the cotangent) are
 * computed in the impl, before the point's chunks. */
#include "cg.h"

/* 64 kernels a chunk: a 300-statement matrix chain compiled at -O2 in 20%
 * less time than with 256 (LLVM's back end is super-linear in a function's
 * size), the same as with 32.  But once a program is too large to optimise
 * (CHUNK_OPT_KERNELS below), the number of functions is what costs: with
 * 64, the JIT took 1.96 GB at 200,000 statements against 0.81 GB with 256,
 * and 23 GB (killed) at 1,000,000 against 4.4 GB; there chunks are 256. */
enum { CHUNK_KERNELS = 64, CHUNK_KERNELS_LARGE = 256 };

/* A function whose plan has more kernels than this has its chunks compiled
 * without optimisation (optnone: -O0's fast instruction selection), so
 * that compile time stays linear at every -O: the -O2 pipeline costs about
 * 150 us per statement of a scalar chain, -O0 about 20.  Below it (some
 * 6,000 statements of a scalar chain), every chunk is optimised. */
enum { CHUNK_OPT_KERNELS = 50000 };

typedef struct Import {
    LLVMValueRef v;       /* the impl's value */
    int slot;             /* its env entry */
} Import;

struct Chunk {
    LLVMValueRef fn, env;
    Frame saved;
    LLVMValueRef *dims;   /* the impl's, while the chunk has its own */
    IntMap *vals;         /* node id → the value in this chunk */
    IntMap *bufs;         /* buffer index → its address in this chunk */
    VEC(int) made;        /* nodes computed here */
    VEC(Import) imports;
};

/* What is known of chunks already emitted, per node of the impl. */
struct ChunkTabs {
    LLVMValueRef *made;   /* the value computed by a chunk (cache[] is then NULL) */
    int *by;              /* which chunk: an index into rets/envs */
    int *home;            /* its env entry + 1 once spilled, else 0 */
    VEC(LLVMValueRef) rets, envs;  /* per chunk: its `ret void`, its env parameter */
    bool optnone;         /* the plan is too large to optimise */
};

bool chunk_wanted(const Point *pt) { return pt->nk > CHUNK_KERNELS; }

bool chunk_any(const Plan *p)
{
    for (int i = 0; i < p->points.len; i++)
        if (chunk_wanted(&p->points.data[i]))
            return true;
    return false;
}

static LLVMValueRef env_at(Cg *c, LLVMBuilderRef b, LLVMValueRef env, int slot)
{
    LLVMValueRef k = ci(c, slot);
    return LLVMBuildInBoundsGEP2(b, c->i64, env, &k, 1, "");
}

/* A new env entry for this impl. */
static int env_slot(Cg *c) { return c->envlen++; }

/* v (an impl value) in the chunk being built: loaded from env in its entry
 * block, the impl storing it there before the call. */
static LLVMValueRef import(Cg *c, LLVMValueRef v)
{
    if (LLVMIsConstant(v))
        return v;
    Chunk *k = c->ck;
    Import im = {v, env_slot(c)};
    vec_push(c->a, &k->imports, im);
    return LLVMBuildLoad2(c->ab, LLVMTypeOf(v), env_at(c, c->ab, k->env, im.slot), "");
}

/* The env entry of n's value computed by an earlier chunk: stored before
 * that chunk returns (once). */
static int spill(Cg *c, const Node *n)
{
    ChunkTabs *t = c->ct;
    if (!t->home[n->id]) {
        int slot = env_slot(c), by = t->by[n->id];
        LLVMPositionBuilderBefore(c->sb, t->rets.data[by]);
        LLVMBuildStore(c->sb, t->made[n->id], env_at(c, c->sb, t->envs.data[by], slot));
        t->home[n->id] = slot + 1;
    }
    return t->home[n->id] - 1;
}

LLVMValueRef node_bound(Cg *c, const Node *n)
{
    if (c->ck) {
        void **p = intmap_find(c->ck->vals, n->id);
        return p ? (LLVMValueRef)*p : NULL;
    }
    return c->cache[n->id];
}

void node_bind(Cg *c, const Node *n, LLVMValueRef v)
{
    if (c->ck)
        *intmap_put(c->ck->vals, n->id) = v;
    else
        c->cache[n->id] = v;
}

void node_made(Cg *c, const Node *n)
{
    if (c->ck)
        vec_push(c->a, &c->ck->made, n->id);
}

LLVMValueRef node_value(Cg *c, const Node *n)
{
    LLVMValueRef v = node_bound(c, n);
    if (v)
        return v;
    ChunkTabs *t = c->ct;
    bool spilled = t && !c->cache[n->id] && t->made[n->id];
    if (!c->ck) /* the impl: a load where it is used (a use may be in a loop body) */
        return spilled ? LLVMBuildLoad2(c->b, LLVMTypeOf(t->made[n->id]),
                                        env_at(c, c->b, c->env, spill(c, n)), "")
                       : NULL;
    if (c->cache[n->id])
        v = import(c, c->cache[n->id]);
    else if (spilled)
        v = LLVMBuildLoad2(c->ab, LLVMTypeOf(t->made[n->id]), env_at(c, c->ab, c->ck->env, spill(c, n)), "");
    if (v)
        node_bind(c, n, v);
    return v;
}

/* v memoised in the chunk under key (a pointer intmap_put returns moves
 * when the map grows: store through a fresh one) */
static LLVMValueRef chunk_memo(Cg *c, int key, LLVMValueRef (*make)(Cg *, int), int arg)
{
    void **p = intmap_find(c->ck->bufs, key);
    if (p)
        return (LLVMValueRef)*p;
    LLVMValueRef v = make(c, arg);
    *intmap_put(c->ck->bufs, key) = v;
    return v;
}

static LLVMValueRef import_cls(Cg *c, int k) { return import(c, impl_cls(c, k)); }
static LLVMValueRef import_size(Cg *c, int k) { return import(c, c->clssize[k]); }

static LLVMValueRef make_buf(Cg *c, int i)
{
    int nb = c->p->bufs.len, k = c->bufcls[i];
    LLVMValueRef base = chunk_memo(c, nb + k, import_cls, k);
    if (!c->bufidx[i])
        return base;
    LLVMValueRef off = LLVMBuildMul(c->ab, chunk_memo(c, nb + c->ncls + k, import_size, k), ci(c, c->bufidx[i]), "");
    return LLVMBuildInBoundsGEP2(c->ab, c->i8, base, &off, 1, "");
}

/* Buffer i's address in the chunk: its class's base and size are imported
 * once per chunk (keys nbufs + k, nbufs + ncls + k), not every address. */
LLVMValueRef chunk_buf(Cg *c, int i) { return chunk_memo(c, i, make_buf, i); }

/* The function's chunk tables, made at its first chunk. */
static ChunkTabs *chunk_tabs(Cg *c)
{
    if (!c->ct) {
        int nn = c->m->ir->nnodes + 1;
        c->ct = arena_alloc(c->a, sizeof *c->ct);
        c->ct->made = arena_alloc(c->a, sizeof(LLVMValueRef) * (size_t)nn);
        c->ct->by = arena_alloc(c->a, sizeof(int) * (size_t)nn);
        c->ct->home = arena_alloc(c->a, sizeof(int) * (size_t)nn);
        int64_t nk = 0;
        for (int i = 0; i < c->p->points.len; i++)
            nk += c->p->points.data[i].nk;
        c->ct->optnone = nk > CHUNK_OPT_KERNELS;
    }
    return c->ct;
}

static void chunk_begin(Cg *c, bool glue)
{
    chunk_tabs(c);
    Chunk *k = arena_alloc(c->a, sizeof *k);
    LLVMTypeRef pt = c->ptr;
    size_t len;
    const char *impl = LLVMGetValueName2(c->impl, &len);
    const char *name = arena_printf(c->a, "%.*s.chunk%d", (int)len, impl, c->ct->rets.len);
    k->saved = frame_begin(c, name, LLVMFunctionType(LLVMVoidTypeInContext(c->ctx), &pt, 1, 0));
    k->fn = c->fn;
    k->env = LLVMGetParam(k->fn, 0);
    k->vals = intmap_new(c->a);
    k->bufs = intmap_new(c->a);
    for (int i = 0; i < 1 + (c->ct->optnone || glue); i++) {
        const char *attr = i ? "optnone" : "noinline";
        unsigned kind = LLVMGetEnumAttributeKindForName(attr, strlen(attr));
        LLVMAddAttributeAtIndex(k->fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(c->ctx, kind, 0));
    }
    c->ck = k;
    k->dims = c->dims;
    c->dims = arena_alloc(c->a, sizeof *c->dims * (size_t)(c->m->ndims + 1));
    for (int i = 0; i < c->m->ndims; i++)
        c->dims[i] = import(c, k->dims[i]);
}

/* Closes the chunk, then calls it from the impl. */
static void chunk_end(Cg *c)
{
    Chunk *k = c->ck;
    ChunkTabs *t = c->ct;
    LLVMValueRef ret = LLVMBuildRetVoid(c->b);
    frame_end(c, &k->saved);
    c->dims = k->dims;
    c->ck = NULL;
    for (int i = 0; i < k->imports.len; i++)
        LLVMBuildStore(c->b, k->imports.data[i].v, env_at(c, c->b, c->env, k->imports.data[i].slot));
    LLVMTypeRef pt = c->ptr;
    LLVMBuildCall2(c->b, LLVMFunctionType(LLVMVoidTypeInContext(c->ctx), &pt, 1, 0), k->fn, &c->env, 1, "");
    for (int i = 0; i < k->made.len; i++) {
        int id = k->made.data[i];
        t->made[id] = (LLVMValueRef)*intmap_find(k->vals, id);
        t->by[id] = t->rets.len;
        t->home[id] = 0;
        c->cache[id] = NULL;
    }
    vec_push(c->a, &t->rets, ret);
    vec_push(c->a, &t->envs, k->env);
}

/* A kernel whose value has a dimension that is not a literal: emitted as
 * a call to an internal kernel function (map, sum, pass, gemm …), never
 * inlined, so the chunk around it is glue. */
static bool called(const Kernel *k)
{
    int64_t v;
    Shape sh = k->node->shape;
    return k->kind == K_LEAF || (!shape_is_scalar(sh) && (!dim_is_lit(sh.rows, &v) || !dim_is_lit(sh.cols, &v)));
}

/* The chunk of kernels from i on is glue only: calls, addresses, env
 * loads and stores.  It is compiled without optimisation (the kernels it
 * calls still are): -O2 over such chunks was half of a 300-statement
 * matrix chain's compile time and buys nothing at run time. */
static bool glue_only(const Point *pt, int i, int size)
{
    for (int n = 0; i < pt->nk && n < size; i++) {
        if (!called(&pt->ks[i]))
            return false;
        n += pt->ks[i].kind != K_LEAF;
    }
    return true;
}

void chunk_point(Cg *c, const Point *pt, void (*gen)(Cg *, const Kernel *))
{
    for (int i = 0; i < pt->nk && !c->failed; i++)
        if (pt->ks[i].kind == K_LEAF)
            gen(c, &pt->ks[i]);
    int size = chunk_tabs(c)->optnone ? CHUNK_KERNELS_LARGE : CHUNK_KERNELS;
    for (int i = 0; i < pt->nk && !c->failed;) {
        chunk_begin(c, glue_only(pt, i, size));
        for (int n = 0; i < pt->nk && n < size && !c->failed; i++)
            if (pt->ks[i].kind != K_LEAF) {
                gen(c, &pt->ks[i]);
                n++;
            }
        chunk_end(c);
    }
}
