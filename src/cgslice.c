/* cgslice.c — LLVM for concatenation, slices and their adjoints (spec §8).
 *
 * A block of an r×c row-major matrix is a run of rows: each row of the
 * block is contiguous, so copies go row by row with memcpy.  A slice whose
 * rows are whole rows of its argument (any slice of a column vector, X[a:b, :])
 * or lie in one row (X[i, a:b]) is contiguous: it is read in place, a pointer
 * into its argument, never copied (plan.c: is_view).  A slice whose range
 * was not known at compile time is checked before it is read: out of range
 * leaves the function with GRADC_EINDEX and *where naming the index. */
#include "cg.h"

#include <gradc/runtime.h>

static LLVMValueRef offset_of(Cg *c, LLVMValueRef v) { return LLVMBuildFPToSI(c->b, v, c->i64, ""); }

static LLVMValueRef lt(Cg *c, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildICmp(c->b, LLVMIntSLT, x, y, "");
}

/* The entry in CgInfo's table of run-time error positions for loc. */
static int where_index(Cg *c, Loc loc)
{
    int index = c->info->nwhiles++;
    Loc *locs = arena_alloc(c->a, sizeof *locs * (size_t)c->info->nwhiles);
    if (index)
        memcpy(locs, c->info->whiles, sizeof *locs * (size_t)index);
    locs[index] = loc;
    c->info->whiles = locs;
    return index;
}

/* Whether a block (br×bc at r, col) leaves fr×fc. */
static LLVMValueRef outside(Cg *c, LLVMValueRef r, LLVMValueRef col, LLVMValueRef br,
                            LLVMValueRef bc, LLVMValueRef fr, LLVMValueRef fc)
{
    LLVMValueRef zero = ci(c, 0), bad = lt(c, r, zero);
    bad = LLVMBuildOr(c->b, bad, lt(c, col, zero), "");
    bad = LLVMBuildOr(c->b, bad, lt(c, fr, add(c, r, br)), "");
    bad = LLVMBuildOr(c->b, bad, lt(c, fc, add(c, col, bc)), "");
    return LLVMBuildOr(c->b, bad, LLVMBuildOr(c->b, lt(c, br, zero), lt(c, bc, zero), ""), "");
}

/* A slice whose num says where its index is (0: in range by construction)
 * leaves the function with GRADC_EINDEX when outside; a pad (zeros with a
 * block) branches around its block instead, to *skip (the slice it undoes
 * was never taken).  NULL: nothing to skip. */
static LLVMBasicBlockRef check_block(Cg *c, const Node *n, LLVMValueRef r, LLVMValueRef col,
                                     LLVMValueRef br, LLVMValueRef bc, LLVMValueRef fr,
                                     LLVMValueRef fc)
{
    bool pad = n->op == OP_PAD;
    if (!pad && n->num == 0)
        return NULL;
    LLVMBasicBlockRef bad = block(c, pad ? "pad.skip" : "index.bad"), ok = block(c, "index.ok");
    LLVMBuildCondBr(c->b, outside(c, r, col, br, bc, fr, fc), bad, ok);
    if (!pad) {
        enter(c, bad);
        LLVMBuildStore(c->b, LLVMConstInt(c->i32, (unsigned)where_index(c, node_loc(n)), 0), c->where);
        fail_with(c, GRADC_EINDEX);
    }
    enter(c, ok);
    return pad ? bad : NULL;
}

/* The end of a pad's block: both paths meet at skip. */
static void join(Cg *c, LLVMBasicBlockRef skip)
{
    if (!skip)
        return;
    LLVMBuildBr(c->b, skip);
    enter(c, skip);
}

/* nr rows of nc entries from src (a row every ss entries) to dst (every ds). */
static void copy_rows(Cg *c, LLVMValueRef dst, LLVMValueRef ds, LLVMValueRef src, LLVMValueRef ss,
                      LLVMValueRef nr, LLVMValueRef nc)
{
    Loop l;
    LLVMValueRef i = loop_begin(c, &l, ci(c, 0), nr);
    LLVMBuildMemCpy(c->b, at(c, dst, mul(c, i, ds)), 8, at(c, src, mul(c, i, ss)), 8, mul(c, nc, ci(c, 8)));
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
    loop_end(c, &l);
    cg_no_vectorise(c, LLVMGetBasicBlockTerminator(latch));
}

/* SLICE or PAD: x (entries at xp) and its offsets; the checked block. */
typedef struct Block2 {
    LLVMValueRef r, col, br, bc, fr, fc;
    LLVMBasicBlockRef skip;   /* a pad's: where an out-of-range block goes */
} Block2;

static Block2 block_of(Cg *c, const Node *n, LLVMValueRef r, LLVMValueRef col)
{
    const Node *x = n->args[0];
    bool pad = n->op == OP_PAD;
    Block2 b = {offset_of(c, r), offset_of(c, col), rows(c, pad ? x : n), cols(c, pad ? x : n),
                rows(c, pad ? n : x), cols(c, pad ? n : x), NULL};
    b.skip = check_block(c, n, b.r, b.col, b.br, b.bc, b.fr, b.fc);
    return b;
}

