/* test_eval.c — the reference evaluator and eval's JSON I/O on hand-built
 * modules.  Nodes are made with the raw ir_node (not the simplifying mk_*),
 * so that what is evaluated is exactly what the test wrote. */
#include "gradc.h"

#include "gradc/runtime.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"

/* |got - want| <= 1e-14 max(1, |want|), or both the same non-finite value */
static bool near(double got, double want)
{
    if (isnan(want))
        return isnan(got);
    if (isinf(want))
        return got == want;
    return fabs(got - want) <= 1e-14 * fmax(1, fabs(want));
}

#define CHECK_NEAR(got, want)                                              \
    do {                                                                   \
        double g_ = (got), w_ = (want);                                    \
        if (!near(g_, w_)) {                                               \
            fprintf(stderr, "%s:%d: %s = %.17g, expected %.17g\n", __FILE__, __LINE__, #got, \
                    g_, w_);                                               \
            failures++;                                                    \
        }                                                                  \
    } while (0)

static void check_array(int line, const double *got, const double *want, int n)
{
    for (int i = 0; i < n; i++)
        if (!near(got[i], want[i])) {
            fprintf(stderr, "%s:%d: entry %d = %.17g, expected %.17g\n", __FILE__, line, i,
                    got[i], want[i]);
            failures++;
        }
}
#define CHECK_ARRAY(got, ...)                                              \
    do {                                                                   \
        const double want_[] = {__VA_ARGS__};                              \
        check_array(__LINE__, (got), want_, (int)(sizeof want_ / sizeof *want_)); \
    } while (0)

/* ---- building modules by hand ---- */

static Arena *A;
static Ir *IR;

static Shape sh(Dim r, Dim c) { return shape_make(r, c); }
static Dim L(int64_t n) { return dim_lit(n); }
static Dim S(int sym) { return dim_sym(sym); }

static Node *cnst(double v) { return ir_node(IR, OP_CONST, shape_scalar(), NULL, NULL, v, 0); }
static Node *input(int i, Shape s) { return ir_node(IR, OP_INPUT, s, NULL, NULL, 0, i); }
static Node *slot(int s) { return ir_node(IR, OP_SLOT, IR->slots.data[s].shape, NULL, NULL, 0, s); }
static Node *dimval(int sym) { return ir_node(IR, OP_DIMVAL, shape_scalar(), NULL, NULL, 0, sym); }

/* The result shape of op on a (and b), as check.c would compute it. */
static Node *op(Op o, Node *a, Node *b)
{
    Shape s = a->shape;
    switch (op_info[o].kind) {
    case OK_B: s = shape_is_scalar(a->shape) ? b->shape : a->shape; break;
    case OK_M:
        if (o == OP_MATMUL)
            s = sh(a->shape.rows, b->shape.cols);
        else if (o == OP_TRANSPOSE)
            s = sh(a->shape.cols, a->shape.rows);
        else if (o == OP_DIAGM)
            s = sh(a->shape.rows, a->shape.rows);
        else if (o == OP_DIAGV)
            s = sh(a->shape.rows, L(1));
        else if (o != OP_INV && o != OP_SOFTMAX)
            s = shape_scalar();
        break;
    default: break;
    }
    return ir_node(IR, o, s, a, b, 0, 0);
}
static Node *op1(Op o, Node *a) { return op(o, a, NULL); }

static Module *module(int ndims, int ninputs, const Shape *shapes)
{
    A = arena_new();
    IR = ir_new(A);
    Module *m = arena_alloc(A, sizeof *m);
    static const char *const names[] = {"n", "m", "k"};
    static const char *const inames[] = {"x", "A", "y", "z"};
    m->arena = A;
    m->ir = IR;
    m->dims = (const char **)names;
    m->ndims = ndims;
    m->ninputs = ninputs;
    m->inputs = arena_alloc(A, sizeof(Input) * 4);
    for (int i = 0; i < ninputs; i++) {
        m->inputs[i].name = inames[i];
        m->inputs[i].shape = shapes[i];
        m->inputs[i].ndims = shape_is_scalar(shapes[i]) ? 0 : dim_eq(shapes[i].cols, L(1)) ? 1 : 2;
    }
    m->fwd.body = block_new(A);
    m->output_name = "f";
    return m;
}

