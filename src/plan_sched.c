/* plan_sched.c — the plan's schedule (plan.c builds the rest): a walk of
 * the Func in codegen's order that records, at each point where a statement
 * or the results need values, the kernels that compute them, and with a dump
 * prints them as it goes; then the results' point, the one pass and the
 * plan's return line. */
#include "plansim.h"

#include <stdlib.h>
#include <string.h>

/* ===================================================================== */
/* The schedule: what is computed at each point                         */
/* ===================================================================== */

/* (Sim, the walk's state: plansim.h) */

KernelKind plan_kernel_kind(const Plan *p, const Node *n)
{
    if (is_leaf(n))
        return K_LEAF;
    if (p->mv[n->id])
        return K_MATVEC;
    if (is_kept(p, n))
        return K_KEPT;
    if (p->gemm[n->id]) {
        static const KernelKind by_mode[] = {
            [G_DENSE] = K_GEMM, [G_ROWSCALE] = K_SCALE, [G_COLSCALE] = K_SCALE,
            [G_COLSUMS] = K_SUMS, [G_ROWSUMS] = K_SUMS,
        };
        return p->gemm[n->id]->diag ? K_DIAGDOT : by_mode[p->gemm[n->id]->mode];
    }
    if (n->op == OP_DET || n->op == OP_LOGDET || (n->op == OP_INV && !is_scalar(n)) ||
        n->op == OP_LU || n->op == OP_SOLVE || n->op == OP_SOLVET || n->op == OP_CHOL)
        return K_LAPACK;
    if (is_scalar(n)) {
        switch (n->op) {
        case OP_SUM: case OP_NORM: case OP_TRACE: case OP_LOGSUMEXP: case OP_MATMUL:
        case OP_AMAX: case OP_AMIN: return K_REDUCE;
        default: return K_SCALAR;
        }
    }
    if (is_alias(n))
        return K_ALIAS;
    if (kind_of(n) == OK_U || kind_of(n) == OK_B || n->op == OP_FILL || n->op == OP_BCAST)
        return K_MAP;
    return n->op == OP_MATMUL ? K_GEMM : K_LAYOUT;
}

void plan_set_valid(Sim *s, Node *n)
{
    if (s->valid[n->id])
        return;
    s->valid[n->id] = true;
    s->level[n->id] = s->depth;
    vec_push(s->p->arena, &s->live, n->id);
}

/* Keeps the live values for which keep() holds. */
static void filter_live(Sim *s, bool (*keep)(Sim *, const Node *))
{
    int k = 0;
    for (int i = 0; i < s->live.len; i++) {
        int id = s->live.data[i];
        if (keep(s, s->p->nodes[id]))
            s->live.data[k++] = id;
        else
            s->valid[id] = false;
    }
    s->live.len = k;
}

static bool outer(Sim *s, const Node *n) { return s->level[n->id] < s->depth; }

static bool unwritten(Sim *s, const Node *n)
{
    for (int j = 0; j < n->nslots; j++)
        if (slotset_has(s->written, n->slots[j]))
            return false;
    return true;
}

static void scope_pop(Sim *s)
{
    filter_live(s, outer);
    s->depth--;
}

/* Drops the values that read a slot marked in s->written, then clears it. */
static void invalidate(Sim *s)
{
    filter_live(s, unwritten);
    slotset_clear(s->written);
}

bool plan_available(const Sim *s, const Node *n)
{
    if (is_alias(n))
        n = n->args[0];
    return s->valid[n->id] || n->op == OP_INPUT || n->op == OP_SLOT || n->op == OP_COTAN ||
           n->op == OP_CONST || n->op == OP_FILL || n->op == OP_DIMVAL;
}

static bool mv_ready(const Sim *s, const Mv *v)
{
    bool ok = plan_available(s, v->vec);
    for (int t = 0; t < v->nterms && ok; t++)
        ok = (!v->terms[t].m || plan_available(s, v->terms[t].m)) && (!v->terms[t].coef || plan_available(s, v->terms[t].coef));
    return ok;
}

/* v reads n (its vector, a matrix or a coefficient): a product of n's own
 * pass cannot read n, which that pass is still computing. */
