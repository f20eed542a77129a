#!/usr/bin/env python3
"""Random well-typed .expr programs: the LLVM back end against the interpreter.

    python3 tests/randprog.py --gradc build/src/gradc [--seed S] [--count N]
                              [--out DIR] [-j 2] [-v] [--keep] [--jit-opt N]
    python3 tests/randprog.py --gradc build/src/gradc --replay DIR

Each program (random inputs of scalar, vector and matrix shapes over dimension
symbols and literal dimensions; elementwise and matrix operators, reductions,
matrix functions on diagonally dominant matrices, if/elif/else, for and
bounded while loops, detach; and the second edition's forms (spec §8):
broadcasting, reductions along a dimension, where, solve and \\, element, row,
column and slice reads, concatenation, functions with declared shapes and two
results, auxiliary outputs; a scalar output mostly, else a vector or matrix
with a random cotangent; sometimes a `wrt` subset) is

  1. derived with `gradc derive`: an error there is a bug of this generator,
     a crash or an internal error a bug of gradc;
  2. run with `gradc eval --interp` and `--jit` (and, for one in six, both
     again with `--no-grad`): they must agree entry by entry within
     1e-12 * max(1, |a|, |b|), the same NaN/Inf pattern (differential.py);
  3. when free of kinks (abs, relu, max, min, branches
     or while conditions on data), checked with `gradc check` (gradient
     against central finite differences, default tolerance).

A failing program is saved as DIR/SEED-INDEX/{prog.expr, inputs.json,
cotangent.json, reason.txt} (DIR from --out) and its path printed; `--replay`
reruns such a folder (or every folder under it).  Ends `N passed, M failed`.
Python standard library only; program I is drawn from Random(SEED, I) alone,
so a run is reproducible whatever the thread count.
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
import differential as dt  # noqa: E402  (the comparison and crash detection)

SYMS = ["n", "m", "k"]
SCALAR = (1, 1)
# The language's second edition (spec §8): broadcasting, reductions along a
# dimension, where, solve and `\\`, indexing and slices, concatenation,
# functions and auxiliary outputs (the default; --edition 1 draws
# first-edition programs only).
ED2 = True


def dstr(d):
    return str(d)


def is_scalar(s):
    return s == SCALAR


def shape_decl(s):
    """The [..] of an input declaration, '' for a scalar."""
    r, c = s
    if s == SCALAR:
        return ""
    if c == 1:
        return "[%s]" % dstr(r)
    return "[%s, %s]" % (dstr(r), dstr(c))


def p(e):
    """e parenthesised unless it is an atom (name or plain number)."""
    if e.replace("_", "").replace(".", "").isalnum():
        return e
    return "(" + e + ")"


class Gen:
    """One random program.  Every name has one shape for the whole program
    (the language allows no change), scopes follow the language's rules:
    a name first assigned in a loop body, or in only some branches of an if,
    is not visible after it."""

    def __init__(self, rng):
        self.r = rng
        self.kinks = False          # abs/relu/max/min/data-dependent branches: no fd check
        self.shapes = {}            # every name ever assigned -> shape
        self.scope = {}             # visible names -> shape (inputs included)
        self.inputs = []            # (name, shape)
        self.lines = []
        self.indent = 0
        self.nvars = 0
        self.loopvars = []          # loop indices in scope (scalars, read-only)
        self.loopvals = {}          # loop index -> its largest value
        self.funcs = []             # {"name", "params": [shape], "out": [shape]}
        self.nloop = 0
        self.budget = 0             # nodes left for the current expression
        self.wild = rng.random() < 0.15   # NaN/Inf-producing operations allowed
        # no kinks at all (conditions on indices and sizes only), so that
        # `gradc check` sees many programs with loops and branches
        self.smooth_mode = not self.wild and rng.random() < 0.4

    # ---- dimensions -------------------------------------------------------

    def pick_dims(self):
        r = self.r
        nsym = r.choice([1, 2, 2, 3])
        self.syms = SYMS[:nsym]
        # mostly 2..4; sometimes 1 (a 1×1 "vector"), sometimes 5..9 (the
        # JIT's laned loops then have remainders)
        self.symval = {s: r.choice([1] + [2, 3, 4] * 6 + [5, 6, 7, 9]) for s in self.syms}
        self.lits = [r.choice([2, 3])] if r.random() < 0.3 else []
        self.dims = self.syms + self.lits

    def dim(self):
        return self.r.choice(self.dims)

    def dimval(self, d):
        return self.symval[d] if isinstance(d, str) else d

    # ---- inputs -----------------------------------------------------------

    def make_inputs(self):
        r = self.r
        kinds = ["s", "v", "v", "M", "sq"]
        n = r.randint(2, 4)
        names = ["x", "y", "z", "w", "A", "B"]
        used_dims = set()
        for i in range(n):
            kind = r.choice(kinds)
            if kind == "s":
                s = SCALAR
            elif kind == "v":
                s = (self.dim(), 1)
            elif kind == "sq":
                d = self.dim()
                s = (d, d)
            else:
                s = (self.dim(), self.dim())
            self.inputs.append((names[i], s))
            used_dims.update(d for d in s if d != 1)
        # every symbol must be bound by an input: declare a vector for the others
        for d in self.syms:
            if d not in used_dims:
                self.inputs.append(("v_" + d, (d, 1)))
        for name, s in self.inputs:
            self.shapes[name] = s
            self.scope[name] = s

    def input_values(self, positive, like_check=False):
        """Entries in [-1, 1] or [0.5, 1.5]; like_check: as `gradc check` draws
        them (fdcheck.c: [0.5, 1.5], a square matrix plus n on its diagonal)."""
        r = self.r

        def val():
            return r.uniform(0.5, 1.5) if positive else r.uniform(-1.0, 1.0)
        out = {}
        for name, (a, b) in self.inputs:
            ra, rb = self.dimval(a), self.dimval(b)
            if (a, b) == SCALAR:
                out[name] = val()
            elif b == 1:
                out[name] = [val() for _ in range(ra)]
            else:
                out[name] = [[val() + (ra if like_check and a == b and i == j else 0)
                              for j in range(rb)] for i in range(ra)]
        return out

    def random_value(self, s):
        a, b = s
        ra, rb = self.dimval(a), self.dimval(b)
        u = lambda: self.r.uniform(-1.0, 1.0)  # noqa: E731
        if s == SCALAR:
            return u()
        if b == 1:
            return [u() for _ in range(ra)]
        return [[u() for _ in range(rb)] for _ in range(ra)]

    # ---- expressions ------------------------------------------------------

    def vars_of(self, s):
        return [v for v, t in self.scope.items() if t == s]

    def leaf(self, s):
        """A name of shape s, or a small expression over names that has it
        (so programs read their inputs rather than constants), or a constant."""
        r = self.r
        a, b = s
        names = list(self.scope.items())
        cands = [v for v, t in names if t == s] * 4
        cands += [v + "'" for v, t in names if t == (b, a) and a != b] * 2
        vecs = lambda d: [v for v, t in names if t == (d, 1) and d != 1]  # noqa: E731
        if s == SCALAR:
            cands += ["%s(%s)" % (r.choice(["sum", "mean", "norm"]), v) for v, t in names if t != SCALAR]
            cands += [r.choice(["0.5", "2", "1.5", "0.25", "3", "1e-1", ".75"])] * 2
            cands += [d for d in self.syms if r.random() < 0.3]
            cands += list(self.loopvars) * 3
        else:
            for v, t in names:
                if t[0] == a and t[1] != 1 and vecs(t[1]) and b == 1:
                    cands.append("%s * %s" % (v, r.choice(vecs(t[1]))))
                if t[1] == a and t[0] != 1 and vecs(t[0]) and b == 1:
                    cands.append("%s' * %s" % (v, r.choice(vecs(t[0]))))
                if t == (a, a) and b == 1 and a != 1:
                    cands.append("diag(%s)" % v)
            if b != 1 and vecs(a) and (vecs(b) or b == 1):
                cands.append("%s * %s'" % (r.choice(vecs(a)), r.choice(vecs(b))))
            if a == 1 and vecs(b):
                cands.append(r.choice(vecs(b)) + "'")
            scal = [v for v, t in names if t == SCALAR] + list(self.loopvars)
            if b == 1:
                const = "%s(%s)" % (r.choice(["ones", "ones", "zeros"]), dstr(a))
            elif a == 1:
                const = "ones(%s)'" % dstr(b)
            elif a == b and r.random() < 0.5:
                const = "eye(%s)" % dstr(a)
            else:
                const = "%s(%s, %s)" % (r.choice(["ones", "ones", "zeros"]), dstr(a), dstr(b))
            if scal and r.random() < 0.5:
                const = "%s * %s" % (r.choice(scal), const)
            cands.append(const)
        return r.choice(cands)

    def pos_scalar(self, depth):
        """A scalar expression bounded away from zero (a denominator)."""
        r = self.r
        c = r.randrange(5)
        if c == 0:
            return "(2 + sin(%s))" % self.tame(SCALAR, depth)
        if c == 1:
            return "(1 + %s^2)" % p(self.gen(SCALAR, depth - 1))
        if c == 2 and self.syms:
            return r.choice(self.syms)
        if c == 3:
            return "(1.5 + cos(%s))" % self.tame(SCALAR, depth)
        return r.choice(["2", "4", "0.5"])

    def bounded(self, s, depth):
        """An expression of shape s with entries in [-1, 1] or so."""
        f = self.r.choice(["tanh", "sin", "cos", "sigmoid"])
        return "%s(%s)" % (f, self.gen(s, depth - 1) if f == "tanh" else self.tame(s, depth))

    def tame(self, s, depth):
        """The argument of a function that is ill-conditioned for large
        arguments (sin, cos, tan, sigmoid, softplus, softmax, a power's base or
        exponent): an input name or literal as it is, else squashed by tanh
        (condition number <= 1).  cos(6e4) turns a rounding difference of a
        laned sum (1e-16 relative) into 1e-11, beyond 1e-12; such a program
        says nothing about the back end."""
        e = self.gen(s, depth - 1)
        inputs = {n for n, _ in self.inputs}
        if e in inputs or e.replace(".", "").replace("e-", "").isdigit():
            return e
        return "tanh(%s)" % e

    def wellcond(self, d, depth):
        """A strictly diagonally dominant d×d matrix: |off-diagonal| < 1, diagonal >= d."""
        r = self.r
        dd = dstr(d)
        if self.wild and r.random() < 0.4:
            # exactly singular (LU meets a zero pivot: NaN, -Infinity) or det < 0
            # for odd d; never nearly singular, where inv is rounding noise
            return r.choice(["(%s * ones(%s, %s))" % (p(self.leaf(SCALAR)), dd, dd),
                             "(-%s)" % self.wellcond(d, depth)])
        base = "%s(%s)" % (r.choice(["tanh", "sin", "cos"]), self.tame((d, d), depth))
        if r.random() < 0.5 and isinstance(d, str):
            return "(%s + (%s + 1) * eye(%s))" % (base, dd, dd)
        return "(%s + %d * eye(%s))" % (base, self.dimval(d) + 1, dd)

    def anyshape(self):
        r = self.r
        c = r.randrange(4)
        if c == 0:
            return SCALAR
        if c == 1:
            return (self.dim(), 1) if r.random() < 0.9 else (1, self.dim())
        d = self.dim()
        return (d, d) if c == 2 else (d, self.dim())

    def gen(self, s, depth):
        self.budget -= 1
        if depth <= 0 or self.budget <= 0 or self.r.random() < 0.25:
            return self.leaf(s)
        r = self.r
        a, b = s
        opts = []   # (weight, producer)
        S = lambda: self.gen(s, depth - 1)  # noqa: E731
        sc = lambda: self.gen(SCALAR, depth - 1)  # noqa: E731

        opts.append((4, lambda: "%s %s %s" % (S(), r.choice("+-"), p(S()))))
        opts.append((3, lambda: "%s .* %s" % (p(S()), p(S()))))
        opts.append((2, lambda: "-%s" % p(S())))
        opts.append((2, lambda: "%s / %s" % (p(S()), self.pos_scalar(depth))))
        opts.append((2, lambda: "%s ./ (1 + %s .^ 2)" % (p(S()), p(S()))))
        opts.append((1, lambda: "%s ./ (2 + cos(%s))" % (p(S()), self.tame(s, depth))))
        opts.append((2, lambda: "%s .^ %s" % (p(S()), r.choice(["2", "3"]))))
        opts.append((1, lambda: "(1 + %s .^ 2) .^ %s" % (p(S()), r.choice(["0.5", "1.5", "-0.5"]))))
        # exponents bounded, so that powers stay moderate (values near 1e20 make the
        # finite differences of `gradc check` pure rounding noise)
        opts.append((1, lambda: "sigmoid(%s) .^ %s" % (self.tame(s, depth), self.bounded(r.choice([s, SCALAR]), depth))))
        opts.append((6, lambda: self.unary(s, depth)))
        opts.append((2, lambda: self.minmax(s, depth)))
        opts.append((1, lambda: "detach(%s)" % S()))
        opts.append((4, lambda: self.matmul(s, depth)))
        if a != b:
            opts.append((2, lambda: "%s'" % p(self.gen((b, a), depth - 1))))
        else:
            opts.append((1, lambda: "%s'" % p(S())))
        if not is_scalar(s):
            opts.append((3, lambda: "%s * %s" % (p(sc()), p(S()))))
            opts.append((2, lambda: "%s %s %s" % (p(S()), r.choice(["+", "-", ".*"]), p(sc()))))
            opts.append((1, lambda: "%s %s %s" % (p(sc()), r.choice(["+", "-", ".*"]), p(S()))))
        if a == b and not is_scalar(s):
            opts.append((2, lambda: "inv(%s)" % self.wellcond(a, depth)))
            opts.append((1, lambda: "%s * inv(%s)" % (p(S()), self.wellcond(a, depth))))
            opts.append((1, lambda: "diag(%s)" % self.gen((a, 1), depth - 1)))
        if b == 1 and a != 1:
            opts.append((1, lambda: "softmax(%s)" % self.tame(s, depth)))
            opts.append((1, lambda: "diag(%s)" % self.gen((a, a), depth - 1)))
        if ED2:
            opts += self.ed2_options(s, depth)
        if is_scalar(s):
            opts.append((8, lambda: self.reduction(depth)))
            opts.append((1, lambda: "%s ^ %s" % (p(sc()), r.choice(["2", "3"]))))
            opts.append((1, lambda: "(1 + %s ^ 2) ^ %s" % (p(sc()), r.choice(["0.5", "-1", "0.25"]))))
            opts.append((1, lambda: "(2 + sin(%s)) ^ %s" % (self.tame(SCALAR, depth), self.bounded(SCALAR, depth))))
        tot = sum(w for w, _ in opts)
        x = r.uniform(0, tot)
        for w, f in opts:
            x -= w
            if x <= 0:
                return f()
        return opts[-1][1]()

    def unary(self, s, depth):
        r = self.r
        e = lambda: self.gen(s, depth - 1)  # noqa: E731
        if self.wild and r.random() < 0.4:
            # outside the domains: NaN and infinities, which both engines must
            # produce at the same entries
            f = r.choice(["log(%s)", "sqrt(%s)", "1 ./ %s", "exp(%s)", "tan(%s)", "log1p(%s)",
                          "%s .^ 0.5", "%s .^ -1", "(%s ./ 0)"])
            return f % p(e())
        c = r.randrange(20)
        if self.smooth_mode and c in (3, 4, 5, 19):
            c = 9
        if c == 16:   # spec §8's functions, their arguments tamed against overflow
            f = r.choice(["expm1", "atan", "sinh", "cosh", "erf", "erfc", "logsigmoid"])
            return "%s(%s)" % (f, self.tame(s, depth))
        if c == 17:   # asin, acos inside (-1, 1)
            return "%s(0.9 * %s)" % (r.choice(["asin", "acos"]), self.bounded(s, depth))
        if c == 18:   # lgamma, digamma, trigamma on positive arguments
            f = r.choice(["lgamma(%s)", "digamma(%s)", "polygamma(1, %s)"])
            return f % ("(0.5 + %s)" % self.bounded_pos(s, depth))
        if c == 19:
            self.kinks = True
            return r.choice(["clamp(%s, -0.5, pi/4)", "sign(%s)"]) % e()
        if c == 15:
            return "tan(sin(%s))" % self.tame(s, depth)
        if c == 0:
            return "exp(%s)" % self.bounded(s, depth)
        if c == 1:
            return "log(1 + %s .^ 2)" % p(e())
        if c == 2:
            x = self.leaf(s)
            return "log(exp(%s))" % x
        if c == 3:
            self.kinks = True
            return "sqrt(abs(%s) + 1)" % e()
        if c == 4:
            self.kinks = True
            return "abs(%s)" % e()
        if c == 5:
            self.kinks = True
            return "relu(%s)" % e()
        if c == 6:
            return "log1p(%s .^ 2)" % p(e())
        if c == 7:
            return "sqrt(1 + %s .^ 2)" % p(e())
        if c == 8:
            return "log(%s)" % self.bounded_pos(s, depth)
        f = r.choice(["sin", "cos", "tanh", "sigmoid", "softplus", "tanh"])
        return "%s(%s)" % (f, e() if f == "tanh" else self.tame(s, depth))

    def bounded_pos(self, s, depth):
        return r_choice(self.r, ["sigmoid(%s)", "(2 + sin(%s))", "exp(%s)", "softplus(%s)"]) \
            % self.tame(s, depth)

    def minmax(self, s, depth):
        if self.smooth_mode:
            return self.unary(s, depth)
        self.kinks = True
        f = self.r.choice(["max", "min"])
        other = s if self.r.random() < 0.7 else SCALAR
        args = [self.gen(s, depth - 1), self.gen(other, depth - 1)]
        self.r.shuffle(args)
        return "%s(%s, %s)" % (f, args[0], args[1])

    def matmul(self, s, depth):
        a, b = s
        k = self.r.choice(self.dims + [1]) if not is_scalar(s) else self.dim()
        left = self.gen((a, k), depth - 1)
        right = self.gen((k, b), depth - 1)
        # a matrix product of two O(1) operands grows by the inner size: scale it down
        if k != 1 and self.r.random() < 0.5:
            return "%s * %s / %s" % (p(left), p(right), dstr(k))
        return "%s * %s" % (p(left), p(right))

    def reduction(self, depth):
        r = self.r
        c = r.randrange(11)
        t = self.anyshape()
        if c in (0, 1):
            return "%s(%s)" % (r.choice(["sum", "mean"]), self.gen(t, depth - 1))
        if c == 2:
            return "norm(%s)" % self.gen(t, depth - 1)
        if c == 3:
            return "dot(%s, %s)" % (self.gen(t, depth - 1), self.gen(t, depth - 1))
        if c == 4:
            d = self.dim()
            return "trace(%s)" % self.gen((d, d), depth - 1)
        if c in (5, 6):
            d = self.dim()
            return "%s(%s)" % (r.choice(["det", "logdet"]), self.wellcond(d, depth))
        if c == 7:
            return "logsumexp(%s)" % self.gen(t, depth - 1)
        if c == 8:
            d = self.dim()
            return "%s' * %s" % (p(self.gen((d, 1), depth - 1)), p(self.gen((d, 1), depth - 1)))
        if c == 9:
            d = self.dim()
            return "%s' * %s * %s" % (p(self.gen((d, 1), depth - 1)), p(self.gen((d, d), depth - 1)),
                                     p(self.gen((d, 1), depth - 1)))
        if ED2 and c == 10 and r.random() < 0.6:
            return self.ed2_reduction(depth)
        d = self.dim()
        return "sum(softmax(%s) .* %s)" % (self.tame((d, 1), depth), p(self.gen((d, 1), depth - 1)))

    # ---- second edition (spec §8) ------------------------------------------

    def ed2_options(self, s, depth):
        """(weight, producer) pairs of the second edition's forms of shape s."""
        r = self.r
        a, b = s
        S = lambda: self.gen(s, depth - 1)  # noqa: E731
        op = lambda: r.choice(["+", "-", ".*"])  # noqa: E731
        opts = []
        if a != 1 and b != 1:
            # broadcasting: a row down the rows, a column across the columns, an outer form
            opts.append((2, lambda: "%s %s %s'" % (p(S()), op(), p(self.gen((b, 1), depth - 1)))))
            opts.append((2, lambda: "%s %s %s" % (p(self.gen((a, 1), depth - 1)), op(), p(S()))))
            opts.append((1, lambda: "%s - %s'" % (p(self.gen((a, 1), depth - 1)), p(self.gen((b, 1), depth - 1)))))
            opts.append((1, lambda: "%s(%s, %d)" % (r.choice(["softmax", "log_softmax"]),
                                                    self.tame(s, depth), r.choice([1, 2]))))
        if b == 1 and a != 1:
            opts.append((2, lambda: self.dim_reduce(a, 2, depth)))
            opts.append((1, lambda: "%s(%s)" % (r.choice(["softmax", "log_softmax"]), self.tame(s, depth))))
        if a == 1 and b != 1:
            opts.append((1, lambda: self.dim_reduce(b, 1, depth)))
        if a != 1:
            opts.append((2, lambda: "solve(%s, %s)" % (self.wellcond(a, depth), S())))
            opts.append((1, lambda: "%s \\ %s" % (self.wellcond(a, depth), p(S()))))
        opts.append((2, lambda: self.where(s, depth)))
        idx = self.index_forms(s)
        if idx:
            opts.append((3, lambda: r.choice(idx)))
        calls = [f for f in self.funcs if f["out"] == [s] and self.callable(f)]
        if calls:
            opts.append((3, lambda: self.call(r.choice(calls), depth)))
        return opts

    def dim_reduce(self, n, d, depth):
        """A reduction along dimension d whose result has n entries."""
        r = self.r
        k = self.dim()
        arg = (n, k) if d == 2 else (k, n)
        fs = ["sum", "mean", "logsumexp"] + ([] if self.smooth_mode else ["amax", "amin"])
        f = r.choice(fs)
        if f in ("amax", "amin"):
            self.kinks = True
        e = self.tame(arg, depth) if f == "logsumexp" else self.gen(arg, depth - 1)
        return "%s(%s, %d)" % (f, e, d)

    def where(self, s, depth):
        """where(c, a, b) with a condition on data (a kink) or, in smooth mode,
        on a loop index or a size; the operands may broadcast."""
        r = self.r
        S = lambda: self.gen(s, depth - 1)  # noqa: E731
        if self.smooth_mode and (self.loopvars or self.syms):
            x = r.choice(self.loopvars + self.syms)
            c = "%s %s %d" % (x, r.choice(["<", "<=", ">", ">=", "==", "!="]), r.randint(1, 4))
        else:
            self.kinks = True
            self.budget = max(self.budget, 4)
            c = "%s %s %s" % (self.gen(s, 1), r.choice(["<", ">", "<=", ">="]),
                              self.gen(r.choice([s, SCALAR]), 1))
            if r.random() < 0.25:
                c = "%s %s %s" % (c, r.choice(["and", "or"]), "%s > %s" % (self.gen(SCALAR, 1), r.choice(["0", "0.5"])))
            elif r.random() < 0.15:
                c = "not (%s)" % c
            if self.wild and r.random() < 0.5:
                # the side not taken may be NaN: it must contribute nothing
                x = self.leaf(s)
                return "where(%s > 0, sqrt(%s), %s)" % (x, x, S())
        other = S() if r.random() < 0.8 else self.gen(SCALAR, depth - 1)
        args = [S(), other]
        r.shuffle(args)
        return "where(%s, %s, %s)" % (c, args[0], args[1])

    def index_of(self, d):
        """Indices that are in range for a dimension d: 1, the last (the
        symbol or literal itself), a loop index whose loop stays inside d."""
        out = ["1", dstr(d)]
        for iv in self.loopvars:
            if self.loopvals[iv] <= self.dimval(d):
                out += [iv] * 2
        return out

    def index_forms(self, s):
        """Element, row, column and slice reads of names in scope with shape s."""
        r = self.r
        a, b = s
        out = []
        for v, t in self.scope.items():
            ta, tb = t
            if t == SCALAR or any(isinstance(d, str) and d not in self.dims for d in t):
                continue   # a function's undeclared parameter: its symbols are not nameable here
            if s == SCALAR:
                if tb == 1:
                    out.append("%s[%s]" % (v, r.choice(self.index_of(ta))))
                elif ta == 1:
                    out.append("%s[1, %s]" % (v, r.choice(self.index_of(tb))))
                else:
                    out.append("%s[%s, %s]" % (v, r.choice(self.index_of(ta)), r.choice(self.index_of(tb))))
            elif b == 1:
                if ta == a and tb != 1:
                    out.append("%s[:, %s]" % (v, r.choice(self.index_of(tb))))
                if tb == a and ta != 1:
                    out.append("%s[%s, :]'" % (v, r.choice(self.index_of(ta))))
                if t == s:
                    out.append("%s[1:%s]" % (v, dstr(a)))
            elif a == 1:
                if tb == b and ta != 1:
                    out.append("%s[%s, :]" % (v, r.choice(self.index_of(ta))))
            elif t == s:
                out.append("%s[1:%s, :]" % (v, dstr(a)))
        return out

    def ed2_reduction(self, depth):
        """A scalar from slices whose lengths are forms (n - 1) or from a
        concatenation (n + m)."""
        r = self.r
        c = r.randrange(4)
        vecs = [(v, t[0]) for v, t in self.scope.items()
                if t[1] == 1 and t[0] != 1 and self.dimval(t[0]) >= 2]
        if c == 0 and vecs:
            v, d = r.choice(vecs)
            dd = dstr(d)
            return "sum((%s[2:%s] - %s[1:%s-1]) .^ 2)" % (v, dd, v, dd)
        if c == 1 and vecs:
            v, d = r.choice(vecs)
            dd = dstr(d)
            return "dot(%s[2:%s], %s)" % (v, dd, p(self.gen((d, 1), depth - 1)) + "[1:%s-1]" % dd
                                          if False else "%s[1:%s-1]" % (v, dd))
        if c == 2:
            d1, d2 = self.dim(), self.dim()
            x, y = self.gen((d1, 1), depth - 1), self.gen((d2, 1), depth - 1)
            u, w = self.gen((d1, 1), depth - 1), self.gen((d2, 1), depth - 1)
            return "dot([%s; %s], [%s; %s])" % (x, y, u, w)
        d, k1, k2 = self.dim(), self.dim(), self.dim()
        return "sum([%s, %s] .^ 2)" % (self.gen((d, k1), depth - 1), self.gen((d, k2), depth - 1))

    # ---- functions (spec §8) -----------------------------------------------

    def make_function(self, k):
        """A function of 1 to 3 parameters (non-scalars declare their shapes
        most of the time; the body may use the symbols declared) with one or
        two results; its body is generated in a scope of its parameters only."""
        r = self.r
        params = [("u%d" % (i + 1), self.anyshape()) for i in range(r.randint(1, 3))]
        declared = [t != SCALAR and r.random() < 0.8 for _, t in params]
        usable = {d for (_, t), dec in zip(params, declared) if dec for d in t if isinstance(d, str)}
        saved = (self.scope, self.shapes, self.lines, self.indent, self.syms, self.dims,
                 self.loopvars, self.loopvals)
        self.scope = {v: t for v, t in params}
        self.shapes = dict(self.scope)
        self.lines = []
        self.indent = 1
        self.syms = [d for d in saved[4] if d in usable]
        self.dims = self.syms + (self.lits or ([] if self.syms else [2]))
        self.loopvars, self.loopvals = [], {}
        self.block(r.randint(1, 2), r.choice([0, 1]), False)
        outs, shapes = [], []
        for j in range(2 if r.random() < 0.3 else 1):
            t = self.anyshape()
            # an undeclared parameter's symbols are not the function's: keep
            # results in the shapes the body can name
            self.budget = 8
            self.emit("y%d = %s" % (j + 1, self.gen(t, r.randint(1, 2))))
            outs.append("y%d" % (j + 1))
            shapes.append(t)
        body = self.lines
        (self.scope, self.shapes, self.lines, self.indent, self.syms, self.dims,
         self.loopvars, self.loopvals) = saved
        name = "f%d" % k
        head = outs[0] if len(outs) == 1 else "[%s]" % ", ".join(outs)
        args = ", ".join(v + (shape_decl(t) if dec else "") for (v, t), dec in zip(params, declared))
        self.emit("function %s = %s(%s)" % (head, name, args))
        self.lines += body
        self.emit("end")
        self.funcs.append({"name": name, "params": [t for _, t in params], "out": shapes})

    def callable(self, f):
        """Whether f's shapes use only dimensions this scope may name (a
        body names only the symbols its parameters declare)."""
        return all(d == 1 or d in self.dims for t in f["params"] + f["out"] for d in t)

    def call(self, f, depth):
        return "%s(%s)" % (f["name"], ", ".join(self.gen(t, depth - 1) for t in f["params"]))

    def expr(self, s, depth=None, budget=9):
        self.budget = budget
        return self.gen(s, depth if depth is not None else self.r.randint(1, 3))

    # ---- statements -------------------------------------------------------

    def emit(self, line):
        self.lines.append("    " * self.indent + line)

    def new_var(self, s):
        self.nvars += 1
        name = "t%d" % self.nvars
        self.shapes[name] = s
        return name

    def assignable(self):
        """Names an assignment may overwrite: not inputs, not while counters
        (the counter is what bounds its loop)."""
        inputs = {n for n, _ in self.inputs}
        return [v for v in self.scope if v not in inputs and not v.startswith(("c", "u"))]

    def assign(self, in_loop):
        r = self.r
        multi = [f for f in self.funcs if len(f["out"]) > 1 and self.callable(f)]
        if multi and r.random() < 0.2:
            f = r.choice(multi)
            self.budget = 8
            call = self.call(f, 2)
            names = [self.new_var(t) for t in f["out"]]
            self.emit("[%s] = %s" % (", ".join(names), call))
            for v, t in zip(names, f["out"]):
                self.scope[v] = t
            return
        old = self.assignable()
        if old and r.random() < (0.6 if in_loop else 0.3):
            v = r.choice(old)
            s = self.shapes[v]
            if in_loop:
                # keep a loop-carried value bounded over the iterations
                e = "0.5 * %s + 0.5 * %s" % (v, self.bounded(s, r.randint(1, 3)))
                self.budget = 10
            else:
                e = self.expr(s)
        else:
            s = self.anyshape()
            e = self.expr(s)
            v = self.new_var(s)
        self.emit("%s = %s" % (v, e))
        self.scope[v] = s

    def cond(self, depth=0):
        """A scalar condition; structural ones (on indices and sizes only) keep it smooth."""
        r = self.r
        c = r.randrange(6)
        if c == 0 and depth < 1:
            return "%s %s %s" % (self.cond(depth + 1), r.choice(["and", "or"]), self.cond(depth + 1))
        if c == 1 and depth < 1:
            return "not (%s)" % self.cond(depth + 1)
        if (c == 2 or self.smooth_mode) and (self.loopvars or self.syms):
            x = r.choice(self.loopvars + self.syms)
            return "%s %s %d" % (x, r.choice(["<", "<=", ">", ">=", "==", "!="]), r.randint(1, 4))
        self.kinks = True
        op = r.choice(["<", "<=", ">", ">=", "==", "!="] if r.random() < 0.1 else ["<", ">", "<=", ">="])
        self.budget = 6
        return "%s %s %s" % (self.gen(SCALAR, 2), op, self.gen(SCALAR, 1))

    def block(self, n, depth, in_loop):
        """n statements; returns the names assigned (new or not) in it."""
        before = dict(self.scope)
        for _ in range(n):
            c = self.r.random()
            if depth > 0 and c < 0.15:
                self.if_stmt(depth, in_loop)
            elif depth > 0 and c < 0.27:
                self.for_stmt(depth)
            elif depth > 0 and c < 0.33:
                self.while_stmt(depth)
            else:
                self.assign(in_loop)
        return before

    def if_stmt(self, depth, in_loop):
        r = self.r
        before = dict(self.scope)
        nbr = r.choice([1, 2, 2, 3])
        has_else = r.random() < 0.7
        assigned = []
        for i in range(nbr):
            self.scope = dict(before)
            self.emit(("if " if i == 0 else "elif ") + self.cond())
            self.indent += 1
            self.scope = dict(before)
            self.block(r.randint(1, 3), depth - 1, in_loop)
            assigned.append(set(self.scope))
            self.indent -= 1
        if has_else:
            self.emit("else")
            self.indent += 1
            self.scope = dict(before)
            self.block(r.randint(1, 2), depth - 1, in_loop)
            assigned.append(set(self.scope))
            self.indent -= 1
        self.emit("end")
        # visible after: what was visible before, and new names assigned on every path
        self.scope = dict(before)
        if has_else:
            for v in set.intersection(*assigned) - set(before):
                self.scope[v] = self.shapes[v]

    def for_stmt(self, depth):
        r = self.r
        before = dict(self.scope)
        iv = ["i", "j", "l"][len(self.loopvars)] if len(self.loopvars) < 3 else None
        if iv is None:
            return self.assign(True)
        bound = r.choice(self.syms + ["2", "3", "4"])
        self.emit("for %s in 1:%s" % (iv, bound))
        self.indent += 1
        self.loopvars.append(iv)
        self.loopvals[iv] = self.dimval(bound) if bound in self.syms else int(bound)
        self.block(r.randint(1, 3), depth - 1, True)
        self.loopvars.pop()
        self.indent -= 1
        self.emit("end")
        self.scope = before

    def while_stmt(self, depth):
        r = self.r
        self.nloop += 1
        c = "c%d" % self.nloop
        self.shapes[c] = SCALAR
        self.emit("%s = 0" % c)
        self.scope[c] = SCALAR
        before = dict(self.scope)
        k = r.choice([1, 2, 3, 4, 4, 4, 50, 300])   # long loops: the tape grows
        guard = "%s < %d" % (c, k)
        if r.random() < 0.5 and not self.smooth_mode:
            self.kinks = True
            self.budget = 6
            extra = "%s %s %s" % (self.gen(SCALAR, 2), r.choice(["<", ">"]), r.choice(["0", "1", "0.5", "-1"]))
            guard = "%s and %s" % (guard, extra) if r.random() < 0.5 else "%s and (%s)" % (extra, guard)
        self.emit("while " + guard)
        self.indent += 1
        self.emit("%s = %s + 1" % (c, c))
        self.block(r.randint(1, 3), depth - 1, True)
        self.indent -= 1
        self.emit("end")
        self.scope = before

    def program(self):
        r = self.r
        self.pick_dims()
        self.make_inputs()
        self.positive = r.random() < 0.4
        self.emit("# randprog")
        if ED2 and r.random() < 0.35:
            for k in range(r.randint(1, 2)):
                self.make_function(k + 1)
        for name, s in self.inputs:
            self.emit("input %s%s" % (name, shape_decl(s)))
        self.block(r.randint(2, 5), r.choice([0, 1, 2, 2, 3]), False)
        # the output: mostly a scalar that depends on many of the names in scope
        vis = [v for v in self.scope]
        r.shuffle(vis)
        if r.random() < 0.75:
            self.out_shape = SCALAR
            terms = []
            for v in vis[:r.randint(1, 4)]:
                s = self.scope[v]
                if s == SCALAR:
                    terms.append(v)
                else:
                    terms.append("%s(%s)" % (r.choice(["sum", "mean", "norm", "logsumexp"]), v))
            # products too: the gradient of a product reads the other factor's
            # value, e.g. a loop-carried name after its loop
            e = terms[0]
            for t in terms[1:]:
                e = "%s %s %s" % (e, r.choice(["+", "+", "*", "-"]), t)
            if r.random() < 0.5:
                e = "%s * %s" % (p(self.expr(SCALAR, 2, 6)), p(e))
        else:
            cands = [v for v in vis if self.scope[v] != SCALAR]
            s = self.scope[cands[0]] if cands else self.anyshape()
            self.out_shape = s
            e = self.expr(s, 3)
            for v in [v for v in vis if self.scope[v] == s][:2]:
                e = "%s + %s" % (e, v)
        out = self.new_var(self.out_shape)
        self.emit("%s = %s" % (out, e))
        aux = [v for v in vis if v not in dict(self.inputs) and v != out]
        if ED2 and aux and r.random() < 0.25:
            self.emit("output %s" % ", ".join([out] + aux[:r.randint(1, 2)]))
        elif r.random() < 0.3:
            self.emit("output %s" % out)
        if r.random() < 0.35:
            names = [n for n, _ in self.inputs]
            sub = r.sample(names, r.randint(1, len(names)))
            self.emit("wrt " + ", ".join(sub))
        text = "\n".join(self.lines) + "\n"
        inputs = self.input_values(self.positive)
        cot = None if self.out_shape == SCALAR or r.random() < 0.2 else self.random_value(self.out_shape)
        dims = ",".join("%s=%d" % (d, self.symval[d]) for d in self.syms)
        self.check_inputs = self.input_values(True, like_check=True)
        return text, inputs, cot, dims, not self.kinks and not self.wild


