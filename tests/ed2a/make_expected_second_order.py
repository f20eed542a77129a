#!/usr/bin/env python3
"""Writes cases/NAME.expected.json for the grad()/hessian() cases of tests/ed2a
(spec §9) from an independent oracle: mpmath at 40 digits, each program
written out here with its inner gradients and Hessians derived by hand (not
by gradc's rules), and the outer gradient by mpmath's high-precision numerical
derivative.  Run by hand (needs mpmath) after changing a case; the test suite
only reads the files.

    python3 tests/ed2a/make_expected_second_order.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mpmath as mp  # noqa: E402
from mporacle import gradient, inputs, write  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")


def sigmoid(z):
    return 1 / (1 + mp.exp(-z))


def softplus(z):
    return mp.log1p(mp.exp(z))


def col(v):
    return mp.matrix(v)


def mat(rows):
    return mp.matrix(rows)


def dot(u, v):
    return mp.fsum(a * b for a, b in zip(u, v))


def newton_inv(v):
    """ed2a_newton_inv (and _solve): f(x) = sum(softplus(A x - b)) + |x|^2/2; one Newton step,
    g = A' s + x, H = A' diag(s (1 - s)) A + I with s = sigmoid(A x - b)."""
    A, b, x = mat(v["A"]), col(v["b"]), col(v["x"])
    m, n = A.rows, A.cols
    z = A * x - b
    s = [sigmoid(z[i]) for i in range(m)]
    g = A.T * col(s) + x
    D = mp.diag([s[i] * (1 - s[i]) for i in range(m)])
    H = A.T * D * A + mp.eye(n)
    x1 = x - mp.inverse(H) * g
    z1 = A * x1 - b
    return mp.fsum(softplus(z1[i]) for i in range(m)) + dot(x1, x1) / 2


def grad_detach(v):
    """ed2a_grad_detach: g1 = grad(sum(x.^2 .* detach(x)), x) = 2 x .* c with
    c = x held constant; g2 = grad(sum(sin(w .* x)), w) = x .* cos(w .* x).
    y = sum(g1) + dot(w, g2).  The outer derivative treats c as a constant."""
    x, w, c = v["x"], v["w"], v.get("c", v["x"])
    g1 = [2 * a * k for a, k in zip(x, c)]
    g2 = [a * mp.cos(b * a) for a, b in zip(x, w)]
    return mp.fsum(g1) + dot(w, g2)


def hessian_mix(v):
    """ed2a_hessian_mix: e = norm(x) + dot(softmax(x), c) + x'Ax + a sum(exp(a x))
    + (x'c)^2; H = hessian(e, x), h = hessian(e, a), y = sum(H c) + trace(H) + h."""
    x, c, a = v["x"], v["c"], v["a"]
    A = mat(v["A"])
    n = len(x)
    r = mp.sqrt(dot(x, x))
    mx = max(x)
    ex = [mp.exp(t - mx) for t in x]
    p = [t / mp.fsum(ex) for t in ex]
    s = dot(p, c)
    xc = dot(x, c)
    H = mp.matrix(n, n)
    for i in range(n):
        for j in range(n):
            d = 1 if i == j else 0
            H[i, j] = (d / r - x[i] * x[j] / r ** 3
                       + p[i] * (d - p[j]) * (c[i] - s) - p[i] * p[j] * (c[j] - s)
                       + A[i, j] + A[j, i]
                       + d * a ** 3 * mp.exp(a * x[i])
                       + 2 * c[i] * c[j])
    h = mp.fsum(2 * t * mp.exp(a * t) + a * t * t * mp.exp(a * t) for t in x)
    Hc = H * col(c)
    return mp.fsum(Hc[i] for i in range(n)) + mp.fsum(H[i, i] for i in range(n)) + h


def grad_loop_const(v):
    """ed2a_grad_loop_const: s = ((k + 1) k + 1) k + 1 from a loop that x does not
    enter; g = grad(s dot(x, x), x) = 2 s x; y = dot(g, g)."""
    x, k = v["x"], v["k"]
    s = mp.mpf(1)
    for _ in range(3):
        s = s * k + 1
    g = [2 * s * t for t in x]
    return dot(g, g)


def slices_e(x):
    """ed2a_hessian_slices' e, written out: Rosenbrock, dot(log_softmax(x), x),
    amax(x.^2), dot([x1; x.^2], [x; 1])."""
    n = len(x)
    r = mp.fsum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(n - 1))
    lse = mp.log(mp.fsum(mp.exp(t) for t in x))
    ls = mp.fsum((t - lse) * t for t in x)
    v = [x[0]] + [t ** 2 for t in x]
    w = list(x) + [1]
    return r + ls + max(t ** 2 for t in x) + dot(v, w)


