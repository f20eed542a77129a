#!/usr/bin/env python3
"""`gradc derive --hessian` through control flow prints the Hessian-vector
program, and it computes H*v (standard library only).

    hvp_print.py --gradc G FOLDER...

For every FOLDER/NAME.expr whose `G derive --hessian` prints the
Hessian-vector program (`# no closed form (control flow)`): the printed text,
after the original's input lines, first passes `G derive` (derive_roundtrip.py's
control-flow round trip: it parses and checks); then, with a NAME.inputs.json, it is made a program gradc
evaluates: its loops are unrolled (a while's trip count from a run of the
original's forward loop with a counter; a for's bounds are literals or
dimensions read from the inputs, or forms evaluated by gradc), push(a, b)
becomes slot variables and `a = pop()` reads the last slot, `dY/dX = E` is
dropped, and `hv_x` is the output.  `G eval --no-grad --interp` of it at the inputs and a direction v
(fixed pseudo-random entries) must give, entry by entry, `G eval --hessian
--interp`'s Hessian times v (within 1e-9 of the largest entry).  A program
whose loops this unrolling does not take (a loop inside a loop or an if) is
only parsed back, and listed as `parsed only`.

Prints one line per failure and per program parsed only, then `N passed, M
failed` on the last line.
"""

import json
import math
import os
import random
import re
import sys
import tempfile

from derive_roundtrip import Tally, cli, control_flow, expr_bases, flat, input_lines, run, source

HEADER = "# no closed form (control flow): the Hessian-vector product"


class Unrolled(Exception):
    """a loop the unrolling here does not take"""


def shape_of(v):
    if isinstance(v, list):
        return [len(v)] + (shape_of(v[0]) if v else [])
    return []


def dims_of(src, values):
    """dimension name -> size, from the input lines and the values"""
    dims = {}
    for line in input_lines(src):
        m = re.match(r"input (\w+)\[([^]]*)\]", line)
        if m and m.group(1) in values:
            for d, n in zip(m.group(2).split(","), shape_of(values[m.group(1)])):
                dims[d.strip()] = n
    return dims


def blocks(lines):
    """top-level statements: a line, or (header, body lines) of a loop"""
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"(for|while) ", line):
            j = i + 1
            while not re.match(r"end\b", lines[j]):
                if re.match(r"\s+(for|while) ", lines[j]):
                    raise Unrolled("a nested loop: %r" % lines[j])
                j += 1
            out.append((line, [l[4:] for l in lines[i + 1:j]]))
            i = j + 1
        else:
            if re.match(r"if ", line):   # an if with a loop inside is not unrolled
                j = i + 1
                while not re.match(r"end\b", lines[j]):
                    if re.match(r"\s+(for|while) ", lines[j]):
                        raise Unrolled("a loop inside an if: %r" % lines[j])
                    j += 1
            out.append(line)
            i += 1
    return out


def trip_count(gradc, src_inputs, before, cond, body, inputs, tmp):
    """how many times `while cond` runs after the lines before, by gradc"""
    prog = src_inputs + before + ["it_count = 0", "while " + cond] + ["    " + l for l in body] + \
        ["    it_count = it_count + 1", "end", "it_roundtrip = it_count"]
    path = os.path.join(tmp, "count.expr")
    with open(path, "w") as f:
        f.write("\n".join(prog) + "\n")
    rc, out, err = run(gradc + ["eval", path, "--inputs", inputs, "--no-grad", "--interp"])
    if rc != 0:
        raise RuntimeError("counting the while's trips failed: " + err.strip())
    return int(json.loads(out)["value"])


def value_of(gradc, src_inputs, before, e, inputs, tmp):
    """the loop bound e after the lines before, by gradc, rounded down (spec
    §8: a for's bounds are)"""
    path = os.path.join(tmp, "bound.expr")
    with open(path, "w") as f:
        f.write("\n".join(src_inputs + before + ["bound_roundtrip = " + e]) + "\n")
    rc, out, err = run(gradc + ["eval", path, "--inputs", inputs, "--no-grad", "--interp"])
    if rc != 0:
        raise RuntimeError("evaluating the loop bound %s failed: %s" % (e, err.strip()))
    return math.floor(json.loads(out)["value"])


