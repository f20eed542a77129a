/* jit.c — `gradc eval`: compile the module to an object, load it with ORC's
 * LLJIT and call it.
 *
 * The ABI functions' signatures depend on the program, so codegen adds
 * program-independent entries (NAME_entry / NAME_grad_entry: arrays in) and
 * we call those through one C function-pointer type — no libffi.  The
 * runtime functions generated code calls are defined in the JIT as absolute
 * symbols (their addresses in this process), so nothing depends on how
 * gradc was linked; libm and libc (exp, malloc, memset …) come from a
 * process-symbol generator.
 *
 * Latency is what an eval costs (its inputs come from JSON, so they are
 * small), so the JIT compiles at -O0 unless eval is given another -O
 * (Bindings.jit_opt; docs/design.md has the measurements), and the object
 * is cached on disk (cache.c) under the SHA-256 of everything that
 * determines it: the unoptimised module's bitcode, gradc's version (and its
 * executable's size and mtime), LLVM's version, the target triple, CPU and
 * features, the opt level and the while limit.  A hit skips LLVM's passes
 * and code generation; only building the module (for its hash) remains.
 * At -O0 the module calls mathfn.c's C exp and tanh (cg_math_extern), the
 * interpreter's own functions, rather than compiling their IR. */
#include "cache.h"
#include "codegen.h"

#include <gradc/runtime.h>
#include <llvm-c/BitWriter.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define JIT_NAME "gradc_jit"

typedef int (*EntryFn)(const int64_t *dims, const double *const *inputs, const double *cotangent,
                       double *out, double **grads, void *work, int32_t *where, double **aux);

static bool ok(LLVMErrorRef e, const char *what)
{
    if (!e)
        return true;
    char *msg = LLVMGetErrorMessage(e);
    diag_plain("internal error in the JIT: %s: %s", what, msg);
    LLVMDisposeErrorMessage(msg);
    return false;
}

/* Every runtime function codegen may call (codegen.h: GRADC_RUNTIME), at
 * its address in this process. */
static LLVMErrorRef define_runtime(LLVMOrcLLJITRef jit, LLVMOrcJITDylibRef jd)
{
    static const uintptr_t addrs[RT_COUNT] = {
#define RT_ADDR(f) (uintptr_t)gradc_##f,
        GRADC_RUNTIME(RT_ADDR)
#undef RT_ADDR
    };
    LLVMOrcCSymbolMapPair pairs[RT_COUNT];
    for (int i = 0; i < RT_COUNT; i++) {
        pairs[i].Name = LLVMOrcLLJITMangleAndIntern(jit, rt_names[i]);
        pairs[i].Sym.Address = (LLVMOrcExecutorAddress)addrs[i];
        pairs[i].Sym.Flags.GenericFlags = LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
        pairs[i].Sym.Flags.TargetFlags = 0;
    }
    return LLVMOrcJITDylibDefine(jd, LLVMOrcAbsoluteSymbols(pairs, RT_COUNT));
}

/* An LLJIT builder whose target is the host triple with a generic CPU.
 * LLJIT makes two target machines from it (for its data layout and for an
 * IR compile layer we never use: we add objects), and the host's long
 * feature list made each cost more than the object's linking; the data
 * layout is the triple's, and the object, compiled for the host CPU, is
 * linked the same way whatever CPU this names. */
static LLVMOrcLLJITBuilderRef jit_builder(void)
{
    LLVMOrcLLJITBuilderRef b = LLVMOrcCreateLLJITBuilder();
    char *triple = LLVMGetDefaultTargetTriple(), *err = NULL;
    LLVMTargetRef target;
    if (!LLVMGetTargetFromTriple(triple, &target, &err)) {
        LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, triple, "generic", "", LLVMCodeGenLevelNone,
                                                          LLVMRelocPIC, LLVMCodeModelDefault);
        if (tm) /* consumed */
            LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(b, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm));
    }
    LLVMDisposeMessage(err);
    LLVMDisposeMessage(triple);
    return b;
}

/* A new LLJIT holding the object (consumed). */
static LLVMOrcLLJITRef load(LLVMMemoryBufferRef obj)
{
    LLVMOrcLLJITRef jit = NULL;
    if (!ok(LLVMOrcCreateLLJIT(&jit, jit_builder()), "creating LLJIT")) {
        LLVMDisposeMemoryBuffer(obj);
        return NULL;
    }
    LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(jit);
    LLVMOrcDefinitionGeneratorRef gen = NULL;
    bool good = ok(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(jit),
                                                                        NULL, NULL),
                   "process symbols");
    if (good)
        LLVMOrcJITDylibAddGenerator(jd, gen);
    good = good && ok(define_runtime(jit, jd), "runtime symbols");
    if (good)
        good = ok(LLVMOrcLLJITAddObjectFile(jit, jd, obj), "adding the object");
    else
        LLVMDisposeMemoryBuffer(obj);
    if (!good) {
        LLVMOrcDisposeLLJIT(jit);
        return NULL;
    }
    return jit;
}

/* The cache key of mod compiled with o for the host, without a target
 * machine (a hit needs none): codegen_target_machine(NULL, ...) is made
 * from the same triple, CPU name and features. */
