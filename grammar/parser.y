/* parser.y — the grammar of the .expr language; builds the AST of gradc.h.
 *
 * Pure and reentrant: the scanner and a Parser (parse.h) are passed
 * through.  A syntax error is reported by yyreport_syntax_error below, a
 * lexical error by the scanner (which then returns YYerror, so nothing more
 * is printed), and a tree nested too deeply by the constructors here.  The
 * parse then recovers at the next statement boundary (the `error` rules:
 * a statement, or an if/while/for header, skipped up to its end of line)
 * and goes on, so that one run reports every error; the skipped statement
 * stays in the tree as an AST_ERROR naming what it assigned, which the
 * checker treats as unknown rather than undefined. */
%define api.pure full
%define api.location.type {Loc}
%define parse.error custom
%locations
%param {void *scanner}
%parse-param {Parser *p}

%code requires {
#include "gradc.h"
#include "parse.h"
}

%code provides {
/* Defined by the flex scanner (lexer.l). */
int yylex(YYSTYPE *lval, Loc *lloc, void *scanner);
}

%code {
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Locations are start positions only: a rule is where its first symbol is. */
#define YYLLOC_DEFAULT(Cur, Rhs, N) ((Cur) = YYRHSLOC(Rhs, (N) ? 1 : 0))
/* Deep nesting is refused long before this; it only bounds bison's own
 * (heap-allocated) stack, whose overflow yyerror reports cleanly. */
#define YYMAXDEPTH 100000

static void yyerror(Loc *loc, void *scanner, Parser *p, const char *msg);
static PExpr leaf(Parser *p, Expr *e);
static PExpr unary(Parser *p, ExprKind kind, Loc loc, PExpr x);
static PExpr binary(Parser *p, BinOp op, Loc loc, PExpr l, PExpr r);
static PExpr call(Parser *p, const char *name, Loc loc, PExpr *args, int n);
static PExpr list(Parser *p, ExprKind kind, const char *name, Loc loc, PExpr *args, Loc *seps, int n);
static PExpr range(Parser *p, Loc loc, PExpr lo, PExpr hi);
static bool dim_literal(Parser *p, DimRef *d, const char *text, Loc loc);

/* A constructor returns e == NULL after printing an error: skip the
 * statement. */
#define OK(x) do { if (!(x).e) YYERROR; } while (0)
static AstBlock skipped(Parser *p, AstBlock b, Loc loc, const char *name);
/* Stop after DIAG_MAX_ERRORS + 1 errors (nothing more would be shown), or
 * blocks nested too deeply (every `end` after it would be out of place). */
#define ENOUGH() do { if (diag_count() > DIAG_MAX_ERRORS || p->deep_blocks) YYABORT; } while (0)
}

%union {
    struct { double v; const char *text; } num;
    const char *str;
    PExpr x;
    VEC(PExpr) args;
    struct { VEC(PExpr) x; VEC(Loc) seps; } items;
    AstStmt *stmt;
    AstBlock block;
    struct { bool has; AstBlock block; } els;
    struct { int n; DimRef d[2]; } dims;
    DimRef dim;
    struct { VEC(const char *) names; VEC(Loc) locs; } names;
    VEC(AstParam) params;
    AstParam param;
}

%token <num> NUMBER "number"
%token <str> NAME "name"
%token INPUT "input" OUTPUT "output" WRT "wrt" IF "if" ELIF "elif" ELSE "else"
%token END "end" WHILE "while" FOR "for" IN "in" AND "and" OR "or" NOT "not"
%token FUNCTION "function"
%token EMUL ".*" EDIV "./" EPOW ".^" BACKSLASH "\\" LE "<=" GE ">=" EQ "==" NE "!="
%token NEWLINE "end of line"

%type <x> expr
%type <args> args arglist
%type <items> row rows indices
%type <x> index
%type <stmt> stmt
%type <block> block
%type <els> elses
%type <dims> dims
%type <dim> dim
%type <names> names results
%type <params> params paramlist
%type <param> param

