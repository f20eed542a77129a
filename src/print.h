/* print.h — what print.c (expressions) and print_prog.c (programs) share:
 * the Printer state and precedence levels, and the expression printer's
 * entry points the program printer calls.  Private to the print*.c files;
 * the stage's public interface is gradc.h's print section. */
#ifndef GRADC_PRINT_H
#define GRADC_PRINT_H

#include "gradc.h"

/* Precedence, loosest first, as in the spec. */
enum { P_OR = 1, P_AND, P_NOT, P_CMP, P_ADD, P_MUL, P_NEG, P_POW, P_POST, P_ATOM };

typedef struct Piece {
    const Node *n;             /* an operand to print at prec, or NULL: text */
    int prec;
    const char *text;
} Piece;

typedef struct Printer {
    FILE *out;
    const Module *m;
    PrintStyle style;
    const char **slot_names;   /* unique print names of slots */
    const char **let;          /* node id → name of a let-bound subexpression */
    int nlets;
    VEC(Piece) stack, rest;    /* expr's explicit stack; the node being expanded */
    int *refs;                 /* print_lets: references per node id (zero between calls) */
    bool *sliced;              /* per node id: indexed by a SLICE, so it must be a name */
    int cap;                   /* ids the three arrays above cover (printing makes nodes) */
    VEC(int) reached, bound;   /* … the nodes it reached; the ids let-bound now */
    int unnamed;               /* loops open whose index is unused: _, _2, _3 … */
} Printer;

/* The name n is bound to, or NULL; a node made after the printer's arrays
 * (a zero printed for a slot, a rewritten term) has none. */
static inline const char *let_of(const Printer *p, const Node *n)
{
    return n->id < p->cap ? p->let[n->id] : NULL;
}

static inline bool latex(const Printer *p) { return p->style == PRINT_LATEX; }
static inline bool scalar(const Node *n) { return shape_is_scalar(n->shape); }

/* print.c: a Printer for m (slots of one name told apart: b, b_2 …). */
Printer *printer_new(FILE *out, const Module *m, PrintStyle style);
/* n at precedence min_prec or tighter (parenthesized otherwise). */
void print_expr(Printer *p, const Node *n, int min_prec);
/* A variable's name, upright in LaTeX when longer than a letter. */
void print_name(Printer *p, const char *s);
/* Binds the shared subexpressions of roots as t1 = … lines; forget_lets
 * unbinds them when their scope ends. */
void print_lets(Printer *p, Node *const *roots, int nroots, const char *indent);
void forget_lets(Printer *p);
/* A value that is a dimension form, into *d (slice bounds, pad offsets). */
bool node_dim(const Node *n, Dim *d);

#endif
