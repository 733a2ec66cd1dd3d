"""The schema of the ``tissue:`` section: a voxel grid, the species that diffuse on it and the cells that move in it.

Plain data, checked on its own here (sizes, signs, units, sides); what needs the rest of the model (a field
must be a species, an agent a cell species) and the machine (memory) is checked by the tissue engine before
anything runs (``ilsim.engines.tissue.setup``). Lengths are in µm and times in minutes throughout the engine;
a diffusion coefficient or a rate may be given with units (``"6000 um^2/min"``, ``"0.1 1/h"``), which the
project's units module converts, or as a bare number in µm²/min and 1/min. Docs: docs/tissue.md.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ilsim.model.base import _check_name, _Strict
from ilsim.model.units import to_units

SIDES = ("x_min", "x_max", "y_min", "y_max", "z_min", "z_max")
AXES = "xyz"


def quantity(value, target: str, what: str) -> float:
    """A number in ``target`` units from a bare number (already in them) or text with units (converted by pint)."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number or a quantity with units, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        amount, _, units = text.partition(" ")
        try:
            number = float(amount)
        except ValueError:
            raise ValueError(f"{what} must be a number or 'NUMBER UNITS' (e.g. '{_EXAMPLES[target]}'), got {text!r}") from None
        if units.strip():
            converted = to_units(number, units.strip(), target)
            if converted is None:
                raise ValueError(f"{what}: '{units.strip()}' cannot be converted to {target}")
            number = converted
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {number}")
    return number



_EXAMPLES = {"um^2/min": "6000 um^2/min", "1/min": "0.1 1/min"}
_UNITS = {"um^2/min": "µm²/min", "1/min": "1/min"}


def nonnegative(value, target: str, what: str) -> float:
    """``quantity`` that must not be negative."""
    number = quantity(value, target, what)
    if number < 0:
        raise ValueError(f"{what} must not be negative, got {number:g} {_UNITS[target]}")
    return number


def check_numbers(entry, positive=(), nonnegative_=(), fractions=()) -> None:
    """Fields of ``entry`` that must be finite and positive, finite and >= 0, or between 0 and 1."""
    for name in positive:
        v = getattr(entry, name)
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive number, got {v}")
    for name in nonnegative_:
        v = getattr(entry, name)
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {v}")
    for name in fractions:
        v = getattr(entry, name)
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must lie between 0 and 1, got {v}")


class Boundary(_Strict):
    """One side of the domain: no flux across it, a fixed concentration on its outer voxel layer, or periodic."""

    kind: Literal["no-flux", "fixed", "periodic"] = "no-flux"
    value: float = 0.0  # fixed: the concentration held on the side's voxels (each field's own units)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data):
        # 'no-flux' and 'periodic' alone, a bare number for a fixed value
        if isinstance(data, str):
            return {"kind": data}
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return {"kind": "fixed", "value": data}
        return data

    @field_validator("value")
    @classmethod
    def _finite(cls, v):
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"a fixed boundary value must be a finite concentration >= 0, got {v}")
        return v


class Region(_Strict):
    """An axis-aligned box in µm, ``lower`` and ``upper`` corners (2 or 3 numbers each)."""

    lower: list[float]
    upper: list[float]

    @model_validator(mode="after")
    def _ordered(self):
        if len(self.lower) != len(self.upper) or len(self.lower) not in (2, 3):
            raise ValueError("lower and upper need 2 (2-D) or 3 (3-D) numbers each, the same count")
        for a, lo, hi in zip(AXES, self.lower, self.upper):
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"{a}: lower ({lo:g}) must be below upper ({hi:g})")
        return self


