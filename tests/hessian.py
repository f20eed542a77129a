#!/usr/bin/env python3
"""Second order on the command line (spec §9): `gradc eval --hessian`.

    python3 tests/hessian.py --gradc build/src/gradc DIR|FILE.expr... [-v]

For every DIR/NAME.expr with a scalar output and DIR/NAME.inputs.json:
  - `eval --hessian --interp` and `eval --hessian --jit` agree on the value,
    the gradient and every Hessian entry within 1e-12 relative;
  - the value and gradient are those of a plain `eval` (within 1e-12);
  - the Hessian is N x N over the wrt inputs (sizes from the gradient), an
    array of rows, and exactly symmetric (H[i][j] == H[j][i] as printed);
  - `compile --hessian --shared`, called through ctypes: NAME_hessian gives
    the same H (1e-12), exactly symmetric, and NAME_hvp at e_0 its first column.
With --checkpoint 2, programs with loops print the same.  Then the options' contract: [[h]] for one scalar wrt input, a --cotangent
scales the gradient and H, --no-grad excludes --hessian, a non-scalar
output is a clean error, and `compile --hessian` declares NAME_hvp,
NAME_hessian and their work sizes.

Prints one line per failure, then `N passed, M failed`.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

RTOL = 1e-12


def run(cmd):
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def flat(v):
    if isinstance(v, dict):
        return [x for k in sorted(v) for x in flat(v[k])]
    if isinstance(v, list):
        return [x for e in v for x in flat(e)]
    return [v]


def close(a, b):
    if a != a or b != b or a in (math.inf, -math.inf) or b in (math.inf, -math.inf):
        return (a != a and b != b) or a == b
    return abs(a - b) <= RTOL * max(1.0, abs(a), abs(b))


def agree(a, b, what):
    fa, fb = flat(a), flat(b)
    if len(fa) != len(fb):
        return "%s: %d entries against %d" % (what, len(fa), len(fb))
    for i, (x, y) in enumerate(zip(fa, fb)):
        if not close(x, y):
            return "%s[%d]: %.17g against %.17g" % (what, i, x, y)
    return None


def check_case(gradc, expr, inputs, tmp=None):
    """None if the case passes (or has a non-scalar output), else a message."""
    rc, out, err = run([gradc, "eval", expr, "--inputs", inputs])
    if rc != 0:
        return "eval failed: " + err.strip()[:200]
    plain = json.loads(out)
    if isinstance(plain["value"], list):
        return None
    got = {}
    for engine in ("--interp", "--jit"):
        rc, out, err = run([gradc, "eval", expr, "--inputs", inputs, "--hessian", engine])
        if rc != 0:
            return "eval --hessian %s failed: %s" % (engine, err.strip()[:200])
        got[engine] = json.loads(out)
    i, j = got["--interp"], got["--jit"]
    n = sum(len(flat(g)) for g in plain["gradient"].values())
    for r in (i, j):
        H = r.get("hessian")
        if not (isinstance(H, list) and len(H) == n and all(isinstance(row, list) and len(row) == n for row in H)):
            return "hessian is not %d x %d rows" % (n, n)
        for a in range(n):
            for b in range(a):
                if H[a][b] != H[b][a] and not (H[a][b] != H[a][b] and H[b][a] != H[b][a]):
                    return "H[%d][%d] = %.17g but H[%d][%d] = %.17g" % (a, b, H[a][b], b, a, H[b][a])
    for what, x, y in (("interp vs jit value", i["value"], j["value"]),
                       ("interp vs jit gradient", i["gradient"], j["gradient"]),
                       ("interp vs jit hessian", i["hessian"], j["hessian"]),
                       ("value vs plain eval", j["value"], plain["value"])):
        msg = agree(x, y, what)
        if msg:
            return msg
    for k in plain["gradient"]:
        msg = agree(j["gradient"][k], plain["gradient"][k], "gradient %s vs plain eval" % k)
        if msg:
            return msg
    return linked(gradc, expr, inputs, tmp, j["hessian"]) if tmp else None


def linked(gradc, expr, inputs, tmp, want):
    """NAME_hessian and NAME_hvp of `compile --hessian --shared`, called with
    ctypes, against eval --hessian's H (want) within 1e-12; H exactly
    symmetric; NAME_hvp at e_0 gives H's first column."""
    import ctypes
    so = os.path.join(tmp, "lib%s.so" % os.path.basename(expr)[:-5])
    rc, out, err = run([gradc, "compile", expr, "--hessian", "--shared", "--name", "h", "-o", so])
    if rc != 0:
        return "compile --hessian --shared failed: " + err.strip()[:200]
    rc, out, err = run([gradc, "compile", expr, "--hessian", "--describe", "--name", "h"])
    abi = json.loads(out)
    vals = json.load(open(inputs))
    dims = {}
    for x in abi["inputs"]:
        v = vals[x["name"]]
        for k, d in enumerate(x["shape"]):
            if isinstance(d, str):
                dims[d] = len(v) if k == 0 else len(v[0])
    lib = ctypes.CDLL(so)
    dbl = ctypes.POINTER(ctypes.c_double)

    def arr(v):
        f = flat(v)
        return (ctypes.c_double * max(1, len(f)))(*f)
    args = [ctypes.c_int64(dims[d]) for d in abi["dims"]]
    size = {}
    for x in abi["inputs"]:
        v = vals[x["name"]]
        size[x["name"]] = len(flat(v))
        args.append(ctypes.c_double(v) if not x["shape"] else arr(v))
    n = len(want)
    H = (ctypes.c_double * max(1, n * n))()
    f = ctypes.c_double()
    st = lib.h_hessian(*args, ctypes.byref(f), H, ctypes.c_uint(0), None)
    if st != 0:
        return "h_hessian returned %d" % st
    got = [[H[i * n + j] for j in range(n)] for i in range(n)]
    msg = agree(got, want, "linked NAME_hessian vs eval")
    if msg:
        return msg
    if any(got[i][j] != got[j][i] for i in range(n) for j in range(n)):
        return "linked NAME_hessian is not exactly symmetric"
    if n:
        vs, hvs, gs, k = [], [], [], 0
        for name in abi["wrt"]:
            e = [1.0 if k + i == 0 else 0.0 for i in range(size[name])]
            vs.append(arr(e))
            hvs.append((ctypes.c_double * max(1, size[name]))())
            k += size[name]
        st = lib.h_hvp(*args, *vs, ctypes.byref(f), *([None] * len(vs)), *hvs, ctypes.c_uint(0), None)
        col = [h[i] for name, h in zip(abi["wrt"], hvs) for i in range(size[name])]
        msg = "h_hvp returned %d" % st if st else agree(col, [r[0] for r in want], "linked NAME_hvp at e_0")
        if msg:
            return msg
    return None


