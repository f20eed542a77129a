"""gradc.py — call a function compiled by gradc from Python (ctypes + NumPy).

    $ gradc compile logistic_regression.expr --shared --name logreg -o liblogreg.so

    >>> import numpy as np, gradc
    >>> f = gradc.load("./liblogreg.so")
    >>> f.inputs                     # ['X', 'y', 'w', 'lam'], in declaration order
    >>> loss = f(X=X, y=y, w=w, lam=0.1)                 # the value
    >>> loss, g = f.grad(X=X, y=y, w=w, lam=0.1)         # value and gradients
    >>> w -= 0.01 * g["w"]

A library made by `gradc compile --shared` carries its ABI as JSON (the
symbol `gradc_describe`, the text `gradc compile --describe` prints), so
`load` needs only the path.  Any other shared object that holds generated
functions (linked by hand) loads with `load(path, describe=json_text_or_dict)`.

Inputs are passed by name (keywords) or in declaration order (positionally).
Each must be a real NumPy array (or a number for a scalar input) of its
declared shape: a scalar is a Python number or an array of one entry, a
vector `x[n]` a 1-D array of length n (an (n, 1) column is accepted too), a
matrix `A[m, n]` a 2-D array of shape (m, n).  Arrays are converted to
float64 in C order when they are not already (a copy); complex, object or
string arrays raise TypeError, and a shape that disagrees with the
declaration, or with another input on a dimension symbol, raises ValueError.
The dimension symbols are read off the shapes.

`f(...)` returns the value; `f.grad(...)` returns `(value, gradients)` with
gradients a dict from each `wrt` input's name (in `wrt` order) to an array of
that input's shape (a float for a scalar input).  A scalar value is a float;
any other value is an array (1-D for a vector).  For a non-scalar output,
`f.grad(..., cotangent=c)` computes the vector-Jacobian product with `c`
(default: all ones).  A status other than GRADC_OK raises gradc.Error with
libgradc's `gradc_strerror` message.

A Function keeps one work buffer (`NAME_work_size` bytes, 16-byte aligned)
and reuses it for every call whose dimensions fit, so repeated calls do not
allocate it again.  Because of that buffer one Function must not be called
from two threads at once: load the library once per thread instead.
"""

import ctypes
import re
import json

import numpy as np

__all__ = ["load", "Function", "Error"]


def _dim_value(form, env):
    """A dimension the ABI describes as a symbol or a linear form of them
    ("n", "n + m + 1", "2*n - 3"), at the symbols' values in env."""
    total, sign, term = 0, 1, None
    for tok in re.findall(r"\d+|[A-Za-z_]\w*|[-+*]", form):
        if tok in "+-":
            total += sign * term if term is not None else 0
            sign, term = (1 if tok == "+" else -1), None
        elif tok != "*":
            v = int(tok) if tok.isdigit() else env[tok]
            term = v if term is None else term * v
    return total + sign * term


class Error(RuntimeError):
    """A GRADC_* status returned by a generated function."""

    def __init__(self, status, name, message, function):
        super().__init__(f"{function}: {message} ({name})")
        self.status, self.name, self.message = status, name, message


def load(path, describe=None):
    """Load the shared library at path; describe: its ABI (JSON text or a
    dict, as `gradc compile --describe` prints) when the library does not
    embed it."""
    lib = ctypes.CDLL(path)
    if describe is None:
        try:
            text = ctypes.cast(ctypes.addressof(ctypes.c_char.in_dll(lib, "gradc_describe")),
                               ctypes.c_char_p).value.decode()
        except ValueError:
            raise ValueError(f"{path} has no gradc_describe: pass describe= "
                             "(the output of gradc compile --describe)") from None
        describe = json.loads(text)
    elif isinstance(describe, (str, bytes)):
        describe = json.loads(describe)
    return Function(lib, describe)


def _entries(shape):
    n = 1
    for d in shape:
        n *= d
    return n