static bool mv_reads(const Mv *v, const Node *n)
{
    const Node *vec = is_alias(v->vec) ? v->vec->args[0] : v->vec;
    bool r = vec == n;
    for (int t = 0; t < v->nterms && !r; t++)
        r = v->terms[t].m == n || v->terms[t].coef == n;
    return r;
}

int plan_by_id(const void *x, const void *y)
{
    int a = (*(Node *const *)x)->id, b = (*(Node *const *)y)->id;
    return (a > b) - (a < b);
}

/* Collects into got every node that roots need and that is neither valid
 * nor fused (a fused node is computed inside its consumer's loop, from its
 * own arguments); with hoist, only nodes that read no slot in s->written,
 * the loop's. */
void plan_collect(Sim *s, Node **roots, int nroots, bool hoist, NodeVec *got)
{
    Plan *p = s->p;
    s->epoch++;
    got->len = 0;
    for (int i = 0; i < nroots; i++)
        vec_push(p->arena, &s->todo, roots[i]);
    while (s->todo.len) {
        Node *x = s->todo.data[--s->todo.len], *d[DEPS_MAX];
        bool fuse[DEPS_MAX];
        if (s->mark[x->id] == s->epoch || s->valid[x->id])
            continue;
        s->mark[x->id] = s->epoch;
        bool variant = hoist && (!unwritten(s, x) || p->guarded[x->id]);
        if (!variant && !is_fused(p, x) && !(hoist && is_leaf(x)))
            vec_push(p->arena, got, x);
        if (hoist && !variant && !is_fused(p, x))
            continue; /* hoisted whole: its arguments come with it */
        int nd = plan_deps(p, x, d, fuse);
        for (int i = 0; i < nd; i++)
            vec_push(p->arena, &s->todo, d[i]);
    }
}

static void collect(Sim *s, Node **roots, int nroots, bool hoist)
{
    plan_collect(s, roots, nroots, hoist, &s->got);
}



/* A point: the kernels for roots, in id order. */
static void point(Sim *s, Node **roots, int nroots, Node *root)
{
    Plan *p = s->p;
    collect(s, roots, nroots, false);
    if (s->got.len > 1)       /* data is NULL when nothing was collected */
        qsort(s->got.data, (size_t)s->got.len, sizeof(Node *), plan_by_id);
    KernelVec ks = {0};
    for (int i = 0; i < s->got.len; i++) {
        Node *x = s->got.data[i];
        if (s->valid[x->id])
            continue; /* computed with its matrix–vector group or row pass */
        Kernel k = {plan_kernel_kind(p, x), x, NULL, 0};
        if (k.kind == K_MATVEC && row_pass(s, x, &ks))
            continue;
        plan_set_valid(s, x);
        if (k.kind == K_MATVEC) {
            int g = p->mv[x->id]->group, n = 1;
            for (int j = g < p->m->ir->nnodes ? g : -1; j >= 0; j = p->gnext[j])
                n++;
            k.members = arena_alloc(p->arena, sizeof(Node *) * (size_t)n);
            k.members[k.nmembers++] = x;
            for (int j = g < p->m->ir->nnodes ? g : -1; j >= 0; j = p->gnext[j])
                if (j != x->id && !s->valid[j] && mv_ready(s, p->mv[j]) && !mv_reads(p->mv[j], x))
                    k.members[k.nmembers++] = p->nodes[j];
            for (int j = 1; j < k.nmembers; j++) {
                /* the other members' leaves (inputs, slots, transposed vectors) */
                Node *d[DEPS_MAX];
                bool fuse[DEPS_MAX];
                int nd = plan_deps(p, k.members[j], d, fuse);
                for (int e = 0; e < nd; e++)
                    for (int a = is_alias(d[e]); a >= 0; a--) {
                        Node *y = a ? d[e]->args[0] : d[e];
                        if (s->valid[y->id] || fuse[e])
                            continue;
                        vec_push(p->arena, &ks, ((Kernel){plan_kernel_kind(p, y), y, NULL, 0}));
                        plan_set_valid(s, y);
                    }
                plan_set_valid(s, k.members[j]);
            }
        }
        vec_push(p->arena, &ks, k);
    }
    ks.len = merge_sums(p, ks.data, ks.len);
    ks.len = merge_row_sums(p, ks.data, ks.len);
    for (int i = 0; s->out && i < ks.len; i++)
        if (ks.data[i].kind != K_LEAF && ks.data[i].kind != K_ALIAS)
            plan_dump_kernel(s, &ks.data[i]);
    vec_push(p->arena, &p->points, ((Point){root, ks.data, ks.len}));
}

