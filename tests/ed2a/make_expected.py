#!/usr/bin/env python3
"""Writes cases/NAME.expected.json for the elementwise-function cases of
tests/ed2a from an independent oracle: mpmath at 40 digits, each function
written out here, gradients by mpmath's high-precision numerical derivative
(so neither gradc's rules nor its special functions are used).  Run by hand
(needs mpmath) after changing a case; the test suite only reads the files.

    python3 tests/ed2a/make_expected.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mpmath as mp  # noqa: E402
from mporacle import write_all  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")


def logsigmoid(z):
    return -mp.log1p(mp.exp(-z)) if z > -50 else z - mp.log1p(mp.exp(z))


def sign(z):
    return mp.sign(z)


def clamp(x, lo, hi):
    return min(max(x, lo), hi)


def for_bounds(v):
    """ed2a_for_bounds written out: i takes floor(a), floor(a) + s, ... while not past floor(b)."""
    z = list(v["x"])
    n = len(z)
    K = v["K"]
    def rng(a, s, b):
        i = mp.floor(a)
        while (i <= mp.floor(b)) if s > 0 else (i >= mp.floor(b)):
            yield i
            i += s
    for i in rng(K, -2, -3.5):
        z = [t + mp.mpf("0.1") * i * mp.sin(t) for t in z]
    t = 0
    for j in rng(K - 2, 1, K):
        t = t + j * sum(z) / n
    for j in rng(3, 2, n):
        t = t + j
    return sum(u * u for u in z) + t


# name: (function of the input dict, as mpmath numbers)
CASES = {
    "ed2a_trig_hyp": lambda v: sum(mp.expm1(x) + 2 * mp.atan(x) + 3 * mp.asin(x / 2)
                                   + 4 * mp.acos(x - 1) + 5 * mp.sinh(x) + 6 * mp.cosh(x)
                                   for x in v["x"]),
    "ed2a_erf_gamma": lambda v: sum(mp.erf(x) * x + 2 * mp.erfc(x) + 3 * mp.loggamma(x)
                                    + 4 * mp.digamma(x) + 5 * mp.polygamma(1, x)
                                    for x in v["x"]),
    "ed2a_logsigmoid_sign": lambda v: sum(logsigmoid(z) + 2 * logsigmoid(-z) * z for z in v["z"])
                                      + sum(sign(x - 1) * x ** 3 for x in v["x"]),
    "ed2a_clamp_pi": lambda v: sum(clamp(x, v["lo"], h) ** 2 for x, h in zip(v["x"], v["hi"]))
                               + sum(clamp(x, 0.8, 1.2) * mp.sin(mp.pi * x) for x in v["x"])
                               + mp.pi * v["lo"],
    "ed2a_for_bounds": for_bounds,
    "ed2a_lines": lambda v: (sum(a * b for a, b in zip(v["x"], v["y"]))
                             + sum(mp.exp(a - b) for a, b in zip(v["x"], v["y"])))
                            * 2 / (1 + mp.sqrt(sum(a * a for a in v["x"]))),
}


write_all(HERE, CASES)
