/* cgsum.c — a sum of f(k) over a loop, the one shape of reduction every
 * sum, dot product, trace and row sum is emitted in, and the loop hints
 * (llvm.loop metadata) that tell LLVM's vectoriser how to split it. */
#include "cg.h"

#include <llvm-c/DebugInfo.h>   /* LLVMTemporaryMDNode: a loop ID refers to itself */

/* Sum of f(k) for k in [0, count), in one of three shapes:
 * - -O2 and up: one accumulator whose additions may be reassociated, in a
 *   loop the vectoriser is told to make 4 vectors of 8 lanes of
 *   (llvm.loop metadata): 32 partial sums s_l = f(l) + f(l+32) + … over the
 *   first count - count % 32 entries, combined by LLVM's reduction (the
 *   four vectors added, then the lanes by halves), then the remaining
 *   entries added one by one (under 32 entries: left to right); a body
 *   computing exp or tanh gets 8 partial sums, one vector (vectorise_8).  The body
 *   is in the IR once: written as 16 scalar chains for the SLP vectoriser
 *   to pack, it made -O2 2-3x slower on sum-heavy programs (d2l_dot's
 *   compile 127M -> 56M instructions, softmax_xent 645M -> 309M).  A body
 *   that calls a function the vectoriser cannot (libm's log1p, exp) is
 *   left one chain: the call, not the addition, bounds it.
 * - -O1 (no vectorisers): SUM_LANES scalar partial sums, combined pairwise
 *   ((s0 + s1) + (s2 + s3)) + …, then the remaining entries one by one.
 * - -O0 (eval's JIT): one chain, left to right as the interpreter, in the
 *   -O2 loop without its hints: 16 lanes were 16 copies of the body for
 *   FastISel, and a remainder loop a 17th (gp_nll's module 3,292 lines,
 *   1,505 now; its eval 60.8M instructions, 31.6M now).
 * Each differs from a left-to-right sum by rounding only, within the usual
 * bound (count · eps · sum |f|), and the vector width of the target does
 * not change the result. */

/* What blocks from first to the function's last call: CALLS_OUT a function
 * the loop vectoriser cannot vectorise (not an intrinsic, and not gradc's
 * own exp and tanh, inlined from -O1: cg_math_inline), else CALLS_MATH
 * one of those two, else CALLS_NONE. */
enum { CALLS_NONE, CALLS_MATH, CALLS_OUT };

static int calls(LLVMBasicBlockRef first)
{
    int r = CALLS_NONE;
    for (LLVMBasicBlockRef bb = first; bb; bb = LLVMGetNextBasicBlock(bb))
        for (LLVMValueRef in = LLVMGetFirstInstruction(bb); in; in = LLVMGetNextInstruction(in)) {
            LLVMValueRef fn = LLVMIsACallInst(in) ? LLVMGetCalledValue(in) : NULL;
            if (!fn)
                continue;
            size_t len;
            const char *name = LLVMIsAFunction(fn) ? LLVMGetValueName2(fn, &len) : "";
            if (!LLVMIsAFunction(fn) || (!LLVMGetIntrinsicID(fn) && strncmp(name, "gradc.", 6) != 0))
                return CALLS_OUT;
            if (!LLVMGetIntrinsicID(fn))
                r = CALLS_MATH;
        }
    return r;
}

/* The loop whose back edge is latch gets the hints names[i] = vals[i]
 * (llvm.loop metadata: a loop ID whose first operand is itself). */
static void loop_hints(Cg *c, LLVMValueRef latch, const char *const *names, LLVMValueRef *vals, int n)
{
    LLVMMetadataRef self = LLVMTemporaryMDNode(c->ctx, NULL, 0);
    LLVMMetadataRef ops[4] = {self};
    for (int i = 0; i < n; i++) {
        LLVMMetadataRef kv[2] = {LLVMMDStringInContext2(c->ctx, names[i], strlen(names[i])),
                                 LLVMValueAsMetadata(vals[i])};
        ops[i + 1] = LLVMMDNodeInContext2(c->ctx, kv, 2);
    }
    LLVMMetadataRef id = LLVMMDNodeInContext2(c->ctx, ops, (size_t)n + 1);
    LLVMMetadataReplaceAllUsesWith(self, id);
    LLVMSetMetadata(latch, LLVMGetMDKindIDInContext(c->ctx, "llvm.loop", 9), LLVMMetadataAsValue(c->ctx, id));
}

/* The loop whose back edge is latch asks the loop vectoriser for vectors
 * of 8 doubles, interleave of them per iteration: 8 * interleave partial
 * sums whatever the target's vector width (AVX2: two registers a vector).
 * 4 for a sum's chain of additions; 1 when each entry computes exp or
 * tanh, whose work bounds the loop, not the additions: 4 was 4 inlined
 * copies of the vector exp to select (softmax_xent's compile -O2: 250M ->
 * 139M instructions), and a sum of exp runs no slower with 1 (0.95-1.01x
 * at n = 64 to 10^6: a smaller loop). */
