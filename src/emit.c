/* emit.c — `gradc compile`: the object file (or textual IR) and the C
 * header that declares the generated functions. */
#include "codegen.h"
#include "gradc/runtime.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int emit_object(const Module *m, const CodegenOptions *o, const char *obj_path, bool emit_llvm)
{
    LLVMTargetMachineRef tm = codegen_target_machine(o->triple, o->opt_level);
    if (!tm)
        return 1;
    LLVMContextRef ctx = LLVMContextCreate();
    CgInfo info;
    LLVMModuleRef mod = codegen_module(m, o, ctx, false, &info);
    int rc = 1;
    if (mod && codegen_optimize(mod, tm, o->opt_level)) {
        /* Emitted to memory, then written by stdio to a temporary file
         * renamed over obj_path: LLVM's own file writer aborts the process
         * on a write error and would leave a truncated file behind. */
        char *err = NULL, *text = NULL;
        LLVMMemoryBufferRef buf = NULL;
        if (emit_llvm)
            text = LLVMPrintModuleToString(mod);
        else if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMObjectFile, &err, &buf))
            diag_plain("cannot compile %s: %s", obj_path, err ? err : "unknown error");
        const char *tmp;
        FILE *f = text || buf ? out_open(m->arena, obj_path, &tmp) : NULL;
        if (f) {
            if (text)
                fputs(text, f);
            else
                fwrite(LLVMGetBufferStart(buf), 1, LLVMGetBufferSize(buf), f);
            rc = out_close(f, tmp, obj_path) ? 0 : 1;
        }
        LLVMDisposeMessage(text);
        if (buf)
            LLVMDisposeMemoryBuffer(buf);
        LLVMDisposeMessage(err);
    }
    if (mod)
        LLVMDisposeModule(mod);
    LLVMContextDispose(ctx);
    LLVMDisposeTargetMachine(tm);
    return rc;
}

/* ---- the header ---- */

/* Parameter names are the program's names, made distinct from each other
 * and from C and C++ keywords by appending '_'. */
typedef struct Names {
    Arena *a;
    const char **used;
    int n;
} Names;

static const char *param(Names *ns, const char *want)
{
    const char *s = want;
    for (;;) {
        bool clash = false;
        clash = c_keyword(s);
        for (int i = 0; i < ns->n && !clash; i++)
            clash = strcmp(ns->used[i], s) == 0;
        if (!clash)
            break;
        s = arena_printf(ns->a, "%s_", s);
    }
    ns->used[ns->n++] = s;
    return s;
}

static const char *shape_doc(const Module *m, Shape s)
{
    if (shape_is_scalar(s))
        return "scalar";
    if (dim_eq(s.cols, dim_lit(1)))
        return shape_str(m->arena, s, m->dims);
    return arena_printf(m->arena, "%s row-major", shape_str(m->arena, s, m->dims));
}

/* compile --hessian (spec §9): NAME_hvp and NAME_hessian, their work sizes,
 * and what their parameters are. */
typedef struct HeaderNames {
    const char **dn, **in, **gn, *on, *fl, *wk;   /* as NAME_grad's parameters */
} HeaderNames;

