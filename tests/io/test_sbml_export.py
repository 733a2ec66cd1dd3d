"""SBML export: every built-in model exports without libsbml errors and runs the same in libroadrunner."""

from __future__ import annotations

import warnings

import libsbml
import numpy as np
import pytest

import ilsim
from ilsim.io import sbml
from ilsim.model import expressions as ex
from ilsim.model.units import UnitWarning

RTOL, ATOL = 1e-10, 1e-12
MATCH = 1e-4  # max |ilsim - roadrunner| as a fraction of each species' range over the run
FLOOR = 1e-9  # absolute floor, for species that hardly move (range ~ 0)


def _roadrunner():
    rr = pytest.importorskip("roadrunner", reason="libroadrunner (a test-only dependency) is not installed")
    rr.Logger.setLevel(rr.Logger.LOG_ERROR)
    return rr


def _compare(model, t_end: float, points: int = 201) -> dict[str, float]:
    """Run a model in ilsim and its SBML export in libroadrunner; per species, the difference / its allowance."""
    rr = _roadrunner()
    compiled = ilsim.compile(model)
    text, _ = sbml.to_string(compiled)
    t = np.linspace(0.0, t_end, points)
    ds = ilsim.simulate(compiled, t_eval=t, rtol=RTOL, atol=ATOL)
    runner = rr.RoadRunner(text)
    runner.integrator.relative_tolerance = RTOL
    runner.integrator.absolute_tolerance = ATOL
    runner.integrator.setValue("maximum_num_steps", 200_000)
    runner.timeCourseSelections = ["time", *compiled.species]
    res = np.asarray(runner.simulate(times=t))
    np.testing.assert_allclose(res[:, 0], t)
    worst = {}
    for i, name in enumerate(compiled.species):
        ours, theirs = ds[name].values, res[:, i + 1]
        span = float(np.ptp(ours))
        diff = float(np.max(np.abs(ours - theirs)))
        assert diff <= MATCH * span + FLOOR, (
            f"{name}: max |ilsim - roadrunner| = {diff:.3g}, range {span:.3g} (allowed {MATCH * span + FLOOR:.3g})")
        worst[name] = diff / (MATCH * span + FLOOR)  # below 1: within the allowance
    return worst


@pytest.mark.parametrize("name", ilsim.builtin_models())
def test_builtin_exports_without_errors(name):
    doc = sbml.to_document(ilsim.compile(name))
    errors, _ = sbml.validate(doc)
    assert errors == []
    assert (doc.getLevel(), doc.getVersion()) == (3, 2)
    m = doc.getModel()
    compiled = ilsim.compile(name)
    # a state in units SBML does not allow a species (a volume) is a parameter changed by a rate rule
    ruled = {m.getRule(i).getVariable() for i in range(m.getNumRules()) if m.getRule(i).isRate()}
    assert {m.getSpecies(i).getId() for i in range(m.getNumSpecies())} | ruled == set(compiled.species)
    assert all(m.getParameter(name).getUnits() for name in ruled)
    changed = [set(p.consumes) | set(p.produces) for p in compiled.spec.processes]
    assert m.getNumReactions() == sum(1 for names in changed if names - ruled)
    assert m.getNumEvents() == sum(len(e.times) + (e.condition is not None) for e in compiled.events)
    for s in (m.getSpecies(i) for i in range(m.getNumSpecies())):
        assert not s.getConstant() and not s.getBoundaryCondition()
        c = m.getCompartment(s.getCompartment())  # amounts and concentrations: the same numbers, size 1
        assert c.getConstant() and c.getSize() == 1.0
        units = c.getUnits() if s.getHasOnlySubstanceUnits() else m.getUnitDefinition(c.getUnits()).getName()
        assert units == ("dimensionless" if s.getHasOnlySubstanceUnits() else "L")


@pytest.mark.parametrize("name", ilsim.builtin_models())
def test_builtin_runs_the_same_in_roadrunner(name):
    t_end = float(ilsim.compile(name).spec.simulation.t_end)
    worst = _compare(name, t_end)
    assert max(worst.values()) <= 1.0