static void need(Sim *s, Node *n) { point(s, &n, 1, n); }

/* ---- the dump ---- */

static void indent(Sim *s) { fprintf(s->out, "%*s", 2 * s->indent, ""); }

/* A value as the dump names it: inputs, slots and dimensions by name,
 * constants by value, a fused node as its expression, anything else %id. */
/* Binary ops dumped as calls: max(a, b), where(k, a) (PICK), solve(F, B). */
static bool call_form(const Node *n)
{
    return n->op == OP_MAX || n->op == OP_MIN || n->op == OP_PICK || n->op == OP_SOLVE ||
           n->op == OP_SOLVET;
}

static void ref(Sim *s, const Node *n)
{
    const Module *m = s->p->m;
    FILE *o = s->out;
    switch (n->op) {
    case OP_INPUT: fputs(m->inputs[n->index].name, o); return;
    case OP_SLOT: fputs(s->p->slotname[n->index], o); return;
    case OP_DIMVAL: fputs(m->dims[n->index], o); return;
    case OP_COTAN: fputs("cotangent", o); return;
    case OP_CONST: fprintf(o, "%.17g", n->num); return;
    case OP_FILL: fprintf(o, "fill(%.17g)", n->num); return;
    case OP_EYE:
        if (is_fused(s->p, n)) {
            fputs("eye", o);
            return;
        }
        break;
    default: break;
    }
    if (is_alias(n) || (n->op == OP_TRANSPOSE && is_fused(s->p, n))) {   /* read in place */
        ref(s, n->args[0]);
        fputs("'", o);
        return;
    }
    if (!is_fused(s->p, n) || (s->p->shared && s->p->shared[n->id])) {
        fprintf(o, "%%%d", n->id);   /* a shared one is defined below its kernel's line */
        return;
    }
    const char *t = op_info[n->op].text;
    if (n->op == OP_PAD) {   /* read through: pad(g, r, c) */
        fputs("pad(", o);
        for (int i = 0; i < 3; i++) {
            fputs(i ? ", " : "", o);
            ref(s, n->args[i]);
        }
        fputs(")", o);
        return;
    }
    if (n->nargs == 1) {
        fprintf(o, n->op == OP_NEG ? "-" : "%s(", t);
        ref(s, n->args[0]);
        fputs(n->op == OP_NEG ? "" : ")", o);
        return;
    }
    bool word = call_form(n);
    fprintf(o, word ? "%s(" : "(", t);
    ref(s, n->args[0]);
    fprintf(o, word ? ", " : " %s ", t);
    ref(s, n->args[1]);
    fputs(")", o);
}

static const char *const kernel_name[] = {
    [K_LEAF] = "leaf", [K_SCALAR] = "scalar", [K_MAP] = "map", [K_REDUCE] = "reduce",
    [K_MATVEC] = "matvec", [K_GEMM] = "gemm", [K_LAPACK] = "lapack", [K_LAYOUT] = "layout",
    [K_ALIAS] = "alias", [K_SCALE] = "scale", [K_SUMS] = "sums", [K_DIAGDOT] = "diagmm", [K_KEPT] = "kept",
    [K_ROWS] = "rows",
};

static void dump_shape(Sim *s, const Node *n)
{
    if (!is_scalar(n))
        fputs(shape_str(s->p->arena, n->shape, s->p->m->dims), s->out);
}