/* Loosest first. */
%left OR
%left AND
%precedence NOT
%nonassoc '<' '>' LE GE EQ NE
%left '+' '-'
%left '*' '/' EMUL EDIV BACKSLASH
%precedence UMINUS
%right '^' EPOW
%precedence '\''

%initial-action { @$ = (Loc){1, 1}; }

%%

program: block                  { p->ast->top = $1; }
       ;

/* Past a statement's separator, a new error is a new statement's: report it
 * (yyerrok) rather than wait for three tokens as bison would.  The error
 * rules end with their separator, so that bison, skipping tokens, stays in
 * the rule that knows the statement's name. */
block: %empty                   { $$ = (AstBlock){0}; }
     | block sep                { $$ = $1; yyerrok; }
     | block stmt sep           { $$ = $1; ast_block_push(p->arena, &$$, $2); yyerrok; }
     | block NAME '=' error sep { $$ = skipped(p, $1, @2, $2); yyerrok; ENOUGH(); }
     | block INPUT NAME error sep { $$ = skipped(p, $1, @2, $3); yyerrok; ENOUGH(); }
     | block error sep          { $$ = skipped(p, $1, @2, NULL); yyerrok; ENOUGH(); }
     ;

sep: NEWLINE | ';' ;

stmt: INPUT NAME dims {
          $$ = ast_stmt(p->arena, AST_INPUT, @1);
          $$->name = $2; $$->name_loc = @2;
          $$->ndims = $3.n; $$->dims[0] = $3.d[0]; $$->dims[1] = $3.d[1];
      }
    | NAME '=' expr {
          $$ = ast_stmt(p->arena, AST_ASSIGN, @1);
          $$->name = $1; $$->name_loc = @1; $$->value = $3.e;
      }
    | OUTPUT names {
          $$ = ast_stmt(p->arena, AST_OUTPUT, @1);
          $$->name = $2.names.data[0]; $$->name_loc = $2.locs.data[0];
          $$->names = $2.names.data; $$->name_locs = $2.locs.data;
          $$->nnames = $2.names.len;
      }
    | '[' names ']' '=' expr {
          $$ = ast_stmt(p->arena, AST_MASSIGN, @1);
          $$->names = $2.names.data; $$->name_locs = $2.locs.data;
          $$->nnames = $2.names.len; $$->value = $5.e;
      }
    | FUNCTION results '=' NAME '(' params ')' sep block END {
          $$ = ast_stmt(p->arena, AST_FUNCTION, @1);
          $$->name = $4; $$->name_loc = @4;
          $$->names = $2.names.data; $$->name_locs = $2.locs.data;
          $$->nnames = $2.names.len;
          $$->params = $6.data; $$->nparams = $6.len; $$->body = $9;
      }
    | FUNCTION error sep block END {
          $$ = ast_stmt(p->arena, AST_FUNCTION, @1);
          $$->body = $4;
          ENOUGH();
      }
    | WRT names {
          $$ = ast_stmt(p->arena, AST_WRT, @1);
          $$->names = $2.names.data; $$->name_locs = $2.locs.data;
          $$->nnames = $2.names.len;
      }
    | IF expr sep block elses END {
          $$ = ast_stmt(p->arena, AST_IF, @1);
          $$->value = $2.e; $$->then_block = $4;
          $$->has_else = $5.has; $$->else_block = $5.block;
      }
    | IF error sep block elses END {
          $$ = ast_stmt(p->arena, AST_IF, @1);
          $$->then_block = $4; $$->has_else = $5.has; $$->else_block = $5.block;
          ENOUGH();
      }
    | WHILE expr sep block END {
          $$ = ast_stmt(p->arena, AST_WHILE, @1);
          $$->value = $2.e; $$->body = $4;
      }
    | WHILE error sep block END {
          $$ = ast_stmt(p->arena, AST_WHILE, @1);
          $$->body = $4;
          ENOUGH();
      }
    | FOR NAME IN expr ':' expr sep block END {
          $$ = ast_stmt(p->arena, AST_FOR, @1);
          $$->name = $2; $$->name_loc = @2;
          $$->for_lo = $4.e; $$->for_hi = $6.e; $$->body = $8;
      }
    | FOR NAME IN expr ':' expr ':' expr sep block END {
          $$ = ast_stmt(p->arena, AST_FOR, @1);
          $$->name = $2; $$->name_loc = @2;
          $$->for_lo = $4.e; $$->for_step = $6.e; $$->for_hi = $8.e; $$->body = $10;
      }
    | FOR NAME error sep block END {
          $$ = ast_stmt(p->arena, AST_FOR, @1);
          $$->name = $2; $$->name_loc = @2; $$->body = $5;
          ENOUGH();
      }
    | FOR error sep block END {
          $$ = ast_stmt(p->arena, AST_FOR, @1);
          $$->body = $4;
          ENOUGH();
      }
    ;

