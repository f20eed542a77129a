/* json.c — eval's input and output (spec §6).
 *
 * One JSON form for inputs, cotangents, outputs and gradients alike: a 1×1
 * value is a number, an n×1 value a flat array, anything else an array of
 * rows.  An input is read in the form its declaration implies (scalar,
 * vector, matrix); the dimensions of the program are bound from the
 * lengths found, and must agree across inputs.  The text is parsed by
 * jansson (strict: see json_parse); a syntax error points into the file,
 * FILE:LINE:COL, an error about content names the input. */
#include "gradc.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- reading ---- */

/* The position of byte off: columns count UTF-8 characters, as diag does. */
static Loc loc_at(const Source *src, size_t off)
{
    Loc l = {1, 1};
    for (size_t i = 0; i < off && i < src->len; i++) {
        if (src->text[i] == '\n')
            l.line++, l.col = 1;
        else if (((unsigned char)src->text[i] & 0xC0) != 0x80)
            l.col++;
    }
    return l;
}

/* jansson's error as a FILE:LINE:COL message.  jansson reports the offset
 * just after the token it stopped at and quotes the token ("near 'x'"):
 * point at the token's start, and say the common cases in words. */
static void parse_error(const Source *src, const json_error_t *e)
{
    const char *s = src->text, *near = strstr(e->text, "near '");
    size_t end = e->position < 0 ? 0 : (size_t)e->position, n = 0;
    if (near) {
        near += 6;
        n = strlen(near) - 1;   /* the closing quote */
    }
    size_t at = end > src->len ? src->len : end;
    if (near && n <= end && memcmp(s + end - n, near, n) == 0)
        at = end - n;
    else if (end > 0 && end <= src->len && s[end - 1] == '\0')
        at = end - 1;           /* jansson stops at a NUL byte as at the end */
    size_t back = at;
    while (back > 0 && strchr(" \t\r\n", s[back - 1]))
        back--;
    char msg[240];
    enum json_error_code code = json_error_code(e);
    if (code == json_error_end_of_input_expected && at < src->len && s[at] == '\0')
        snprintf(msg, sizeof msg, "a NUL byte after the JSON value");
    else if (code == json_error_end_of_input_expected && near)
        snprintf(msg, sizeof msg, "'%.*s' after the JSON value", (int)n, near);
    else if (code == json_error_duplicate_key && near)
        snprintf(msg, sizeof msg, "the key %.*s appears twice", (int)n, near);
    else if (code == json_error_numeric_overflow && near)
        snprintf(msg, sizeof msg, "the number %.*s is too large for a double", (int)n, near);
    else if (near && (strstr(near, "NaN") == near || strstr(near, "Infinity") == near ||
                      strstr(near, "-Infinity") == near))
        snprintf(msg, sizeof msg, "NaN and Infinity are not JSON");
    else if (near && n <= 2 && near[n - 1] == '0' && at + n < src->len &&
             s[at + n] >= '0' && s[at + n] <= '9')
        snprintf(msg, sizeof msg, "a number may not have a leading zero");
    else if (near && n == 1 && strchr("]}", near[0]) && back > 0 && s[back - 1] == ',')
        snprintf(msg, sizeof msg, "trailing commas are not JSON");
    else
        snprintf(msg, sizeof msg, "%s", e->text);
    diag_error(src, loc_at(src, at), "not valid JSON: %s", msg);
}

/* jansson reads a number that underflows (1e-400) as 0 and keeps no text
 * of it: find such a number in the (already valid) text, skipping strings,
 * so that JSON and programs treat both ends of the range alike. */
static bool check_underflow(const Source *src)
{
    const char *s = src->text;
    for (size_t i = 0; i < src->len; i++) {
        if (s[i] == '"') {
            for (i++; s[i] != '"'; i++)
                i += s[i] == '\\';
        } else if (s[i] == '-' || (s[i] >= '0' && s[i] <= '9')) {
            char *end;
            double v = strtod(s + i, &end);
            bool nonzero = false;
            for (const char *c = s + i; c < end && *c != 'e' && *c != 'E'; c++)
                nonzero |= *c >= '1' && *c <= '9';
            const char *why = number_range_problem(v, nonzero);
            if (why) {
                diag_error(src, loc_at(src, i), "not valid JSON: the number %.*s %s",
                           (int)(end - s - i), s + i, why);
                return false;
            }
            i = (size_t)(end - s) - 1;
        }
    }
    return true;
}

/* The text as a jansson tree (json_decref it), NULL after a message.
 * Strict: one value and nothing after it (a NUL byte included), no
 * duplicate keys, no NaN, numbers that are doubles; every number is read
 * as a double, so a long integer is not "too big". */
