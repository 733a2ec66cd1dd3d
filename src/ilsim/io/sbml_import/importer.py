"""An SBML model -> an ilsim ModelSpec with the same dynamics.

Mapping (SBML Level 2 and 3 core):

- a species is a state; what its id means in math (its *reference quantity*) is its concentration
  unless it has only substance units (or lives in a 0-dimensional compartment), then its amount;
- the state holds that reference quantity when its compartment never changes size; a reaction then
  changes a concentration by stoichiometry x rate / compartment size. In a compartment that changes
  (a rule or an event), the state is the amount (``<id>_amount``), so a change of size dilutes, and
  an observable ``<id>`` gives the concentration; a species with a rate rule keeps its reference
  quantity, as SBML says the rule is its derivative;
- parameters, compartment sizes and species-reference stoichiometries are parameters, or
  observables when an assignment rule defines them, or states when a rate rule does;
- initial values (attributes, initial assignments, assignment rules at t = 0) are evaluated at
  import: the model file holds numbers;
- local parameters become global ones named ``<reaction>_<id>``; function definitions are inlined;
  a reaction id used in math is an observable holding its rate;
- an event becomes a condition event (a trigger of the form ``time >= c`` a timed event at c; a strict
  ``time > c`` stays a condition, false at c, so an output at c shows the state before it);
  ``initialValue="false"`` adds a copy at t = 0 guarded by the trigger, since a trigger already true
  at the start fires then; a delay, ``persistent`` and ``useValuesFromTriggerTime`` become the event's
  ``delay``, ``persistent`` and ``values_at_trigger``; events are put in the order of their priorities
  (constant numbers; none counts as 0), since simultaneous events fire in model order; where events read
  what others assign, those without a delay get a delay of 0, so that events triggered together take their
  values at the trigger and keep their persistence, as SBML says (``_events_interact``).

Read as libroadrunner reads them, each with a note (``SbmlModel.notes``, also an ``SbmlImportWarning``):
a reaction without a kinetic law has rate 0; a species nothing gives an initial value starts at 0; a species
with constant="true" but boundaryCondition="false" that a reaction changes (libsbml error 20611) is changed by
its reactions, as if it were not constant; a kinetic law may read a species not listed as a modifier (21121).

Refused, with the element named: algebraic rules, fast reactions (libroadrunner refuses them
too), priorities that are not constant, required packages, csymbol delay of anything but time and constants,
MathML ilsim cannot express.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field

import libsbml as sb
import numpy as np
from pydantic import ValidationError

from ilsim.errors import IlsimError, ModelError, Problem, SbmlImportWarning
from ilsim.io.sbml_import.mathml import MathConverter, UnsupportedSbml, as_condition, as_value, function_definitions
from ilsim.io.sbml_import.tolerances import scale_tolerances
from ilsim.io.sbml_units import read_outcomes, read_species_label
from ilsim.model import expressions as ex
from ilsim.model import units
from ilsim.model.base import RESERVED
from ilsim.model.problems import problems_from_validation
from ilsim.model.spec import Event, Metadata, ModelSpec, Observable, Outcome, Parameter, Process, Species

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TIME_UNITS = {1.0: "second", 60.0: "minute", 3600.0: "hour", 86400.0: "day", 604800.0: "week"}


@dataclass(frozen=True)
class Quantity:
    """How to read one SBML symbol from an ilsim run: trees over ilsim names (species, parameters, observables)."""

    value: ex.Expr  # what the id means in SBML math
    amount: ex.Expr | None = None  # species only
    concentration: ex.Expr | None = None  # species only


@dataclass
class SbmlModel:
    """The result of an import: the spec, how to read each SBML id back, and what was renamed."""

    spec: ModelSpec
    quantities: dict[str, Quantity]
    renamed: dict[str, str] = field(default_factory=dict)  # SBML id -> ilsim name, where they differ
    notes: list[str] = field(default_factory=list)  # what was read as libroadrunner reads it, not as written


class _Names:
    """SBML ids -> ilsim names: identifiers, none reserved, all distinct."""

    def __init__(self):
        self.of: dict[str, str] = {}
        self.taken: set[str] = set()

    def new(self, wanted: str) -> str:
        name = wanted if _IDENTIFIER.match(wanted) else re.sub(r"\W", "_", wanted) or "x"
        if name[0].isdigit() or name.startswith("__"):
            name = "x" + name
        while name in RESERVED or name in self.taken:
            name += "_"
        self.taken.add(name)
        return name

    def add(self, sbml_id: str) -> str:
        self.of[sbml_id] = self.new(sbml_id)
        return self.of[sbml_id]


def _ids(items) -> list:
    return [items.get(i) for i in range(items.size())]


def _names(node) -> set[str]:
    """The ids a MathML tree reads (function arguments included; csymbols such as time are not names)."""
    found, todo = set(), [node] if node is not None else []
    while todo:
        n = todo.pop()
        if n.getType() == sb.AST_NAME:
            found.add(n.getName())
        todo += [n.getChild(i) for i in range(n.getNumChildren())]
    return found


class _Importer:
    def __init__(self, doc, source: str, initial_expressions: bool = False):
        self.doc, self.m, self.source = doc, doc.getModel(), source
        self.initial_expressions = initial_expressions
        self.problems: list[Problem] = []
        self.notes: list[str] = []
        self.names = _Names()

    def bad(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message, self.source))

    def note(self, where: str, message: str) -> None:
        if f"{where}: {message}" not in self.notes:  # once per element, however often it is met
            self.notes.append(f"{where}: {message}")

    # ------------------------------------------------------------------------------- the plan
    def run(self) -> SbmlModel:
        m = self.m
        self._refuse_unsupported()
        try:
            functions = function_definitions(m)
        except UnsupportedSbml as exc:
            raise ModelError([Problem("functionDefinition", str(exc), self.source)]) from None
        self.compartments = {c.getId(): c for c in _ids(m.getListOfCompartments())}
        self.species = {s.getId(): s for s in _ids(m.getListOfSpecies())}
        self.parameters = {p.getId(): p for p in _ids(m.getListOfParameters())}
        self.reactions = {r.getId(): r for r in _ids(m.getListOfReactions())}
        self.sref = {}  # species-reference id -> SpeciesReference
        for r in self.reactions.values():
            for sr in [*_ids(r.getListOfReactants()), *_ids(r.getListOfProducts())]:
                if sr.isSetId() and sr.getId():
                    self.sref[sr.getId()] = sr
        for group in (self.compartments, self.species, self.parameters, self.sref, self.reactions):
            for sid in group:
                self.names.add(sid)
        # SBML Level 3 Version 2 lets math be omitted: the element then has no effect
        self.assigned = {r.getVariable(): r for r in _ids(m.getListOfRules()) if r.isAssignment() and r.isSetMath()}
        self.rated = {r.getVariable(): r for r in _ids(m.getListOfRules()) if r.isRate() and r.isSetMath()}
        self.initial = {ia.getSymbol(): ia for ia in _ids(m.getListOfInitialAssignments()) if ia.isSetMath()}
        self.events = [ev for ev in _ids(m.getListOfEvents())
                       if ev.getTrigger() is not None and ev.getTrigger().isSetMath()]  # no trigger: never fires
        self.event_targets = {ea.getVariable() for ev in self.events
                              for ea in _ids(ev.getListOfEventAssignments()) if ea.isSetMath()}
        self.varying = set(self.assigned) | set(self.rated) | self.event_targets
        self.used_reactions: set[str] = set()
        self.converter = MathConverter(self._resolve, functions, self._is_constant)
        self.amount_names = {sid: self.names.new(f"{self.names.of[sid]}_amount")
                             for sid in self.species if self._state_is_amount(sid)}
        self.local: dict[str, dict[str, ex.Expr]] = {}  # reaction -> local parameter -> global name
        self.local_values: dict[str, float] = {}
        for rid, r in self.reactions.items():
            self.local[rid] = {}
            law = r.getKineticLaw()
            if law is None:
                continue
            for p in [*_ids(law.getListOfParameters()), *_ids(law.getListOfLocalParameters())]:
                name = self.names.new(f"{self.names.of[rid]}_{p.getId()}")
                self.local[rid][p.getId()] = ex.Name(name)
                self.local_values[name] = p.getValue() if p.isSetValue() else math.nan
        if self.problems:
            raise ModelError(self.problems)

        rates = {rid: self._rate(rid, r) for rid, r in self.reactions.items()}
        rules = {v: self._math(f"assignmentRule '{v}'", r.getMath()) for v, r in self.assigned.items()}
        rate_rules = {v: self._math(f"rateRule '{v}'", r.getMath()) for v, r in self.rated.items()}
        # Simultaneous events fire in model order, so the order is that of SBML's priorities (highest first;
        # none counts as 0, as in libroadrunner; equal ones keep file order). Priorities are numbers here.
        order = sorted(range(len(self.events)), key=lambda k: -self._priority(k, self.events[k]))
        self.simultaneous = self._events_interact()
        events = [e for k in order for e in self._event(k, self.events[k])]  # may use reaction ids
        values = self._initial_values(rates, rules)
        if self.problems:
            raise ModelError(self.problems)

        quantities: dict[str, Quantity] = {}
        observables: list[Observable] = []
        for sid, tree in rules.items():  # assignment rules are observables
            element = self.m.getElementBySId(sid)
            unit = self._units(element) if element is not None else "dimensionless"
            declared = {"units": unit} if unit != "dimensionless" else {}  # undeclared: ilsim checks nothing against it
            observables.append(self._checked(sid, Observable, name=self._name(sid), expression=ex.to_text(tree), **declared,
                                          description=self._describe(sid, "assignment rule")))
        species: list[Species] = []
        parameters: list[Parameter] = []
        for group, what in ((self.compartments, "compartment"), (self.parameters, "parameter"),
                            (self.sref, "stoichiometry of a species reference")):
            for sid in group:
                name = self._name(sid)
                quantities[sid] = Quantity(ex.Name(name))
                if sid in rules:
                    continue
                if sid in rate_rules:
                    species.append(self._checked(sid, Species, name=name, initial=self._finite(sid, values[name]),
                                                 units=self._units(group[sid]), nonnegative=False,
                                                 description=self._describe(sid, f"{what} with a rate rule")))
                elif not math.isfinite(values[name]) and sid not in self.varying:
                    observables.append(_constant(name, values[name], self._describe(sid, what)))
                else:
                    parameters.append(self._checked(sid, Parameter, name=name, value=self._finite(sid, values[name]),
                                                    units=self._units(group[sid]),
                                                description=self._describe(sid, what)))
        for name, value in self.local_values.items():
            if not math.isfinite(value):
                observables.append(_constant(name, value, "local parameter of an SBML reaction"))
                continue
            parameters.append(Parameter(name=name, value=self._finite(name, value),
                                        description="local parameter of an SBML reaction"))
        for sid, s in self.species.items():
            name, size = self._name(sid), ex.Name(self._name(s.getCompartment()))
            ref = ex.Name(name)
            if self._ref_is_amount(sid):
                quantities[sid] = Quantity(ref, ref, ex.BinOp("/", ref, size))
            else:
                amount = ex.Name(self.amount_names[sid]) if sid in self.amount_names else ex.BinOp("*", ref, size)
                quantities[sid] = Quantity(ref, amount, ref)
            if sid in rules:
                continue
            what = ("amount" if self._ref_is_amount(sid) else "concentration") + " of an SBML species"
            if sid in self.amount_names:
                amount_name = self.amount_names[sid]
                amount = values[name] * values[self._name(s.getCompartment())]
                species.append(Species(name=amount_name, initial=self._finite(sid, amount),
                                       nonnegative=False, description=self._describe(sid, "amount of an SBML species")))
                observables.append(Observable(name=name, expression=ex.to_text(ex.BinOp("/", ex.Name(amount_name), size)),
                                              description=self._describe(sid, "concentration (amount / compartment size)")))
            else:
                initial = self._finite(sid, values[name])
                tree = self._initial_expression(sid, [p.name for p in parameters])
                species.append(self._checked(sid, Species, name=name, initial=initial if tree is None else ex.to_text(tree),
                                             nonnegative=False,
                                       units=self._units(s), description=self._describe(sid, what)))
        for rid in sorted(self.used_reactions):
            observables.append(Observable(name=self._name(rid), expression=ex.to_text(rates[rid]),
                                          description=self._describe(rid, "rate of an SBML reaction")))
        for rid in self.reactions:
            quantities[rid] = Quantity(rates[rid])

        species = scale_tolerances(species)  # amounts of 1e-20 integrated to their own size
        if not species:  # the engine integrates at least one state: a constant one carries the clock
            species.append(Species(name=self.names.new("no_state"), initial=0.0, nonnegative=False,
                                   description="constant: the SBML model has no state variable, and ilsim integrates one"))
        processes = [p for rid in self.reactions for p in self._reaction_processes(rid, rates[rid])]
        for sid, tree in rate_rules.items():
            target = self._name(sid)
            processes.append(Process(name=f"rate rule of {sid}", rate=ex.to_text(tree), produces={target: 1.0}))
        observables += self._other_quantity(quantities, rules)
        metadata = self._metadata()
        outcomes = self._outcomes()
        if self.problems:
            raise ModelError(self.problems)
        spec = ModelSpec(metadata=metadata, species=species, parameters=parameters, processes=processes,
                         observables=observables, events=events, outcomes=outcomes)
        renamed = {k: v for k, v in self.names.of.items() if k != v}
        for line in self.notes:
            warnings.warn(f"{self.source}: {line}", SbmlImportWarning, stacklevel=4)
        return SbmlModel(spec, quantities, renamed, self.notes)

    def _checked(self, sid: str, schema, **fields):
        """``schema(**fields)`` for SBML element ``sid``; a value the schema refuses is a problem naming the element."""
        try:
            return schema(**fields)
        except ValidationError as exc:
            where = f"SBML {sid} ({schema.__name__.lower()}"
            raise ModelError([Problem(f"{where}{'.' + p.field if p.field else ''})", p.message, self.source)
                              for p in problems_from_validation(exc, None, schema)]) from None

    def _other_quantity(self, quantities: dict[str, Quantity], rules: dict[str, ex.Expr]) -> list[Observable]:
        """For each species, the quantity its id does not mean, as an observable named for what it is: results
        hold a hasOnlySubstanceUnits species' amount as ``<id>`` and its concentration as ``<id>_concentration``,
        and a concentration species' concentration as ``<id>`` and its amount as ``<id>_amount``. Not where both
        are the same numbers in the same units (a constant, dimensionless compartment of size 1, as ilsim's export
        writes), nor in a compartment without size (0 dimensions)."""
        out = []
        for sid, s in self.species.items():
            c = self.compartments.get(s.getCompartment())
            if c is None or c.getSpatialDimensionsAsDouble() == 0 or sid in self.amount_names:
                continue  # an amount state in a resized compartment already has both (<id>_amount, <id>)
            if read_species_label(s) is not None and c.getId() not in self.varying and c.getSize() == 1:
                continue  # an ilsim export's concentration in a compartment of size 1: the amount is the same number
            if (c.getId() not in self.varying and c.getId() not in self.initial and (not c.isSetSize() or c.getSize() == 1)
                    and self._unit_text(c.getUnits() if c.isSetUnits() else "") == "dimensionless"):
                continue
            amount = self._ref_is_amount(sid)
            name = self.names.new(f"{self._name(sid)}_{'concentration' if amount else 'amount'}")
            tree = quantities[sid].concentration if amount else quantities[sid].amount
            substance = self._unit_text(s.getSubstanceUnits() or self.m.getSubstanceUnits())
            size = self._unit_text(c.getUnits() if c.isSetUnits() else "")
            unit = f"{substance}/{size}" if amount else substance
            out.append(Observable(name=name, expression=ex.to_text(tree), units=_readable_unit(unit),
                                  description=self._describe(sid, ("concentration (amount / size of compartment "
                                                                   f"{c.getId()})") if amount else
                                                             f"amount (concentration x size of compartment {c.getId()})")))
        return out

    def _outcomes(self) -> list[Outcome]:
        """ilsim's outcomes, where an ilsim export wrote them (an annotation); conditions are renamed as ids were."""
        out = []
        for fields in read_outcomes(self.m):
            try:
                when = ex.parse(fields["when"])
                renamed = _rename(when, self.names.of)
                out.append(Outcome(**{**fields, "when": ex.to_text(renamed)}))
            except (IlsimError, ValueError) as exc:
                self.bad(f"outcome '{fields.get('label', '')}' (ilsim annotation)", " ".join(str(exc).split()))
        return out

    # --------------------------------------------------------------------------- refusals
    def _refuse_unsupported(self) -> None:
        m = self.m
        for r in _ids(m.getListOfRules()):
            if r.isAlgebraic():
                self.bad("algebraicRule", f"algebraic rules are not supported ({sb.formulaToL3String(r.getMath())} = 0)")
        for r in _ids(m.getListOfReactions()):
            if r.isSetFast() and r.getFast():  # a quasi-steady state: algebraic equations, as algebraic rules
                self.bad(f"reaction '{r.getId()}'", "fast reactions are not supported (their quasi-steady state needs an "
                                                    "algebraic solver; libroadrunner 2.10 refuses them too)")

    def _rate(self, rid: str, r) -> ex.Expr:
        law = r.getKineticLaw()
        if law is None or not law.isSetMath():
            self.note(f"reaction '{rid}'", "has no kinetic law: its rate is 0, as in libroadrunner")
            return ex.Num(0.0)
        return self._math(f"reaction '{rid}' kineticLaw", law.getMath(), self.local[rid])

    def _changed_by_reactions(self, sid: str) -> bool:
        """Reactions change a species unless it is a boundary condition or a rule defines it. A constant species
        is not changed either, except when a reaction lists it without its being a boundary condition: SBML
        forbids that (libsbml error 20611), and libroadrunner then changes it as if it were not constant."""
        s = self.species[sid]
        if s.getBoundaryCondition() or sid in self.assigned or sid in self.rated:
            return False
        if s.getConstant():
            self.note(f"species '{sid}'", "is constant but not a boundary condition, and a reaction changes it "
                                          "(libsbml error 20611): it is changed by its reactions, as in libroadrunner")
        return True

    # ------------------------------------------------------------------------------- names
    def _name(self, sid: str) -> str:
        return self.names.of[sid]

    def _is_constant(self, name: str) -> bool:
        """Whether an ilsim name (of an SBML id or a local parameter) keeps its value through a run."""
        if name in self.local_values:
            return True
        sid = next((k for k, v in self.names.of.items() if v == name), None)
        if sid is None or sid in self.varying or sid in self.reactions:
            return False
        if sid in self.species:
            s = self.species[sid]
            return s.getConstant() and s.getBoundaryCondition()
        return True  # a compartment, parameter or stoichiometry that no rule or event changes

    def _resolve(self, sid: str) -> ex.Expr:
        """The tree an SBML id stands for in math (its reference quantity, for a species)."""
        if sid not in self.names.of:
            raise UnsupportedSbml(f"unknown identifier '{sid}'")
        if sid in self.reactions:
            self.used_reactions.add(sid)
        return ex.Name(self.names.of[sid])

    def _math(self, where: str, node, scope: dict[str, ex.Expr] | None = None, condition: bool = False) -> ex.Expr:
        if node is None:
            self.bad(where, "has no math")
            return ex.Num(0.0)
        try:
            tree = self.converter.convert(node, scope)
        except UnsupportedSbml as exc:
            self.bad(where, str(exc))
            return ex.Num(0.0)
        except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:  # libsbml ASTs ilsim does not foresee
            self.bad(where, f"ilsim cannot convert this math ({type(exc).__name__}: {exc})")
            return ex.Num(0.0)
        return as_condition(tree) if condition else as_value(tree)

    def _finite(self, sid: str, value: float) -> float:
        if not math.isfinite(value):
            self.bad(f"'{sid}'", f"the initial value of '{sid}' is not a finite number ({value})")
            return 0.0
        return float(value)

    def _describe(self, sid: str, what: str) -> str:
        element = self.m.getElementBySId(sid)
        label = element.getName() if element is not None and element.isSetName() else ""
        return f"SBML {sid}" + (f" ({label})" if label and label != sid else "") + f": {what}"

    def _units(self, element) -> str:
        """Units as text: the unit definition's name, or its units written out ('(86400 second)^-1')."""
        if isinstance(element, sb.Species):
            label = read_species_label(element)
            if label is not None and _readable_unit(label) == label:
                return label  # an ilsim export's label, split into substance and compartment units there
            substance = self._unit_text(element.getSubstanceUnits() or self.m.getSubstanceUnits())
            if self._ref_is_amount(element.getId()):
                return substance
            compartment = self.compartments.get(element.getCompartment())
            size = self._unit_text(compartment.getUnits() if compartment is not None else "")
            if size == "dimensionless":
                return substance
            return _readable_unit(f"{substance}/{size}") if substance != "dimensionless" else _readable_unit(f"1/{size}")
        return self._unit_text(element.getUnits() if hasattr(element, "getUnits") else "")

    def _unit_text(self, unit_id: str) -> str:
        """The unit definition's name when ilsim reads it as a unit, else its units written out, else a note."""
        if not unit_id:
            return "dimensionless"
        ud = self.m.getUnitDefinition(unit_id)
        if ud is None:
            return _readable_unit(unit_id)  # a base unit (second, mole, litre, ...)
        written = (sb.UnitDefinition.printUnits(ud, True) or "").replace(")^", ")**").replace(") (", ") * (")
        for label in (ud.getName() if ud.isSetName() else "", written):
            if label and _readable_unit(label) == label:
                return label
        return _readable_unit(ud.getName() or unit_id)

    # ------------------------------------------------------------------------ species kinds
    def _ref_is_amount(self, sid: str) -> bool:
        s = self.species[sid]
        c = self.compartments.get(s.getCompartment())
        return s.getHasOnlySubstanceUnits() or (c is not None and c.getSpatialDimensionsAsDouble() == 0)

    def _state_is_amount(self, sid: str) -> bool:
        """A concentration species held as an amount: its compartment changes size and no rule defines it."""
        s = self.species[sid]
        return (not self._ref_is_amount(sid) and s.getCompartment() in self.varying
                and sid not in self.assigned and sid not in self.rated)

    # ------------------------------------------------------------------------ initial values
    def _initial_values(self, rates: dict[str, ex.Expr], rules: dict[str, ex.Expr]) -> dict[str, float]:
        """Every symbol's value at t = 0 (ilsim name -> number): attributes, initial assignments, rules."""
        defs: dict[str, ex.Expr] = {}
        where: dict[str, str] = {}
        for sid, c in self.compartments.items():
            defs[self._name(sid)] = ex.Num(c.getSize() if c.isSetSize() else 1.0)
        for sid, p in self.parameters.items():
            if p.isSetValue():
                defs[self._name(sid)] = ex.Num(p.getValue())
        for sid, sr in self.sref.items():
            defs[self._name(sid)] = ex.Num(sr.getStoichiometry() if sr.isSetStoichiometry() or sr.getLevel() < 3 else 1.0)
        for sid, s in self.species.items():
            size = ex.Name(self._name(s.getCompartment()))
            if s.isSetInitialConcentration():
                value = ex.Num(s.getInitialConcentration())
                defs[self._name(sid)] = ex.BinOp("*", value, size) if self._ref_is_amount(sid) else value
            elif s.isSetInitialAmount():
                value = ex.Num(s.getInitialAmount())
                defs[self._name(sid)] = value if self._ref_is_amount(sid) else ex.BinOp("/", value, size)
        for rid, tree in rates.items():
            defs[self._name(rid)] = tree
        defs.update({name: ex.Num(v) for name, v in self.local_values.items()})
        for sid, ia in self.initial.items():
            if sid not in self.names.of:
                self.bad(f"initialAssignment '{sid}'", f"unknown symbol '{sid}'")
                continue
            defs[self._name(sid)] = self._math(f"initialAssignment '{sid}'", ia.getMath())
            where[self._name(sid)] = f"initialAssignment '{sid}'"
        for sid, tree in rules.items():
            defs[self._name(sid)] = tree
            where[self._name(sid)] = f"assignmentRule '{sid}'"
        values: dict[str, float] = {ex.TIME: 0.0}
        visiting: list[str] = []

        def value(name: str) -> float:
            if name in values:
                return values[name]
            if name not in defs:
                raise _NoValue(name)
            if name in visiting:
                raise _Cycle(" -> ".join([*visiting[visiting.index(name):], name]))
            visiting.append(name)
            tree = defs[name]
            env = {n: value(n) for n in tree.names()}
            visiting.pop()
            with _quiet():
                values[name] = float(ex.evaluate(tree, env))
            return values[name]

        names = [*defs, *(self._name(s) for s in (*self.parameters, *self.species))]
        while names:
            name = names.pop(0)
            try:
                value(name)
            except _NoValue as missing:
                visiting.clear()
                sid = next((k for k, v in self.names.of.items() if v == missing.name), missing.name)
                if sid in self.species:  # nothing gives it a value: libroadrunner starts it at 0
                    self.note(f"species '{sid}'", "has no initial value (no attribute, initial assignment or rule): "
                                                  "it starts at 0, as in libroadrunner")
                    values[missing.name] = 0.0
                    names.insert(0, name)  # again, now that the species has its value
                    continue
                self.bad(where.get(name, f"'{sid}'"), f"'{sid}' has no initial value (no value attribute, "
                         "initial assignment or assignment rule)")
                values.setdefault(missing.name, math.nan)
            except _Cycle as cycle:
                self.bad(where.get(name, name), f"initial values depend on each other in a cycle: {cycle}")
                return values
        return values

    def _initial_expression(self, sid: str, parameters: list[str]) -> ex.Expr | None:
        """With ``initial_expressions``, a species' initial assignment as a tree when it reads constant parameters
        only (fitting changes those parameters, so the initial state must follow them); None otherwise."""
        if not self.initial_expressions or sid not in self.initial:
            return None
        tree = self._math(f"initialAssignment '{sid}'", self.initial[sid].getMath())
        return tree if tree.names() <= set(parameters) else None

    # ------------------------------------------------------------------------------ reactions
    def _reaction_processes(self, rid: str, rate: ex.Expr) -> list[Process]:
        """One process per group of species whose change scales alike (compartment, conversion factor);
        a species with a stoichiometry that changes in time gets its own process."""
        r = self.reactions[rid]
        flux = ex.Name(self._name(rid)) if rid in self.used_reactions else rate
        groups: dict[tuple, dict[str, float]] = {}
        variable: list[tuple[str, ex.Expr, tuple]] = []
        for sign, refs in ((-1.0, r.getListOfReactants()), (1.0, r.getListOfProducts())):
            for sr in _ids(refs):
                sid = sr.getSpecies()
                s = self.species.get(sid)
                if s is None:
                    self.bad(f"reaction '{rid}'", f"unknown species '{sid}'")
                    continue
                if not self._changed_by_reactions(sid):
                    continue  # SBML: reactions do not change these
                factor = self._factor(sid)
                coefficient = self._stoichiometry(rid, sr)
                target = self.amount_names.get(sid, self._name(sid))
                if isinstance(coefficient, ex.Num):
                    counts = groups.setdefault(factor, {})
                    counts[target] = counts.get(target, 0.0) + sign * coefficient.value
                else:
                    variable.append((target, coefficient if sign > 0 else ex.Neg(coefficient), factor))
        out = []
        label = self._name(rid)
        for factor, counts in groups.items():
            counts = {k: v for k, v in counts.items() if v != 0}
            if not counts:
                continue
            name = label if len(groups) == 1 and not variable else f"{label} ({', '.join(counts)})"
            out.append(Process(name=name, rate=ex.to_text(_scaled(flux, factor)),
                               consumes={k: -v for k, v in counts.items() if v < 0},
                               produces={k: v for k, v in counts.items() if v > 0},
                               description=self._describe(rid, "SBML reaction")))
        for target, coefficient, factor in variable:
            out.append(Process(name=f"{label} ({target})", rate=ex.to_text(ex.BinOp("*", coefficient, _scaled(flux, factor))),
                               produces={target: 1.0}, description=self._describe(rid, "SBML reaction, variable stoichiometry")))
        return out

    def _factor(self, sid: str) -> tuple[str | None, str | None]:
        """(conversion factor, compartment size dividing the rate) for changes of one species."""
        s = self.species[sid]
        factor = s.getConversionFactor() if s.isSetConversionFactor() else (
            self.m.getConversionFactor() if self.m.isSetConversionFactor() else "")
        divide = not self._ref_is_amount(sid) and sid not in self.amount_names
        return (self._name(factor) if factor else None, self._name(s.getCompartment()) if divide else None)

    def _stoichiometry(self, rid: str, sr) -> ex.Expr:
        if sr.isSetStoichiometryMath():
            return self._math(f"reaction '{rid}' stoichiometryMath", sr.getStoichiometryMath().getMath())
        sid = sr.getId() if sr.isSetId() else ""
        if sid and sid in self.varying:
            return ex.Name(self._name(sid))
        if sid and sid in self.initial:
            return ex.Name(self._name(sid))  # a parameter holding its initial assignment's value
        return ex.Num(sr.getStoichiometry() if sr.isSetStoichiometry() or sr.getLevel() < 3 else 1.0)

    # --------------------------------------------------------------------------------- events
    def _priority(self, k: int, ev) -> float:
        """An event's priority as a number (0 without one); one that is not a constant number is refused."""
        if not ev.isSetPriority() or ev.getPriority().getMath() is None:
            return 0.0
        where = f"event '{ev.getId() or f'event_{k}'}' priority"
        tree = self._math(where, ev.getPriority().getMath())
        try:
            value = float(ex.evaluate(tree, {n: self._constant(n) for n in tree.names()}))
        except (KeyError, ValueError, TypeError, ZeroDivisionError):
            value = math.nan
        if not math.isfinite(value):
            self.bad(where, f"a priority must be a constant number (simultaneous events fire in priority order, "
                            f"fixed at import), got {ex.to_text(tree)}")
            return 0.0
        return value

    def _constant(self, name: str) -> float:
        """The value of a parameter that nothing changes (KeyError otherwise)."""
        for sid, ilsim_name in self.names.of.items():
            if ilsim_name == name and sid not in self.varying and self.m.getParameter(sid) is not None:
                return float(self.m.getParameter(sid).getValue())
        raise KeyError(name)

    def _event(self, k: int, ev) -> list[Event]:
        label = ev.getId() or f"event_{k}"
        where = f"event '{label}'"
        trigger = self._math(f"{where} trigger", ev.getTrigger().getMath(), condition=True)
        values: dict[str, ex.Expr] = {}
        for ea in _ids(ev.getListOfEventAssignments()):
            if not ea.isSetMath():
                continue
            target = ea.getVariable()
            if target not in self.names.of or target in self.reactions:
                self.bad(f"{where} eventAssignment '{target}'", f"'{target}' cannot be assigned by an event")
                continue
            if target in self.assigned:
                self.bad(f"{where} eventAssignment '{target}'", f"'{target}' is defined by an assignment rule")
                continue
            values[target] = self._math(f"{where} eventAssignment '{target}'", ea.getMath())
        sets: dict[str, str] = {}
        for target, tree in values.items():
            if target in self.amount_names:  # the value is a concentration, the state an amount (at the old size)
                size = ex.Name(self._name(self.species[target].getCompartment()))
                sets[self.amount_names[target]] = ex.to_text(ex.BinOp("*", tree, size))
            else:
                sets[self._name(target)] = ex.to_text(tree)
        for sid, s in self.species.items():  # a concentration held as a state keeps its amount when its compartment
            compartment = s.getCompartment()  # changes size (an amount set at the old size): diluted or concentrated
            if compartment in values and sid in self.rated and not self._ref_is_amount(sid):
                old, new = ex.Name(self._name(compartment)), values[compartment]
                conc = values.get(sid, ex.Name(self._name(sid)))
                sets[self._name(sid)] = ex.to_text(ex.BinOp("/", ex.BinOp("*", conc, old), new))
        if not sets:
            return []  # an event that assigns nothing changes nothing
        description = self._describe(label, "SBML event") if ev.getId() else "SBML event"
        delayed = self._delay(where, ev)
        at = _fixed_time(trigger)
        if at is not None:
            return [Event(name=label, at=at, set=sets, description=description, **delayed)]
        events = [Event(name=label, when=ex.to_text(trigger), set=sets, description=description, **delayed)]
        initial_value = ev.getTrigger().getInitialValue() if ev.getLevel() >= 3 else True
        if not initial_value:  # a trigger true at the start fires at the start
            events.append(Event(name=f"{label} (at start)", at=0.0, only_if=ex.to_text(trigger), set=sets,
                                description=f"{description}: its trigger holds at t = 0 (initialValue false)",
                                **delayed))
        return events

    def _events_interact(self) -> bool:
        """Whether an event reads (in its trigger or its assignments, directly or through assignment rules; a
        species' concentration through its compartment's size) what another event assigns. Only then can the
        order of simultaneous events matter, and SBML's semantics differ from ilsim's (each event reading the
        state the ones before it left): those events are imported with a delay of 0 (``_delay``)."""
        if len(self.events) < 2:
            return False
        rules = {sid: _names(rule.getMath()) for sid, rule in self.assigned.items()}

        def reads(node) -> set[str]:
            seen, todo = set(), list(_names(node))
            while todo:
                sid = todo.pop()
                if sid in seen:
                    continue
                seen.add(sid)
                todo += rules.get(sid, ())
                if sid in self.species:
                    todo.append(self.species[sid].getCompartment())
            return seen

        writes, read = [], []
        for ev in self.events:
            assignments = [ea for ea in _ids(ev.getListOfEventAssignments()) if ea.isSetMath()]
            writes.append({ea.getVariable() for ea in assignments})
            nodes = [ev.getTrigger().getMath(), *(ea.getMath() for ea in assignments)]
            if ev.isSetDelay() and ev.getDelay().getMath() is not None:
                nodes.append(ev.getDelay().getMath())
            read.append(set().union(*(reads(node) for node in nodes)))
        return any(read[k] & writes[j] for k in range(len(self.events)) for j in range(len(self.events)) if j != k)

    def _delay(self, where: str, ev) -> dict:
        """The delay fields of an ilsim event: the delay (model time units, evaluated at the trigger), whether
        the trigger must still hold when it is due (SBML ``persistent``, Level 3; always so in Level 2) and
        whether the values are those at the trigger (``useValuesFromTriggerTime``).

        An event without a delay gets a delay of 0 where events interact (``_events_interact``): SBML computes
        the values of events that trigger together at the trigger (with ``useValuesFromTriggerTime``), before any
        executes, then executes them in priority order, dropping one that is not persistent once its trigger is
        false. That is what every ilsim engine does with firings pending at one instant: each computed its
        values when it triggered, they apply in the order they triggered (the import's priority order), and a
        firing that is not persistent is dropped when its condition turns false first."""
        if not ev.isSetDelay() or ev.getDelay().getMath() is None:
            if not self.simultaneous:
                return {}
            delay = ex.Num(0.0)
        else:
            delay = self._math(f"{where} delay", ev.getDelay().getMath())
        persistent = ev.getTrigger().getPersistent() if ev.getLevel() >= 3 else True
        at_trigger = ev.getUseValuesFromTriggerTime() if ev.isSetUseValuesFromTriggerTime() else True
        return {"delay": ex.to_text(delay), "persistent": bool(persistent), "values_at_trigger": bool(at_trigger)}

    # ------------------------------------------------------------------------------- metadata
    def _metadata(self) -> Metadata:
        m, doc = self.m, self.doc
        name = m.getId() or m.getName() or "sbml_model"
        return Metadata(name=name, title=m.getName() or name, time_units=self._time_units(),
                        description=f"Imported from SBML Level {doc.getLevel()} Version {doc.getVersion()} ({self.source}).")

    def _time_units(self) -> str:
        m = self.m
        unit_id = m.getTimeUnits() if m.getLevel() >= 3 else "time"
        if not unit_id:
            return "time"  # SBML Level 3 leaves it undeclared
        if unit_id in ("second", "dimensionless"):
            return unit_id
        ud = m.getUnitDefinition(unit_id)
        if ud is None:
            return "second" if unit_id == "time" else unit_id
        if not ud.isVariantOfTime() and not ud.isVariantOfDimensionless():
            # doses, CTCAE durations and every rate in 1/time are read in the model's time units
            self.bad("model timeUnits", f"'{unit_id}' ({sb.UnitDefinition.printUnits(ud, True)}) is not a unit of time; "
                                        "ilsim cannot reconcile it with the time of the simulation")
            return "time"
        if ud.getNumUnits() == 1 and ud.getUnit(0).getKind() == sb.UNIT_KIND_SECOND and ud.getUnit(0).getExponent() == 1:
            u = ud.getUnit(0)
            seconds = u.getMultiplier() * 10 ** u.getScale()
            for size, label in _TIME_UNITS.items():
                if math.isclose(seconds, size, rel_tol=1e-9):
                    return label
        return ud.getName() or unit_id


