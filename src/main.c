/* main.c — the command line: a table of commands, each a short list of
 * pipeline stages.
 *
 *   read source → parse_source → check_program → diff_reverse → the command's
 *   back end (eval_func / jit_eval, print_derivatives, fdcheck_run,
 *   emit_object, plot_svg)
 *
 * Every error exits with status 1 (usage errors included). */
#include "gradc.h"
#include "gradc/runtime.h"

#include <cblas.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* `gradc eval` runs the JIT (it agrees with the interpreter on every
 * conformance case); --interp selects the reference interpreter.  `gradc
 * check` keeps the interpreter unless --jit: jit_eval compiles per call. */
static const bool EVAL_USES_JIT = true;

/* ---- options ------------------------------------------------------------ */

typedef struct Options {
    const char *file;
    const char *inputs, *cotangent;           /* eval */
    bool no_grad, interp, jit;
    bool latex;                               /* derive */
    const char *dims;                         /* check */
    const char *seed, *tol;
    const char *out, *header, *name, *target; /* compile, plot */
    bool emit_llvm, dump_plan;
    int opt_level;                            /* compile, eval; -1: not given */
    const char *max_iter;
    const char *checkpoint;                   /* every command that differentiates */
    const char *range, *tangent;              /* plot */
    const char *max_input;                    /* every command: the read caps */
    const char *wrt;                          /* compile, eval, derive, check, plot */
    bool shared, describe;                    /* compile */
    bool hessian;                             /* derive, eval, check, compile */
} Options;

/* The commands an option belongs to, as bits. */
enum { C_EVAL = 1, C_DERIVE = 2, C_CHECK = 4, C_COMPILE = 8, C_PLOT = 16, C_PARSE = 32,
       C_ALL = 63 };

typedef enum { O_STR, O_FLAG, O_LEVEL } OptKind;

typedef struct OptSpec {
    const char *name;
    OptKind kind;
    size_t field;         /* offset in Options */
    int commands;
    int level;            /* O_LEVEL: the -O level it sets */
    const char *arg;      /* O_STR: what the value is, for --help */
    const char *help;     /* one line for `gradc CMD --help` (docs/gradc.1.md says more) */
} OptSpec;

#define F(f) offsetof(Options, f)
static const OptSpec opt_specs[] = {
    {"--inputs",    O_STR,   F(inputs),    C_EVAL | C_CHECK | C_PLOT, 0, "FILE.json",
     "the inputs (eval: required; check: instead of random ones; plot: the other inputs)"},
    {"--cotangent", O_STR,   F(cotangent), C_EVAL, 0, "FILE.json",
     "cotangent of the output (default: all ones; a scalar one scales the gradient)"},
    {"--no-grad",   O_FLAG,  F(no_grad),   C_EVAL, 0, NULL, "the value only"},
    {"--interp",    O_FLAG,  F(interp),    C_EVAL, 0, NULL, "run the reference interpreter"},
    {"--jit",       O_FLAG,  F(jit),       C_EVAL | C_CHECK, 0, NULL,
     "run LLVM's JIT (eval's default; check: instead of the interpreter)"},
    {"--max-iter",  O_STR,   F(max_iter),  C_EVAL | C_COMPILE, 0, "N",
     "a while loop's iteration limit (default 1000000)"},
    {"--checkpoint", O_STR,  F(checkpoint), C_EVAL | C_COMPILE | C_DERIVE | C_CHECK, 0, "K",
     "reverse through loops storing every K-th state"},
    {"--wrt",       O_STR,   F(wrt),       C_EVAL | C_COMPILE | C_DERIVE | C_CHECK | C_PLOT, 0,
     "A,B", "differentiate with respect to these inputs, in this order (overrides wrt)"},
    {"--latex",     O_FLAG,  F(latex),     C_DERIVE, 0, NULL, "print LaTeX"},
    {"--dims",      O_STR,   F(dims),      C_CHECK, 0, "n=5,m=3",
     "sizes of dimension symbols (default 3)"},
    {"--seed",      O_STR,   F(seed),      C_CHECK, 0, "S", "random seed (default 1)"},
    {"--tol",       O_STR,   F(tol),       C_CHECK, 0, "T", "largest relative error (default 1e-6)"},
    {"-o",          O_STR,   F(out),       C_COMPILE | C_PLOT, 0, "FILE",
     "output file (compile: STEM.o, STEM.ll or libSTEM.so)"},
    {"--header",    O_STR,   F(header),    C_COMPILE, 0, "FILE.h", "also write the C header"},
    {"--emit-llvm", O_FLAG,  F(emit_llvm), C_COMPILE, 0, NULL, "write textual LLVM IR"},
    {"--shared",    O_FLAG,  F(shared),    C_COMPILE, 0, NULL,
     "link a shared library against libgradc (runs cc)"},
    {"--describe",  O_FLAG,  F(describe),  C_COMPILE, 0, NULL,
     "print the ABI as JSON on standard output"},
    {"--dump-plan", O_FLAG,  F(dump_plan), C_COMPILE, 0, NULL,
     "print the code generator's plan; write nothing"},
    {"--name",      O_STR,   F(name),      C_COMPILE, 0, "NAME",
     "name of the functions (default: the file's stem)"},
    {"--target",    O_STR,   F(target),    C_COMPILE, 0, "TRIPLE",
     "target triple (default: the host)"},
    {"-O0",         O_LEVEL, F(opt_level), C_COMPILE | C_EVAL, 0, NULL, "no optimisation (eval's default)"},
    {"-O1",         O_LEVEL, F(opt_level), C_COMPILE | C_EVAL, 1, NULL, "optimisation level 1"},
    {"-O2",         O_LEVEL, F(opt_level), C_COMPILE | C_EVAL, 2, NULL,
     "optimisation level 2 (compile's default)"},
    {"-O3",         O_LEVEL, F(opt_level), C_COMPILE | C_EVAL, 3, NULL, "optimisation level 3"},
    {"--range",     O_STR,   F(range),     C_PLOT, 0, "LO:HI", "the x range (default -5:5)"},
    {"--tangent",   O_STR,   F(tangent),   C_PLOT, 0, "X0", "also draw the tangent line at X0"},
    {"--hessian",   O_FLAG,  F(hessian),   C_DERIVE | C_EVAL | C_CHECK | C_COMPILE, 0, NULL,
     "second derivatives: derive prints them, eval prints H, check compares it, compile adds "
     "NAME_hvp, NAME_hessian"},
    {"--max-input", O_STR,   F(max_input), C_ALL, 0, "SIZE",
     "largest program or JSON file read (default 64M, JSON 1G; K, M, G)"},
};
#undef F