def contract(gradc, tmp):
    """The option's contract on small programs written here: (name, message or None)."""
    def write(name, text):
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    res = []
    scalar = write("scalar.expr", "input a\ninput b\nf = a^3 * b\nwrt a\n")
    ins = write("scalar.inputs.json", '{"a": 2, "b": 5}')
    cot = write("scalar.cotangent.json", "3")
    for engine in ("--interp", "--jit"):
        rc, out, err = run([gradc, "eval", scalar, "--inputs", ins, "--hessian", engine])
        ok = rc == 0 and json.loads(out) == {"value": 40, "gradient": {"a": 60}, "hessian": [[60]]}
        res.append(("[[h]] for one scalar " + engine, None if ok else out + err))
        rc, out, err = run([gradc, "eval", scalar, "--inputs", ins, "--hessian", engine, "--cotangent", cot])
        ok = rc == 0 and json.loads(out) == {"value": 40, "gradient": {"a": 180}, "hessian": [[180]]}
        res.append(("--cotangent scales H " + engine, None if ok else out + err))
    rc, out, err = run([gradc, "eval", scalar, "--inputs", ins, "--hessian", "--no-grad"])
    res.append(("--no-grad excludes --hessian",
                None if rc == 1 and "exclude each other" in err and not out else err))
    vec = write("vec.expr", "input A[n, n]\ninput x[n]\ny = A * x\nwrt x\n")
    vins = write("vec.inputs.json", '{"A": [[1, 2], [3, 4]], "x": [1, 1]}')
    for cmd in (["eval", vec, "--inputs", vins, "--hessian"], ["check", vec, "--hessian"],
                ["compile", vec, "--hessian", "-o", os.path.join(tmp, "vec.o")]):
        rc, out, err = run([gradc] + cmd)
        want = "vec.expr: error: --hessian needs a scalar output; y is [n]"
        res.append((cmd[0] + " --hessian of a vector output", None if rc == 1 and want in err else err))
    # relu'' = abs'' = 0 at the kinks and elsewhere (PyTorch's double backward)
    kink = write("kink.expr", "input x[n]\nf = sum(relu(x) .* x + abs(x) .* x + x .* x)\nwrt x\n")
    kins = write("kink.inputs.json", '{"x": [0, -1, 2]}')
    rc, out, err = run([gradc, "eval", kink, "--inputs", kins, "--hessian", "--interp"])
    want = [[2, 0, 0], [0, 0, 0], [0, 0, 6]]   # 2 relu + 2|x|/x.. : d2/dx2 of relu(x) x + |x| x + x^2
    got = json.loads(out)["hessian"] if rc == 0 else err
    res.append(("second derivative at kinks", None if got == want else "got %s, want %s" % (got, want)))
    # --wrt orders H; a zero prints as 0, not -0
    quad = write("quad.expr", "input A[n, n]\ninput x[n]\ninput b[n]\nf = 0.5 * x' * A * x - b' * x\nwrt x\n")
    qin = write("quad.inputs.json", '{"A": [[2, 1], [0, 3]], "x": [1, 2], "b": [5, -1]}')
    for engine in ("--interp", "--jit"):
        rc, out, err = run([gradc, "eval", quad, "--inputs", qin, "--hessian", "--wrt", "b,x", engine])
        want = [[0, 0, -1, 0], [0, 0, 0, -1], [-1, 0, 2, 0.5], [0, -1, 0.5, 3]]
        ok = rc == 0 and json.loads(out)["hessian"] == want and "-0," not in out and "-0]" not in out
        res.append(("--wrt b,x orders H, zeros print as 0 " + engine, None if ok else out + err))
    # auxiliary outputs come with the value; NAME_hvp and NAME_hessian have none
    aux = write("aux.expr", "input x[n]\ns = sum(x .* x .* x)\nt = 2 * x\noutput s, t\nwrt x\n")
    auxin = write("aux.inputs.json", '{"x": [1, 2]}')
    want = {"value": 9, "aux": {"t": [2, 4]}, "gradient": {"x": [3, 12]}, "hessian": [[6, 0], [0, 12]]}
    for engine in ("--interp", "--jit"):
        rc, out, err = run([gradc, "eval", aux, "--inputs", auxin, "--hessian", engine])
        res.append(("aux outputs with --hessian " + engine,
                    None if rc == 0 and json.loads(out) == want else out + err))
    # compile --hessian: the header declares the four functions
    hdr = os.path.join(tmp, "s.h")
    rc, out, err = run([gradc, "compile", scalar, "--hessian", "--name", "s", "-o", os.path.join(tmp, "s.o"),
                        "--header", hdr])
    text = open(hdr).read() if rc == 0 else err
    decls = ["size_t s_hvp_work_size(void);",
             "int s_hvp(double a, double b, const double *v_a, double *f, double *grad_a, double *hv_a, "
             "unsigned flags, void *work);",
             "size_t s_hessian_work_size(void);",
             "int s_hessian(double a, double b, double *f, double *H, unsigned flags, void *work);"]
    missing = [d for d in decls if d not in text]
    res.append(("compile --hessian header", "missing: %s\n%s" % (missing, text) if missing else None))
    rc, out, err = run([gradc, "compile", scalar, "--hessian", "--name", "s", "--describe"])
    fns = json.loads(out)["functions"] if rc == 0 else err
    want = {"value": "s", "grad": "s_grad", "work_size": "s_work_size", "hvp": "s_hvp",
            "hvp_work_size": "s_hvp_work_size", "hessian": "s_hessian",
            "hessian_work_size": "s_hessian_work_size"}
    res.append(("compile --hessian --describe", None if fns == want else "got %s" % fns))
    return res


