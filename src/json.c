/* json.c — eval's input and output (spec §6).
 *
 * One JSON form for inputs, cotangents, outputs and gradients alike: a 1×1
 * value is a number, an n×1 value a flat array, anything else an array of
 * rows.  An input is read in the form its declaration implies (scalar,
 * vector, matrix); the dimensions of the program are bound from the
 * lengths found, and must agree across inputs.  The text is parsed by
 * jsontext.c (strict, compact); errors point at the value, FILE:LINE:COL. */
#include "gradc.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- reading ---- */

/* The file as a Source (capped at read_cap_json), then its tree. */
JVal *json_parse_file(Arena *a, const char *path, const Source **src)
{
    size_t len;
    char *text = file_read_capped(path, read_cap_json, &len);
    if (!text)
        return NULL;
    Source *s = arena_alloc(a, sizeof *s);
    s->path = arena_strdup(a, path);
    s->text = text;
    s->len = len;
    *src = s;
    return json_parse(a, s);
}

/* What one reader needs to report and bind: the text for positions, the
 * program's dimension names, each dimension's value so far and the name
 * of the value that bound it. */
typedef struct Reader {
    const Module *m;
    const Source *src;
    int64_t *dims;
    const char **bound_by;
} Reader;

static void err_at(const Reader *r, const JVal *j, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* An error at j's position in the file. */
static void err_at(const Reader *r, const JVal *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(r->src, json_loc(r->src, j->off), fmt, ap);
    va_end(ap);
}

/* Matches a length read from the file against a declared dimension. */
static bool bind_dim(Reader *r, const JVal *j, Dim d, int64_t len, const char *what,
                     const char *axis)
{
    if (d.sym < 0) {
        if (d.n == len)
            return true;
        err_at(r, j, "%s has %lld %s but is declared with %lld", what, (long long)len, axis,
               (long long)d.n);
        return false;
    }
    if (!r->bound_by[d.sym]) {
        r->dims[d.sym] = len;
        r->bound_by[d.sym] = what;
        return true;
    }
    if (r->dims[d.sym] == len)
        return true;
    err_at(r, j, "dimension %s is %lld from %s but %lld from %s", r->m->dims[d.sym],
           (long long)r->dims[d.sym], r->bound_by[d.sym], (long long)len, what);
    return false;
}

static const char *form_name(int form)
{
    return form == 0 ? "a number" : form == 1 ? "a flat array of numbers" : "an array of rows";
}

/* The first entry of an unpacked array that is not a number (an unpacked
 * array has one, or it would have been packed). */
static int64_t first_non_number(const JVal *j)
{
    int64_t i = 0;
    while (i < j->n && j->items[i]->kind == J_NUM)
        i++;
    return i;
}

/* Reads j as a value of shape s in the given form (0 number, 1 flat array,
 * 2 array of rows), binding s's dimensions; the data goes to the arena (a
 * flat array's packed numbers are used as they are). */
static double *read_value(Reader *r, Arena *a, const JVal *j, Shape s, int form,
                          const char *what)
{
    bool ok = form == 0 ? j->kind == J_NUM : j->kind == J_ARR;
    /* a declared [n, 1] matrix may also be written as a flat array */
    if (form == 2 && ok && j->n > 0 && (j->nums || j->items[0]->kind == J_NUM) &&
        dim_eq(s.cols, dim_lit(1)))
        form = 1;
    if (!ok) {
        err_at(r, j, "%s should be %s, not %s", what, form_name(form), json_kind_name(j->kind));
        return NULL;
    }
    if (form == 0) {
        double *v = arena_alloc(a, sizeof *v);
        *v = j->num;
        return v;
    }
    int64_t rows = j->n, cols = 1;
    if (form == 1 && rows > 0 && !j->nums) {
        const JVal *e = j->items[first_non_number(j)];
        if (e->kind == J_ARR)
            err_at(r, e, "%s should be %s (a vector is not an array of rows)", what, form_name(1));
        else
            err_at(r, e, "%s: entry %lld is not a number", what,
                   (long long)first_non_number(j) + 1);
        return NULL;
    }
    if (form == 2 && rows > 0) {
        if (j->nums || j->items[0]->kind != J_ARR) {
            err_at(r, j, "%s should be %s", what, form_name(form));
            return NULL;
        }
        cols = j->items[0]->n;
    }
    if (!bind_dim(r, j, s.rows, rows, what, "rows"))
        return NULL;
    if ((form == 1 || rows > 0) && !bind_dim(r, j, s.cols, cols, what, "columns"))
        return NULL;
    if (form == 1)
        return rows > 0 ? j->nums : arena_alloc(a, sizeof(double));
    double *v = arena_alloc(a, sizeof *v * (size_t)(rows * cols > 0 ? rows * cols : 1));
    for (int64_t i = 0; i < rows; i++) {
        const JVal *row = j->items[i];
        if (row->kind != J_ARR) {
            err_at(r, row, "%s: row %lld is not an array", what, (long long)i + 1);
            return NULL;
        }
        if (row->n != cols) {
            err_at(r, row, "%s: row %lld has length %lld but row 1 has length %lld", what,
                   (long long)i + 1, (long long)row->n, (long long)cols);
            return NULL;
        }
        if (cols > 0 && !row->nums) {
            int64_t k = first_non_number(row);
            err_at(r, row->items[k], "%s: entry (%lld, %lld) is not a number", what,
                   (long long)i + 1, (long long)k + 1);
            return NULL;
        }
        if (cols > 0)
            memcpy(v + i * cols, row->nums, sizeof *v * (size_t)cols);
    }
    return v;
}

static bool read_inputs(const Module *m, const Source *src, const JVal *j, Bindings *b,
                        Arena *a)
{
    Reader r = {m, src, arena_alloc(a, sizeof(int64_t) * (size_t)(m->ndims + 1)),
                arena_alloc(a, sizeof(char *) * (size_t)(m->ndims + 1))};
    if (j->kind != J_OBJ) {
        err_at(&r, j, "the inputs should be a JSON object with one key per input, not %s",
               json_kind_name(j->kind));
        return false;
    }
    const double **in = arena_alloc(a, sizeof *in * (size_t)(m->ninputs + 1));
    for (int i = 0; i < m->ninputs; i++) {
        const Input *x = &m->inputs[i];
        const JVal *v = NULL;
        for (int64_t k = 0; k < j->n && !v; k++)
            if (strcmp(j->items[k]->key, x->name) == 0)
                v = j->items[k];
        if (!v) {
            err_at(&r, j, "missing input '%s'", x->name);
            return false;
        }
        const char *what = arena_printf(a, "input '%s'", x->name);
        if (!(in[i] = read_value(&r, a, v, x->shape, x->ndims, what)))
            return false;
    }
    for (int d = 0; d < m->ndims; d++) {
        if (!r.bound_by[d]) {
            err_at(&r, j, "the inputs do not determine dimension %s", m->dims[d]);
            return false;
        }
    }
    for (int64_t k = 0; k < j->n; k++) {
        bool known = false;
        for (int i = 0; i < m->ninputs && !known; i++)
            known = strcmp(j->items[k]->key, m->inputs[i].name) == 0;
        if (!known) {
            Loc l = json_loc(src, j->items[k]->key_off);
            fprintf(stderr, "%s:%d:%d: warning: '%s' is not an input of the program; ignored\n",
                    src->path, l.line, l.col, j->items[k]->key);
        }
    }
    b->dims = r.dims;
    b->inputs = in;
    return true;
}

bool json_parse_inputs(const Module *m, const char *name, const char *text, size_t len,
                       Bindings *b, Arena *a)
{
    Source *src = arena_alloc(a, sizeof *src);
    src->path = arena_strdup(a, name);
    src->text = arena_alloc(a, len + 1);
    memcpy(src->text, text, len);
    src->len = len;
    const JVal *j = json_parse(a, src);
    return j && read_inputs(m, src, j, b, a);
}

bool json_read_inputs(const Module *m, const char *path, Bindings *b, Arena *a)
{
    const Source *src = NULL;
    const JVal *j = json_parse_file(a, path, &src);
    bool ok = j && read_inputs(m, src, j, b, a);
    if (src)
        free(src->text);
    return ok;
}

/* The JSON form of a shape: 0 number, 1 flat array, 2 rows. */
static int form_of(Shape s)
{
    return shape_is_scalar(s) ? 0 : dim_eq(s.cols, dim_lit(1)) ? 1 : 2;
}

bool json_read_cotangent(const Module *m, const char *path, Bindings *b, Arena *a)
{
    const Source *src = NULL;
    const JVal *j = json_parse_file(a, path, &src);
    if (!j) {
        if (src)
            free(src->text);
        return false;
    }
    /* The output's dimensions are already bound: bind into a copy and let
     * bind_dim report a disagreement. */
    Shape s = m->fwd.value->shape;
    Reader r = {m, src, arena_alloc(a, sizeof(int64_t) * (size_t)(m->ndims + 1)),
                arena_alloc(a, sizeof(char *) * (size_t)(m->ndims + 1))};
    for (int d = 0; d < m->ndims; d++) {
        r.dims[d] = b->dims[d];
        r.bound_by[d] = "the inputs";
    }
    const char *what = arena_printf(a, "the cotangent (of shape %s)",
                                    shape_str(a, s, m->dims));
    double *v = read_value(&r, a, j, s, form_of(s), what);
    free(src->text);
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
