#!/usr/bin/env python3
"""Writes cases/NAME.expected.json for tests/ed2w (where, solve, chol) from an
independent oracle: mpmath at 40 digits, each program written out here with
mpmath's own lu_solve and cholesky, gradients by mpmath's numerical
derivative.  A where's conditions are recorded at the point and replayed for
the perturbed evaluations, so the derivative is the one of the path taken
(spec §8: the side not taken contributes 0).  chol reads the lower triangle of
its argument, and its expected gradient is the symmetric one, 0.5 (D + D')
of the entrywise derivatives D (spec §8, PyTorch's convention).
ed2w_gp_nll_nobcast reuses ed2_gp_nll's expected values (the same function).
Run by hand after changing a case; the test suite only reads the files.

    python3 tests/ed2w/make_expected.py
"""
import json
import os

import mpmath as mp

mp.mp.dps = 40
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")


class Path:
    """Conditions of wheres: recorded at the point, replayed off it."""
    def __init__(self):
        self.log, self.pos, self.replay = [], 0, False

    def __call__(self, c):
        if not self.replay:
            self.log.append(bool(c))
            return bool(c)
        self.pos += 1
        return self.log[self.pos - 1]


def where(path, c, a, b):
    return a if path(c) else b


def mat(rows):
    return mp.matrix([[mp.mpf(v) for v in r] for r in rows])


def col(v):
    return mp.matrix([mp.mpf(x) for x in v])


def solve(A, B):
    """A \\ B, column by column (B a vector or a matrix)."""
    if B.cols == 1:
        return mp.lu_solve(A, B)
    X = mp.matrix(B.rows, B.cols)
    for j in range(B.cols):
        x = mp.lu_solve(A, B.column(j))
        for i in range(B.rows):
            X[i, j] = x[i]
    return X


def total(M):
    return mp.fsum(M[i, j] for i in range(M.rows) for j in range(M.cols))


def dot(u, v):
    return mp.fsum(u[i] * v[i] for i in range(u.rows))


def where_nan_side(v, path):
    x, s = v["x"], v["s"]
    y = mp.fsum(where(path, xi > 0, mp.sqrt(xi) if xi > 0 else 0, 0) for xi in x)
    y += mp.fsum(where(path, xi > 1, mp.log(xi - 1) if xi > 1 else 0, xi ** 2) for xi in x)
    y += mp.fsum(where(path, xi != 0, 1 / xi if xi != 0 else 0, s) for xi in x)
    y += mp.fsum(where(path, xi < -5, mp.sqrt(s) if s > 0 else 0, 0) for xi in x)
    return y


def where_forms(v, path):
    x, t = v["x"], v["t"]
    z = [where(path, t > 1, xi, -xi) for xi in x]
    w = [where(path, (xi > 0 and not xi > 2) or xi < -1, mp.exp(xi),
               where(path, xi < 0.5, t * xi, 0)) for xi in x]
    y = mp.fsum(a * b for a, b in zip(z, w)) + mp.fsum(where(path, xi - 0.25 != 0, t, xi) for xi in x)
    for _ in range(2):
        y = y + where(path, y > 0, t * y, y ** 2)
    return y


def solve_forms(v, path):
    A, B, b = mat(v["A"]), mat(v["B"]), col(v["b"])
    X = solve(A, B)
    u = solve(-A, b)
    w = solve(A.T, b)
    vv = solve(A, b) * 2
    return (total(X.apply(lambda e: e ** 2)) + dot(u, vv) + dot(w, b)
            + total(mp.matrix([[X[i, j] * B[i, j] for j in range(B.cols)] for i in range(B.rows)]))
            + dot(b, solve(A, solve(A, b))))


def chol_lower(A):
    n = A.rows
    S = mp.matrix(n, n)
    for i in range(n):
        for j in range(n):
            S[i, j] = A[max(i, j), min(i, j)]
    return mp.cholesky(S)


def chol_sym(v, path):
    A, W = mat(v["A"]), mat(v["W"])
    L = chol_lower(A)
    n = A.rows
    y = mp.fsum(L[i, j] * W[i, j] for i in range(n) for j in range(n))
    y += 2 * mp.fsum(mp.log(L[i, i]) for i in range(n))
    return y + total(solve(L, W).apply(lambda e: e ** 2))


CASES = {
    "ed2w_where_nan_side": (where_nan_side, ["x", "s"], []),
    "ed2w_where_forms": (where_forms, ["x", "t"], []),
    "ed2w_solve_forms": (solve_forms, ["A", "B", "b"], []),
    "ed2w_chol_sym": (chol_sym, ["A"], ["A"]),   # the last list: chol's symmetric inputs
}


def shaped(v):
    return [mp.mpf(x) for x in v] if isinstance(v, list) and not isinstance(v[0], list) else \
        [[mp.mpf(x) for x in r] for r in v] if isinstance(v, list) else mp.mpf(v)


def entries(v):
    if not isinstance(v, list):
        return [()]
    if not isinstance(v[0], list):
        return [(i,) for i in range(len(v))]
    return [(i, j) for i in range(len(v)) for j in range(len(v[0]))]


def get(v, ix):
    for i in ix:
        v = v[i]
    return v


def put(v, ix, x):
    if not ix:
        return x
    out = [put(e, ix[1:], x) if k == ix[0] else e for k, e in enumerate(v)]
    return out


def main():
    for name, (f, wrt, sym) in CASES.items():
        with open(os.path.join(HERE, name + ".inputs.json")) as fh:
            raw = json.load(fh)
        vals = {k: shaped(v) for k, v in raw.items()}
        path = Path()
        value = f(vals, path)
        path.replay = True
        grad = {}
        for k in wrt:
            g = {}
            for ix in entries(vals[k]):
                def at(h, k=k, ix=ix):
                    path.pos = 0
                    return f(dict(vals, **{k: put(vals[k], ix, get(vals[k], ix) + h)}), path)
                g[ix] = mp.diff(at, 0)
            if k in sym:   # the symmetric gradient: 0.5 (D + D')
                g = {(i, j): (g[(i, j)] + g[(j, i)]) / 2 for (i, j) in g}
            v = vals[k]
            if not isinstance(v, list):
                grad[k] = float(g[()])
            elif not isinstance(v[0], list):
                grad[k] = [float(g[(i,)]) for i in range(len(v))]
            else:
                grad[k] = [[float(g[(i, j)]) for j in range(len(v[0]))] for i in range(len(v))]
        with open(os.path.join(HERE, name + ".expected.json"), "w") as fh:
            json.dump({"value": float(value), "gradient": grad}, fh, indent=2)
            fh.write("\n")
        print("wrote", name)


if __name__ == "__main__":
    main()
