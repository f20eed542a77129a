/* dim.c — dimensions as linear forms (spec §8): k + c1*s1 + c2*s2 + …
 *
 * A term's key is a symbol, or (kron's shapes, m*n rows) a product of
 * symbols: a key >= DIM_PRODUCT is an entry of a second table of sorted
 * symbol lists (monomials), so a form stays a sorted list of keys and
 * coefficients and dim_eq a comparison of two ints.
 *
 * A literal and a lone symbol keep their small encodings (dim_lit,
 * dim_sym); any other form is normalised (terms sorted by symbol, like
 * terms merged, zero coefficients dropped) and interned in one table, so a
 * Dim stays a small value and dim_eq stays a comparison of two ints: equal
 * normal forms are the same entry.  The table is process-wide (a form means
 * the same thing in any module: its symbols are that module's indices) and
 * only grows; it holds one entry per distinct form ever built. */
#include "gradc.h"

#include <stdlib.h>
#include <string.h>

typedef struct Form {
    int64_t k;
    int n;
    int *syms;
    int64_t *coefs;
    uint32_t hash;
} Form;

static struct {
    Form *forms;
    int len, cap;
    int *buckets;      /* index + 1; 0 empty */
    int nbuckets;
} table;

static _Noreturn void out_of_memory(void)
{
    fprintf(stderr, "gradc: out of memory (dimension forms)\n");
#ifdef GRADC_FUZZING
    abort();   /* libFuzzer reports and saves the input; an exit would be silent */
#endif
    exit(70);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        out_of_memory();
    return p;
}

static uint32_t form_hash(int64_t k, int n, const int *syms, const int64_t *coefs)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)k;
    for (int i = 0; i < n; i++)
        h = (h ^ (uint64_t)syms[i]) * 1099511628211ull, h = (h ^ (uint64_t)coefs[i]) * 1099511628211ull;
    return (uint32_t)(h ^ (h >> 32));
}

static bool form_same(const Form *f, int64_t k, int n, const int *syms, const int64_t *coefs)
{
    return f->k == k && f->n == n && memcmp(f->syms, syms, sizeof *syms * (size_t)n) == 0 &&
           memcmp(f->coefs, coefs, sizeof *coefs * (size_t)n) == 0;
}

static void rehash(void)
{
    int nb = table.nbuckets ? table.nbuckets * 2 : 64;
    int *b = xrealloc(NULL, sizeof *b * (size_t)nb);
    memset(b, 0, sizeof *b * (size_t)nb);
    for (int i = 0; i < table.len; i++) {
        uint32_t at = table.forms[i].hash & (uint32_t)(nb - 1);
        while (b[at])
            at = (at + 1) & (uint32_t)(nb - 1);
        b[at] = i + 1;
    }
    free(table.buckets);
    table.buckets = b;
    table.nbuckets = nb;
}

/* The entry of a normalised form with at least one term (not a lone symbol). */
static int intern(int64_t k, int n, const int *syms, const int64_t *coefs)
{
    uint32_t h = form_hash(k, n, syms, coefs);
    if (2 * (table.len + 1) > table.nbuckets)
        rehash();
    uint32_t at = h & (uint32_t)(table.nbuckets - 1);
    for (; table.buckets[at]; at = (at + 1) & (uint32_t)(table.nbuckets - 1)) {
        Form *f = &table.forms[table.buckets[at] - 1];
        if (f->hash == h && form_same(f, k, n, syms, coefs))
            return table.buckets[at] - 1;
    }
    if (table.len == table.cap) {
        table.cap = table.cap ? 2 * table.cap : 64;
        table.forms = xrealloc(table.forms, sizeof *table.forms * (size_t)table.cap);
    }
    Form *f = &table.forms[table.len];
    *f = (Form){k, n, xrealloc(NULL, sizeof *syms * (size_t)n), xrealloc(NULL, sizeof *coefs * (size_t)n), h};
    memcpy(f->syms, syms, sizeof *syms * (size_t)n);
    memcpy(f->coefs, coefs, sizeof *coefs * (size_t)n);
    table.buckets[at] = table.len + 1;
    return table.len++;
}

/* ---- products of symbols: monomial keys ---- */

static struct {
    int **syms;        /* each: n, then n sorted symbols */
    int len, cap;
} monos;

