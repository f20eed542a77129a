/* test_parse.c — the parser: precedence, associativity, locations, the
 * statement forms, and the inputs it must refuse (without crashing). */
#include "gradc.h"

#include <stdlib.h>
#include <string.h>

static int failures;

/* The tree as an S-expression, e.g. "(- (neg (^ x 2)) 1)". */
static void sexpr(char **out, size_t *left, const Expr *e)
{
    int n = 0;
    switch (e->kind) {
    case EX_NUM:       n = snprintf(*out, *left, "%g", e->num); break;
    case EX_NAME:      n = snprintf(*out, *left, "%s", e->name); break;
    case EX_NEG:       n = snprintf(*out, *left, "(neg "); break;
    case EX_NOT:       n = snprintf(*out, *left, "(not "); break;
    case EX_TRANSPOSE: n = snprintf(*out, *left, "(' "); break;
    case EX_BINARY:    n = snprintf(*out, *left, "(%s ", binop_text[e->op]); break;
    case EX_CALL:      n = snprintf(*out, *left, "(%s", e->name); break;
    case EX_INDEX:     n = snprintf(*out, *left, "(%s[]", e->name); break;
    case EX_HCAT:      n = snprintf(*out, *left, "(hcat"); break;
    case EX_VCAT:      n = snprintf(*out, *left, "(vcat"); break;
    case EX_RANGE:     n = snprintf(*out, *left, "(: "); break;
    case EX_COLON:     n = snprintf(*out, *left, ":"); break;
    }
    *out += n, *left -= (size_t)n;
    if (e->kind == EX_NUM || e->kind == EX_NAME || e->kind == EX_COLON)
        return;
    if (e->kind == EX_CALL || e->kind == EX_INDEX || e->kind == EX_HCAT || e->kind == EX_VCAT) {
        for (int i = 0; i < e->nargs; i++) {
            n = snprintf(*out, *left, " ");
            *out += n, *left -= (size_t)n;
            sexpr(out, left, e->args[i]);
        }
    } else {
        sexpr(out, left, e->lhs);
        if (e->kind == EX_BINARY || e->kind == EX_RANGE) {
            n = snprintf(*out, *left, " ");
            *out += n, *left -= (size_t)n;
            sexpr(out, left, e->rhs);
        }
    }
    n = snprintf(*out, *left, ")");
    *out += n, *left -= (size_t)n;
}

static Ast *parse(Arena *a, const char *text)
{
    return parse_source(a, source_from_string(a, "t.expr", text));
}

/* `y = EXPR` parses to the tree want, whose root is at column col. */
static void expect_tree(const char *expr, const char *want, int col)
{
    Arena *a = arena_new();
    char text[256], got[512], *p = got;
    size_t left = sizeof got;
    snprintf(text, sizeof text, "y = %s\n", expr);
    Ast *ast = parse(a, text);
    if (!ast || ast->top.n != 1 || ast->top.stmts[0]->kind != AST_ASSIGN) {
        printf("FAIL %s: did not parse as one assignment\n", expr);
        failures++;
    } else {
        Expr *e = ast->top.stmts[0]->value;
        sexpr(&p, &left, e);
        if (strcmp(got, want) != 0 || e->loc.line != 1 || e->loc.col != col) {
            printf("FAIL %s: got %s at 1:%d, want %s at 1:%d\n", expr, got, e->loc.col,
                   want, col);
            failures++;
        }
    }
    arena_free(a);
}

static void expect_error(const char *text)
{
    Arena *a = arena_new();
    Ast *ast = parse(a, text);
    diag_release();   /* the messages of a recovered parse are held */
    if (ast && ast->nerrors == 0) {
        printf("FAIL: accepted %s\n", text);
        failures++;
    }
    arena_free(a);
}

/* text parses with exactly n errors (its messages are held and counted). */
static void expect_errors(const char *text, int n)
{
    Arena *a = arena_new();
    Ast *ast = parse(a, text);
    int held = diag_count();
    diag_release();
    if (!ast || ast->nerrors != n || held != n) {
        printf("FAIL: %s: %d error(s), expected %d\n", text, ast ? ast->nerrors : -1, n);
        failures++;
    }
    arena_free(a);
}

