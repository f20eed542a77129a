#!/usr/bin/env python3
"""The command line under hostile and careless use (issue 8): programs that
crashed the simplifier, outputs that would overwrite inputs, function names
that clash with C, JSON that is not quite JSON, inputs without end, and the
check/plot options a first-time user reaches for.  Every case runs gradc in
a fresh temporary folder and asserts its exit status, its message and, where
there is one, the value it computes.

    python3 tests/harden.py --gradc build/src/gradc [NAME...]

Prints one line per failure, then `N passed, M failed`.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile

GRADC = None
CASES = []


def case(fn):
    CASES.append(fn)
    return fn


class Fail(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Fail(what)


def write(name, text, mode="w"):
    with open(name, mode) as f:
        f.write(text)


def run(*args, stdin=None, timeout=120, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([GRADC, *args], input=stdin, capture_output=True, text=True,
                       timeout=timeout, env=e)
    if re.search(r"Sanitizer|runtime error:|internal error", p.stderr):
        raise Fail(f"gradc {' '.join(args)}: crashed:\n{p.stderr}")
    return p


def ok(*args, **kw):
    p = run(*args, **kw)
    expect(p.returncode == 0, f"gradc {' '.join(args)}: exit {p.returncode}\n{p.stderr}")
    return p


def error(pattern, *args, **kw):
    """gradc ARGS must fail with exit status 1 and a message matching pattern."""
    p = run(*args, **kw)
    expect(p.returncode == 1, f"gradc {' '.join(args)}: exit {p.returncode}, expected 1\n{p.stderr}")
    expect(re.search(pattern, p.stderr), f"gradc {' '.join(args)}: message\n{p.stderr}"
           f"does not match /{pattern}/")
    return p


def evaluate(prog, inputs, *extra):
    """{'value', 'gradient'} from --interp and --jit, which must agree."""
    write("p.expr", prog)
    write("in.json", json.dumps(inputs))
    out = [json.loads(ok("eval", "p.expr", "--inputs", "in.json", eng, *extra).stdout)
           for eng in ("--interp", "--jit")]
    close(out[0], out[1], 1e-12, "interp vs jit")
    return out[0]


def close(a, b, tol, what):
    if isinstance(a, dict):
        expect(isinstance(b, dict) and a.keys() == b.keys(), f"{what}: keys {a} vs {b}")
        for k in a:
            close(a[k], b[k], tol, f"{what}.{k}")
    elif isinstance(a, list):
        expect(isinstance(b, list) and len(a) == len(b), f"{what}: {a} vs {b}")
        for x, y in zip(a, b):
            close(x, y, tol, what)
    else:
        expect(abs(a - b) <= tol * max(1.0, abs(a), abs(b)), f"{what}: {a} vs {b}")


# ---- the simplifier: P*x ± Q*x with a broadcasting 1×1 product ----------

BROADCAST_PRODUCTS = {
    # program, inputs, value and gradient by hand
    "input x[n]\ninput K[p, n]\ny = sum(x'*x - K*x)\n":
        lambda x, K: sum(dot(x, x) - dot(r, x) for r in K),
    "input x[n]\ninput K[n, p]\ny = sum(x'*K - x'*x)\n":
        lambda x, K: sum(sum(x[i] * K[i][j] for i in range(len(x))) - dot(x, x)
                         for j in range(len(K[0]))),
    "input x[n]\ninput K[p, n]\ny = sum(K*x + x'*x)\n":
        lambda x, K: sum(dot(r, x) + dot(x, x) for r in K),
}


def dot(u, v):
    return sum(a * b for a, b in zip(u, v))


def fd_grad(f, x, K):
    """Central differences of f(x, K) for x and K."""
    h = 1e-6
    gx = []
    for i in range(len(x)):
        xp, xm = list(x), list(x)
        xp[i] += h
        xm[i] -= h
        gx.append((f(xp, K) - f(xm, K)) / (2 * h))
    gK = []
    for i in range(len(K)):
        row = []
        for j in range(len(K[0])):
            Kp = [list(r) for r in K]
            Km = [list(r) for r in K]
            Kp[i][j] += h
            Km[i][j] -= h
            row.append((f(x, Kp) - f(x, Km)) / (2 * h))
        gK.append(row)
    return gx, gK


@case
def simplifier_broadcast_products():
    x = [0.5, -1.25, 2.0]
    for prog, f in BROADCAST_PRODUCTS.items():
        K = [[0.25, 1.5, -0.75], [2.0, 0.5, 1.0]]
        if "K[n, p]" in prog:
            K = [[0.25, 1.5], [-0.75, 2.0], [0.5, 1.0]]
        r = evaluate(prog, {"x": x, "K": K})
        close(r["value"], f(x, K), 1e-12, prog + " value")
        gx, gK = fd_grad(f, x, K)
        close(r["gradient"]["x"], gx, 1e-7, prog + " dy/dx")
        close(r["gradient"]["K"], gK, 1e-7, prog + " dy/dK")
        ok("derive", "p.expr")
        ok("check", "p.expr", "--dims", "n=4,p=3")
    # the issue's own programs, with a vector output, through every command
    for prog in ("input x[n]\ninput K[p, n]\ny = x'*x - K*x\n",
                 "input x[n]\ninput K[n, p]\ny = x'*K - x'*x\n"):
        write("v.expr", prog)
        ok("derive", "v.expr")
        ok("check", "v.expr")
        ok("compile", "v.expr", "-o", "v.o")



# ---- check: sizes that overflow rows × cols -----------------------------

@case
def check_huge_literal_dims():
    for r, c in ((3037000500, 3037000500), (3000000000, 4000000000), (2**62, 4)):
        write("big.expr", f"input A[{r}, {c}]\ny = sum(A)\n")
        error(r"input 'A' of \d+ x \d+ entries is too large", "check", "big.expr")
    write("big.expr", "input x[n]\ny = sum(x)\n")
    error(r"not a size", "check", "big.expr", "--dims", "n=99999999999999999999")


# ---- outputs: never an input or another output; written whole or not at all

SCALAR = "input x\ninput a\nwrt x\ny = a * sin(x) + x^2\n"


def unchanged(name, text):
    with open(name) as f:
        expect(f.read() == text, f"{name} was overwritten")


@case
def outputs_never_overwrite_inputs():
    write("F.expr", SCALAR)
    os.link("F.expr", "hard.expr")
    os.symlink("F.expr", "sym.expr")
    for args in (["-o", "F.expr"], ["--header", "F.expr"], ["--emit-llvm", "-o", "./F.expr"],
                 ["-o", "hard.expr"], ["-o", "sym.expr"], ["-o", os.path.abspath("F.expr")]):
        error(r"compile: (-o|--header) '.*' is the program; refusing to overwrite it",
              "compile", "F.expr", *args)
        unchanged("F.expr", SCALAR)
    error(r"plot: -o 'F.expr' is the program; refusing", "plot", "F.expr", "-o", "F.expr")
    unchanged("F.expr", SCALAR)
    ok("compile", "F.expr", "-o", "X.o")
    obj = open("X.o", "rb").read()
    error(r"compile: -o and --header name one file \('X.o'\)", "compile", "F.expr",
          "-o", "X.o", "--header", "X.o")
    expect(open("X.o", "rb").read() == obj, "the object was overwritten by its header")
    # outputs that do not exist yet are compared by name
    error(r"name one file", "compile", "F.expr", "-o", "new.o", "--header", "./new.o")
    expect(not os.path.exists("new.o"), "new.o written")
    ok("compile", "F.expr", "-o", "F.o", "--header", "F.h")
    ok("compile", "F.expr", "-o", "/dev/null", "--header", "/dev/null")


def limited(size):
    import resource
    import signal

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return apply


@case
def outputs_written_atomically():
    write("F.expr", SCALAR)
    ok("compile", "F.expr", "-o", "F.o", "--header", "F.h")
    ok("plot", "F.expr", "-o", "F.svg")
    before = {n: open(n, "rb").read() for n in ("F.o", "F.h", "F.svg")}
    # a write that fails half way (the file size limit) keeps the old file
    for args in (["compile", "F.expr", "-o", "F.o"],
                 ["compile", "F.expr", "--emit-llvm", "-o", "F.o"],
                 ["plot", "F.expr", "-o", "F.svg"]):
        p = subprocess.run([GRADC, *args], capture_output=True, text=True,
                           preexec_fn=limited(200))
        expect(p.returncode == 1 and "cannot write" in p.stderr,
               f"{args}: exit {p.returncode}\n{p.stderr}")
    for n, data in before.items():
        expect(open(n, "rb").read() == data, f"{n} truncated by a failed write")
    expect(sorted(os.listdir(".")) == ["F.expr", "F.h", "F.o", "F.svg"],
           f"left behind: {os.listdir('.')}")
    # modes as a plain create gives them
    expect(os.stat("F.o").st_mode & 0o777 == 0o666 & ~current_umask(), "mode of F.o")


def current_umask():
    m = os.umask(0)
    os.umask(m)
    return m


# ---- function names that would clash with C ------------------------------

@case
def function_names_checked():
    for stem, why in (("exp", "C math library"), ("logf", "C math library"),
                      ("int", "keyword"), ("class", "keyword"), ("main", "main"),
                      ("malloc", "C standard library"), ("printf", "C standard library")):
        write(stem + ".expr", SCALAR)
        error(rf"compile: the default function name '{stem}' \(from {stem}.expr\) .*{why}.*"
              r"choose another with --name NAME", "compile", stem + ".expr")
        expect(not os.path.exists(stem + ".o"), f"{stem}.o written")
        ok("compile", stem + ".expr", "--name", stem + "_model", "-o", "m.o")
    write("F.expr", SCALAR)
    for name, why in (("malloc", "C standard library"), ("gradc_tape_push", "runtime"),
                      ("runtime", "runtime"), ("__x", "reserved"), ("_X", "reserved"),
                      ("2d", "not a C identifier"), ("a-b", "not a C identifier"),
                      ("", "not a C identifier"), ("_", "__grad, which is reserved"),
                      ("sqrtl", "math library"), ("operator", "keyword")):
        error(rf"compile: --name '{re.escape(name)}' .*{why}.*; choose another name",
              "compile", "F.expr", "--name", name, "-o", "m.o")
    # names derived from awkward file names are made identifiers, then checked
    write("my-model.v2.expr", SCALAR)
    ok("compile", "my-model.v2.expr", "--header", "h.h")
    expect("int my_model_v2(" in open("h.h").read(), "my_model_v2 declared")


# ---- --cotangent for a scalar output scales the gradient (spec §8) --------

@case
def cotangent_scales_scalar_gradient():
    write("c.json", "-2.5")
    prog = "input x[n]\ninput a\ny = a * sum(x .* x) + a^2\n"
    plain = evaluate(prog, {"x": [1.0, -2.0], "a": 3.0})
    scaled = evaluate(prog, {"x": [1.0, -2.0], "a": 3.0}, "--cotangent", "c.json")
    close(scaled["value"], plain["value"], 0, "value")
    close(scaled["gradient"]["x"], [-2.5 * g for g in plain["gradient"]["x"]], 1e-15, "dy/dx")
    close(scaled["gradient"]["a"], -2.5 * plain["gradient"]["a"], 1e-15, "dy/da")
    close(plain["gradient"]["x"], [6.0, -12.0], 1e-15, "dy/dx at 1")
    # a vector output's cotangent is the seed, as before
    write("c.json", "[2, 0.5]")
    r = evaluate("input x[n]\ny = x .* x\n", {"x": [1.0, 3.0]}, "--cotangent", "c.json")
    close(r["gradient"]["x"], [4.0, 3.0], 1e-15, "vector cotangent")


# ---- JSON: strict, with positions; numbers that are doubles ----------------

SUMSQ = "input x[n]\ny = sum(x .* x)\n"


@case
def json_strict():
    write("p.expr", SUMSQ)
    bad = {
        '{"x": [1, 2]} x': r"t.json:1:15: error: not valid JSON: 'x' after the JSON value",
        '{"x": [1, 2]}\n{"x": [1]}': r"t.json:2:1: error: not valid JSON: '\{' after the JSON value",
        '{"x": [1, 2]}\0{"x": 1}': r"t.json:1:14: error: not valid JSON: a NUL byte after",
        '{"x": [01, 2]}': r"t.json:1:8: error: not valid JSON: a number may not have a leading zero",
        '{"x": [-00.5]}': r"leading zero",
        # jansson does not say where the first one was
        '{"x": [1, 2],\n "x": [3]}': r"t.json:2:2: error: not valid JSON: the key \"x\" appears twice",
        '{"x": [1e999]}': r"t.json:1:8: error: not valid JSON: the number 1e999 is too large",
        '{"x": [-1e999]}': r"too large for a double",
        '{"x": [1, 1e-400]}': r"t.json:1:11: error: not valid JSON: the number 1e-400 is too small "
                              r"for a double \(it would be 0\)",
        '{"x": [1, 2,]}': r"trailing commas are not JSON",
        '{"x": [1, 2]': r"t.json:1:13: error: not valid JSON: '}' expected near end of file",
        '{"x": [NaN]}': r"NaN and Infinity are not JSON",
        '{"x": [1.]}': r"t.json:1:8: error: not valid JSON: invalid token near '1\.'",
        '{"x": [+1]}': r"t.json:1:8: error: not valid JSON: invalid token near '\+'",
        '{"x\x01": 1}': r"t.json:1:2: error: not valid JSON: control character 0x1 near",
        '{x: [1]}': r"t.json:1:2: error: not valid JSON: string or '}' expected near 'x'",
        '': r"t.json:1:1: error: not valid JSON: unexpected token near end of file",
        # jansson's own limit of nesting (JSON_PARSER_MAX_DEPTH)
        '[' * 3000 + ']' * 3000: r"t.json:1:2049: error: not valid JSON: maximum parsing depth reached",
        '[' * 300 + ']' * 300: r"t.json: error: the inputs should be a JSON object with one key per "
                               r"input, not an array",
        '{"x": [[1], [2]]}': r"t.json: error: input 'x' should be a flat array of numbers "
                             r"\(a vector is not an array of rows\)",
        '{"x": [1, "a"]}': r"t.json: error: input 'x': entry 2 is not a number",
        '{"y": [1, 2]}': r"missing input 'x'",
    }
    for text, pattern in bad.items():
        write("t.json", text.encode(), "wb")
        error(pattern, "eval", "p.expr", "--inputs", "t.json", "--interp")
    # what is still fine: zeros, exponents, subnormals, escapes, whitespace
    for text, value in (('{"x": [0, -0.0, 0e-400, 2E+1]}', 400.0),
                        ('{"x": [1e-310]}', 0.0),
                        ('{"\\u0078": [3]}', 9.0),
                        (' \t\r\n{"x" : [ 1 , 2 ] , "z": {"a": [true, null, "s"]}}\n', 5.0)):
        write("t.json", text)
        r = json.loads(ok("eval", "p.expr", "--inputs", "t.json").stdout)
        close(r["value"], value, 1e-15, text)


# ---- reading is capped, and the cap can be raised ------------------------

@case
def inputs_capped():
    write("p.expr", SUMSQ)
    # /dev/zero has no end: a program and a JSON file from it stop at the cap
    for args, cap in ((["derive", "/dev/zero"], "64 MiB"),
                      (["eval", "p.expr", "--inputs", "/dev/zero", "--max-input", "8M"], "8 MiB")):
        p = run(*args, timeout=60)
        expect(p.returncode == 1 and f"/dev/zero is larger than the limit of {cap} "
               "(raise it with --max-input SIZE)" in p.stderr, f"{args}: {p.stderr}")
    # a program of 2 MiB (spaces, then the statements) under a 1 MiB cap
    with open("big.expr", "w") as f:
        f.write(" " * (2 << 20) + "\n" + SUMSQ)
    error(r"big.expr is larger than the limit of 1 MiB", "derive", "big.expr", "--max-input", "1M")
    ok("derive", "big.expr", "--max-input", "3M")
    ok("derive", "big.expr")
    write("t.json", '{"x": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]}')
    error(r"t.json is larger than the limit of 40 bytes", "eval", "p.expr", "--inputs", "t.json",
          "--max-input", "40")
    for bad in ("0", "-1", "1x", "12Q", "M", "99999999999999999999G"):
        error(r"--max-input: expected a size in bytes", "derive", "p.expr", "--max-input", bad)
    # a pipe is read in bounded chunks too
    p = subprocess.run(f"head -c 5000000 /dev/zero | {GRADC} derive /dev/stdin --max-input 4M",
                       shell=True, capture_output=True, text=True, timeout=60)
    expect(p.returncode == 1 and "larger than the limit of 4 MiB" in p.stderr, p.stderr)


# ---- check at the user's point; checks that check nothing; --tol ------------

@case
def check_options():
    write("p.expr", "input x[n]\ninput A[n, n]\ny = x' * A * x + sum(sin(x))\n")
    write("in.json", '{"x": [0.5, -1, 2, 0.25], "A": [[1, 2, 0, 0], [0, 1, 0, 0], '
                     '[0, 0, 3, 1], [1, 1, 1, 1]]}')
    p = ok("check", "p.expr", "--inputs", "in.json")
    expect(p.stdout.endswith("ok\n") and "x: max relative error" in p.stdout, p.stdout)
    # the point is the file's: x^2 at x = 0 has a zero gradient (random points do not)
    write("p.expr", "input x\ny = x^2\n")
    write("in.json", '{"x": 0}')
    p = run("check", "p.expr", "--inputs", "in.json")
    expect(p.returncode == 1 and "NOT CHECKED" in p.stdout, p.stdout)
    ok("check", "p.expr")
    error(r"--dims and --inputs exclude each other", "check", "p.expr", "--inputs", "in.json",
          "--dims", "n=2")
    # nothing to compare: all zero, or not finite
    write("z.expr", "input x[n]\ny = sum(detach(x))\n")
    p = run("check", "z.expr")
    expect(p.returncode == 1 and "NOT CHECKED: the gradient and the differences are all zero"
           in p.stdout and "\nok" not in p.stdout, p.stdout)
    write("nf.expr", "input x[n]\ny = sum(log(x - 10))\n")
    p = run("check", "nf.expr")
    expect(p.returncode == 1 and "not finite" in p.stdout and "\nok" not in p.stdout, p.stdout)
    for tol in ("0", "-1e-3", "-0"):
        error(r"--tol: expected a positive number", "check", "p.expr", "--tol", tol)
    ok("check", "p.expr", "--tol", "1e-3")


# ---- eval -O: the JIT's level; the interpreter has none ----------------------

@case
def eval_opt_level():
    write("p.expr", "input x[n]\ny = sum(exp(x) .* x) + 2*dot(x, x)\n")
    write("in.json", '{"x": [0.5, -1, 2, 0.25, 3, -2, 1.5, 0.125, 4]}')
    base = json.loads(ok("eval", "p.expr", "--inputs", "in.json", "--interp").stdout)
    for level in ("-O0", "-O1", "-O2", "-O3"):
        got = json.loads(ok("eval", "p.expr", "--inputs", "in.json", level).stdout)
        close(got, base, 1e-12, f"eval {level} vs --interp")
    error(r"-O2 is the JIT's optimisation level; --interp compiles nothing", "eval", "p.expr",
          "--inputs", "in.json", "--interp", "-O2")


# ---- plot: other inputs from a file, the tangent line, range errors --------

def svg_tangent(svg):
    m = re.search(r"tangent at ([-\d.e+]+): slope ([-\d.e+]+)", svg)
    expect(m, "no tangent in the SVG")
    return float(m.group(1)), float(m.group(2))


@case
def plot_options():
    write("p.expr", "input x\ninput a\ninput b\nwrt x\ny = a * sin(x) + b * x^2\n")
    write("in.json", '{"a": 3, "b": 0.5}')
    ok("plot", "p.expr", "-o", "f.svg", "--inputs", "in.json", "--tangent", "0.5")
    x0, slope = svg_tangent(open("f.svg").read())
    close(x0, 0.5, 1e-6, "x0")
    close(slope, 3 * math.cos(0.5) + 2 * 0.5 * 0.5, 1e-5, "slope with a = 3, b = 0.5")
    ok("plot", "p.expr", "-o", "g.svg", "--tangent", "0.5")
    close(svg_tangent(open("g.svg").read())[1], math.cos(0.5) + 0.5 * 2, 1e-5,
          "slope with the default 1s")
    expect(open("f.svg").read() != open("g.svg").read(), "the held inputs change nothing")
    # the swept input may be in the file (ignored); a held one may not be missing
    write("in.json", '{"a": 3, "b": 0.5, "x": 100}')
    ok("plot", "p.expr", "-o", "f.svg", "--inputs", "in.json")
    write("in.json", '{"a": 3}')
    error(r"in.json: error: missing input 'b'", "plot", "p.expr", "-o", "f.svg",
          "--inputs", "in.json")
    write("in.json", '{"a": 3, "b": [1]}')
    error(r"in.json: error: input 'b' should be a number, not an array", "plot", "p.expr", "-o", "f.svg",
          "--inputs", "in.json")
    error(r"plot: -o 'in.json' is the --inputs file", "plot", "p.expr", "-o", "in.json",
          "--inputs", "in.json")
    error(r"cannot open missing.json", "plot", "p.expr", "-o", "f.svg", "--inputs", "missing.json")
    error(r"cannot open missing.json", "check", "p.expr", "--inputs", "missing.json")
    for bad, msg in (("abc", r"--range: expected LO:HI, as in -5:5, not 'abc'"),
                     ("1:abc", r"--range: expected a number, not 'abc'"),
                     ("3:1", r"--range: LO must be less than HI")):
        error(msg, "plot", "p.expr", "-o", "f.svg", "--range", bad)
    error(r"--tangent: expected a number, not 'x'", "plot", "p.expr", "-o", "f.svg",
          "--tangent", "x")


def main():
    global GRADC
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradc", required=True)
    ap.add_argument("names", nargs="*")
    args = ap.parse_args()
    GRADC = os.path.abspath(args.gradc)
    passed = failed = 0
    for fn in CASES:
        if args.names and fn.__name__ not in args.names:
            continue
        with tempfile.TemporaryDirectory(prefix="gradc-harden-") as d:
            os.chdir(d)
            try:
                fn()
                passed += 1
            except (Fail, subprocess.TimeoutExpired) as e:
                failed += 1
                print(f"FAIL {fn.__name__}: {e}")
            finally:
                os.chdir("/")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
