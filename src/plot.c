/* plot.c — placeholder. */
#include "gradc.h"
int plot_svg(const Module *m, double lo, double hi, const char *p) { (void)m; (void)lo; (void)hi; (void)p; return 1; }
