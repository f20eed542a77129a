/* cgmath.c — mathfn.c's exp and tanh as LLVM IR, operation for operation
 * (keep the two in step: tests/unit/test_mathfn.c runs both, vectorised,
 * and compares the bits).  No fast-math flags and llvm.fma for each fma:
 * nothing may be contracted or reassociated, so the results do not depend
 * on the vector width the loop vectoriser picks.  Only a builder is needed
 * (the module and context come from its block), so the unit test can emit
 * these into a module of its own.
 *
 * Each is one internal function per module (gradc.exp, gradc.tanh), called:
 * inline at every use, the sum's 16 lanes made a 30-statement tanh chain's
 * -O0 module a third larger (tests/backend.py bounds it), and -O0 is the
 * JIT's fast compile.  codegen_optimize marks them alwaysinline from -O1
 * (cg_math_inline): inlined, a loop over them vectorises. */
#include "codegen.h"

#include <math.h>
#include <string.h>

typedef struct M {
    LLVMBuilderRef b;
    LLVMModuleRef mod;
    LLVMTypeRef f64, i64;
} M;

static M m_of(LLVMBuilderRef b)
{
    LLVMModuleRef mod = LLVMGetGlobalParent(LLVMGetBasicBlockParent(LLVMGetInsertBlock(b)));
    LLVMContextRef ctx = LLVMGetModuleContext(mod);
    return (M){b, mod, LLVMDoubleTypeInContext(ctx), LLVMInt64TypeInContext(ctx)};
}

static LLVMValueRef f(M *m, double v) { return LLVMConstReal(m->f64, v); }
static LLVMValueRef i(M *m, uint64_t v) { return LLVMConstInt(m->i64, v, false); }
static LLVMValueRef bits(M *m, LLVMValueRef x) { return LLVMBuildBitCast(m->b, x, m->i64, ""); }
static LLVMValueRef dbl(M *m, LLVMValueRef x) { return LLVMBuildBitCast(m->b, x, m->f64, ""); }
static LLVMValueRef mul(M *m, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFMul(m->b, x, y, ""); }
static LLVMValueRef add(M *m, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFAdd(m->b, x, y, ""); }
static LLVMValueRef sub(M *m, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFSub(m->b, x, y, ""); }
static LLVMValueRef nan_or(M *m, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildSelect(m->b, LLVMBuildFCmp(m->b, LLVMRealUNO, x, x, ""), x, y, "");
}

static LLVMValueRef fma_(M *m, LLVMValueRef x, LLVMValueRef y, LLVMValueRef z)
{
    static const char name[] = "llvm.fma";
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(m->mod, id, &m->f64, 1);
    LLVMTypeRef ft = LLVMIntrinsicGetType(LLVMGetModuleContext(m->mod), id, &m->f64, 1);
    LLVMValueRef args[3] = {x, y, z};
    return LLVMBuildCall2(m->b, ft, fn, args, 3, "");
}

/* mathfn.c reduce: p = expm1(r), *n the integer with x = n·ln2 + r */
static LLVMValueRef reduce(M *m, LLVMValueRef x, LLVMValueRef *n)
{
    const double *c = mathfn_taylor;
    LLVMValueRef k = fma_(m, x, f(m, MATHFN_LOG2E), f(m, MATHFN_SHIFT));
    LLVMValueRef nd = sub(m, k, f(m, MATHFN_SHIFT));
    *n = LLVMBuildSub(m->b, bits(m, k), bits(m, f(m, MATHFN_SHIFT)), "");
    LLVMValueRef r = fma_(m, nd, f(m, -MATHFN_LN2HI), x);
    r = fma_(m, nd, f(m, -MATHFN_LN2LO), r);
    LLVMValueRef r2 = mul(m, r, r), r4 = mul(m, r2, r2), r6 = mul(m, r2, r4), a[6];
    for (int j = 0; j < 6; j++)
        a[j] = fma_(m, f(m, c[2 * j + 1]), r, f(m, c[2 * j]));
    LLVMValueRef b0 = fma_(m, a[1], r2, a[0]), b1 = fma_(m, a[3], r2, a[2]), b2 = fma_(m, a[5], r2, a[4]);
    return fma_(m, r6, fma_(m, r4, b2, b1), fma_(m, r2, b0, r));
}

static LLVMValueRef pow2(M *m, LLVMValueRef n)
{
    return dbl(m, LLVMBuildShl(m->b, LLVMBuildAdd(m->b, n, i(m, 1023), ""), i(m, 52), ""));
}

/* c where x > at (ogt) or x < at (olt), else y: NaN x keeps y, as the C */
static LLVMValueRef pick(M *m, LLVMRealPredicate pred, LLVMValueRef x, double at, double c, LLVMValueRef y)
{
    return LLVMBuildSelect(m->b, LLVMBuildFCmp(m->b, pred, x, f(m, at), ""), f(m, c), y, "");
}