class _NoValue(Exception):
    def __init__(self, name: str):
        self.name = name


class _Cycle(Exception):
    pass


class _quiet:
    """Arithmetic warnings of NumPy scalars during initial-value evaluation are not the user's business."""

    def __enter__(self):
        self._old = np.seterr(all="ignore")

    def __exit__(self, *exc):
        np.seterr(**self._old)


def _constant(name: str, value: float, description: str) -> Observable:
    """A constant that is not a finite number (INF, NaN): an observable, since ilsim parameters are finite."""
    return Observable(name=name, expression=ex.to_text(ex.Num(value)), description=f"{description} (constant {value})")


def _rename(tree: ex.Expr, names: dict[str, str]) -> ex.Expr:
    if isinstance(tree, ex.Name):
        return ex.Name(names.get(tree.id, tree.id))
    return ex.with_children(tree, [_rename(child, names) for child in ex.children(tree)])


def _scaled(flux: ex.Expr, factor: tuple[str | None, str | None]) -> ex.Expr:
    conversion, size = factor
    out = flux if conversion is None else ex.BinOp("*", flux, ex.Name(conversion))
    return out if size is None else _divide(out, ex.Name(size))


def _divide(tree: ex.Expr, size: ex.Name) -> ex.Expr:
    """tree / size, cancelling a factor 'size' of a product (kinetic laws are often 'compartment * k * S')."""
    factors: list[ex.Expr] = []
    node = tree
    while isinstance(node, ex.BinOp) and node.op == "*":
        factors.append(node.right)
        node = node.left
    factors.append(node)
    factors.reverse()
    if size in factors:
        factors.remove(size)
        if not factors:
            return ex.Num(1.0)
        out = factors[0]
        for f in factors[1:]:
            out = ex.BinOp("*", out, f)
        return out
    return ex.BinOp("/", tree, size)