static void done(void) { arena_free(A); }

static Stmt *push_stmt(Block *b, StmtKind k, int n)
{
    Stmt *s = stmt_new(A, k, n);
    block_push(A, b, s);
    return s;
}

static Stmt *set1(Block *b, int sl, Node *v)
{
    Stmt *s = push_stmt(b, S_SET, 1);
    s->slots[0] = sl;
    s->vals[0] = v;
    return s;
}

static int run(const Module *m, const Bindings *b, double *value)
{
    Loc where = {0, 0};
    return eval_func(m, &m->fwd, b, value, NULL, &where);
}

/* ---- tests ---- */

/* A[n, m] with n = 2, m = 3: products and transposes on non-square shapes,
 * broadcasting, reductions, and a gradient function's grads. */
static void test_matrices(void)
{
    Shape s[] = {sh(S(1), L(1)), sh(S(0), S(1))};
    Module *m = module(2, 2, s);
    int64_t dims[] = {2, 3};
    double x[] = {1, 0, -1}, a[] = {1, 2, 3, 4, 5, 6}, out[9];
    const double *in[] = {x, a};
    Bindings b = {.dims = dims, .inputs = in};
    Node *X = input(0, s[0]), *Am = input(1, s[1]), *At = op1(OP_TRANSPOSE, Am);

    m->fwd.value = op(OP_MATMUL, Am, At);                /* 2×2 */
    CHECK(run(m, &b, out) == 0);
    CHECK_ARRAY(out, 14, 32, 32, 77);
    m->fwd.value = op(OP_MATMUL, At, Am);                /* 3×3 */
    CHECK(run(m, &b, out) == 0);
    CHECK_ARRAY(out, 17, 22, 27, 22, 29, 36, 27, 36, 45);
    m->fwd.value = At;                                   /* 3×2 */
    CHECK(run(m, &b, out) == 0);
    CHECK_ARRAY(out, 1, 4, 2, 5, 3, 6);
    m->fwd.value = op(OP_MATMUL, Am, X);                 /* [n] */
    CHECK(run(m, &b, out) == 0);
    CHECK_ARRAY(out, -2, -2);
    m->fwd.value = op(OP_MATMUL, op1(OP_TRANSPOSE, X), At); /* 1×2 */
    CHECK(run(m, &b, out) == 0);
    CHECK_ARRAY(out, -2, -2);

    /* scalar sides broadcast; elementwise ops use op_info's functions */
    m->fwd.value = op(OP_SUB, cnst(10), op(OP_MUL, Am, cnst(2)));
    CHECK(run(m, &b, out) == 0);
    CHECK_ARRAY(out, 8, 6, 4, 2, 0, -2);
    m->fwd.value = op(OP_POW, X, cnst(2));
    CHECK(run(m, &b, out) == 0);
    CHECK_ARRAY(out, 1, 0, 1);
    m->fwd.value = op(OP_GT, X, cnst(0));
    CHECK(run(m, &b, out) == 0);
    CHECK_ARRAY(out, 1, 0, 0);
    m->fwd.value = op1(OP_SUM, Am);
    CHECK(run(m, &b, out) == 0);
    CHECK_ARRAY(out, 21);
    m->fwd.value = op(OP_ADD, op1(OP_SUM, X), dimval(1));   /* 0 + m */
    CHECK(run(m, &b, out) == 0);
    CHECK_ARRAY(out, 3);
    m->fwd.value = op1(OP_DIAGM, X);
    CHECK(run(m, &b, out) == 0);
    CHECK_ARRAY(out, 1, 0, 0, 0, 0, 0, 0, 0, -1);
    m->fwd.value = op1(OP_TRACE, op(OP_MATMUL, At, Am));
    CHECK(run(m, &b, out) == 0);
    CHECK_ARRAY(out, 91);
    m->fwd.value = op1(OP_DIAGV, op(OP_MATMUL, Am, At));
    CHECK(run(m, &b, out) == 0);
    CHECK_ARRAY(out, 14, 77);
    m->fwd.value = ir_node(IR, OP_EYE, sh(S(0), S(0)), NULL, NULL, 0, 0);
    CHECK(run(m, &b, out) == 0);
    CHECK_ARRAY(out, 1, 0, 0, 1);
    m->fwd.value = ir_node(IR, OP_FILL, sh(S(0), S(1)), NULL, NULL, 2.5, 0);
    CHECK(run(m, &b, out) == 0);
    CHECK_ARRAY(out, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5);

    /* norm does not overflow where the squares would */
    double big[] = {3e300, 0, -4e300};
    in[0] = big;
    m->fwd.value = op1(OP_NORM, X);
    CHECK(run(m, &b, out) == 0);
    CHECK_NEAR(out[0], 5e300);
    in[0] = x;

    /* a gradient function: value, then grads; the cotangent all ones by default */
    Node *cot = ir_node(IR, OP_COTAN, sh(S(0), L(1)), NULL, NULL, 0, 0);
    Node *g[] = {op(OP_MATMUL, At, cot)};
    Func f = {.body = block_new(A), .value = op(OP_MATMUL, Am, X), .grads = g};
    m->nwrt = 1;
    double grad[3], *grads[] = {grad};
    Loc where;
    CHECK(eval_func(m, &f, &b, out, grads, &where) == 0);
    CHECK_ARRAY(out, -2, -2);
    CHECK_ARRAY(grad, 5, 7, 9);
    double w[] = {1, -1};
    b.cotangent = w;
    CHECK(eval_func(m, &f, &b, NULL, grads, &where) == 0);
    CHECK_ARRAY(grad, -3, -3, -3);

    dims[0] = -1;
    CHECK(run(m, &b, out) == GRADC_EDIM);
    done();
}