typedef struct Command {
    const char *name;
    int bit;
    int (*run)(Arena *a, const Options *o);
    const char *usage;
    const char *about;    /* what it does, for `gradc CMD --help` */
} Command;

static int cmd_eval(Arena *a, const Options *o);
static int cmd_derive(Arena *a, const Options *o);
static int cmd_check(Arena *a, const Options *o);
static int cmd_compile(Arena *a, const Options *o);
static int cmd_plot(Arena *a, const Options *o);
static int cmd_parse(Arena *a, const Options *o);

/* The usage lines are the synopsis of docs/gradc.1.md, docs/language.md and
 * README.md (tests/docs_options.py compares them, and their options with
 * opt_specs); print_usage indents the lines after the first under the
 * first option. */
static const Command commands[] = {
    {"compile", C_COMPILE, cmd_compile,
     "FILE.expr [-o FILE] [--header FILE.h] [--emit-llvm | --shared] [--describe]\n"
     "[-O0|-O1|-O2|-O3] [--name NAME] [--target TRIPLE] [--wrt A,B]\n"
     "[--max-iter N] [--checkpoint K] [--hessian] [--dump-plan]\n"
     "[--max-input SIZE]",
     "write an object file (or a shared library) with NAME and NAME_grad"},
    {"eval", C_EVAL, cmd_eval,
     "FILE.expr --inputs FILE.json [--cotangent FILE.json] [--no-grad | --hessian]\n"
     "[--interp | --jit] [-O0|-O1|-O2|-O3] [--wrt A,B] [--max-iter N]\n"
     "[--checkpoint K] [--max-input SIZE]",
     "run the program on JSON inputs; print its value and gradient as JSON"},
    {"derive", C_DERIVE, cmd_derive,
     "FILE.expr [--latex] [--hessian] [--wrt A,B] [--checkpoint K]\n"
     "[--max-input SIZE]",
     "print each gradient as an expression"},
    {"check", C_CHECK, cmd_check,
     "FILE.expr [--dims n=5,m=3 | --inputs FILE.json] [--seed S] [--tol T] [--jit]\n"
     "[--wrt A,B] [--checkpoint K] [--hessian] [--max-input SIZE]",
     "compare the gradient with central finite differences"},
    {"plot", C_PLOT, cmd_plot,
     "FILE.expr [--range LO:HI] [--inputs FILE.json] [--tangent X0] [--wrt A]\n"
     "-o FILE.svg [--max-input SIZE]",
     "draw the output and its derivative as SVG"},
    {"parse", C_PARSE, cmd_parse, NULL, NULL},    /* debugging: the AST as S-expressions */
};

