"""Profile likelihoods: one estimated parameter fixed on a path away from the best fit, the others optimised
again at each point; the 95% interval is where the profile crosses the best value + chi2(1, 0.95) / 2.

A profile that reaches a bound before crossing the threshold is flat there: the parameter is practically
non-identifiable on that side (its interval is open at the bound).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ilsim.fit.multistart import _fides, _trf
from ilsim.fit.objective import Objective

THRESHOLD = 0.5 * 3.841458820694124  # chi2(1 degree of freedom) 95% quantile / 2, in negative log-likelihood


@dataclass
class _Reduced:
    """The objective with parameter k held at a value: what the local optimisers see."""

    objective: Objective
    k: int
    value: float

    def full(self, x):
        return np.insert(np.asarray(x, float), self.k, self.value)

    def __call__(self, x, gradient: bool = False):
        ev = self.objective(self.full(x), gradient=gradient)
        if gradient and ev.gradient is not None:
            ev.gradient = np.delete(ev.gradient, self.k)
            ev.jacobian = np.delete(ev.jacobian, self.k, axis=1)
            ev.fisher = np.delete(np.delete(ev.fisher, self.k, axis=0), self.k, axis=1)
        return ev


def profile(objective: Objective, best: np.ndarray, k: int, max_steps: int = 30, optimizer: str = "fides") -> dict:
    """The profile of estimated parameter k through ``best``: points, values and the 95% interval (on k's scale)."""
    lower, upper = objective.problem.parameters.bounds()
    f0 = objective(best).objective
    others_lo, others_hi = np.delete(lower, k), np.delete(upper, k)
    points = [(float(best[k]), float(f0))]
    ends = {}
    for direction in (-1.0, 1.0):
        x = np.delete(best, k)
        value = float(best[k])
        step = 0.004 * (upper[k] - lower[k])
        crossed = False
        for _ in range(max_steps):
            target = float(np.clip(value + direction * step, lower[k], upper[k]))
            if target == value:
                break
            reduced = _Reduced(objective, k, target)
            try:
                fitted, *_ = (_fides if optimizer == "fides" else _trf)(reduced, np.clip(x, others_lo, others_hi),
                                                                       others_lo, others_hi, 200)
            except Exception:  # noqa: BLE001 - a point that cannot be fitted ends the profile on this side
                break
            f = reduced(fitted).objective
            if not np.isfinite(f):
                break
            rise = f - f0
            if rise > 3 * THRESHOLD and step > 1e-4 * (upper[k] - lower[k]):
                step *= 0.5  # far past the threshold in one step: a shorter one places the crossing better
                continue
            points.append((target, float(f)))
            x, value = fitted, target
            if rise > THRESHOLD:
                crossed = True
                break
            step = min(step * 1.5, 0.1 * (upper[k] - lower[k]))
        ends[direction] = crossed
    points.sort()
    xs = np.array([p[0] for p in points])
    fs = np.array([p[1] for p in points]) - f0
    lo = _crossing(xs, fs, float(best[k]), -1) if ends[-1.0] else float(lower[k])
    hi = _crossing(xs, fs, float(best[k]), +1) if ends[1.0] else float(upper[k])
    return {"x": xs.tolist(), "delta_nllh": fs.tolist(), "lower": lo, "upper": hi,
            "flat": not (ends[-1.0] and ends[1.0]), "flat_lower": not ends[-1.0], "flat_upper": not ends[1.0]}


def _crossing(xs, fs, centre, side) -> float:
    """Where the profile rises through THRESHOLD on one side of the best value (linear between points)."""
    order = np.argsort(side * (xs - centre))
    xs, fs = xs[order], fs[order]
    keep = side * (xs - centre) >= 0
    xs, fs = xs[keep], fs[keep]
    for i in range(1, len(xs)):
        if fs[i] >= THRESHOLD > fs[i - 1]:
            return float(xs[i - 1] + (THRESHOLD - fs[i - 1]) * (xs[i] - xs[i - 1]) / (fs[i] - fs[i - 1]))
    return float(xs[-1])
