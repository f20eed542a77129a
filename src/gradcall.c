/* gradcall.c — grad(e, x) and hessian(e, x) in programs when e depends on
 * x through loops or nested constructs (spec §9: the path taken).
 *
 * The value is computed by a sub-program: the statements of the program up
 * to the call that e reads, with e as their output and x as the only wrt input, turned
 * into a gradient program by diff_reverse (for hessian, that program's
 * tangent program, once per unit direction).  It runs inside a statement
 * of the enclosing program, an IF on the constant 1 whose then-block saves
 * the program's slots that the sub-program re-runs, runs it, and restores
 * them (its reverse sweep leaves them at their first iteration's values),
 * and whose one result is the gradient (the Hessian).  Stmt.call marks it.
 *
 * Differentiated again (diff.c's rev_call), its adjoint is a
 * Hessian-vector product: with gbar the adjoint reaching the gradient,
 * d(gbar . grad_x e)/du = (d2e/du dx) gbar for every wrt input u, which is
 * the tangent, in the direction gbar at x, of the gradient program of e
 * with respect to x and every such u (tangent.c: forward over reverse).
 * Those statements go into the enclosing gradient program the same way, so
 * a third pass (tangent.c over it, for --hessian) goes through them as
 * through any other statement.  The Hessian value is not differentiated
 * again (third derivatives): check.c refuses a wrt through it. */
#include "gradc.h"

#include <stdlib.h>
#include <string.h>

/* The program up to the call as a module of its own, output e, wrt = wrt[0..nwrt). */
static Module *sub_module(const Module *m, Node *e, const int *wrt, int nwrt)
{
    Arena *a = m->arena;
    Module *s = arena_alloc(a, sizeof *s);
    *s = *m;
    s->fwd = (Func){.body = m->fwd.body, .value = e};
    s->grad = (Func){0};
    s->wrt = arena_alloc(a, sizeof(int) * (size_t)(nwrt + 1));
    memcpy(s->wrt, wrt, sizeof(int) * (size_t)nwrt);
    s->nwrt = nwrt;
    s->output_name = "e";
    s->aux_names = NULL;
    s->naux = 0;
    s->checkpoint = 0;
    s->keep_detach = true;   /* detach(v) in e stays a constant, as in a straight-line grad() */
    return s;
}

/* The index slots of b's for loops: set at each iteration, read only
 * inside their bodies, never in need of a restore. */
static void loop_indices(const Block *b, SlotSet *idx)
{
    for (int i = 0; b && i < b->n; i++) {
        const Stmt *s = b->stmts[i];
        if (s->index_slot >= 0)
            slotset_add(idx, s->index_slot);
        loop_indices(s->then_block, idx);
        loop_indices(s->else_block, idx);
        loop_indices(s->body, idx);
    }
}

/* Appends to out: save the slots older than nslots that body writes, body,
 * the SET of fresh slots to vals[0..n) (read where body leaves the program,
 * as a gradient function's results are), then restore the saved slots.
 * vals[i] becomes the slot it was stored in. */
static void run_saved(Ir *ir, Block *out, Block *body, int nslots, Node **vals, int n)
{
    Arena *a = ir->arena;
    SlotSet *w = slotset_new(a), *idx = slotset_new(a);
    block_writes(body, w);
    loop_indices(body, idx);
    VEC(int) old = {0};
    for (int s = 0; s < nslots; s++)
        if (slotset_has(w, s) && !slotset_has(idx, s))
            vec_push(a, &old, s);
    Stmt *save = stmt_new(a, S_SET, old.len), *restore = stmt_new(a, S_SET, old.len);
    for (int k = 0; k < old.len; k++) {
        const Slot *sl = &ir->slots.data[old.data[k]];
        save->slots[k] = ir_slot(ir, arena_printf(a, "saved_%s", sl->name), sl->shape);
        save->vals[k] = mk_slot(ir, old.data[k]);
        restore->slots[k] = old.data[k];
        restore->vals[k] = mk_slot(ir, save->slots[k]);
    }
    Stmt *keep = stmt_new(a, S_SET, n);
    for (int k = 0; k < n; k++) {
        keep->slots[k] = ir_slot(ir, "result", vals[k]->shape);
        keep->vals[k] = vals[k];
        vals[k] = mk_slot(ir, keep->slots[k]);
    }
    if (old.len)
        block_push(a, out, save);
    for (int i = 0; i < body->n; i++)
        block_push(a, out, body->stmts[i]);
    if (n)
        block_push(a, out, keep);
    if (old.len)
        block_push(a, out, restore);
}

