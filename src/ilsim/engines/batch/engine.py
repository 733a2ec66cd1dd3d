"""BatchEngine: one model, many parameter sets ("patients"), integrated in parallel with numba.

``BatchEngine(method).run(model, t_eval, P)`` integrates the model once per row of ``P`` (patients x
parameters), blocks of patients on numba's threads, and returns the states at
``t_eval`` and a status code per patient; ``solve`` also returns how many times each event fired
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
their times and at every time where a rate switches (``ilsim.model.switches``); condition events fire
on a false -> true transition located by root finding on the dense output (so are the crossings of the comparisons
inside a compound condition, ``analysis.window_watches``, where the conditions are then tested: a window narrower
than a step is seen), conditions crossing at the same
instant fire together (in model order), and a fired condition re-arms only once it is false by more than
rtol * (|a| + |b|) + atol; guards (``only_if``) are tested when the event fires; set/add actions take their values from
the state before the event and may change species or (per-patient) parameters; a jump re-tests the
conditions that read what it changed and fires those that became true (a cascade; more than 1000
firings at one instant gives status 5); an event with a delay is queued when it triggers (its delay and,
with ``values_at_trigger``, its values computed then) and applied when due, a segment ending there, as the
SciPy engine does (at most MAX_PENDING pending per patient: status 7; a negative delay: status 8);
non-negative species are clipped after actions, after every step and on output.

A patient that fails never stops the others: its status is nonzero and its rows from the failure
onwards are NaN. Results are deterministic: each patient depends only on its own inputs, so outputs
are bitwise identical whatever the number of threads.

The integrator is compiled once for every model and cached on disk; a model's own small functions are
cached beside its kernels (``codegen.py``), so only the first
process that runs a model pays for its compilation.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ilsim.engines.base import STATUS, Engine, EngineResult, check_parameters, check_times, check_tolerances
from ilsim.engines.tableaux import (  # noqa: F401  (the status codes, re-exported)
    BAD_INITIAL,
    ENDLESS_EVENTS,
    MAX_STEPS,
    NON_FINITE,
    OK,
    STEP_UNDERFLOW,
)
from ilsim.errors import IlsimError
from ilsim.model import analysis
from ilsim.model.compile import CompiledModel

METHODS = {"dopri5": 0, "rodas": 1, "auto": 2}
BatchResult = EngineResult  # the name this result had before every engine shared it


class BatchEngine(Engine):
    """Many parameter sets of one model in parallel (numba): DOPRI5, RODAS or automatic choice, with events."""

    name = "batch"
    supports = {"events": True, "stochastic": False, "spatial": False, "batch": True, "stiff": True,
                "parameter_trajectories": True, "event_log": True}

    def __init__(self, rtol: float = 1e-6, atol: float = 1e-9, max_steps: int = 1_000_000, method: str = "auto",
                 lane_groups: bool = True):
        """``lane_groups=False`` integrates every patient alone, step for step as the C/CUDA kernel does (lane
        groups compute step-size factors with approximate log2/exp2, so their steps differ slightly)."""
        if method not in METHODS:
            raise IlsimError(f"unknown batch method '{method}'; choose one of {', '.join(METHODS)}")
        self.rtol, self.atol, self.max_steps = check_settings(rtol, atol, max_steps)
        self.method = method
        self.lane_groups = bool(lane_groups)

    def settings(self) -> dict:
        return {"method": self.method, "rtol": self.rtol, "atol": self.atol, "max_steps": self.max_steps,
                "lane_groups": self.lane_groups}

    def run(self, model: CompiledModel, t_eval, P) -> tuple[np.ndarray, np.ndarray]:
        """Integrate every row of ``P``; return ``(Y, status)`` (see ``solve`` for events and parameters)."""
        result = self.solve(model, t_eval, P)
        return result.Y, result.status

    def run_full(self, model: CompiledModel, t_eval, P) -> EngineResult:
        """``solve`` under its earlier name."""
        return self.solve(model, t_eval, P)

    def solve(self, model: CompiledModel, t_eval, P, *, record_parameters: bool = False,
              log_events: int = 0) -> EngineResult:
        """Integrate every row of ``P`` (patients x parameters) over ``t_eval`` (increasing; starts at t_eval[0])."""
        t_eval, P = check_inputs(model, t_eval, P)
        if model.jit is False:
            raise IlsimError("the batch engine needs numba-compiled kernels; the model was compiled with jit=False")
        from ilsim.engines.batch.codegen import integrator_module, lane_groups, lanes, model_functions

        n, ns, ne, npar = P.shape[0], len(model.species), len(model.events), len(model.parameters)
        n_log = max(0, int(log_events))
        timed = analysis.timed_schedule(model, t_eval[0], t_eval[-1])
        P_end = np.array(P, dtype=np.float64, order="C", copy=True)
        Y = np.full((n, len(t_eval), ns + (npar if record_parameters else 0)), np.nan)
        status = np.zeros(n, dtype=np.int64)
        fired = np.zeros((n, 2 + 2 * n_log + ne))  # the firing log, then the counts (integrator.count_firing)
        fired[:, 0] = n_log
        stiff = np.zeros(n, dtype=np.bool_)
        width = lanes(model)
        args = (model_functions(model), width, self.lane_groups and lane_groups(model), t_eval, P_end,
                np.ascontiguousarray(model.nonnegative, dtype=np.bool_), self.rtol,
                analysis.absolute_tolerances(model, self.atol), self.max_steps,
                METHODS[self.method], np.array([t for t, _ in timed], dtype=np.float64),
                np.array([k for _, k in timed], dtype=np.int64),
                np.array(analysis.condition_events(model), dtype=np.int64), analysis.touches(model),
                analysis.uses_time(model), Y, status, fired, stiff)
        _in_blocks(integrator_module().solve_block, n, args, width)
        log = None
        if n_log:
            log = []
            for j in range(n):
                m = min(int(fired[j, 1]), n_log)
                log.append([(float(t), int(k)) for k, t in fired[j, 2:2 + 2 * m].reshape(m, 2)])
        counts = fired[:, 2 + 2 * n_log:].astype(np.int64)
        return EngineResult(np.ascontiguousarray(Y[:, :, :ns]), status, counts, P_end,
                            P_t=Y[:, :, ns:] if record_parameters else None, event_log=log,
                            messages=[STATUS[int(c)] if c else "" for c in status], stiff=stiff)


def check_inputs(m: CompiledModel, t_eval, P) -> tuple[np.ndarray, np.ndarray]:
    """``t_eval`` and ``P`` as contiguous float64 arrays; IlsimError naming what is wrong (every batch backend)."""
    return check_times(t_eval), check_parameters(m, P)


def check_settings(rtol: float, atol: float, max_steps: int) -> tuple[float, float, int]:
    """Tolerances and step limit as numbers; IlsimError naming what is wrong (every batch backend)."""
    rtol, atol = check_tolerances(rtol, atol)
    if max_steps < 1:
        raise IlsimError(f"max_steps must be at least 1, got {max_steps}")
    return rtol, atol, int(max_steps)


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
            solve_block(*args[:3], lo, hi, *args[3:])
        return
    with ThreadPoolExecutor(threads) as pool:
        for done in [pool.submit(solve_block, *args[:3], lo, hi, *args[3:]) for lo, hi in blocks]:
            done.result()
