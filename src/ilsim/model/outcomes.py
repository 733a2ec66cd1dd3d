"""Outcome labels of runs: the one rule that a single run and every patient of a cohort are judged by.

The first outcome, in model order, whose condition holds wins; ``undetermined`` if none does. An
outcome without ``held_for`` is judged at the last output time. With ``held_for: H`` its condition
must hold at every output time in [t_end - H, t_end]: the judgement is on output points, so a
dip between two of them is not seen (choose ``points`` fine enough for the window). A run whose
output times span less than H cannot show that the condition held that long, so the outcome does
not apply to it (the next one is tried).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ilsim.model import expressions as ex

if TYPE_CHECKING:
    from ilsim.model.compile import CompiledModel

UNDETERMINED = "undetermined"  # the label when no outcome's condition holds
FAILED = "failed"  # the outcome of a patient whose integration failed (cohorts, sweeps)
NO_OUTCOME = "(no outcome rules)"  # the label counted when a model defines no outcomes


def rules(model: CompiledModel) -> dict[str, str]:
    """Each outcome label with the rule that gives it, as text ("if P < 1 for the last 30 (day)"), plus why a run is
    undetermined."""
    units = model.spec.metadata.time_units
    out = {oc.label: f"if {ex.to_text(oc.condition)}"
           + (f" for the last {declared.held_for:g} ({units})" if declared.held_for is not None else " at the end")
           for oc, declared in zip(model.outcomes, model.spec.outcomes, strict=True)}
    if out:
        out[UNDETERMINED] = ("no rule above held at the end (or for its whole held_for window), or the run is shorter "
                             "than a rule's held_for window")
    return out


def window(t: np.ndarray, held_for: float | None) -> np.ndarray:
    """Indices of the output times an outcome is judged at: the last one, or all in [t_end - held_for, t_end];
    none if the run spans less than ``held_for``."""
    t = np.asarray(t, dtype=float)
    last = len(t) - 1
    if held_for is None:
        return np.array([last])
    slack = 1e-9 * max(abs(t[-1]), abs(t[0]), 1.0)  # output times from linspace carry rounding
    if t[-1] - t[0] < held_for - slack:
        return np.array([], dtype=int)
    return np.flatnonzero(t >= t[-1] - held_for - slack)


def label_outcomes(model: CompiledModel, t: np.ndarray, values_at: Callable[[int], dict], n: int) -> np.ndarray:
    """The outcome label of each of ``n`` runs sharing output times ``t`` ("" if the model has no outcomes).

    ``values_at(k)`` gives the names' values at output time ``t[k]``: numbers, or arrays with one
    element per run.
    """
    if not model.outcomes:
        return np.full(n, "", dtype=object)
    labels = np.full(n, UNDETERMINED, dtype=object)
    decided = np.zeros(n, dtype=bool)
    cache: dict[int, dict] = {}
    # model.outcomes are compiled from model.spec.outcomes, one for one and in order
    for compiled, declared in zip(model.outcomes, model.spec.outcomes, strict=True):
        points = window(t, declared.held_for)
        holds = np.full(n, len(points) > 0)
        for k in points:
            if not holds.any():
                break
            if k not in cache:
                cache[k] = values_at(int(k))
            holds &= np.broadcast_to(np.asarray(ex.evaluate_array(compiled.condition, cache[k]), dtype=bool), (n,))
        labels[holds & ~decided] = compiled.label
        decided |= holds
    return labels
