#!/usr/bin/env python3
"""Random programs (tests/randprog.py's generator) through --hessian.

    python3 tests/randhess.py --gradc build/src/gradc [--seed S] [--count N] [--edition 2] [-j 2]
                              [--jit-opt N]

For every generated program with a scalar output: `eval --hessian` by the
interpreter and by the JIT agree (value, gradient, every Hessian entry within
1e-12 relative, the same NaN/Inf pattern) and neither crashes; when the
program is smooth (no kinks or data-dependent branches) and moderate,
`gradc check --hessian` passes (the Hessian against central differences of
the gradient).  Ends `N passed, M failed`.
"""

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import differential as dt  # noqa: E402
import randprog as rp  # noqa: E402


def one(gradc, tmp, seed, i):
    rng = random.Random("%d-%d" % (seed, i))
    g = rp.Gen(rng)
    text, inputs, cot, dims, smooth = g.program()
    d = os.path.join(tmp, "%d-%d" % (seed, i))
    rp.write_case(d, text, inputs, None, {}, g.check_inputs)
    expr, ins = os.path.join(d, "prog.expr"), os.path.join(d, "inputs.json")
    res = {}
    for engine in ("--interp", "--jit"):
        rc, out, err = dt.run([gradc, "eval", expr, "--inputs", ins, "--hessian"] + dt.engine_flags(engine[2:]))
        why = dt.crash_reason(rc, err)
        if why:
            return "FAIL %s %s: %s\n%s" % (d, engine, why, text)
        if rc != 0:
            if "needs a scalar output" in err:
                return "skip"        # a vector or matrix output: not this test's
            return "FAIL %s %s: %s\n%s" % (d, engine, dt.first_line(err), text)
        res[engine] = json.loads(out)
    a, b = res["--interp"], res["--jit"]
    msgs = dt.compare_results({k: a[k] for k in a if k != "hessian"}, {k: b[k] for k in b if k != "hessian"})
    msgs += dt.compare_results({"value": a["hessian"]}, {"value": b["hessian"]})
    if msgs:
        return "FAIL %s: %s\n%s" % (d, "; ".join(msgs), text)
    checked = smooth and rp.moderate(gradc, expr, d)
    if checked:
        rc, out, err = dt.run([gradc, "check", expr, "--hessian"] + (["--dims", dims] if dims else []))
        why = dt.crash_reason(rc, err)
        if why or (rc != 0 and "NOT CHECKED" not in out):
            return "FAIL %s check --hessian: %s\n%s" % (d, " | ".join((out + err).strip().splitlines()[-4:]), text)
    shutil.rmtree(d, ignore_errors=True)
    return "checked" if checked else "compared"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradc", required=True)
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--edition", type=int, choices=[1, 2], default=2)
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--jit-opt", type=int, choices=[0, 1, 2, 3], help="the JIT's -O level (default eval's)")
    args = ap.parse_args()
    rp.ED2 = args.edition == 2
    gradc = os.path.abspath(args.gradc)
    dt.set_jit_opt(args.jit_opt)
    tmp = tempfile.mkdtemp(prefix="gradc-randhess-")
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda i: one(gradc, tmp, args.seed, i), range(args.count)))
    failed = [r for r in results if r.startswith("FAIL")]
    for r in failed:
        print(r)
    print("%d with a scalar output: interpreter and JIT agree; %d of them also checked against "
          "differences" % (len(results) - len(failed) - results.count("skip"), results.count("checked")))
    print("%d passed, %d failed" % (len(results) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
