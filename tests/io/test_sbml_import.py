"""SBML import: semantics (amounts, concentrations, rules, events), refusals, bad files, the CLI, and
published immune models from BioModels run the same as in libroadrunner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ilsim
from ilsim.errors import ModelError
from ilsim.io import sbml
from ilsim.io.sbml_import import import_sbml, read_sbml
from ilsim.io.sbml_import.suite import read_back
from ilsim.model.compile import compile_model

RTOL, ATOL = 1e-10, 1e-12


def _sbml(tmp_path, antimony_text: str, name: str = "model.xml") -> Path:
    antimony = pytest.importorskip("antimony", reason="antimony (a test-only dependency) is not installed")
    antimony.clearPreviousLoads()
    assert antimony.loadAntimonyString(antimony_text) >= 0, antimony.getLastError()
    path = tmp_path / name
    path.write_text(antimony.getSBMLString(antimony.getMainModuleName()))
    return path


def _run(path, sbml_ids, t, kind="amount"):
    model = import_sbml(path)
    compiled = compile_model(model.spec)
    traj = ilsim.OdeEngine("LSODA", RTOL, ATOL).run(compiled, np.asarray(t, float), compiled.p0)
    trees = [getattr(model.quantities[s], kind) or model.quantities[s].value for s in sbml_ids]
    return read_back(compiled, traj, trees)


# ------------------------------------------------------------------------------------- semantics


def test_concentration_species_in_a_compartment_of_size_2(tmp_path):
    # S is a concentration (3 mM in 2 L: 6 mmol); the reaction's rate is an amount per time, so
    # d[S]/dt = -k*[S]*C/C: [S] = 3 exp(-k t) and the amount is twice that.
    path = _sbml(tmp_path, "compartment C = 2; species S in C = 3; J0: S -> ; k*S*C; k = 0.5")
    t = np.linspace(0, 4, 9)
    conc, amount = _run(path, ["S", "S"], t, "concentration").T[0], _run(path, ["S"], t)[:, 0]
    np.testing.assert_allclose(conc, 3 * np.exp(-0.5 * t), rtol=1e-8)
    np.testing.assert_allclose(amount, 6 * np.exp(-0.5 * t), rtol=1e-8)


def test_a_growing_compartment_dilutes_its_species(tmp_path):
    # V' = 1 from V = 1 with no reactions: the amount stays 2, the concentration is 2 / (1 + t).
    path = _sbml(tmp_path, "compartment V = 1; V' = 1; species S in V = 2")
    t = np.linspace(0, 3, 7)
    np.testing.assert_allclose(_run(path, ["S"], t)[:, 0], 2.0, rtol=1e-10)
    np.testing.assert_allclose(_run(path, ["S"], t, "concentration")[:, 0], 2 / (1 + t), rtol=1e-8)


def test_rules_functions_local_parameters_and_initial_assignments(tmp_path):
    import libsbml

    path = _sbml(tmp_path, """
        function double(x)
          2*x
        end
        model m
          species A = 0; species B = 0
          J0: -> A; k
          k = 100
          B' = double(half)
          half := 0.5
          A0 = 7
          A = A0 / 7                        # an initial assignment
        end""")
    doc = libsbml.readSBMLFromString(path.read_text())
    local = doc.getModel().getReaction("J0").getKineticLaw().createLocalParameter()
    local.setId("k")  # shadows the global k inside J0's kinetic law
    local.setValue(0.25)
    libsbml.writeSBMLToFile(doc, str(path))
    model = import_sbml(path)
    assert "J0_k" in [p.name for p in model.spec.parameters]
    values = _run(path, ["A", "B", "half"], [0.0, 2.0])
    np.testing.assert_allclose(values[-1], [1 + 0.25 * 2, 2.0, 0.5], rtol=1e-9)


def test_events_initial_value_false_fires_at_the_start(tmp_path):
    path = _sbml(tmp_path, """
        species X = 1; X' = -X
        E1: at X < 10, t0=false: X = 5     # true at t = 0 and initialValue false: fires at the start
        E2: at (X < 0.5): X = 2""")
    values = _run(path, ["X"], [0.0, np.log(10.0), np.log(10.0) + 0.1])[:, 0]
    assert values[0] == pytest.approx(5.0)
    assert values[2] == pytest.approx(2 * np.exp(-0.1), rel=1e-6)  # E2 fired at X = 0.5, t = ln 10


def test_only_events_that_read_what_others_assign_are_imported_with_a_delay_of_0(tmp_path):
    """SBML's simultaneous events (values at the trigger, priority order, persistence) are ilsim's firings pending
    at one instant: a delay of 0. Events that cannot see each other's jumps keep ilsim's plain events."""
    apart = import_sbml(_sbml(tmp_path, "species a = 1, b = 2\nA: at (time >= 2): a = 5\nB: at (time >= 2): b = 7", "apart.xml"))
    assert [e.delay for e in apart.spec.events] == [None, None]
    path = _sbml(tmp_path, "species a = 1, b = 2\nA: at (time >= 2), priority = 2: a = b\n"
                           "B: at (time >= 2), priority = 1, persistent = false, fromTrigger = false: b = a", "swap.xml")
    swap = import_sbml(path)
    assert [(e.name, e.delay, e.persistent, e.values_at_trigger) for e in swap.spec.events] == [
        ("A", "0", True, True), ("B", "0", False, False)]
    values = _run(path, ["a", "b"], [0.0, 3.0])
    assert values[-1].tolist() == [2.0, 2.0]  # B reads a when it applies, after A: both 2


def test_reserved_and_clashing_ids_are_renamed_and_kept_in_the_description(tmp_path):
    path = _sbml(tmp_path, "species QQlambda = 1; species QQe = 2; J0: QQlambda -> QQe; QQexp*QQlambda; QQexp = 0.3")
    path.write_text(path.read_text().replace("QQ", ""))  # ids Antimony itself would not accept
    model = import_sbml(path)
    assert model.renamed == {"lambda": "lambda_", "e": "e_", "exp": "exp_"}
    described = {s.name: s.description for s in model.spec.species}
    assert described["lambda_"].startswith("SBML lambda")
    values = _run(path, ["lambda", "e"], [0.0, 1.0])
    np.testing.assert_allclose(values[-1], [np.exp(-0.3), 2 + 1 - np.exp(-0.3)], rtol=1e-8)


def test_export_then_import_runs_the_same(tmp_path):
    # ilsim -> SBML -> ilsim: every built-in feature of the exporter (events, guards, observables) survives
    compiled = ilsim.compile("reynolds-2006")
    path = tmp_path / "reynolds.xml"
    sbml.write(compiled, path)
    t = np.linspace(0, 50, 51)
    original = ilsim.simulate(compiled, t_eval=t, rtol=RTOL, atol=ATOL)
    again = _run(path, list(compiled.species), t)
    for k, name in enumerate(compiled.species):
        np.testing.assert_allclose(again[:, k], original[name].values, rtol=1e-6, atol=1e-9)


def test_load_reads_sbml(tmp_path):
    path = _sbml(tmp_path, "species X = 1; X' = -X")
    spec = ilsim.load(path)
    assert isinstance(spec, ilsim.Model) and [s.name for s in spec.species] == ["X"]
    ds = ilsim.simulate(path, t_end=1.0, points=3)
    assert ds["X"].values[-1] == pytest.approx(np.exp(-1), rel=1e-4)


# ------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("text, element, words", [
    ("species X = 1; E1: at (time > 1), priority = X: X = 3", "event 'E1' priority", "constant number"),
    ("species X = 1; species Y = 1; 0 = X + Y - 2", "algebraicRule", "algebraic rules"),
    ("species X = 1; X' = delay(X, 1)", "rateRule 'X'", "a csymbol delay of a quantity that changes in the run (X)"),
    ("species X = 1; k = 1; E1: at X > 2: k = 2; X' = delay(k, 1)", "rateRule 'X'", "changes in the run (k)"),
])
def test_unsupported_constructs_are_refused_by_name(tmp_path, text, element, words):
    with pytest.raises(ModelError) as info:
        read_sbml(_sbml(tmp_path, text))
    assert element in str(info.value) and words in str(info.value)


def _fast(tmp_path, level: int, version: int) -> Path:
    import libsbml

    doc = libsbml.readSBMLFromString(_sbml(tmp_path, "species X = 1; J0: X -> ; X").read_text())
    doc.setLevelAndVersion(level, version, False)
    doc.getModel().getReaction("J0").setFast(True)
    path = tmp_path / f"fast_{level}_{version}.xml"
    libsbml.writeSBMLToFile(doc, str(path))
    return path


@pytest.mark.parametrize("level, version", [(3, 1), (2, 4)])
def test_fast_reactions_are_refused_as_libroadrunner_refuses_them(tmp_path, level, version):
    path = _fast(tmp_path, level, version)
    with pytest.raises(ModelError, match="reaction 'J0': fast reactions are not supported"):
        read_sbml(path)
    roadrunner = pytest.importorskip("roadrunner", reason="libroadrunner (a test-only dependency) is not installed")
    with pytest.raises(RuntimeError, match="fast"):  # the reference tool: docs/sbml.md states it
        roadrunner.RoadRunner(str(path))


# ------------------------------------------------------------- read as libroadrunner reads them


def _agrees_with_roadrunner(path, t_end=10.0):
    pytest.importorskip("roadrunner", reason="libroadrunner (a test-only dependency) is not installed")
    from ilsim.io.sbml_import.crosscheck import compare_with_roadrunner

    name, ratio = compare_with_roadrunner(path, t_end=t_end, points=21).worst
    assert ratio <= 1e-6, f"{name} differs from libroadrunner by {ratio:.3g} of its range"


def _edited(tmp_path, antimony_text: str, edit, name: str) -> Path:
    """An Antimony model as SBML, changed by ``edit(libsbml model)`` into what Antimony cannot write."""
    import libsbml

    doc = libsbml.readSBMLFromString(_sbml(tmp_path, antimony_text).read_text())
    edit(doc.getModel())
    path = tmp_path / name
    libsbml.writeSBMLToFile(doc, str(path))
    return path


def test_a_reaction_without_a_kinetic_law_runs_at_rate_0_with_a_warning(tmp_path):
    path = _edited(tmp_path, "J0: A -> B; k*A; J1: B -> C; 1; A = 10; B = 0; C = 0; k = 0.3",
                   lambda m: m.getReaction("J1").unsetKineticLaw(), "no_law.xml")
    with pytest.warns(UserWarning, match="reaction 'J1': has no kinetic law: its rate is 0"):
        model = import_sbml(path)
    assert model.notes == ["reaction 'J1': has no kinetic law: its rate is 0, as in libroadrunner"]
    t = np.linspace(0, 10, 11)
    a, b, c = _run(path, ["A", "B", "C"], t).T
    np.testing.assert_allclose(a, 10 * np.exp(-0.3 * t), rtol=1e-8)
    np.testing.assert_allclose(b, 10 - a, rtol=1e-8)
    assert np.all(c == 0.0)
    _agrees_with_roadrunner(path)


def test_a_constant_species_a_reaction_changes_is_changed_as_libroadrunner_does(tmp_path):
    """libsbml error 20611 (constant, not a boundary condition, yet a reactant): libroadrunner runs the
    reaction on it as if it were not constant, and so does the importer, with a note."""
    path = _edited(tmp_path, "J0: A -> B; k*A; A = 10; B = 0; k = 0.3", lambda m: m.getSpecies("A").setConstant(True),
                   "constant_reactant.xml")
    with pytest.warns(UserWarning, match="species 'A': is constant but not a boundary condition"):
        import_sbml(path)
    t = np.linspace(0, 10, 11)
    np.testing.assert_allclose(_run(path, ["A"], t)[:, 0], 10 * np.exp(-0.3 * t), rtol=1e-8)
    _agrees_with_roadrunner(path)


@pytest.mark.parametrize("text, unset", [
    # no initialConcentration: an initial assignment gives it, from a parameter
    ("compartment C = 2; species A in C, B in C; J0: A -> B; k*A*C; A = 2*k0; B = 0; k = 0.3; k0 = 5", "A"),
    # from an assignment rule of a parameter, for two species
    ("compartment C = 2; species A in C, B in C; J0: A -> B; k*A*C; A = B0*3; B = B0; B0 := k*4; k = 0.3", "B"),
    # a species defined by an assignment rule, with no initial value of its own
    ("compartment C = 2; species A in C, B in C, D in C; J0: A -> B; k*A*C; A = 10; B = 0; k = 0.3; D := A + 2*B", "D"),
    # in a compartment that grows, whose own size comes from an initial assignment
    ("compartment C; C' = 0.1; species A in C, B in C; J0: A -> B; k*A*C; A = 2*k0; B = 0; k = 0.3; k0 = 5; C = k0/2", "A"),
])
def test_species_without_an_initial_value_take_it_from_assignments_and_rules(tmp_path, text, unset):
    path = _sbml(tmp_path, text)
    assert "initial" not in path.read_text().split(f'<species id="{unset}"')[1].split("/>")[0]
    _agrees_with_roadrunner(path)


def test_a_delay_of_an_expression_of_time_is_read_with_its_history(tmp_path):
    # X' = 2 sin(t - 1.5) from t = 1.5 on, and 2 sin(0) = 0 before: X = 2 (1 - cos(t - 1.5)) after 1.5.
    # (libroadrunner refuses every csymbol delay, so the oracle is the closed form.)
    path = _sbml(tmp_path, "species X = 0; X' = delay(sin(time)*k, tau); k = 2; tau = 1.5")
    t = np.linspace(0, 6, 13)
    expected = 2 * (1 - np.cos(np.maximum(t - 1.5, 0)))
    np.testing.assert_allclose(_run(path, ["X"], t)[:, 0], expected, rtol=1e-7, atol=1e-9)


# ------------------------------------------------------------------------------------ bad files


@pytest.mark.parametrize("content, message", [
    ("this is not xml", "not valid XML"),
    ('<?xml version="1.0"?>\n<html><body/></html>\n', "not SBML"),
])
def test_not_xml_or_not_sbml(tmp_path, cli, refused, content, message):
    path = tmp_path / "bad.xml"
    path.write_text(content)
    out = tmp_path / "model.yaml"
    refused(cli("import-sbml", path, "-o", out), message, str(path))
    assert not out.exists()


def test_consistency_errors_show_libsbml_messages_with_lines(tmp_path, cli, refused):
    text = _sbml(tmp_path, "compartment C = 1; species S in C = 1").read_text()
    path = tmp_path / "broken.xml"
    path.write_text(text.replace('compartment="C"', 'compartment="nowhere"'))
    out = tmp_path / "model.yaml"
    output = refused(cli("import-sbml", path, "-o", out), "consistency check failed", "nowhere", "line ")
    assert "Traceback" not in output and not out.exists()


def test_unsupported_construct_from_the_cli_writes_nothing(tmp_path, cli, refused):
    path = _sbml(tmp_path, "species X = 1; species Y = 1; 0 = X + Y - 2")
    out = tmp_path / "model.yaml"
    refused(cli("import-sbml", path, "-o", out), "algebraicRule", "algebraic rules")
    assert not out.exists()


def test_time_units_that_are_not_a_time_are_refused(tmp_path, cli, refused):
    libsbml = pytest.importorskip("libsbml")
    doc = libsbml.readSBMLFromString(_sbml(tmp_path, "species X = 1; J0: X -> ; k*X; k = 1").read_text())
    model = doc.getModel()
    ud = model.createUnitDefinition()
    ud.setId("per_litre")
    unit = ud.createUnit()
    unit.initDefaults()
    unit.setKind(libsbml.UNIT_KIND_LITRE)
    model.setTimeUnits("per_litre")
    path = tmp_path / "litres.xml"
    libsbml.writeSBMLToFile(doc, str(path))
    out = tmp_path / "model.yaml"
    refused(cli("import-sbml", path, "-o", out), "timeUnits", "'per_litre'", "not a unit of time")
    assert not out.exists()


def test_cli_writes_a_model_file_that_runs(tmp_path, cli):
    path = _sbml(tmp_path, "compartment C = 2; species S in C = 3; J0: S -> ; k*S*C; k = 0.5")
    out = tmp_path / "model.yaml"
    result = cli("import-sbml", path, "-o", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.xml", "model.yaml"]  # no temporary file left
    ds = ilsim.simulate(out, t_end=2.0, points=3)
    assert ds["S"].values[-1] == pytest.approx(3 * np.exp(-1.0), rel=1e-4)


# ------------------------------------------------------------------------ BioModels vs libroadrunner


@pytest.mark.parametrize("biomodel", ["BIOMD0000000732", "BIOMD0000000714", "BIOMD0000000289", "BIOMD0000000290"])
def test_biomodels_agree_with_roadrunner(shared_data, biomodel):
    path = shared_data("biomodels/models", f"{biomodel}__*.xml")
    pytest.importorskip("roadrunner", reason="libroadrunner (a test-only dependency) is not installed")
    from ilsim.io.sbml_import.crosscheck import compare_with_roadrunner

    agreement = compare_with_roadrunner(path, t_end=100.0, points=101)
    name, ratio = agreement.worst
    assert ratio <= 1e-4, f"{biomodel}: {name} differs from libroadrunner by {ratio:.3g} of its range"


def test_nested_piecewise_conditions_run_with_their_jacobian(tmp_path):
    """A piecewise whose conditions nest and/or/not (as in BIOMD0000000859) once stopped the analytic Jacobian
    with a TypeError; the rates are differentiated on ilsim's own trees now. Oracle: libroadrunner."""
    path = _sbml(tmp_path, """
        species A = 2, B = 1
        J0: A -> B; piecewise(k*A*B, (A > 1 && B < 3) || !(A > 4), A^2/10, B > 0.5, k)
        J1: B -> ; max(B - A, 0.1*B) * A^2/(1.5^2 + A^2)
        k = 0.7""")
    model = compile_model(import_sbml(path).spec)
    assert model.jacobian(model.initial_state(model.p0), 0.0, model.p0).shape == (2, 2)
    _agrees_with_roadrunner(path)