static void check(bool ok, const char *what)
{
    if (!ok) {
        printf("FAIL %s\n", what);
        failures++;
    }
}

static void test_statements(void)
{
    Arena *a = arena_new();
    Ast *ast = parse(a,
        "# ünïcode comment\n"
        "input A[n, 3]; input s\n"
        "\n"
        "if s > 0\n"
        "  y = 1\n"
        "elif s < 0; y = 2;\n"
        "else\n"
        "  y = 3\n"
        "end\n"
        "for i in 1:n\n"
        "  while y < 9\n"
        "    y = y * 2\n"
        "  end\n"
        "end\n"
        "output y\n"
        "wrt s, A");
    check(ast != NULL, "statements parse");
    if (!ast) {
        arena_free(a);
        return;
    }
    AstBlock *top = &ast->top;
    check(top->n == 6, "six top-level statements");
    AstStmt *in = top->stmts[0], *s = top->stmts[1];
    check(in->kind == AST_INPUT && in->ndims == 2 && !strcmp(in->dims[0].sym, "n") &&
          in->dims[1].sym == NULL && in->dims[1].lit == 3 && in->dims[1].loc.col == 12,
          "input A[n, 3]");
    check(s->kind == AST_INPUT && s->ndims == 0 && s->loc.line == 2 && s->loc.col == 16 &&
          s->name_loc.col == 22, "input s after ';'");
    AstStmt *ifs = top->stmts[2];
    check(ifs->kind == AST_IF && ifs->loc.line == 4 && ifs->then_block.n == 1 && ifs->has_else &&
          ifs->else_block.n == 1, "if with elif");
    AstStmt *elif = ifs->else_block.stmts[0];
    check(elif->kind == AST_IF && elif->loc.line == 6 && elif->loc.col == 1 &&
          elif->then_block.n == 1 && elif->then_block.stmts[0]->loc.col == 13 &&
          elif->has_else && elif->else_block.n == 1, "elif is an else block with one if");
    AstStmt *f = top->stmts[3];
    check(f->kind == AST_FOR && !strcmp(f->name, "i") && f->name_loc.col == 5 &&
          f->for_lo->kind == EX_NUM && f->for_hi->kind == EX_NAME && f->body.n == 1 &&
          f->body.stmts[0]->kind == AST_WHILE && f->body.stmts[0]->loc.col == 3,
          "for with a while inside");
    AstStmt *w = top->stmts[5];
    check(w->kind == AST_WRT && w->nnames == 2 && !strcmp(w->names[1], "A") &&
          w->name_locs[1].col == 8, "wrt s, A (no final newline)");
    arena_free(a);
}

/* Spec §8 lines: inside ( ) or [ ] a newline (and a comment) is whitespace. */
static void test_lines(void)
{
    Arena *a = arena_new();
    Ast *ast = parse(a, "y = f(x,   # a comment\n  g(y\n\n)) + (1 +\n 2)\nz = 1\n");
    check(ast && ast->nerrors == 0 && ast->top.n == 2, "newlines inside brackets continue the statement");
    char got[256], *p = got;
    size_t left = sizeof got;
    if (ast && ast->top.n == 2) {
        sexpr(&p, &left, ast->top.stmts[0]->value);
        check(strcmp(got, "(+ (f x (g y)) (+ 1 2))") == 0, "the continued statement's tree");
        check(ast->top.stmts[1]->loc.line == 6, "the next statement's line");
    }
    arena_free(a);
    /* outside brackets a newline still ends the statement; a stray ) does not
     * make the next line's brackets lose their newlines */
    expect_errors("y = 1 +\nz = 2\n", 1);
    expect_errors("y = 1)\nz = (1 +\n 2)\n", 1);
}

