/* check.c — names, shapes and control-flow rules; builds the forward IR.
 *
 * One walk over the AST.  The environment says what every name is at the
 * current point of the program: an input, a dimension symbol, a variable
 * bound to its current DAG node, a for index — or one of the "not defined
 * here" states that exist only so that a use can say why.  Straight-line
 * code just rebinds names (the DAG shares everything).  An if or a loop gets
 * fresh slots for the names it changes and rebinds those names to the slots;
 * a slot is written only by its own construct, so a SLOT node means "the
 * value at the start of this iteration" inside a body and "the final value"
 * after the construct.
 *
 * An error is printed and unwinds with longjmp to the statement being
 * checked (everything lives in the arena, so there is nothing to clean up on
 * the way out), which is dropped: the names it would have assigned become
 * V_POISON, unknown rather than undefined, so that a later use fails
 * quietly instead of piling a second message on the first.  An if/while
 * condition or a for header that fails is dropped alone, and the body is
 * still checked.  The module is returned only if there was no error. */
#include "gradc.h"

#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

typedef enum VarKind {
    V_NONE,   /* never defined (must be 0: fresh Var arrays are zeroed) */
    V_INPUT,
    V_DIM,
    V_VAR,
    V_INDEX,  /* a for loop's index, inside its body */
    /* not defined here; kept for the message: */
    V_MAYBE,  /* assigned on some paths through an if */
    V_MIXED,  /* assigned on every path through an if, with different shapes */
    V_LOCAL,  /* first assigned inside a loop body */
    V_GONE,   /* a for index after its loop */
    V_POISON, /* assigned by a statement that had an error: uses fail quietly */
} VarKind;

typedef struct Var {
    VarKind kind;
    Node *node;          /* INPUT, VAR, INDEX: the current value */
    Shape shape, other;  /* other: MIXED's second shape */
    int aux;             /* INPUT: its index */
    Dim dim;             /* DIM: its size (a function's symbols are the caller's sizes) */
    int line;            /* the declaration, or the construct the state comes from */
    const char *what;    /* that construct's keyword */
    bool *used;          /* INDEX: set when the body reads the index */
} Var;

typedef VEC(int) IntVec;

/* A change to the environment, kept while a construct is open so that it can
 * be undone: branches and loop bodies run on the one environment and are
 * rolled back, so an if costs what its branches assign, not the number of
 * names in the program. */
typedef struct Undo {
    int id;
    Var old;
} Undo;

typedef struct Checker {
    Arena *a;
    Source *src;
    Module *m;
    Ir *ir;
    jmp_buf *fail;            /* where an error unwinds to: the innermost Guard */
    int nerrors;              /* messages printed */
    int parse_errors;         /* the parser's, for the AST_ERROR statements */
    VEC(const char *) names;  /* interned: id → name */
    int *table;               /* open addressing, id + 1 (0 = empty) */
    int tcap;
    VEC(const char *) dims;
    VEC(Input) inputs;
    IntVec wrt;
    Var *vars;                /* the environment: one Var per name id */
    int *seen;                /* per name id: a generation stamp, for deduplication */
    int *pos;                 /* per name id: scratch index, valid where seen is current */
    int nvars, gen;
    VEC(Undo) trail;
    int open;                 /* constructs being checked: changes must be logged */
    int depth;                /* expression recursion, against pathological ASTs */
    int loop_depth;
    bool has_output, has_wrt;
    const AstStmt *output_stmt;
    int output_line, wrt_line;
    const char *output_name;
    Loc output_loc;
    const char *last_name;    /* the textually last assignment */
    Loc last_loc;
    /* functions (spec §8), inlined: a call checks the body in a scope of its own */
    VEC(const AstStmt *) fns; /* defined so far, in order */
    VEC(bool) fn_bad;         /* its definition had an error: calls fail quietly */
    int visible_fns;          /* how many of fns a call may use (those above the body) */
    const AstStmt *fn;        /* the function whose body is being checked, or NULL */
    Var *globals;             /* the top-level environment, while in a body */
    int nglobals;
    const AstBlock *top;      /* the program (to say a function is defined below) */
    Block *out;               /* where the statements of a body go */
    long ncalls;              /* calls inlined, against exponential programs */
    VEC(struct Env) envs;     /* per call depth: a body's environment, reused */
    int call_depth;
} Checker;

/* The arrays of one environment (Checker.vars, seen, pos). */
typedef struct Env {
    Var *vars;
    int *seen, *pos;
    int nvars;
} Env;

#define MAX_EXPR_DEPTH 10000