/* An `elif` is an else block holding one AST_IF. */
elses: %empty                   { $$.has = false; $$.block = (AstBlock){0}; }
     | ELSE block               { $$.has = true; $$.block = $2; }
     | ELIF expr sep block elses {
          AstStmt *s = ast_stmt(p->arena, AST_IF, @1);
          s->value = $2.e; s->then_block = $4;
          s->has_else = $5.has; s->else_block = $5.block;
          $$.has = true; $$.block = (AstBlock){0};
          ast_block_push(p->arena, &$$.block, s);
      }
     | ELIF error sep block elses {
          AstStmt *s = ast_stmt(p->arena, AST_IF, @1);
          s->then_block = $4; s->has_else = $5.has; s->else_block = $5.block;
          $$.has = true; $$.block = (AstBlock){0};
          ast_block_push(p->arena, &$$.block, s);
          ENOUGH();
      }
     ;

dims: %empty                    { $$.n = 0; }
    | '[' dim ']'               { $$.n = 1; $$.d[0] = $2; }
    | '[' dim ',' dim ']'       { $$.n = 2; $$.d[0] = $2; $$.d[1] = $4; }
    ;

dim: NAME                       { $$ = (DimRef){.sym = $1, .loc = @1}; }
   | NUMBER                     { if (!dim_literal(p, &$$, $1.text, @1)) YYERROR; }
   ;

/* function y = f(...) or function [a, b] = f(...) */
results: NAME {
          $$.names.data = NULL; $$.names.len = $$.names.cap = 0;
          $$.locs.data = NULL; $$.locs.len = $$.locs.cap = 0;
          vec_push(p->arena, &$$.names, $1); vec_push(p->arena, &$$.locs, @1);
      }
       | '[' names ']'          { $$ = $2; }
       ;

params: %empty                  { $$.data = NULL; $$.len = $$.cap = 0; }
      | paramlist               { $$ = $1; }
      ;

paramlist: param                { $$.data = NULL; $$.len = $$.cap = 0; vec_push(p->arena, &$$, $1); }
         | paramlist ',' param  { $$ = $1; vec_push(p->arena, &$$, $3); }
         ;

/* A parameter without [...] has the shape of its argument, call by call. */
param: NAME dims {
          $$ = (AstParam){.name = $1, .loc = @1, .ndims = $2.n ? $2.n : -1};
          if ($2.n > 0) $$.dims[0] = $2.d[0];
          if ($2.n > 1) $$.dims[1] = $2.d[1];
      }
     ;

names: NAME {
          $$.names.data = NULL; $$.names.len = $$.names.cap = 0;
          $$.locs.data = NULL; $$.locs.len = $$.locs.cap = 0;
          vec_push(p->arena, &$$.names, $1); vec_push(p->arena, &$$.locs, @1);
      }
     | names ',' NAME {
          $$ = $1;
          vec_push(p->arena, &$$.names, $3); vec_push(p->arena, &$$.locs, @3);
      }
     ;