MODEL = """
metadata: {name: sbml-events, title: events of every kind}
species:
  - {name: X, units: cells, initial: "2*x0"}
  - {name: Y, units: cells, initial: 0}
parameters:
  - {name: x0, value: 0.5}
  - {name: k, value: 0.4, units: 1/day}
  - {name: given, value: 0}
processes:
  - {name: decay, rate: "k*X", consumes: {X: 1}}
  - {name: "X -> Y", rate: "hill(X, 0.5, 2)", produces: {Y: 1}}
  - {name: clearance, rate: "0.2*Y", consumes: {Y: 1}}
observables:
  - {name: total, expression: "X + Y"}
  - {name: high, expression: "piecewise(1, total > 1.5, 0)"}
events:
  - {name: start dose, at: 0, add: {X: 0.5}}
  - {name: refill, when: "X < 0.3", set: {X: 1}, add: {given: 1}}
  - {name: switch, at: 4, set: {k: 0.8}}
  - {name: withheld, at: [3, 6], only_if: "total > 100", add: {Y: 10}}
  - {name: given once, at: [5, 7], only_if: "given >= 1", add: {Y: 0.25}}
  - {name: doubled after, at: 5, set: {Y: "2*Y"}}
simulation: {t_end: 12}
"""


def test_events_guards_and_conditions_run_the_same(tmp_path):
    path = tmp_path / "events.yaml"
    path.write_text(MODEL)
    compiled = ilsim.compile(path)
    ds = ilsim.simulate(compiled, t_eval=np.linspace(0, 12, 121), rtol=RTOL, atol=ATOL)
    assert ds["X"].values[0] == pytest.approx(1.5)  # the t = 0 event fired at the start
    _compare(path, 12.0, 121)


def test_every_function_converts():
    for name, (lo, _) in ex.FUNCTIONS.items():
        n = lo + (1 if name == "piecewise" and lo % 2 == 0 else 0)
        args = tuple(ex.Name(f"a{i}") for i in range(n))
        if name == "piecewise":
            args = (args[0], ex.Compare("<", args[1], ex.Num(1.0)), args[2])
        ast = sbml.to_ast(ex.Call(name, args))
        assert ast.isWellFormedASTNode(), name
        assert libsbml.formulaToL3String(ast)


def test_cli_writes_the_file(cli, tmp_path):
    target = tmp_path / "r.xml"
    result = cli("export-sbml", "reynolds-2006", "-o", target)
    assert result.exit_code == 0, result.output
    doc = libsbml.readSBMLFromFile(str(target))
    assert doc.getNumErrors(libsbml.LIBSBML_SEV_ERROR) == 0
    assert doc.getModel().getNumSpecies() == 4
    assert [p.name for p in tmp_path.iterdir()] == ["r.xml"]  # no temporary file left behind


def test_cli_set_overrides_a_parameter(cli, tmp_path):
    target = tmp_path / "kp.xml"
    assert cli("export-sbml", "kirschner-panetta-1998", "-o", target, "--set", "c=0.035").exit_code == 0
    assert libsbml.readSBMLFromFile(str(target)).getModel().getParameter("c").getValue() == 0.035


def test_cli_missing_model_writes_nothing(cli, refused, tmp_path):
    target = tmp_path / "x.xml"
    refused(cli("export-sbml", "no-such-model", "-o", target), "no such file or built-in model")
    assert not target.exists()
    refused(cli("export-sbml", "reynolds-2006", "-o", tmp_path / "missing" / "r.xml"), "does not exist")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ round trip

UNDECLARED = {20513, 20616, 20702, 80701, 99506, 99508}  # libsbml: units of an element or of time not declared


@pytest.mark.parametrize("name", ilsim.builtin_models())
def test_every_unit_and_the_time_unit_are_declared(name):
    doc = sbml.to_document(ilsim.compile(name))
    doc.checkConsistency()
    undeclared = [doc.getError(i) for i in range(doc.getNumErrors()) if doc.getError(i).getErrorId() in UNDECLARED]
    assert undeclared == [], [" ".join(e.getMessage().split())[:120] for e in undeclared[:3]]
    assert doc.getModel().isSetTimeUnits()


