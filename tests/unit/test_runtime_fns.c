/* test_runtime_fns.c — codegen.h's GRADC_RUNTIME, the runtime functions the
 * JIT defines: every one the op table's libm column names (gradc_lgamma …,
 * called by name) is a row, and no row is there twice.  (That every row is
 * a runtime function is the JIT's compile: it takes each one's address.) */
#include "check.h"
#include "codegen.h"

#include <string.h>

static bool is_row(const char *name)
{
    for (int i = 0; i < RT_COUNT; i++)
        if (strcmp(rt_names[i], name) == 0)
            return true;
    return false;
}

int main(void)
{
    int named = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        const char *libm = op_info[op].libm;
        if (libm && strncmp(libm, "gradc_", 6) == 0) {
            named++;
            if (!is_row(libm))
                fprintf(stderr, "%s: not in GRADC_RUNTIME\n", libm);
            CHECK(is_row(libm));
        }
    }
    CHECK(named == 3);   /* lgamma, digamma, polygamma */
    for (int i = 0; i < RT_COUNT; i++)
        for (int j = i + 1; j < RT_COUNT; j++)
            CHECK(strcmp(rt_names[i], rt_names[j]) != 0);
    CHECK(strcmp(rt_names[RT_store], "gradc_store") == 0);
    return check_report("test_runtime_fns");
}
