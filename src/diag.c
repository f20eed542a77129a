/* diag.c — source text and error messages.
 *
 *   quad.expr:4:15: error: matrix product of [n, n] and [m] : ...
 *   f = x' * A * x - b' * y
 *                 ^
 * Columns count UTF-8 characters; the caret line copies the tabs of the
 * source line so the caret lines up in any terminal. */
#include "gradc.h"

#include <errno.h>
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
static void print_excerpt(const char *line, size_t len, int col)
{
    int first = col > WINDOW / 2 ? col - WINDOW / 2 : 1;     /* first column shown */
    size_t from = char_offset(line, len, first - 1);
    size_t to = char_offset(line, len, first - 1 + WINDOW);
    const char *pre = from > 0 ? "..." : "", *post = to < len ? "..." : "";
    fprintf(stderr, "%s%.*s%s\n%s", pre, (int)(to - from), line + from, post,
            from > 0 ? "   " : "");
    int c = first;
    for (size_t i = from; i < to && c < col; i++) {
        unsigned char ch = (unsigned char)line[i];
        if ((ch & 0xC0) == 0x80)
            continue;          /* a UTF-8 continuation byte */
        fputc(ch == '\t' ? '\t' : ' ', stderr);
        c++;
    }
    for (; c < col; c++)
        fputc(' ', stderr);
    fputs("^\n", stderr);
}

void diag_verror(const Source *src, Loc loc, const char *fmt, va_list ap)
{
    const char *path = src ? src->path : "gradc";
    if (loc.line <= 0)
        fprintf(stderr, "%s: error: ", path);
    else
        fprintf(stderr, "%s:%d:%d: error: ", path, loc.line, loc.col);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    if (!src || loc.line <= 0)
        return;
    size_t len;
    const char *line = source_line(src, loc.line, &len);
    if (!line)
        return;
    print_excerpt(line, len, loc.col);
}

void diag_error(const Source *src, Loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(src, loc, fmt, ap);
    va_end(ap);
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
