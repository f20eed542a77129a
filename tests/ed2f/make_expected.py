#!/usr/bin/env python3
"""Writes cases/NAME.expected.json for the function and auxiliary-output
cases of tests/ed2f from an independent oracle: each program written out
here in mpmath at 40 digits (the calls expanded by hand), gradients by
mpmath's high-precision numerical derivative, so neither gradc's inlining
nor its derivative rules are used.  Run by hand (needs mpmath) after
changing a case; the test suite only reads the files.

    python3 tests/ed2f/make_expected.py
"""
import json
import os

import mpmath as mp

mp.mp.dps = 40
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")


def matvec(A, v):
    return [sum(a * b for a, b in zip(row, v)) for row in A]


def dot(x, y):
    return sum(a * b for a, b in zip(x, y))


def norm(x):
    return mp.sqrt(dot(x, x))


def fn_declared(v):
    A, B, x = v["A"], v["B"], v["v"]

    def center(y):
        mu = sum(y) / len(y)
        return [t - mu for t in y]

    def stats(M, w):
        u = matvec(M, w)
        c = center(w)
        return dot(u, u) / len(M), dot(c, c) + sum(u)

    def smooth(y):
        for _ in range(2):
            y = [mp.mpf("0.5") * t + mp.mpf("0.25") * mp.tanh(t) for t in y]
        return y

    s1, t1 = stats(A, x)
    s2, t2 = stats(B, smooth(x))
    z = 0
    for i in range(1, 4):
        z = z + stats(A, [t * i for t in x])[0] / i
    return s1 * t2 + t1 + s2 + z + sum(sum(smooth(row)) for row in A)


def aux_parts(v):
    W, x, c = v["W"], v["x"], v["c"]
    h = [mp.tanh(t) for t in matvec(W, x)]
    r = dot(h, h)
    d = [a - b for a, b in zip(h, c)]
    loss = dot(d, d) + mp.mpf("0.1") * r
    steps, e = 0, loss
    while e > mp.mpf("0.01"):
        e, steps = e / 3, steps + 1
    return loss, {"h": [float(t) for t in h], "G": [[float(t * t) for t in row] for row in W],
                  "steps": float(steps), "e": float(e)}


def fn_while_body(v):
    x, a = v["x"], v["a"]

    def grow(y):
        while norm(y) < 4:
            y = [mp.mpf("1.5") * t + mp.mpf("0.1") * mp.sin(t) for t in y]
        return y

    g = grow(x)
    s = dot(g, x) if sum(g) > 0 else -dot(g, x)
    t = 0
    for _ in range(2):
        t = t + a * sum(grow([a * u for u in x]))
    return s + t


def fn_shadow(v):
    A, x, y = v["A"], v["x"], v["y"]

    def f(u):
        for _ in range(2):
            u = [mp.tanh(t) for t in matvec(A, u)]
        return sum(u)

    return f(x) * y + f([2 * t for t in x])


# name: (function of the input dict, as mpmath numbers; aux values or None)
CASES = {
    "ed2f_fn_declared": (fn_declared, None),
    "ed2f_aux": (lambda v: aux_parts(v)[0], lambda v: aux_parts(v)[1]),
    "ed2f_fn_while_body": (fn_while_body, None),
    "ed2f_fn_shadow": (fn_shadow, None),
}


def mpify(x):
    return [mpify(t) for t in x] if isinstance(x, list) else mp.mpf(x)


def gradient(f, v, name):
    """d f / d v[name], entry by entry, in the input's own nesting."""
    def at(path, t):
        w = dict(v)
        if not path:
            w[name] = t
        elif len(path) == 1:
            w[name] = v[name][:path[0]] + [t] + v[name][path[0] + 1:]
        else:
            i, j = path
            row = v[name][i][:j] + [t] + v[name][i][j + 1:]
            w[name] = v[name][:i] + [row] + v[name][i + 1:]
        return f(w)

    def d(path, x0):
        return float(mp.diff(lambda t: at(path, t), x0))

    x = v[name]
    if not isinstance(x, list):
        return d((), x)
    if not isinstance(x[0], list):
        return [d((i,), t) for i, t in enumerate(x)]
    return [[d((i, j), t) for j, t in enumerate(row)] for i, row in enumerate(x)]


for case, (f, aux) in CASES.items():
    with open(os.path.join(HERE, case + ".inputs.json")) as fh:
        raw = json.load(fh)
    v = {k: mpify(x) for k, x in raw.items()}
    out = {"value": float(f(v))}
    if aux:
        out["aux"] = aux(v)
    out["gradient"] = {k: gradient(f, v, k) for k in raw}
    with open(os.path.join(HERE, case + ".expected.json"), "w") as fh:
        json.dump(out, fh, indent=2)
        fh.write("\n")
    print(case, out["value"])