static void test_linear_algebra(void)
{
    Shape s[] = {sh(S(0), S(0))};
    Module *m = module(1, 1, s);
    int64_t dims[] = {3};
    double a[] = {2, 1, 0, 1, 3, 1, 0, 1, 4}, out[9];
    const double *in[] = {a};
    Bindings b = {.dims = dims, .inputs = in};
    Node *M = input(0, s[0]);

    m->fwd.value = op1(OP_DET, M);
    CHECK(run(m, &b, out) == 0);
    CHECK_NEAR(out[0], 18);
    m->fwd.value = op1(OP_LOGDET, M);
    CHECK(run(m, &b, out) == 0);
    CHECK_NEAR(out[0], log(18));
    m->fwd.value = op1(OP_INV, M);       /* the adjugate over 18 */
    CHECK(run(m, &b, out) == 0);
    CHECK_ARRAY(out, 11 / 18., -4 / 18., 1 / 18., -4 / 18., 8 / 18., -2 / 18., 1 / 18.,
                -2 / 18., 5 / 18.);

    /* a row swap is needed and det < 0: logdet NaN */
    double p[] = {0, 1, 0, 1, 0, 0, 0, 0, 2};
    in[0] = p;
    m->fwd.value = op1(OP_DET, M);
    CHECK(run(m, &b, out) == 0);
    CHECK_NEAR(out[0], -2);
    m->fwd.value = op1(OP_LOGDET, M);
    CHECK(run(m, &b, out) == 0);
    CHECK(isnan(out[0]));
    /* two swaps: det > 0 again */
    double q[] = {0, 1, 0, 0, 0, 3, 2, 0, 0};
    in[0] = q;
    CHECK(run(m, &b, out) == 0);
    CHECK_NEAR(out[0], log(6));

    /* singular: det 0, logdet -inf, inv NaN (no crash) */
    double z[] = {1, 2, 3, 2, 4, 6, 1, 1, 1};
    in[0] = z;
    m->fwd.value = op1(OP_DET, M);
    CHECK(run(m, &b, out) == 0);
    CHECK(out[0] == 0);
    m->fwd.value = op1(OP_LOGDET, M);
    CHECK(run(m, &b, out) == 0);
    CHECK(out[0] == -INFINITY);
    m->fwd.value = op1(OP_INV, M);
    CHECK(run(m, &b, out) == 0);
    CHECK(isnan(out[0]) && isnan(out[8]));
    /* NaN entries are refused by LAPACKE's check: NaN, not a crash */
    double nn[] = {NAN, 0, 0, 0, 1, 0, 0, 0, 1};
    in[0] = nn;
    m->fwd.value = op1(OP_DET, M);
    CHECK(run(m, &b, out) == 0);
    CHECK(isnan(out[0]));

    /* logdet where det itself overflows: 3 × 1e200 on the diagonal */
    double h[] = {1e200, 0, 0, 0, 1e200, 0, 0, 0, 1e200};
    in[0] = h;
    m->fwd.value = op1(OP_LOGDET, M);
    CHECK(run(m, &b, out) == 0);
    CHECK_NEAR(out[0], 3 * log(1e200));
    dims[0] = 0;                          /* the empty matrix: det 1 */
    m->fwd.value = op1(OP_DET, M);
    CHECK(run(m, &b, out) == 0);
    CHECK(out[0] == 1);
    done();
}

