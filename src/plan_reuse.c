/* plan_reuse.c — buffers used twice (plan.h): a slot that takes over the
 * buffer of a slot no statement reads or writes after (D2L's `c = b` is then
 * no copy, `c = 100 * b` scales in place, as hand C does). */
#include "plan.h"

#include <string.h>

/* Top-level statement i writes (with nested statements) the slots it marks. */
static void mark_writes(int *firstw, int *lastw, const Block *b, int i)
{
    for (int k = 0; b && k < b->n; k++) {
        const Stmt *st = b->stmts[k];
        int extra[2] = {st->index_slot, st->count_slot};
        for (int j = 0; j < st->n + 2; j++) {
            int s = j < st->n ? (st->kind == S_PUSH ? -1 : st->slots[j]) : extra[j - st->n];
            if (s < 0)
                continue;
            if (firstw[s] < 0)
                firstw[s] = i;
            lastw[s] = i;
        }
        mark_writes(firstw, lastw, st->then_block, i);
        mark_writes(firstw, lastw, st->else_block, i);
        mark_writes(firstw, lastw, st->body, i);
    }
}

static void mark_reads(int *lastr, Node **roots, int n, int i)
{
    for (int r = 0; r < n; r++)
        for (int j = 0; roots[r] && j < roots[r]->nslots; j++)
            lastr[roots[r]->slots[j]] = i;
}

/* Does x (a value stored into a slot entry by entry) read slot b's memory
 * only at the entry it stores?  Then the store may write into b's memory.
 * Walks the fused tree (bounded by the fusion depth); under a broadcast or
 * a pad (off: other entries are read) b's memory may not be read at all. */
static bool entrywise(const Plan *p, Node *x, int b)
{
    NodeVec todo = {0};
    VEC(bool) off = {0};
    vec_push(p->arena, &todo, x);
    vec_push(p->arena, &off, false);
    while (todo.len) {
        Node *y = todo.data[--todo.len];
        bool o = off.data[--off.len];
        if (!node_reads_slot(y, b))
            continue;
        if (y->op == OP_SLOT || is_alias(y) || is_view(y)) {
            if (o || y->op != OP_SLOT)
                return false;   /* b's memory at other entries */
            continue;
        }
        if (!is_fused(p, y))
            continue;           /* computed into its own buffer before the store */
        o |= kind_of(y) != OK_U && kind_of(y) != OK_B;
        for (int a = 0; a < y->nargs; a++) {
            vec_push(p->arena, &todo, y->args[a]);
            vec_push(p->arena, &off, o);
        }
    }
    return true;
}

/* The slot read directly (or through fused elementwise ops) by x, first
 * found, or -1. */
static int slot_leaf(const Plan *p, Node *x)
{
    NodeVec todo = {0};
    vec_push(p->arena, &todo, x);
    while (todo.len) {
        Node *y = todo.data[--todo.len];
        if (y->op == OP_SLOT && !is_scalar(y))
            return y->index;
        if (is_fused(p, y) && (kind_of(y) == OK_U || kind_of(y) == OK_B))
            for (int a = 0; a < y->nargs; a++)
                vec_push(p->arena, &todo, y->args[a]);
    }
    return -1;
}

static bool has_buffer(const Plan *p, int s)
{
    return s >= 0 && p->slotused[s] && !shape_is_scalar(p->m->ir->slots.data[s].shape) && !p->uniform[s];
}

static bool block_writes_slot(const Block *b, int s)
{
    for (int i = 0; b && i < b->n; i++) {
        const Stmt *st = b->stmts[i];
        for (int j = 0; st->kind != S_PUSH && j < st->n; j++)
            if (st->slots[j] == s)
                return true;
        if (st->index_slot == s || st->count_slot == s || block_writes_slot(st->then_block, s) ||
            block_writes_slot(st->else_block, s) || block_writes_slot(st->body, s))
            return true;
    }
    return false;
}

/* Do the roots read slot b's memory?  A sum or norm the stores keep
 * (is_kept) is a value of its own, not a read of b (D2L: `if sum(b) > 0`
 * after c = b).  Walks what reads b once per call (seen: marks, epoch). */
static bool reads_memory(const Plan *p, Node **roots, int n, int b, int *seen, int epoch)
{
    NodeVec todo = {0};
    for (int r = 0; r < n; r++)
        if (roots[r])
            vec_push(p->arena, &todo, roots[r]);
    while (todo.len) {
        Node *y = todo.data[--todo.len];
        if (seen[y->id] == epoch || !node_reads_slot(y, b) || is_kept(p, y))
            continue;
        seen[y->id] = epoch;
        if (y->op == OP_SLOT)
            return true;
        for (int a = 0; a < y->nargs; a++)
            vec_push(p->arena, &todo, y->args[a]);
    }
    return false;
}

