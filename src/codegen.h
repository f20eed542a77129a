/* codegen.h — the LLVM stage's private interface, shared by codegen.c (IR →
 * LLVM module), emit.c (object file, header) and jit.c (ORC).  The rest of
 * the compiler sees only the codegen section of gradc.h. */
#ifndef GRADC_CODEGEN_H
#define GRADC_CODEGEN_H

#include "gradc.h"

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

/* What codegen_module tells its callers besides the module. */
typedef struct CgInfo {
    Loc *whiles;          /* the loc of every while and every index checked at run
                           * time, by the index an entry function writes to
                           * *where on GRADC_EMAXITER or GRADC_EINDEX */
    int nwhiles;
} CgInfo;

/* Builds, in ctx, the module of m: NAME (forward), NAME_grad (when m->grad
 * has a value), NAME_work_size, all with the ABI of spec §7.  With entries,
 * instead of those the JIT's program-independent wrappers (only the
 * gradient's with o->grad_only and a gradient)
 *   int NAME_entry(const int64_t *dims, const double *const *inputs,
 *                  const double *cotangent, double *out, double **grads,
 *                  void *work, int32_t *where)
 * and NAME_grad_entry (same signature), which unpack the arrays (a scalar
 * input is a pointer to one double) and call the function; on
 * GRADC_EMAXITER *where is an index into info->whiles.
 * Returns NULL after printing an internal error. */
LLVMModuleRef codegen_module(const Module *m, const CodegenOptions *o, LLVMContextRef ctx,
                             bool entries, CgInfo *info);

/* Every runtime function generated code calls (libgradc's runtime.h, and
 * mathfn.c's exp and tanh at -O0), as gradc_NAME, one row each: codegen
 * names them by RtFn (cg.h: callrt; the op table's libm column names the
 * special functions', checked against these rows by unit-runtime_fns), and
 * the JIT defines every row at its address in this process, so whatever
 * code calls, the JIT links. */
#define GRADC_RUNTIME(X)                                                                                  \
    X(tape_push) X(tape_pop) X(tape_free) X(det) X(logdet) X(inv) X(lu) X(lu_solve) X(chol) X(lgamma)     \
    X(digamma) X(polygamma) X(norm) X(gemm) X(gemm_scaled) X(store) X(scale) X(sums) X(diag_gemm)      \
    X(layout) X(pass_n) X(pass_t) X(pass_nt) X(pass_n_nofma) X(pass_t_nofma) X(pass_nt_nofma) X(exp)  \
    X(tanh)

typedef enum RtFn {
#define RT_ENUM(f) RT_##f,
    GRADC_RUNTIME(RT_ENUM)
#undef RT_ENUM
    RT_COUNT
} RtFn;

/* "gradc_tape_push" … by RtFn (codegen.c) */
extern const char *const rt_names[RT_COUNT];

/* cgmath.c: mathfn.c's gradc_exp and gradc_tanh as IR at b's position,
 * operation for operation (the interpreter's bits, vectorisable). */
LLVMValueRef cg_exp(LLVMBuilderRef b, LLVMValueRef x);
LLVMValueRef cg_tanh(LLVMBuilderRef b, LLVMValueRef x);
/* For eval's JIT at -O0: the two functions become calls of mathfn.c's C
 * gradc_exp and gradc_tanh (the same operations, so the same bits): their
 * llvm.fma calls sent -O0's instruction selector down its slow path. */
void cg_math_extern(LLVMModuleRef mod);
/* From -O1: the two functions cg_exp and cg_tanh call are alwaysinline. */
void cg_math_inline(LLVMModuleRef mod);

/* target.c: a target machine for triple (NULL: the host, with its CPU
 * name and features), PIC.  NULL after printing an error. */
LLVMTargetMachineRef codegen_target_machine(const char *triple, int opt_level);
/* The host's CPU name and LLVM feature string ("+avx2,-avx512f,..."). */
void codegen_host_cpu(const char **name, const char **features);

/* Verifies mod (with asserts on), sets its triple and data layout from tm
 * and runs the passes of opt_level (-O2: O2_PIPELINE, else LLVM's
 * default<O{opt_level}>).  false after printing an error. */
bool codegen_optimize(LLVMModuleRef mod, LLVMTargetMachineRef tm, int opt_level);

#endif