static void object_key(LLVMModuleRef mod, const CodegenOptions *o, CacheKey *k)
{
    unsigned major, minor, patch;
    LLVMGetVersion(&major, &minor, &patch);
    char *triple = LLVMGetDefaultTargetTriple(), options[256];
    const char *cpu, *features;
    codegen_host_cpu(&cpu, &features);
    /* the executable's size and mtime (as ccache does): a rebuilt gradc may
     * optimise the same module differently */
    struct stat exe = {0};
    stat("/proc/self/exe", &exe);
    snprintf(options, sizeof options, "gradc %s (%lld bytes, %lld.%09ld), LLVM %u.%u.%u, -O%d, max-iter %lld",
             GRADC_VERSION, (long long)exe.st_size, (long long)exe.st_mtim.tv_sec, exe.st_mtim.tv_nsec, major,
             minor, patch, o->opt_level, (long long)o->max_iter);
    LLVMMemoryBufferRef bc = LLVMWriteBitcodeToMemoryBuffer(mod);
    const void *parts[] = {options, triple, cpu, features, LLVMGetBufferStart(bc)};
    size_t lens[] = {strlen(options), strlen(triple), strlen(cpu), strlen(features), LLVMGetBufferSize(bc)};
    cache_key(k, parts, lens, 5);
    LLVMDisposeMemoryBuffer(bc);
    LLVMDisposeMessage(triple);
}

/* mod (not consumed) optimised and compiled for the host to an object;
 * NULL after an error message. */
static LLVMMemoryBufferRef compile(LLVMModuleRef mod, int opt_level)
{
    LLVMTargetMachineRef tm = codegen_target_machine(NULL, opt_level);
    LLVMMemoryBufferRef obj = NULL;
    char *err = NULL;
    if (tm && codegen_optimize(mod, tm, opt_level) &&
        LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMObjectFile, &err, &obj)) {
        diag_plain("internal error in the JIT: code generation: %s", err ? err : "unknown error");
        obj = NULL;
    }
    LLVMDisposeMessage(err);
    if (tm)
        LLVMDisposeTargetMachine(tm);
    return obj;
}

/* The object of m's module: from the cache, or compiled (and stored). */
static LLVMMemoryBufferRef object(const Module *m, const CodegenOptions *o, CgInfo *info)
{
    LLVMContextRef ctx = LLVMContextCreate();
    /* local value names are for reading IR (compile --emit-llvm); here they
     * cost building, hashing (in the bitcode) and compiling */
    LLVMContextSetDiscardValueNames(ctx, 1);
    LLVMModuleRef mod = codegen_module(m, o, ctx, true, info);
    LLVMMemoryBufferRef obj = NULL;
    if (mod && o->opt_level == 0)
        cg_math_extern(mod);
    if (mod) {
        CacheKey k;
        object_key(mod, o, &k);
        size_t len;
        void *cached = cache_load(&k, &len);
        if (cached)
            obj = LLVMCreateMemoryBufferWithMemoryRangeCopy(cached, len, JIT_NAME);
        else if ((obj = compile(mod, o->opt_level)))
            cache_store(&k, LLVMGetBufferStart(obj), LLVMGetBufferSize(obj));
        free(cached);
        LLVMDisposeModule(mod);
    }
    LLVMContextDispose(ctx);
    return obj;
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
    double **noaux;       /* Module.naux NULLs: for callers that want no aux */
};

/* grad_only: an eval of the gradient, which needs no forward function
 * (half the code of a long program). */
static Jit *open_jit(const Module *m, int64_t max_iter, int opt_level, bool grad_only)
{
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    grad_only = grad_only && m->grad.value;
    CodegenOptions o = {.name = JIT_NAME, .opt_level = opt_level, .max_iter = max_iter, .grad_only = grad_only};
    Jit *j = arena_alloc(m->arena, sizeof *j);
    j->noaux = arena_alloc(m->arena, sizeof(double *) * (size_t)(m->naux + 1));
    LLVMMemoryBufferRef obj = object(m, &o, &j->info);
    if (!obj || !(j->jit = load(obj)))
        return NULL;
    if ((!grad_only && !lookup(j->jit, JIT_NAME "_entry", &j->fwd)) ||
        (m->grad.value && !lookup(j->jit, JIT_NAME "_grad_entry", &j->grad))) {
        jit_close(j);
        return NULL;
    }
    return j;
}

Jit *jit_open(const Module *m, int64_t max_iter, int opt_level)
{
    return open_jit(m, max_iter, opt_level, false);
}

int jit_run(Jit *j, bool want_grad, const Bindings *b, double *value, double **grads, Loc *where)
{
    EntryFn fn = want_grad && j->grad ? j->grad : j->fwd;
    int32_t w = -1;
    int status = fn(b->dims, b->inputs, b->cotangent, value, fn == j->grad ? grads : NULL, NULL, &w,
                    b->aux ? b->aux : j->noaux);
    if ((status == GRADC_EMAXITER || status == GRADC_EINDEX) && where && w >= 0 &&
        w < j->info.nwhiles)
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
    Jit *j = open_jit(m, b->max_iter, b->jit_opt, want_grad);
    if (!j)
        return -1;
    int status = jit_run(j, want_grad, b, value, grads, where);
    jit_close(j);
    return status;
}