expr: NUMBER {
          Expr *e = ast_expr(p->arena, EX_NUM, @1);
          e->num = $1.v;
          $$ = leaf(p, e);
      }
    | NAME {
          Expr *e = ast_expr(p->arena, EX_NAME, @1);
          e->name = $1;
          $$ = leaf(p, e);
      }
    | NAME '(' args ')'         { $$ = call(p, $1, @1, $3.data, $3.len); OK($$); }
    | NAME '[' indices ']'      { $$ = list(p, EX_INDEX, $1, @1, $3.x.data, $3.seps.data, $3.x.len); OK($$); }
    | '[' rows ']' {
          $$ = $2.x.len == 1 ? $2.x.data[0]
             : list(p, EX_VCAT, NULL, @1, $2.x.data, $2.seps.data, $2.x.len);
          OK($$);
      }
    | '(' expr ')'              { $$ = $2; }
    | expr OR expr              { $$ = binary(p, B_OR, @2, $1, $3); OK($$); }
    | expr AND expr             { $$ = binary(p, B_AND, @2, $1, $3); OK($$); }
    | NOT expr                  { $$ = unary(p, EX_NOT, @1, $2); OK($$); }
    | expr '<' expr             { $$ = binary(p, B_LT, @2, $1, $3); OK($$); }
    | expr LE expr              { $$ = binary(p, B_LE, @2, $1, $3); OK($$); }
    | expr '>' expr             { $$ = binary(p, B_GT, @2, $1, $3); OK($$); }
    | expr GE expr              { $$ = binary(p, B_GE, @2, $1, $3); OK($$); }
    | expr EQ expr              { $$ = binary(p, B_EQ, @2, $1, $3); OK($$); }
    | expr NE expr              { $$ = binary(p, B_NE, @2, $1, $3); OK($$); }
    | expr '+' expr             { $$ = binary(p, B_ADD, @2, $1, $3); OK($$); }
    | expr '-' expr             { $$ = binary(p, B_SUB, @2, $1, $3); OK($$); }
    | expr '*' expr             { $$ = binary(p, B_MUL, @2, $1, $3); OK($$); }
    | expr '/' expr             { $$ = binary(p, B_DIV, @2, $1, $3); OK($$); }
    | expr EMUL expr            { $$ = binary(p, B_EMUL, @2, $1, $3); OK($$); }
    | expr EDIV expr            { $$ = binary(p, B_EDIV, @2, $1, $3); OK($$); }
    | expr BACKSLASH expr       { $$ = binary(p, B_SOLVE, @2, $1, $3); OK($$); }
    | '-' expr %prec UMINUS     { $$ = unary(p, EX_NEG, @1, $2); OK($$); }
    | expr '^' expr             { $$ = binary(p, B_POW, @2, $1, $3); OK($$); }
    | expr EPOW expr            { $$ = binary(p, B_EPOW, @2, $1, $3); OK($$); }
    | expr '\''                 { $$ = unary(p, EX_TRANSPOSE, @2, $1); OK($$); }
    ;

/* Concatenation: rows separated by ';', entries of a row by ',' (spec §8). */
rows: row {
          $$.x.data = NULL; $$.x.len = $$.x.cap = 0;
          $$.seps.data = NULL; $$.seps.len = $$.seps.cap = 0;
          PExpr r = $1.x.len == 1 ? $1.x.data[0]
                  : list(p, EX_HCAT, NULL, $1.seps.data[0], $1.x.data, $1.seps.data, $1.x.len);
          OK(r);
          vec_push(p->arena, &$$.x, r); vec_push(p->arena, &$$.seps, @1);
      }
    | rows ';' row {
          $$ = $1;
          PExpr r = $3.x.len == 1 ? $3.x.data[0]
                  : list(p, EX_HCAT, NULL, $3.seps.data[0], $3.x.data, $3.seps.data, $3.x.len);
          OK(r);
          vec_push(p->arena, &$$.x, r); vec_push(p->arena, &$$.seps, @2);
      }
    ;

