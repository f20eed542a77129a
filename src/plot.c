/* plot.c — `gradc plot`: the output and its derivative over a range, as SVG.
 *
 * Only for programs whose inputs are all scalars, with one wrt input and a
 * scalar output: the wrt input sweeps LO..HI in 200 samples, every other
 * input is held at 1.  Both curves come from the reference evaluator (the
 * gradient function gives the value and the derivative in one run).  A
 * sample that is NaN or infinite breaks its curve. */
#include "gradc.h"

#include "gradc/runtime.h"

#include <math.h>
#include <stdlib.h>

enum { NSAMPLES = 200, W = 640, H = 400, ML = 64, MR = 24, MT = 36, MB = 44 };

typedef struct Axis {
    double lo, hi;      /* data range */
    int p0, p1;         /* pixel range (p0 is lo) */
} Axis;

static double to_px(const Axis *a, double v)
{
    return a->p0 + (v - a->lo) / (a->hi - a->lo) * (a->p1 - a->p0);
}

/* A round step (1, 2 or 5 times a power of ten) for about 6 ticks. */
static double tick_step(double lo, double hi)
{
    double raw = (hi - lo) / 6, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static bool check_plottable(const Module *m)
{
    for (int i = 0; i < m->ninputs; i++) {
        if (!shape_is_scalar(m->inputs[i].shape)) {
            diag_plain("plot: input '%s' is not a scalar; plot takes programs whose inputs are all scalars",
                       m->inputs[i].name);
            return false;
        }
    }
    if (m->ndims > 0) {
        diag_plain("plot: dimension %s has no value (plot takes only scalar inputs)", m->dims[0]);
        return false;
    }
    if (m->nwrt != 1) {
        diag_plain("plot: the program must differentiate with respect to exactly one input "
                   "(it has %d; add a `wrt` line)", m->nwrt);
        return false;
    }
    if (!shape_is_scalar(m->fwd.value->shape)) {
        diag_plain("plot: the output '%s' is not a scalar", m->output_name);
        return false;
    }
    return true;
}

/* Samples y = f(x) and dy = f'(x); false on an evaluation error. */
static bool sample(const Module *m, double lo, double hi, double *xs, double *ys, double *dys)
{
    double *in = calloc((size_t)m->ninputs + 1, sizeof *in);
    const double **ptr = calloc((size_t)m->ninputs + 1, sizeof *ptr);
    int64_t nodims = 0;
    Bindings b = {.dims = &nodims, .inputs = ptr};
    bool ok = in && ptr;
    for (int i = 0; ok && i < m->ninputs; i++) {
        in[i] = 1.0;
        ptr[i] = &in[i];
    }
    double *x = ok ? &in[m->wrt[0]] : NULL;
    for (int s = 0; ok && s < NSAMPLES; s++) {
        xs[s] = *x = lo + (hi - lo) * s / (NSAMPLES - 1);
        double *g = &dys[s];
        Loc where = {0, 0};
        int st = eval_func(m, &m->grad, &b, &ys[s], &g, &where);
        if (st) {
            if (st == GRADC_EMAXITER)
                diag_error(m->src, where, "%s (at %s = %g)", gradc_strerror(st),
                           m->inputs[m->wrt[0]].name, xs[s]);
            else
                diag_plain("plot: %s", gradc_strerror(st));
            ok = false;
        }
    }
    if (!in || !ptr)
        diag_plain("plot: out of memory");
    free(in);
    free(ptr);
    return ok;
}

static void curve(FILE *f, const Axis *ax, const Axis *ay, const double *xs, const double *ys,
                  const char *color, const char *dash)
{
    fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s d=\"", color, dash);
    bool pen = false;
    for (int s = 0; s < NSAMPLES; s++) {
        if (!isfinite(ys[s])) {
            pen = false;
            continue;
        }
        fprintf(f, "%s%.2f %.2f ", pen ? "L" : "M", to_px(ax, xs[s]), to_px(ay, ys[s]));
        pen = true;
    }
    fputs("\"/>\n", f);
}

static void ticks(FILE *f, const Axis *a, bool vertical)
{
    double step = tick_step(a->lo, a->hi);
    for (double t = ceil(a->lo / step) * step; t <= a->hi + step * 1e-9; t += step) {
        double v = fabs(t) < step * 1e-9 ? 0 : t, p = to_px(a, v);
        if (vertical)
            fprintf(f, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#ddd\"/>"
                       "<text x=\"%d\" y=\"%.2f\" text-anchor=\"end\">%g</text>\n",
                    ML, p, W - MR, p, ML - 6, p + 4, v);
        else
            fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#ddd\"/>"
                       "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
                    p, MT, p, H - MB, p, H - MB + 18, v);
    }
}

static void write_svg(FILE *f, const Module *m, const double *xs, const double *ys,
                      const double *dys)
{
    Axis ax = {xs[0], xs[NSAMPLES - 1], ML, W - MR}, ay = {INFINITY, -INFINITY, H - MB, MT};
    for (int s = 0; s < NSAMPLES; s++) {
        if (isfinite(ys[s]))
            ay.lo = fmin(ay.lo, ys[s]), ay.hi = fmax(ay.hi, ys[s]);
        if (isfinite(dys[s]))
            ay.lo = fmin(ay.lo, dys[s]), ay.hi = fmax(ay.hi, dys[s]);
    }
    if (!(ay.lo <= ay.hi))
        ay.lo = -1, ay.hi = 1;            /* nothing finite to show */
    if (ay.hi - ay.lo < 1e-12 * fmax(1, fabs(ay.hi)))
        ay.lo -= 1, ay.hi += 1;           /* a flat line */
    double pad = (ay.hi - ay.lo) * 0.05;
    ay.lo -= pad, ay.hi += pad;

    const char *y = m->output_name, *x = m->inputs[m->wrt[0]].name;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    ticks(f, &ax, false);
    ticks(f, &ay, true);
    if (ay.lo < 0 && ay.hi > 0)
        fprintf(f, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#888\"/>\n",
                ML, to_px(&ay, 0), W - MR, to_px(&ay, 0));
    if (ax.lo < 0 && ax.hi > 0)
        fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#888\"/>\n",
                to_px(&ax, 0), MT, to_px(&ax, 0), H - MB);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n",
            ML, MT, W - ML - MR, H - MT - MB);
    curve(f, &ax, &ay, xs, ys, "#1f77b4", "");
    curve(f, &ax, &ay, xs, dys, "#ff7f0e", " stroke-dasharray=\"6 4\"");
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
            (ML + W - MR) / 2, H - 8, x);
    fprintf(f, "<text x=\"%d\" y=\"22\" fill=\"#1f77b4\">%s</text>"
               "<text x=\"%d\" y=\"22\" fill=\"#ff7f0e\">d%s/d%s</text>\n",
            ML, y, ML + 60, y, x);
    fputs("</svg>\n", f);
}

int plot_svg(const Module *m, double lo, double hi, const char *svg_path)
{
    if (!check_plottable(m))
        return 1;
    if (!isfinite(lo) || !isfinite(hi) || !(lo < hi)) {
        diag_plain("plot: the range must be LO:HI with finite LO < HI");
        return 1;
    }
    double xs[NSAMPLES], ys[NSAMPLES], dys[NSAMPLES];
    if (!sample(m, lo, hi, xs, ys, dys))
        return 1;
    const char *tmp;
    FILE *f = out_open(m->arena, svg_path, &tmp);
    if (!f)
        return 1;
    write_svg(f, m, xs, ys, dys);
    return out_close(f, tmp, svg_path) ? 0 : 1;
}
