"""The batch engine's per-patient integrator: one compiled program for every model.

The model enters as ``fn``, a tuple of compiled C-callable functions (``codegen.model_functions``): the
right-hand side, its Jacobian, the root functions of condition events (then those of the window watches),
the initial state, condition truth and scale, the next time a rate switches, event guards and action values,
and the right-hand side of a lane group; then the events as tables (which guard and which actions each event
has, the delays) and the number of window watches. The functions
take raw pointers to their arrays, so this module's functions have the same types for every model:
numba compiles them once per ilsim version and keeps them on disk (``cache=True``), and a new model pays
only for its own small functions (about a second), not for the integrator (tens of seconds). The calls
are indirect; a call costs a few nanoseconds against a step's stage.

Methods (Hairer, Norsett & Wanner, "Solving ODEs I", II.4-II.6; Hairer & Wanner, "Solving ODEs II", IV.7),
their coefficients and control constants read from ``ilsim.engines.tableaux``:
  * DOPRI5: explicit Dormand-Prince 5(4), PI step control (beta 0.04), Hairer's 4th-order dense output
    (``contd5``) and stiffness test (h * |lambda| > STIFF_BOUND on STIFF_STEPS accepted steps);
  * RODAS: Hairer's L-stable 4(3) Rosenbrock method (coefficients of rodas.f, method 1), analytic
    Jacobian, LU with partial pivoting, its 3rd-order dense output;
  * auto: DOPRI5 until the stiffness test fires, then RODAS for the rest of that patient's run.

Lane groups (``solve_group``): for models without condition events, DOPRI5 runs ``lanes`` patients (8 to 64)
side by side, species in rows and patients in columns, so that every stage compiles to vector instructions;
each lane keeps its own time, step size, timed events and outputs, and takes the next patient when its own
is done. A patient that turns stiff (auto), non-finite or too long goes on alone (``continue_patient``).

Events follow the SciPy engine (engines/ode.py): integration restarts at every event and at every time
where a rate switches (``next_switch``); condition crossings are located on the dense output by the
Illinois method; so are the crossings of the comparisons inside a compound condition
(``analysis.window_watches``), where the conditions are tested, so that a window narrower than a step ('S <= 4.3
and S >= 3') is not stepped over; conditions crossing at the same instant fire together, in model order; a condition
that fired re-arms only once it is false by more than the solver tolerance (``dead_band``); actions
take their values from the state before the event; a jump re-tests the conditions that read what it
changed (cascade, bounded by MAX_CASCADE firings at one instant).
"""

import math
import warnings

import numpy as np
from numba import njit, types
from numba.core.errors import NumbaExperimentalFeatureWarning
from numba.extending import intrinsic

from ilsim.engines.batch.powers import exp2_approx, log2_approx
from ilsim.engines.tableaux import (  # noqa: F401  (numba reads them as compile-time constants)
    A21,
    A31,
    A32,
    A41,
    A42,
    A43,
    A51,
    A52,
    A53,
    A54,
    A61,
    A62,
    A63,
    A64,
    A65,
    A71,
    A73,
    A74,
    A75,
    A76,
    AUTO,
    BAD_DELAY,
    BAD_INITIAL,
    BETA,
    C2,
    C3,
    C4,
    C5,
    D1,
    D3,
    D4,
    D5,
    D6,
    D7,
    DOPRI5,
    E1,
    E3,
    E4,
    E5,
    E6,
    E7,
    ENDLESS_EVENTS,
    EXPO,
    FAC_MAX,
    FAC_MIN,
    GAMMA,
    MAX_CASCADE,
    MAX_PENDING,
    MAX_STEPS,
    NON_FINITE,
    NONSTIFF_RESET,
    OK,
    PENDING_FULL,
    R_A21,
    R_A31,
    R_A32,
    R_A41,
    R_A42,
    R_A43,
    R_A51,
    R_A52,
    R_A53,
    R_A54,
    R_C2,
    R_C3,
    R_C4,
    R_C21,
    R_C31,
    R_C32,
    R_C41,
    R_C42,
    R_C43,
    R_C51,
    R_C52,
    R_C53,
    R_C54,
    R_C61,
    R_C62,
    R_C63,
    R_C64,
    R_C65,
    R_D1,
    R_D2,
    R_D3,
    R_D4,
    R_FAC_MAX,
    R_H21,
    R_H22,
    R_H23,
    R_H24,
    R_H25,
    R_H31,
    R_H32,
    R_H33,
    R_H34,
    R_H35,
    RODAS,
    SAFETY,
    STEP_UNDERFLOW,
    STIFF_BOUND,
    STIFF_STEPS,
    STIFF_STEPS_IN_LANES,
    UROUND,
)

# Functions as arguments are "experimental" in numba's words; they are what makes one compiled integrator serve
# every model, and the tests run every engine through them. The warning would only reach users.
warnings.filterwarnings("ignore", ".*First-class function type", NumbaExperimentalFeatureWarning)

# ---- the model's functions: their C signatures (pointers to float64), in the order of the tuple ``fn``
F64P = types.CPointer(types.float64)
SIGNATURES = {
    "rhs": types.void(types.float64, F64P, F64P, F64P),  # (t, y, p, dy/dt)
    "jac": types.void(types.float64, F64P, F64P, F64P),  # (t, y, p, J row by row)
    "roots": types.void(types.float64, F64P, F64P, F64P),  # (t, y, p, g): per condition, then per watch (fn[14])
    "initial": types.void(F64P, F64P),  # (p, y0)
    "holds": types.int64(types.int64, types.float64, F64P, F64P),  # (condition, t, y, p) -> 1 if it holds
    "scale": types.float64(types.int64, types.float64, F64P, F64P),  # (condition, t, y, p) -> |a| + |b|
    "next_switch": types.float64(types.float64, types.float64, F64P),  # (t, t_stop, p) -> first switch in (t, t_stop)
    "guard": types.int64(types.int64, types.float64, F64P, F64P),  # (guard, t, y, p) -> 1 if it holds
    "value": types.float64(types.int64, types.float64, F64P, F64P),  # (action value, t, y, p) -> the value
    "rhs_lanes": types.void(F64P, F64P, F64P, F64P),  # (t[lanes], y[ns x lanes], p[np x lanes], out[ns x lanes])
}


@intrinsic
def _ptr(typingctx, arr):
    """The data pointer of a C-contiguous float64 array (a strided view would be read wrongly: refused)."""
    if not (isinstance(arr, types.Array) and arr.layout == "C" and arr.dtype == types.float64):
        raise TypeError(f"_ptr takes a C-contiguous float64 array, not {arr}")

    def codegen(context, builder, signature, args):
        return context.make_array(signature.args[0])(context, builder, args[0]).data
    return F64P(arr), codegen


# fused multiply-add and reciprocals; never the nnan/ninf flags, which would drop the finiteness checks
_jit = njit(cache=True, error_model="numpy", fastmath={"contract", "arcp"})
# the step loop's helpers are inlined into it (numba IR inlining): a call per helper per step cost as much as the
# arithmetic of a small model's step
_inline = njit(cache=True, error_model="numpy", fastmath={"contract", "arcp"}, inline="always")


@_inline
def rhs_into(fn, y, t, p, out):
    fn[0](t, _ptr(y), _ptr(p), _ptr(out))


@_inline
def jac_into(fn, y, t, p, out):
    fn[1](t, _ptr(y), _ptr(p), _ptr(out))