/* Is b's memory read after top-level statement i (its last reading root
 * being at lastr)? */
static bool read_after(const Plan *p, int b, int i, int lastr, int *seen)
{
    const Block *body = p->f->body;
    const Func *f = p->f;
    int epoch = ++seen[p->m->ir->nnodes];   /* the last entry counts the walks */
    for (int k = i + 1; k <= lastr && k < body->n; k++) {
        NodeVec roots = {0};
        stmt_roots(body->stmts[k], &roots, p->arena);
        if (reads_memory(p, roots.data, roots.len, b, seen, epoch))
            return true;
    }
    if (lastr < body->n)
        return false;
    return reads_memory(p, (Node **)&f->value, 1, b, seen, epoch) ||
           (f->aux && reads_memory(p, f->aux, p->m->naux, b, seen, epoch)) ||
           (f->grads && reads_memory(p, f->grads, p->m->nwrt, b, seen, epoch));
}

/* May slot j of top-level statement st (index i) take over slot b's buffer? */
static bool can_take(const Plan *p, const Stmt *st, int j, int b, int i, const int *lastw, const int *lastr,
                     const bool *taken, int *seen)
{
    int c = st->slots[j];
    if (b == c || !has_buffer(p, b) || taken[b] || lastw[b] >= i || (lastr[b] > i && read_after(p, b, i, lastr[b], seen)) ||
        !shape_eq(p->m->ir->slots.data[b].shape, p->m->ir->slots.data[c].shape))
        return false;
    if (block_writes_slot(st->then_block, c) || block_writes_slot(st->else_block, c))
        return false;   /* the branch writes c before its values read b */
    Node **lists[3] = {st->vals, st->then_vals, st->else_vals};
    for (int l = 0; l < 3; l++)
        for (int k = 0; lists[l] && k < st->n; k++)
            if (lists[l][k] && (k == j ? !entrywise(p, lists[l][k], b) : node_reads_slot(lists[l][k], b)))
                return false;
    return true;
}

void find_shared(Plan *p, int ns)
{
    const Block *body = p->f->body;
    int nst = body ? body->n : 0;
    int *firstw = arena_alloc(p->arena, sizeof(int) * (size_t)(3 * ns + 1)), *lastw = firstw + ns, *lastr = lastw + ns;
    bool *taken = arena_alloc(p->arena, (size_t)ns + 1);
    int *seen = arena_alloc(p->arena, sizeof(int) * (size_t)(p->m->ir->nnodes + 1));
    p->slotshare = arena_alloc(p->arena, sizeof(int) * (size_t)(ns + 1));
    for (int s = 0; s < ns; s++)
        firstw[s] = lastw[s] = lastr[s] = p->slotshare[s] = -1;
    for (int i = 0; i < nst; i++) {
        NodeVec roots = {0};
        stmt_roots(body->stmts[i], &roots, p->arena);
        mark_reads(lastr, roots.data, roots.len, i);
        Block one = {.stmts = &body->stmts[i], .n = 1};
        mark_writes(firstw, lastw, &one, i);
    }
    const Func *f = p->f;
    mark_reads(lastr, (Node **)&f->value, 1, nst);
    if (f->aux)
        mark_reads(lastr, f->aux, p->m->naux, nst);
    if (f->grads)
        mark_reads(lastr, f->grads, p->m->nwrt, nst);
    for (int i = 0; i < nst; i++) {
        const Stmt *st = body->stmts[i];
        if (st->kind != S_SET && st->kind != S_IF)
            continue;
        for (int j = 0; j < st->n; j++) {
            int c = st->slots[j];
            Node *x = st->kind == S_SET ? st->vals[j] : st->then_vals[j];
            if (!x || (st->kind == S_IF && !st->else_vals[j]) || !has_buffer(p, c) || !p->unzeroed[c] ||
                firstw[c] != i)
                continue;
            int b = slot_leaf(p, x);
            if (b < 0 && st->kind == S_IF)
                b = slot_leaf(p, st->else_vals[j]);
            if (b >= 0 && can_take(p, st, j, b, i, lastw, lastr, taken, seen)) {
                p->slotshare[c] = b;
                taken[b] = true;
            }
        }
    }
}

