"""Virtual patients: parameter distributions, correlations and covariates, drawn reproducibly.

A model's ``population:`` section (or ``--vary`` options) says how parameters differ between
patients. Draws use a Gaussian copula: correlated standard normal scores are mapped through each
marginal's inverse CDF, so every marginal is exact whatever the correlations. Patients are drawn in
fixed blocks of ``BLOCK`` from ``SeedSequence(seed, spawn_key=(block,))``, so patient i's values
depend only on the seed and i: any split of a cohort into chunks gives the same patients.
"""

from __future__ import annotations

import ast
import math
import secrets
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, field_validator, model_validator
from scipy.special import ndtr
from scipy.stats import truncnorm

from ilsim.errors import ExpressionError, IlsimError, ModelError, Problem, did_you_mean
from ilsim.model import expressions as ex
from ilsim.model.base import _check_name, _Strict

BLOCK = 4096  # patients per random block: the unit of reproducibility, independent of chunking
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

    def from_scores(self, z: np.ndarray) -> np.ndarray:
        """Values whose standard normal scores are ``z`` (the inverse CDF of this marginal at Phi(z))."""
        kind = self.distribution
        if kind == "fixed":
            return np.full(z.shape, self.value)
        if kind in ("uniform", "loguniform"):
            lo, hi = max(self.low, _or(self.lower, -math.inf)), min(self.high, _or(self.upper, math.inf))
            if kind == "loguniform":
                return np.exp(np.log(lo) + (np.log(hi) - np.log(lo)) * ndtr(z))
            return lo + (hi - lo) * ndtr(z)
        loc, spread = self._normal_location()
        a, b = self._standard_bounds(loc, spread)
        if a == -math.inf and b == math.inf:
            y = z
        else:  # each half from its own side, so the upper tail loses no precision to 1 - tiny
            y, low = np.empty_like(z), z < 0
            y[low] = truncnorm.ppf(ndtr(z[low]), a, b)
            y[~low] = truncnorm.isf(ndtr(-z[~low]), a, b)
        x = loc + spread * y
        return np.exp(x) if kind == "lognormal" else x

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


# ------------------------------------------------------------------------------------- --vary


def parse_vary(text: str, source: str = "--vary") -> tuple[str, Distribution]:
    """``"kpg=lognormal(median=0.6, cv=0.3)"`` -> ("kpg", Distribution); the text is parsed, never run."""

    def fail(message: str, field: str = "") -> ModelError:
        return ModelError([Problem(field, f"{message} (in '{text}')", source)])

    name, eq, call = str(text).partition("=")
    name = name.strip()
    if not eq or not call.strip():
        raise fail("expected NAME=DISTRIBUTION(...), e.g. c=uniform(0.02, 0.05) or kpg=lognormal(median=0.6, cv=0.3)")
    try:
        _check_name(name)
    except ValueError as exc:
        raise fail(str(exc)) from None
    try:
        node = ast.parse(call.strip(), mode="eval").body
    except SyntaxError:
        raise fail("cannot read the distribution: expected e.g. normal(550, 50, lower=0)", name) from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise fail(f"expected a distribution call, one of {_list(KINDS, 'or')}", name)
    kind = node.func.id
    if kind not in KINDS:
        raise fail(f"unknown distribution '{kind}'{did_you_mean(kind, KINDS)}; use one of {_list(KINDS, 'or')}", name)
    fields: dict = {"distribution": kind}
    positional = _POSITIONAL[kind]
    if len(node.args) > len(positional):
        how = (f"at most {len(positional)} values by position ({_list(positional)})" if positional else
               "its values by name: median= and cv=, mu= and sigma=, or mean= and sd=")
        raise fail(f"{kind} takes {how}", name)
    for field, arg in zip(positional, node.args):
        fields[field] = _number(arg, fail, name)
    for keyword in node.keywords:
        if keyword.arg is None:
            raise fail("unpacking ('**') is not allowed", name)
        if keyword.arg in fields:
            raise fail(f"'{keyword.arg}' is given twice", name)
        is_text = keyword.arg == "scale" and isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str)
        fields[keyword.arg] = keyword.value.value if is_text else _number(keyword.value, fail, name)
    try:
        return name, Distribution.model_validate(fields)
    except ValidationError as exc:
        from ilsim.model.load import problems_from_validation

        problems = problems_from_validation(exc, source, root=Distribution)
        raise ModelError([Problem(".".join(p for p in (name, q.field) if p), f"{q.message} (in '{text}')", source)
                          for q in problems]) from None


