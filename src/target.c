/* target.c — the LLVM target machine (the host's CPU and features, or a
 * --target triple) and the optimisation passes run on a module before
 * code generation, for the object file (emit.c) and the JIT (jit.c). */
#include "codegen.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Support.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <stdlib.h>
#include <string.h>

static void init_targets(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    LLVMInitializeX86TargetInfo();
    LLVMInitializeX86Target();
    LLVMInitializeX86TargetMC();
    LLVMInitializeX86AsmPrinter();
    LLVMInitializeAArch64TargetInfo();
    LLVMInitializeAArch64Target();
    LLVMInitializeAArch64TargetMC();
    LLVMInitializeAArch64AsmPrinter();
    /* Loop strength reduction is super-linear on the many loop nests of one
     * large generated function: it took 88% of a 17 s JIT compile of a
     * 100-line program (0.6 s without it), and bench/run shows no run-time
     * loss without it (x86 addressing modes already scale the index). */
    static const char *const options[] = {"gradc", "-disable-lsr"};
    LLVMParseCommandLineOptions(2, options, NULL);
}

/* The host's enabled features ("+avx2,+fma,..." of LLVM's "+x,-y,..."),
 * for a target machine named for the baseline "x86-64" CPU: the same
 * instructions, without the host CPU's tuning and without parsing the
 * disabled half of the list.  -O0 (eval's JIT) has nothing to tune, and
 * the feature list was parsed twice per compile (the target machine and
 * the subtarget), 8% of a small sample's eval. */
static char *enabled_features(const char *features)
{
    size_t n = strlen(features);
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *f = features; *f;) {
        const char *end = strchr(f, ',');
        size_t len = end ? (size_t)(end - f) : strlen(f);
        if (*f == '+') {
            if (o != out)
                *o++ = ',';
            memcpy(o, f, len);
            o += len;
        }
        f += len + (end != NULL);
    }
    *o = 0;
    return out;
}

/* Read once per process, and never freed: a JIT miss wants them for its
 * cache key and again for its target machine, and reading the features
 * costs 0.13M instructions (1% of a small program's eval). */
void codegen_host_cpu(const char **name, const char **features)
{
    static char *n, *f;
    if (!n) {
        n = LLVMGetHostCPUName();
        f = LLVMGetHostCPUFeatures();
    }
    *name = n;
    *features = f;
}

LLVMTargetMachineRef codegen_target_machine(const char *triple, int opt_level)
{
    init_targets();
    char *t = triple ? LLVMNormalizeTargetTriple(triple) : LLVMGetDefaultTargetTriple();
    const char *cpu = NULL, *features = NULL;
    if (!triple)
        codegen_host_cpu(&cpu, &features);
    LLVMTargetRef target;
    char *err = NULL;
    LLVMTargetMachineRef tm = NULL;
    if (LLVMGetTargetFromTriple(t, &target, &err)) {
        diag_plain("unsupported target '%s': %s", triple ? triple : t, err);
        LLVMDisposeMessage(err);
    } else {
        LLVMCodeGenOptLevel lv = opt_level <= 0 ? LLVMCodeGenLevelNone : opt_level == 1 ? LLVMCodeGenLevelLess
                               : opt_level == 2 ? LLVMCodeGenLevelDefault : LLVMCodeGenLevelAggressive;
        char *enabled = features && opt_level <= 0 && strstr(t, "x86_64") == t ? enabled_features(features) : NULL;
        tm = LLVMCreateTargetMachine(target, t, enabled ? "x86-64" : cpu ? cpu : "generic",
                                     enabled ? enabled : features ? features : "", lv, LLVMRelocPIC,
                                     LLVMCodeModelDefault);
        free(enabled);
        if (!tm)
            diag_plain("cannot create a target machine for '%s'", t);
    }
    LLVMDisposeMessage(t);
    return tm;
}