/* The tangent program of s's gradient program in the direction dir at
 * s->wrt[0] (tangent_dir); an internal error stops gradc: every op has a
 * forward rule (tests/unit/test_tangent.c). */
static Block *tangent_at(Module *s, Node *dir, Node **tg)
{
    Node **dirs = arena_alloc(s->arena, sizeof(Node *) * (size_t)(s->ninputs + 1));
    dirs[s->wrt[0]] = dir;
    Block *b = tangent_dir(s, dirs, tg);
    if (!b)
        exit(70);
    return b;
}

static Stmt *set1(Arena *a, int slot, Node *v)
{
    Stmt *s = stmt_new(a, S_SET, 1);
    s->slots[0] = slot;
    s->vals[0] = v;
    return s;
}

/* The for loop over j = 1..n (nothing around it for a scalar x: j0 = 0)
 * that body is put in; j0: the 0-based j. */
static Stmt *columns_loop(Ir *ir, Block *out, Shape xs, Node **j0)
{
    Arena *a = ir->arena;
    Stmt *loop = stmt_new(a, S_FOR, 0);
    loop->body = block_new(a);
    *j0 = mk_const(ir, 0);
    if (shape_is_scalar(xs))
        return loop;
    Node *count = mk_dim(ir, xs.rows);
    if (count->op != OP_CONST && count->op != OP_DIMVAL) {
        int c = ir_slot(ir, "n", shape_scalar());
        block_push(a, out, set1(a, c, count));
        count = mk_slot(ir, c);
    }
    loop->count = count;
    loop->index_slot = ir_slot(ir, "j", shape_scalar());
    *j0 = mk2(ir, OP_SUB, mk_slot(ir, loop->index_slot), mk_const(ir, 1));
    return loop;
}

/* loop with room for n carried slots (set by the caller). */
static Stmt *carrying(Arena *a, const Stmt *loop, int n)
{
    Stmt *s = stmt_new(a, S_FOR, n), fresh = *s;
    *s = *loop;
    s->n = n, s->slots = fresh.slots, s->vals = fresh.vals, s->next = fresh.next;
    return s;
}

/* The Hessian of sub's output at x[n] into out: column j is the tangent of
 * the gradient in the direction e_j, in a for loop over j. */
static Node *hessian_columns(Module *sub, Block *out, int nslots, Shape xs)
{
    Ir *ir = sub->ir;
    Arena *a = ir->arena;
    Node *j0, *zero = mk_const(ir, 0), *tg[1];
    Stmt *loop = columns_loop(ir, out, xs, &j0);
    Block *body = shape_is_scalar(xs) ? out : loop->body;
    int dir = ir_slot(ir, "e_j", xs);
    block_push(a, body, set1(a, dir, mk3(ir, OP_PAD, xs, mk_const(ir, 1), j0, zero, 0)));
    run_saved(ir, body, tangent_at(sub, mk_slot(ir, dir), tg), nslots, tg, 1);
    if (shape_is_scalar(xs))
        return tg[0];
    Shape hs = shape_make(xs.rows, xs.rows);
    Stmt *cols = carrying(a, loop, 1);
    cols->slots[0] = ir_slot(ir, "H", hs);
    cols->vals[0] = mk_zero(ir, hs);
    cols->next[0] = mk2(ir, OP_ADD, mk_slot(ir, cols->slots[0]), mk3(ir, OP_PAD, hs, tg[0], zero, j0, 0));
    block_push(a, out, cols);
    /* exactly symmetric (spec §9): 0.5*(H + H'), the transpose built raw */
    Node *h = mk_slot(ir, cols->slots[0]);
    Node *ht = ir_node(ir, OP_TRANSPOSE, hs, h, NULL, 0.0, 0);
    return mk2(ir, OP_MUL, mk_const(ir, 0.5), mk2(ir, OP_ADD, h, ht));
}