def slices_partials(x):
    """slices_e as a function of n arguments, and order(i, j, ...), the
    derivative orders mp.diff takes for the partial by x_i, x_j, ..."""
    n = len(x)
    def order(*ks):
        o = [0] * n
        for k in ks:
            o[k] += 1
        return o
    return (lambda *t: slices_e(list(t))), order


def hessian_slices(v):
    """y = sum(H .* C), H the Hessian of slices_e by mpmath's numerical partial
    derivatives (C enters linearly, so dy/dC = H; dy/dx by third partials)."""
    x, C = v["x"], v["C"]
    n = len(x)
    f, order = slices_partials(x)
    H = [[mp.diff(f, x, order(i, j)) for j in range(n)] for i in range(n)]
    return mp.fsum(H[i][j] * C[i][j] for i in range(n) for j in range(n))


def hessian_slices_grad(v):
    x, C = v["x"], v["C"]
    n = len(x)
    f, order = slices_partials(x)
    H = [[mp.diff(f, x, order(i, j)) for j in range(n)] for i in range(n)]
    gx = [float(mp.fsum(C[i][j] * mp.diff(f, x, order(i, j, k)) for i in range(n) for j in range(n)))
          for k in range(n)]
    return {"x": gx, "C": [[float(H[i][j]) for j in range(n)] for i in range(n)]}


def grad_if(v):
    """ed2a_grad_if, the path taken at the point written out: t = |x|^2;
    t > a: h = a sqrt(t), grad a x/sqrt(t), Hessian a (I/sqrt(t) - x x'/t^1.5);
    else h = t/2 + log(1 + a), grad x, Hessian I; k = s h with s = exp(a) if
    a > 0 else 1; y = |s grad|^2 + s trace(H) + s h."""
    x, a = v["x"], v["a"]
    n = len(x)
    t = dot(x, x)
    if t > a:
        h = a * mp.sqrt(t)
        gh = [a * u / mp.sqrt(t) for u in x]
        tr = a * (n / mp.sqrt(t) - t / t ** 1.5)
    else:
        h = t / 2 + mp.log(1 + a)
        gh = list(x)
        tr = mp.mpf(n)
    s = mp.exp(a) if a > 0 else 1
    return s * s * dot(gh, gh) + s * tr + s * h


def scalar_matrix_e(A, s):
    n = A.rows
    K = A * A.T + s * mp.eye(n)
    L = mp.cholesky(K)
    Ki = mp.inverse(K)
    X = Ki * A   # solve(K, A)
    return (mp.log(mp.det(K)) + mp.fsum(Ki[i, j] for i in range(n) for j in range(n))
            + mp.fsum(X[i, i] for i in range(n)) + mp.fsum(L[i, j] for i in range(n) for j in range(n)))


def hessian_scalar_matrix(v):
    """ed2a_hessian_scalar_matrix: y = e''(s) + e'(s)^2, the derivatives in s by
    mpmath's numerical differentiation of e written out (chol, inv, det, solve)."""
    A = mat(v["A"])
    f = lambda t: scalar_matrix_e(A, t)
    return mp.diff(f, v["s"], 2) + mp.diff(f, v["s"], 1) ** 2


CASES = {
    "ed2a_newton_inv": (newton_inv, ["x", "b"]),
    "ed2a_newton_solve": (newton_inv, ["x", "b"]),   # the same step, by solve
    "ed2a_grad_detach": (grad_detach, ["x", "w"]),
    "ed2a_hessian_mix": (hessian_mix, ["x", "a", "A", "c"]),
    "ed2a_grad_loop_const": (grad_loop_const, ["x", "k"]),
    "ed2a_hessian_slices": (hessian_slices, ["x", "C"]),
    "ed2a_grad_if": (grad_if, ["x", "a"]),
    "ed2a_grad_if_other": (grad_if, ["x", "a"]),
    "ed2a_hessian_scalar_matrix": (hessian_scalar_matrix, ["s", "A"]),
}
# cases whose gradient is written out (third partials) rather than differenced
GRADIENTS = {"ed2a_hessian_slices": hessian_slices_grad}


for case, (f, wrt) in CASES.items():
    raw, v = inputs(HERE, case)
    # for grad_detach the detached copy c stays at the point
    base = dict(v, c=list(v["x"])) if f is grad_detach else v
    grad = (GRADIENTS[case](v) if case in GRADIENTS
            else {k: gradient(f, v, k, base) for k in wrt})
    write(HERE, case, {"value": float(f(v)), "gradient": grad})