/* "PREFIX gradc NAME USAGE", continuation lines aligned after "FILE.expr ". */
static void print_usage(FILE *out, const char *prefix, const Command *c, int name_width)
{
    int col = fprintf(out, "%sgradc %-*s ", prefix, name_width, c->name) + (int)strlen("FILE.expr ");
    for (const char *p = c->usage ? c->usage : "FILE.expr";;) {
        const char *nl = strchr(p, '\n');
        fprintf(out, "%.*s\n", nl ? (int)(nl - p) : (int)strlen(p), p);
        if (!nl)
            break;
        fprintf(out, "%*s", col, "");
        p = nl + 1;
    }
}

static void print_help(FILE *out)
{
    fputs("usage:\n", out);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].usage)
            print_usage(out, "  ", &commands[i], 7);
    fputs("  gradc --help | help\n"
          "  gradc CMD --help\n"
          "  gradc --version\n"
          "\n"
          "compile  write an object file with NAME and NAME_grad (default -o: the\n"
          "         file's stem + .o; NAME: the stem as a C identifier; -O2);\n"
          "         --shared: a shared library libSTEM.so linked against libgradc\n"
          "eval     run the program on JSON inputs; print its value and gradient as JSON\n"
          "         (--interp: the reference interpreter, --jit: LLVM's JIT)\n"
          "derive   print each gradient as an expression (--latex: as LaTeX;\n"
          "         --hessian: the second derivatives, d2y/dx2 and d2y/dxdz)\n"
          "check    compare the gradient with central finite differences (at random\n"
          "         inputs, or at --inputs FILE's)\n"
          "plot     draw the output and its derivative as SVG (default range -5:5; the\n"
          "         other inputs from --inputs FILE, else 1; --tangent X0: the tangent\n"
          "         line at X0)\n"
          "\n"
          "--wrt A,B: differentiate with respect to these inputs, in this order,\n"
          "         instead of the file's wrt line (the ABI follows this order)\n"
          "--checkpoint K: reverse mode through a loop stores every K-th iteration's\n"
          "         state and recomputes the rest (memory ~ T/K + K states, not T)\n"
          "--hessian (derive, eval, check, compile; a scalar output): second derivatives\n"
          "         by forward mode over the gradient program; eval adds \"hessian\": H over\n"
          "         the wrt inputs, check compares H with differences of the gradient,\n"
          "         compile adds NAME_hvp and NAME_hessian\n"
          "--max-input SIZE (every command): the largest program or JSON file read\n"
          "         (default 64M for a program, 1G for JSON; suffixes K, M, G)\n"
          "\n"
          "Options also take the form --option=VALUE.  Errors go to standard error as\n"
          "FILE:LINE:COL: error: MESSAGE; on any error, usage errors included, the\n"
          "exit status is 1.  The reference: docs/language.md (installed in\n"
          "share/doc/gradc), man gradc.\n", out);
}

/* `gradc CMD --help`: the usage line and every option of opt_specs that
 * belongs to the command. */
static void print_command_help(FILE *out, const Command *c)
{
    print_usage(out, "usage: ", c, 0);
    fprintf(out, "\n%s\n\noptions:\n", c->about ? c->about : "print the AST");
    for (size_t k = 0; k < sizeof opt_specs / sizeof opt_specs[0]; k++) {
        const OptSpec *s = &opt_specs[k];
        if (!(s->commands & c->bit))
            continue;
        const char *arg = s->arg ? s->arg : "";
        fprintf(out, "  %s%s%-*s %s\n", s->name, *arg ? " " : "",
                (int)(20 - strlen(s->name) - (*arg ? 1 : 0)), arg, s->help ? s->help : "");
    }
}

static const Command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* Fills o from argv (after the command name); false after a message. */
static bool parse_options(const Command *c, int argc, char **argv, Options *o)
{
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-' || arg[1] == '\0') {
            if (o->file) {
                diag_plain("%s: more than one input file ('%s' and '%s')", c->name, o->file, arg);
                return false;
            }
            o->file = arg;
            continue;
        }
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const OptSpec *s = NULL;
        for (size_t k = 0; k < sizeof opt_specs / sizeof opt_specs[0]; k++)
            if (strlen(opt_specs[k].name) == len && strncmp(opt_specs[k].name, arg, len) == 0)
                s = &opt_specs[k];
        if (!s || !(s->commands & c->bit)) {
            diag_plain("%s: unknown option '%.*s' (see gradc %s --help)", c->name, (int)len, arg, c->name);
            return false;
        }
        char *field = (char *)o + s->field;
        if (s->kind != O_STR) {
            if (eq) {
                diag_plain("%s: option '%s' takes no value", c->name, s->name);
                return false;
            }
            if (s->kind == O_FLAG)
                *(bool *)field = true;
            else
                *(int *)field = s->level;
            continue;
        }
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!val) {
            diag_plain("%s: option '%s' needs a value", c->name, s->name);
            return false;
        }
        *(const char **)field = val;
    }
    if (!o->file) {
        diag_plain("%s: no input file (see gradc %s --help)", c->name, c->name);
        return false;
    }
    return true;
}

