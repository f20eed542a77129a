#!/usr/bin/env python3
"""Differential test of the LLVM back end against the reference interpreter.

    python3 tests/differential.py --gradc build/src/gradc DIR|FILE.expr... [-j 2] [-v]
                                  [--jit-opt N]

Every DIR/NAME.expr (and every FILE.expr named) that has a DIR/NAME.inputs.json (and, if present, a
DIR/NAME.cotangent.json) is run with `gradc eval --interp` and `gradc eval
--jit`, with and without `--no-grad`.  Both must exit 0 and agree on the value
and every gradient entry: |a - b| <= 1e-12 * max(1, |a|, |b|), the same keys,
the same shapes, NaN where the other has NaN, the same infinities.  The two
engines share the IR, so this checks codegen/JIT against eval.c, not the
derivative itself (the conformance suite and `gradc check` do that).
`--jit-opt 2` runs the JIT as `eval -O2`: the code `gradc compile` emits by
default (vectorised loops, outlined kernels), against the same oracle.

Prints one line per failure, then `N passed, M failed`.  randprog.py imports
the comparison from here.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

RTOL = 1e-12

# Text on stderr that means a crash, whatever the exit status.
CRASH = re.compile(r"internal error|Sanitizer|runtime error: |PLEASE submit a bug report|"
                   r"^Stack dump:|^LLVM ERROR: |Assertion .* failed|Segmentation fault|"
                   r"core dumped|terminate called", re.M)


# ---- running gradc -------------------------------------------------------

def run(cmd, timeout=60):
    """(rc, stdout, stderr); rc None on a timeout."""
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "", "timed out after %g s" % timeout
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def crash_reason(rc, err):
    """Why (rc, err) is a compiler bug (crash, signal, internal error), or None."""
    if rc is None:
        return err
    if rc < 0:
        return "killed by signal %d" % -rc
    if rc >= 2:
        return "exit status %d: %s" % (rc, first_line(err))
    m = CRASH.search(err)
    if m:
        return "crash on stderr: " + err[err.rfind("\n", 0, m.start()) + 1:].split("\n", 1)[0][:200]
    return None


def first_line(text):
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:200]
    return "(nothing on stderr)"


# the JIT's -O flag (--jit-opt; randprog.py and randhess.py set it too)
JIT_OPT = []


def engine_flags(engine):
    """eval's flags for an engine, "interp" or "jit"."""
    return ["--" + engine] + (JIT_OPT if engine == "jit" else [])


def eval_cmd(gradc, expr, inputs, cotangent, engine, grad):
    cmd = [gradc, "eval", expr, "--inputs", inputs] + engine_flags(engine)
    if cotangent:
        cmd += ["--cotangent", cotangent]
    if not grad:
        cmd.append("--no-grad")
    return cmd


def eval_json(gradc, expr, inputs, cotangent, engine, grad):
    """(parsed JSON, None) or (None, reason)."""
    rc, out, err = run(eval_cmd(gradc, expr, inputs, cotangent, engine, grad))
    why = crash_reason(rc, err)
    if why:
        return None, "%s: %s" % (engine, why)
    if rc != 0:
        return None, "%s: exit status %d: %s" % (engine, rc, first_line(err))
    try:
        return json.loads(out), None   # Python's json reads NaN / Infinity
    except ValueError:
        return None, "%s: output is not JSON: %r" % (engine, out.strip()[:120])


# ---- comparison ----------------------------------------------------------

def is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def shape_of(x):
    if is_num(x):
        return "number"
    if isinstance(x, list) and all(is_num(v) for v in x):
        return "[%d]" % len(x)
    if isinstance(x, list) and all(isinstance(r, list) and all(is_num(v) for v in r) for r in x):
        return "[%d, %s]" % (len(x), ",".join(sorted({str(len(r)) for r in x})))
    return "not a number/vector/matrix"


def flat(x, path):
    if isinstance(x, list):
        for i, v in enumerate(x):
            yield from flat(v, "%s[%d]" % (path, i))
    else:
        yield path, x


def entry_differs(a, b, rtol):
    """None if a and b agree, else a positive badness (inf for NaN/Inf mismatches)."""
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return None if math.isnan(a) and math.isnan(b) else math.inf
    if math.isinf(a) or math.isinf(b):
        return None if a == b else math.inf
    tol = rtol * max(1.0, abs(a), abs(b))
    d = abs(a - b)
    return None if d <= tol else d / tol


def compare(a, b, path, rtol=RTOL):
    """Worst disagreement between interp (a) and jit (b) as a message, or None."""
    sa, sb = shape_of(a), shape_of(b)
    if sa != sb:
        return "%s: shape %s (interp) vs %s (jit)" % (path, sa, sb)
    worst = None
    for (p, x), (_, y) in zip(flat(a, path), flat(b, path)):
        bad = entry_differs(x, y, rtol)
        if bad is not None and (worst is None or bad > worst[0]):
            worst = (bad, "%s: interp %r, jit %r (|diff| %.3g, %.3g x tol)"
                     % (p, x, y, abs(float(x) - float(y)) if bad != math.inf else math.inf, bad))
    return worst[1] if worst else None