_Noreturn static void fail(Checker *c, Loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(Checker *c, Loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(c->src, loc, fmt, ap);
    va_end(ap);
    c->nerrors++;
    longjmp(*c->fail, 1);
}

/* A use of a poisoned name: its statement is dropped without a message. */
_Noreturn static void fail_quietly(Checker *c) { longjmp(*c->fail, 1); }

/* What a Guard restores when an error unwinds to it. */
typedef struct Guard {
    jmp_buf here, *outer;
    int depth, loop_depth, open, trail;
} Guard;

static void undo_to(Checker *c, int mark);

/* Usage: guard_enter(c, &g); if (setjmp(g.here)) { guard_failed(c, &g); ...
 * } else { ...; guard_leave(c, &g); } */
static void guard_enter(Checker *c, Guard *g)
{
    *g = (Guard){.outer = c->fail, .depth = c->depth, .loop_depth = c->loop_depth,
                 .open = c->open};
    g->trail = c->trail.len;
    c->fail = &g->here;
}

/* Guards nest like the calls that hold them: one left on a returned frame
 * would be a longjmp into a dead stack at the next error. */
static void guard_leave(Checker *c, Guard *g)
{
    if (c->fail != &g->here) {
        fputs("gradc: internal error: checker: a guard inside this one was not left\n", stderr);
        abort();
    }
    c->fail = g->outer;
}

/* Rolls back what the failed part changed; past the error limit, unwinds on
 * to check_program. */
static void guard_failed(Checker *c, Guard *g)
{
    c->fail = g->outer;
    c->depth = g->depth;
    c->loop_depth = g->loop_depth;
    undo_to(c, g->trail);
    c->open = g->open;
    if (c->nerrors > DIAG_MAX_ERRORS)
        longjmp(*c->fail, 1);
}

/* ---- names ---- */

static uint32_t str_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void table_put(int *table, int cap, const char *name, int id)
{
    uint32_t i = str_hash(name) & (uint32_t)(cap - 1);
    while (table[i])
        i = (i + 1) & (uint32_t)(cap - 1);
    table[i] = id + 1;
}

static int intern(Checker *c, const char *name)
{
    if (2 * (c->names.len + 1) > c->tcap) {
        int cap = c->tcap ? 2 * c->tcap : 256;
        c->table = arena_alloc(c->a, sizeof(int) * (size_t)cap);
        c->tcap = cap;
        for (int id = 0; id < c->names.len; id++)
            table_put(c->table, cap, c->names.data[id], id);
    }
    uint32_t mask = (uint32_t)(c->tcap - 1);
    for (uint32_t i = str_hash(name) & mask;; i = (i + 1) & mask) {
        int id = c->table[i] - 1;
        if (id < 0) {
            c->table[i] = c->names.len + 1;
            vec_push(c->a, &c->names, name);
            return c->names.len - 1;
        }
        if (strcmp(c->names.data[id], name) == 0)
            return id;
    }
}

static Var get(Checker *c, int id) { return id < c->nvars ? c->vars[id] : (Var){0}; }

static void set(Checker *c, int id, Var v)
{
    if (id >= c->nvars) {
        int n = 2 * c->nvars > id + 1 ? 2 * c->nvars : id + 64;
        Var *vars = arena_alloc(c->a, sizeof(Var) * (size_t)n);
        int *seen = arena_alloc(c->a, sizeof(int) * (size_t)n);
        int *pos = arena_alloc(c->a, sizeof(int) * (size_t)n);
        if (c->nvars) {
            memcpy(vars, c->vars, sizeof(Var) * (size_t)c->nvars);
            memcpy(seen, c->seen, sizeof(int) * (size_t)c->nvars);
            memcpy(pos, c->pos, sizeof(int) * (size_t)c->nvars);
        }
        c->vars = vars;
        c->seen = seen;
        c->pos = pos;
        c->nvars = n;
    }
    if (c->open)
        vec_push(c->a, &c->trail, ((Undo){id, c->vars[id]}));
    c->vars[id] = v;
}

static Var lookup(Checker *c, const char *name) { return get(c, intern(c, name)); }

/* Marks id as seen in the current generation; false if it already was. */
static bool first_sight(Checker *c, int id)
{
    if (id >= c->nvars)
        set(c, id, (Var){0});  /* grow the arrays (a V_NONE write changes nothing) */
    if (c->seen[id] == c->gen)
        return false;
    c->seen[id] = c->gen;
    return true;
}

/* The names changed since the trail was at mark, with their values now;
 * until the next generation, seen[id] == gen marks them and pos[id] is the
 * index of id in the result. */
typedef struct Changes {
    IntVec ids;
    VEC(Var) vals;
} Changes;

static Changes changes_since(Checker *c, int mark)
{
    Changes ch = {0};
    c->gen++;
    for (int i = mark; i < c->trail.len; i++) {
        int id = c->trail.data[i].id;
        if (first_sight(c, id)) {
            c->pos[id] = ch.ids.len;
            vec_push(c->a, &ch.ids, id);
            vec_push(c->a, &ch.vals, c->vars[id]);
        }
    }
    return ch;
}

static void undo_to(Checker *c, int mark)
{
    while (c->trail.len > mark) {
        Undo u = c->trail.data[--c->trail.len];
        c->vars[u.id] = u.old;
    }
}

static Var var_value(Node *n, int line)
{
    return (Var){.kind = V_VAR, .node = n, .shape = n->shape, .line = line};
}

/* ---- the built-in functions of spec §3 ---- */

typedef enum FnRule {
    F_NONE,    /* an op that is not a builtin */
    F_ELEM,    /* elementwise, any shape */
    F_REDUCE,  /* any shape → scalar */
    F_ALONG,   /* any shape → scalar, or along d (a second argument, 1 or 2) */
    F_SQUARE,  /* a square matrix */
    F_PAIR,    /* elementwise of two: same shape or a scalar side */
    F_SOFTMAX, /* a vector, or a matrix along d */
    F_POLYGAMMA, /* polygamma(k, x): k an integer literal >= 0 */
    F_DOT, F_MEAN, F_FILL, F_EYE, F_DIAG, F_CLAMP,
    F_CONST,   /* a named constant (pi): fill is its value */
    F_GRAD, F_HESSIAN,   /* grad(e, x), hessian(e, x): spec §9, hessian.c */
    F_WHERE,   /* where(c, a, b): c a condition (mask), not a value */
    F_SOLVE,   /* solve(A, B): A square, B with A's rows */
} FnRule;

typedef struct Builtin {
    const char *name;
    FnRule rule;
    Op op;
    int lo, hi;   /* number of arguments */
    double fill;  /* ones, zeros */
} Builtin;

/* The builtins that are one op: GRADC_OPS's builtin column. */
static const Builtin op_builtins[OP_COUNT] = {
#define X(name, text, arity, kind, fn, libm, builtin, prec, latex, adj) \
    [OP_##name] = {text, F_##builtin, OP_##name, arity,                             \
                   arity + (F_##builtin == F_ALONG || F_##builtin == F_SOFTMAX), 0},
    GRADC_OPS(X)
#undef X
};

/* The others: built from several ops, or sizes rather than values. */
static const Builtin builtins[] = {
    {"dot", F_DOT, OP_SUM, 2, 2, 0},
    {"mean", F_MEAN, OP_SUMD, 1, 2, 0},
    {"ones", F_FILL, OP_FILL, 1, 2, 1},
    {"zeros", F_FILL, OP_FILL, 1, 2, 0},
    {"eye", F_EYE, OP_EYE, 1, 1, 0},
    {"diag", F_DIAG, OP_DIAGM, 1, 1, 0},
    {"clamp", F_CLAMP, OP_CLAMPHI, 3, 3, 0},
    {"pi", F_CONST, OP_CONST, 0, 0, M_PI},
    {"grad", F_GRAD, OP_SUM, 2, 2, 0},
    {"hessian", F_HESSIAN, OP_SUM, 2, 2, 0},
    {"where", F_WHERE, OP_PICK, 3, 3, 0},
    {"solve", F_SOLVE, OP_SOLVE, 2, 2, 0},
};

static const Builtin *builtin(const char *name)
{
    for (int op = 0; op < OP_COUNT; op++)
        if (op_builtins[op].rule != F_NONE && strcmp(op_builtins[op].name, name) == 0)
            return &op_builtins[op];
    for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++)
        if (strcmp(builtins[i].name, name) == 0)
            return &builtins[i];
    return NULL;
}

/* ---- messages ---- */

static const char *builtin_kind(const char *name)
{
    return builtin(name)->rule == F_CONST ? "a built-in constant" : "a built-in function";
}

static const char *shape_s(Checker *c, Shape s) { return shape_str(c->a, s, c->dims.data); }

static const char *dim_s(Checker *c, Dim d)
{
    return dim_str(c->a, d, c->dims.data);
}

/* "dimensions n and m differ": the first dimension where a and b disagree. */
static const char *differ(Checker *c, Shape a, Shape b)
{
    bool rows = !dim_eq(a.rows, b.rows);
    return arena_printf(c->a, "dimensions %s and %s differ", dim_s(c, rows ? a.rows : a.cols),
                        dim_s(c, rows ? b.rows : b.cols));
}

/* "; did you mean NAME?" when a name of the wanted kind is one or two typos
 * away from name, else "".  Values: the inputs, variables, loop indices and
 * dimension symbols defined here; else the built-in functions. */
static const char *did_you_mean(Checker *c, const char *name, bool values)
{
    int nb = (int)(sizeof builtins / sizeof *builtins);
    int n = values ? c->names.len : OP_COUNT + nb;
    const char **cands = arena_alloc(c->a, sizeof *cands * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        if (!values) {   /* the functions: the op table's builtins, then the others */
            const Builtin *f = i < OP_COUNT ? &op_builtins[i] : &builtins[i - OP_COUNT];
            if (f->rule != F_NONE && f->rule != F_CONST)
                cands[i] = f->name;
            continue;
        }
        VarKind k = get(c, i).kind;
        if (k == V_INPUT || k == V_VAR || k == V_INDEX || k == V_DIM)
            cands[i] = c->names.data[i];
    }
    const char *near = diag_closest(name, cands, n);
    return near ? arena_printf(c->a, "; did you mean %s?", near) : "";
}

/* Why NAME, in state v, has no value here. */
static const char *why_undefined(Checker *c, const char *name, Var v)
{
    switch (v.kind) {
    case V_MAYBE:
        return arena_printf(c->a, "%s is not assigned on every path through the if at line %d",
                            name, v.line);
    case V_MIXED:
        return arena_printf(c->a, "%s is %s on one path through the if at line %d and %s on "
                            "another; a name used after an if needs one shape",
                            name, shape_s(c, v.shape), v.line, shape_s(c, v.other));
    case V_LOCAL:
        return arena_printf(c->a, "%s is first assigned inside the %s loop at line %d, so it "
                            "is not defined after the loop", name, v.what, v.line);
    case V_GONE:
        return arena_printf(c->a, "%s is the index of the for loop at line %d and is not "
                            "defined after the loop", name, v.line);
    case V_DIM:
        return arena_printf(c->a, "%s is a dimension symbol, not a variable", name);
    default:
        if (builtin(name))
            return arena_printf(c->a, "%s is a built-in function; call it as %s(...)", name, name);
        if (c->fn) {   /* a name of the program, read in a body */
            int id = intern(c, name);
            VarKind k = id < c->nglobals ? c->globals[id].kind : V_NONE;
            if (k == V_DIM)
                return arena_printf(c->a, "unknown name %s: %s is a dimension symbol of the "
                                    "program, not of function %s (declare a parameter's shape, "
                                    "as in x[%s], to use it)", name, name, c->fn->name, name);
            if (k == V_INPUT || k == V_VAR)
                return arena_printf(c->a, "unknown name %s: a function reads only its "
                                    "parameters, and %s is not a parameter of %s (pass it as "
                                    "an argument)", name, name, c->fn->name);
        }
        return arena_printf(c->a, "unknown name %s%s", name, did_you_mean(c, name, true));
    }
}

static bool is_scalar(const Node *n) { return shape_is_scalar(n->shape); }

/* Where an expression starts (a binary Expr's loc is its operator). */
static Loc expr_start(const Expr *e)
{
    while (e->kind == EX_BINARY || e->kind == EX_TRANSPOSE)
        e = e->lhs;
    return e->loc;
}

static Node *dim_node(Checker *c, Dim d) { return mk_dim(c->ir, d); }

static bool integral(double x) { return x >= 0 && x <= 9007199254740992.0 && x == floor(x); }

/* ---- expressions ---- */

static Node *value(Checker *c, const Expr *e);

/* ---- integer expressions: sizes, indices, slice bounds (spec §8) ---- */

/* k + sum coefs[i] * key[i], where a key >= 0 is a dimension symbol and
 * key < 0 the for index of name id -key - 1.  linear: false when a product
 * of two non-constants (or too many terms) made it something else. */
#define LIN_TERMS 16
typedef struct Lin {
    int64_t k;
    int n;
    int keys[LIN_TERMS];
    int64_t coefs[LIN_TERMS];
    bool linear;
} Lin;

static Lin lin_const(int64_t k) { return (Lin){.k = k, .linear = true}; }

static Lin lin_term(int key)
{
    Lin l = lin_const(0);
    l.n = 1, l.keys[0] = key, l.coefs[0] = 1;
    return l;
}

/* a + s*b, like terms merged */
static Lin lin_axpy(Lin a, int64_t s, Lin b)
{
    a.linear = a.linear && b.linear;
    a.k += s * b.k;
    for (int i = 0; i < b.n && a.linear; i++) {
        int j = 0;
        while (j < a.n && a.keys[j] != b.keys[i])
            j++;
        if (j == a.n) {
            if (a.n == LIN_TERMS) {
                a.linear = false;
                break;
            }
            a.keys[a.n] = b.keys[i], a.coefs[a.n++] = 0;
        }
        a.coefs[j] += s * b.coefs[i];
    }
    int z = 0;
    for (int i = 0; i < a.n; i++)
        if (a.coefs[i])
            a.keys[z] = a.keys[i], a.coefs[z++] = a.coefs[i];
    a.n = z;
    return a;
}

static bool lin_is_const(Lin l) { return l.linear && l.n == 0; }

static Lin lin_scale(Lin a, int64_t s) { return lin_axpy(lin_const(0), s, a); }

static Lin lin_of_dim(Dim d)
{
    DimView v = dim_view(d);
    Lin l = lin_const(v.k);
    for (int i = 0; i < v.n; i++)
        l = lin_axpy(l, v.coefs[i], lin_term(dim_view_sym(&v, i)));
    return l;
}

/* A dimension when the form has no for index in it. */
static bool lin_dim(Lin l, Dim *d)
{
    if (!l.linear)
        return false;
    for (int i = 0; i < l.n; i++)
        if (l.keys[i] < 0)
            return false;
    *d = dim_form(l.k, l.n, l.keys, l.coefs);
    return true;
}

static bool lin_has_index(Lin l)
{
    for (int i = 0; i < l.n; i++)
        if (l.keys[i] < 0)
            return true;
    return false;
}

/* e as an integer expression of literals, dimension symbols, for indices
 * and + - *; NULL, or the subexpression that is not one. */
static const Expr *lin_of(Checker *c, const Expr *e, Lin *out)
{
    if (++c->depth > MAX_EXPR_DEPTH)
        fail(c, e->loc, "expression nested too deeply");
    const Expr *bad = NULL;
    Lin a, b;
    switch (e->kind) {
    case EX_NUM:
        if (e->num != floor(e->num) || fabs(e->num) > 9007199254740992.0)
            bad = e;
        else
            *out = lin_const((int64_t)e->num);
        break;
    case EX_NAME: {
        Var v = lookup(c, e->name);
        if (v.kind == V_POISON)
            fail_quietly(c);
        if (v.kind == V_DIM)
            *out = lin_of_dim(v.dim);   /* in a function, the caller's size: maybe a form */
        else if (v.kind == V_INDEX) {
            *v.used = true;
            *out = lin_term(-intern(c, e->name) - 1);
        } else
            bad = e;
        break;
    }
    case EX_NEG:
        if (!(bad = lin_of(c, e->lhs, &a)))
            *out = lin_scale(a, -1);
        break;
    case EX_BINARY:
        if (e->op != B_ADD && e->op != B_SUB && e->op != B_MUL)
            return e;
        if ((bad = lin_of(c, e->lhs, &a)) || (bad = lin_of(c, e->rhs, &b)))
            break;
        if (e->op != B_MUL)
            *out = lin_axpy(a, e->op == B_ADD ? 1 : -1, b);
        else if (lin_is_const(a))
            *out = lin_scale(b, a.k);
        else if (lin_is_const(b))
            *out = lin_scale(a, b.k);
        else
            *out = (Lin){.linear = false};
        break;
    default:
        bad = e;
    }
    c->depth--;
    return bad;
}

static const char lin_hint[] = "an integer expression of literals, dimension symbols, for "
    "indices and + - *";


typedef enum BinRule { R_ELEM, R_MUL, R_DIV, R_POW, R_COND, R_SOLVE } BinRule;

static const struct {
    BinRule rule;
    Op op;
    const char *what;   /* for shape errors */
} binops[] = {
    [B_ADD] = {R_ELEM, OP_ADD, "elementwise sum"},
    [B_SUB] = {R_ELEM, OP_SUB, "elementwise difference"},
    [B_MUL] = {R_MUL, OP_MATMUL, "matrix product"},
    [B_DIV] = {R_DIV, OP_DIV, "division"},
    [B_EMUL] = {R_ELEM, OP_MUL, "elementwise product"},
    [B_EDIV] = {R_ELEM, OP_DIV, "elementwise quotient"},
    [B_POW] = {R_POW, OP_POW, "power"},
    [B_EPOW] = {R_ELEM, OP_POW, "elementwise power"},
    [B_LT] = {R_COND, OP_LT, NULL},
    [B_LE] = {R_COND, OP_LE, NULL},
    [B_GT] = {R_COND, OP_GT, NULL},
    [B_GE] = {R_COND, OP_GE, NULL},
    [B_EQ] = {R_COND, OP_EQ, NULL},
    [B_NE] = {R_COND, OP_NE, NULL},
    [B_AND] = {R_COND, OP_AND, NULL},
    [B_OR] = {R_COND, OP_OR, NULL},
    [B_SOLVE] = {R_SOLVE, OP_SOLVE, "solve"},
};
_Static_assert(sizeof binops / sizeof *binops == B_COUNT, "a rule per BinOp");

static bool is_comparison(BinOp op) { return op >= B_LT && op <= B_NE; }

/* Broadcasting (spec §8): for rows and columns alike, the dimensions agree
 * or one of them is the literal 1 (a scalar is the case 1×1). */
static bool dims_fit(Dim a, Dim b)
{
    return dim_eq(a, b) || dim_eq(a, dim_lit(1)) || dim_eq(b, dim_lit(1));
}

/* Why a comparison (or and, or, not) is not a value here. */
static const char *cond_only(Checker *c, const char *op)
{
    return arena_printf(c->a, "'%s' gives a value only inside where's first argument "
                        "(where(x > 0, a, b)) or an if or while condition", op);
}

/* solve(A, B) and A \ B: A square, B with A's rows; errors at loc (the
 * function's name, the operator). */
static Node *solve(Checker *c, Loc loc, const char *what, Node *a, Node *b)
{
    if (!dim_eq(a->shape.rows, a->shape.cols))
        fail(c, loc, "%s needs a square matrix on the left, got %s", what, shape_s(c, a->shape));
    if (!dim_eq(a->shape.rows, b->shape.rows))
        fail(c, loc, "%s of %s and %s: the rows %s and %s differ", what, shape_s(c, a->shape),
             shape_s(c, b->shape), dim_s(c, a->shape.rows), dim_s(c, b->shape.rows));
    return mk_solve(c->ir, a, b, false);
}

static bool elem_ok(const Node *a, const Node *b)
{
    return dims_fit(a->shape.rows, b->shape.rows) && dims_fit(a->shape.cols, b->shape.cols);
}

/* "rows m and n differ and neither is 1": where a and b do not broadcast. */
static const char *no_fit(Checker *c, Shape a, Shape b)
{
    bool rows = !dims_fit(a.rows, b.rows);
    return arena_printf(c->a, "%s %s and %s differ and neither is 1", rows ? "rows" : "columns",
                        dim_s(c, rows ? a.rows : a.cols), dim_s(c, rows ? b.rows : b.cols));
}

/* lhs (already built) OP rhs; errors point at the operator. */
static Node *binary(Checker *c, const Expr *e, Node *l)
{
    if (binops[e->op].rule == R_COND)
        fail(c, e->loc, "%s", cond_only(c, binop_text[e->op]));
    Node *r = value(c, e->rhs);
    const char *what = binops[e->op].what;
    switch (binops[e->op].rule) {
    case R_ELEM:
        if (!elem_ok(l, r))
            fail(c, e->loc, "%s of %s and %s: %s", what, shape_s(c, l->shape),
                 shape_s(c, r->shape), no_fit(c, l->shape, r->shape));
        return mk2(c->ir, binops[e->op].op, l, r);
    case R_MUL:
        if (is_scalar(l) || is_scalar(r))
            return mk2(c->ir, OP_MUL, l, r);
        if (!dim_eq(l->shape.cols, r->shape.rows))
            fail(c, e->loc, "matrix product of %s and %s: inner dimensions %s and %s differ",
                 shape_s(c, l->shape), shape_s(c, r->shape), dim_s(c, l->shape.cols),
                 dim_s(c, r->shape.rows));
        return mk2(c->ir, OP_MATMUL, l, r);
    case R_DIV:
        if (!is_scalar(r))
            fail(c, e->loc, "division of %s by %s: the divisor must be a scalar "
                 "(use ./ to divide elementwise)", shape_s(c, l->shape), shape_s(c, r->shape));
        return mk2(c->ir, OP_DIV, l, r);
    case R_POW:
        if (!is_scalar(l) || !is_scalar(r))
            fail(c, e->loc, "power of %s and %s: ^ takes scalars (use .^ for an elementwise "
                 "power)", shape_s(c, l->shape), shape_s(c, r->shape));
        return mk2(c->ir, OP_POW, l, r);
    case R_SOLVE:
        return solve(c, e->loc, "\\", l, r);
    case R_COND:
        break;
    }
    return NULL; /* unreachable: R_COND failed above */
}

/* A chain like a + b + c + ... or x'''' nests down its left operands; walk
 * it with a loop so that a long sum cannot exhaust the C stack. */
static Node *left_chain(Checker *c, const Expr *e)
{
    VEC(const Expr *) up = {0};
    for (; e->kind == EX_BINARY || e->kind == EX_TRANSPOSE; e = e->lhs)
        vec_push(c->a, &up, e);
    Node *v = value(c, e);
    for (int i = up.len - 1; i >= 0; i--) {
        const Expr *x = up.data[i];
        v = x->kind == EX_TRANSPOSE ? mk1(c->ir, OP_TRANSPOSE, v) : binary(c, x, v);
    }
    return v;
}

static Node *name_value(Checker *c, const Expr *e)
{
    Var v = lookup(c, e->name);
    switch (v.kind) {
    case V_INPUT:
    case V_VAR:
        return v.node;
    case V_INDEX:
        *v.used = true;
        return v.node;
    case V_DIM:
        return dim_node(c, v.dim);
    case V_POISON:
        fail_quietly(c);
    default:
        if (v.kind == V_NONE && builtin(e->name) && builtin(e->name)->rule == F_CONST)
            return mk_const(c->ir, builtin(e->name)->fill);
        fail(c, e->loc, "%s", why_undefined(c, e->name, v));
    }
}

/* An argument of ones/zeros/eye: a size, not a value. */
static Dim size_arg(Checker *c, const Builtin *f, const Expr *x)
{
    if (x->kind == EX_NUM && integral(x->num) && x->num >= 1)
        return dim_lit((int64_t)x->num);
    Lin l;
    Dim d;
    if (x->kind != EX_NUM && x->kind != EX_NAME && !lin_of(c, x, &l) && lin_dim(l, &d) &&
        (!lin_is_const(l) || l.k >= 1))
        return d;   /* a form such as n - 1 (spec §8), or one that is a positive literal */
    if (x->kind == EX_NAME) {
        Var v = lookup(c, x->name);
        if (v.kind == V_DIM)
            return v.dim;
        if (v.kind == V_POISON)
            fail_quietly(c);
        if (v.kind == V_NONE && !builtin(x->name))
            fail(c, x->loc, "unknown dimension symbol %s (dimension symbols come from the "
                 "input declarations)%s", x->name, did_you_mean(c, x->name, true));
    }
    fail(c, expr_start(x), "each size given to %s must be a positive integer literal, a "
         "dimension symbol, or a form of them such as n - 1", f->name);
}

/* clamp(x, lo, hi): the three broadcast together; the two halves carry
 * PyTorch's gradient convention (diff.c).  Errors point at the name. */
static Node *clamp(Checker *c, const Expr *e, Node *x, Node *lo, Node *hi)
{
    Node *xlo = NULL;
    if (elem_ok(x, lo) && elem_ok((xlo = mk2(c->ir, OP_CLAMPLO, x, lo)), hi))
        return mk2(c->ir, OP_CLAMPHI, xlo, hi);
    Shape s = xlo ? xlo->shape : x->shape, t = xlo ? hi->shape : lo->shape;
    fail(c, e->loc, "clamp of %s between %s and %s: %s", shape_s(c, x->shape),
         shape_s(c, lo->shape), shape_s(c, hi->shape), no_fit(c, s, t));
}

/* The d of sum(X, d) and the others: the literal 1 or 2. */
static int along_arg(Checker *c, const Expr *e)
{
    const Expr *d = e->args[1];
    if (d->kind != EX_NUM || (d->num != 1 && d->num != 2))
        fail(c, e->loc, "the dimension d of %s(X, d) is the literal 1 (down each column) or 2 "
             "(across each row)", e->name);
    return (int)d->num;
}

/* The op of a builtin along a dimension. */
static Op along_op(Op op)
{
    switch (op) {
    case OP_SUM: return OP_SUMD;
    case OP_LOGSUMEXP: return OP_LSED;
    case OP_AMAX: return OP_AMAXD;
    case OP_AMIN: return OP_AMIND;
    case OP_SOFTMAX: return OP_SOFTMAXD;
    default: return op;   /* LOGSOFTMAXD */
    }
}

/* where's condition: comparisons of values entry by entry, combined with
 * and, or, not; a bare value v means v != 0 (as an if reads its condition).
 * Recursion as deep as the parser's nesting limit, as cond's. */
static Node *mask(Checker *c, const Expr *e)
{
    if (++c->depth > MAX_EXPR_DEPTH)
        fail(c, e->loc, "condition nested too deeply");
    Node *n, *l, *r;
    if (e->kind == EX_NOT) {
        n = mk1(c->ir, OP_NOT, mask(c, e->lhs));
    } else if (e->kind == EX_BINARY && (binops[e->op].rule == R_COND)) {
        bool logic = e->op == B_AND || e->op == B_OR;
        l = logic ? mask(c, e->lhs) : value(c, e->lhs);
        r = logic ? mask(c, e->rhs) : value(c, e->rhs);
        if (!elem_ok(l, r))
            fail(c, e->loc, "'%s' of %s and %s: %s", binop_text[e->op], shape_s(c, l->shape),
                 shape_s(c, r->shape), differ(c, l->shape, r->shape));
        n = mk2(c->ir, binops[e->op].op, l, r);
    } else {
        n = value(c, e);
    }
    c->depth--;
    return n;
}

/* where(k, a, b) = PICK(k, a) + PICK(not k, b): each PICK is its side where
 * it is chosen and an exact 0 elsewhere, so a NaN or Inf of the side not
 * taken never reaches the value (nor, diff.c, the gradient). */
static Node *where(Checker *c, const Expr *e)
{
    Node *k = mask(c, e->args[0]), *a = value(c, e->args[1]), *b = value(c, e->args[2]);
    Node *v[3] = {k, a, b};
    for (int i = 0; i < 3; i++) {
        Node *x = v[i], *y = v[(i + 1) % 3];
        if (!elem_ok(x, y))
            fail(c, e->loc, "where of %s, %s and %s: %s", shape_s(c, k->shape),
                 shape_s(c, a->shape), shape_s(c, b->shape), differ(c, x->shape, y->shape));
    }
    return mk2(c->ir, OP_ADD, mk2(c->ir, OP_PICK, k, a), mk2(c->ir, OP_PICK, mk1(c->ir, OP_NOT, k), b));
}

/* grad(e, x) and hessian(e, x) (spec §9): reverse mode over e's DAG, then
 * for hessian the Jacobian of that gradient; both ordinary nodes, so the
 * program's own reverse mode differentiates through them. */
static Node *derivative_call(Checker *c, const Expr *e, const Builtin *f)
{
    const Expr *xa = e->args[1];
    Var v = xa->kind == EX_NAME ? lookup(c, xa->name) : (Var){0};
    if (v.kind == V_POISON)
        fail_quietly(c);
    if (v.kind != V_INPUT)
        fail(c, expr_start(xa), "%s(e, x) differentiates with respect to an input; %s", f->name,
             xa->kind == EX_NAME ? arena_printf(c->a, "%s is not an input", xa->name)
                                 : "name one here");
    Node *y = value(c, e->args[0]);
    const char *x = xa->name;
    if (!is_scalar(y))
        fail(c, e->loc, "%s(e, %s) needs a scalar e; e is %s", f->name, x, shape_s(c, y->shape));
    if (f->rule == F_HESSIAN && !dim_eq(v.shape.cols, dim_lit(1)))
        fail(c, e->loc, "hessian(e, %s) needs %s to be a scalar or a vector; it is %s", x, x,
             shape_s(c, v.shape));
    const char *why = NULL;
    Node *ys = hess_straighten(c->ir, c->m->fwd.body, y, v.aux, x, c->inputs.len, &why);
    if (!ys)
        fail(c, e->loc, "%s(e, %s): e %s; grad and hessian follow %s through straight-line ifs, "
             "not yet through loops or nested constructs", f->name, x, why, x);
    y = ys;
    Node *g = diff_dag_grad(c->ir, y, v.aux, v.shape, c->inputs.len);
    if (f->rule == F_GRAD)
        return g;
    Node *h = hess_jacobian(c->ir, g, v.aux, x, v.shape, false, &why);
    if (!h)
        fail(c, e->loc, "hessian(e, %s): %s", x, why);
    /* exactly symmetric, as spec §9 asks, whatever the rounding of h; the
     * transpose is built raw, so that h is computed once and read twice
     * rather than simplified into a second product */
    if (mk1(c->ir, OP_TRANSPOSE, h) == h)
        return h;
    Node *ht = ir_node(c->ir, OP_TRANSPOSE, h->shape, h, NULL, 0.0, 0);
    return mk2(c->ir, OP_MUL, mk_const(c->ir, 0.5), mk2(c->ir, OP_ADD, h, ht));
}

static const char *arity_s(Checker *c, const Builtin *f)
{
    if (f->lo != f->hi)
        return arena_printf(c->a, "%d or %d arguments", f->lo, f->hi);
    return arena_printf(c->a, "%d argument%s", f->lo, f->lo == 1 ? "" : "s");
}


/* ---- functions (spec §8) ----
 * A call behaves as its body written out at that point: the checker inlines
 * it.  The arguments are values of the caller's environment; the body is
 * checked in a fresh environment holding only the parameters (and the
 * dimension symbols of their declared shapes, bound to the arguments'
 * sizes), so shapes are inferred per call and a body cannot read the
 * caller's names.  Its statements go where the calling statement's go
 * (c->out).  An error inside the body is reported at the body's line, and a
 * note at the call is added to it. */

static void block(Checker *c, const AstBlock *ab, Block *out, bool top);

/* Calls inlined in one compilation: a chain of functions each calling the
 * previous one twice doubles the program at every step. */
#define MAX_CALLS 1000000

/* The function named name among the first n defined, or -1. */
static int find_fn(Checker *c, const char *name, int n)
{
    if (n < 0)   /* at top level: every function defined so far */
        n = c->fn ? c->visible_fns : c->fns.len;
    for (int i = n - 1; i >= 0; i--)
        if (strcmp(c->fns.data[i]->name, name) == 0)
            return i;
    return -1;
}

/* Why a call of name finds no function, when there is one by that name
 * elsewhere: defined below, or the body's own (recursion). */
static void fail_not_above(Checker *c, const Expr *e)
{
    for (int i = 0; c->top && i < c->top->n; i++)   /* a header that did not parse */
        if (c->top->stmts[i]->kind == AST_FUNCTION && !c->top->stmts[i]->name)
            fail_quietly(c);                        /* may have defined it: say no more */
    if (c->fn && strcmp(c->fn->name, e->name) == 0)
        fail(c, e->loc, "unknown function %s: %s calls itself, and a function may call only "
             "functions defined above it (no recursion)", e->name, e->name);
    for (int i = 0; i < c->top->n; i++) {
        const AstStmt *s = c->top->stmts[i];
        if (s->kind == AST_FUNCTION && s->name && strcmp(s->name, e->name) == 0)
            fail(c, e->loc, "unknown function %s: it is defined at line %d, below this call; "
                 "define a function above its first use", e->name, s->loc.line);
    }
}

typedef struct Scope {
    Var *vars;
    int *seen, *pos;
    int nvars, trail, open, depth, loop_depth, visible;
    const AstStmt *fn;
    const char *last_name;
    Loc last_loc;
    jmp_buf *fail;
} Scope;

static Scope scope_enter(Checker *c, const AstStmt *fn, int index)
{
    Scope sc = {c->vars, c->seen, c->pos, c->nvars, c->trail.len, c->open, c->depth,
                c->loop_depth, c->visible_fns, c->fn, c->last_name, c->last_loc, c->fail};
    if (!c->fn) {
        c->globals = c->vars;
        c->nglobals = c->nvars;
    }
    /* the environment of this call depth, all V_NONE: every change in it
     * is logged (open), so that leaving undoes them and the next call at
     * this depth reuses the arrays (a million calls, not a million arrays) */
    if (c->call_depth == c->envs.len)
        vec_push(c->a, &c->envs, ((Env){0}));
    Env e = c->envs.data[c->call_depth++];
    c->vars = e.vars;
    c->seen = e.seen;
    c->pos = e.pos;
    c->nvars = e.nvars;
    c->open = 1;
    c->fn = fn;
    c->visible_fns = index;
    return sc;
}

/* Back to the caller's environment; the body's trail entries are undone
 * (they belong to the body's environment, which is cleared for reuse). */
static void scope_leave(Checker *c, const Scope *sc)
{
    undo_to(c, sc->trail);
    c->envs.data[--c->call_depth] = (Env){c->vars, c->seen, c->pos, c->nvars};
    c->vars = sc->vars;
    c->seen = sc->seen;
    c->pos = sc->pos;
    c->nvars = sc->nvars;
    c->open = sc->open;
    c->depth = sc->depth;
    c->loop_depth = sc->loop_depth;
    c->visible_fns = sc->visible;
    c->fn = sc->fn;
    c->last_name = sc->last_name;
    c->last_loc = sc->last_loc;
    c->fail = sc->fail;
}

static const char *decl_s(Checker *c, const AstParam *p)
{
    const char *d[2];
    for (int k = 0; k < p->ndims; k++)
        d[k] = p->dims[k].sym ? p->dims[k].sym
                              : arena_printf(c->a, "%lld", (long long)p->dims[k].lit);
    return p->ndims <= 0 ? p->name
         : p->ndims == 1 ? arena_printf(c->a, "%s[%s]", p->name, d[0])
                         : arena_printf(c->a, "%s[%s, %s]", p->name, d[0], d[1]);
}

/* Parameter i bound to its argument's value; a declared shape binds its
 * symbols to the argument's sizes or checks them (errors at the argument). */
static void bind_param(Checker *c, const AstStmt *fn, int i, Node *arg, const Expr *at)
{
    const AstParam *p = &fn->params[i];
    Dim got[2] = {arg->shape.rows, arg->shape.cols};
    for (int k = 0; p->ndims >= 0 && k < 2; k++) {
        const DimRef *r = k < p->ndims ? &p->dims[k] : NULL;
        Dim want = r && r->sym ? dim_lit(-1) : dim_lit(r ? r->lit : 1);
        if (r && r->sym) {
            int id = intern(c, r->sym);
            Var v = get(c, id);
            if (v.kind != V_DIM) {
                set(c, id, (Var){.kind = V_DIM, .dim = got[k], .line = r->loc.line});
                continue;
            }
            want = v.dim;
        }
        if (!dim_eq(want, got[k]))
            fail(c, expr_start(at), "argument %d of %s is %s, which does not match its "
                 "declaration %s%s", i + 1, fn->name, shape_s(c, arg->shape), decl_s(c, p),
                 r && r->sym ? arena_printf(c->a, ": %s is %s here", r->sym, dim_s(c, want))
                 : !r && p->ndims == 1 ? " (a column vector)" : "");
    }
    set(c, intern(c, p->name), var_value(arg, p->loc.line));
}

/* The results of a call of function k: its body checked in its own scope. */
static Node **inline_call(Checker *c, int k, const Expr *e)
{
    const AstStmt *fn = c->fns.data[k];
    if (c->fn_bad.data[k])
        fail_quietly(c);
    if (e->nargs != fn->nparams)
        fail(c, e->loc, "%s takes %d argument%s but was given %d", fn->name, fn->nparams,
             fn->nparams == 1 ? "" : "s", e->nargs);
    if (++c->ncalls > MAX_CALLS)
        fail(c, e->loc, "more than %d function calls once calls inside functions are "
             "written out", MAX_CALLS);
    Node **args = arena_alloc(c->a, sizeof(Node *) * (size_t)(e->nargs + 1));
    for (int i = 0; i < e->nargs; i++)
        args[i] = value(c, e->args[i]);

    /* an error binding the arguments is at the call: no note for it */
    int errors = c->nerrors;
    volatile int first = INT_MAX;
    jmp_buf here;
    Scope sc = scope_enter(c, fn, k);
    c->fail = &here;
    if (setjmp(here)) {
        scope_leave(c, &sc);
        diag_note_since(first, c->src, e->loc, "in the call of %s here", fn->name);
        longjmp(*c->fail, 1);
    }
    for (int i = 0; i < e->nargs; i++)
        bind_param(c, fn, i, args[i], e->args[i]);
    first = diag_count();
    block(c, &fn->body, c->out, false);
    Node **res = arena_alloc(c->a, sizeof(Node *) * (size_t)fn->nnames);
    for (int j = 0; j < fn->nnames; j++) {
        Var v = lookup(c, fn->names[j]);
        if (v.kind == V_POISON)
            fail_quietly(c);
        if (v.kind != V_VAR)
            fail(c, fn->name_locs[j], "%s, a result of %s, has no value at the end of the "
                 "body: %s", fn->names[j], fn->name, why_undefined(c, fn->names[j], v));
        res[j] = v.node;
    }
    if (c->nerrors > errors)
        fail_quietly(c);
    scope_leave(c, &sc);
    return res;
}

/* A user function's first result, or NULL when name is not a function. */
static Node *user_call(Checker *c, const Expr *e)
{
    int k = find_fn(c, e->name, -1);
    if (k < 0) {
        if (!builtin(e->name))
            fail_not_above(c, e);
        return NULL;
    }
    return inline_call(c, k, e)[0];
}

/* Calls anywhere in e (a definition's body): each names a builtin or a
 * function defined above, or it is an error now, once, rather than at
 * every call.  Expression trees are at most PARSE_MAX_DEPTH deep. */
static void calls_ok(Checker *c, const Expr *e)
{
    if (!e)
        return;
    if (e->kind == EX_CALL) {
        if (!builtin(e->name) && find_fn(c, e->name, -1) < 0) {
            fail_not_above(c, e);
            fail(c, e->loc, "unknown function %s%s", e->name, did_you_mean(c, e->name, false));
        }
        for (int i = 0; i < e->nargs; i++)
            calls_ok(c, e->args[i]);
    }
    calls_ok(c, e->lhs);
    calls_ok(c, e->rhs);
}

static void block_calls_ok(Checker *c, const AstBlock *b)
{
    for (int i = 0; i < b->n; i++) {
        const AstStmt *s = b->stmts[i];
        if (s->kind == AST_FUNCTION)
            fail(c, s->loc, "a function is defined at top level, not inside another function");
        calls_ok(c, s->value);
        calls_ok(c, s->for_lo);
        calls_ok(c, s->for_hi);
        block_calls_ok(c, &s->then_block);
        block_calls_ok(c, &s->else_block);
        block_calls_ok(c, &s->body);
    }
}

static void check_distinct(Checker *c, const char *what, const char *name, Loc at,
                           const char *const *prev, int n)
{
    if (builtin(name))
        fail(c, at, "%s is %s; it cannot be %s", name, builtin_kind(name), what);
    for (int i = 0; i < n; i++)
        if (strcmp(prev[i], name) == 0)
            fail(c, at, "%s is named twice in the function's header", name);
}

/* `function [results] = name(params) ... end`: the header's names, and the
 * calls in the body; the body itself is checked at each call. */
static void function_def(Checker *c, const AstStmt *s, bool top)
{
    if (!top || c->fn)
        fail(c, s->loc, "a function is defined at top level, not inside an if, while or for");
    if (!s->name)
        return;   /* the parser reported this header */
    vec_push(c->a, &c->fns, s);
    vec_push(c->a, &c->fn_bad, true);   /* until the checks below pass */
    if (builtin(s->name))
        fail(c, s->name_loc, "%s is %s; it cannot be a function's name", s->name,
             builtin_kind(s->name));
    int prev = find_fn(c, s->name, c->fns.len - 1);
    if (prev >= 0)
        fail(c, s->name_loc, "function %s is defined twice (first at line %d)", s->name,
             c->fns.data[prev]->loc.line);
    VEC(const char *) seen = {0};
    for (int i = 0; i < s->nparams; i++) {
        const AstParam *p = &s->params[i];
        check_distinct(c, "a parameter", p->name, p->loc, seen.data, seen.len);
        vec_push(c->a, &seen, p->name);
    }
    for (int i = 0; i < s->nparams; i++)   /* symbols: distinct from the parameters */
        for (int k = 0; k < s->params[i].ndims; k++) {
            const DimRef *r = &s->params[i].dims[k];
            if (!r->sym && r->lit < 1)
                fail(c, r->loc, "a dimension must be at least 1");
            if (r->sym && builtin(r->sym))
                fail(c, r->loc, "%s is %s; it cannot be a dimension symbol", r->sym,
                     builtin_kind(r->sym));
            for (int j = 0; r->sym && j < s->nparams; j++)
                if (strcmp(r->sym, s->params[j].name) == 0)
                    fail(c, r->loc, "%s is a parameter; it cannot also be a dimension symbol",
                         r->sym);
        }
    VEC(const char *) res = {0};
    for (int i = 0; i < s->nnames; i++) {
        check_distinct(c, "a result", s->names[i], s->name_locs[i], res.data, res.len);
        vec_push(c->a, &res, s->names[i]);
    }
    /* on an error the definition stays bad, and the checker at top level */
    jmp_buf here, *outer = c->fail;
    c->fail = &here;
    c->visible_fns = c->fns.len - 1;
    c->fn = s;
    bool ok = !setjmp(here);
    if (ok)
        block_calls_ok(c, &s->body);
    c->fn = NULL;
    c->fail = outer;
    if (!ok)
        longjmp(*c->fail, 1);
    c->fn_bad.data[c->fns.len - 1] = false;
}

/* [a, b] = f(...): each name gets a result of f. */
static void assignable(Checker *c, const char *name, Loc at, Node *x);
static void assign_name(Checker *c, const char *name, Loc at, Node *x);

static void multi_assign(Checker *c, const AstStmt *s)
{
    const Expr *e = s->value;
    int k = e && e->kind == EX_CALL ? find_fn(c, e->name, -1) : -1;
    if (k < 0 && e && e->kind == EX_CALL && !builtin(e->name))
        fail_not_above(c, e);
    if (k < 0) {
        const char *names = s->names[0];
        for (int i = 1; i < s->nnames; i++)
            names = arena_printf(c->a, "%s, %s", names, s->names[i]);
        fail(c, e ? expr_start(e) : s->loc, "the right side of [%s] = must be a call of a "
             "function with several results", names);
    }
    const AstStmt *fn = c->fns.data[k];
    if (s->nnames > fn->nnames)
        fail(c, s->loc, "%d names for the results of %s, which has %d", s->nnames, fn->name,
             fn->nnames);
    for (int i = 0; i < s->nnames; i++) {
        assignable(c, s->names[i], s->name_locs[i], NULL);
        for (int j = 0; j < i; j++)
            if (strcmp(s->names[i], s->names[j]) == 0)
                fail(c, s->name_locs[i], "%s is assigned twice in one statement", s->names[i]);
    }
    Node **res = inline_call(c, k, e);
    for (int i = 0; i < s->nnames; i++)
        assign_name(c, s->names[i], s->name_locs[i], res[i]);
}

static Node *call(Checker *c, const Expr *e)
{
    Node *user = user_call(c, e);
    if (user)
        return user;
    const Builtin *f = builtin(e->name);
    if (!f) {
        Var v = lookup(c, e->name);
        static const char *const what[] = {
            [V_INPUT] = "an input", [V_VAR] = "a variable", [V_INDEX] = "a loop index",
            [V_DIM] = "a dimension symbol",
        };
        if (v.kind == V_POISON)
            fail_quietly(c);
        if (v.kind <= V_INDEX && what[v.kind])
            fail(c, e->loc, "%s is %s, not a function; to index it, use square brackets: "
                 "%s[...]", e->name, what[v.kind], e->name);
        fail(c, e->loc, "unknown function %s%s", e->name, did_you_mean(c, e->name, false));
    }
    if (f->rule == F_CONST)
        fail(c, e->loc, "%s is a constant, not a function: write %s without arguments", f->name, f->name);
    if (e->nargs < f->lo || e->nargs > f->hi)
        fail(c, e->loc, "%s takes %s but was given %d", f->name, arity_s(c, f), e->nargs);

    if (f->rule == F_FILL || f->rule == F_EYE) {
        Dim d0 = size_arg(c, f, e->args[0]);
        if (f->rule == F_EYE)
            return mk_eye(c->ir, d0);
        Dim d1 = e->nargs == 2 ? size_arg(c, f, e->args[1]) : dim_lit(1);
        return mk_fill(c->ir, f->fill, shape_make(d0, d1));
    }

    if (f->rule == F_GRAD || f->rule == F_HESSIAN)
        return derivative_call(c, e, f);
    if (f->rule == F_WHERE)
        return where(c, e);
    if (f->rule == F_POLYGAMMA && !(e->args[0]->kind == EX_NUM && integral(e->args[0]->num) &&
                                    e->args[0]->num >= 0 && e->args[0]->num <= 64))
        fail(c, expr_start(e->args[0]), "the order k of polygamma(k, x) must be an integer "
             "literal from 0 to 64");
    bool along = (f->rule == F_ALONG || f->rule == F_SOFTMAX || f->rule == F_MEAN) && e->nargs == 2;
    int d = along ? along_arg(c, e) : 0;
    Node *x = value(c, e->args[0]);
    Node *y = e->nargs >= 2 && !along ? value(c, e->args[1]) : NULL;
    Shape s = x->shape;
    switch (f->rule) {
    case F_ELEM:
    case F_REDUCE:
        return mk1(c->ir, f->op, x);
    case F_ALONG:
        return d ? mk_along(c->ir, along_op(f->op), x, d) : mk1(c->ir, f->op, x);
    case F_SQUARE:
        if (!dim_eq(s.rows, s.cols))
            fail(c, e->loc, "%s needs a square matrix, got %s", f->name, shape_s(c, s));
        return mk1(c->ir, f->op, x);
    case F_PAIR:
        if (!elem_ok(x, y))
            fail(c, e->loc, "%s of %s and %s: %s", f->name, shape_s(c, s),
                 shape_s(c, y->shape), no_fit(c, s, y->shape));
        return mk2(c->ir, f->op, x, y);
    case F_POLYGAMMA:
        return mk2(c->ir, OP_POLYGAMMA, x, y);
    case F_CLAMP:
        return clamp(c, e, x, y, value(c, e->args[2]));
    case F_DOT:
        if (!shape_eq(s, y->shape))
            fail(c, e->loc, "dot of %s and %s: %s (dot takes two arguments of one shape)",
                 shape_s(c, s), shape_s(c, y->shape), differ(c, s, y->shape));
        return mk1(c->ir, OP_SUM, mk2(c->ir, OP_MUL, x, y));
    case F_MEAN: {
        if (d)
            return mk2(c->ir, OP_DIV, mk_along(c->ir, OP_SUMD, x, d), dim_node(c, d == 1 ? s.rows : s.cols));
        Node *numel = mk2(c->ir, OP_MUL, dim_node(c, s.rows), dim_node(c, s.cols));
        return mk2(c->ir, OP_DIV, mk1(c->ir, OP_SUM, x), numel);
    }
    case F_SOFTMAX:   /* a vector along its length; a matrix needs d */
        if (!d && !dim_eq(s.cols, dim_lit(1)) && !dim_eq(s.rows, dim_lit(1)))
            fail(c, e->loc, "%s of the matrix %s needs the dimension d: %s(X, 1) normalises "
                 "each column, %s(X, 2) each row", f->name, shape_s(c, s), f->name, f->name);
        return mk_along(c->ir, along_op(f->op), x, d ? d : dim_eq(s.cols, dim_lit(1)) ? 1 : 2);
    case F_DIAG:
        if (dim_eq(s.cols, dim_lit(1)))
            return mk1(c->ir, OP_DIAGM, x);
        if (dim_eq(s.rows, dim_lit(1)))   /* a row vector, as MATLAB allows */
            return mk1(c->ir, OP_DIAGM, mk1(c->ir, OP_TRANSPOSE, x));
        if (!dim_eq(s.rows, s.cols))
            fail(c, e->loc, "diag needs a vector or a square matrix, got %s", shape_s(c, s));
        return mk1(c->ir, OP_DIAGV, x);
    case F_SOLVE:
        return solve(c, e->loc, "solve", x, y);
    case F_FILL:
    case F_EYE:
    case F_NONE:
    case F_CONST:
    case F_GRAD:
    case F_HESSIAN:
    case F_WHERE:
        break;
    }
    return NULL; /* unreachable: handled above */
}


/* ---- concatenation (spec §8): [a, b] side by side, [a; b] stacked ---- */

static Node *concat(Checker *c, const Expr *e)
{
    bool v = e->kind == EX_VCAT;
    Node *acc = value(c, e->args[0]);
    for (int i = 1; i < e->nargs; i++) {
        Node *x = value(c, e->args[i]);
        Dim da = v ? acc->shape.cols : acc->shape.rows, db = v ? x->shape.cols : x->shape.rows;
        if (!dim_eq(da, db))
            fail(c, e->seps[i], "%s %s %s %s: %s %s and %s differ", v ? "stacking" : "placing",
                 shape_s(c, acc->shape), v ? "over" : "beside", shape_s(c, x->shape),
                 v ? "columns" : "rows", dim_s(c, da), dim_s(c, db));
        acc = mk2(c->ir, v ? OP_VCAT : OP_HCAT, acc, x);
    }
    return acc;
}

/* ---- indexing and slicing (spec §8), 1-based and inclusive ---- */

typedef struct Span {
    Node *off;      /* 0-based offset, a scalar value */
    Dim len;
    bool checked;   /* known in range at compile time */
} Span;

/* The bound x (an index, or one end of a range) as a form; fails unless it
 * is an integer expression; out of [1, extent] known now: an error there. */
static Lin bound(Checker *c, const Expr *x, Dim extent)
{
    Lin l;
    const Expr *bad = lin_of(c, x, &l);
    if (bad && bad->kind == EX_NAME && lookup(c, bad->name).kind == V_NONE)
        fail(c, bad->loc, "%s", why_undefined(c, bad->name, lookup(c, bad->name)));
    if (bad)
        fail(c, expr_start(bad), "an index or slice bound is %s%s", lin_hint,
             bad->kind == EX_NAME ? arena_printf(c->a, "; %s is not one", bad->name)
             : bad->kind == EX_NUM ? arena_printf(c->a, "; %g is not whole", bad->num) : "");
    Lin below = lin_axpy(l, -1, lin_const(1)), above = lin_axpy(l, -1, lin_of_dim(extent));
    if (lin_is_const(l) && (l.k < 1 || (lin_is_const(above) && above.k > 0)))
        fail(c, expr_start(x), "index out of range: %lld is not within 1 to %s", (long long)l.k,
             dim_s(c, extent));
    if ((lin_is_const(below) && below.k < 0) || (lin_is_const(above) && above.k > 0))
        fail(c, expr_start(x), "index out of range: it is %s %s %lld, past the end",
             dim_s(c, extent), above.k < 0 ? "-" : "+", (long long)(above.k < 0 ? -above.k : above.k));
    return l;
}

static bool in_range(Lin l, Dim extent)
{
    Lin below = lin_axpy(l, -1, lin_const(1)), above = lin_axpy(l, -1, lin_of_dim(extent));
    return lin_is_const(below) && below.k >= 0 && lin_is_const(above) && above.k <= 0;
}

/* The 0-based offset of the bound x, whose form is l: built from the form
 * (x[i + 1] reads at offset i, not (1 + i) - 1), or from x's value when it
 * is not linear. */
static Node *offset(Checker *c, const Expr *x, Lin l)
{
    if (!l.linear)
        return mk2(c->ir, OP_SUB, value(c, x), mk_const(c->ir, 1));
    Node *r = NULL;
    for (int i = 0; i < l.n; i++) {
        Node *t = l.keys[i] >= 0 ? mk_dimval(c->ir, l.keys[i])
                                 : lookup(c, c->names.data[-l.keys[i] - 1]).node;
        if (l.coefs[i] != 1)
            t = mk2(c->ir, OP_MUL, mk_const(c->ir, (double)l.coefs[i]), t);
        r = r ? mk2(c->ir, OP_ADD, r, t) : t;
    }
    Node *k = mk_const(c->ir, (double)(l.k - 1));
    return !r ? k : l.k == 1 ? r : mk2(c->ir, OP_ADD, r, k);
}

static Span span(Checker *c, const Expr *x, Dim extent)
{
    if (x->kind == EX_COLON)
        return (Span){mk_const(c->ir, 0), extent, true};
    if (x->kind != EX_RANGE) {
        Lin l = bound(c, x, extent);
        return (Span){offset(c, x, l), dim_lit(1), in_range(l, extent)};
    }
    Lin lo = bound(c, x->lhs, extent), hi = bound(c, x->rhs, extent);
    Lin n = lin_axpy(lin_axpy(hi, -1, lo), 1, lin_const(1));
    Dim len;
    if (!lin_dim(n, &len))
        fail(c, x->loc, "the length of a:b is b - a + 1, which must be a dimension (a form of "
             "literals and dimension symbols); here it %s", lin_has_index(n) ?
             "depends on a for index" : "is not linear");
    if (lin_is_const(n) && n.k < 0)
        fail(c, x->loc, "a:b runs backwards: its length b - a + 1 is %lld", (long long)n.k);
    return (Span){offset(c, x->lhs, lo), len, in_range(lo, extent) && in_range(hi, extent)};
}

static Node *index_expr(Checker *c, const Expr *e)
{
    Node *x = name_value(c, e);
    Shape s = x->shape;
    if (e->nargs > 2)
        fail(c, e->seps[2], "%s takes at most two indices, [i, j]", e->name);
    Span r, k;
    if (e->nargs == 2) {
        r = span(c, e->args[0], s.rows);
        k = span(c, e->args[1], s.cols);
    } else if (dim_eq(s.cols, dim_lit(1)) || !dim_eq(s.rows, dim_lit(1))) {
        if (!dim_eq(s.cols, dim_lit(1)))
            fail(c, expr_start(e->args[0]), "%s is %s: a matrix takes two indices, %s[i, j]",
                 e->name, shape_s(c, s), e->name);
        r = span(c, e->args[0], s.rows);
        k = (Span){mk_const(c->ir, 0), dim_lit(1), true};
    } else {   /* a row vector: one index counts along the row */
        r = (Span){mk_const(c->ir, 0), dim_lit(1), true};
        k = span(c, e->args[0], s.cols);
    }
    /* unknown now: checked at run time, reported at the first such index */
    Loc at = {0, 0};
    for (int i = 0; i < e->nargs && !at.line; i++)
        if (!(i == 0 && e->nargs == 2 ? r.checked : i == 1 ? k.checked : r.checked && k.checked))
            at = expr_start(e->args[i]->kind == EX_RANGE ? e->args[i]->lhs : e->args[i]);
    return mk3(c->ir, OP_SLICE, shape_make(r.len, k.len), x, r.off, k.off, loc_pack(at));
}

static Node *value(Checker *c, const Expr *e)
{
    if (!e)
        fail(c, (Loc){0, 0}, "internal error: missing expression");
    if (++c->depth > MAX_EXPR_DEPTH)
        fail(c, e->loc, "expression nested too deeply");
    Node *n = NULL;
    switch (e->kind) {
    case EX_NUM:
        n = mk_const(c->ir, e->num);
        break;
    case EX_NAME:
        n = name_value(c, e);
        break;
    case EX_CALL:
        n = call(c, e);
        break;
    case EX_NEG:
        n = mk1(c->ir, OP_NEG, value(c, e->lhs));
        break;
    case EX_NOT:
        fail(c, e->loc, "%s", cond_only(c, "not"));
    case EX_BINARY:
    case EX_TRANSPOSE:
        n = left_chain(c, e);
        break;
    case EX_HCAT:
    case EX_VCAT:
        n = concat(c, e);
        break;
    case EX_INDEX:
        n = index_expr(c, e);
        break;
    case EX_RANGE:
    case EX_COLON:
        fail(c, e->loc, "a range a:b or ':' is only allowed as an index, x[a:b]");
    }
    if (!n)
        fail(c, e->loc, "internal error: unknown expression kind");
    c->depth--;
    return n;
}

/* What to do instead of an if on a vector. */
static const char cond_hint[] = "a condition is one scalar: reduce first (sum(...) > 0, "
    "norm(...) > 0), or choose entry by entry with where instead of an if "
    "(where(v > 0, a, b) is a where v > 0, else b)";

/* An if/while condition: comparisons of scalars combined with and/or/not; a
 * bare scalar means "!= 0", which is how IF and WHILE read cond anyway. */
static Node *cond(Checker *c, const Expr *e)
{
    if (!e)
        fail(c, (Loc){0, 0}, "internal error: missing condition");
    if (++c->depth > MAX_EXPR_DEPTH)
        fail(c, e->loc, "condition nested too deeply");
    Node *n;
    if (e->kind == EX_NOT) {
        n = mk1(c->ir, OP_NOT, cond(c, e->lhs));
    } else if (e->kind == EX_BINARY && (e->op == B_AND || e->op == B_OR)) {
        Node *l = cond(c, e->lhs);
        n = mk2(c->ir, binops[e->op].op, l, cond(c, e->rhs));
    } else if (e->kind == EX_BINARY && is_comparison(e->op)) {
        Node *l = value(c, e->lhs), *r = value(c, e->rhs);
        if (!is_scalar(l) || !is_scalar(r))
            fail(c, e->loc, "condition compares %s with %s; %s", shape_s(c, l->shape),
                 shape_s(c, r->shape), cond_hint);
        n = mk2(c->ir, binops[e->op].op, l, r);
    } else {
        n = value(c, e);
        if (!is_scalar(n))
            fail(c, expr_start(e), "condition is %s, not a scalar; %s", shape_s(c, n->shape),
                 cond_hint);
    }
    c->depth--;
    return n;
}

/* ---- statements ---- */

static void block(Checker *c, const AstBlock *ab, Block *out, bool top);

static Loc name_loc(const AstStmt *s) { return s->name_loc.line ? s->name_loc : s->loc; }

/* name may be assigned at all; x == NULL: before its value is known. */
static void assignable(Checker *c, const char *name, Loc at, Node *x)
{
    Var v = lookup(c, name);
    if (builtin(name))
        fail(c, at, "%s is %s; it cannot be assigned", name, builtin_kind(name));
    if (v.kind == V_INPUT)
        fail(c, at, "%s is an input; inputs are read-only", name);
    if (v.kind == V_DIM)
        fail(c, at, "%s is a dimension symbol; it cannot be assigned", name);
    if (v.kind == V_INDEX)
        fail(c, at, "%s is the index of the for loop at line %d; it cannot be assigned",
             name, v.line);
    if (x && v.kind == V_VAR && !shape_eq(v.shape, x->shape))
        fail(c, at, "reassigning %s changes its shape from %s to %s; a name keeps its shape",
             name, shape_s(c, v.shape), shape_s(c, x->shape));
}

static void assign_name(Checker *c, const char *name, Loc at, Node *x)
{
    assignable(c, name, at, x);
    set(c, intern(c, name), var_value(x, at.line));
    c->last_name = name;
    c->last_loc = at;
}

static void assign(Checker *c, const AstStmt *s)
{
    assignable(c, s->name, s->loc, NULL);
    assign_name(c, s->name, s->loc, value(c, s->value));
}

static Dim input_dim(Checker *c, const AstStmt *s, const DimRef *d)
{
    if (!d->sym) {
        if (d->lit < 1)
            fail(c, d->loc, "a dimension must be at least 1");
        return dim_lit(d->lit);
    }
    if (builtin(d->sym))
        fail(c, d->loc, "%s is %s; it cannot be a dimension symbol", d->sym, builtin_kind(d->sym));
    if (strcmp(d->sym, s->name) == 0)
        fail(c, d->loc, "%s cannot be both an input and a dimension symbol", d->sym);
    int id = intern(c, d->sym);
    Var v = get(c, id);
    if (v.kind == V_DIM)
        return v.dim;
    if (v.kind == V_INPUT)
        fail(c, d->loc, "%s is an input (line %d); it cannot also be a dimension symbol",
             d->sym, v.line);
    if (v.kind != V_NONE)
        fail(c, d->loc, "%s is already a variable; it cannot also be a dimension symbol", d->sym);
    vec_push(c->a, &c->dims, d->sym);
    set(c, id, (Var){.kind = V_DIM, .dim = dim_sym(c->dims.len - 1), .line = d->loc.line});
    return dim_sym(c->dims.len - 1);
}

static void input(Checker *c, const AstStmt *s)
{
    Loc at = name_loc(s);
    int id = intern(c, s->name);
    Var v = get(c, id);
    if (builtin(s->name))
        fail(c, at, "%s is %s; it cannot be an input", s->name, builtin_kind(s->name));
    if (v.kind == V_INPUT)
        fail(c, at, "input %s is declared twice (first at line %d)", s->name, v.line);
    if (v.kind == V_DIM)
        fail(c, at, "%s is a dimension symbol (line %d); it cannot also be an input",
             s->name, v.line);
    if (v.kind != V_NONE)
        fail(c, at, "%s is already assigned; an input needs a name of its own", s->name);
    if (s->ndims < 0 || s->ndims > 2)
        fail(c, at, "an input has at most two dimensions");
    Dim d[2] = {dim_lit(1), dim_lit(1)};
    for (int i = 0; i < s->ndims; i++)
        d[i] = input_dim(c, s, &s->dims[i]);
    Input in = {.name = s->name, .loc = at, .ndims = s->ndims, .shape = shape_make(d[0], d[1])};
    vec_push(c->a, &c->inputs, in);
    int index = c->inputs.len - 1;
    set(c, id, (Var){.kind = V_INPUT, .node = mk_input(c->ir, index, in.shape),
                              .shape = in.shape, .aux = index, .line = at.line});
}

static void output(Checker *c, const AstStmt *s)
{
    if (c->has_output)
        fail(c, s->loc, "a second output statement (the first is at line %d); a program has "
             "one output", c->output_line);
    for (int i = 0; i < s->nnames; i++) {
        Loc at = s->name_locs[i];
        Var v = lookup(c, s->names[i]);
        if (v.kind == V_DIM)
            fail(c, at, "%s is a dimension symbol; output names a variable or an input",
                 s->names[i]);
        if (v.kind == V_POISON)
            fail_quietly(c);
        if (v.kind != V_VAR && v.kind != V_INPUT)
            fail(c, at, "%s", why_undefined(c, s->names[i], v));
        for (int j = 0; j < i; j++)
            if (strcmp(s->names[i], s->names[j]) == 0)
                fail(c, at, "%s is named twice in the output statement", s->names[i]);
    }
    c->has_output = true;
    c->output_stmt = s;
    c->output_line = s->loc.line;
    c->output_name = s->name;
    c->output_loc = name_loc(s);
}

static void wrt(Checker *c, const AstStmt *s)
{
    if (c->has_wrt)
        fail(c, s->loc, "a second wrt statement (the first is at line %d)", c->wrt_line);
    c->has_wrt = true;
    c->wrt_line = s->loc.line;
    for (int i = 0; i < s->nnames; i++) {
        Loc at = s->name_locs ? s->name_locs[i] : s->loc;
        Var v = lookup(c, s->names[i]);
        if (v.kind == V_POISON)
            continue;
        if (v.kind != V_INPUT)
            fail(c, at, "%s is not an input; wrt lists inputs to differentiate with respect to",
                 s->names[i]);
        for (int j = 0; j < c->wrt.len; j++)
            if (c->wrt.data[j] == v.aux)
                fail(c, at, "%s is listed twice in wrt", s->names[i]);
        vec_push(c->a, &c->wrt, v.aux);
    }
}

/* The names assigned anywhere in a block (nested blocks included), in order
 * of first assignment: a loop's candidates for carried values. */
static void scan_assigned(Checker *c, const AstBlock *b, IntVec *out)
{
    for (int i = 0; i < b->n; i++) {
        const AstStmt *s = b->stmts[i];
        if (s->kind == AST_ASSIGN) {
            int id = intern(c, s->name);
            if (first_sight(c, id))
                vec_push(c->a, out, id);
        }
        for (int j = 0; s->kind == AST_MASSIGN && j < s->nnames; j++) {
            int id = intern(c, s->names[j]);
            if (first_sight(c, id))
                vec_push(c->a, out, id);
        }
        if (s->kind == AST_FUNCTION)
            continue;   /* its names are its own */
        scan_assigned(c, &s->then_block, out);
        scan_assigned(c, &s->else_block, out);
        scan_assigned(c, &s->body, out);
    }
}

static IntVec assigned(Checker *c, const AstBlock *b)
{
    IntVec ids = {0};
    c->gen++;
    scan_assigned(c, b, &ids);
    return ids;
}

static bool same_state(Var a, Var b)
{
    return a.kind == b.kind && a.node == b.node && a.line == b.line && a.what == b.what;
}

/* Checks a branch or a loop body on the environment, then rolls the
 * environment back and returns what the block changed. */
static Changes sub_block(Checker *c, const AstBlock *ab, Block *out)
{
    int mark = c->trail.len;
    c->open++;
    block(c, ab, out, false);
    Changes ch = changes_since(c, mark);
    undo_to(c, mark);
    c->open--;
    return ch;
}

/* What a name is after an if whose branches left it as t and f. */
static Var merge(const AstStmt *s, Var pre, Var t, Var f)
{
    Var maybe = {.kind = V_MAYBE, .line = s->loc.line, .what = "if"};
    if (t.kind == V_POISON || f.kind == V_POISON)
        return t.kind == V_POISON ? t : f;
    if (t.kind == V_VAR && f.kind == V_VAR) {
        if (!shape_eq(t.shape, f.shape))
            return (Var){.kind = V_MIXED, .shape = t.shape, .other = f.shape,
                         .line = s->loc.line, .what = "if"};
        return t;   /* a result slot if t.node != f.node: the caller's business */
    }
    if (t.kind == V_VAR || f.kind == V_VAR)
        return maybe;
    if (same_state(t, pre) && same_state(f, pre))
        return pre;
    return same_state(t, f) ? t : maybe;
}

/* An if/while condition, or NULL after an error (the parser's: e == NULL;
 * or one reported now): the body is checked all the same. */
static Node *guarded_cond(Checker *c, const Expr *e)
{
    if (!e)
        return NULL;
    Guard g;
    guard_enter(c, &g);
    if (setjmp(g.here)) {
        guard_failed(c, &g);
        return NULL;
    }
    Node *k = cond(c, e);
    guard_leave(c, &g);
    return k;
}

/* if/elif/else: each branch is checked from the state before the if; a name
 * that ends up with different nodes in the two branches gets a result slot. */
static void if_stmt(Checker *c, const AstStmt *s, Block *out)
{
    int id = c->m->nconstructs++;
    Node *k = guarded_cond(c, s->value);
    Block *tb = block_new(c->a), *eb = block_new(c->a);
    Changes tc = sub_block(c, &s->then_block, tb);
    Changes ec = s->has_else ? sub_block(c, &s->else_block, eb) : (Changes){0};

    /* Pair up the two branches' changes: ids[i] ends as tv[i] / fv[i]. */
    int n = tc.ids.len + ec.ids.len;
    int *ids = arena_alloc(c->a, sizeof(int) * (size_t)(n ? n : 1)), nids = 0;
    Var *tv = arena_alloc(c->a, sizeof(Var) * (size_t)(n ? n : 1));
    Var *fv = arena_alloc(c->a, sizeof(Var) * (size_t)(n ? n : 1));
    c->gen++;
    for (int i = 0; i < tc.ids.len; i++) {
        int x = tc.ids.data[i];
        first_sight(c, x);
        c->pos[x] = nids;
        ids[nids] = x;
        tv[nids] = tc.vals.data[i];
        fv[nids++] = get(c, x);
    }
    for (int i = 0; i < ec.ids.len; i++) {
        int x = ec.ids.data[i];
        if (first_sight(c, x)) {
            c->pos[x] = nids;
            ids[nids] = x;
            tv[nids++] = get(c, x);
        }
        fv[c->pos[x]] = ec.vals.data[i];
    }

    IntVec res = {0};
    for (int i = 0; i < nids; i++) {
        Var pre = get(c, ids[i]), v = merge(s, pre, tv[i], fv[i]);
        if (v.kind == V_VAR && tv[i].node != fv[i].node)
            vec_push(c->a, &res, i);
        else if (!same_state(v, pre))
            set(c, ids[i], v);
    }

    if (res.len == 0 && tb->n == 0 && eb->n == 0) {
        c->m->nconstructs--;   /* nothing observable: drop it (it has no nested ids) */
        return;
    }
    c->m->has_control = true;
    Stmt *st = stmt_new(c->a, S_IF, res.len);
    st->loc = s->loc;
    st->id = id;
    st->cond = k;
    st->then_block = tb;
    st->else_block = eb;
    for (int j = 0; j < res.len; j++) {
        int i = res.data[j];
        st->slots[j] = ir_slot(c->ir, c->names.data[ids[i]], tv[i].shape);
        st->then_vals[j] = tv[i].node;
        st->else_vals[j] = fv[i].node;
        set(c, ids[i], var_value(mk_slot(c->ir, st->slots[j]), s->loc.line));
    }
    block_push(c->a, out, st);
}

/* A for's bounds (spec §8): `for i in a:b` and `for i in a:s:b`, a and b
 * scalar expressions rounded down, evaluated once when the loop starts.  The
 * IR's FOR counts k = 1..count; i is the node A + (k - 1)*s.  A reads no slot
 * the loop writes (the loop's carried names live in fresh slots), so the node
 * stays the start value throughout.  Bounds are constants for
 * differentiation: floor' = 0. */
typedef struct ForBounds {
    Node *count, *start;   /* start: floor(a), NULL for 1:B */
    double step;
} ForBounds;

/* An integer-valued bound as is; anything else rounded down. */
static Node *for_bound(Checker *c, const Expr *e)
{
    Node *n = value(c, e);
    if (!is_scalar(n))
        fail(c, expr_start(e), "a for bound is a scalar, got %s", shape_s(c, n->shape));
    if (n->op == OP_DIMVAL || (n->op == OP_CONST && n->num == floor(n->num)))
        return n;
    return mk1(c->ir, OP_FLOOR, n);
}

static double for_step(Checker *c, const Expr *e)
{
    const Expr *x = e->kind == EX_NEG ? e->lhs : e;
    if (x->kind != EX_NUM || !integral(x->num) || x->num == 0)
        fail(c, expr_start(e), "the step of a for loop must be a nonzero integer literal");
    return e->kind == EX_NEG ? -x->num : x->num;
}

static Node *for_count(Checker *c, const ForBounds *fb, Node *stop);

static ForBounds for_bounds(Checker *c, const AstStmt *s)
{
    const Expr *hi = s->for_hi;
    if (!s->for_lo || !hi)
        fail(c, s->loc, "internal error: for loop without bounds");
    ForBounds fb = {.step = s->for_step ? for_step(c, s->for_step) : 1};
    /* 1:B builds no node for 1: the loop of the first edition, node for node */
    bool plain = s->for_lo->kind == EX_NUM && s->for_lo->num == 1 && fb.step == 1;
    fb.start = plain ? NULL : for_bound(c, s->for_lo);
    Node *stop = for_bound(c, hi);
    /* floor((B - A)/s) + 1 iterations; the executors round the count down */
    fb.count = plain ? stop : for_count(c, &fb, stop);
    if (fb.count->op == OP_CONST && fb.count->num > 9007199254740992.0)
        fail(c, expr_start(hi), "for loop of %g iterations is past the limit of 2^53 = "
             "9007199254740992 iterations", floor(fb.count->num));
    return fb;
}

static Node *for_count(Checker *c, const ForBounds *fb, Node *stop)
{
    Node *span = mk2(c->ir, OP_SUB, stop, fb->start);
    if (fb->step != 1)
        span = mk2(c->ir, OP_DIV, span, mk_const(c->ir, fb->step));
    return mk2(c->ir, OP_ADD, span, mk_const(c->ir, 1));
}

/* i = A + (k - 1)*s on the loop's counter slot k */
static Node *for_index(Checker *c, const ForBounds *fb, int k)
{
    if (!fb->start)   /* 1:B */
        return mk_slot(c->ir, k);
    Node *offset = mk2(c->ir, OP_ADD, fb->start, mk_const(c->ir, -fb->step));
    return mk2(c->ir, OP_ADD, mk2(c->ir, OP_MUL, mk_const(c->ir, fb->step), mk_slot(c->ir, k)), offset);
}

/* The index name and the bounds of a for; NULL after an error (the body is
 * checked all the same, with the index defined). */
static bool guarded_for_header(Checker *c, const AstStmt *s, ForBounds *fb)
{
    if (!s->name)
        return false;   /* the parser reported this header */
    Guard g;
    guard_enter(c, &g);
    if (setjmp(g.here)) {
        guard_failed(c, &g);
        return false;
    }
    Loc at = name_loc(s);
    Var v = lookup(c, s->name);
    if (builtin(s->name))
        fail(c, at, "%s is %s; it cannot be a loop index", s->name, builtin_kind(s->name));
    if (v.kind == V_INPUT || v.kind == V_DIM || v.kind == V_VAR || v.kind == V_INDEX)
        fail(c, at, "%s is already defined (line %d); a for index needs a name of its own",
             s->name, v.line);
    bool parsed = s->for_lo && s->for_hi;   /* else the parser reported this header */
    if (parsed)
        *fb = for_bounds(c, s);
    guard_leave(c, &g);   /* on every way out: a later error must not unwind to this frame */
    return parsed;
}

/* while and for: the names the body assigns that are defined before the loop
 * are carried in fresh slots; names first assigned in the body stay local. */
static void loop_stmt(Checker *c, const AstStmt *s, Block *out)
{
    bool is_for = s->kind == AST_FOR;
    const char *what = is_for ? "for" : "while";
    int id = c->m->nconstructs++;
    c->m->has_control = true;
    if (++c->loop_depth > c->m->max_depth)
        c->m->max_depth = c->loop_depth;

    int index_id = is_for && s->name ? intern(c, s->name) : -1;
    ForBounds fb = {0};
    Node *count = is_for && guarded_for_header(c, s, &fb) ? fb.count : NULL;
    if (index_id >= 0 && !count) {   /* a name that cannot be an index stays what it is */
        VarKind k = get(c, index_id).kind;
        if (builtin(s->name) || k == V_INPUT || k == V_DIM || k == V_VAR || k == V_INDEX)
            index_id = -1;
    }

    IntVec cand = assigned(c, &s->body), carried = {0};
    for (int j = 0; j < cand.len; j++)
        if (get(c, cand.data[j]).kind == V_VAR)
            vec_push(c->a, &carried, cand.data[j]);

    Stmt *st = stmt_new(c->a, is_for ? S_FOR : S_WHILE, carried.len);
    st->loc = s->loc;
    st->id = id;
    st->count = count;
    for (int j = 0; j < carried.len; j++) {
        Var v = get(c, carried.data[j]);
        st->slots[j] = ir_slot(c->ir, c->names.data[carried.data[j]], v.shape);
        st->vals[j] = v.node;
    }

    /* The body (and a while's condition) see the carried names as their
     * slots, and the index as its slot; all of it is undone afterwards. */
    int mark = c->trail.len;
    c->open++;
    for (int j = 0; j < carried.len; j++)
        set(c, carried.data[j],
            var_value(mk_slot(c->ir, st->slots[j]), get(c, carried.data[j]).line));
    bool *used = arena_alloc(c->a, sizeof *used);
    int index_slot = -1;
    if (index_id >= 0) {
        index_slot = ir_slot(c->ir, s->name, shape_scalar());
        Node *i = count ? for_index(c, &fb, index_slot) : mk_slot(c->ir, index_slot);
        if (i->op != OP_SLOT)   /* the counter 1, 2, ... is not i: say so in derive */
            c->ir->slots.data[index_slot].name = "k";
        set(c, index_id, (Var){.kind = V_INDEX, .node = i,
                               .shape = shape_scalar(), .line = s->loc.line, .used = used});
    } else {
        /* a body's statements would run once, before the loop: refuse */
        Block *scratch = block_new(c->a), *outer = c->out;
        c->out = scratch;
        st->cond = guarded_cond(c, s->value);
        c->out = outer;
        if (scratch->n) {
            diag_error(c->src, expr_start(s->value), "this while condition calls a function "
                       "whose body has an if, while or for; assign the call's value before the "
                       "loop and at the end of its body instead");
            c->nerrors++;
        }
    }
    st->body = block_new(c->a);
    Changes ch = sub_block(c, &s->body, st->body);
    for (int j = 0; j < carried.len; j++) {
        int x = carried.data[j];
        st->next[j] = c->seen[x] == c->gen ? ch.vals.data[c->pos[x]].node : get(c, x).node;
    }
    undo_to(c, mark);
    c->open--;
    st->index_slot = *used ? index_slot : -1;

    /* After the loop: carried names read their slot; body-local names and the
     * index are gone (kept only to explain a later use). */
    for (int i = 0; i < ch.ids.len; i++) {
        int x = ch.ids.data[i];
        Var pre = get(c, x);
        if (pre.kind != V_VAR && x != index_id && !same_state(pre, ch.vals.data[i]))
            set(c, x, (Var){.kind = V_LOCAL, .line = s->loc.line, .what = what});
    }
    if (index_id >= 0)
        set(c, index_id, (Var){.kind = V_GONE, .line = s->loc.line, .what = what});
    for (int j = 0; j < carried.len; j++)
        set(c, carried.data[j], var_value(mk_slot(c->ir, st->slots[j]), s->loc.line));
    c->loop_depth--;
    block_push(c->a, out, st);
}

/* After an error in s: the name it assigns, unless that name is something
 * the statement cannot change (an input, a dimension, a loop index), is
 * unknown from here on (a built-in's name too, as a value: calls still work).  A failed if/while/for poisons every
 * name its blocks assign. */
static void poison(Checker *c, const AstStmt *s)
{
    if (s->kind == AST_IF || s->kind == AST_WHILE || s->kind == AST_FOR) {
        IntVec ids = assigned(c, s->kind == AST_IF ? &s->then_block : &s->body);
        IntVec more = s->kind == AST_IF ? assigned(c, &s->else_block) : (IntVec){0};
        for (int i = 0; i < ids.len + more.len; i++) {
            int id = i < ids.len ? ids.data[i] : more.data[i - ids.len];
            Var v = get(c, id);
            if (v.kind != V_INPUT && v.kind != V_DIM && v.kind != V_INDEX)
                set(c, id, (Var){.kind = V_POISON});
        }
        return;
    }
    for (int i = 0; s->kind == AST_MASSIGN && i < s->nnames; i++) {
        Var v = lookup(c, s->names[i]);
        if (v.kind != V_INPUT && v.kind != V_DIM && v.kind != V_INDEX)
            set(c, intern(c, s->names[i]), (Var){.kind = V_POISON, .line = s->loc.line});
    }
    if (s->kind != AST_ASSIGN && s->kind != AST_INPUT && s->kind != AST_ERROR)
        return;
    if (!s->name)
        return;
    int id = intern(c, s->name);   /* a built-in too: `input exp` then `y = exp` */
    VarKind k = get(c, id).kind;
    if (k != V_INPUT && k != V_DIM && k != V_INDEX)
        set(c, id, (Var){.kind = V_POISON, .line = s->loc.line});
}

static void stmt_checked(Checker *c, const AstStmt *s, Block *out, bool top);

/* One statement; an error drops it (see the top of the file). */
static void stmt(Checker *c, const AstStmt *s, Block *out, bool top)
{
    Block *outer = c->out;
    c->out = out;   /* where the statements of a function called here go */
    Guard g;
    guard_enter(c, &g);
    if (setjmp(g.here)) {
        guard_failed(c, &g);
        c->out = outer;
        poison(c, s);
        return;
    }
    stmt_checked(c, s, out, top);
    guard_leave(c, &g);
    c->out = outer;
}

static void stmt_checked(Checker *c, const AstStmt *s, Block *out, bool top)
{
    static const char *const keyword[] = {
        [AST_INPUT] = "input", [AST_OUTPUT] = "output", [AST_WRT] = "wrt",
    };
    if (!top && (s->kind == AST_INPUT || s->kind == AST_OUTPUT || s->kind == AST_WRT))
        fail(c, s->loc, "'%s' belongs at top level, not inside %s", keyword[s->kind],
             c->fn ? "a function" : "an if, while or for");
    switch (s->kind) {
    case AST_INPUT: input(c, s); return;
    case AST_ASSIGN: assign(c, s); return;
    case AST_OUTPUT: output(c, s); return;
    case AST_WRT: wrt(c, s); return;
    case AST_IF: if_stmt(c, s, out); return;
    case AST_WHILE:
    case AST_FOR: loop_stmt(c, s, out); return;
    case AST_FUNCTION: function_def(c, s, top); return;
    case AST_MASSIGN: multi_assign(c, s); return;
    case AST_ERROR:
        poison(c, s);
        return;
    }
    fail(c, s->loc, "internal error: unknown statement kind");
}

static void block(Checker *c, const AstBlock *ab, Block *out, bool top)
{
    if (++c->depth > MAX_EXPR_DEPTH)
        fail(c, ab->n ? ab->stmts[0]->loc : (Loc){0, 0}, "blocks nested too deeply");
    for (int i = 0; i < ab->n; i++)
        stmt(c, ab->stmts[i], out, top);
    c->depth--;
}

/* An output name's value at the end of the program. */
static Node *output_value(Checker *c, const char *name, Loc at)
{
    Var v = lookup(c, name);
    if (v.kind == V_POISON)
        fail_quietly(c);
    if (v.kind != V_VAR && v.kind != V_INPUT)
        fail(c, at, "%s", why_undefined(c, name, v));
    return v.node;
}

/* The output: the `output` name, else the variable of the last assignment;
 * the auxiliary outputs after the first name (spec §8) go to m. */
static Node *output_node(Checker *c)
{
    if (c->has_output) {
        const AstStmt *s = c->output_stmt;
        Module *m = c->m;
        m->naux = s->nnames - 1;
        m->aux_names = s->names + 1;
        m->fwd.aux = arena_alloc(c->a, sizeof(Node *) * (size_t)(m->naux + 1));
        for (int i = 0; i < m->naux; i++)
            m->fwd.aux[i] = output_value(c, s->names[i + 1], s->name_locs[i + 1]);
        return output_value(c, c->output_name, c->output_loc);
    }
    /* Which variable is the output is a guess, once something was wrong:
     * say nothing more about it. */
    if (c->nerrors + c->parse_errors > 0)
        fail_quietly(c);
    if (!c->last_name)
        fail(c, (Loc){0, 0}, "nothing is assigned, so there is no output");
    Var v = lookup(c, c->last_name);
    if (v.kind != V_VAR)
        fail(c, c->last_loc, "without an output line the output is %s, the last variable "
             "assigned, but %s", c->last_name, why_undefined(c, c->last_name, v));
    c->output_name = c->last_name;
    return v.node;
}

Module *check_program(Arena *a, Ast *ast)
{
    Checker *c = arena_alloc(a, sizeof *c);
    Module *m = arena_alloc(a, sizeof *m);
    c->a = m->arena = a;
    c->src = m->src = ast->src;
    c->m = m;
    c->ir = m->ir = ir_new(a);
    c->parse_errors = ast->nerrors;
    if (!ast->nerrors)
        diag_hold();   /* else the parser's messages are held already */
    jmp_buf top;
    c->fail = &top;
    if (setjmp(top) == 0) {
        m->fwd.body = block_new(a);
        c->top = &ast->top;
        block(c, &ast->top, m->fwd.body, true);
        m->fwd.value = output_node(c);
    }
    if (diag_release() > 0 || !m->fwd.value)
        return NULL;
    m->output_name = c->output_name;

    m->dims = c->dims.data;
    m->ndims = c->dims.len;
    m->inputs = c->inputs.data;
    m->ninputs = c->inputs.len;
    if (!c->has_wrt)
        for (int i = 0; i < c->inputs.len; i++)
            vec_push(a, &c->wrt, i);
    m->wrt = c->wrt.data;
    m->nwrt = c->wrt.len;
    return m;
}
