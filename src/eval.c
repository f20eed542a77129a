/* eval.c — placeholder until its stage lands. */
#include "gradc.h"
int eval_func(const Module *m, const Func *f, const Bindings *b, double *value, double **grads, Loc *where)
{ (void)m; (void)f; (void)b; (void)value; (void)grads; (void)where; return 1; }
