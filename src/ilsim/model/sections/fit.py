"""The schema of the ``fit:`` section, as plain data: which parameters a fit estimates (bounds, scale), where
the measurements are and how each observable's noise is modelled. ``ilsim.fit`` gives it meaning
(docs/fitting.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ilsim.model.base import _Strict
from ilsim.model.sections.catalogue import Text


class FitParameter(_Strict):
    """``{name: k, lower: 0.01, upper: 10, scale: log10}``: a model parameter to estimate."""

    name: Text
    lower: float = Field(allow_inf_nan=False)
    upper: float = Field(allow_inf_nan=False)
    scale: Literal["lin", "log", "log10"] = "log10"

    @model_validator(mode="after")
    def _bounds(self):
        if self.lower > self.upper:
            raise ValueError(f"lower bound {self.lower:g} is above upper bound {self.upper:g}")
        if self.scale != "lin" and self.lower <= 0:
            raise ValueError(f"a {self.scale}-scaled parameter needs positive bounds; lower is {self.lower:g}")
        return self


class FitNoise(_Strict):
    """``{observable: IL6, distribution: lognormal, sigma: 0.1}``: the noise of one measured species or observable.

    ``normal`` is on the linear scale, ``lognormal`` on the natural log scale; ``proportional`` multiplies
    sigma by the model's value (normal only). ``sigma: estimate`` estimates it within ``sigma_bounds`` (log10).
    """

    observable: Text
    distribution: Literal["normal", "lognormal"] = "normal"
    type: Literal["additive", "proportional"] = "additive"
    sigma: float | Literal["estimate"] = "estimate"
    sigma_bounds: tuple[float, float] = (1e-3, 1e3)

    @model_validator(mode="after")
    def _check(self):
        if isinstance(self.sigma, float) and not self.sigma > 0:
            raise ValueError(f"sigma must be positive, got {self.sigma:g}")
        lo, hi = self.sigma_bounds
        if not 0 < lo <= hi:
            raise ValueError(f"sigma_bounds must be positive and increasing, got ({lo:g}, {hi:g})")
        if self.distribution == "lognormal" and self.type == "proportional":
            raise ValueError("log-normal noise is already proportional; use type: additive")
        return self


class FitSection(_Strict):
    """``fit:`` in a model file."""

    measurements: Text  # a CSV or TSV file beside the model: columns observable, time, measurement
    parameters: list[FitParameter] = Field(min_length=1)
    noise: list[FitNoise] = Field(default_factory=list)  # observables measured without an entry: normal, sigma estimated
