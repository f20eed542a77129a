/* fuzz.h — what the fuzz targets of tests/fuzz/ share.
 *
 * Each target defines LLVMFuzzerTestOneInput (libFuzzer's entry point);
 * tests/fuzz/build.sh links it with libFuzzer, tests/meson.build with
 * replay.c, which calls it on every file of the corpus and of crashers/. */
#ifndef GRADC_FUZZ_H
#define GRADC_FUZZ_H

#include "gradc.h"

#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The compiler prints a diagnostic for every bad input (to the C stream
 * stderr): point that stream at /dev/null once (a fuzzer runs thousands of
 * inputs a second) and return the original one for the target's own
 * reports.  File descriptor 2 stays as it is, so libFuzzer's own output
 * (its FILE * was taken at start-up) and sanitizer reports still show.
 * GRADC_FUZZ_VERBOSE=1 keeps the diagnostics. */
static inline FILE *fuzz_quiet_stderr(void)
{
    static FILE *report;
    if (report)
        return report;
    report = stderr;
    const char *v = getenv("GRADC_FUZZ_VERBOSE");
    FILE *null = v && *v == '1' ? NULL : fopen("/dev/null", "w");
    if (null)
        stderr = null;
    return report;
}

/* GRADC_FUZZ_LAST=FILE: each input is written to FILE before it runs.  A
 * crash that kills the process before libFuzzer can save the input (a
 * longjmp to a dead frame leaves no stack for the sanitizer's SIGSEGV
 * handler: exit 139 and not a word) still leaves its input there. */
static inline void fuzz_save_last(const uint8_t *data, size_t size)
{
    static int fd = -2;
    if (fd == -2) {
        const char *path = getenv("GRADC_FUZZ_LAST");
        fd = path && *path ? open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
    }
    if (fd < 0)
        return;
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
}

/* The input as a NUL-terminated string (a NUL inside ends it, as a source
 * file read by the compiler would not; the front end sees what it would). */
static inline char *fuzz_cstring(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

/* Parse, check and (want_grad) differentiate a program text; NULL when the
 * program is rejected.  Everything lives in a. */
static inline Module *fuzz_front(Arena *a, const char *text, int64_t checkpoint, bool want_grad)
{
    Source *src = source_from_string(a, "fuzz.expr", text);
    Ast *ast = parse_source(a, src);
    Module *m = ast ? check_program(a, ast) : NULL;
    if (m) {
        m->checkpoint = checkpoint;
        if (want_grad)
            diff_reverse(m);
    }
    return m;
}

#endif