def compare_results(a, b, rtol=RTOL):
    """Every disagreement between two eval outputs (list of messages)."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return ["output is not a JSON object"]
    if "value" not in a or "value" not in b:
        return ['"value" missing']
    probs = []
    r = compare(a["value"], b["value"], "value", rtol)
    if r:
        probs.append(r)
    for key in ("aux", "gradient"):   # aux: the auxiliary outputs (spec §8)
        ga, gb = a.get(key), b.get(key)
        if (ga is None) != (gb is None):
            return probs + ['"%s" present on one side only' % key]
        if ga is None:
            continue
        if list(ga) != list(gb):
            return probs + ["%s keys %s (interp) vs %s (jit)" % (key, list(ga), list(gb))]
        for k in ga:
            r = compare(ga[k], gb[k], key + "." + k, rtol)
            if r:
                probs.append(r)
    # everything else the engines print (spec §8 "aux", §9 "hessian") must agree too
    for k in sorted(set(a) | set(b)):
        if k in ("value", "gradient"):
            continue
        if (k in a) != (k in b):
            probs.append('"%s" present on one side only' % k)
        elif isinstance(a[k], dict) and isinstance(b[k], dict):
            if list(a[k]) != list(b[k]):
                probs.append("%s keys %s (interp) vs %s (jit)" % (k, list(a[k]), list(b[k])))
                continue
            for name in a[k]:
                r = compare(a[k][name], b[k][name], "%s.%s" % (k, name), rtol)
                if r:
                    probs.append(r)
        else:
            r = compare(a[k], b[k], k, rtol)
            if r:
                probs.append(r)
    return probs


def differential(gradc, expr, inputs, cotangent=None, rtol=RTOL):
    """Run both engines with and without gradients; list of failure messages."""
    fails = []
    for grad in (True, False):
        tag = "" if grad else "--no-grad: "
        ri, ei = eval_json(gradc, expr, inputs, cotangent, "interp", grad)
        rj, ej = eval_json(gradc, expr, inputs, cotangent, "jit", grad)
        if ei or ej:
            fails += [tag + e for e in (ei, ej) if e]
            continue
        if not grad and "gradient" in ri:
            fails.append(tag + "interp printed a gradient")
        fails += [tag + m for m in compare_results(ri, rj, rtol)]
    return fails


# ---- the cases -----------------------------------------------------------

def discover(folder):
    """(name, expr, inputs, cotangent or None) for each NAME.expr with NAME.inputs.json
    in folder, or for folder itself when it is one NAME.expr file."""
    out = []
    files = [os.path.basename(folder)] if folder.endswith(".expr") else sorted(os.listdir(folder))
    folder = os.path.dirname(folder) if folder.endswith(".expr") else folder
    for f in files:
        if not f.endswith(".expr"):
            continue
        base = os.path.join(folder, f[:-5])
        if not os.path.exists(base + ".inputs.json"):
            continue
        cot = base + ".cotangent.json"
        out.append((os.path.basename(base), base + ".expr", base + ".inputs.json",
                    cot if os.path.exists(cot) else None))
    return out


def set_jit_opt(level):
    """--jit-opt: every JIT eval of this process runs at -O level (None: eval's default)."""
    JIT_OPT[:] = [] if level is None else ["-O%d" % level]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gradc", required=True)
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--jit-opt", type=int, choices=[0, 1, 2, 3], help="the JIT's -O level (default eval's)")
    ap.add_argument("dirs", nargs="+",
                    help="folders of NAME.expr + NAME.inputs.json, or NAME.expr files")
    args = ap.parse_args()
    gradc = os.path.abspath(args.gradc)
    set_jit_opt(args.jit_opt)

    cases = []
    for d in args.dirs:
        if not os.path.isdir(d) and not (d.endswith(".expr") and os.path.isfile(d)):
            print("FAIL %s: no such folder or file" % d)
            print("0 passed, 1 failed")
            return 1
        found = discover(d)
        if not found:
            print("FAIL %s: no NAME.expr with NAME.inputs.json" % d)
            print("0 passed, 1 failed")
            return 1
        cases += found

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda c: differential(gradc, c[1], c[2], c[3]), cases))
    failed = 0
    for (name, expr, _, _), fails in zip(cases, results):
        if fails:
            failed += 1
            print("FAIL %s: %s" % (expr, fails[0]))
            for f in fails[1:]:
                print("     %s" % f)
        elif args.verbose:
            print("ok   %s" % expr)
    print("%d passed, %d failed" % (len(cases) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