/* The key of the product of the n sorted symbols s (n >= 2). */
static int mono_key(const int *s, int n)
{
    for (int i = 0; i < monos.len; i++)
        if (monos.syms[i][0] == n && memcmp(monos.syms[i] + 1, s, sizeof *s * (size_t)n) == 0)
            return DIM_PRODUCT + i;
    if (monos.len == monos.cap) {
        monos.cap = monos.cap ? 2 * monos.cap : 16;
        monos.syms = xrealloc(monos.syms, sizeof *monos.syms * (size_t)monos.cap);
    }
    int *m = xrealloc(NULL, sizeof *m * (size_t)(n + 1));
    m[0] = n;
    memcpy(m + 1, s, sizeof *s * (size_t)n);
    monos.syms[monos.len] = m;
    return DIM_PRODUCT + monos.len++;
}

int dim_key_factors(int key, const int **syms)
{
    static int lone[1];
    if (key < DIM_PRODUCT) {
        lone[0] = key;
        *syms = lone;
        return 1;
    }
    *syms = monos.syms[key - DIM_PRODUCT] + 1;
    return monos.syms[key - DIM_PRODUCT][0];
}

/* The key of the product of two keys: their symbols merged in order. */
static int key_mul(int a, int b)
{
    const int *x, *y;
    int nx = dim_key_factors(a, &x), xs[64];
    memcpy(xs, x, sizeof *x * (size_t)nx);   /* dim_key_factors' lone buffer is shared */
    int ny = dim_key_factors(b, &y);
    if (nx + ny > 64)
        out_of_memory();
    int s[64], i = 0, j = 0, n = 0;
    while (i < nx || j < ny)
        s[n++] = j >= ny || (i < nx && xs[i] <= y[j]) ? xs[i++] : y[j++];
    return mono_key(s, n);
}

DimView dim_view(Dim d)
{
    static const int64_t one = 1;
    if (d.sym >= 0)
        return (DimView){0, 1, NULL, &one, d.sym};
    if (d.sym == -1)
        return (DimView){d.n, 0, NULL, NULL, -1};
    const Form *f = &table.forms[d.n];
    return (DimView){f->k, f->n, f->syms, f->coefs, -1};
}

/* The symbol of view term i (a lone symbol's is kept in the view itself). */
static int view_sym(const DimView *v, int i) { return v->syms ? v->syms[i] : v->sym; }

int dim_view_sym(const DimView *v, int i) { return view_sym(v, i); }

/* k + sum coefs[i]*syms[i] in normal form; syms may repeat, in any order. */
Dim dim_form(int64_t k, int n, const int *syms, const int64_t *coefs)
{
    int ss[64];
    int64_t cs[64];
    int *s = n <= 64 ? ss : xrealloc(NULL, sizeof *s * (size_t)n);
    int64_t *c = n <= 64 ? cs : xrealloc(NULL, sizeof *c * (size_t)n);
    int m = 0;
    for (int i = 0; i < n; i++) {     /* insertion into sorted, merging */
        int j = 0;
        while (j < m && s[j] < syms[i])
            j++;
        if (j < m && s[j] == syms[i]) {
            c[j] += coefs[i];
            continue;
        }
        memmove(s + j + 1, s + j, sizeof *s * (size_t)(m - j));
        memmove(c + j + 1, c + j, sizeof *c * (size_t)(m - j));
        s[j] = syms[i], c[j] = coefs[i], m++;
    }
    int z = 0;
    for (int i = 0; i < m; i++)
        if (c[i] != 0)
            s[z] = s[i], c[z] = c[i], z++;
    Dim d;
    if (z == 0)
        d = dim_lit(k);
    else if (z == 1 && k == 0 && c[0] == 1 && s[0] < DIM_PRODUCT)   /* a product stays a form */
        d = dim_sym(s[0]);
    else
        d = (Dim){.sym = -2, .n = intern(k, z, s, c)};
    if (s != ss)
        free(s);
    if (c != cs)
        free(c);
    return d;
}

