/* diag.c — placeholder until its stage lands. */
#include "gradc.h"
#include <stdlib.h>
void diag_verror(const Source *src, Loc loc, const char *fmt, va_list ap)
{ fprintf(stderr, "%s:%d:%d: error: ", src->path, loc.line, loc.col); vfprintf(stderr, fmt, ap); fputc('\n', stderr); }
void diag_error(const Source *src, Loc loc, const char *fmt, ...)
{ va_list ap; va_start(ap, fmt); diag_verror(src, loc, fmt, ap); va_end(ap); }
