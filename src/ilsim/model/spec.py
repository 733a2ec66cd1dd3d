"""The model file schema (pydantic): what a model says, validated before anything runs.

A model is a reaction network: species, parameters, processes (a rate and what it consumes and
produces), observables (named readouts), events (doses, resets, switches) and outcome labels.
The same object is written by hand in YAML or built in Python with the ``add_*`` methods.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from contextlib import contextmanager
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from ilsim.errors import ModelError
from ilsim.limits import MAX_OUTPUT_VALUES, run_settings_problem
from ilsim.model.base import Reference, _check_expression_type, _check_name, _Strict
from ilsim.model.problems import problems_from_validation

# Sections that domain layers give meaning to (biology expands motifs:, therapy doses:, patients draw
# population:): their schemas are plain data kept beside this one, so the model layer imports nothing above it.
from ilsim.model.sections.catalogue import Interleukin
from ilsim.model.sections.cell_types import CellType
from ilsim.model.sections.dosing import PK, Dose, Patient
from ilsim.model.sections.fit import FitSection
from ilsim.model.sections.motifs import MotifEntry
from ilsim.model.sections.plots import PlotPanel
from ilsim.model.sections.population import Population
from ilsim.model.sections.tissue import Tissue
from ilsim.model.sections.toxicity import Toxicity
from ilsim.model.units import check as _check_units
from ilsim.model.units import check_time as _check_time_units

SpeciesKind = Literal["cell", "cytokine", "pathogen", "drug", "tissue", "other"]
Number = float
ExprText = str | float





class Metadata(_Strict):
    name: str
    title: str = ""
    description: str = ""
    time_units: str = "day"
    references: list[Reference] = Field(default_factory=list)

    _time_units = field_validator("time_units")(_check_time_units)


class Species(_Strict):
    name: str
    kind: SpeciesKind = "other"
    units: str = "dimensionless"
    initial: ExprText
    description: str = ""
    nonnegative: bool = True
    group: str | None = None  # figure panel; defaults to the kind
    interleukin: str | None = None  # the catalogue entry (built-in or declared) this cytokine is
    cell_type: str | None = None  # the cell type (built-in or declared) this population is
    # The absolute error this species may carry, for a species whose size is far below the engine's atol (amounts
    # of 1e-20 mol): every engine integrates it with min(atol, this). Set by the SBML import from magnitudes.
    atol: Number | None = None
    # The parameter holding the volume of the compartment this species is in: the stochastic engine counts its
    # molecules as value x volume (docs/stochastic.md); the ODE engines, which integrate the values, ignore it.
    compartment: str | None = None

    _units = field_validator("units")(_check_units)
    _name = field_validator("name")(_check_name)
    _initial = field_validator("initial", mode="before")(_check_expression_type)

    @field_validator("atol")
    @classmethod
    def _positive_atol(cls, v):
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise ValueError(f"atol must be a positive, finite absolute tolerance, got {v}")
        return v


class Parameter(_Strict):
    name: str
    value: Number
    units: str = "dimensionless"
    description: str = ""
    source: str = ""
    range: tuple[Number, Number] | None = None  # [low, high] a user may explore (the web explorer's slider)

    _units = field_validator("units")(_check_units)
    _name = field_validator("name")(_check_name)

    @field_validator("value")
    @classmethod
    def _finite(cls, v):
        if not math.isfinite(v):
            raise ValueError(f"value must be a finite number, got {v}")
        return v

    @field_validator("range")
    @classmethod
    def _range_holds_value(cls, v, info: ValidationInfo):
        if v is None:
            return v
        low, high = v
        if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
            raise ValueError(f"range must be [low, high] with finite low < high, got [{low:g}, {high:g}]")
        value = info.data.get("value")  # absent when the value itself was refused
        if value is not None and not low <= value <= high:
            raise ValueError(f"range [{low:g}, {high:g}] must contain the value {value:g}")
        return v

    def span(self) -> tuple[float, float]:
        """The range to explore: the declared ``range``, else 0 to twice the value (the value in the middle; a
        value of 0, most often a fault severity or an off switch, spans 0 to 1)."""
        if self.range is not None:
            return self.range
        if self.value == 0:
            return (0.0, 1.0)
        return (0.0, 2 * self.value) if self.value > 0 else (2 * self.value, 0.0)


class Process(_Strict):
    name: str
    rate: ExprText
    consumes: dict[str, Number] = Field(default_factory=dict)
    produces: dict[str, Number] = Field(default_factory=dict)
    description: str = ""

    _rate = field_validator("rate", mode="before")(_check_expression_type)

    @model_validator(mode="after")
    def _changes_something(self):
        if not self.consumes and not self.produces:
            raise ValueError("a process must consume or produce at least one species")
        for side in (self.consumes, self.produces):
            for species, count in side.items():
                if not 0 < count < math.inf:  # NaN too
                    raise ValueError(f"stoichiometry of '{species}' must be a positive, finite number, got {count}")
        return self


class Observable(_Strict):
    name: str
    expression: ExprText
    units: str = "dimensionless"
    description: str = ""
    group: str | None = None

    _units = field_validator("units")(_check_units)
    _name = field_validator("name")(_check_name)
    _expression = field_validator("expression", mode="before")(_check_expression_type)


class Derived(_Strict):
    """A quantity computed from parameters alone (e.g. a basic reproduction number R0),
    reported in the summary and usable in outcome conditions."""

    name: str
    expression: ExprText
    units: str = "dimensionless"
    description: str = ""
    source: str = ""

    _units = field_validator("units")(_check_units)
    _name = field_validator("name")(_check_name)
    _expression = field_validator("expression", mode="before")(_check_expression_type)


FAULT_MODES = ("stop-not-received", "stop-ignored", "false-alarm")


class Fault(_Strict):
    """One of the three ways the stop signal breaks down, declared as the parameters that carry
    its severity (0 = intact, 1 = complete): a modifier of the model, not an edited copy."""

    mode: Literal["stop-not-received", "stop-ignored", "false-alarm"]
    parameters: list[str] = Field(min_length=1)
    description: str = ""


class Event(_Strict):
    """At given times, or when a condition becomes true, set or add to species or parameters."""

    name: str
    at: Number | list[Number] | None = None
    when: str | None = None
    only_if: str | None = None  # a guard, tested when the event fires: its actions apply only if it holds
    set: dict[str, ExprText] = Field(default_factory=dict)
    add: dict[str, ExprText] = Field(default_factory=dict)
    description: str = ""
    # A delay (model time units, an expression evaluated when the trigger fires): the actions apply that much
    # later (SBML's event delay; the SciPy engine runs it, the batch and C/CUDA engines refuse such a model).
    delay: ExprText | None = None
    persistent: bool = True  # with a delay: False cancels the pending actions if the condition turns false first
    values_at_trigger: bool = True  # with a delay: the values are computed when triggered (else when applied)

    @field_validator("set", "add", mode="before")
    @classmethod
    def _values_are_expressions(cls, value):
        if isinstance(value, dict):
            for v in value.values():
                _check_expression_type(v)
        return value

    @model_validator(mode="after")
    def _one_trigger(self):
        if (self.at is None) == (self.when is None):
            raise ValueError("an event needs exactly one trigger: 'at' (times) or 'when' (a condition)")
        if not self.set and not self.add:
            raise ValueError("an event must 'set' or 'add' to at least one species or parameter")
        if self.delay is None and not (self.persistent and self.values_at_trigger):
            raise ValueError("'persistent' and 'values_at_trigger' apply to an event with a 'delay' only")
        return self

    @property
    def times(self) -> list[float]:
        if self.at is None:
            return []
        return sorted(self.at) if isinstance(self.at, list) else [self.at]


class Outcome(_Strict):
    """A label for how a run ends: the first outcome whose condition holds at the end wins.

    ``held_for`` (model time units) asks more than the final instant: the condition must hold at
    every output time in the last ``held_for`` of the run, so an oscillation caught in a trough
    is not read as a resolution. See ``ilsim.model.outcomes``.
    """

    label: str
    when: str
    held_for: Number | None = None
    description: str = ""

    @field_validator("held_for")
    @classmethod
    def _window(cls, v):
        if v is not None and not (math.isfinite(v) and v >= 0):
            raise ValueError(f"held_for must be a finite, non-negative time (in the model's time units), got {v}")
        return v


class SimulationDefaults(_Strict):
    t_end: Number = 100.0
    points: int = 1001
    method: Literal["LSODA", "BDF", "Radau", "RK45", "DOP853"] = "LSODA"
    rtol: Number = 1e-6
    atol: Number = 1e-9

    @field_validator("t_end")
    @classmethod
    def _positive(cls, v):
        problem = run_settings_problem(t_end=v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("rtol", "atol")
    @classmethod
    def _tolerance(cls, v, info):
        problem = run_settings_problem(**{info.field_name: v})
        if problem or not v < 1:
            raise ValueError(problem or f"tolerances must be below 1, got {v}")
        return v

    @field_validator("points")
    @classmethod
    def _points(cls, v):
        if v < 2:
            raise ValueError(f"points must be at least 2, got {v}")
        if v > MAX_OUTPUT_VALUES:
            raise ValueError(f"points must be at most {MAX_OUTPUT_VALUES:,} (a limit: docs/limits.md), got {v:,}")
        return v


# ``ModelSpec.simulate`` is shorthand for ``ilsim.simulate``, layers above this one: the package hands it over
# (ilsim/__init__.py, which runs before any module of it), so the model layer imports nothing above it.
_simulate: list[Callable] = []


def set_simulate(simulate: Callable) -> None:
    _simulate[:] = [simulate]


@contextmanager
def _building(method: str, name: str, schema=None):
    """Builder mistakes become ModelError naming the call, like mistakes in a file (``schema``: the entry's, for hints)."""
    try:
        yield
    except ValidationError as exc:
        raise ModelError(problems_from_validation(exc, f"{method}({name!r})", root=schema)) from None


class ModelSpec(_Strict):
    """A whole model. Build in Python with ``Model(metadata={'name': ...})`` and ``add_*``."""

    metadata: Metadata
    include: list[str] = Field(default_factory=list)  # other models (files or built-in names) merged into this one
    species: list[Species] = Field(default_factory=list)
    parameters: list[Parameter] = Field(default_factory=list)
    processes: list[Process] = Field(default_factory=list)
    observables: list[Observable] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)
    outcomes: list[Outcome] = Field(default_factory=list)
    derived: list[Derived] = Field(default_factory=list)
    interleukins: list[Interleukin] = Field(default_factory=list)  # user-declared, merged with the catalogue
    cell_types: list[CellType] = Field(default_factory=list)  # user-declared, merged with the built-in ones
    motifs: list[MotifEntry] = Field(default_factory=list)
    faults: list[Fault] = Field(default_factory=list)
    patient: Patient | None = None
    pk: list[PK] = Field(default_factory=list)
    doses: list[Dose] = Field(default_factory=list)
    toxicity: list[Toxicity] = Field(default_factory=list)  # CTCAE v5.0 terms graded from readouts
    simulation: SimulationDefaults = Field(default_factory=SimulationDefaults)
    population: Population | None = None  # how virtual patients differ (docs/population.md)
    plots: list[PlotPanel] = Field(default_factory=list)  # the panels its figures show first (docs/figures.md)
    fit: FitSection | None = None  # what `ilsim fit` estimates from which measurements (docs/fitting.md)
    tissue: Tissue | None = None  # a voxel grid, diffusing species and individual cells (docs/tissue.md)

    @model_validator(mode="before")
    @classmethod
    def _name_shortcut(cls, data):
        # Model(name="x", time_units="hour") is shorthand for Model(metadata={"name": "x", ...}).
        if isinstance(data, dict) and "name" in data and "metadata" not in data:
            data = dict(data)
            data["metadata"] = {k: data.pop(k) for k in list(data) if k in Metadata.model_fields}
        return data

    @property
    def name(self) -> str:
        return self.metadata.name

    def content_hash(self) -> str:
        """SHA-256 of the model's canonical JSON: two runs with equal hashes ran the same model."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    # A small builder: each method appends one entry and returns the model, so calls chain.
    def add_species(self, name: str, initial: ExprText, **fields) -> ModelSpec:
        with _building("add_species", name, Species):
            self.species = [*self.species, Species(name=name, initial=initial, **fields)]
        return self

    def add_parameter(self, name: str, value: float, **fields) -> ModelSpec:
        with _building("add_parameter", name, Parameter):
            self.parameters = [*self.parameters, Parameter(name=name, value=value, **fields)]
        return self

    def add_process(self, name: str, rate: ExprText, consumes=None, produces=None, **fields) -> ModelSpec:
        with _building("add_process", name, Process):
            process = Process(name=name, rate=rate, consumes=consumes or {}, produces=produces or {}, **fields)
            self.processes = [*self.processes, process]
        return self

    def add_observable(self, name: str, expression: ExprText, **fields) -> ModelSpec:
        with _building("add_observable", name, Observable):
            self.observables = [*self.observables, Observable(name=name, expression=expression, **fields)]
        return self

    def add_event(self, name: str, *, at=None, when=None, set=None, add=None, **fields) -> ModelSpec:
        with _building("add_event", name, Event):
            event = Event(name=name, at=at, when=when, set=set or {}, add=add or {}, **fields)
            self.events = [*self.events, event]
        return self

    def add_motif(self, motif: str, /, **fields) -> ModelSpec:
        """Append a motif, e.g. ``add_motif("secretion", cytokine="IL6", producer="M", ...)``."""
        with _building("add_motif", motif, MotifEntry):
            self.motifs = [*self.motifs, MotifEntry.model_validate({motif: fields})]
        return self

    def add_pk(self, drug: str, **fields) -> ModelSpec:
        with _building("add_pk", drug, PK):
            self.pk = [*self.pk, PK(drug=drug, **fields)]
        return self

    def add_dose(self, drug: str, route: str, amount: float, units: str, **fields) -> ModelSpec:
        with _building("add_dose", drug, Dose):
            self.doses = [*self.doses, Dose(drug=drug, route=route, amount=amount, units=units, **fields)]
        return self

    def add_outcome(self, label: str, when: str, **fields) -> ModelSpec:
        with _building("add_outcome", label, Outcome):
            self.outcomes = [*self.outcomes, Outcome(label=label, when=when, **fields)]
        return self

    def simulate(self, t_end: float | None = None, **options):
        """Shorthand for ``ilsim.simulate(self, t_end, ...)``."""
        return _simulate[0](self, t_end, **options)

    def with_parameters(self, values: dict[str, float]) -> ModelSpec:
        """A copy with some parameter values changed (names must exist; see ``compile``)."""
        copy = self.model_copy(deep=True)
        known = {p.name: i for i, p in enumerate(copy.parameters)}
        params = list(copy.parameters)
        for name, value in values.items():
            params[known[name]] = params[known[name]].model_copy(update={"value": float(value)})
        copy.parameters = params
        return copy