def r_choice(rng, xs):
    return rng.choice(xs)


# ---- running one program -------------------------------------------------

def test_files(gradc, d, dims, smooth, do_nograd, do_check):
    """Failure messages for the program in folder d (prog.expr, inputs.json,
    optional cotangent.json); empty when it passes."""
    expr = os.path.join(d, "prog.expr")
    inputs = os.path.join(d, "inputs.json")
    cot = os.path.join(d, "cotangent.json")
    cot = cot if os.path.exists(cot) else None
    rc, out, err = dt.run([gradc, "derive", expr])
    why = dt.crash_reason(rc, err)
    if why:
        return ["derive: COMPILER BUG: " + why]
    if rc != 0:
        return ["derive: GENERATOR BUG (program rejected): " + dt.first_line(err)]
    fails = []
    for grad in ([True, False] if do_nograd else [True]):
        tag = "" if grad else "--no-grad: "
        ri, ei = dt.eval_json(gradc, expr, inputs, cot, "interp", grad)
        rj, ej = dt.eval_json(gradc, expr, inputs, cot, "jit", grad)
        if ei or ej:
            fails += [tag + e for e in (ei, ej) if e]
            continue
        fails += [tag + m for m in dt.compare_results(ri, rj)]
    if do_check and smooth and not fails and moderate(gradc, expr, d):
        cmd = [gradc, "check", expr] + (["--dims", dims] if dims else [])
        rc, out, err = dt.run(cmd)
        why = dt.crash_reason(rc, err)
        if why:
            fails.append("check: " + why)
        elif rc != 0 and "\nNOT CHECKED: the gradient and the differences are all zero" not in out:
            # (an output that does not depend on the wrt inputs has nothing to check)
            fails.append("check: " + " | ".join((out + err).strip().splitlines()[-4:]))
    return fails


