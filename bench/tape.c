/* bench/tape.c — the memory reverse mode uses to record a long loop
 * (bench/long_loop.expr), compiled twice: without checkpointing (--name
 * full) and with --checkpoint K (--name ckpt).  Each gradient runs in a
 * child process of its own; the memory it used is the child's peak resident
 * size minus that of a child that only touched the same inputs and work
 * (what the caller provides: NAME_work_size is printed apart).  Both must
 * agree to 1e-12 (relative) on the gradient.  Prints one table row.
 *
 *   usage: tape N K */
#include "bench.h"
#include "ckpt.h"
#include "full.h"

#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct Run {
    long rss_kb;      /* peak resident size of the child */
    double secs, f;
} Run;

/* which: 0 touches the data only, 1 full_grad, 2 ckpt_grad */
static Run in_child(int which, int n, const double *x, double *g, void *work, size_t worksize)
{
    int fd[2];
    Run r = {0, 0, 0};
    if (pipe(fd))
        return r;
    pid_t pid = fork();
    if (pid == 0) {
        memset(work, 0, worksize);
        double t0 = now();
        int st = which == 1 ? full_grad(n, x, &r.f, g, 0, work) : which == 2 ? ckpt_grad(n, x, &r.f, g, 0, work) : 0;
        r.secs = now() - t0;
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        r.rss_kb = st ? -1 : ru.ru_maxrss;
        if (write(fd[1], &r, sizeof r) != sizeof r || write(fd[1], g, (size_t)n * sizeof *g) < 0)
            _exit(1);
        _exit(0);
    }
    close(fd[1]);
    if (read(fd[0], &r, sizeof r) != sizeof r || read(fd[0], g, (size_t)n * sizeof *g) < 0)
        r.rss_kb = -1;
    close(fd[0]);
    waitpid(pid, NULL, 0);
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s N K\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]), k = atoi(argv[2]);
    unsigned seed = 4;
    double *x = random_array((size_t)n, &seed), *g1 = random_array((size_t)n, &seed),
           *g2 = random_array((size_t)n, &seed);
    size_t w1 = full_work_size(n), w2 = ckpt_work_size(n), w = w1 > w2 ? w1 : w2;
    void *work = aligned_alloc(64, (w + 63) / 64 * 64 + 64);
    if (!work)
        return 1;
    Run base[ROUNDS], full[ROUNDS], ck[ROUNDS];
    long rb[ROUNDS], rf[ROUNDS], rc[ROUNDS];
    double tf[ROUNDS], tc[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
        base[i] = in_child(0, n, x, g1, work, w);
        full[i] = in_child(1, n, x, g1, work, w);
        ck[i] = in_child(2, n, x, g2, work, w);
        if (base[i].rss_kb < 0 || full[i].rss_kb < 0 || ck[i].rss_kb < 0) {
            fprintf(stderr, "a gradient failed\n");
            return 1;
        }
        rb[i] = base[i].rss_kb, rf[i] = full[i].rss_kb, rc[i] = ck[i].rss_kb;
        tf[i] = full[i].secs, tc[i] = ck[i].secs;
    }
    double err = fmax(fabs(full[0].f - ck[0].f) / fmax(1.0, fabs(full[0].f)), max_rel_diff(g2, g1, (size_t)n));
    if (!(err <= 1e-12)) {
        fprintf(stderr, "checkpointed and full gradients differ: %g\n", err);
        return 1;
    }
    double b[ROUNDS], f[ROUNDS], c[ROUNDS];
    for (int i = 0; i < ROUNDS; i++)
        b[i] = (double)rb[i], f[i] = (double)rf[i], c[i] = (double)rc[i];
    double mb = median(b, ROUNDS), mf = median(f, ROUNDS) - mb, mc = median(c, ROUNDS) - mb;
    double states = 20000.0 * n * 8 / 1024;
    char size[48];
    snprintf(size, sizeof size, "n=%d T=20000", n);
    /* what each one costs in all: heap the call grew by plus the work the
     * caller provides (recorded states live in work when loop bounds are known) */
    double total_f = mf + w1 / 1024.0, total_c = mc + w2 / 1024.0;
    char label[40], full_s[40], ckpt_s[64];
    snprintf(label, sizeof label, "heap+work, --checkpoint %d", k);
    snprintf(full_s, sizeof full_s, "%.0f KiB, %.2f ms", total_c, 1e3 * median(tc, ROUNDS));
    snprintf(ckpt_s, sizeof ckpt_s, "none %.0f KiB (T states %.0f), %.0f ms", total_f, states,
             1e3 * median(tf, ROUNDS));
    printf("| %-26s | %-19s | %-18s | %-34s | %5.3f | %-7s | %-6s |\n", label, size, full_s, ckpt_s,
           total_c / (total_f > 0 ? total_f : 1), "-", "");
    free(x); free(g1); free(g2); free(work);
    return 0;
}
