#!/usr/bin/env python3
"""NAME_hvp's row pass with two sinks (planpass.c: row_pass).

    python3 tests/hvp_rowpass.py --gradc build/src/gradc SAMPLES_DIR [-v]

For the logistic loss and least squares (SAMPLES_DIR/NAME.expr):
  - `compile --hessian --dump-plan`: NAME_hvp's plan has one `rows` pass, of
    four products (M*w, M*v, M'*r, M'*s) — the matrix is read once — and no
    other kernel reads that matrix;
  - `compile --hessian --shared`, called through ctypes on random inputs whose
    sizes leave both a tail of rows (not a multiple of 4) and of lanes (not a
    multiple of 8): NAME_hvp's H·v for a random v is H·v of `eval --hessian
    --interp`'s H (within 1e-12 of the sum of |H_ij v_j|), and its gradient
    the interpreter's.

Prints one line per failure, then `N passed, M failed`.
"""

import argparse
import ctypes
import json
import os
import random
import re
import subprocess
import sys
import tempfile

from checklib import report

# name: (matrix, its dims' sizes) — m rows, n columns
CASES = {"logistic_regression": ("X", {"m": 23, "n": 19}),
         "least_squares": ("A", {"m": 13, "n": 10})}


def run(cmd):
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def hvp_plan(gradc, expr, M):
    """None if NAME_hvp's plan reads M in one rows pass of four products."""
    rc, out, err = run([gradc, "compile", expr, "--hessian", "--dump-plan", "-o", os.devnull])
    if rc != 0:
        return "compile --dump-plan failed: " + err.strip()[:200]
    sec = re.search(r"^# \w+_hvp\n(.*?)(?=^# |\Z)", out, re.S | re.M)
    if not sec:
        return "no _hvp section in:\n" + out
    kernels, cur = [], None
    for line in sec.group(1).splitlines():
        if re.match(r"  \S", line):
            cur = [line]
            kernels.append(cur)
        elif re.match(r" {9}\S", line) and cur:
            cur.append(line)
    reads = [k for k in kernels if any(re.search(r"= %s'?\*" % M, l) for l in k)]
    rows = [k for k in kernels if k[0].startswith("  rows")]
    prods = [l for k in rows for l in k if re.search(r"= %s'?\*" % M, l)]
    if len(rows) != 1 or len(reads) != 1 or len(prods) != 4:
        return "%d rows passes, %d kernels reading %s, %d products in rows:\n%s" % (
            len(rows), len(reads), M, len(prods), sec.group(1))
    return None


def hvp_values(gradc, expr, dims, tmp):
    """None if the linked NAME_hvp agrees with the interpreter's H·v."""
    rnd = random.Random(10)
    rc, out, err = run([gradc, "compile", expr, "--hessian", "--describe", "--name", "h"])
    if rc != 0:
        return "--describe failed: " + err.strip()[:200]
    abi = json.loads(out)
    vals, size = {}, {}
    for x in abi["inputs"]:
        shape = [dims[d] if isinstance(d, str) else d for d in x["shape"]]
        if x["name"] == "y":   # the logistic loss's labels
            v = [rnd.choice((-1.0, 1.0)) for _ in range(shape[0])]
        elif len(shape) == 2:
            v = [[rnd.uniform(-1, 1) for _ in range(shape[1])] for _ in range(shape[0])]
        elif len(shape) == 1:
            v = [rnd.uniform(-1, 1) for _ in range(shape[0])]
        else:
            v = rnd.uniform(0.05, 0.5)
        vals[x["name"]] = v
    inputs = os.path.join(tmp, os.path.basename(expr)[:-5] + ".inputs.json")
    with open(inputs, "w") as f:
        json.dump(vals, f)
    rc, out, err = run([gradc, "eval", expr, "--inputs", inputs, "--hessian", "--interp"])
    if rc != 0:
        return "eval --hessian --interp failed: " + err.strip()[:200]
    ref = json.loads(out)
    H = ref["hessian"]
    so = os.path.join(tmp, "lib%s.so" % os.path.basename(expr)[:-5])
    rc, out, err = run([gradc, "compile", expr, "--hessian", "--shared", "--name", "h", "-o", so])
    if rc != 0:
        return "compile --hessian --shared failed: " + err.strip()[:200]
    lib = ctypes.CDLL(so)

    def flat(v):
        return [e for r in v for e in flat(r)] if isinstance(v, list) else [v]

    def arr(f):
        return (ctypes.c_double * max(1, len(f)))(*f)
    args = [ctypes.c_int64(dims[d]) for d in abi["dims"]]
    for x in abi["inputs"]:
        v = vals[x["name"]]
        size[x["name"]] = len(flat(v))
        args.append(ctypes.c_double(v) if not x["shape"] else arr(flat(v)))
    v = [rnd.uniform(-1, 1) for _ in range(len(H))]
    vs, gs, hvs, k = [], [], [], 0
    for name in abi["wrt"]:
        vs.append(arr(v[k:k + size[name]]))
        gs.append((ctypes.c_double * size[name])())
        hvs.append((ctypes.c_double * size[name])())
        k += size[name]
    f = ctypes.c_double()
    st = lib.h_hvp(*args, *vs, ctypes.byref(f), *gs, *hvs, ctypes.c_uint(0), None)
    if st != 0:
        return "h_hvp returned %d" % st
    got = [h[i] for name, h in zip(abi["wrt"], hvs) for i in range(size[name])]
    grad = [g[i] for name, g in zip(abi["wrt"], gs) for i in range(size[name])]
    want_g = [e for name in abi["wrt"] for e in flat(ref["gradient"][name])]
    for i, row in enumerate(H):
        want = sum(h * e for h, e in zip(row, v))
        scale = max(1.0, sum(abs(h * e) for h, e in zip(row, v)))
        if abs(got[i] - want) > 1e-12 * scale:
            return "H·v[%d]: NAME_hvp %.17g, interpreter %.17g" % (i, got[i], want)
        if abs(grad[i] - want_g[i]) > 1e-12 * max(1.0, abs(want_g[i])):
            return "gradient[%d]: NAME_hvp %.17g, interpreter %.17g" % (i, grad[i], want_g[i])
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradc", required=True)
    ap.add_argument("-v", action="store_true")
    ap.add_argument("samples")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (M, dims) in CASES.items():
            expr = os.path.join(args.samples, name + ".expr")
            results.append((name + " plan: one rows pass", hvp_plan(args.gradc, expr, M)))
            results.append((name + " H·v against the interpreter", hvp_values(args.gradc, expr, dims, tmp)))
    return report(results, args.v)


if __name__ == "__main__":
    sys.exit(main())
