/* gradc/runtime.h — the public header of gradc's runtime library.
 *
 * Generated code and the programs that call it include this header: it
 * defines the status codes that generated functions return, the flags of
 * NAME_grad, and the small library (messages, the tape of control flow)
 * that generated objects link against (`pkg-config --libs gradc`). */
#ifndef GRADC_RUNTIME_H
#define GRADC_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by every generated function. */
enum {
    GRADC_OK = 0,
    GRADC_EDIM = 1,      /* a dimension is negative, or a size overflows */
    GRADC_EMAXITER = 2,  /* a while loop reached its iteration limit */
    GRADC_ENOMEM = 3,    /* an allocation failed */
};

/* Flags of NAME_grad. */
#define GRADC_ACCUMULATE 1u   /* add to the gradient buffers instead of overwriting */

/* A message for a status code ("success", "while loop reached its iteration limit", …). */
const char *gradc_strerror(int status);

#ifdef __cplusplus
}
#endif
#endif
