/* json.c — eval's input and output (spec §6).
 *
 * One JSON form for inputs, cotangents, outputs and gradients alike: a 1×1
 * value is a number, an n×1 value a flat array, anything else an array of
 * rows.  An input is read in the form its declaration implies (scalar,
 * vector, matrix); the dimensions of the program are bound from the
 * lengths found, and must agree across inputs. */
#include "gradc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- reading ---- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_plain("cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0;) {
        len += got;
        if (cap - len - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                free(buf);
            buf = nb;
            cap *= 2;
        }
    }
    bool bad = ferror(f) || !buf;
    fclose(f);
    if (bad) {
        diag_plain("cannot read %s", path);
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

static cJSON *parse_file(const char *path)
{
    char *text = read_file(path);
    if (!text)
        return NULL;
    cJSON *j = cJSON_Parse(text);
    if (!j) {
        /* cJSON gives the text from the point where parsing failed */
        const char *at = cJSON_GetErrorPtr();
        int line = 1;
        for (const char *p = text; at && p < at; p++)
            line += *p == '\n';
        if (at && *at == '\0')
            diag_plain("%s: not valid JSON (it ends too early)", path);
        else
            diag_plain("%s: not valid JSON (line %d)", path, line);
    }
    free(text);
    return j;
}

/* What one reader needs to report and bind: the value's name for messages,
 * the program's dimension names, each dimension's value so far and the name
 * of the value that bound it. */
typedef struct Reader {
    const Module *m;
    const char *path;
    int64_t *dims;
    const char **bound_by;
} Reader;

/* Matches a length read from the file against a declared dimension. */
static bool bind_dim(Reader *r, Dim d, int64_t len, const char *what, const char *axis)
{
    if (d.sym < 0) {
        if (d.n == len)
            return true;
        diag_plain("%s: %s has %lld %s but is declared with %lld", r->path, what,
                   (long long)len, axis, (long long)d.n);
        return false;
    }
    if (!r->bound_by[d.sym]) {
        r->dims[d.sym] = len;
        r->bound_by[d.sym] = what;
        return true;
    }
    if (r->dims[d.sym] == len)
        return true;
    diag_plain("%s: dimension %s is %lld from %s but %lld from %s", r->path,
               r->m->dims[d.sym], (long long)r->dims[d.sym], r->bound_by[d.sym],
               (long long)len, what);
    return false;
}

static bool number_at(Reader *r, const cJSON *j, const char *what, int64_t i, int64_t k,
                      double *out)
{
    if (cJSON_IsNumber(j)) {
        *out = j->valuedouble;
        return true;
    }
    if (k < 0)
        diag_plain("%s: %s: entry %lld is not a number", r->path, what, (long long)i + 1);
    else
        diag_plain("%s: %s: entry (%lld, %lld) is not a number", r->path, what,
                   (long long)i + 1, (long long)k + 1);
    return false;
}

static const char *form_name(int form)
{
    return form == 0 ? "a number" : form == 1 ? "a flat array of numbers" : "an array of rows";
}

/* Reads j as a value of shape s in the given form (0 number, 1 flat array,
 * 2 array of rows), binding s's dimensions; the data goes to the arena. */
static double *read_value(Reader *r, Arena *a, const cJSON *j, Shape s, int form,
                          const char *what)
{
    bool ok = form == 0 ? cJSON_IsNumber(j) : cJSON_IsArray(j);
    /* a declared [n, 1] matrix may also be written as a flat array */
    if (form == 2 && ok && cJSON_GetArraySize(j) > 0 && cJSON_IsNumber(j->child) &&
        dim_eq(s.cols, dim_lit(1)))
        form = 1;
    if (!ok) {
        diag_plain("%s: %s should be %s", r->path, what, form_name(form));
        return NULL;
    }
    if (form == 0) {
        double *v = arena_alloc(a, sizeof *v);
        *v = j->valuedouble;
        return v;
    }
    int64_t rows = cJSON_GetArraySize(j), cols = 1;
    if (form == 2 && rows > 0) {
        if (!cJSON_IsArray(j->child)) {
            diag_plain("%s: %s should be %s", r->path, what, form_name(form));
            return NULL;
        }
        cols = cJSON_GetArraySize(j->child);
    }
    if (!bind_dim(r, s.rows, rows, what, "rows"))
        return NULL;
    if ((form == 1 || rows > 0) && !bind_dim(r, s.cols, cols, what, "columns"))
        return NULL;
    double *v = arena_alloc(a, sizeof *v * (size_t)(rows * cols > 0 ? rows * cols : 1));
    int64_t i = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, j) {
        if (form == 1) {
            if (cJSON_IsArray(row)) {
                diag_plain("%s: %s should be %s (a vector is not an array of rows)", r->path,
                           what, form_name(1));
                return NULL;
            }
            if (!number_at(r, row, what, i, -1, &v[i]))
                return NULL;
        } else {
            if (!cJSON_IsArray(row)) {
                diag_plain("%s: %s: row %lld is not an array", r->path, what, (long long)i + 1);
                return NULL;
            }
            if (cJSON_GetArraySize(row) != cols) {
                diag_plain("%s: %s: row %lld has length %d but row 1 has length %lld", r->path, what,
                           (long long)i + 1, cJSON_GetArraySize(row), (long long)cols);
                return NULL;
            }
            int64_t k = 0;
            const cJSON *x;
            cJSON_ArrayForEach(x, row) {
                if (!number_at(r, x, what, i, k, &v[i * cols + k]))
                    return NULL;
                k++;
            }
        }
        i++;
    }
    return v;
}