@_inline
def roots_into(fn, t, y, p, out):
    fn[2](t, _ptr(y), _ptr(p), _ptr(out))


@_inline
def initial_into(fn, p, out):
    fn[3](_ptr(p), _ptr(out))


@_inline
def condition_holds(fn, slot, t, y, p):
    return fn[4](slot, t, _ptr(y), _ptr(p)) != 0


@_inline
def condition_scale(fn, slot, t, y, p):
    return fn[5](slot, t, _ptr(y), _ptr(p))


@_inline
def next_switch(fn, t, t_stop, p):
    return fn[6](t, t_stop, _ptr(p))


@_inline
def guard_holds(fn, k, t, y, p):
    """Whether event k may fire (its guard, if it has one, holds); fn[10] holds each event's guard slot."""
    slot = fn[10][k]
    return slot < 0 or fn[7](slot, t, _ptr(y), _ptr(p)) != 0


@_jit
def action_values(fn, k, t, y, p, v):
    """Event k's action values from the state (t, y, p), into v[0 ..] (rows fn[11][k] .. fn[11][k + 1] of fn[12])."""
    lo, hi = fn[11][k], fn[11][k + 1]
    table = fn[12]
    for a in range(lo, hi):
        v[a - lo] = fn[8](table[a, 3], t, _ptr(y), _ptr(p))


@_jit
def apply_actions(fn, k, t, y, p, given):
    """Event k's set/add actions (rows fn[11][k] .. fn[11][k + 1] of the table fn[12]); every value is
    computed from the state before the event, then all are applied. ``given``: the values taken when a delayed
    event triggered (a row of its queue), or an empty array to compute them now."""
    lo, hi = fn[11][k], fn[11][k + 1]
    table = fn[12]
    if given.shape[0] >= hi - lo and hi > lo:
        v = given
    else:
        v = np.empty(hi - lo)
        action_values(fn, k, t, y, p, v)
    for a in range(lo, hi):
        target = y if table[a, 1] == 0 else p
        if table[a, 0] == 0:
            target[table[a, 2]] = v[a - lo]
        else:
            target[table[a, 2]] += v[a - lo]


@_inline
def rhs_lanes(fn, y, t, p, out):
    fn[9](_ptr(t), _ptr(y), _ptr(p), _ptr(out))


@_inline
def all_finite(v):
    for x in v:
        if not np.isfinite(x):
            return False
    return True


@_inline
def error_norm(e, y, ynew, rtol, atol):
    """sqrt(mean((e_i / sc_i)^2)), sc_i = atol_i + rtol * max(|y_i|, |ynew_i|) (atol: one per species)."""
    ns = y.shape[0]
    s = 0.0
    for i in range(ns):
        sc = atol[i] + rtol * max(abs(y[i]), abs(ynew[i]))
        s += (e[i] / sc) ** 2
    return math.sqrt(s / ns)


@_jit
def initial_step(fn, y, f0, t, p, rtol, atol, span, tmp, f1):
    """Hairer's starting-step heuristic (Solving ODEs I, II.4), for a 5th-order method."""
    ns = y.shape[0]
    d0 = 0.0
    d1 = 0.0
    for i in range(ns):
        sc = atol[i] + rtol * abs(y[i])
        d0 += (y[i] / sc) ** 2
        d1 += (f0[i] / sc) ** 2
    d0 = math.sqrt(d0 / ns)
    d1 = math.sqrt(d1 / ns)
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    h0 = min(h0, span)
    for i in range(ns):
        tmp[i] = y[i] + h0 * f0[i]
    rhs_into(fn, tmp, t + h0, p, f1)
    d2 = 0.0
    for i in range(ns):
        sc = atol[i] + rtol * abs(y[i])
        d2 += ((f1[i] - f0[i]) / sc) ** 2
    d2 = math.sqrt(d2 / ns) / h0
    dm = max(d1, d2)
    h1 = max(1e-6, h0 * 1e-3) if not (dm > 1e-15) else (0.01 / dm) ** 0.2
    h = min(100.0 * h0, h1, span)
    if not (h > 0.0) or not np.isfinite(h):
        h = min(1e-6, span)
    return h


# ------------------------------------------------------------------------------------ DOPRI5
@_inline
def dopri_try(fn, t, h, y, f0, p, k2, k3, k4, k5, k6, k7, tmp, ynew, ysti, rtol, atol):
    """One trial step from (t, y) with f0 = f(t, y): stages k2..k7, the new state; returns the error norm."""
    ns = y.shape[0]
    for i in range(ns):
        tmp[i] = y[i] + h * A21 * f0[i]
    rhs_into(fn, tmp, t + C2 * h, p, k2)
    for i in range(ns):
        tmp[i] = y[i] + h * (A31 * f0[i] + A32 * k2[i])
    rhs_into(fn, tmp, t + C3 * h, p, k3)
    for i in range(ns):
        tmp[i] = y[i] + h * (A41 * f0[i] + A42 * k2[i] + A43 * k3[i])
    rhs_into(fn, tmp, t + C4 * h, p, k4)
    for i in range(ns):
        tmp[i] = y[i] + h * (A51 * f0[i] + A52 * k2[i] + A53 * k3[i] + A54 * k4[i])
    rhs_into(fn, tmp, t + C5 * h, p, k5)
    for i in range(ns):
        ysti[i] = y[i] + h * (A61 * f0[i] + A62 * k2[i] + A63 * k3[i] + A64 * k4[i] + A65 * k5[i])
    rhs_into(fn, ysti, t + h, p, k6)
    for i in range(ns):
        ynew[i] = y[i] + h * (A71 * f0[i] + A73 * k3[i] + A74 * k4[i] + A75 * k5[i] + A76 * k6[i])
    rhs_into(fn, ynew, t + h, p, k7)
    for i in range(ns):
        tmp[i] = h * (E1 * f0[i] + E3 * k3[i] + E4 * k4[i] + E5 * k5[i] + E6 * k6[i] + E7 * k7[i])
    return error_norm(tmp, y, ynew, rtol, atol)


@_jit
def dopri_dense(h, y, ynew, f0, k3, k4, k5, k6, k7, D):
    """Coefficients of the continuous extension over an accepted step (Hairer's contd5)."""
    for i in range(y.shape[0]):
        ydiff = ynew[i] - y[i]
        bspl = h * f0[i] - ydiff
        D[0, i] = y[i]
        D[1, i] = ydiff
        D[2, i] = bspl
        D[3, i] = ydiff - h * k7[i] - bspl
        D[4, i] = h * (D1 * f0[i] + D3 * k3[i] + D4 * k4[i] + D5 * k5[i] + D6 * k6[i] + D7 * k7[i])


# ------------------------------------------------------------------------------------ RODAS
@_jit
def lu_factor(A, piv):
    """In-place LU with partial pivoting; False when a pivot is zero or not finite."""
    n = A.shape[0]
    for k in range(n):
        m = k
        big = abs(A[k, k])
        for i in range(k + 1, n):
            if abs(A[i, k]) > big:
                big = abs(A[i, k])
                m = i
        piv[k] = m
        if not (big > 0.0) or not np.isfinite(big):
            return False
        if m != k:
            for j in range(n):
                A[k, j], A[m, j] = A[m, j], A[k, j]
        inv = 1.0 / A[k, k]
        for i in range(k + 1, n):
            A[i, k] *= inv
            a = A[i, k]
            if a != 0.0:
                for j in range(k + 1, n):
                    A[i, j] -= a * A[k, j]
    return True


