#!/usr/bin/env python3
"""prog.py — tests/install/run.sh's Python user: `gradc compile --shared`
made libtiny.so with the installed gradc; the installed gradc.py loads it
(from its embedded ABI) and computes what prog.c computes."""
import math
import sys

import numpy as np

import gradc

f = gradc.load(sys.argv[1])
A = np.array([[1, 0], [0, 1], [1, -1]], dtype=float)
x = np.array([0, math.log(2)])
S = np.array([[2, 1], [1, 3]], dtype=float)
value, g = f.grad(A=A, x=x, S=S)
print(f"f = {value}, df/dx = {g['x']}, df/dS = {g['S'].tolist()}")
ok = (abs(value - 8.5) < 1e-12 and np.allclose(g["x"], [1.5, 1.5], rtol=0, atol=1e-12)
      and np.allclose(g["S"], [[3, -1], [-1, 2]], rtol=0, atol=1e-12) and f(A, x, S) == value)
try:
    f(A=A, x=x, S=S[:1])
    ok = False
except ValueError as e:
    print("bad shape:", e)
sys.exit(0 if ok else 1)
