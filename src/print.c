/* print.c — expressions as text or LaTeX, for `gradc derive`.
 *
 * Expressions print in the language's own syntax (or LaTeX) with the fewest
 * parentheses the precedence rules allow.  A subexpression that the printed
 * results share, and that is more than a name, is printed once as
 * `t1 = …` and referred to by name, so output stays linear in the DAG.
 * Whole programs (control flow, the gradient and Hessian-vector programs)
 * are print_prog.c's, built on this file's printer (print.h). */
#include "gradc.h"
#include "print.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
void print_name(Printer *p, const char *s)
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
#define X(name, text, arity, kind, fn, libm, code, builtin, prec, latex, adj) [OP_##name] = P_##prec,
    GRADC_OPS(X)
#undef X
};

static const char *const op_latex[OP_COUNT] = {
#define X(name, text, arity, kind, fn, libm, code, builtin, prec, latex, adj) [OP_##name] = latex,
    GRADC_OPS(X)
#undef X
};

/* The precedence an expression prints at (a let-bound one is a name). */
static int prec_of(const Printer *p, const Node *n)
{
    if (let_of(p, n))
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
    case OP_INPUT: print_name(p, m->inputs[n->index].name); break;
    case OP_SLOT: print_name(p, p->slot_names[n->index]); break;
    case OP_DIMVAL: print_name(p, m->dims[n->index]); break;
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
    if (n->op != OP_CLAMPHI || lo->op != OP_CLAMPLO || let_of(p, lo))
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
    return n->op == OP_BCAST && !let_of(p, n) ? n->args[0] : n;
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
    if (x->op != OP_PICK || y->op != OP_PICK || let_of(p, x) || let_of(p, y))
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
    bool sup = !let_of(p, n) && (n->op == OP_TRANSPOSE || n->op == OP_INV);
    return latex(p) && sup ? P_ATOM + 1 : prec;
}

/* Whether n, printed at min_prec, starts with a digit: LaTeX writes a
 * product by juxtaposition, which needs a \cdot before one (0.5 \cdot 2^{x}). */
static bool starts_with_digit(const Printer *p, const Node *n, int min_prec)
{
    for (;;) {
        if (let_of(p, n) || prec_of(p, n) < min_prec)
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
    for (; x->op == n->op && !let_of(p, x) && k < 63; x = x->args[0])
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

/* A value that is a dimension form (literals, symbols, + - and constant
 * factors), into *d. */
bool node_dim(const Node *n, Dim *d)
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

/* One axis of a slice: ':' (all of it), an index, or first:last, 1-based:
 * the offset off (a value) read as v + k when it is one. */
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
    if (let_of(p, n)) {
        print_name(p, let_of(p, n));
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
void print_expr(Printer *p, const Node *n, int min_prec)
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
static void printer_fit(Printer *p);

void print_lets(Printer *p, Node *const *roots, int nroots, const char *indent)
{
    Arena *a = p->m->arena;
    printer_fit(p);
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
        print_name(p, let);
        fputs(" = ", p->out);
        print_expr(p, n, 0);
        fputs(latex(p) ? " \\\\\n" : "\n", p->out);
        p->let[id] = let;
        vec_push(a, &p->bound, id);
    }
    for (int r = 0; r < p->reached.len; r++)
        p->refs[p->reached.data[r]] = 0;
}

void forget_lets(Printer *p)
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

/* The per-node arrays grown to cover every node made so far (printing
 * makes nodes: zeros, rewritten terms), so that print_lets may count and
 * bind them. */
static void printer_fit(Printer *p)
{
    int n = p->m->ir->nnodes + 1;
    if (n <= p->cap)
        return;
    Arena *a = p->m->arena;
    const char **let = arena_alloc(a, sizeof(char *) * (size_t)n);
    int *refs = arena_alloc(a, sizeof(int) * (size_t)n);
    bool *sliced = arena_alloc(a, sizeof(bool) * (size_t)n);
    if (p->cap) {
        memcpy(let, p->let, sizeof(char *) * (size_t)p->cap);
        memcpy(refs, p->refs, sizeof(int) * (size_t)p->cap);
        memcpy(sliced, p->sliced, sizeof(bool) * (size_t)p->cap);
    }
    p->let = let, p->refs = refs, p->sliced = sliced, p->cap = n;
}

const char **slot_print_names(const Module *m)
{
    Arena *a = m->arena;
    int ns = m->ir->slots.len;
    const char **names = arena_alloc(a, sizeof(char *) * (size_t)(ns + 1));
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
        names[s] = same ? arena_printf(a, "%s_%d", name, same + 1) : name;
    }
    return names;
}

Printer *printer_new(FILE *out, const Module *m, PrintStyle style)
{
    Arena *a = m->arena;
    Printer *p = arena_alloc(a, sizeof *p);
    p->out = out;
    p->m = m;
    p->style = style;
    printer_fit(p);
    p->slot_names = slot_print_names(m);
    return p;
}

void print_node(FILE *out, const Module *m, const Node *n, PrintStyle style)
{
    print_expr(printer_new(out, m, style), n, 0);
}
