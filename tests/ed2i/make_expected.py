#!/usr/bin/env python3
"""Writes cases/NAME.expected.json for tests/ed2i (concatenation, indexing,
slicing and dimension forms, spec §8) from an independent oracle: each
program written out here over mpmath numbers at 40 digits (1-based indices
spelled out by hand), gradients by mpmath's numerical derivative entry by
entry (so no part of gradc is used).  Run by hand (needs mpmath) after
changing a case; the test suite only reads the files.

    python3 tests/ed2i/make_expected.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mpmath as mp  # noqa: E402
from mporacle import write_all  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")


def window_loop(v):
    x, X = v["x"], v["X"]
    n, m = len(x), len(X)
    s = 0
    for i in range(1, n):                       # i in 1:n-1
        s += (x[i - 1] * X[0][i - 1] + x[i] * X[0][i]) * x[i]
    for j in range(1, m):                       # j in 1:m-1
        B = [X[j - 1][1:3], X[j][1:3]]
        s += sum(b * b for row in B for b in row) * x[j - 1] + X[j][n - 1] * x[n - j - 1]
    return s


def forms(v):
    x, y = v["x"], v["y"]
    n, m = len(x), len(y)
    a = x + y + [1]
    b = [1] * (n + m) + [2]
    c = x + [3]
    d = [x[i] - 2 * x[i - 1] for i in range(1, n)]
    yx = y + x
    tail = yx[n - 1:n + m]                      # [y; x][n:n + m]
    return (sum(p * q for p, q in zip(a, b)) + sum(p * q for p, q in zip(c, x + [1]))
            + sum(e * e for e in d) + mp.sqrt(sum(e * e for e in tail)))


def concat_mixed(v):
    A, u, t = v["A"], v["u"], v["t"]
    n = len(u)
    M = [A[i] + [u[i]] for i in range(n)] + [[t, 2, t * t]]
    vv = [r[0] + 2 * r[1] + 3 * r[2] for r in M]
    W = [u, [2 * e for e in u]]
    r = [sum(p * q for p, q in zip(w, u)) for w in W]
    P = M + M
    return (sum(e * e for e in vv) + r[0] * t + r[1] + P[n + 1][2] * P[2 * n + 1][0]
            + sum(P[i][j] for i in range(1, n + 1) for j in range(1, 3)))


def zero_trip(v):
    x, k = v["x"], v["k"]
    n, s = len(x), 0
    for _ in range(1, int(mp.floor(k)) + 1):
        s += 3 * x[n - 2]
    return s + 2 * x[n - 1]


def rotate(v):
    a0, w = v["a0"], v["w"]
    n = len(a0)
    a, b = list(a0), a0[0:2]
    for _ in range(4):
        b = [p + q for p, q in zip(a[1:3], b)]
        a = [p * q for p, q in zip(a[1:n] + [a[0]], w)]
    return sum(p * q for p, q in zip(a, w)) + sum(e * e for e in b)


def columns(v):
    X, h = v["X"], list(v["v"])
    m, n = len(X), len(X[0])
    X2 = X
    for t in range(n):
        shifted = [h[m - 1]] + h[0:m - 1]
        h = [mp.tanh(X[i][t] * h[i] + shifted[i]) for i in range(m)]
        X2 = [X[i][0:n - 1] + [h[i]] for i in range(m)]
    return sum(h) + sum(X2[i][j] for i in range(1, m) for j in range(n))


CASES = {"ed2i_rotate": rotate, "ed2i_columns": columns,
         "ed2i_window_loop": window_loop, "ed2i_forms": forms, "ed2i_concat_mixed": concat_mixed,
         "ed2i_zero_trip": zero_trip}


write_all(HERE, CASES)