row: expr {
          $$.x.data = NULL; $$.x.len = $$.x.cap = 0;
          $$.seps.data = NULL; $$.seps.len = $$.seps.cap = 0;
          vec_push(p->arena, &$$.x, $1); vec_push(p->arena, &$$.seps, @1);
      }
   | row ',' expr { $$ = $1; vec_push(p->arena, &$$.x, $3); vec_push(p->arena, &$$.seps, @2); }
   ;

/* Indexing: x[i], X[i, j], x[a:b], X[:, j] (spec §8). */
indices: index {
          $$.x.data = NULL; $$.x.len = $$.x.cap = 0;
          $$.seps.data = NULL; $$.seps.len = $$.seps.cap = 0;
          vec_push(p->arena, &$$.x, $1); vec_push(p->arena, &$$.seps, @1);
      }
       | indices ',' index { $$ = $1; vec_push(p->arena, &$$.x, $3); vec_push(p->arena, &$$.seps, @2); }
       ;

index: expr                     { $$ = $1; }
     | ':'                      { $$ = leaf(p, ast_expr(p->arena, EX_COLON, @1)); }
     | expr ':' expr            { $$ = range(p, @2, $1, $3); OK($$); }
     ;

args: %empty                    { $$.data = NULL; $$.len = $$.cap = 0; }
    | arglist                   { $$ = $1; }
    ;

arglist: expr                   { $$.data = NULL; $$.len = $$.cap = 0; vec_push(p->arena, &$$, $1); }
       | arglist ',' expr       { $$ = $1; vec_push(p->arena, &$$, $3); }
       ;

%%

/* ---- trees, with their depth bounded ---------------------------------- */

/* b with a statement that did not parse; name is what it assigned, if known. */
static AstBlock skipped(Parser *p, AstBlock b, Loc loc, const char *name)
{
    AstStmt *s = ast_stmt(p->arena, AST_ERROR, loc);
    s->name = name;
    ast_block_push(p->arena, &b, s);
    return b;
}

static PExpr leaf(Parser *p, Expr *e)
{
    (void)p;
    return (PExpr){e, 1};
}

static PExpr nest(Parser *p, Expr *e, int depth)
{
    if (depth > PARSE_MAX_DEPTH) {
        diag_error(p->src, e->loc, "expression nested too deeply (more than %d levels; "
                   "split it into several assignments)", PARSE_MAX_DEPTH);
        return (PExpr){NULL, 0};
    }
    return (PExpr){e, depth};
}

static PExpr unary(Parser *p, ExprKind kind, Loc loc, PExpr x)
{
    Expr *e = ast_expr(p->arena, kind, loc);
    e->lhs = x.e;
    return nest(p, e, x.depth + 1);
}

static PExpr binary(Parser *p, BinOp op, Loc loc, PExpr l, PExpr r)
{
    Expr *e = ast_expr(p->arena, EX_BINARY, loc);
    e->op = op;
    e->lhs = l.e;
    e->rhs = r.e;
    return nest(p, e, 1 + (l.depth > r.depth ? l.depth : r.depth));
}

static PExpr call(Parser *p, const char *name, Loc loc, PExpr *args, int n)
{
    Expr *e = ast_expr(p->arena, EX_CALL, loc);
    e->name = name;
    e->nargs = n;
    e->args = arena_alloc(p->arena, sizeof *e->args * (size_t)(n ? n : 1));
    int depth = 0;
    for (int i = 0; i < n; i++) {
        e->args[i] = args[i].e;
        if (args[i].depth > depth)
            depth = args[i].depth;
    }
    return nest(p, e, depth + 1);
}

/* An index, a concatenation (name NULL) or one row of it (kind EX_HCAT,
 * loc the first entry's); seps[i]: the separator before args[i]. */
static PExpr list(Parser *p, ExprKind kind, const char *name, Loc loc, PExpr *args, Loc *seps, int n)
{
    PExpr r = call(p, name, loc, args, n);
    if (r.e) {
        r.e->kind = kind;
        r.e->seps = seps;
    }
    return r;
}