/* op(args) with the arguments as refs (the kernel's own operation). */
static void dump_op(Sim *s, const Node *n)
{
    FILE *o = s->out;
    const char *t = op_info[n->op].text;
    if (call_form(n)) {
        fprintf(o, "%s(", t);
        ref(s, n->args[0]);
        fputs(n->op == OP_SOLVET ? "', " : ", ", o);   /* SOLVET: A' \ B */
        ref(s, n->args[1]);
        fputs(")", o);
        return;
    }
    if (kind_of(n) == OK_B || n->op == OP_MATMUL) {
        ref(s, n->args[0]);
        fprintf(o, " %s ", t);
        ref(s, n->args[1]);
        return;
    }
    if (n->op == OP_TRANSPOSE) {
        ref(s, n->args[0]);
        fputs("'", o);
        return;
    }
    fputs(n->op == OP_NEG ? "-" : t, o);
    if (n->nargs) {
        fputs(n->op == OP_NEG ? "" : "(", o);
        ref(s, n->args[0]);
        if (n->op >= OP_SUMD && n->op <= OP_LOGSOFTMAXD)
            fprintf(o, ", %d", n->index);
        fputs(n->op == OP_NEG ? "" : ")", o);
    } else if (n->op == OP_FILL) {
        fprintf(o, "(%.17g)", n->num);
    }
}

static void dump_term(Sim *s, const Mv *v, const Term *t)
{
    FILE *o = s->out;
    if (t->k != 1)
        fprintf(o, "%.17g*", t->k);
    if (t->coef) {
        ref(s, t->coef);
        fputs("*", o);
    }
    if (t->m) {
        ref(s, t->m);
        fprintf(o, "%s*", t->trans ? "'" : "");
    }
    ref(s, v->vec);
}

/* Into v (once each): the shared values (plan.c: fuse_shared) n's fused
 * expression reads, and those theirs read; the walk meets a node at most
 * SHARED_MAX times per read of the kernel. */
static void shared_reads(const Plan *p, const Node *n, NodeVec *v)
{
    for (int i = 0; i < n->nargs; i++) {
        Node *a = n->args[i];
        if (!is_fused(p, a) || is_alias(a))
            continue;
        if (p->shared && p->shared[a->id]) {
            bool seen = false;
            for (int j = 0; j < v->len && !seen; j++)
                seen = v->data[j] == a;
            if (seen)
                continue;
            vec_push(p->arena, v, a);
        }
        shared_reads(p, a, v);
    }
}

/* The shared values the kernel's expressions read, each as %id = its
 * expression, arguments first: each is made once per entry of the loop. */
static void dump_shared(Sim *s, const Kernel *k)
{
    NodeVec v = {0};
    shared_reads(s->p, k->node, &v);
    for (int i = 0; i < k->nmembers; i++)
        shared_reads(s->p, k->members[i], &v);
    if (v.len > 1)
        qsort(v.data, (size_t)v.len, sizeof(Node *), plan_by_id);
    for (int i = 0; i < v.len; i++) {
        indent(s);
        fprintf(s->out, "%-7s%%%d", "", v.data[i]->id);
        dump_shape(s, v.data[i]);
        fputs(" = ", s->out);
        dump_op(s, v.data[i]);
        fputs(", made in the same loop\n", s->out);
    }
}

