/* ir.c — shapes, the hash-consed expression DAG and structured programs.
 *
 * Every node is unique: ir_node returns the existing node for an equal
 * (op, args, shape, num, index), so common subexpressions are one node and
 * pointer equality is structural equality.  Nodes carry the set of slots
 * they read, which executors use to know when a cached value goes stale. */
#include "gradc.h"

#include <gradc/runtime.h>   /* gradc_lgamma, gradc_digamma, gradc_polygamma */
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- shapes ---- */

Dim dim_lit(int64_t n) { return (Dim){.sym = -1, .n = n}; }
Dim dim_sym(int sym) { return (Dim){.sym = sym, .n = 0}; }
bool dim_eq(Dim a, Dim b) { return a.sym == b.sym && (a.sym >= 0 || a.n == b.n); }
bool shape_eq(Shape a, Shape b) { return dim_eq(a.rows, b.rows) && dim_eq(a.cols, b.cols); }
Shape shape_make(Dim rows, Dim cols) { return (Shape){rows, cols}; }
Shape shape_scalar(void) { return shape_make(dim_lit(1), dim_lit(1)); }

bool shape_is_scalar(Shape s)
{
    return dim_eq(s.rows, dim_lit(1)) && dim_eq(s.cols, dim_lit(1));
}

const char *shape_str(Arena *a, Shape s, const char *const *dimnames)
{
    if (shape_is_scalar(s))
        return "scalar";
    const char *r = dim_str(a, s.rows, dimnames), *c = dim_str(a, s.cols, dimnames);
    if (dim_eq(s.cols, dim_lit(1)))
        return arena_printf(a, "[%s]", r);
    return arena_printf(a, "[%s, %s]", r, c);
}

int64_t shape_rows(Shape s, const int64_t *dims) { return dim_eval(s.rows, dims); }
int64_t shape_cols(Shape s, const int64_t *dims) { return dim_eval(s.cols, dims); }

/* ---- the scalar functions of elementwise ops (shared by eval and folding) ---- */

static double f_neg(double x) { return -x; }
static double f_sigmoid(double x)
{
    /* two forms so that exp never overflows */
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}
static double f_relu(double x) { return x > 0 ? x : 0.0; }
static double f_softplus(double x)
{
    /* log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|)) */
    return (x > 0 ? x : 0.0) + log1p(exp(-fabs(x)));
}
/* log(sigmoid(x)) without overflow: min(x, 0) - log1p(exp(-|x|)) */
static double f_logsigmoid(double x) { return (x < 0 ? x : 0.0) - log1p(exp(-fabs(x))); }
static double f_sign(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0; }
static double f_not(double x) { return x == 0 ? 1.0 : 0.0; }
static double f_id(double x) { return x; }
static double f_add(double a, double b) { return a + b; }
static double f_sub(double a, double b) { return a - b; }
static double f_mul(double a, double b) { return a * b; }
static double f_div(double a, double b) { return a / b; }
static double f_divsafe(double a, double b) { return b == 0 ? 0.0 : a / b; }
static double f_max(double a, double b) { return a > b ? a : b; }
static double f_min(double a, double b) { return a < b ? a : b; }
/* clamp's halves: NaN in x stays NaN (as PyTorch's clamp) */
static double f_clamplo(double x, double lo) { return x < lo ? lo : x; }
static double f_clamphi(double x, double hi) { return x > hi ? hi : x; }
static double f_lt(double a, double b) { return a < b; }
static double f_le(double a, double b) { return a <= b; }
static double f_gt(double a, double b) { return a > b; }
static double f_ge(double a, double b) { return a >= b; }
static double f_eq(double a, double b) { return a == b; }
static double f_ne(double a, double b) { return a != b; }
static double f_and(double a, double b) { return a != 0 && b != 0; }
static double f_or(double a, double b) { return a != 0 || b != 0; }
/* where's half: a where c holds, else an exact 0 (never 0 * a: a may be NaN) */
static double f_pick(double c, double a) { return c != 0 ? a : 0.0; }

