"""Doses and pharmacokinetics, expanded into species, processes and guarded timed events.

A model file's ``pk:`` section declares a drug's compartments (1, 2 or 3, optionally an absorption
depot for subcutaneous or intramuscular doses); ``doses:`` gives schedules (IV bolus, zero-order IV
infusion, SC/IM with first-order absorption and bioavailability; every N time units x count,
repeated in cycles) with units converted through body weight, body surface area and IU per mg;
``hold`` rules decide at each scheduled time whether a dose is given, held, resumed or the course
stopped. Every decision is an event, so the run's event log is the dose log.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ilsim.errors import ModelError, Problem, did_you_mean
from ilsim.limits import MAX_DOSES
from ilsim.model import expressions as ex
from ilsim.model.base import _check_name, _Strict

ExprText = str | float
Route = Literal["iv_bolus", "iv_infusion", "sc", "im"]
MASS_IN_MG = {"g": 1000.0, "mg": 1.0, "ug": 1e-3, "mcg": 1e-3, "ng": 1e-6}
IU = {"IU": 1.0, "kIU": 1e3, "MIU": 1e6, "U": 1.0, "MU": 1e6}
BOOKKEEPING = "dosing bookkeeping"  # parameters that only carry a schedule's state (not shown as results)
LABEL_FACTOR_LIMIT = 100.0  # a dose above 100 x the labelled dose needs an explicit override
DOSE_EVENT = re.compile(r"^dose (?P<drug>\S+) #(?P<index>\d+) (?P<status>given|held|resumed|course stopped)(: (?P<reason>.*))?$")


class LabelDose(_Strict):
    amount: float = Field(gt=0)
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

    body_weight: float | None = Field(None, gt=0)  # kg
    body_surface_area: float | None = Field(None, gt=0)  # m2


_p = ex.operand_text


def amount_expression(dose: Dose, pk: PK, parameters: set[str], where: str, problems: list[Problem],
                      allow_high_dose: bool, values: dict[str, float] | None) -> str | None:
    """The dose in the drug's amount units, as an expression (per-kg doses use body_weight)."""
    unit, _, per = dose.units.partition("/")
    unit, per = unit.strip(), per.strip()
    factor = None
    if unit in MASS_IN_MG:
        factor = MASS_IN_MG[unit] if pk.amount_units == "mg" else (MASS_IN_MG[unit] * pk.iu_per_mg if pk.iu_per_mg else None)
    elif unit in IU:
        factor = IU[unit] if pk.amount_units == "IU" else (IU[unit] / pk.iu_per_mg if pk.iu_per_mg else None)
    else:
        known = [*MASS_IN_MG, *IU]
        problems.append(Problem(f"{where}.units", f"unknown dose unit '{unit}'{did_you_mean(unit, known)}; "
                                f"use one of {', '.join(known)}, optionally per kg or per m2", None))
        return None
    if factor is None:
        problems.append(Problem(f"{where}.units", f"'{unit}' cannot be converted to {pk.amount_units} for {pk.drug}: "
                                "give 'iu_per_mg' in its pk entry", None))
        return None
    scale = {"": "", "kg": "*body_weight", "m2": "*body_surface_area"}.get(per)
    if scale is None:
        problems.append(Problem(f"{where}.units", f"doses are per kg or per m2, not per '{per}'", None))
        return None
    covariate = {"kg": "body_weight", "m2": "body_surface_area"}.get(per)
    if covariate and covariate not in parameters:
        problems.append(Problem(f"{where}.units", f"a dose per {per} needs the patient's {covariate.replace('_', ' ')}: "
                                f"add 'patient: {{{covariate}: ...}}' to the model", None))
        return None
    expression = f"{_p(dose.amount)}*{factor!r}{scale}" if isinstance(dose.amount, str) else f"{dose.amount * factor!r}{scale}"
    if pk.label_dose is not None and not allow_high_dose and values is not None:
        # compare amounts for this patient, in the drug's units, whatever units each is written in
        label = pk.label_dose
        label_dose = Dose(drug=dose.drug, route="iv_bolus", amount=label.amount, units=label.units)
        label_expression = amount_expression(label_dose, pk, parameters, f"pk.{pk.drug}.label_dose", [], True, None)
        try:
            given, labelled = ex.evaluate(ex.parse(expression), values), ex.evaluate(ex.parse(label_expression), values)
        except (KeyError, TypeError, ValueError, ex.ExpressionError):
            given = labelled = None
        if given is not None and labelled and given > LABEL_FACTOR_LIMIT * labelled:
            problems.append(Problem(f"{where}.amount", f"{dose.amount} {dose.units} is more than {LABEL_FACTOR_LIMIT:g} "
                                    f"times the labelled dose ({label.amount:g} {label.units}); if this is intended, "
                                    "run with --allow-high-dose", None))
            return None
    return expression


