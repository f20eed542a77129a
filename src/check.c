/* check.c — the checker: names, shapes and control-flow rules; builds the
 * forward IR.  This file holds its core: the environment of names, error
 * recovery, messages, and the statements with their control flow;
 * check_expr.c holds the shape rules of expressions and the built-in calls,
 * check_fn.c the user functions (check.h: what the three share).
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
#include "check.h"

#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

void fail(Checker *c, Loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(c->src, loc, fmt, ap);
    va_end(ap);
    c->nerrors++;
    longjmp(*c->fail, 1);
}

/* What a Guard restores when an error unwinds to it. */
typedef struct Guard {
    jmp_buf here, *outer;
    int depth, loop_depth, open, trail;
} Guard;

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

int intern(Checker *c, const char *name)
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

void set(Checker *c, int id, Var v)
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

void undo_to(Checker *c, int mark)
{
    while (c->trail.len > mark) {
        Undo u = c->trail.data[--c->trail.len];
        c->vars[u.id] = u.old;
    }
}

/* ---- the built-in functions of spec §3 ---- */

/* The builtins that are one op: GRADC_OPS's builtin column. */
static const Builtin op_builtins[OP_COUNT] = {
#define X(name, text, arity, kind, fn, libm, code, builtin, prec, latex, adj) \
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

const Builtin *builtin(const char *name)
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

const char *builtin_kind(const char *name)
{
    return builtin(name)->rule == F_CONST ? "a built-in constant" : "a built-in function";
}

/* "dimensions n and m differ": the first dimension where a and b disagree. */
const char *differ(Checker *c, Shape a, Shape b)
{
    bool rows = !dim_eq(a.rows, b.rows);
    return arena_printf(c->a, "dimensions %s and %s differ", dim_s(c, rows ? a.rows : a.cols),
                        dim_s(c, rows ? b.rows : b.cols));
}

/* "; did you mean NAME?" when a name of the wanted kind is one or two typos
 * away from name, else "".  Values: the inputs, variables, loop indices and
 * dimension symbols defined here; else the built-in functions. */
const char *did_you_mean(Checker *c, const char *name, bool values)
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
const char *why_undefined(Checker *c, const char *name, Var v)
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

/* ---- statements ---- */

static Loc name_loc(const AstStmt *s) { return s->name_loc.line ? s->name_loc : s->loc; }

/* name may be assigned at all; x == NULL: before its value is known. */
void assignable(Checker *c, const char *name, Loc at, Node *x)
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

void assign_name(Checker *c, const char *name, Loc at, Node *x)
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
        if (c->m->nconstructs == id + 1)   /* no nested ids (a grad() in it has one) */
            c->m->nconstructs--;   /* nothing observable: drop it */
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

void block(Checker *c, const AstBlock *ab, Block *out, bool top)
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
