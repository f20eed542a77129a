/* diag.c — source text and error messages.
 *
 *   quad.expr:4:15: error: matrix product of [n, n] and [m] : ...
 *   f = x' * A * x - b' * y
 *                 ^
 * Columns count UTF-8 characters; the caret line copies the tabs of the
 * source line so the caret lines up in any terminal. */
#include "gradc.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

Source *source_from_string(Arena *a, const char *path, const char *text)
{
    Source *s = arena_alloc(a, sizeof *s);
    s->path = arena_strdup(a, path);
    s->len = strlen(text);
    s->text = arena_strndup(a, text, s->len);
    return s;
}

size_t read_cap_program = (size_t)64 << 20;   /* a million-statement program is ~30 MB */
size_t read_cap_json = (size_t)1 << 30;

/* "16 MiB" for a cap's message. */
static const char *size_text(size_t n, char *buf, size_t len)
{
    if (n >= ((size_t)1 << 30) && n % ((size_t)1 << 30) == 0)
        snprintf(buf, len, "%zu GiB", n >> 30);
    else if (n >= ((size_t)1 << 20) && n % ((size_t)1 << 20) == 0)
        snprintf(buf, len, "%zu MiB", n >> 20);
    else
        snprintf(buf, len, "%zu bytes", n);
    return buf;
}

