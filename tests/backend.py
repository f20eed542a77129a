#!/usr/bin/env python3
"""The back end's size guarantees (issue 7), on generated programs:

  * a matrix chain `v = tanh(A*v) + 0.5*v` grows by at most 80 lines of LLVM
    IR per statement (-O0, from 30 to 60 statements), on top of at most 2,500
    lines written once per module (the kernels: matrix passes, row pass,
    elementwise loops); at 30 statements its size overflow checks are done
    once per buffer size (at most 80 `.with.overflow`), and its elementwise
    loops written once (at most 12 `gradc.map.` functions);
  * a 300-statement matrix chain has no function of more than 1,500 lines
    (chunks, and buffer addresses made from a class's base and size);
  * integer powers are multiplications: no call to `pow` for `x.^2`;
  * a function whose buffers all have literal sizes (x'*A*x at n = 4) keeps
    them in its own frame: at -O2 it never allocates nor touches `work`;
  * a 5,000-statement elementwise chain compiles (fused chains are cut, no
    walk recurses with the program's length).

    backend.py --gradc G        prints `N passed, M failed`, exits 1 on failure
"""
import argparse
import os
import subprocess
import sys
import tempfile


def compile_ir(gradc, src, tmp, name, opt="-O0"):
    path = os.path.join(tmp, name + ".expr")
    with open(path, "w") as f:
        f.write(src)
    out = os.path.join(tmp, name + ".ll")
    p = subprocess.run([gradc, "compile", path, opt, "--emit-llvm", "-o", out],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        return None, p.stderr
    with open(out) as f:
        return f.read(), ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradc", required=True)
    a = ap.parse_args()
    passed = failed = 0

    def check(ok, what):
        nonlocal passed, failed
        print(("ok   " if ok else "FAIL ") + what)
        passed, failed = passed + bool(ok), failed + (not ok)

    with tempfile.TemporaryDirectory() as tmp:
        def chain(n):
            src = "input A[n, n]\ninput v0[n]\nv = v0\n" + "v = tanh(A*v) + 0.5*v\n" * n
            return compile_ir(a.gradc, src + "y = sum(v)\nwrt A, v0\n", tmp, "chain%d" % n)
        n = 30
        ir, err = chain(n)
        ir2, err2 = chain(2 * n)
        check(ir is not None and ir2 is not None, "30- and 60-statement matrix chains compile "
              + err + err2)
        if ir is not None and ir2 is not None:
            lines, lines2 = ir.count("\n"), ir2.count("\n")
            per = (lines2 - lines) / n
            check(per <= 80, "IR lines per statement %.0f <= 80 (%d at 30 statements, %d at 60)"
                  % (per, lines, lines2))
            check(lines - per * n <= 2500, "IR lines per module %.0f <= 2500" % (lines - per * n))
            ovf = ir.count(".with.overflow.i64(")
            check(ovf <= 80, "overflow checks %d <= 80 (once per buffer size)" % ovf)
            maps = sum(1 for l in ir.splitlines() if l.startswith("define") and "@gradc.map." in l)
            check(maps <= 12, "elementwise loop functions %d <= 12 (written once, not per statement)" % maps)
        # a 300-statement chain: no LLVM function grows with the buffers
        # (the impl stored every buffer's address into the chunks'
        # environment: 10,866 lines; chunks import a class's base and size)
        src = "input A[n, n]\ninput v0[n]\nv = v0\n" + "v = tanh(A*v) + 0.5*v\n" * 300
        src += "y = sum(v)\nwrt A, v0\n"
        ir, err = compile_ir(a.gradc, src, tmp, "chain300")
        biggest, size = 0, 0
        for l in (ir or "").splitlines():
            size = 0 if l.startswith("define") else size + 1
            biggest = max(biggest, size)
        check(ir is not None and biggest <= 1500,
              "300-statement matrix chain: largest function %d <= 1500 IR lines %s" % (biggest, err))
        # its chunks only call kernels (n is not a literal): not optimised
        groups = {l.split()[1]: "optnone" in l for l in (ir or "").splitlines() if l.startswith("attributes #")}
        chunks = [l for l in (ir or "").splitlines() if l.startswith("define") and ".chunk" in l]
        glue = sum(1 for l in chunks if groups.get(l.split()[-2], False))
        check(chunks and glue >= len(chunks) - 2, "chunks of calls only are optnone: %d of %d" % (glue, len(chunks)))
        ir, err = compile_ir(a.gradc, "input x[n]\ny = sum(x .^ 2) + sum(x .^ 3)\nwrt x\n", tmp, "powers")
        check(ir is not None and "@pow(" not in ir, "x.^2 and x.^3 are multiplications " + err)
        ir, err = compile_ir(a.gradc, "input A[4, 4]\ninput x[4]\nf = x' * A * x\nwrt x\n", tmp, "qf4", "-O2")
        grad = [l for l in (ir or "").splitlines() if l.startswith("define") and "@qf4_grad(" in l]
        check(ir is not None and "@malloc(" not in ir and grad and "readnone" in grad[0].split(",")[-1],
              "literal 4x4 x'*A*x: buffers in the frame (no malloc, work unread) " + err)
        n = 5000
        src = "input x[n]\nv0 = x\n" + "".join("v%d = tanh(v%d) + x\n" % (i + 1, i) for i in range(n))
        src += "y = sum(v%d)\nwrt x\n" % n
        ir, err = compile_ir(a.gradc, src, tmp, "chain5000")
        check(ir is not None, "5,000-statement elementwise chain compiles " + err[:300])
        # eval's JIT is -O0 with FastISel, which cannot select llvm.fabs or
        # llvm.uadd.sat (a block with one went to SelectionDAG): the IR has
        # their plain forms, and InstCombine makes llvm.fabs again at -O2
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "samples",
                               "logistic_regression.expr")) as f:
            src = f.read()
        ir, err = compile_ir(a.gradc, src, tmp, "logreg")
        check(ir is not None and "@llvm.fabs" not in ir and "@llvm.uadd.sat" not in ir,
              "-O0: no llvm.fabs or llvm.uadd.sat (FastISel selects every block) " + err)
        ir, err = compile_ir(a.gradc, src, tmp, "logreg2", "-O2")
        check(ir is not None and "@llvm.fabs" in ir, "-O2: |x| is llvm.fabs again " + err)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
