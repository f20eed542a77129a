/* check.h — the assertion shared by the C tests (unit and link): a failed
 * CHECK prints where and what, and the test carries on so that one run
 * reports every failure; main returns check_report(). */
#ifndef GRADC_TEST_CHECK_H
#define GRADC_TEST_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                              \
        }                                                                            \
    } while (0)

/* Exit status of a test: 0 when every check passed. */
static inline int check_report(const char *test)
{
    if (failures)
        fprintf(stderr, "%s: %d check(s) failed\n", test, failures);
    else
        printf("%s: all checks passed\n", test);
    return failures != 0;
}

#endif