/* Adds to set every slot n reads. */
static void add_reads(SlotSet *set, const Node *n)
{
    for (int i = 0; n && i < n->nslots; i++)
        slotset_add(set, n->slots[i]);
}

static void nodes_reads(SlotSet *set, Node *const *v, int n)
{
    for (int k = 0; v && k < n; k++)
        add_reads(set, v[k]);
}

/* Every slot s reads, its nested statements included. */
static void stmt_reads(SlotSet *set, const Stmt *s);
static void block_reads(SlotSet *set, const Block *b)
{
    for (int i = 0; b && i < b->n; i++)
        stmt_reads(set, b->stmts[i]);
}

static void stmt_reads(SlotSet *set, const Stmt *s)
{
    if (s->call) {   /* it reads what its e reads (its blocks re-run the program) */
        add_reads(set, s->call->e);
        return;
    }
    if (s->kind == S_IF) {
        nodes_reads(set, s->then_vals, s->n);
        nodes_reads(set, s->else_vals, s->n);
    } else if (s->kind != S_POP) {
        nodes_reads(set, s->vals, s->n);
    }
    if (s->kind == S_WHILE || s->kind == S_FOR)
        nodes_reads(set, s->next, s->n);
    add_reads(set, s->cond);
    add_reads(set, s->count);
    block_reads(set, s->then_block);
    block_reads(set, s->else_block);
    block_reads(set, s->body);
}

/* The statements of body that e reads, directly or through the statements
 * between (keep[j], when keep is not NULL), and 1 + the largest depth of
 * the grad()/hessian() statements among them. */
static int needed(Arena *a, const Block *body, const Node *e, bool *keep)
{
    SlotSet *need = slotset_new(a);
    add_reads(need, e);
    int depth = 0;
    for (int j = body->n - 1; j >= 0; j--) {   /* later statements read earlier ones */
        const Stmt *s = body->stmts[j];
        bool used = false;
        for (int k = 0; k < s->n && !used; k++)
            used = slotset_has(need, s->slots[k]);
        if (keep)
            keep[j] = used;
        if (!used)
            continue;
        if (s->call && s->call->depth > depth)
            depth = s->call->depth;
        stmt_reads(need, s);
    }
    return depth + 1;
}

int gradcall_depth(Arena *a, const Block *body, const Node *e) { return needed(a, body, e, NULL); }

Stmt *gradcall_stmt(Module *m, Node *e, int input, Shape xs, bool hessian, Loc loc)
{
    Ir *ir = m->ir;
    Arena *a = m->arena;
    int nslots = ir->slots.len;
    /* the statements so far that e reads (the block goes on growing after
     * the call): only they are re-run */
    Module at = *m;
    at.fwd.body = block_new(a);
    bool *keep = arena_alloc(a, (size_t)m->fwd.body->n + 1);
    int depth = needed(a, m->fwd.body, e, keep);
    for (int i = 0; i < m->fwd.body->n; i++)
        if (keep[i])
            block_push(a, at.fwd.body, m->fwd.body->stmts[i]);
    Module *sub = sub_module(&at, e, &input, 1);
    diff_reverse(sub);
    Block *then = block_new(a);
    Node *v = NULL;
    if (hessian) {
        v = hessian_columns(sub, then, nslots, xs);
    } else {
        v = sub->grad.grads[0];
        run_saved(ir, then, sub->grad.body, nslots, &v, 1);
    }
    Stmt *s = stmt_new(a, S_IF, 1);
    s->loc = loc;
    s->cond = mk_const(ir, 1);
    s->then_block = then;
    s->else_block = block_new(a);
    s->slots[0] = ir_slot(ir, hessian ? "hessian_e" : "grad_e", v->shape);
    s->then_vals[0] = v;
    s->else_vals[0] = mk_zero(ir, v->shape);
    GradCall *gc = arena_alloc(a, sizeof *gc);
    *gc = (GradCall){.sub = sub, .e = e, .input = input, .hessian = hessian, .loc = loc,
                     .depth = depth};
    s->call = gc;
    return s;
}

