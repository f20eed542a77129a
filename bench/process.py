#!/usr/bin/env python3
"""bench/process.py — the benchmark rows timed as whole processes (bench/run
calls it after bench/harness): `gradc compile -O2` of every sample and of
generated statement chains, `gradc eval` end to end against `--interp`, and
samples/mlp.expr and NAME_hessian of x'*A*x against PyTorch (one thread) when
`import torch` works.
Medians of interleaved rounds of CPU time; the rows have bench/harness.c's
columns.

    python3 bench/process.py --gradc build/src/gradc --out build/bench [--smoke]
"""

import argparse
import ctypes
import glob
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

CAP = 20         # CPU seconds: a compile slower than this is stopped and reported as "> CAP"


def row(what, size, gradc, base, ratio, target, verdict):
    r = f"{ratio:5.2f}" if isinstance(ratio, float) else f"{ratio:>5}"
    print(f"| {what:<26} | {size:<19} | {gradc:<18} | {base:<34} | {r} | {target:<7} | {verdict:<6} |",
          flush=True)


def verdict(ok):
    return "met" if ok else "missed"


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wall(cmd, env=None, cap=None):
    """CPU seconds (user + system) cmd took; it must succeed.  CPU time, not
    wall time: on a shared machine the time a process waits for a core is
    not its own.  With cap: None when cmd needs more than cap CPU seconds
    (RLIMIT_CPU stops it; 10x cap of wall time is the backstop)."""
    limit = (lambda: resource.setrlimit(resource.RLIMIT_CPU, (int(cap), int(cap) + 1))) if cap else None
    t0 = children_cpu()
    try:
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if cap else None,
                       timeout=10 * cap if cap else None, preexec_fn=limit)
    except (subprocess.TimeoutExpired, subprocess.CalledProcessError):
        if cap:
            return None
        raise
    return children_cpu() - t0


def medians(cmds, rounds):
    """{name: median seconds} of cmds ({name: (argv, env)}), interleaved."""
    times = {k: [] for k in cmds}
    for _ in range(rounds):
        for k, (argv, env) in cmds.items():
            times[k].append(wall(argv, env))
    return {k: statistics.median(v) for k, v in times.items()}


def ms(t):
    return f"{1e3 * t:.0f} ms" if t is not None else f"> {CAP:.0f} s"


def samples(root):
    return sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(root, "samples", "*.expr")))


def compile_samples(a, names, rounds):
    o = os.path.join(a.out, "ct")
    cmds = {s: ([a.gradc, "compile", os.path.join(a.root, "samples", s + ".expr"), "-O2", "-o", o + ".o",
                 "--header", o + ".h"], None) for s in names}
    for s, t in medians(cmds, rounds).items():
        row("gradc compile -O2", s, ms(t), "-", "-", "<= 30ms", verdict(t <= 0.030))


def chain(kind, n):
    """A program of n statements: matrix (v = tanh(A*v) + 0.5*v) or scalar."""
    if kind == "matrix":
        head, body, tail = "input A[n, n]\ninput x[n]\nv = x\n", "v = tanh(A * v) + 0.5 * v\n", \
            "y = sum(v .^ 2)\nwrt A, x\n"
    else:
        head, body, tail = "input x\ns = x\n", "s = sin(s) + 0.5 * s\n", "y = s\n"
    return head + body * n + tail