bool json_read_inputs(const Module *m, const char *path, Bindings *b, Arena *a)
{
    cJSON *j = parse_file(path);
    if (!j)
        return false;
    bool ok = cJSON_IsObject(j);
    if (!ok)
        diag_plain("%s: the inputs should be a JSON object with one key per input", path);
    Reader r = {m, path, arena_alloc(a, sizeof(int64_t) * (size_t)(m->ndims + 1)),
                arena_alloc(a, sizeof(char *) * (size_t)(m->ndims + 1))};
    const double **in = arena_alloc(a, sizeof *in * (size_t)(m->ninputs + 1));
    for (int i = 0; ok && i < m->ninputs; i++) {
        const Input *x = &m->inputs[i];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, x->name);
        if (!v) {
            diag_plain("%s: missing input '%s'", path, x->name);
            ok = false;
        } else {
            const char *what = arena_printf(a, "input '%s'", x->name);
            ok = (in[i] = read_value(&r, a, v, x->shape, x->ndims, what)) != NULL;
        }
    }
    for (int d = 0; ok && d < m->ndims; d++) {
        if (!r.bound_by[d]) {
            diag_plain("%s: the inputs do not determine dimension %s", path, m->dims[d]);
            ok = false;
        }
    }
    if (ok) {
        const cJSON *k;
        cJSON_ArrayForEach(k, j) {
            bool known = false;
            for (int i = 0; i < m->ninputs && !known; i++)
                known = k->string && strcmp(k->string, m->inputs[i].name) == 0;
            if (!known)
                fprintf(stderr, "gradc: warning: %s: '%s' is not an input of the program; ignored\n",
                        path, k->string ? k->string : "");
        }
        b->dims = r.dims;
        b->inputs = in;
    }
    cJSON_Delete(j);
    return ok;
}

/* The JSON form of a shape: 0 number, 1 flat array, 2 rows. */
static int form_of(Shape s)
{
    return shape_is_scalar(s) ? 0 : dim_eq(s.cols, dim_lit(1)) ? 1 : 2;
}

bool json_read_cotangent(const Module *m, const char *path, Bindings *b, Arena *a)
{
    cJSON *j = parse_file(path);
    if (!j)
        return false;
    /* The output's dimensions are already bound: bind into a copy and let
     * bind_dim report a disagreement. */
    Shape s = m->fwd.value->shape;
    Reader r = {m, path, arena_alloc(a, sizeof(int64_t) * (size_t)(m->ndims + 1)),
                arena_alloc(a, sizeof(char *) * (size_t)(m->ndims + 1))};
    for (int d = 0; d < m->ndims; d++) {
        r.dims[d] = b->dims[d];
        r.bound_by[d] = "the inputs";
    }
    const char *what = arena_printf(a, "the cotangent (of shape %s)",
                                    shape_str(a, s, m->dims));
    double *v = read_value(&r, a, j, s, form_of(s), what);
    cJSON_Delete(j);
    if (v)
        b->cotangent = v;
    return v != NULL;
}

/* ---- writing ---- */

static void print_number(FILE *out, double x)
{
    if (isnan(x))
        fputs("NaN", out);
    else if (isinf(x))
        fputs(x > 0 ? "Infinity" : "-Infinity", out);
    else
        fprintf(out, "%.17g", x);
}

static void print_row(FILE *out, const double *v, int64_t n)
{
    fputc('[', out);
    for (int64_t i = 0; i < n; i++) {
        if (i)
            fputs(", ", out);
        print_number(out, v[i]);
    }
    fputc(']', out);
}

static void print_value(FILE *out, const double *v, Shape s, const int64_t *dims)
{
    int64_t rows = shape_rows(s, dims), cols = shape_cols(s, dims);
    int form = form_of(s);
    if (form == 0) {
        print_number(out, v[0]);
    } else if (form == 1) {
        print_row(out, v, rows);
    } else {
        fputc('[', out);
        for (int64_t i = 0; i < rows; i++) {
            if (i)
                fputs(", ", out);
            print_row(out, v + i * cols, cols);
        }
        fputc(']', out);
    }
}

void json_print_result(FILE *out, const Module *m, const Bindings *b,
                       const double *value, double *const *grads)
{
    fputs("{\"value\": ", out);
    print_value(out, value, m->fwd.value->shape, b->dims);
    if (grads) {
        fputs(", \"gradient\": {", out);
        for (int k = 0; k < m->nwrt; k++) {
            const Input *x = &m->inputs[m->wrt[k]];
            fprintf(out, "%s\"%s\": ", k ? ", " : "", x->name);
            print_value(out, grads[k], x->shape, b->dims);
        }
        fputc('}', out);
    }
    fputs("}\n", out);
}
