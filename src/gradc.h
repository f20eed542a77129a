/* gradc.h — the one internal header of the gradc compiler.
 *
 * One section per pipeline stage, in pipeline order:
 *   arena → diag → ast/parse → check (AST → IR) → ir → simplify → diff
 *   → print (derive) → eval (reference) → codegen/jit/emit (LLVM) → json → main
 *
 * Conventions: every object of one compilation lives in that compilation's
 * Arena; nothing here is freed piecemeal.  Functions that can fail on user
 * input print a diagnostic and return NULL/false/nonzero; they never abort. */
#ifndef GRADC_H
#define GRADC_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ===================================================================== */
/* arena.c — one bump allocator per compilation                          */
/* ===================================================================== */

typedef struct Arena Arena;
Arena *arena_new(void);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t size);          /* zeroed, 16-byte aligned */
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), nonnull(2)));

/* A growable array in an arena: `VEC(Node *) v = {0}; vec_push(a, &v, n);` */
#define VEC(T) struct { T *data; int len, cap; }
void vec_grow_(Arena *a, void **data, int *cap, size_t elem);
#define vec_push(arena, v, x)                                              \
    do {                                                                   \
        if ((v)->len == (v)->cap)                                          \
            vec_grow_((arena), (void **)&(v)->data, &(v)->cap,             \
                      sizeof *(v)->data);                                  \
        (v)->data[(v)->len++] = (x);                                       \
    } while (0)

/* ===================================================================== */
/* diag.c — source text and error messages                               */
/* ===================================================================== */

/* A position in the source: 1-based line and column; columns count
 * characters (UTF-8 code points), not bytes. line 0 = no position. */
typedef struct Loc {
    int line, col;
} Loc;

typedef struct Source {
    const char *path;     /* as given on the command line */
    char *text;           /* NUL-terminated contents */
    size_t len;
} Source;

Source *source_read(Arena *a, const char *path);   /* NULL + message on failure */
/* The contents of path (malloc'd, NUL-terminated, *len bytes), or NULL after
 * a message; a file larger than cap is an error, and the rest of it is not
 * read.  The caps (bytes) of a program and of a JSON file: --max-input. */
char *file_read_capped(const char *path, size_t cap, size_t *len);
extern size_t read_cap_program, read_cap_json;
/* Why a decimal number (program literal or JSON) that strtod read as v is
 * not a double, or NULL: it overflows, or it is nonzero (some mantissa
 * digit is not 0) and rounds to 0. */
const char *number_range_problem(double v, bool nonzero);
Source *source_from_string(Arena *a, const char *path, const char *text);

/* Prints `FILE:LINE:COL: error: MESSAGE`, the source line and a caret under
 * the column, to stderr.  With loc.line == 0 prints `FILE: error: MESSAGE`. */