static void test_softmax_logsumexp(void)
{
    Shape s[] = {sh(S(0), L(1))};
    Module *m = module(1, 1, s);
    int64_t dims[] = {3};
    double x[] = {750, 751, 749}, out[3];
    const double *in[] = {x};
    Bindings b = {.dims = dims, .inputs = in};
    Node *X = input(0, s[0]);
    double sum = 1 + exp(-1) + exp(-2);

    m->fwd.value = op1(OP_LOGSUMEXP, X);
    CHECK(run(m, &b, out) == 0);
    CHECK_NEAR(out[0], 751 + log(sum));
    m->fwd.value = op1(OP_SOFTMAX, X);
    CHECK(run(m, &b, out) == 0);
    CHECK_ARRAY(out, exp(-1) / sum, 1 / sum, exp(-2) / sum);
    double neg[] = {-INFINITY, -INFINITY, -INFINITY};
    in[0] = neg;
    m->fwd.value = op1(OP_LOGSUMEXP, X);
    CHECK(run(m, &b, out) == 0);
    CHECK(out[0] == -INFINITY);
    done();
}

/* c = 0; while c < limit: c = c + 1 (count recorded) */
static void test_while(void)
{
    Module *m = module(0, 0, NULL);
    int c = ir_slot(IR, "c", shape_scalar()), cnt = ir_slot(IR, "count", shape_scalar());
    double limit = 10, out[2];
    Stmt *w = push_stmt(m->fwd.body, S_WHILE, 1);
    w->loc = (Loc){3, 5};
    w->slots[0] = c;
    w->vals[0] = cnst(0);
    w->body = block_new(A);
    w->next[0] = op(OP_ADD, slot(c), cnst(1));
    w->count_slot = cnt;
    m->fwd.value = op(OP_ADD, op(OP_MUL, slot(c), cnst(1000)), slot(cnt));
    Bindings b = {.dims = NULL, .max_iter = 10};

    w->cond = op(OP_LT, slot(c), cnst(limit));       /* exactly 10 iterations: allowed */
    CHECK(run(m, &b, out) == 0);
    CHECK_NEAR(out[0], 10010);
    w->cond = op(OP_LT, slot(c), cnst(11));          /* 11: past the limit */
    Loc where = {0, 0};
    CHECK(eval_func(m, &m->fwd, &b, out, NULL, &where) == GRADC_EMAXITER);
    CHECK(where.line == 3 && where.col == 5);
    b.max_iter = 0;                                  /* the default, 1,000,000 */
    w->cond = op(OP_LT, slot(c), cnst(1e6));
    CHECK(run(m, &b, out) == 0);
    CHECK_NEAR(out[0], 1e9 + 1e6);
    w->cond = op(OP_LT, slot(c), cnst(1e6 + 1));
    CHECK(run(m, &b, out) == GRADC_EMAXITER);
    w->cond = cnst(0);                                /* no iterations */
    CHECK(run(m, &b, out) == 0);
    CHECK_NEAR(out[0], 0);
    done();
}

