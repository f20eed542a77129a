/* test_op_code.c — GRADC_OPS's code column against codegen.c: for a sum of
 * each elementwise op (y = sum(op(x)), its operands vectors), the loop's
 * function calls a function (not an LLVM intrinsic) at -O0 exactly when
 * one of its ops has code "call" (node_calls: x.^e only for an exponent
 * that is not a small literal integer).  The plan keeps calls out of row
 * passes by that column, so a row that says inline for an op whose code
 * calls would put a call there.  Every elementwise op must be in some
 * program here: a new one fails until it is. */
#include "codegen.h"

#include <ctype.h>
#include <string.h>

#include "../check.h"

static Arena *A;
static bool seen[OP_COUNT];

/* What the generated programs cannot say as NAME(x), NAME(x, z), x OP z
 * or -x / not x: a literal argument, three arguments, a literal power. */
static const char *const extra[] = {
    "polygamma(1, x)", "clamp(x, 0.25, 0.5)", "where(x > z, x, z)", "x .^ 2", "x .^ -3", "x .^ 0.5",
};

static bool is_word(const char *s) { return isalpha((unsigned char)s[0]); }
static bool elementwise(Op op) { return op_info[op].kind == OK_U || op_info[op].kind == OK_B; }

static bool is_condition(Op op)
{
    static const Op ops[] = {OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE, OP_AND, OP_OR, OP_NOT};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
        if (ops[i] == op)
            return true;
    return false;
}

/* Does a function of mod named gradc.sum.* call anything but an intrinsic?
 * *sums: how many such functions there are. */
static bool sum_calls(LLVMModuleRef mod, int *sums)
{
    bool any = false;
    *sums = 0;
    for (LLVMValueRef f = LLVMGetFirstFunction(mod); f; f = LLVMGetNextFunction(f)) {
        size_t len;
        if (strncmp(LLVMGetValueName2(f, &len), "gradc.sum.", 10) != 0)
            continue;
        ++*sums;
        for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(f); bb; bb = LLVMGetNextBasicBlock(bb))
            for (LLVMValueRef in = LLVMGetFirstInstruction(bb); in; in = LLVMGetNextInstruction(in)) {
                LLVMValueRef fn = LLVMIsACallInst(in) ? LLVMGetCalledValue(in) : NULL;
                if (fn && strncmp(LLVMGetValueName2(fn, &len), "llvm.", 5) != 0)
                    any = true;
            }
    }
    return any;
}

static void check_sum(const char *expr)
{
    char *text = arena_printf(A, "input x[n]\ninput z[n]\ny = sum(%s)\n", expr);
    Source *src = source_from_string(A, "test.expr", text);
    Ast *ast = parse_source(A, src);
    Module *m = ast ? check_program(A, ast) : NULL;
    if (!m) {
        fprintf(stderr, "%s: does not compile\n", expr);
        CHECK(false);
        return;
    }
    bool want = false;    /* y is the program's only value: every node is the sum's */
    for (int i = 0; i < m->ir->nodes.len; i++) {
        const Node *n = m->ir->nodes.data[i];
        if (elementwise(n->op)) {
            seen[n->op] = true;
            want |= node_calls(n);
        }
    }
    LLVMContextRef ctx = LLVMContextCreate();
    CodegenOptions co = {.name = "t", .opt_level = 0};
    CgInfo info = {0};
    LLVMModuleRef mod = codegen_module(m, &co, ctx, false, &info);
    CHECK(mod != NULL);
    if (mod) {
        int sums;
        bool got = sum_calls(mod, &sums);
        if (sums != 1 || got != want)
            fprintf(stderr, "sum(%s): %d sum functions, %s a call, the code column says %s\n", expr, sums,
                    got ? "with" : "without", want ? "call" : "inline");
        CHECK(sums == 1 && got == want);
        LLVMDisposeModule(mod);
    }
    LLVMContextDispose(ctx);
}

/* How a program says op on vectors x and z, or NULL when extra[] says it
 * (a literal or a third argument) or nothing can (DIVSAFE). */
static const char *spelling(Op op)
{
    const OpInfo *o = &op_info[op];
    if (op == OP_POLYGAMMA || op == OP_PICK || op == OP_CLAMPLO || op == OP_CLAMPHI || op == OP_DIVSAFE)
        return NULL;
    const char *e;
    if (op == OP_NOT)    /* operators spelt as words, of conditions */
        e = "not (x > z)";
    else if (op == OP_AND || op == OP_OR)
        e = arena_printf(A, "x > 0 %s z > 0", o->text);
    else if (o->kind == OK_U)
        e = arena_printf(A, is_word(o->text) ? "%s(x)" : "%sx", o->text);
    else
        e = arena_printf(A, is_word(o->text) ? "%s(x, z)" : "x %s z", o->text);
    return is_condition(op) ? arena_printf(A, "where(%s, x, z)", e) : e;   /* a value only there */
}

int main(void)
{
    A = arena_new();
    for (int op = 0; op < OP_COUNT; op++)
        if (elementwise((Op)op) && spelling((Op)op))
            check_sum(spelling((Op)op));
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++)
        check_sum(extra[i]);
    seen[OP_DIVSAFE] = true;    /* made only by norm's adjoint, of scalars: never a loop's entry */
    for (int op = 0; op < OP_COUNT; op++)
        if (elementwise((Op)op) && !seen[op]) {
            fprintf(stderr, "%s: in no program of test_op_code.c\n", op_info[op].name);
            CHECK(false);
        }
    arena_free(A);
    return check_report("test_op_code");
}