/* A dense product whose only consumer is the one at hand, or NULL. */
static Gemm *sole_product(const Plan *p, const Node *m)
{
    Gemm *g = m->op == OP_MATMUL && !is_scalar(m) ? p->gemm[m->id] : NULL;
    return g && g->mode == G_DENSE && !g->diag && !g->add && g->out < 0 && p->uses[m->id] == 1 ? g : NULL;
}

static bool lit_small(Dim d)
{
    int64_t v;
    return dim_is_lit(d, &v) && v <= 8;
}

/* slot = op(a) * op(b) + slot, where no other value of the assignment reads
 * the slot: the product accumulates into the slot's buffer (beta = 1), no
 * copy of the slot and none back. */
static void into_slots(Plan *p, int n, const int *slots, Node **vals)
{
    for (int i = 0; vals && i < n; i++) {
        Node *x = vals[i];
        Gemm *g = x && x->op == OP_ADD ? p->gemm[x->id] : NULL;
        bool alone = g && g->add->op == OP_SLOT && g->add->index == slots[i] && p->uses[x->id] == 1 &&
                     !node_reads_slot(g->a, slots[i]) && !node_reads_slot(g->b, slots[i]);
        for (int j = 0; alone && j < n; j++)
            alone = j == i || !vals[j] || !node_reads_slot(vals[j], slots[i]);
        if (alone)
            g->slot = slots[i];
    }
}

static void into_slots_block(Plan *p, const Block *b)
{
    for (int i = 0; b && i < b->n; i++) {
        const Stmt *st = b->stmts[i];
        if (st->kind == S_PUSH || st->kind == S_POP)
            continue;
        into_slots(p, st->n, st->slots, st->vals);
        into_slots(p, st->n, st->slots, st->then_vals);
        into_slots(p, st->n, st->slots, st->else_vals);
        into_slots(p, st->n, st->slots, st->next);
        into_slots_block(p, st->then_block);
        into_slots_block(p, st->else_block);
        into_slots_block(p, st->body);
    }
}

void fold_products(Plan *p)
{
    int nn = p->m->ir->nnodes;
    /* a sum read only in part (its diagonal, a slice) stays fused there */
    bool *part = arena_alloc(p->arena, (size_t)nn + 1);
    for (int i = 0; i < nn; i++) {
        Node *n = p->nodes[i];
        if (n && (n->op == OP_DIAGV || n->op == OP_TRACE || n->op == OP_SLICE) && n->nargs)
            part[n->args[0]->id] = true;
    }
    for (int i = nn - 1; i >= 0; i--) {   /* and the elementwise terms fused into it */
        Node *n = p->nodes[i];
        for (int a = 0; n && part[i] && is_fused(p, n) && a < n->nargs; a++)
            part[n->args[a]->id] = true;
    }
    for (int i = 0; i < nn; i++) {
        Node *n = p->nodes[i];
        if (!n || n->op != OP_ADD || is_scalar(n) || p->gemm[i] || part[i])
            continue;
        for (int s = 0; s < 2; s++) {
            Node *m = n->args[s], *o = n->args[1 - s];
            Gemm *g = sole_product(p, m);
            if (!g || is_scalar(o))
                continue;
            Gemm *f = arena_alloc(p->arena, sizeof *f);
            *f = *g;
            f->add = o;                  /* n = op(a) * op(b) + o: o's entries, then beta = 1 */
            p->gemm[i] = f;
            p->nodes[m->id] = NULL;      /* computed as part of n */
            p->nofuse[i] = true;
            break;
        }
    }
    const Func *f = p->f;
    into_slots_block(p, f->body);
    for (int i = 0; f->grads && i < p->m->nwrt; i++) {
        Node *g = f->grads[i], *m = g;
        double alpha = 1;
        if (p->uses[g->id] != 1 || is_scalar(g))
            continue;
        if (g->op == OP_MUL && g->args[0]->op == OP_CONST)
            m = g->args[1], alpha = g->args[0]->num;
        else if (g->op == OP_MUL && g->args[1]->op == OP_CONST)
            m = g->args[0], alpha = g->args[1]->num;
        Gemm *gm = sole_product(p, m);
        if (!gm || (m != g && p->uses[m->id] != 1))
            continue;
        Dim dk = gm->ta ? gm->a->shape.rows : gm->a->shape.cols;
        if (lit_small(m->shape.rows) && lit_small(m->shape.cols) && lit_small(dk))
            continue;   /* inline loops, specialised: no call */
        gm->out = i, gm->alpha = alpha;
        /* Computed where it is stored, the product would run after every point (the
         * stores come last: a gradient may alias an input).  Unless its point is the
         * last, it runs at its point, into work, and reads what was just written
         * (plan.c: gradient_order); the copy is one pass over its result, against
         * dk for the product.  An outer product (dk small) stays where it is stored. */
        gm->early = p->gorder[p->m->nwrt - 1] != i && !lit_small(dk);
    }
}

