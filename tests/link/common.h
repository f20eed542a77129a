/* common.h — small checks shared by the link tests. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../check.h"

/* |got - want| <= tol * max(1, |want|) */
static void near(const char *what, double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol * fmax(1.0, fabs(want)))) {
        fprintf(stderr, "%s: got %.17g, want %.17g\n", what, got, want);
        failures++;
    }
}

static inline void *work_for(size_t bytes)
{
    return aligned_alloc(16, (bytes + 15) / 16 * 16 + 16);
}
