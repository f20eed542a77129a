/* jsontext.c — JSON text (RFC 8259, strictly) → a compact tree in the arena.
 *
 * Strict: one value and nothing after it but whitespace (a second object,
 * trailing garbage or a NUL byte is an error), no leading zeros, no
 * duplicate keys in an object, no raw control characters in strings, and a
 * number must be a double: one that overflows (1e999) or that is nonzero
 * but rounds to 0 (1e-400) is an error, as for the program's literals.
 * Every error gives the position, FILE:LINE:COL, with the line and a caret.
 *
 * Compact: an array whose entries are all numbers (a vector, a row) is
 * stored as its packed doubles, counted by a scan to its ']' before it is
 * read, so a 20 MB array of numbers costs 8 bytes a number and no node per
 * entry.  Other arrays and objects hold node pointers, collected on one
 * scratch stack and copied to the arena at their close.  Nesting is limited
 * (JSON_MAX_DEPTH), so the recursion is bounded. */
#include "gradc.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { JSON_MAX_DEPTH = 256 };

typedef struct Parser {
    Arena *a;
    const Source *src;
    const char *s;        /* the text */
    size_t len, pos;
    JVal **stack;         /* entries of the open arrays and objects */
    size_t nstack, capstack;
    bool failed;
} Parser;

Loc json_loc(const Source *src, size_t off)
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

static void fail(Parser *p, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(Parser *p, size_t off, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = true;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diag_error(p->src, json_loc(p->src, off), "not valid JSON: %s", msg);
}

static void skip_space(Parser *p)
{
    while (p->pos < p->len && strchr(" \t\n\r", p->s[p->pos]) && p->s[p->pos])
        p->pos++;
}

/* What is at off, for "expected X, found Y". */
static const char *found(Parser *p, size_t off)
{
    if (off >= p->len)
        return "the end of the file";
    unsigned char c = (unsigned char)p->s[off];
    if (c == 0)
        return "a NUL byte";
    if (c < 0x20 || c >= 0x7f)
        return arena_printf(p->a, "byte 0x%02x", c);
    return arena_printf(p->a, "'%c'", c);
}

static JVal *node(Parser *p, JKind kind, size_t off)
{
    JVal *v = arena_alloc(p->a, sizeof *v);
    v->kind = kind;
    v->off = off;
    return v;
}

/* A JSON number at p->pos (RFC 8259 §6) as a double; false after a message. */
static bool number(Parser *p, double *out)
{
    const char *s = p->s;
    size_t i = p->pos, start = i, n = p->len;
    bool nonzero = false;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n || s[i] < '0' || s[i] > '9') {
        fail(p, i, "expected a digit, found %s", found(p, i));
        return false;
    }
    if (s[i] == '0' && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9') {
        fail(p, i, "a number may not have a leading zero");
        return false;
    }
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        nonzero |= s[i] != '0';
    if (i < n && s[i] == '.') {
        if (++i >= n || s[i] < '0' || s[i] > '9') {
            fail(p, i, "expected a digit after '.', found %s", found(p, i));
            return false;
        }
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            nonzero |= s[i] != '0';
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        if (++i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || s[i] < '0' || s[i] > '9') {
            fail(p, i, "expected a digit in the exponent, found %s", found(p, i));
            return false;
        }
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    char *end;
    double v = strtod(s + start, &end);
    const char *why = number_range_problem(v, nonzero);
    if (why || end != s + i) {
        fail(p, start, "the number %.*s%s %s", (int)(i - start > 24 ? 20 : i - start),
             s + start, i - start > 24 ? "..." : "", why ? why : "is malformed");
        return false;
    }
    p->pos = i;
    *out = v;
    return true;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static char *put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3F));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* A string at p->pos (the opening quote), decoded; NULL after a message. */