@_jit
def lu_solve(A, piv, b):
    """Solve A x = b in place, A and piv from lu_factor."""
    n = A.shape[0]
    for k in range(n):
        m = piv[k]
        if m != k:
            b[k], b[m] = b[m], b[k]
    for i in range(1, n):
        s = b[i]
        for j in range(i):
            s -= A[i, j] * b[j]
        b[i] = s
    for i in range(n - 1, -1, -1):
        s = b[i]
        for j in range(i + 1, n):
            s -= A[i, j] * b[j]
        b[i] = s / A[i, i]


@_jit
def rodas_try(fn, t, h, y, f0, dT, J, W, piv, p, K, ynew, u, rtol, atol):
    """One trial RODAS step with J = df/dy and dT = df/dt at (t, y); k1..k6 in K[0..5]; returns the error norm.

    Each stage solves (I / (h gamma) - J) k_i = f(t + c_i h, y + sum a_ij k_j) + sum (C_ij / h) k_j + h d_i dT.
    """
    ns = y.shape[0]
    k1, k2, k3, k4, k5, k6 = K[0], K[1], K[2], K[3], K[4], K[5]
    fb = K[6]
    hg = 1.0 / (h * GAMMA)
    for i in range(ns):
        for j in range(ns):
            W[i, j] = -J[i, j]
        W[i, i] += hg
    if not lu_factor(W, piv):
        return np.inf
    ih = 1.0 / h
    for i in range(ns):
        k1[i] = f0[i] + h * R_D1 * dT[i]
    lu_solve(W, piv, k1)
    for i in range(ns):
        u[i] = y[i] + R_A21 * k1[i]
    rhs_into(fn, u, t + R_C2 * h, p, fb)
    for i in range(ns):
        k2[i] = fb[i] + h * R_D2 * dT[i] + ih * R_C21 * k1[i]
    lu_solve(W, piv, k2)
    for i in range(ns):
        u[i] = y[i] + R_A31 * k1[i] + R_A32 * k2[i]
    rhs_into(fn, u, t + R_C3 * h, p, fb)
    for i in range(ns):
        k3[i] = fb[i] + h * R_D3 * dT[i] + ih * (R_C31 * k1[i] + R_C32 * k2[i])
    lu_solve(W, piv, k3)
    for i in range(ns):
        u[i] = y[i] + R_A41 * k1[i] + R_A42 * k2[i] + R_A43 * k3[i]
    rhs_into(fn, u, t + R_C4 * h, p, fb)
    for i in range(ns):
        k4[i] = fb[i] + h * R_D4 * dT[i] + ih * (R_C41 * k1[i] + R_C42 * k2[i] + R_C43 * k3[i])
    lu_solve(W, piv, k4)
    for i in range(ns):
        u[i] = y[i] + R_A51 * k1[i] + R_A52 * k2[i] + R_A53 * k3[i] + R_A54 * k4[i]
    rhs_into(fn, u, t + h, p, fb)
    for i in range(ns):
        k5[i] = fb[i] + ih * (R_C51 * k1[i] + R_C52 * k2[i] + R_C53 * k3[i] + R_C54 * k4[i])
    lu_solve(W, piv, k5)
    for i in range(ns):
        u[i] += k5[i]
    rhs_into(fn, u, t + h, p, fb)
    for i in range(ns):
        k6[i] = fb[i] + ih * (R_C61 * k1[i] + R_C62 * k2[i] + R_C63 * k3[i] + R_C64 * k4[i] + R_C65 * k5[i])
    lu_solve(W, piv, k6)
    for i in range(ns):
        ynew[i] = u[i] + k6[i]
    return error_norm(k6, y, ynew, rtol, atol)  # k6 is the difference of the embedded solutions


@_jit
def rodas_dense(y, ynew, K, D):
    for i in range(y.shape[0]):
        D[0, i] = y[i]
        D[1, i] = ynew[i]
        D[2, i] = R_H21 * K[0, i] + R_H22 * K[1, i] + R_H23 * K[2, i] + R_H24 * K[3, i] + R_H25 * K[4, i]
        D[3, i] = R_H31 * K[0, i] + R_H32 * K[1, i] + R_H33 * K[2, i] + R_H34 * K[3, i] + R_H35 * K[4, i]


@_jit
def build_dense(rodas, h, y, ynew, f0, K, k3, k4, k5, k6, k7, D):
    if rodas:
        rodas_dense(y, ynew, K, D)
    else:
        dopri_dense(h, y, ynew, f0, k3, k4, k5, k6, k7, D)
    return True


@_inline
def dense_eval(rodas, D, theta, out):
    """The state at t + theta * h inside the last accepted step."""
    th1 = 1.0 - theta
    if rodas:
        for i in range(out.shape[0]):
            out[i] = th1 * D[0, i] + theta * (D[1, i] + th1 * (D[2, i] + theta * D[3, i]))
    else:
        for i in range(out.shape[0]):
            out[i] = D[0, i] + theta * (D[1, i] + th1 * (D[2, i] + theta * (D[3, i] + th1 * D[4, i])))


@_jit
def time_derivative(fn, y, t, p, f0, dT, tmp):
    """df/dt by a forward difference (only for models whose rates read t)."""
    delta = math.sqrt(UROUND * max(1e-5, abs(t)))
    rhs_into(fn, y, t + delta, p, tmp)
    for i in range(y.shape[0]):
        dT[i] = (tmp[i] - f0[i]) / delta


# ------------------------------------------------------------------------------------ events
@_inline
def clip(y, nonneg):
    changed = False
    for i in range(y.shape[0]):
        if nonneg[i] and y[i] < 0.0:
            y[i] = 0.0
            changed = True
    return changed


@_jit
def dead_band(fn, slot, t, y, p, rtol, atol):
    """How far below zero condition ``slot``'s root function must go before the condition counts as false
    again: the solver tolerance on the compared quantities, rtol * (|a| + |b|) + atol (as engines/ode.py)."""
    floor = atol.min()  # the smallest species' absolute tolerance
    band = rtol * condition_scale(fn, slot, t, y, p) + floor
    return band if np.isfinite(band) else floor


@_jit
def locate_root(fn, slot, offset, t, h, rodas, D, p, g_a, g_b, ybuf, gbuf):
    """theta in (0, 1] where root function ``slot`` plus ``offset`` changes sign in the step (Illinois method);
    g_a and g_b include the offset.

    Returns the end of the final bracket on the far side of the crossing, so the crossing lies behind it.
    """
    a, fa, b, fb = 0.0, g_a, 1.0, g_b
    side = 0
    tol = 4.0 * UROUND * max(abs(t), abs(t + h)) / h  # in units of theta, as SciPy's brentq xtol = 4 eps
    for _ in range(200):
        if b - a <= tol or fb == 0.0:
            break
        # written from b as the C kernel has it: with fa within rounding of zero (a strict condition's margin at
        # the start of a segment) it gives a back, and the bracket is bisected, not crept along by 1e-300
        theta = b - fb * (b - a) / (fb - fa) if fb != fa else 0.5 * (a + b)
        if not (a < theta < b):
            theta = 0.5 * (a + b)
        dense_eval(rodas, D, theta, ybuf)
        roots_into(fn, t + theta * h, ybuf, p, gbuf)
        fm = gbuf[slot] + offset
        if (fm > 0.0) == (fa > 0.0) and fm != 0.0:
            a, fa = theta, fm
            if side == -1:
                fb *= 0.5
            side = -1
        else:
            b, fb = theta, fm
            if side == 1:
                fa *= 0.5
            side = 1
    return b