static bool parse_int64(const char *opt, const char *s, int64_t lo, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno == ERANGE || v < lo) {
        diag_plain("%s: expected an integer >= %lld, not '%s'", opt, (long long)lo, s);
        return false;
    }
    *out = v;
    return true;
}

static bool parse_double(const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v)) {
        diag_plain("%s: expected a number, not '%s'", opt, s);
        return false;
    }
    *out = v;
    return true;
}

/* --max-input SIZE: bytes, or with a suffix K, M or G (binary); sets the
 * cap on every program and JSON file the command reads. */
static bool max_input_option(const Options *o)
{
    if (!o->max_input)
        return true;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(o->max_input, &end, 10);
    int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
    if (end == o->max_input || o->max_input[0] == '-' || errno == ERANGE ||
        (shift ? end[1] != '\0' : *end != '\0') || v == 0 || v > (SIZE_MAX / 2) >> shift) {
        diag_plain("--max-input: expected a size in bytes such as 4096, 64M or 2G, not '%s'",
                   o->max_input);
        return false;
    }
    read_cap_program = read_cap_json = (size_t)v << shift;
    return true;
}

static bool max_iter_option(const Options *o, int64_t *out)
{
    *out = GRADC_DEFAULT_MAX_ITER;
    return !o->max_iter || parse_int64("--max-iter", o->max_iter, 1, out);
}

/* ---- the front end, shared by every command ----------------------------- */

/* --wrt A,B: the inputs to differentiate, in this order, instead of the
 * file's wrt line (which was still checked).  The ABI follows m->wrt. */
static bool override_wrt(Arena *a, Module *m, const char *list)
{
    int *wrt = arena_alloc(a, sizeof(int) * (size_t)(m->ninputs + 1)), n = 0;
    for (const char *p = list;; p++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *name = arena_strndup(a, p, len);
        int k = 0;
        while (k < m->ninputs && strcmp(m->inputs[k].name, name) != 0)
            k++;
        if (len == 0) {
            diag_plain("--wrt: an empty name in '%s'", list);
            return false;
        }
        if (k == m->ninputs) {
            const char *names = "";
            for (int i = 0; i < m->ninputs; i++)
                names = arena_printf(a, "%s%s%s", names, i ? ", " : "", m->inputs[i].name);
            diag_plain("--wrt: %s is not an input of %s (its inputs: %s)", name, m->src->path, names);
            return false;
        }
        for (int j = 0; j < n; j++)
            if (wrt[j] == k) {
                diag_plain("--wrt: %s is listed twice", name);
                return false;
            }
        wrt[n++] = k;
        if (!end)
            break;
        p = end;
    }
    m->wrt = wrt;
    m->nwrt = n;
    return true;
}

/* Source → AST → checked module, with the gradient program when asked. */
static Module *front(Arena *a, const Options *o, bool want_grad)
{
    int64_t checkpoint = 0;
    if (o->checkpoint && !parse_int64("--checkpoint", o->checkpoint, 1, &checkpoint))
        return NULL;
    const char *path = o->file;
    Source *src = source_read(a, path);
    if (!src)
        return NULL;
    Ast *ast = parse_source(a, src);
    if (!ast)
        return NULL;
    Module *m = check_program(a, ast);
    if (!m)
        return NULL;
    m->checkpoint = checkpoint;
    m->keep_detach = o->hessian;   /* the adjoints are differentiated again */
    if (o->wrt && !override_wrt(a, m, o->wrt))
        return NULL;
    if (want_grad)
        diff_reverse(m);
    return m;
}

/* The stem of a path: "dir/quad.expr" → "quad". */
static const char *file_stem(Arena *a, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    return arena_strndup(a, base, dot && dot != base ? (size_t)(dot - base) : strlen(base));
}

/* "my-model.v2" → "my_model_v2"; "2d" → "_2d". */
static const char *c_identifier(Arena *a, const char *s)
{
    char *id = arena_printf(a, "%s%s", (*s >= '0' && *s <= '9') || !*s ? "_" : "", s);
    for (char *p = id; *p; p++)
        if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9')))
            *p = '_';
    return id;
}

/* ---- eval ---------------------------------------------------------------- */

/* A buffer for a value of shape s under the bound dims; NULL if too big. */
static double *value_buffer(Arena *a, Shape s, const int64_t *dims)
{
    int64_t r = shape_rows(s, dims), c = shape_cols(s, dims);
    if (r < 0 || c < 0 || (r > 0 && c > INT64_MAX / 8 / r)) {
        diag_plain("a value of %lld x %lld entries is too large", (long long)r, (long long)c);
        return NULL;
    }
    int64_t n = r * c;
    return arena_alloc(a, (size_t)(n > 0 ? n : 1) * sizeof(double));
}