void plan_dump_kernel(Sim *s, const Kernel *k)
{
    FILE *o = s->out;
    if (k->kind == K_MAP && k->nmembers) {   /* a map and a sum in one loop */
        Kernel map = {K_MAP, k->node, NULL, 0};
        plan_dump_kernel(s, &map);
        indent(s);
        fprintf(o, "%-7s%%%d = ", "", k->members[0]->id);
        dump_op(s, k->members[0]);
        fputs(", in the same loop\n", o);
        dump_shared(s, k);
        return;
    }
    bool many = k->kind == K_MATVEC || k->kind == K_ROWS;
    for (int i = 0; i < (many ? k->nmembers : 1); i++) {
        const Node *n = many ? k->members[i] : k->node;
        indent(s);
        fprintf(o, "%-7s%%%d", i ? "" : kernel_name[k->kind], n->id);
        dump_shape(s, n);
        fputs(" = ", o);
        if (s->p->mv[n->id]) {
            const Mv *v = s->p->mv[n->id];
            if (v->w) {
                fputs("dot(", o);
                ref(s, v->w);
                fputs(", ", o);
            }
            for (int t = 0; t < v->nterms; t++) {
                fputs(t ? " + " : "", o);
                int j = k->kind == K_MATVEC ? mv_copy_of(s->p, k, i, t) : -1;
                if (j < 0)
                    dump_term(s, v, &v->terms[t]);
                else   /* that member's result, not a product in the pass */
                    fprintf(o, "%%%d%s", k->members[j]->id,
                            dim_eq(k->members[j]->shape.rows, n->shape.rows) ? "" : "'");
            }
            fputs(v->w ? ")" : "", o);
        } else if (s->p->gemm[n->id]) {
            const Gemm *g = s->p->gemm[n->id];
            fputs(g->diag ? "diag(" : "", o);
            fputs(g->mode == G_ROWSCALE ? "diag(" : "", o);
            ref(s, g->a);
            fputs(g->mode == G_ROWSCALE ? ")" : g->ta ? "'" : "", o);
            if (g->w) {
                fputs(" * diag(", o);
                ref(s, g->w);
                fputs(")", o);
            }
            fputs(g->mode == G_COLSCALE ? " * diag(" : " * ", o);
            ref(s, g->b);
            fputs(g->mode == G_COLSCALE ? ")" : g->tb ? "'" : "", o);
            fputs(g->diag ? ")" : "", o);
            if (g->add) {
                fputs(" + ", o);
                ref(s, g->add);
            }
            if (g->slot >= 0)
                fprintf(o, ", into %s", s->p->slotname[g->slot]);
            if (g->out >= 0 && g->alpha != 1)
                fprintf(o, ", times %.17g", g->alpha);
            if (g->out >= 0)
                fprintf(o, g->early ? ", copied into d/d%s" : ", into d/d%s",
                        s->p->m->inputs[s->p->m->wrt[g->out]].name);
        } else {
            dump_op(s, n);
            fputs(k->kind == K_ROWS && is_scalar(n) ? ", in the same pass" : "", o);
        }
        fputs("\n", o);
    }
    dump_shared(s, k);
}

/* ---- the walk (codegen.c's order) ---- */

static const char *slot_name(Sim *s, int slot) { return s->p->slotname[slot]; }

static void sim_assign(Sim *s, int n, const int *slots, Node **vals)
{
    for (int i = 0; i < n; i++) {
        Node *pads[SCATTER_MAX];
        int np = scatter_form(vals[i], slots[i], pads);
        for (int k = 0; k < np; k++)
            for (int a = 0; a < 3; a++)
                need(s, pads[k]->args[a]);
        if (!np)
            need(s, vals[i]);
    }
    if (s->out && n) {
        indent(s);
        fputs("set ", s->out);
        for (int i = 0; i < n; i++) {
            Node *pads[SCATTER_MAX];
            int np = scatter_form(vals[i], slots[i], pads);
            fprintf(s->out, "%s%s %s ", i ? ", " : "", slot_name(s, slots[i]), np ? "+=" : "=");
            for (int k = 0; k < np; k++) {
                fputs(k ? " + pad(" : "pad(", s->out);
                ref(s, pads[k]->args[0]);
                fputs(", ", s->out);
                ref(s, pads[k]->args[1]);
                fputs(", ", s->out);
                ref(s, pads[k]->args[2]);
                fputs(")", s->out);
            }
            if (!np)
                ref(s, vals[i]);
        }
        fputs("\n", s->out);
    }
    for (int i = 0; i < n; i++)
        slotset_add(s->written, slots[i]);
    invalidate(s);
}

static void write_slot(Sim *s, int slot)
{
    slotset_add(s->written, slot);
    invalidate(s);
}

static void block_roots(const Block *b, NodeVec *r, Arena *a);

void stmt_roots(const Stmt *s, NodeVec *r, Arena *a)
{
    Node **lists[4] = {s->vals, s->then_vals, s->else_vals, s->next};
    for (int l = 0; l < 4; l++)
        for (int i = 0; lists[l] && i < s->n; i++)
            if (lists[l][i])
                vec_push(a, r, lists[l][i]);
    if (s->cond)
        vec_push(a, r, s->cond);
    if (s->count)
        vec_push(a, r, s->count);
    block_roots(s->then_block, r, a);
    block_roots(s->else_block, r, a);
    block_roots(s->body, r, a);
}