# ---- delayed events (SBML event delays), as the SciPy engine runs them: a triggered event with a delay goes into
# its patient's queue of pending firings, a row (time due, order, event, the action values if it takes them at the
# trigger) kept sorted by time due then order of triggering; fn[13] holds per event (delay's value slot or -1,
# persistent, values at trigger, condition slot or -1). ``pending[0]`` counts the rows in use.
@_inline
def pending_queue(fn):
    """The queue for a patient: MAX_PENDING rows if the model has a delayed event, else none."""
    info = fn[13]
    rows = 0
    width = 3
    for k in range(info.shape[0]):
        if info[k, 0] >= 0:
            rows = MAX_PENDING
            width = max(width, 3 + fn[11][k + 1] - fn[11][k])
    return np.empty((rows, width)), np.zeros(1, dtype=np.int64)


@_jit
def enqueue(fn, k, t, y, p, fired, queue, pending):
    """Event k triggered at t with a delay: its row goes into the queue; returns a status."""
    info = fn[13]
    delay = fn[8](info[k, 0], t, _ptr(y), _ptr(p))
    if not (delay >= 0.0 and np.isfinite(delay)):
        return BAD_DELAY
    n = pending[0]
    if n >= queue.shape[0]:
        return PENDING_FULL
    due = t + delay
    order = fired[1] + n  # the SciPy engine's order: firings so far plus the pending ones
    at = n
    while at > 0 and (queue[at - 1, 0] > due or (queue[at - 1, 0] == due and queue[at - 1, 1] > order)):
        at -= 1
    for r in range(n, at, -1):
        for c in range(queue.shape[1]):
            queue[r, c] = queue[r - 1, c]
    queue[at, 0] = due
    queue[at, 1] = order
    queue[at, 2] = k
    if info[k, 2]:
        action_values(fn, k, t, y, p, queue[at, 3:])
    pending[0] = n + 1
    return OK


@_inline
def drop_pending(fn, k, queue, pending):
    """Condition event k is false again: its pending firings are dropped unless it is persistent."""
    if fn[13][k, 1]:
        return
    n = pending[0]
    kept = 0
    for r in range(n):
        if queue[r, 2] != k:
            if kept != r:
                for c in range(queue.shape[1]):
                    queue[kept, c] = queue[r, c]
            kept += 1
    pending[0] = kept


@_jit
def trigger(fn, k, t, y, p, nonneg, fired, queue, pending):
    """Event k triggers at t: (status, whether its actions were applied now). Not applied when its guard withholds
    it, or when it has a delay (queued: its guard is tested now, its persistence when it comes due)."""
    if not guard_holds(fn, k, t, y, p):
        return OK, False
    if fn[13][k, 0] >= 0:
        return enqueue(fn, k, t, y, p, fired, queue, pending), False
    apply_actions(fn, k, t, y, p, np.empty(0))
    clip(y, nonneg)
    count_firing(k, t, fired)
    return OK, True


@_jit
def fire(fn, k, t, y, p, nonneg, fired, armed, band, rtol, atol, cond_event, touches, stack_ev, stack_pos, gbuf,
         queue, pending, given):
    """Fire event k (if its guard holds; into the queue if it has a delay) and every condition event its jump
    makes true, depth first as the SciPy engine does; returns ENDLESS_EVENTS if more than MAX_CASCADE fire at
    this instant. A condition made false re-arms only if it is false beyond its dead band. ``given`` (a pending
    firing come due): None, or the values it took at its trigger (an empty array: computed now)."""
    if given is None:
        code, applied = trigger(fn, k, t, y, p, nonneg, fired, queue, pending)
        if not applied:
            return code
    else:
        apply_actions(fn, k, t, y, p, given)
        clip(y, nonneg)
        count_firing(k, t, fired)
    count = 1
    top = 0
    stack_ev[0] = k
    stack_pos[0] = 0
    nc = cond_event.shape[0]
    while top >= 0:
        e = stack_ev[top]
        s = stack_pos[top]
        if s >= nc:
            top -= 1
            continue
        stack_pos[top] = s + 1
        if not touches[e, s]:
            continue
        truth = condition_holds(fn, s, t, y, p)
        if armed[s] and truth:
            if count >= MAX_CASCADE or top + 1 >= stack_ev.shape[0]:
                return ENDLESS_EVENTS
            armed[s] = False
            band[s] = dead_band(fn, s, t, y, p, rtol, atol)
            kc = cond_event[s]
            code, applied = trigger(fn, kc, t, y, p, nonneg, fired, queue, pending)
            if code != OK:
                return code
            if applied:
                count += 1
                top += 1
                stack_ev[top] = kc
                stack_pos[top] = 0
        elif not truth and not armed[s]:
            roots_into(fn, t, y, p, gbuf)
            if gbuf[s] < -band[s]:  # exactly at its root ('t > k' at t = k): unchanged
                armed[s] = True
                drop_pending(fn, cond_event[s], queue, pending)
    return OK


@_jit
def run_due(fn, t, y, p, nonneg, fired, armed, band, rtol, atol, cond_event, touches, stack_ev, stack_pos, gbuf, queue,
            pending, vbuf):
    """The pending firings due by t, in the order they were triggered (with the cascades their jumps set off); a
    firing whose trigger is false now is dropped unless its event is persistent. Returns a status."""
    info = fn[13]
    while pending[0] > 0 and queue[0, 0] <= t:
        k = int(queue[0, 2])
        for c in range(vbuf.shape[0]):
            vbuf[c] = queue[0, 3 + c]
        n = pending[0]
        for r in range(n - 1):
            for c in range(queue.shape[1]):
                queue[r, c] = queue[r + 1, c]
        pending[0] = n - 1
        if info[k, 1]:
            holds = True
        elif info[k, 3] >= 0:  # a condition holds while disarmed (seen false, it re-armed and dropped the firing)
            holds = not armed[info[k, 3]]
        else:
            holds = guard_holds(fn, k, t, y, p)  # a timed event: its guard is its trigger
        if holds:
            code = fire(fn, k, t, y, p, nonneg, fired, armed, band, rtol, atol, cond_event, touches, stack_ev, stack_pos,
                        gbuf, queue, pending, vbuf if info[k, 2] else vbuf[:0])
            if code != OK:
                return code
    return OK


@_jit
def retest(fn, t, y, p, nonneg, fired, armed, band, rtol, atol, cond_event, touches, stack_ev, stack_pos, gbuf, queue,
           pending):
    """At a segment's end, every condition is tested where it is, as the SciPy engine does: one that holds
    now fires ('time == 3' at the switch at 3), one false beyond its dead band re-arms; returns a status."""
    for s in range(cond_event.shape[0]):
        truth = condition_holds(fn, s, t, y, p)
        if armed[s] and truth:
            armed[s] = False
            band[s] = dead_band(fn, s, t, y, p, rtol, atol)
            code = fire(fn, cond_event[s], t, y, p, nonneg, fired, armed, band, rtol, atol, cond_event, touches,
                        stack_ev, stack_pos, gbuf, queue, pending, None)
            if code != OK:
                return code
        elif not truth and not armed[s]:
            roots_into(fn, t, y, p, gbuf)
            if gbuf[s] < -band[s]:
                armed[s] = True
                drop_pending(fn, cond_event[s], queue, pending)
    return OK


