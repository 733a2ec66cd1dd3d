"""Powers for step-size control that compile to vector instructions: x**a to a relative error below 1e-5.

A lane group (``integrator.solve_group``) sets the step sizes of all its patients at once; libm's log and
exp are calls, one patient at a time, while these are a handful of multiply-adds on the float's bits,
which the loop over patients turns into vector instructions. A step-size factor needs two or three
correct digits.

log2 is read from the float's exponent bits plus an atanh series on the mantissa; 2**z from a Taylor
polynomial of e**(f ln 2) on the fraction, with the integer part added to the exponent bits. x must be a
positive normal number and a * log2(x) within (-1022, 1023); step control clips errors to [1e-10, 1e300].
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

LN2 = math.log(2.0)
_fast = njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})


@intrinsic
def _bits(typingctx, x):
    """The IEEE 754 bits of a float64, as an int64 (no conversion)."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _from_bits(typingctx, b):
    """The float64 whose IEEE 754 bits are b."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@_fast
def log2_approx(x):
    b = _bits(x)
    m = _from_bits((b & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000)  # the mantissa, in [1, 2)
    s = (m - 1.0) / (m + 1.0)  # log(m) = 2 atanh(s), s in [0, 1/3]
    s2 = s * s
    series = s * (1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0))))
    return np.float64((b >> 52) - 1023) + series * (2.0 / LN2)


@_fast
def exp2_approx(z):
    n = math.floor(z)
    f = (z - n) * LN2  # in [0, ln 2)
    p = 1.0 + f * (1.0 + f * (0.5 + f * (1.0 / 6.0 + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f * (1.0 / 720.0))))))
    return _from_bits(_bits(p) + (np.int64(n) << 52))
