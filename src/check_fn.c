/* check_fn.c — the checker's user functions (spec §8): a definition is
 * checked once where it stands, and every call is inlined, its body checked
 * again in a scope of its own with the arguments' shapes.  Separate from
 * the expression rules (check_expr.c) and statements (check.c) because
 * it is the one part that swaps the whole environment. */
#include "check.h"

#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/* ---- functions (spec §8) ----
 * A call behaves as its body written out at that point: the checker inlines
 * it.  The arguments are values of the caller's environment; the body is
 * checked in a fresh environment holding only the parameters (and the
 * dimension symbols of their declared shapes, bound to the arguments'
 * sizes), so shapes are inferred per call and a body cannot read the
 * caller's names.  Its statements go where the calling statement's go
 * (c->out).  An error inside the body is reported at the body's line, and a
 * note at the call is added to it. */

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
Node *user_call(Checker *c, const Expr *e)
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
void function_def(Checker *c, const AstStmt *s, bool top)
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

void multi_assign(Checker *c, const AstStmt *s)
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

