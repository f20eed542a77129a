/* test_stack.c — where reverse mode records its values.  stack.expr pushes
 * only inside fors with known counts, so stack_grad records into a stack
 * region of work: its values and gradients match a hand-written reverse
 * sweep, stack_work_size grows by the n×n entries the loop stores, and with
 * a work buffer the call allocates nothing (malloc is wrapped with
 * -Wl,--wrap=malloc; meson also checks with nm that stack.o references no
 * gradc_tape_* function).  whilestack.expr pushes inside a while and still
 * uses the runtime tape. */
#include "stack.h"
#include "whilestack.h"

#include "common.h"

#include <stdint.h>
#include <string.h>

/* ---- malloc, counted while `counting` ---- */
void *__real_malloc(size_t size);
void __real_free(void *p);
static int counting, mallocs, frees;

void *__wrap_malloc(size_t size)
{
    mallocs += counting;
    return __real_malloc(size);
}

void __wrap_free(void *p)
{
    frees += counting && p;
    __real_free(p);
}

/* ---- the reference: stack.expr by hand, forward and reverse ---- */
enum { NMAX = 32, INNER = 3 };

/* one inner step w + 0.1 tanh(w) and its derivative */
static double step(double w) { return w + 0.1 * tanh(w); }
static double dstep(double w) { double t = tanh(w); return 1 + 0.1 * (1 - t * t); }

static double reference(int n, const double *x, double a, double *gx, double *ga)
{
    static double states[NMAX + 1][NMAX]; /* v at each iteration start, then the final v */
    static double inner[INNER][NMAX];
    memcpy(states[0], x, sizeof(double) * (size_t)n);
    for (int i = 1; i <= n; i++)
        for (int k = 0; k < n; k++) {
            double v = states[i - 1][k], w = sin(v) + a / i * v;
            for (int j = 0; j < INNER && i > 1; j++)
                w = step(w);
            states[i][k] = i > 1 ? w : 2 * w;
        }
    double y = 0, dv[NMAX];
    for (int k = 0; k < n; k++) {
        y += states[n][k] * states[n][k];
        dv[k] = 2 * states[n][k];
    }
    *ga = 0;
    for (int i = n; i >= 1; i--)
        for (int k = 0; k < n; k++) {
            double v = states[i - 1][k], w = sin(v) + a / i * v;
            for (int j = 0; j < INNER; j++) {
                inner[j][k] = w;
                w = step(w);
            }
            double dw = i > 1 ? dv[k] : 2 * dv[k];
            for (int j = INNER - 1; j >= 0 && i > 1; j--)
                dw *= dstep(inner[j][k]);
            *ga += v * dw / i;
            dv[k] = dw * (cos(v) + a / i);
        }
    memcpy(gx, dv, sizeof(double) * (size_t)n);
    return y;
}

static void check_stack(int n, double a, void *work)
{
    double x[NMAX], gx[NMAX], rx[NMAX], y = 0, yf = 0, ga = 0, ra = 0;
    for (int k = 0; k < n; k++)
        x[k] = 0.3 * sin(1.7 * k + 0.4) + 0.05 * k;
    double ry = reference(n, x, a, rx, &ra);
    int m0 = mallocs, f0 = frees;
    counting = 1;
    int st = stack_grad(n, x, a, &y, gx, &ga, 0, work);
    int sf = stack(n, x, a, &yf, work);
    counting = 0;
    CHECK(st == GRADC_OK && sf == GRADC_OK);
    /* with work the call allocates nothing; without, only its own work */
    CHECK(mallocs - m0 == (work ? 0 : 2));
    CHECK(frees - f0 == mallocs - m0);
    char what[64];
    snprintf(what, sizeof what, "n=%d y", n);
    near(what, y, ry, 1e-12);
    near(what, yf, ry, 1e-12);
    snprintf(what, sizeof what, "n=%d dy/da", n);
    near(what, ga, ra, 1e-12);
    for (int k = 0; k < n; k++) {
        snprintf(what, sizeof what, "n=%d dy/dx[%d]", n, k);
        near(what, gx[k], rx[k], 1e-12);
    }
}

int main(void)
{
    /* The region: the forward loop stores v (n entries) n times; the reverse
     * pops one and, when i > 1, re-runs the inner loop pushing 3 states and
     * pops them: peak n*n + 2n entries after the n-sized buffers.  For n a
     * multiple of 8 each buffer is 8n bytes exactly (64-byte aligned), so
     * work(2n) - 2 work(n) = 8 ((2n)^2 - 2 n^2) = 16 n^2: only the region
     * grows quadratically, and exactly as much as the stack can: the two ifs
     * of a reverse iteration take the same branch, so pushing 3n and popping
     * 3n is not counted as a net 2n per iteration (which would give 48 n^2). */
    size_t w8 = stack_work_size(8), w16 = stack_work_size(16), w32 = stack_work_size(32);
    CHECK(w16 - 2 * w8 == 16 * 8 * 8);
    CHECK(w32 - 2 * w16 == 16 * 16 * 16);
    CHECK(w8 >= 8 * (8 * 8 + 2 * 8));
    /* n*n*8 bytes past the limit of 2^60: an overflow, not a wrap */
    CHECK(stack_work_size(INT64_C(1) << 29) == SIZE_MAX);
    CHECK(stack_work_size(-1) == SIZE_MAX);
    double x1 = 0.5, g1, ga, y;
    CHECK(stack_grad(INT64_C(1) << 29, &x1, 1, &y, &g1, &ga, 0, NULL) == GRADC_EDIM);
    CHECK(stack_work_size(0) < 64);
    CHECK(stack_grad(0, &x1, 1, &y, &g1, &ga, 0, NULL) == GRADC_OK && y == 0 && ga == 0);

    int sizes[] = {1, 5, 8, 16, 32};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        int n = sizes[i];
        void *w = work_for(stack_work_size(n));
        check_stack(n, 0.7, w);
        check_stack(n, -1.3, w);
        free(w);
        check_stack(n, 0.7, NULL);
    }

    /* the while: five steps v + 0.5 sin v, dy/dx = 2 v * prod (1 + 0.5 cos v_k) */
    double x[3] = {0.2, -1.1, 2.5}, gx[3], yw = 0, want = 0;
    void *w = work_for(whilestack_work_size(3));
    CHECK(whilestack_grad(3, x, &yw, gx, 0, w) == GRADC_OK);
    for (int k = 0; k < 3; k++) {
        double v = x[k], d = 1;
        for (int j = 0; j < 5; j++) {
            d *= 1 + 0.5 * cos(v);
            v += 0.5 * sin(v);
        }
        want += v * v;
        near("while dy/dx", gx[k], 2 * v * d, 1e-12);
    }
    near("while y", yw, want, 1e-12);
    free(w);
    return check_report("link-stack");
}
