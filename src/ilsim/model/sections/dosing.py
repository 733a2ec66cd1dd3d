"""The schemas of the ``pk:``, ``doses:`` and ``patient:`` sections, as plain data.

``ilsim.therapy.dosing`` expands them into compartments, processes and guarded timed events
before the model is compiled.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ilsim.limits import MAX_DOSES
from ilsim.model import expressions as ex
from ilsim.model.base import _check_name, _Strict

ExprText = str | float
Route = Literal["iv_bolus", "iv_infusion", "sc", "im"]
# the ``source`` of parameters that only carry a schedule's state: results and reports leave them out
BOOKKEEPING = "dosing bookkeeping"


class LabelDose(_Strict):
    amount: float = Field(gt=0, allow_inf_nan=False)
    units: str
    source: str = ""


class PK(_Strict):
    """A drug's pharmacokinetics: amounts in compartments, concentration = central/volume.

    Elimination and distribution as clearances (``clearance``, ``q2``/``v2``, ``q3``/``v3``) or
    micro-constants (``k10``, ``k12``/``k21``, ``k13``/``k31``), per model time unit.
    """

    drug: str
    compartments: int = Field(1, ge=1, le=3)
    amount_units: Literal["mg", "IU"] = "mg"
    volume: ExprText  # central volume, L
    clearance: ExprText | None = None  # L per time unit
    k10: ExprText | None = None
    q2: ExprText | None = None
    v2: ExprText | None = None
    k12: ExprText | None = None
    k21: ExprText | None = None
    q3: ExprText | None = None
    v3: ExprText | None = None
    k13: ExprText | None = None
    k31: ExprText | None = None
    ka: ExprText | None = None  # absorption from the SC/IM depot, per time unit
    bioavailability: ExprText = 1.0
    iu_per_mg: float | None = None  # to convert IU doses to mg (or back)
    label_dose: LabelDose | None = None  # the largest labelled single dose, for the 100x check
    source: str = ""

    _drug = field_validator("drug")(_check_name)  # it names species (<drug>_central) and an observable

    @model_validator(mode="after")
    def _complete(self):
        if (self.clearance is None) == (self.k10 is None):
            raise ValueError("give the elimination as exactly one of 'clearance' or 'k10'")
        for n, (q, v, kout, kin) in {2: ("q2", "v2", "k12", "k21"), 3: ("q3", "v3", "k13", "k31")}.items():
            given = {f: getattr(self, f) is not None for f in (q, v, kout, kin)}
            if self.compartments >= n and not ((given[q] and given[v]) or (given[kout] and given[kin])):
                raise ValueError(f"a {self.compartments}-compartment model needs '{q}' and '{v}', or '{kout}' and '{kin}'")
        return self


class Hold(_Strict):
    """At a scheduled time: hold the dose while ``when`` holds; once held, give doses again only
    when ``resume`` holds; after ``stop_after`` held doses, stop the course."""

    when: str
    resume: str
    stop_after: int | None = Field(None, ge=1)


class Dose(_Strict):
    drug: str
    route: Route
    amount: float | str  # a positive number, or an expression of parameters (e.g. a dose that --set can change)
    units: str  # mg, ug, g, IU, MIU, optionally per kg or per m2: "IU/kg", "mg/m2"
    duration: float | None = None  # iv_infusion, model time units
    at: float | list[float] | None = None  # one time or a list of times
    start: float = 0.0
    every: float | None = Field(None, gt=0)
    count: int = Field(1, ge=1)
    cycles: int = Field(1, ge=1)
    cycle_length: float | None = Field(None, gt=0)  # time from the start of one cycle to the next
    hold: Hold | None = None
    description: str = ""

    @field_validator("amount")
    @classmethod
    def _positive(cls, v):
        if isinstance(v, str):
            ex.parse(v)  # a syntax error is reported here, unknown names when the model is compiled
        elif not (v > 0 and math.isfinite(v)):
            raise ValueError(f"a dose amount must be a positive finite number, got {v}")
        return v

    @field_validator("duration", "start", "every", "cycle_length", "at")
    @classmethod
    def _finite(cls, v):
        for x in v if isinstance(v, list) else [v]:
            if x is not None and not math.isfinite(x):
                raise ValueError(f"expected a finite time, got {x}")
        return v

    @model_validator(mode="after")
    def _schedule(self):
        if isinstance(self.at, list) and not self.at:
            raise ValueError("'at' must name at least one time")
        if self.route == "iv_infusion" and not (self.duration and self.duration > 0):
            raise ValueError("an iv_infusion needs a positive 'duration' (model time units)")
        if self.route != "iv_infusion" and self.duration is not None:
            raise ValueError(f"'duration' applies to iv_infusion only, not {self.route}")
        if self.count > 1 and not self.every:
            raise ValueError("'count' above 1 needs 'every' (the interval between doses)")
        if self.cycles > 1 and not self.cycle_length:
            raise ValueError("'cycles' above 1 needs 'cycle_length'")
        if self.number() > MAX_DOSES:
            raise ValueError(f"the schedule gives {self.number():,} doses; a model is limited to {MAX_DOSES:,} "
                             "(each dose becomes an event)")
        return self

    def number(self) -> int:
        """How many doses the schedule gives (without listing them)."""
        per_cycle = len(self.at) if isinstance(self.at, list) else 1 if self.at is not None else self.count
        return per_cycle * self.cycles

    def times(self) -> list[float]:
        if self.at is not None:
            base = sorted(self.at) if isinstance(self.at, list) else [self.at]
        else:
            base = [self.start + i * (self.every or 0.0) for i in range(self.count)]
        return [t + c * (self.cycle_length or 0.0) for c in range(self.cycles) for t in base]


class Patient(_Strict):
    """Covariates used to convert per-kg and per-m2 doses; each becomes a parameter."""

    body_weight: float | None = Field(None, gt=0, allow_inf_nan=False)  # kg
    body_surface_area: float | None = Field(None, gt=0, allow_inf_nan=False)  # m2
