"""Per-patient summary of a batch of trajectories: the row each virtual patient gets in a cohort table.

For every patient: its status, outcome label (by ``ilsim.model.outcomes``, the rule of a single run),
peak / nadir (with times) and final value of every species and observable, the model's derived
quantities, the first time each requested condition holds, and the maximum CTCAE grade of each
term in the model's ``toxicity:`` section. Everything is computed vectorised over patients, one
output time at a time, so memory stays at one chunk of trajectories.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ilsim.errors import ModelError, Problem, argument, did_you_mean
from ilsim.model import expressions as ex
from ilsim.model.compile import CompiledModel
from ilsim.model.outcomes import FAILED, label_outcomes
from ilsim.therapy.ctcae import _converter, get_term, grade_series

__all__ = ["FAILED", "observables_over_time", "parse_conditions", "patient_metrics"]


def observables_over_time(model: CompiledModel, t: np.ndarray, Y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Observables for every patient and time: (patients x times x species) -> (patients x times x observables)."""
    n, nt = Y.shape[0], Y.shape[1]
    out = np.empty((n, nt, len(model.observables)))
    if not model.observables or n == 0:
        return out
    PT = np.ascontiguousarray(P.T)
    for k in range(nt):  # vectorised over patients: the generated observe() broadcasts p[i] rows
        out[:, k, :] = model.observe(np.full(n, t[k]), Y[:, k, :], PT)
    return out


def _namespace(model: CompiledModel, t, y: np.ndarray, obs: np.ndarray, P: np.ndarray) -> dict:
    values: dict = {ex.TIME: t}
    values.update({name: P[:, j] for j, name in enumerate(model.parameters)})
    for name, node in model.derived:
        values[name] = ex.evaluate_array(node, values)
    values.update({name: y[:, i] for i, name in enumerate(model.species)})
    values.update({name: obs[:, j] for j, name in enumerate(model.observables)})
    return values


def parse_conditions(model: CompiledModel, conditions: Sequence[str],
                     source: str | None = None) -> list[tuple[str, ex.Expr]]:
    """Check conditions such as ``"T < 1e3"`` against the model's names (clear errors, nothing evaluated)."""
    source = source or argument("time_to")
    known = {ex.TIME, *model.species, *model.parameters, *model.observables, *(n for n, _ in model.derived)}
    parsed, problems = [], []
    for text in conditions:
        try:
            node = ex.parse(text)
        except Exception as exc:  # ExpressionError with the reason
            problems.append(Problem(source, f"'{text}': {exc}", model.source))
            continue
        unknown = sorted(node.names() - known)
        if unknown:
            problems.append(Problem(source, f"'{text}': unknown name '{unknown[0]}'{did_you_mean(unknown[0], known)}",
                                    model.source))
        elif not ex.is_condition(node):
            problems.append(Problem(source, f"'{text}' is not a condition (write e.g. 'T < 1000')", model.source))
        else:
            parsed.append((text, node))
    if problems:
        raise ModelError(problems)
    return parsed


