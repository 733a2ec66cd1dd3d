"""Export a compiled model as SBML Level 3 Version 2 (for libroadrunner, Tellurium, COPASI, ...).

The document is built from the CompiledModel, so motifs, doses and included models are already
plain species, parameters, processes, observables and events. Mapping:

- compartments of size 1 (a dimensionless one, and one of 1 litre for concentrations); a species is an amount
  (hasOnlySubstanceUnits), a concentration, or, in units SBML does not allow a species (a volume), a parameter
  with a rate rule (_SpeciesWriter); its initial value is its evaluated initial value, plus an initialAssignment
  when the initial value is an expression of parameters (so changing a parameter in another tool changes the
  start too);
- parameters are global parameters (constant unless an event changes them);
- observables (and derived quantities) are assignment rules on non-constant parameters, written
  in ilsim's evaluation order;
- each process is a reaction: its consumes/produces as reactants/products with their counts, its
  rate as the kinetic law (``hill(x, K, n)`` is written inline as ``x^n/(K^n + x^n)``);
- each time of a timed event is one SBML event triggered by ``time >= t`` (initialValue false, so
  an event at t = 0 fires at the start); a condition event is triggered by its condition
  (initialValue true, so a condition already true at the start does not fire, as in ilsim);
- a guard (``only_if``) is written exactly: each assignment becomes
  ``piecewise(new value, guard, old value)``, the guard being read when the event executes;
- ilsim fires simultaneous events in declaration order, each seeing the results of the ones
  before it: events get priorities that decrease with declaration order, and values are computed
  when an event executes (useValuesFromTriggerTime false; no event has a delay, so this is the
  same instant as the trigger).

Units: every label becomes a UnitDefinition named by the label (io/sbml_units.py), on species
(substanceUnits), parameters, observables and the model's timeUnits; every literal number carries the units its
context needs (io/sbml_math_units.py), and kinetic laws are in extent per time (_kinetic_law), so libsbml's unit
check balances every expression of the built-in scenarios.
Outcomes travel as an annotation on the model. The importer reads both back, so import(export(model)) has
the same units, outcome labels and numbers.

Not exported: ilsim's non-negativity clamp (the exported model runs the plain equations), faults and
toxicity grading.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from html import escape
from pathlib import Path

from ilsim.errors import IlsimError
from ilsim.io.atomic import atomic_file
from ilsim.io.sbml_math_units import ONE, Literal, Unit, with_units
from ilsim.io.sbml_units import UnitDefinitions, outcomes_annotation, species_annotation, unit_terms
from ilsim.model import expressions as ex
from ilsim.model.compile import PARAM, STATE, CompiledModel

LEVEL, VERSION = 3, 2


def _libsbml():
    try:
        import libsbml  # lazy: heavy (libsbml)
    except ImportError:  # pragma: no cover - a declared dependency
        raise IlsimError("SBML export needs python-libsbml: pip install python-libsbml") from None
    return libsbml


# ------------------------------------------------------------------------------------- math


def to_ast(node: ex.Expr, ids: dict[str, str] | None = None, unit_id: Callable[[Unit], str] | None = None):
    """A libsbml ASTNode for an expression tree; ``ids`` renames variables (default: unchanged); with ``unit_id``
    (a Unit -> its SBML unit id), every number carries units: a Literal its own (io/sbml_math_units.py), the
    numbers the conversion writes (a base 10, an exponent 0.5) dimensionless."""
    sb = _libsbml()
    ids = ids or {}

    def make(kind, *kids):
        out = sb.ASTNode(kind)
        for k in kids:
            out.addChild(k)
        return out

    def num(v: float, unit: Unit = ONE):
        out = sb.ASTNode(sb.AST_REAL)
        out.setValue(float(v))
        if unit_id is not None:
            out.setUnits(unit_id(unit))
        return out

    def build(n: ex.Expr):
        if isinstance(n, ex.Num):
            unit = n.unit if isinstance(n, Literal) else ONE
            if math.isinf(n.value) and n.value < 0:
                return make(sb.AST_MINUS, num(math.inf, unit))
            return num(n.value, unit)
        if isinstance(n, ex.Name):
            if n.id == ex.TIME:
                out = sb.ASTNode(sb.AST_NAME_TIME)
                out.setName("time")
                return out
            out = sb.ASTNode(sb.AST_NAME)
            out.setName(ids.get(n.id, n.id))
            return out
        if isinstance(n, ex.Neg):
            return make(sb.AST_MINUS, build(n.arg))
        if isinstance(n, ex.Not):
            return make(sb.AST_LOGICAL_NOT, build(n.arg))
        if isinstance(n, ex.BinOp):
            kind = {"+": sb.AST_PLUS, "-": sb.AST_MINUS, "*": sb.AST_TIMES, "/": sb.AST_DIVIDE,
                    "**": sb.AST_POWER}[n.op]
            return make(kind, build(n.left), build(n.right))
        if isinstance(n, ex.Compare):
            kind = {"<": sb.AST_RELATIONAL_LT, "<=": sb.AST_RELATIONAL_LEQ, ">": sb.AST_RELATIONAL_GT,
                    ">=": sb.AST_RELATIONAL_GEQ, "==": sb.AST_RELATIONAL_EQ, "!=": sb.AST_RELATIONAL_NEQ}[n.op]
            return make(kind, build(n.left), build(n.right))
        if isinstance(n, ex.Logic):
            return make(sb.AST_LOGICAL_AND if n.op == "and" else sb.AST_LOGICAL_OR, *map(build, n.args))
        if isinstance(n, ex.Call):
            return call(n)
        raise TypeError(n)

    def call(n: ex.Call):
        f, args = n.func, n.args
        if f == "hill":  # x^n / (K^n + x^n)
            x, k, h = args
            return make(sb.AST_DIVIDE, make(sb.AST_POWER, build(x), build(h)),
                        make(sb.AST_PLUS, make(sb.AST_POWER, build(k), build(h)), make(sb.AST_POWER, build(x), build(h))))
        if f == "log":
            if len(args) == 1:
                return make(sb.AST_FUNCTION_LN, build(args[0]))
            return make(sb.AST_DIVIDE, make(sb.AST_FUNCTION_LN, build(args[0])), make(sb.AST_FUNCTION_LN, build(args[1])))
        if f == "log10":
            return make(sb.AST_DIVIDE, make(sb.AST_FUNCTION_LN, build(args[0])), make(sb.AST_FUNCTION_LN, num(10.0)))
        if f == "sqrt":
            return make(sb.AST_FUNCTION_POWER, build(args[0]), num(0.5))
        if f == "piecewise":  # value1, condition1, ..., otherwise: the same order as SBML's piecewise
            return make(sb.AST_FUNCTION_PIECEWISE, *map(build, args))
        kind = {"exp": sb.AST_FUNCTION_EXP, "abs": sb.AST_FUNCTION_ABS, "min": sb.AST_FUNCTION_MIN,
                "max": sb.AST_FUNCTION_MAX, "sin": sb.AST_FUNCTION_SIN, "cos": sb.AST_FUNCTION_COS,
                "tanh": sb.AST_FUNCTION_TANH, "floor": sb.AST_FUNCTION_FLOOR, "ceil": sb.AST_FUNCTION_CEILING,
                "factorial": sb.AST_FUNCTION_FACTORIAL,
                "tan": sb.AST_FUNCTION_TAN, "sinh": sb.AST_FUNCTION_SINH, "cosh": sb.AST_FUNCTION_COSH,
                "asin": sb.AST_FUNCTION_ARCSIN, "acos": sb.AST_FUNCTION_ARCCOS, "atan": sb.AST_FUNCTION_ARCTAN}[f]
        return make(kind, *map(build, args))

    return build(node)


# ---------------------------------------------------------------------------------- document


_SID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Ids:
    """SBML identifiers: model names kept as they are, generated ones made unique."""

    def __init__(self, taken):
        self.taken = set(taken)

    def new(self, text: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "x"
        if not base[0].isalpha() and base[0] != "_":
            base = "_" + base
        sid, k = base, 1
        while sid in self.taken:
            k += 1
            sid = f"{base}_{k}"
        self.taken.add(sid)
        return sid


def _notes(element, text: str) -> None:
    if text:
        element.setNotes(f'<body xmlns="http://www.w3.org/1999/xhtml"><p>{escape(text)}</p></body>')


def _check(status: int, what: str) -> None:
    sb = _libsbml()
    if status != sb.LIBSBML_OPERATION_SUCCESS:
        raise IlsimError(f"SBML export failed at {what}: {sb.OperationReturnValue_toString(status)}")


def to_document(model: CompiledModel, parameters: dict[str, float] | None = None):
    """A libsbml SBMLDocument (Level 3 Version 2) for a compiled model; ``parameters`` overrides values by name."""
    sb = _libsbml()
    spec = model.spec
    names = [*model.species, *model.parameters, *model.observables, *(n for n, _ in model.derived)]
    bad = [n for n in names if not _SID.match(n) or n == "time"]
    if bad:
        raise IlsimError(f"cannot export to SBML: {', '.join(repr(n) for n in bad)} is not a valid SBML identifier")
    ids = _Ids(names)

    doc = sb.SBMLDocument(LEVEL, VERSION)
    m = doc.createModel()
    m.setId(ids.new(spec.metadata.name))
    m.setName(spec.metadata.title or spec.metadata.name)
    _notes(m, f"{spec.metadata.description} Exported from ilsim.".strip())
    uds = UnitDefinitions(m, ids.new)
    _check(m.setTimeUnits(uds.id_of(spec.metadata.time_units)), f"the time units '{spec.metadata.time_units}'")
    unit_id = lambda unit: uds.id_for(unit.scale, unit.terms)  # noqa: E731 - the units of a literal number
    names = _name_units(model)
    time = _unit(spec.metadata.time_units)
    extent_unit, extent = _extent(spec, names)
    extent_id = uds.id_of(extent) if extent else unit_id(extent_unit)
    _check(m.setExtentUnits(extent_id), "the extent units")
    _check(m.setSubstanceUnits(extent_id), "the substance units")
    if spec.outcomes:
        _check(m.setAnnotation(outcomes_annotation(spec.outcomes)), "the outcomes")

    comp_id = _compartment(m, ids.new("compartment"), "dimensionless")  # of size 1: amounts and concentrations alike

    values = dict(zip(model.parameters, map(float, model.parameter_vector(parameters))))
    event_params = {model.parameters[i] for e in model.events for _, kind, i, _ in e.actions if kind == PARAM}
    writer = _SpeciesWriter(m, ids, uds, names, extent_unit, comp_id)
    for s, tree in zip(spec.species, model.initial_trees):
        writer.add(s, float(ex.evaluate(tree, values)))
        if not isinstance(tree, ex.Num):
            ia = m.createInitialAssignment()
            ia.setSymbol(s.name)
            math_ = to_ast(with_units(tree, names, names[s.name]), unit_id=unit_id)
            _check(ia.setMath(math_), f"the initial value of '{s.name}'")
    ruled = writer.ruled

    for p in spec.parameters:
        par = m.createParameter()
        _check(par.setId(p.name), f"parameter '{p.name}'")
        par.setValue(values[p.name])
        par.setConstant(p.name not in event_params)
        _check(par.setUnits(uds.id_of(p.units)), f"the units of parameter '{p.name}'")
        _notes(par, p.description)

    units = {o.name: (o.units, o.description) for o in spec.observables}
    units.update({d.name: (d.units, d.description) for d in spec.derived})
    for name, tree in [*model.derived, *zip(model.observables, model.observable_trees)]:
        par = m.createParameter()
        _check(par.setId(name), f"observable '{name}'")
        par.setConstant(False)
        u, d = units.get(name, ("dimensionless", ""))
        _check(par.setUnits(uds.id_of(u)), f"the units of '{name}'")
        _notes(par, d)
        rule = m.createAssignmentRule()
        rule.setVariable(name)
        _check(rule.setMath(to_ast(with_units(tree, names, names[name]), unit_id=unit_id)), f"the expression of '{name}'")

    for j, (pr, rate) in enumerate(zip(spec.processes, model.rate_trees)):
        changed = [name for name in [*pr.consumes, *pr.produces] if name not in ruled]
        if not changed:
            continue  # it changes only rate-ruled states: written in their rate rules
        r = m.createReaction()
        _check(r.setId(ids.new(pr.name or f"process_{j}")), f"process '{pr.name}'")
        r.setName(pr.name)
        r.setReversible(False)
        _notes(r, pr.description)
        for side, create in (("consumes", r.createReactant), ("produces", r.createProduct)):
            for name, count in getattr(pr, side).items():
                if name in ruled:
                    continue
                ref = create()
                ref.setSpecies(name)
                ref.setStoichiometry(float(count))
                ref.setConstant(True)
        listed = set(pr.consumes) | set(pr.produces)
        for name in sorted(rate.names() & set(model.species) - listed - set(ruled)):  # read by the rate, not changed
            r.createModifier().setSpecies(name)
        law = r.createKineticLaw()
        _check(law.setMath(to_ast(_kinetic_law(rate, changed[0], names, time, writer.scaling), unit_id=unit_id)),
               f"the rate of process '{pr.name}'")
    for name in ruled:
        rule = m.createRateRule()
        rule.setVariable(name)
        change = _change_of(name, spec.processes, model.rate_trees)
        _check(rule.setMath(to_ast(with_units(change, names, names[name] / time), unit_id=unit_id)), f"the change of '{name}'")

    _events(model, m, ids, names, unit_id)
    return doc


def _compartment(m, sid: str, units: str) -> str:
    """A constant compartment of size 1 (so that a species' amount and concentration are the same number)."""
    comp = m.createCompartment()
    _check(comp.setId(sid), f"compartment '{sid}'")
    comp.setSize(1.0)
    comp.setConstant(True)
    comp.setSpatialDimensions(3)
    comp.setUnits(units)
    return sid


_LITRE = Unit.make(1e-3, [("metre", 3.0)])


def _per_litre(unit: Unit) -> Unit | None:
    """The substance units of a concentration (a unit of substance, or none, per volume) in a compartment of litres;
    None for a unit that is not a concentration."""
    if dict(unit.terms).get("metre") != -3.0:
        return None
    substance = unit * _LITRE
    return substance if _is_substance(substance.terms) else None


def _is_substance(terms) -> bool:
    """SBML's substance units: mole, item, kilogram (gram), dimensionless, each to the power 1."""
    return len(terms) <= 1 and all(kind in ("mole", "item", "kilogram") and power == 1 for kind, power in terms)


def _unit(label: str) -> Unit:
    return Unit.make(*unit_terms(label or "dimensionless"))


def _name_units(model: CompiledModel) -> dict[str, Unit]:
    """The SBML units of every name the model's math reads (as their labels are exported)."""
    spec = model.spec
    labels = {e.name: e.units for e in [*spec.species, *spec.parameters, *spec.observables, *spec.derived]}
    out = {name: _unit(labels.get(name, "dimensionless"))
           for name in [*model.species, *model.parameters, *model.observables, *(n for n, _ in model.derived)]}
    out[ex.TIME] = _unit(spec.metadata.time_units)
    return out


def _kinetic_law(rate: ex.Expr, species: str, names: dict[str, Unit], time: Unit, scaling: dict) -> ex.Expr:
    """A process's rate as an SBML kinetic law in extent per time: its numbers in the units that make it
    ``species``' units per time; for a concentration, times its compartment (1 litre: concentration per time ->
    substance per time); for a species whose substance is not the extent, divided by its conversion factor (of
    value 1), which SBML multiplies back. The same numbers (x 1, / 1), in units libsbml checks, and the importer
    gets the rate back with the compartment and the factor cancelled."""
    law = with_units(rate, names, names[species] / time)
    compartment, conversion = scaling.get(species, (None, None))
    if compartment is not None:
        law = ex.BinOp("*", law, ex.Name(compartment))
    if conversion is not None:
        law = ex.BinOp("/", law, ex.Name(conversion))
    return law


def _change_of(name: str, processes, rates) -> ex.Expr:
    """The rate of change of a state as its processes give it: the sum of their rates times its counts."""
    terms = []
    for process, rate in zip(processes, rates):
        count = float(process.produces.get(name, 0)) - float(process.consumes.get(name, 0))
        if count:
            term = rate if abs(count) == 1 else ex.BinOp("*", ex.Num(abs(count)), rate)
            terms.append((count > 0, term))
    out: ex.Expr | None = None
    for positive, term in terms:
        if out is None:
            out = term if positive else ex.Neg(term)
        else:
            out = ex.BinOp("+" if positive else "-", out, term)
    return out if out is not None else ex.Num(0.0)


class _SpeciesWriter:
    """ilsim's species as SBML elements whose units SBML allows, each holding the same number as in ilsim:

    - an amount (a unit of substance: cells, mg, IU, a fraction): a species with hasOnlySubstanceUnits, in a
      dimensionless compartment of size 1;
    - a concentration (substance per volume: pg/mL, 1e9 cells/L, /mm3): a concentration species in a compartment of
      1 litre, its substance units its label times a litre, its label in an annotation the importer reads back;
    - anything else (a volume in L): SBML species are substances, so a parameter that a rate rule changes (``ruled``);
    and, for a species whose substance is not the model's extent, a conversion factor of 1 (see _kinetic_law)."""

    def __init__(self, m, ids: _Ids, uds: UnitDefinitions, names: dict[str, Unit], extent: Unit, compartment: str):
        self.m, self.ids, self.uds, self.names, self.compartment = m, ids, uds, names, compartment
        self.conversions = _Conversions(m, ids, uds, extent)
        self.litre: str | None = None  # the compartment of concentration species, made on first use
        self.scaling: dict[str, tuple[str | None, str | None]] = {}  # species -> (its litre compartment, its factor)
        self.ruled: list[str] = []

    def add(self, s, initial: float) -> None:
        unit = self.names[s.name]
        substance = unit if _is_substance(unit.terms) else _per_litre(unit)
        if substance is None:
            par = self.m.createParameter()
            _check(par.setId(s.name), f"species '{s.name}'")
            par.setConstant(False)
            par.setValue(initial)
            _check(par.setUnits(self.uds.id_of(s.units)), f"the units of species '{s.name}'")
            _notes(par, s.description)
            self.ruled.append(s.name)
            return
        sp = self.m.createSpecies()
        _check(sp.setId(s.name), f"species '{s.name}'")
        sp.setBoundaryCondition(False)
        sp.setConstant(False)
        if substance is unit:
            sp.setCompartment(self.compartment)
            sp.setHasOnlySubstanceUnits(True)
            sp.setInitialAmount(initial)
            _check(sp.setSubstanceUnits(self.uds.id_of(s.units)), f"the units of species '{s.name}'")
        else:
            # litres in metre^3, as every other unit: libsbml keeps SBML's 'litre' apart from metre^3
            if self.litre is None:
                self.litre = _compartment(self.m, self.ids.new("compartment_litre"), self.uds.id_of("L"))
                self.names[self.litre] = _LITRE  # read by kinetic laws
            sp.setCompartment(self.litre)
            sp.setHasOnlySubstanceUnits(False)
            sp.setInitialConcentration(initial)
            _check(sp.setSubstanceUnits(self.uds.id_for(substance.scale, substance.terms)), f"the units of species '{s.name}'")
            _check(sp.setAnnotation(species_annotation(s.units)), f"the units of species '{s.name}'")
        conversion = self.conversions.factor(substance, s.units)
        if conversion is not None:
            _check(sp.setConversionFactor(conversion), f"the conversion factor of species '{s.name}'")
            self.names[conversion] = substance / self.conversions.extent  # read by kinetic laws
        self.scaling[s.name] = (None if substance is unit else self.litre, conversion)
        _notes(sp, s.description)


class _Conversions:
    """One SBML conversion factor parameter (value 1) per species unit that is not the model's extent unit."""

    def __init__(self, m, ids: _Ids, uds: UnitDefinitions, extent: Unit):
        self.m, self.ids, self.uds, self.extent = m, ids, uds, extent
        self.made: dict[tuple, str] = {}

    def factor(self, unit: Unit, label: str) -> str | None:
        if unit.same(self.extent):
            return None
        ratio = unit / self.extent
        key = ratio.key()
        if key not in self.made:
            par = self.m.createParameter()
            sid = self.ids.new(f"conversion_{label}")
            _check(par.setId(sid), f"the conversion factor of '{label}'")
            par.setValue(1.0)
            par.setConstant(True)
            _check(par.setUnits(self.uds.id_for(ratio.scale, ratio.terms)), f"the units of conversion factor '{sid}'")
            _notes(par, f"1 {label} per unit of extent: ilsim's processes change this species by their rate as it is")
            self.made[key] = sid
        return self.made[key]


def _extent(spec, names: dict[str, Unit]) -> tuple[Unit, str | None]:
    """The model's extent (and substance) units: the species' most common unit of substance (an amount's own, a
    concentration's per litre), so that libsbml checks every kinetic law against it; and the label of an amount
    species in those units (for a definition named by it), or None. Dimensionless for a model without species."""
    found = [(_substance_of(names[s.name]), s.units if _is_substance(names[s.name].terms) else None) for s in spec.species]
    found = [(unit, label) for unit, label in found if unit is not None]
    if not found:
        return ONE, None
    counts = Counter(unit.key() for unit, _ in found)
    best = next(unit for unit, _ in found if counts[unit.key()] == max(counts.values()))
    return best, next((label for unit, label in found if label and unit.same(best)), None)


def _substance_of(unit: Unit) -> Unit | None:
    """The SBML substance units of a species in ``unit``: its own, or per litre for a concentration; None if neither."""
    return unit if _is_substance(unit.terms) else _per_litre(unit)


def _events(model: CompiledModel, m, ids: _Ids, names: dict[str, Unit], unit_id) -> None:
    """Events; their numbers carry units (a time the model's time unit, a dose those of its target), so libsbml can
    check them."""
    n = len(model.events)

    def math_of(tree: ex.Expr, want: Unit | None):
        return to_ast(with_units(tree, names, want), unit_id=unit_id)

    for k, ev in enumerate(model.events):
        triggers = [ex.Compare(">=", ex.Name(ex.TIME), ex.Num(float(t))) for t in ev.times]
        if ev.condition is not None:
            triggers.append(ev.condition)
        for trig in triggers:
            e = m.createEvent()
            _check(e.setId(ids.new(f"event_{k}_{ev.name}")), f"event '{ev.name}'")
            e.setName(ev.name)
            e.setUseValuesFromTriggerTime(False)  # values when it executes: after the events before it
            t = e.createTrigger()
            t.setPersistent(True)
            if ev.delay is not None:  # SBML's event delay, as ilsim's: values and persistence as the event says
                _check(e.createDelay().setMath(math_of(ev.delay, names[ex.TIME])), f"the delay of event '{ev.name}'")
                e.setUseValuesFromTriggerTime(ev.values_at_trigger)
                t.setPersistent(ev.persistent)
            t.setInitialValue(ev.condition is not None and trig is ev.condition)
            _check(t.setMath(math_of(trig, None)), f"the trigger of event '{ev.name}'")  # 'time >= c': c is a time
            # condition events first (ilsim fires them as soon as a jump makes them true), then declaration order
            pr = e.createPriority()
            pr.setMath(math_of(ex.Num(float(2 * n - k if ev.condition is not None else n - k)), ONE))
            for mode, kind, i, value in ev.actions:
                target = model.species[i] if kind == STATE else model.parameters[i]
                if not value.names():  # numbers only (a dose's amount / its duration): one number, in the target's units
                    value = ex.Num(float(ex.evaluate(value, {})))
                new = math_of(value if mode == "set" else ex.BinOp("+", ex.Name(target), value), names[target])
                if ev.guard is not None:
                    new = _piecewise(new, math_of(ev.guard, None), math_of(ex.Name(target), None))
                a = e.createEventAssignment()
                a.setVariable(target)
                _check(a.setMath(new), f"an action of event '{ev.name}'")


def _piecewise(value, condition, otherwise):
    sb = _libsbml()
    out = sb.ASTNode(sb.AST_FUNCTION_PIECEWISE)
    for child in (value, condition, otherwise):
        out.addChild(child)
    return out


def validate(doc) -> tuple[list[str], list[str]]:
    """libsbml's consistency check: (errors, warnings) as readable lines."""
    sb = _libsbml()
    doc.checkConsistency()
    errors, warnings = [], []
    for i in range(doc.getNumErrors()):
        e = doc.getError(i)
        line = f"{e.getCategoryAsString()} {e.getErrorId()}: {' '.join(e.getMessage().split())}"
        (errors if e.getSeverity() >= sb.LIBSBML_SEV_ERROR else warnings).append(line)
    return errors, warnings


def to_string(model: CompiledModel, parameters: dict[str, float] | None = None) -> tuple[str, list[str]]:
    """The SBML text of a model and libsbml's warnings; an IlsimError when the check finds errors."""
    sb = _libsbml()
    doc = to_document(model, parameters)
    errors, warnings = validate(doc)
    if errors:
        raise IlsimError(f"the exported SBML of '{model.name}' fails libsbml's consistency check: " + "; ".join(errors[:5])
                         + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""))
    return sb.writeSBMLToString(doc), warnings


def write(model: CompiledModel, path: str | Path, parameters: dict[str, float] | None = None) -> list[str]:
    """Write a model as SBML (atomically: no partial file on error); returns libsbml's warnings."""
    path = Path(path)
    text, warnings = to_string(model, parameters)
    if path.parent and not path.parent.exists():
        raise IlsimError(f"cannot write {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise IlsimError(f"cannot write {path}: it is a folder")
    try:
        with atomic_file(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise IlsimError(f"cannot write {path}: {exc.strerror or exc}") from None
    return warnings


def summarise_warnings(warnings: list[str]) -> list[str]:
    """One line per kind of libsbml warning: its count and the start of its message."""
    kinds: dict[str, list] = {}
    for line in warnings:
        key, _, message = line.partition(": ")
        entry = kinds.setdefault(key, [0, message.split(". ")[0]])
        entry[0] += 1
    return [f"{count} x {key}: {first[:140]}" for key, (count, first) in kinds.items()]
