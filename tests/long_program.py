#!/usr/bin/env python3
"""A straight-line program of a million statements through every command.

    python3 tests/long_program.py --gradc build/src/gradc
        [--statements N] [--commands derive,interp,jit,check,compile] [--shapes reuse,fresh]

Each statement is `y = sin(y)*0.5 + x`: the DAG is as deep as the program, so
any walk that recurses per node overflows the C stack (issue 7, item 3).  Two
shapes: one name reassigned N times (`reuse`), and a chain of fresh names
y1, y2, ... (`fresh`, which also grows the checker's name table).  A third,
`nested`, is the deepest nesting the parser allows: ifs 998 deep around
`y = y + sin(sin(...(x)))` 990 calls deep, for the walks over statements and
the AST, which recurse as deep as the nesting.  Commands:

  derive    exits 0 and ends with the `dy/dx = ` line;
  interp    `eval --interp`: value and gradient against the same recurrence
            run here in Python (1e-12 relative);
  jit       `eval --jit`: the same check through LLVM (the long point is
            split into chunk functions, src/chunk.c);
  check     `gradc check` says ok;
  compile   writes a non-empty object file.

Prints each run's time, its CPU time and its peak resident memory (with
--max-gb, a run above that many GiB fails); ends `N passed, M failed`.  Programs live in a
temporary folder, generated as text (~30 MB for a million fresh names); one
command runs at a time.  Python standard library only.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time

X = 0.3


NEST, CALLS = 998, 990   # within PARSE_MAX_DEPTH (1000)


def write_program(path, n, shape):
    """input x; then n statements of y = sin(y)*0.5 + x (or y_k = sin(y_{k-1})*0.5 + x)."""
    with open(path, "w") as f:
        f.write("input x\n")
        if shape == "nested":
            f.write("y = x\n")
            f.writelines("if y > -%d\n" % (i + 1) for i in range(NEST))
            f.write("y = y + %sx%s\n" % ("sin(" * CALLS, ")" * CALLS))
            f.write("end\n" * NEST)
        elif shape == "reuse":
            f.write("y = x\n")
            f.writelines("y = sin(y)*0.5 + x\n" for _ in range(n))
        else:
            f.write("y0 = x\n")
            f.writelines("y%d = sin(y%d)*0.5 + x\n" % (k, k - 1) for k in range(1, n + 1))


def reference(n, shape):
    """The value and dy/dx of the program, in double precision."""
    if shape == "nested":      # every condition holds: y = x + sin^CALLS(x)
        s, ds = X, 1.0
        for _ in range(CALLS):
            s, ds = math.sin(s), math.cos(s) * ds
        return X + s, 1.0 + ds
    y, dy = X, 1.0
    for _ in range(n):
        y, dy = math.sin(y) * 0.5 + X, math.cos(y) * 0.5 * dy + 1.0
    return y, dy


def close(a, b):
    return abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b))


class Done:
    """What a finished command left: returncode, stdout, stderr, and its own
    CPU seconds and peak resident memory (os.wait4, not the sum of
    children run so far)."""

    def __init__(self, rc, out, err, cpu, rss):
        self.returncode, self.stdout, self.stderr, self.cpu, self.rss = rc, out, err, cpu, rss


def run(cmd):
    t = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        done = Done(p.returncode, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"),
                    ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024)
    RUNS.append(done)
    return done, time.monotonic() - t


RUNS = []    # every command run, for its CPU time and memory


def check_eval(p, want):
    if p.returncode != 0:
        return "exit %d: %s" % (p.returncode, p.stderr.strip()[-300:])
    r = json.loads(p.stdout)
    v, g = r["value"], r["gradient"]["x"]
    if not close(v, want[0]) or not close(g, want[1]):
        return "value %r gradient %r, expected %r %r" % (v, g, want[0], want[1])
    return None


def one(gradc, tmp, prog, command, want):
    """Runs one command on prog; None when it passed, else why not."""
    inputs = os.path.join(tmp, "inputs.json")
    with open(inputs, "w") as f:
        json.dump({"x": X}, f)
    if command == "derive":
        p, dt = run([gradc, "derive", prog])
        last = p.stdout.rstrip("\n").rsplit("\n", 1)[-1]
        bad = None if p.returncode == 0 and re.match(r"dy\d*/dx = ", last) else \
            "exit %d: %s" % (p.returncode, (p.stderr or last).strip()[-300:])
    elif command in ("interp", "jit"):
        p, dt = run([gradc, "eval", prog, "--inputs", inputs, "--" + command])
        bad = check_eval(p, want)
    elif command == "check":
        p, dt = run([gradc, "check", prog])
        bad = None if p.returncode == 0 and p.stdout.rstrip().endswith("ok") else \
            "exit %d: %s %s" % (p.returncode, p.stdout.strip()[-200:], p.stderr.strip()[-300:])
    elif command == "compile":
        obj = os.path.join(tmp, "prog.o")
        p, dt = run([gradc, "compile", prog, "-o", obj])
        ok = p.returncode == 0 and os.path.exists(obj) and os.path.getsize(obj) > 0
        bad = None if ok else "exit %d: %s" % (p.returncode, p.stderr.strip()[-300:])
        if os.path.exists(obj):
            os.remove(obj)
    else:
        raise SystemExit("long_program: unknown command " + command)
    return bad, dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gradc", required=True)
    ap.add_argument("--statements", type=int, default=1000000)
    ap.add_argument("--commands", default="derive,interp,jit,check,compile")
    ap.add_argument("--shapes", default="reuse,fresh,nested")
    ap.add_argument("--max-gb", type=float, help="fail a command whose peak resident memory is larger")
    args = ap.parse_args()
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="gradc-long-") as tmp:
        for shape in args.shapes.split(","):
            prog = os.path.join(tmp, shape + ".expr")
            write_program(prog, args.statements, shape)
            want = reference(args.statements, shape)
            for command in args.commands.split(","):
                bad, dt = one(args.gradc, tmp, prog, command, want)
                done = RUNS[-1]
                if not bad and args.max_gb and done.rss > args.max_gb * 2 ** 30:
                    bad = "peak memory %.2f GB, more than --max-gb %g" % (done.rss / 2 ** 30, args.max_gb)
                size = "%d statements" % args.statements if shape != "nested" else "%d deep" % NEST
                name = "%s %s, %s" % (shape, size, command)
                cost = "%.1f s, %.1f s CPU, %.2f GB" % (dt, done.cpu, done.rss / 2 ** 30)
                if bad:
                    failed += 1
                    print("FAIL %s (%s): %s" % (name, cost, bad))
                else:
                    passed += 1
                    print("ok   %s (%s)" % (name, cost))
                sys.stdout.flush()
            os.remove(prog)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