def compile_chains(a, sizes, rounds):
    """sizes: matrix small, big; scalar small, big; and a long scalar chain
    (10x the big one: its points are split into chunk functions, and past
    50,000 kernels they are not optimised, src/chunk.c), whose time only
    has the x10 target."""
    for kind, small, big, cap_target in [("matrix", sizes[0], sizes[1], 1.0), ("scalar", sizes[2], sizes[3], 1.0),
                                         ("scalar", sizes[3], sizes[4], None)]:
        t, lines = {}, {}
        for n in (small, big):
            src = os.path.join(a.out, f"chain_{kind}_{n}.expr")
            with open(src, "w") as f:
                f.write(chain(kind, n))
            ll = os.path.join(a.out, "chain.ll")
            lines[n] = None
            # the optimised IR: what instruction selection compiles
            if wall([a.gradc, "compile", src, "--emit-llvm", "-O2", "-o", ll], cap=CAP) is not None:
                with open(ll) as f:
                    lines[n] = sum(1 for _ in f)
            runs = []
            for _ in range(rounds):    # one run is enough past 2 s (or past the cap)
                runs.append(wall([a.gradc, "compile", src, "-O2", "-o", os.path.join(a.out, "chain.o")], cap=CAP))
                if runs[-1] is None or runs[-1] > 2:
                    break
            t[n] = None if None in runs else statistics.median(runs)
        for n in (small, big):
            per = f"{lines[n] / n:.0f} -O2 IR lines/stmt" if lines[n] else "IR: > cap"
            if n == small and small == sizes[3] and big == sizes[4]:
                continue    # its row was printed with the scalar chain
            ok = cap_target is None or (t[n] is not None and t[n] <= cap_target)
            target = n == big and cap_target is not None
            row(f"compile -O2, {kind} chain", f"{n} stmts", ms(t[n]), per, "-",
                "<= 1 s" if target else "-", verdict(ok) if target else "")
        if t[small] is not None and t[big] is not None:
            r = t[big] / t[small]
            row(f"compile {kind} chain x10", f"{small} -> {big}", ms(t[big]), f"{small} stmts {ms(t[small])}", r,
                "<= 12", verdict(r <= 12))
        else:
            row(f"compile {kind} chain x10", f"{small} -> {big}", ms(t[big]), f"{small} stmts {ms(t[small])}",
                "-", "<= 12", "missed")


def eval_latency(a, names, rounds):
    with tempfile.TemporaryDirectory(prefix="gradc-bench-") as cache:
        warm = dict(os.environ, XDG_CACHE_HOME=cache)
        warm.pop("GRADC_NO_CACHE", None)
        cold = dict(warm, GRADC_NO_CACHE="1")
        for s in names:
            base = [a.gradc, "eval", os.path.join(a.root, "samples", s + ".expr"),
                    "--inputs", os.path.join(a.root, "samples", s + ".inputs.json")]
            wall(base, warm)    # fills the cache
            m = medians({"interp": (base + ["--interp"], None), "cold": (base, cold), "hit": (base, warm)}, rounds)
            rc, rh = m["cold"] / m["interp"], m["hit"] / m["interp"]
            row("gradc eval, end to end", s, f"{ms(m['cold'])}, hit {ms(m['hit'])}",
                f"--interp {ms(m['interp'])}; hit ratio {rh:.2f}", rc, "<= 2", verdict(rc <= 2 and rh <= 2))


def torch_and(a, lib):
    """torch on one thread and the shared library lib of a.out, or None
    when torch does not import (no PyTorch rows then)."""
    try:
        import torch
    except Exception:
        return None
    torch.set_num_threads(1)
    return torch, ctypes.CDLL(os.path.join(a.out, lib)), ctypes.POINTER(ctypes.c_double)


def torch_mlp(a, sizes, rounds):
    """samples/mlp.expr's gradient: gradc's mlp_grad (through ctypes) against
    PyTorch autograd on one thread, the same data; no rows without torch."""
    got = torch_and(a, "libmlp.so")
    if not got:
        return
    torch, lib, P = got
    lib.mlp_grad.argtypes = [ctypes.c_int64] * 4 + [P] * 9 + [ctypes.c_uint, ctypes.c_void_p]
    lib.mlp_work_size.restype = ctypes.c_size_t
    lib.mlp_work_size.argtypes = [ctypes.c_int64] * 4
    for m, d, h, k in sizes:
        g = torch.Generator().manual_seed(1)
        X, W1, b1, W2, Y = (torch.rand(*s, generator=g, dtype=torch.float64) - 0.5
                            for s in [(m, d), (d, h), (h,), (h, k), (m, k)])
        outs = [torch.empty(*s, dtype=torch.float64) for s in [(1,), (d, h), (h,), (h, k)]]
        work = ctypes.create_string_buffer(lib.mlp_work_size(m, d, h, k) + 64)
        ptr = lambda t: ctypes.cast(t.data_ptr(), P)
        args = [m, d, h, k] + [ptr(t) for t in (X, W1, b1, W2, Y)] + [ptr(t) for t in outs] + [0, work]

        def run_gradc():
            if lib.mlp_grad(*args):
                raise RuntimeError("mlp_grad failed")

        params = [t.clone().requires_grad_() for t in (W1, b1, W2)]

        def run_torch():
            for p in params:
                p.grad = None
            w1, bb, w2 = params
            L = ((torch.tanh(X @ w1 + bb) @ w2 - Y) ** 2).mean()
            L.backward()
            return L

        run_gradc()
        L = run_torch()
        err = max(abs(outs[0].item() - L.item()), *((o - p.grad).abs().max().item() for o, p in zip(outs[1:], params)))
        if not err <= 1e-10:
            print(f"process.py: gradc and PyTorch differ on the MLP: {err}", file=sys.stderr)
            sys.exit(1)
        once = time.thread_time()
        run_gradc()
        reps = max(1, int(0.02 / max(time.thread_time() - once, 1e-7)))
        tg, tt = [], []
        for _ in range(rounds):
            for f, acc in ((run_gradc, tg), (run_torch, tt)):
                t0 = time.thread_time()    # CPU time of this thread (torch: one thread)
                for _ in range(reps):
                    f()
                acc.append((time.thread_time() - t0) / reps)
        g_, t_ = statistics.median(tg), statistics.median(tt)
        row("MLP value+grad vs PyTorch", f"{m}x{d},h={h},k={k}", f"{1e3 * g_:.2f} ms",
            f"PyTorch {torch.__version__}, 1 thread {1e3 * t_:.2f} ms", g_ / t_, "< 1", verdict(g_ < t_))


