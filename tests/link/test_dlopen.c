/* test_dlopen.c — a library made by `gradc compile --shared` (quad.expr
 * with --wrt b,x) opened at run time: dlopen finds libgradc through the
 * library's DT_NEEDED and run path, dlsym finds NAME_grad, NAME_work_size,
 * the embedded ABI (gradc_describe) and gradc_strerror (from libgradc). */
#include <gradc/runtime.h>

#include "common.h"

#include <dlfcn.h>
#include <string.h>

typedef int QuadGrad(int64_t, const double *, const double *, const double *, double *,
                     double *, double *, unsigned, void *);
typedef size_t WorkSize(int64_t);
typedef const char *StrError(int);

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_dlopen LIBQUAD.so\n");
        return 1;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    /* POSIX's idiom for a function pointer from dlsym (ISO C has no cast) */
    QuadGrad *grad;
    WorkSize *work_size;
    StrError *strerror_;
    *(void **)&grad = dlsym(h, "quaddl_grad");
    *(void **)&work_size = dlsym(h, "quaddl_work_size");
    *(void **)&strerror_ = dlsym(h, "gradc_strerror");
    const char *describe = dlsym(h, "gradc_describe");
    CHECK(grad && work_size && strerror_ && describe);
    if (!grad || !work_size || !strerror_ || !describe)
        return check_report("link-dlopen");

    /* f = 0.5 x'Ax - b'x; with --wrt b,x: grad_b = -x, then grad_x = (A + A')x/2 - b */
    const double A[4] = {2, 1, 0, 3}, x[2] = {1, 2}, b[2] = {5, -1};
    double f = 0, gb[2], gx[2];
    void *work = work_for(work_size(2));
    CHECK(grad(2, A, x, b, &f, gb, gx, 0, work) == GRADC_OK);
    near("f", f, 5, 1e-15);
    near("grad_b[0]", gb[0], -1, 1e-15);
    near("grad_b[1]", gb[1], -2, 1e-15);
    near("grad_x[0]", gx[0], (4 + 2) / 2.0 - 5, 1e-15);     /* (A + A') x = (6, 13) */
    near("grad_x[1]", gx[1], (1 + 12) / 2.0 + 1, 1e-15);
    CHECK(grad(-1, A, x, b, &f, gb, gx, 0, NULL) == GRADC_EDIM);
    CHECK(strcmp(strerror_(GRADC_EDIM), gradc_strerror(GRADC_EDIM)) == 0);
    CHECK(strstr(describe, "\"wrt\": [\"b\", \"x\"]") != NULL);
    CHECK(strstr(describe, "\"grad\": \"quaddl_grad\"") != NULL);
    free(work);
    dlclose(h);
    return check_report("link-dlopen");
}