LLVMValueRef cg_view(Cg *c, const Node *n, LLVMValueRef xp, LLVMValueRef r, LLVMValueRef col)
{
    Block2 b = block_of(c, n, r, col);
    return at(c, xp, add(c, mul(c, b.r, b.fc), b.col));
}

LLVMValueRef cg_element(Cg *c, const Node *n, LLVMValueRef xp, LLVMValueRef r, LLVMValueRef col)
{
    return LLVMBuildLoad2(c->b, c->f64, cg_view(c, n, xp, r, col), "");
}

void cg_block_into(Cg *c, const Node *n, LLVMValueRef out, LLVMValueRef xp, LLVMValueRef r,
                   LLVMValueRef col)
{
    if (n->op == OP_PAD)
        zero(c, out, count(c, n));
    Block2 b = block_of(c, n, r, col);
    LLVMValueRef corner = add(c, mul(c, b.r, b.fc), b.col);   /* in the full matrix */
    if (n->op == OP_SLICE) {
        copy_rows(c, out, b.bc, at(c, xp, corner), b.fc, b.br, b.bc);
        return;
    }
    copy_rows(c, at(c, out, corner), b.fc, xp, b.bc, b.br, b.bc);
    join(c, b.skip);
}

void cg_cat_into(Cg *c, const Node *n, LLVMValueRef out, LLVMValueRef ap, LLVMValueRef bp)
{
    const Node *a = n->args[0], *b = n->args[1];
    if (n->op == OP_VCAT) {   /* row-major: a's entries, then b's */
        LLVMValueRef na = count(c, a);
        LLVMBuildMemCpy(c->b, out, 8, ap, 8, mul(c, na, ci(c, 8)));
        LLVMBuildMemCpy(c->b, at(c, out, na), 8, bp, 8, mul(c, count(c, b), ci(c, 8)));
        return;
    }
    LLVMValueRef ca = cols(c, a), cb = cols(c, b), w = cols(c, n);
    copy_rows(c, out, w, ap, ca, rows(c, n), ca);
    copy_rows(c, at(c, out, ca), w, bp, cb, rows(c, n), cb);
}

void cg_scatter_add(Cg *c, const Node *pad, LLVMValueRef dst, LLVMValueRef gp, LLVMValueRef r,
                    LLVMValueRef col)
{
    Block2 b = block_of(c, pad, r, col);
    LLVMValueRef corner = at(c, dst, add(c, mul(c, b.r, b.fc), b.col));
    Loop li, lj;
    LLVMValueRef i = loop_begin(c, &li, ci(c, 0), b.br);
    LLVMValueRef drow = at(c, corner, mul(c, i, b.fc)), grow = at(c, gp, mul(c, i, b.bc));
    LLVMValueRef j = loop_begin(c, &lj, ci(c, 0), b.bc);
    store(c, fplus(c, load(c, drow, j), load(c, grow, j)), drow, j);
    loop_end(c, &lj);
    loop_end(c, &li);
    join(c, b.skip);
}

LLVMValueRef cg_pad_elem(Cg *c, Node *pad, LLVMValueRef k)
{
    Node *g = pad->args[0];
    LLVMValueRef r = offset_of(c, cg_elem(c, pad->args[1], ci(c, 0)));
    LLVMValueRef col = offset_of(c, cg_elem(c, pad->args[2], ci(c, 0)));
    LLVMValueRef br = rows(c, g), bc = cols(c, g), fc = cols(c, pad);
    LLVMValueRef ok = LLVMBuildNot(c->b, outside(c, r, col, br, bc, rows(c, pad), fc), "");
    LLVMValueRef i = LLVMBuildSub(c->b, LLVMBuildSDiv(c->b, k, fc, ""), r, "");
    LLVMValueRef j = LLVMBuildSub(c->b, LLVMBuildSRem(c->b, k, fc, ""), col, "");
    LLVMValueRef zero = ci(c, 0), in = ok;
    in = LLVMBuildAnd(c->b, in, LLVMBuildNot(c->b, lt(c, i, zero), ""), "");
    in = LLVMBuildAnd(c->b, in, lt(c, i, br), "");
    in = LLVMBuildAnd(c->b, in, LLVMBuildNot(c->b, lt(c, j, zero), ""), "");
    in = LLVMBuildAnd(c->b, in, lt(c, j, bc), "");
    /* the block's entry is loaded only inside it (g may have no entries) */
    LLVMBasicBlockRef from = LLVMGetInsertBlock(c->b), load_bb = block(c, "pad.in"), done = block(c, "pad.done");
    LLVMBuildCondBr(c->b, in, load_bb, done);
    enter(c, load_bb);
    LLVMValueRef v = cg_elem(c, g, add(c, mul(c, i, bc), j));
    LLVMBasicBlockRef vfrom = LLVMGetInsertBlock(c->b);
    LLVMBuildBr(c->b, done);
    enter(c, done);
    LLVMValueRef phi = LLVMBuildPhi(c->b, c->f64, "");
    LLVMValueRef vals[2] = {cf(c, 0), v};
    LLVMBasicBlockRef from2[2] = {from, vfrom};
    LLVMAddIncoming(phi, vals, from2, 2);
    return phi;
}
