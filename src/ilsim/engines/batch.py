"""Batch engine: one model, many parameter sets ("patients"), integrated in parallel with numba.

``BatchEngine.run(model, t_eval, P)`` integrates the model once per row of ``P`` (patients x
parameters) and returns the states at ``t_eval`` for every patient, with a status code per patient.
All patients run inside one numba ``@njit(parallel=True)`` driver (``prange`` over patients); each
patient is integrated by an explicit adaptive Dormand-Prince 5(4) method (the coefficients and
error estimate of Hairer's DOPRI5), with no dense output: the step is clipped so that the
integrator lands exactly on every output time.

Step-size control (Hairer, Norsett & Wanner, "Solving ODEs I", II.4): error norm
``sqrt(mean((err_i / sc_i)^2))`` with ``sc_i = atol + rtol * max(|y_i|, |ynew_i|)``; PI control with
beta = 0.04, safety factor 0.9, step change bounded to [0.2, 10] (no growth right after a rejected
step); Hairer's starting-step heuristic.

Non-negative species: the generated right-hand side already evaluates rates at max(y, 0) and
cannot push a quantity at zero below it; in addition every accepted state is clipped at zero.

A patient that fails never stops the others: its status is nonzero and its rows from the failure
onwards are NaN (rows already reached keep their values). Status codes: see ``STATUS``.

Not supported yet:
  * events (timed or condition): ``run`` raises an ``IlsimError`` for a model that has any;
  * stiff models: the method is explicit, so a stiff model takes tiny steps (and may hit the
    step limit, status 3); use the SciPy engine (LSODA/BDF/Radau) for those;
  * models compiled without numba (``jit=False``): the driver needs the numba kernel.

Results are deterministic: each patient's integration depends only on its own inputs, so the same
inputs give bitwise-identical outputs whatever the number of threads.
"""

from __future__ import annotations

import numpy as np

from ilsim.errors import IlsimError
from ilsim.model.compile import CompiledModel

OK, NON_FINITE, STEP_UNDERFLOW, MAX_STEPS, BAD_INITIAL = 0, 1, 2, 3, 4
STATUS = {
    OK: "ok",
    NON_FINITE: "a rate or the state became infinite or NaN",
    STEP_UNDERFLOW: "step size underflow (the step fell below the rounding level of t)",
    MAX_STEPS: "too many steps (max_steps reached)",
    BAD_INITIAL: "the initial state is not finite or is negative for a non-negative species",
}

_DRIVERS: dict[int, tuple[object, object]] = {}  # id(rhs kernel) -> (kernel, compiled driver)


class BatchEngine:
    """Many parameter sets of one model in parallel: explicit Dormand-Prince 5(4) in numba.

    For non-stiff models without events (see the module docstring for what is not supported yet).
    """

    name = "batch"
    supports = {"events": False, "stochastic": False, "spatial": False, "batch": True, "stiff": False}

    def __init__(self, rtol: float = 1e-6, atol: float = 1e-9, max_steps: int = 1_000_000):
        if not (0 < rtol < 1) or not (atol > 0) or not np.isfinite(atol):
            raise IlsimError(f"tolerances must satisfy 0 < rtol < 1 and atol > 0, got rtol = {rtol:g}, atol = {atol:g}")
        if max_steps < 1:
            raise IlsimError(f"max_steps must be at least 1, got {max_steps}")
        self.rtol, self.atol, self.max_steps = float(rtol), float(atol), int(max_steps)

    def run(self, model: CompiledModel, t_eval, P) -> tuple[np.ndarray, np.ndarray]:
        """Integrate every row of ``P``; return ``(Y, status)``.

        ``Y``: patients x len(t_eval) x species; ``status``: int per patient (0 ok, see ``STATUS``).
        ``t_eval`` must be increasing; the integration starts at ``t_eval[0]``.
        """
        if model.events:
            names = ", ".join(e.name for e in model.events[:5]) + (", ..." if len(model.events) > 5 else "")
            raise IlsimError(
                f"the batch engine does not support events yet: model '{model.name}' has {len(model.events)} "
                f"event(s) ({names}); simulate it with the ODE engine (ilsim.simulate) instead"
            )
        t_eval = np.ascontiguousarray(t_eval, dtype=np.float64)
        if t_eval.ndim != 1 or len(t_eval) < 1 or not np.isfinite(t_eval).all():
            raise IlsimError("t_eval must be a non-empty one-dimensional array of finite times")
        if np.any(np.diff(t_eval) <= 0):
            raise IlsimError("t_eval must be strictly increasing")
        P = np.ascontiguousarray(P, dtype=np.float64)
        npar = len(model.parameters)
        if P.ndim != 2 or P.shape[1] != npar:
            raise IlsimError(f"P must be a (patients x {npar}) array for model '{model.name}', got shape {P.shape}")
        rhs = model.kernels["rhs_into"]
        if not hasattr(rhs, "py_func"):
            raise IlsimError("the batch engine needs numba-compiled kernels; the model was compiled with jit=False")

        n, ns = P.shape[0], len(model.species)
        nonneg = np.ascontiguousarray(model.nonnegative, dtype=np.bool_)
        Y0 = np.empty((n, ns))
        status = np.zeros(n, dtype=np.int64)
        initial = model.kernels["initial"]
        with np.errstate(all="ignore"):
            for i in range(n):
                try:
                    y0 = np.asarray(initial(P[i]), dtype=np.float64)
                except (ArithmeticError, ValueError):
                    y0 = np.full(ns, np.nan)
                Y0[i] = y0
                if not np.isfinite(y0).all() or np.any(y0[nonneg] < 0):
                    status[i] = BAD_INITIAL
        Y = np.full((n, len(t_eval), ns), np.nan)
        driver = _driver(rhs)
        driver(t_eval, Y0, P, nonneg, self.rtol, self.atol, self.max_steps, Y, status)
        return Y, status