json_t *json_parse(const Source *src)
{
    json_error_t e;
    json_t *j = json_loadb(src->text, src->len,
                           JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &e);
    if (!j) {
        parse_error(src, &e);
        return NULL;
    }
    if (!check_underflow(src)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* The file as a Source (capped at read_cap_json), then its tree. */
json_t *json_parse_file(Arena *a, const char *path, const Source **src)
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
    return json_parse(s);
}

const char *json_kind_name(const json_t *j)
{
    static const char *const names[] = {
        [JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array", [JSON_STRING] = "a string",
        [JSON_INTEGER] = "a number", [JSON_REAL] = "a number", [JSON_TRUE] = "true",
        [JSON_FALSE] = "false", [JSON_NULL] = "null"};
    return names[json_typeof(j)];
}

/* What one reader needs to report and bind: the file's name, the
 * program's dimension names, each dimension's value so far and the name
 * of the value that bound it.  jansson keeps no positions of values, so
 * errors about content name the input (and the row or entry). */
typedef struct Reader {
    const Module *m;
    const Source *src;
    int64_t *dims;
    const char **bound_by;
} Reader;

static void err_in(const Reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An error in the file, without a position. */
static void err_in(const Reader *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(r->src, (Loc){0, 0}, fmt, ap);
    va_end(ap);
}

/* Matches a length read from the file against a declared dimension. */
static bool bind_dim(Reader *r, Dim d, int64_t len, const char *what, const char *axis)
{
    if (d.sym < 0) {   /* a literal, or a form (a cotangent's: the inputs bound its symbols) */
        int64_t n = dim_eval(d, r->dims);
        if (n == len)
            return true;
        err_in(r, "%s has %lld %s but is declared with %lld", what, (long long)len, axis,
               (long long)n);
        return false;
    }
    if (!r->bound_by[d.sym]) {
        r->dims[d.sym] = len;
        r->bound_by[d.sym] = what;
        return true;
    }
    if (r->dims[d.sym] == len)
        return true;
    err_in(r, "dimension %s is %lld from %s but %lld from %s", r->m->dims[d.sym],
           (long long)r->dims[d.sym], r->bound_by[d.sym], (long long)len, what);
    return false;
}

static const char *form_name(int form)
{
    return form == 0 ? "a number" : form == 1 ? "a flat array of numbers" : "an array of rows";
}

/* The index of the first entry of array j that is not a number, or its size. */
static size_t first_non_number(const json_t *j)
{
    size_t i = 0;
    while (i < json_array_size(j) && json_is_number(json_array_get(j, i)))
        i++;
    return i;
}

/* Reads j as a value of shape s in the given form (0 number, 1 flat array,
 * 2 array of rows), binding s's dimensions; the data goes to the arena. */
static double *read_value(Reader *r, Arena *a, const json_t *j, Shape s, int form,
                          const char *what)
{
    bool ok = form == 0 ? json_is_number(j) : json_is_array(j);
    int64_t rows = ok && form ? (int64_t)json_array_size(j) : 0, cols = 1;
    /* a declared [n, 1] matrix may also be written as a flat array */
    if (form == 2 && rows > 0 && json_is_number(json_array_get(j, 0)) &&
        dim_eq(s.cols, dim_lit(1)))
        form = 1;
    if (!ok) {
        err_in(r, "%s should be %s, not %s", what, form_name(form), json_kind_name(j));
        return NULL;
    }
    if (form == 0) {
        double *v = arena_alloc(a, sizeof *v);
        *v = json_number_value(j);
        return v;
    }
    if (form == 1 && first_non_number(j) < (size_t)rows) {
        size_t k = first_non_number(j);
        if (json_is_array(json_array_get(j, k)))
            err_in(r, "%s should be %s (a vector is not an array of rows)", what, form_name(1));
        else
            err_in(r, "%s: entry %zu is not a number", what, k + 1);
        return NULL;
    }
    if (form == 2 && rows > 0) {
        if (!json_is_array(json_array_get(j, 0))) {
            err_in(r, "%s should be %s", what, form_name(form));
            return NULL;
        }
        cols = (int64_t)json_array_size(json_array_get(j, 0));
    }
    if (!bind_dim(r, s.rows, rows, what, "rows"))
        return NULL;
    if ((form == 1 || rows > 0) && !bind_dim(r, s.cols, cols, what, "columns"))
        return NULL;
    double *v = arena_alloc(a, sizeof *v * (size_t)(rows * cols > 0 ? rows * cols : 1));
    for (int64_t i = 0; form == 1 && i < rows; i++)
        v[i] = json_number_value(json_array_get(j, (size_t)i));
    for (int64_t i = 0; form == 2 && i < rows; i++) {
        const json_t *row = json_array_get(j, (size_t)i);
        if (!json_is_array(row)) {
            err_in(r, "%s: row %lld is not an array", what, (long long)i + 1);
            return NULL;
        }
        if ((int64_t)json_array_size(row) != cols) {
            err_in(r, "%s: row %lld has length %zu but row 1 has length %lld", what,
                   (long long)i + 1, json_array_size(row), (long long)cols);
            return NULL;
        }
        size_t k = first_non_number(row);
        if (k < (size_t)cols) {
            err_in(r, "%s: entry (%lld, %zu) is not a number", what, (long long)i + 1, k + 1);
            return NULL;
        }
        for (int64_t c = 0; c < cols; c++)
            v[i * cols + c] = json_number_value(json_array_get(row, (size_t)c));
    }
    return v;
}

static bool read_inputs(const Module *m, const Source *src, const json_t *j, Bindings *b,
                        Arena *a)
{
    Reader r = {m, src, arena_alloc(a, sizeof(int64_t) * (size_t)(m->ndims + 1)),
                arena_alloc(a, sizeof(char *) * (size_t)(m->ndims + 1))};
    if (!json_is_object(j)) {
        err_in(&r, "the inputs should be a JSON object with one key per input, not %s",
               json_kind_name(j));
        return false;
    }
    const double **in = arena_alloc(a, sizeof *in * (size_t)(m->ninputs + 1));
    for (int i = 0; i < m->ninputs; i++) {
        const Input *x = &m->inputs[i];
        const json_t *v = json_object_get(j, x->name);
        if (!v) {
            err_in(&r, "missing input '%s'", x->name);
            return false;
        }
        const char *what = arena_printf(a, "input '%s'", x->name);
        if (!(in[i] = read_value(&r, a, v, x->shape, x->ndims, what)))
            return false;
    }
    for (int d = 0; d < m->ndims; d++) {
        if (!r.bound_by[d]) {
            err_in(&r, "the inputs do not determine dimension %s", m->dims[d]);
            return false;
        }
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        bool known = false;
        for (int i = 0; i < m->ninputs && !known; i++)
            known = strcmp(key, m->inputs[i].name) == 0;
        if (!known)
            fprintf(stderr, "%s: warning: '%s' is not an input of the program; ignored\n",
                    src->path, key);
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
    json_t *j = json_parse(src);
    bool ok = j && read_inputs(m, src, j, b, a);
    json_decref(j);
    return ok;
}

bool json_read_inputs(const Module *m, const char *path, Bindings *b, Arena *a)
{
    const Source *src = NULL;
    json_t *j = json_parse_file(a, path, &src);
    bool ok = j && read_inputs(m, src, j, b, a);
    json_decref(j);
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
    json_t *j = json_parse_file(a, path, &src);
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
    json_decref(j);
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

/* a row-major rows×cols matrix as an array of rows */
static void print_rows(FILE *out, const double *v, int64_t rows, int64_t cols)
{
    fputc('[', out);
    for (int64_t i = 0; i < rows; i++) {
        if (i)
            fputs(", ", out);
        print_row(out, v + i * cols, cols);
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
        print_rows(out, v, rows, cols);
    }
}

void json_print_result(FILE *out, const Module *m, const Bindings *b,
                       const double *value, double *const *grads)
{
    json_print_result_hessian(out, m, b, value, grads, NULL, 0);
}

void json_print_result_hessian(FILE *out, const Module *m, const Bindings *b,
                               const double *value, double *const *grads,
                               const double *H, int64_t n)
{
    fputs("{\"value\": ", out);
    print_value(out, value, m->fwd.value->shape, b->dims);
    if (m->naux && b->aux) {   /* spec §8: the auxiliary outputs, after the value */
        fputs(", \"aux\": {", out);
        for (int k = 0; k < m->naux; k++) {
            fprintf(out, "%s\"%s\": ", k ? ", " : "", m->aux_names[k]);
            print_value(out, b->aux[k], m->fwd.aux[k]->shape, b->dims);
        }
        fputc('}', out);
    }
    if (grads) {
        fputs(", \"gradient\": {", out);
        for (int k = 0; k < m->nwrt; k++) {
            const Input *x = &m->inputs[m->wrt[k]];
            fprintf(out, "%s\"%s\": ", k ? ", " : "", x->name);
            print_value(out, grads[k], x->shape, b->dims);
        }
        fputc('}', out);
    }
    if (H) {
        /* always an array of rows, [[h]] for one scalar (spec §9) */
        fputs(", \"hessian\": ", out);
        print_rows(out, H, n, n);
    }
    fputs("}\n", out);
}
