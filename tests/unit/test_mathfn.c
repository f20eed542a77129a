/* test_mathfn.c — mathfn.c's gradc_exp and gradc_tanh: within a few ulps
 * of libm on 10^6 points, exact on the edge cases, and bit for bit what
 * cgmath.c's IR computes once LLVM has vectorised it (the interpreter and
 * compiled code must agree exactly: docs/design.md).  The ulp bounds here
 * are against libm, itself up to 1 ulp (exp) or 2 (glibc's tanh) off;
 * against mpmath ours are 1.19 (exp) and 2.79 (tanh) ulp (docs/design.md). */
#include "check.h"
#include "codegen.h"

#include <llvm-c/LLJIT.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { N = 1000000 };

static uint64_t bits_of(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/* distance in representable doubles (same sign assumed when both nonzero) */
static double ulps(double a, double b)
{
    if (a == b)
        return 0;
    int64_t ia = (int64_t)bits_of(a), ib = (int64_t)bits_of(b);
    ia = ia < 0 ? INT64_MIN - ia : ia;
    ib = ib < 0 ? INT64_MIN - ib : ib;
    return (double)(ia > ib ? (uint64_t)ia - (uint64_t)ib : (uint64_t)ib - (uint64_t)ia);
}

static uint64_t state = 0x9e3779b97f4a7c15ull;
static double uniform(double lo, double hi)
{
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return lo + (hi - lo) * ((double)(state >> 11) * 0x1p-53);
}

static const double edges[] = {0.0, -0.0, 5e-324, -5e-324, 1e-310, -1e-310, 1e-17, -1e-17, 0.5, -0.5,
                               0.34657359027997264, -0.34657359027997264, 1, -1, 19.06, 20, 21, -21,
                               708, -708, 709.78, 709.7827128933840, 709.79, 710, 711, -745, -745.13,
                               -745.14, -746, -800, 1e300, -1e300, INFINITY, -INFINITY, NAN, -NAN};
enum { NEDGE = sizeof edges / sizeof edges[0] };

/* x: the edge cases, then exp's ranges (everything finite, near 0, near the
 * overflow and underflow), then tanh's ([-20, 20], near 0, tiny) */
static double *points(void)
{
    double *x = malloc(sizeof(double) * N);
    memcpy(x, edges, sizeof edges);
    for (int i = NEDGE; i < N; i++) {
        int r = i % 8;
        x[i] = r == 0 ? uniform(-745.2, 709.8) : r == 1 ? uniform(-1, 1) : r == 2 ? uniform(700, 709.78)
             : r == 3 ? uniform(-745.2, -700) : r == 4 ? uniform(-20, 20) : r == 5 ? uniform(-3, 3)
             : (i & 16 ? -1 : 1) * pow(10, uniform(-300, 0));
    }
    return x;
}

static void test_edges(void)
{
    CHECK(gradc_exp(0.0) == 1 && gradc_exp(-0.0) == 1);
    CHECK(gradc_exp(INFINITY) == INFINITY && bits_of(gradc_exp(-INFINITY)) == 0);
    CHECK(isnan(gradc_exp(NAN)) && isnan(gradc_exp(-NAN)));
    CHECK(gradc_exp(709.78) < INFINITY && gradc_exp(709.79) == INFINITY && gradc_exp(1e300) == INFINITY);
    CHECK(gradc_exp(-745.13) == 5e-324 && bits_of(gradc_exp(-745.14)) == 0 && bits_of(gradc_exp(-1e300)) == 0);
    CHECK(fabs(gradc_exp(-708.5) - exp(-708.5)) <= 5e-324); /* subnormal: rounded once */
    CHECK(ulps(gradc_exp(1), M_E) <= 1);
    CHECK(bits_of(gradc_tanh(0.0)) == 0 && bits_of(gradc_tanh(-0.0)) == MATHFN_SIGN);
    CHECK(gradc_tanh(5e-324) == 5e-324 && gradc_tanh(-1e-310) == -1e-310 && gradc_tanh(1e-17) == 1e-17);
    CHECK(gradc_tanh(20) == 1 && gradc_tanh(-21) == -1 && gradc_tanh(1e300) == 1);
    CHECK(gradc_tanh(INFINITY) == 1 && gradc_tanh(-INFINITY) == -1 && isnan(gradc_tanh(NAN)));
}

/* against libm: ours within 1.19 ulp (exp) or 2.79 (tanh) of the true value,
 * libm's within 1 (2) */
static void test_libm(const double *x)
{
    double worst_exp = 0, worst_tanh = 0;
    for (int i = 0; i < N; i++) {
        if (isnan(x[i]))
            continue;
        double e = exp(x[i]), t = tanh(x[i]);
        if (e != 0 && e > 0x1p-1022)   /* normal results: ulps of a subnormal are absolute */
            worst_exp = fmax(worst_exp, ulps(gradc_exp(x[i]), e));
        else
            CHECK(fabs(gradc_exp(x[i]) - e) <= 5e-324);
        worst_tanh = fmax(worst_tanh, ulps(gradc_tanh(x[i]), t));
    }
    printf("max ulps from libm: exp %g, tanh %g\n", worst_exp, worst_tanh);
    CHECK(worst_exp <= 2);
    CHECK(worst_tanh <= 4);
}

/* void NAME(const double *x, double *y, i64 n): y[i] = f(x[i]) */
static void add_loop(LLVMModuleRef mod, const char *name, LLVMValueRef (*f)(LLVMBuilderRef, LLVMValueRef))
{
    LLVMContextRef ctx = LLVMGetModuleContext(mod);
    LLVMTypeRef ptr = LLVMPointerTypeInContext(ctx, 0), i64 = LLVMInt64TypeInContext(ctx),
                f64 = LLVMDoubleTypeInContext(ctx);
    LLVMTypeRef pt[3] = {ptr, ptr, i64};
    LLVMValueRef fn = LLVMAddFunction(mod, name, LLVMFunctionType(LLVMVoidTypeInContext(ctx), pt, 3, 0));
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(ctx, fn, "entry"),
                      body = LLVMAppendBasicBlockInContext(ctx, fn, "body"),
                      done = LLVMAppendBasicBlockInContext(ctx, fn, "done");
    LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
    LLVMPositionBuilderAtEnd(b, entry);
    LLVMValueRef n = LLVMGetParam(fn, 2), zero = LLVMConstInt(i64, 0, 0);
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSGT, n, zero, ""), body, done);
    LLVMPositionBuilderAtEnd(b, body);
    LLVMValueRef k = LLVMBuildPhi(b, i64, "");
    LLVMValueRef xk = LLVMBuildLoad2(b, f64, LLVMBuildGEP2(b, f64, LLVMGetParam(fn, 0), &k, 1, ""), "");
    LLVMBuildStore(b, f(b, xk), LLVMBuildGEP2(b, f64, LLVMGetParam(fn, 1), &k, 1, ""));
    LLVMValueRef next = LLVMBuildAdd(b, k, LLVMConstInt(i64, 1, 0), "");
    LLVMValueRef in[2] = {zero, next};
    LLVMBasicBlockRef from[2] = {entry, body};
    LLVMAddIncoming(k, in, from, 2);
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, next, n, ""), body, done);
    LLVMPositionBuilderAtEnd(b, done);
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
}