static void block_roots(const Block *b, NodeVec *r, Arena *a)
{
    for (int i = 0; b && i < b->n; i++)
        stmt_roots(b->stmts[i], r, a);
}

/* Loop-invariant code motion: before loop s, everything its body, condition
 * and next values need that reads no slot the loop writes (exp(-C/eps) in
 * a Sinkhorn loop) is computed once; it stays valid through the loop. */
static void hoist(Sim *s, const Stmt *loop)
{
    NodeVec roots = {0};
    Arena *a = s->p->arena;
    block_roots(loop->body, &roots, a);
    for (int i = 0; i < loop->n; i++)
        vec_push(a, &roots, loop->next[i]);
    if (loop->cond)
        vec_push(a, &roots, loop->cond);
    stmt_writes(loop, s->written);
    collect(s, roots.data, roots.len, true);
    slotset_clear(s->written);
    NodeVec inv = {0};
    for (int i = 0; i < s->got.len; i++)
        vec_push(a, &inv, s->got.data[i]);
    if (s->out && inv.len) {
        indent(s);
        fputs("hoisted:\n", s->out);
    }
    point(s, inv.data, inv.len, NULL);
}

static void sim_block(Sim *s, const Block *b);

static void sim_loop(Sim *s, const Stmt *st)
{
    FILE *o = s->out;
    sim_assign(s, st->n, st->slots, st->vals);
    if (st->kind == S_FOR)
        need(s, st->count);
    stmt_writes(st, s->written);
    invalidate(s);
    hoist(s, st);
    if (o) {
        indent(s);
        fputs(st->kind == S_FOR ? (st->reverse ? "for reverse " : "for ") : "while", o);
        if (st->kind == S_FOR) {
            if (st->index_slot >= 0)
                fprintf(o, "%s = ", slot_name(s, st->index_slot));
            fputs("1:", o);
            ref(s, st->count);
        }
        fputs("\n", o);
    }
    s->indent++;
    if (st->kind == S_WHILE) {
        s->depth++;
        need(s, st->cond);
        if (o) {
            indent(s);
            fputs("test ", o);
            ref(s, st->cond);
            fputs("\n", o);
        }
        scope_pop(s);
    }
    s->depth++;
    if (st->index_slot >= 0)
        write_slot(s, st->index_slot);
    sim_block(s, st->body);
    sim_assign(s, st->n, st->slots, st->next);
    scope_pop(s);
    s->indent--;
    if (st->count_slot >= 0) {
        write_slot(s, st->count_slot);
        if (o) {
            indent(s);
            fprintf(o, "set %s = the number of iterations\n", slot_name(s, st->count_slot));
        }
    }
}

static void sim_if(Sim *s, const Stmt *st)
{
    need(s, st->cond);
    for (int br = 0; br < 2; br++) {
        if (s->out) {
            indent(s);
            fputs(br ? "else\n" : "if ", s->out);
            if (!br) {
                ref(s, st->cond);
                fputs("\n", s->out);
            }
        }
        s->indent++;
        s->depth++;
        sim_block(s, br ? st->else_block : st->then_block);
        sim_assign(s, st->n, st->slots, br ? st->else_vals : st->then_vals);
        scope_pop(s);
        s->indent--;
    }
}

static void sim_block(Sim *s, const Block *b)
{
    for (int i = 0; b && i < b->n; i++) {
        const Stmt *st = b->stmts[i];
        FILE *o = s->out;
        switch (st->kind) {
        case S_SET: sim_assign(s, st->n, st->slots, st->vals); break;
        case S_IF: sim_if(s, st); break;
        case S_WHILE:
        case S_FOR: sim_loop(s, st); break;
        case S_PUSH:
            for (int j = 0; j < st->n; j++)
                need(s, st->vals[j]);
            if (o) {
                indent(s);
                fputs("push", o);
                for (int j = 0; j < st->n; j++) {
                    fputs(j ? ", " : " ", o);
                    ref(s, st->vals[j]);
                }
                fputs("\n", o);
            }
            break;
        case S_POP:
            for (int j = st->n - 1; j >= 0; j--)
                write_slot(s, st->slots[j]);
            if (o) {
                indent(s);
                fputs("pop", o);
                for (int j = 0; j < st->n; j++)
                    fprintf(o, "%s%s", j ? ", " : " ", slot_name(s, st->slots[j]));
                fputs("\n", o);
            }
            break;
        }
    }
}