@pytest.mark.parametrize("label, scale, terms", [
    ("1e6 cells/cc", 1e12, {"item": 1.0, "metre": -3.0}),  # 1e6 per cm^3 = 1e6 / 1e-6 m^3
    ("pg/mL", 1e-9, {"kilogram": 1.0, "metre": -3.0}),  # 1e-15 kg / 1e-6 m^3
    ("1/day", 1 / 86400, {"second": -1.0}),
    ("nM", 1e-6, {"mole": 1.0, "metre": -3.0}),  # 1e-9 mol / 1e-3 m^3
])
def test_unit_definitions_are_the_labels_in_base_units(label, scale, terms):
    from ilsim.io.sbml_units import UnitDefinitions

    doc = libsbml.SBMLDocument(3, 2)
    m = doc.createModel()
    ud = m.getUnitDefinition(UnitDefinitions(m, lambda text: "u").id_of(label))
    assert ud.getName() == label
    units = {libsbml.UnitKind_toString(ud.getUnit(i).getKind()): ud.getUnit(i) for i in range(ud.getNumUnits())}
    assert {k: u.getExponentAsDouble() for k, u in units.items()} == terms
    value = np.prod([(u.getMultiplier() * 10.0 ** u.getScale()) ** u.getExponentAsDouble() for u in units.values()])
    assert value == pytest.approx(scale, rel=1e-12)


@pytest.mark.parametrize("name", ilsim.builtin_models())
def test_import_of_the_export_has_the_same_units_outcomes_and_numbers(tmp_path, name):
    from ilsim.io.sbml_import import read_sbml

    original = ilsim.compile(name)
    path = tmp_path / f"{name}.xml"
    sbml.write(original, path)
    back = read_sbml(path)
    with warnings.catch_warnings(record=True) as caught:  # ilsim's unit check finds the import as consistent
        warnings.simplefilter("always")
        ilsim.compile(back)
    assert [str(w.message) for w in caught if issubclass(w.category, UnitWarning)] == []
    spec = original.spec
    assert back.metadata.time_units == spec.metadata.time_units
    assert {s.name: s.units for s in back.species} == {s.name: s.units for s in spec.species}
    parameters = {p.name: p.units for p in back.parameters}
    # the export's compartments (of size 1) and conversion factors (of value 1) come back as parameters
    m = libsbml.readSBMLFromFile(str(path)).getModel()
    added = {m.getCompartment(i).getId() for i in range(m.getNumCompartments())}
    added |= {m.getSpecies(i).getConversionFactor() for i in range(m.getNumSpecies())} - {""}
    values = {p.name: p.value for p in back.parameters}
    assert added >= {"compartment"} and all(values[name] == 1.0 for name in added)
    assert {name: parameters.pop(name) for name in added}["compartment"] == "dimensionless"
    assert parameters == {p.name: p.units for p in spec.parameters}
    # observables and derived quantities (computed from parameters) are both assignment rules
    assert {o.name: o.units for o in back.observables} == {o.name: o.units for o in [*spec.observables, *spec.derived]}
    assert [(o.label, o.held_for) for o in back.outcomes] == [(o.label, o.held_for) for o in spec.outcomes]
    t_end = 100.0
    ours = ilsim.simulate(original, t_end=t_end, points=101, rtol=1e-10, atol=1e-12)
    again = ilsim.simulate(back, t_end=t_end, points=101, rtol=1e-10, atol=1e-12)
    assert again.attrs["outcome"] == ours.attrs["outcome"]
    for s in spec.species:
        assert again[s.name].attrs["units"] == s.units
        np.testing.assert_allclose(again[s.name].values, ours[s.name].values, rtol=1e-6,
                                   atol=1e-8 * max(1.0, float(np.abs(ours[s.name].values).max())))