static bool report_status(const Module *m, int status, Loc where, int64_t max_iter)
{
    if (status == GRADC_OK)
        return true;
    if (status < 0)
        return false; /* the JIT's error, already reported (jit_eval) */
    if (status == GRADC_EMAXITER)
        diag_error(m->src, where, "while loop did not finish within %lld iterations",
                   (long long)max_iter);
    else if (status == GRADC_EINDEX && where.line)
        diag_error(m->src, where, "index out of range");
    else
        diag_plain("%s", gradc_strerror(status));
    return false;
}

/* spec §8: a cotangent scales a scalar output's gradient (reverse mode
 * seeds a scalar output with 1, and the gradient is linear in the seed);
 * §9: and its Hessian (H: n×n, or NULL). */
static void scale_by_cotangent(const Module *m, const Bindings *b, double **grads, double *H,
                               int64_t n)
{
    if (!b->cotangent || !shape_is_scalar(m->fwd.value->shape))
        return;
    for (int i = 0; grads && i < m->nwrt; i++) {
        Shape s = m->inputs[m->wrt[i]].shape;
        for (int64_t k = 0; k < shape_rows(s, b->dims) * shape_cols(s, b->dims); k++)
            grads[i][k] *= b->cotangent[0];
    }
    for (int64_t k = 0; H && k < n * n; k++)
        H[k] *= b->cotangent[0];
}

/* eval --hessian: the value, the gradient and the Hessian, by the JIT or
 * the interpreter: the Hessian from its closed form when every block has
 * one (hessian.c; the value and gradient then as eval's), else from N
 * Hessian-vector products (tangent.c). */
static int eval_hessian(Arena *a, Module *m, Bindings *b, double *value, double **grads,
                        bool use_jit)
{
    Module *hc = hess_closed_module(m), *h = hc ? NULL : tangent_module(m);
    if (!hc && !h)
        return 1;
    int64_t n = hessian_size(m, b->dims);
    if (n > 0 && n > INT64_MAX / 8 / n) {
        diag_plain("a Hessian of %lld x %lld entries is too large", (long long)n, (long long)n);
        return 1;
    }
    double *H = arena_alloc(a, sizeof(double) * (size_t)(n > 0 ? n * n : 1));
    Jit *j = use_jit ? jit_open(hc ? hc : h, b->max_iter, b->jit_opt) : NULL;
    if (use_jit && !j)
        return 1;
    Loc where = {0, 0};
    int status;
    if (hc) {
        status = use_jit ? jit_eval(m, true, b, value, grads, &where)
                         : eval_func(m, &m->grad, b, value, grads, &where);
        if (!status)
            status = hessian_closed_eval(hc, j, b, H, &where);
    } else {
        status = hessian_eval(h, j, b, value, grads, H, &where);
    }
    jit_close(j);
    if (!report_status(m, status, where, b->max_iter))
        return 1;
    scale_by_cotangent(m, b, grads, H, n);
    json_print_result_hessian(stdout, m, b, value, grads, H, n);
    return 0;
}

static int cmd_eval(Arena *a, const Options *o)
{
    bool want_grad = !o->no_grad;
    bool use_jit = o->jit || (EVAL_USES_JIT && !o->interp);
    Bindings b = {0};
    if (!o->inputs) {
        diag_plain("eval: --inputs FILE.json is required");
        return 1;
    }
    if (o->jit && o->interp) {
        diag_plain("eval: --jit and --interp exclude each other");
        return 1;
    }
    if (o->hessian && o->no_grad) {
        diag_plain("eval: --no-grad and --hessian exclude each other");
        return 1;
    }
    if (o->interp && o->opt_level >= 0) {
        diag_plain("eval: -O%d is the JIT's optimisation level; --interp compiles nothing", o->opt_level);
        return 1;
    }
    b.jit_opt = o->opt_level < 0 ? 0 : o->opt_level;
    if (!max_iter_option(o, &b.max_iter))
        return 1;
    Module *m = front(a, o, want_grad);
    if (!m || !json_read_inputs(m, o->inputs, &b, a))
        return 1;
    if (o->cotangent && !json_read_cotangent(m, o->cotangent, &b, a))
        return 1;

    double *value = value_buffer(a, m->fwd.value->shape, b.dims);
    double **grads = arena_alloc(a, sizeof *grads * (size_t)(m->nwrt + 1));
    if (!value)
        return 1;
    b.aux = arena_alloc(a, sizeof *b.aux * (size_t)(m->naux + 1));
    for (int i = 0; i < m->naux; i++)
        if (!(b.aux[i] = value_buffer(a, m->fwd.aux[i]->shape, b.dims)))
            return 1;
    for (int i = 0; want_grad && i < m->nwrt; i++)
        if (!(grads[i] = value_buffer(a, m->inputs[m->wrt[i]].shape, b.dims)))
            return 1;

    if (o->hessian)
        return eval_hessian(a, m, &b, value, grads, use_jit);
    Loc where = {0, 0};
    int status = use_jit ? jit_eval(m, want_grad, &b, value, grads, &where)
                         : eval_func(m, want_grad ? &m->grad : &m->fwd, &b, value,
                                     want_grad ? grads : NULL, &where);
    if (!report_status(m, status, where, b.max_iter))
        return 1;
    scale_by_cotangent(m, &b, want_grad ? grads : NULL, NULL, 0);
    json_print_result(stdout, m, &b, value, want_grad ? grads : NULL);
    return 0;
}