def torch_hessian(a, n, rounds):
    """NAME_hessian of x'*A*x (bench/run's h_qf, the closed form A + A')
    through ctypes against torch.autograd.functional.hessian on one thread
    (issue 10: at least 100x faster); no row without torch."""
    got = torch_and(a, "libhqf.so")
    if not got:
        return
    torch, lib, P = got
    lib.h_qf_hessian.argtypes = [ctypes.c_int64, P, P, P, P, ctypes.c_uint, ctypes.c_void_p]
    lib.h_qf_hessian_work_size.restype = ctypes.c_size_t
    lib.h_qf_hessian_work_size.argtypes = [ctypes.c_int64]
    g = torch.Generator().manual_seed(1)
    A, x = (torch.rand(*s, generator=g, dtype=torch.float64) - 0.5 for s in [(n, n), (n,)])
    f, H = torch.empty(1, dtype=torch.float64), torch.empty(n, n, dtype=torch.float64)
    work = ctypes.create_string_buffer(lib.h_qf_hessian_work_size(n) + 64)
    ptr = lambda t: ctypes.cast(t.data_ptr(), P)
    args = [n, ptr(A), ptr(x), ptr(f), ptr(H), 0, work]

    def run_gradc():
        if lib.h_qf_hessian(*args):
            raise RuntimeError("h_qf_hessian failed")

    def run_torch():
        return torch.autograd.functional.hessian(lambda v: v @ A @ v, x)

    run_gradc()
    Ht = run_torch()
    err = max((H - (A + A.T)).abs().max().item(), (Ht - (A + A.T)).abs().max().item())
    if not err <= 1e-10:
        print(f"process.py: NAME_hessian or PyTorch's hessian is not A + A': {err}", file=sys.stderr)
        sys.exit(1)
    tg, tt = [], []
    for _ in range(rounds):
        for f_, acc, reps in ((run_gradc, tg, 20), (run_torch, tt, 1)):
            t0 = time.thread_time()
            for _ in range(reps):
                f_()
            acc.append((time.thread_time() - t0) / reps)
    g_, t_ = statistics.median(tg), statistics.median(tt)
    row("x'*A*x NAME_hessian vs PyTorch", f"n={n}", f"{1e3 * g_:.3g} ms",
        f"PyTorch {torch.__version__} hessian {1e3 * t_:.4g} ms", g_ / t_, "<= 0.01", verdict(g_ <= 0.01 * t_))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradc", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", action="store_true", help="one round, small chains, two samples")
    a = ap.parse_args()
    a.root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    names = samples(a.root)
    if a.smoke:
        compile_samples(a, names[:2], 1)
        compile_chains(a, (2, 3, 2, 3, 30), 1)
        eval_latency(a, names[:2], 1)
        torch_mlp(a, [(8, 4, 5, 3)], 1)
        torch_hessian(a, 40, 1)
        return
    compile_samples(a, names, 5)
    compile_chains(a, (30, 300, 100, 1000, 10000), 3)
    eval_latency(a, names, 5)
    torch_mlp(a, [(512, 32, 128, 10), (3000, 160, 200, 12)], 7)
    torch_hessian(a, 1000, 3)


if __name__ == "__main__":
    main()
