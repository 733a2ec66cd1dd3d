"""BatchEngine: one model, many parameter sets ("patients"), integrated in parallel with numba.

``BatchEngine(method).run(model, t_eval, P)`` integrates the model once per row of ``P`` (patients x
parameters) inside one compiled parallel loop (``prange`` over patients) and returns the states at
``t_eval`` and a status code per patient; ``run_full`` also returns how many times each event fired
per patient and the parameters at the end (events can change them).

Methods (see ``integrator.py``):
  * ``"dopri5"``: explicit Dormand-Prince 5(4) with Hairer's dense output, for non-stiff models;
  * ``"rodas"``: Hairer's L-stable Rosenbrock 4(3) RODAS with the model's analytic Jacobian;
  * ``"auto"`` (default): each patient starts on DOPRI5 and switches to RODAS for the rest of its run
    when Hairer's stiffness test fires (h * |lambda| > 3.25 on 15 accepted steps, |lambda| estimated from
    the last two stages; 100 in a lane group, where DOPRI5 steps are cheaper); a non-stiff patient never
    pays for a Jacobian.

Models without condition events run DOPRI5 (and auto's non-stiff part) in lane groups: 8 to 64 patients side
by side, each stage computed for all of them at once in vector instructions, each patient keeping its own
time, step size, events and outputs (so its result does not depend on its neighbours). A small model's
step is bound by latency rather than arithmetic, and this made 10,000 Kirschner-Panetta patients 2.6x (auto)
to 3.3x (dopri5) faster in CPU time (``bench/batch_vs_roadrunner.py``). A patient that turns stiff,
non-finite or too long leaves its lane and is finished alone by the same code as a patient of a model
with condition events.

Output times never shorten a step: states at ``t_eval`` come from the method's dense output.
Events follow the SciPy engine (``ilsim.simulate``) exactly: timed events restart the integration at
their times and at every time where a rate switches (t compared with parameters); condition events fire
on a false -> true transition located by root finding on the dense output, conditions crossing at the same
instant fire together (in model order), and a fired condition re-arms only once it is false by more than
rtol * (|a| + |b|) + atol; guards (``only_if``) are tested when the event fires; set/add actions take their values from
the state before the event and may change species or (per-patient) parameters; a jump re-tests the
conditions that read what it changed and fires those that became true (a cascade; more than 1000
firings at one instant gives status 5); non-negative species are clipped after actions, after every
step and on output.

A patient that fails never stops the others: its status is nonzero and its rows from the failure
onwards are NaN. Results are deterministic: each patient depends only on its own inputs, so outputs
are bitwise identical whatever the number of threads.

The compiled driver is cached on disk beside the model's kernels (``codegen.py``), so only the first
process that runs a model pays for its compilation.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ilsim.errors import IlsimError
from ilsim.limits import run_settings_problem
from ilsim.model.compile import CompiledModel

OK, NON_FINITE, STEP_UNDERFLOW, MAX_STEPS, BAD_INITIAL, ENDLESS_EVENTS = 0, 1, 2, 3, 4, 5
STATUS = {
    OK: "ok",
    NON_FINITE: "a rate or the state became infinite or NaN",
    STEP_UNDERFLOW: "step size underflow (the step fell below the rounding level of t)",
    MAX_STEPS: "too many steps (max_steps reached)",
    BAD_INITIAL: "the initial state is not finite or is negative for a non-negative species",
    ENDLESS_EVENTS: "events fired endlessly (more than 1000 firings at one instant)",
}
METHODS = {"dopri5": 0, "rodas": 1, "auto": 2}


@dataclass
class BatchResult:
    """Everything a batch run gives, per patient."""

    Y: np.ndarray  # patients x len(t_eval) x species; NaN from a failure onwards
    status: np.ndarray  # int per patient, see STATUS
    fired: np.ndarray  # patients x events: how many times each event's actions were applied
    P_end: np.ndarray  # patients x parameters: the values at the end (events may change them)
    stiff: np.ndarray  # bool per patient: integrated with RODAS (method "rodas", or switched to by "auto")


class BatchEngine:
    """Many parameter sets of one model in parallel (numba): DOPRI5, RODAS or automatic choice, with events."""

    name = "batch"
    supports = {"events": True, "stochastic": False, "spatial": False, "batch": True, "stiff": True}

    def __init__(self, rtol: float = 1e-6, atol: float = 1e-9, max_steps: int = 1_000_000, method: str = "auto"):
        if method not in METHODS:
            raise IlsimError(f"unknown batch method '{method}'; choose one of {', '.join(METHODS)}")
        self.rtol, self.atol, self.max_steps = check_settings(rtol, atol, max_steps)
        self.method = method

    def run(self, model: CompiledModel, t_eval, P) -> tuple[np.ndarray, np.ndarray]:
        """Integrate every row of ``P``; return ``(Y, status)`` (see ``run_full`` for events and parameters)."""
        result = self.run_full(model, t_eval, P)
        return result.Y, result.status

    def run_full(self, model: CompiledModel, t_eval, P) -> BatchResult:
        """Integrate every row of ``P`` (patients x parameters) over ``t_eval`` (increasing; starts at t_eval[0])."""
        t_eval, P = check_inputs(model, t_eval, P)
        if not hasattr(model.kernels["rhs_into"], "py_func"):
            raise IlsimError("the batch engine needs numba-compiled kernels; the model was compiled with jit=False")
        from ilsim.engines.batch.codegen import driver_module, uses_time

        n, ns, ne = P.shape[0], len(model.species), len(model.events)
        t0, t_end = t_eval[0], t_eval[-1]
        timed = sorted((time, k) for k, e in enumerate(model.events) for time in e.times if t0 <= time <= t_end)
        cond_events = [k for k, e in enumerate(model.events) if e.condition is not None]
        touches = np.array([[bool({(kind, i) for _, kind, i, _ in e.actions} & model.events[kc].depends)
                             for kc in cond_events] for e in model.events], dtype=np.bool_).reshape(ne, len(cond_events))
        P_end = np.array(P, dtype=np.float64, order="C", copy=True)
        Y = np.full((n, len(t_eval), ns), np.nan)
        status = np.zeros(n, dtype=np.int64)
        fired = np.zeros((n, ne), dtype=np.int64)
        stiff = np.zeros(n, dtype=np.bool_)
        driver = driver_module(model)
        args = (t_eval, P_end, np.ascontiguousarray(model.nonnegative, dtype=np.bool_), self.rtol, self.atol,
                self.max_steps, METHODS[self.method], np.array([t for t, _ in timed], dtype=np.float64),
                np.array([k for _, k in timed], dtype=np.int64), np.array(cond_events, dtype=np.int64), touches,
                uses_time(model), Y, status, fired, stiff)
        _in_blocks(driver.solve_block, n, args, driver.LANES)
        return BatchResult(Y, status, fired, P_end, stiff)


def check_inputs(m: CompiledModel, t_eval, P) -> tuple[np.ndarray, np.ndarray]:
    """``t_eval`` and ``P`` as contiguous float64 arrays; IlsimError naming what is wrong (every batch backend)."""
    t_eval = np.ascontiguousarray(t_eval, dtype=np.float64)
    if t_eval.ndim != 1 or len(t_eval) < 1 or not np.isfinite(t_eval).all():
        raise IlsimError("t_eval must be a non-empty one-dimensional array of finite times")
    if np.any(np.diff(t_eval) <= 0):
        raise IlsimError("t_eval must be strictly increasing")
    P = np.ascontiguousarray(P, dtype=np.float64)
    npar = len(m.parameters)
    if P.ndim != 2 or P.shape[1] != npar:
        raise IlsimError(f"P must be a (patients x {npar}) array for model '{m.name}', got shape {P.shape}")
    return t_eval, P


def check_settings(rtol: float, atol: float, max_steps: int) -> tuple[float, float, int]:
    """Tolerances and step limit as numbers; IlsimError naming what is wrong (every batch backend)."""
    problem = run_settings_problem(rtol, atol)
    if problem:
        raise IlsimError(problem)
    if max_steps < 1:
        raise IlsimError(f"max_steps must be at least 1, got {max_steps}")
    return float(rtol), float(atol), int(max_steps)


LANE_BLOCKS = 8  # a task holds up to this many times a lane group's patients: its lanes seldom idle at its end
TASKS_PER_THREAD = 4  # at least this many tasks per thread when there are enough patients, to balance the threads


def _in_blocks(solve_block, n: int, args: tuple, lanes: int) -> None:
    """Run blocks of patients on numba's thread count (NUMBA_NUM_THREADS); each patient is written by one
    block only and depends on nothing but its own inputs, so results do not depend on the number of threads
    or the size of the blocks."""
    import numba

    threads = numba.get_num_threads()
    size = max(lanes, min(LANE_BLOCKS * lanes, -(-n // (threads * TASKS_PER_THREAD))))
    blocks = [(lo, min(lo + size, n)) for lo in range(0, n, size)]
    threads = min(threads, len(blocks))
    if threads <= 1:
        for lo, hi in blocks:
            solve_block(lo, hi, *args)
        return
    with ThreadPoolExecutor(threads) as pool:
        for done in [pool.submit(solve_block, lo, hi, *args) for lo, hi in blocks]:
            done.result()