def patient_metrics(
    model: CompiledModel,
    t: np.ndarray,
    Y: np.ndarray,
    P: np.ndarray,
    status: np.ndarray,
    *,
    P_end: np.ndarray | None = None,
    status_text: dict[int, str] | None = None,
    conditions: Sequence[tuple[str, ex.Expr]] = (),
    first_id: int = 0,
) -> pd.DataFrame:
    """One row per patient (index ``patient``, numbered from ``first_id``); see the module docstring.

    ``P`` are the parameters each patient started with; ``P_end`` those at the end (events may
    change parameters; the outcome is judged with them, over its whole ``held_for`` window too, as
    the batch engine keeps no parameters in between). Failed patients keep NaN metrics.
    """
    t = np.asarray(t, dtype=float)
    n = Y.shape[0]
    P_end = P if P_end is None else P_end
    obs = observables_over_time(model, t, Y, P)
    columns: dict[str, np.ndarray] = {}
    ok = np.asarray(status) == 0
    texts = status_text or {}
    columns["status"] = np.array([texts.get(int(s), "ok" if s == 0 else f"failed ({int(s)})") for s in status], dtype=object)

    values_end = _namespace(model, t[-1], Y[:, -1, :], obs[:, -1, :], P_end)
    last = len(t) - 1
    outcome = label_outcomes(
        model, t, lambda k: values_end if k == last else _namespace(model, t[k], Y[:, k, :], obs[:, k, :], P_end), n)
    outcome[~ok] = FAILED
    columns["outcome"] = outcome

    for name, node in model.derived:
        columns[name] = np.broadcast_to(np.asarray(ex.evaluate_array(node, values_end), dtype=float), (n,)).copy()

    series = [(name, Y[:, :, i]) for i, name in enumerate(model.species)]
    series += [(name, obs[:, :, j]) for j, name in enumerate(model.observables)]
    with np.errstate(all="ignore"):
        for name, v in series:
            v = np.where(np.isfinite(v), v, np.nan)
            defined = ~np.all(np.isnan(v), axis=1)
            filled_hi = np.where(np.isnan(v), -np.inf, v)
            filled_lo = np.where(np.isnan(v), np.inf, v)
            i_max, i_min = np.argmax(filled_hi, axis=1), np.argmin(filled_lo, axis=1)
            rows = np.arange(n)
            columns[f"{name}.peak"] = np.where(defined, v[rows, i_max], np.nan)
            columns[f"{name}.peak_time"] = np.where(defined, t[i_max], np.nan)
            columns[f"{name}.nadir"] = np.where(defined, v[rows, i_min], np.nan)
            columns[f"{name}.nadir_time"] = np.where(defined, t[i_min], np.nan)
            columns[f"{name}.final"] = v[:, -1]

    for text, node in conditions:
        first = np.full(n, np.nan)
        pending = np.ones(n, dtype=bool)
        for k in range(len(t)):
            values = _namespace(model, t[k], Y[:, k, :], obs[:, k, :], P)
            holds = np.broadcast_to(np.asarray(ex.evaluate_array(node, values), dtype=bool), (n,)) & pending
            first[holds] = t[k]
            pending &= ~holds
            if not pending.any():
                break
        columns[f"first_time[{text}]"] = first

    columns.update(_toxicity_grades(model, t, Y, obs))
    for name, values in columns.items():
        if values.dtype != object and name != "outcome":
            values[~ok] = np.nan
    frame = pd.DataFrame(columns, index=pd.RangeIndex(first_id, first_id + n, name="patient"))
    return frame


def _toxicity_grades(model: CompiledModel, t: np.ndarray, Y: np.ndarray, obs: np.ndarray) -> dict[str, np.ndarray]:
    """Maximum CTCAE grade per patient of each term in the model's ``toxicity:`` section."""
    entries = model.spec.toxicity
    if not entries:
        return {}
    units = {s.name: s.units for s in model.spec.species} | {o.name: o.units for o in model.spec.observables}
    index = {name: ("y", i) for i, name in enumerate(model.species)}
    index.update({name: ("o", j) for j, name in enumerate(model.observables)})
    time_units = model.spec.metadata.time_units
    out = {}
    for entry in entries:
        term = get_term(entry.term)
        scale = term.scale(entry.scale)
        where, i = index[entry.readout]
        values = Y[:, :, i] if where == "y" else obs[:, :, i]
        convert = _converter(units[entry.readout], scale.units)
        base = None if entry.baseline is None else convert(entry.baseline)
        grades = np.full(len(values), np.nan)
        for k, row in enumerate(values):
            if np.isfinite(row).all():
                g = grade_series(term, convert(row), t, baseline=base, time_units=time_units, scale=scale.name,
                                 lln=entry.lln)
                grades[k] = float(np.max(g)) if len(g) else 0.0
        out[f"grade[{term.name}]"] = grades
    return out
