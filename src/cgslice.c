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

/* A block (br×bc at r, col) must lie inside fr×fc; n's num says where the
 * index is (0: in range by construction, nothing to check). */
static void check_block(Cg *c, const Node *n, LLVMValueRef r, LLVMValueRef col, LLVMValueRef br,
                        LLVMValueRef bc, LLVMValueRef fr, LLVMValueRef fc)
{
    if (n->num == 0)
        return;
    LLVMValueRef zero = ci(c, 0), bad = lt(c, r, zero);
    bad = LLVMBuildOr(c->b, bad, lt(c, col, zero), "");
    bad = LLVMBuildOr(c->b, bad, lt(c, fr, add(c, r, br)), "");
    bad = LLVMBuildOr(c->b, bad, lt(c, fc, add(c, col, bc)), "");
    bad = LLVMBuildOr(c->b, bad, LLVMBuildOr(c->b, lt(c, br, zero), lt(c, bc, zero), ""), "");
    LLVMBasicBlockRef fail = block(c, "index.bad"), ok = block(c, "index.ok");
    LLVMBuildCondBr(c->b, bad, fail, ok);
    enter(c, fail);
    LLVMBuildStore(c->b, LLVMConstInt(c->i32, (unsigned)where_index(c, node_loc(n)), 0), c->where);
    fail_with(c, GRADC_EINDEX);
    enter(c, ok);
}

/* nr rows of nc entries from src (a row every ss entries) to dst (every ds). */
static void copy_rows(Cg *c, LLVMValueRef dst, LLVMValueRef ds, LLVMValueRef src, LLVMValueRef ss,
                      LLVMValueRef nr, LLVMValueRef nc)
{
    Loop l;
    LLVMValueRef i = loop_begin(c, &l, ci(c, 0), nr);
    LLVMBuildMemCpy(c->b, at(c, dst, mul(c, i, ds)), 8, at(c, src, mul(c, i, ss)), 8, mul(c, nc, ci(c, 8)));
    loop_end(c, &l);
}

/* SLICE or PAD: x (entries at xp) and its offsets; the checked block. */
typedef struct Block2 {
    LLVMValueRef r, col, br, bc, fr, fc;
} Block2;

static Block2 block_of(Cg *c, const Node *n, LLVMValueRef r, LLVMValueRef col)
{
    const Node *x = n->args[0];
    bool pad = n->op == OP_PAD;
    Block2 b = {offset_of(c, r), offset_of(c, col), rows(c, pad ? x : n), cols(c, pad ? x : n),
                rows(c, pad ? n : x), cols(c, pad ? n : x)};
    check_block(c, n, b.r, b.col, b.br, b.bc, b.fr, b.fc);
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
    Block2 b = block_of(c, n, r, col);
    LLVMValueRef corner = add(c, mul(c, b.r, b.fc), b.col);   /* in the full matrix */
    if (n->op == OP_SLICE) {
        copy_rows(c, out, b.bc, at(c, xp, corner), b.fc, b.br, b.bc);
        return;
    }
    zero(c, out, mul(c, b.fr, b.fc));
    copy_rows(c, at(c, out, corner), b.fc, xp, b.bc, b.br, b.bc);
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