/* The argument of elementwise n whose buffer n may write into, or -1: one
 * of n's shape, with a buffer of its own, read by n only. */
static int inplace_arg(const Plan *p, const Node *n)
{
    if ((kind_of(n) != OK_U && kind_of(n) != OK_B) || p->buf[n->id] < 0)
        return -1;
    for (int i = 0; i < n->nargs; i++) {
        const Node *a = n->args[i];
        if (!is_scalar(a) && shape_eq(a->shape, n->shape) && p->buf[a->id] >= 0 && p->uses[a->id] == 1 &&
            !is_fused(p, a))
            return a->id;
    }
    return -1;
}

/* Renumbers the buffers, dropping those no node or slot uses. */
static void compact(Plan *p)
{
    int nb = p->bufs.len, nn = p->m->ir->nnodes, ns = p->m->ir->slots.len, k = 0;
    int *map = arena_alloc(p->arena, sizeof(int) * (size_t)(nb + 1));
    bool *used = arena_alloc(p->arena, (size_t)nb + 1);
    int *lists[4] = {p->buf, p->scratch, p->slotbuf, p->shadow}, lens[4] = {nn, nn, ns, ns};
    for (int l = 0; l < 4; l++)
        for (int i = 0; i < lens[l]; i++)
            if (lists[l][i] >= 0)
                used[lists[l][i]] = true;
    if (p->onesbuf >= 0)
        used[p->onesbuf] = true;
    for (int b = 0; b < nb; b++)
        if (used[b]) {
            map[b] = k;
            p->bufs.data[k++] = p->bufs.data[b];
        }
    p->bufs.len = k;
    for (int l = 0; l < 4; l++)
        for (int i = 0; i < lens[l]; i++)
            if (lists[l][i] >= 0)
                lists[l][i] = map[lists[l][i]];
    if (p->onesbuf >= 0)
        p->onesbuf = map[p->onesbuf];
}

/* An elementwise kernel writes into its argument's buffer when that
 * argument is computed in the same point before it every time it is (so
 * its entries are never wanted again: MLP's tanh(X*W1 + b1') and
 * T .* (1 - H.^2), as the hand loops do in place). */
void find_inplace(Plan *p)
{
    int nn = p->m->ir->nnodes;
    int *made = arena_alloc(p->arena, sizeof(int) * (size_t)(nn + 1));
    int *at = arena_alloc(p->arena, sizeof(int) * (size_t)(nn + 1));
    bool *bad = arena_alloc(p->arena, (size_t)nn + 1);
    p->inplace = arena_alloc(p->arena, sizeof(int) * (size_t)(nn + 1));
    for (int i = 0; i < nn; i++)
        at[i] = p->inplace[i] = -1;
    for (int pt = 0; pt < p->points.len; pt++) {
        const Point *P = &p->points.data[pt];
        for (int k = 0; k < P->nk; k++) {
            const Kernel *K = &P->ks[k];
            for (int j = 0; j < (K->kind == K_MATVEC ? K->nmembers : 1); j++) {
                const Node *n = K->kind == K_MATVEC ? K->members[j] : K->node;
                int a = K->kind == K_MAP ? inplace_arg(p, n) : -1;
                bad[n->id] |= a < 0 || at[a] != pt;
                made[n->id]++;
                at[n->id] = pt;
            }
        }
    }
    bool any = false;
    for (int i = 0; i < nn; i++) {
        int a = made[i] && !bad[i] ? inplace_arg(p, p->nodes[i]) : -1;
        if (a < 0 || made[a] != made[i])
            continue;
        p->inplace[i] = a;
        p->buf[i] = p->buf[a];   /* a's own, or the one it took over (smaller ids first) */
        any = true;
    }
    if (any || p->forced)
        compact(p);
}

/* Does fused n read a broadcast, or (reads, NULL-terminated) one of those
 * nodes?  Bounded by the fusion depth. */
