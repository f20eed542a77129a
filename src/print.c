/* print.c — expressions and programs as text, for `gradc derive`.
 *
 * Expressions print in the language's own syntax (or LaTeX) with the fewest
 * parentheses the precedence rules allow.  A subexpression that the printed
 * results share, and that is more than a name, is printed once as
 * `t1 = …` and referred to by name, so output stays linear in the DAG.
 * With control flow, the whole gradient program is printed: the forward
 * sweep with its recording, then the reverse sweep (reverse loops written
 * `for i in K:-1:1`, recorded values as push/pop). */
#include "gradc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Precedence, loosest first, as in the spec. */
enum { P_OR = 1, P_AND, P_NOT, P_CMP, P_ADD, P_MUL, P_NEG, P_POW, P_POST, P_ATOM };

typedef struct Piece {
    const Node *n;             /* an operand to print at prec, or NULL: text */
    int prec;
    const char *text;
} Piece;

typedef struct Printer {
    FILE *out;
    const Module *m;
    PrintStyle style;
    const char **slot_names;   /* unique print names of slots */
    const char **let;          /* node id → name of a let-bound subexpression */
    int nlets;
    VEC(Piece) stack, rest;    /* expr's explicit stack; the node being expanded */
    int *refs;                 /* print_lets: references per node id (zero between calls) */
    bool *sliced;              /* per node id: indexed by a SLICE, so it must be a name */
    VEC(int) reached, bound;   /* … the nodes it reached; the ids let-bound now */
    int unnamed;               /* loops open whose index is unused: _, _2, _3 … */
} Printer;

static bool latex(const Printer *p) { return p->style == PRINT_LATEX; }
static bool scalar(const Node *n) { return shape_is_scalar(n->shape); }
static void expr(Printer *p, const Node *n, int min_prec);
static int tex_base_prec(const Printer *p, const Node *n, int prec);

static void number(Printer *p, double v)
{
    char buf[64];
    if (fabs(v) == M_PI) {   /* the constant pi (spec §8) */
        fputs(v < 0 ? "-" : "", p->out);
        fputs(latex(p) ? "\\pi" : "pi", p->out);
        return;
    }
    if (v == floor(v) && fabs(v) < 1e15) {
        fprintf(p->out, "%.0f", v);
        return;
    }
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(strcmp(buf, "inf") == 0 ? "Inf" : strcmp(buf, "-inf") == 0 ? "-Inf" : buf, p->out);
}

/* A variable's name: as is, or in LaTeX upright when longer than a letter
 * (\mathrm{loss}), with a trailing number as a subscript (t_{1}). */
static void name(Printer *p, const char *s)
{
    if (!latex(p) || strlen(s) == 1) {
        fputs(s, p->out);
        return;
    }
    size_t stem = strlen(s);
    while (stem > 1 && s[stem - 1] >= '0' && s[stem - 1] <= '9')
        stem--;
    if (stem > 1)
        fputs("\\mathrm{", p->out);
    for (size_t i = 0; i < stem; i++)
        fputs(s[i] == '_' ? "\\_" : (char[2]){s[i], 0}, p->out);
    if (stem > 1)
        fputs("}", p->out);
    if (s[stem])
        fprintf(p->out, "_{%s}", s + stem);
}

static const char *dim_name(const Printer *p, Dim d, char *buf, size_t len)
{
    if (d.sym >= 0)
        return p->m->dims[d.sym];
    if (d.sym == -1) {
        snprintf(buf, len, "%lld", (long long)d.n);
        return buf;
    }
    return dim_str(p->m->arena, d, p->m->dims);
}

static void shape_args(Printer *p, Shape s)
{
    char b1[32], b2[32];
    if (dim_eq(s.cols, dim_lit(1)))
        fprintf(p->out, "(%s)", dim_name(p, s.rows, b1, sizeof b1));
    else
        fprintf(p->out, "(%s, %s)", dim_name(p, s.rows, b1, sizeof b1), dim_name(p, s.cols, b2, sizeof b2));
}

/* GRADC_OPS's prec and latex columns. */
static const int op_prec[OP_COUNT] = {
#define X(name, text, arity, kind, fn, libm, builtin, prec, latex, adj) [OP_##name] = P_##prec,
    GRADC_OPS(X)
#undef X
};

static const char *const op_latex[OP_COUNT] = {
#define X(name, text, arity, kind, fn, libm, builtin, prec, latex, adj) [OP_##name] = latex,
    GRADC_OPS(X)
#undef X
};

/* The precedence an expression prints at (a let-bound one is a name). */
static int prec_of(const Printer *p, const Node *n)
{
    if (p->let[n->id])
        return P_ATOM;
    switch (n->op) {
    case OP_CONST: return n->num < 0 ? P_NEG : P_ATOM;
    case OP_FILL: return node_is_const(n, 0) || node_is_const(n, 1) ? P_ATOM : P_MUL;
    default: return op_prec[n->op];
    }
}

static void leaf(Printer *p, const Node *n)
{
    const Module *m = p->m;
    switch (n->op) {
    case OP_CONST: number(p, n->num); break;
    case OP_FILL:
        if (!node_is_const(n, 0) && !node_is_const(n, 1)) {
            number(p, n->num);
            fputs(latex(p) ? " \\cdot " : "*", p->out);
        }
        if (latex(p)) {
            fputs(node_is_const(n, 0) ? "\\mathbf{0}" : "\\mathbf{1}", p->out);
            break;
        }
        fputs(node_is_const(n, 0) ? "zeros" : "ones", p->out);
        shape_args(p, n->shape);
        break;
    case OP_EYE: fputs(latex(p) ? "I" : "eye", p->out); if (!latex(p)) shape_args(p, shape_make(n->shape.rows, dim_lit(1))); break;
    case OP_INPUT: name(p, m->inputs[n->index].name); break;
    case OP_SLOT: name(p, p->slot_names[n->index]); break;
    case OP_DIMVAL: name(p, m->dims[n->index]); break;
    case OP_COTAN: fprintf(p->out, "d%s", m->output_name ? m->output_name : "y"); break;
    default: break;
    }
}

/* The operator text of a binary node: * or .* (and / ./, ^ .^) by shapes. */
static const char *infix(const Printer *p, const Node *n)
{
    const Node *a = n->args[0], *b = n->args[1];
    bool tex = latex(p);
    switch (n->op) {
    case OP_ADD: return " + ";
    case OP_SUB: return " - ";
    case OP_MATMUL: return tex ? " " : "*";
    case OP_MUL: return scalar(a) || scalar(b) ? (tex ? " " : "*") : (tex ? " \\odot " : ".*");
    case OP_DIV: case OP_DIVSAFE: return scalar(b) ? "/" : (tex ? " \\oslash " : "./");
    case OP_POW: return scalar(a) && scalar(b) ? "^" : (tex ? "^" : ".^");
    case OP_LT: return " < ";
    case OP_LE: return tex ? " \\le " : " <= ";
    case OP_GT: return " > ";
    case OP_GE: return tex ? " \\ge " : " >= ";
    case OP_EQ: return tex ? " = " : " == ";
    case OP_NE: return tex ? " \\ne " : " != ";
    case OP_AND: return tex ? " \\wedge " : " and ";
    case OP_OR: return tex ? " \\vee " : " or ";
    default: return NULL;
    }
}

