/* test_ir.c — the DAG (hash-consing, slot sets), shape rules, the simplifier,
 * and reverse mode on programs given as text: results are compared as nodes,
 * which hash-consing makes a pointer comparison. */
#include "gradc.h"

#include <stdlib.h>
#include <string.h>

#include "../check.h"

static Arena *A;
static Ir *IR;

static Shape vec(int sym) { return shape_make(dim_sym(sym), dim_lit(1)); }
static Shape mat(int r, int c) { return shape_make(dim_sym(r), dim_sym(c)); }
static Node *T(Node *x) { return mk1(IR, OP_TRANSPOSE, x); }
static Node *add(Node *x, Node *y) { return mk2(IR, OP_ADD, x, y); }
static Node *mul(Node *x, Node *y) { return mk2(IR, OP_MUL, x, y); }
static Node *mm(Node *x, Node *y) { return mk2(IR, OP_MATMUL, x, y); }
static Node *k(double v) { return mk_const(IR, v); }

static void test_hash_consing(void)
{
    Node *x = mk_input(IR, 0, vec(0)), *y = mk_input(IR, 1, vec(0));
    CHECK(x == mk_input(IR, 0, vec(0)));
    CHECK(x != y);
    CHECK(ir_node(IR, OP_EXP, x->shape, x, NULL, 0, 0) == ir_node(IR, OP_EXP, x->shape, x, NULL, 0, 0));
    CHECK(add(x, y) == add(y, x));                  /* commutative operands in one order */
    CHECK(k(0.5) == k(0.5) && k(0.5) != k(0.25));
    CHECK(IR->nodes.data[x->id] == x);
    /* children are older than parents */
    Node *e = mk1(IR, OP_EXP, add(x, y));
    CHECK(e->args[0]->id < e->id);
}

static void test_slot_sets(void)
{
    int s1 = ir_slot(IR, "a", vec(0)), s2 = ir_slot(IR, "b", vec(0));
    Node *a = mk_slot(IR, s1), *b = mk_slot(IR, s2), *x = mk_input(IR, 0, vec(0));
    Node *e = add(mul(a, x), mk1(IR, OP_SIN, b));
    CHECK(e->nslots == 2 && e->slots[0] == s1 && e->slots[1] == s2);
    CHECK(node_reads_slot(e, s1) && node_reads_slot(e, s2) && !node_reads_slot(x, s1));
    CHECK(mul(a, add(a, x))->nslots == 1);

    /* SlotSet: sized for the slots that exist, it takes a slot created later */
    SlotSet *w = slotset_new(A);
    int late = IR->slots.len + 100;
    slotset_add(w, s2);
    CHECK(!slotset_has(w, late));
    slotset_add(w, late);
    CHECK(slotset_has(w, late) && slotset_has(w, s2) && !slotset_has(w, s1));
    CHECK(!slotset_has(w, late + 1) && !slotset_has(w, 1 << 30));
    for (int k = 0; k < 1000; k++)   /* growth keeps what was added */
        slotset_add(w, 3 * k + 1000);
    CHECK(slotset_has(w, late) && slotset_has(w, 3 * 999 + 1000) && !slotset_has(w, 3 * 999 + 1001));
}

static void test_shapes(void)
{
    CHECK(shape_eq(vec(0), vec(0)) && !shape_eq(vec(0), vec(1)));
    CHECK(!dim_eq(dim_sym(0), dim_lit(3)));
    CHECK(shape_is_scalar(shape_scalar()) && !shape_is_scalar(vec(0)));
    const char *names[] = {"n", "m"};
    CHECK(strcmp(shape_str(A, mat(0, 1), names), "[n, m]") == 0);
    CHECK(strcmp(shape_str(A, vec(1), names), "[m]") == 0);
    CHECK(strcmp(shape_str(A, shape_scalar(), names), "scalar") == 0);
    Node *M = mk_input(IR, 2, mat(1, 0)), *x = mk_input(IR, 0, vec(0));
    CHECK(shape_eq(mm(M, x)->shape, vec(1)));
    CHECK(shape_eq(T(M)->shape, mat(0, 1)));
    CHECK(shape_is_scalar(mk1(IR, OP_SUM, M)->shape));
    CHECK(shape_eq(mk1(IR, OP_DIAGM, x)->shape, mat(0, 0)));
}