/* x.^e with a literal e as the compiled code computes it (codegen.c e_pow):
 * an integer |e| <= 16 is multiplications by squaring, in the same order, so
 * the interpreter and the JIT round alike (x.^3 is x*x*x, not pow(x, 3),
 * which can differ by an ulp; cos of 1e16 then differs entirely). */
bool pow_by_squaring(double e) { return e == (int)e && e >= -16 && e <= 16; }

bool node_calls(const Node *n)
{
    if (n->op == OP_POW)
        return n->args[1]->op != OP_CONST || !pow_by_squaring(n->args[1]->num);
    return op_info[n->op].calls;
}

double pow_literal(double x, double e)
{
    if (!pow_by_squaring(e))
        return pow(x, e);
    int k = (int)(e < 0 ? -e : e);
    double r = 1, sq = x;
    bool any = false;
    for (; k; k >>= 1) {
        if (k & 1) {
            r = any ? r * sq : sq;
            any = true;
        }
        if (k > 1)
            sq = sq * sq;
    }
    return e < 0 ? 1 / r : r;
}

/* The fn column as OpInfo's fn1 (U ops) or fn2 (B ops). */
#define FN1_L(fn) NULL
#define FN1_U(fn) fn
#define FN1_B(fn) NULL
#define FN1_M(fn) NULL
#define FN2_L(fn) NULL
#define FN2_U(fn) NULL
#define FN2_B(fn) fn
#define FN2_M(fn) NULL
#define CALLS_call true     /* the code column: anything else does not compile */
#define CALLS_inline false