/* What remains of a node being printed: an operand at a precedence, or text. */
static void sub(Printer *p, const Node *n, int prec)
{
    vec_push(p->m->arena, &p->rest, ((Piece){n, prec, NULL}));
}

/* Text goes out at once while nothing is queued before it. */
static void text(Printer *p, const char *s)
{
    if (p->rest.len == 0)
        fputs(s, p->out);
    else
        vec_push(p->m->arena, &p->rest, ((Piece){NULL, 0, s}));
}

static const Node *operand(const Printer *p, const Node *n);
static bool strip_fits(const Printer *p, Shape want, const Node *const *ops, int k);

/* clamp(x, lo, hi) is CLAMPHI(CLAMPLO(x, lo), hi); either half alone (its
 * inner value named by a let) prints as the max or min it equals */
static bool clamp_call(Printer *p, const Node *n)
{
    const Node *lo = n->args[0];
    if (n->op != OP_CLAMPHI || lo->op != OP_CLAMPLO || p->let[lo->id])
        return false;
    const Node *ops[3] = {lo->args[0], lo->args[1], n->args[1]};
    bool strip = strip_fits(p, n->shape, ops, 3);
    text(p, latex(p) ? "\\operatorname{clamp}\\left(" : "clamp(");
    for (int i = 0; i < 3; i++) {
        text(p, i ? ", " : "");
        sub(p, strip ? operand(p, ops[i]) : ops[i], 0);
    }
    text(p, latex(p) ? "\\right)" : ")");
    return true;
}

/* An operand of an elementwise operator: a broadcast prints as what it
 * expands, since the operator expands it again when the text is read
 * (the simplifier keeps a BCAST next to an operand of the full shape)... */
static const Node *operand(const Printer *p, const Node *n)
{
    return n->op == OP_BCAST && !p->let[n->id] ? n->args[0] : n;
}

static bool fit(Dim a, Dim b, Dim *r)
{
    bool one_a = dim_eq(a, dim_lit(1)), one_b = dim_eq(b, dim_lit(1));
    *r = one_a ? b : a;
    return dim_eq(a, b) || one_a || one_b;
}

/* ... unless it would not (a where's pick of a scalar condition keeps its
 * mask outside a broadcast): then the operands print as they are, the
 * broadcast written out. */
static bool strip_fits(const Printer *p, Shape want, const Node *const *ops, int k)
{
    Shape r = operand(p, ops[0])->shape;
    for (int i = 1; i < k; i++) {
        Shape s = operand(p, ops[i])->shape;
        if (!fit(r.rows, s.rows, &r.rows) || !fit(r.cols, s.cols, &r.cols))
            return false;
    }
    return shape_eq(r, want);
}

/* Anywhere else a broadcast is written out: v .* ones(m, n). */
static void bcast(Printer *p, const Node *n)
{
    char b1[32], b2[32];
    sub(p, n->args[0], P_MUL + 1);
    if (latex(p)) {
        text(p, " \\odot \\mathbf{1}");
        return;
    }
    text(p, arena_printf(p->m->arena, " .* ones(%s, %s)", dim_name(p, n->shape.rows, b1, sizeof b1),
                         dim_name(p, n->shape.cols, b2, sizeof b2)));
}

static bool is_along(const Node *n) { return n->op >= OP_SUMD && n->op <= OP_LOGSOFTMAXD; }
/* where(k, a, b) is PICK(k, a) + PICK(not k, b) (either order of the two,
 * either side negated); false when n is not that sum */
static bool where_call(Printer *p, const Node *n)
{
    if (n->op != OP_ADD)
        return false;
    const Node *x = n->args[0], *y = n->args[1];
    if (x->op != OP_PICK || y->op != OP_PICK || p->let[x->id] || p->let[y->id])
        return false;
    const Node *k = x->args[0], *a = x->args[1], *b = y->args[1];
    if (k->op == OP_NOT && k->args[0] == y->args[0]) {
        k = y->args[0];
        a = y->args[1];
        b = x->args[1];
    } else if (!(y->args[0]->op == OP_NOT && y->args[0]->args[0] == k)) {
        return false;
    }
    text(p, latex(p) ? "\\operatorname{where}\\left(" : "where(");
    sub(p, k, 0);
    text(p, ", ");
    sub(p, a, 0);
    text(p, ", ");
    sub(p, b, 0);
    text(p, latex(p) ? "\\right)" : ")");
    return true;
}

/* The calls that are not their op's text applied to the operands: a PICK
 * alone is where(k, a, 0); SOLVE(LU(A), B) is solve(A, B), SOLVET
 * solve(A', B); LU(A) is never printed but through them (it is A). */
static bool special_call(Printer *p, const Node *n)
{
    const char *open = latex(p) ? "\\operatorname{%s}\\left(" : "%s(";
    const char *close = latex(p) ? "\\right)" : ")";
    switch (n->op) {
    case OP_PICK:
        fprintf(p->out, open, "where");
        sub(p, n->args[0], 0);
        text(p, ", ");
        sub(p, n->args[1], 0);
        text(p, ", 0");
        text(p, close);
        return true;
    case OP_SOLVE:
    case OP_SOLVET:
        fprintf(p->out, open, "solve");
        if (n->op == OP_SOLVET) {
            sub(p, n->args[0]->args[0], tex_base_prec(p, n->args[0]->args[0], P_POST + 1));
            text(p, latex(p) ? "^\\top" : "'");
        } else {
            sub(p, n->args[0]->args[0], 0);
        }
        text(p, ", ");
        sub(p, n->args[1], 0);
        text(p, close);
        return true;
    case OP_LU:
        sub(p, n->args[0], 0);
        return true;
    default:
        return false;
    }
}

