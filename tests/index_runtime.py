#!/usr/bin/env python3
"""An index out of range found at run time (spec §8): `gradc eval` (the JIT,
--interp, --no-grad) and `gradc check` exit 1 with an error at the index's
line and column, never a crash; the same program in range gives the value
written out by hand.  (A compiled object's GRADC_EINDEX: tests/link/test_window.c.)

    index_runtime.py --gradc G WINDOW.expr
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile

WANT = ":7:19: error: index out of range"


def run(argv):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradc", required=True)
    ap.add_argument("program")
    a = ap.parse_args()
    g = shlex.split(a.gradc)
    fails = 0
    with tempfile.TemporaryDirectory() as tmp:
        def inputs(k):
            path = os.path.join(tmp, "k%d.json" % k)
            with open(path, "w") as f:
                json.dump({"x": [1, 2, 3], "k": k}, f)
            return path
        for flags in ([], ["--interp"], ["--no-grad"], ["--interp", "--no-grad"]):
            rc, out, err = run(g + ["eval", a.program, "--inputs", inputs(3)] + flags)
            if rc != 1 or WANT not in err or out:
                fails += 1
                print("FAIL eval %s past the end: status %d, stderr %r" % (" ".join(flags), rc, err))
            rc, out, err = run(g + ["eval", a.program, "--inputs", inputs(2)] + flags)
            if rc != 0 or json.loads(out)["value"] != [18, 1, 2, 3]:
                fails += 1
                print("FAIL eval %s in range: status %d, %s %s" % (" ".join(flags), rc, out, err))
        rc, out, err = run(g + ["check", a.program, "--inputs", inputs(3)])
        if rc != 1 or WANT not in err:
            fails += 1
            print("FAIL check past the end: status %d, stderr %r" % (rc, err))
    print("%d failed" % fails)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