/* for i = 1..n: s = 10 s + i, forward and reverse; and IF around it. */
static void test_for_if(void)
{
    Shape s0[] = {shape_scalar()};
    Module *m = module(1, 1, s0);
    int s = ir_slot(IR, "s", shape_scalar()), i = ir_slot(IR, "i", shape_scalar());
    int r = ir_slot(IR, "r", shape_scalar());
    int64_t dims[] = {4};
    double x = 1, out[1];
    const double *in[] = {&x};
    Bindings b = {.dims = dims, .inputs = in};
    Stmt *f = push_stmt(m->fwd.body, S_FOR, 1);
    f->slots[0] = s;
    f->vals[0] = cnst(0);
    f->count = dimval(0);
    f->index_slot = i;
    f->body = block_new(A);
    f->next[0] = op(OP_ADD, op(OP_MUL, slot(s), cnst(10)), slot(i));
    Stmt *c = push_stmt(m->fwd.body, S_IF, 1);
    c->slots[0] = r;
    c->cond = op(OP_GT, input(0, s0[0]), cnst(0));
    c->then_block = block_new(A);
    c->else_block = block_new(A);
    c->then_vals[0] = slot(s);
    c->else_vals[0] = op1(OP_NEG, slot(s));
    m->fwd.value = slot(r);

    CHECK(run(m, &b, out) == 0);
    CHECK_NEAR(out[0], 1234);
    f->reverse = true;
    CHECK(run(m, &b, out) == 0);
    CHECK_NEAR(out[0], 4321);
    x = -1;
    CHECK(run(m, &b, out) == 0);
    CHECK_NEAR(out[0], -4321);
    dims[0] = 0;                          /* no iterations: s stays 0 */
    CHECK(run(m, &b, out) == 0);
    CHECK_NEAR(out[0], 0);
    f->count = cnst(2.9);                 /* a count is floored */
    f->reverse = false;
    x = 1;
    CHECK(run(m, &b, out) == 0);
    CHECK_NEAR(out[0], 12);
    done();
}