static void call(Printer *p, const Node *n)
{
    const char *name = op_info[n->op].text;
    bool elem = op_info[n->op].kind == OK_B && strip_fits(p, n->shape, (const Node *const *)n->args, n->nargs);
    if (clamp_call(p, n) || special_call(p, n))
        return;
    if (latex(p)) {
        switch (n->op) {
        case OP_NORM: text(p, "\\left\\| "); sub(p, n->args[0], 0); text(p, " \\right\\|"); return;
        case OP_SQRT: text(p, "\\sqrt{"); sub(p, n->args[0], 0); text(p, "}"); return;
        case OP_INV: sub(p, n->args[0], P_ATOM); text(p, "^{-1}"); return;
        default: break;
        }
        const char *tex = op_latex[n->op];   /* NULL: \operatorname{name} */
        fprintf(p->out, tex ? "%s\\left(" : "\\operatorname{%s}\\left(", tex ? tex : name);
    } else {
        fprintf(p->out, "%s(", name);
    }
    sub(p, elem ? operand(p, n->args[0]) : n->args[0], 0);
    for (int i = 1; i < n->nargs; i++) {
        text(p, ", ");
        sub(p, elem ? operand(p, n->args[i]) : n->args[i], 0);
    }
    if (is_along(n))
        text(p, n->index == 1 ? ", 1" : ", 2");
    text(p, latex(p) ? "\\right)" : ")");
}

static void open_paren(Printer *p, bool on) { if (on) text(p, latex(p) ? "\\left(" : "("); }
static void close_paren(Printer *p, bool on) { if (on) text(p, latex(p) ? "\\right)" : ")"); }

/* Products that associate with each other: A*B and s*X. */
static bool assoc_product(const Node *n)
{
    return n->op == OP_MATMUL || (n->op == OP_MUL && (scalar(n->args[0]) || scalar(n->args[1])));
}

static bool elementwise_product(const Node *n)
{
    return (n->op == OP_MUL || n->op == OP_DIV || n->op == OP_DIVSAFE) && !scalar(n->args[0]) &&
           !scalar(n->args[1]);
}

/* In LaTeX, a base that has a superscript of its own (A^\top, A^{-1})
 * takes parentheses before another: (A^\top)^{2}, not A^\top^{2}. */
static int tex_base_prec(const Printer *p, const Node *n, int prec)
{
    bool sup = !p->let[n->id] && (n->op == OP_TRANSPOSE || n->op == OP_INV);
    return latex(p) && sup ? P_ATOM + 1 : prec;
}

/* Whether n, printed at min_prec, starts with a digit: LaTeX writes a
 * product by juxtaposition, which needs a \cdot before one (0.5 \cdot 2^{x}). */
static bool starts_with_digit(const Printer *p, const Node *n, int min_prec)
{
    for (;;) {
        if (p->let[n->id] || prec_of(p, n) < min_prec)
            return false;   /* a name, or parenthesised */
        if (n->op == OP_CONST || n->op == OP_FILL)
            return n->num >= 0 && (n->op == OP_CONST || (!node_is_const(n, 0) && !node_is_const(n, 1)));
        if (n->op == OP_POW) {
            n = n->args[0], min_prec = tex_base_prec(p, n, P_POW + 1);
            continue;
        }
        if (n->op != OP_ADD && n->op != OP_SUB && n->op != OP_MATMUL && n->op != OP_MUL)
            return false;   /* a call, \frac, \left\| ... */
        min_prec = elementwise_product(n) ? prec_of(p, n) + 1 : prec_of(p, n);
        n = n->args[0];
    }
}

static void binary(Printer *p, const Node *n, int prec)
{
    bool strip = strip_fits(p, n->shape, (const Node *const *)n->args, 2);
    const Node *a = strip ? operand(p, n->args[0]) : n->args[0], *b = strip ? operand(p, n->args[1]) : n->args[1];
    bool tex = latex(p);
    if ((n->op == OP_DIV || n->op == OP_DIVSAFE) && tex && scalar(b)) {
        text(p, "\\frac{");
        sub(p, a, 0);
        text(p, "}{");
        sub(p, b, 0);
        text(p, "}");
        return;
    }
    if (n->op == OP_POW) {
        sub(p, a, tex_base_prec(p, a, P_POW + 1));
        text(p, infix(p, n));
        if (tex) {
            text(p, "{");
            sub(p, b, 0);
            text(p, "}");
        } else {
            sub(p, b, P_POW);   /* right associative */
        }
        return;
    }
    /* left associative: a right operand of the same level keeps its
     * parentheses (x .* (A*y) is not x .* A*y), except in a sum and a
     * scaling; an elementwise product parenthesises any product operand,
     * for the reader's sake */
    int left = prec, right = prec + 1;
    /* s*(A*x) prints as s*A*x, which the simplifier reads back as the same
     * node; A*(B*x) and a/(b*c) keep their parentheses */
    if (n->op == OP_ADD || (n->op == OP_MUL && scalar(a) && assoc_product(b)))
        right = prec;
    if (elementwise_product(n))
        left = right = prec + 1;
    sub(p, a, left);
    const char *op = infix(p, n);
    text(p, tex && strcmp(op, " ") == 0 && starts_with_digit(p, b, right) ? " \\cdot " : op);
    sub(p, b, right);
}

/* [a; b; c] and [a, b, c]: a chain of one kind prints as one bracket. */
static void cat(Printer *p, const Node *n)
{
    const Node *parts[64];
    int k = 0;
    const Node *x = n;
    for (; x->op == n->op && !p->let[x->id] && k < 63; x = x->args[0])
        parts[k++] = x->args[1];
    parts[k++] = x;
    text(p, "[");
    for (int i = k - 1; i >= 0; i--) {
        sub(p, parts[i], 0);
        text(p, i ? (n->op == OP_VCAT ? "; " : ", ") : "]");
    }
}

/* off + k as text after a value: " + 2", " - 1", "" (k = 0). */
static const char *plus_k(Printer *p, Dim k)
{
    int64_t v;
    if (dim_is_lit(k, &v) && v == 0)
        return "";
    Dim neg = dim_sub(dim_lit(0), k);
    const char *s = dim_str(p->m->arena, k, p->m->dims);
    if (s[0] == '-')
        return arena_printf(p->m->arena, " - %s", dim_str(p->m->arena, neg, p->m->dims));
    return arena_printf(p->m->arena, " + %s", s);
}

/* One axis of a slice: ':' (all of it), an index, or first:last, 1-based:
 * the offset off (a value) read as v + k when it is one. */
static bool node_dim(const Node *n, Dim *d);

static void axis(Printer *p, const Node *off, Dim len, Dim extent)
{
    const Node *v = off;
    Dim k = dim_lit(0);
    int64_t z;
    if (node_dim(off, &k))
        v = NULL;
    else if ((off->op == OP_SUB || off->op == OP_ADD) && off->args[1]->op == OP_CONST)
        v = off->args[0], k = dim_lit((int64_t)(off->op == OP_SUB ? -off->args[1]->num : off->args[1]->num));
    else if (off->op == OP_ADD && off->args[0]->op == OP_CONST)
        v = off->args[1], k = dim_lit((int64_t)off->args[0]->num);
    if (!v && dim_is_lit(k, &z) && z == 0 && dim_eq(len, extent)) {
        text(p, ":");
        return;
    }
    Dim first = dim_add(k, dim_lit(1)), last = dim_add(k, len);
    for (int end = 0; end < 2; end++) {
        Dim d = end ? last : first;
        if (v) {
            sub(p, v, P_ADD);
            text(p, plus_k(p, d));
        } else {
            text(p, dim_str(p->m->arena, d, p->m->dims));
        }
        if (end || dim_eq(len, dim_lit(1)))
            return;
        text(p, ":");
    }
}

