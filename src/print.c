/* print.c — placeholder until its stage lands. */
#include "gradc.h"
void print_derivatives(FILE *out, const Module *m, PrintStyle style) { (void)out; (void)m; (void)style; }
