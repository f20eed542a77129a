/* check.h — what the checker's parts share: check.c (the environment of
 * names, error recovery, messages, statements and control flow),
 * check_expr.c (the shape rules of expressions and the built-in calls) and
 * check_fn.c (user functions, inlined at each call).  Private to those
 * three files: the rest of the compiler sees only check_program (gradc.h).
 * The shared functions are hidden so that their short names never leave
 * the library. */
#ifndef GRADC_CHECK_H
#define GRADC_CHECK_H

#include "gradc.h"

#include <math.h>
#include <setjmp.h>

#pragma GCC visibility push(hidden)

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

/* A built-in function of spec §3: check.c's tables, check_expr.c's rules. */
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
    F_KRON,    /* kron(A, B): any two shapes */
} FnRule;

typedef struct Builtin {
    const char *name;
    FnRule rule;
    Op op;
    int lo, hi;   /* number of arguments */
    double fill;  /* ones, zeros */
} Builtin;

/* check.c: errors, the environment, messages, statements */
_Noreturn void fail(Checker *c, Loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int intern(Checker *c, const char *name);
void set(Checker *c, int id, Var v);
void undo_to(Checker *c, int mark);
const Builtin *builtin(const char *name);
const char *builtin_kind(const char *name);
const char *differ(Checker *c, Shape a, Shape b);
const char *did_you_mean(Checker *c, const char *name, bool values);
const char *why_undefined(Checker *c, const char *name, Var v);
void assignable(Checker *c, const char *name, Loc at, Node *x);
void assign_name(Checker *c, const char *name, Loc at, Node *x);
void block(Checker *c, const AstBlock *ab, Block *out, bool top);

/* check_expr.c: values and conditions */
Node *value(Checker *c, const Expr *e);
Node *cond(Checker *c, const Expr *e);

/* check_fn.c: function definitions and calls */
Node *user_call(Checker *c, const Expr *e);
void function_def(Checker *c, const AstStmt *s, bool top);
void multi_assign(Checker *c, const AstStmt *s);

/* small helpers of every part (inline: one-liners, no symbols) */

/* A use of a poisoned name: its statement is dropped without a message. */
_Noreturn static inline void fail_quietly(Checker *c) { longjmp(*c->fail, 1); }

static inline Var get(Checker *c, int id) { return id < c->nvars ? c->vars[id] : (Var){0}; }

static inline Var lookup(Checker *c, const char *name) { return get(c, intern(c, name)); }

static inline Var var_value(Node *n, int line)
{
    return (Var){.kind = V_VAR, .node = n, .shape = n->shape, .line = line};
}

static inline const char *shape_s(Checker *c, Shape s) { return shape_str(c->a, s, c->dims.data); }

static inline const char *dim_s(Checker *c, Dim d)
{
    return dim_str(c->a, d, c->dims.data);
}

static inline bool is_scalar(const Node *n) { return shape_is_scalar(n->shape); }

/* Where an expression starts (a binary Expr's loc is its operator). */
static inline Loc expr_start(const Expr *e)
{
    while (e->kind == EX_BINARY || e->kind == EX_TRANSPOSE)
        e = e->lhs;
    return e->loc;
}

static inline Node *dim_node(Checker *c, Dim d) { return mk_dim(c->ir, d); }

static inline bool integral(double x) { return x >= 0 && x <= 9007199254740992.0 && x == floor(x); }

#pragma GCC visibility pop

#endif