/* ---- derive, check, compile, plot ----------------------------------------- */

/* derive --hessian: the closed forms; through control flow, the
 * Hessian-vector program; else why there is none (a comment, exit 0: the
 * program is fine; a non-scalar output is an error). */
static int derive_hessian(Module *m, PrintStyle style)
{
    const char *why = NULL, **block_why = NULL;
    Node **H = hess_closed_forms(m, &why, &block_why);
    if (H) {
        print_hessians(stdout, m, H, block_why, style);
        return 0;
    }
    if (!shape_is_scalar(m->fwd.value->shape)) {
        diag_error(m->src, (Loc){0, 0}, "derive --hessian needs a scalar output: %s", why);
        return 1;
    }
    if (m->has_control) {   /* the Hessian-vector program instead (spec §9) */
        Module *h = tangent_module(m);
        if (!h)
            return 1;
        print_hvp(stdout, h, style);
        return 0;
    }
    printf("%s no closed form for the Hessian: %s\n", style == PRINT_LATEX ? "%" : "#", why);
    return 0;
}

static int cmd_derive(Arena *a, const Options *o)
{
    Module *m = front(a, o, !o->hessian);
    if (!m)
        return 1;
    if (o->hessian)
        return derive_hessian(m, o->latex ? PRINT_LATEX : PRINT_EXPR);
    print_derivatives(stdout, m, o->latex ? PRINT_LATEX : PRINT_EXPR);
    return 0;
}

static int cmd_check(Arena *a, const Options *o)
{
    FdCheckOptions fo = {.dims = o->dims, .inputs = o->inputs, .seed = 1, .tol = 1e-6,
                         .use_jit = o->jit};
    int64_t seed;
    if (o->seed) {
        if (!parse_int64("--seed", o->seed, 0, &seed))
            return 1;
        fo.seed = (uint64_t)seed;
    }
    if (o->tol && !parse_double("--tol", o->tol, &fo.tol))
        return 1;
    if (!(fo.tol > 0)) {
        diag_plain("--tol: expected a positive number, not '%s'", o->tol);
        return 1;
    }
    Module *m = front(a, o, true);
    if (!m)
        return 1;
    if (o->hessian && !(fo.hess = hess_closed_module(m)) && !(fo.hvp = tangent_module(m)))
        return 1;
    return fdcheck_run(m, &fo) == 0 ? 0 : 1;
}

static int cmd_compile(Arena *a, const Options *o)
{
    CodegenOptions co = {.opt_level = o->opt_level < 0 ? 2 : o->opt_level, .triple = o->target};
    if (!max_iter_option(o, &co.max_iter))
        return 1;
    if (o->shared && (o->emit_llvm || o->target)) {
        diag_plain("compile: --shared links for this machine; it excludes %s",
                   o->emit_llvm ? "--emit-llvm" : "--target");
        return 1;
    }
    const char *stem = file_stem(a, o->file);
    co.name = o->name ? o->name : c_identifier(a, stem);
    const char *why = c_name_problem(a, co.name);
    if (why) {
        if (o->name)
            diag_plain("compile: --name '%s' %s; choose another name", co.name, why);
        else
            diag_plain("compile: the default function name '%s' (from %s) %s; "
                       "choose another with --name NAME", co.name, o->file, why);
        return 1;
    }
    const char *obj = o->out ? o->out
                    : o->shared ? arena_printf(a, "lib%s.so", co.name)
                    : arena_printf(a, "%s%s", stem, o->emit_llvm ? ".ll" : ".o");
    FileRole files[] = {{o->file, "the program", true}, {obj, "-o", false},
                        {o->header, "--header", false}};
    if (!files_distinct(a, "compile", files, 3))
        return 1;
    Module *m = front(a, o, true);
    if (!m)
        return 1;
    if (o->hessian && !(co.hvp = tangent_module(m)))
        return 1;
    if (o->hessian)
        co.hess = hess_closed_module(m);
    if (o->dump_plan) { /* the plans on stdout, nothing written */
        plan_dump(m, stdout);
        if (co.hvp) {
            printf("\n# %s_hvp\n", co.name);
            plan_dump_hvp(co.hvp, stdout);
        }
        if (co.hess) {   /* NAME_hessian's, from the closed form */
            printf("\n# %s_hessian\n", co.name);
            plan_dump_hessian(co.hess, m->nwrt, stdout);
        }
        return 0;
    }
    if (o->describe) {
        const char *json = emit_describe(m, &co);
        if (!json)
            return 1;
        fputs(json, stdout);
    }
    /* --describe alone prints the ABI only; -o or --shared still write */
    bool write_obj = !o->describe || o->out || o->shared;
    if (write_obj && (o->shared ? emit_shared(m, &co, obj) : emit_object(m, &co, obj, o->emit_llvm)) != 0)
        return 1;
    if (o->header && emit_header(m, &co, o->header) != 0)
        return 1;
    return 0;
}