const OpInfo op_info[OP_COUNT] = {
#define X(name, text, arity, kind, fn, libm, code, builtin, prec, latex, adj) \
    [OP_##name] = {#name, text, arity, OK_##kind, FN1_##kind(fn), FN2_##kind(fn), libm, CALLS_##code},
    GRADC_OPS(X)
#undef X
};

/* ---- the DAG ---- */

Ir *ir_new(Arena *a)
{
    Ir *ir = arena_alloc(a, sizeof *ir);
    ir->arena = a;
    ir->nbuckets = 1024;
    ir->buckets = arena_alloc(a, sizeof(Node *) * (size_t)ir->nbuckets);
    return ir;
}

int ir_slot(Ir *ir, const char *name, Shape shape)
{
    vec_push(ir->arena, &ir->slots, ((Slot){.name = name, .shape = shape}));
    return ir->slots.len - 1;
}

static uint32_t mix(uint32_t h, uint64_t v)
{
    h ^= (uint32_t)v + 0x9e3779b9u + (h << 6) + (h >> 2);
    h ^= (uint32_t)(v >> 32) + 0x9e3779b9u + (h << 6) + (h >> 2);
    return h;
}

static uint64_t bits_of(double d)
{
    uint64_t u;
    if (d == 0)
        d = 0; /* +0 and -0 hash alike; equality below keeps them apart */
    memcpy(&u, &d, sizeof u);
    return u;
}

static uint32_t hash_dim(uint32_t h, Dim d) { return mix(mix(h, (uint64_t)(int64_t)d.sym), (uint64_t)d.n); }

static uint32_t node_hash(Op op, Shape s, Node *a, Node *b, Node *c, double num, int index)
{
    uint32_t h = mix(0, op);
    h = hash_dim(hash_dim(h, s.rows), s.cols);
    h = mix(h, a ? (uint64_t)a->id + 1 : 0);
    h = mix(h, b ? (uint64_t)b->id + 1 : 0);
    if (c)
        h = mix(h, (uint64_t)c->id + 1);
    h = mix(h, bits_of(num));
    return mix(h, (uint64_t)(int64_t)index);
}

static bool same_num(double x, double y)
{
    /* bitwise, so -0 and 0 and distinct NaNs stay distinct nodes */
    return memcmp(&x, &y, sizeof x) == 0;
}

static void grow_table(Ir *ir)
{
    int n = ir->nbuckets * 2;
    Node **b = arena_alloc(ir->arena, sizeof(Node *) * (size_t)n);
    for (int i = 0; i < ir->nbuckets; i++) {
        for (Node *x = ir->buckets[i], *next; x; x = next) {
            next = x->chain;
            x->chain = b[x->hash & (uint32_t)(n - 1)];
            b[x->hash & (uint32_t)(n - 1)] = x;
        }
    }
    ir->buckets = b;
    ir->nbuckets = n;
}

/* The union of the children's slot sets (both sorted). */
static void set_slots(Ir *ir, Node *n)
{
    if (n->op == OP_SLOT) {
        int *s = arena_alloc(ir->arena, sizeof *s);
        s[0] = n->index;
        n->slots = s;
        n->nslots = 1;
        return;
    }
    const Node *a = n->nargs > 0 ? n->args[0] : NULL, *b = n->nargs > 1 ? n->args[1] : NULL;
    if (n->nargs > 2 && n->args[2]->nslots) {
        /* a third argument: merge it with b's set into a temporary node */
        Node t = {.op = OP_ADD, .nargs = 2, .args = {(Node *)b, n->args[2]}};
        set_slots(ir, &t);
        Node u = {.op = OP_ADD, .nargs = 2, .args = {(Node *)a, &t}};
        set_slots(ir, &u);
        n->slots = u.slots;
        n->nslots = u.nslots;
        return;
    }
    int na = a ? a->nslots : 0, nb = b ? b->nslots : 0;
    if (nb == 0 || (na && a->slots == b->slots)) {
        n->slots = a ? a->slots : NULL;
        n->nslots = na;
        return;
    }
    if (na == 0) {
        n->slots = b->slots;
        n->nslots = nb;
        return;
    }
    int *s = arena_alloc(ir->arena, sizeof *s * (size_t)(na + nb)), k = 0, i = 0, j = 0;
    while (i < na || j < nb) {
        int x = j >= nb || (i < na && a->slots[i] < b->slots[j]) ? a->slots[i++] : b->slots[j++];
        if (k == 0 || s[k - 1] != x)
            s[k++] = x;
        while (i < na && a->slots[i] == x)
            i++;
        while (j < nb && b->slots[j] == x)
            j++;
    }
    n->slots = s;
    n->nslots = k;
}

Node *ir_node(Ir *ir, Op op, Shape shape, Node *a, Node *b, double num, int index)
{
    return ir_node3(ir, op, shape, a, b, NULL, num, index);
}

Node *ir_node3(Ir *ir, Op op, Shape shape, Node *a, Node *b, Node *c, double num, int index)
{
    uint32_t h = node_hash(op, shape, a, b, c, num, index);
    for (Node *x = ir->buckets[h & (uint32_t)(ir->nbuckets - 1)]; x; x = x->chain) {
        if (x->hash == h && x->op == op && x->args[0] == a && x->args[1] == b && x->args[2] == c &&
            shape_eq(x->shape, shape) && same_num(x->num, num) && x->index == index)
            return x;
    }
    if (ir->nnodes >= ir->nbuckets)
        grow_table(ir);
    Node *n = arena_alloc(ir->arena, sizeof *n);
    n->op = op;
    n->id = ir->nnodes++;
    n->nargs = op_info[op].arity;
    n->args[0] = a;
    n->args[1] = b;
    n->args[2] = c;
    n->shape = shape;
    n->num = num;
    n->index = index;
    n->hash = h;
    set_slots(ir, n);
    vec_push(ir->arena, &ir->nodes, n);
    uint32_t at = h & (uint32_t)(ir->nbuckets - 1);
    n->chain = ir->buckets[at];
    ir->buckets[at] = n;
    return n;
}

/* line * 2^24 + col: exact in a double for any line a file can have. */
double loc_pack(Loc l) { return l.line ? (double)l.line * 16777216.0 + l.col : 0; }
Loc node_loc(const Node *n)
{
    double v = n->num;
    int line = (int)(v / 16777216.0);
    return (Loc){line, (int)(v - (double)line * 16777216.0)};
}

bool node_reads_slot(const Node *n, int slot)
{
    int lo = 0, hi = n->nslots - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (n->slots[mid] == slot)
            return true;
        if (n->slots[mid] < slot)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return false;
}

/* ---- structured programs ---- */

Block *block_new(Arena *a) { return arena_alloc(a, sizeof(Block)); }

Stmt *stmt_new(Arena *a, StmtKind kind, int n)
{
    Stmt *s = arena_alloc(a, sizeof *s);
    s->kind = kind;
    s->n = n;
    s->slots = arena_alloc(a, sizeof(int) * (size_t)(n ? n : 1));
    s->vals = arena_alloc(a, sizeof(Node *) * (size_t)(n ? n : 1));
    s->then_vals = arena_alloc(a, sizeof(Node *) * (size_t)(n ? n : 1));
    s->else_vals = arena_alloc(a, sizeof(Node *) * (size_t)(n ? n : 1));
    s->next = arena_alloc(a, sizeof(Node *) * (size_t)(n ? n : 1));
    s->index_slot = -1;
    s->count_slot = -1;
    s->id = -1;
    return s;
}

void block_push(Arena *a, Block *b, Stmt *s)
{
    if (b->n == b->cap) {
        int cap = b->cap ? b->cap * 2 : 8;
        Stmt **p = arena_alloc(a, sizeof *p * (size_t)cap);
        if (b->n)
            memcpy(p, b->stmts, sizeof *p * (size_t)b->n);
        b->stmts = p;
        b->cap = cap;
    }
    b->stmts[b->n++] = s;
}

/* ---- int maps and slot sets ---- */

static _Noreturn void key_bug(int key)
{
    fprintf(stderr, "gradc: internal error: key %d in an int map\n", key);
    abort();
}

IntMap *intmap_new(Arena *a)
{
    IntMap *m = arena_alloc(a, sizeof *m);
    m->arena = a;
    return m;
}

static uint32_t key_slot(int key, int cap) { return ((uint32_t)key * 2654435761u) & (uint32_t)(cap - 1); }

static void intmap_grow(IntMap *m)
{
    int cap = m->cap ? 2 * m->cap : 16;
    int *keys = arena_alloc(m->arena, sizeof(int) * (size_t)cap);
    void **vals = arena_alloc(m->arena, sizeof(void *) * (size_t)cap);
    for (int i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        uint32_t j = key_slot(m->keys[i] - 1, cap);
        while (keys[j])
            j = (j + 1) & (uint32_t)(cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
}

void **intmap_find(const IntMap *m, int key)
{
    if (key < 0)
        key_bug(key);
    for (uint32_t j = m->cap ? key_slot(key, m->cap) : 0; m->cap && m->keys[j];
         j = (j + 1) & (uint32_t)(m->cap - 1))
        if (m->keys[j] == key + 1)
            return &m->vals[j];
    return NULL;
}

void **intmap_put(IntMap *m, int key)
{
    void **v = intmap_find(m, key);
    if (v)
        return v;
    if (2 * (m->len + 1) > m->cap)
        intmap_grow(m);
    uint32_t j = key_slot(key, m->cap);
    while (m->keys[j])
        j = (j + 1) & (uint32_t)(m->cap - 1);
    m->keys[j] = key + 1;
    m->len++;
    return &m->vals[j];
}

SlotSet *slotset_new(Arena *a)
{
    SlotSet *s = arena_alloc(a, sizeof *s);
    s->map.arena = a;
    return s;
}

void slotset_add(SlotSet *s, int slot) { intmap_put(&s->map, slot); }
bool slotset_has(const SlotSet *s, int slot) { return intmap_find(&s->map, slot) != NULL; }

void slotset_clear(SlotSet *s)
{
    if (s->map.cap)
        memset(s->map.keys, 0, sizeof(int) * (size_t)s->map.cap);
    s->map.len = 0;
}

/* Adds every slot a statement may write, nested statements included. */
void stmt_writes(const Stmt *s, SlotSet *w)
{
    if (s->kind != S_PUSH)
        for (int k = 0; k < s->n; k++)
            slotset_add(w, s->slots[k]);
    if (s->index_slot >= 0)
        slotset_add(w, s->index_slot);
    if (s->count_slot >= 0)
        slotset_add(w, s->count_slot);
    block_writes(s->then_block, w);
    block_writes(s->else_block, w);
    block_writes(s->body, w);
}

void block_writes(const Block *b, SlotSet *w)
{
    for (int i = 0; b && i < b->n; i++)
        stmt_writes(b->stmts[i], w);
}