static bool tree_reads(const Plan *p, const Node *n, Node *const *reads, bool top)
{
    if (!top && !is_fused(p, n)) {
        for (int i = 0; reads[i]; i++)
            if (reads[i] == n)
                return true;
        return false;
    }
    if (n->op == OP_BCAST || n->op == OP_PAD)
        return true;
    for (int i = 0; i < n->nargs; i++)
        if (tree_reads(p, n->args[i], reads, false))
            return true;
    return false;
}

/* May the sum kernel be merged with another (its argument has no broadcast)? */
static bool mergeable_sum(const Plan *p, const Kernel *k)
{
    Node *sum = k->node, *none = NULL;
    return k->kind == K_REDUCE && sum->op == OP_SUM && !is_scalar(sum->args[0]) &&
           !tree_reads(p, sum->args[0], &none, is_fused(p, sum->args[0]));
}

/* May map kernel k run where the sum is, no kernel of between (NULL-
 * terminated: those from the sum's on, up to k) computed yet? */
static bool mergeable_map(const Plan *p, const Kernel *k, const Node *sum, Node *const *between)
{
    Node *map = k->node;
    return k->kind == K_MAP && !k->nmembers && (kind_of(map) == OK_U || kind_of(map) == OK_B) &&
           shape_eq(map->shape, sum->args[0]->shape) && !tree_reads(p, map, between, true);
}

/* What kernel k computes joins between: its node and every member (a pass's
 * products, a row pass's values, a map's merged sum: a map that reads a sum
 * merged into a later map's loop must not move before it). */
static int add_between(Node **between, int nb, const Kernel *k)
{
    between[nb++] = k->node;
    for (int e = 0; e < k->nmembers; e++)
        between[nb++] = k->members[e];
    between[nb] = NULL;
    return nb;
}

static Node **between_room(const Plan *p, const Point *pts, int np)
{
    int cap = 2;
    for (int q = 0; q < np; q++)
        for (int j = 0; j < pts[q].nk; j++)
            cap += 1 + pts[q].ks[j].nmembers;
    return arena_alloc(p->arena, sizeof(Node *) * (size_t)cap);
}

/* ks[i] (a sum) becomes the map kernel *k with the sum as its member. */
static void merge(const Plan *p, Kernel *ks, int i, const Kernel *k)
{
    Node **m = arena_alloc(p->arena, sizeof(Node *));
    m[0] = ks[i].node;
    ks[i] = (Kernel){K_MAP, k->node, m, 1};
}

int merge_sums(const Plan *p, Kernel *ks, int nk)
{
    for (int i = 0; i < nk; i++) {
        if (!mergeable_sum(p, &ks[i]))
            continue;
        Point pt = {NULL, ks + i, nk - i};
        Node **between = between_room(p, &pt, 1);
        int nb = 0;
        for (int j = i + 1; j < nk; j++) {
            nb = add_between(between, nb, &ks[j - 1]);
            if (mergeable_map(p, &ks[j], ks[i].node, between)) {
                merge(p, ks, i, &ks[j]);
                memmove(&ks[j], &ks[j + 1], sizeof *ks * (size_t)(nk - j - 1));
                nk--;
                break;
            }
        }
    }
    return nk;
}

/* Does the row pass's sum, of n's fused expression, read only what the
 * pass has made by each entry (its sources and chain values, not its
 * sinks, which are complete only after it) and values made before it, and
 * call no function (node_calls)?  A call inside a row pass spills its
 * vector registers: the logistic loss's sum(softplus(z)) there took
 * 10000x100 from 1.05 to 1.13x hand C. */
static bool row_sum_reads(const Plan *p, const Kernel *r, const Node *n, bool top)
{
    if (!top && !is_fused(p, n)) {
        for (int i = 0; i < r->nmembers; i++)
            if (r->members[i] == n)
                return !p->mv[n->id] || !p->mv[n->id]->terms[0].trans;
        return true;
    }
    if (node_calls(n))
        return false;
    for (int i = 0; i < n->nargs; i++)   /* bounded by the fusion depth */
        if (!row_sum_reads(p, r, n->args[i], false))
            return false;
    return true;
}

/* A sum right after a row pass, over entries of its chain (least squares'
 * and ridge's sum(r .^ 2)), is added up in the pass as the chain's entries
 * are made (cgpass.c: rows_maps), left to right: no loop of its own
 * reading them back.  Not one whose entries call a function
 * (node_calls), nor one reading a broadcast; the value+gradient fusion
 * (one_pass, after this) then finds no sum to take. */
