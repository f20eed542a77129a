/* bench/least_squares.c — gradc's generated least-squares gradient against
 * a hand-written one on OpenBLAS (bench/hand_least_squares.c).
 *
 * f = ‖Ax − b‖² (samples/least_squares.expr, compiled with --name lsq).
 * Both run on the same random data; the results must agree to 1e-12
 * (relative) before any time is reported.  Prints one table row.
 *
 *   usage: least_squares M N REPS */
#include "bench.h"
#include "hand.h"
#include "lsq.h"

#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s M N REPS\n", argv[0]);
        return 2;
    }
    int m = atoi(argv[1]), n = atoi(argv[2]), reps = atoi(argv[3]);
    size_t mn = (size_t)m * (size_t)n;
    unsigned seed = 1;
    double *A = random_array(mn, &seed), *x = random_array((size_t)n, &seed),
           *b = random_array((size_t)m, &seed);
    double *gA = random_array(mn, &seed), *gx = random_array((size_t)n, &seed),
           *gb = random_array((size_t)m, &seed);
    double *hA = random_array(mn, &seed), *hx = random_array((size_t)n, &seed),
           *hb = random_array((size_t)m, &seed), *r = random_array((size_t)m, &seed);
    void *work = aligned_alloc(64, (lsq_work_size(m, n) + 63) / 64 * 64 + 64);
    if (!work)
        return 1;

    double f, fh = hand_least_squares(m, n, A, x, b, hA, hx, hb, r);
    int st = lsq_grad(m, n, A, x, b, &f, gA, gx, gb, 0, work);
    if (st) {
        fprintf(stderr, "lsq_grad: %s\n", gradc_strerror(st));
        return 1;
    }
    double err = fmax(fabs(f - fh) / fmax(1.0, fabs(fh)),
                      fmax(max_rel_diff(gA, hA, mn),
                           fmax(max_rel_diff(gx, hx, (size_t)n), max_rel_diff(gb, hb, (size_t)m))));
    if (!(err <= 1e-12)) {
        fprintf(stderr, "gradc and the hand-written gradient differ: %g\n", err);
        return 1;
    }
    double tg[ROUNDS], th[ROUNDS];
    for (int k = 0; k < ROUNDS; k++) {
        TIME_ROUND(tg[k], reps, lsq_grad(m, n, A, x, b, &f, gA, gx, gb, 0, work));
        TIME_ROUND(th[k], reps, hand_least_squares(m, n, A, x, b, hA, hx, hb, r));
    }
    double g = median(tg, ROUNDS), h = median(th, ROUNDS);
    char size[32];
    snprintf(size, sizeof size, "m=%d n=%d", m, n);
    printf("| least_squares grad | %-16s | gradc %10.2f us | C+OpenBLAS %10.2f us | %5.2f |\n", size,
           1e6 * g, 1e6 * h, g / h);
    free(A); free(x); free(b); free(gA); free(gx); free(gb);
    free(hA); free(hx); free(hb); free(r); free(work);
    return 0;
}