def test_results_offer_amounts_and_concentrations_named_as_such(tmp_path):
    """A hasOnlySubstanceUnits species in a compartment of 2 litres: results hold its amount as 'X' (mole) and
    its concentration as 'X_concentration' (mole/litre), which libroadrunner reports as [X]."""
    antimony = pytest.importorskip("antimony", reason="antimony (a test-only dependency) is not installed")
    antimony.clearPreviousLoads()
    assert antimony.loadAntimonyString("""model two_litres
        compartment C = 2; C has litre
        substanceOnly species X in C = 6; X has mole
        species Y in C = 1; Y has mole_per_litre
        J0: X -> Y; k*X
        k = 0.5
        unit mole_per_litre = mole / litre
    end""") >= 0, antimony.getLastError()
    path = tmp_path / "two_litres.xml"
    path.write_text(antimony.getSBMLString("two_litres"))
    t = np.linspace(0.0, 4.0, 9)
    ds = ilsim.simulate(ilsim.load(path), t_eval=t, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ds["X"].values, 6 * np.exp(-0.5 * t), rtol=1e-8)
    np.testing.assert_allclose(ds["X_concentration"].values, 3 * np.exp(-0.5 * t), rtol=1e-8)
    # Y is a concentration species: 1 mol/L plus what X lost, per 2 litres; its amount is twice that
    np.testing.assert_allclose(ds["Y"].values, 1 + 3 * (1 - np.exp(-0.5 * t)), rtol=1e-8)
    np.testing.assert_allclose(ds["Y_amount"].values, 2 + 6 * (1 - np.exp(-0.5 * t)), rtol=1e-8)
    assert ds["X"].attrs["units"] == "mole" and ds["X_concentration"].attrs["units"] == "mole/litre"
    assert ds["Y_amount"].attrs["units"] == "mole"
    rr = _roadrunner().RoadRunner(str(path))
    rr.integrator.relative_tolerance, rr.integrator.absolute_tolerance = 1e-10, 1e-12
    rr.timeCourseSelections = ["[X]", "X", "[Y]", "Y"]
    res = np.asarray(rr.simulate(times=t))
    for k, name in enumerate(["X_concentration", "X", "Y", "Y_amount"]):
        np.testing.assert_allclose(ds[name].values, res[:, k], rtol=1e-7)


def test_the_extent_units_are_the_species_unit_of_substance():
    """SBML's extent (what a kinetic law is per time) is the species' most common unit of substance; in a model whose
    species are all concentrations, that of a concentration per litre (their compartment's unit)."""
    m = sbml.to_document(ilsim.compile("alexander-wahl-2010")).getModel()  # 3 species in cells, 1 in antigen units
    assert m.getUnitDefinition(m.getExtentUnits()).getName() == "cells"
    assert m.getSubstanceUnits() == m.getExtentUnits()
    model = ilsim.Model(name="conc").add_species("x", 1.0, units="pg/mL").add_process("out", "x", consumes={"x": 1})
    m = sbml.to_document(ilsim.compile(model)).getModel()
    assert m.getExtentUnits() == m.getSpecies("x").getSubstanceUnits()
    assert not m.getSpecies("x").getHasOnlySubstanceUnits()
    assert m.getUnitDefinition(m.getCompartment(m.getSpecies("x").getCompartment()).getUnits()).getName() == "L"
    extent = libsbml.UnitDefinition.convertToSI(m.getUnitDefinition(m.getExtentUnits()))
    assert extent.getNumUnits() == 1 and libsbml.UnitKind_toString(extent.getUnit(0).getKind()) == "kilogram"
    assert extent.getUnit(0).getMultiplier() * 10.0 ** extent.getUnit(0).getScale() == pytest.approx(1e-12)  # pg/mL x L


@pytest.mark.parametrize("name", ilsim.builtin_models())
def test_libsbml_unit_check_reports_nothing_on_every_builtin_scenario(name):
    """libsbml's consistency check with its unit checks on (the oracle) reports nothing at all on the export of every
    built-in scenario: each literal number carries units, every expression balances (issue 13)."""
    doc = sbml.to_document(ilsim.compile(name))
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, True)
    doc.checkConsistency()
    assert [f"{doc.getError(i).getErrorId()}: {' '.join(doc.getError(i).getMessage().split())[-200:]}"
            for i in range(doc.getNumErrors())] == []


# ----------------------------------------------------------------------------- units of literal numbers