static void header_second_order(FILE *f, const Module *m, const CodegenOptions *o, Names *ns,
                                const HeaderNames *p)
{
    const char **dn = p->dn, **in = p->in, *on = p->on;
    Arena *a = m->arena;
    const char *name = o->name;
    const char **vn = arena_alloc(a, sizeof(char *) * (size_t)(m->nwrt + 1));
    const char **hn = arena_alloc(a, sizeof(char *) * (size_t)(m->nwrt + 1));
    ns->used = memcpy(arena_alloc(a, sizeof(char *) * (size_t)(ns->n + 2 * m->nwrt + 4)), ns->used,
                      sizeof(char *) * (size_t)ns->n);
    for (int i = 0; i < m->nwrt; i++) {
        vn[i] = param(ns, arena_printf(a, "v_%s", m->inputs[m->wrt[i]].name));
        hn[i] = param(ns, arena_printf(a, "hv_%s", m->inputs[m->wrt[i]].name));
    }
    const char *hs = param(ns, "H");
    fprintf(f, "\n/* Second order (gradc compile --hessian), scalar output only.\n");
    for (int i = 0; i < m->nwrt; i++)
        fprintf(f, " *   %-12s %s_hvp only: the direction for %s, %s (const double *)\n", vn[i], name,
                m->inputs[m->wrt[i]].name, shape_doc(m, m->inputs[m->wrt[i]].shape));
    for (int i = 0; i < m->nwrt; i++)
        fprintf(f, " *   %-12s %s_hvp only: H*v for %s, %s (may be NULL)\n", hn[i], name,
                m->inputs[m->wrt[i]].name, shape_doc(m, m->inputs[m->wrt[i]].shape));
    fprintf(f, " *   %-12s %s_hessian only: N x N row-major, N the total size of the wrt inputs,\n"
               " *                in wrt order, each row-major; exactly symmetric\n", hs, name);
    fprintf(f, " * %s_hvp's %s and gradients may be NULL; flags: 0 overwrites, GRADC_ACCUMULATE adds.\n"
               " * work: the function's own _work_size(dims) bytes, or NULL. */\n", name, on);
    for (int g = 0; g < 2; g++) {
        fprintf(f, "size_t %s_%s_work_size(", name, g ? "hessian" : "hvp");
        for (int i = 0; i < m->ndims; i++)
            fprintf(f, "%sint64_t %s", i ? ", " : "", dn[i]);
        fprintf(f, "%s);\n", m->ndims ? "" : "void");
        fprintf(f, "int %s_%s(", name, g ? "hessian" : "hvp");
        for (int i = 0; i < m->ndims; i++)
            fprintf(f, "int64_t %s, ", dn[i]);
        for (int i = 0; i < m->ninputs; i++)
            fprintf(f, m->inputs[i].ndims == 0 ? "double %s, " : "const double *%s, ", in[i]);
        for (int i = 0; !g && i < m->nwrt; i++)
            fprintf(f, "const double *%s, ", vn[i]);
        fprintf(f, "double *%s, ", on);
        for (int i = 0; !g && i < m->nwrt; i++)
            fprintf(f, "double *%s, ", p->gn[i]);
        for (int i = 0; !g && i < m->nwrt; i++)
            fprintf(f, "double *%s, ", hn[i]);
        if (g)
            fprintf(f, "double *%s, ", hs);
        fprintf(f, "unsigned %s, void *%s);\n", p->fl, p->wk);
    }
}

