"""Scalar math for plain-Python kernels that gives the same bits as the numba-compiled kernels.

numba (error_model='numpy') compiles ``math.exp(x)`` to the C library's ``exp`` and returns inf/NaN where
Python's ``math`` raises; NumPy's scalar functions give inf/NaN too, but some are its own SIMD code, a few
units in the last place away from the C library (exp, log10, tanh, ...). So plain kernels call these instead:
``math``'s function (the C library's) on the common path, and the C library itself where ``math`` raises.
LLVM also rewrites some powers with a constant operand (x**2.0 as x*x, x**0.5 as a square root, x**-1.0 as 1/x,
(2.0**n)**x as exp2(n*x)); ``expressions.to_code`` prints those cases as the functions below, so that a plain
kernel and a compiled one compute every step alike. tests/model/test_kernels_bitwise.py checks the claim.
"""

from __future__ import annotations

import ctypes
import functools
import math

import numpy as np

inf, nan = math.inf, math.nan


@functools.lru_cache(maxsize=1)
def _c_library():
    """The C math library numba's compiled code calls, or None where it cannot be found (then NumPy's
    functions give the IEEE values, possibly an ulp away from the compiled kernels). Loaded on first need:
    finding it may run ldconfig."""
    try:
        lib = ctypes.CDLL("libm.so.6")  # glibc's: found without a search
    except OSError:
        from ctypes.util import find_library  # (imports subprocess: only where glibc's name fails)

        name = find_library("m")
        try:
            lib = ctypes.CDLL(name) if name else None
        except OSError:
            return None
    if lib is None:
        return None
    for fn, nargs in (("pow", 2), ("exp2", 1), ("tgamma", 1), ("exp", 1), ("log", 1), ("log10", 1), ("sqrt", 1),
                      ("sin", 1), ("cos", 1), ("tan", 1), ("sinh", 1), ("cosh", 1), ("asin", 1), ("acos", 1)):
        getattr(lib, fn).restype = ctypes.c_double
        getattr(lib, fn).argtypes = [ctypes.c_double] * nargs
    return lib


def _c(name: str):
    lib = _c_library()
    return getattr(lib, name) if lib is not None else None


def _ieee(name: str, numpy_fn):
    """``math.name`` where it returns; where it raises (overflow, a pole, outside the domain), the C library's
    value: inf, -inf or NaN."""
    fn = getattr(math, name)

    def value(x):
        try:
            return fn(x)
        except (ValueError, OverflowError):
            c_fn = _c(name)
            if c_fn is not None:
                return c_fn(x)
            with np.errstate(all="ignore"):
                return float(numpy_fn(np.float64(x)))

    value.__name__ = name
    return value


exp = _ieee("exp", np.exp)
log = _ieee("log", np.log)
log10 = _ieee("log10", np.log10)
sqrt = _ieee("sqrt", np.sqrt)
sin = _ieee("sin", np.sin)
cos = _ieee("cos", np.cos)
tan = _ieee("tan", np.tan)
sinh = _ieee("sinh", np.sinh)
cosh = _ieee("cosh", np.cosh)
asin = _ieee("asin", np.arcsin)
acos = _ieee("acos", np.arccos)
tanh, atan = math.tanh, math.atan  # never raise


def pow(x, y):  # noqa: A001 (the C name, as the generated code prints it)
    """x ** y as C's pow: NaN for a negative base and a fractional exponent (Python's ** gives a complex),
    inf for 0 ** -1 and for overflow."""
    try:
        return math.pow(x, y)
    except (ValueError, OverflowError):
        if _c("pow") is not None:
            return _c("pow")(x, y)
        with np.errstate(all="ignore"):
            return float(np.float64(x) ** np.float64(y))


def exp2(x):
    """2 ** x as LLVM rewrites a constant power-of-two base: C's exp2."""
    try:
        return math.exp2(x)
    except OverflowError:
        return inf


def square(x):
    """x ** 2.0 as LLVM compiles it: x * x."""
    return x * x


def reciprocal(x):
    """x ** -1.0 as LLVM compiles it: 1 / x, with 1 / 0 = inf (signed) as in IEEE arithmetic."""
    return 1.0 / x if x != 0.0 else math.copysign(inf, x)


def root(x):
    """x ** 0.5 as LLVM compiles it: |sqrt(x)| (so that -0.0 gives +0.0), +inf for -inf, NaN below zero."""
    if x == -inf:
        return inf
    return abs(sqrt(x))


def gamma(x):
    """C's tgamma, as numba compiles math.gamma (Python's math.gamma is its own approximation, an ulp away)."""
    if _c("tgamma") is not None:
        return _c("tgamma")(x)
    try:
        return math.gamma(x)
    except (ValueError, OverflowError):
        return nan if x != x or x < 0 or x == -inf else inf


def _rounded(rounding, x) -> float:
    """floor or ceil as a float (as the compiled kernels' np.floor): inf, -inf and NaN stay as they are, where
    Python's math.floor raises."""
    try:
        return float(rounding(x))
    except (ValueError, OverflowError):
        return x + 0.0


def floor(x):
    return _rounded(math.floor, x)


def ceil(x):
    return _rounded(math.ceil, x)


def hill(x, k, n):
    """hill(x, k, n) = x**n / (k**n + x**n), as the compiled kernels' _hill."""
    xn = pow(x, n)
    try:
        return xn / (pow(k, n) + xn)
    except ZeroDivisionError:  # 0/0 or x/0: NaN or inf, as compiled
        with np.errstate(all="ignore"):
            return float(np.float64(xn) / np.float64(0.0))


def factorial(x):
    """gamma(x + 1), as ilsim.model.expressions.factorial and the compiled kernels' _factorial."""
    z = x + 1.0
    if z != z or z > 171.62:
        return z if z != z else inf
    if z <= 0.0 and (z == -inf or z % 1.0 == 0.0):
        return math.copysign(inf, z) if z == 0.0 else nan
    if abs(z) < 1e-300:
        return 1.0 / z
    return gamma(z)


class _NumPyResults:
    """The functions above with NumPy-float results, for the kernels' careful path (model/compile.py): there a division
    by a function's zero or an overflow gives inf or NaN, as in the compiled kernels, instead of raising."""

    def __init__(self, functions: dict):
        for name, fn in functions.items():
            setattr(self, name, self._numpy(fn))

    @staticmethod
    def _numpy(fn):
        def value(*args):
            with np.errstate(all="ignore"):
                return np.float64(fn(*args))
        return value


careful = _NumPyResults({name: globals()[name] for name in (
    "exp", "log", "log10", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "asin", "acos", "tanh", "atan", "pow", "exp2",
    "square", "reciprocal", "root", "gamma", "floor", "ceil", "hill", "factorial")})


def _fast_hill(x, k, n):
    xn = math.pow(x, n)
    return xn / (math.pow(k, n) + xn)


class _Namespace:
    def __init__(self, functions: dict):
        self.__dict__.update(functions)


# The fast path's functions: ``math``'s own where its value is the C library's, raising where the C library would
# give inf or NaN (the kernel then takes the careful path), which saves a Python call per function.
fast = _Namespace({**{name: getattr(math, name) for name in (
    "exp", "log", "log10", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "asin", "acos", "tanh", "atan", "pow", "exp2")},
    "square": square, "reciprocal": reciprocal, "root": root, "gamma": gamma, "floor": floor, "ceil": ceil,
    "hill": _fast_hill, "factorial": factorial})