@_inline
def record(out, k, y, p, nonneg):
    """Output k: the state (non-negative species clipped at zero), then the parameters when ``out`` has room
    for them (a single run records them, since events can change them; a cohort does not)."""
    ns = y.shape[0]
    for i in range(ns):
        v = y[i]
        out[k, i] = 0.0 if (nonneg[i] and v < 0.0) else v
    if out.shape[1] > ns:
        for q in range(p.shape[0]):
            out[k, ns + q] = p[q]


@_inline
def count_firing(k, t, fired):
    """Event k fired at t. ``fired`` holds, per patient: the room of its firing log L (set by the engine; 0 in a
    cohort, which keeps counts only), the number of firings m, L (event, time) pairs, then the count of each
    event; float64 counts are exact far beyond any run's limit."""
    room = int(fired[0])
    m = int(fired[1])
    if m < room:
        fired[2 + 2 * m] = k
        fired[3 + 2 * m] = t
    fired[1] = m + 1
    fired[2 + 2 * room + k] += 1.0


# ------------------------------------------------------------------------------------ one patient
@_jit
def solve_patient(fn, t_eval, p, nonneg, rtol, atol, max_steps, method, timed_t, timed_ev, cond_event, touches,
                  uses_t, out, fired):
    """Integrate one patient over t_eval (p is its own parameter copy, changed by events).

    Writes out[k] at every output time reached and counts firings in ``fired``; returns
    (status, used), used True when RODAS integrated any part of the run (chosen, or switched to by auto).
    """
    ns = nonneg.shape[0]
    y = np.empty(ns)
    initial_into(fn, p, y)
    for i in range(ns):
        if not np.isfinite(y[i]) or (nonneg[i] and y[i] < 0.0):
            return BAD_INITIAL, False
    zero = np.int64(0)  # not the literal 0: numba would compile continue_patient once more for literal arguments
    return continue_patient(fn, t_eval[0], y, zero, zero, zero, method == RODAS, t_eval, p, nonneg, rtol, atol, max_steps, method,
                            timed_t, timed_ev, cond_event, touches, uses_t, out, fired)