/* -O2: the passes of LLVM's default<O2> that gradc's IR needs, once each,
 * in half the time (layer_norm: 150 -> 45 ms; bench/run's run-time rows
 * unchanged).  The IR comes already shaped: maps and sums are loops over
 * flat indices, a sum's loop carries the vectoriser's hints (codegen.c),
 * products call kernels, values live in allocas.  So: inline the per-module
 * kernels (gradc.exp, a literal 4x4 product's pass) where their constant
 * arguments then fold; allocas to registers, common subexpressions and
 * peepholes; rotate loops (the vectoriser needs their exit at the latch),
 * hoist invariants, canonical induction variables; unroll loops of
 * literal trip count fully (x'*A*x at 4x4: 2.3x slower without), and
 * redo SROA and GVN on what that exposes; then vectorise loops (maps,
 * sums) and straight-line code (what full unrolling left), and tidy; last,
 * infer the functions' attributes (an unread work pointer is readnone: a
 * caller's compiler may then skip it) and drop what inlining left unused.
 * default<O2> runs the simplification pipeline per call graph SCC and
 * again per function, with jump threading, loop unswitching, idiom
 * recognition and more, which gradc's IR does not need; -O3 is still
 * default<O3>. */
#define O2_PIPELINE(slp)                                                                                   \
    "cgscc(inline),"                                                                                       \
    "function(sroa,early-cse,simplifycfg,instcombine<no-verify-fixpoint>,"                                 \
    "loop-mssa(loop-rotate,licm),indvars,loop(loop-unroll-full),sroa,gvn,instcombine<no-verify-fixpoint>," \
    "loop-vectorize," slp "instcombine<no-verify-fixpoint>,simplifycfg),"                                  \
    "cgscc(function-attrs),globaldce"

/* Whether mod has straight-line code for the SLP vectoriser: what full
 * unrolling will leave of a loop with a literal trip count, and a row
 * pass's remainder, whose rows' scalar sums it packs into one vector.
 * Elsewhere it changed no sample's code and cost 7% of -O2's instructions
 * (gp_nll 15%). */
static bool wants_slp(LLVMModuleRef mod)
{
    for (LLVMValueRef f = LLVMGetFirstFunction(mod); f; f = LLVMGetNextFunction(f)) {
        size_t len;
        if (strncmp(LLVMGetValueName2(f, &len), "gradc.rows", 10) == 0)
            return true;
        for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(f); bb; bb = LLVMGetNextBasicBlock(bb)) {
            LLVMValueRef br = LLVMGetBasicBlockTerminator(bb), cmp;   /* loop_begin's i < hi */
            if (br && LLVMIsABranchInst(br) && LLVMIsConditional(br) && (cmp = LLVMIsAICmpInst(LLVMGetCondition(br))) &&
                LLVMIsAPHINode(LLVMGetOperand(cmp, 0)) && LLVMIsAConstantInt(LLVMGetOperand(cmp, 1)))
                return true;
        }
    }
    return false;
}

bool codegen_optimize(LLVMModuleRef mod, LLVMTargetMachineRef tm, int opt_level)
{
#ifndef NDEBUG
    /* here rather than in codegen_module: a JIT cache hit compiles nothing,
     * and its object was stored after the same module verified */
    char *msg = NULL;
    bool bad = LLVMVerifyModule(mod, LLVMReturnStatusAction, &msg);
    if (bad)
        diag_plain("internal error: generated LLVM IR does not verify: %.2000s", msg);
    LLVMDisposeMessage(msg);
    if (bad)
        return false;
#endif
    char *t = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(mod, t);
    LLVMDisposeMessage(t);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(mod, td);
    LLVMDisposeTargetData(td);
    if (opt_level >= 1)
        cg_math_inline(mod);
    char passes[sizeof O2_PIPELINE("slp-vectorizer,")];
    if (opt_level == 2)
        snprintf(passes, sizeof passes, "%s", wants_slp(mod) ? O2_PIPELINE("slp-vectorizer,") : O2_PIPELINE(""));
    else
        snprintf(passes, sizeof passes, "default<O%d>", opt_level < 0 ? 0 : opt_level > 3 ? 3 : opt_level);
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(po, opt_level >= 2);
    LLVMPassBuilderOptionsSetSLPVectorization(po, opt_level >= 2);
    LLVMErrorRef e = LLVMRunPasses(mod, passes, tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (e) {
        char *msg = LLVMGetErrorMessage(e);
        diag_plain("internal error: LLVM passes failed: %s", msg);
        LLVMDisposeErrorMessage(msg);
        return false;
    }
    return true;
}