def moderate(gradc, expr, d):
    """Whether the output stays below 1e3 at inputs like `gradc check`'s.  Above,
    central differences with h = 1e-6 carry rounding noise near 1e-10 |F|, and
    the default tolerance 1e-6 (relative to max(1, |fd|)) fails on noise alone."""
    ci = os.path.join(d, "checkinputs.json")
    if not os.path.exists(ci):
        return True
    res, err = dt.eval_json(gradc, expr, ci, None, "interp", False)
    if err:
        return True   # let `gradc check` meet the problem and report it
    return all(isinstance(v, (int, float)) and abs(v) <= 1e3 for _, v in dt.flat(res["value"], ""))


def write_case(d, text, inputs, cot, meta, check_inputs=None):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "prog.expr"), "w") as f:
        f.write(text)
    with open(os.path.join(d, "inputs.json"), "w") as f:
        json.dump(inputs, f)
    if cot is not None:
        with open(os.path.join(d, "cotangent.json"), "w") as f:
            json.dump(cot, f)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f)
    if check_inputs is not None:
        with open(os.path.join(d, "checkinputs.json"), "w") as f:
            json.dump(check_inputs, f)


def one(args, gradc, tmp, i):
    rng = random.Random("%d-%d" % (args.seed, i))
    g = Gen(rng)
    text, inputs, cot, dims, smooth = g.program()
    meta = {"seed": args.seed, "index": i, "dims": dims, "smooth": smooth}
    d = os.path.join(tmp, "%d-%d" % (args.seed, i))
    write_case(d, text, inputs, cot, meta, g.check_inputs)
    fails = test_files(gradc, d, dims, smooth, i % 6 == 0, True)
    if fails:
        dest = os.path.join(args.out, os.path.basename(d))
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(d, dest)
        with open(os.path.join(dest, "reason.txt"), "w") as f:
            f.write("\n".join(fails) + "\n")
        return "FAIL %s: %s" % (dest, "\n     ".join(fails)), text
    if not args.keep:
        shutil.rmtree(d, ignore_errors=True)
    return None, text


