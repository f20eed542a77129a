#!/usr/bin/env python3
"""Writes cases/NAME.expected.json for the broadcasting and reduction cases of
tests/ed2a (ed2a_bcast_*) from an independent oracle: each program written out
here with mpmath at 40 digits (logsumexp without any shift: mpmath's exponent
does not overflow), gradients by mpmath's high-precision numerical derivative;
the tie case by the tie rule itself (each of t tied entries gets 1/t, PyTorch's
amax/amin), since a difference quotient sees only two-way ties.  Run by hand
(needs mpmath) after changing a case; the test suite only reads the files.

    python3 tests/ed2a/make_bcast.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mpmath as mp  # noqa: E402
from mporacle import inputs, write, write_all  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")


def cols(X):
    return [list(c) for c in zip(*X)]


def lse(v):
    return mp.log(sum(mp.exp(t) for t in v))


def softmax(v):
    s = sum(mp.exp(t) for t in v)
    return [mp.exp(t) / s for t in v]


def lse_big(v):
    X, w = v["X"], v["w"]
    allx = [t for row in X for t in row]
    y = sum(lse(row) for row in X)
    y += sum(lse(c) * wj for c, wj in zip(cols(X), w))
    y += sum(p * t for c in cols(X) for p, t in zip(softmax(c), c))
    y -= sum((t - lse(row)) * p for row in X for t, p in zip(row, softmax(row)))
    return y + lse(allx)


def unit_dims(v):
    r, c, X, W = v["r"][0], v["c"], v["X"], v["W"]
    y = 0
    for i, ci in enumerate(c):
        for j, rj in enumerate(r):
            y += (ci + rj) * (max(ci, rj) * X[i][j] / (1 + ci ** 2) - rj ** 2)
    y += sum(rj * p for rj, p in zip(r, softmax(r)))      # sum(r, 1) is r
    y += sum(c)                                           # mean(c, 2) is c
    y += len(r)                                           # softmax(r, 1) is ones
    y += sum(c)                                           # logsumexp(c, 2) is c
    return y + sum(W[i][j] * c[i] for i in range(len(c)) for j in range(len(r)))


def clamp(x, lo, hi):
    return min(max(x, lo), hi)


def loop(v):
    Z, b, lo = v["Z"], v["b"], v["lo"]
    H = [list(row) for row in Z]
    for i in (1, 2, 3):
        H = [[mp.tanh(h + mp.mpf("0.5") * bj) * (1 + mp.mpf("0.1") * i) for h, bj in zip(row, b)]
             for row in H]
    m = len(H)
    y = sum(clamp(h, lo[i], mp.mpf("0.8")) ** 2 for i, row in enumerate(H) for h in row)
    y += sum(sum(bj * h for bj, h in zip(b, row)) * m for row in H)   # sum((b' .* ones) * H')
    for j, c in enumerate(cols(H)):
        mean = sum(c) / m
        y += sum(t - mean for t in c) * b[j]
    return y


def factor(v):
    u, A, X, x = v["u"], v["A"], v["X"], v["x"]
    m, n = len(X), len(X[0])
    AX = [[sum(A[i][p] * X[p][j] for p in range(m)) for j in range(n)] for i in range(m)]
    uX = [sum(u[p] * X[p][j] for p in range(m)) for j in range(n)]
    y = sum(uX[j] + AX[i][j] for i in range(m) for j in range(n))
    xx = sum(t * t for t in x)
    Ax = [sum(A[i][p] * x[p] for p in range(m)) for i in range(m)]
    y += sum(xx - t for t in Ax)
    xA = [sum(x[p] * A[p][j] for p in range(m)) for j in range(m)]
    return y + sum(xA[i] * sum(X[i]) for i in range(m))


NUMERIC = {
    "ed2a_bcast_factor": factor,
    "ed2a_bcast_lse_big": lse_big,
    "ed2a_bcast_unit_dims": unit_dims,
    "ed2a_bcast_loop": loop,
}


def tie_weights(v, pick):
    """1/t on each of the t entries equal to pick(v), 0 elsewhere."""
    m = pick(v)
    t = sum(1 for x in v if x == m)
    return [mp.mpf(1) / t if x == m else mp.mpf(0) for x in v], m


def ties(v):
    """y = 2*amax(x) + sum(amax(X, 2)) + 3*sum(amin(X, 1)) + amin(X) - amax(X)."""
    x, X = v["x"], v["X"]
    m, k = len(X), len(X[0])
    gX = [[mp.mpf(0)] * k for _ in range(m)]
    wx, ax = tie_weights(x, max)
    y = 2 * ax
    gx = [2 * t for t in wx]
    for i, row in enumerate(X):
        w, a = tie_weights(row, max)
        y += a
        for j in range(k):
            gX[i][j] += w[j]
    for j, c in enumerate(cols(X)):
        w, a = tie_weights(c, min)
        y += 3 * a
        for i in range(m):
            gX[i][j] += 3 * w[i]
    flat = [t for row in X for t in row]
    for pick, sign in ((min, 1), (max, -1)):
        w, a = tie_weights(flat, pick)
        y += sign * a
        for q, t in enumerate(w):
            gX[q // k][q % k] += sign * t
    return y, {"x": [float(t) for t in gx], "X": [[float(t) for t in row] for row in gX]}


write_all(HERE, NUMERIC)

raw, v = inputs(HERE, "ed2a_bcast_ties")
y, g = ties(v)
write(HERE, "ed2a_bcast_ties", {"value": float(y), "gradient": g})