int main(void)
{
    /* Precedence and associativity (spec §2). */
    expect_tree("-x^2", "(neg (^ x 2))", 5);
    expect_tree("2^3^2", "(^ 2 (^ 3 2))", 6);
    expect_tree("2^-1", "(^ 2 (neg 1))", 6);
    expect_tree("a - b - c", "(- (- a b) c)", 11);
    expect_tree("a + b * c .* d", "(+ a (.* (* b c) d))", 7);
    /* spec §8: indexing, slicing and concatenation */
    expect_tree("x[i + 1]", "(x[] (+ i 1))", 5);
    expect_tree("X[:, 2:n - 1]'", "(' (X[] : (: 2 (- n 1))))", 18);
    expect_tree("[1, -a; b', 2]", "(vcat (hcat 1 (neg a)) (hcat (' b) 2))", 5);
    expect_tree("[x]", "x", 6);
    expect_tree("[x; y] + 1", "(+ (vcat x y) 1)", 12);
    expect_tree("x' * A * x", "(* (* (' x) A) x)", 12);
    expect_tree("-x'", "(neg (' x))", 5);
    expect_tree("2.^x", "(.^ 2 x)", 6);
    expect_tree(".5 + 1e-3 + 2.5E+4", "(+ (+ 0.5 0.001) 25000)", 15);
    expect_tree("not a < b and c or d", "(or (and (not (< a b)) c) d)", 21);
    expect_tree("a ./ b / c", "(/ (./ a b) c)", 12);
    expect_tree("f(x, g(y)', 2)", "(f x (' (g y)) 2)", 5);
    expect_tree("(a + b) * c", "(* (+ a b) c)", 13);
    expect_tree("f()", "(f)", 5);
    /* \ (solve, spec §8) binds like *, left to right; unary minus and ' tighter */
    expect_tree("2 * A \\ b", "(\\ (* 2 A) b)", 11);
    expect_tree("A \\ b * 2", "(* (\\ A b) 2)", 11);
    expect_tree("-A \\ b + c", "(+ (\\ (neg A) b) c)", 12);
    expect_tree("A' \\ B'", "(\\ (' A) (' B))", 8);

    test_statements();
    test_lines();

    /* Refused, each with one message on stderr. */
    expect_error("y = x + * 2\n");
    expect_error("y = (2 * x)[1]\n");      /* only names are indexed */
    expect_error("y = x[1:2:3]\n");
    expect_error("y = []\n");
    expect_error("y = a < b < c\n");
    expect_error("if x > 0\n y = 1\n");
    expect_error("y = 1e400\n");
    expect_error("input x[99999999999999999999]\n");
    expect_error("input x[1.5]\n");
    expect_error("y = x @ 2\n");
    expect_error("y = \"é\"\n");
    expect_error("end\n");
    expect_error("y = x +");

    /* Recovery at statement boundaries: every error, one message each. */
    expect_errors("y = x + * 2\nz = 1\nw = ) 2\n", 2);
    expect_errors("y = \"é\"\n", 1);
    expect_errors("if x > \n y = 1 +\nend\nz = (\n", 3);
    expect_errors("for i 1:3\n y = 1\nend\nend\n", 2);
    expect_errors("y = x +\n* 2\n", 2);

    /* Nesting past PARSE_MAX_DEPTH: a clean error, not a crash. */
    size_t n = 20000;
    char *deep = malloc(4 * n + 16);
    if (!deep)
        return 1;
    strcpy(deep, "y = ");
    memset(deep + 4, '(', n);
    strcpy(deep + 4 + n, "x\n");
    expect_error(deep);
    strcpy(deep, "y = ");
    memset(deep + 4, '-', 4 * n);
    strcpy(deep + 4 + 4 * n, "x\n");
    expect_error(deep);
    free(deep);

    /* The empty program and comments only are fine. */
    Arena *a = arena_new();
    Ast *empty = parse(a, "");
    Ast *comments = parse(a, "# nothing\n\n   # here\n;\n");
    check(empty && empty->top.n == 0, "empty file parses");
    check(comments && comments->top.n == 0, "comments only parse");
    arena_free(a);

    if (failures)
        printf("%d failures\n", failures);
    return failures != 0;
}