class Domain(_Strict):
    dimensions: Literal[2, 3] = 2
    size: list[float]  # µm along x, y(, z)
    voxel: float  # µm: the edge of a cubic voxel (2-D: a square one voxel thick, as BioFVM)
    boundary: dict[str, Boundary] = Field(default_factory=dict)  # by side (x_min, ..., z_max) or 'all'; no-flux by default
    vessels: list[Region] = Field(default_factory=list)  # voxels whose centres lie inside are vessels

    @field_validator("voxel")
    @classmethod
    def _voxel_positive(cls, v):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"the voxel edge must be a positive number of µm, got {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        d = self.dimensions
        if len(self.size) != d:
            raise ValueError(f"size needs {d} numbers (µm along {', '.join(AXES[:d])}), got {len(self.size)}")
        for a, s in zip(AXES, self.size):
            if not (math.isfinite(s) and s > 0):
                raise ValueError(f"size along {a} must be a positive number of µm, got {s}")
            if self.voxel > s:
                raise ValueError(f"the voxel ({self.voxel:g} µm) is larger than the domain along {a} ({s:g} µm)")
        sides = SIDES[: 2 * d]
        for key in self.boundary:
            if key != "all" and key not in sides:
                raise ValueError(f"boundary: unknown side '{key}' (the sides are {', '.join(sides)} or all)")
        for a in AXES[:d]:
            lo, hi = self.side(f"{a}_min").kind, self.side(f"{a}_max").kind
            if (lo == "periodic") != (hi == "periodic"):
                raise ValueError(f"boundary: periodic along {a} needs both {a}_min and {a}_max periodic")
        for i, r in enumerate(self.vessels):
            if len(r.lower) != d:
                raise ValueError(f"vessels[{i}]: a {d}-D domain needs {d} numbers per corner")
        return self

    def side(self, name: str) -> Boundary:
        return self.boundary.get(name) or self.boundary.get("all") or Boundary()

    def shape(self) -> tuple[int, ...]:
        """Voxels along x, y(, z): the size rounded to whole voxels."""
        return tuple(max(1, round(s / self.voxel)) for s in self.size)


class TissueField(_Strict):
    """A species that diffuses on the grid (its concentration per voxel, in the species' units)."""

    species: str
    diffusion: float | str  # µm²/min, or text with units
    decay: float | str = 0.0  # 1/min, or text with units
    initial: float = 0.0  # uniform initial concentration
    vessel_exchange: float | str = 0.0  # 1/min: vessel voxels relax towards the blood level at this rate
    blood: float = 0.0  # the concentration in blood, seen by vessel voxels

    @field_validator("diffusion")
    @classmethod
    def _diffusion(cls, v):
        return nonnegative(v, "um^2/min", "the diffusion coefficient")

    @field_validator("decay", "vessel_exchange")
    @classmethod
    def _rate(cls, v, info):
        return nonnegative(v, "1/min", info.field_name)

    @field_validator("initial", "blood")
    @classmethod
    def _level(cls, v, info):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{info.field_name} must be a finite concentration >= 0, got {v}")
        return v


class Placement(_Strict):
    """Where the cells of one type start: ``random`` in a region (the whole domain by default), a ``cluster``
    (uniform in a disc or ball), or read from a ``csv`` file with columns x, y(, z) and optionally type."""

    kind: Literal["random", "cluster", "csv"] = "random"
    count: int = 0
    region: Region | None = None  # random
    center: list[float] | None = None  # cluster
    radius: float | None = None  # cluster, µm
    file: str | None = None  # csv, relative to the model file's folder

    @model_validator(mode="after")
    def _complete(self):
        if self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count}")
        if self.kind == "cluster" and (self.center is None or self.radius is None or not self.radius > 0):
            raise ValueError("a cluster needs center (µm) and a positive radius (µm)")
        if self.kind == "csv" and not self.file:
            raise ValueError("csv placement needs file: a CSV of positions (columns x, y(, z), optionally type)")
        return self


class Chemotaxis(_Strict):
    """A drift ``sensitivity`` x grad c, and/or PhysiCell's biased turns: at each turn of the random walk the new
    direction is (1 - |bias|) x a random one + |bias| x the unit gradient (away from the field for bias < 0)."""

    field: str
    sensitivity: float = 0.0  # µm/min of drift per (concentration per µm); negative: away from the field
    bias: float = 0.0  # -1..1: PhysiCell's migration_bias x chemotaxis direction

    @model_validator(mode="after")
    def _ranges(self):
        if not math.isfinite(self.sensitivity):
            raise ValueError(f"sensitivity must be finite, got {self.sensitivity}")
        if not (math.isfinite(self.bias) and -1.0 <= self.bias <= 1.0):
            raise ValueError(f"bias must lie between -1 and 1, got {self.bias}")
        return self


class Secretion(_Strict):
    """Secretion into the cell's voxel: ``rate`` (amount per minute per cell, in the field's amount units × µm³),
    on while the cell is stimulated (the stimulus field it senses at or above ``threshold``), after ``lag`` min."""

    field: str
    rate: float
    stimulus: str | None = None  # a field; None: always on
    threshold: float = 0.0
    lag: float = 0.0  # min from the first stimulation to secretion

    @model_validator(mode="after")
    def _signs(self):
        check_numbers(self, nonnegative_=("rate", "threshold", "lag"))
        return self