static PExpr range(Parser *p, Loc loc, PExpr lo, PExpr hi)
{
    Expr *e = ast_expr(p->arena, EX_RANGE, loc);
    e->lhs = lo.e;
    e->rhs = hi.e;
    return nest(p, e, 1 + (lo.depth > hi.depth ? lo.depth : hi.depth));
}

/* `input x[3]`: a dimension literal is a whole number that fits int64. */
static bool dim_literal(Parser *p, DimRef *d, const char *text, Loc loc)
{
    *d = (DimRef){.loc = loc};
    if (strspn(text, "0123456789") != strlen(text)) {
        diag_error(p->src, loc, "a dimension must be a whole number or a symbol, not %s", text);
        return false;
    }
    errno = 0;
    long long v = strtoll(text, NULL, 10);
    if (errno == ERANGE) {
        diag_error(p->src, loc, "dimension %s does not fit in a 64-bit integer", text);
        return false;
    }
    d->lit = v;
    return true;
}

/* ---- blocks ------------------------------------------------------------ */

bool parse_open_block(Parser *p, const char *keyword, Loc loc)
{
    if (p->nblocks == PARSE_MAX_DEPTH) {
        if (!p->deep_blocks)   /* once: every deeper block would say it again */
            diag_error(p->src, loc, "blocks nested too deeply (more than %d levels)",
                       PARSE_MAX_DEPTH);
        p->deep_blocks = true;
        return false;
    }
    p->blocks[p->nblocks++] = (OpenBlock){keyword, loc};
    return true;
}

void parse_close_block(Parser *p)
{
    p->stray_end = p->nblocks == 0;
    if (p->nblocks > 0)
        p->nblocks--;
}

/* ---- errors ------------------------------------------------------------ */

/* How a token is named in a message: `'*'`, `name 'x'`, `end of line`. */
static const char *token_text(Parser *p, yysymbol_kind_t k, bool lookahead)
{
    switch (k) {
    case YYSYMBOL_YYEOF:
        return "end of file";
    case YYSYMBOL_NEWLINE:
        return lookahead && p->at_eof ? "end of file" : "end of line";
    case YYSYMBOL_NAME:
        return lookahead ? arena_printf(p->arena, "name '%.*s'", p->toklen, p->tok) : "a name";
    case YYSYMBOL_NUMBER:
        return lookahead ? arena_printf(p->arena, "number '%.*s'", p->toklen, p->tok) : "a number";
    default: {
        /* Bison names char tokens "'*'" and aliased ones by the bare alias. */
        const char *s = yysymbol_name(k);
        return s[0] == '\'' ? s : arena_printf(p->arena, "'%s'", s);
    }
    }
}

/* Bison numbers char tokens by position; name them by their text: "'('". */
static bool is_char_token(yysymbol_kind_t k, const char *text)
{
    return strcmp(yysymbol_name(k), text) == 0;
}

static bool is_comparison(yysymbol_kind_t k)
{
    return is_char_token(k, "'<'") || is_char_token(k, "'>'") || k == YYSYMBOL_LE
        || k == YYSYMBOL_GE || k == YYSYMBOL_EQ || k == YYSYMBOL_NE;
}

static bool has_symbol(const yysymbol_kind_t *v, int n, yysymbol_kind_t k)
{
    for (int i = 0; i < n; i++)
        if (v[i] == k)
            return true;
    return false;
}

static bool has_char_token(const yysymbol_kind_t *v, int n, const char *text)
{
    for (int i = 0; i < n; i++)
        if (is_char_token(v[i], text))
            return true;
    return false;
}

/* What the parser would have accepted, when that is short enough to help. */
static const char *expected_text(Parser *p, const yysymbol_kind_t *exp, int n)
{
    if (has_char_token(exp, n, "'('"))
        return "an expression";
    if (n == 0 || n > 4)
        return NULL;
    const char *s = "";
    for (int i = 0; i < n; i++) {
        if (exp[i] == YYSYMBOL_YYerror || (is_char_token(exp[i], "';'") && has_symbol(exp, n, YYSYMBOL_NEWLINE)))
            continue;
        s = arena_printf(p->arena, "%s%s%s", s, *s ? " or " : "", token_text(p, exp[i], false));
    }
    return *s ? s : NULL;
}

