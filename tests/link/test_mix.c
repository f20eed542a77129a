/* test_mix.c — the 60-line second-edition program (mix.expr: functions,
 * broadcasting, reductions along a dimension, where, solve, slices,
 * concatenation, a loop over columns, auxiliary outputs) compiled and linked:
 * the gradient of every wrt input against central differences of the value
 * function, the auxiliary outputs against their definitions (softmax rows
 * sum to 1; stats = [amax(Z); amin(Z); ...] so stats[0] >= stats[1]), NULL
 * auxiliary buffers in mix_grad, and GRADC_ACCUMULATE. */
#include "mix.h"

#include "common.h"

#include <string.h>

enum { M = 5, D = 4, H = 6, C = 3 };

static double X[M * D], W1[D * H], b1[H], W2[H * C], b2[C], Y[M * C], S[C * C];
static const double smooth = 0.3;

static double loss_at(void *work)
{
    double loss = NAN, probs[M * C], stats[3];
    CHECK(mix(M, D, H, C, X, W1, b1, W2, b2, Y, S, smooth, &loss, probs, stats, work) == GRADC_OK);
    return loss;
}

/* the largest relative difference between g and central differences of the
 * loss along each entry of p (n entries) */
static double fd_error(double *p, const double *g, int n, void *work)
{
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double keep = p[i], h = 1e-6 * fmax(1.0, fabs(keep));
        p[i] = keep + h;
        double up = loss_at(work);
        p[i] = keep - h;
        double down = loss_at(work);
        p[i] = keep;
        double fd = (up - down) / (2 * h);
        double err = fabs(fd - g[i]) / fmax(1e-3, fabs(fd));
        if (err > worst)
            worst = err;
    }
    return worst;
}

static void fill(double *p, int n, double scale, int seed)
{
    for (int i = 0; i < n; i++)
        p[i] = scale * sin(1.7 * (i + 1) + 0.37 * seed);
}

int main(void)
{
    fill(X, M * D, 1.0, 1);
    fill(W1, D * H, 0.6, 2);
    fill(b1, H, 0.1, 3);
    fill(W2, H * C, 0.7, 4);
    fill(b2, C, 0.1, 5);
    fill(S, C * C, 0.5, 6);
    for (int i = 0; i < M; i++)
        Y[i * C + i % C] = 1;
    void *work = work_for(mix_work_size(M, D, H, C));

    double loss, probs[M * C], stats[3];
    CHECK(mix(M, D, H, C, X, W1, b1, W2, b2, Y, S, smooth, &loss, probs, stats, work) == GRADC_OK);
    CHECK(isfinite(loss));
    for (int i = 0; i < M; i++) {
        double row = 0;
        for (int j = 0; j < C; j++)
            row += probs[i * C + j];
        near("softmax row sum", row, 1, 1e-14);
    }
    CHECK(stats[0] >= stats[1]);

    double loss2, probs2[M * C], stats2[3];
    double gW1[D * H], gb1[H], gW2[H * C], gb2[C], gS[C * C];
    CHECK(mix_grad(M, D, H, C, X, W1, b1, W2, b2, Y, S, smooth, &loss2, probs2, stats2,
                   gW1, gb1, gW2, gb2, gS, 0, work) == GRADC_OK);
    near("value of mix_grad", loss2, loss, 1e-14);
    for (int k = 0; k < M * C; k++)
        near("probs of mix_grad", probs2[k], probs[k], 1e-14);
    for (int k = 0; k < 3; k++)
        near("stats of mix_grad", stats2[k], stats[k], 1e-14);

    double tol = 1e-6;
    near("grad W1 vs differences", fd_error(W1, gW1, D * H, work), 0, tol);
    near("grad b1 vs differences", fd_error(b1, gb1, H, work), 0, tol);
    near("grad W2 vs differences", fd_error(W2, gW2, H * C, work), 0, tol);
    near("grad b2 vs differences", fd_error(b2, gb2, C, work), 0, tol);
    near("grad S vs differences", fd_error(S, gS, C * C, work), 0, tol);

    /* auxiliary buffers may be NULL in NAME_grad; ACCUMULATE adds */
    double acc[C * C];
    memcpy(acc, gS, sizeof acc);
    double g1[D * H], g2[H], g3[H * C], g4[C];
    CHECK(mix_grad(M, D, H, C, X, W1, b1, W2, b2, Y, S, smooth, NULL, NULL, NULL,
                   g1, g2, g3, g4, acc, GRADC_ACCUMULATE, NULL) == GRADC_OK);
    for (int k = 0; k < C * C; k++)
        near("accumulated grad S", acc[k], 2 * gS[k], 1e-13);
    free(work);
    return check_report("link-mix");
}
