#!/usr/bin/env python3
"""Gradients through if/elif/else, while and for, against expectations
derived independently: each program is also written here in Python over
dual numbers (forward mode, one input entry at a time), so the expected
gradient comes from a different algorithm than gradc's reverse mode; and
each program also passes `gradc check` (central finite differences at
random inputs).

    python3 tests/control_flow.py --gradc build/src/gradc [--engine interp|jit|both]

Prints one line per failure, then `N passed, M failed`.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile


class D:
    """A dual number a + b·ε."""

    def __init__(self, a, b=0.0):
        self.a, self.b = float(a), float(b)

    @staticmethod
    def of(x):
        return x if isinstance(x, D) else D(x)

    def __add__(s, o): o = D.of(o); return D(s.a + o.a, s.b + o.b)
    __radd__ = __add__
    def __sub__(s, o): o = D.of(o); return D(s.a - o.a, s.b - o.b)
    def __rsub__(s, o): return D.of(o) - s
    def __mul__(s, o): o = D.of(o); return D(s.a * o.a, s.a * o.b + s.b * o.a)
    __rmul__ = __mul__
    def __truediv__(s, o): o = D.of(o); return D(s.a / o.a, (s.b * o.a - s.a * o.b) / (o.a * o.a))
    def __rtruediv__(s, o): return D.of(o) / s
    def __neg__(s): return D(-s.a, -s.b)
    def __pow__(s, p): return D(s.a ** p, p * s.a ** (p - 1) * s.b)
    def __lt__(s, o): return s.a < D.of(o).a
    def __gt__(s, o): return s.a > D.of(o).a


def sin(x): return D(math.sin(x.a), math.cos(x.a) * x.b)
def cos(x): return D(math.cos(x.a), -math.sin(x.a) * x.b)
def exp(x): e = math.exp(x.a); return D(e, e * x.b)
def tanh(x): t = math.tanh(x.a); return D(t, (1 - t * t) * x.b)
def detach(x): return D(x.a, 0.0)
def total(v): return sum(v, D(0))
def norm(v): return total([e * e for e in v]) ** 0.5


# ---- the programs, each in the language and in Python ----

D2L = """input a{shape}
b = a * 2
while norm(b) < 1000
    b = b * 2
end
if sum(b) > 0
    c = b
else
    c = 100 * b
end
{tail}"""


def d2l(a):
    b = [e * 2 for e in a]
    while norm(b) < 1000:
        b = [e * 2 for e in b]
    return b if total(b) > 0 else [100 * e for e in b]


def _many_loops_text(k):
    body = "".join("        c%d = b\n        for j%d in 1:2\n            c%d = sin(c%d)\n        end\n"
                   % (i, i, i, i) for i in range(k))
    terms = " + ".join("c%d" % i for i in range(k))
    return ("input x\nb = x\nfor i in 1:3\n    if b > 0\n%s        b = %g*(%s) + 0.5*b\n"
            "    end\nend\ny = b\n" % (body, 0.5 / k, terms))


CASES = [
    # the D2L example on a scalar, both branches: dc/da = c/a
    ("d2l_scalar_pos", D2L.format(shape="", tail="output c"), {"a": 0.7},
     lambda a: d2l([a])[0]),
    ("d2l_scalar_neg", D2L.format(shape="", tail="output c"), {"a": -1.3},
     lambda a: d2l([a])[0]),
    # ... and on a vector with sum(c) as the output
    ("d2l_vector", D2L.format(shape="[n]", tail="y = sum(c)"), {"a": [0.5, -0.2, 0.9]},
     lambda a: total(d2l(a))),
    ("d2l_vector_else", D2L.format(shape="[n]", tail="y = sum(c)"), {"a": [-0.5, 0.2, -0.9]},
     lambda a: total(d2l(a))),
    # a nonlinear body: the reverse needs every iteration's b
    ("nonlinear_for", """input x[n]
b = x
for i in 1:5
    b = sin(b) + b
end
y = sum(b .* b)
""", {"x": [0.3, -1.1, 2.0]},
     lambda x: (lambda b: total([e * e for e in b]))(
         _iterate(x, 5, lambda b, i: [sin(e) + e for e in b]))),
    # a nonlinear while with a data-dependent trip count
    ("nonlinear_while", """input x
b = x
while b < 10
    b = b * b + 1
end
y = b
""", {"x": 0.9}, lambda x: _while(x, lambda b: b < 10, lambda b: b * b + 1)),
    # nested loops, the loop index as a value, a captured scalar
    ("nested_loops", """input x[n]
