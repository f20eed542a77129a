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
    __attribute__((format(printf, 2, 3)));

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
Source *source_from_string(Arena *a, const char *path, const char *text);

/* Prints `FILE:LINE:COL: error: MESSAGE`, the source line and a caret under
 * the column, to stderr.  With loc.line == 0 prints `FILE: error: MESSAGE`. */
void diag_error(const Source *src, Loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_verror(const Source *src, Loc loc, const char *fmt, va_list ap);
/* `gradc: error: MESSAGE` for errors with no source position (bad JSON…). */
void diag_plain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

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
} ExprKind;

typedef enum BinOp {
    B_ADD, B_SUB, B_MUL, B_DIV, B_EMUL, B_EDIV, B_POW, B_EPOW,
    B_LT, B_LE, B_GT, B_GE, B_EQ, B_NE, B_AND, B_OR,
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
    Expr **args;       /* EX_CALL */
    int nargs;
};

typedef enum AstStmtKind {
    AST_INPUT, AST_ASSIGN, AST_OUTPUT, AST_WRT, AST_IF, AST_WHILE, AST_FOR,
} AstStmtKind;

/* A dimension in `input A[n, 3]`: a symbol (sym != NULL) or a literal. */
typedef struct DimRef {
    const char *sym;
    int64_t lit;
    Loc loc;
} DimRef;

typedef struct AstStmt AstStmt;
typedef struct AstBlock {
    AstStmt **stmts;
    int n;
} AstBlock;

struct AstStmt {
    AstStmtKind kind;
    Loc loc;              /* first character of the statement (the keyword or the assigned name) */
    const char *name;     /* INPUT, ASSIGN target, OUTPUT, FOR variable */
    Loc name_loc;
    int ndims;            /* INPUT: 0 scalar, 1 vector, 2 matrix */
    DimRef dims[2];
    Expr *value;          /* ASSIGN value; IF/WHILE condition */
    const char **names;   /* WRT */
    Loc *name_locs;
    int nnames;
    AstBlock then_block;  /* IF */
    AstBlock else_block;  /* IF; an `elif` is an else block holding one AST_IF */
    bool has_else;
    AstBlock body;        /* WHILE, FOR */
    Expr *for_lo, *for_hi;/* FOR i in lo:hi (checked: lo is 1, hi a literal or dimension) */
};

typedef struct Ast {
    Source *src;
    AstBlock top;
} Ast;

/* Parses src; on the first syntax error prints it and returns NULL.
 * Nesting deeper than PARSE_MAX_DEPTH is a clean error, never a crash. */
#define PARSE_MAX_DEPTH 1000
Ast *parse_source(Arena *a, Source *src);

Expr *ast_expr(Arena *a, ExprKind kind, Loc loc);
AstStmt *ast_stmt(Arena *a, AstStmtKind kind, Loc loc);
void ast_block_push(Arena *a, AstBlock *b, AstStmt *s);

/* ===================================================================== */
/* ir.c — shapes, the hash-consed expression DAG, structured programs    */
/* ===================================================================== */

/* A dimension: a symbol (sym >= 0, an index into Module.dims) or a literal
 * size (sym < 0, n >= 0).  Two dims are equal only if both are the same
 * symbol or both the same literal. */
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
Shape shape_scalar(void);
Shape shape_make(Dim rows, Dim cols);
/* "[n, n]", "[m]" (a column vector), "scalar", "[1, n]" … */
const char *shape_str(Arena *a, Shape s, const char *const *dimnames);

/* The operations of the DAG.  X(name, text, arity, kind)
 * kind: L leaf, U elementwise unary, B elementwise binary (a scalar side
 * broadcasts), M anything else (shape-changing). The table in ir.c gives
 * each op its evaluation function; simplify.c and diff.c have rule tables
 * indexed by op. */