def test_a_species_nothing_gives_a_value_starts_at_0_as_in_libroadrunner(tmp_path):
    path = _edited(tmp_path, "J0: -> A; k; J1: A -> B; k2*A; A = 1; B = 0; k = 2; k2 = 0.5",
                   lambda m: m.getSpecies("A").unsetInitialConcentration(), "no_value.xml")
    with pytest.warns(UserWarning, match="species 'A': has no initial value .* it starts at 0"):
        import_sbml(path)
    t = np.linspace(0, 6, 13)
    np.testing.assert_allclose(_run(path, ["A"], t)[:, 0], 4 * (1 - np.exp(-0.5 * t)), rtol=1e-8, atol=1e-12)
    _agrees_with_roadrunner(path)


def test_a_species_in_a_kinetic_law_without_a_modifier_reference_is_read(tmp_path):
    """libsbml error 21121 (the law reads a species its reaction does not list): the law means the same, and
    libroadrunner runs it."""
    def unlist(m):
        while m.getReaction("J0").getNumModifiers():
            m.getReaction("J0").removeModifier(0)

    path = _edited(tmp_path, "J0: A -> B; k*A*E; A = 10; B = 0; E = 2; k = 0.1", unlist, "no_modifier.xml")
    t = np.linspace(0, 5, 11)
    np.testing.assert_allclose(_run(path, ["A"], t)[:, 0], 10 * np.exp(-0.2 * t), rtol=1e-8)
    _agrees_with_roadrunner(path)