int emit_header(const Module *m, const CodegenOptions *o, const char *h_path)
{
    Arena *a = m->arena;
    const char *tmp;
    FILE *f = out_open(a, h_path, &tmp);
    if (!f)
        return 1;
    const char *name = o->name;
    bool grad = m->grad.value != NULL;
    bool cot = grad && !shape_is_scalar(m->grad.value->shape);
    Shape out = m->fwd.value->shape;
    Names ns = {a, arena_alloc(a, sizeof(char *) * (size_t)(m->ndims + m->ninputs + m->naux + m->nwrt + 8)), 0};
    const char **dn = arena_alloc(a, sizeof(char *) * (size_t)(m->ndims + 1));
    const char **in = arena_alloc(a, sizeof(char *) * (size_t)(m->ninputs + 1));
    const char **gn = arena_alloc(a, sizeof(char *) * (size_t)(m->nwrt + 1));
    const char **xn = arena_alloc(a, sizeof(char *) * (size_t)(m->naux + 1));
    for (int i = 0; i < m->ndims; i++)
        dn[i] = param(&ns, m->dims[i]);
    for (int i = 0; i < m->ninputs; i++)
        in[i] = param(&ns, m->inputs[i].name);
    const char *cn = param(&ns, "cotangent");
    const char *on = param(&ns, m->output_name ? m->output_name : "out");
    for (int i = 0; i < m->naux; i++)
        xn[i] = param(&ns, m->aux_names[i]);
    for (int i = 0; i < m->nwrt; i++)
        gn[i] = param(&ns, arena_printf(a, "grad_%s", m->inputs[m->wrt[i]].name));
    const char *fl = param(&ns, "flags"), *wk = param(&ns, "work");

    char *guard = arena_printf(a, "GRADC_%s_H", name);
    for (char *p = guard; *p; p++)
        *p = (char)toupper((unsigned char)*p);

    fprintf(f, "/* Generated by gradc from %s: do not edit. */\n", m->src ? m->src->path : "a program");
    fprintf(f, "#ifndef %s\n#define %s\n\n#include <gradc/runtime.h>\n\n", guard, guard);
    fprintf(f, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    fprintf(f, "/* Arguments, in this order:\n");
    for (int i = 0; i < m->ndims; i++)
        fprintf(f, " *   %-12s dimension symbol (int64_t, >= 0)\n", dn[i]);
    for (int i = 0; i < m->ninputs; i++)
        fprintf(f, " *   %-12s input: %s%s\n", in[i], shape_doc(m, m->inputs[i].shape),
                m->inputs[i].ndims == 0 ? " (double)" : " (const double *)");
    if (cot)
        fprintf(f, " *   %-12s %s only: cotangent of the output, %s (NULL: all ones)\n", cn,
                arena_printf(a, "%s_grad", name), shape_doc(m, out));
    fprintf(f, " *   %-12s output: %s (may be NULL in %s_grad)\n", on, shape_doc(m, out), name);
    for (int i = 0; i < m->naux; i++)
        fprintf(f, " *   %-12s auxiliary output: %s, not differentiated (may be NULL)\n", xn[i],
                shape_doc(m, m->fwd.aux[i]->shape));
    for (int i = 0; i < m->nwrt; i++)
        fprintf(f, " *   %-12s %s_grad only: gradient of %s, %s\n", gn[i], name,
                m->inputs[m->wrt[i]].name, shape_doc(m, m->inputs[m->wrt[i]].shape));
    if (grad)
        fprintf(f, " *   %-12s %s_grad only: 0 overwrites the gradients, GRADC_ACCUMULATE adds\n", fl, name);
    fprintf(f, " *   %-12s %s_work_size(dims) bytes, 16-byte aligned, or NULL (allocated)\n", wk, name);
    fprintf(f, " * Every function returns 0 or a GRADC_E* status (gradc_strerror). */\n\n");

    fprintf(f, "size_t %s_work_size(", name);
    for (int i = 0; i < m->ndims; i++)
        fprintf(f, "%sint64_t %s", i ? ", " : "", dn[i]);
    fprintf(f, "%s);\n", m->ndims ? "" : "void");
    for (int g = 0; g < (grad ? 2 : 1); g++) {
        fprintf(f, "int %s%s(", name, g ? "_grad" : "");
        for (int i = 0; i < m->ndims; i++)
            fprintf(f, "int64_t %s, ", dn[i]);
        for (int i = 0; i < m->ninputs; i++)
            fprintf(f, m->inputs[i].ndims == 0 ? "double %s, " : "const double *%s, ", in[i]);
        if (g && cot)
            fprintf(f, "const double *%s, ", cn);
        fprintf(f, "double *%s, ", on);
        for (int i = 0; i < m->naux; i++)
            fprintf(f, "double *%s, ", xn[i]);
        for (int i = 0; g && i < m->nwrt; i++)
            fprintf(f, "double *%s, ", gn[i]);
        if (g)
            fprintf(f, "unsigned %s, ", fl);
        fprintf(f, "void *%s);\n", wk);
    }
    if (o->hvp)
        header_second_order(f, m, o, &ns, &(HeaderNames){dn, in, gn, on, fl, wk});
    fprintf(f, "\n#ifdef __cplusplus\n}\n#endif\n#endif\n");
    return out_close(f, tmp, h_path) ? 0 : 1;
}

/* ---- the ABI as JSON (`gradc compile --describe`, embedded in --shared) ---- */

/* The names of runtime.h's status codes, by code (tests/install/describe.py
 * compares them with the header's enum). */
static const char *const status_names[] = {"GRADC_OK", "GRADC_EDIM", "GRADC_EMAXITER", "GRADC_ENOMEM", "GRADC_EINDEX"};

static void describe_dim(FILE *f, const Module *m, Dim d)
{
    if (dim_is_lit(d, NULL))
        fprintf(f, "%lld", (long long)d.n);
    else   /* a symbol, or a form such as "n + m + 1" */
        fprintf(f, "\"%s\"", dim_str(m->arena, d, m->dims));
}

/* A shape as the JSON list of its declared dimensions: [] for a scalar,
 * [rows] for a vector, [rows, cols] for a matrix. */
static void describe_shape(FILE *f, const Module *m, Shape s, int ndims)
{
    fputc('[', f);
    if (ndims >= 1)
        describe_dim(f, m, s.rows);
    if (ndims == 2) {
        fputs(", ", f);
        describe_dim(f, m, s.cols);
    }
    fputc(']', f);
}

static int shape_ndims(Shape s)
{
    return shape_is_scalar(s) ? 0 : dim_eq(s.cols, dim_lit(1)) ? 1 : 2;
}

char *emit_describe(const Module *m, const CodegenOptions *o)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    const char *name = o->name;
    bool grad = m->grad.value != NULL;
    Shape out = m->fwd.value->shape;
    fprintf(f, "{\n  \"abi\": 1,\n  \"name\": \"%s\",\n", name);
    fprintf(f, "  \"functions\": {\"value\": \"%s\", \"grad\": %s%s%s, \"work_size\": \"%s_work_size\"",
            name, grad ? "\"" : "", grad ? arena_printf(m->arena, "%s_grad", name) : "null",
            grad ? "\"" : "", name);
    if (o->hvp)   /* compile --hessian (spec §9) */
        fprintf(f, ", \"hvp\": \"%s_hvp\", \"hvp_work_size\": \"%s_hvp_work_size\", "
                   "\"hessian\": \"%s_hessian\", \"hessian_work_size\": \"%s_hessian_work_size\"",
                name, name, name, name);
    fputs("},\n", f);
    fputs("  \"dims\": [", f);
    for (int i = 0; i < m->ndims; i++)
        fprintf(f, "%s\"%s\"", i ? ", " : "", m->dims[i]);
    fputs("],\n  \"inputs\": [", f);
    for (int i = 0; i < m->ninputs; i++) {
        fprintf(f, "%s\n    {\"name\": \"%s\", \"shape\": ", i ? "," : "", m->inputs[i].name);
        describe_shape(f, m, m->inputs[i].shape, m->inputs[i].ndims);
        fputc('}', f);
    }
    fprintf(f, "%s],\n  \"output\": {\"name\": \"%s\", \"shape\": ", m->ninputs ? "\n  " : "",
            m->output_name ? m->output_name : "out");
    describe_shape(f, m, out, shape_ndims(out));
    fputs("},\n  \"aux\": [", f);
    for (int i = 0; i < m->naux; i++) {
        Shape s = m->fwd.aux[i]->shape;
        fprintf(f, "%s{\"name\": \"%s\", \"shape\": ", i ? ", " : "", m->aux_names[i]);
        describe_shape(f, m, s, shape_ndims(s));
        fputc('}', f);
    }
    fprintf(f, "],\n  \"cotangent\": %s,\n  \"wrt\": [", grad && shape_ndims(out) ? "true" : "false");
    for (int i = 0; i < m->nwrt; i++)
        fprintf(f, "%s\"%s\"", i ? ", " : "", m->inputs[m->wrt[i]].name);
    fputs("],\n  \"flags\": {\"GRADC_ACCUMULATE\": 1},\n  \"statuses\": [", f);
    for (int i = 0; i < (int)(sizeof status_names / sizeof status_names[0]); i++)
        fprintf(f, "%s\n    {\"code\": %d, \"name\": \"%s\", \"message\": \"%s\"}", i ? "," : "", i,
                status_names[i], gradc_strerror(i));
    fputs("\n  ]\n}\n", f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    char *s = arena_strndup(m->arena, buf, len);
    free(buf);
    return s;
}

/* ---- shared libraries (`gradc compile --shared`) ---- */

/* Where libgradc.so is, for -L and the run path: $GRADC_LIBDIR; else, from
 * the directory of the running gradc, the build tree's runtime/ (build/src/gradc)
 * or the installed libdir (GRADC_BIN_TO_LIBDIR, set by meson relative to
 * bindir, so a relocated or `--destdir`-staged tree works); else the
 * configured GRADC_LIBDIR.  NULL when none holds libgradc.so. */
static const char *find_libdir(Arena *a)
{
    const char *env = getenv("GRADC_LIBDIR");
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *bin = ".";
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        bin = exe;
    }
    const char *cands[] = {
        env && *env ? env : NULL,
        arena_printf(a, "%s/../runtime", bin),
        arena_printf(a, "%s/%s", bin, GRADC_BIN_TO_LIBDIR),
        GRADC_LIBDIR,
    };
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        struct stat st;
        if (!cands[i] || stat(arena_printf(a, "%s/libgradc.so", cands[i]), &st) != 0)
            continue;
        char *real = realpath(cands[i], NULL);
        const char *dir = real ? arena_printf(a, "%s", real) : cands[i];
        free(real);
        return dir;
    }
    return NULL;
}