#define GRADC_OPS(X)                                                     \
    X(CONST,     "const",     0, L) /* num, 1×1 */                        \
    X(FILL,      "fill",      0, L) /* num in every entry of shape */     \
    X(EYE,       "eye",       0, L) /* identity, shape n×n */             \
    X(INPUT,     "input",     0, L) /* index: Module.inputs */            \
    X(SLOT,      "slot",      0, L) /* index: Module.slots, current value */\
    X(DIMVAL,    "dim",       0, L) /* index: dimension symbol as a value */\
    X(COTAN,     "cotangent", 0, L) /* the output's cotangent */          \
    X(NEG,       "-",         1, U)                                       \
    X(EXP,       "exp",       1, U)                                       \
    X(LOG,       "log",       1, U)                                       \
    X(SIN,       "sin",       1, U)                                       \
    X(COS,       "cos",       1, U)                                       \
    X(TAN,       "tan",       1, U)                                       \
    X(TANH,      "tanh",      1, U)                                       \
    X(SQRT,      "sqrt",      1, U)                                       \
    X(ABS,       "abs",       1, U)                                       \
    X(LOG1P,     "log1p",     1, U)                                       \
    X(SIGMOID,   "sigmoid",   1, U)                                       \
    X(RELU,      "relu",      1, U)                                       \
    X(SOFTPLUS,  "softplus",  1, U)                                       \
    X(SIGN,      "sign",      1, U) /* derivative helper: -1, 0, 1 */     \
    X(NOT,       "not",       1, U) /* 1 if the entry is 0, else 0 */     \
    X(DETACH,    "detach",    1, U) /* identity; blocks the adjoint */    \
    X(ADD,       "+",         2, B)                                       \
    X(SUB,       "-",         2, B)                                       \
    X(MUL,       ".*",        2, B) /* elementwise, or scalar × anything */\
    X(DIV,       "./",        2, B)                                       \
    X(DIVSAFE,   "./",        2, B) /* a ./ b, but 0 where b == 0 */      \
    X(POW,       ".^",        2, B)                                       \
    X(MAX,       "max",       2, B)                                       \
    X(MIN,       "min",       2, B)                                       \
    X(LT,        "<",         2, B) /* comparisons give 1.0 or 0.0 */     \
    X(LE,        "<=",        2, B)                                       \
    X(GT,        ">",         2, B)                                       \
    X(GE,        ">=",        2, B)                                       \
    X(EQ,        "==",        2, B)                                       \
    X(NE,        "!=",        2, B)                                       \
    X(AND,       "and",       2, B)                                       \
    X(OR,        "or",        2, B)                                       \
    X(MATMUL,    "*",         2, M)                                       \
    X(TRANSPOSE, "'",         1, M)                                       \
    X(SUM,       "sum",       1, M) /* all entries → 1×1 */               \
    X(NORM,      "norm",      1, M) /* 2-norm / Frobenius → 1×1 */        \
    X(TRACE,     "trace",     1, M)                                       \
    X(DET,       "det",       1, M)                                       \
    X(LOGDET,    "logdet",    1, M) /* log(det A); NaN where det A < 0 */ \
    X(LOGSUMEXP, "logsumexp", 1, M) /* over all entries, stable */        \
    X(INV,       "inv",       1, M)                                       \
    X(SOFTMAX,   "softmax",   1, M) /* column vector → column vector */   \
    X(DIAGM,     "diag",      1, M) /* vector [n] → n×n diagonal matrix */\
    X(DIAGV,     "diag",      1, M) /* n×n matrix → its diagonal [n] */

typedef enum Op {
#define X(name, text, arity, kind) OP_##name,
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
} OpInfo;
extern const OpInfo op_info[OP_COUNT];

typedef struct Node Node;
struct Node {
    Op op;
    int id;               /* creation order: children always have smaller ids */
    int nargs;
    Node *args[2];
    Shape shape;
    double num;           /* CONST, FILL */
    int index;            /* INPUT, SLOT, DIMVAL */
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
    Func fwd;             /* the forward function */
    Func grad;            /* value and gradient (diff_reverse fills it) */
    bool has_control;     /* any IF/WHILE/FOR */
    int nconstructs;      /* forward IF/WHILE/FOR statements, ids 0..nconstructs-1 */
    int max_depth;        /* deepest loop nesting */
    int64_t checkpoint;   /* diff: store every k-th loop state, recompute the rest (0: all) */
} Module;

Ir *ir_new(Arena *a);
int ir_slot(Ir *ir, const char *name, Shape shape);    /* a new slot */
/* The raw hash-consed constructor: returns the existing node when one with
 * the same op, args, shape, num and index exists.  No simplification. */
Node *ir_node(Ir *ir, Op op, Shape shape, Node *a, Node *b, double num, int index);

Block *block_new(Arena *a);
Stmt *stmt_new(Arena *a, StmtKind kind, int n);     /* arrays for n slots allocated */
void block_push(Arena *a, Block *b, Stmt *s);
bool node_reads_slot(const Node *n, int slot);

/* A set of slots, bounds-checked: adding a slot past its length grows it
 * (diff.c creates slots while it fills sets), asking about one past it is
 * false, a negative slot is an internal error. */
typedef struct SlotSet {
    Arena *arena;
    bool *in;             /* len entries */
    int len;
} SlotSet;
SlotSet *slotset_new(Arena *a, int len);           /* empty, room for len slots */
void slotset_add(SlotSet *s, int slot);
bool slotset_has(const SlotSet *s, int slot);
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
bool node_is_zero(const Node *n);               /* CONST 0 or FILL 0 */
bool node_is_const(const Node *n, double v);    /* CONST v or FILL v */