# ------------------------------------------------------------------- units of counts (DSMTS 00010, 00011)

_COUNTS = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
  <model id="BirthDeath" substanceUnits="item" timeUnits="second" volumeUnits="litre">
    <listOfCompartments><compartment id="Cell" spatialDimensions="3" size="SIZE" constant="true"UNITS/></listOfCompartments>
    <listOfSpecies><species id="X" compartment="Cell" initialAmount="100" hasOnlySubstanceUnits="false"
      boundaryCondition="false" constant="false"/></listOfSpecies>
    <listOfParameters><parameter id="Lambda" value="0.1" constant="true"/><parameter id="Mu" value="0.11" constant="true"/>
    </listOfParameters>
    <listOfReactions>
      <reaction id="Birth" reversible="false">
        <listOfReactants><speciesReference species="X" stoichiometry="1" constant="false"/></listOfReactants>
        <listOfProducts><speciesReference species="X" stoichiometry="2" constant="false"/></listOfProducts>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML"><apply><times/><ci>Lambda</ci><ci>X</ci></apply></math>
        </kineticLaw>
      </reaction>
      <reaction id="Death" reversible="false">
        <listOfReactants><speciesReference species="X" stoichiometry="1" constant="false"/></listOfReactants>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML"><apply><times/><ci>Mu</ci><ci>X</ci></apply></math>
        </kineticLaw>
      </reaction>
    </listOfReactions>
  </model>