/* The lookahead (p->tok, in the scanner's copy of this line) comes right
 * after a name, a ')' or a quote: `x[1]`, `f(x)[2]` are indexing. */
static bool follows_value(Parser *p, Loc loc)
{
    const char *s = p->tok;
    for (int k = 1; k < loc.col; k++) {    /* col - 1 characters precede it, so as many bytes */
        char ch = s[-k];
        if (ch == ' ' || ch == '\t')
            continue;
        return ch == ')' || ch == '\'' || ch == '_' || (ch >= '0' && ch <= '9')
            || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
    }
    return false;
}

static int yyreport_syntax_error(const yypcontext_t *ctx, void *scanner, Parser *p)
{
    (void)scanner;
    yysymbol_kind_t tok = yypcontext_token(ctx);
    yysymbol_kind_t exp[YYNTOKENS];
    int n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
    if (n < 0)
        n = 0;
    /* At the end of the file where an `end` would do, the missing `end` is
     * the error, and it belongs to the innermost block still open. */
    if (tok == YYSYMBOL_YYEOF && has_symbol(exp, n, YYSYMBOL_END) && p->nblocks > 0) {
        OpenBlock b = p->blocks[p->nblocks - 1];
        diag_error(p->src, b.loc, "'%s' without a matching 'end'", b.keyword);
        return 0;
    }
    Loc loc = *yypcontext_location(ctx);
    p->err_line = loc.line;
    if (tok == YYSYMBOL_END && p->stray_end) {
        diag_error(p->src, loc, "'end' without a matching 'if', 'while' or 'for'");
        return 0;
    }
    const char *want = expected_text(p, exp, n);
    if (is_char_token(tok, "'['") && follows_value(p, loc))
        diag_error(p->src, loc, "unexpected '[': %s", diag_no_indexing);
    else if (is_char_token(tok, "'='") && has_symbol(exp, n, YYSYMBOL_EQ))
        diag_error(p->src, loc, "unexpected '=': to compare, write '=='");
    else if (want)
        diag_error(p->src, loc, "unexpected %s, expected %s", token_text(p, tok, true), want);
    else if (is_comparison(tok))
        diag_error(p->src, loc, "unexpected %s: comparisons do not chain (use 'and')",
                   token_text(p, tok, true));
    else
        diag_error(p->src, loc, "unexpected %s", token_text(p, tok, true));
    return 0;
}

/* Bison's own failures (its stack exhausted). */
static void yyerror(Loc *loc, void *scanner, Parser *p, const char *msg)
{
    (void)scanner;
    if (strstr(msg, "exhausted"))
        diag_error(p->src, *loc, "program nested too deeply for the parser");
    else
        diag_error(p->src, *loc, "%s", msg);
}

/* ---- the entry point ----------------------------------------------------- */

#include "lexer.h"

Ast *parse_source(Arena *a, Source *src)
{
    Parser p = {.arena = a, .src = src, .pos = {1, 1}};
    p.ast = arena_alloc(a, sizeof *p.ast);
    p.ast->src = src;
    p.blocks = arena_alloc(a, sizeof *p.blocks * PARSE_MAX_DEPTH);
    if (src->len > (size_t)0x7fffffff) {
        diag_error(src, (Loc){0, 0}, "file too large");
        return NULL;
    }
    void *scanner;
    if (yylex_init_extra(&p, &scanner) != 0) {
        diag_plain("cannot start the scanner");
        return NULL;
    }
    diag_release();   /* anything still held belongs before this file */
    diag_hold();
    yy_scan_bytes(src->text, (int)src->len, scanner);
    int rc = yyparse(scanner, &p);
    yylex_destroy(scanner);
    p.ast->nerrors = diag_count();
    if (rc != 0 || p.ast->nerrors == 0) {
        diag_release();
        return rc == 0 ? p.ast : NULL;
    }
    return p.ast;     /* its messages stay held for check_program */
}