char *file_read_capped(const char *path, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_plain("cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    /* A regular file's size is known: refuse a big one before reading it.
     * Otherwise (a pipe, a device) read in chunks up to the cap and stop. */
    struct stat st;
    size_t size = 4096, n = 0;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        size = (uint64_t)st.st_size > cap ? cap + 1 : (size_t)st.st_size + 1;
    char *buf = malloc(size + 1), *bigger;
    size_t got;
    while (buf && n <= cap && (got = fread(buf + n, 1, size - n, f)) > 0) {
        n += got;
        if (n == size && n <= cap) {
            size = size > cap / 2 ? cap + 1 : 2 * size;
            if (!(bigger = realloc(buf, size + 1)))
                free(buf);
            buf = bigger;
        }
    }
    int err = errno;
    bool failed = ferror(f);
    fclose(f);
    if (!buf) {
        diag_plain("cannot read %s: out of memory", path);
        return NULL;
    }
    if (failed || n > cap) {
        char cbuf[32];
        if (failed)
            diag_plain("cannot read %s: %s", path, strerror(err));
        else
            diag_plain("%s is larger than the limit of %s (raise it with --max-input SIZE)",
                       path, size_text(cap, cbuf, sizeof cbuf));
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

Source *source_read(Arena *a, const char *path)
{
    size_t len;
    char *text = file_read_capped(path, read_cap_program, &len);
    if (!text)
        return NULL;
    Source *s = arena_alloc(a, sizeof *s);
    s->path = arena_strdup(a, path);
    s->text = arena_alloc(a, len + 1);
    memcpy(s->text, text, len);
    s->len = len;
    free(text);
    return s;
}

const char *number_range_problem(double v, bool nonzero)
{
    if (isinf(v))
        return "is too large for a double";
    if (v == 0 && nonzero)
        return "is too small for a double (it would be 0)";
    return NULL;
}

/* The start of line `line` (1-based) in src and its length without the
 * newline (or a trailing '\r'); NULL past the end of the text. */
static const char *source_line(const Source *src, int line, size_t *len)
{
    const char *p = src->text, *end = src->text + src->len;
    for (int l = 1; l < line; l++) {
        p = memchr(p, '\n', (size_t)(end - p));
        if (!p)
            return NULL;
        p++;
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *len = (size_t)((nl ? nl : end) - p);
    if (*len > 0 && p[*len - 1] == '\r')
        (*len)--;
    return p;
}

/* The byte offset of character number `chars` (0-based) of line[0..len). */
static size_t char_offset(const char *line, size_t len, int chars)
{
    size_t i = 0;
    for (int c = 0; i < len; i++) {
        if (((unsigned char)line[i] & 0xC0) != 0x80 && c++ == chars)
            break;
    }
    return i;
}

/* Longer lines are shown as a window around the column. */
enum { WINDOW = 160 };

/* The source line, then spaces (the line's own tabs kept) up to column col
 * and a caret. */
static void print_excerpt(FILE *out, const char *line, size_t len, int col)
{
    int first = col > WINDOW / 2 ? col - WINDOW / 2 : 1;     /* first column shown */
    size_t from = char_offset(line, len, first - 1);
    size_t to = char_offset(line, len, first - 1 + WINDOW);
    const char *pre = from > 0 ? "..." : "", *post = to < len ? "..." : "";
    fprintf(out, "%s%.*s%s\n%s", pre, (int)(to - from), line + from, post,
            from > 0 ? "   " : "");
    int c = first;
    for (size_t i = from; i < to && c < col; i++) {
        unsigned char ch = (unsigned char)line[i];
        if ((ch & 0xC0) == 0x80)
            continue;          /* a UTF-8 continuation byte */
        fputc(ch == '\t' ? '\t' : ' ', out);
        c++;
    }
    for (; c < col; c++)
        fputc(' ', out);
    fputs("^\n", out);
}

/* Prints one diagnostic: the message line, then the excerpt and caret. */
static void print_labelled(FILE *out, const char *label, const Source *src, Loc loc,
                           const char *fmt, va_list ap)
{
    const char *path = src ? src->path : "gradc";
    if (loc.line <= 0)
        fprintf(out, "%s: %s: ", path, label);
    else
        fprintf(out, "%s:%d:%d: %s: ", path, loc.line, loc.col, label);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    if (!src || loc.line <= 0)
        return;
    size_t len;
    const char *line = source_line(src, loc.line, &len);
    if (!line)
        return;
    print_excerpt(out, line, len, loc.col);
}

static void print_diag(FILE *out, const Source *src, Loc loc, const char *fmt, va_list ap)
{
    print_labelled(out, "error", src, loc, fmt, ap);
}

/* ---- held diagnostics --------------------------------------------------
 * While the front end runs, messages are held rather than printed: the
 * parser reports an unclosed `if` only at the end of the file, and the
 * checker runs after the parser, so messages are found out of order.
 * diag_release sorts them by position (the order found breaks ties) and
 * prints the first DIAG_MAX_ERRORS.  They live in malloc'd memory, not an
 * arena: a hold may span the parser's and the checker's arenas' lifetimes. */

typedef struct Held {
    int line, col, seq;   /* line 0 (no position) sorts last */
    char *text;
    const char *path;
} Held;

static struct {
    bool on;
    Held *v;
    int len, cap, seq;
    bool exit_hooked;
} held;

static void held_push(const Source *src, Loc loc, const char *fmt, va_list ap)
{
    char *text = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&text, &size);
    if (!mem) {
        print_diag(stderr, src, loc, fmt, ap);
        return;
    }
    print_diag(mem, src, loc, fmt, ap);
    fclose(mem);
    if (held.len == held.cap) {
        int cap = held.cap ? 2 * held.cap : 32;
        Held *v = realloc(held.v, sizeof *v * (size_t)cap);
        if (!v) {
            fputs(text, stderr);
            free(text);
            return;
        }
        held.v = v;
        held.cap = cap;
    }
    held.v[held.len++] = (Held){loc.line > 0 ? loc.line : INT_MAX, loc.col, held.seq++, text,
                                src ? src->path : "gradc"};
}

static int held_order(const void *pa, const void *pb)
{
    const Held *a = pa, *b = pb;
    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    if (a->col != b->col)
        return a->col < b->col ? -1 : 1;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

static void release_at_exit(void) { diag_release(); }

void diag_hold(void)
{
    if (held.on)
        return;
    if (!held.exit_hooked)
        held.exit_hooked = atexit(release_at_exit) == 0;
    held.on = true;
}

int diag_count(void) { return held.len; }

int diag_release(void)
{
    int n = held.len;
    held.on = false;
    if (n > 0)   /* qsort's pointer must not be NULL, even for no elements */
        qsort(held.v, (size_t)n, sizeof *held.v, held_order);
    for (int i = 0; i < n; i++) {
        if (i < DIAG_MAX_ERRORS)
            fputs(held.v[i].text, stderr);
        free(held.v[i].text);
    }
    if (n > DIAG_MAX_ERRORS)
        fprintf(stderr, "%s: too many errors; only the first %d are shown\n", held.v[0].path,
                DIAG_MAX_ERRORS);
    free(held.v);
    held.v = NULL;
    held.len = held.cap = 0;
    return n;
}

void diag_verror(const Source *src, Loc loc, const char *fmt, va_list ap)
{
    if (held.on)
        held_push(src, loc, fmt, ap);
    else
        print_diag(stderr, src, loc, fmt, ap);
}

void diag_error(const Source *src, Loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(src, loc, fmt, ap);
    va_end(ap);
}

void diag_note_since(int first, const Source *src, Loc loc, const char *fmt, ...)
{
    if (first >= held.len)
        return;
    char *note = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&note, &size);
    if (!mem)
        return;
    va_list ap;
    va_start(ap, fmt);
    print_labelled(mem, "note", src, loc, fmt, ap);
    va_end(ap);
    fclose(mem);
    for (int i = first; i < held.len; i++) {
        size_t n = strlen(held.v[i].text);
        char *t = realloc(held.v[i].text, n + size + 1);
        if (!t)
            break;
        memcpy(t + n, note, size + 1);
        held.v[i].text = t;
    }
    free(note);
}

/* ---- hints ---------------------------------------------------------------- */

/* Spec §8: only names are indexed. */
const char diag_no_indexing[] = "only a name can be indexed: assign the value to a name "
                                "first (t = ...) and index that (t[1])";

/* The optimal-string-alignment distance (Levenshtein with adjacent swaps),
 * or a number > limit as soon as it must exceed limit. */
static int edit_distance(const char *a, const char *b, int limit)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64 || (n > m ? n - m : m - n) > (size_t)limit)
        return limit + 1;
    int d[65][65];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]
                && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[n][m];
}

const char *diag_closest(const char *name, const char *const *cands, int n)
{
    /* Up to 2 edits, fewer for short names: one in 2 to 4 characters, none
     * in one (x for z would be a guess, not a hint). */
    int len = (int)strlen(name), limit = (len + 1) / 3 < 2 ? (len + 1) / 3 : 2;
    const char *best = NULL;
    int best_d = limit + 1;
    for (int i = 0; i < n; i++) {
        if (!cands[i] || strcmp(cands[i], name) == 0)
            continue;
        int d = edit_distance(name, cands[i], best_d - 1);
        if (d < best_d) {
            best = cands[i];
            best_d = d;
        }
    }
    return best;
}

void diag_plain(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gradc: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
