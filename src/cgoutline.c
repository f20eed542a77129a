/* cgoutline.c — a kernel's loop as a function of its own, made once per
 * structure and called wherever that structure recurs: the key (FNV-1a
 * over the ops of a fused expression, its constants, which leaves are
 * scalars, its sizes), so that every statement of `v = tanh(A*v) + 0.5*v`
 * calls one function, and cg_outlined, which builds gradc.KIND.KEY (its
 * parameters the dimensions, the loop's non-fused values, an output) and
 * calls it. */
#include "cg.h"

uint64_t cg_key_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    if (!h)
        h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

uint64_t cg_key_shape(uint64_t h, Shape s)
{
    h = cg_key_bytes(h, &s.rows.sym, sizeof s.rows.sym);
    h = cg_key_bytes(h, &s.rows.n, sizeof s.rows.n);
    h = cg_key_bytes(h, &s.cols.sym, sizeof s.cols.sym);
    return cg_key_bytes(h, &s.cols.n, sizeof s.cols.n);
}

/* Recursion is bounded by the fusion depth. */
uint64_t cg_key_node(Cg *c, uint64_t h, Node *n, NodeVec *leaves, bool top)
{
    if (n->op == OP_CONST) { /* a literal stays one in the loop (x.^2 is x*x) */
        int tag = -1000000;
        return cg_key_bytes(cg_key_bytes(h, &tag, sizeof tag), &n->num, sizeof n->num);
    }
    if (!top && !is_fused(c->p, n)) {
        int j = 0;
        while (j < leaves->len && leaves->data[j] != n)
            j++;
        if (j == leaves->len)
            vec_push(c->a, leaves, n);
        int tag[2] = {-1 - j, one_value(c->p, n)};
        return cg_key_bytes(h, tag, sizeof tag);
    }
    int op = (int)n->op;
    h = cg_key_bytes(h, &op, sizeof op);
    if (n->op == OP_BCAST) {   /* which dimension it expands */
        int e = bcast_dims(n);
        h = cg_key_bytes(h, &e, sizeof e);
    }
    if (n->op == OP_FILL)
        h = cg_key_bytes(h, &n->num, sizeof n->num);
    for (int i = 0; i < n->nargs; i++)
        h = cg_key_node(c, h, n->args[i], leaves, false);
    return h;
}

/* self: the leaf read through extra (the output) instead of its own
 * parameter, or -1 */
LLVMValueRef cg_outlined(Cg *c, const char *kind, uint64_t key, const NodeVec *leaves, int self,
                         LLVMTypeRef ret, LLVMValueRef extra, LLVMValueRef flag, OutlineFn body, void *ctx)
{
    int nd = c->m->ndims, ne = nd + leaves->len + 1, np = ne + (flag != NULL);
    LLVMTypeRef *pt = arena_alloc(c->a, sizeof *pt * (size_t)np);
    LLVMValueRef *args = arena_alloc(c->a, sizeof *args * (size_t)np);
    for (int i = 0; i < nd; i++)
        pt[i] = c->i64, args[i] = c->dims[i];
    for (int i = 0; i < leaves->len; i++) {
        Node *y = leaves->data[i];
        pt[nd + i] = one_value(c->p, y) ? c->f64 : c->ptr;
        args[nd + i] = cg_get(c, y);
    }
    pt[ne - 1] = c->ptr, args[ne - 1] = extra ? extra : LLVMConstNull(c->ptr);
    if (flag)
        pt[ne] = c->i1, args[ne] = flag;
    LLVMTypeRef ft = LLVMFunctionType(ret ? ret : LLVMVoidTypeInContext(c->ctx), pt, (unsigned)np, 0);
    const char *name = arena_printf(c->a, "gradc.%s.%016llx", kind, (unsigned long long)key);
    LLVMValueRef fn = LLVMGetNamedFunction(c->mod, name);
    if (!fn) {
        Frame saved = frame_begin(c, name, ft);
        fn = c->fn;
        if (extra && self == -1)
            LLVMAddAttributeAtIndex(fn, (unsigned)ne, /* parameter ne - 1 */
                                    LLVMCreateEnumAttribute(c->ctx, LLVMGetEnumAttributeKindForName("noalias", 7), 0));
        LLVMValueRef *dims = c->dims, *vals = arena_alloc(c->a, sizeof *vals * (size_t)(leaves->len + 1));
        c->dims = arena_alloc(c->a, sizeof *c->dims * (size_t)(nd + 1));
        for (int i = 0; i < nd; i++)
            c->dims[i] = LLVMGetParam(fn, (unsigned)i);
        for (int i = 0; i < leaves->len; i++) {
            vals[i] = node_bound(c, leaves->data[i]);
            node_bind(c, leaves->data[i], LLVMGetParam(fn, (unsigned)(i == self ? ne - 1 : nd + i)));
        }
        LLVMValueRef outer_flag = c->flag;
        c->flag = flag ? LLVMGetParam(fn, (unsigned)ne) : NULL;
        LLVMValueRef r = body(c, ctx, extra ? LLVMGetParam(fn, (unsigned)(ne - 1)) : NULL);
        c->flag = outer_flag;
        if (ret)
            LLVMBuildRet(c->b, r);
        else
            LLVMBuildRetVoid(c->b);
        for (int i = 0; i < leaves->len; i++)
            node_bind(c, leaves->data[i], vals[i]);
        c->dims = dims;
        frame_end(c, &saved);
    }
    LLVMValueRef call = LLVMBuildCall2(c->b, ft, fn, args, (unsigned)np, "");
    LLVMAddCallSiteAttribute(call, LLVMAttributeFunctionIndex, cg_noinline(c));
    return ret ? call : NULL;
}