/* x[a:b], X[i, :] …: the base is a name (print_lets binds it). */
static void slice(Printer *p, const Node *n)
{
    const Node *x = n->args[0];
    sub(p, x, P_ATOM);
    text(p, "[");
    bool col = dim_eq(x->shape.cols, dim_lit(1)), row = !col && dim_eq(x->shape.rows, dim_lit(1));
    if (!row)
        axis(p, n->args[1], n->shape.rows, x->shape.rows);
    if (!row && !col)
        text(p, ", ");
    if (!col)
        axis(p, n->args[2], n->shape.cols, x->shape.cols);
    text(p, "]");
}

/* Prints n, or the start of n with the rest queued in p->rest. */
static void expand(Printer *p, const Node *n, int min_prec)
{
    if (p->let[n->id]) {
        name(p, p->let[n->id]);
        return;
    }
    int prec = prec_of(p, n);
    bool paren = prec < min_prec;
    open_paren(p, paren);
    if (op_info[n->op].kind == OK_L) {
        leaf(p, n);
    } else if (n->op == OP_NEG || n->op == OP_NOT) {
        text(p, n->op == OP_NEG ? "-" : (latex(p) ? "\\neg " : "not "));
        sub(p, n->args[0], prec + (n->op == OP_NEG));
    } else if (n->op == OP_TRANSPOSE) {
        sub(p, n->args[0], tex_base_prec(p, n->args[0], P_POST + 1));
        text(p, latex(p) ? "^\\top" : "'");
    } else if (n->op == OP_BCAST) {
        bcast(p, n);
    } else if (n->op == OP_VCAT || n->op == OP_HCAT) {
        cat(p, n);
    } else if (n->op == OP_SLICE) {
        slice(p, n);
    } else if (n->op == OP_MAX || n->op == OP_MIN || !infix(p, n)) {
        call(p, n);
    } else if (where_call(p, n)) {
    } else {
        binary(p, n, prec);
    }
    close_paren(p, paren);
}

/* The tree printed without recursion (a chain of statements makes the DAG
 * as deep as the program): each node prints what precedes its first
 * operand and queues the rest, operands and text, on an explicit stack. */
static void expr(Printer *p, const Node *n, int min_prec)
{
    int base = p->stack.len;
    vec_push(p->m->arena, &p->stack, ((Piece){n, min_prec, NULL}));
    while (p->stack.len > base) {
        Piece x = p->stack.data[--p->stack.len];
        if (!x.n) {
            fputs(x.text, p->out);
            continue;
        }
        p->rest.len = 0;
        expand(p, x.n, x.prec);
        for (int i = p->rest.len - 1; i >= 0; i--)
            vec_push(p->m->arena, &p->stack, p->rest.data[i]);
    }
}

/* ---- shared subexpressions ---- */

/* Counts references along DAG edges (each node's edges counted once) into
 * p->refs, with an explicit stack; p->reached lists the nodes reached. */
static void count_refs(Printer *p, const Node *root)
{
    Arena *a = p->m->arena;
    int base = p->stack.len;
    vec_push(a, &p->stack, ((Piece){root, 0, NULL}));
    while (p->stack.len > base) {
        const Node *n = p->stack.data[--p->stack.len].n;
        if (p->refs[n->id]++ > 0)
            continue;
        vec_push(a, &p->reached, n->id);
        if (n->op == OP_SLICE)
            p->sliced[n->args[0]->id] = true;
        /* a slice's offsets print as bounds rewritten from them (axis), never by name */
        for (int i = 0; i < (n->op == OP_SLICE ? 1 : n->nargs); i++)
            vec_push(a, &p->stack, ((Piece){n->args[i], 0, NULL}));
    }
}

