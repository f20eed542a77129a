/* fuzz_front.c — libFuzzer target: the front end on an in-memory program.
 *
 * source → parse → check → diff (reverse mode) → print (derive, as text and
 * as LaTeX): every stage before LLVM.  A rejected program is fine; a crash,
 * a sanitizer report, an exit (the simplifier's internal errors) or a hang
 * is a finding.  The input's length picks --checkpoint (0, 1, 2, 3), so that
 * the checkpointed reverse sweep is fuzzed too.
 *
 * Raw bytes seldom make a well-typed program with several inputs, so an
 * input that starts with PROGEN_MAGIC (a byte no source text starts with)
 * is decoded by fuzz_diff.c's program generator (progen.h) instead; the
 * generated text goes through the same stages (GRADC_FUZZ_PRINT=1 prints
 * it). */
#include "fuzz.h"
#include "progen.h"

/* Longer programs only slow the fuzzer down; nesting and statement-count
 * limits have their own tests. */
enum { MAX_SOURCE = 1 << 16 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    fuzz_quiet_stderr();
    fuzz_save_last(data, size);
    if (!devnull && !(devnull = fopen("/dev/null", "w")))
        abort();
    if (size > MAX_SOURCE)
        return 0;
    static Gen g;
    char *text = NULL;
    if (size > 0 && data[0] == PROGEN_MAGIC) {
        Bytes in = {data + 1, size - 1, 0};
        memset(&g, 0, sizeof g);
        g.in = &in;
        program(&g);
        if (g.overflow)
            return 0;
        text = fuzz_cstring((const uint8_t *)g.text, g.len);
        const char *p = getenv("GRADC_FUZZ_PRINT");
        if (p && *p == '1')
            fprintf(fuzz_quiet_stderr(), "--- program\n%s", g.text);
    } else {
        text = fuzz_cstring(data, size);
    }
    Arena *a = arena_new();
    Module *m = fuzz_front(a, text, (int64_t)(size % 4), true);
    if (m) {
        print_derivatives(devnull, m, PRINT_EXPR);
        print_derivatives(devnull, m, PRINT_LATEX);
    }
    arena_free(a);
    free(text);
    return 0;
}
