#!/usr/bin/env python3
"""logreg.py — gradient descent on L2-penalised logistic regression from
Python, with the loss and its gradient compiled by gradc
(samples/logistic_regression.expr) into a shared library and called
through gradc.py (ctypes + NumPy, no framework):

    loss(w) = sum_i log(1 + exp(-y_i x_i'w)) + lam/2 |w|^2

    gradc compile samples/logistic_regression.expr --shared --name logreg -o liblogreg.so
    python3 samples/python/logreg.py ./liblogreg.so

The data set is the one samples/c/logreg.c makes (the same splitmix64
stream): M examples x_i = (1, u, v), labels from the logistic model with
weights W_TRUE.  The step is 1/L for a bound L on the curvature, so the
loss must fall at every step; the program exits 1 unless it did and ended
below the loss at W_TRUE (the minimiser is at least that good).
"""

import sys

import numpy as np

import gradc

M, N, STEPS, PRINT_EVERY = 200, 3, 100, 10
W_TRUE = np.array([0.5, 2.0, -3.0])
LAM = 0.1
MASK = (1 << 64) - 1


def uniform01(state):
    """splitmix64, as samples/c/logreg.c: (new state, a double in [0, 1))."""
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    z ^= z >> 31
    return state, (z >> 11) * 2.0**-53


def make_data():
    X, y, s = np.empty((M, N)), np.empty(M), 42
    for i in range(M):
        s, u = uniform01(s)
        s, v = uniform01(s)
        X[i] = (1.0, 2 * u - 1, 2 * v - 1)
        t = X[i] @ W_TRUE
        s, r = uniform01(s)
        y[i] = 1.0 if r < 1 / (1 + np.exp(-t)) else -1.0
    return X, y


def fit(f, X, y, steps=STEPS, out=sys.stdout):
    """Plain gradient descent from w = 0; returns (w, losses)."""
    eta = 1 / (np.sum(X * X) / 4 + LAM)   # 1/L, L >= the Hessian's largest eigenvalue
    w, losses = np.zeros(N), []
    print("step   loss", file=out)
    for step in range(steps + 1):
        loss, g = f.grad(X=X, y=y, w=w, lam=LAM)   # value and gradient, one call
        losses.append(loss)
        if step % PRINT_EVERY == 0:
            print(f"{step:4d}   {loss:.6f}", file=out)
        if step < steps:
            w = w - eta * g["w"]
    return w, losses


def main(argv):
    f = gradc.load(argv[1] if len(argv) > 1 else "./liblogreg.so")
    X, y = make_data()
    w, losses = fit(f, X, y)
    loss_true = f(X=X, y=y, w=W_TRUE, lam=LAM)
    print("final weights  " + " ".join(f"{v: .4f}" for v in w))
    print("true weights   " + " ".join(f"{v: .4f}" for v in W_TRUE) + f" (loss there {loss_true:.6f})")
    falling = all(b < a for a, b in zip(losses, losses[1:]))
    if not falling or not losses[-1] < loss_true:
        print("logreg: " + ("the loss did not get below loss(W_TRUE)" if falling
                            else "the loss did not fall at every step"), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