static void test_simplifier(void)
{
    Node *x = mk_input(IR, 0, vec(0)), *y = mk_input(IR, 1, vec(0));
    Node *S = mk_input(IR, 3, mat(0, 0)), *B = mk_input(IR, 4, mat(0, 0));
    CHECK(add(mul(k(2), x), mul(k(2), x)) == mul(k(4), x));     /* like terms */
    CHECK(add(x, x) == mul(k(2), x));
    CHECK(mk2(IR, OP_SUB, x, x) == mk_zero(IR, vec(0)));
    CHECK(add(k(2), k(3)) == k(5));                              /* folding */
    CHECK(mk1(IR, OP_EXP, k(0)) == k(1));
    CHECK(mul(k(1), x) == x && mul(k(0), x) == mk_zero(IR, vec(0)));
    CHECK(add(mk_zero(IR, vec(0)), x) == x);
    CHECK(mul(k(3), mul(k(2), x)) == mul(k(6), x));              /* factors combine */
    CHECK(mk1(IR, OP_NEG, mk1(IR, OP_NEG, x)) == x);
    CHECK(T(T(S)) == S);                                          /* (A')' = A */
    CHECK(T(mm(T(S), B)) == mm(T(B), S));                         /* (A'B)' = B'A */
    CHECK(T(mm(S, B)) == mk1(IR, OP_TRANSPOSE, mm(S, B)));        /* kept: shares A*B */
    CHECK(mm(mul(k(2), S), x) == mul(k(2), mm(S, x)));            /* scalars out */
    CHECK(add(mm(S, x), mm(T(S), x)) == mm(add(S, T(S)), x));     /* Ax + A'x = (A + A')x */
    CHECK(mm(mk_eye(IR, dim_sym(0)), x) == x);
    /* products of different shapes do not factor: x'*x ± K*x, a 1×1 product
     * that broadcasts, once made (x' ± K)*x, an internal error (issue 8) */
    Node *K = mk_input(IR, 6, mat(1, 0));
    Node *q = mk2(IR, OP_SUB, mm(T(x), x), mm(K, x));
    CHECK(q->op == OP_SUB && shape_eq(q->shape, vec(1)));
    CHECK(add(mm(T(x), x), mm(K, x))->op == OP_ADD);
    CHECK(mk2(IR, OP_SUB, mm(K, x), mm(T(x), x))->op == OP_SUB);
    /* a broadcast next to a full operand is the scalar itself */
    Node *s = mk_input(IR, 5, shape_scalar());
    Node *bs = mk2(IR, OP_MUL, s, mk_fill(IR, 1.0, vec(0)));
    CHECK(mul(bs, y) == mul(s, y));
    CHECK(mul(mk_fill(IR, 2.0, vec(0)), y) == mul(k(2), y));
    /* norm(x)^2 = dot(x, x) */
    CHECK(mk2(IR, OP_POW, mk1(IR, OP_NORM, x), k(2)) ==
          mk1(IR, OP_SUM, mk2(IR, OP_POW, x, k(2))));
    CHECK(mk1(IR, OP_SUM, mul(k(3), x)) == mul(k(3), mk1(IR, OP_SUM, x)));
}

/* ---- programs from text ---- */

static Module *compile(const char *text)
{
    Source *src = source_from_string(A, "test.expr", text);
    Ast *ast = parse_source(A, src);
    Module *m = ast ? check_program(A, ast) : NULL;
    if (m)
        diff_reverse(m);
    return m;
}

static Node *input(Module *m, const char *name)
{
    for (int i = 0; i < m->ninputs; i++)
        if (strcmp(m->inputs[i].name, name) == 0)
            return mk_input(m->ir, i, m->inputs[i].shape);
    return NULL;
}

