#!/usr/bin/env python3
"""`--wrt A,B` overrides the file's wrt line (docs/language.md, "Choosing
wrt on the command line"):

- eval (JIT and interpreter): for every sample, its first two inputs in both
  orders and its last input alone, the gradients printed under --wrt equal those of the file's own
  wrt (all inputs when it has none), entry for entry, in --wrt's order: exactly
  under the interpreter; under the JIT to a few units in the last place, because
  a plan that computes fewer gradients may fuse their sums in another order
  (gaussian_nll --wrt x: S^-1*x + S^-T*x summed in one pass, one ulp apart);
- derive prints the lines in --wrt's order; check passes with --wrt;
- a name that is not an input, a duplicate and an empty name are errors
  (exit status 1, one message).

    python3 tests/wrt.py --gradc build/src/gradc SAMPLES_DIR
"""

import argparse
import glob
import json
import os
import sys

import checklib
from checklib import fail, run


def eval_json(gradc, expr, inputs, *extra):
    r = run(gradc, "eval", expr, "--inputs", inputs, *extra)
    if r.returncode != 0:
        fail(f"eval {expr} {' '.join(extra)}: {r.stderr.strip()}")
        return None
    # a JSON document with NaN/Infinity as Python's json module writes them
    return json.loads(r.stdout)


def entries(x):
    return [t for row in x for t in entries(row)] if isinstance(x, list) else [x]


def same(a, b, rounding):
    """a == b, or with rounding within 8 units in the last place of b's entries."""
    if not rounding or a == b:
        return a == b
    ea, eb = entries(a), entries(b)
    return len(ea) == len(eb) and all(
        u == v or abs(u - v) <= 8 * sys.float_info.epsilon * max(abs(u), abs(v))
        for u, v in zip(ea, eb))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradc", required=True)
    ap.add_argument("samples")
    a = ap.parse_args()
    g = a.gradc
    cases = 0
    for expr in sorted(glob.glob(os.path.join(a.samples, "*.expr"))):
        inputs = expr[:-5] + ".inputs.json"
        if not os.path.exists(inputs):
            continue
        names = list(json.load(open(inputs)).keys())
        for engine in ("--jit", "--interp"):
            full = eval_json(g, expr, inputs, engine, "--wrt", ",".join(names))
            if full is None:
                continue
            if list(full["gradient"]) != names:
                fail(f"{expr}: --wrt {','.join(names)} printed {list(full['gradient'])}")
            picks = {tuple(names[:2]), tuple(reversed(names[:2])), (names[-1],)}
            for pick in sorted(picks):
                got = eval_json(g, expr, inputs, engine, "--wrt", ",".join(pick))
                cases += 1
                if got is None:
                    continue
                if list(got["gradient"]) != list(pick):
                    fail(f"{expr} --wrt {','.join(pick)}: order {list(got['gradient'])}")
                if got["value"] != full["value"]:
                    fail(f"{expr} --wrt {','.join(pick)}: value changed")
                for n in pick:
                    if not same(got["gradient"][n], full["gradient"][n], engine == "--jit"):
                        fail(f"{expr} --wrt {','.join(pick)} {engine}: gradient of {n} differs")

    # the file's own wrt line (W1, b1, W2) against --wrt in another order
    mlp = os.path.join(a.samples, "mlp.expr")
    own = eval_json(g, mlp, mlp[:-5] + ".inputs.json")
    rev = eval_json(g, mlp, mlp[:-5] + ".inputs.json", "--wrt", "W2,W1,b1")
    if list(own["gradient"]) != ["W1", "b1", "W2"] or list(rev["gradient"]) != ["W2", "W1", "b1"] \
            or any(own["gradient"][n] != rev["gradient"][n] for n in own["gradient"]):
        fail("mlp: --wrt W2,W1,b1 differs from the file's wrt W1, b1, W2")
    cases += 1

    # derive: lines in --wrt order
    ls = os.path.join(a.samples, "least_squares.expr")
    r = run(g, "derive", ls, "--wrt", "b,x")
    lines = [l.split(" =")[0] for l in r.stdout.splitlines() if l.startswith("df/")]
    if r.returncode != 0 or lines != ["df/db", "df/dx"]:
        fail(f"derive --wrt b,x: {r.stdout!r} {r.stderr!r}")
    r = run(g, "check", ls, "--wrt", "b,x")
    if r.returncode != 0 or [l.split(":")[0] for l in r.stdout.splitlines()[:2]] != ["b", "x"]:
        fail(f"check --wrt b,x: {r.stdout!r} {r.stderr!r}")
    cases += 2

    # errors
    for wrt, msg in [("q", "--wrt: q is not an input of"),
                     ("x,x", "--wrt: x is listed twice"),
                     ("x,", "--wrt: an empty name in 'x,'"),
                     ("f", "--wrt: f is not an input of")]:
        for cmd in (["derive", ls], ["check", ls], ["compile", ls, "-o", os.devnull],
                    ["eval", ls, "--inputs", ls[:-5] + ".inputs.json"]):
            r = run(g, *cmd, "--wrt", wrt)
            cases += 1
            if r.returncode != 1 or not r.stderr.startswith("gradc: error: " + msg) \
                    or r.stderr.count("\n") != 1 or r.stdout:
                fail(f"{cmd[0]} --wrt {wrt}: rc {r.returncode}, {r.stderr!r}")
    print(f"{cases - checklib.failures} passed, {checklib.failures} failed")
    return 1 if checklib.failures else 0


if __name__ == "__main__":
    sys.exit(main())