/* Parallel SET; PUSH a, b / POP a, b restores both; a tape across loops. */
static void test_set_push_pop(void)
{
    Shape s[] = {sh(L(3), L(1))};
    Module *m = module(0, 1, s);
    int a = ir_slot(IR, "a", shape_scalar()), b2 = ir_slot(IR, "b", shape_scalar());
    int v = ir_slot(IR, "v", sh(L(3), L(1))), i = ir_slot(IR, "i", shape_scalar());
    int acc = ir_slot(IR, "acc", shape_scalar()), p = ir_slot(IR, "p", shape_scalar());
    Block *body = m->fwd.body;
    double x[] = {1, 2, 3}, out[3];
    const double *in[] = {x};
    Bindings bd = {.inputs = in};

    set1(body, a, cnst(1));
    set1(body, b2, cnst(2));
    Stmt *sw = push_stmt(body, S_SET, 2);   /* a, b = b, a */
    sw->slots[0] = a, sw->slots[1] = b2;
    sw->vals[0] = slot(b2), sw->vals[1] = slot(a);
    Stmt *pu = push_stmt(body, S_PUSH, 2);
    pu->vals[0] = slot(a), pu->vals[1] = slot(b2);
    set1(body, a, cnst(10));
    set1(body, b2, cnst(20));
    m->fwd.value = op(OP_ADD, op(OP_MUL, slot(a), cnst(10)), slot(b2));
    CHECK(run(m, &bd, out) == 0);
    CHECK_NEAR(out[0], 120);
    Stmt *po = push_stmt(body, S_POP, 2);
    po->slots[0] = a, po->slots[1] = b2;
    CHECK(run(m, &bd, out) == 0);
    CHECK_NEAR(out[0], 21);                  /* a = 2, b = 1 after the swap */

    /* a vector's entries keep their order through the tape */
    Node *x2 = op(OP_MUL, input(0, sh(L(3), L(1))), cnst(2));
    Stmt *pv = push_stmt(body, S_PUSH, 1);
    pv->vals[0] = x2;
    set1(body, v, ir_node(IR, OP_FILL, sh(L(3), L(1)), NULL, NULL, 0, 0));
    Stmt *pp = push_stmt(body, S_POP, 1);
    pp->slots[0] = v;

    /* for i = 1..3: push i; then reverse for: acc = 10 acc + pop */
    Stmt *f = push_stmt(body, S_FOR, 0);
    f->count = cnst(3), f->index_slot = i, f->body = block_new(A);
    Stmt *pi = stmt_new(A, S_PUSH, 1);
    pi->vals[0] = op(OP_MUL, slot(i), cnst(1));
    block_push(A, f->body, pi);
    Stmt *g = push_stmt(body, S_FOR, 1);
    g->slots[0] = acc, g->vals[0] = cnst(0), g->count = cnst(3), g->reverse = true;
    g->body = block_new(A);
    Stmt *pq = stmt_new(A, S_POP, 1);
    pq->slots[0] = p;
    block_push(A, g->body, pq);
    g->next[0] = op(OP_ADD, op(OP_MUL, slot(acc), cnst(10)), slot(p));
    m->fwd.value = op(OP_ADD, slot(v), slot(acc));
    CHECK(run(m, &bd, out) == 0);
    CHECK_ARRAY(out, 323, 325, 327);          /* v = 2, 4, 6; acc = 321 */
    done();
}

/* A node that reads a slot, evaluated before and after a SET of that slot. */
static void test_stale_cache(void)
{
    Module *m = module(0, 0, NULL);
    int a = ir_slot(IR, "a", shape_scalar()), t = ir_slot(IR, "t", shape_scalar());
    int u = ir_slot(IR, "u", shape_scalar());
    Node *y = op(OP_MUL, slot(a), cnst(2));
    Node *deep = op1(OP_EXP, op1(OP_LOG, y));   /* reads a through y */
    set1(m->fwd.body, a, cnst(1));
    set1(m->fwd.body, t, deep);
    set1(m->fwd.body, a, cnst(5));
    set1(m->fwd.body, u, y);
    m->fwd.value = op(OP_ADD, op(OP_MUL, slot(t), cnst(1000)), op(OP_ADD, slot(u), deep));
    Bindings b = {0};
    double out[1];
    CHECK(run(m, &b, out) == 0);
    CHECK_NEAR(out[0], 2000 + 10 + 10);
    done();
}

/* eval_func_frozen: DETACH values recorded in one run, replayed in the next. */
static void test_detach_replay(void)
{
    Shape s[] = {shape_scalar()};
    Module *m = module(0, 1, s);
    Node *x = input(0, s[0]);
    m->fwd.value = op(OP_MUL, op1(OP_DETACH, op(OP_MUL, x, x)), x);   /* detach(x^2) x */
    double v = 3, out[1];
    const double *in[] = {&v};
    Bindings b = {.inputs = in};
    DetachRecord rec = {0};
    Loc where;
    CHECK(eval_func_frozen(m, &m->fwd, &b, out, &where, &rec) == 0);
    CHECK_NEAR(out[0], 27);
    rec.replay = true;
    v = 4;
    CHECK(eval_func_frozen(m, &m->fwd, &b, out, &where, &rec) == 0);
    CHECK_NEAR(out[0], 36);                 /* 9 from the record, times 4 */
    CHECK(!rec.mismatch);
    CHECK(run(m, &b, out) == 0);
    CHECK_NEAR(out[0], 64);                 /* plain eval_func: detach is identity */
    free(rec.vals);
    done();
}