static void vectorise_8(Cg *c, LLVMValueRef latch, int interleave)
{
    const char *const names[] = {"llvm.loop.vectorize.enable", "llvm.loop.vectorize.width",
                                 "llvm.loop.interleave.count"};
    LLVMValueRef vals[] = {cbool(c, 1), LLVMConstInt(c->i32, 8, 0), LLVMConstInt(c->i32, (unsigned)interleave, 0)};
    loop_hints(c, latch, names, vals, 3);
}

/* The loop whose back edge is latch is not vectorised (a slice's strided
 * row copies, cgslice.c: their vector form is a gather behind a check
 * that the stride is 1, with a body, a remainder and an overlap check to
 * compile). */
void cg_no_vectorise(Cg *c, LLVMValueRef latch)
{
    const char *const names[] = {"llvm.loop.vectorize.enable"};
    LLVMValueRef vals[] = {cbool(c, 0)};
    loop_hints(c, latch, names, vals, 1);
}

/* One chain, left to right (-O0); at -O2 its addition may be reassociated
 * and, unless the body calls out, the vectoriser makes 32 partial sums (8
 * with exp or tanh). */
static LLVMValueRef reduce_sum_chain(Cg *c, LLVMValueRef n, ElemFn f, FlushFn flush, void *ctx)
{
    LLVMValueRef t = alloca_(c, c->f64);
    LLVMBuildStore(c->b, cf(c, 0), t);
    Loop lp;
    LLVMValueRef k = loop_begin(c, &lp, ci(c, 0), n);
    LLVMBasicBlockRef body = LLVMGetInsertBlock(c->b);
    LLVMValueRef s = fplus(c, LLVMBuildLoad2(c->b, c->f64, t, ""), f(c, ctx, k));
    LLVMBuildStore(c->b, s, t);
    if (flush)
        flush(c, ctx);
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
    int called = c->opt_level >= 2 ? calls(body) : CALLS_OUT;
    loop_end(c, &lp);
    if (c->opt_level >= 2)
        LLVMSetFastMathFlags(s, LLVMFastMathAllowReassoc);
    if (called != CALLS_OUT)
        vectorise_8(c, LLVMGetBasicBlockTerminator(latch), called == CALLS_MATH ? 1 : 4);
    return LLVMBuildLoad2(c->b, c->f64, t, "");
}

/* -O1: SUM_LANES partial sums, in the IR one after another */
static LLVMValueRef reduce_sum_lanes(Cg *c, LLVMValueRef n, ElemFn f, FlushFn flush, void *ctx)
{
    LLVMValueRef acc[SUM_LANES], t = alloca_(c, c->f64);
    for (int l = 0; l < SUM_LANES; l++) {
        acc[l] = alloca_(c, c->f64);
        LLVMBuildStore(c->b, cf(c, 0), acc[l]);
    }
    LLVMValueRef blocks = LLVMBuildSDiv(c->b, n, ci(c, SUM_LANES), "");
    Loop lp;
    LLVMValueRef i = loop_begin(c, &lp, ci(c, 0), blocks);
    LLVMValueRef base = mul(c, i, ci(c, SUM_LANES));
    for (int l = 0; l < SUM_LANES; l++) {
        LLVMValueRef x = f(c, ctx, add(c, base, ci(c, l)));
        LLVMBuildStore(c->b, fplus(c, LLVMBuildLoad2(c->b, c->f64, acc[l], ""), x), acc[l]);
    }
    if (flush)
        flush(c, ctx);
    loop_end(c, &lp);
    LLVMValueRef s[SUM_LANES];
    for (int l = 0; l < SUM_LANES; l++)
        s[l] = LLVMBuildLoad2(c->b, c->f64, acc[l], "");
    for (int w = SUM_LANES; w > 1; w /= 2)
        for (int l = 0; l < w / 2; l++)
            s[l] = fplus(c, s[2 * l], s[2 * l + 1]);
    LLVMBuildStore(c->b, s[0], t);
    i = loop_begin(c, &lp, mul(c, blocks, ci(c, SUM_LANES)), n);
    LLVMBuildStore(c->b, fplus(c, LLVMBuildLoad2(c->b, c->f64, t, ""), f(c, ctx, i)), t);
    if (flush)
        flush(c, ctx);
    loop_end(c, &lp);
    return LLVMBuildLoad2(c->b, c->f64, t, "");
}

LLVMValueRef cg_reduce_sum_flush(Cg *c, LLVMValueRef n, ElemFn f, FlushFn flush, void *ctx)
{
    return c->opt_level == 1 ? reduce_sum_lanes(c, n, f, flush, ctx) : reduce_sum_chain(c, n, f, flush, ctx);
}

LLVMValueRef cg_reduce_sum(Cg *c, LLVMValueRef count, ElemFn f, void *ctx)
{
    return cg_reduce_sum_flush(c, count, f, NULL, ctx);
}
