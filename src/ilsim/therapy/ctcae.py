"""Side effects graded with the Common Terminology Criteria for Adverse Events (CTCAE v5.0).

The terms ilsim grades are the data file ``ctcae.yaml`` beside this module, read with the safe YAML
loader of model files and validated by the schema below (``CtcaeFile``), so a mistake in it names
the file and the field. Each term says which readout it is graded from (quantity and units), the
thresholds of each grade, whether a number is printed in CTCAE v5.0 (``basis: ctcae``) or is an
assumption of ilsim (``basis: surrogate``, with its source), what is and is not modelled, and the
consequences a grade implies (hospitalisation, intensive care, ...). See docs/toxicity.md.

- ``terms()`` / ``get_term(name)``: the graded terms; names ignore case, unknown ones get a hint.
- ``grade_series(term, values, times, ...)``: the grade at each time of one readout.
- ``grade_dataset(ds, {term: variable})``: a summary per term of a run's results.
- ``ToxicityEntry``: one entry of a model file's ``toxicity:`` section checked against the terms (its plain
  schema, ``Toxicity``, is the model's); ``toxicity_problems`` and ``grade_toxicity(ds, entries)``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from ilsim.errors import ModelError, Problem, did_you_mean
from ilsim.model.base import _Strict
from ilsim.model.load import problems_from_validation, read_yaml
from ilsim.model.sections.toxicity import Toxicity
from ilsim.model.units import hours_per

DATA_FILE = Path(__file__).with_name("ctcae.yaml")

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
FlagKind = Literal["hospitalisation", "intensive_care", "bleeding_risk", "infection_risk", "transfusion"]

_HOURS = {"minute": 1 / 60, "hour": 1.0, "day": 24.0}


# ---------------------------------------------------------------- schema of ctcae.yaml

class _Entry(_Strict):
    model_config = ConfigDict(frozen=True)  # the built-in terms are cached and shared


class Duration(_Entry):
    value: float = Field(gt=0)
    units: Literal["minute", "hour", "day"]

    @property
    def hours(self) -> float:
        return self.value * _HOURS[self.units]


class Criterion(_Entry):
    """Grade ``grade`` holds when the measure is beyond ``threshold`` (for longer than ``for_more_than``)."""

    grade: int = Field(ge=1, le=5)
    threshold: float | Literal["LLN"]
    inclusive: bool = False  # True: >= (above) or <= (below); False: > or <
    for_more_than: Duration | None = None
    basis: Literal["ctcae", "surrogate"]
    ctcae: Text  # the criterion of this grade as CTCAE v5.0 prints it
    source: Text | None = None  # required for a surrogate threshold: a reference, or "assumed"

    @field_validator("threshold")
    @classmethod
    def _finite(cls, v):
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"must be a finite number, got {v}")
        return v

    @model_validator(mode="after")
    def _surrogate_has_source(self):
        if self.basis == "surrogate" and not self.source:
            raise ValueError(f"grade {self.grade}: a surrogate threshold needs a 'source' (a reference, or 'assumed')")
        return self


class LowerLimit(_Entry):
    value: float = Field(gt=0)
    source: Text


class Scale(_Entry):
    """One readout a term can be graded from."""

    name: Text
    quantity: Text
    units: Text
    measure: Literal["value", "percent_change_from_baseline"] = "value"
    direction: Literal["above", "below"]
    lln: LowerLimit | None = None
    grades: list[Criterion] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self):
        grades = [c.grade for c in self.grades]
        if grades != sorted(set(grades)):
            raise ValueError(f"scale '{self.name}': grades must be listed once each, lowest first (got {grades})")
        uses_lln = [c.grade for c in self.grades if c.threshold == "LLN"]
        if uses_lln and self.lln is None:
            raise ValueError(f"scale '{self.name}': grade {uses_lln[0]} uses LLN, so the scale needs 'lln'")
        if uses_lln and self.direction != "below":
            raise ValueError(f"scale '{self.name}': LLN thresholds are for direction 'below'")
        sign = 1 if self.direction == "above" else -1
        previous = None
        for c in self.grades:
            thr = self.lln.value if c.threshold == "LLN" else c.threshold
            if previous is not None:
                p_thr, p_c = previous
                if sign * (thr - p_thr) < 0 or (thr == p_thr and c.for_more_than is None and c.inclusive == p_c.inclusive):
                    raise ValueError(f"scale '{self.name}': the threshold of grade {c.grade} ({thr:g}) must be "
                                     f"{'above' if sign > 0 else 'below'} that of grade {p_c.grade} ({p_thr:g})")
            previous = (thr, c)
        return self


class Flag(_Entry):
    """A consequence reported when the maximum grade reaches ``grade``."""

    grade: int = Field(ge=1, le=5)
    kind: FlagKind
    basis: Literal["ctcae", "surrogate"]
    source: Text


class Term(_Entry):
    name: Text  # the CTCAE v5.0 term (MedDRA lowest level term)
    aliases: list[Text] = Field(default_factory=list)
    soc: Text  # MedDRA system organ class as CTCAE v5.0 groups the term
    modelled: list[Text] = Field(min_length=1)
    not_modelled: list[Text] = Field(default_factory=list)
    scales: list[Scale] = Field(min_length=1)
    flags: list[Flag] = Field(default_factory=list)

    def names(self) -> list[str]:
        return [self.name, *self.aliases]

    def scale(self, name: str | None = None) -> Scale:
        """The scale called ``name`` (any case), or the default (first) one."""
        if name is None:
            return self.scales[0]
        for s in self.scales:
            if s.name.lower() == name.strip().lower():
                return s
        known = [s.name for s in self.scales]
        raise ModelError([Problem("scale", f"{self.name} has no scale '{name}'{did_you_mean(name, known)}; "
                                           f"its scales are {', '.join(known)}")])

    @property
    def max_gradable(self) -> int:
        return max(c.grade for s in self.scales for c in s.grades)

    @model_validator(mode="after")
    def _unique_scales(self):
        names = [s.name.lower() for s in self.scales]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: two scales have the same name")
        return self


class CtcaeFile(_Strict):
    source: Text
    terms: list[Term] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self):
        seen: dict[str, str] = {}
        for t in self.terms:
            for n in t.names():
                key = _key(n)
                if key in seen:
                    raise ValueError(f"the name '{n}' is used by both '{seen[key]}' and '{t.name}'")
                seen[key] = t.name
        return self


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


# ---------------------------------------------------------------- loading

def read_terms(path: str | Path) -> list[Term]:
    """Read and validate a CTCAE term file (the built-in one is ``DATA_FILE``)."""
    source = str(path)
    data = read_yaml(path, "CTCAE term file")
    if not isinstance(data, dict):
        got = type(data).__name__
        raise ModelError([Problem("", f"a CTCAE term file must be a mapping at the top level, got {got}", source)])
    try:
        return CtcaeFile.model_validate(data).terms
    except ValidationError as exc:
        raise ModelError(problems_from_validation(exc, source, root=CtcaeFile)) from None


@functools.lru_cache(maxsize=1)
def _builtin() -> tuple[Term, ...]:
    return tuple(read_terms(DATA_FILE))


def terms() -> list[Term]:
    """The CTCAE v5.0 terms ilsim grades."""
    return list(_builtin())


def term_names() -> list[str]:
    return [t.name for t in _builtin()]


def _lookup(name: str) -> Term | None:
    key = _key(name)
    for t in _builtin():
        if any(_key(n) == key for n in t.names()):
            return t
    return None


def unknown_term_message(name: str) -> str:
    known = [n for t in _builtin() for n in t.names()]
    near = did_you_mean(name, known)
    return f"unknown CTCAE term '{name}'{near}; ilsim grades: {', '.join(term_names())}"


def get_term(name: str | Term, field: str = "term", source: str | None = None) -> Term:
    """The term called ``name`` or one of its aliases (ignoring case); ModelError with a hint otherwise."""
    if isinstance(name, Term):
        return name
    found = _lookup(str(name))
    if found is None:
        raise ModelError([Problem(field, unknown_term_message(str(name)), source)])
    return found


# ---------------------------------------------------------------- units

# Spellings of one unit (compared without spaces, ignoring case).
_SAME = {
    "degC": ["degC", "°C", "C", "Cel", "celsius", "deg C", "deg_C"],
    "mmHg": ["mmHg", "mm Hg", "mm[Hg]"],
    "/mm3": ["/mm3", "cells/mm3", "/mm^3", "cells/mm^3", "1/mm3", "/uL", "cells/uL", "1/uL", "/µL", "cells/µL",
             "/microL", "cells/microL", "/ul"],
    "g/dL": ["g/dL", "g/dl", "g/100mL"],
    "kg": ["kg", "kilogram", "kilograms"],
    "%": ["%", "percent"],
    "episodes/24h": ["episodes/24h", "episodes/24 h", "episodes per 24 h", "episodes/day", "episodes/d", "/24h", "/day", "1/day"],
    "1": ["1", "dimensionless", "index", "score", "grade"],
}
# Other units convertible to one of the above: (canonical unit, factor, offset): x_canonical = factor*x + offset.
_CONVERT = {
    "10^9/L": ("/mm3", 1000.0, 0.0), "x10^9/L": ("/mm3", 1000.0, 0.0), "1e9/L": ("/mm3", 1000.0, 0.0),
    "G/L": ("/mm3", 1000.0, 0.0), "10^3/uL": ("/mm3", 1000.0, 0.0), "10^3/mm3": ("/mm3", 1000.0, 0.0),
    "g/L": ("g/dL", 0.1, 0.0),
    "degF": ("degC", 5 / 9, -32 * 5 / 9), "°F": ("degC", 5 / 9, -32 * 5 / 9), "K": ("degC", 1.0, -273.15),
    "g": ("kg", 1e-3, 0.0), "lb": ("kg", 0.45359237, 0.0),
}


def _norm(units: str) -> str:
    return re.sub(r"\s+", "", str(units)).lower()


_CANONICAL = {_norm(alias): canon for canon, aliases in _SAME.items() for alias in aliases}
_CONVERTIBLE = {_norm(u): how for u, how in _CONVERT.items()}


def units_match(given: str, expected: str) -> bool:
    """Whether ``given`` is a spelling of ``expected`` or convertible to it (e.g. 'cells/uL' and '/mm3')."""
    try:
        _converter(given, expected)
        return True
    except ValueError:
        return False


def _converter(given: str, expected: str):
    """A function converting values in ``given`` to ``expected`` units; ValueError when impossible."""
    target = _CANONICAL.get(_norm(expected), expected)
    if _CANONICAL.get(_norm(given), given) == target:
        return lambda x: x
    how = _CONVERTIBLE.get(_norm(given))
    if how is not None and how[0] == target:
        factor, offset = how[1], how[2]
        return lambda x: factor * x + offset
    accepted = sorted({*_SAME.get(target, [target]), *(u for u, h in _CONVERT.items() if h[0] == target)})
    raise ValueError(f"units '{given}' cannot be graded as '{expected}' (accepted: {', '.join(accepted)})")


def _time_hours(time_units: str) -> float:
    hours = hours_per(time_units)
    if hours is None:
        raise ModelError([Problem("metadata.time_units", f"unknown time units '{time_units}'; expected minute, hour, "
                                  "day or week")])
    return hours


# ---------------------------------------------------------------- grading

def _run_lengths(cond: np.ndarray, t_hours: np.ndarray) -> np.ndarray:
    """For each sample where ``cond`` holds: hours since the first sample of its unbroken run."""
    out = np.zeros(len(cond))
    start = None
    for i, c in enumerate(cond):
        if c:
            start = t_hours[i] if start is None else start
            out[i] = t_hours[i] - start
        else:
            start = None
    return out


def grade_thresholds(term: str | Term, *, scale: str | None = None, lln: float | None = None,
                     units: str | None = None) -> list[tuple[int, float]]:
    """(grade, threshold) of each grade of a value scale, in ``units`` when given (else the scale's): the lines a
    figure draws. Baseline-relative scales have no fixed threshold and give none."""
    sc = get_term(term).scale(scale)
    if sc.measure != "value":
        return []
    limit = sc.lln.value if (sc.lln is not None and lln is None) else lln
    to_scale = _converter(units, sc.units) if units is not None else (lambda x: x)
    offset, factor = to_scale(0.0), to_scale(1.0) - to_scale(0.0)  # every conversion is affine
    out = []
    for c in sc.grades:
        thr = limit if c.threshold == "LLN" else c.threshold
        if thr is not None:
            out.append((c.grade, (thr - offset) / factor))
    return out


def grade_series(
    term: str | Term,
    values: Sequence[float] | np.ndarray,
    times: Sequence[float] | np.ndarray,
    baseline: float | None = None,
    *,
    time_units: str = "hour",
    scale: str | None = None,
    lln: float | None = None,
    units: str | None = None,
) -> np.ndarray:
    """The CTCAE grade (0 = none) at each time of one readout.

    ``values`` are in the scale's units, or in ``units`` when given (converted, e.g. degF -> degC);
    ``times`` are in ``time_units`` (hour, day or minute), used for duration conditions such as
    fever > 40.0 C for > 24 h. ``baseline`` is used by baseline-relative scales (weight gain);
    the first value is the baseline unless it is given. ``lln`` overrides the scale's lower limit of
    normal (in the scale's units); ``scale`` picks one of the term's scales (default: the first).
    """
    t = get_term(term)
    sc = t.scale(scale)
    x = np.asarray(values, dtype=float)
    tt = np.asarray(times, dtype=float)
    if x.ndim != 1 or tt.shape != x.shape:
        raise ValueError(f"values and times must be 1-D and of the same length (got {x.shape} and {tt.shape})")
    if len(x) and np.any(np.diff(tt) < 0):
        raise ValueError("times must be non-decreasing")
    if units is not None:
        try:
            x = _converter(units, sc.units)(x)
        except ValueError as exc:
            raise ModelError([Problem("units", f"{t.name}: {exc}")]) from None
    if sc.measure == "percent_change_from_baseline":
        if baseline is None:
            if not len(x):
                return np.zeros(0, dtype=int)
            base = float(x[0])
        else:
            base = float(_converter(units, sc.units)(baseline)) if units is not None else float(baseline)
        if not math.isfinite(base) or base == 0:
            raise ModelError([Problem("baseline", f"{t.name}: the baseline must be a finite, non-zero number (got {base:g})")])
        x = 100.0 * (x - base) / abs(base)
    hours = tt * _time_hours(time_units)
    limit = sc.lln.value if (sc.lln is not None and lln is None) else lln
    grade = np.zeros(len(x), dtype=int)
    for c in sc.grades:
        thr = limit if c.threshold == "LLN" else c.threshold
        if thr is None:
            continue
        if sc.direction == "above":
            cond = x >= thr if c.inclusive else x > thr
        else:
            cond = x <= thr if c.inclusive else x < thr
        if c.for_more_than is not None:
            cond = cond & (_run_lengths(cond, hours) > c.for_more_than.hours)
        grade[cond] = np.maximum(grade[cond], c.grade)
    return grade


def summarise_grades(term: str | Term, grades: np.ndarray, times: np.ndarray) -> dict:
    """Maximum grade and when, first time at or above each grade, flags reached, recovery time."""
    t = get_term(term)
    g = np.asarray(grades, dtype=int)
    tt = np.asarray(times, dtype=float)
    max_grade = int(g.max()) if len(g) else 0
    reached = [f for f in t.flags if max_grade >= f.grade]
    first = {k: float(tt[np.argmax(g >= k)]) for k in range(1, max_grade + 1)}
    recovered_by = None
    if max_grade > 0 and g[-1] == 0:
        last_nonzero = int(np.flatnonzero(g > 0)[-1])
        recovered_by = float(tt[last_nonzero + 1])
    return {
        "max_grade": max_grade,
        "time_of_max": first.get(max_grade) if max_grade else None,
        "first_time_at_or_above": first,
        "hospitalisation": any(f.kind in ("hospitalisation", "intensive_care") for f in reached),
        "intensive_care": any(f.kind == "intensive_care" for f in reached),
        "flags": sorted({f.kind for f in reached}),
        "recovered_by": recovered_by,
    }


def grade_dataset(
    ds,
    mapping: Mapping[str, str],
    *,
    scales: Mapping[str, str] | None = None,
    lln: Mapping[str, float] | None = None,
    baseline: Mapping[str, float] | None = None,
    source: str | None = None,
) -> dict[str, dict]:
    """Grade a run's results: ``mapping`` is CTCAE term -> variable of the Dataset ``ds``.

    Returns, per term (its CTCAE name): max_grade, time_of_max, first_time_at_or_above
    {grade: time}, hospitalisation, intensive_care, flags, recovered_by (the time from which the
    grade stays 0 to the end of the run; None when it does not), plus the variable, its units
    and the scale used. Times are in the Dataset's time units. Every problem (unknown term,
    missing variable, units that do not match) is reported at once as a ModelError.
    """
    scales, lln, baseline = dict(scales or {}), dict(lln or {}), dict(baseline or {})
    time_units = ds.attrs.get("time_units") or ds["time"].attrs.get("units") or "hour"
    problems: list[Problem] = []
    jobs = []
    for name, variable in mapping.items():
        field = f"toxicity.{name}"
        term = _lookup(str(name))
        if term is None:
            problems.append(Problem(field, unknown_term_message(str(name)), source))
            continue
        try:
            sc = term.scale(scales.get(name))
        except ModelError as exc:
            problems.extend(Problem(field, p.message, source) for p in exc.problems)
            continue
        if any(job[0] is term for job in jobs):
            problems.append(Problem(field, f"'{term.name}' is graded twice", source))
            continue
        if variable not in ds.data_vars:
            known = list(ds.data_vars)
            problems.append(Problem(field, f"{term.name}: the results have no variable '{variable}'"
                                           f"{did_you_mean(str(variable), known)}", source))
            continue
        given = ds[variable].attrs.get("units", "")
        try:
            convert = _converter(given, sc.units)
        except ValueError:
            problems.append(Problem(field, f"{term.name} is graded from {sc.quantity} in '{sc.units}', but "
                                           f"'{variable}' has units '{given}'", source))
            continue
        jobs.append((term, sc, variable, given, convert, name))
    if problems:
        raise ModelError(problems)
    t = np.asarray(ds["time"].values, dtype=float)
    out: dict[str, dict] = {}
    for term, sc, variable, given, convert, name in jobs:
        values = convert(np.asarray(ds[variable].values, dtype=float))
        base = baseline.get(name)
        g = grade_series(term, values, t, baseline=None if base is None else convert(base),
                         time_units=time_units, scale=sc.name, lln=lln.get(name))
        out[term.name] = {"variable": variable, "units": given, "scale": sc.name, **summarise_grades(term, g, t)}
    return out


# ---------------------------------------------------------------- the model file's `toxicity:` section

class ToxicityEntry(Toxicity):
    """One entry of a ``toxicity:`` section, checked against the CTCAE terms ilsim grades."""

    @field_validator("term")
    @classmethod
    def _known_term(cls, v):
        if _lookup(v) is None:
            raise ValueError(unknown_term_message(v))
        return v

    @model_validator(mode="after")
    def _known_scale(self):
        term = _lookup(self.term)
        names = {s.name.lower(): s for s in term.scales}
        if self.scale is not None and self.scale.lower() not in names:
            known = [s.name for s in term.scales]
            raise ValueError(f"{term.name} has no scale '{self.scale}'{did_you_mean(self.scale, known)}; "
                             f"its scales are {', '.join(known)}")
        if self.lln is not None and not any(c.threshold == "LLN" for c in term.scale(self.scale).grades):
            raise ValueError(f"{term.name} has no grade defined by the lower limit of normal, so 'lln' does not apply")
        return self


class ToxicitySpec(_Strict):
    """A ``toxicity:`` section on its own, checked (the model schema holds ``toxicity: list[Toxicity]``, plain data)."""

    toxicity: list[ToxicityEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_entry_per_term(self):
        seen: set[str] = set()
        for e in self.toxicity:
            name = _lookup(e.term).name
            if name in seen:
                raise ValueError(f"the term '{name}' is graded twice")
            seen.add(name)
        return self


def toxicity_problems(entries: Iterable[Toxicity], units_of: Mapping[str, str], source: str | None = None,
                      section: str = "toxicity") -> list[Problem]:
    """Semantic checks of a ``toxicity:`` section against a model: each term and scale is one ilsim grades,
    each readout exists and has units the term can be graded in, no term is graded twice. ``units_of`` is
    variable name -> units (species and observables)."""
    problems, known = [], []
    for i, e in enumerate(entries):
        try:  # the model's schema holds the entry as plain data; CTCAE knowledge checks it here
            known.append((i, ToxicityEntry.model_validate(e.model_dump() if isinstance(e, Toxicity) else e)))
        except ValidationError as exc:
            problems += [Problem(f"{section}[{i}]" + (f".{q.field}" if q.field else ""), q.message, source)
                         for q in problems_from_validation(exc, source, root=ToxicityEntry)]
    for i, e in known:
        term = get_term(e.term)
        sc = term.scale(e.scale)
        if e.readout not in units_of:
            problems.append(Problem(f"{section}[{i}].readout", f"unknown readout '{e.readout}'"
                                    f"{did_you_mean(e.readout, list(units_of))}; it must be a species or an observable", source))
        elif not units_match(units_of[e.readout], sc.units):
            problems.append(Problem(f"{section}[{i}].readout", f"{term.name} is graded from {sc.quantity} in '{sc.units}', "
                                    f"but '{e.readout}' has units '{units_of[e.readout]}'", source))
    seen: dict[str, int] = {}
    for i, e in known:
        name = get_term(e.term).name
        if name in seen:
            problems.append(Problem(f"{section}[{i}].term", f"'{name}' is already graded by {section}[{seen[name]}]", source))
        seen.setdefault(name, i)
    return problems


def grade_toxicity(ds, entries: Iterable[ToxicityEntry], source: str | None = None) -> dict[str, dict]:
    """``grade_dataset`` for the entries of a model's ``toxicity:`` section."""
    entries = list(entries)
    mapping = {e.term: e.readout for e in entries}
    return grade_dataset(
        ds, mapping, source=source,
        scales={e.term: e.scale for e in entries if e.scale},
        lln={e.term: e.lln for e in entries if e.lln is not None},
        baseline={e.term: e.baseline for e in entries if e.baseline is not None},
    )
