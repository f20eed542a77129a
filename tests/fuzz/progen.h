/* progen.h — decodes fuzzer bytes into a small well-typed .expr program
 * (fuzz_diff.c runs it in both engines; fuzz_front.c feeds it to the front
 * end when its input starts with PROGEN_MAGIC).
 *
 * program(g) reads g->in and writes g->text: one or two dimension symbols
 * and their sizes, one to four inputs (scalars, vectors, matrices), a
 * handful of statements (assignments, if/else, for, bounded while) whose
 * expressions are drawn from the language's operators and built-ins.  Every
 * byte string decodes to a program (missing bytes read as 0), and the
 * programs are meant to be valid: the shapes agree, names are in scope.
 *
 * Like tests/randprog.py the generator keeps expressions well conditioned
 * (arguments of periodic functions squashed by tanh, denominators bounded
 * away from 0, matrices inverted only when diagonally dominant, loop updates
 * bounded), so that a rounding difference of 1e-16 between two engines (a
 * laned sum, a fused multiply-add) is not amplified past 1e-12; only in
 * "wild" programs do the operations leave their domains (NaN, infinities). */
#ifndef GRADC_PROGEN_H
#define GRADC_PROGEN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* A first byte that no program text starts with (fuzz_front.c). */
#define PROGEN_MAGIC 0x01

/* ---- the bytes ------------------------------------------------------------ */

typedef struct Bytes {
    const uint8_t *p;
    size_t n, i;
} Bytes;

static unsigned take(Bytes *b)
{
    return b->i < b->n ? b->p[b->i++] : 0;
}

static int pick(Bytes *b, int n)
{
    return (int)(take(b) % (unsigned)n);
}

/* ---- program text ----------------------------------------------------------- */

enum { TEXT_MAX = 1 << 15, MAX_NAMES = 48, MAX_DEPTH = 3 };

/* Dimensions by index: 0 the literal 1, then the symbols n, m, then the
 * literals 2 and 3.  Two shapes are equal for the checker only when their
 * dimensions are the same index. */
enum { D_ONE, D_N, D_M, D_TWO, D_THREE, ND };
static const char *const dim_text[ND] = {"1", "n", "m", "2", "3"};

typedef struct Shp {
    int r, c;
} Shp;

static const Shp SCALAR = {D_ONE, D_ONE};

typedef struct Name {
    char name[8];
    Shp s;
    bool readonly;        /* a loop index */
} Name;

typedef struct Gen {
    Bytes *in;
    char text[TEXT_MAX];
    size_t len;
    bool overflow;
    int ndims;            /* symbols in use: n, or n and m */
    int64_t dimval[ND];
    int dims[ND];         /* the dimensions shapes are drawn from */
    int ndimset;
    Name names[MAX_NAMES];/* the names in scope */
    int nnames;
    int ninputs;
    int nvars, nloops;
    int indent;
    bool wild;            /* operations outside their domains allowed */
    int budget;           /* operators left for the current expression */
} Gen;