/* ---- JSON ---- */

static const char *write_tmp(const char *text)
{
    static char path[64];
    strcpy(path, "/tmp/gradc-test-eval-XXXXXX");
    FILE *f = fdopen(mkstemp(path), "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static bool read_inputs(const Module *m, const char *text, Bindings *b)
{
    const char *p = write_tmp(text);
    bool ok = json_read_inputs(m, p, b, A);
    remove(p);
    return ok;
}

static void test_json(void)
{
    Shape s[] = {sh(S(0), L(1)), sh(S(1), S(0)), shape_scalar()};
    Module *m = module(2, 3, s);
    m->fwd.value = op(OP_MUL, op1(OP_SUM, op(OP_MATMUL, input(1, s[1]), input(0, s[0]))), cnst(1));
    Bindings b = {0};
    CHECK(read_inputs(m, "{\"x\": [0, 1, 3, 5], \"A\": [[1, 2, 3, 4], [5, 6, 7, 8]], \"y\": 2.5}", &b));
    CHECK(b.dims[0] == 4 && b.dims[1] == 2);
    CHECK(b.inputs[1][5] == 6 && b.inputs[2][0] == 2.5);
    fputs("expect six errors and a warning:\n", stderr);
    CHECK(!read_inputs(m, "{\"x\": [0, 1, 3], \"A\": [[1, 2, 3, 4]], \"y\": 1}", &b));
    CHECK(!read_inputs(m, "{\"x\": [0, 1, 3, 4], \"A\": [[1, 2, 3, 4], [1]], \"y\": 1}", &b));
    CHECK(!read_inputs(m, "{\"x\": [0, 1, 3, 4], \"A\": [[1, 2, 3, 4]]}", &b));
    CHECK(!read_inputs(m, "{\"x\": [[0], [1]], \"A\": [[1]], \"y\": 1}", &b));
    CHECK(!read_inputs(m, "{\"x\": [0, \"1\"], \"A\": [[1, 2]], \"y\": 1}", &b));
    CHECK(!read_inputs(m, "[1, 2", &b));
    CHECK(read_inputs(m, "{\"x\": [1], \"A\": [[1]], \"y\": 1, \"extra\": 3}", &b));

    /* printing: numbers %.17g, a scalar a number, NaN and infinities as Python reads them */
    m->nwrt = 2;
    int wrt[] = {0, 1};
    m->wrt = wrt;
    int64_t dims[] = {4, 1};
    b.dims = dims;
    double value = 70, g0[] = {0, 4, 12, 20}, g1[] = {0.1, NAN, INFINITY, -INFINITY};
    double *grads[] = {g0, g1};
    char *buf;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    json_print_result(f, m, &b, &value, grads);
    json_print_result(f, m, &b, &value, NULL);
    fclose(f);
    CHECK(strcmp(buf, "{\"value\": 70, \"gradient\": {\"x\": [0, 4, 12, 20], "
                      "\"A\": [[0.10000000000000001, NaN, Infinity, -Infinity]]}}\n"
                      "{\"value\": 70}\n") == 0);
    free(buf);

    /* a cotangent of the output's shape */
    m->fwd.value = input(0, s[0]);
    const char *p = write_tmp("[1, 2, 3, 4]");
    CHECK(json_read_cotangent(m, p, &b, A) && b.cotangent[3] == 4);
    remove(p);
    p = write_tmp("[1, 2, 3]");
    CHECK(!json_read_cotangent(m, p, &b, A));
    remove(p);
    done();
}

int main(void)
{
    test_matrices();
    test_linear_algebra();
    test_softmax_logsumexp();
    test_while();
    test_for_if();
    test_set_push_pop();
    test_stale_cache();
    test_detach_replay();
    test_json();
    if (failures)
        fprintf(stderr, "%d failures\n", failures);
    return failures != 0;
}
