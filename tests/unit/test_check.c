/* test_check.c — the structured forward IR that check.c builds: which names
 * get slots, what each construct's values are, construct ids, loop depth,
 * and the module's dims, inputs, wrt and output.  (Where errors point and
 * what they say is tested by the golden files in tests/golden/errors.) */
#include "gradc.h"

#include <string.h>

#include "../check.h"

static Module *check(Arena *a, const char *text)
{
    Ast *ast = parse_source(a, source_from_string(a, "test.expr", text));
    return ast ? check_program(a, ast) : NULL;
}

static const char *slot_name(const Module *m, int slot) { return m->ir->slots.data[slot].name; }

static bool is_slot(const Node *n, int slot) { return n->op == OP_SLOT && n->index == slot; }

/* The reference's control-flow example: a while carrying b, an if giving c. */
static void test_control_flow(void)
{
    Arena *a = arena_new();
    Module *m = check(a, "input a[n]\n"
                         "b = a * 2\n"
                         "while norm(b) < 1000\n"
                         "    b = b * 2\n"
                         "end\n"
                         "if sum(b) > 0\n"
                         "    c = b\n"
                         "else\n"
                         "    c = 100 * b\n"
                         "end\n"
                         "y = sum(c)\n");
    CHECK(m);
    if (!m)
        goto out;
    CHECK(m->ndims == 1 && strcmp(m->dims[0], "n") == 0);
    CHECK(m->ninputs == 1 && m->nwrt == 1 && m->wrt[0] == 0);
    CHECK(strcmp(m->output_name, "y") == 0);
    CHECK(m->has_control && m->nconstructs == 2 && m->max_depth == 1);
    Block *top = m->fwd.body;
    CHECK(top->n == 2);
    if (top->n != 2)
        goto out;

    Stmt *w = top->stmts[0];
    CHECK(w->kind == S_WHILE && w->id == 0 && w->loc.line == 3 && w->loc.col == 1);
    CHECK(w->n == 1 && strcmp(slot_name(m, w->slots[0]), "b") == 0);
    int b = w->slots[0];
    CHECK(w->vals[0]->op == OP_MUL && w->vals[0]->nslots == 0);        /* a * 2 */
    CHECK(w->next[0]->op == OP_MUL && node_reads_slot(w->next[0], b)); /* b * 2 */
    CHECK(w->cond->op == OP_LT && node_reads_slot(w->cond, b));
    CHECK(w->count_slot == -1 && w->body->n == 0);

    Stmt *f = top->stmts[1];
    CHECK(f->kind == S_IF && f->id == 1 && f->loc.line == 6);
    CHECK(f->n == 1 && strcmp(slot_name(m, f->slots[0]), "c") == 0);
    CHECK(is_slot(f->then_vals[0], b));                 /* c = b, after the loop */
    CHECK(f->else_vals[0]->op == OP_MUL && node_reads_slot(f->else_vals[0], b));
    CHECK(f->cond->op == OP_GT && node_reads_slot(f->cond, b));
    CHECK(m->fwd.value->op == OP_SUM && is_slot(m->fwd.value->args[0], f->slots[0]));
    CHECK(m->fwd.grads == NULL);
out:
    arena_free(a);
}

/* A for loop: the index slot, the count, carried vs body-local names,
 * nested constructs numbered in order, the deepest loop nesting. */