input a
s = x
for i in 1:3
    t = s
    for j in 1:2
        t = sin(t) + a * t / j
    end
    s = t .* s / i
end
y = sum(s)
""", {"x": [0.3, -0.2, 0.5], "a": 0.7}, lambda x, a: total(_nested(x, a))),
    # an if inside a for, taking both branches on different iterations
    ("if_in_for", """input x[n]
s = 0
for i in 1:4
    if sum(x) * i > 2
        s = s + sum(exp(x / i))
    else
        s = s - dot(x, x) * i
    end
end
y = s
""", {"x": [0.3, -0.2, 0.5]}, lambda x: _if_in_for(x)),
    # an elif chain inside a while
    ("elif_in_while", """input x
input w[n]
s = 0
k = 0
while k < 6
    if s < 1
        s = s + x * sum(w)
    elif s < 3
        s = s + tanh(x) * s
    else
        s = s + 0.5
    end
    k = k + 1
end
y = s
""", {"x": 0.6, "w": [0.4, 0.3]}, lambda x, w: _elif_in_while(x, w)),
    # detach inside a loop: the detached factor is a constant of each step
    ("detach_in_loop", """input x[n]
b = x
k = 0
while k < 3
    b = b .* detach(b) + x
    k = k + 1
end
y = sum(b)
""", {"x": [0.3, -0.2, 0.5]},
     lambda x: total(_iterate(x, 3, lambda b, i: [e * detach(e) + xi for e, xi in zip(b, x)]))),
    # a loop's final value used in another input's gradient: the reverse pops
    # the loop's slot, so that gradient must be kept before (found by randprog)
    ("value_after_taped_loop", """input x
input a
t = a
for i in 1:2
    t = t * t
end
y = x * t
""", {"x": 0.8, "a": 0.5}, lambda x, a: x * _iterate([a], 2, lambda b, i: [b[0] * b[0]])[0]),
    # an if whose branches disagree on which shared nodes they reverse
    # themselves, nested in two loops (found by randprog: an adjoint was
    # counted twice)
    ("if_empty_branch_nested", """input y[n]
input v[m]
t = ones(m)' * v
for i in 1:m
    for j in 1:4
        t = 0.5 * t + 0.5 * sin(tanh(i))
        if j == 1
        elif i > 2
            t = 0.5 * t + 0.5 * cos(tanh(sum(y)))
        end
    end
end
""", {"y": [0.5, 0.7], "v": [1.0, 0.5, 0.25]}, lambda y, v: _if_empty_branch(y, v)),
    # a loop that runs zero times (K = n = 0 is not allowed; a literal 0 is)
    ("for_zero_trips", """input x[n]
b = 2 * x
for i in 1:0
    b = b .* b
end
y = sum(b)
""", {"x": [1.0, 2.0]}, lambda x: total([2 * e for e in x])),
    # a loop bound by a dimension symbol
    ("for_dim_bound", """input x[n]
s = 0
for i in 1:n
    s = s + i * sum(cos(x * i))