/* The adjoint of a hessian() value: with Hbar symmetrised (the value is),
 * sum over j of the gradient of Hbar[:, j]' * H * e_j, each the tangent in
 * the direction e_j of the tangent in the direction Hbar[:, j] of e's
 * gradient program (third derivatives, forward over forward over reverse),
 * accumulated over the columns into acc[k] for wrt[k]. */
static void hessian_vjp(Module *sub, Block *out, int nslots, Node *hbar, Node **acc)
{
    Ir *ir = sub->ir;
    Arena *a = ir->arena;
    Shape xs = sub->inputs[sub->wrt[0]].shape;
    int hb = ir_slot(ir, "Hbar", hbar->shape);
    Node *ht = ir_node(ir, OP_TRANSPOSE, hbar->shape, hbar, NULL, 0.0, 0);
    block_push(a, out, set1(a, hb, shape_is_scalar(xs) ? hbar
                                   : mk2(ir, OP_MUL, mk_const(ir, 0.5), mk2(ir, OP_ADD, hbar, ht))));
    Node *j0, *zero = mk_const(ir, 0);
    Stmt *loop = columns_loop(ir, out, xs, &j0);
    Block *body = shape_is_scalar(xs) ? out : loop->body;
    int d1 = ir_slot(ir, "Hbar_j", xs), d2 = ir_slot(ir, "e_j", xs);
    block_push(a, body, set1(a, d1, mk3(ir, OP_SLICE, xs, mk_slot(ir, hb), zero, j0, 0)));
    block_push(a, body, set1(a, d2, mk3(ir, OP_PAD, xs, mk_const(ir, 1), j0, zero, 0)));
    Node **tg1 = arena_alloc(a, sizeof(Node *) * (size_t)(sub->nwrt + 1));
    Node **tg2 = arena_alloc(a, sizeof(Node *) * (size_t)(sub->nwrt + 1));
    Module once = *sub;
    once.grad = (Func){.body = tangent_at(sub, mk_slot(ir, d1), tg1), .value = sub->grad.value,
                       .grads = tg1};
    run_saved(ir, body, tangent_at(&once, mk_slot(ir, d2), tg2), nslots, tg2, sub->nwrt);
    if (shape_is_scalar(xs)) {
        memcpy(acc, tg2, sizeof(Node *) * (size_t)sub->nwrt);
        return;
    }
    Stmt *sum = carrying(a, loop, sub->nwrt);
    for (int k = 0; k < sub->nwrt; k++) {
        sum->slots[k] = ir_slot(ir, "acc", tg2[k]->shape);
        sum->vals[k] = mk_zero(ir, tg2[k]->shape);
        sum->next[k] = mk2(ir, OP_ADD, mk_slot(ir, sum->slots[k]), tg2[k]);
        acc[k] = mk_slot(ir, sum->slots[k]);
    }
    block_push(a, out, sum);
}

Block *gradcall_vjp(const Stmt *s, Node *gbar, const bool *wrt_input, Node **adj)
{
    const GradCall *gc = s->call;
    Module *base = gc->sub;
    Ir *ir = base->ir;
    Arena *a = base->arena;
    int nslots = ir->slots.len;
    /* wrt: x first (the direction's input), then every other wrt input of e's program */
    int *wrt = arena_alloc(a, sizeof(int) * (size_t)(base->ninputs + 1)), nwrt = 0;
    wrt[nwrt++] = gc->input;
    for (int u = 0; u < base->ninputs; u++)
        if (wrt_input[u] && u != gc->input)
            wrt[nwrt++] = u;
    Module *sub = sub_module(base, gc->e, wrt, nwrt);
    diff_reverse(sub);
    Block *out = block_new(a);
    Node **tg = arena_alloc(a, sizeof(Node *) * (size_t)(nwrt + 1));
    if (gc->hessian) {
        hessian_vjp(sub, out, nslots, gbar, tg);
    } else {
        int dir = ir_slot(ir, "gbar", gbar->shape);
        block_push(a, out, set1(a, dir, gbar));
        run_saved(ir, out, tangent_at(sub, mk_slot(ir, dir), tg), nslots, tg, nwrt);
    }
    for (int k = 0; k < nwrt; k++)
        adj[wrt[k]] = wrt_input[wrt[k]] ? tg[k] : NULL;
    return out;
}