def expand(spec, allow_high_dose: bool = False):
    """The spec with pk/doses/patient replaced by species, parameters, processes and events."""
    from ilsim.model.spec import Event, Observable, Parameter, Process, Species

    if not (spec.pk or spec.doses or spec.patient):
        return spec
    species, params = list(spec.species), list(spec.parameters)
    processes, observables, events = list(spec.processes), list(spec.observables), list(spec.events)
    problems: list[Problem] = []
    if spec.patient is not None:
        for field, units in (("body_weight", "kg"), ("body_surface_area", "m2")):
            value = getattr(spec.patient, field)
            if value is not None:
                params.append(Parameter(name=field, value=value, units=units, description=f"patient {field.replace('_', ' ')}",
                                        source="patient covariate"))
    drugs: dict[str, PK] = {}
    for k, pk in enumerate(spec.pk):
        if pk.drug in drugs:
            problems.append(Problem(f"pk[{k}].drug", f"'{pk.drug}' has two pk entries", None))
            continue
        drugs[pk.drug] = pk
        d = pk.drug
        units = pk.amount_units
        central, depot = f"{d}_central", f"{d}_depot"
        species.append(Species(name=central, kind="drug", units=units, initial=0, group="drugs",
                               description=f"{d} in the central compartment (amount)"))
        k10 = _p(pk.k10) if pk.k10 is not None else f"{_p(pk.clearance)}/{_p(pk.volume)}"
        processes.append(Process(name=f"{d} elimination", rate=f"{k10}*{central}", consumes={central: 1},
                                 description=pk.source))
        for n, (q, v, kout, kin) in {2: ("q2", "v2", "k12", "k21"), 3: ("q3", "v3", "k13", "k31")}.items():
            if pk.compartments < n:
                continue
            peripheral = f"{d}_peripheral{n - 1}"
            species.append(Species(name=peripheral, kind="drug", units=units, initial=0, group="drugs",
                                   description=f"{d} in peripheral compartment {n - 1} (amount)"))
            if getattr(pk, kout) is not None:
                out_rate, in_rate = _p(getattr(pk, kout)), _p(getattr(pk, kin))
            else:
                out_rate = f"{_p(getattr(pk, q))}/{_p(pk.volume)}"
                in_rate = f"{_p(getattr(pk, q))}/{_p(getattr(pk, v))}"
            processes.append(Process(name=f"{d} distribution to {peripheral}", rate=f"{out_rate}*{central}",
                                     consumes={central: 1}, produces={peripheral: 1}))
            processes.append(Process(name=f"{d} return from {peripheral}", rate=f"{in_rate}*{peripheral}",
                                     consumes={peripheral: 1}, produces={central: 1}))
        if pk.ka is not None:
            species.append(Species(name=depot, kind="drug", units=units, initial=0, group="drugs",
                                   description=f"{d} at the injection site (SC/IM depot)"))
            processes.append(Process(name=f"{d} absorption", rate=f"{_p(pk.ka)}*{depot}", consumes={depot: 1},
                                     produces={central: 1}))
        params.append(Parameter(name=f"{d}_infusion_rate", value=0.0, units=f"{units}/{spec.metadata.time_units}",
                                description=f"{d} IV infusion rate (set by dose events)", source="dosing"))
        processes.append(Process(name=f"{d} infusion", rate=f"{d}_infusion_rate", produces={central: 1}))
        observables.append(Observable(name=d, expression=f"{central}/{_p(pk.volume)}", units=f"{units}/L", group="drugs",
                                      description=f"{d} concentration in the central compartment"))
    total = sum(dose.number() for dose in spec.doses)
    if total > MAX_DOSES:  # before any is expanded: each dose becomes an event of a few kilobytes
        raise ModelError([Problem("doses", f"the schedules give {total:,} doses in all; a model is limited to "
                                           f"{MAX_DOSES:,} (each dose becomes an event)", None)])
    names = {p.name for p in params}
    values = {p.name: p.value for p in params}  # for the labelled-dose check, per patient
    for k, dose in enumerate(spec.doses):
        where = f"doses[{k}]"
        if dose.drug not in drugs:
            others = [s.name for s in spec.species]
            what = "is a species, not a drug with a pk entry" if dose.drug in others else "has no pk entry"
            problems.append(Problem(f"{where}.drug", f"'{dose.drug}' {what}{did_you_mean(dose.drug, drugs)}", None))
            continue
        pk = drugs[dose.drug]
        if dose.route in ("sc", "im") and pk.ka is None:
            problems.append(Problem(f"{where}.route", f"a {dose.route} dose needs an absorption rate 'ka' in the pk of "
                                    f"{dose.drug}", None))
            continue
        amount = amount_expression(dose, pk, names, where, problems, allow_high_dose, values)
        if amount is None:
            continue
        times = dose.times()
        if min(times) < 0:
            problems.append(Problem(f"{where}.start", f"a dose at t = {min(times):g} is in the past", None))
            continue
        if dose.route == "iv_infusion":
            spans = sorted((t, t + dose.duration) for t in times)
            spans += sorted((t, t + o.duration) for j, o in enumerate(spec.doses) if j != k and o.drug == dose.drug
                            and o.route == "iv_infusion" for t in o.times())
            spans.sort()
            if any(b[0] < a[1] - 1e-12 for a, b in zip(spans, spans[1:])):
                problems.append(Problem(f"{where}.duration", f"infusions of {dose.drug} overlap: each must end before "
                                        "the next one starts", None))
                continue
        events += _dose_events(dose, k, pk, amount, times, params, Event)
    if problems:
        raise ModelError(problems)
    return spec.model_copy(update={"species": species, "parameters": params, "processes": processes,
                                   "observables": observables, "events": events, "pk": [], "doses": [], "patient": None})


