/* hess_straighten.c — e's dependence on an input through the program's
 * constructs, for grad()/hessian() and derive --hessian (split from
 * hessian.c): the results of straight-line ifs read as where(c, a, b), so
 * that e is a DAG diff_dag_grad and hess_jacobian can walk. */
#include "gradc.h"

typedef VEC(Node *) NodeVec;

/* slot → the statement that writes it */
static void note_slots(IntMap *writer, const Block *b)
{
    for (int j = 0; b && j < b->n; j++) {
        Stmt *s = b->stmts[j];
        for (int k = 0; k < s->n; k++)
            *intmap_put(writer, s->slots[k]) = s;
        if (s->index_slot >= 0)
            *intmap_put(writer, s->index_slot) = s;
        if (s->call)   /* a grad() sub-program re-runs the statements before it */
            continue;
        note_slots(writer, s->then_block);
        note_slots(writer, s->else_block);
        note_slots(writer, s->body);
    }
}

/* e with the results of straight-line ifs that depend on x written as
 * where(c, a, b) (the if's branches hold no statement, so its result is its
 * condition's choice of two values computed before it; a slot keeps its
 * value after its construct, so c, a and b read later are what the if
 * read).  The derivative then follows the path taken, with exact zeros on
 * the other, as where's does. */
typedef struct Straighten {
    Ir *ir;
    IntMap *writer;       /* slot → its statement */
    SlotSet *act;         /* slots that depend on x */
    IntMap *memo;         /* node id → its rewritten form */
    const char *xname, *why;
    bool open;            /* why: a slot of a construct still open */
} Straighten;

static bool reads_active(const Straighten *z, const Node *n)
{
    for (int i = 0; i < n->nslots; i++)
        if (slotset_has(z->act, n->slots[i]))
            return true;
    return false;
}

static Node *rewritten(const Straighten *z, Node *n)
{
    if (!reads_active(z, n))
        return n;
    void **p = intmap_find(z->memo, n->id);
    return p ? *p : NULL;
}

/* The nodes a rewrite of n needs: its operands, or an if's two values; NULL
 * statement and z->why set when n is a slot no where() can stand for. */
static int needs(Straighten *z, Node *n, Node **kid, const Stmt **st, int *k)
{
    if (n->op != OP_SLOT) {
        for (int i = 0; i < n->nargs; i++)
            kid[i] = n->args[i];
        return n->nargs;
    }
    const char *name = z->ir->slots.data[n->index].name;
    void **w = intmap_find(z->writer, n->index);
    const Stmt *s = w ? *w : NULL;
    if (!s) {
        z->why = arena_printf(z->ir->arena, "reads %s, which the enclosing if, while or for "
                              "changes", name);
        z->open = true;
        return -1;
    }
    if (s->call) {
        z->why = arena_printf(z->ir->arena, "depends on %s through %s, the value of the %s at "
                              "line %d (through a loop or a nested if)", z->xname, name,
                              s->call->hessian ? "hessian()" : "grad()", s->loc.line);
        return -1;
    }
    if (s->kind != S_IF || s->then_block->n || s->else_block->n) {
        z->why = arena_printf(z->ir->arena, "depends on %s through %s, a result of the %s at "
                              "line %d%s", z->xname, name, s->kind == S_IF ? "if" : s->kind ==
                              S_WHILE ? "while" : "for loop", s->loc.line, s->kind == S_IF ?
                              " (whose branches hold an if or a loop)" : "");
        return -1;
    }
    for (*k = 0; s->slots[*k] != n->index; ++*k)
        ;
    *st = s;
    kid[0] = s->then_vals[*k];
    kid[1] = s->else_vals[*k];
    return 2;
}

static Node *rebuild(Straighten *z, Node *n, const Stmt *s, int k)
{
    Ir *ir = z->ir;
    if (n->op == OP_SLOT) {
        Node *a = rewritten(z, s->then_vals[k]), *b = rewritten(z, s->else_vals[k]);
        return mk2(ir, OP_ADD, mk2(ir, OP_PICK, s->cond, a),
                   mk2(ir, OP_PICK, mk1(ir, OP_NOT, s->cond), b));
    }
    Node *a[3] = {NULL, NULL, NULL};
    for (int i = 0; i < n->nargs; i++)
        a[i] = rewritten(z, n->args[i]);
    return mk_like_args(ir, n, a);
}

Node *hess_straighten(Ir *ir, const Block *body, Node *e, int input, const char *xname,
                      int ninputs, const char **why, bool *open)
{
    if (!e->nslots)
        return e;
    Straighten z = {.ir = ir, .writer = intmap_new(ir->arena), .memo = intmap_new(ir->arena),
                    .xname = xname};
    note_slots(z.writer, body);
    z.act = diff_active_slots(ir, (Block *)body, input, ninputs);
    /* an open construct's slots are not in body: they count as active */
    for (int i = 0; i < e->nslots; i++)
        if (!intmap_find(z.writer, e->slots[i]))
            slotset_add(z.act, e->slots[i]);
    NodeVec st = {0};
    vec_push(ir->arena, &st, e);
    while (st.len) {
        Node *n = st.data[st.len - 1], *kid[3];
        if (rewritten(&z, n)) {
            st.len--;
            continue;
        }
        const Stmt *s = NULL;
        int k = 0, nk = needs(&z, n, kid, &s, &k);
        if (nk < 0) {
            *why = z.why;
            if (open)
                *open = z.open;
            return NULL;
        }
        bool wait = false;
        for (int i = 0; i < nk; i++)
            if (!rewritten(&z, kid[i])) {
                vec_push(ir->arena, &st, kid[i]);
                wait = true;
            }
        if (wait)
            continue;
        st.len--;
        *intmap_put(z.memo, n->id) = rebuild(&z, n, s, k);
    }
    return rewritten(&z, e);
}