@_jit
def continue_patient(fn, t, y, k_grid, k_timed, steps, rodas, t_eval, p, nonneg, rtol, atol, max_steps, method, timed_t,
                     timed_ev, cond_event, touches, uses_t, out, fired):
    """Integrate one patient from time t and state y (outputs before t_eval[k_grid] and timed events before
    timed_t[k_timed] done, ``steps`` taken) to the end; conditions are armed from the state at t.
    A patient handed over by a lane group (solve_group) continues here, alone."""
    ns = nonneg.shape[0]
    nt = t_eval.shape[0]
    nc = cond_event.shape[0]
    ng = nc + fn[14]  # root functions: the conditions', then the window watches' (analysis.window_watches)
    n_timed = timed_t.shape[0]
    f0 = np.empty(ns)
    ynew = np.empty(ns)
    ysti = np.empty(ns)
    ybuf = np.empty(ns)
    K = np.empty((7, ns))  # RODAS stages
    k2, k3, k4, k5, k6, k7, tmp = np.empty(ns), np.empty(ns), np.empty(ns), np.empty(ns), np.empty(ns), np.empty(ns), np.empty(ns)
    D = np.empty((5, ns))
    J = np.empty((ns, ns))
    W = np.empty((ns, ns))
    piv = np.empty(ns, dtype=np.int64)
    dT = np.zeros(ns)
    g_old = np.empty(ng)
    g_new = np.empty(ng)
    gbuf = np.empty(ng)
    armed = np.empty(nc, dtype=np.bool_)
    band = np.zeros(nc)  # re-arm tolerance of each disarmed condition (dead_band)
    stack_ev = np.empty(MAX_CASCADE + 1, dtype=np.int64)
    stack_pos = np.empty(MAX_CASCADE + 1, dtype=np.int64)
    queue, pending = pending_queue(fn)  # a patient handed over by a lane group has none pending (no delays there)
    vbuf = np.empty(queue.shape[1] - 3)

    t_end = t_eval[nt - 1]
    for s in range(nc):  # a condition already true at the start does not fire
        armed[s] = not condition_holds(fn, s, t, y, p)
        if not armed[s]:
            band[s] = dead_band(fn, s, t, y, p, rtol, atol)
    used = rodas  # whether RODAS integrated any part of the run
    iasti = 0
    nonsti = 0
    while True:
        while k_timed < n_timed and timed_t[k_timed] <= t:
            code = fire(fn, timed_ev[k_timed], t, y, p, nonneg, fired, armed, band, rtol, atol, cond_event, touches,
                        stack_ev, stack_pos, gbuf, queue, pending, None)
            if code != OK:
                return code, used
            k_timed += 1
        if pending[0] > 0:
            code = run_due(fn, t, y, p, nonneg, fired, armed, band, rtol, atol, cond_event, touches, stack_ev, stack_pos,
                           gbuf, queue, pending, vbuf)
            if code != OK:
                return code, used
        if nc > 0:
            code = retest(fn, t, y, p, nonneg, fired, armed, band, rtol, atol, cond_event, touches, stack_ev, stack_pos,
                          gbuf, queue, pending)
            if code != OK:
                return code, used
            if pending[0] > 0:  # a delay of 0 triggered just now
                code = run_due(fn, t, y, p, nonneg, fired, armed, band, rtol, atol, cond_event, touches, stack_ev,
                               stack_pos, gbuf, queue, pending, vbuf)
                if code != OK:
                    return code, used
        while k_grid < nt and t_eval[k_grid] <= t:  # an output at an event time shows the state after it
            record(out, k_grid, y, p, nonneg)
            k_grid += 1
        if t >= t_end:
            return OK, used
        t_stop = timed_t[k_timed] if k_timed < n_timed else t_end
        if pending[0] > 0:
            t_stop = min(t_stop, max(queue[0, 0], t))
        t_stop = next_switch(fn, t, t_stop, p)

        # ---- one segment, [t, t_stop], from a fresh start
        rhs_into(fn, y, t, p, f0)
        if not all_finite(f0):
            return NON_FINITE, used
        if t_stop - t <= 16.0 * UROUND * max(abs(t), abs(t_stop)):  # a sliver between two events
            for i in range(ns):
                y[i] += (t_stop - t) * f0[i]
            clip(y, nonneg)
            t = t_stop
            continue
        h = initial_step(fn, y, f0, t, p, rtol, atol, t_stop - t, ybuf, K[0])
        if nc > 0:
            roots_into(fn, t, y, p, g_old)
        need_jac = True
        log_err_old = math.log(1e-4)  # the PI controller's memory, kept as a logarithm: one log and one exp per step
        h_acc = 0.0  # the last accepted RODAS step and its error (predictive control); none yet in this segment
        err_acc = 1e-2
        rejected = False
        last_nonfinite = False
        hit = -1
        th_hit = 1.0  # where in the step the hit lies
        watching = False  # watches matter only while a condition can fire (as engines/ode.py)
        for s in range(nc):
            watching = watching or armed[s]
        while True:
            if steps >= max_steps:
                return MAX_STEPS, used
            span = t_stop - t
            last = h >= span
            hs = span if last else h
            if hs <= 16.0 * UROUND * max(abs(t), 1e-300):
                return (NON_FINITE if last_nonfinite else STEP_UNDERFLOW), used
            steps += 1
            if rodas:
                if need_jac:
                    jac_into(fn, y, t, p, J)
                    if uses_t:
                        time_derivative(fn, y, t, p, f0, dT, ybuf)
                    need_jac = False
                err = rodas_try(fn, t, hs, y, f0, dT, J, W, piv, p, K, ynew, ybuf, rtol, atol)
            else:
                err = dopri_try(fn, t, hs, y, f0, p, k2, k3, k4, k5, k6, k7, tmp, ynew, ysti, rtol, atol)
            if not np.isfinite(err) or not all_finite(ynew):
                last_nonfinite = True
                rejected = True
                h = hs * 0.2
                continue
            last_nonfinite = False
            if err > 1.0:
                h = hs * max(FAC_MIN, SAFETY * err ** (-0.25 if rodas else -0.2))
                rejected = True
                continue
            # accepted: dense output, then look for condition crossings inside the step
            t_new = t_stop if last else t + hs
            dense = False  # built only for a step that holds an output time or a crossing
            if k_grid < nt and t_eval[k_grid] <= t_new:
                dense = build_dense(rodas, hs, y, ynew, f0, K, k3, k4, k5, k6, k7, D)
            t_hit = t_new
            if nc > 0:
                # at the segment's end, just before it: a condition that switches there is tested there (retest)
                roots_into(fn, np.nextafter(t_new, t) if last else t_new, ynew, p, g_new)
                for s in range(nc):
                    off = 0.0 if armed[s] else band[s]  # a disarmed condition must fall below -band to re-arm
                    a, b = g_old[s] + off, g_new[s] + off
                    if a == b:
                        continue
                    crossed = (a <= 0.0 and b >= 0.0) if armed[s] else (a >= 0.0 and b <= 0.0)
                    if crossed:
                        if not dense:
                            dense = build_dense(rodas, hs, y, ynew, f0, K, k3, k4, k5, k6, k7, D)
                        th = locate_root(fn, s, off, t, hs, rodas, D, p, a, b, ybuf, gbuf)
                        t_s = t + th * hs
                        if hit < 0 or t_s < t_hit:
                            hit, t_hit, th_hit = s, t_s, (t_s - t) / hs
                # a watched comparison that changes truth inside the step (one sitting on zero where the step
                # starts has just been stopped at): where an armed condition then holds, the step ends there and
                # the conditions are tested (retest); a crossing that opens no window costs no restart
                for w in range(nc, ng):
                    a, b = g_old[w], g_new[w]
                    if not watching or a == 0.0 or (a >= 0.0) == (b >= 0.0):
                        continue
                    if not dense:
                        dense = build_dense(rodas, hs, y, ynew, f0, K, k3, k4, k5, k6, k7, D)
                    th = locate_root(fn, w, 0.0, t, hs, rodas, D, p, a, b, ybuf, gbuf)
                    t_s = t + th * hs
                    if hit >= 0 and t_s >= t_hit:
                        continue
                    # the state the hit below moves to: at the very theta whose side the search found
                    dense_eval(rodas, D, th, ybuf)
                    clip(ybuf, nonneg)
                    for s in range(nc):
                        if armed[s] and condition_holds(fn, s, t_s, ybuf, p):
                            hit, t_hit, th_hit = w, t_s, th
                            break
            if hit >= 0:
                while k_grid < nt and t_eval[k_grid] < t_hit:
                    dense_eval(rodas, D, (t_eval[k_grid] - t) / hs, ybuf)
                    record(out, k_grid, ybuf, p, nonneg)
                    k_grid += 1
                dense_eval(rodas, D, th_hit, y)
                clip(y, nonneg)
                t = t_hit
                if hit >= nc:  # a watch: the conditions are tested here, at the top of the loop
                    break
                if not armed[hit]:
                    armed[hit] = True
                    drop_pending(fn, cond_event[hit], queue, pending)
                    break
                # conditions that crossed at this same instant (equal thresholds) are true now: they fire
                # too, in model order (left armed, one already past its root would never be seen to cross)
                for s in range(nc):
                    if armed[s] and (s == hit or condition_holds(fn, s, t, y, p)):
                        armed[s] = False
                        band[s] = dead_band(fn, s, t, y, p, rtol, atol)
                        code = fire(fn, cond_event[s], t, y, p, nonneg, fired, armed, band, rtol, atol, cond_event,
                                    touches, stack_ev, stack_pos, gbuf, queue, pending, None)
                        if code != OK:
                            return code, used
                break
            while k_grid < nt and t_eval[k_grid] < t_stop and t_eval[k_grid] <= t_new:
                dense_eval(rodas, D, (t_eval[k_grid] - t) / hs, ybuf)
                record(out, k_grid, ybuf, p, nonneg)
                k_grid += 1
            if not rodas and method == AUTO:  # Hairer's stiffness test on the last two stages (dopri5.f)
                stnum = 0.0
                stden = 0.0
                for i in range(ns):
                    stnum += (k7[i] - k6[i]) ** 2
                    stden += (ynew[i] - ysti[i]) ** 2
                if stden > 0.0 and hs * math.sqrt(stnum / stden) > STIFF_BOUND:
                    nonsti = 0
                    iasti += 1
                    if iasti == STIFF_STEPS:
                        rodas = True
                        used = True
                else:
                    nonsti += 1
                    if nonsti == NONSTIFF_RESET:
                        iasti = 0
            for i in range(ns):
                y[i] = ynew[i]
            t = t_new
            clipped = clip(y, nonneg)
            if rodas or clipped:
                rhs_into(fn, y, t, p, f0)
                if not all_finite(f0):
                    return NON_FINITE, used
                need_jac = True
            else:
                for i in range(ns):  # first same as last
                    f0[i] = k7[i]
            if nc > 0:
                if clipped:
                    roots_into(fn, t, y, p, g_old)
                else:
                    for s in range(ng):
                        g_old[s] = g_new[s]
            err = max(err, 1e-10)
            if rodas:
                # Gustafsson's predictive controller, as rodas.f (PRED = 1): fewer rejections on stiff stretches
                fac = min(R_FAC_MAX, max(FAC_MIN, SAFETY * err ** -0.25))
                if h_acc > 0.0:
                    fac = min(fac, min(R_FAC_MAX, max(FAC_MIN, SAFETY * (hs / h_acc) * (err_acc / (err * err)) ** 0.25)))
                h_acc = hs
                err_acc = max(1e-2, err)
            else:
                log_err = math.log(err)
                fac = min(FAC_MAX, max(FAC_MIN, SAFETY * math.exp(BETA * log_err_old - EXPO * log_err)))
                log_err_old = log_err
            if rejected:
                fac = min(fac, 1.0)
            rejected = False
            h = hs * fac
            if last:
                break

# ------------------------------------------------------------------------------------ lane groups
@_jit
def aligned_zeros(n):
    """n zeros starting on a 64-byte boundary: a vector load that straddles two cache lines is slow, and
    where the allocator happened to place the lane arrays changed a group's speed by half."""
    buf = np.zeros(n + 8)
    skip = ((64 - buf.ctypes.data % 64) % 64) // 8
    return buf[skip:skip + n]


@_jit
def hand_over(fn, c, t, steps, rodas, y, patient, k_grid, k_timed, run):
    """Lane c's patient leaves its group at time t (``steps`` taken) and is finished alone, from its own
    state; the lane is free again. ``run`` holds solve_group's arguments from t_eval on."""
    t_eval, P, nonneg, rtol, atol, max_steps, method, timed_t, timed_ev, cond_event, touches, uses_t, Y, status, \
        fired, switched = run
    j = patient[c]
    patient[c] = -1
    yl = np.empty(nonneg.shape[0])
    for i in range(yl.shape[0]):
        yl[i] = y[i, c]
    code, sw = continue_patient(fn, t, yl, k_grid[c], k_timed[c], steps, rodas, t_eval, P[j], nonneg, rtol, atol,
                                max_steps, method, timed_t, timed_ev, cond_event, touches, uses_t, Y[j], fired[j])
    status[j] = code
    switched[j] = sw


