#!/usr/bin/env python3
"""What `gradc derive` prints must be the language: a round trip (standard library only).

    derive_roundtrip.py --gradc G FOLDER...

For every FOLDER/NAME.expr that `G derive` accepts:
- straight-line programs: each printed gradient `dY/dX = E` (with the `tK = ...`
  lines before it) becomes a program of its own, the original's input lines, the
  lets, `g = E`; `G eval --no-grad --interp` of it at FOLDER/NAME.inputs.json (the
  cotangent `dY`, when printed, an input read from NAME.cotangent.json) must give
  the gradient `G eval --interp` gives for X, entry by entry (relative 1e-9);
- programs with control flow: the printed gradient program, made a program
  (push/pop lines dropped, reverse loops `for _ in K:-1:1` counted forwards), must
  pass `G derive` (it parses and checks: no comparison values outside conditions).

Prints one line per failure, then `N passed, M failed` on the last line.
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

GRAD = re.compile(r"^d(\w+)/d(\w+) = (.*)$")
COTAN = re.compile(r"^# (d\w+): the cotangent, of \w+'s shape (\[.*\])$", re.M)


def run(argv, timeout=120):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def input_lines(src):
    out = []
    for line in src.splitlines():
        for part in line.split("#", 1)[0].split(";"):
            if re.match(r"\s*input\b", part):
                out.append(part.strip())
    return out


def flat(v):
    if isinstance(v, list):
        return [y for x in v for y in flat(x)]
    return [v]


def close(a, b):
    if a is None or b is None:
        return a is b
    if isinstance(a, str) or isinstance(b, str):   # "NaN", "Infinity"
        return a == b
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def cotangent_decl(name, shape):
    """`input dY[...]` for the printed cotangent.  An input line declares symbols
    and literals only (spec §8), so a dimension that is a form (`2*n - 3`, an
    output built by concatenation) is declared with a fresh symbol, bound by
    the value read: the printed gradient must still check and evaluate."""
    dims = [d.strip() for d in shape.strip("[]").split(",")]
    fresh = ["%s_dim%d" % (name, i + 1) if not re.fullmatch(r"\d+|[A-Za-z_]\w*", d) else d
             for i, d in enumerate(dims)]
    return "input %s[%s]" % (name, ", ".join(fresh))


def ones_like(v):
    return [ones_like(x) for x in v] if isinstance(v, list) else 1.0


def cotangent(base, value):
    """The cotangent eval uses: NAME.cotangent.json, else ones of the output's shape."""
    if os.path.exists(base + ".cotangent.json"):
        with open(base + ".cotangent.json") as f:
            return json.load(f)
    return ones_like(value)


def straight_line(gradc, base, src, printed, tmp):
    """None if every printed gradient evaluates to eval's gradient, else why not."""
    inputs = base + ".inputs.json"
    if not os.path.exists(inputs):
        return None     # nothing to evaluate at: derive's exit status was the test
    cot = base + ".cotangent.json"
    with open(inputs) as f:
        values = json.load(f)
    cmd = gradc + ["eval", base + ".expr", "--inputs", inputs, "--interp"]
    # a scalar output's cotangent only scales the gradient (spec §8), and derive
    # prints the derivative itself: compare with eval's unscaled gradient
    if os.path.exists(cot) and COTAN.search(printed):
        cmd += ["--cotangent", cot]
    rc, out, err = run(cmd)
    if rc != 0:
        return None     # eval refuses it (a run-time error): nothing to compare
    result = json.loads(out)
    want = result["gradient"]
    decls, lets = input_lines(src), []
    for line in printed.splitlines():
        if line.startswith("#"):
            continue
        m = GRAD.match(line)
        if not m:
            lets.append(line)
            continue
        y, x, e = m.groups()
        prog_inputs, extra = list(decls), {}
        cot = COTAN.search(printed)
        if cot:
            prog_inputs.append(cotangent_decl(*cot.groups()))
            extra[cot.group(1)] = cotangent(base, result["value"])
        prog = "\n".join(prog_inputs + lets + ["g_roundtrip = " + e]) + "\n"
        path = os.path.join(tmp, "rt.expr")
        with open(path, "w") as f:
            f.write(prog)
        vpath = os.path.join(tmp, "rt.json")
        with open(vpath, "w") as f:
            json.dump(dict(values, **extra), f)
        rc, out, err = run(gradc + ["eval", path, "--inputs", vpath, "--no-grad", "--interp"])
        if rc != 0:
            return "d%s/d%s: the printed program fails: %s\n%s" % (y, x, err.strip(), prog)
        got = flat(json.loads(out)["value"])
        exp = flat(want[x])
        if len(got) != len(exp) or not all(close(a, b) for a, b in zip(got, exp)):
            return "d%s/d%s: printed %s evaluates to %s, eval's gradient is %s" % (
                y, x, e, got[:6], exp[:6])
    return None