typedef void LoopFn(const double *, double *, int64_t);

/* The IR at -O2 for the host CPU (vectorised, as `gradc compile -O2`
 * builds it) against the C on every point, bit for bit (NaNs too). */
static void test_ir(const double *x)
{
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod = LLVMModuleCreateWithNameInContext("mathfn", ctx);
    add_loop(mod, "f_exp", cg_exp);
    add_loop(mod, "f_tanh", cg_tanh);
    LLVMTargetMachineRef tm = codegen_target_machine(NULL, 2);
    CHECK(tm && codegen_optimize(mod, tm, 2));
    char *ir = LLVMPrintModuleToString(mod);
    CHECK(strstr(ir, "x double>") != NULL);   /* vectorised */
    LLVMDisposeMessage(ir);
    LLVMMemoryBufferRef obj = NULL;
    char *err = NULL;
    CHECK(!LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMObjectFile, &err, &obj));
    LLVMOrcLLJITRef jit = NULL;
    CHECK(!LLVMOrcCreateLLJIT(&jit, NULL));
    CHECK(!LLVMOrcLLJITAddObjectFile(jit, LLVMOrcLLJITGetMainJITDylib(jit), obj));
    LLVMOrcExecutorAddress fe = 0, ft = 0;
    CHECK(!LLVMOrcLLJITLookup(jit, &fe, "f_exp") && !LLVMOrcLLJITLookup(jit, &ft, "f_tanh"));
    double *y = malloc(sizeof(double) * N);
    int bad_exp = 0, bad_tanh = 0;
    if (fe && ft) {
        ((LoopFn *)fe)(x, y, N);
        for (int i = 0; i < N; i++)
            bad_exp += bits_of(y[i]) != bits_of(gradc_exp(x[i]));
        ((LoopFn *)ft)(x, y, N - 3);   /* and a scalar remainder */
        for (int i = 0; i < N - 3; i++)
            bad_tanh += bits_of(y[i]) != bits_of(gradc_tanh(x[i]));
    }
    CHECK(bad_exp == 0);
    CHECK(bad_tanh == 0);
    free(y);
    LLVMOrcDisposeLLJIT(jit);
    LLVMDisposeModule(mod);
    LLVMDisposeTargetMachine(tm);
    LLVMContextDispose(ctx);
}

int main(void)
{
    double *x = points();
    test_edges();
    test_libm(x);
    test_ir(x);
    free(x);
    return check_report("test_mathfn");
}
