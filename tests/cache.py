#!/usr/bin/env python3
"""The JIT's object cache (src/cache.c): every case runs `gradc eval` with
XDG_CACHE_HOME in a fresh temporary directory and GRADC_CACHE_TRACE=1, so
that stderr says what the cache did (miss / hit / corrupt / stored / not
stored / off).

    python3 tests/cache.py --gradc build/src/gradc --samples samples

Cases: a hit prints exactly what an uncached run prints; corrupt and
truncated entries are recompiled and rewritten; concurrent runs on an empty
cache all succeed and leave one whole entry; an unwritable cache directory
is never fatal; GRADC_NO_CACHE=1 writes nothing; the key covers --max-iter, --no-grad, -O and
the gradc executable;
a relative XDG_CACHE_HOME is ignored for $HOME/.cache.
Prints one line per failure, then `N passed, M failed`.
"""

import argparse
import os
import subprocess
import sys
import tempfile

failures = []
passed = 0


def check(cond, what):
    global passed
    if cond:
        passed += 1
    else:
        failures.append(what)
        print("FAIL:", what, flush=True)


class Cache:
    """A temporary XDG_CACHE_HOME and `gradc eval` of one sample under it."""

    def __init__(self, args, sample, home=None):
        self.tmp = tempfile.TemporaryDirectory(prefix="gradc-cache-")
        self.xdg = os.path.join(self.tmp.name, "xdg")
        self.dir = os.path.join(self.xdg, "gradc")
        self.cmd = [args.gradc, "eval", os.path.join(args.samples, sample + ".expr"),
                    "--inputs", os.path.join(args.samples, sample + ".inputs.json")]
        self.env = dict(os.environ, XDG_CACHE_HOME=self.xdg, GRADC_CACHE_TRACE="1")
        self.env.pop("GRADC_NO_CACHE", None)

    def run(self, *extra, **env):
        p = subprocess.run(self.cmd + list(extra), env=dict(self.env, **env),
                           capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout, p.stderr

    def entries(self):
        if not os.path.isdir(self.dir):
            return []
        return sorted(os.path.join(self.dir, f) for f in os.listdir(self.dir))


def trace(err):
    """The cache events on stderr, in order."""
    return [line.split(": ", 2)[2].rsplit(" ", 1)[0] for line in err.splitlines()
            if line.startswith("gradc: cache: ")]


def uncached(c, *extra):
    rc, out, err = c.run(*extra, GRADC_NO_CACHE="1")
    assert rc == 0 and trace(err) == ["off"], (rc, err)
    return out


def test_hit(args):
    for sample in ["mlp", "d2l_control_flow", "softmax_xent"]:
        c = Cache(args, sample)
        want = uncached(c)
        check(c.entries() == [], f"{sample}: GRADC_NO_CACHE=1 wrote {c.entries()}")
        rc1, out1, err1 = c.run()
        rc2, out2, err2 = c.run()
        check(rc1 == 0 and trace(err1) == ["miss", "stored"], f"{sample}: first run: {err1!r}")
        check(rc2 == 0 and trace(err2) == ["hit"], f"{sample}: second run: {err2!r}")
        check(out1 == want and out2 == want, f"{sample}: cached output differs:\n{want}\n{out1}\n{out2}")
        files = c.entries()
        check(len(files) == 1 and files[0].endswith(".o"), f"{sample}: entries {files}")


def corruptions(good):
    """Ways an entry can be damaged: (name, bytes)."""
    n = len(good)
    flip = lambda i: good[:i] + bytes([good[i] ^ 0x40]) + good[i + 1:]
    return [("empty", b""), ("header only", good[:40]), ("truncated", good[:n // 2]),
            ("one byte short", good[:-1]), ("one byte more", good + b"\0"),
            ("magic", flip(0)), ("length", flip(8)), ("key", flip(20)), ("checksum", flip(60)),
            ("payload", flip(n // 2)), ("last byte", flip(n - 1))]


def test_corrupt(args):
    c = Cache(args, "quadratic_form")
    want = uncached(c)
    c.run()
    [path] = c.entries()
    with open(path, "rb") as f:
        good = f.read()
    for name, bad in corruptions(good):
        with open(path, "wb") as f:
            f.write(bad)
        rc, out, err = c.run()
        check(rc == 0 and out == want, f"corrupt ({name}): rc {rc}, output {out!r}, stderr {err!r}")
        check(trace(err) == ["corrupt", "stored"], f"corrupt ({name}): {trace(err)}")
        with open(path, "rb") as f:
            check(f.read() == good, f"corrupt ({name}): the entry was not rewritten whole")
        rc, out, err = c.run()
        check(rc == 0 and out == want and trace(err) == ["hit"], f"corrupt ({name}): next run {err!r}")


def test_concurrent(args):
    c = Cache(args, "mlp")
    want = uncached(c)
    procs = [subprocess.Popen(c.cmd, env=c.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(8)]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    for rc, out, err in results:
        check(rc == 0 and out == want, f"concurrent: rc {rc}, stderr {err!r}")
        check(trace(err) in (["miss", "stored"], ["hit"]), f"concurrent: {trace(err)}")
    files = c.entries()
    check(len(files) == 1 and files[0].endswith(".o"), f"concurrent: entries {files} (temporary files left?)")
    rc, out, err = c.run()
    check(rc == 0 and out == want and trace(err) == ["hit"], f"concurrent: next run {err!r}")


def test_unwritable(args):
    c = Cache(args, "ridge")
    want = uncached(c)
    # XDG_CACHE_HOME is a regular file: no directory can be made below it
    # (this holds for root too, unlike a read-only mode).
    with open(c.xdg, "w") as f:
        f.write("not a directory\n")
    rc, out, err = c.run()
    check(rc == 0 and out == want, f"unwritable: rc {rc}, stderr {err!r}")
    check(trace(err) == ["miss", "not stored"], f"unwritable: {trace(err)}")
    if os.geteuid() != 0:
        os.remove(c.xdg)
        os.makedirs(c.dir)
        os.chmod(c.dir, 0o500)
        rc, out, err = c.run()
        os.chmod(c.dir, 0o700)
        check(rc == 0 and out == want and trace(err) == ["miss", "not stored"],
              f"read-only directory: rc {rc}, stderr {err!r}")


def test_key(args):
    c = Cache(args, "mlp")
    _, first, _ = c.run()
    rc, _, err = c.run("--max-iter", "7")
    check(rc == 0 and trace(err) == ["miss", "stored"], f"key: --max-iter 7 hit the default's entry: {err!r}")
    check(len(c.entries()) == 2, f"key: entries {c.entries()}")
    rc, _, err = c.run("--no-grad")
    check(rc == 0 and trace(err) == ["miss", "stored"], f"key: --no-grad hit the gradient's entry: {err!r}")
    rc, _, err = c.run("-O2")
    check(rc == 0 and trace(err) == ["miss", "stored"], f"key: -O2 hit the -O0 entry: {err!r}")
    rc, out, err = c.run("-O0")   # eval's default: the first run's entry
    check(rc == 0 and trace(err) == ["hit"] and out == first, f"key: -O0 after -O2: {err!r}, {out!r}")
    # a rebuilt gradc (here: the same file with a new mtime) does not reuse entries
    st = os.stat(args.gradc)
    try:
        os.utime(args.gradc, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
        rc, _, err = c.run()
    finally:
        os.utime(args.gradc, ns=(st.st_atime_ns, st.st_mtime_ns))
    check(rc == 0 and trace(err) == ["miss", "stored"], f"key: a rebuilt gradc hit an old entry: {err!r}")


def test_relative_xdg(args):
    c = Cache(args, "norm_sq")
    home = os.path.join(c.tmp.name, "home")
    os.makedirs(home)
    rc, _, err = c.run(XDG_CACHE_HOME="relative/dir", HOME=home)
    check(rc == 0 and trace(err) == ["miss", "stored"], f"relative XDG: {err!r}")
    check(len(os.listdir(os.path.join(home, ".cache", "gradc"))) == 1, "relative XDG: no entry under $HOME/.cache")
    check(not os.path.exists("relative"), "relative XDG: used as a directory")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradc", required=True)
    ap.add_argument("--samples", required=True)
    args = ap.parse_args()
    for t in [test_hit, test_corrupt, test_concurrent, test_unwritable, test_key, test_relative_xdg]:
        t(args)
    print(f"{passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