/* Does fused elementwise n read node r (a leaf of its fused tree)?  The
 * walk is bounded by the fusion depth (FUSE_MAX). */
static bool fused_reads(const Plan *p, const Node *n, const Node *r)
{
    if (n == r)
        return true;
    if (!is_fused(p, n))
        return false;
    for (int i = 0; i < n->nargs; i++)
        if (fused_reads(p, n->args[i], r))
            return true;
    return false;
}

static bool no_loop(const Kernel *k) { return k->kind == K_LEAF || k->kind == K_ALIAS; }

/* Value+gradient fusion: when the value is computed from sum(e) by scalar
 * kernels only and every gradient point is empty (what the gradients read
 * is at hand when the value is), the sum runs in the loop that stores the
 * gradients of e's shape, so that what both read is read once (x in
 * 2*dot(x,x): x.^2 for the value, 4 .* x for the gradient). */
static Node *one_pass(const Plan *p, int vpoint)
{
    const Func *f = p->f;
    const Point *pv = &p->points.data[vpoint];
    if (f->aux && p->m->naux)
        return NULL; /* auxiliary outputs may read the sum; kept simple */
    int s = pv->nk - 1;
    while (s >= 0 && (pv->ks[s].kind == K_SCALAR || pv->ks[s].kind == K_KEPT || no_loop(&pv->ks[s])))
        s--;
    if (!f->grads || s < 0 || pv->ks[s].node->op != OP_SUM || is_scalar(pv->ks[s].node->args[0]))
        return NULL;
    Node *sum = pv->ks[s].node;
    int with = 0;
    for (int k = 0; k < p->m->nwrt; k++) {
        Node *g = f->grads[p->gorder[k]];
        const Point *pg = &p->points.data[vpoint + 1 + (f->aux ? p->m->naux : 0) + k];
        for (int k = 0; k < pg->nk; k++)
            if (!no_loop(&pg->ks[k]))
                return NULL;
        for (int k = s; k < pv->nk; k++)
            if (fused_reads(p, g, pv->ks[k].node))
                return NULL;
        with += is_fused(p, g) && shape_eq(g->shape, sum->args[0]->shape);
    }
    return with ? sum : NULL;
}

/* NAME_hessian's result (p->hess_nwrt): ", d2y/dx2 = " for the whole
 * matrix (i < 0), with several wrt inputs ", d2y/d(x, z)2 = "; block (i, j)
 * as derive --hessian names it (print_prog.c: hessian_label), "d2y/dxdz = ". */
static void hess_label(const Plan *p, FILE *out, int i, int j)
{
    const Module *m = p->m;
    const char *y = m->output_name ? m->output_name : "y";
    if (i < 0 && p->hess_nwrt > 1) {
        fprintf(out, ", d2%s/d(", y);
        for (int k = 0; k < p->hess_nwrt; k++)
            fprintf(out, "%s%s", k ? ", " : "", m->inputs[m->wrt[k]].name);
        fputs(")2 = ", out);
        return;
    }
    const char *xi = m->inputs[m->wrt[i < 0 ? 0 : i]].name, *xj = m->inputs[m->wrt[i < 0 ? 0 : j]].name;
    size_t n = strlen(xi);
    fputs(i < 0 ? ", " : "", out);
    if (xi == xj && !(n && xi[n - 1] >= '0' && xi[n - 1] <= '9'))   /* not d2L/dW12 */
        fprintf(out, "d2%s/d%s2 = ", y, xi);
    else
        fprintf(out, "d2%s/d%sd%s = ", y, xi, xj);
}

