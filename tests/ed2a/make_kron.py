#!/usr/bin/env python3
"""Writes cases/NAME.expected.json for the kron/flatten cases of tests/ed2a
from an independent oracle: each program written out here with mpmath at 40
digits (kron by its definition, MATLAB's), its gradient and Hessian (and the
inner Hessian of ed2a_hessian_matrix_inner) by mpmath's high-precision
numerical derivatives, not by gradc's rules.  Run by hand (needs mpmath) after
changing a case; the test suite only reads the files.

    python3 tests/ed2a/make_kron.py
"""
import copy
import json
import os

import mpmath as mp

mp.mp.dps = 40
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


def mpify(x):
    return [mpify(t) for t in x] if isinstance(x, list) else mp.mpf(x)


def places(v, name):
    """(name, path) of each entry of input name, row-major"""
    x = v[name]
    if not isinstance(x, list):
        return [(name, ())]
    if not isinstance(x[0], list):
        return [(name, (i,)) for i in range(len(x))]
    return [(name, (i, j)) for i in range(len(x)) for j in range(len(x[i]))]


def with_values(v, where, ts):
    w = copy.deepcopy(v)
    for (name, path), t in zip(where, ts):
        if not path:
            w[name] = t
        elif len(path) == 1:
            w[name][path[0]] = t
        else:
            w[name][path[0]][path[1]] = t
    return w


def get(v, place):
    name, path = place
    x = v[name]
    for k in path:
        x = x[k]
    return x


def shaped(v, name, flat):
    x = v[name]
    if not isinstance(x, list):
        return flat[0]
    if not isinstance(x[0], list):
        return flat
    c = len(x[0])
    return [flat[i * c:(i + 1) * c] for i in range(len(x))]


for case, (f, wrt, hessian) in CASES.items():
    with open(os.path.join(HERE, case + ".inputs.json")) as fh:
        v = {k: mpify(x) for k, x in json.load(fh).items()}
    out = {"value": float(f(v)), "gradient": {}}
    for name in wrt:
        ps = places(v, name)
        g = [float(mp.diff(lambda t: f(with_values(v, [p], [t])), get(v, p))) for p in ps]
        out["gradient"][name] = shaped(v, name, g)
    if hessian:
        ps = [p for name in wrt for p in places(v, name)]
        N = len(ps)
        H = [[0.0] * N for _ in range(N)]
        for i in range(N):
            for j in range(i, N):
                pair = [ps[i]] if i == j else [ps[i], ps[j]]
                order = (2,) if i == j else (1, 1)
                h = mp.diff(lambda *t: f(with_values(v, pair, t)), [get(v, p) for p in pair], order)
                H[i][j] = H[j][i] = float(h)
        out["hessian"] = H
    with open(os.path.join(HERE, case + ".expected.json"), "w") as fh:
        json.dump(out, fh, indent=2)
        fh.write("\n")
    print(case, out["value"])