void diag_error(const Source *src, Loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_verror(const Source *src, Loc loc, const char *fmt, va_list ap);
/* `gradc: error: MESSAGE` for errors with no source position (bad JSON…). */
void diag_plain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The front end reports every error, not only the first: between diag_hold
 * and diag_release, diag_error's messages are held; diag_release prints them
 * in source order, at most DIAG_MAX_ERRORS of them (then a "too many errors"
 * line), and returns how many there were.  diag_count: how many are held.
 * A stage stops after DIAG_MAX_ERRORS + 1 errors of its own. */
#define DIAG_MAX_ERRORS 20
void diag_hold(void);
int diag_count(void);
int diag_release(void);
/* Adds `FILE:LINE:COL: note: MESSAGE` and its excerpt to every message held
 * since diag_count() was first (a function body's errors get the call). */
void diag_note_since(int first, const Source *src, Loc loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The candidate nearest to a misspelled name (within 2 edits, fewer for
 * short names; adjacent swaps count one), or NULL: for "did you mean". */
const char *diag_closest(const char *name, const char *const *cands, int n);
/* Why (A*x)[1] is refused (the parser's hint). */
extern const char diag_no_indexing[];

/* ===================================================================== */
/* files.c — outputs distinct from inputs, written atomically            */
/* ===================================================================== */

typedef struct FileRole {
    const char *path;     /* NULL: not given */
    const char *role;     /* "-o", "--header", "the program", ... */
    bool input;
} FileRole;
/* false after a message when an output names an input or another output. */
bool files_distinct(Arena *a, const char *cmd, const FileRole *files, int n);
/* out_begin: the temporary path to write path's contents to (path itself
 * for a device or FIFO); out_end renames it over path when ok, else
 * removes it.  out_open/out_close do both around a stdio stream. */
const char *out_begin(Arena *a, const char *path);
bool out_end(const char *tmp, const char *path, bool ok);
FILE *out_open(Arena *a, const char *path, const char **tmp);
bool out_close(FILE *f, const char *tmp, const char *path);

/* ===================================================================== */
/* ast.c, grammar/lexer.l, grammar/parser.y — the syntax tree            */
/* ===================================================================== */

typedef enum ExprKind {
    EX_NUM,        /* num */
    EX_NAME,       /* name: a variable, an input, or a dimension symbol */
    EX_CALL,       /* name(args...) */
    EX_BINARY,     /* lhs op rhs; loc is the operator's position */
    EX_NEG,        /* -lhs; loc is the '-' */
    EX_NOT,        /* not lhs; loc is the keyword */
    EX_TRANSPOSE,  /* lhs'; loc is the quote */
    EX_HCAT,       /* [args[0], args[1], ...]; loc is the '[', seps[i] the ',' before args[i] */
    EX_VCAT,       /* [args[0]; args[1]; ...] (rows); seps[i] the ';' before args[i] */
    EX_INDEX,      /* name[args...] (1 or 2 items); loc is the name's */
    EX_RANGE,      /* lhs:rhs, an index item; loc is the ':' */
    EX_COLON,      /* a bare ':' index item (all of it); loc is the ':' */
} ExprKind;

typedef enum BinOp {
    B_ADD, B_SUB, B_MUL, B_DIV, B_EMUL, B_EDIV, B_POW, B_EPOW,
    B_LT, B_LE, B_GT, B_GE, B_EQ, B_NE, B_AND, B_OR,
    B_SOLVE,  /* A \ B (spec §8), binds like * */
    B_COUNT   /* not an operator: the size of tables indexed by BinOp */
} BinOp;
extern const char *const binop_text[];   /* "+", "-", "*", ... "and", "or" */

typedef struct Expr Expr;
struct Expr {
    ExprKind kind;
    Loc loc;           /* NAME/CALL: first character of the name; NUM: the literal */
    BinOp op;          /* EX_BINARY */
    double num;        /* EX_NUM */
    const char *name;  /* EX_NAME, EX_CALL */
    Expr *lhs, *rhs;   /* operands (unary forms use lhs) */
    Expr **args;       /* EX_CALL, EX_HCAT, EX_VCAT, EX_INDEX */
    int nargs;
    Loc *seps;         /* EX_HCAT, EX_VCAT */
};

typedef enum AstStmtKind {
    AST_INPUT, AST_ASSIGN, AST_OUTPUT, AST_WRT, AST_IF, AST_WHILE, AST_FOR,
    AST_ERROR,   /* a statement that did not parse; name: what it assigned, or NULL */
    AST_FUNCTION,/* function [names] = name(params) body end (spec §8) */
    AST_MASSIGN, /* [names] = value, value a call of a function with several results */
} AstStmtKind;

/* A dimension in `input A[n, 3]`: a symbol (sym != NULL) or a literal. */
typedef struct DimRef {
    const char *sym;
    int64_t lit;
    Loc loc;
} DimRef;

/* A parameter of a function: `x` (shape inferred per call), `x[n]`, `A[m, n]`. */
typedef struct AstParam {
    const char *name;
    Loc loc;
    int ndims;            /* -1: undeclared; else 0, 1, 2 as an input */
    DimRef dims[2];
} AstParam;

typedef struct AstStmt AstStmt;
typedef struct AstBlock {
    AstStmt **stmts;
    int n;
} AstBlock;

struct AstStmt {
    AstStmtKind kind;
    Loc loc;              /* first character of the statement (the keyword or the assigned name) */
    const char *name;     /* INPUT, ASSIGN target, OUTPUT (the first), FOR variable, FUNCTION */
    Loc name_loc;
    int ndims;            /* INPUT: 0 scalar, 1 vector, 2 matrix */
    DimRef dims[2];
    Expr *value;          /* ASSIGN value; IF/WHILE condition */
    const char **names;   /* WRT, OUTPUT (all of them), MASSIGN targets, FUNCTION results */
    Loc *name_locs;
    int nnames;
    AstBlock then_block;  /* IF */
    AstBlock else_block;  /* IF; an `elif` is an else block holding one AST_IF */
    bool has_else;
    AstBlock body;        /* WHILE, FOR, FUNCTION */
    AstParam *params;     /* FUNCTION */
    int nparams;
    Expr *for_lo, *for_hi;/* FOR i in lo:hi or lo:step:hi (scalars, rounded down) */
    Expr *for_step;       /* FOR: NULL, or a nonzero integer literal (checked) */
};

typedef struct Ast {
    Source *src;
    AstBlock top;
    int nerrors;   /* syntax errors the parse recovered from */
} Ast;

/* Parses src.  Returns NULL (messages printed) when the parse could not go
 * on; an Ast with nerrors > 0 when it recovered from errors: their messages
 * stay held (diag_hold) so that check_program can report the statements
 * that did parse and print everything in source order — a caller that does
 * not check such an Ast calls diag_release.  Nesting deeper than
 * PARSE_MAX_DEPTH is a clean error, never a crash. */
#define PARSE_MAX_DEPTH 1000
Ast *parse_source(Arena *a, Source *src);

Expr *ast_expr(Arena *a, ExprKind kind, Loc loc);
AstStmt *ast_stmt(Arena *a, AstStmtKind kind, Loc loc);
void ast_block_push(Arena *a, AstBlock *b, AstStmt *s);

/* ===================================================================== */
/* ir.c — shapes, the hash-consed expression DAG, structured programs    */
/* ===================================================================== */

/* A dimension (spec §8: a linear form k + c1*s1 + c2*s2 + …): a symbol
 * (sym >= 0, an index into Module.dims), a literal size (sym == -1, n), or
 * any other form (sym == -2, n an entry of dim.c's table of interned normal
 * forms).  Dims are equal exactly when their normal forms are. */
typedef struct Dim {
    int sym;
    int64_t n;
} Dim;

typedef struct Shape {
    Dim rows, cols;
} Shape;

Dim dim_lit(int64_t n);
Dim dim_sym(int sym);
bool dim_eq(Dim a, Dim b);
bool shape_eq(Shape a, Shape b);
bool shape_is_scalar(Shape s);              /* 1×1 literal */

/* dim.c — linear forms.  A view lists a form's terms: sym(i) * coefs[i]
 * (sym(i) a key: a symbol, or a product of symbols, dim_key_factors). */
typedef struct DimView {
    int64_t k;
    int n;
    const int *syms;      /* NULL for a lone symbol: use dim_view_sym */
    const int64_t *coefs;
    int sym;
} DimView;
DimView dim_view(Dim d);
int dim_view_sym(const DimView *v, int i);
Dim dim_form(int64_t k, int n, const int *syms, const int64_t *coefs);
Dim dim_add(Dim a, Dim b);
Dim dim_sub(Dim a, Dim b);
/* The product of two forms (kron's shapes: m*n rows), expanded: its terms'
 * keys may be products of symbols (keys >= DIM_PRODUCT), whose symbols
 * dim_key_factors lists (a symbol key lists itself; the list is valid
 * until the next call). */
Dim dim_mul(Dim a, Dim b);
#define DIM_PRODUCT (1 << 24)
int dim_key_factors(int key, const int **syms);
bool dim_is_lit(Dim d, int64_t *n);          /* a literal (its value into *n) */
int64_t dim_eval(Dim d, const int64_t *dims);
/* "n", "3", "n - 1", "2*n + m + 1" (dimnames NULL: d0, d1 …) */
const char *dim_str(Arena *a, Dim d, const char *const *dimnames);
Shape shape_scalar(void);
Shape shape_make(Dim rows, Dim cols);
/* "[n, n]", "[m]" (a column vector), "scalar", "[1, n]" … */
const char *shape_str(Arena *a, Shape s, const char *const *dimnames);

/* The operations of the DAG: one row per op, and every stage reads the
 * columns it needs from here (docs/design.md, "Adding a builtin"), so a new
 * elementwise builtin is one row plus its derivative rule.  Every expansion
 * names all eleven columns, so a row that misses one does not compile:
 *
 *   X(name, text, arity, kind, fn, libm, code, builtin, prec, latex, adj)
 *
 *   text     how it prints (print.c), and the builtin's name in the language
 *   kind     L leaf, U elementwise unary, B elementwise binary (a scalar side
 *            broadcasts), M anything else (shape-changing)
 *   fn       U/B: the scalar function (ir.c: folding and eval.c), else none
 *   libm     the C math library function the compiled code calls for it
 *            (codegen.c), or NULL: codegen.c has an emitter of its own
 *   code     U/B: call if its compiled entry calls a function (the libm
 *            column's, libm's exp or log1p, or gradc's exp and tanh, which
 *            -O1 and up inline: cgmath.c), else inline; pow calls only for
 *            an exponent that is not a small literal integer (ir.c:
 *            pow_by_squaring).  The plan keeps calls out of row passes
 *            (plan_reuse.c); unit-op_code checks it against codegen.c.
 *            Leaves and M ops: inline (their code is no fused entry)
 *   builtin  the checker's arity/shape rule when `text(...)` is a builtin
 *            (check_expr.c: ELEM elementwise, PAIR two elementwise, REDUCE any →
 *            scalar, ALONG any → scalar or along a dimension d, SQUARE square
 *            matrix, SOFTMAX a vector or along d, KRON any two), NONE if not
 *            (ELEM is one argument of any shape: flatten's too)
 *   prec     print precedence (print.c: OR … POST, ATOM for calls and leaves)
 *   latex    LaTeX for a call, or NULL: \operatorname{text} (print.c)
 *   adj      the derivative rule adj_<adj> in diff_rules.c, none: no adjoint
 *            (leaves, comparisons, sign, not, detach) */
#define GRADC_OPS(X)                                                                                                 \
    X(CONST,     "const",     0, L, none,       NULL,    inline, NONE,    ATOM, NULL,                 none) /* num, 1×1 */                           \
    X(FILL,      "fill",      0, L, none,       NULL,    inline, NONE,    ATOM, NULL,                 none) /* num in every entry of shape */        \
    X(EYE,       "eye",       0, L, none,       NULL,    inline, NONE,    ATOM, NULL,                 none) /* identity, shape n×n */                \
    X(INPUT,     "input",     0, L, none,       NULL,    inline, NONE,    ATOM, NULL,                 none) /* index: Module.inputs */               \
    X(SLOT,      "slot",      0, L, none,       NULL,    inline, NONE,    ATOM, NULL,                 none) /* index: Module.slots, current value */ \
    X(DIMVAL,    "dim",       0, L, none,       NULL,    inline, NONE,    ATOM, NULL,                 none) /* index: dimension symbol as a value */ \
    X(COTAN,     "cotangent", 0, L, none,       NULL,    inline, NONE,    ATOM, NULL,                 none) /* the output's cotangent */             \
    X(NEG,       "-",         1, U, f_neg,      NULL,    inline, NONE,    NEG,  NULL,                 neg)                                           \
    X(EXP,       "exp",       1, U, gradc_exp,  NULL,    call,   ELEM,    ATOM, "\\exp",              exp) /* mathfn.c, cgmath.c */             \
    X(LOG,       "log",       1, U, log,        "log",   call,   ELEM,    ATOM, "\\log",              log)                                           \
    X(SIN,       "sin",       1, U, sin,        "sin",   call,   ELEM,    ATOM, "\\sin",              sin)                                           \
    X(COS,       "cos",       1, U, cos,        "cos",   call,   ELEM,    ATOM, "\\cos",              cos)                                           \
    X(TAN,       "tan",       1, U, tan,        "tan",   call,   ELEM,    ATOM, "\\tan",              tan)                                           \
    X(TANH,      "tanh",      1, U, gradc_tanh, NULL,    call,   ELEM,    ATOM, "\\tanh",             tanh) /* mathfn.c, cgmath.c */            \
    X(SQRT,      "sqrt",      1, U, sqrt,       NULL,    inline, ELEM,    ATOM, NULL,                 sqrt)                                          \
    X(ABS,       "abs",       1, U, fabs,       NULL,    inline, ELEM,    ATOM, NULL,                 abs)                                           \
    X(LOG1P,     "log1p",     1, U, log1p,      "log1p", call,   ELEM,    ATOM, NULL,                 log1p)                                         \
    X(SIGMOID,   "sigmoid",   1, U, f_sigmoid,  NULL,    call,   ELEM,    ATOM, NULL,                 sigmoid)                                       \
    X(RELU,      "relu",      1, U, f_relu,     NULL,    inline, ELEM,    ATOM, NULL,                 relu)                                          \
    X(SOFTPLUS,  "softplus",  1, U, f_softplus, NULL,    call,   ELEM,    ATOM, NULL,                 softplus)                                      \
    X(EXPM1,     "expm1",     1, U, expm1,      "expm1", call,   ELEM,    ATOM, NULL,                 expm1)                                         \
    X(ATAN,      "atan",      1, U, atan,       "atan",  call,   ELEM,    ATOM, "\\arctan",           atan)                                          \
    X(ASIN,      "asin",      1, U, asin,       "asin",  call,   ELEM,    ATOM, "\\arcsin",           asin)                                          \
    X(ACOS,      "acos",      1, U, acos,       "acos",  call,   ELEM,    ATOM, "\\arccos",           acos)                                          \
    X(SINH,      "sinh",      1, U, sinh,       "sinh",  call,   ELEM,    ATOM, "\\sinh",             sinh)                                          \
    X(COSH,      "cosh",      1, U, cosh,       "cosh",  call,   ELEM,    ATOM, "\\cosh",             cosh)                                          \
    X(ERF,       "erf",       1, U, erf,        "erf",   call,   ELEM,    ATOM, NULL,                 erf)                                           \
    X(ERFC,      "erfc",      1, U, erfc,       "erfc",  call,   ELEM,    ATOM, NULL,                 erfc)                                          \
    X(LGAMMA,    "lgamma",    1, U, gradc_lgamma, "gradc_lgamma", call,   ELEM, ATOM, "\\log\\Gamma", lgamma) /* runtime/special.c */        \
    X(DIGAMMA,   "digamma",   1, U, gradc_digamma, "gradc_digamma", call,   ELEM, ATOM, "\\psi",    digamma)                                       \
    X(LOGSIGMOID, "logsigmoid", 1, U, f_logsigmoid, NULL, call,   ELEM,   ATOM, NULL,                 logsigmoid) /* min(x, 0) - log1p(exp(-|x|)) */ \
    X(FLOOR,     "floor",     1, U, floor,      "floor", call,   ELEM,    ATOM, NULL,                 none) /* for bounds; floor' = 0 */        \
    X(SIGN,      "sign",      1, U, f_sign,     NULL,    inline, ELEM,    ATOM, NULL,                 none) /* -1, 0, 1; sign' = 0 (spec §8) */       \
    X(NOT,       "not",       1, U, f_not,      NULL,    inline, NONE,    NOT,  NULL,                 none) /* 1 if the entry is 0, else 0 */        \
    X(DETACH,    "detach",    1, U, f_id,       NULL,    inline, ELEM,    ATOM, NULL,                 none) /* identity; blocks the adjoint */       \
    X(ADD,       "+",         2, B, f_add,      NULL,    inline, NONE,    ADD,  NULL,                 add)                                           \
    X(SUB,       "-",         2, B, f_sub,      NULL,    inline, NONE,    ADD,  NULL,                 sub)                                           \
    X(MUL,       ".*",        2, B, f_mul,      NULL,    inline, NONE,    MUL,  NULL,                 mul) /* elementwise, or scalar × anything */   \
    X(DIV,       "./",        2, B, f_div,      NULL,    inline, NONE,    MUL,  NULL,                 div)                                           \
    X(DIVSAFE,   "./",        2, B, f_divsafe,  NULL,    inline, NONE,    MUL,  NULL,                 divsafe) /* a ./ b, but 0 where b == 0 */      \
    X(POW,       ".^",        2, B, pow,        "pow",   call,   NONE,    POW,  NULL,                 pow)                                           \
    X(MAX,       "max",       2, B, f_max,      NULL,    inline, PAIR,    ATOM, NULL,                 max)                                           \
    X(MIN,       "min",       2, B, f_min,      NULL,    inline, PAIR,    ATOM, NULL,                 min)                                           \
    X(POLYGAMMA, "polygamma", 2, B, gradc_polygamma, "gradc_polygamma", call,   POLYGAMMA, ATOM, NULL, polygamma) /* psi^(k)(x), k a literal */ \
    X(CLAMPLO,   "max",       2, B, f_clamplo,  NULL,    inline, NONE,    ATOM, NULL,                 clamplo) /* clamp(x, lo, hi) is            */ \
    X(CLAMPHI,   "min",       2, B, f_clamphi,  NULL,    inline, NONE,    ATOM, NULL,                 clamphi) /* CLAMPHI(CLAMPLO(x, lo), hi)    */ \
    X(LT,        "<",         2, B, f_lt,       NULL,    inline, NONE,    CMP,  NULL,                 none) /* comparisons give 1.0 or 0.0 */        \
    X(LE,        "<=",        2, B, f_le,       NULL,    inline, NONE,    CMP,  NULL,                 none)                                          \
    X(GT,        ">",         2, B, f_gt,       NULL,    inline, NONE,    CMP,  NULL,                 none)                                          \
    X(GE,        ">=",        2, B, f_ge,       NULL,    inline, NONE,    CMP,  NULL,                 none)                                          \
    X(EQ,        "==",        2, B, f_eq,       NULL,    inline, NONE,    CMP,  NULL,                 none)                                          \
    X(NE,        "!=",        2, B, f_ne,       NULL,    inline, NONE,    CMP,  NULL,                 none)                                          \
    X(AND,       "and",       2, B, f_and,      NULL,    inline, NONE,    AND,  NULL,                 none)                                          \
    X(OR,        "or",        2, B, f_or,       NULL,    inline, NONE,    OR,   NULL,                 none)                                          \
    X(MATMUL,    "*",         2, M, none,       NULL,    inline, NONE,    MUL,  NULL,                 matmul)                                        \
    X(TRANSPOSE, "'",         1, M, none,       NULL,    inline, NONE,    POST, NULL,                 transpose)                                     \
    X(SUM,       "sum",       1, M, none,       NULL,    inline, ALONG,    ATOM, NULL,                 sum) /* all entries → 1×1 */                   \
    X(NORM,      "norm",      1, M, none,       NULL,    inline, REDUCE,  ATOM, NULL,                 norm) /* 2-norm / Frobenius → 1×1 */           \
    X(TRACE,     "trace",     1, M, none,       NULL,    inline, SQUARE,  ATOM, "\\operatorname{tr}", trace)                                         \
    X(DET,       "det",       1, M, none,       NULL,    inline, SQUARE,  ATOM, "\\det",              det)                                           \
    X(LOGDET,    "logdet",    1, M, none,       NULL,    inline, SQUARE,  ATOM, "\\log\\det",         logdet) /* log(det A); NaN where det A < 0 */  \
    X(LOGSUMEXP, "logsumexp", 1, M, none,       NULL,    inline, ALONG,    ATOM, NULL,                 logsumexp) /* over all entries, stable */      \
    X(INV,       "inv",       1, M, none,       NULL,    inline, SQUARE,  ATOM, NULL,                 inv)                                           \
    X(SOFTMAX,   "softmax",   1, M, none,       NULL,    inline, SOFTMAX, ATOM, NULL,                 softmax) /* column vector → column vector */   \
    X(DIAGM,     "diag",      1, M, none,       NULL,    inline, NONE,    ATOM, NULL,                 diagm) /* vector [n] → n×n diagonal matrix */  \
    X(DIAGV,     "diag",      1, M, none,       NULL,    inline, NONE,    ATOM, NULL,                 diagv) /* n×n matrix → its diagonal [n] */ \
    /* broadcasting and reductions along a dimension (spec §8); index: d */                                        \
    X(BCAST,     "bcast",     1, M, none,       NULL,    inline, NONE,    MUL,  NULL,                 bcast) /* a row or column expanded to shape */ \
    X(AMAX,      "amax",      1, M, none,       NULL,    inline, ALONG,   ATOM, NULL,                 amax) /* largest entry → 1×1 */                \
    X(AMIN,      "amin",      1, M, none,       NULL,    inline, ALONG,   ATOM, NULL,                 amin)                                          \
    X(SUMD,      "sum",       1, M, none,       NULL,    inline, NONE,    ATOM, NULL,                 sumd) /* d 1: down columns → 1×n; 2: → m×1 */  \
    X(AMAXD,     "amax",      1, M, none,       NULL,    inline, NONE,    ATOM, NULL,                 amaxd)                                         \
    X(AMIND,     "amin",      1, M, none,       NULL,    inline, NONE,    ATOM, NULL,                 amind)                                         \
    X(LSED,      "logsumexp", 1, M, none,       NULL,    inline, NONE,    ATOM, NULL,                 lsed) /* max-shifted */                        \
    X(SOFTMAXD,  "softmax",   1, M, none,       NULL,    inline, NONE,    ATOM, NULL,                 softmaxd) /* normalised along d */             \
    X(LOGSOFTMAXD, "log_softmax", 1, M, none,   NULL,    inline, SOFTMAX, ATOM, "\\operatorname{log\\_softmax}", logsoftmaxd) \
    /* where, solve, chol (spec §8 "Selection", "Linear algebra") */                                                 \
    X(PICK,      "where",     2, B, f_pick,     NULL,    inline, NONE,    ATOM, NULL,                 pick) /* c != 0 ? a : exact 0; where(c, a, b) = PICK(c, a) + PICK(not c, b) */ \
    X(LU,        "lu",        1, M, none,       NULL,    inline, NONE,    ATOM, NULL,                 lu) /* LU factors of A, n×n + n pivots; only an operand of SOLVE/SOLVET */ \
    X(SOLVE,     "solve",     2, M, none,       NULL,    inline, NONE,    ATOM, NULL,                 solve) /* SOLVE(LU(A), B) = A \\ B */ \
    X(SOLVET,    "solve",     2, M, none,       NULL,    inline, NONE,    ATOM, NULL,                 solvet) /* SOLVET(LU(A), B) = A' \\ B, same factors */ \
    X(CHOL,      "chol",      1, M, none,       NULL,    inline, SQUARE,  ATOM, NULL,                 chol) /* lower L, L*L' = A, A's lower triangle read */ \
    X(TRIL,      "tril",      1, M, none,       NULL,    inline, ELEM,    ATOM, NULL,                 tril) /* lower triangle, diagonal included (chol's adjoint) */ \
    /* concatenation, indexing and slicing (spec §8); SLICE and PAD take their 0-based row and */ \
    /* column offsets as scalar value nodes (they may read a for index); a SLICE's num is its  */ \
    /* source position (node_loc) when its offsets are checked at run time, else 0             */ \
    X(VCAT,      "vcat",      2, M, none,       NULL,    inline, NONE,    ATOM, NULL,                 vcat) /* [a; b] */                             \
    X(HCAT,      "hcat",      2, M, none,       NULL,    inline, NONE,    ATOM, NULL,                 hcat) /* [a, b] */                             \
    X(SLICE,     "slice",     3, M, none,       NULL,    inline, NONE,    ATOM, NULL,                 slice) /* x's block of shape at (r, c) */     \
    X(PAD,       "pad",       3, M, none,       NULL,    inline, NONE,    ATOM, NULL,                 pad) /* zeros of shape, g at (r, c) */ \
    /* Kronecker products (a gradc extension: derive --hessian's blocks over matrix inputs) */ \
    X(KRON,      "kron",      2, M, none,       NULL,    inline, KRON,    ATOM, NULL,                 kron) /* [ra*rb, ca*cb], MATLAB's kron */ \
    X(FLATTEN,   "flatten",   1, M, none,       NULL,    inline, ELEM,    ATOM, NULL,                 flatten) /* entries row-major → [r*c] */

typedef enum Op {
#define X(name, text, arity, kind, fn, libm, code, builtin, prec, latex, adj) OP_##name,
    GRADC_OPS(X)
#undef X
    OP_COUNT
} Op;

typedef enum OpKind { OK_L, OK_U, OK_B, OK_M } OpKind;

typedef struct OpInfo {
    const char *name;     /* "ADD" */
    const char *text;     /* "+", "exp" … (as printed) */
    int arity;
    OpKind kind;
    double (*fn1)(double);          /* U ops: the scalar function */
    double (*fn2)(double, double);  /* B ops */
    const char *libm;     /* the libm function compiled code calls, or NULL */
    bool calls;           /* its compiled entry calls a function (code: call) */
} OpInfo;
extern const OpInfo op_info[OP_COUNT];

typedef struct Node Node;
struct Node {
    Op op;
    int id;               /* creation order: children always have smaller ids */
    int nargs;
    Node *args[3];        /* a third only for SLICE and PAD (ir_node3) */
    Shape shape;
    double num;           /* CONST, FILL */
    int index;            /* INPUT, SLOT, DIMVAL; d of SUMD … LOGSOFTMAXD */
    const int *slots;     /* sorted indices of every SLOT this node reads */
    int nslots;
    uint32_t hash;
    Node *chain;          /* next in the hash bucket */
};

/* A mutable variable of a program: a loop-carried value, an if's result,
 * an adjoint accumulator, a loop index. */
typedef struct Slot {
    const char *name;     /* for printing: "b", "c", "adj_b" */
    Shape shape;
} Slot;

/* Structured statements.  Forward programs use IF/WHILE/FOR only; the
 * gradient program adds SET, PUSH and POP (and FOR with reverse = true).
 *
 *   SET    slots[i] = vals[i] for all i, in parallel
 *   IF     if cond != 0 run then_block, slots = then_vals
 *          else run else_block, slots = else_vals
 *   WHILE  slots = vals (init); while cond != 0: run body, slots = next
 *          (parallel); after max_iter iterations → GRADC_EMAXITER at loc.
 *          count_slot >= 0 receives the number of iterations.
 *   FOR    slots = vals (init); for i = 1..count (reverse: count..1):
 *          index_slot = i (if >= 0), run body, slots = next.
 *          count is a scalar node (CONST, DIMVAL or SLOT) rounded down.
 *   PUSH   push every entry of vals[0], vals[1], … onto the tape
 *   POP    pop into slots[n-1], …, slots[0] (so PUSH a,b / POP a,b restores)
 */
typedef enum StmtKind { S_SET, S_IF, S_WHILE, S_FOR, S_PUSH, S_POP } StmtKind;

typedef struct Block Block;
typedef struct GradCall GradCall;
typedef struct Stmt {
    StmtKind kind;
    Loc loc;
    int n;                /* number of slots / vals */
    int *slots;           /* n */
    Node **vals;          /* n: SET values, PUSH values, loop initial values */
    Node *cond;           /* IF, WHILE */
    Block *then_block, *else_block;
    Node **then_vals, **else_vals;   /* IF: n each */
    Block *body;          /* WHILE, FOR */
    Node **next;          /* loops: n */
    int index_slot;       /* FOR: -1 if the index is not used */
    Node *count;          /* FOR */
    bool reverse;         /* FOR */
    int count_slot;       /* WHILE: -1 if not recorded */
    int id;               /* forward constructs: numbered by check.c from 0 (diff.c's tables) */
    const GradCall *call; /* IF: a grad()/hessian() through loops (gradcall.c), or NULL */
} Stmt;

struct Block {
    Stmt **stmts;
    int n, cap;
};

/* A function the executors run: the statements, then `value` and each
 * gradient evaluated at the end. */
typedef struct Func {
    Block *body;
    Node *value;          /* the output */
    Node **grads;         /* Module.nwrt gradients, NULL in a forward function */
    Node **aux;           /* Module.naux auxiliary outputs (spec §8), not differentiated */
} Func;

typedef struct Input {
    const char *name;
    Loc loc;
    int ndims;            /* 0 scalar, 1 vector, 2 matrix, as declared */
    Shape shape;
} Input;

/* The hash-consing table and the node/slot stores of one compilation. */
typedef struct Ir {
    Arena *arena;
    Node **buckets;
    int nbuckets, nnodes;
    VEC(Node *) nodes;    /* every node, indexed by id */
    VEC(Slot) slots;
} Ir;

/* A checked program: the result of check.c, completed by diff.c. */
typedef struct Module {
    Arena *arena;
    Source *src;
    Ir *ir;
    const char **dims;    /* dimension symbols, order of first appearance */
    int ndims;
    Input *inputs;
    int ninputs;
    int *wrt;             /* indices of the inputs to differentiate */
    int nwrt;
    const char *output_name;
    const char **aux_names;  /* `output y, a, b`: a, b (spec §8) */
    int naux;
    Func fwd;             /* the forward function */
    Func grad;            /* value and gradient (diff_reverse fills it) */
    bool has_control;     /* any IF/WHILE/FOR */
    int nconstructs;      /* forward IF/WHILE/FOR statements, ids 0..nconstructs-1 */
    int max_depth;        /* deepest loop nesting */
    int64_t checkpoint;   /* diff: store every k-th loop state, recompute the rest (0: all) */
    bool keep_detach;     /* diff: adjoints keep detach() (tangent.c differentiates them again) */
} Module;

Ir *ir_new(Arena *a);
int ir_slot(Ir *ir, const char *name, Shape shape);    /* a new slot */
/* The raw hash-consed constructor: returns the existing node when one with
 * the same op, args, shape, num and index exists.  No simplification. */
Node *ir_node(Ir *ir, Op op, Shape shape, Node *a, Node *b, double num, int index);
Node *ir_node3(Ir *ir, Op op, Shape shape, Node *a, Node *b, Node *c, double num, int index);
/* A SLICE's source position, packed into its num (0: no run-time check). */
double loc_pack(Loc l);
Loc node_loc(const Node *n);

Block *block_new(Arena *a);
Stmt *stmt_new(Arena *a, StmtKind kind, int n);     /* arrays for n slots allocated */
void block_push(Arena *a, Block *b, Stmt *s);
bool node_reads_slot(const Node *n, int slot);

/* A hash map from non-negative ints (node ids, slots) to pointers, in an
 * arena: its size follows what it holds, not the number of nodes or slots,
 * so a pass per construct stays linear in the program. */
typedef struct IntMap {
    Arena *arena;
    int *keys;            /* key + 1; 0: empty */
    void **vals;
    int cap, len;
} IntMap;
IntMap *intmap_new(Arena *a);
void **intmap_put(IntMap *m, int key);            /* the value's place (NULL if new) */
void **intmap_find(const IntMap *m, int key);     /* NULL when key is absent */

/* A set of slots: any slot can be added (diff.c creates slots while it
 * fills sets), there is no array to overrun; a negative slot is an
 * internal error. */
typedef struct SlotSet {
    IntMap map;
} SlotSet;
SlotSet *slotset_new(Arena *a);
void slotset_add(SlotSet *s, int slot);
bool slotset_has(const SlotSet *s, int slot);
void slotset_clear(SlotSet *s);                    /* empty again, keeping its room */
/* Adds every slot the statement (block) may write, nested statements included. */
void stmt_writes(const Stmt *s, SlotSet *w);
void block_writes(const Block *b, SlotSet *w);

/* ===================================================================== */
/* simplify.c — smart constructors: every node is built through these,   */
/* so the DAG is always simplified (folding, identities, like terms,      */
/* transpose pushing, scalar factors pulled out).                          */
/* ===================================================================== */

Node *mk_const(Ir *ir, double v);
Node *mk_fill(Ir *ir, double v, Shape s);       /* v in every entry; 1×1 → CONST */
Node *mk_zero(Ir *ir, Shape s);
Node *mk_eye(Ir *ir, Dim n);
Node *mk_input(Ir *ir, int index, Shape s);
Node *mk_slot(Ir *ir, int slot);
Node *mk_dimval(Ir *ir, int sym);
Node *mk_cotan(Ir *ir, Shape s);
Node *mk1(Ir *ir, Op op, Node *a);              /* unary ops and M ops of one arg */
Node *mk2(Ir *ir, Op op, Node *a, Node *b);     /* binary ops and MATMUL */
/* Broadcasting (spec §8): x (a row or a column, or a scalar) expanded to
 * shape, never materialised by the backend; x itself when the shapes agree. */
Node *mk_bcast(Ir *ir, Node *x, Shape shape);
/* A reduction or normalisation along d (1: down each column, 2: across each
 * row): op is SUMD, AMAXD, AMIND, LSED, SOFTMAXD or LOGSOFTMAXD; along a
 * dimension of literal size 1 or to a 1×1 result it is the simpler op. */
Node *mk_along(Ir *ir, Op op, Node *x, int d);
/* n's op (and index, shape) applied to new arguments a, b (b NULL if unary). */
Node *mk_like(Ir *ir, const Node *n, Node *a, Node *b);
/* the same for n's nargs arguments a[0..nargs) (three: mk3, as SLICE, PAD) */
Node *mk_like_args(Ir *ir, const Node *n, Node *const *a);
/* Which dimensions BCAST n expands: 1 rows, 2 columns, 3 both. */
int bcast_dims(const Node *n);
/* SLICE and PAD: x's block of shape s at the 0-based offsets (r, c), scalar
 * value nodes; a SLICE's num: loc_pack of the index's position when the
 * block is checked at run time, or 0.  A PAD out of range is all zeros: its
 * slice was never taken (an adjoint moved out of a loop that ran no time).
 * VCAT, HCAT through mk2.  mk_dim: a dimension's value (a scalar). */
Node *mk3(Ir *ir, Op op, Shape s, Node *x, Node *r, Node *c, double num);
Node *mk_dim(Ir *ir, Dim d);
bool node_is_zero(const Node *n);               /* CONST 0 or FILL 0 */
/* A \ B (A' \ B when trans) as SOLVE(LU(A), B) (SOLVET): the solves of one
 * A share its factors; a 1×1 A divides. */
Node *mk_solve(Ir *ir, Node *a, Node *b, bool trans);
bool node_is_const(const Node *n, double v);    /* CONST v or FILL v */
/* x.^e for a literal e, rounded as the compiled code computes it */
double pow_literal(double x, double e);
/* ir.c: is x.^e multiplications (an integer |e| <= 16), as pow_literal and
 * codegen.c's e_pow compute it, not a call of pow? */
bool pow_by_squaring(double e);
/* Does n's compiled entry call a function (GRADC_OPS's code column; x.^e
 * only when e is not a literal pow_by_squaring takes)? */
bool node_calls(const Node *n);

/* mathfn.c: exp and tanh as fixed sequences of IEEE operations (EXP, TANH,
 * and the exp inside softmax and logsumexp; sigmoid, softplus, logsigmoid
 * keep libm's exp in both executors: docs/design.md);
 * cgmath.c emits the same sequences, so the interpreter and compiled code
 * agree bit for bit, and the vectoriser can vectorise the compiled ones.
 * The constants both use: */
#define MATHFN_LOG2E 0x1.71547652b82fep0     /* log2(e) */
#define MATHFN_SHIFT 0x1.8p52                /* x + 1.5·2^52 rounds x to an integer */
#define MATHFN_LN2HI 0x1.62e42fefa39efp-1    /* ln 2 rounded … */
#define MATHFN_LN2LO 0x1.abc9e3b39803fp-56   /* … and the remainder */
#define MATHFN_SIGN 0x8000000000000000ull
enum { MATHFN_NTAYLOR = 12 };
extern const double mathfn_taylor[MATHFN_NTAYLOR];   /* 1/2!, 1/3! … 1/13! */
double gradc_exp(double x);
double gradc_tanh(double x);

/* ===================================================================== */
/* check.c — names, shapes, control-flow rules; builds the forward IR    */
/* (with check_expr.c: expressions, check_fn.c: user functions; check.h) */
/* ===================================================================== */

/* Checks the program and builds Module.fwd.  On errors (the parser's held
 * ones included) prints them all in source order, the first at the position
 * conformance/README.md tables, and returns NULL. */
Module *check_program(Arena *a, Ast *ast);

/* ===================================================================== */
/* diff.c — symbolic reverse mode through structured control flow         */
/* (with diff_activity.c, diff_rules.c; private header diff.h)            */
/* ===================================================================== */

/* Builds Module.grad from Module.fwd: the forward sweep with recording,
 * the output, then the reverse sweep (see docs/design.md). */
void diff_reverse(Module *m);

/* Reverse mode over a DAG alone (no statements), for grad()/hessian() in
 * programs: the adjoint reaching input `input` (of shape xshape; a zero when
 * none does) from the scalar e seeded with 1.  SLOT nodes are constants
 * (the caller makes sure none depends on the input); detach(e) stays a
 * constant in the result, which may be differentiated again. */
Node *diff_dag_grad(Ir *ir, Node *e, int input, Shape xshape, int ninputs);
/* The adjoint rule of n applied to seed, each operand's share as the rule
 * gives it (no broadcast summed back; an operand used twice gets the sum in
 * the first place, NULL in the second): with a seed of ones, the entrywise
 * partial derivatives of an elementwise op; with 1, a reduction's gradient.
 * false when n's op has no rule (a zero derivative). */
bool diff_partials(Ir *ir, Node *n, Node *seed, Node *parts[2]);
/* The slots of body's constructs whose values depend on input `input`
 * (activity as diff_reverse sees it). */
SlotSet *diff_active_slots(Ir *ir, Block *body, int input, int ninputs);

/* ===================================================================== */
/* hessian.c — grad()/hessian() values, Hessians as closed forms         */
/* ===================================================================== */

/* The Jacobian of g (its entries in row-major order) with respect to input
 * `input` (a scalar, vector or matrix: N entries, row-major), a [numel(g),
 * N] matrix, by a forward pass with the tangent eye(N) over g's DAG, matrix
 * nodes' tangents as kron forms (textbook: diagonal scalings as diag(p)*T
 * and common factors taken out, for derive; else p .* T, cheaper); NULL
 * with *why set (a phrase naming xname) when a node between them has no
 * forward rule here (a concatenation of matrices that depend on the input…). */
Node *hess_jacobian(Ir *ir, Node *g, int input, const char *xname, Shape xshape,
                    bool textbook, const char **why);
/* hess_straighten.c: e ready for diff_dag_grad with respect to input
 * `input`: the results of straight-line ifs (branches without statements)
 * of `body` that depend on it written as where(c, a, b); NULL and *why (a
 * phrase after "e", naming xname: "depends on x through s, a result of the for loop at line 4")
 * when e depends on it through a loop, an if with nested statements, or a
 * value of a construct still open (not in body; then *open is set, when
 * open is not NULL). */
Node *hess_straighten(Ir *ir, const Block *body, Node *e, int input, const char *xname,
                      int ninputs, const char **why, bool *open);
/* `gradc derive --hessian`: the closed form of the Hessian block of every
 * pair of wrt inputs i <= j (rows x_i's entries, columns x_j's, row-major),
 * in m's arena (H[i*nwrt + j]), or NULL there with the reason in
 * (*block_why)[i*nwrt + j] (a matrix intermediate with no rule); NULL after
 * setting *why when there is none at all (a non-scalar output, control flow). */
Node **hess_closed_forms(Module *m, const char **why, const char ***block_why);
/* hess_chol.c: e (a DAG) with the identities of L = chol(K), K symmetric by
 * its form, applied (solve(L', solve(L, B)) = K \\ B, sum(log(diag(L))) =
 * 0.5*logdet(K), S' = S, ...: docs/design.md), for derive --hessian's
 * closed forms; e itself when it reads no chol, unless always (the
 * gradient and blocks of an output so rewritten: S' = S again). */
Node *hess_chol_identities(Ir *ir, Node *e, bool always);
/* The whole N×N Hessian over m's wrt inputs (scalars or columns, in wrt
 * order) as one node, from the closed forms of every block (for values:
 * p .* T, not diag(p)*T): the block (j, i) below the diagonal is the
 * transpose of the block (i, j), a diagonal block is exactly symmetric by
 * its form (A + A', diag(p), 4*eye(n), ...) or averaged as (B + B')/2; zeros
 * are +0.  A matrix input's entries are in row-major order (Kronecker
 * blocks).  NULL when a block has no closed form or multiplies a kron as a
 * dense matrix (NAME_hessian then takes N Hessian-vector products). */
Node *hess_matrix(Module *m);
/* A module whose gradient function computes m's value and, as its only
 * gradient, hess_matrix(m) (nwrt = 1, no auxiliary outputs; its body m's
 * forward body), for NAME_hessian, eval and check --hessian; NULL when
 * hess_matrix is (or the output is not a scalar). */
Module *hess_closed_module(Module *m);

/* ===================================================================== */
/* gradcall.c — grad()/hessian() values through loops: sub-programs      */
/* ===================================================================== */

/* A grad(e, x) or hessian(e, x) whose e depends on the input x through a
 * loop or nested constructs: an IF on the constant 1 (Stmt.call) whose
 * then-block runs the gradient program of the statements before it with
 * output e (for hessian, its tangent program per unit direction), saving
 * and restoring the slots that re-runs, and whose one result is the value. */
struct GradCall {
    Module *sub;          /* the statements before the call, output e, wrt x; grad built */
    Node *e;
    int input;            /* x */
    bool hessian;
    Loc loc;              /* the call */
    int depth;            /* 1 + the deepest such value e reads (each level re-runs the last) */
};
/* How deep grad()/hessian() sub-programs may nest (read one another's
 * values): each level runs the one below forward and backward with
 * tangents, about 4 times its work, so the program grows as 4^depth. */
#define GRADCALL_MAX_DEPTH 5
/* The depth the call's sub-program would have: 1 + the largest depth of
 * the grad()/hessian() statements of body that e reads, directly or through
 * the statements between. */
int gradcall_depth(Arena *a, const Block *body, const Node *e);
/* The statement for the call (id unset); m: the program so far (fwd.body
 * its top block, inputs and dims declared so far). */
Stmt *gradcall_stmt(Module *m, Node *e, int input, Shape xshape, bool hessian, Loc loc);
/* diff.c's reverse of a grad() statement s (not a hessian): statements
 * that leave in adj[u] (NULL: nothing), for every input u with
 * wrt_input[u], the adjoint gbar of s's result carried to u, i.e.
 * (d2e/du dx) gbar, by forward over reverse (tangent_dir). */
Block *gradcall_vjp(const Stmt *s, Node *gbar, const bool *wrt_input, Node **adj);

/* ===================================================================== */
/* print.c, print_prog.c — expressions and programs as text (derive)    */
/* ===================================================================== */

typedef enum PrintStyle { PRINT_EXPR, PRINT_LATEX } PrintStyle;
/* print.c: one expression. */
void print_node(FILE *out, const Module *m, const Node *n, PrintStyle style);
/* print.c: every slot's name as printed, by slot: slots of one name are
 * b, b_2, b_3 … (derive, --dump-plan) */
const char **slot_print_names(const Module *m);
/* print_prog.c, the programs: `gradc derive`: each gradient as `dy/dx = …`, or, with control flow, the
 * adjoint program in the language itself. */
void print_derivatives(FILE *out, const Module *m, PrintStyle style);
/* `gradc derive --hessian`: `d2y/dx2 = …` and `d2y/dxdz = …` for the
 * blocks H[i*nwrt + j], i <= j (hess_closed_forms), a comment with
 * why[i*nwrt + j] for a block that has no closed form. */
void print_hessians(FILE *out, const Module *m, Node *const *H, const char *const *why,
                    PrintStyle style);
/* `gradc derive --hessian` where control flow leaves no closed form: h =
 * tangent_module(m) as a program, `input v_x` per direction, then the
 * gradient `dy/dx = …` and the products `hv_x = …` (H*v's block for x). */
void print_hvp(FILE *out, const Module *h, PrintStyle style);

/* ===================================================================== */
/* eval.c — the reference evaluator: plain loops over the IR             */
/* ===================================================================== */

/* Run-time values bound to a module's inputs. */
typedef struct Bindings {
    int64_t *dims;          /* Module.ndims sizes */
    const double **inputs;  /* Module.ninputs arrays, row-major (scalar: 1 double) */
    const double *cotangent;/* output-shaped, or NULL for all ones */
    int64_t max_iter;       /* while-loop limit (default 1,000,000) */
    int jit_opt;            /* eval's JIT: the -O level it compiles at (default 0) */
    double **aux;           /* results: Module.naux buffers (each may be NULL), or NULL */
} Bindings;

#define GRADC_DEFAULT_MAX_ITER 1000000

int64_t shape_rows(Shape s, const int64_t *dims);
int64_t shape_cols(Shape s, const int64_t *dims);

/* Runs f.  value: room for the output; grads: Module.nwrt buffers (f.grads
 * != NULL only).  Returns 0 or a GRADC_E* status; on GRADC_EMAXITER *where is
 * the loc of the while that hit the limit. */
int eval_func(const Module *m, const Func *f, const Bindings *b,
              double *value, double **grads, Loc *where);

/* For `gradc check`: finite differences must see detach(e) as a constant,
 * as the gradient does.  A run with replay == false records the value of
 * every DETACH evaluation in order; a run with replay == true returns the
 * recorded values instead (or computes, and sets mismatch, when the run
 * takes another path).  Free vals with free(). */
typedef struct DetachRecord {
    double *vals;
    size_t len, cap, pos;
    bool replay, mismatch;
} DetachRecord;
int eval_func_frozen(const Module *m, const Func *f, const Bindings *b,
                     double *value, Loc *where, DetachRecord *rec);
/* The same with the gradients (f.grads): `check --hessian` differentiates
 * the gradient with detach(e) held at its recorded values. */
int eval_grads_frozen(const Module *m, const Func *f, const Bindings *b,
                      double *value, double **grads, Loc *where, DetachRecord *rec);

/* ===================================================================== */
/* plan.c — a Func as a schedule of kernels, before LLVM (plan.h)        */
/* ===================================================================== */

/* `gradc compile --dump-plan`: the plan of the forward and the gradient
 * function, as text (tests/golden/plan).  plan_sched.c walks the Func
 * for the schedule (and prints it); planpass.c finds dots in a matrix pass
 * and row passes (plansim.h: the walk's state they share). */
int plan_dump(const Module *m, FILE *out);
/* NAME_hessian's plan (compile --hessian --dump-plan): the gradient
 * function of hess (hess_closed_module of a module with nwrt wrt inputs),
 * its result labelled as the Hessian: d2y/dx2, or with several wrt inputs
 * d2y/d(x, z)2 with each block's label (d2y/dxdz …) as derive --hessian's. */
int plan_dump_hessian(const Module *hess, int nwrt, FILE *out);
/* NAME_hvp's plan (compile --hessian --dump-plan): the tangent module's
 * gradient function, as abi.c plans it. */
int plan_dump_hvp(const Module *hvp, FILE *out);

/* ===================================================================== */
/* codegen.c, jit.c, emit.c — LLVM                                       */
/* ===================================================================== */

/* (codegen.c's parts, sharing cg.h: codegen_stmt.c statements and results,
 * cgsum.c sums' loops, cgoutline.c kernels as functions, layout.c the
 * work layout and entry checks, abi.c the functions and ABI wrappers,
 * chunk.c, codegen_along.c, cgslice.c, cgpass.c the matrix and row passes;
 * target.c the target machine and passes) */

typedef struct CodegenOptions {
    const char *name;      /* symbol prefix: NAME, NAME_grad, NAME_work_size */
    int opt_level;         /* 0..3 */
    const char *triple;    /* NULL: host */
    int64_t max_iter;      /* while-loop limit; 0: GRADC_DEFAULT_MAX_ITER */
    const Module *hvp;     /* compile --hessian: tangent_module's result, whose gradient
                            * function becomes NAME_hvp (and NAME_hessian); NULL: none */
    const Module *hess;    /* with hvp: hess_closed_module's result, whose gradient function
                            * becomes NAME_hessian; NULL: NAME_hessian from N products */
    bool grad_only;        /* the JIT's eval of a gradient: NAME_grad's code only */
} CodegenOptions;

/* cname.c: why NAME may not name a compiled program's functions (a C
 * keyword, main, a C library or runtime name, not an identifier; the same
 * for NAME_grad and NAME_work_size), or NULL when it may. */
const char *c_name_problem(Arena *a, const char *name);
bool c_keyword(const char *s);     /* C and C++ keywords, size_t, int64_t */

/* `gradc compile`: object file (or textual IR with emit_llvm) and header. */
int emit_object(const Module *m, const CodegenOptions *o, const char *obj_path,
                bool emit_llvm);
int emit_header(const Module *m, const CodegenOptions *o, const char *h_path);
/* `gradc compile --describe`: the ABI as JSON (names, dims, inputs with
 * shapes, output, wrt, statuses; docs/language.md), in m's arena. */
char *emit_describe(const Module *m, const CodegenOptions *o);
/* `gradc compile --shared`: a shared library linked against libgradc by the
 * system's C compiler driver, with the --describe JSON as gradc_describe. */
int emit_shared(const Module *m, const CodegenOptions *o, const char *so_path);
/* `gradc eval`: JIT-compile and run, same contract as eval_func; -1 when
 * the JIT could not compile it (after an error message). */
int jit_eval(const Module *m, bool want_grad, const Bindings *b,
             double *value, double **grads, Loc *where);
/* Compile once, run often (`gradc check --jit`): jit_open compiles the
 * forward and (when m->grad has one) the gradient function with a while
 * limit of max_iter (0: the default) at -O opt_level; NULL after an error
 * message. */
typedef struct Jit Jit;
Jit *jit_open(const Module *m, int64_t max_iter, int opt_level);
int jit_run(Jit *j, bool want_grad, const Bindings *b, double *value, double **grads,
            Loc *where);
void jit_close(Jit *j);

/* ===================================================================== */
/* tangent.c — forward mode over the gradient program: Hessian-vector     */
/* products and Hessians (spec §9)                                        */
/* ===================================================================== */

/* The Hessian-vector module of m (scalar output; m->keep_detach set before
 * diff_reverse, which it runs if m->grad is not built): m's inputs followed
 * by one direction v_k per wrt input (of its shape), wrt = m's wrt inputs
 * followed by the directions, and a gradient function that returns the
 * value, grads[0..k) = the gradient and grads[k..2k) = H·v.  Its forward
 * function is m's.  NULL after a message (a non-scalar output, an op with
 * no tangent rule). */
Module *tangent_module(Module *m);
/* Forward over reverse inside a program (gradcall.c): the statements of
 * m->grad's tangent program with input i's direction the node dir[i]
 * (NULL: zero; dir has m->ninputs entries), and in tgrads[k] the tangent
 * of m->grad.grads[k].  NULL after a message (an op with no tangent rule). */
Block *tangent_dir(Module *m, Node *const *dir, Node **tgrads);
/* Whether op has a forward-mode rule (tests/unit/test_tangent.c). */
bool tangent_has_rule(Op op);
/* N: the entries of the wrt inputs of h's program under dims. */
int64_t hessian_order(const Module *h, const int64_t *dims);
/* The N×N Hessian (row-major, over the wrt inputs flattened and
 * concatenated), from N products with unit directions run by the JIT j (or
 * the interpreter when j is NULL), exactly symmetrised as (H + H')/2; b
 * binds m's inputs.  value (room for 1) and grads (m's nwrt buffers, or
 * NULL) get the value and gradient.  0 or a GRADC_E* status. */
int hessian_eval(const Module *h, Jit *j, const Bindings *b, double *value, double **grads,
                 double *H, Loc *where);
/* N for m itself: the entries of its wrt inputs under dims. */
int64_t hessian_size(const Module *m, const int64_t *dims);
/* The N×N Hessian from its closed form: hc (hess_closed_module) run by the
 * JIT j opened on hc, or the interpreter when j is NULL; b binds m's inputs
 * (its cotangent is not applied).  0 or a GRADC_E* status. */
int hessian_closed_eval(const Module *hc, Jit *j, const Bindings *b, double *H, Loc *where);

/* ===================================================================== */
/* fdcheck.c — `gradc check`: gradients against central finite differences */
/* ===================================================================== */

typedef struct FdCheckOptions {
    const char *dims;     /* "n=5,m=3" or NULL (every symbol 3) */
    const char *inputs;   /* a JSON inputs file: check at that point, or NULL */
    uint64_t seed;
    double tol;           /* default 1e-6 */
    bool use_jit;
    const Module *hess;   /* --hessian: hess_closed_module(m), H from its closed form, or NULL */
    const Module *hvp;    /* --hessian: tangent_module(m); also compare the Hessian with
                           * central differences of the gradient */
} FdCheckOptions;
/* Prints the worst relative error per wrt input; returns 0 when all are
 * within tol (tol > 0), 1 otherwise, when nothing was checked (all zero or
 * not finite), or on error. */
int fdcheck_run(const Module *m, const FdCheckOptions *o);

/* plot.c — `gradc plot`: the output and its derivative over a range, as SVG */
typedef struct PlotOptions {
    double lo, hi;        /* the swept input's range */
    const char *inputs;   /* JSON file holding the other inputs, or NULL (all 1) */
    bool tangent;         /* draw the tangent line at x0 */
    double x0;
} PlotOptions;
int plot_svg(const Module *m, const PlotOptions *po, const char *svg_path);

/* ===================================================================== */
/* json.c — eval's input and output                                      */
/* ===================================================================== */

/* The text parsed by jansson, strictly (one value, no duplicate keys, no
 * NaN, numbers that are doubles): json_decref the tree as soon as its
 * values are copied out.  NULL after a FILE:LINE:COL message. */
typedef struct json_t json_t;
json_t *json_parse(const Source *src);
/* The file read (capped) and parsed; *src gets its text (malloc'd: free
 * src->text when done, even on failure when *src is set). */
json_t *json_parse_file(Arena *a, const char *path, const Source **src);
const char *json_kind_name(const json_t *j);   /* "an array", "a number", ... */

/* Reads the inputs file: binds every dimension symbol from the shapes and
 * copies each input; errors (bad JSON, missing input, a dimension that
 * disagrees) are printed and return false. */
bool json_read_inputs(const Module *m, const char *path, Bindings *b, Arena *a);
/* Reads a cotangent of the output's shape. */
bool json_read_cotangent(const Module *m, const char *path, Bindings *b, Arena *a);
/* The same from a buffer of len bytes (any bytes, NULs included) that
 * messages call name: for tests and fuzzing. */
bool json_parse_inputs(const Module *m, const char *name, const char *text, size_t len,
                       Bindings *b, Arena *a);
/* Prints {"value": V, "gradient": {...}} with 17 significant digits. */
void json_print_result(FILE *out, const Module *m, const Bindings *b,
                       const double *value, double *const *grads);
/* The same with "hessian": H (n×n, row-major) after the gradient. */
void json_print_result_hessian(FILE *out, const Module *m, const Bindings *b,
                               const double *value, double *const *grads,
                               const double *H, int64_t n);

#endif
