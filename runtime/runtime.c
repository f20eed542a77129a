/* runtime.c — the library generated code links against. */
#include "gradc/runtime.h"

const char *gradc_strerror(int status)
{
    switch (status) {
    case GRADC_OK: return "success";
    case GRADC_EDIM: return "a dimension is negative or a size overflows";
    case GRADC_EMAXITER: return "a while loop reached its iteration limit";
    case GRADC_ENOMEM: return "out of memory";
    default: return "unknown status";
    }
}
