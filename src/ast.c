/* ast.c — constructors of the syntax tree.  Everything lives in the arena. */
#include "gradc.h"

#include <string.h>

const char *const binop_text[] = {
    [B_ADD] = "+",   [B_SUB] = "-",   [B_MUL] = "*",   [B_DIV] = "/",
    [B_EMUL] = ".*", [B_EDIV] = "./", [B_POW] = "^",   [B_EPOW] = ".^",
    [B_LT] = "<",    [B_LE] = "<=",   [B_GT] = ">",    [B_GE] = ">=",
    [B_EQ] = "==",   [B_NE] = "!=",   [B_AND] = "and", [B_OR] = "or",
    [B_SOLVE] = "\\",
};
_Static_assert(sizeof binop_text / sizeof *binop_text == B_COUNT, "a text per BinOp");

Expr *ast_expr(Arena *a, ExprKind kind, Loc loc)
{
    Expr *e = arena_alloc(a, sizeof *e);
    e->kind = kind;
    e->loc = loc;
    return e;
}

AstStmt *ast_stmt(Arena *a, AstStmtKind kind, Loc loc)
{
    AstStmt *s = arena_alloc(a, sizeof *s);
    s->kind = kind;
    s->loc = loc;
    return s;
}

/* AstBlock has no capacity field: the capacity is the smallest power of two
 * >= n, so the array is grown exactly when n reaches a power of two. */
void ast_block_push(Arena *a, AstBlock *b, AstStmt *s)
{
    if (b->n == 0 || (b->n & (b->n - 1)) == 0) {
        int cap = b->n ? 2 * b->n : 1;
        AstStmt **p = arena_alloc(a, sizeof *p * (size_t)cap);
        if (b->n)
            memcpy(p, b->stmts, sizeof *p * (size_t)b->n);
        b->stmts = p;
    }
    b->stmts[b->n++] = s;
}