static int cmd_plot(Arena *a, const Options *o)
{
    PlotOptions po = {.lo = -5, .hi = 5, .inputs = o->inputs, .tangent = o->tangent != NULL};
    if (!o->out) {
        diag_plain("plot: -o FILE.svg is required");
        return 1;
    }
    if (o->range) {
        /* "LO:HI"; LO may be negative, so split at the last ':'. */
        const char *colon = strrchr(o->range, ':');
        if (!colon) {
            diag_plain("--range: expected LO:HI, as in -5:5, not '%s'", o->range);
            return 1;
        }
        if (!parse_double("--range", arena_strndup(a, o->range, (size_t)(colon - o->range)), &po.lo)
            || !parse_double("--range", colon + 1, &po.hi))
            return 1;
        if (!(po.lo < po.hi)) {
            diag_plain("--range: LO must be less than HI in '%s'", o->range);
            return 1;
        }
    }
    if (o->tangent && !parse_double("--tangent", o->tangent, &po.x0))
        return 1;
    FileRole files[] = {{o->file, "the program", true}, {o->inputs, "the --inputs file", true},
                        {o->out, "-o", false}};
    if (!files_distinct(a, "plot", files, 3))
        return 1;
    Module *m = front(a, o, true);
    if (!m)
        return 1;
    return plot_svg(m, &po, o->out) == 0 ? 0 : 1;
}

/* ---- parse (debugging aid): the AST as S-expressions -------------------- */

static void dump_expr(const Expr *e)
{
    switch (e->kind) {
    case EX_NUM:       printf("%.17g", e->num); return;
    case EX_NAME:      printf("%s", e->name); return;
    case EX_NEG:       printf("(neg "); break;
    case EX_NOT:       printf("(not "); break;
    case EX_TRANSPOSE: printf("(' "); break;
    case EX_BINARY:    printf("(%s ", binop_text[e->op]); break;
    case EX_COLON:     printf(":"); return;
    case EX_RANGE:     printf("(: "); break;
    case EX_HCAT:
    case EX_VCAT:
    case EX_INDEX:
    case EX_CALL:
        printf("(%s", e->kind == EX_HCAT ? "hcat" : e->kind == EX_VCAT ? "vcat" : e->name);
        for (int i = 0; i < e->nargs; i++) {
            putchar(' ');
            dump_expr(e->args[i]);
        }
        putchar(')');
        return;
    }
    dump_expr(e->lhs);
    if (e->kind == EX_BINARY || e->kind == EX_RANGE) {
        putchar(' ');
        dump_expr(e->rhs);
    }
    putchar(')');
}

static void dump_block(const AstBlock *b, int indent);

static void dump_stmt(const AstStmt *s, int indent)
{
    printf("%*s%d:%d ", indent, "", s->loc.line, s->loc.col);
    switch (s->kind) {
    case AST_INPUT:
        printf("(input %s", s->name);
        for (int i = 0; i < s->ndims; i++)
            s->dims[i].sym ? printf(" %s", s->dims[i].sym) : printf(" %lld", (long long)s->dims[i].lit);
        puts(")");
        break;
    case AST_ASSIGN:
        printf("(= %s ", s->name);
        dump_expr(s->value);
        puts(")");
        break;
    case AST_ERROR:       /* not reached: a tree with errors is not dumped */
        puts("(error)");
        break;
    case AST_OUTPUT:
        printf("(output");
        for (int i = 0; i < s->nnames; i++)
            printf(" %s", s->names[i]);
        puts(")");
        break;
    case AST_MASSIGN:
        printf("(= [");
        for (int i = 0; i < s->nnames; i++)
            printf("%s%s", i ? " " : "", s->names[i]);
        printf("] ");
        dump_expr(s->value);
        puts(")");
        break;
    case AST_FUNCTION:
        printf("(function %s [", s->name);
        for (int i = 0; i < s->nnames; i++)
            printf("%s%s", i ? " " : "", s->names[i]);
        printf("] (");
        for (int i = 0; i < s->nparams; i++)
            printf("%s%s", i ? " " : "", s->params[i].name);
        puts(")");
        dump_block(&s->body, indent + 2);
        printf("%*s)\n", indent, "");
        break;
    case AST_WRT:
        printf("(wrt");
        for (int i = 0; i < s->nnames; i++)
            printf(" %s", s->names[i]);
        puts(")");
        break;
    case AST_IF:
        printf("(if ");
        dump_expr(s->value);
        putchar('\n');
        dump_block(&s->then_block, indent + 2);
        if (s->has_else) {
            printf("%*selse\n", indent, "");
            dump_block(&s->else_block, indent + 2);
        }
        printf("%*s)\n", indent, "");
        break;
    case AST_WHILE:
    case AST_FOR:
        if (s->kind == AST_WHILE) {
            printf("(while ");
            dump_expr(s->value);
        } else {
            printf("(for %s ", s->name);
            dump_expr(s->for_lo);
            putchar(' ');
            dump_expr(s->for_hi);
        }
        putchar('\n');
        dump_block(&s->body, indent + 2);
        printf("%*s)\n", indent, "");
        break;
    }
}