/* a + sign*b: both normal forms, so their terms merge in one pass */
static Dim combine(Dim a, Dim b, int64_t sign)
{
    DimView x = dim_view(a), y = dim_view(b);
    int n = x.n + y.n, m = 0, i = 0, j = 0;
    int ss[64];
    int64_t cs[64];
    int *s = n <= 64 ? ss : xrealloc(NULL, sizeof *s * (size_t)n);
    int64_t *c = n <= 64 ? cs : xrealloc(NULL, sizeof *c * (size_t)n);
    while (i < x.n || j < y.n) {
        int sx = i < x.n ? view_sym(&x, i) : -1, sy = j < y.n ? view_sym(&y, j) : -1;
        int64_t v = 0;
        int sym;
        if (sy < 0 || (sx >= 0 && sx < sy))
            sym = sx, v = x.coefs[i++];
        else if (sx < 0 || sy < sx)
            sym = sy, v = sign * y.coefs[j++];
        else
            sym = sx, v = x.coefs[i++] + sign * y.coefs[j++];
        if (v)
            s[m] = sym, c[m++] = v;
    }
    int64_t k = x.k + sign * y.k;
    Dim d = m == 0 ? dim_lit(k)
          : m == 1 && k == 0 && c[0] == 1 && s[0] < DIM_PRODUCT ? dim_sym(s[0])
          : (Dim){.sym = -2, .n = intern(k, m, s, c)};
    if (s != ss)
        free(s);
    if (c != cs)
        free(c);
    return d;
}

Dim dim_add(Dim a, Dim b) { return combine(a, b, 1); }

Dim dim_mul(Dim a, Dim b)
{
    DimView x = dim_view(a), y = dim_view(b);
    int n = (x.n + 1) * (y.n + 1);
    int *s = xrealloc(NULL, sizeof *s * (size_t)n);
    int64_t *c = xrealloc(NULL, sizeof *c * (size_t)n);
    int m = 0;
    for (int i = 0; i < x.n; i++) {
        int kx = view_sym(&x, i);
        for (int j = 0; j < y.n; j++)
            s[m] = key_mul(kx, view_sym(&y, j)), c[m++] = x.coefs[i] * y.coefs[j];
        if (y.k)
            s[m] = kx, c[m++] = x.coefs[i] * y.k;
    }
    for (int j = 0; j < y.n && x.k; j++)
        s[m] = view_sym(&y, j), c[m++] = x.k * y.coefs[j];
    Dim d = dim_form(x.k * y.k, m, s, c);
    free(s);
    free(c);
    return d;
}
Dim dim_sub(Dim a, Dim b) { return combine(a, b, -1); }

bool dim_is_lit(Dim d, int64_t *n)
{
    if (d.sym != -1)
        return false;
    if (n)
        *n = d.n;
    return true;
}

int64_t dim_eval(Dim d, const int64_t *dims)
{
    DimView v = dim_view(d);
    int64_t r = v.k;
    for (int i = 0; i < v.n; i++) {
        const int *f;
        int64_t t = v.coefs[i];
        for (int j = 0, nf = dim_key_factors(view_sym(&v, i), &f); j < nf; j++)
            t *= dims[f[j]];
        r += t;
    }
    return r;
}

/* "n", "3", "n - 1", "2*n + m + 1": the language's own syntax, so that
 * derive's output parses back. */
const char *dim_str(Arena *a, Dim d, const char *const *dimnames)
{
    DimView v = dim_view(d);
    if (v.n == 0)
        return arena_printf(a, "%lld", (long long)v.k);
    const char *s = "";
    for (int i = 0; i < v.n; i++) {
        const int *f;
        const char *name = "";
        for (int j = 0, nf = dim_key_factors(view_sym(&v, i), &f); j < nf; j++)
            name = arena_printf(a, "%s%s%s", name, j ? "*" : "",
                                dimnames ? dimnames[f[j]] : arena_printf(a, "d%d", f[j]));
        int64_t c = v.coefs[i];
        const char *sign = i == 0 ? (c < 0 ? "-" : "") : (c < 0 ? " - " : " + ");
        int64_t m = c < 0 ? -c : c;
        s = m == 1 ? arena_printf(a, "%s%s%s", s, sign, name)
                   : arena_printf(a, "%s%s%lld*%s", s, sign, (long long)m, name);
    }
    if (v.k)
        s = arena_printf(a, "%s %s %lld", s, v.k < 0 ? "-" : "+", (long long)(v.k < 0 ? -v.k : v.k));
    return s;
}
