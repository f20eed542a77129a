#!/usr/bin/env python3
"""Writes cases/NAME.expected.json for the kron/flatten cases of tests/ed2a
from the independent oracle of tests/mporacle.py: each program written out
here with mpmath at 40 digits (kron by its definition, MATLAB's), its
gradient and Hessian (and the inner Hessian of ed2a_hessian_matrix_inner) by
mpmath's high-precision numerical derivatives, not by gradc's rules.  Run by
hand (needs mpmath) after changing a case; the test suite only reads the files.

    python3 tests/ed2a/make_kron.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mpmath as mp  # noqa: E402
from mporacle import entry, gradient, inputs, positions, replaced, write  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")


def kron(a, b):
    """a, b lists of rows: entry (i*rb + k, j*cb + l) = a[i][j] * b[k][l]"""
    return [[a[i][j] * b[k][l] for j in range(len(a[0])) for l in range(len(b[0]))]
            for i in range(len(a)) for k in range(len(b))]


def col(v):
    return [[t] for t in v]


def matmul(a, b):
    return [[mp.fsum(a[i][k] * b[k][j] for k in range(len(b))) for j in range(len(b[0]))]
            for i in range(len(a))]


def entries(a):
    return [t for row in a for t in row]


def kron_case(v):
    A, B, x = v["A"], v["B"], v["x"]
    K = kron(A, B)
    Ax = matmul(A, col(x))
    return (mp.fsum(mp.sin(t) for t in entries(K)) + mp.fsum(t ** 3 for t in entries(A)) / 3
            + mp.fsum(t ** 2 for t in entries(kron(col(x), [list(r) for r in zip(*B)]))) / 2
            + mp.fsum(p * q for p, q in zip(entries(kron(Ax, [x])), entries(A))))


def inner_e(x, A):
    n = len(x)
    M = [[x[i] * x[j] + A[i][j] * x[j] for j in range(n)] for i in range(n)]
    AM = matmul(A, M)
    return (mp.fsum(mp.exp(t / 2) for t in entries(M))
            + mp.fsum(mp.log(mp.fsum(mp.exp(t) for t in row)) for row in AM))


def inner_hessian(x, A):
    n = len(x)
    H = [[None] * n for _ in range(n)]
    for i in range(n):
        for j in range(i, n):
            order = [0] * n
            order[i] += 1
            order[j] += 1
            H[i][j] = H[j][i] = mp.diff(lambda *t: inner_e(list(t), A), x, tuple(order))
    return H


def matrix_inner_case(v):
    H = inner_hessian(v["x"], v["A"])
    return mp.fsum(p * q for p, q in zip(entries(H), entries(v["W"])))


CASES = {"ed2a_kron": (kron_case, ["A", "B", "x"], True),
         "ed2a_hessian_matrix_inner": (matrix_inner_case, ["W", "A"], False)}


def at(v, places, ts):
    """v with the entries places (name, position) set to ts"""
    w = dict(v)
    for (name, pos), t in zip(places, ts):
        w[name] = replaced(w[name], pos, t)
    return w


def hessian(f, v, wrt):
    """over the wrt inputs' entries, row-major, in wrt order (eval --hessian's)"""
    ps = [(name, p) for name in wrt for p in positions(v[name])]
    H = [[0.0] * len(ps) for _ in ps]
    for i in range(len(ps)):
        for j in range(i, len(ps)):
            pair, order = ([ps[i]], (2,)) if i == j else ([ps[i], ps[j]], (1, 1))
            h = mp.diff(lambda *t: f(at(v, pair, t)), [entry(v[n], p) for n, p in pair], order)
            H[i][j] = H[j][i] = float(h)
    return H


for case, (f, wrt, with_hessian) in CASES.items():
    raw, v = inputs(HERE, case)
    out = {"value": float(f(v)), "gradient": {k: gradient(f, v, k) for k in wrt}}
    if with_hessian:
        out["hessian"] = hessian(f, v, wrt)
    write(HERE, case, out)
