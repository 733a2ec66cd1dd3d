"""The engine contract: what every engine is, what it gives back, and what its status codes mean.

An engine is an object holding its settings (method, tolerances, limits). ``solve(model, t_eval, P)`` runs a
compiled model for every row of ``P`` (parameter sets: patients, trajectories) and returns an
``EngineResult``: the same arrays from every engine, so cohorts, sweeps, sensitivity analyses and
``ilsim.simulate`` take any engine (``engine=``). ``simulate`` turns a result into an xarray Dataset with a
``patient`` dimension, written once here for every engine. Engines raise ``IlsimError`` subclasses only.

Engines today: ``OdeEngine`` (SciPy; the deliberately independent reference: its own integrators and a
Python event loop, sharing only the model analyses of ``ilsim.model.analysis``), ``BatchEngine`` (numba,
many patients in parallel) and ``CudaBatchEngine`` (the C/CUDA kernel). The conformance suite
(tests/engines/test_conformance.py) runs the same known-answer cases through each of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ilsim.engines.tableaux import (
    BAD_DELAY,
    BAD_INITIAL,
    ENDLESS_EVENTS,
    MAX_PENDING,
    MAX_STEPS,
    NON_FINITE,
    OK,
    PENDING_FULL,
    STEP_UNDERFLOW,
)
from ilsim.errors import IlsimError
from ilsim.limits import run_settings_problem

SOLVER_FAILED = 6  # an engine's own solver gave up (SciPy: the message says why)
STATUS = {
    OK: "ok",
    NON_FINITE: "a rate or the state became infinite or NaN",
    STEP_UNDERFLOW: "step size underflow (the step fell below the rounding level of t)",
    MAX_STEPS: "too many steps (max_steps reached)",
    BAD_INITIAL: "the initial state is not finite or is negative for a non-negative species",
    ENDLESS_EVENTS: "events fired endlessly (more than 1000 firings at one instant)",
    SOLVER_FAILED: "the solver failed",
    PENDING_FULL: f"more than {MAX_PENDING} delayed event firings pending at once (the queue's limit, docs/limits.md)",
    BAD_DELAY: "an event's delay evaluated to a negative or non-finite time",
}


@dataclass
class EngineResult:
    """What an engine gives for n parameter sets over nt output times."""

    Y: np.ndarray  # n x nt x species; NaN from a failure onwards
    status: np.ndarray  # int per patient (STATUS)
    fired: np.ndarray  # n x events: how many times each event's actions were applied
    P_end: np.ndarray  # n x parameters at the end (events may change them)
    P_t: np.ndarray | None = None  # n x nt x parameters at each output time, when the engine was asked to record them
    event_log: list[list[tuple[float, int]]] | None = None  # per patient: (time, event index) of each firing
    messages: list[str] = field(default_factory=list)  # per patient: why it failed ("" when ok)
    stiff: np.ndarray | None = None  # bool per patient: integrated (partly) by a stiff method
    # per patient: numbers only this engine has (the tissue engine's spatial maximum of a field, a replicate's seed),
    # added to the summary row of each patient after the species' metrics; NaN for a failed patient
    columns: dict[str, np.ndarray] = field(default_factory=dict)


class Engine:
    """The base of every engine: settings in, one result type out."""

    name = "engine"
    supports: dict[str, bool] = {}

    def settings(self) -> dict:
        """The engine's settings as plain values (for provenance and to rebuild it in another process)."""
        raise NotImplementedError

    def solve(self, model, t_eval, P, *, record_parameters: bool = False, log_events: int = 0) -> EngineResult:
        """Run ``model`` for every row of ``P`` (parameter sets) over ``t_eval``. With ``record_parameters`` the
        parameters at every output time are kept too (events can change them); with ``log_events`` > 0 the
        first that many firings of each patient are logged with their times."""
        raise NotImplementedError

    def simulate(self, model, t_eval, P=None):
        """The result as an xarray Dataset: every species and observable over (patient, time) with units and
        long names, ``status`` and ``status_text`` per patient, ``events_fired`` over (patient, event), and the
        parameters at the start and at the end over (patient, parameter). ``P`` defaults to the model's own
        values (one patient)."""
        import xarray as xr

        t_eval = np.asarray(t_eval, dtype=float)
        P = np.atleast_2d(model.p0 if P is None else np.asarray(P, dtype=float))
        result = self.solve(model, t_eval, P, record_parameters=True)
        spec = model.spec
        n, nt = P.shape[0], len(t_eval)
        data = {}
        for i, s in enumerate(spec.species):
            data[s.name] = xr.Variable(("patient", "time"), result.Y[:, :, i],
                                       {"units": s.units, "long_name": s.description or s.name, "role": "species"})
        obs = np.full((n, nt, len(model.observables)), np.nan)
        for j in range(n):
            if result.status[j] == OK or np.isfinite(result.Y[j]).any():
                obs[j] = model.observe(t_eval, result.Y[j], result.P_t[j].T)
        by_name = {o.name: o for o in spec.observables}
        for k, name in enumerate(model.observables):
            o = by_name[name]
            data[name] = xr.Variable(("patient", "time"), obs[:, :, k],
                                     {"units": o.units, "long_name": o.description or name, "role": "observable"})
        data["status"] = xr.Variable("patient", result.status, {"long_name": "status code (0: ok)"})
        data["status_text"] = xr.Variable("patient", np.array(
            [result.messages[j] if j < len(result.messages) and result.messages[j] else STATUS.get(int(c), "?")
             for j, c in enumerate(result.status)], dtype=object), {"long_name": "what the status code means"})
        data["events_fired"] = xr.Variable(("patient", "event"), result.fired,
                                           {"long_name": "times each event's actions were applied"})
        data["parameters_start"] = xr.Variable(("patient", "parameter"), P, {"long_name": "parameter values at the start"})
        data["parameters_end"] = xr.Variable(("patient", "parameter"), result.P_end,
                                             {"long_name": "parameter values at the end (events may change them)"})
        coords = {"patient": np.arange(n), "time": ("time", t_eval, {"units": spec.metadata.time_units}),
                  "event": [e.name for e in model.events], "parameter": list(model.parameters)}
        return xr.Dataset(data, coords=coords, attrs={"model_name": spec.metadata.name, "engine": self.name,
                                                       **{k: v for k, v in self.settings().items() if v is not None}})