def _number(node: ast.AST, fail, name: str) -> float:
    sign = 1.0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
        node = node.operand
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return sign * float(node.value)
    raise fail(f"expected a number, got '{ast.unparse(node)}'", name)


# ------------------------------------------------------------------------------------ sampler


class PopulationSampler:
    """Draws virtual patients of one compiled model; see ``population_sampler``."""

    def __init__(self, compiled, population: Population, seed: int):
        self.population = population
        self.seed = seed
        self.covariates = tuple(population.covariates)
        self.parameters = tuple(population.parameters)
        self.names = (*self.covariates, *self.parameters)  # table columns, in draw order
        self._dists = [*population.covariates.values(), *population.parameters.values()]
        self._p0 = np.asarray(compiled.p0, dtype=float)
        index = {n: i for i, n in enumerate(compiled.parameters)}
        self._targets = [(k, index[n]) for k, n in enumerate(self.names) if n in index]
        self._cholesky = np.linalg.cholesky(_correlation_matrix(list(self.names), population.correlations))
        self._scales = _scale_functions(population)
        self._last = (-1, None)  # the latest block's scores: consecutive small chunks share a block

    def draw(self, start: int, stop: int) -> tuple[np.ndarray, pd.DataFrame]:
        """Patients start..stop-1: the parameter matrix (patients x model parameters) and the drawn values."""
        if isinstance(start, bool) or isinstance(stop, bool) or not (0 <= int(start) <= int(stop)):
            raise IlsimError(f"patients are numbered from 0: need 0 <= start <= stop, got start={start}, stop={stop}")
        start, stop = int(start), int(stop)
        values = np.empty((stop - start, len(self.names)))
        if self.names:
            for block in range(start // BLOCK, -(-stop // BLOCK)):
                first = block * BLOCK
                lo, hi = max(start, first), min(stop, first + BLOCK)
                z = self._scores(block)[lo - first:hi - first]
                values[lo - start:hi - start] = self._values(z)
        p = np.tile(self._p0, (stop - start, 1))
        for k, i in self._targets:
            p[:, i] = values[:, k]
        table = pd.DataFrame(values, columns=list(self.names), index=pd.RangeIndex(start, stop, name="patient"))
        return p, table

    def _scores(self, block: int) -> np.ndarray:
        """Correlated standard normal scores of one whole block (so any chunk of it gives the same rows)."""
        last, scores = self._last
        if last != block:
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=(block,))))
            scores = rng.standard_normal((BLOCK, len(self.names))) @ self._cholesky.T
            self._last = (block, scores)
        return scores

    def _values(self, z: np.ndarray) -> np.ndarray:
        values = np.column_stack([d.from_scores(z[:, k]) for k, d in enumerate(self._dists)])
        ncov = len(self.covariates)
        columns = [values[:, k] for k in range(ncov)]
        for k, scale in self._scales.items():
            values[:, ncov + k] *= scale(columns)
        return values

    def describe(self) -> dict:
        """JSON-ready record of how patients were drawn; its population fields load back as a ``population:``."""
        dumped = self.population.model_dump(mode="json", exclude_defaults=True)
        return {"seed": self.seed, "parameters": dumped.get("parameters", {}), "covariates": dumped.get("covariates", {}),
                "correlations": dumped.get("correlations", []), "copula": "gaussian",
                "generator": f"numpy PCG64 from SeedSequence(seed, spawn_key=(block,)), blocks of {BLOCK} patients"}


