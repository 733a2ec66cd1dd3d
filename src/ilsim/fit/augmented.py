"""The forward-sensitivity system y = (x, S) of a compiled model as compiled functions: its right-hand side
(f(x), J S + (df/dp) P) and its Newton matrix (block-diagonal I (x) J), one compiled call per callback of the
integrator. They are built on the model's own compiled kernels, passed in as functions, so that LSODA's
callback pays one dispatch instead of several NumPy operations in Python (those were most of the time of an
objective + gradient evaluation of a small model such as Boehm's)."""

from __future__ import annotations

import numpy as np
from numba import njit


def compiled_pair(rhs_into, jac_into, dfdp_into):
    """(rhs(t, y, p, P, J, D), jacobian(t, y, p, J, nc)) of the augmented system, compiled around the model's
    kernels (closures: numba inlines the kernels' calls, where kernels passed as arguments cost a slow dispatch
    on every call)."""

    @njit(error_model="numpy")
    def rhs(t, y, p, P, J, D):
        return _rhs(rhs_into, jac_into, dfdp_into, t, y, p, P, J, D)

    @njit(error_model="numpy")
    def jacobian(t, y, p, J, nc):
        return _jacobian(jac_into, t, y, p, J, nc)

    return rhs, jacobian


@njit(error_model="numpy")  # not cached: its signature names a model's kernel modules, which another process may lack
def _rhs(rhs_into, jac_into, dfdp_into, t, y, p, P, J, D):
    """(f(x), J(x) S + (df/dp)(x) P) with x = y[:ns] and S = y[ns:] as (ns x nc), row-major; J (ns x ns) and
    D (ns x parameters): scratch matrices."""
    ns, npar = D.shape
    nc = P.shape[1]
    out = np.empty(len(y))
    x = y[:ns]
    rhs_into(x, t, p, out[:ns])
    jac_into(x, t, p, J)
    dfdp_into(x, t, p, D)
    for i in range(ns):
        for c in range(nc):
            acc = 0.0
            for k in range(ns):
                acc += J[i, k] * y[ns + k * nc + c]
            for k in range(npar):
                acc += D[i, k] * P[k, c]
            out[ns + i * nc + c] = acc
    return out


@njit(error_model="numpy")  # not cached: its signature names a model's kernel modules, which another process may lack
def _jacobian(jac_into, t, y, p, J, nc):
    """The Newton matrix: J for x, and J acting on each sensitivity column (entry (ns + i nc + c, ns + k nc + c)
    is J[i, k]); the coupling through dJ/dx is left out (it only slows Newton's iterations)."""
    ns = J.shape[0]
    n = len(y)
    jac_into(y[:ns], t, p, J)
    out = np.zeros((n, n))
    for i in range(ns):
        for k in range(ns):
            v = J[i, k]
            out[i, k] = v
            for c in range(nc):
                out[ns + i * nc + c, ns + k * nc + c] = v
    return out
