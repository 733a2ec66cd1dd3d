"""Doses and pharmacokinetics, expanded into species, processes and guarded timed events.

A model file's ``pk:`` section declares a drug's compartments (1, 2 or 3, optionally an absorption
depot for subcutaneous or intramuscular doses); ``doses:`` gives schedules (IV bolus, zero-order IV
infusion, SC/IM with first-order absorption and bioavailability; every N time units x count,
repeated in cycles) with units converted through body weight, body surface area and IU per mg;
``hold`` rules decide at each scheduled time whether a dose is given, held, resumed or the course
stopped. Every decision is an event, so the run's event log is the dose log.
"""

from __future__ import annotations

import re

from ilsim.errors import ModelError, Problem, argument, did_you_mean
from ilsim.limits import MAX_DOSES
from ilsim.model import expressions as ex
from ilsim.model import units
from ilsim.model.sections.dosing import (  # the schema lives with the model's; re-exported for existing imports
    BOOKKEEPING,
    PK,
    Dose,
    ExprText,
    Hold,
    LabelDose,
    Patient,
    Route,
)
from ilsim.model.spec import Event, Observable, Parameter, Process, Species

__all__ = ["BOOKKEEPING", "DOSE_EVENT", "IU", "LABEL_FACTOR_LIMIT", "MASS_IN_MG", "PK", "Dose", "ExprText", "Hold",
           "LabelDose", "Patient", "Route", "amount_expression", "dose_amounts", "dose_log", "expand"]

# The dose units a model is expected to write (for the 'did you mean' of an unknown one); any mass or IU multiple
# pint reads converts (model/units.py: ug, mcg, g, ng, kg, kIU, MIU, ...). "U" and "MU" are the labels' IU.
MASS_IN_MG = {"g": 1000.0, "mg": 1.0, "ug": 1e-3, "mcg": 1e-3, "ng": 1e-6}
IU = {"IU": 1.0, "kIU": 1e3, "MIU": 1e6, "U": 1.0, "MU": 1e6}
_IU_LABELS = {"U": "IU", "MU": "MIU"}


def _factor(unit: str, to: str) -> float | None:
    """One ``unit`` in ``to`` (mg or IU), through pint; None when they are not of one kind."""
    value = units.to_units(1.0, _IU_LABELS.get(unit, unit), to)
    return None if value is None else float(f"{value:.15g}")  # 1e-06, not pint's 1.0000000000000002e-06
LABEL_FACTOR_LIMIT = 100.0  # a dose above 100 x the labelled dose needs an explicit override
DOSE_EVENT = re.compile(r"^dose (?P<drug>\S+) #(?P<index>\d+) (?P<status>given|held|not given|resumed|course stopped)"
                        r"(: (?P<reason>.*))?$")
AMOUNT_NOTE = re.compile(r"^scheduled amount: (?P<amount>.+) (?P<units>\S+)$")  # the description of a dose's events
SWITCHED_OFF = "switched off"  # the reason of a dose whose hold rule reads only fixed parameters: an option left off


_p = ex.operand_text


def amount_expression(dose: Dose, pk: PK, parameters: set[str], where: str, problems: list[Problem],
                      allow_high_dose: bool, values: dict[str, float] | None) -> str | None:
    """The dose in the drug's amount units, as an expression (per-kg doses use body_weight)."""
    unit, _, per = dose.units.partition("/")
    unit, per = unit.strip(), per.strip()
    factor = None
    in_mg, in_iu = _factor(unit, "mg"), _factor(unit, "IU")
    if in_mg is not None:
        factor = in_mg if pk.amount_units == "mg" else (in_mg * pk.iu_per_mg if pk.iu_per_mg else None)
    elif in_iu is not None:
        factor = in_iu if pk.amount_units == "IU" else (in_iu / pk.iu_per_mg if pk.iu_per_mg else None)
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
                                    f"run with {argument('allow_high_dose')}", None))
            return None
    return expression


def expand(spec, allow_high_dose: bool = False):
    """The spec with pk/doses/patient replaced by species, parameters, processes and events."""
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
    # a hold rule that reads only parameters no event changes decides the same way all run: a switch, not a hold
    fixed = names - {target for e in spec.events for target in (*e.set, *e.add)}
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
        events += _dose_events(dose, k, pk, amount, times, params, Event, fixed)
    if problems:
        raise ModelError(problems)
    return spec.model_copy(update={"species": species, "parameters": params, "processes": processes,
                                   "observables": observables, "events": events, "pk": [], "doses": [], "patient": None})