static void test_for_and_nesting(void)
{
    Arena *a = arena_new();
    Module *m = check(a, "input x[n]\n"
                         "input s\n"
                         "acc = 0\n"
                         "for i in 1:n\n"
                         "    t = x * i\n"           /* body-local */
                         "    for j in 1:3\n"        /* index unused */
                         "        acc = acc + sum(t)\n"
                         "    end\n"
                         "end\n"
                         "output acc\n"
                         "wrt s, x\n");
    CHECK(m);
    if (!m)
        goto out;
    CHECK(m->nwrt == 2 && m->wrt[0] == 1 && m->wrt[1] == 0);
    CHECK(m->nconstructs == 2 && m->max_depth == 2);
    Stmt *outer = m->fwd.body->stmts[0];
    CHECK(m->fwd.body->n == 1 && outer->kind == S_FOR && outer->id == 0);
    CHECK(outer->count->op == OP_DIMVAL && outer->count->index == 0);
    CHECK(outer->index_slot >= 0 && strcmp(slot_name(m, outer->index_slot), "i") == 0);
    CHECK(outer->n == 1 && strcmp(slot_name(m, outer->slots[0]), "acc") == 0);
    CHECK(node_is_const(outer->vals[0], 0));
    Stmt *inner = outer->body->n == 1 ? outer->body->stmts[0] : NULL;
    CHECK(inner && inner->kind == S_FOR && inner->id == 1);
    if (inner) {
        CHECK(inner->index_slot == -1);
        CHECK(inner->count->op == OP_CONST && inner->count->num == 3);
        CHECK(inner->n == 1 && is_slot(inner->vals[0], outer->slots[0]));
        CHECK(node_reads_slot(inner->next[0], inner->slots[0]));
        CHECK(node_reads_slot(inner->next[0], outer->index_slot));  /* through t = x * i */
        CHECK(is_slot(outer->next[0], inner->slots[0]));
    }
    CHECK(is_slot(m->fwd.value, outer->slots[0]));
out:
    arena_free(a);
}

/* Slots only where the branches differ; an if that changes nothing is
 * dropped; elif nests in the else block; the default output. */
static void test_if_results(void)
{
    Arena *a = arena_new();
    Module *m = check(a, "input a\n"
                         "b = a\n"
                         "if a > 0\n"
                         "    c = 5\n"               /* same either way: no slot */
                         "else\n"
                         "    c = 5\n"
                         "end\n"
                         "if a > 1\n"
                         "    b = 2 * a\n"
                         "elif a < -1\n"
                         "    d = 1\n"               /* changes nothing observable: dropped */
                         "end\n"
                         "z = b + c\n");
    CHECK(m);
    if (!m)
        goto out;
    CHECK(m->nconstructs == 1 && m->max_depth == 0 && strcmp(m->output_name, "z") == 0);
    Stmt *f = m->fwd.body->n == 1 ? m->fwd.body->stmts[0] : NULL;
    CHECK(f && f->kind == S_IF && f->id == 0 && f->loc.line == 8);
    if (f) {
        CHECK(f->n == 1 && strcmp(slot_name(m, f->slots[0]), "b") == 0);
        CHECK(f->then_vals[0]->op == OP_MUL);
        CHECK(f->else_vals[0]->op == OP_INPUT);            /* b = a, unchanged */
        CHECK(f->then_block->n == 0 && f->else_block->n == 0);
        CHECK(node_reads_slot(m->fwd.value, f->slots[0]));
    }
out:
    arena_free(a);
}

/* Rejected programs return NULL (the messages are golden-tested). */
static void test_rejects(void)
{
    static const char *const bad[] = {
        "input x[n]\ny = x\ny = sum(x)\n",
        "input s\nif s > 0\n c = s\nend\ny = c\n",
        "input x[n]\ny = x\nwhile sum(y) < 4\n t = y\n y = t * 2\nend\nz = t\n",
        "input x\ny = x\nfor i in 1:3\n y = y * i\nend\nz = i\n",
        "input x\n",
        "input x\nx = 2\n",
        "input x[n]\ninput n\ny = x\n",
        "input x[n]\nif x > 0\n y = 1\nend\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        Arena *a = arena_new();
        fprintf(stderr, "(expected error %zu) ", i);
        CHECK(check(a, bad[i]) == NULL);
        arena_free(a);
    }
}

int main(void)
{
    test_control_flow();
    test_for_and_nesting();
    test_if_results();
    test_rejects();
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    return failures != 0;
}
