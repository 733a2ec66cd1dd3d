"""Run a block of patients (rows of parameter values) and summarise each: the unit every cohort,
sweep and sensitivity analysis is made of."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ilsim.engines.batch import STATUS, BatchEngine
from ilsim.errors import IlsimError, argument
from ilsim.limits import output_problem, run_settings_problem
from ilsim.model import expressions as ex
from ilsim.model.compile import CompiledModel
from ilsim.patients.metrics import patient_metrics


@dataclass
class Block:
    """The patients of one block: their summary rows, trajectories and status codes."""

    metrics: pd.DataFrame  # one row per patient (see cohort.metrics)
    Y: np.ndarray  # patients x times x species
    status: np.ndarray  # int per patient, 0 = ok


def output_times(model: CompiledModel, t_end: float | None = None, points: int | None = None) -> np.ndarray:
    """The output times 0..t_end (the model's simulation: section by default); IlsimError naming ``t_end`` or ``points``
    (the caller's words for them: ``errors.argument``)."""
    sim = model.spec.simulation
    t_end = sim.t_end if t_end is None else t_end
    points = sim.points if points is None else points
    try:
        t_end = float(t_end)
    except (TypeError, ValueError):
        raise IlsimError(f"{argument('t_end')} must be a number, got {t_end!r}") from None
    problem = run_settings_problem(t_end=t_end) if math.isfinite(t_end) else f"t_end must be finite, got {t_end}"
    if problem:  # the same range as a single run (limits.py)
        raise IlsimError(problem.replace("t_end", argument("t_end"), 1))
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 2:
        raise IlsimError(f"{argument('points')} must be a whole number of at least 2, got {points}")
    problem = output_problem(int(points), len(model.species) + len(model.observables))
    if problem:
        raise IlsimError(problem)
    return np.linspace(0.0, t_end, int(points))


def evaluate(
    model: CompiledModel,
    P: np.ndarray,
    t_eval: np.ndarray,
    *,
    engine=None,
    conditions: Sequence[tuple[str, ex.Expr]] = (),
    first_id: int = 0,
) -> Block:
    """Integrate every row of ``P`` with ``engine`` (any engine of the contract, engines/base.py; the batch engine
    by default) and summarise each patient."""
    engine = engine or BatchEngine(rtol=model.spec.simulation.rtol, atol=model.spec.simulation.atol)
    P = np.ascontiguousarray(P, dtype=float)
    # an engine of replicates (the tissue engine) seeds each row from its index in the whole run, not in this chunk
    result = engine.solve(model, t_eval, P, **({"first": first_id} if engine.supports.get("replicates") else {}))
    Y, status = result.Y, result.status
    # the C/CUDA kernel does not keep parameters that events change (NaN): its metrics read the starting values,
    # as they always did on that backend
    P_end = np.where(np.isnan(result.P_end), P, result.P_end)
    metrics = patient_metrics(model, t_eval, Y, P, status, P_end=P_end,
                              status_text={**STATUS, **getattr(engine, "status_text", {})},  # an engine's own codes
                              conditions=conditions, first_id=first_id)
    # a failed patient's status carries the engine's own reason where it gives one (a refused value, a solver's words)
    for name, values in (result.columns or {}).items():  # an engine's own per-row numbers (the tissue engine's)
        metrics[name] = values  # NaN where the engine has no value (a failed row)
    why = list(result.messages or [])
    if any(why):
        metrics["status"] = [f"{text}: {m}" if m and code != 0 else text for text, m, code in zip(metrics["status"], why, status)]
    return Block(metrics, Y, status)