end
y = s
""", {"x": [0.1, 0.2, 0.3]},
     lambda x: total([i * total([cos(e * i) for e in x]) for i in range(1, len(x) + 1)])),
    # an if holding 100 loops inside a for: under --checkpoint every inner loop
    # adds slots while the outer loop's reverse is built (issue 8: slot sets
    # sized before those slots existed were written past their end)
    # (the interpreter only: the JIT's compile time on this gradient program
    # grows faster than linearly, minutes at 70 loops -- issue 7's backend)
    ("if_of_many_loops_in_for", _many_loops_text(100), {"x": 0.7}, lambda x: _many_loops(x, 100),
     ["--interp"]),
]


def _many_loops(x, k):
    b = x
    for i in range(1, 4):
        if b > 0:
            b = (0.5 / k) * total([sin(sin(b)) for _ in range(k)]) + 0.5 * b
    return b


def _iterate(x, k, step):
    b = list(x)
    for i in range(1, k + 1):
        b = step(b, i)
    return b


def _while(b, cond, step):
    while cond(b):
        b = step(b)
    return b


def _nested(x, a):
    s = list(x)
    for i in range(1, 4):
        t = list(s)
        for j in range(1, 3):
            t = [sin(e) + a * e / j for e in t]
        s = [te * se / i for te, se in zip(t, s)]
    return s


def _if_empty_branch(y, v):
    t = total(v)
    for i in range(1, len(v) + 1):
        for j in range(1, 5):
            t = 0.5 * t + 0.5 * sin(tanh(D(i)))
            if j == 1:
                pass
            elif i > 2:
                t = 0.5 * t + 0.5 * cos(tanh(total(y)))
    return t


def _if_in_for(x):
    s = D(0)
    for i in range(1, 5):
        if total(x) * i > 2:
            s = s + total([exp(e / i) for e in x])
        else:
            s = s - total([e * e for e in x]) * i
    return s


def _elif_in_while(x, w):
    s, k = D(0), 0
    while k < 6:
        if s < 1:
            s = s + x * total(w)
        elif s < 3:
            s = s + tanh(x) * s
        else:
            s = s + 0.5
        k += 1
    return s


def forward_mode(fn, inputs):
    """Value and gradient of fn at inputs, one seeded entry at a time."""
    names = list(inputs)

    def run(seed_name, seed_index):
        args = []
        for nm in names:
            v = inputs[nm]
            if isinstance(v, list):
                args.append([D(e, 1.0 if (nm, i) == (seed_name, seed_index) else 0.0)
                             for i, e in enumerate(v)])
            else:
                args.append(D(v, 1.0 if nm == seed_name else 0.0))
        return fn(*args)

    value = run(None, None).a
    grad = {}
    for nm in names:
        v = inputs[nm]
        grad[nm] = [run(nm, i).b for i in range(len(v))] if isinstance(v, list) else run(nm, None).b
    return value, grad


def close(got, want):
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(close, got, want))
    return isinstance(got, (int, float)) and abs(got - want) <= 1e-9 * max(1.0, abs(want))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradc", required=True)
    ap.add_argument("--engine", choices=["interp", "jit", "both"], default="both")
    args = ap.parse_args()
    engines = ["--interp", "--jit"] if args.engine == "both" else ["--" + args.engine]
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, text, inputs, fn, *only in CASES:
            expr = os.path.join(tmp, name + ".expr")
            inp = os.path.join(tmp, name + ".json")
            with open(expr, "w") as f:
                f.write(text)
            with open(inp, "w") as f:
                json.dump(inputs, f)
            want_value, want_grad = forward_mode(fn, inputs)
            # every engine, with and without checkpointing (segments of 2 iterations)
            use = [e for e in engines if not only or e in only[0]]
            runs = [[e] for e in use] + [[e, "--checkpoint", "2"] for e in use]
            for run in runs:
                r = subprocess.run([args.gradc, "eval", expr, "--inputs", inp] + run,
                                   capture_output=True, text=True, timeout=120)
                label = "%s (%s)" % (name, " ".join(run).replace("--", ""))
                try:
                    out = json.loads(r.stdout)
                except ValueError:
                    print("FAIL %s: exit %d, no JSON: %s" % (label, r.returncode, r.stderr.strip()))
                    failed += 1
                    continue
                ok = close(out.get("value"), want_value) and all(
                    close(out["gradient"].get(k), want_grad[k]) for k in want_grad)
                if ok and r.returncode == 0:
                    passed += 1
                else:
                    print("FAIL %s: got %s, expected value %r gradient %r"
                          % (label, r.stdout.strip(), want_value, want_grad))
                    failed += 1
            # and against central finite differences at gradc check's random inputs
            r = subprocess.run([args.gradc, "check", expr, "--seed", "3"],
                               capture_output=True, text=True, timeout=300)
            if r.returncode == 0 and r.stdout.rstrip().endswith("ok"):
                passed += 1
            else:
                print("FAIL %s (check): exit %d: %s %s" % (name, r.returncode, r.stdout.strip(),
                                                          r.stderr.strip()))
                failed += 1
        # a while that never ends stops at the limit with a clean error at its `while`
        expr = os.path.join(tmp, "endless.expr")
        inp = os.path.join(tmp, "endless.json")
        with open(expr, "w") as f:
            f.write("input x\nb = x\n  while b > 0\n    b = b + 1\nend\ny = b\n")
        with open(inp, "w") as f:
            json.dump({"x": 1.0}, f)
        for engine in engines:
            for limit in (["--max-iter", "1000"], []):
                r = subprocess.run([args.gradc, "eval", expr, "--inputs", inp, engine] + limit,
                                   capture_output=True, text=True, timeout=120)
                label = "endless %s %s" % (engine[2:], " ".join(limit) or "(default limit)")
                if r.returncode == 1 and "endless.expr:3:3: error:" in r.stderr and not r.stdout:
                    passed += 1
                else:
                    print("FAIL %s: exit %d, stderr %r" % (label, r.returncode, r.stderr))
                    failed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