static int by_id(const void *x, const void *y)
{
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

/* Short enough to repeat: a leaf, or an op applied to leaves (x', 2*x, x.^2). */
static bool trivial(const Node *n)
{
    for (int i = 0; i < n->nargs; i++)
        if (op_info[n->args[i]->op].kind != OK_L)
            return false;
    return true;
}

/* A condition (where's first argument) is not a value of the language, and
 * LU factors print as their matrix: neither gets a name. */
static bool bindable(const Node *n)
{
    switch (n->op) {
    case OP_LT: case OP_LE: case OP_GT: case OP_GE: case OP_EQ: case OP_NE:
    case OP_AND: case OP_OR: case OP_NOT: case OP_LU:
        return false;
    default:
        return true;
    }
}

/* Binds each shared, non-trivial node reached from roots to a name and
 * prints its definition, oldest first (so definitions precede uses). */
static void print_lets(Printer *p, Node *const *roots, int nroots, const char *indent)
{
    Arena *a = p->m->arena;
    p->reached.len = 0;
    for (int i = 0; i < nroots; i++)
        if (roots[i])
            count_refs(p, roots[i]);
    /* the reached nodes in id order: cost in what is printed, not the DAG */
    if (p->reached.len > 1)   /* data is NULL when nothing was reached */
        qsort(p->reached.data, (size_t)p->reached.len, sizeof(int), by_id);
    for (int r = 0; r < p->reached.len; r++) {
        int id = p->reached.data[r];
        const Node *n = p->m->ir->nodes.data[id];
        bool must = p->sliced[id] && n->op != OP_INPUT && n->op != OP_SLOT && n->op != OP_COTAN;
        if (p->let[id] || !bindable(n) || (!must && (p->refs[id] < 2 || trivial(n))))
            continue;
        const char *let = arena_printf(a, "t%d", ++p->nlets);
        fputs(indent, p->out);
        name(p, let);
        fputs(" = ", p->out);
        expr(p, n, 0);
        fputs(latex(p) ? " \\\\\n" : "\n", p->out);
        p->let[id] = let;
        vec_push(a, &p->bound, id);
    }
    for (int r = 0; r < p->reached.len; r++)
        p->refs[p->reached.data[r]] = 0;
}

static void forget_lets(Printer *p)
{
    for (int i = 0; i < p->bound.len; i++)
        p->let[p->bound.data[i]] = NULL;
    p->bound.len = 0;
}

/* ---- printers ---- */

/* How many slots (and whether an input) bear a name: open addressing. */
typedef struct NameCount {
    const char *name;
    int slots;
    bool input;
} NameCount;

typedef struct Names {
    NameCount *e;
    uint32_t mask;
} Names;

static Names names_new(Arena *a, int n)
{
    uint32_t cap = 16;
    while (cap < 2 * (uint32_t)n)
        cap *= 2;
    return (Names){arena_alloc(a, sizeof(NameCount) * cap), cap - 1};
}

static NameCount *names_get(Names t, const char *name)
{
    uint32_t h = 2166136261u;
    for (const char *c = name; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    for (uint32_t i = h & t.mask;; i = (i + 1) & t.mask) {
        if (!t.e[i].name)
            t.e[i].name = name;
        if (strcmp(t.e[i].name, name) == 0)
            return &t.e[i];
    }
}

static Printer *printer_new(FILE *out, const Module *m, PrintStyle style)
{
    Arena *a = m->arena;
    Printer *p = arena_alloc(a, sizeof *p);
    p->out = out;
    p->m = m;
    p->style = style;
    p->let = arena_alloc(a, sizeof(char *) * (size_t)(m->ir->nnodes + 1));
    p->refs = arena_alloc(a, sizeof(int) * (size_t)(m->ir->nnodes + 1));
    p->sliced = arena_alloc(a, sizeof(bool) * (size_t)(m->ir->nnodes + 1));
    int ns = m->ir->slots.len;
    p->slot_names = arena_alloc(a, sizeof(char *) * (size_t)(ns + 1));
    /* slots of one name are distinct variables: b, b_2, b_3 … (an input's
     * name counts as taken); counted in a hash table of names */
    Names t = names_new(a, ns + m->ninputs);
    for (int i = 0; i < m->ninputs; i++)
        names_get(t, m->inputs[i].name)->input = true;
    /* a non-scalar output's cotangent reads as an input dy: the adjoint of
     * a loop-carried y is then dy_2, not a second dy */
    if (m->fwd.value && !shape_is_scalar(m->fwd.value->shape))
        names_get(t, arena_printf(a, "d%s", m->output_name ? m->output_name : "y"))->input = true;
    for (int s = 0; s < ns; s++) {
        const char *name = m->ir->slots.data[s].name;
        NameCount *c = names_get(t, name);
        int same = c->slots++ + (c->input ? 1 : 0);   /* a function's x may be a slot */
        p->slot_names[s] = same ? arena_printf(a, "%s_%d", name, same + 1) : name;
    }
    return p;
}

void print_node(FILE *out, const Module *m, const Node *n, PrintStyle style)
{
    expr(printer_new(out, m, style), n, 0);
}

static void print_block(Printer *p, const Block *b, int depth);

/* ---- the gradient program's lines, as text or as LaTeX (an algorithm:
 * bold keywords, \quad indentation, \leftarrow for assignment) ---- */

static const char *indent_of(Printer *p, int depth)
{
    const char *unit = latex(p) ? "\\quad " : "    ";
    size_t len = strlen(unit);
    char *s = arena_alloc(p->m->arena, len * (size_t)depth + 1);
    for (int i = 0; i < depth; i++)
        memcpy(s + len * (size_t)i, unit, len);
    return s;
}

static void line_end(Printer *p) { fputs(latex(p) ? " \\\\\n" : "\n", p->out); }

/* `if ` at depth: the indentation and a keyword. */
static void keyword(Printer *p, int depth, const char *kw)
{
    fprintf(p->out, latex(p) ? "%s\\textbf{%s}" : "%s%s", indent_of(p, depth), kw);
}

static void assigns(Printer *p) { fputs(latex(p) ? " \\leftarrow " : " = ", p->out); }

/* Parallel assignment: printed one per line in an order where no value
 * reads a slot assigned before it; a cycle (a swap) prints as a tuple. */
static void assign(Printer *p, const int *slots, Node *const *vals, int n, int depth)
{
    const char *indent = indent_of(p, depth);
    print_lets(p, vals, n, indent);
    bool *done = arena_alloc(p->m->arena, (size_t)n + 1);
    for (int k = 0; k < n; k++)
        done[k] = vals[k]->op == OP_SLOT && vals[k]->index == slots[k];   /* x = x */
    for (bool progress = true; progress;) {
        progress = false;
        for (int k = 0; k < n; k++) {
            bool blocked = false;   /* another pending value still reads slot k */
            for (int j = 0; j < n && !blocked; j++)
                blocked = j != k && !done[j] && node_reads_slot(vals[j], slots[k]);
            if (done[k] || blocked)
                continue;
            fputs(indent, p->out);
            name(p, p->slot_names[slots[k]]);
            assigns(p);
            expr(p, vals[k], 0);
            line_end(p);
            done[k] = progress = true;
        }
    }
    int left = 0;
    for (int k = 0; k < n; k++)
        left += !done[k];
    if (left) {
        fputs(indent, p->out);
        for (int k = 0, i = 0; k < n; k++)
            if (!done[k]) {
                fputs(i++ ? ", " : "", p->out);
                name(p, p->slot_names[slots[k]]);
            }
        assigns(p);
        for (int k = 0, i = 0; k < n; k++)
            if (!done[k]) {
                fputs(i++ ? ", " : "", p->out);
                expr(p, vals[k], 0);
            }
        line_end(p);
    }
    forget_lets(p);
}

static void print_cond(Printer *p, const char *kw, const Node *cond, int depth)
{
    keyword(p, depth, kw);
    fputs(latex(p) ? "\\ " : " ", p->out);
    expr(p, cond, 0);
    line_end(p);
}

static void print_stmt(Printer *p, const Stmt *s, int depth)
{
    bool tex = latex(p);
    switch (s->kind) {
    case S_SET:
        assign(p, s->slots, s->vals, s->n, depth);
        break;
    case S_PUSH:
        fprintf(p->out, tex ? "%s\\mathrm{push}\\left(" : "%spush(", indent_of(p, depth));
        for (int k = 0; k < s->n; k++) {
            fputs(k ? ", " : "", p->out);
            expr(p, s->vals[k], 0);
        }
        fputs(tex ? "\\right)" : ")", p->out);
        line_end(p);
        break;
    case S_POP:
        for (int k = s->n - 1; k >= 0; k--) {
            fputs(indent_of(p, depth), p->out);
            name(p, p->slot_names[s->slots[k]]);
            assigns(p);
            fputs(tex ? "\\mathrm{pop}()" : "pop()", p->out);
            line_end(p);
        }
        break;
    case S_IF:
        print_cond(p, "if", s->cond, depth);
        print_block(p, s->then_block, depth + 1);
        assign(p, s->slots, s->then_vals, s->n, depth + 1);
        if (s->n || (s->else_block && s->else_block->n)) {
            keyword(p, depth, "else");
            line_end(p);
            print_block(p, s->else_block, depth + 1);
            assign(p, s->slots, s->else_vals, s->n, depth + 1);
        }
        keyword(p, depth, "end");
        line_end(p);
        break;
    case S_WHILE: case S_FOR:
        assign(p, s->slots, s->vals, s->n, depth);
        if (s->kind == S_WHILE) {
            print_cond(p, "while", s->cond, depth);
        } else {
            /* an unused index is _ (the language refuses a nested loop's
             * index that is already defined: _2, _3 … inside) */
            const char *i = s->index_slot >= 0 ? p->slot_names[s->index_slot]
                          : p->unnamed ? arena_printf(p->m->arena, "_%d", p->unnamed + 1) : NULL;
            p->unnamed += s->index_slot < 0;
            keyword(p, depth, "for");
            fputs(tex ? "\\ " : " ", p->out);
            if (tex) {    /* for i = 1, ..., K (or K, ..., 1); an unused index is k */
                name(p, i ? i : "k");
                fputs(" = ", p->out);
                if (!s->reverse)
                    fputs("1, \\dots, ", p->out);
                expr(p, s->count, P_ADD + 1);
                fputs(s->reverse ? ", \\dots, 1" : "", p->out);
            } else {
                fprintf(p->out, "%s in %s", i ? i : "_", s->reverse ? "" : "1:");
                expr(p, s->count, P_ADD + 1);
                fputs(s->reverse ? ":-1:1" : "", p->out);
            }
            line_end(p);
        }
        print_block(p, s->body, depth + 1);
        assign(p, s->slots, s->next, s->n, depth + 1);
        p->unnamed -= s->kind == S_FOR && s->index_slot < 0;
        keyword(p, depth, "end");
        if (s->count_slot >= 0 && tex) {
            fputs("\\quad (", p->out);
            name(p, p->slot_names[s->count_slot]);
            fputs("\\text{ counts the iterations})", p->out);
        } else if (s->count_slot >= 0) {
            fprintf(p->out, "    # %s = how many times it ran", p->slot_names[s->count_slot]);
        }
        line_end(p);
        break;
    }
}

static void print_block(Printer *p, const Block *b, int depth)
{
    for (int i = 0; b && i < b->n; i++)
        print_stmt(p, b->stmts[i], depth);
}

/* The slots an if's branches write, its index and count slots aside (they
 * are not assigned in the printed text). */
static void branch_slots(const Block *b, SlotSet *out, bool in_branch)
{
    for (int i = 0; b && i < b->n; i++) {
        const Stmt *s = b->stmts[i];
        for (int k = 0; in_branch && s->kind != S_PUSH && k < s->n; k++)
            slotset_add(out, s->slots[k]);
        branch_slots(s->then_block, out, true);
        branch_slots(s->else_block, out, true);
        branch_slots(s->body, out, in_branch);
    }
}

/* A variable first set inside an if branch is not defined after the if (the
 * language's rule), but the reverse sweep reads it again under the same
 * condition: so that the program parses back, such variables start as zeros
 * (as the IR's slots do). */
static void declare_branch_slots(Printer *p, const Block *body)
{
    SlotSet *set = slotset_new(p->m->arena);
    branch_slots(body, set, false);
    bool first = true;
    for (int sl = 0; sl < p->m->ir->slots.len; sl++) {
        if (!slotset_has(set, sl))
            continue;
        if (first && !latex(p))
            fputs("# set inside if branches below, zero until then\n", p->out);
        first = false;
        name(p, p->slot_names[sl]);
        assigns(p);
        expr(p, mk_zero(p->m->ir, p->m->ir->slots.data[sl].shape), 0);
        line_end(p);
    }
}

static void gradient_lines(Printer *p)
{
    const Module *m = p->m;
    const char *y = m->output_name ? m->output_name : "y";
    print_lets(p, m->grad.grads, m->nwrt, "");
    for (int k = 0; k < m->nwrt; k++) {
        const char *x = m->inputs[m->wrt[k]].name;
        if (latex(p)) {
            fputs("\\frac{\\partial ", p->out);
            name(p, y);
            fputs("}{\\partial ", p->out);
            name(p, x);
            fputs("} = ", p->out);
        } else
            fprintf(p->out, "d%s/d%s = ", y, x);
        expr(p, m->grad.grads[k], 0);
        fputs(latex(p) ? " \\\\\n" : "\n", p->out);
    }
    forget_lets(p);
}

/* ---- derivative terms in the language's own forms ----
 * The adjoints of relu, abs, max and min use comparison values (x > 0, the
 * tie term 0.5*(x == y)) and sign, which the language has only in a
 * condition.  Before printing, a copy of the gradient program has them
 * rewritten with sign (a built-in) so that what derive prints parses back:
 * a > b is relu(sign(a - b)), a == b is 1 - abs(sign(a - b)), and max's
 * (a > b) + 0.5*(a == b) is 0.5*(1 + sign(a - b)).  The values are the same
 * (a - b has a's sign against b for every pair of finite doubles).  A
 * condition (of an if or while, or where's first argument) keeps its
 * comparisons: cond_to is every node's form as a condition. */

typedef struct Rewrite {
    Ir *ir;
    Node **to;        /* original node id → its language form */
    Node **cond_to;   /* … its form as a condition */
    int nold;         /* nodes that existed before the rewrite */
} Rewrite;

static Node *rw(const Rewrite *r, Node *n) { return n && n->id < r->nold ? r->to[n->id] : n; }

static bool is_cmp(Op op) { return op >= OP_LT && op <= OP_NE; }

/* A condition keeps its comparisons, and/or/not; their operands are values
 * (filled by rewrite_values, operands first). */
static Node *rw_cond(const Rewrite *r, Node *n)
{
    return n && n->id < r->nold ? r->cond_to[n->id] : n;
}

/* sign(a - b), built from the rewritten operands. */
static Node *sign_diff(Ir *ir, Node *a, Node *b) { return mk1(ir, OP_SIGN, mk2(ir, OP_SUB, a, b)); }

/* max/min's tie rule, (a > b) + 0.5*(a == b): sign(a - b) for a > b, or
 * sign(b - a) for a < b; NULL when n is not that sum. */
static Node *half_tie_sign(const Rewrite *r, const Node *n)
{
    for (int i = 0; n->op == OP_ADD && i < 2; i++) {
        const Node *cmp = n->args[i], *half = n->args[1 - i];
        if ((cmp->op != OP_GT && cmp->op != OP_LT) || half->op != OP_MUL)
            continue;
        const Node *eq = node_is_const(half->args[0], 0.5) ? half->args[1]
                       : node_is_const(half->args[1], 0.5) ? half->args[0] : NULL;
        Node *a = cmp->args[0], *b = cmp->args[1];
        if (!eq || eq->op != OP_EQ || !((eq->args[0] == a && eq->args[1] == b) ||
                                        (eq->args[0] == b && eq->args[1] == a)))
            continue;
        Ir *ir = r->ir;
        Node *s = cmp->op == OP_GT ? sign_diff(ir, rw(r, a), rw(r, b)) : sign_diff(ir, rw(r, b), rw(r, a));
        return mk2(ir, OP_MUL, mk_const(ir, 0.5), mk2(ir, OP_ADD, mk_const(ir, 1), s));
    }
    return NULL;
}

/* The value of a comparison or `not`, 1 or 0, without a comparison. */
static Node *cmp_value(Ir *ir, Op op, Node *a, Node *b)
{
    Node *one = mk_const(ir, 1);
    switch (op) {
    case OP_GT: return mk1(ir, OP_RELU, sign_diff(ir, a, b));
    case OP_LT: return mk1(ir, OP_RELU, sign_diff(ir, b, a));
    case OP_GE: return mk2(ir, OP_SUB, one, mk1(ir, OP_RELU, sign_diff(ir, b, a)));
    case OP_LE: return mk2(ir, OP_SUB, one, mk1(ir, OP_RELU, sign_diff(ir, a, b)));
    case OP_EQ: return mk2(ir, OP_SUB, one, mk1(ir, OP_ABS, sign_diff(ir, a, b)));
    case OP_NE: return mk1(ir, OP_ABS, sign_diff(ir, a, b));
    default: return mk2(ir, OP_SUB, one, mk1(ir, OP_ABS, mk1(ir, OP_SIGN, a)));   /* not */
    }
}

/* A value that is a dimension form (literals, symbols, + - and constant
 * factors), into *d. */
static bool node_dim(const Node *n, Dim *d)
{
    Dim a, b;
    switch (n->op) {
    case OP_CONST:
        if (n->num != floor(n->num) || fabs(n->num) > 4e18)
            return false;
        *d = dim_lit((int64_t)n->num);
        return true;
    case OP_DIMVAL: *d = dim_sym(n->index); return true;
    case OP_ADD:
    case OP_SUB:
        if (!node_dim(n->args[0], &a) || !node_dim(n->args[1], &b))
            return false;
        *d = n->op == OP_ADD ? dim_add(a, b) : dim_sub(a, b);
        return true;
    case OP_MUL: {
        int64_t k;
        if (!node_dim(n->args[0], &a) || !node_dim(n->args[1], &b))
            return false;
        if (dim_is_lit(b, &k)) {
            Dim t = a;
            a = b, b = t;
        }
        if (!dim_is_lit(a, &k))
            return false;
        *d = dim_lit(0);
        for (int64_t i = 0; i < (k < 0 ? -k : k) && i < 64; i++)
            *d = k < 0 ? dim_sub(*d, b) : dim_add(*d, b);
        return k >= -64 && k <= 64;
    }
    default: return false;
    }
}

/* pad(g) — g placed at (r, c) in zeros — in the language: with offsets that
 * are dimension forms, g bordered by zeros; else picked out of identities,
 * eye(R)[:, r+1:r+h] * g * eye(C)[c+1:c+w, :] (the same entries: every
 * other product term is an exact zero). */
static Node *pad_form(Ir *ir, const Node *n, Node *g, Node *r, Node *c)
{
    Dim R = n->shape.rows, C = n->shape.cols, h = g->shape.rows, w = g->shape.cols, dr, dc;
    int64_t z;
    if (node_dim(r, &dr) && node_dim(c, &dc)) {
        Dim right = dim_sub(dim_sub(C, dc), w), below = dim_sub(dim_sub(R, dr), h);
        if (!dim_is_lit(dc, &z) || z)
            g = mk2(ir, OP_HCAT, mk_zero(ir, shape_make(h, dc)), g);
        if (!dim_is_lit(right, &z) || z)
            g = mk2(ir, OP_HCAT, g, mk_zero(ir, shape_make(h, right)));
        if (!dim_is_lit(dr, &z) || z)
            g = mk2(ir, OP_VCAT, mk_zero(ir, shape_make(dr, C)), g);
        if (!dim_is_lit(below, &z) || z)
            g = mk2(ir, OP_VCAT, g, mk_zero(ir, shape_make(below, C)));
        return g;
    }
    Node *zero = mk_const(ir, 0);
    if (!dim_eq(h, R))
        g = mk2(ir, OP_MATMUL, mk3(ir, OP_SLICE, shape_make(R, h), mk_eye(ir, R), zero, r, 0), g);
    if (!dim_eq(w, C))
        g = mk2(ir, OP_MATMUL, g, mk3(ir, OP_SLICE, shape_make(w, C), mk_eye(ir, C), c, zero, 0));
    return g;
}

/* Every node's language form, by increasing id (operands first). */
static Rewrite rewrite_values(const Module *m)
{
    Ir *ir = m->ir;
    size_t size = sizeof(Node *) * (size_t)(ir->nnodes + 1);
    Rewrite r = {ir, arena_alloc(m->arena, size), arena_alloc(m->arena, size), ir->nnodes};
    for (int id = 0; id < r.nold; id++) {
        Node *n = ir->nodes.data[id], *a = n->nargs > 0 ? rw(&r, n->args[0]) : NULL;
        Node *b = n->nargs > 1 ? rw(&r, n->args[1]) : NULL;
        Node *c = n->nargs > 2 ? rw(&r, n->args[2]) : NULL;
        Node *tie = half_tie_sign(&r, n);
        r.cond_to[id] = NULL;
        if (n->op == OP_NOT)
            r.cond_to[id] = mk1(ir, OP_NOT, rw_cond(&r, n->args[0]));
        else if (n->op == OP_AND || n->op == OP_OR)
            r.cond_to[id] = mk2(ir, n->op, rw_cond(&r, n->args[0]), rw_cond(&r, n->args[1]));
        else if (is_cmp(n->op))
            r.cond_to[id] = mk2(ir, n->op, a, b);
        if (tie)
            r.to[id] = tie;
        else if (n->op == OP_PICK)
            r.to[id] = mk2(ir, OP_PICK, rw_cond(&r, n->args[0]), b);
        else if (n->op == OP_PAD)
            r.to[id] = pad_form(ir, n, a, b, c);
        else if (n->nargs == 3)
            r.to[id] = a != n->args[0] || b != n->args[1] || c != n->args[2]
                     ? mk3(ir, n->op, n->shape, a, b, c, n->num) : n;
        else if (is_cmp(n->op) || n->op == OP_NOT)
            r.to[id] = cmp_value(ir, n->op, a, b);
        else if ((n->nargs > 0 && a != n->args[0]) || (n->nargs > 1 && b != n->args[1]))
            r.to[id] = mk_like(ir, n, a, b);
        else
            r.to[id] = n;
        if (!r.cond_to[id])
            r.cond_to[id] = r.to[id];
    }
    return r;
}

static Node **rw_array(const Rewrite *r, Arena *a, Node *const *v, int n)
{
    if (!v)
        return NULL;
    Node **out = arena_alloc(a, sizeof(Node *) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++)
        out[i] = rw(r, v[i]);
    return out;
}

static Block *rw_block(const Rewrite *r, Arena *a, const Block *b)
{
    if (!b)
        return NULL;
    Block *out = block_new(a);
    for (int i = 0; i < b->n; i++) {
        const Stmt *s = b->stmts[i];
        Stmt *t = arena_alloc(a, sizeof *t);
        *t = *s;
        t->vals = rw_array(r, a, s->vals, s->n);
        t->then_vals = rw_array(r, a, s->then_vals, s->n);
        t->else_vals = rw_array(r, a, s->else_vals, s->n);
        t->next = rw_array(r, a, s->next, s->n);
        t->cond = rw_cond(r, s->cond);
        t->count = rw(r, s->count);
        t->then_block = rw_block(r, a, s->then_block);
        t->else_block = rw_block(r, a, s->else_block);
        t->body = rw_block(r, a, s->body);
        block_push(a, out, t);
    }
    return out;
}

void print_derivatives(FILE *out, const Module *m0, PrintStyle style)
{
    Rewrite r = rewrite_values(m0);
    Module copy = *m0, *m = &copy;
    copy.grad.grads = rw_array(&r, m0->arena, m0->grad.grads, m0->nwrt);
    copy.grad.body = rw_block(&r, m0->arena, m0->grad.body);
    Printer *p = printer_new(out, m, style);
    const Node *y = m->fwd.value;
    if (y && !scalar(y) && style == PRINT_EXPR)   /* what d<output> means below */
        fprintf(out, "# d%s: the cotangent, of %s's shape %s\n",
                m->output_name ? m->output_name : "y", m->output_name ? m->output_name : "y",
                shape_str(m->arena, y->shape, m->dims));
    if (m->has_control) {
        const char *c = style == PRINT_LATEX ? "%" : "#";
        fprintf(out, "%s the gradient program: the forward sweep, recording what the reverse\n"
                "%s sweep needs (push), then the reverse sweep (pop), in reverse order\n", c, c);
        declare_branch_slots(p, m->grad.body);
        print_block(p, m->grad.body, 0);
    }
    gradient_lines(p);
}

/* `derive --hessian`: the blocks i <= j of the wrt inputs' Hessian (the
 * block j, i is the transpose), shared subexpressions bound first. */
static void hessian_label(Printer *p, const char *y, const char *xi, const char *xj)
{
    FILE *out = p->out;
    if (!latex(p)) {
        size_t n = strlen(xi);
        if (xi == xj && !(n && xi[n - 1] >= '0' && xi[n - 1] <= '9'))   /* not d2L/dW12 */
            fprintf(out, "d2%s/d%s2", y, xi);
        else
            fprintf(out, "d2%s/d%sd%s", y, xi, xj);
        return;
    }
    fputs("\\frac{\\partial^2 ", out);
    name(p, y);
    fputs("}{\\partial ", out);
    name(p, xi);
    if (xi == xj) {
        fputs("^2", out);
    } else {
        fputs(" \\partial ", out);
        name(p, xj);
    }
    fputs("}", out);
}

void print_hessians(FILE *out, const Module *m, Node *const *H, const char *const *why,
                    PrintStyle style)
{
    Rewrite r = rewrite_values(m);
    int k = m->nwrt, nb = 0;
    Node **blocks = arena_alloc(m->arena, sizeof(Node *) * (size_t)(k * k + 1));
    for (int i = 0; i < k; i++)
        for (int j = i; j < k; j++)
            blocks[nb++] = H[i * k + j] ? rw(&r, H[i * k + j]) : NULL;
    Printer *p = printer_new(out, m, style);
    const char *y = m->output_name ? m->output_name : "y";
    print_lets(p, blocks, nb, "");
    nb = 0;
    for (int i = 0; i < k; i++)
        for (int j = i; j < k; j++, nb++) {
            const char *xi = m->inputs[m->wrt[i]].name, *xj = m->inputs[m->wrt[j]].name;
            if (!blocks[nb]) {
                fputs(latex(p) ? "% " : "# ", out);
                hessian_label(p, y, xi, xj);
                fprintf(out, ": no closed form: %s\n", why[i * k + j]);
                continue;
            }
            hessian_label(p, y, xi, i == j ? xi : xj);
            fputs(" = ", out);
            expr(p, blocks[nb], 0);
            line_end(p);
        }
    forget_lets(p);
}

/* `derive --hessian` through control flow: tangent_module's program (the
 * gradient program with the tangents of direction v riding along), its
 * directions declared as inputs, then the gradient and hv_x = (H*v)_x. */
void print_hvp(FILE *out, const Module *h0, PrintStyle style)
{
    Rewrite r = rewrite_values(h0);
    Module copy = *h0, *h = &copy;
    int k = h->nwrt / 2;
    copy.grad.grads = rw_array(&r, h0->arena, h0->grad.grads, h->nwrt);
    copy.grad.body = rw_block(&r, h0->arena, h0->grad.body);
    Printer *p = printer_new(out, h, style);
    const char *c = latex(p) ? "%" : "#", *y = h->output_name ? h->output_name : "y";
    fprintf(out, "%s no closed form (control flow): the Hessian-vector product H*%s", c,
            k == 1 ? h->inputs[h->wrt[1]].name : "v");
    for (int i = 0; k > 1 && i < k; i++)   /* v: the directions stacked */
        fprintf(out, "%s%s", i ? ", " : ", v = (", h->inputs[h->wrt[k + i]].name);
    fputs(k > 1 ? ")\n" : "\n", out);
    for (int i = 0; i < k; i++) {
        const Input *v = &h->inputs[h->wrt[k + i]];
        fprintf(out, "%sinput %s%s\n", latex(p) ? "% " : "", v->name,   /* LaTeX: a note */
                shape_is_scalar(v->shape) ? "" : shape_str(h->arena, v->shape, h->dims));
    }
    fprintf(out, "%s the gradient program with its tangent along v (t_...): the forward\n"
            "%s sweep, recording what the reverse sweep needs (push), then the reverse\n"
            "%s sweep (pop), in reverse order\n", c, c, c);
    declare_branch_slots(p, h->grad.body);
    print_block(p, h->grad.body, 0);
    print_lets(p, h->grad.grads, h->nwrt, "");
    for (int i = 0; i < h->nwrt; i++) {
        const char *x = h->inputs[h->wrt[i % k]].name;
        if (i < k && latex(p)) {
            fputs("\\frac{\\partial ", out);
            name(p, y);
            fputs("}{\\partial ", out);
            name(p, x);
            fputs("} = ", out);
        } else if (i < k)
            fprintf(out, "d%s/d%s = ", y, x);
        else if (latex(p)) {
            name(p, arena_printf(h->arena, "hv_%s", x));
            fputs(" = ", out);
        } else
            fprintf(out, "hv_%s = ", x);
        expr(p, h->grad.grads[i], 0);
        fputs(latex(p) ? " \\\\\n" : "\n", out);
    }
    forget_lets(p);
}