def _dose_events(dose: Dose, k: int, pk: PK, amount: str, times: list[float], params: list, Event) -> list:
    """Events of one dose schedule: for each time, the hold decision (if any), then the dose."""
    from ilsim.model.spec import Parameter

    d = pk.drug
    target = f"{d}_depot" if dose.route in ("sc", "im") else f"{d}_central"
    given = f"{_p(pk.bioavailability)}*{amount}" if dose.route in ("sc", "im") else amount
    events = []
    state = f"{d}_schedule{k}"
    if dose.hold is not None:
        params += [
            Parameter(name=f"{state}_holding", value=0.0, description="1 while doses are held", source=BOOKKEEPING),
            Parameter(name=f"{state}_holds", value=0.0, description="number of doses held", source=BOOKKEEPING),
            Parameter(name=f"{state}_stopped", value=0.0, description="1 once the course is stopped", source=BOOKKEEPING),
        ]
    per_cycle = len(times) // dose.cycles
    for i, t in enumerate(times, start=1):
        label = f"dose {d} #{i}"
        running = f"{state}_stopped == 0"
        if dose.hold is not None:
            h = dose.hold
            holding, holds = f"{state}_holding", f"{state}_holds"
            if i > 1 and (i - 1) % per_cycle == 0:  # a new course starts afresh: holds count per course
                events.append(Event(name=f"{d} course {(i - 1) // per_cycle + 1} starts", at=t,
                                    set={holding: 0.0, holds: 0.0, f"{state}_stopped": 0.0}))
            events += [
                Event(name=f"{label} resumed: {h.resume}", at=t, only_if=f"{running} and {holding} == 1 and ({h.resume})",
                      set={holding: 0}),
                Event(name=f"{label} held: {h.when}", at=t, only_if=f"{running} and {holding} == 1 and not ({h.resume})",
                      add={holds: 1}),
                Event(name=f"{label} held: {h.when}", at=t, only_if=f"{running} and {holding} == 0 and ({h.when})",
                      set={holding: 1}, add={holds: 1}),
            ]
            if h.stop_after is not None:
                events.append(Event(name=f"{label} course stopped: {h.stop_after} doses held", at=t,
                                    only_if=f"{running} and {holds} >= {h.stop_after}", set={f"{state}_stopped": 1}))
            guard = f"{running} and {holding} == 0"
        else:
            guard = None
        if dose.route == "iv_infusion":
            rate = f"{amount}/{dose.duration!r}"
            flag = f"{state}_infusing"  # the end of an infusion undoes only an infusion that started
            if i == 1:
                params.append(Parameter(name=flag, value=0.0, description="1 while an infusion runs", source=BOOKKEEPING))
            events.append(Event(name=f"{label} given", at=t, only_if=guard, add={f"{d}_infusion_rate": rate},
                                set={flag: 1.0}))
            events.append(Event(name=f"{label} infusion ends", at=t + dose.duration, only_if=f"{flag} == 1",
                                add={f"{d}_infusion_rate": f"-{rate}"}, set={flag: 0.0}))
        else:
            events.append(Event(name=f"{label} given", at=t, only_if=guard, add={target: given}))
    return events


def dose_log(events_fired: list) -> list[dict]:
    """The dose decisions of a run (from its event log): time, drug, dose number, status, reason."""
    log = []
    for t, name in events_fired:
        m = DOSE_EVENT.match(name)
        if m:
            log.append({"time": t, "drug": m["drug"], "dose": int(m["index"]), "status": m["status"],
                        "reason": m["reason"] or ""})
    return log
