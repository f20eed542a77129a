/* print_prog.c — programs as text, for `gradc derive`: the gradient
 * program's lines with control flow (if/for/while, reverse loops written
 * `for i in K:-1:1`, recorded values as push/pop), the rewrite of derivative
 * terms into the language's own forms so what derive prints parses back, and
 * the entry points print_derivatives, print_hessians and print_hvp.
 * Expressions themselves (precedence, LaTeX, shared subexpressions as
 * t1 = ...) are print.c's; this file is split from it so each holds one part
 * of the stage (print.h is what they share). */
#include "gradc.h"
#include "print.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
            print_name(p, p->slot_names[slots[k]]);
            assigns(p);
            print_expr(p, vals[k], 0);
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
                print_name(p, p->slot_names[slots[k]]);
            }
        assigns(p);
        for (int k = 0, i = 0; k < n; k++)
            if (!done[k]) {
                fputs(i++ ? ", " : "", p->out);
                print_expr(p, vals[k], 0);
            }
        line_end(p);
    }
    forget_lets(p);
}

static void print_cond(Printer *p, const char *kw, const Node *cond, int depth)
{
    keyword(p, depth, kw);
    fputs(latex(p) ? "\\ " : " ", p->out);
    print_expr(p, cond, 0);
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
            print_expr(p, s->vals[k], 0);
        }
        fputs(tex ? "\\right)" : ")", p->out);
        line_end(p);
        break;
    case S_POP:
        for (int k = s->n - 1; k >= 0; k--) {
            fputs(indent_of(p, depth), p->out);
            print_name(p, p->slot_names[s->slots[k]]);
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
                print_name(p, i ? i : "k");
                fputs(" = ", p->out);
                if (!s->reverse)
                    fputs("1, \\dots, ", p->out);
                print_expr(p, s->count, P_ADD + 1);
                fputs(s->reverse ? ", \\dots, 1" : "", p->out);
            } else {
                fprintf(p->out, "%s in %s", i ? i : "_", s->reverse ? "" : "1:");
                print_expr(p, s->count, P_ADD + 1);
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
            print_name(p, p->slot_names[s->count_slot]);
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
        print_name(p, p->slot_names[sl]);
        assigns(p);
        print_expr(p, mk_zero(p->m->ir, p->m->ir->slots.data[sl].shape), 0);
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
            print_name(p, y);
            fputs("}{\\partial ", p->out);
            print_name(p, x);
            fputs("} = ", p->out);
        } else
            fprintf(p->out, "d%s/d%s = ", y, x);
        print_expr(p, m->grad.grads[k], 0);
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
    print_name(p, y);
    fputs("}{\\partial ", out);
    print_name(p, xi);
    if (xi == xj) {
        fputs("^2", out);
    } else {
        fputs(" \\partial ", out);
        print_name(p, xj);
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
            print_expr(p, blocks[nb], 0);
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
            print_name(p, y);
            fputs("}{\\partial ", out);
            print_name(p, x);
            fputs("} = ", out);
        } else if (i < k)
            fprintf(out, "d%s/d%s = ", y, x);
        else if (latex(p)) {
            print_name(p, arena_printf(h->arena, "hv_%s", x));
            fputs(" = ", out);
        } else
            fprintf(out, "hv_%s = ", x);
        print_expr(p, h->grad.grads[i], 0);
        fputs(latex(p) ? " \\\\\n" : "\n", out);
    }
    forget_lets(p);
}