class Function:
    """One generated function: NAME (the value) and NAME_grad."""

    def __init__(self, lib, describe):
        self.lib, self.abi = lib, describe
        self.name = describe["name"]
        self.dims = list(describe["dims"])
        self.inputs = [i["name"] for i in describe["inputs"]]
        self.wrt = list(describe["wrt"])
        self.output = describe["output"]["name"]
        self.aux = [a["name"] for a in describe.get("aux", [])]
        self._aux_shapes = [a["shape"] for a in describe.get("aux", [])]
        self._shapes = {i["name"]: i["shape"] for i in describe["inputs"]}
        self._statuses = {s["code"]: s["name"] for s in describe["statuses"]}
        self._work = None
        self._work_bytes = 0
        fn = describe["functions"]
        dim_t = [ctypes.c_int64] * len(self.dims)
        in_t = [ctypes.c_double if not self._shapes[n] else ctypes.c_void_p for n in self.inputs]
        self._value = getattr(lib, fn["value"])
        self._value.restype = ctypes.c_int
        aux_t = [ctypes.c_void_p] * len(self.aux)
        self._value.argtypes = dim_t + in_t + [ctypes.c_void_p] + aux_t + [ctypes.c_void_p]
        self._grad = None
        if fn.get("grad"):
            self._grad = getattr(lib, fn["grad"])
            self._grad.restype = ctypes.c_int
            self._grad.argtypes = (dim_t + in_t + ([ctypes.c_void_p] if describe["cotangent"] else [])
                                   + [ctypes.c_void_p] * (1 + len(self.aux) + len(self.wrt))
                                   + [ctypes.c_uint, ctypes.c_void_p])
        self._work_size = getattr(lib, fn["work_size"])
        self._work_size.restype = ctypes.c_size_t
        self._work_size.argtypes = dim_t
        self._strerror = lib.gradc_strerror
        self._strerror.restype = ctypes.c_char_p
        self._strerror.argtypes = [ctypes.c_int]

    def __repr__(self):
        return (f"<gradc.Function {self.name}({', '.join(self.inputs)}) -> {self.output}, "
                f"wrt {', '.join(self.wrt)}>")

    # ---- arguments ----

    def _bind(self, args, kwargs):
        """The inputs as float64 C-order arrays, and the dimension values."""
        if len(args) > len(self.inputs):
            raise TypeError(f"{self.name}: {len(self.inputs)} inputs, {len(args)} given")
        given = dict(zip(self.inputs, args))
        for k, v in kwargs.items():
            if k not in self._shapes:
                raise TypeError(f"{self.name}: no input named {k!r} (inputs: {', '.join(self.inputs)})")
            if k in given:
                raise TypeError(f"{self.name}: input {k!r} given twice")
            given[k] = v
        missing = [n for n in self.inputs if n not in given]
        if missing:
            raise TypeError(f"{self.name}: missing input(s) {', '.join(missing)}")
        dims, arrays = {}, {}
        for name in self.inputs:
            arrays[name] = self._array(name, given[name], self._shapes[name], dims)
        return arrays, [dims[d] for d in self.dims]

    def _array(self, name, value, decl, dims):
        a = np.asarray(value)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{self.name}: input {name} has dtype {a.dtype}; a real array is needed "
                            "(it is converted to float64)")
        a = np.ascontiguousarray(a, dtype=np.float64)
        if not decl:
            if a.size != 1:
                raise ValueError(f"{self.name}: input {name} is a scalar; got shape {a.shape}")
            return float(a.reshape(()))
        shape = a.shape
        if len(decl) == 1 and a.ndim == 2 and shape[1] == 1:
            shape = shape[:1]           # an (n, 1) column for a vector
        elif len(decl) == 2 and a.ndim == 1 and decl[1] == 1:
            shape = shape + (1,)        # a flat array for a matrix declared [n, 1]
        if len(shape) != len(decl):
            raise ValueError(f"{self.name}: input {name} is declared {self._decl(decl)}; "
                             f"got an array of shape {a.shape}")
        for d, size in zip(decl, shape):
            if isinstance(d, int):
                if size != d:
                    raise ValueError(f"{self.name}: input {name} is declared {self._decl(decl)}; "
                                     f"got shape {a.shape}")
            elif dims.setdefault(d, size) != size:
                raise ValueError(f"{self.name}: dimension {d} is {dims[d]} from an earlier input "
                                 f"but {size} in {name} (shape {a.shape})")
        return a

    @staticmethod
    def _decl(decl):
        return "[" + ", ".join(str(d) for d in decl) + "]"

    def _shape(self, decl, dims):
        env = dict(zip(self.dims, dims))
        return tuple(d if isinstance(d, int) else _dim_value(d, env) for d in decl)

    def _args(self, arrays, dims):
        out = list(dims)
        for n in self.inputs:
            a = arrays[n]
            out.append(a if isinstance(a, float) else a.ctypes.data)
        return out

    def _work_for(self, dims):
        need = self._work_size(*dims)
        if need == ctypes.c_size_t(-1).value:
            raise Error(1, "GRADC_EDIM", self._message(1), self._work_size.__name__)
        if self._work is None or need > self._work_bytes:
            buf = np.empty(need + 16, dtype=np.uint8)
            off = (-buf.ctypes.data) % 16
            self._work, self._work_bytes = buf[off:off + need], need
        return self._work.ctypes.data if need else None

    def _message(self, status):
        return self._strerror(status).decode()

    def _check(self, status, fn):
        if status != 0:
            raise Error(status, self._statuses.get(status, f"status {status}"),
                        self._message(status), fn)

    def _result(self, buf, decl):
        return float(buf[0]) if not decl else buf.reshape(decl)

    # ---- calls ----

    def _aux_buffers(self, dims, want):
        """Buffers for the auxiliary outputs (spec §8), or NULLs when not wanted."""
        if not want:
            return [], [None] * len(self.aux)
        bufs = [(np.empty(max(_entries(self._shape(d, dims)), 1)), self._shape(d, dims))
                for d in self._aux_shapes]
        return bufs, [b.ctypes.data for b, _ in bufs]

    def _aux_results(self, bufs):
        return {n: self._result(b, d) for n, (b, d) in zip(self.aux, bufs)}

    def __call__(self, *args, with_aux=False, **kwargs):
        """The value of the output at the given inputs; with_aux=True: (value,
        {auxiliary output: value})."""
        arrays, dims = self._bind(args, kwargs)
        decl = self._shape(self.abi["output"]["shape"], dims)
        out = np.empty(max(_entries(decl), 1))
        bufs, ptrs = self._aux_buffers(dims, with_aux)
        self._check(self._value(*self._args(arrays, dims), out.ctypes.data, *ptrs,
                                self._work_for(dims)), self.name)
        if with_aux:
            return self._result(out, decl), self._aux_results(bufs)
        return self._result(out, decl)

    def grad(self, *args, cotangent=None, with_aux=False, **kwargs):
        """(value, {wrt input: gradient}) at the given inputs; with_aux=True:
        (value, {auxiliary output: value}, {wrt input: gradient}).  A cotangent
        of a scalar output scales the gradient (spec §8)."""
        if self._grad is None:
            raise TypeError(f"{self.name}: the library has no gradient function")
        arrays, dims = self._bind(args, kwargs)
        decl = self._shape(self.abi["output"]["shape"], dims)
        out = np.empty(max(_entries(decl), 1))
        call = self._args(arrays, dims)
        if self.abi["cotangent"]:
            cot = None
            if cotangent is not None:
                c = np.ascontiguousarray(cotangent, dtype=np.float64)
                if c.size != _entries(decl):
                    raise ValueError(f"{self.name}: the cotangent has the output's shape {decl}; "
                                     f"got {c.shape}")
                cot = c
            call.append(cot.ctypes.data if cot is not None else None)
        scale = 1.0
        if cotangent is not None and not self.abi["cotangent"]:
            c = np.asarray(cotangent, dtype=np.float64)
            if c.size != 1:
                raise ValueError(f"{self.name}: the output is a scalar, so is its cotangent; "
                                 f"got shape {c.shape}")
            scale = float(c.reshape(()))
        call.append(out.ctypes.data)
        bufs, ptrs = self._aux_buffers(dims, with_aux)
        call.extend(ptrs)
        grads = {}
        for n in self.wrt:
            grads[n] = np.empty(max(_entries(self._shape(self._shapes[n], dims)), 1))
            call.append(grads[n].ctypes.data)
        self._check(self._grad(*call, 0, self._work_for(dims)), self.abi["functions"]["grad"])
        for g in grads.values():
            g *= scale
        value = self._result(out, decl)
        grads = {n: self._result(g, self._shape(self._shapes[n], dims)) for n, g in grads.items()}
        return (value, self._aux_results(bufs), grads) if with_aux else (value, grads)
