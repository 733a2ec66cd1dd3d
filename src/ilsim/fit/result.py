"""What a fit returns: every start, the best parameters, their profiles and intervals."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ilsim.fit.problem import FitProblem, from_scale


@dataclass
class FitResult:
    problem: FitProblem
    starts: list[dict]  # every start's record (x0, x, objective, nllh, status, message, evaluations, seconds)
    seed: int
    wall_time_s: float
    optimizer: str
    profiles: dict[str, dict] = field(default_factory=dict)  # parameter -> {"x", "nllh", "lower", "upper", "flat"}

    @property
    def names(self) -> list[str]:
        return self.problem.parameters.names

    @property
    def ranked(self) -> list[dict]:
        """The starts that ended with a value, best first."""
        return sorted((s for s in self.starts if s["objective"] is not None), key=lambda s: s["objective"])

    @property
    def best(self) -> dict:
        if not self.ranked:
            return {}
        return self.ranked[0]

    @property
    def x(self) -> np.ndarray:
        """The best estimate on the parameters' scales."""
        return np.array(self.best["x"], float)

    @property
    def parameters(self) -> dict[str, float]:
        """The best estimate on the linear scale, by name."""
        return dict(zip(self.names, map(float, self.problem.parameters.unscale(self.x))))

    @property
    def nllh(self) -> float:
        return float(self.best["nllh"])

    @property
    def llh(self) -> float:
        return -self.nllh

    def converged_fraction(self, tolerance: float = 0.1) -> float:
        """The fraction of all starts whose objective ends within ``tolerance`` of the best."""
        if not self.ranked:
            return 0.0
        best = self.ranked[0]["objective"]
        return sum(1 for s in self.ranked if s["objective"] - best <= tolerance) / len(self.starts)

    def failed(self) -> list[dict]:
        return [s for s in self.starts if s["status"] == "failed"]

    def table(self):
        """Parameters: name, scale, bounds, estimate, and the 95% profile interval where profiled (linear values)."""
        import pandas as pd  # lazy: heavy (pandas)

        p = self.problem.parameters
        rows = []
        for name, j, value in zip(self.names, p.estimated, p.unscale(self.x)):
            prof = self.profiles.get(name, {})
            lo, hi = (float(from_scale(prof[k], p.scales[j])) if prof else None for k in ("lower", "upper"))
            rows.append({"parameter": name, "scale": p.scales[j], "lower_bound": p.lower[j], "upper_bound": p.upper[j],
                         "estimate": float(value), "ci95_lower": lo, "ci95_upper": hi,
                         "identifiable": None if not prof else not prof.get("flat")})
        return pd.DataFrame(rows)
