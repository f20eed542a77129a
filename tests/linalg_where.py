#!/usr/bin/env python3
"""Edge cases of where, solve, \\ and chol (spec §8), through both engines
(`eval` JIT and `eval --interp`), which must agree:

- a singular A in solve gives NaN or Inf entries and exit status 0, no crash;
- chol of a matrix that is not positive definite (or has a NaN in the
  triangle it reads) gives every entry NaN; the upper triangle is not read;
- a 1×1 A: solve divides, chol is sqrt with NaN unless a > 0;
- where with NaN and Inf on the side not taken: that side's gradient is
  exactly 0 (not a tiny number, not NaN), the taken side's is as usual,
  also for a scalar side, a broadcast side and a scalar condition;
- errors point where conformance/README.md tables them: solve of a
  non-square matrix at `solve` (at the operator for `\\`), where's shapes at
  `where`, a comparison that does not fit inside where's condition at the
  comparison, a comparison as a value at the comparison;
- `compile` of such a program makes an object that calls the runtime's
  gradc_lu, gradc_lu_solve and gradc_chol.

    python3 tests/linalg_where.py --gradc build/src/gradc
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile

import checklib
from checklib import fail, run


def write(d, name, text):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def flat(v):
    if isinstance(v, list):
        return [y for x in v for y in flat(x)]
    return [v]


def both(gradc, d, name, src, inputs, *extra):
    """eval through the JIT and the interpreter; the two results (or None)."""
    expr = write(d, name + ".expr", src)
    inp = write(d, name + ".json", json.dumps(inputs))
    out = []
    for engine in ("--jit", "--interp"):
        r = run(gradc, "eval", expr, "--inputs", inp, engine, *extra)
        if r.returncode != 0:
            fail(f"{name} {engine}: exit {r.returncode}: {r.stderr.strip()}")
            return None
        out.append(json.loads(r.stdout))
    a, b = out
    for key in ("value", "gradient"):
        if key not in a:
            continue
        x, y = flat(json.dumps(a[key], sort_keys=True)), flat(json.dumps(b[key], sort_keys=True))
        if x != y:
            fail(f"{name}: the engines differ on {key}: {a[key]} vs {b[key]}")
    return a


def error_at(gradc, d, name, src, line, col):
    expr = write(d, name + ".expr", src)
    empty = write(d, "empty.json", "{}")
    r = run(gradc, "eval", expr, "--inputs", empty)
    m = re.search(r"^[^\n]*?:(\d+):(\d+): error:", r.stderr, re.M)
    if r.returncode != 1 or not m or (int(m.group(1)), int(m.group(2))) != (line, col):
        fail(f"{name}: expected an error at {line}:{col}, got exit {r.returncode}: {r.stderr.strip()}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradc", required=True)
    g = ap.parse_args().gradc
    with tempfile.TemporaryDirectory() as d:
        # singular solve: NaN or Inf, both engines, and a gradient that runs
        r = both(g, d, "singular", "input A[n, n]\ninput b[n]\ny = sum(A \\ b)\n",
                 {"A": [[1, 2], [2, 4]], "b": [1, 1]})
        if r and math.isfinite(r["value"]):
            fail(f"singular: solve of a singular A gave a finite value {r['value']}")
        r = both(g, d, "singular_matrix", "input A[n, n]\ninput B[n, k]\nY = solve(A, B)\n",
                 {"A": [[0, 0], [0, 0]], "B": [[1, 2], [3, 4]]}, "--no-grad")
        if r and any(math.isfinite(v) for v in flat(r["value"])):
            fail(f"singular_matrix: finite entries {r['value']}")

        # chol: not positive definite, NaN in the lower triangle: every entry NaN
        for name, A in (("chol_indefinite", [[1, 2], [2, 1]]),
                        ("chol_semidefinite", [[1, 1], [1, 1]]),
                        ("chol_nan", [[1, 0], ["NaN", 1]])):
            src = "input A[n, n]\nL = chol(A)\n"
            text = json.dumps({"A": A}).replace('"NaN"', "0")
            if name == "chol_nan":   # JSON has no NaN: make one in the program
                src = "input A[n, n]\nL = chol(A + log(A - A - 1) .* (A - A))\n"
            r = both(g, d, name, src, json.loads(text), "--no-grad")
            if r and not all(isinstance(v, float) and math.isnan(v) for v in flat(r["value"])):
                fail(f"{name}: expected every entry NaN, got {r['value']}")
        # the upper triangle is not read: noise there changes nothing
        a = both(g, d, "chol_lower", "input A[n, n]\nL = chol(A)\n",
                 {"A": [[4, 1e300], [2, 3]]}, "--no-grad")
        if a and flat(a["value"]) != [2, 0, 1, math.sqrt(2)]:
            fail(f"chol_lower: {a['value']}")

        # 1×1: solve divides, chol is sqrt and NaN unless a > 0
        for av, want in ((4, 2.0), (0, None), (-1, None)):
            r = both(g, d, "chol_scalar", "input a\ny = chol(a)\n", {"a": av})
            if r and (r["value"] != want if want is not None else not math.isnan(r["value"])):
                fail(f"chol_scalar at {av}: {r['value']}")
        r = both(g, d, "solve_scalar", "input a\ninput b\ny = solve(a, b) + a \\ (2 * b)\n",
                 {"a": 4, "b": 3})
        if r and (r["value"] != 2.25 or r["gradient"] != {"a": -0.5625, "b": 0.75}):
            fail(f"solve_scalar: {r}")

        # where: NaN and Inf on the side not taken give exact zeros
        r = both(g, d, "where_zero",
                 "input x[n]\ny = sum(where(x > 0, sqrt(x) + log(x), -x)) + "
                 "sum(where(x == 0, 0, 1 ./ x))\n",
                 {"x": [-2, 0, 4]})
        if r and r["gradient"]["x"] != [-1 - 0.25, -1, 0.25 + 0.25 - 1 / 16]:
            fail(f"where_zero: {r['gradient']}")
        if r and r["value"] != 2 + 0 + 2 + math.log(4) - 0.5 + 0.25:
            fail(f"where_zero value: {r['value']}")

        # a scalar side never taken, NaN or Inf with its derivative (s = 0, s < 0),
        # behind constant factors and a negation: its gradient is exactly 0
        for sv in (0, -1):
            r = both(g, d, "where_scalar_side",
                     "input x[n]\ninput s\ny = sum(where(x < -5, 2 * sqrt(s), 0)) + "
                     "sum(where(x < -6, -log(s), 0)) + sum(where(x > 0, x, 0.5 * (-s) .^ 1.5 ./ s))\n",
                     {"x": [1, 2, 3], "s": sv})
            if r and (r["value"] != 6 or r["gradient"] != {"x": [1, 1, 1], "s": 0}):
                fail(f"where_scalar_side at s = {sv}: {r}")

        # a scalar condition choosing whole values: a singular solve, logdet, inv and a
        # non-PD chol on the side not taken; the gradient is exactly the taken side's
        r = both(g, d, "where_whole",
                 "input A[n, n]\ninput b[n]\ninput c\n"
                 "y = sum(where(c > 0, A \\ b, b)) + where(c > 1, logdet(A), 0) + "
                 "sum(where(c > 2, inv(A) * b, 2 * b)) + sum(where(c < -1, chol(A), A))\n",
                 {"A": [[1, 2], [2, 4]], "b": [1, 2], "c": -0.5})
        if r and (r["value"] != 18 or r["gradient"] != {"A": [[1, 1], [1, 1]], "b": [3, 3], "c": 0}):
            fail(f"where_whole: {r}")

        # broadcast sides (a column, a row) whose rows or columns are never taken:
        # their sums along the expanded dimension stay masked
        r = both(g, d, "where_broadcast",
                 "input X[m, n]\ninput x[m]\ninput r[n]\n"
                 "y = sum(where(X > 0, sqrt(x), 0)) + sum(where(X > 0, log(r'), 1)) + "
                 "sum(where(x > 0, sqrt(x), X)) + sum(where(x < -5, sqrt(X), X))\n",
                 {"X": [[1, -2], [-1, -3]], "x": [4, -1], "r": [1, -2]})
        if r and (r["value"] != 0 or r["gradient"] != {"X": [[1, 1], [2, 2]], "x": [0.75, 0], "r": [1, 0]}):
            fail(f"where_broadcast: {r}")

        # errors, at the positions conformance/README.md tables
        error_at(g, d, "err_solve_square", "input A[n, m]\ninput b[n]\ny = solve(A, b)\n", 3, 5)
        error_at(g, d, "err_backslash_square", "input A[n, m]\ninput b[n]\ny = A \\ b\n", 3, 7)
        error_at(g, d, "err_solve_rows", "input A[n, n]\ninput b[m]\ny = 2 * solve(A, b)\n", 3, 9)
        error_at(g, d, "err_where_shapes", "input x[n]\ninput z[m]\ny = sum(where(x > 0, x, z))\n", 3, 9)
        error_at(g, d, "err_where_cmp", "input x[n]\ninput z[m]\ny = sum(where(x > z, 1, 2))\n", 3, 17)
        error_at(g, d, "err_where_arity", "input x[n]\ny = sum(where(x > 0, x))\n", 2, 9)
        error_at(g, d, "err_and_value", "input x[n]\ny = sum(where(x > 0, x, 1) and x)\n", 2, 28)
        error_at(g, d, "err_chol_square", "input A[n, m]\ny = sum(chol(A))\n", 2, 9)

        # compile: the object calls the runtime's solvers
        expr = write(d, "obj.expr", "input A[n, n]\ninput b[n]\n"
                     "y = sum(chol(A * A' + eye(n)) \\ b) + sum(where(b > 0, b, 0))\n")
        obj = os.path.join(d, "obj.o")
        r = run(g, "compile", expr, "-o", obj)
        if r.returncode != 0:
            fail(f"compile: {r.stderr.strip()}")
        else:
            nm = subprocess.run(["nm", "-u", obj], capture_output=True, text=True).stdout
            for sym in ("gradc_lu", "gradc_lu_solve", "gradc_chol"):
                if not re.search(r"\b" + sym + r"\b", nm):
                    fail(f"compile: the object does not call {sym}")
    print("linalg_where:", "ok" if not checklib.failures else f"{checklib.failures} failed")
    return 1 if checklib.failures else 0


if __name__ == "__main__":
    sys.exit(main())