int merge_row_sums(const Plan *p, Kernel *ks, int nk)
{
    for (int i = 1; i < nk; i++) {
        int j = i - 1;
        while (j > 0 && ks[j].kind == K_LEAF)   /* a leaf's kernel only binds it */
            j--;
        Kernel *r = &ks[j];
        Node *sum = ks[i].node, *M = NULL;
        if (r->kind != K_ROWS || !mergeable_sum(p, &ks[i]))
            continue;
        for (int e = 0; e < r->nmembers && !M; e++)
            if (p->mv[r->members[e]->id])
                M = p->mv[r->members[e]->id]->terms[0].m;
        const Node *a = sum->args[0];
        if (!plan_vec_of_len(a, M->shape.rows) || !row_sum_reads(p, r, a, is_fused(p, a)))
            continue;
        Node **m = arena_alloc(p->arena, sizeof(Node *) * (size_t)(r->nmembers + 1));
        memcpy(m, r->members, sizeof(Node *) * (size_t)r->nmembers);
        m[r->nmembers] = sum;
        Kernel rows = *r;
        rows.members = m;
        rows.nmembers++;
        /* the leaves between go first: the pass reads them now */
        memmove(&ks[j], &ks[j + 1], sizeof *ks * (size_t)(i - j - 1));
        ks[i - 1] = rows;
        memmove(&ks[i], &ks[i + 1], sizeof *ks * (size_t)(nk - i - 1));
        nk--;
    }
    return nk;
}

/* Does a point before pv compute x (a branch's or a loop's, whose value
 * is no longer valid at pv)? */
static bool computed_before(const Plan *p, const Point *pv, const Node *x)
{
    for (const Point *pt = p->points.data; pt < pv; pt++)
        for (int k = 0; k < pt->nk; k++) {
            if (pt->ks[k].node == x)
                return true;
            for (int j = 0; j < pt->ks[k].nmembers; j++)
                if (pt->ks[k].members[j] == x)
                    return true;
        }
    return false;
}

/* The merged kernel pv->ks[i]'s map and sum both read a stored elementwise
 * value no one else reads (MLP's P - Y): it is computed in their loop
 * instead (fused, no buffer, its kernel dropped).  Not when an earlier
 * point computes it too (in a branch, stored for a reader there): fused
 * everywhere, it would have no buffer there.  Returns 1 if so. */
static int unstore(Plan *p, Point *pv, int i)
{
    const Kernel *k = &pv->ks[i];
    for (int e = 0; e < i; e++) {
        Node *x = pv->ks[e].node, *one[2] = {x, NULL};
        if (pv->ks[e].kind != K_MAP || pv->ks[e].nmembers || (kind_of(x) != OK_U && kind_of(x) != OK_B) ||
            p->uses[x->id] != 2 || computed_before(p, pv, x) || !tree_reads(p, k->node, one, true) ||
            !tree_reads(p, k->members[0]->args[0], one, is_fused(p, k->members[0]->args[0])))
            continue;
        if (!p->forced)
            p->forced = arena_alloc(p->arena, (size_t)p->m->ir->nnodes + 1);
        p->forced[x->id] = true;
        p->buf[x->id] = -1;
        memmove(&pv->ks[e], &pv->ks[e + 1], sizeof *pv->ks * (size_t)(pv->nk - e - 1));
        pv->nk--;
        return 1;
    }
    return 0;
}

void merge_results(Plan *p, int vpoint)
{
    Point *pts = p->points.data + vpoint, *pv = pts;
    int np = p->points.len - vpoint;
    for (int i = 0; i < pv->nk; i++) {
        if (!mergeable_sum(p, &pv->ks[i]))
            continue;
        Node **between = between_room(p, pts, np);
        int nb = 0;
        for (int j = i; j < pv->nk; j++)
            nb = add_between(between, nb, &pv->ks[j]);
        bool done = false;
        for (int q = 1; q < np && !done; q++) {
            Point *pq = &pts[q];
            for (int j = 0; j < pq->nk && !done; j++) {
                if (mergeable_map(p, &pq->ks[j], pv->ks[i].node, between)) {
                    merge(p, pv->ks, i, &pq->ks[j]);
                    memmove(&pq->ks[j], &pq->ks[j + 1], sizeof *pq->ks * (size_t)(pq->nk - j - 1));
                    pq->nk--;
                    i -= unstore(p, pv, i);
                    done = true;
                } else {
                    nb = add_between(between, nb, &pq->ks[j]);
                }
            }
        }
    }
}