@_jit
def solve_group(fn, lanes, lo, hi, t_eval, P, nonneg, rtol, atol, max_steps, method, timed_t, timed_ev, cond_event, touches,
                uses_t, Y, status, fired, switched):
    """Patients lo..hi-1 by DOPRI5, lanes at a time side by side, each with its own time and step size.

    A small model's step is bound by latency (each stage waits for the one before), so one patient leaves
    most of the CPU idle. Here every stage is computed for lanes patients at once, species in rows and
    patients in columns, which compiles to vector instructions: a step of lanes patients costs little more
    than a step of one. Each lane keeps its own step control, events and outputs (scalar code between the
    stages), so a patient's result does not depend on its neighbours; a lane whose patient is done takes
    the next one. For models without condition events, and methods dopri5 and auto. A patient whose run
    turns stiff (auto: Hairer's test fires on STIFF_STEPS_IN_LANES accepted steps in a row), non-finite or too long
    leaves
    its lane (``hand_over``) and is finished alone from where it stands, as ``solve_patient`` would.
    """
    ns = nonneg.shape[0]
    nt = t_eval.shape[0]
    n_timed = timed_t.shape[0]
    npar = P.shape[1]
    S = aligned_zeros(12 * ns * lanes).reshape((12, ns, lanes))  # the lanes' states and stages
    y, f0, k2, k3, k4, k5, k6, k7, tmp, ynew, ysti = S[0], S[1], S[2], S[3], S[4], S[5], S[6], S[7], S[8], S[9], S[10]
    pT = aligned_zeros(npar * lanes).reshape((npar, lanes))  # parameters, one column per lane (rhs_lanes)
    V = aligned_zeros(11 * lanes).reshape((11, lanes))  # per-lane numbers the vector loops read
    err2, err_n, log_err, fac_acc, fac_rej, t, tc, hs, h, t_stop, log_err_old = (V[0], V[1], V[2], V[3], V[4], V[5],
                                                                                 V[6], V[7], V[8], V[9], V[10])
    D = np.empty((5, ns))
    ybuf = np.empty(ns)
    fbuf = np.empty(ns)
    gb1 = np.empty(ns)
    gb2 = np.empty(ns)
    rejected = np.zeros(lanes, dtype=np.bool_)
    fresh = np.zeros(lanes, dtype=np.bool_)  # at the start of a segment (events, outputs, a new step size)
    patient = np.full(lanes, -1, dtype=np.int64)  # -1: an idle lane
    k_grid = np.zeros(lanes, dtype=np.int64)
    k_timed = np.zeros(lanes, dtype=np.int64)
    steps = np.zeros(lanes, dtype=np.int64)
    iasti = np.zeros(lanes, dtype=np.int64)
    nonsti = np.zeros(lanes, dtype=np.int64)
    no_band = np.empty(0)
    no_armed = np.empty(0, dtype=np.bool_)
    stack_ev = np.empty(2, dtype=np.int64)
    stack_pos = np.empty(2, dtype=np.int64)
    no_queue = np.empty((0, 3))  # lane groups run models without delayed events
    no_pending = np.zeros(1, dtype=np.int64)
    t_end = t_eval[nt - 1]
    # typed flags, not literals, so that hand_over and continue_patient compile once each
    on_dopri = np.bool_(False)
    on_rodas = np.bool_(True)
    run = (t_eval, P, nonneg, rtol, atol, max_steps, method, timed_t, timed_ev, cond_event, touches, uses_t, Y, status,
           fired, switched)
    next_j = lo
    busy = 0
    while True:
        # ---- scalar work per lane: take a patient, start a segment (events, outputs, its step size)
        for c in range(lanes):
            while True:
                j = patient[c]
                if j < 0:
                    if next_j >= hi:
                        break
                    j = next_j
                    next_j += 1
                    initial_into(fn, P[j], ybuf)
                    ok = True
                    for i in range(ns):
                        if not np.isfinite(ybuf[i]) or (nonneg[i] and ybuf[i] < 0.0):
                            ok = False
                    if not ok:
                        status[j] = BAD_INITIAL
                        continue
                    patient[c] = j
                    busy += 1
                    for i in range(ns):
                        y[i, c] = ybuf[i]
                    for q in range(npar):
                        pT[q, c] = P[j, q]
                    t[c] = t_eval[0]
                    k_grid[c] = 0
                    k_timed[c] = 0
                    steps[c] = 0
                    iasti[c] = 0
                    nonsti[c] = 0
                    fresh[c] = True
                if not fresh[c]:
                    break
                tl = t[c]
                for i in range(ns):
                    ybuf[i] = y[i, c]
                while k_timed[c] < n_timed and timed_t[k_timed[c]] <= tl:
                    fire(fn, timed_ev[k_timed[c]], tl, ybuf, P[j], nonneg, fired[j], no_armed, no_band, rtol, atol,
                         cond_event, touches, stack_ev, stack_pos, no_band, no_queue, no_pending, None)
                    k_timed[c] += 1
                for q in range(npar):
                    pT[q, c] = P[j, q]
                for i in range(ns):
                    y[i, c] = ybuf[i]
                while k_grid[c] < nt and t_eval[k_grid[c]] <= tl:
                    record(Y[j], k_grid[c], ybuf, P[j], nonneg)
                    k_grid[c] += 1
                stop = t_end
                if k_timed[c] < n_timed:
                    stop = timed_t[k_timed[c]]
                stop = next_switch(fn, tl, stop, P[j])
                done = tl >= t_end
                if not done:
                    rhs_into(fn, ybuf, tl, P[j], fbuf)
                if done or not all_finite(fbuf) or stop - tl <= 16.0 * UROUND * max(abs(tl), abs(stop)):
                    if done:
                        patient[c] = -1
                    else:  # a failure, or a sliver between two events: the patient goes on alone
                        hand_over(fn, c, tl, steps[c], on_dopri, y, patient, k_grid, k_timed, run)
                    busy -= 1
                    continue
                for i in range(ns):
                    f0[i, c] = fbuf[i]
                t_stop[c] = stop
                h[c] = initial_step(fn, ybuf, fbuf, tl, P[j], rtol, atol, stop - tl, gb1, gb2)
                log_err_old[c] = log2_approx(1e-4)  # the PI controller's memory, as a base-2 logarithm
                rejected[c] = False
                fresh[c] = False
                break
        if busy == 0:
            return
        # ---- one trial step of every lane, stage by stage across the lanes (vector instructions)
        for c in range(lanes):
            hs[c] = min(h[c], t_stop[c] - t[c]) if patient[c] >= 0 else 0.0
        for i in range(ns):
            for c in range(lanes):
                tmp[i, c] = y[i, c] + hs[c] * A21 * f0[i, c]
        for c in range(lanes):
            tc[c] = t[c] + C2 * hs[c]
        rhs_lanes(fn, tmp, tc, pT, k2)
        for i in range(ns):
            for c in range(lanes):
                tmp[i, c] = y[i, c] + hs[c] * (A31 * f0[i, c] + A32 * k2[i, c])
        for c in range(lanes):
            tc[c] = t[c] + C3 * hs[c]
        rhs_lanes(fn, tmp, tc, pT, k3)
        for i in range(ns):
            for c in range(lanes):
                tmp[i, c] = y[i, c] + hs[c] * (A41 * f0[i, c] + A42 * k2[i, c] + A43 * k3[i, c])
        for c in range(lanes):
            tc[c] = t[c] + C4 * hs[c]
        rhs_lanes(fn, tmp, tc, pT, k4)
        for i in range(ns):
            for c in range(lanes):
                tmp[i, c] = y[i, c] + hs[c] * (A51 * f0[i, c] + A52 * k2[i, c] + A53 * k3[i, c] + A54 * k4[i, c])
        for c in range(lanes):
            tc[c] = t[c] + C5 * hs[c]
        rhs_lanes(fn, tmp, tc, pT, k5)
        for i in range(ns):
            for c in range(lanes):
                ysti[i, c] = y[i, c] + hs[c] * (A61 * f0[i, c] + A62 * k2[i, c] + A63 * k3[i, c] + A64 * k4[i, c]
                                                + A65 * k5[i, c])
        for c in range(lanes):
            tc[c] = t[c] + hs[c]
        rhs_lanes(fn, ysti, tc, pT, k6)
        for i in range(ns):
            for c in range(lanes):
                ynew[i, c] = y[i, c] + hs[c] * (A71 * f0[i, c] + A73 * k3[i, c] + A74 * k4[i, c] + A75 * k5[i, c]
                                                + A76 * k6[i, c])
        rhs_lanes(fn, ynew, tc, pT, k7)
        for c in range(lanes):
            err2[c] = 0.0
        for i in range(ns):
            for c in range(lanes):
                e = hs[c] * (E1 * f0[i, c] + E3 * k3[i, c] + E4 * k4[i, c] + E5 * k5[i, c] + E6 * k6[i, c]
                             + E7 * k7[i, c])
                sc = atol[i] + rtol * max(abs(y[i, c]), abs(ynew[i, c]))
                err2[c] += (e / sc) ** 2
        for c in range(lanes):  # error norms and the step-size factors of accepted (PI) and rejected steps
            e = math.sqrt(err2[c] / ns)
            err_n[c] = e
            lg = log2_approx(min(max(e, 1e-10), 1e300))
            log_err[c] = lg
            fac_acc[c] = min(FAC_MAX, max(FAC_MIN, SAFETY * exp2_approx(BETA * log_err_old[c] - EXPO * lg)))
            fac_rej[c] = max(FAC_MIN, SAFETY * exp2_approx(-0.2 * lg))
        # ---- scalar work per lane: accept or reject, outputs, step control (as solve_patient)
        for c in range(lanes):
            j = patient[c]
            if j < 0:
                continue
            steps[c] += 1
            last = hs[c] >= t_stop[c] - t[c]
            err = err_n[c]
            finite = np.isfinite(err)
            for i in range(ns):
                finite = finite and np.isfinite(ynew[i, c])
            if not finite or steps[c] >= max_steps or hs[c] <= 16.0 * UROUND * max(abs(t[c]), 1e-300):
                # trouble of this patient's own: it goes on alone from the step's start
                hand_over(fn, c, t[c], steps[c] - 1, on_dopri, y, patient, k_grid, k_timed, run)
                busy -= 1
                continue
            if err > 1.0:
                h[c] = hs[c] * fac_rej[c]
                rejected[c] = True
                continue
            tl = t[c]
            t_new = t_stop[c] if last else tl + hs[c]
            kg = k_grid[c]
            if kg < nt and t_eval[kg] < t_stop[c] and t_eval[kg] <= t_new:  # dense output (Hairer's contd5)
                hl = hs[c]
                for i in range(ns):
                    ydiff = ynew[i, c] - y[i, c]
                    bspl = hl * f0[i, c] - ydiff
                    D[0, i] = y[i, c]
                    D[1, i] = ydiff
                    D[2, i] = bspl
                    D[3, i] = ydiff - hl * k7[i, c] - bspl
                    D[4, i] = hl * (D1 * f0[i, c] + D3 * k3[i, c] + D4 * k4[i, c] + D5 * k5[i, c] + D6 * k6[i, c]
                                    + D7 * k7[i, c])
                while kg < nt and t_eval[kg] < t_stop[c] and t_eval[kg] <= t_new:
                    dense_eval(False, D, (t_eval[kg] - tl) / hl, ybuf)
                    record(Y[j], kg, ybuf, P[j], nonneg)
                    kg += 1
                k_grid[c] = kg
            stiff = False
            if method == AUTO:  # Hairer's stiffness test on the last two stages (dopri5.f)
                stnum = 0.0
                stden = 0.0
                for i in range(ns):
                    stnum += (k7[i, c] - k6[i, c]) ** 2
                    stden += (ynew[i, c] - ysti[i, c]) ** 2
                if stden > 0.0 and hs[c] * math.sqrt(stnum / stden) > STIFF_BOUND:
                    nonsti[c] = 0
                    iasti[c] += 1
                    stiff = iasti[c] == STIFF_STEPS_IN_LANES
                else:
                    nonsti[c] += 1
                    if nonsti[c] == NONSTIFF_RESET:
                        iasti[c] = 0
            t[c] = t_new
            clipped = False
            for i in range(ns):
                v = ynew[i, c]
                if nonneg[i] and v < 0.0:
                    v = 0.0
                    clipped = True
                y[i, c] = v
                f0[i, c] = k7[i, c]  # first same as last
            if stiff:  # the rest of the run on RODAS, alone
                hand_over(fn, c, t_new, steps[c], on_rodas, y, patient, k_grid, k_timed, run)
                busy -= 1
                continue
            if clipped:
                for i in range(ns):
                    ybuf[i] = y[i, c]
                rhs_into(fn, ybuf, t_new, P[j], fbuf)
                if not all_finite(fbuf):
                    hand_over(fn, c, t_new, steps[c], on_dopri, y, patient, k_grid, k_timed, run)
                    busy -= 1
                    continue
                for i in range(ns):
                    f0[i, c] = fbuf[i]
            fac = fac_acc[c]
            log_err_old[c] = log_err[c]
            if rejected[c]:
                fac = min(fac, 1.0)
            rejected[c] = False
            h[c] = hs[c] * fac
            if last:
                fresh[c] = True


@njit(nogil=True, cache=True, error_model="numpy")
def solve_block(fn, lanes, lane_groups, lo, hi, t_eval, P, nonneg, rtol, atol, max_steps, method, timed_t, timed_ev,
                cond_event, touches, uses_t, Y, status, fired, switched):
    """Patients lo..hi-1, without the GIL, so that threads can run blocks side by side (a parallel loop
    would compile several times slower). P is changed in place by events: it ends as the final parameters."""
    if lane_groups and method != RODAS:
        solve_group(fn, lanes, lo, hi, t_eval, P, nonneg, rtol, atol, max_steps, method, timed_t, timed_ev, cond_event, touches,
                    uses_t, Y, status, fired, switched)
        return 0
    for j in range(lo, hi):
        if status[j] != OK:
            continue
        code, sw = solve_patient(fn, t_eval, P[j], nonneg, rtol, atol, max_steps, method, timed_t, timed_ev, cond_event,
                                 touches, uses_t, Y[j], fired[j])
        status[j] = code
        switched[j] = sw
    return 0