def _dose_events(dose: Dose, k: int, pk: PK, amount: str, times: list[float], params: list, Event,
                 fixed: set[str] = frozenset()) -> list:
    """Events of one dose schedule: for each time, the hold decision (if any), then the dose. A hold rule whose
    condition reads only ``fixed`` parameters is an option switched off, and its doses are logged so."""
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
    switch = dose.hold is not None and ex.parse(dose.hold.when).names() <= fixed
    note = f"scheduled amount: {amount} {pk.amount_units}"  # read back by dose_amounts, also from a saved model.yaml
    for i, t in enumerate(times, start=1):
        label = f"dose {d} #{i}"
        running = f"{state}_stopped == 0"
        if dose.hold is not None:
            h = dose.hold
            holding, holds = f"{state}_holding", f"{state}_holds"
            held = f"{label} not given: {SWITCHED_OFF} ({h.when})" if switch else f"{label} held: {h.when}"
            if i > 1 and (i - 1) % per_cycle == 0:  # a new course starts afresh: holds count per course
                events.append(Event(name=f"{d} course {(i - 1) // per_cycle + 1} starts", at=t,
                                    set={holding: 0.0, holds: 0.0, f"{state}_stopped": 0.0}))
            events += [
                Event(name=f"{label} resumed: {h.resume}", at=t, only_if=f"{running} and {holding} == 1 and ({h.resume})",
                      set={holding: 0}, description=note),
                Event(name=held, at=t, only_if=f"{running} and {holding} == 1 and not ({h.resume})", add={holds: 1},
                      description=note),
                Event(name=held, at=t, only_if=f"{running} and {holding} == 0 and ({h.when})", set={holding: 1},
                      add={holds: 1}, description=note),
            ]
            if h.stop_after is not None:
                events.append(Event(name=f"{label} course stopped: {h.stop_after} doses held", at=t,
                                    only_if=f"{running} and {holds} >= {h.stop_after}", set={f"{state}_stopped": 1},
                                    description=note))
            guard = f"{running} and {holding} == 0"
        else:
            guard = None
        if dose.route == "iv_infusion":
            rate = f"{amount}/{dose.duration!r}"
            flag = f"{state}_infusing"  # the end of an infusion undoes only an infusion that started
            if i == 1:
                params.append(Parameter(name=flag, value=0.0, description="1 while an infusion runs", source=BOOKKEEPING))
            events.append(Event(name=f"{label} given", at=t, only_if=guard, add={f"{d}_infusion_rate": rate},
                                set={flag: 1.0}, description=note))
            events.append(Event(name=f"{label} infusion ends", at=t + dose.duration, only_if=f"{flag} == 1",
                                add={f"{d}_infusion_rate": f"-{rate}"}, set={flag: 0.0}))
        else:
            events.append(Event(name=f"{label} given", at=t, only_if=guard, add={target: given}, description=note))
    return events


def dose_amounts(spec) -> dict[tuple[str, int, float], tuple[str, str]]:
    """Each scheduled dose's amount (an expression of parameters) and units, by (drug, dose number, time), from the
    notes ``expand`` writes on the dose events: an expanded spec, such as a result folder's model.yaml, keeps them."""
    amounts = {}
    for e in spec.events:
        name, note = DOSE_EVENT.match(e.name), AMOUNT_NOTE.match(e.description or "")
        if name and note and isinstance(e.at, (int, float)):
            amounts[(name["drug"], int(name["index"]), float(e.at))] = (note["amount"], note["units"])
    return amounts


def dose_log(events_fired, amounts: dict[tuple[str, int, float], tuple[str, str]] | None = None,
             values: dict[str, float] | None = None) -> list[dict]:
    """The dose decisions of a run (from its event log of (time, name) pairs): time, drug, dose number, status,
    reason and, given ``amounts`` (``dose_amounts``) and the run's parameter ``values``, the amount scheduled."""
    log = []
    for t, name in events_fired:
        m = DOSE_EVENT.match(name)
        if m:
            entry = {"time": t, "drug": m["drug"], "dose": int(m["index"]), "status": m["status"], "reason": m["reason"] or ""}
            expression, units = (amounts or {}).get((m["drug"], int(m["index"]), float(t)), (None, ""))
            if expression is not None and values is not None:
                try:
                    entry |= {"amount": float(ex.evaluate(ex.parse(expression), values)), "units": units}
                except (KeyError, TypeError, ValueError, ArithmeticError, ex.ExpressionError):
                    pass  # an amount that cannot be evaluated is left out, never guessed
            log.append(entry)
    return log
