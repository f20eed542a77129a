/* bench/mlp.c — the gradient of samples/mlp.expr (--name mlp) against the
 * hand-written OpenBLAS version (bench/hand_mlp.c) on the same data; they
 * must agree to 1e-12 (relative) first.  Prints one table row.
 *
 *   usage: mlp M D H K REPS */
#include "bench.h"
#include "hand.h"
#include "mlp.h"

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s M D H K REPS\n", argv[0]);
        return 2;
    }
    int m = atoi(argv[1]), d = atoi(argv[2]), h = atoi(argv[3]), k = atoi(argv[4]), reps = atoi(argv[5]);
    unsigned seed = 3;
    double *X = random_array((size_t)m * d, &seed), *W1 = random_array((size_t)d * h, &seed),
           *b1 = random_array((size_t)h, &seed), *W2 = random_array((size_t)h * k, &seed),
           *Y = random_array((size_t)m * k, &seed);
    double *g1 = random_array((size_t)d * h, &seed), *gb = random_array((size_t)h, &seed),
           *g2 = random_array((size_t)h * k, &seed);
    double *h1 = random_array((size_t)d * h, &seed), *hb = random_array((size_t)h, &seed),
           *h2 = random_array((size_t)h * k, &seed);
    double *scratch = random_array((size_t)hand_mlp_scratch(m, d, h, k), &seed);
    void *work = aligned_alloc(64, (mlp_work_size(m, d, h, k) + 63) / 64 * 64 + 64);
    if (!work)
        return 1;
    double L, Lh = hand_mlp(m, d, h, k, X, W1, b1, W2, Y, h1, hb, h2, scratch);
    int st = mlp_grad(m, d, h, k, X, W1, b1, W2, Y, &L, g1, gb, g2, 0, work);
    if (st) {
        fprintf(stderr, "mlp_grad: %s\n", gradc_strerror(st));
        return 1;
    }
    double err = fmax(fabs(L - Lh) / fmax(1.0, fabs(Lh)),
                      fmax(max_rel_diff(g1, h1, (size_t)d * h),
                           fmax(max_rel_diff(gb, hb, (size_t)h), max_rel_diff(g2, h2, (size_t)h * k))));
    if (!(err <= 1e-12)) {
        fprintf(stderr, "gradc and the hand-written MLP gradient differ: %g\n", err);
        return 1;
    }
    double tg[ROUNDS], th[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        TIME_ROUND(tg[r], reps, mlp_grad(m, d, h, k, X, W1, b1, W2, Y, &L, g1, gb, g2, 0, work));
        TIME_ROUND(th[r], reps, hand_mlp(m, d, h, k, X, W1, b1, W2, Y, h1, hb, h2, scratch));
    }
    double mg = median(tg, ROUNDS), mh = median(th, ROUNDS);
    char size[48];
    snprintf(size, sizeof size, "%dx%d,h=%d,k=%d", m, d, h, k);
    printf("| mlp grad           | %-16s | gradc %10.2f us | C+OpenBLAS %10.2f us | %5.2f |\n", size,
           1e6 * mg, 1e6 * mh, mg / mh);
    free(X); free(W1); free(b1); free(W2); free(Y); free(g1); free(gb); free(g2);
    free(h1); free(hb); free(h2); free(scratch); free(work);
    return 0;
}