def unroll(gradc, src_inputs, body, dims, inputs, tmp):
    out, stack, last_trips, slot = [], [], None, 0
    for b in blocks(body):
        if isinstance(b, str):
            out.append(b)
            continue
        head, inner = b
        pushes = [l for l in inner if re.match(r"push\(", l)]
        m = re.match(r"while (.*)$", head)
        if m:
            fwd = [l for l in inner if l not in pushes]
            last_trips = n = trip_count(gradc, src_inputs, out, m.group(1), fwd, inputs, tmp)
            var, seq = None, range(n)
        else:
            m = re.match(r"for (\w+) in (\w+|\(.*\)|\w+\(.*\)):(?:(-1):)?(\w+|\(.*\)|\w+\(.*\))$", head)
            if not m:
                raise Unrolled("a loop header: %r" % head)
            var, lo, step, hi = m.groups()
            def val(s):
                if s == "iterations":
                    return last_trips
                if re.fullmatch(r"\d+", s) or s in dims:
                    return int(dims.get(s, s))
                return value_of(gradc, src_inputs, out, s, inputs, tmp)
            seq = range(val(lo), val(hi) - 1, -1) if step else range(val(lo), val(hi) + 1)
        for i in seq:
            for l in inner:
                p = re.match(r"push\((.*)\)$", l)
                q = re.match(r"(\w+) = pop\(\)$", l)
                if p:
                    for name in [s.strip() for s in p.group(1).split(",")]:
                        slot += 1
                        out.append("slot%d_ = %s" % (slot, name))
                        stack.append("slot%d_" % slot)
                elif q:
                    out.append("%s = %s" % (q.group(1), stack.pop()))
                else:
                    out.append(re.sub(r"\b%s\b" % var, str(i), l) if var and var != "_" else l)
    return out


def check(gradc, base, src, printed, tmp, rng):
    inputs = base + ".inputs.json"
    with open(inputs) as f:
        values = json.load(f)
    rc, out, err = run(gradc + ["eval", base + ".expr", "--inputs", inputs, "--hessian", "--interp"])
    if rc != 0:
        return "eval --hessian fails: " + err.strip()
    res = json.loads(out)
    wrt = list(res["gradient"])
    H = res["hessian"]
    vs = {x: json.loads(json.dumps(res["gradient"][x])) for x in wrt}
    def fill(v):
        return [fill(e) for e in v] if isinstance(v, list) else round(rng.uniform(-1, 1), 3)
    vs = {x: fill(vs[x]) for x in wrt}
    vflat = [e for x in wrt for e in flat(vs[x])]
    hv = [sum(h * v for h, v in zip(row, vflat)) for row in H]
    decls = [l for l in printed.splitlines() if l.startswith("input ")]
    body = []
    for line in printed.splitlines():
        line = line.split("#", 1)[0].rstrip()
        if not line or line.startswith("input ") or re.match(r"d\w+/d\w+ = ", line):
            continue
        body.append(line)
    at = dict(values, **{"v_" + x: vs[x] for x in wrt})
    vpath = os.path.join(tmp, "at.json")
    with open(vpath, "w") as f:
        json.dump(at, f)
    src_inputs = input_lines(src)
    lines = unroll(gradc, src_inputs + decls, body, dims_of(src, values), vpath, tmp)
    off = 0
    for x in wrt:
        n = len(flat(vs[x]))
        want, off = hv[off:off + n], off + n
        prog = "\n".join(src_inputs + decls + lines + ["hv_roundtrip = hv_" + x]) + "\n"
        path = os.path.join(tmp, "hv.expr")
        with open(path, "w") as f:
            f.write(prog)
        rc, out, err = run(gradc + ["eval", path, "--inputs", vpath, "--no-grad", "--interp"])
        if rc != 0:
            return "hv_%s: the printed program fails: %s" % (x, err.strip())
        got = flat(json.loads(out)["value"])
        scale = max([1.0] + [abs(w) for w in want])
        if len(got) != len(want) or any(abs(a - b) > 1e-9 * scale for a, b in zip(got, want)):
            return "hv_%s evaluates to %s, eval --hessian's H*v is %s" % (x, got[:6], want[:6])
    return None


def main():
    a, gradc = cli(__doc__)
    tally = Tally()
    rng = random.Random(10)
    with tempfile.TemporaryDirectory() as tmp:
        for base in expr_bases(a.folders):
            rc, printed, err = run(gradc + ["derive", "--hessian", base + ".expr"])
            if rc != 0 or not printed.startswith(HEADER):
                continue
            src = source(base)
            why = control_flow(gradc, base, src, printed, tmp)
            try:
                if not why and os.path.exists(base + ".inputs.json"):
                    why = check(gradc, base, src, printed, tmp, rng)
            except Unrolled as e:
                print("parsed only %s: %s" % (base + ".expr", e))
            except RuntimeError as e:
                why = str(e)
            tally.record(base, why)
    return tally.end()


if __name__ == "__main__":
    sys.exit(main())