static void test_derivatives(void)
{
    Module *m = compile("input x[n]\ny = 2*dot(x, x)\n");
    CHECK(m && m->grad.grads[0] == mk2(m->ir, OP_MUL, mk_const(m->ir, 4), input(m, "x")));

    m = compile("input A[n, n]\ninput x[n]\nf = x' * A * x\nwrt x\n");
    if (m) {
        Ir *ir = m->ir;
        Node *Am = input(m, "A"), *xv = input(m, "x");
        CHECK(m->grad.grads[0] ==
              mk2(ir, OP_MATMUL, mk2(ir, OP_ADD, Am, mk1(ir, OP_TRANSPOSE, Am)), xv));
    }

    m = compile("input X[m, n]\nf = norm(X)^2\n");
    CHECK(m && m->grad.grads[0] == mk2(m->ir, OP_MUL, mk_const(m->ir, 2), input(m, "X")));

    /* detach blocks the adjoint: d sum(detach(x.*x) .* x)/dx = x.^2 (in a
     * derivative, which is not differentiated again, detach is its value) */
    m = compile("input x[n]\nu = detach(x .* x)\ns = sum(u .* x)\n");
    CHECK(m && m->grad.grads[0] == mk2(m->ir, OP_POW, input(m, "x"), mk_const(m->ir, 2)));
    /* a rank-1 product is formed last: no n×n outer product */
    m = compile("input S[n, n]\ninput x[n]\nY = S * (x * x')\n");
    if (m) {
        Node *S = input(m, "S"), *x = input(m, "x");
        CHECK(m->fwd.value == mk2(m->ir, OP_MATMUL, mk2(m->ir, OP_MATMUL, S, x),
                                  mk1(m->ir, OP_TRANSPOSE, x)));
    }

    /* an input the output does not use has a zero gradient */
    m = compile("input x[n]\ninput z[n]\ny = sum(x)\n");
    CHECK(m && node_is_zero(m->grad.grads[1]));
}

/* Printing: exact text for some, and a round trip for all: an expression
 * and its printed form parse to the same node, so their difference
 * simplifies to zero. */
static const char *printed(Module *m, const Node *n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    print_node(f, m, n, PRINT_EXPR);
    fclose(f);
    char *copy = arena_strdup(A, buf);
    free(buf);
    return copy;
}