static char *string(Parser *p)
{
    const char *s = p->s;
    size_t i = p->pos + 1, end = i;
    while (end < p->len && s[end] != '"')
        end += s[end] == '\\' ? 2 : 1;
    if (end >= p->len) {
        fail(p, p->pos, "a string that does not end");
        return NULL;
    }
    char *out = arena_alloc(p->a, end - i + 1), *o = out;   /* decoding only shrinks */
    while (i < end) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20) {
            fail(p, i, "%s inside a string (write it as an escape)", found(p, i));
            return NULL;
        }
        if (c != '\\') {
            *o++ = s[i++];
            continue;
        }
        const char *esc = strchr("\"\\/bfnrt", s[i + 1]);
        if (esc && s[i + 1]) {
            *o++ = "\"\\/\b\f\n\r\t"[esc - "\"\\/bfnrt"];
            i += 2;
            continue;
        }
        int cp = s[i + 1] == 'u' && i + 6 <= end ? hex4(s + i + 2) : -1;
        size_t at = i;
        i += 6;
        if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= end && s[i] == '\\' && s[i + 1] == 'u') {
            int lo = hex4(s + i + 2);
            if (lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
        }
        if (cp <= 0 || (cp >= 0xD800 && cp < 0xE000)) {
            fail(p, at, cp == 0 ? "\\u0000 in a string" : "a malformed escape in a string");
            return NULL;
        }
        o = put_utf8(o, (unsigned)cp);
    }
    *o = '\0';
    p->pos = end + 1;
    return out;
}

static JVal *value(Parser *p, int depth);

static void push(Parser *p, JVal *v)
{
    if (p->nstack == p->capstack) {
        size_t cap = p->capstack ? 2 * p->capstack : 64;
        JVal **bigger = realloc(p->stack, cap * sizeof *bigger);
        if (!bigger) {
            diag_plain("%s: out of memory", p->src->path);
            exit(1);
        }
        p->stack = bigger, p->capstack = cap;
    }
    p->stack[p->nstack++] = v;
}

/* The entries of an array that holds only numbers, or -1: a scan to its
 * ']' that sees nothing but number characters, commas and whitespace. */
static int64_t count_numbers(const Parser *p)
{
    int64_t commas = 0;
    bool any = false;
    for (size_t i = p->pos + 1; i < p->len; i++) {
        char c = p->s[i];
        if (c == ']')
            return any ? commas + 1 : 0;
        if (c == ',')
            commas++;
        else if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' ||
                 c == 'E')
            any = true;
        else if (!strchr(" \t\n\r", c) || !c)
            return -1;
    }
    return -1;
}

/* Separator or close after an entry of an array/object: true to go on. */
static bool next_entry(Parser *p, char close, const char *what)
{
    skip_space(p);
    if (p->pos < p->len && p->s[p->pos] == ',') {
        p->pos++;
        skip_space(p);
        if (p->pos < p->len && p->s[p->pos] == close)
            fail(p, p->pos, "a comma before '%c' (trailing commas are not JSON)", close);
        return !p->failed;
    }
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return false;
    }
    fail(p, p->pos, "expected ',' or '%c' in %s, found %s", close, what, found(p, p->pos));
    return false;
}

/* The entries pushed since mark become v's items (copied to the arena). */
static JVal *pop_entries(Parser *p, JVal *v, size_t mark)
{
    v->n = (int64_t)(p->nstack - mark);
    v->items = arena_alloc(p->a, sizeof(JVal *) * (size_t)v->n);
    memcpy(v->items, p->stack + mark, sizeof(JVal *) * (size_t)v->n);
    p->nstack = mark;
    return v;
}

static JVal *array(Parser *p, int depth)
{
    JVal *v = node(p, J_ARR, p->pos);
    int64_t n = count_numbers(p);
    p->pos++;
    skip_space(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        return v;
    }
    if (n >= 0) {                     /* packed: only numbers */
        v->nums = arena_alloc(p->a, sizeof(double) * (size_t)(n > 0 ? n : 1));
        do {
            if (v->n == n) {          /* the scan's count was off: malformed */
                fail(p, p->pos, "expected ']', found %s", found(p, p->pos));
                return NULL;
            }
            if (!number(p, &v->nums[v->n++]))
                return NULL;
        } while (next_entry(p, ']', "an array"));
        return p->failed ? NULL : v;
    }
    size_t mark = p->nstack;
    do {
        JVal *e = value(p, depth + 1);
        if (!e)
            return NULL;
        push(p, e);
    } while (next_entry(p, ']', "an array"));
    return p->failed ? NULL : pop_entries(p, v, mark);
}