/* The C compiler driver: $CC (words split at spaces), else the first of
 * cc, gcc, clang on PATH.  argv[0..] filled; returns the count, 0 if none. */
static int find_cc(Arena *a, const char **argv)
{
    const char *cc = getenv("CC");
    if (cc && *cc) {
        int k = 0;
        for (const char *p = cc; *p;) {
            while (*p == ' ')
                p++;
            size_t len = strcspn(p, " ");
            if (len)
                argv[k++] = arena_strndup(a, p, len);
            p += len;
            if (k == 8)
                break;
        }
        return k;
    }
    const char *path = getenv("PATH");
    const char *names[] = {"cc", "gcc", "clang"};
    for (size_t i = 0; i < 3; i++)
        for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
            size_t len = strcspn(p, ":");
            const char *file = arena_printf(a, "%.*s/%s", (int)len, p, names[i]);
            if (access(file, X_OK) == 0) {
                argv[0] = file;
                return 1;
            }
            p += len + (p[len] == ':');
        }
    return 0;
}

/* Runs argv; 0 when it exited with status 0. */
static int run_program(const char **argv)
{
    pid_t pid = fork();
    if (pid < 0) {
        diag_plain("cannot run %s: %s", argv[0], strerror(errno));
        return 1;
    }
    if (pid == 0) {
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "gradc: error: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return 1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

/* describe as a C string literal's contents. */
static const char *c_string(Arena *a, const char *s)
{
    char *out = arena_alloc(a, strlen(s) * 4 + 1), *p = out;
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            *p++ = '\\', *p++ = *s;
        else if (*s == '\n')
            *p++ = '\\', *p++ = 'n';
        else
            *p++ = *s;
    }
    *p = '\0';
    return out;
}

/* The object of m, position independent, plus a C file that defines
 * `const char gradc_describe[]` (the --describe JSON, which gradc.py reads),
 * linked by the C compiler driver into so_path:
 *   cc -shared -fPIC -o so_path NAME.o describe.c -L LIBDIR -Wl,-rpath,LIBDIR
 *      -Wl,--no-as-needed -lgradc -lm
 * so the library records libgradc.so as DT_NEEDED and finds it by its run path. */
int emit_shared(const Module *m, const CodegenOptions *o, const char *so_path)
{
    Arena *a = m->arena;
    const char *cc[24];
    int ncc = find_cc(a, cc);
    if (!ncc) {
        diag_plain("compile --shared: no C compiler driver to link with (looked for $CC, then "
                   "cc, gcc, clang on PATH); install one or set CC");
        return 1;
    }
    const char *libdir = find_libdir(a);
    if (!libdir) {
        diag_plain("compile --shared: cannot find libgradc.so (looked next to gradc and in %s); "
                   "set GRADC_LIBDIR", GRADC_LIBDIR);
        return 1;
    }
    const char *describe = emit_describe(m, o);
    const char *tmpdir = getenv("TMPDIR");
    char *dir = arena_printf(a, "%s/gradc-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!describe || !mkdtemp(dir)) {
        diag_plain("compile --shared: cannot create a temporary directory: %s", strerror(errno));
        return 1;
    }
    const char *obj = arena_printf(a, "%s/%s.o", dir, o->name);
    const char *src = arena_printf(a, "%s/describe.c", dir);
    int rc = emit_object(m, o, obj, false);
    FILE *f = rc ? NULL : fopen(src, "w");
    if (!rc && (!f || fprintf(f, "const char gradc_describe[] = \"%s\";\n", c_string(a, describe)) < 0
                || fclose(f) != 0)) {
        diag_plain("cannot write %s", src);
        rc = 1;
    }
    if (!rc) {
        const char *args[] = {"-shared", "-fPIC", "-o", so_path, obj, src,
                              arena_printf(a, "-L%s", libdir),
                              arena_printf(a, "-Wl,-rpath,%s", libdir), "-Wl,--no-as-needed",
                              "-lgradc", "-lm", NULL};
        for (int i = 0; args[i]; i++)
            cc[ncc++] = args[i];
        cc[ncc] = NULL;
        if (run_program(cc) != 0) {
            diag_plain("compile --shared: %s failed to link %s", cc[0], so_path);
            rc = 1;
        }
    }
    remove(obj);
    remove(src);
    rmdir(dir);
    return rc;
}
