/* jit.c — `gradc eval`: compile the module with ORC's LLJIT and call it.
 *
 * The ABI functions' signatures depend on the program, so codegen adds
 * program-independent entries (NAME_entry / NAME_grad_entry: arrays in) and
 * we call those through one C function-pointer type — no libffi.  The
 * runtime functions generated code calls are defined in the JIT as absolute
 * symbols (their addresses in this process), so nothing depends on how
 * gradc was linked; libm and libc (exp, malloc, memset …) come from a
 * process-symbol generator. */
#include "codegen.h"

#include <gradc/runtime.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>

#define JIT_NAME "gradc_jit"

typedef int (*EntryFn)(const int64_t *dims, const double *const *inputs, const double *cotangent,
                       double *out, double **grads, void *work, int32_t *where);

static bool ok(LLVMErrorRef e, const char *what)
{
    if (!e)
        return true;
    char *msg = LLVMGetErrorMessage(e);
    diag_plain("internal error in the JIT: %s: %s", what, msg);
    LLVMDisposeErrorMessage(msg);
    return false;
}

static LLVMErrorRef define_runtime(LLVMOrcLLJITRef jit, LLVMOrcJITDylibRef jd)
{
    static const struct {
        const char *name;
        uintptr_t addr;
    } syms[] = {
        {"gradc_tape_push", (uintptr_t)gradc_tape_push},
        {"gradc_tape_pop", (uintptr_t)gradc_tape_pop},
        {"gradc_tape_free", (uintptr_t)gradc_tape_free},
        {"gradc_det", (uintptr_t)gradc_det},
        {"gradc_logdet", (uintptr_t)gradc_logdet},
        {"gradc_inv", (uintptr_t)gradc_inv},
        {"gradc_dgemm", (uintptr_t)gradc_dgemm},
        {"gradc_lgamma", (uintptr_t)gradc_lgamma},
        {"gradc_digamma", (uintptr_t)gradc_digamma},
        {"gradc_polygamma", (uintptr_t)gradc_polygamma},
    };
    enum { N = sizeof syms / sizeof syms[0] };
    LLVMOrcCSymbolMapPair pairs[N];
    for (int i = 0; i < N; i++) {
        pairs[i].Name = LLVMOrcLLJITMangleAndIntern(jit, syms[i].name);
        pairs[i].Sym.Address = (LLVMOrcExecutorAddress)syms[i].addr;
        pairs[i].Sym.Flags.GenericFlags = LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
        pairs[i].Sym.Flags.TargetFlags = 0;
    }
    return LLVMOrcJITDylibDefine(jd, LLVMOrcAbsoluteSymbols(pairs, N));
}

/* Adds the module (consumed) to a new LLJIT. */
static LLVMOrcLLJITRef load(LLVMOrcThreadSafeContextRef tsc, LLVMModuleRef mod)
{
    LLVMOrcLLJITRef jit = NULL;
    if (!ok(LLVMOrcCreateLLJIT(&jit, LLVMOrcCreateLLJITBuilder()), "creating LLJIT")) {
        LLVMDisposeModule(mod);
        return NULL;
    }
    LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(jit);
    LLVMOrcDefinitionGeneratorRef gen = NULL;
    if (!ok(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(jit), NULL,
                                                                 NULL),
            "process symbols")) {
        LLVMDisposeModule(mod);
        LLVMOrcDisposeLLJIT(jit);
        return NULL;
    }
    LLVMOrcJITDylibAddGenerator(jd, gen);
    bool good = ok(define_runtime(jit, jd), "runtime symbols");
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(mod, tsc);
    if (good)
        good = ok(LLVMOrcLLJITAddLLVMIRModule(jit, jd, tsm), "adding the module");
    else
        LLVMOrcDisposeThreadSafeModule(tsm);
    if (!good) {
        LLVMOrcDisposeLLJIT(jit);
        return NULL;
    }
    return jit;
}

static bool lookup(LLVMOrcLLJITRef jit, const char *entry, EntryFn *fn)
{
    LLVMOrcExecutorAddress addr = 0;
    if (!ok(LLVMOrcLLJITLookup(jit, &addr, entry), "looking up the entry"))
        return false;
    *fn = (EntryFn)(uintptr_t)addr;
    return true;
}

struct Jit {
    LLVMOrcLLJITRef jit;
    EntryFn fwd, grad;    /* grad: NULL without a gradient function */
    CgInfo info;
};

Jit *jit_open(const Module *m, int64_t max_iter)
{
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    CodegenOptions o = {.name = JIT_NAME, .opt_level = 2, .max_iter = max_iter};
    LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
    Jit *j = arena_alloc(m->arena, sizeof *j);
    LLVMModuleRef mod = codegen_module(m, &o, LLVMOrcThreadSafeContextGetContext(tsc), true, &j->info);
    LLVMTargetMachineRef tm = mod ? codegen_target_machine(NULL, o.opt_level) : NULL;
    bool good = tm && codegen_optimize(mod, tm, o.opt_level);
    if (tm)
        LLVMDisposeTargetMachine(tm);
    if (!good) {
        if (mod)
            LLVMDisposeModule(mod);
        LLVMOrcDisposeThreadSafeContext(tsc);
        return NULL;
    }
    j->jit = load(tsc, mod);
    LLVMOrcDisposeThreadSafeContext(tsc);
    if (!j->jit)
        return NULL;
    if (!lookup(j->jit, JIT_NAME "_entry", &j->fwd) ||
        (m->grad.value && !lookup(j->jit, JIT_NAME "_grad_entry", &j->grad))) {
        jit_close(j);
        return NULL;
    }
    return j;
}

int jit_run(Jit *j, bool want_grad, const Bindings *b, double *value, double **grads, Loc *where)
{
    EntryFn fn = want_grad && j->grad ? j->grad : j->fwd;
    int32_t w = -1;
    int status = fn(b->dims, b->inputs, b->cotangent, value, fn == j->grad ? grads : NULL, NULL, &w);
    if (status == GRADC_EMAXITER && where && w >= 0 && w < j->info.nwhiles)
        *where = j->info.whiles[w];
    return status;
}

void jit_close(Jit *j)
{
    if (j && j->jit)
        LLVMOrcDisposeLLJIT(j->jit);
}

int jit_eval(const Module *m, bool want_grad, const Bindings *b, double *value, double **grads, Loc *where)
{
    Jit *j = jit_open(m, b->max_iter);
    if (!j)
        return -1;
    int status = jit_run(j, want_grad, b, value, grads, where);
    jit_close(j);
    return status;
}