static int by_key(const void *x, const void *y)
{
    const JVal *a = *(JVal *const *)x, *b = *(JVal *const *)y;
    int c = strcmp(a->key, b->key);
    return c ? c : (a->key_off > b->key_off) - (a->key_off < b->key_off);
}

static JVal *object(Parser *p, int depth)
{
    JVal *v = node(p, J_OBJ, p->pos);
    p->pos++;
    skip_space(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
        return v;
    }
    size_t mark = p->nstack;
    do {
        if (p->pos >= p->len || p->s[p->pos] != '"') {
            fail(p, p->pos, "expected a key (a string in \"quotes\"), found %s", found(p, p->pos));
            return NULL;
        }
        size_t key_off = p->pos;
        char *key = string(p);
        if (!key)
            return NULL;
        skip_space(p);
        if (p->pos >= p->len || p->s[p->pos] != ':') {
            fail(p, p->pos, "expected ':' after the key \"%s\", found %s", key, found(p, p->pos));
            return NULL;
        }
        p->pos++;
        JVal *e = value(p, depth + 1);
        if (!e)
            return NULL;
        e->key = key;
        e->key_off = key_off;
        push(p, e);
    } while (next_entry(p, '}', "an object"));
    if (p->failed || !pop_entries(p, v, mark))
        return NULL;
    /* duplicate keys: sorted by key, then position, a repeat is adjacent */
    JVal **sorted = arena_alloc(p->a, sizeof(JVal *) * (size_t)v->n);
    memcpy(sorted, v->items, sizeof(JVal *) * (size_t)v->n);
    qsort(sorted, (size_t)v->n, sizeof *sorted, by_key);
    for (int64_t i = 1; i < v->n; i++) {
        if (strcmp(sorted[i - 1]->key, sorted[i]->key) == 0) {
            Loc first = json_loc(p->src, sorted[i - 1]->key_off);
            fail(p, sorted[i]->key_off, "the key \"%s\" appears twice (first at line %d, column %d)",
                 sorted[i]->key, first.line, first.col);
            return NULL;
        }
    }
    return v;
}

static bool word(Parser *p, const char *w)
{
    size_t n = strlen(w);
    return p->len - p->pos >= n && memcmp(p->s + p->pos, w, n) == 0;
}

static JVal *value(Parser *p, int depth)
{
    skip_space(p);
    if (depth > JSON_MAX_DEPTH) {
        fail(p, p->pos, "nested deeper than %d arrays and objects", JSON_MAX_DEPTH);
        return NULL;
    }
    if (p->pos >= p->len) {
        fail(p, p->pos, "it ends where a value was expected");
        return NULL;
    }
    char c = p->s[p->pos];
    if (c == '[')
        return array(p, depth);
    if (c == '{')
        return object(p, depth);
    JVal *v = node(p, J_NUM, p->pos);
    if (c == '-' || (c >= '0' && c <= '9'))
        return number(p, &v->num) ? v : NULL;
    if (c == '"') {
        v->kind = J_STR;
        return (v->str = string(p)) ? v : NULL;
    }
    static const struct { const char *w; JKind k; } words[] = {
        {"true", J_TRUE}, {"false", J_FALSE}, {"null", J_NULL},
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (word(p, words[i].w)) {
            v->kind = words[i].k;
            p->pos += strlen(words[i].w);
            return v;
        }
    }
    fail(p, p->pos, "expected a value, found %s%s", found(p, p->pos),
         word(p, "NaN") || word(p, "Inf") || word(p, "-Inf") ? " (NaN and Infinity are not JSON)" : "");
    return NULL;
}

JVal *json_parse(Arena *a, const Source *src)
{
    Parser p = {.a = a, .src = src, .s = src->text, .len = src->len};
    JVal *v = value(&p, 0);
    if (v) {
        skip_space(&p);
        if (p.pos < p.len) {
            fail(&p, p.pos, "%s after the JSON value (only one value is allowed)",
                 found(&p, p.pos));
            v = NULL;
        }
    }
    free(p.stack);
    return v;
}

const char *json_kind_name(JKind k)
{
    static const char *const names[] = {"null", "false", "true", "a number", "a string",
                                        "an array", "an object"};
    return names[k];
}
