/* plot.c — `gradc plot`: the output and its derivative over a range, as SVG.
 *
 * Only for programs whose inputs are all scalars, with one wrt input and a
 * scalar output: the wrt input sweeps LO..HI in 200 samples, every other
 * input is held at its value in --inputs FILE (1 without one).  Both curves
 * come from the reference evaluator (the gradient function gives the value
 * and the derivative in one run).  A sample that is NaN or infinite breaks
 * its curve.  --tangent X0 adds the line f(X0) + f'(X0)(x - X0), clipped to
 * the plot area, and a dot at (X0, f(X0)). */
#include "gradc.h"

#include "gradc/runtime.h"

#include <jansson.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* The held inputs from --inputs FILE: every input but the swept one must
 * be a number there (the swept one may be given; it is ignored). */
static bool held_inputs(const Module *m, const char *path, double *in)
{
    const Source *src = NULL;
    json_t *j = json_parse_file(m->arena, path, &src);
    bool ok = j != NULL;
    if (ok && !json_is_object(j)) {
        diag_error(src, (Loc){0, 0}, "the inputs should be a JSON object with one "
                   "key per input, not %s", json_kind_name(j));
        ok = false;
    }
    for (int i = 0; ok && i < m->ninputs; i++) {
        const json_t *v = json_object_get(j, m->inputs[i].name);
        if (i == m->wrt[0] && !v)
            continue;
        if (!v || !json_is_number(v)) {
            diag_error(src, (Loc){0, 0}, v ? "input '%s' should be a number, not %s"
                       : "missing input '%s' (plot holds every input but the swept one at its "
                       "value here)%s", m->inputs[i].name, v ? json_kind_name(v) : "");
            ok = false;
        } else {
            in[i] = json_number_value(v);
        }
    }
    json_decref(j);
    if (src)
        free(src->text);
    return ok;
}

/* f and f' at the swept input's value x (the other inputs in `in`);
 * false after a message. */
static bool eval_at(const Module *m, double *in, double x, double *y, double *dy)
{
    const double **ptr = arena_alloc(m->arena, sizeof *ptr * ((size_t)m->ninputs + 1));
    int64_t nodims = 0;
    Bindings b = {.dims = &nodims, .inputs = ptr};
    for (int i = 0; i < m->ninputs; i++)
        ptr[i] = &in[i];
    in[m->wrt[0]] = x;
    Loc where = {0, 0};
    int st = eval_func(m, &m->grad, &b, y, &dy, &where);
    if (st == GRADC_EMAXITER)
        diag_error(m->src, where, "%s (at %s = %g)", gradc_strerror(st),
                   m->inputs[m->wrt[0]].name, x);
    else if (st)
        diag_plain("plot: %s", gradc_strerror(st));
    return st == 0;
}

/* Samples y = f(x) and dy = f'(x); false on an evaluation error. */
static bool sample(const Module *m, double *in, double lo, double hi, double *xs, double *ys,
                   double *dys)
{
    for (int s = 0; s < NSAMPLES; s++) {
        xs[s] = lo + (hi - lo) * s / (NSAMPLES - 1);
        if (!eval_at(m, in, xs[s], &ys[s], &dys[s]))
            return false;
    }
    return true;
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

/* The tangent line at (x0, y0) with slope dy0, clipped to the plot area,
 * a dot where it touches, and its legend. */
static void tangent(FILE *f, const Axis *ax, const Axis *ay, double x0, double y0, double dy0)
{
    if (!isfinite(y0) || !isfinite(dy0)) {
        fprintf(f, "<text x=\"%d\" y=\"22\" fill=\"#2ca02c\">no tangent at %g "
                   "(not finite there)</text>\n", ML + 160, x0);
        return;
    }
    fprintf(f, "<clipPath id=\"area\"><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>"
               "</clipPath>\n", ML, MT, W - ML - MR, H - MT - MB);
    fprintf(f, "<path clip-path=\"url(#area)\" fill=\"none\" stroke=\"#2ca02c\" "
               "stroke-width=\"1.5\" d=\"M%.2f %.2f L%.2f %.2f\"/>\n",
            to_px(ax, ax->lo), to_px(ay, y0 + dy0 * (ax->lo - x0)),
            to_px(ax, ax->hi), to_px(ay, y0 + dy0 * (ax->hi - x0)));
    fprintf(f, "<circle clip-path=\"url(#area)\" cx=\"%.2f\" cy=\"%.2f\" r=\"4\" "
               "fill=\"#2ca02c\"/>\n", to_px(ax, x0), to_px(ay, y0));
    fprintf(f, "<text x=\"%d\" y=\"22\" fill=\"#2ca02c\">tangent at %g: slope %g</text>\n",
            ML + 160, x0, dy0);
}

static void write_svg(FILE *f, const Module *m, const double *xs, const double *ys,
                      const double *dys, const PlotOptions *po, double y0, double dy0)
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
    if (po->tangent)
        tangent(f, &ax, &ay, po->x0, y0, dy0);
    fputs("</svg>\n", f);
}

int plot_svg(const Module *m, const PlotOptions *po, const char *svg_path)
{
    double lo = po->lo, hi = po->hi;
    if (!check_plottable(m))
        return 1;
    if (!isfinite(lo) || !isfinite(hi) || !(lo < hi)) {
        diag_plain("plot: the range must be LO:HI with finite LO < HI");
        return 1;
    }
    double *in = arena_alloc(m->arena, sizeof *in * ((size_t)m->ninputs + 1));
    for (int i = 0; i < m->ninputs; i++)
        in[i] = 1.0;
    if (po->inputs && !held_inputs(m, po->inputs, in))
        return 1;
    double xs[NSAMPLES], ys[NSAMPLES], dys[NSAMPLES], y0 = 0, dy0 = 0;
    if (!sample(m, in, lo, hi, xs, ys, dys))
        return 1;
    if (po->tangent && !eval_at(m, in, po->x0, &y0, &dy0))
        return 1;
    const char *tmp;
    FILE *f = out_open(m->arena, svg_path, &tmp);
    if (!f)
        return 1;
    write_svg(f, m, xs, ys, dys, po, y0, dy0);
    return out_close(f, tmp, svg_path) ? 0 : 1;
}
