"""The independent oracle of the make_expected scripts (tests/ed2a, tests/ed2i):
mpmath at 40 digits, gradients entry by entry by mpmath's high-precision
numerical derivative, so neither gradc's rules nor its special functions are
used.  Run by hand (needs mpmath: Debian's python3-mpmath); the test suite
only reads the expected files they write."""
import json
import os

import mpmath as mp

mp.mp.dps = 40


def mpify(x):
    return [mpify(t) for t in x] if isinstance(x, list) else mp.mpf(x)


def positions(x):
    """Every entry of x: () for a scalar, (i,) or (i, j), row-major."""
    if not isinstance(x, list):
        return [()]
    return [(i,) + p for i, e in enumerate(x) for p in positions(e)]


def replaced(x, pos, t):
    if not pos:
        return t
    return x[:pos[0]] + [replaced(x[pos[0]], pos[1:], t)] + x[pos[0] + 1:]


def entry(x, pos):
    for i in pos:
        x = x[i]
    return x


def gradient(f, v, name, base=None):
    """d f / d v[name] entry by entry, in v[name]'s JSON form; the other
    inputs are taken from base (default v)."""
    x, base = v[name], base or v
    flat = [float(mp.diff(lambda t: f(dict(base, **{name: replaced(x, p, t)})), entry(x, p)))
            for p in positions(x)]
    if not isinstance(x, list):
        return flat[0]
    if not isinstance(x[0], list):
        return flat
    c = len(x[0])
    return [flat[i * c:(i + 1) * c] for i in range(len(x))]


def inputs(here, case):
    """The case's inputs as read (JSON) and as mpmath numbers."""
    with open(os.path.join(here, case + ".inputs.json")) as fh:
        raw = json.load(fh)
    return raw, {k: mpify(x) for k, x in raw.items()}


def write(here, case, out):
    with open(os.path.join(here, case + ".expected.json"), "w") as fh:
        json.dump(out, fh, indent=2)
        fh.write("\n")
    print(case, out["value"])


def write_all(here, cases):
    """Value and gradient over every input, for each case NAME: f."""
    for case, f in cases.items():
        raw, v = inputs(here, case)
        write(here, case, {"value": float(f(v)), "gradient": {k: gradient(f, v, k) for k in raw}})