static void out(Gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(Gen *g, const char *fmt, ...)
{
    if (g->overflow)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(g->text + g->len, TEXT_MAX - g->len, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= TEXT_MAX - g->len)
        g->overflow = true;
    else
        g->len += (size_t)k;
}

static void line_start(Gen *g)
{
    for (int i = 0; i < g->indent; i++)
        out(g, "    ");
}

static bool shp_eq(Shp a, Shp b)
{
    return a.r == b.r && a.c == b.c;
}

static bool is_scalar(Shp s)
{
    return shp_eq(s, SCALAR);
}

static int dim(Gen *g)
{
    return g->dims[pick(g->in, g->ndimset)];
}

static Shp any_shape(Gen *g)
{
    switch (pick(g->in, 5)) {
    case 0: return SCALAR;
    case 1: case 2: return (Shp){dim(g), D_ONE};
    case 3: { int d = dim(g); return (Shp){d, d}; }
    default: return (Shp){dim(g), dim(g)};
    }
}

/* A name, not yet in scope (declare() makes it visible). */
static Name make_name(const char *prefix, int k, Shp s)
{
    Name n = {.s = s};
    snprintf(n.name, sizeof n.name, "%s%d", prefix, k);
    return n;
}

static Name *declare(Gen *g, Name n)
{
    if (g->nnames == MAX_NAMES)
        return NULL;
    g->names[g->nnames] = n;
    return &g->names[g->nnames++];
}

/* A name in scope of shape s, or NULL. */
static const Name *name_of(Gen *g, Shp s, bool writable)
{
    int cand[MAX_NAMES], nc = 0;
    for (int i = 0; i < g->nnames; i++)
        if (shp_eq(g->names[i].s, s) && !(writable && (g->names[i].readonly || i < g->ninputs)))
            cand[nc++] = i;
    return nc ? &g->names[cand[pick(g->in, nc)]] : NULL;
}

/* ---- expressions -------------------------------------------------------------- */

static void expr(Gen *g, Shp s, int depth);

/* A constant of shape s (a literal, ones, zeros, eye), maybe scaled. */
static void constant(Gen *g, Shp s)
{
    static const char *const lits[] = {"0.5", "2", "1.5", "0.25", "3", "1e-1", ".75", "1", "0"};
    if (is_scalar(s)) {
        out(g, "%s", lits[pick(g->in, 9)]);
        return;
    }
    const Name *k = pick(g->in, 2) ? name_of(g, SCALAR, false) : NULL;
    if (k)
        out(g, "%s * ", k->name);
    const char *r = dim_text[s.r], *c = dim_text[s.c];
    if (s.c == D_ONE)
        out(g, "%s(%s)", pick(g->in, 3) ? "ones" : "zeros", r);
    else if (s.r == D_ONE)
        out(g, "ones(%s)'", c);
    else if (s.r == s.c && pick(g->in, 2))
        out(g, "eye(%s)", r);
    else
        out(g, "%s(%s, %s)", pick(g->in, 3) ? "ones" : "zeros", r, c);
}

static void leaf(Gen *g, Shp s)
{
    const Name *n = pick(g->in, 4) ? name_of(g, s, false) : NULL;
    if (n) {
        out(g, "%s", n->name);
        return;
    }
    Shp t = {s.c, s.r};
    if (!shp_eq(s, t) && (n = name_of(g, t, false)) != NULL) {
        out(g, "%s'", n->name);
        return;
    }
    if (is_scalar(s) && pick(g->in, 3) == 0) {
        /* a dimension as a value, or a reduction of a name */
        if (pick(g->in, 2)) {
            out(g, "%s", dim_text[D_N + pick(g->in, g->ndims)]);
        } else if (g->nnames) {
            const Name *x = &g->names[pick(g->in, g->nnames)];
            static const char *const red[] = {"sum", "mean", "norm"};
            out(g, "%s(%s)", red[pick(g->in, 3)], x->name);
        } else {
            constant(g, s);
        }
        return;
    }
    constant(g, s);
}

static void sub(Gen *g, Shp s, int depth)
{
    out(g, "(");
    expr(g, s, depth - 1);
    out(g, ")");
}

/* A matrix product's right factor: often a plain name, as in A*x or
 * x'*x, so that products sharing a factor (P*x ± Q*x) are common. */
static void factor(Gen *g, Shp s, int depth)
{
    if (pick(g->in, 2))
        leaf(g, s);
    else
        sub(g, s, depth);
}

/* The argument of a function ill-conditioned for large arguments. */
static void tame(Gen *g, Shp s, int depth)
{
    if (pick(g->in, 3) == 0) {
        leaf(g, s);
        return;
    }
    out(g, "tanh(");
    expr(g, s, depth - 1);
    out(g, ")");
}

/* A scalar bounded away from 0 (a denominator). */
static void pos_scalar(Gen *g, int depth)
{
    switch (pick(g->in, 4)) {
    case 0: out(g, "(2 + sin("); tame(g, SCALAR, depth); out(g, "))"); break;
    case 1: out(g, "(1 + "); sub(g, SCALAR, depth); out(g, " ^ 2)"); break;
    case 2: out(g, "%s", dim_text[D_N + pick(g->in, g->ndims)]); break;
    default: out(g, "%s", pick(g->in, 2) ? "4" : "0.5"); break;
    }
}

/* A strictly diagonally dominant d×d matrix; in wild programs sometimes a
 * singular one (every entry equal) or its negative. */
static void wellcond(Gen *g, int d, int depth)
{
    if (g->wild && pick(g->in, 3) == 0) {
        out(g, "(");
        leaf(g, SCALAR);
        out(g, " * ones(%s, %s))", dim_text[d], dim_text[d]);
        return;
    }
    static const char *const f[] = {"tanh", "sin", "cos"};
    out(g, "(%s(", f[pick(g->in, 3)]);
    tame(g, (Shp){d, d}, depth);
    out(g, ") + (%s + 1) * eye(%s))", dim_text[d], dim_text[d]);
}

static void unary(Gen *g, Shp s, int depth)
{
    if (g->wild && pick(g->in, 3) == 0) {
        static const char *const f[][2] = {
            {"log(", ")"}, {"sqrt(", ")"}, {"1 ./ (", ")"}, {"exp(", ")"}, {"tan(", ")"},
            {"log1p(", ")"}, {"(", ") .^ 0.5"}, {"(", ") .^ -1"}, {"(", ") ./ 0"},
            {"abs(", ")"}, {"relu(", ")"}, {"sqrt(abs(", "))"},
        };
        int k = pick(g->in, 12);
        out(g, "%s", f[k][0]);
        expr(g, s, depth - 1);
        out(g, "%s", f[k][1]);
        return;
    }
    static const char *const f[] = {"sin", "cos", "tanh", "sigmoid", "softplus", "exp"};
    switch (pick(g->in, 11)) {
    case 0: out(g, "log(1 + "); sub(g, s, depth); out(g, " .^ 2)"); break;
    case 1: out(g, "log1p("); sub(g, s, depth); out(g, " .^ 2)"); break;
    case 2: out(g, "sqrt(1 + "); sub(g, s, depth); out(g, " .^ 2)"); break;
    case 3: out(g, "abs("); expr(g, s, depth - 1); out(g, ")"); break;
    case 4: out(g, "relu("); expr(g, s, depth - 1); out(g, ")"); break;
    case 5: out(g, "sqrt(abs("); expr(g, s, depth - 1); out(g, ") + 1)"); break;
    case 6: out(g, "log(sigmoid("); tame(g, s, depth); out(g, "))"); break;
    case 7: out(g, "tan(sin("); tame(g, s, depth); out(g, "))"); break;
    default: {
        const char *fn = f[pick(g->in, 6)];
        out(g, "%s(", fn);
        if (fn[0] == 't' && fn[1] == 'a')
            expr(g, s, depth - 1);   /* tanh is well conditioned everywhere */
        else
            tame(g, s, depth);
        out(g, ")");
    }
    }
}

/* A scalar from a reduction of something of any shape. */
static void reduction(Gen *g, int depth)
{
    Shp t = any_shape(g);
    int d = dim(g);
    switch (pick(g->in, 9)) {
    case 0: out(g, "sum("); expr(g, t, depth - 1); out(g, ")"); break;
    case 1: out(g, "mean("); expr(g, t, depth - 1); out(g, ")"); break;
    case 2: out(g, "norm("); expr(g, t, depth - 1); out(g, ")"); break;
    case 3:
        out(g, "dot(");
        expr(g, t, depth - 1);
        out(g, ", ");
        expr(g, t, depth - 1);
        out(g, ")");
        break;
    case 4: out(g, "trace("); expr(g, (Shp){d, d}, depth - 1); out(g, ")"); break;
    case 5: out(g, "logsumexp("); tame(g, t, depth); out(g, ")"); break;
    case 6: out(g, "det("); wellcond(g, d, depth); out(g, ")"); break;
    case 7: out(g, "logdet("); wellcond(g, d, depth); out(g, ")"); break;
    default: {
        /* x' * A * x style products: 1×k times k×1 */
        int k = dim(g);
        sub(g, (Shp){D_ONE, k}, depth);
        out(g, " * ");
        factor(g, (Shp){k, D_ONE}, depth);
    }
    }
}

static void expr(Gen *g, Shp s, int depth)
{
    if (g->overflow)
        return;
    if (depth <= 0 || --g->budget <= 0 || pick(g->in, 4) == 0) {
        leaf(g, s);
        return;
    }
    bool square = s.r == s.c && !is_scalar(s);
    switch (pick(g->in, is_scalar(s) ? 20 : 18)) {
    case 0: case 1:
        expr(g, s, depth - 1);
        out(g, pick(g->in, 2) ? " + " : " - ");
        sub(g, s, depth);
        break;
    case 2: sub(g, s, depth); out(g, " .* "); sub(g, s, depth); break;
    case 3: out(g, "-"); sub(g, s, depth); break;
    case 4: sub(g, s, depth); out(g, " / "); pos_scalar(g, depth); break;
    case 5: sub(g, s, depth); out(g, " ./ (1 + "); sub(g, s, depth); out(g, " .^ 2)"); break;
    case 6: sub(g, s, depth); out(g, " .^ %s", pick(g->in, 2) ? "2" : "3"); break;
    case 7: case 8: unary(g, s, depth); break;
    case 9: {
        out(g, "%s(", pick(g->in, 2) ? "max" : "min");
        expr(g, s, depth - 1);
        out(g, ", ");
        expr(g, pick(g->in, 3) ? s : SCALAR, depth - 1);
        out(g, ")");
        break;
    }
    case 10: out(g, "detach("); expr(g, s, depth - 1); out(g, ")"); break;
    case 11: case 12: {
        int k = pick(g->in, 4) ? dim(g) : D_ONE;
        sub(g, (Shp){s.r, k}, depth);
        out(g, " * ");
        factor(g, (Shp){k, s.c}, depth);
        if (k != D_ONE && pick(g->in, 2))
            out(g, " / %s", dim_text[k]);
        break;
    }
    case 13: sub(g, (Shp){s.c, s.r}, depth); out(g, "'"); break;
    case 14:
        if (!is_scalar(s)) {
            /* a scalar broadcast, on either side */
            static const char *const op[] = {" * ", " + ", " - ", " .* "};
            bool left = pick(g->in, 3) != 0;
            sub(g, left ? SCALAR : s, depth);
            out(g, "%s", op[pick(g->in, 4)]);
            sub(g, left ? s : SCALAR, depth);
        } else {
            sub(g, s, depth);
            out(g, " ^ %s", pick(g->in, 2) ? "2" : "3");
        }
        break;
    case 15:
        if (square) {
            out(g, "inv(");
            wellcond(g, s.r, depth);
            out(g, ")");
        } else if (s.c == D_ONE && s.r != D_ONE) {
            out(g, "softmax(");
            tame(g, s, depth);
            out(g, ")");
        } else {
            unary(g, s, depth);
        }
        break;
    case 16:
        if (square) {
            out(g, "diag(");
            expr(g, (Shp){s.r, D_ONE}, depth - 1);
            out(g, ")");
        } else if (s.c == D_ONE && s.r != D_ONE) {
            out(g, "diag(");
            expr(g, (Shp){s.r, s.r}, depth - 1);
            out(g, ")");
        } else {
            sub(g, s, depth);
            out(g, " - ");
            sub(g, s, depth);
        }
        break;
    case 17:
        if (square) {
            sub(g, s, depth);
            out(g, " * inv(");
            wellcond(g, s.r, depth);
            out(g, ")");
        } else {
            sub(g, s, depth);
            out(g, " ./ (2 + cos(");
            tame(g, s, depth);
            out(g, "))");
        }
        break;
    default:
        reduction(g, depth);
        break;
    }
}

static void full_expr(Gen *g, Shp s)
{
    g->budget = 4 + pick(g->in, 8);
    expr(g, s, 1 + pick(g->in, MAX_DEPTH));
}

/* ---- statements ------------------------------------------------------------ */

/* target = value.  In a loop body (bounded) the update stays bounded:
 * tanh(e), or t - 0.1 tanh(e) for a target already defined (not fresh). */
static void assign(Gen *g, const Name *target, bool bounded, bool fresh)
{
    line_start(g);
    out(g, "%s = ", target->name);
    if (!bounded) {
        full_expr(g, target->s);
    } else if (fresh || pick(g->in, 2)) {
        out(g, "tanh(");
        full_expr(g, target->s);
        out(g, ")");
    } else {
        out(g, "%s - 0.1 * tanh(", target->name);
        full_expr(g, target->s);
        out(g, ")");
    }
    out(g, "\n");
}

/* A fresh variable: assigned first, visible after (when there is room). */
static void new_var(Gen *g, Shp s, bool bounded)
{
    if (g->nnames == MAX_NAMES)
        return;
    Name v = make_name("t", g->nvars++, s);
    assign(g, &v, bounded, true);
    declare(g, v);
}

/* A condition: a comparison of a scalar with a literal, maybe combined. */
static void condition(Gen *g)
{
    static const char *const cmp[] = {"<", "<=", ">", ">=", "==", "!="};
    static const char *const lit[] = {"0", "0.5", "1", "-1", "2"};
    int k = 1 + (pick(g->in, 4) == 0);
    for (int i = 0; i < k; i++) {
        if (i)
            out(g, pick(g->in, 2) ? " and " : " or ");
        if (pick(g->in, 6) == 0)
            out(g, "not ");
        out(g, "(");
        full_expr(g, SCALAR);
        out(g, " %s %s)", cmp[pick(g->in, 6)], lit[pick(g->in, 5)]);
    }
}

static void block(Gen *g, int nstmts, int depth, bool in_loop);

/* The writable names an inner block may update (in scope before it). */
static int writable(Gen *g, const Name **w, int max)
{
    int n = 0;
    for (int i = g->ninputs; i < g->nnames && n < max; i++)
        if (!g->names[i].readonly)
            w[n++] = &g->names[i];
    return n;
}

/* if/else: both branches assign the same targets (existing or new), so they
 * are defined after it. */
static void if_stmt(Gen *g, int depth, bool in_loop)
{
    Name t[3];
    bool fresh[3];
    int nt = 1 + pick(g->in, 2);
    int scope = g->nnames;
    for (int i = 0; i < nt; i++) {
        const Name *w = !in_loop && pick(g->in, 2) ? NULL : name_of(g, any_shape(g), true);
        fresh[i] = !w;
        if (!w && (in_loop || g->nnames + nt > MAX_NAMES))
            return;
        t[i] = w ? *w : make_name("t", g->nvars++, any_shape(g));
    }
    line_start(g);
    out(g, "if ");
    condition(g);
    out(g, "\n");
    g->indent++;
    for (int b = 0; b < 2; b++) {
        if (b) {
            g->indent--;
            line_start(g);
            out(g, "else\n");
            g->indent++;
        }
        if (depth > 0 && pick(g->in, 3) == 0)
            block(g, 1, depth - 1, in_loop);
        for (int i = 0; i < nt; i++)
            assign(g, &t[i], in_loop, fresh[i]);
        g->nnames = scope;   /* names made inside a branch end with it */
    }
    g->indent--;
    line_start(g);
    out(g, "end\n");
    for (int i = 0; i < nt; i++)
        if (fresh[i])
            declare(g, t[i]);
}

/* for i in 1:K, or a while bounded by a counter; the body updates names
 * that exist before the loop (and may make its own, local to the body). */
static void loop_stmt(Gen *g, int depth)
{
    const Name *w[8];
    if (writable(g, w, 8) == 0)
        new_var(g, any_shape(g), false);
    int scope = g->nnames;
    bool is_for = pick(g->in, 3) != 0;
    const Name *counter = NULL;
    if (is_for) {
        int k = g->nloops++;
        line_start(g);
        int bound = pick(g->in, 4);
        out(g, "for i%d in 1:%s\n", k, bound == 0 ? "4" : bound == 1 ? "1" :
                                       dim_text[D_N + pick(g->in, g->ndims)]);
        Name i = make_name("i", k, SCALAR);
        i.readonly = true;
        declare(g, i);
    } else {
        counter = declare(g, make_name("c", g->nloops++, SCALAR));
        if (!counter)
            return;
        line_start(g);
        out(g, "%s = 0\n", counter->name);
        scope = g->nnames;
        line_start(g);
        out(g, "while %s < %d", counter->name, 1 + pick(g->in, 4));
        if (pick(g->in, 2)) {
            out(g, pick(g->in, 2) ? " and " : " or ");
            out(g, "(");
            full_expr(g, SCALAR);
            out(g, " < 1)");
            /* `or` could run forever: the max_iter limit ends it (a status
             * both engines must report alike) */
        }
        out(g, "\n");
    }
    g->indent++;
    if (counter) {
        line_start(g);
        out(g, "%s = %s + 1\n", counter->name, counter->name);
    }
    block(g, 1 + pick(g->in, 2), depth - 1, true);
    g->indent--;
    line_start(g);
    out(g, "end\n");
    g->nnames = scope;
}

static void block(Gen *g, int nstmts, int depth, bool in_loop)
{
    for (int k = 0; k < nstmts && !g->overflow; k++) {
        int c = pick(g->in, 8);
        if (c == 0 && depth > 0) {
            if_stmt(g, depth, in_loop);
        } else if (c == 1 && depth > 0) {
            loop_stmt(g, depth);
        } else {
            const Name *w = in_loop || pick(g->in, 3) == 0 ? name_of(g, any_shape(g), true) : NULL;
            if (!w && in_loop) {
                const Name *ws[8];
                int n = writable(g, ws, 8);
                w = n ? ws[pick(g->in, n)] : NULL;
            }
            if (w)
                assign(g, w, in_loop, false);
            else
                new_var(g, any_shape(g), in_loop);
        }
    }
}

/* ---- the program ------------------------------------------------------------ */

static const char *const input_names[] = {"x", "y", "z", "w", "u", "v"};

static void program(Gen *g)
{
    Bytes *in = g->in;
    g->ndims = 1 + pick(in, 2);
    g->dimval[D_ONE] = 1;
    g->dimval[D_N] = 1 + pick(in, 5);
    g->dimval[D_M] = 1 + pick(in, 5);
    g->dimval[D_TWO] = 2;
    g->dimval[D_THREE] = 3;
    g->ndimset = 0;
    for (int d = D_N; d < D_N + g->ndims; d++)
        g->dims[g->ndimset++] = d;
    if (pick(in, 3) == 0)
        g->dims[g->ndimset++] = pick(in, 2) ? D_TWO : D_THREE;
    g->wild = pick(in, 6) == 0;

    /* inputs; every symbol must be bound by one */
    int ninputs = 1 + pick(in, 4);
    bool bound[ND] = {0};
    for (int i = 0; i < ninputs; i++) {
        Shp s = any_shape(g);
        Name *x = &g->names[g->nnames++];
        snprintf(x->name, sizeof x->name, "%s", input_names[i]);
        x->s = s;
        bound[s.r] = bound[s.c] = true;
    }
    for (int d = D_N; d < D_N + g->ndims; d++)
        if (!bound[d]) {
            Name *x = &g->names[g->nnames++];
            snprintf(x->name, sizeof x->name, "v%s", dim_text[d]);
            x->s = (Shp){d, D_ONE};
        }
    g->ninputs = g->nnames;
    for (int i = 0; i < g->ninputs; i++) {
        Shp s = g->names[i].s;
        if (is_scalar(s))
            out(g, "input %s\n", g->names[i].name);
        else if (s.c == D_ONE)
            out(g, "input %s[%s]\n", g->names[i].name, dim_text[s.r]);
        else
            out(g, "input %s[%s, %s]\n", g->names[i].name, dim_text[s.r], dim_text[s.c]);
    }

    block(g, 1 + pick(in, 5), 2, false);
    /* the output: a named variable or input, or a last assignment (the
     * last one in the text may be local to a loop body) */
    if (pick(in, 4) == 0) {
        out(g, "output %s\n", g->names[pick(in, g->nnames)].name);
    } else {
        int nvars = g->nvars;
        new_var(g, pick(in, 3) ? SCALAR : any_shape(g), false);
        if (g->nvars == nvars)
            out(g, "output %s\n", g->names[0].name);
    }
    if (pick(in, 4) == 0) {
        out(g, "wrt %s", g->names[0].name);
        for (int i = 1; i < g->ninputs; i++)
            if (pick(in, 2))
                out(g, ", %s", g->names[i].name);
        out(g, "\n");
    }
}

#endif
