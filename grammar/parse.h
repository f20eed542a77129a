/* parse.h — the state the scanner and the parser share (grammar/ only). */
#ifndef GRADC_PARSE_H
#define GRADC_PARSE_H

#include "gradc.h"

/* An if/while/for whose `end` has not been seen yet. */
typedef struct OpenBlock {
    const char *keyword;
    Loc loc;
} OpenBlock;

typedef struct Parser {
    Arena *arena;
    Source *src;
    Ast *ast;
    Loc pos;              /* the scanner's position: the next character */
    const char *tok;      /* text of the last token scanned (for messages) */
    int toklen;
    bool at_eof;          /* the final NEWLINE has been supplied */
    int brackets;         /* open ( and [ */
    OpenBlock *blocks;    /* PARSE_MAX_DEPTH entries */
    int nblocks;
    bool stray_end;       /* the last `end` scanned closed no block */
    int err_line;         /* the last line with an error: one message a line */
    bool deep_blocks;     /* "blocks nested too deeply" was reported */
} Parser;

/* The scanner calls these for if/while/for and end.  Opening one past
 * PARSE_MAX_DEPTH prints an error and returns false. */
bool parse_open_block(Parser *p, const char *keyword, Loc loc);
void parse_close_block(Parser *p);

/* An expression under construction with the height of its tree, so the
 * grammar can refuse trees deeper than PARSE_MAX_DEPTH. */
typedef struct PExpr {
    Expr *e;
    int depth;
} PExpr;

#endif