def _fixed_time(trigger: ex.Expr) -> float | None:
    """c for a trigger 'time >= c' (or 'c <= time') with c > 0: it becomes true once, at c. A strict 'time > c'
    is false at c and fires just after it: it stays a condition, so an output at c shows the state before it."""
    if not isinstance(trigger, ex.Compare):
        return None
    t = ex.Name(ex.TIME)
    if trigger.op == ">=" and trigger.left == t and isinstance(trigger.right, ex.Num):
        c = trigger.right.value
    elif trigger.op == "<=" and trigger.right == t and isinstance(trigger.left, ex.Num):
        c = trigger.left.value
    else:
        return None
    return c if c > 0 and math.isfinite(c) else None


def import_document(doc, source: str, initial_expressions: bool = False) -> SbmlModel:
    """Map a checked libsbml document (see ``document.read_document``) to an ilsim model; ``initial_expressions``
    keeps initial assignments that read parameters only as expressions rather than their values."""
    try:
        return _Importer(doc, source, initial_expressions).run()
    except ValidationError as exc:  # a schema object built elsewhere than per element: name its kind and field
        raise ModelError([Problem(f"SBML import ({exc.title}{'.' + p.field if p.field else ''})", p.message, source)
                          for p in problems_from_validation(exc, None)]) from None


def _readable_unit(label: str) -> str:
    """A label ilsim's unit parser reads (model/units.py); one it cannot read is kept as a note of '1'."""
    try:
        units.check(label)
        return label
    except ValueError:
        return "1 (SBML unit " + label.replace("(", "[").replace(")", "]") + ")"
