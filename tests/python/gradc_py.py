#!/usr/bin/env python3
"""gradc.py against `gradc eval`: every sample compiled with
`gradc compile --shared`, loaded by gradc.py from its embedded ABI, gives
the value and gradients `gradc eval` prints (to 1e-12 relative; the JIT
and the object come from the same code generator), a reordered --wrt
reorders the gradients, statuses raise gradc.Error with gradc_strerror's
message, bad shapes and dtypes raise, the work buffer is reused, the
embedded ABI is `gradc compile --describe`'s and names runtime.h's statuses;
and samples/python/logreg.py fits (its gradient against `gradc eval`).

    python3 tests/python/gradc_py.py --gradc GRADC --python-dir DIR_OF_gradc.py \
        --samples SAMPLES_DIR --runtime-h RUNTIME_H
"""

import argparse
import glob
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import tempfile

failures = checks = 0


def check(cond, what):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
        print("FAIL:", what)
    return cond


def close(a, b, tol=1e-12):
    import numpy as np
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return False
    both_nan = np.isnan(a) & np.isnan(b)
    same_inf = np.isinf(a) & (a == b)
    ok = np.abs(a - b) <= tol * np.maximum(1, np.abs(b))
    return bool(np.all(both_nan | same_inf | ok))


def run(*cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradc", required=True)
    ap.add_argument("--python-dir", required=True)
    ap.add_argument("--samples", required=True)
    ap.add_argument("--runtime-h", required=True)
    ap.add_argument("--link", required=True, help="tests/link (aux.expr)")
    a = ap.parse_args()
    a.samples, a.python_dir = os.path.abspath(a.samples), os.path.abspath(a.python_dir)
    a.runtime_h = os.path.abspath(a.runtime_h)
    a.link = os.path.abspath(a.link)
    sys.path.insert(0, a.python_dir)
    sys.path.insert(0, os.path.join(a.samples, "python"))
    import numpy as np
    import gradc
    g = os.path.abspath(a.gradc)
    tmp = tempfile.TemporaryDirectory(prefix="gradc-py-")
    os.chdir(tmp.name)

    # every sample: value and gradients against gradc eval
    for expr in sorted(glob.glob(os.path.join(a.samples, "*.expr"))):
        inputs = expr[:-5] + ".inputs.json"
        if not os.path.exists(inputs):
            continue
        stem = os.path.basename(expr)[:-5]
        run(g, "compile", expr, "--shared", "-o", f"lib{stem}.so")
        f = gradc.load(f"./lib{stem}.so")
        data = json.load(open(inputs))
        cot = expr[:-5] + ".cotangent.json"
        extra = ["--cotangent", cot] if os.path.exists(cot) else []
        want = json.loads(run(g, "eval", expr, "--inputs", inputs, *extra))
        value, grads = f.grad(cotangent=json.load(open(cot)) if extra else None, **data)
        check(close(value, want["value"]), f"{stem}: value {value} vs eval {want['value']}")
        check(list(grads) == list(want["gradient"]), f"{stem}: wrt order {list(grads)}")
        for n in want["gradient"]:
            check(close(grads[n], want["gradient"][n]), f"{stem}: gradient of {n}")
        check(close(f(**data), want["value"]), f"{stem}: value-only call")
        # positional arguments in declaration order
        check(close(f(*[data[n] for n in f.inputs]), want["value"]), f"{stem}: positional call")
        # the embedded ABI is --describe's
        check(f.abi == json.loads(run(g, "compile", expr, "--describe")), f"{stem}: embedded ABI")

    # --wrt reorders the gradient buffers of the library
    mv = os.path.join(a.samples, "matvec.expr")
    run(g, "compile", mv, "--shared", "--wrt", "x,A", "-o", "libmv.so")
    f = gradc.load("./libmv.so")
    data = json.load(open(mv[:-5] + ".inputs.json"))
    want = json.loads(run(g, "eval", mv, "--inputs", mv[:-5] + ".inputs.json", "--wrt", "x,A"))
    _, grads = f.grad(**data)
    check(list(grads) == ["x", "A"] and f.wrt == ["x", "A"], f"--wrt x,A: {list(grads)}")
    check(close(grads["x"], want["gradient"]["x"]) and close(grads["A"], want["gradient"]["A"]),
          "--wrt x,A: gradients")

    # auxiliary outputs (spec §8), and a scalar output's cotangent scaling its gradient
    ax = os.path.join(a.link, "aux.expr")
    run(g, "compile", ax, "--shared", "-o", "libaux.so")
    fa = gradc.load("./libaux.so")
    with open("aux.inputs.json", "w") as fh:
        json.dump({"A": [[0.5, -1], [2, 0.25], [-0.75, 1.5]], "x": [0.3, -0.6]}, fh)
    adata = json.load(open("aux.inputs.json"))
    want = json.loads(run(g, "eval", ax, "--inputs", "aux.inputs.json"))
    check(fa.aux == ["z", "s"], f"aux names {fa.aux}")
    value, aux, grads = fa.grad(with_aux=True, **adata)
    check(close(value, want["value"]) and close(aux["z"], want["aux"]["z"])
          and close(aux["s"], want["aux"]["s"]), f"aux values {aux} vs eval {want['aux']}")
    check(close(grads["x"], want["gradient"]["x"]), "aux: gradient of x")
    value, aux = fa(with_aux=True, **adata)
    check(close(aux["z"], want["aux"]["z"]) and close(fa(**adata), want["value"]), "aux: value call")
    _, scaled = fa.grad(cotangent=-2.5, **adata)
    check(close(scaled["x"], [-2.5 * v for v in want["gradient"]["x"]]), "scalar cotangent scales")

    # conversions: int and Fortran-ordered arrays, an (n, 1) column
    A = np.asfortranarray(np.array(data["A"]))
    x = np.array(data["x"])
    v1 = f(A=A, x=x)
    check(close(v1, f(A=np.array(data["A"]), x=x.reshape(-1, 1))), "Fortran order, (n,1) column")
    check(close(f(A=np.ones((2, 3), dtype=np.int32), x=[1, 2, 3]), [6, 6]), "int arrays converted")
    # errors
    for bad, exc, msg in [(dict(A=A, x=x[:2]), ValueError, "dimension n is 3"),
                          (dict(A=A, x=x.astype(complex)), TypeError, "dtype complex128"),
                          (dict(A=A), TypeError, "missing input(s) x"),
                          (dict(A=A, x=x, z=1), TypeError, "no input named 'z'"),
                          (dict(A=A[0], x=x), ValueError, "declared [m, n]")]:
        try:
            f(**bad)
            check(False, f"{msg}: no exception")
        except exc as e:
            check(msg in str(e), f"{msg}: got {e}")
    # the work buffer is reused while the dimensions fit
    f(A=A, x=x)
    w = f._work
    f.grad(A=A, x=x)
    f(A=A[:2], x=x)
    check(f._work is w, "work buffer reused")

    # a status raises gradc.Error with gradc_strerror's message
    wg = os.path.join(a.samples, "while_growth.expr")
    run(g, "compile", wg, "--shared", "--max-iter", "1", "-o", "libwg.so")
    f = gradc.load("./libwg.so")
    try:
        f.grad(**json.load(open(wg[:-5] + ".inputs.json")))
        check(False, "GRADC_EMAXITER: no exception")
    except gradc.Error as e:
        check(e.status == 2 and e.name == "GRADC_EMAXITER"
              and e.message == "a while loop reached its iteration limit", f"EMAXITER: {e}")

    # the statuses the ABI names are runtime.h's
    enum = dict((int(v), n) for n, v in
                re.findall(r"(GRADC_[A-Z]+)\s*=\s*(\d+)", open(a.runtime_h).read()))
    check({s["code"]: s["name"] for s in f.abi["statuses"]} == enum,
          f"statuses {f.abi['statuses']} vs runtime.h {enum}")

    # the sample: its gradient against gradc eval, and the fit
    logreg = importlib.import_module("logreg")
    lr = os.path.join(a.samples, "logistic_regression.expr")
    run(g, "compile", lr, "--shared", "--name", "logreg", "-o", "liblogreg.so")
    f = gradc.load("./liblogreg.so")
    X, y = logreg.make_data()
    w0 = np.array([0.3, -0.2, 0.1])
    json.dump({"X": X.tolist(), "y": y.tolist(), "w": w0.tolist(), "lam": logreg.LAM},
              open("lr.json", "w"))
    want = json.loads(run(g, "eval", lr, "--inputs", "lr.json"))
    value, grads = f.grad(X=X, y=y, w=w0, lam=logreg.LAM)
    check(close(value, want["value"]) and close(grads["w"], want["gradient"]["w"]),
          f"logreg sample: {value} {grads} vs {want}")
    out = io.StringIO()
    w, losses = logreg.fit(f, X, y, out=out)
    check(all(b < a for a, b in zip(losses, losses[1:])), "logreg: the loss fell at every step")
    check(losses[-1] < f(X=X, y=y, w=logreg.W_TRUE, lam=logreg.LAM), "logreg: below loss(W_TRUE)")
    check(logreg.main(["logreg.py", "./liblogreg.so"]) == 0, "logreg.main")

    os.chdir("/")
    tmp.cleanup()
    print(f"{checks - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