class Uptake(_Strict):
    """Uptake by receptors: the cell removes ``rate`` × (cell volume / voxel volume) of its voxel's content per minute
    (BioFVM's uptake rate, 1/min)."""

    field: str
    rate: float | str
    # internalisation: what the cell takes up is added to this species internal to it (an amount per cell, the
    # field's units x µm³), so the field and the cells together conserve it; a cell that dies (not one killed on
    # contact: its killer digests it) releases released_at_death of it into its voxel (PhysiCell's
    # fraction_released_at_death)
    into: str | None = None
    released_at_death: float = 1.0

    @field_validator("rate")
    @classmethod
    def _rate(cls, v):
        return nonnegative(v, "1/min", "an uptake rate")

    @model_validator(mode="after")
    def _fraction(self):
        if not 0.0 <= self.released_at_death <= 1.0:
            raise ValueError(f"released_at_death must be a fraction in [0, 1], got {self.released_at_death}")
        if self.into is not None:
            _check_name(self.into)
        return self


class TargetSecretion(_Strict):
    """Secretion towards a target density (BioFVM's and PhysiCell's ``secretion_rate`` and ``secretion_target``): the
    cell's voxel relaxes as dc/dt = rate (V_cell / V_voxel) (target - c), solved implicitly with the uptake."""

    field: str
    rate: float | str  # 1/min
    target: float  # the field's units

    @field_validator("rate")
    @classmethod
    def _rate(cls, v):
        return nonnegative(v, "1/min", "a secretion rate")

    @field_validator("target")
    @classmethod
    def _target(cls, v):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"target must be a finite concentration >= 0, got {v}")
        return v


class Kill(_Strict):
    target: str  # an agent species
    rate: float  # 1/min per touching target

    @model_validator(mode="after")
    def _signs(self):
        check_numbers(self, nonnegative_=("rate",))
        return self


class Receptor(_Strict):
    """A per-cell state: receptor occupancy of a field, relaxing towards c / (c + kd) with time constant ``tau`` (min):
    d occ/dt = (c / (c + kd) - occ) / tau, c the concentration in the cell's voxel."""

    field: str
    kd: float  # the field's units
    tau: float = 1.0  # min
    loss: float = 0.0  # fraction of the receptors lost (0..1): occupancy relaxes towards (1 - loss) c / (c + kd)

    @model_validator(mode="after")
    def _positive(self):
        check_numbers(self, positive=("kd", "tau"), fractions=("loss",))
        return self


class Differentiation(_Strict):
    into: str  # another agent species
    rate: float  # 1/min

    @model_validator(mode="after")
    def _signs(self):
        check_numbers(self, nonnegative_=("rate",))
        return self


class Recruitment(_Strict):
    """New cells entering through each vessel voxel at ``rate`` per minute (times the field's level when ``field`` is
    given: recruitment in proportion to a local signal)."""

    rate: float
    field: str | None = None

    @model_validator(mode="after")
    def _signs(self):
        check_numbers(self, nonnegative_=("rate",))
        return self


class Suppression(_Strict):
    """A stop signal acting on the cell's secretion through its receptor (``receptor:``): every secretion entry's rate
    is multiplied by 1 / (1 + ((1 - blunting) x occupancy / ic50)^hill). ``blunting`` (0..1) is the fraction of the
    received signal the cell ignores (a fault severity, as the seed model's stop_blunting)."""

    ic50: float  # receptor occupancy (0..1) that halves the secretion
    hill: float = 1.0
    blunting: float = 0.0

    @model_validator(mode="after")
    def _ranges(self):
        check_numbers(self, positive=("ic50", "hill"), fractions=("blunting",))
        return self


class InitialInternal(_Strict):
    """The next ``count`` cells of the type as placed (the first ones, then the following for a second entry) start
    with these values of species internal to them instead of the species' initial values (10 infected cells among
    1000 with one virion inside)."""

    count: int
    values: dict[str, float]

    @model_validator(mode="after")
    def _count(self):
        if self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count}")
        for name, v in self.values.items():
            _check_name(name)
            if not math.isfinite(v):
                raise ValueError(f"the value of '{name}' must be finite, got {v}")
        return self