def programs(paths):
    """The stems of the NAME.expr files (with NAME.inputs.json) in the given
    folders, and of the NAME.expr files given themselves."""
    for d in paths:
        files = [d] if d.endswith(".expr") else [os.path.join(d, f) for f in sorted(os.listdir(d))]
        for f in files:
            if f.endswith(".expr") and os.path.exists(f[:-5] + ".inputs.json"):
                yield f[:-5]


def checkpointed(gradc, dirs):
    """eval --hessian with --checkpoint 2 prints exactly what it prints without,
    on every program with a loop (the tape carries the tangents either way)."""
    res = []
    for stem in programs(dirs):
        if not any(w in open(stem + ".expr").read() for w in ("for ", "while ")):
            continue
        outs = []
        for extra in ([], ["--checkpoint", "2"]):
            rc, out, err = run([gradc, "eval", stem + ".expr", "--inputs", stem + ".inputs.json",
                                "--hessian"] + extra)
            outs.append(out if rc == 0 else err)
        if "needs a scalar output" in outs[0]:
            continue
        res.append((stem + " --checkpoint 2", None if outs[0] == outs[1] else "differs:\n" + "".join(outs)))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradc", required=True)
    ap.add_argument("-v", action="store_true")
    ap.add_argument("dirs", nargs="+", help="folders of NAME.expr + NAME.inputs.json, or NAME.expr files")
    args = ap.parse_args()
    passed = failed = 0
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for stem in programs(args.dirs):
            results.append((stem, check_case(args.gradc, stem + ".expr", stem + ".inputs.json", tmp)))
        results += contract(args.gradc, tmp)
    results += checkpointed(args.gradc, args.dirs)
    for name, msg in results:
        if msg:
            failed += 1
            print("FAIL %s: %s" % (name, msg))
        else:
            passed += 1
            if args.v:
                print("ok   %s" % name)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