static void test_printing(void)
{
    static const char *const header =
        "input A[n, n]\ninput B[n, n]\ninput x[n]\ninput y[n]\ninput a\ninput b\ninput c\n";
    static const struct { const char *expr, *text; } cases[] = {
        {"a/(b*c)", "a/(b*c)"},
        {"(a/b)*c", "c*(a/b)"},
        {"2*(A*x)", "2*A*x"},
        {"x .* (A*y)", "x.*(A*y)"},
        {"(x .* y)' * A", "(x.*y)'*A"},
        {"-(x .^ 2)", "-x.^2"},
        {"(-a)^2", "(-a)^2"},
        {"a^(b^c)", "a^b^c"},
        {"(a^b)^c", "(a^b)^c"},
        {"a - (b - c)", "a - (b - c)"},
        {"(A + A')*x", "(A + A')*x"},
        {"x' * A'", "x'*A'"},
        {"(x' * A)'", "A'*x"},
        {"exp(-a) * sum(x ./ y)", "exp(-a)*sum(x./y)"},
        {"A*(B*x)", "A*(B*x)"},
        {"a*(A*(B*x))", "a*A*(B*x)"},
        {"a*(x.*y)", "a*(x.*y)"},
        {"1000000 * a + 0.001", "0.001 + 1000000*a"},
        /* constants meet: 2*0.5/n is 1/n */
        {"2*(0.5/a*x)", "x/a"},
        {"2*(x/(2*a))", "x/a"},
        {"3*(1/(6*a))", "0.5/a"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Source *src = source_from_string(A, "print.expr",
                                         arena_printf(A, "%sout = %s\n", header, cases[i].expr));
        Ast *ast = parse_source(A, src);
        Module *m = ast ? check_program(A, ast) : NULL;
        CHECK(m != NULL);
        if (!m)
            continue;
        const char *text = printed(m, m->fwd.value);
        if (strcmp(text, cases[i].text) != 0) {
            fprintf(stderr, "print %s: got %s, expected %s\n", cases[i].expr, text, cases[i].text);
            failures++;
        }
        src = source_from_string(A, "round.expr", arena_printf(A, "%sout = (%s) - (%s)\n", header,
                                                               cases[i].expr, text));
        ast = parse_source(A, src);
        m = ast ? check_program(A, ast) : NULL;
        if (!m || !node_is_zero(m->fwd.value)) {
            fprintf(stderr, "round trip of %s through %s failed\n", cases[i].expr, text);
            failures++;
        }
    }
}

/* Reverse mode stays linear in the program: a 1,000-step chain. */
static void test_chain_is_linear(void)
{
    size_t cap = 64 * 1024, len = 0;
    char *text = arena_alloc(A, cap);
    len += (size_t)snprintf(text + len, cap - len, "input x[n]\nv0 = x\n");
    for (int i = 1; i <= 1000; i++)
        len += (size_t)snprintf(text + len, cap - len, "v%d = sin(v%d) + v%d\n", i, i - 1, i - 1);
    snprintf(text + len, cap - len, "y = sum(v1000)\n");
    Source *src = source_from_string(A, "chain.expr", text);
    Ast *ast = parse_source(A, src);
    Module *m = ast ? check_program(A, ast) : NULL;
    CHECK(m != NULL);
    if (!m)
        return;
    int before = m->ir->nnodes;
    diff_reverse(m);
    int added = m->ir->nnodes - before;
    CHECK(added < 10 * before);   /* a handful of adjoint nodes per forward node */
}

/* Broadcasting (spec §8): an explicit BCAST, kept outermost, that products
 * and sums rewrite away; reductions along d simplify to the op over all
 * entries for a vector and to X along a literal 1. */
static void test_broadcasting(void)
{
    Shape mn = mat(0, 1), row = shape_make(dim_lit(1), dim_sym(1)), col = vec(0);
    Node *X = mk_input(IR, 0, mn), *r = mk_input(IR, 1, row), *c = mk_input(IR, 2, col);
    Node *s = add(X, r);
    CHECK(s->op == OP_ADD && shape_eq(s->shape, mn) && s->args[1]->op == OP_BCAST);
    CHECK(bcast_dims(s->args[1]) == 1 && s->args[1]->args[0] == r);
    Node *outer = add(c, r);                          /* a column plus a row */
    CHECK(shape_eq(outer->shape, mn) && outer->args[0]->op == OP_BCAST && outer->args[1]->op == OP_BCAST);
    Node *b = mk_bcast(IR, r, mn);
    CHECK(mk1(IR, OP_EXP, b) == mk_bcast(IR, mk1(IR, OP_EXP, r), mn));   /* f(bcast v) = bcast f(v) */
    CHECK(mul(k(2), b) == mk_bcast(IR, mul(k(2), r), mn));
    CHECK(add(b, b) == mk_bcast(IR, mul(k(2), r), mn));
    CHECK(T(b) == mk_bcast(IR, T(r), shape_make(dim_sym(1), dim_sym(0))));
    CHECK(mk_bcast(IR, mk_fill(IR, 3, row), mn) == mk_fill(IR, 3, mn));
    /* sums and products never keep a broadcast factor */
    CHECK(mk_along(IR, OP_SUMD, b, 1) == mul(mk_dimval(IR, 0), r));
    CHECK(mk1(IR, OP_SUM, b) == mul(mk_dimval(IR, 0), mk1(IR, OP_SUM, r)));
    Node *B = mk_input(IR, 3, shape_make(dim_sym(1), dim_sym(2)));
    CHECK(mm(b, B)->op == OP_BCAST);
    CHECK(mm(mk_fill(IR, 1, col), r) == mk_bcast(IR, r, mn));            /* ones(m)*r: no outer product */
    /* P*x ± Q*x is factored only for products of one shape */
    Node *P = mk_input(IR, 4, shape_make(dim_lit(1), dim_sym(0))), *Q = mk_input(IR, 5, mat(0, 0));
    Node *f = add(mm(P, X), mm(Q, X));
    CHECK(f->op == OP_ADD && shape_eq(f->shape, mn));
    /* along d */
    CHECK(mk_along(IR, OP_SUMD, c, 1) == mk1(IR, OP_SUM, c));
    CHECK(mk_along(IR, OP_LSED, c, 2) == c);
    CHECK(mk_along(IR, OP_SOFTMAXD, c, 2) == mk_fill(IR, 1, col));
    CHECK(mk_along(IR, OP_SOFTMAXD, c, 1) == mk1(IR, OP_SOFTMAX, c));
    CHECK(mk_along(IR, OP_AMAXD, T(X), 1) == T(mk_along(IR, OP_AMAXD, X, 2)));
    Node *l = mk_along(IR, OP_LSED, X, 2);
    CHECK(l->op == OP_LSED && l->index == 2 && shape_eq(l->shape, col));
    CHECK(mk_like(IR, l, X, NULL) == l && mk_like(IR, b, r, NULL) == b);
}

/* Dimension forms (spec §8): normal forms compare equal however built, the
 * small encodings stay for symbols and literals, values and text follow. */
static void test_dim_forms(void)
{
    Dim n = dim_sym(0), m = dim_sym(1), one = dim_lit(1);
    Dim a = dim_add(dim_add(n, m), one), b = dim_add(one, dim_add(m, n));
    CHECK(dim_eq(a, b) && a.sym == -2);
    CHECK(!dim_eq(a, dim_add(n, one)));
    CHECK(dim_eq(dim_sub(a, dim_add(m, one)), n) && dim_sub(a, dim_add(m, one)).sym == 0);
    CHECK(dim_eq(dim_sub(n, n), dim_lit(0)));
    CHECK(dim_eq(dim_add(dim_lit(2), dim_lit(3)), dim_lit(5)));
    Dim twice = dim_add(n, n);
    int syms[3] = {1, 0, 1};
    int64_t coefs[3] = {1, 2, -1};
    CHECK(dim_eq(dim_form(0, 3, syms, coefs), twice));   /* m + 2n - m = 2n */
    int64_t dims[2] = {5, 3};
    CHECK(dim_eval(a, dims) == 9 && dim_eval(dim_sub(twice, dim_lit(3)), dims) == 7);
    const char *names[2] = {"n", "m"};
    CHECK(strcmp(dim_str(A, a, names), "n + m + 1") == 0);
    CHECK(strcmp(dim_str(A, dim_sub(dim_lit(1), twice), names), "-2*n + 1") == 0);
    CHECK(strcmp(dim_str(A, dim_sub(n, one), names), "n - 1") == 0);
    /* shapes of concatenations, and a slice of one that lies in a part */
    Node *x = mk_input(IR, 0, vec(0)), *y = mk_input(IR, 1, vec(1));
    Node *xy = mk2(IR, OP_VCAT, x, y);
    CHECK(dim_eq(xy->shape.rows, dim_add(n, m)));
    CHECK(mk3(IR, OP_SLICE, y->shape, xy, mk_dim(IR, n), k(0), 0) == y);
    CHECK(mk3(IR, OP_SLICE, x->shape, xy, k(0), k(0), 0) == x);
    CHECK(mk3(IR, OP_PAD, xy->shape, mk_zero(IR, y->shape), k(1), k(0), 0) == mk_zero(IR, xy->shape));
    Node *s = mk3(IR, OP_SLICE, shape_scalar(), x, k(2), k(0), loc_pack((Loc){7, 19}));
    CHECK(node_loc(s).line == 7 && node_loc(s).col == 19);
}

int main(void)
{
    A = arena_new();
    IR = ir_new(A);
    test_hash_consing();
    test_slot_sets();
    test_shapes();
    test_simplifier();
    test_derivatives();
    test_printing();
    test_chain_is_linear();
    test_broadcasting();
    test_dim_forms();
    arena_free(A);
    return check_report("test_ir");
}