/* ===================================================================== */
/* check.c — names, shapes, control-flow rules; builds the forward IR    */
/* ===================================================================== */

/* Checks the program and builds Module.fwd.  On the first error prints it
 * (at the position conformance/README.md tables) and returns NULL. */
Module *check_program(Arena *a, Ast *ast);

/* ===================================================================== */
/* diff.c — symbolic reverse mode through structured control flow         */
/* ===================================================================== */

/* Builds Module.grad from Module.fwd: the forward sweep with recording,
 * the output, then the reverse sweep (see docs/design.md). */
void diff_reverse(Module *m);

/* ===================================================================== */
/* print.c — expressions and programs as text (derive)                   */
/* ===================================================================== */

typedef enum PrintStyle { PRINT_EXPR, PRINT_LATEX } PrintStyle;
void print_node(FILE *out, const Module *m, const Node *n, PrintStyle style);
/* `gradc derive`: each gradient as `dy/dx = …`, or, with control flow, the
 * adjoint program in the language itself. */
void print_derivatives(FILE *out, const Module *m, PrintStyle style);

/* ===================================================================== */
/* eval.c — the reference evaluator: plain loops over the IR             */
/* ===================================================================== */

/* Run-time values bound to a module's inputs. */
typedef struct Bindings {
    int64_t *dims;          /* Module.ndims sizes */
    const double **inputs;  /* Module.ninputs arrays, row-major (scalar: 1 double) */
    const double *cotangent;/* output-shaped, or NULL for all ones */
    int64_t max_iter;       /* while-loop limit (default 1,000,000) */
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

/* ===================================================================== */
/* plan.c — a Func as a schedule of kernels, before LLVM (plan.h)        */
/* ===================================================================== */

/* `gradc compile --dump-plan`: the plan of the forward and the gradient
 * function, as text (tests/golden/plan). */
int plan_dump(const Module *m, FILE *out);

/* ===================================================================== */
/* codegen.c, jit.c, emit.c — LLVM                                       */
/* ===================================================================== */

typedef struct CodegenOptions {
    const char *name;      /* symbol prefix: NAME, NAME_grad, NAME_work_size */
    int opt_level;         /* 0..3 */
    const char *triple;    /* NULL: host */
    int64_t max_iter;      /* while-loop limit; 0: GRADC_DEFAULT_MAX_ITER */
} CodegenOptions;

/* `gradc compile`: object file (or textual IR with emit_llvm) and header. */
int emit_object(const Module *m, const CodegenOptions *o, const char *obj_path,
                bool emit_llvm);
int emit_header(const Module *m, const CodegenOptions *o, const char *h_path);
/* `gradc eval`: JIT-compile and run, same contract as eval_func. */
int jit_eval(const Module *m, bool want_grad, const Bindings *b,
             double *value, double **grads, Loc *where);
/* Compile once, run often (`gradc check --jit`): jit_open compiles the
 * forward and (when m->grad has one) the gradient function with a while
 * limit of max_iter (0: the default); NULL after an error message. */
typedef struct Jit Jit;
Jit *jit_open(const Module *m, int64_t max_iter);
int jit_run(Jit *j, bool want_grad, const Bindings *b, double *value, double **grads,
            Loc *where);
void jit_close(Jit *j);

/* ===================================================================== */
/* fdcheck.c — `gradc check`: gradients against central finite differences */
/* ===================================================================== */

typedef struct FdCheckOptions {
    const char *dims;     /* "n=5,m=3" or NULL (every symbol 3) */
    uint64_t seed;
    double tol;           /* default 1e-6 */
    bool use_jit;
} FdCheckOptions;
/* Prints the worst relative error per wrt input; returns 0 when all are
 * within tol, 1 otherwise or on error. */
int fdcheck_run(const Module *m, const FdCheckOptions *o);

/* plot.c — `gradc plot`: the output and its derivative over a range, as SVG */
int plot_svg(const Module *m, double lo, double hi, const char *svg_path);

/* ===================================================================== */
/* json.c — eval's input and output                                      */
/* ===================================================================== */

/* Reads the inputs file: binds every dimension symbol from the shapes and
 * copies each input; errors (bad JSON, missing input, a dimension that
 * disagrees) are printed and return false. */
bool json_read_inputs(const Module *m, const char *path, Bindings *b, Arena *a);
/* Reads a cotangent of the output's shape. */
bool json_read_cotangent(const Module *m, const char *path, Bindings *b, Arena *a);
/* Prints {"value": V, "gradient": {...}} with 17 significant digits. */
void json_print_result(FILE *out, const Module *m, const Bindings *b,
                       const double *value, double *const *grads);

#endif
