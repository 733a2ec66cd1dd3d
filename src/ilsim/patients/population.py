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

import numpy as np
import pandas as pd
from pydantic import ValidationError
from scipy.special import ndtr
from scipy.stats import truncnorm

from ilsim.errors import IlsimError, ModelError, Problem, argument, did_you_mean
from ilsim.model import expressions as ex
from ilsim.model.base import _check_name
from ilsim.model.compile import _PRELUDE, _import_generated
from ilsim.model.load import problems_from_validation
from ilsim.model.sections.population import (  # the schema lives with the model's; re-exported for existing imports
    _POSITIONAL,
    KINDS,
    SEED_MAX,
    Correlation,
    Distribution,
    Population,
    _correlation_matrix,
    _is_seed,
    _list,
    _or,
    population_problems,
)

__all__ = ["BLOCK", "KINDS", "SEED_MAX", "Correlation", "Distribution", "Population", "PopulationSampler", "from_scores",
           "parse_vary", "population_problems", "population_sampler"]

BLOCK = 4096  # patients per random block: the unit of reproducibility, independent of chunking

# ------------------------------------------------------------------------------------- --vary


def parse_vary(text: str, source: str | None = None) -> tuple[str, Distribution]:
    """``"kpg=lognormal(median=0.6, cv=0.3)"`` -> ("kpg", Distribution); the text is parsed, never run."""
    source = source or argument("vary")

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


def from_scores(dist: Distribution, z: np.ndarray) -> np.ndarray:
    """Values whose standard normal scores are ``z`` (the inverse CDF of this marginal at Phi(z))."""
    kind = dist.distribution
    if kind == "fixed":
        return np.full(z.shape, dist.value)
    if kind in ("uniform", "loguniform"):
        lo, hi = max(dist.low, _or(dist.lower, -math.inf)), min(dist.high, _or(dist.upper, math.inf))
        if kind == "loguniform":
            return np.exp(np.log(lo) + (np.log(hi) - np.log(lo)) * ndtr(z))
        return lo + (hi - lo) * ndtr(z)
    loc, spread = dist._normal_location()
    a, b = dist._standard_bounds(loc, spread)
    if a == -math.inf and b == math.inf:
        y = z
    else:  # each half from its own side, so the upper tail loses no precision to 1 - tiny
        y, low = np.empty_like(z), z < 0
        y[low] = truncnorm.ppf(ndtr(z[low]), a, b)
        y[~low] = truncnorm.isf(ndtr(-z[~low]), a, b)
    x = loc + spread * y
    return np.exp(x) if kind == "lognormal" else x


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
        values = np.column_stack([from_scores(d, z[:, k]) for k, d in enumerate(self._dists)])
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
        raise ModelError([Problem("", f"the seed must be an integer from 0 to {SEED_MAX}, got {seed!r}", argument("seed"))])
    return PopulationSampler(compiled, population, int(seed))


def _validated(data, source: str | None, where: str) -> Population:
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
        name, dist = parse_vary(text, argument("vary"))
        if name in covariates:
            covariates[name] = dist
        elif name in compiled.parameters:
            parameters[name] = dist
        else:
            hint = did_you_mean(name, [*compiled.parameters, *covariates])
            problems.append(Problem(name, f"unknown parameter or covariate '{name}'{hint} (in '{text}')", argument("vary")))
            continue
        if dist.scale is not None:
            for used in sorted(ex.parse(dist.scale).names() - set(covariates)):
                problems.append(Problem(f"{name}.scale", f"unknown covariate '{used}'{did_you_mean(used, covariates)} "
                                        f"(in '{text}')", argument("vary")))
        if dist.distribution == "fixed" and any(name in pair[:2] for pair in population.correlations):
            problems.append(Problem(name, f"'{name}' is correlated in the model's population: it cannot be fixed "
                                    f"(in '{text}')", argument("vary")))
    if problems:
        raise ModelError(problems)
    if not vary:
        return population
    return _validated({**population.model_dump(exclude_defaults=True), "covariates": covariates, "parameters": parameters},
                      argument("vary"), "population")