def _scale_functions(population: Population) -> dict:
    """parameter position -> vectorised function of the covariate columns, generated from the parsed tree."""
    from ilsim.model.compile import _PRELUDE, _import_generated

    names = {n: f"c[{i}]" for i, n in enumerate(population.covariates)}
    scaled = [(k, d.scale) for k, d in enumerate(population.parameters.values()) if d.scale is not None]
    if not scaled:
        return {}
    lines = [*_PRELUDE]
    for k, text in scaled:
        lines += [f"def scale_{k}(c):", f"    return {ex.to_code(ex.parse(text), names, True)}", ""]
    module = _import_generated("\n".join(lines), jit=False)
    return {k: getattr(module, f"scale_{k}") for k, _ in scaled}


def population_sampler(compiled, population: Population | dict | None = None, vary: list[str] | None = None,
                       seed: int | None = None, source: str | None = None) -> PopulationSampler:
    """A sampler of virtual patients for ``compiled`` (a CompiledModel).

    ``population`` defaults to the model's ``population:`` section; each ``vary`` text
    (``"c=uniform(0.02, 0.05)"``) replaces or adds one entry. The seed is ``seed``, else the
    population's, else drawn from the operating system; it is always recorded in ``sampler.seed``.
    """
    source = compiled.source if source is None else source
    if population is None:
        population = getattr(compiled.spec, "population", None) or Population()
    elif not isinstance(population, Population):
        population = _validated(population, source, "population")
    population = _with_vary(population, vary or [], compiled)
    problems = [Problem(f"population.parameters.{name}", f"unknown parameter '{name}'{did_you_mean(name, compiled.parameters)}",
                        source) for name in population.parameters if name not in compiled.parameters]
    if problems:
        raise ModelError(problems)
    if seed is None:
        seed = population.seed if population.seed is not None else secrets.randbits(63)
    elif not _is_seed(seed):
        raise ModelError([Problem("", f"the seed must be an integer from 0 to {SEED_MAX}, got {seed!r}", "--seed")])
    return PopulationSampler(compiled, population, int(seed))


def _is_seed(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value <= SEED_MAX


def _validated(data, source: str | None, where: str) -> Population:
    from ilsim.model.load import problems_from_validation

    try:
        return Population.model_validate(data)
    except ValidationError as exc:
        problems = problems_from_validation(exc, source, root=Population)
        raise ModelError([Problem(".".join(p for p in (where, q.field) if p), q.message, source) for q in problems]) from None


def _with_vary(population: Population, vary: list[str], compiled) -> Population:
    """The population with each --vary entry replacing or adding one; mistakes name --vary."""
    if isinstance(vary, str):
        vary = [vary]
    covariates, parameters = dict(population.covariates), dict(population.parameters)
    problems = []
    for text in vary:
        name, dist = parse_vary(text, "--vary")
        if name in covariates:
            covariates[name] = dist
        elif name in compiled.parameters:
            parameters[name] = dist
        else:
            hint = did_you_mean(name, [*compiled.parameters, *covariates])
            problems.append(Problem(name, f"unknown parameter or covariate '{name}'{hint} (in '{text}')", "--vary"))
            continue
        if dist.scale is not None:
            for used in sorted(ex.parse(dist.scale).names() - set(covariates)):
                problems.append(Problem(f"{name}.scale", f"unknown covariate '{used}'{did_you_mean(used, covariates)} "
                                        f"(in '{text}')", "--vary"))
        if dist.distribution == "fixed" and any(name in pair[:2] for pair in population.correlations):
            problems.append(Problem(name, f"'{name}' is correlated in the model's population: it cannot be fixed "
                                    f"(in '{text}')", "--vary"))
    if problems:
        raise ModelError(problems)
    if not vary:
        return population
    return _validated({**population.model_dump(exclude_defaults=True), "covariates": covariates, "parameters": parameters},
                      "--vary", "population")
