/* test_harden.c — the pieces issue 8 hardened, tested directly: the strict
 * JSON reader on buffers (json_parse_inputs, the fuzz target's entry), the
 * number range rule, function-name rules, and the simplifier's product
 * factoring when a 1×1 product broadcasts. */
#include "gradc.h"

#include <math.h>
#include <string.h>

#include "../check.h"

static Arena *A;

static Module *compile(const char *text)
{
    Ast *ast = parse_source(A, source_from_string(A, "t.expr", text));
    Module *m = ast ? check_program(A, ast) : NULL;
    if (m)
        diff_reverse(m);
    return m;
}

static bool inputs(const Module *m, const char *text, size_t len, Bindings *b)
{
    return json_parse_inputs(m, "t.json", text, len, b, A);
}

#define TEXT(s) s, sizeof s - 1

static void test_json(void)
{
    Module *m = compile("input x[n]\ninput A[n, n]\ny = sum(A*x)\n");
    Bindings b = {0};
    CHECK(inputs(m, TEXT("{\"x\": [1, 2], \"A\": [[1, 2], [3, 4]]}"), &b));
    CHECK(b.dims[0] == 2 && b.inputs[0][1] == 2 && b.inputs[1][2] == 3);
    fputs("expect errors:\n", stderr);
    CHECK(!inputs(m, TEXT("{\"x\": [1, 2], \"A\": [[1, 2], [3, 4]]}\0{}"), &b));   /* after NUL */
    CHECK(!inputs(m, TEXT("{\"x\": [1, 2], \"A\": [[1, 2], [3, 4]]} []"), &b));
    CHECK(!inputs(m, TEXT("{\"x\": [1, 2], \"x\": [1, 2], \"A\": [[1, 2], [3, 4]]}"), &b));
    CHECK(!inputs(m, TEXT("{\"x\": [1, 02], \"A\": [[1, 2], [3, 4]]}"), &b));
    CHECK(!inputs(m, TEXT("{\"x\": [1, 1e999], \"A\": [[1, 2], [3, 4]]}"), &b));
    CHECK(!inputs(m, TEXT("{\"x\": [1, 1e-999], \"A\": [[1, 2], [3, 4]]}"), &b));
    CHECK(!inputs(m, TEXT("{\"x\": [1, 2], \"A\": [[1, 2], [3, 4]"), &b));
    CHECK(!inputs(m, TEXT("{\"x\": [1, 2], \"A\": [[1, 2], [3, \"4\"]]}"), &b));
    CHECK(!inputs(m, "", 0, &b));

    CHECK(!inputs(m, TEXT("{\"x\": [1, 2], \"A\": [[1, 2], [3, 4]], \"s\": \"a\0\"}"), &b));
    CHECK(!inputs(m, TEXT("{\"x\": [1, 2], \"A\": [[1, 2], [3, 4]], \"s\": \"\\u0000\"}"), &b));
    CHECK(!inputs(m, TEXT("{\"x\": [1, 2], \"A\": [[1, 2], [3, 4]]}  \0"), &b));

    /* the underflow scan skips strings (escaped quotes too); numbers are
     * doubles, so a 21-digit integer is not "too big" */
    const char *ok = "{\"s\": \"\\\" 1e-400\", \"x\": [100000000000000000000, 0e-9],\n"
                     " \"A\": [[1, 2], [3, 4]], \"z\": {\"c\": [null, true]}}";
    CHECK(inputs(m, ok, strlen(ok), &b));
    CHECK(b.inputs[0][0] == 1e20 && b.inputs[0][1] == 0);
}

static void test_number_range(void)
{
    CHECK(number_range_problem(INFINITY, true) != NULL);
    CHECK(number_range_problem(0.0, true) != NULL);
    CHECK(number_range_problem(0.0, false) == NULL);
    CHECK(number_range_problem(4.9e-324, true) == NULL);
    fputs("expect two literal errors:\n", stderr);
    CHECK(!compile("input x\ny = x * 1e-400\n"));
    CHECK(!compile("input x\ny = x * 1e400\n"));
    CHECK(compile("input x\ny = x * 0e-400 + x * 1e-310\n"));
}

static void test_names(void)
{
    const char *bad[] = {"exp", "expf", "int", "main", "malloc", "gradc_det", "GRADC_x", "runtime",
                         "__a", "_Z", "_", "1a", "a b", "", "class", "printf", "read", NULL};
    for (int i = 0; bad[i]; i++)
        CHECK(c_name_problem(A, bad[i]) != NULL);
    const char *good[] = {"quad", "my_model_v2", "expo", "exp_model", "f", "x_grad", "_a", NULL};
    for (int i = 0; good[i]; i++)
        CHECK(c_name_problem(A, good[i]) == NULL);
}

/* x'*x - K*x: the 1×1 product broadcasts, so P*x - Q*x must not factor */
static void test_broadcast_products(void)
{
    Module *m = compile("input x[n]\ninput K[p, n]\ny = x'*x - K*x\n");
    CHECK(m != NULL);
    m = compile("input x[n]\ninput K[n, p]\ny = x'*K - x'*x\n");
    CHECK(m != NULL);
    /* values against a hand computation: x = (1, 2), K = [[1, 0], [2, 1], [0, 3]] */
    m = compile("input x[n]\ninput K[p, n]\ny = sum(x'*x - K*x)\n");
    Bindings b = {0};
    if (m && inputs(m, TEXT("{\"x\": [1, 2], \"K\": [[1, 0], [2, 1], [0, 3]]}"), &b)) {
        double v, gx[2], gK[6], *g[] = {gx, gK};
        Loc where;
        CHECK(eval_func(m, &m->grad, &b, &v, g, &where) == 0);
        /* y = 3*5 - (1 + 4 + 6) = 4; dy/dx = 3*2x - K'*1 = (6-3, 12-4); dy/dK = -1 x' rows */
        CHECK(v == 4 && gx[0] == 3 && gx[1] == 8);
        CHECK(gK[0] == -1 && gK[1] == -2 && gK[5] == -2);
    }
}

int main(void)
{
    A = arena_new();
    test_json();
    test_number_range();
    test_names();
    test_broadcast_products();
    arena_free(A);
    return check_report("test_harden");
}
