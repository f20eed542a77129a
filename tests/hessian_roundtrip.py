#!/usr/bin/env python3
"""`gradc derive --hessian` prints the language, and the right second derivatives
(standard library only).

    hessian_roundtrip.py --gradc G FOLDER...

For every FOLDER/NAME.expr with a NAME.inputs.json whose `G derive --hessian`
prints closed forms: each block `d2Y/dXdZ = E` (or `d2Y/dX2 = E`), with the
`tK = ...` lines before it, becomes a program of its own (the original's input
lines, the lets, `h = E`); `G eval --no-grad --interp` of it at the inputs must
give, entry by entry, the central differences of `G eval --interp`'s gradient
for X with respect to the entries of Z (step 1e-5 relative, agreement within
1e-6 of the block's largest entry).  --skip NAME leaves a program out where
differences of the gradient are not its Hessian: one that uses detach (whose
second derivative is 0, as PyTorch's, while the gradient's value moves), one
evaluated at a kink.  The printed closed forms are thus checked
against first derivatives alone, not against gradc's second-order code.

Prints one line per failure, then `N passed, M failed` on the last line.
"""

import json
import os
import re
import sys
import tempfile

from derive_roundtrip import Tally, cli, expr_bases, flat, input_lines, reason, run, source

STEP = 1e-5
TOL = 1e-6


def gradient(gradc, expr, values, tmp):
    path = os.path.join(tmp, "at.json")
    with open(path, "w") as f:
        json.dump(values, f)
    rc, out, err = run(gradc + ["eval", expr, "--inputs", path, "--interp"])
    if rc != 0:
        raise RuntimeError("eval failed: " + err.strip())
    return json.loads(out)["gradient"]


def step(x):
    """relative to the entry near 0 (near a pole, polygamma(3, 0.01), a step of
    1e-5 would be too coarse), at least 1e-7; at most 1e-5 (at entries near
    1000, a relative step's truncation error is past the tolerance)"""
    return STEP * min(1.0, max(1e-2, abs(x)))


def fd_block(gradc, expr, values, x, z, tmp, memo):
    """d grad_x / d z by central differences: rows the entries of x, columns z's
    (a matrix's in row-major order)."""
    zs = values[z]
    nz = len(flat(zs))
    cols = []
    for j in range(nz):
        pts = []
        for sign in (1, -1):
            v = json.loads(json.dumps(values))
            if isinstance(v[z], list) and v[z] and isinstance(v[z][0], list):
                # a matrix: its entries in row-major order (spec §9)
                row = v[z][j // len(v[z][0])]
                h = step(row[j % len(row)])
                row[j % len(row)] += sign * h
            elif isinstance(v[z], list):
                h = step(v[z][j])
                v[z][j] += sign * h
            else:
                h = step(v[z])
                v[z] += sign * h
            if (z, j, sign) not in memo:   # every block of column z reuses the run
                memo[(z, j, sign)] = gradient(gradc, expr, v, tmp)
            pts.append(flat(memo[(z, j, sign)][x]))
        cols.append([(a - b) / (2 * h) for a, b in zip(*pts)])
    return [[cols[j][i] for j in range(nz)] for i in range(len(cols[0]))]


def check(gradc, base, src, printed, tmp):
    with open(base + ".inputs.json") as f:
        values = json.load(f)
    expr = base + ".expr"
    wrt = list(gradient(gradc, expr, values, tmp))
    labels = {}
    for i, x in enumerate(wrt):
        for z in wrt[i:]:
            labels["d%s2" % x if x == z and not x[-1].isdigit() else "d%sd%s" % (x, z)] = (x, z)
    lets, blocks, memo = [], 0, {}
    for line in printed.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^d2\w+/(d\w+) = (.*)$", line)
        if not m:
            lets.append(line)
            continue
        if m.group(1) not in labels:
            return "unexpected label in %r (wrt %s)" % (line, wrt)
        x, z = labels[m.group(1)]
        prog = "\n".join(input_lines(src) + lets + ["h_roundtrip = " + m.group(2)]) + "\n"
        path = os.path.join(tmp, "rt.expr")
        with open(path, "w") as f:
            f.write(prog)
        rc, out, err = run(gradc + ["eval", path, "--inputs", base + ".inputs.json",
                                    "--no-grad", "--interp"])
        if rc != 0:
            return "%s: the printed program fails: %s\n%s" % (line, err.strip(), prog)
        got = flat(json.loads(out)["value"])
        want = flat(fd_block(gradc, expr, values, x, z, tmp, memo))
        scale = max([1.0] + [abs(w) for w in want])
        if len(got) != len(want) or any(abs(a - b) > TOL * scale for a, b in zip(got, want)):
            return "%s evaluates to %s, central differences of the gradient give %s" % (
                line.split(" = ")[0], got[:6], want[:6])
        blocks += 1
    return None


def main():
    a, gradc = cli(__doc__, (["--skip"], dict(action="append", default=[], help="a program's NAME")))
    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        for base in expr_bases(a.folders):
            name = os.path.basename(base)
            if not os.path.exists(base + ".inputs.json") or name in a.skip:
                continue
            rc, printed, err = run(gradc + ["derive", "--hessian", base + ".expr"])
            if rc != 0 or not re.search(r"^d2", printed, re.M):
                continue    # a non-scalar output, or no closed form: nothing to compare
            tally.record(base, reason(check, gradc, base, source(base), printed, tmp))
    return tally.end()


if __name__ == "__main__":
    sys.exit(main())