def control_flow(gradc, base, src, printed, tmp):
    body = []
    for line in printed.splitlines():
        if line.startswith("#") or re.match(r"\s*push\(", line) or re.search(r"= pop\(\)$", line):
            continue
        m = re.match(r"(\s*)for (\w+) in (.*):-1:1$", line)
        if m:
            k = m.group(3)
            line = "%sfor %s in 1:%s" % (m.group(1), m.group(2),
                                         k if re.fullmatch(r"\d+|[A-Za-z_]\w*", k) else "1")
        m = GRAD.match(line)
        if m:
            line = "d%s_d%s = %s" % m.groups()
        body.append(line)
    decls = input_lines(src)
    cot = COTAN.search(printed)
    if cot:
        decls.append(cotangent_decl(*cot.groups()))
    prog = "\n".join(decls + body) + "\n"
    # a loop count the printer names (`iterations`) is a value, not a dimension
    prog = re.sub(r"for (\w+) in 1:(\w+)\n", lambda m: m.group(0) if re.search(
        r"input \w+\[[^]]*\b%s\b" % m.group(2), prog) or m.group(2).isdigit()
        else "for %s in 1:1\n" % m.group(1), prog)
    path = os.path.join(tmp, "rt.expr")
    with open(path, "w") as f:
        f.write(prog)
    rc, out, err = run(gradc + ["derive", path])
    return None if rc == 0 else "the printed program does not check: %s\n%s" % (err.strip(), prog)


def expr_bases(folders):
    """The NAME.expr files of each folder, sorted, as paths without .expr
    (this script's, hessian_roundtrip's and hvp_print's programs)."""
    for folder in folders:
        for f in sorted(os.listdir(folder)):
            if f.endswith(".expr"):
                yield os.path.join(folder, f[:-5])


def source(base):
    with open(base + ".expr") as fh:
        return fh.read()


class Tally:
    """Passed and failed programs; a failure is printed with its reason."""

    def __init__(self):
        self.passed = self.failed = 0

    def record(self, base, why):
        if why:
            self.failed += 1
            print("FAIL %s: %s" % (base + ".expr", why))
        else:
            self.passed += 1

    def end(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        return 1 if self.failed else 0


def cli(doc, *options):
    """The round-trip scripts' command line: --gradc G, the OPTIONS given as
    (flags, keywords) pairs, then the folders; returns (args, G as argv)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--gradc", required=True)
    for flags, keywords in options:
        ap.add_argument(*flags, **keywords)
    ap.add_argument("folders", nargs="+")
    a = ap.parse_args()
    return a, shlex.split(a.gradc)


def reason(check, *args):
    """check(*args): None when it holds, else why not; a RuntimeError (a gradc
    run that failed) is a reason too."""
    try:
        return check(*args)
    except RuntimeError as e:
        return str(e)


def main():
    a, gradc = cli(__doc__)
    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        for base in expr_bases(a.folders):
            rc, printed, err = run(gradc + ["derive", base + ".expr"])
            if rc != 0:
                continue    # refused programs are the error goldens' business
            src = source(base)
            if "# the gradient program" in printed:
                tally.record(base, control_flow(gradc, base, src, printed, tmp))
            else:
                tally.record(base, straight_line(gradc, base, src, printed, tmp))
    return tally.end()


if __name__ == "__main__":
    sys.exit(main())
