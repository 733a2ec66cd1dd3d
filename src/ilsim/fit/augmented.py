"""The forward-sensitivity system of a compiled model as compiled functions, for LSODA: its right-hand side
(f(x), J S + (df/dp) P) and its Newton matrix, one compiled call per callback of the integrator. They are built
on the model's own compiled kernels, so LSODA's callback pays one dispatch instead of several NumPy operations
in Python (those were most of the time of an objective + gradient evaluation of a small model such as Boehm's).

The state is y = (x, S[:, 0], S[:, 1], ...): each sensitivity column after the other. The Newton matrix, J for x
and J for every column (the coupling through dJ/dx is left out: it only slows Newton's iterations), is then
banded with ns - 1 diagonals on either side, and LSODA factorises it in O(n ns^2) instead of O(n^3).
"""

from __future__ import annotations

import numpy as np
from numba import njit


def compiled_pair(rhs_into, jac_into, dfdp_into):
    """(rhs(t, y, p, P, J, D), banded_jacobian(t, y, p, P, J, D)) of the augmented system, compiled around the model's
    kernels (closures: kernels passed as arguments instead would cost a slow dispatch on every call)."""

    @njit(error_model="numpy")
    def rhs(t, y, p, P, J, D):
        return _rhs(rhs_into, jac_into, dfdp_into, t, y, p, P, J, D)

    @njit(error_model="numpy")
    def banded_jacobian(t, y, p, P, J, D):  # the right-hand side's arguments; J: scratch, P and D unused
        return _banded_jacobian(jac_into, t, y, p, J)

    return rhs, banded_jacobian


@njit(error_model="numpy")  # not cached: its signature names a model's kernel modules, which another process may lack
def _rhs(rhs_into, jac_into, dfdp_into, t, y, p, P, J, D):
    """(f(x), J(x) S + (df/dp)(x) P), x = y[:ns], column c of S at y[ns (c + 1):]; J (ns x ns) and
    D (ns x parameters): scratch matrices."""
    ns, npar = D.shape
    nc = P.shape[1]
    out = np.empty(len(y))
    x = y[:ns]
    rhs_into(x, t, p, out[:ns])
    jac_into(x, t, p, J)
    dfdp_into(x, t, p, D)
    for c in range(nc):
        base = ns * (c + 1)
        for i in range(ns):
            acc = 0.0
            for k in range(ns):
                acc += J[i, k] * y[base + k]
            for k in range(npar):
                acc += D[i, k] * P[k, c]
            out[base + i] = acc
    return out


@njit(error_model="numpy")  # not cached: its signature names a model's kernel modules, which another process may lack
def _banded_jacobian(jac_into, t, y, p, J):
    """The Newton matrix in LSODA's band storage (ml = mu = ns - 1): entry (i, j) at [i - j + ns - 1, j]."""
    ns = J.shape[0]
    n = len(y)
    jac_into(y[:ns], t, p, J)
    out = np.zeros((2 * ns - 1, n))
    for b in range(n // ns):
        for i in range(ns):
            for k in range(ns):
                out[i - k + ns - 1, b * ns + k] = J[i, k]
    return out