def replay(args, gradc):
    dirs = [args.replay] if os.path.exists(os.path.join(args.replay, "prog.expr")) else \
        sorted(os.path.join(args.replay, x) for x in os.listdir(args.replay)
               if os.path.exists(os.path.join(args.replay, x, "prog.expr")))
    failed = 0
    for d in dirs:
        meta = {}
        if os.path.exists(os.path.join(d, "meta.json")):
            with open(os.path.join(d, "meta.json")) as f:
                meta = json.load(f)
        fails = test_files(gradc, d, meta.get("dims", ""), meta.get("smooth", False), True, True)
        if fails:
            failed += 1
            print("FAIL %s: %s" % (d, "\n     ".join(fails)))
        else:
            print("ok   %s" % d)
    print("%d passed, %d failed" % (len(dirs) - failed, failed))
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gradc", required=True)
    ap.add_argument("--seed", type=int, default=20240)
    ap.add_argument("--count", type=int, default=250)
    ap.add_argument("--out", default="randprog-failures", help="where failing programs are saved")
    ap.add_argument("--replay", help="rerun a saved failure folder (or a folder of them)")
    ap.add_argument("--print", type=int, metavar="I", help="print program I of --seed and exit")
    ap.add_argument("--keep", action="store_true", help="keep passing programs in the temp folder")
    ap.add_argument("--edition", type=int, choices=[1, 2], default=2,
                    help="1: first-edition programs only; 2 (default): spec §8's forms too")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--jit-opt", type=int, choices=[0, 1, 2, 3], help="the JIT's -O level (default eval's)")
    args = ap.parse_args()
    gradc = os.path.abspath(args.gradc)
    dt.set_jit_opt(args.jit_opt)
    global ED2
    ED2 = args.edition == 2
    if args.replay:
        return replay(args, gradc)
    if args.print is not None:
        text, inputs, cot, dims, smooth = Gen(random.Random("%d-%d" % (args.seed, args.print))).program()
        print(text + "# inputs: %s\n# cotangent: %s\n# dims %s, smooth %s" % (
            json.dumps(inputs), json.dumps(cot), dims, smooth))
        return 0
    args.out = os.path.abspath(args.out)
    tmp = tempfile.mkdtemp(prefix="gradc-randprog-")
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda i: one(args, gradc, tmp, i), range(args.count)))
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("programs kept in %s" % tmp)
    failed = 0
    for i, (msg, text) in enumerate(results):
        if msg:
            failed += 1
            print(msg)
        elif args.verbose:
            print("ok   %d-%d" % (args.seed, i))
    print("%d passed, %d failed" % (args.count - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