def _driver(rhs):
    """The parallel driver compiled for one right-hand-side kernel (cached per kernel)."""
    hit = _DRIVERS.get(id(rhs))
    if hit is not None and hit[0] is rhs:
        return hit[1]
    driver = _make_driver(rhs)
    _DRIVERS[id(rhs)] = (rhs, driver)  # holding the kernel keeps its id from being reused
    return driver


def _make_driver(rhs):
    from numba import njit, prange

    # Dormand-Prince 5(4) coefficients (Hairer's DOPRI5)
    c2, c3, c4, c5 = 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0
    a21 = 1.0 / 5.0
    a31, a32 = 3.0 / 40.0, 9.0 / 40.0
    a41, a42, a43 = 44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0
    a51, a52, a53, a54 = 19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0
    a61, a62, a63, a64, a65 = 9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0
    a71, a73, a74, a75, a76 = 35.0 / 384.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0
    e1, e3, e4, e5, e6, e7 = (71.0 / 57600.0, -71.0 / 16695.0, 71.0 / 1920.0, -17253.0 / 339200.0,
                              22.0 / 525.0, -1.0 / 40.0)
    safety, fac_min, fac_max, beta = 0.9, 0.2, 10.0, 0.04
    expo = 0.2 - 0.75 * beta  # PI controller exponent (Hairer: 1/5 - 0.75 beta)
    uround = 2.220446049250313e-16

    @njit(cache=False, error_model="numpy")
    def all_finite(v):
        for x in v:
            if not np.isfinite(x):
                return False
        return True

    @njit(cache=False, error_model="numpy")
    def initial_step(y, f0, t, p, rtol, atol, span):
        ns = y.shape[0]
        d0 = 0.0
        d1 = 0.0
        for i in range(ns):
            sc = atol + rtol * abs(y[i])
            d0 += (y[i] / sc) ** 2
            d1 += (f0[i] / sc) ** 2
        d0 = np.sqrt(d0 / ns)
        d1 = np.sqrt(d1 / ns)
        h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
        h0 = min(h0, span)
        f1 = np.empty(ns)
        rhs(y + h0 * f0, t + h0, p, f1)
        d2 = 0.0
        for i in range(ns):
            sc = atol + rtol * abs(y[i])
            d2 += ((f1[i] - f0[i]) / sc) ** 2
        d2 = np.sqrt(d2 / ns) / h0
        dm = max(d1, d2)
        h1 = max(1e-6, h0 * 1e-3) if not (dm > 1e-15) else (0.01 / dm) ** 0.2
        h = min(100.0 * h0, h1, span)
        if not (h > 0.0) or not np.isfinite(h):
            h = min(1e-6, span)
        return h

    @njit(cache=False, error_model="numpy")
    def solve_one(t_eval, y0, p, nonneg, rtol, atol, max_steps, out):
        """Integrate one patient; write out[k] at every t_eval[k] reached; return a status code."""
        ns = y0.shape[0]
        nt = t_eval.shape[0]
        y = y0.copy()
        for i in range(ns):
            out[0, i] = y[i]
        if nt == 1:
            return 0
        t = t_eval[0]
        k1, k2, k3, k4 = np.empty(ns), np.empty(ns), np.empty(ns), np.empty(ns)
        k5, k6, k7 = np.empty(ns), np.empty(ns), np.empty(ns)
        rhs(y, t, p, k1)
        if not all_finite(k1):
            return 1
        h = initial_step(y, k1, t, p, rtol, atol, t_eval[nt - 1] - t)
        err_old = 1e-4
        rejected = False
        last_nonfinite = False
        steps = 0
        k_out = 1
        ynew = np.empty(ns)
        tmp = np.empty(ns)
        while k_out < nt:
            target = t_eval[k_out]
            if steps >= max_steps:
                return 3
            remaining = target - t
            clipped = h >= remaining
            hs = remaining if clipped else h
            if hs <= 16.0 * uround * max(abs(t), 1e-300):
                return 1 if last_nonfinite else 2
            steps += 1
            for i in range(ns):
                tmp[i] = y[i] + hs * a21 * k1[i]
            rhs(tmp, t + c2 * hs, p, k2)
            for i in range(ns):
                tmp[i] = y[i] + hs * (a31 * k1[i] + a32 * k2[i])
            rhs(tmp, t + c3 * hs, p, k3)
            for i in range(ns):
                tmp[i] = y[i] + hs * (a41 * k1[i] + a42 * k2[i] + a43 * k3[i])
            rhs(tmp, t + c4 * hs, p, k4)
            for i in range(ns):
                tmp[i] = y[i] + hs * (a51 * k1[i] + a52 * k2[i] + a53 * k3[i] + a54 * k4[i])
            rhs(tmp, t + c5 * hs, p, k5)
            for i in range(ns):
                tmp[i] = y[i] + hs * (a61 * k1[i] + a62 * k2[i] + a63 * k3[i] + a64 * k4[i] + a65 * k5[i])
            t_new = target if clipped else t + hs
            rhs(tmp, t + hs, p, k6)
            for i in range(ns):
                ynew[i] = y[i] + hs * (a71 * k1[i] + a73 * k3[i] + a74 * k4[i] + a75 * k5[i] + a76 * k6[i])
            rhs(ynew, t + hs, p, k7)
            err = 0.0
            for i in range(ns):
                e = hs * (e1 * k1[i] + e3 * k3[i] + e4 * k4[i] + e5 * k5[i] + e6 * k6[i] + e7 * k7[i])
                sc = atol + rtol * max(abs(y[i]), abs(ynew[i]))
                err += (e / sc) ** 2
            err = np.sqrt(err / ns)
            if not np.isfinite(err) or not all_finite(ynew) or not all_finite(k7):
                last_nonfinite = True
                rejected = True
                h = hs * fac_min
                continue
            last_nonfinite = False
            if err <= 1.0:
                err = max(err, 1e-10)
                fac = min(fac_max, max(fac_min, safety * err ** (-expo) * err_old ** beta))
                if rejected:
                    fac = min(fac, 1.0)
                h_next = hs * fac
                # a step cut short to land on an output time says nothing against the longer one
                h = max(h_next, h) if (clipped and fac >= 1.0) else h_next
                err_old = err
                rejected = False
                t = t_new
                clipped_state = False
                for i in range(ns):
                    if nonneg[i] and ynew[i] < 0.0:
                        ynew[i] = 0.0
                        clipped_state = True
                    y[i] = ynew[i]
                if clipped_state:
                    rhs(y, t, p, k1)
                    if not all_finite(k1):
                        return 1
                else:
                    k1, k7 = k7, k1  # first same as last: reuse the final stage, swap the buffers
                if clipped:
                    for i in range(ns):
                        out[k_out, i] = y[i]
                    k_out += 1
            else:
                fac = max(fac_min, safety * err ** (-0.2))
                h = hs * fac
                rejected = True
        return 0

    @njit(parallel=True, cache=False, error_model="numpy")
    def driver(t_eval, Y0, P, nonneg, rtol, atol, max_steps, Y, status):
        n = P.shape[0]
        for j in prange(n):
            if status[j] != 0:
                continue
            code = solve_one(t_eval, Y0[j], P[j], nonneg, rtol, atol, max_steps, Y[j])
            status[j] = code
        return 0

    return driver
