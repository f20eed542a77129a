/* test_tangent.c — src/tangent.c: every op of GRADC_OPS has a forward-mode
 * rule (a new op without one fails here, as it fails loudly in the pass),
 * and every rule is right: the Hessian from Hessian-vector products
 * (hessian_eval, interpreter) against central differences of the gradient,
 * on programs that use each builtin, a loop and a while; exact symmetry; the
 * conventions at kinks. */
#include "gradc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"

static Arena *A;

static void test_every_op_has_a_rule(void)
{
    for (int op = 0; op < OP_COUNT; op++)
        if (!tangent_has_rule((Op)op)) {
            fprintf(stderr, "no tangent rule for %s\n", op_info[op].name);
            failures++;
        }
}

static Module *compile(const char *text)
{
    Source *src = source_from_string(A, "test.expr", text);
    Ast *ast = parse_source(A, src);
    Module *m = ast ? check_program(A, ast) : NULL;
    if (!m)
        return NULL;
    m->keep_detach = true;
    diff_reverse(m);
    return m;
}

/* Every dimension 3; distinct entries in [0.3, 0.7) (no ties for amax), a
 * square matrix plus 3 I. */
static Bindings bind(const Module *m, double **in)
{
    Bindings b = {.max_iter = 1000};
    b.dims = arena_alloc(A, sizeof(int64_t) * (size_t)(m->ndims + 1));
    for (int d = 0; d < m->ndims; d++)
        b.dims[d] = 3;
    b.inputs = arena_alloc(A, sizeof(double *) * (size_t)(m->ninputs + 1));
    for (int i = 0; i < m->ninputs; i++) {
        Shape s = m->inputs[i].shape;
        int64_t r = shape_rows(s, b.dims), c = shape_cols(s, b.dims);
        in[i] = arena_alloc(A, sizeof(double) * (size_t)(r * c + 1));
        for (int64_t j = 0; j < r * c; j++)
            in[i][j] = 0.3 + 0.4 * fmod(0.6180339887 * (double)(j + 1) + 0.3 * i, 1.0);
        if (r == c && r > 1)
            for (int64_t j = 0; j < r; j++)
                in[i][j * c + j] += 3;
        b.inputs[i] = in[i];
    }
    return b;
}

/* The gradient flattened over the wrt inputs. */
static void gradient(const Module *m, const Bindings *b, double *g, int64_t n)
{
    double v, **bufs = arena_alloc(A, sizeof(double *) * (size_t)(m->nwrt + 1));
    for (int k = 0; k < m->nwrt; k++)
        bufs[k] = arena_alloc(A, sizeof(double) * (size_t)(n + 1));
    Loc where;
    CHECK(eval_func(m, &m->grad, b, &v, bufs, &where) == 0);
    for (int k = 0, off = 0; k < m->nwrt; k++) {
        Shape s = m->inputs[m->wrt[k]].shape;
        int64_t len = shape_rows(s, b->dims) * shape_cols(s, b->dims);
        memcpy(g + off, bufs[k], sizeof(double) * (size_t)len);
        off += (int)len;
    }
}

/* H by Hessian-vector products against differences of the gradient. */
static void check_hessian(const char *text)
{
    Module *m = compile(text);
    CHECK(m != NULL);
    Module *h = m ? tangent_module(m) : NULL;
    CHECK(h != NULL);
    if (!h)
        return;
    double **in = arena_alloc(A, sizeof(double *) * (size_t)(m->ninputs + 1));
    Bindings b = bind(m, in);
    int64_t n = hessian_order(h, b.dims);
    double *H = arena_alloc(A, sizeof(double) * (size_t)(n * n)), value;
    double *gp = arena_alloc(A, sizeof(double) * (size_t)n), *gm = arena_alloc(A, sizeof(double) * (size_t)n);
    double *J = arena_alloc(A, sizeof(double) * (size_t)(n * n));
    Loc where;
    CHECK(hessian_eval(h, NULL, &b, &value, NULL, H, &where) == 0);
    double worst = 0;
    for (int k = 0, j = 0; k < m->nwrt; k++) {
        Shape s = m->inputs[m->wrt[k]].shape;
        double *x = in[m->wrt[k]];
        for (int64_t i = 0; i < shape_rows(s, b.dims) * shape_cols(s, b.dims); i++, j++) {
            double xi = x[i], step = 1e-6;
            x[i] = xi + step;
            gradient(m, &b, gp, n);
            x[i] = xi - step;
            gradient(m, &b, gm, n);
            x[i] = xi;
            for (int64_t r = 0; r < n; r++)
                J[r * n + j] = (gp[r] - gm[r]) / (2 * step);
        }
    }
    /* H = (J + J')/2: J is not symmetric under chol's symmetric gradient */
    for (int64_t r = 0; r < n; r++)
        for (int64_t j = 0; j < n; j++) {
            double fd = 0.5 * (J[r * n + j] + J[j * n + r]);
            worst = fmax(worst, fabs(H[r * n + j] - fd) / fmax(1, fabs(fd)));
            CHECK(H[r * n + j] == H[j * n + r]);
        }
    if (!(worst < 1e-6)) {
        fprintf(stderr, "hessian of\n%s: max relative error %.3g\n", text, worst);
        failures++;
    }
}