/* A block of NAME_hessian's result with several wrt inputs: its label when
 * its corner is that of block (i, j) (rows and columns of the Hessian are the
 * wrt inputs' entries in order). */
static void hess_block_label(const Plan *p, FILE *out, Placed b)
{
    if (p->hess_nwrt < 2)
        return;
    int i = -1, j = -1;
    Dim off = dim_lit(0);
    for (int k = 0; k < p->hess_nwrt; k++) {
        Shape s = p->m->inputs[p->m->wrt[k]].shape;
        i = dim_eq(off, b.r) ? k : i;
        j = dim_eq(off, b.c) ? k : j;
        off = dim_add(off, dim_mul(s.rows, s.cols));
    }
    if (i >= 0 && j >= 0)
        hess_label(p, out, i, j);
}

void plan_schedule(Plan *p, FILE *out)
{
    const Func *f = p->f;
    int nn = p->m->ir->nnodes;
    Sim s = {.p = p, .out = out, .indent = 1, .nslots = p->m->ir->slots.len};
    s.valid = arena_alloc(p->arena, (size_t)nn + 1);
    s.level = arena_alloc(p->arena, sizeof(int) * (size_t)(nn + 1));
    s.mark = arena_alloc(p->arena, sizeof(int) * (size_t)(nn + 1));
    s.role = arena_alloc(p->arena, (size_t)nn + 1);
    s.rmark = arena_alloc(p->arena, sizeof(int) * (size_t)(nn + 1));
    s.written = slotset_new(p->arena);
    sim_block(&s, f->body);
    int vpoint = p->points.len;
    s.out = NULL;   /* the results' kernels are dumped after merge_results */
    need(&s, f->value);
    for (int i = 0; f->aux && i < p->m->naux; i++)
        need(&s, f->aux[i]);
    for (int k = 0; f->grads && k < p->m->nwrt; k++) {
        int i = p->gorder[k];
        Placed pl[CAT_MAX];
        Node *blocks[CAT_MAX];
        int np = placed_blocks(f->grads[i], pl);
        for (int j = 0; j < np; j++)
            blocks[j] = pl[j].block;
        if (np)
            point(&s, blocks, np, f->grads[i]);
        else
            need(&s, f->grads[i]);
    }
    s.out = out;
    merge_results(p, vpoint);
    for (int pt = vpoint; out && pt < p->points.len; pt++)
        for (int k = 0; k < p->points.data[pt].nk; k++)
            if (p->points.data[pt].ks[k].kind != K_LEAF && p->points.data[pt].ks[k].kind != K_ALIAS)
                plan_dump_kernel(&s, &p->points.data[pt].ks[k]);
    p->onepass = one_pass(p, vpoint);
    p->onepass_point = vpoint;   /* the same sum may also be computed in an earlier point */
    if (out) {
        if (p->onepass)
            fprintf(out, "  one pass: %%%d with the gradients of its shape\n", p->onepass->id);
        fputs("  return ", out);
        ref(&s, f->value);
        for (int i = 0; f->aux && i < p->m->naux; i++) {
            fprintf(out, ", %s = ", p->m->aux_names[i]);
            ref(&s, f->aux[i]);
        }
        for (int i = 0; f->grads && i < p->m->nwrt; i++) {
            if (p->hess_nwrt)
                hess_label(p, out, -1, -1);
            else
                fprintf(out, ", d/d%s = ", p->m->inputs[p->m->wrt[i]].name);
            Placed pl[CAT_MAX];
            int np = placed_blocks(f->grads[i], pl);
            for (int j = 0; j < np; j++) {   /* blocks written in place: BLOCK at (r, c) */
                fputs(j ? "; " : "[", out);
                hess_block_label(p, out, pl[j]);
                ref(&s, pl[j].block);
                fprintf(out, " at (%s, %s)", dim_str(p->arena, pl[j].r, p->m->dims),
                        dim_str(p->arena, pl[j].c, p->m->dims));
            }
            if (np)
                fputs("]", out);
            else
                ref(&s, f->grads[i]);
        }
        fputs("\n", out);
    }
}
