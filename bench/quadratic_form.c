/* bench/quadratic_form.c — value and gradient of f = xᵀAx
 * (samples/quadratic_form.expr, --name qf) three ways, on the same data:
 * gradc's compiled qf_grad, the one-pass hand-written C loop
 * (bench/hand_quadratic_form.c) and gradc's reference interpreter
 * (eval_func, linked from libgradc_core, run in-process so that only the
 * evaluation is timed).  All three must agree to 1e-12 (relative) first.
 * Prints two table rows (vs the C loop, vs the interpreter).
 *
 *   usage: quadratic_form N REPS INTERP_REPS */
#include "bench.h"
#include "gradc.h"
#include "hand.h"
#include "qf.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s N REPS INTERP_REPS\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]), reps = atoi(argv[2]), ireps = atoi(argv[3]);
    size_t nn = (size_t)n * (size_t)n;
    unsigned seed = 2;
    double *A = random_array(nn, &seed), *x = random_array((size_t)n, &seed);
    double *g = random_array((size_t)n, &seed), *gh = random_array((size_t)n, &seed),
           *gi = random_array((size_t)n, &seed), *u = random_array((size_t)n, &seed),
           *v = random_array((size_t)n, &seed);
    void *work = aligned_alloc(64, (qf_work_size(n) + 63) / 64 * 64 + 64);

    /* the interpreter on the same program */
    Arena *arena = arena_new();
    Source *src = source_read(arena, "samples/quadratic_form.expr");
    Ast *ast = src ? parse_source(arena, src) : NULL;
    Module *mod = ast ? check_program(arena, ast) : NULL;
    if (!work || !mod)
        return 1;
    diff_reverse(mod);
    int64_t dims[1] = {n};
    const double *inputs[2] = {A, x};
    Bindings bind = {dims, inputs, NULL, GRADC_DEFAULT_MAX_ITER};
    Loc where;

    double f, fh, fi;
    fh = hand_quadratic_form(n, A, x, gh, u, v);
    if (qf_grad(n, A, x, &f, g, 0, work) || eval_func(mod, &mod->grad, &bind, &fi, &gi, &where))
        return 1;
    double err = fmax(fmax(fabs(f - fh), fabs(fi - fh)) / fmax(1.0, fabs(fh)),
                      fmax(max_rel_diff(g, gh, (size_t)n), max_rel_diff(gi, gh, (size_t)n)));
    if (!(err <= 1e-12)) {
        fprintf(stderr, "gradc, the interpreter and the hand-written loop differ: %g\n", err);
        return 1;
    }
    double tg[ROUNDS], th[ROUNDS], ti[ROUNDS];
    for (int k = 0; k < ROUNDS; k++) {
        TIME_ROUND(tg[k], reps, qf_grad(n, A, x, &f, g, 0, work));
        TIME_ROUND(th[k], reps, hand_quadratic_form(n, A, x, gh, u, v));
        TIME_ROUND(ti[k], ireps, eval_func(mod, &mod->grad, &bind, &fi, &gi, &where));
    }
    double mg = median(tg, ROUNDS), mh = median(th, ROUNDS), mi = median(ti, ROUNDS);
    char size[32];
    snprintf(size, sizeof size, "n=%d", n);
    printf("| x'*A*x value+grad  | %-16s | gradc %10.2f us | one-pass C %10.2f us | %5.2f |\n", size,
           1e6 * mg, 1e6 * mh, mg / mh);
    printf("| x'*A*x value+grad  | %-16s | gradc %10.2f us | interpreter %9.2f us | %5.2f |\n", size,
           1e6 * mg, 1e6 * mi, mg / mi);
    arena_free(arena);
    free(A); free(x); free(g); free(gh); free(gi); free(u); free(v); free(work);
    return 0;
}
