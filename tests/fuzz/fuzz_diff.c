/* fuzz_diff.c — libFuzzer target: the LLVM back end against the interpreter.
 *
 * The fuzzer's bytes are decoded into a small well-typed program (so nearly
 * every input is a valid program): one or two dimension symbols and their
 * sizes, two to four inputs (scalars, vectors, matrices), a handful of
 * statements (assignments, if/else, for, bounded while) whose expressions
 * are drawn from the language's operators and built-ins, then the input
 * values.  The program runs through eval_func (the reference interpreter)
 * and the JIT (jit_open/jit_run), with and without the gradient; the
 * statuses must agree, and the value and every gradient entry must agree as
 * tests/differential.py requires: |a - b| <= 1e-12 max(1, |a|, |b|), NaN
 * where the other has NaN, the same infinities.  A disagreement prints the
 * program, the inputs and the first differing entry, and aborts.
 * The generator (progen.h) keeps expressions well conditioned, so that a
 * rounding difference between the engines is not amplified past 1e-12.
 * Input entries are multiples of 1/32 in [-4, 4).
 *
 * GRADC_FUZZ_PRINT=1 prints each program before it runs (to see what a
 * corpus file decodes to: `replay FILE`). */
#include "fuzz.h"
#include "progen.h"
#include "gradc/runtime.h"

#include <math.h>
#include <stdarg.h>

/* ---- running and comparing ---------------------------------------------------- */

static FILE *report;

static int64_t entries(Shape s, const int64_t *dims)
{
    return shape_rows(s, dims) * shape_cols(s, dims);
}

/* As tests/differential.py's entry_differs: NaN matches NaN, an infinity
 * the same infinity, else relative 1e-12 of max(1, |a|, |b|). */
static bool differs(double a, double b)
{
    if (isnan(a) || isnan(b))
        return !(isnan(a) && isnan(b));
    if (isinf(a) || isinf(b))
        return a != b;
    return fabs(a - b) > 1e-12 * fmax(1, fmax(fabs(a), fabs(b)));
}

static void print_values(const char *what, const double *v, int64_t n)
{
    fprintf(report, "%s:", what);
    for (int64_t i = 0; i < n; i++)
        fprintf(report, " %.17g", v[i]);
    fprintf(report, "\n");
}

static void fail(const Gen *g, const Module *m, const Bindings *b, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));
static void fail(const Gen *g, const Module *m, const Bindings *b, const char *fmt, ...)
{
    fprintf(report, "fuzz-diff: interpreter and JIT disagree: ");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(report, fmt, ap);
    va_end(ap);
    fprintf(report, "\n--- program\n%s--- inputs (dims:", g->text);
    for (int d = 0; d < m->ndims; d++)
        fprintf(report, " %s=%lld", m->dims[d], (long long)b->dims[d]);
    fprintf(report, ")\n");
    for (int i = 0; i < m->ninputs; i++)
        print_values(m->inputs[i].name, b->inputs[i], entries(m->inputs[i].shape, b->dims));
    fflush(report);
    abort();
}

static void compare(const Gen *g, const Module *m, const Bindings *b, const char *what,
                    const double *vi, const double *vj, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        if (differs(vi[k], vj[k]))
            fail(g, m, b, "%s entry %lld: interp %.17g, jit %.17g", what, (long long)k, vi[k],
                 vj[k]);
}

/* Runs m's gradient (or forward) function in both engines and compares. */
static void run_both(const Gen *g, const Module *m, Jit *jit, const Bindings *b, bool want_grad,
                     Arena *a)
{
    int64_t nv = entries(m->fwd.value->shape, b->dims);
    double *vi = arena_alloc(a, sizeof(double) * (size_t)nv);
    double *vj = arena_alloc(a, sizeof(double) * (size_t)nv);
    double **gi = arena_alloc(a, sizeof(double *) * (size_t)(m->nwrt + 1));
    double **gj = arena_alloc(a, sizeof(double *) * (size_t)(m->nwrt + 1));
    for (int k = 0; k < m->nwrt; k++) {
        int64_t n = entries(m->inputs[m->wrt[k]].shape, b->dims);
        gi[k] = arena_alloc(a, sizeof(double) * (size_t)n);
        gj[k] = arena_alloc(a, sizeof(double) * (size_t)n);
    }
    Loc wi = {0, 0}, wj = {0, 0};
    int si = eval_func(m, want_grad ? &m->grad : &m->fwd, b, vi, want_grad ? gi : NULL, &wi);
    int sj = jit_run(jit, want_grad, b, vj, gj, &wj);
    const char *tag = want_grad ? "gradient run" : "forward run";
    if (si != sj)
        fail(g, m, b, "%s: status interp %d, jit %d", tag, si, sj);
    if (si == GRADC_EMAXITER && (wi.line != wj.line || wi.col != wj.col))
        fail(g, m, b, "%s: while limit at %d:%d (interp), %d:%d (jit)", tag, wi.line, wi.col,
             wj.line, wj.col);
    if (si != 0)
        return;
    compare(g, m, b, want_grad ? "value (gradient run)" : "value (forward run)", vi, vj, nv);
    for (int k = 0; want_grad && k < m->nwrt; k++)
        compare(g, m, b, m->inputs[m->wrt[k]].name, gi[k], gj[k],
                entries(m->inputs[m->wrt[k]].shape, b->dims));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static Gen g;
    report = fuzz_quiet_stderr();
    fuzz_save_last(data, size);
    /* every program compiled afresh, and no object per input left on disk */
    setenv("GRADC_NO_CACHE", "1", 0);
    Bytes in = {data, size, 0};
    memset(&g, 0, sizeof g);
    g.in = &in;
    program(&g);
    if (g.overflow)
        return 0;
    const char *p = getenv("GRADC_FUZZ_PRINT");
    if (p && *p == '1')
        fprintf(report, "--- program\n%s", g.text);

    Arena *a = arena_new();
    Module *m = fuzz_front(a, g.text, pick(&in, 4) == 0 ? 1 + pick(&in, 3) : 0, true);
    if (!m) {
        /* the generator should make only valid programs: say so when asked */
        if (p && *p == '1')
            fprintf(report, "(rejected by the front end)\n");
        arena_free(a);
        return 0;
    }
    /* the sizes the generator chose, in the module's order of symbols */
    Bindings b = {.max_iter = 1000};
    b.dims = arena_alloc(a, sizeof(int64_t) * (size_t)(m->ndims + 1));
    for (int d = 0; d < m->ndims; d++)
        b.dims[d] = g.dimval[m->dims[d][0] == 'n' ? D_N : D_M];
    const double **inputs = arena_alloc(a, sizeof *inputs * (size_t)(m->ninputs + 1));
    for (int i = 0; i < m->ninputs; i++) {
        int64_t n = entries(m->inputs[i].shape, b.dims);
        double *v = arena_alloc(a, sizeof(double) * (size_t)n);
        for (int64_t k = 0; k < n; k++)
            v[k] = ((double)take(&in) - 128) / 32;
        inputs[i] = v;
    }
    b.inputs = inputs;

    Jit *jit = jit_open(m, b.max_iter, 0);
    if (!jit)
        fail(&g, m, &b, "the JIT did not compile the program");
    run_both(&g, m, jit, &b, true, a);
    run_both(&g, m, jit, &b, false, a);
    jit_close(jit);
    arena_free(a);
    return 0;
}
