"""The schema of the ``population:`` section: how virtual patients differ (docs/population.md), as plain data.

Each parameter or covariate has a distribution; correlations join them through a Gaussian copula.
``ilsim.patients.population`` draws patients from it.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from ilsim.errors import ExpressionError, did_you_mean
from ilsim.model import expressions as ex
from ilsim.model.base import _check_name, _Strict

SEED_MAX = 2**63 - 1  # seeds fit a signed 64-bit integer in result files

KINDS = ("normal", "lognormal", "uniform", "loguniform", "truncated", "fixed")
# the numbers each kind takes, besides lower/upper (truncation) and scale
_TAKES = {
    "normal": ("mean", "sd"),
    "truncated": ("mean", "sd"),
    "lognormal": ("median", "cv", "mu", "sigma", "mean", "sd"),
    "uniform": ("low", "high"),
    "loguniform": ("low", "high"),
    "fixed": ("value",),
}
_LOGNORMAL_FORMS = (("median", "cv"), ("mu", "sigma"), ("mean", "sd"))
_POSITIONAL = {"normal": ("mean", "sd"), "truncated": ("mean", "sd"), "uniform": ("low", "high"),
               "loguniform": ("low", "high"), "fixed": ("value",), "lognormal": ()}
_NUMBERS = ("mean", "sd", "median", "cv", "mu", "sigma", "low", "high", "value", "lower", "upper")


class Distribution(_Strict):
    """One parameter's or covariate's distribution across patients (before any ``scale``)."""

    distribution: Literal["normal", "lognormal", "uniform", "loguniform", "truncated", "fixed"]
    mean: float | None = None
    sd: float | None = None
    median: float | None = None  # lognormal: exp(mu)
    cv: float | None = None  # lognormal: coefficient of variation, sd/mean = sqrt(exp(sigma^2) - 1)
    mu: float | None = None  # lognormal: mean of log(x)
    sigma: float | None = None  # lognormal: sd of log(x)
    low: float | None = None
    high: float | None = None
    value: float | None = None
    lower: float | None = None  # truncation: no patient below
    upper: float | None = None  # truncation: no patient above
    scale: str | float | None = None  # parameters only: an expression over covariates multiplying the draw
    units: str = ""
    description: str = ""

    @field_validator(*_NUMBERS)
    @classmethod
    def _finite(cls, v):
        if v is not None and not math.isfinite(v):
            raise ValueError(f"must be a finite number, got {v}")
        return v

    @field_validator("sd", "cv", "sigma")
    @classmethod
    def _spread_positive(cls, v):
        if v is not None and not v > 0:
            raise ValueError(f"must be positive, got {v:g}")
        return v

    @field_validator("median")
    @classmethod
    def _median_positive(cls, v):
        if v is not None and not v > 0:
            raise ValueError(f"a lognormal median must be positive, got {v:g}")
        return v

    @field_validator("scale", mode="before")
    @classmethod
    def _scale_parses(cls, v):
        if v is None:
            return v
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise ValueError(f"expected an expression over covariates (text or a number), got {v!r}")
        try:
            node = ex.parse(v)
        except ExpressionError as exc:
            raise ValueError(str(exc)) from None
        if ex.is_condition(node):
            raise ValueError(f"expected a value, got the condition '{v}'")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        kind = self.distribution
        given = [f for f in _NUMBERS if f not in ("lower", "upper") and getattr(self, f) is not None]
        takes = _TAKES[kind]
        wrong = [f for f in given if f not in takes]
        if wrong:
            raise ValueError(f"{kind} takes {_list(takes)}; '{wrong[0]}' does not apply")
        if kind == "lognormal":
            forms = [form for form in _LOGNORMAL_FORMS if set(form) == set(given)]
            if not forms:
                raise ValueError("lognormal takes one pair: median and cv, mu and sigma, or mean and sd"
                                 f" (got {_list(given) or 'none'})")
            if self.mean is not None and not self.mean > 0:
                raise ValueError(f"a lognormal mean must be positive, got {self.mean:g}")
        else:
            missing = [f for f in takes if f not in given]
            if missing:
                raise ValueError(f"{kind} needs {_list(missing)}")
        if self.lower is not None and self.upper is not None and not self.lower < self.upper:
            raise ValueError(f"lower ({self.lower:g}) must be less than upper ({self.upper:g})")
        if kind == "truncated" and self.lower is None and self.upper is None:
            raise ValueError("truncated needs lower, upper or both (a normal distribution cut at those bounds)")
        if kind in ("uniform", "loguniform"):
            if not self.low < self.high:
                raise ValueError(f"low ({self.low:g}) must be less than high ({self.high:g})")
            if kind == "loguniform" and not self.low > 0:
                raise ValueError(f"loguniform needs a positive low, got {self.low:g}")
            lo, hi = max(self.low, _or(self.lower, -math.inf)), min(self.high, _or(self.upper, math.inf))
            if not lo < hi:
                raise ValueError(f"the range lower..upper leaves nothing of low..high ({self.low:g}..{self.high:g})")
        if kind in ("lognormal", "loguniform") and self.upper is not None and not self.upper > 0:
            raise ValueError(f"{kind} values are positive: upper must be positive, got {self.upper:g}")
        if kind == "fixed" and not _or(self.lower, -math.inf) <= self.value <= _or(self.upper, math.inf):
            raise ValueError(f"value {self.value:g} lies outside lower..upper "
                             f"({_or(self.lower, -math.inf):g}..{_or(self.upper, math.inf):g})")
        return self

    def _normal_location(self) -> tuple[float, float]:
        """Mean and sd of the underlying normal (of log(x) for lognormal)."""
        if self.distribution != "lognormal":
            return self.mean, self.sd
        if self.median is not None:
            return math.log(self.median), math.sqrt(math.log1p(self.cv**2))
        if self.mu is not None:
            return self.mu, self.sigma
        s2 = math.log1p((self.sd / self.mean) ** 2)
        return math.log(self.mean) - s2 / 2, math.sqrt(s2)

    def _standard_bounds(self, loc: float, spread: float) -> tuple[float, float]:
        def standard(bound, default):
            if bound is None:
                return default
            if self.distribution == "lognormal":
                bound = math.log(bound) if bound > 0 else -math.inf
            return (bound - loc) / spread

        return standard(self.lower, -math.inf), standard(self.upper, math.inf)


def _or(value, default):
    return default if value is None else value


def _list(names, conjunction: str = "and") -> str:
    names = list(names)
    return ", ".join(names[:-1]) + f" {conjunction} {names[-1]}" if len(names) > 1 else "".join(names)


def _check_correlation(pair: tuple[str, str, float]) -> tuple[str, str, float]:
    a, b, r = pair
    if not -1.0 <= r <= 1.0:
        raise ValueError(f"the correlation of '{a}' and '{b}' must be between -1 and 1, got {r:g}")
    if a == b:
        raise ValueError(f"'{a}' cannot be correlated with itself")
    return pair


def _correlation_shape(entry):
    if not isinstance(entry, (list, tuple)) or len(entry) != 3:
        raise ValueError(f"a correlation is [name, name, r], e.g. [kpg, s1, -0.4]; got {entry!r}")
    return entry


Correlation = Annotated[tuple[str, str, float], BeforeValidator(_correlation_shape), AfterValidator(_check_correlation)]


class Population(_Strict):
    """The ``population:`` section: how virtual patients differ, and the seed that draws them."""

    seed: int | None = None  # 0 .. SEED_MAX
    parameters: dict[str, Distribution] = Field(default_factory=dict)
    covariates: dict[str, Distribution] = Field(default_factory=dict)
    correlations: list[Correlation] = Field(default_factory=list)  # [name, name, r]: Gaussian copula

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_in_range(cls, v):
        if v is not None and not _is_seed(v):
            raise ValueError(f"the seed must be an integer from 0 to {SEED_MAX}, got {v!r}")
        return v

    @field_validator("parameters", "covariates")
    @classmethod
    def _names(cls, entries):
        for name in entries:
            _check_name(name)
        return entries

    @model_validator(mode="after")
    def _consistent(self):
        problems = population_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def population_problems(population: Population) -> list[str]:
    """Mistakes that need the whole section: shared names, scale names, correlations."""
    problems = []
    covariates = population.covariates
    for name in sorted(set(population.parameters) & set(covariates)):
        problems.append(f"'{name}' is both a parameter and a covariate: keep one")
    for name, dist in covariates.items():
        if dist.scale is not None:
            problems.append(f"covariates.{name}.scale: covariates are drawn unscaled; scale applies to parameters")
    for name, dist in population.parameters.items():
        if dist.scale is not None:
            for used in sorted(ex.parse(dist.scale).names() - set(covariates)):
                problems.append(f"parameters.{name}.scale: unknown covariate '{used}'{did_you_mean(used, covariates)}"
                                f"; a scale uses covariates only ({_list(covariates) or 'none declared'})")
    entries = {**covariates, **population.parameters}
    seen: dict[frozenset, int] = {}
    for i, (a, b, _) in enumerate(population.correlations):
        for name in (a, b):
            if name not in entries:
                problems.append(f"correlations[{i}]: '{name}' has no distribution in this population"
                                f"{did_you_mean(name, entries)}")
            elif entries[name].distribution == "fixed":
                problems.append(f"correlations[{i}]: '{name}' is fixed: there is nothing to correlate")
        key = frozenset((a, b))
        if key in seen:
            problems.append(f"correlations[{i}]: the pair '{a}', '{b}' is already given in correlations[{seen[key]}]")
        seen.setdefault(key, i)
    if not problems:
        problems += _definiteness_problems(list(entries), population.correlations)
    return problems


def _correlation_matrix(names: list[str], pairs) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    c = np.eye(len(names))
    for a, b, r in pairs:
        c[index[a], index[b]] = c[index[b], index[a]] = r
    return c


def _definiteness_problems(names: list[str], pairs) -> list[str]:
    """The correlations must form a positive definite matrix; name the entries of each group that does not."""
    groups = {n: {n} for n in names}
    for a, b, _ in pairs:  # connected groups of correlated names
        merged = groups[a] | groups[b]
        for n in merged:
            groups[n] = merged
    problems = []
    for group in {frozenset(g) for g in groups.values() if len(g) > 1}:
        members = [n for n in names if n in group]
        within = [(i, p) for i, p in enumerate(pairs) if p[0] in group]
        smallest = np.linalg.eigvalsh(_correlation_matrix(members, [p for _, p in within]))[0]
        if smallest <= 1e-10:
            listed = ", ".join(f"correlations[{i}] ({a}, {b}, {r:g})" for i, (a, b, r) in within)
            problems.append(f"the correlations of {_list(members)} are not positive definite (smallest eigenvalue "
                            f"{smallest:.3g}): no population has them all at once; weaken some of {listed}")
    return problems


def _is_seed(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value <= SEED_MAX