def check_times(t_eval) -> np.ndarray:
    """Output times as a contiguous float64 array; IlsimError naming what is wrong (every engine)."""
    t_eval = np.ascontiguousarray(t_eval, dtype=np.float64)
    if t_eval.ndim != 1 or len(t_eval) < 1 or not np.isfinite(t_eval).all():
        raise IlsimError("t_eval must be a non-empty one-dimensional array of finite times")
    if np.any(np.diff(t_eval) <= 0):
        raise IlsimError("t_eval must be strictly increasing")
    return t_eval


def check_parameters(model, P) -> np.ndarray:
    """Parameter sets as a contiguous (sets x parameters) float64 array; IlsimError naming what is wrong."""
    P = np.ascontiguousarray(P, dtype=np.float64)
    npar = len(model.parameters)
    if P.ndim != 2 or P.shape[1] != npar:
        raise IlsimError(f"P must be a (patients x {npar}) array for model '{model.name}', got shape {P.shape}")
    return P


def check_tolerances(rtol: float, atol: float) -> tuple[float, float]:
    """Tolerances as numbers within the ranges of docs/limits.md; IlsimError naming what is wrong (every engine)."""
    try:
        rtol, atol = float(rtol), float(atol)
    except (TypeError, ValueError):
        raise IlsimError(f"tolerances must be numbers, got rtol = {rtol!r}, atol = {atol!r}") from None
    problem = run_settings_problem(rtol, atol)
    if problem:
        raise IlsimError(problem)
    return rtol, atol

