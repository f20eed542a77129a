#!/usr/bin/env python3
"""Golden-file tests for `gradc derive` and `gradc compile --dump-plan` (standard library only).

    golden.py --gradc G [--update] [--samples DIR] derive GOLDEN_DIR
    golden.py --gradc G [--update] [--samples DIR] plan GOLDEN_DIR
    golden.py --gradc G [--update] errors GOLDEN_DIR

derive: for every SAMPLES/NAME.expr, `G derive SAMPLES/NAME.expr` must exit 0
        and print exactly GOLDEN_DIR/NAME.derive; when GOLDEN_DIR/NAME.latex
        exists, `G derive --latex` must print exactly that too, and when
        GOLDEN_DIR/NAME.hessian exists, `G derive --hessian` that (NAME.hesslatex:
        `G derive --hessian --latex`).
plan:   for every SAMPLES/NAME.expr, `G compile SAMPLES/NAME.expr --dump-plan`
        must exit 0 and print exactly GOLDEN_DIR/NAME.plan; when
        GOLDEN_DIR/NAME.hessplan exists, `G compile --hessian --dump-plan`
        that (with NAME_hessian's plan when it is a closed form).
errors: for every GOLDEN_DIR/NAME.expr, `G derive NAME.expr` run in
        GOLDEN_DIR must exit with status 1 and print exactly NAME.err on
        standard error.

--update rewrites the golden files from what gradc prints now and shows the
diff of each file it changes: a person must read every one before committing.
(To start a LaTeX golden for a sample, create an empty NAME.latex and update;
the same for NAME.hessian and NAME.hessplan.)

Prints one line per failure followed by a unified diff, then
`N passed, M failed` alone on the last line; exits 1 if anything failed.
G may be a command line ('valgrind build/gradc').
"""

import argparse
import difflib
import os
import re
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = os.path.join(os.path.dirname(HERE), "samples")
TIMEOUT = 120

# A crash, or a sanitizer report, fails a case whatever else it printed.
CRASH = re.compile(r"Sanitizer|^\S.*:\d+:\d+: runtime error: |^LLVM ERROR: |"
                   r"PLEASE submit a bug report|Assertion .* failed|"
                   r"Segmentation fault", re.M)


def command(gradc):
    """The gradc command line as a list, its program made absolute (cases run in other folders)."""
    argv = shlex.split(gradc)
    if os.sep in argv[0] and os.path.exists(argv[0]):
        argv[0] = os.path.abspath(argv[0])
    return argv


def run(argv, cwd):
    try:
        p = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, "", "timed out after %d s" % TIMEOUT
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def shown(path):
    """path relative to the current folder when it is below it, else absolute."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def diff(path, old, new):
    lines = difflib.unified_diff((old or "").splitlines(True), new.splitlines(True),
                                 path + " (golden)", path + " (gradc)")
    return "".join(l if l.endswith("\n") else l + "\n\\ No newline at end of file\n"
                   for l in lines)


class Report:
    def __init__(self, update):
        self.update = update
        self.passed = self.failed = self.updated = 0

    def fail(self, name, why, detail=""):
        self.failed += 1
        print("FAIL %s: %s" % (name, why))
        if detail:
            print(detail.rstrip("\n"))

    def compare(self, name, path, got):
        """Compare gradc's text with the golden file at path (or rewrite it)."""
        want = read(path)
        if want == got:
            self.passed += 1
        elif self.update:
            with open(path, "w", encoding="utf-8") as f:
                f.write(got)
            self.updated += 1
            print("UPDATED %s" % shown(path))
            print(diff(os.path.basename(path), want, got).rstrip("\n"))
        elif want is None:
            self.fail(name, "no golden file %s (run golden.py --update, then read it)"
                      % shown(path))
        else:
            self.fail(name, "output differs from %s" % shown(path),
                      diff(os.path.basename(path), want, got))

    def crashed(self, name, status, err):
        if status is None:
            self.fail(name, err)
        elif status < 0 or status >= 128 or CRASH.search(err):
            self.fail(name, "crashed (status %d)" % status, err)
        else:
            return False
        return True


def check_derive(gradc, samples, gdir, rep, plan=False):
    """derive mode, or (plan) `gradc compile --dump-plan` of every sample."""
    names = sorted(f[:-5] for f in os.listdir(samples) if f.endswith(".expr"))
    root = os.path.dirname(os.path.abspath(samples))
    rel = os.path.relpath(os.path.abspath(samples), root)
    exts = (".plan", ".hessplan") if plan else (".derive", ".latex", ".hessian", ".hesslatex")
    for name in names:
        src = os.path.join(rel, name + ".expr")
        variants = [(".plan", ["compile", src, "--dump-plan"])] if plan else \
            [(".derive", ["derive", src])]
        if not plan and os.path.exists(os.path.join(gdir, name + ".latex")):
            variants.append((".latex", ["derive", src, "--latex"]))
        if not plan and os.path.exists(os.path.join(gdir, name + ".hessian")):
            variants.append((".hessian", ["derive", src, "--hessian"]))
        if not plan and os.path.exists(os.path.join(gdir, name + ".hesslatex")):
            variants.append((".hesslatex", ["derive", src, "--hessian", "--latex"]))
        if plan and os.path.exists(os.path.join(gdir, name + ".hessplan")):
            variants.append((".hessplan", ["compile", src, "--hessian", "--dump-plan"]))
        for ext, args in variants:
            label = name + ext
            status, out, err = run(gradc + args, root)
            if rep.crashed(label, status, err):
                continue
            if status != 0:
                rep.fail(label, "gradc %s exited with %d" % (" ".join(args), status), err)
                continue
            rep.compare(label, os.path.join(gdir, label), out)
    # A golden whose sample is gone tests nothing: flag it so it gets removed.
    for f in sorted(os.listdir(gdir)):
        base, ext = os.path.splitext(f)
        if ext in exts and base not in names:
            rep.fail(f, "golden file without a sample %s.expr: delete it" % base)


def check_errors(gradc, gdir, rep):
    for f in sorted(os.listdir(gdir)):
        if not f.endswith(".expr"):
            continue
        name = f[:-5]
        status, _, err = run(gradc + ["derive", f], gdir)
        if rep.crashed(name, status, err):
            continue
        if status != 1:
            rep.fail(name, "exit status %d, expected 1" % status, err)
            continue
        rep.compare(name, os.path.join(gdir, name + ".err"), err)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gradc", required=True, help="the gradc executable or a command line")
    ap.add_argument("--update", action="store_true", help="rewrite the golden files")
    ap.add_argument("--samples", default=SAMPLES, help="the samples folder (derive mode)")
    ap.add_argument("mode", choices=["derive", "errors", "plan"])
    ap.add_argument("dir", help="the folder of golden files")
    a = ap.parse_args()

    gradc = command(a.gradc)
    rep = Report(a.update)
    if not os.path.isdir(a.dir):
        if not a.update:
            print("golden.py: no folder %s (run with --update to create it)" % a.dir)
            print("0 passed, 1 failed")
            return 1
        os.makedirs(a.dir)
    if a.mode in ("derive", "plan"):
        check_derive(gradc, a.samples, a.dir, rep, plan=a.mode == "plan")
    else:
        check_errors(gradc, a.dir, rep)
    if a.update:
        print("%d golden file(s) updated: read each diff above before committing" % rep.updated)
    print("%d passed, %d failed" % (rep.passed + rep.updated, rep.failed))
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
