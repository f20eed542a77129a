/* fuzz_json.c — libFuzzer target: eval's JSON reader.
 *
 * One fixed program declares every form of input the reader knows (a
 * scalar, vectors and matrices over two symbols and a literal, an [n, 1]
 * column).  Each fuzzer input is a JSON file: read as the program's inputs
 * (and, once they bind, run through the interpreter and printed back, so
 * that a dimension bound from the file but not matching the data it copied
 * shows up as an out-of-bounds read), and read as the cotangent of the
 * program's [n, m] output and of its [n] output at fixed dimensions.
 *
 * The reader takes a path (json_read_inputs): the input is written to a
 * memfd and read as /proc/self/fd/N, so the reader is fuzzed as it is,
 * file reading and size limits included. */
#include "fuzz.h"

#include <sys/mman.h>

static const char program[] =
    "input s\n"
    "input x[n]\n"
    "input A[n, m]\n"
    "input B[2, m]\n"
    "input c[n, 1]\n"
    "input r[1, m]\n"
    "Y = s * A + x * r + c * (B' * ones(2))' + A .* exp(-A)\n"
    "output Y\n";

static const char program_vec[] =
    "input x[n]\n"
    "y = 2 * x\n";

static Arena *arena;
static Module *mod, *mod_vec;
static FILE *devnull;
static char path[64];
static int memfd = -1;

static void init(void)
{
    fuzz_quiet_stderr();
    arena = arena_new();
    mod = fuzz_front(arena, program, 0, true);
    mod_vec = fuzz_front(arena, program_vec, 0, true);
    devnull = fopen("/dev/null", "w");
    memfd = memfd_create("fuzz.json", 0);
    if (!mod || !mod_vec || !devnull || memfd < 0)
        abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
}

static void write_file(const uint8_t *data, size_t size)
{
    if (ftruncate(memfd, 0) != 0 || pwrite(memfd, data, size, 0) != (ssize_t)size)
        abort();
}

/* Reads the file as a cotangent of m's output at dims (all inputs bound). */
static void read_cotangent(Module *m, int64_t *dims, Arena *a)
{
    Bindings b = {.dims = dims};
    if (json_read_cotangent(m, path, &b, a) && !b.cotangent)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!mod)
        init();
    fuzz_save_last(data, size);
    write_file(data, size);
    Arena *a = arena_new();

    Bindings b = {.max_iter = GRADC_DEFAULT_MAX_ITER};
    if (json_read_inputs(mod, path, &b, a)) {
        int64_t n = b.dims[0], m = b.dims[1];
        /* the file gave every input: bounded by its own size */
        double *value = arena_alloc(a, sizeof(double) * (size_t)(n * m + 1));
        double *grads[6];
        for (int i = 0; i < mod->nwrt; i++) {
            Shape s = mod->inputs[mod->wrt[i]].shape;
            grads[i] = arena_alloc(a, sizeof(double) *
                                   (size_t)(shape_rows(s, b.dims) * shape_cols(s, b.dims) + 1));
        }
        Loc where;
        if (eval_func(mod, &mod->grad, &b, value, grads, &where) == 0)
            json_print_result(devnull, mod, &b, value, grads);
    }

    int64_t dims[2] = {3, 2};
    read_cotangent(mod, dims, a);
    read_cotangent(mod_vec, dims, a);
    arena_free(a);
    return 0;
}