class Agent(_Strict):
    """A cell species simulated as individual cells."""

    species: str
    radius: float = 5.0  # µm
    speed: float = 0.0  # µm/min of the random walk
    persistence: float = 1.0  # min: how long a direction is kept on average
    chemotaxis: Chemotaxis | None = None
    repulsion: float = 0.0  # µm/min of push apart at full overlap (soft spheres)
    placement: Placement = Field(default_factory=Placement)
    secretion: list[Secretion] = Field(default_factory=list)
    uptake: list[Uptake] = Field(default_factory=list)
    secretion_target: list[TargetSecretion] = Field(default_factory=list)
    division: float = 0.0  # 1/min
    death: float = 0.0  # 1/min
    kills: list[Kill] = Field(default_factory=list)
    # a killer of this type touches a target whose centre lies within contact_reach x (R_killer + R_target): its
    # kills and the killings read from processes (PhysiCell's virus-macrophage sample eats within 1.1 x the radii)
    contact_reach: float = 1.0
    receptor: Receptor | None = None
    differentiation: Differentiation | None = None
    recruitment: Recruitment | None = None
    # model species that live inside each cell of this type (a value per cell, e.g. receptor occupancy or the
    # synthesis programme of the secretion motif): their processes become small ODEs per cell (docs/tissue.md)
    internal: list[str] = Field(default_factory=list)
    suppression: Suppression | None = None  # needs receptor: (the occupancy it reads)
    initial_internal: list[InitialInternal] = Field(default_factory=list)  # cells placed with other internal values

    @model_validator(mode="after")
    def _signs(self):
        check_numbers(self, positive=("radius", "persistence", "contact_reach"),
                      nonnegative_=("speed", "repulsion", "division", "death"))
        for n in self.internal:
            _check_name(n)
        if self.suppression is not None and self.receptor is None:
            raise ValueError("suppression reads the cell's receptor occupancy: give receptor: too")
        return self


class Exchange(_Strict):
    """A field whose vessel voxels see a well-mixed species as the blood level (``scale`` x its value, in the field's
    units), and whose loss through the vessels enters that species (engines/tissue/systemic.py)."""

    field: str
    species: str
    scale: float = 1.0  # field units per unit of the species (e.g. 1 / volume for a pk compartment's amount)

    @model_validator(mode="after")
    def _positive(self):
        check_numbers(self, positive=("scale",))
        return self


class Systemic(_Strict):
    """The body around the tissue: the model's species that are neither fields nor agents are integrated as a
    well-mixed model beside the grid, and ``exchange`` couples fields to them through the vessel voxels.
    ``volume_ratio`` is the tissue volume the domain stands for over the well-mixed volume (e.g. an infected
    tissue of 0.3 L over 3 L of plasma: 0.1): an amount A (concentration x µm³) leaving the domain raises the species
    by volume_ratio x A / (domain volume x scale)."""

    volume_ratio: float
    exchange: list[Exchange] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self):
        check_numbers(self, positive=("volume_ratio",))
        fields = [e.field for e in self.exchange]
        twice = sorted({f for f in fields if fields.count(f) > 1})
        if twice:
            raise ValueError(f"exchange: field '{twice[0]}' is listed twice")
        return self


class Tissue(_Strict):
    """The ``tissue:`` section (docs/tissue.md)."""

    domain: Domain
    fields: list[TissueField] = Field(default_factory=list)
    agents: list[Agent] = Field(default_factory=list)
    dt: float = 0.1  # min: the step of diffusion and agents
    t_end: float = 60.0  # min
    save_every: float = 10.0  # min
    seed: int = 0
    # model parameters that set numbers of this section: parameter -> path (engines/tissue/bindings.py)
    parameters: dict[str, str] = Field(default_factory=dict)
    # processes of the model that the tissue does not read per cell: their rules are written above by hand (or they
    # have no tissue meaning); the model's other processes are read per cell (engines/tissue/percell.py)
    explicit: list[str] = Field(default_factory=list)
    systemic: Systemic | None = None  # the well-mixed body the vessels connect to (engines/tissue/systemic.py)

    @model_validator(mode="after")
    def _consistent(self):
        check_numbers(self, positive=("dt", "t_end", "save_every"))
        if self.dt > self.t_end:
            raise ValueError(f"dt ({self.dt:g} min) is longer than t_end ({self.t_end:g} min)")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be an integer from 0 to 2**63 - 1, got {self.seed}")
        for name in self.parameters:
            _check_name(name)
        for what, names in (("fields", [f.species for f in self.fields]), ("agents", [a.species for a in self.agents])):
            for n in names:
                _check_name(n)
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{what}: '{twice[0]}' is listed twice")
        return self