static void test_rules(void)
{
    static const char *const unary[] = {
        "exp", "log", "sin", "cos", "tan", "tanh", "sqrt", "abs", "log1p", "sigmoid", "relu",
        "softplus", "expm1", "atan", "asin", "acos", "sinh", "cosh", "erf", "erfc", "lgamma",
        "digamma", "logsigmoid", "sign", "floor",   /* detach: test_conventions */
    };
    for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++)
        check_hessian(arena_printf(A, "input x[n]\nf = sum(%s(x) .* x .* x) + sum(%s(x .* x))\nwrt x\n",
                                   unary[i], unary[i]));
    check_hessian("input x[n]\ninput y[n]\n"
                  "f = sum(max(x, y) .* x .* y + min(x, y) .* x + x ./ y + x .^ y - x .^ 3)"
                  " + sum(clamp(x, 0.35, 0.6) .* x .* y) + sum(polygamma(1, x + 1) .* y)\nwrt x, y\n");
    check_hessian("input x[n]\nf = norm(x)^3 + logsumexp(x .* x) + dot(softmax(x), x .* x)\nwrt x\n");
    check_hessian("input A[n, n]\ninput x[n]\n"
                  "f = logdet(A) + det(A) * trace(A) + sum(inv(A) * x) + trace(A * A') * dot(x, x)"
                  " + dot(diag(diag(A)) * x, A' * x)\nwrt A, x\n");
    /* spec §8: broadcasting, reductions along a dimension, where, solve,
     * chol (its lower triangle read), concatenation, indexing, slices */
    check_hessian("input X[n, m]\ninput b[m]\n"
                  "f = sum(logsumexp(X .* X + b', 2)) + sum(softmax(X, 1) .* X) + sum(log_softmax(X, 2) .* X)"
                  " + amax(X .* X) + sum(amin(X .* b', 1)) + sum(sum(X .* X, 1) .* b') + amin(b .* b)"
                  " + sum(amax(X .* X, 2))\nwrt X, b\n");
    check_hessian("input x[n]\nf = sum(where(x > 0.5, x .* x .* x, sin(x) .* x))\nwrt x\n");
    check_hessian("input A[n, n]\ninput b[n]\n"
                  "f = dot(b, solve(A, b .* b)) + dot(b, A' \\ b) + sum(chol(A) .^ 3)\nwrt A, b\n");
    check_hessian("input x[n]\ny = [x; x .* x]\nz = y[2:n+1]\n"
                  "f = sum(z .* z * x[1]) + x[2] * x[n] * sum([x, 2 * x] * [x'; x'])\nwrt x\n");
    /* through a for and a while (the path taken) */
    check_hessian("input x[n]\ninput a\nz = x\nfor i in 1:4\n    z = z + a * sin(z) / i\nend\n"
                  "f = dot(z, z) * a\nwrt x, a\n");
    check_hessian("input x\ninput a\nz = x\nk = 0\nwhile k < 5\n    z = z * a + sin(z)\n    k = k + 1\nend\n"
                  "if z > 1\n    f = z * z\nelse\n    f = exp(z)\nend\nwrt x, a\n");
}

/* relu'' = abs'' = 0 at the kink, as PyTorch; detach stays a constant. */
static void test_conventions(void)
{
    Module *m = compile("input x\ninput y\nf = relu(x) * x + abs(x) * x + detach(y * y) * y * y\nwrt x, y\n");
    Module *h = m ? tangent_module(m) : NULL;
    CHECK(h != NULL);
    if (!h)
        return;
    double x = 0, y = 3, H[4], value;
    const double *in[2] = {&x, &y};
    int64_t dims[1] = {0};
    Bindings b = {.dims = dims, .inputs = in, .max_iter = 10};
    Loc where;
    CHECK(hessian_eval(h, NULL, &b, &value, NULL, H, &where) == 0);
    /* d2/dx2 = 0 at x = 0; d2/dy2 of c y^2 with c = detach(y^2) = 9 is 18 */
    CHECK(H[0] == 0 && H[1] == 0 && H[2] == 0 && H[3] == 18);
}

static void test_non_scalar(void)
{
    Module *m = compile("input A[n, n]\ninput x[n]\ny = A * x\nwrt x\n");
    fprintf(stderr, "(an error message is expected here:)\n");
    CHECK(m && tangent_module(m) == NULL);
}

int main(void)
{
    A = arena_new();
    test_every_op_has_a_rule();
    test_rules();
    test_conventions();
    test_non_scalar();
    arena_free(A);
    return check_report("test_tangent");
}