static LLVMValueRef body_exp(M *m, LLVMValueRef x)
{
    LLVMValueRef n, p = reduce(m, x, &n);
    LLVMValueRef n1 = LLVMBuildAShr(m->b, n, i(m, 1), "");
    LLVMValueRef s = pow2(m, n1);
    LLVMValueRef y = mul(m, fma_(m, p, s, s), pow2(m, LLVMBuildSub(m->b, n, n1, "")));
    y = pick(m, LLVMRealOGT, x, 709.8, INFINITY, y);
    y = pick(m, LLVMRealOLT, x, -745.2, 0.0, y);
    return nan_or(m, x, y);
}

static LLVMValueRef body_tanh(M *m, LLVMValueRef x)
{
    LLVMValueRef a = dbl(m, LLVMBuildAnd(m->b, bits(m, x), i(m, ~MATHFN_SIGN), "")), n;
    LLVMValueRef p = reduce(m, mul(m, f(m, -2.0), a), &n);
    LLVMValueRef s = pow2(m, n);
    LLVMValueRef u = fma_(m, s, p, sub(m, s, f(m, 1.0)));
    LLVMValueRef t = LLVMBuildFDiv(m->b, LLVMBuildFNeg(m->b, u, ""), add(m, f(m, 2.0), u), "");
    t = pick(m, LLVMRealOGT, a, 20.0, 1.0, t);
    LLVMValueRef tb = LLVMBuildOr(m->b, LLVMBuildAnd(m->b, bits(m, t), i(m, ~MATHFN_SIGN), ""),
                                  LLVMBuildAnd(m->b, bits(m, x), i(m, MATHFN_SIGN), ""), "");
    return nan_or(m, x, dbl(m, tb));
}

static const char *const names[] = {"gradc.exp", "gradc.tanh"};
static const RtFn c_fns[] = {RT_exp, RT_tanh};  /* mathfn.c */
static LLVMValueRef (*const bodies[])(M *, LLVMValueRef) = {body_exp, body_tanh};

/* a call of the module's function which (made on first use) */
static LLVMValueRef call(LLVMBuilderRef b, int which, LLVMValueRef x)
{
    M m = m_of(b);
    LLVMTypeRef ft = LLVMFunctionType(m.f64, &m.f64, 1, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(m.mod, names[which]);
    if (!fn) {
        LLVMContextRef ctx = LLVMGetModuleContext(m.mod);
        fn = LLVMAddFunction(m.mod, names[which], ft);
        LLVMSetLinkage(fn, LLVMInternalLinkage);
        static const char *const attrs[] = {"nounwind", "willreturn", "nosync", "nofree"};
        for (size_t k = 0; k < sizeof attrs / sizeof attrs[0]; k++)
            LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(
                ctx, LLVMGetEnumAttributeKindForName(attrs[k], strlen(attrs[k])), 0));
        LLVMBuilderRef fb = LLVMCreateBuilderInContext(ctx);
        LLVMPositionBuilderAtEnd(fb, LLVMAppendBasicBlockInContext(ctx, fn, "entry"));
        M fm = m;
        fm.b = fb;
        LLVMBuildRet(fb, bodies[which](&fm, LLVMGetParam(fn, 0)));
        LLVMDisposeBuilder(fb);
    }
    return LLVMBuildCall2(b, ft, fn, &x, 1, "");
}

LLVMValueRef cg_exp(LLVMBuilderRef b, LLVMValueRef x) { return call(b, 0, x); }
LLVMValueRef cg_tanh(LLVMBuilderRef b, LLVMValueRef x) { return call(b, 1, x); }

void cg_math_inline(LLVMModuleRef mod)
{
    LLVMContextRef ctx = LLVMGetModuleContext(mod);
    static const char always[] = "alwaysinline";
    for (int k = 0; k < (int)(sizeof names / sizeof names[0]); k++) {
        LLVMValueRef fn = LLVMGetNamedFunction(mod, names[k]);
        if (fn)
            LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(
                ctx, LLVMGetEnumAttributeKindForName(always, strlen(always)), 0));
    }
}

void cg_math_extern(LLVMModuleRef mod)
{
    for (int k = 0; k < (int)(sizeof names / sizeof names[0]); k++) {
        LLVMValueRef fn = LLVMGetNamedFunction(mod, names[k]);
        if (!fn)
            continue;
        for (LLVMBasicBlockRef bb; (bb = LLVMGetFirstBasicBlock(fn));)
            LLVMDeleteBasicBlock(bb);
        LLVMSetValueName2(fn, rt_names[c_fns[k]], strlen(rt_names[c_fns[k]]));
        LLVMSetLinkage(fn, LLVMExternalLinkage);
    }
}