static void dump_block(const AstBlock *b, int indent)
{
    for (int i = 0; i < b->n; i++)
        dump_stmt(b->stmts[i], indent);
}

static int cmd_parse(Arena *a, const Options *o)
{
    Source *src = source_read(a, o->file);
    Ast *ast = src ? parse_source(a, src) : NULL;
    if (!ast || ast->nerrors) {
        diag_release();
        return 1;
    }
    dump_block(&ast->top, 0);
    return 0;
}

/* ---- main ---------------------------------------------------------------- */

/* OpenBLAS starts its worker threads when it is loaded, and they spin
 * waiting for work gradc never gives them: compile -O2 of d2l_sum took
 * 28 ms of CPU instead of 16.  Unless the user set OPENBLAS_NUM_THREADS,
 * gradc's own BLAS calls (eval's products, on JSON-sized inputs) run on
 * one thread and the workers are stopped (blas_thread_shutdown_, what
 * OpenBLAS runs in a forked child; with one thread it never restarts
 * them).  Compiled code runs in the caller's process, unaffected. */
int blas_thread_shutdown_(void);

static void blas_one_thread(void)
{
    if (getenv("OPENBLAS_NUM_THREADS"))
        return;
    openblas_set_num_threads(1);
    blas_thread_shutdown_();
}

/* The checker and printer walk statements and expressions recursively; that
 * depth is bounded by PARSE_MAX_DEPTH (every walk over the DAG, whose depth
 * grows with the program, iterates instead).  At the deepest nesting the
 * parser allows, a sanitizer build's frames outgrow the usual 8 MiB main
 * stack, so a command runs on a thread whose stack is sized for that bound;
 * only the pages it touches are committed. */
enum { COMMAND_STACK = 256 << 20 };

typedef struct CommandRun {
    const Command *c;
    const Options *o;
    int status;
} CommandRun;

static void *command_thread(void *p)
{
    CommandRun *r = p;
    Arena *a = arena_new();
    r->status = r->c->run(a, r->o);
    arena_free(a);
    return NULL;
}

/* The command's thread allocates from malloc's main heap, grown by brk
 * 128 KiB past what is asked: a thread's own arena grows page by page,
 * one mprotect each (146 calls in an eval of mlp.expr, 9 now). */
static int run_on_big_stack(const Command *c, const Options *o)
{
    mallopt(M_ARENA_MAX, 1);
    CommandRun r = {c, o, 1};
    pthread_attr_t attr;
    pthread_t t;
    bool threaded = false;
    if (pthread_attr_init(&attr) == 0) {
        threaded = pthread_attr_setstacksize(&attr, COMMAND_STACK) == 0 &&
                   pthread_create(&t, &attr, command_thread, &r) == 0;
        pthread_attr_destroy(&attr);
    }
    if (threaded)
        pthread_join(t, NULL);
    else
        command_thread(&r);          /* no thread: run here, with the usual stack */
    fflush(stdout);
    return r.status;
}

int main(int argc, char **argv)
{
    blas_one_thread();
    if (argc < 2) {
        print_help(stderr);
        return 1;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        print_help(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0) {
        puts("gradc " GRADC_VERSION);
        return 0;
    }
    const Command *c = find_command(name);
    if (!c) {
        diag_plain("unknown command '%s' (see gradc --help)", name);
        return 1;
    }
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_command_help(stdout, c);
            return 0;
        }
    Options o = {.opt_level = -1};
    if (!parse_options(c, argc - 2, argv + 2, &o))
        return 1;
    if (!max_input_option(&o))
        return 1;
    return run_on_big_stack(c, &o);
}