def _literals(tree) -> dict[float, object]:
    from ilsim.io.sbml_math_units import Literal

    found = {tree.value: tree.unit} if isinstance(tree, Literal) else {}
    for child in ex.children(tree):
        found.update(_literals(child))
    return found


def test_literal_numbers_get_the_units_their_context_needs():
    """Units worked out by hand: in an hourly rate of Y (cells), the 0.2 of 0.2*Y is per hour, the 24 of
    Y/(24*lifespan) with the lifespan in days is hour/day (a scale of 1/24), an exponent is dimensionless and a
    number compared with Y or added to it is in cells."""
    from ilsim.io.sbml_math_units import ONE, Unit, with_units

    hour, day, cells = Unit.make(3600, [("second", 1)]), Unit.make(86400, [("second", 1)]), Unit.make(1, [("item", 1)])
    names = {"Y": cells, "lifespan": day, "k": hour ** -1.0}
    rate = "0.2*Y + Y/(24*lifespan) + k*Y**3/(5 + Y)**2 + piecewise(k*Y, Y > 100, 0)"
    found = _literals(with_units(ex.parse(rate), names, cells / hour))
    assert found[0.2].same(hour ** -1.0)
    assert found[24.0].same(Unit(1 / 24, ()))
    assert found[3.0].same(ONE) and found[2.0].same(ONE)
    assert found[5.0].same(cells) and found[100.0].same(cells)
    assert found[0.0].same(cells / hour)  # the other branch of the piecewise


MIXED = """
metadata: {name: mixed-units, time_units: hour}
species:
  - {name: T, units: cells, initial: 100}
  - {name: IL6, units: pg/mL, initial: 5}
  - {name: plasma, units: L, initial: 3}
  - {name: P, units: "1e9 cells/L", initial: "2*P0"}
parameters:
  - {name: P0, value: 1.5, units: "1e9 cells/L"}
  - {name: k, value: 0.1, units: 1/day}
  - {name: s, value: 2, units: pg/mL per hour per cells}
  - {name: leak, value: 0.05, units: 1/hour}
processes:
  - {name: T death, rate: "k*T/24", consumes: {T: 1}}
  - {name: IL6 secretion, rate: "s*T", produces: {IL6: 1}}
  - {name: IL6 clearance, rate: "0.3*IL6", consumes: {IL6: 1}}
  - {name: leak, rate: "leak*max(0, plasma - 2.5)", consumes: {plasma: 1}}
  - {name: P turnover, rate: "0.01*(P0 - P)", produces: {P: 1}}
observables:
  - {name: fever, expression: "37 + 2*hill(IL6, 50, 2)", units: degC}
events:
  - {name: dose, at: 2, add: {IL6: 20, plasma: 0.5}}
simulation: {t_end: 24}
"""


def test_a_model_mixing_amounts_concentrations_and_a_volume_passes_the_unit_check_and_runs_the_same(tmp_path):
    """The oracles: libsbml's unit check reports nothing, and libroadrunner runs the export as ilsim runs the model;
    a model whose own names do not balance (cells + pg/mL) is reported, so the check is not blind."""
    path = tmp_path / "mixed.yaml"
    path.write_text(MIXED)
    doc = sbml.to_document(ilsim.compile(path))
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, True)
    doc.checkConsistency()
    assert [" ".join(doc.getError(i).getMessage().split())[-200:] for i in range(doc.getNumErrors())] == []
    m = doc.getModel()
    assert m.getSpecies("T").getHasOnlySubstanceUnits() and not m.getSpecies("IL6").getHasOnlySubstanceUnits()
    assert m.getSpecies("plasma") is None and m.getRule("plasma").isRate()
    _compare(path, 24.0, 97)
    path.write_text(MIXED.replace('"37 + 2*hill(IL6, 50, 2)", units: degC', '"T + IL6"'))
    with pytest.warns(UnitWarning, match="adds or subtracts different units"):  # ilsim's own check agrees
        compiled = ilsim.compile(path)
    doc = sbml.to_document(compiled)
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, True)
    doc.checkConsistency()
    assert {doc.getError(i).getErrorId() for i in range(doc.getNumErrors())} & {10501, 10513}