</sbml>
"""


@pytest.mark.parametrize("size, units, label", [(1, "", "item"), (2, "", "item"), (2, "litre", "item/litre")])
def test_counts_in_items_import_as_concentrations_of_items(tmp_path, size, units, label):
    # DSMTS 00010/00011 crashed here: substance 'item' (SBML's base unit of a count) over a compartment without units
    path = tmp_path / "counts.xml"
    path.write_text(_COUNTS.replace("SIZE", str(size)).replace("UNITS", f' units="{units}"' if units else ""))
    spec = read_sbml(path)
    assert [(s.name, s.units) for s in spec.species] == [("X", label)]
    t = np.linspace(0, 50, 6)
    amount = np.asarray(_run(path, ["X"], t)).reshape(len(t))
    # SBML rates are amounts per time: d(amount)/dt = (Lambda - Mu) X = (Lambda - Mu) amount / size
    np.testing.assert_allclose(amount, 100 * np.exp((0.1 - 0.11) * t / size), rtol=1e-6)


def test_a_value_the_schema_refuses_names_the_sbml_element(tmp_path):
    from ilsim.io.sbml_import.document import read_document
    from ilsim.io.sbml_import.importer import _Importer
    from ilsim.model.spec import Species

    path = tmp_path / "counts.xml"
    path.write_text(_COUNTS.replace("SIZE", "1").replace("UNITS", ""))
    importer = _Importer(read_document(path), str(path))
    with pytest.raises(ModelError) as info:
        importer._checked("X", Species, name="X", initial=1.0, units="furlongz")
    assert "SBML X (species.units)" in str(info.value) and "furlongz" in str(info.value) and str(path) in str(info.value)
