"""Alexander & Wahl 2011 (Bull Math Biol 73:33; online 2010), system 1: tolerance for R0 < 1, chronic autoimmunity
for R0 > 1; cross-checked against the BioModels file BIOMD0000000289 run in libroadrunner."""

import json

import numpy as np
import pytest

import ilsim

MODEL = "alexander-wahl-2010"


@pytest.fixture(scope="module")
def aw():
    return ilsim.compile(MODEL)


def _params(model, **changes) -> dict[str, float]:
    values = dict(zip(model.parameters, map(float, model.p0)))
    values.update(changes)
    return values


def _r0(p: dict[str, float]) -> float:
    return p["f"] * p["v"] * p["lambdaE"] * p["gamma"] / ((p["muG"] + p["v"]) * (p["muA"] + p["b1"]) * p["muE"])


def _autoimmune_equilibrium(p: dict[str, float]) -> dict[str, float]:
    """The non-trivial equilibrium (R0 > 1), solved by hand from the four equations set to zero."""
    r = (p["muA"] + p["b1"]) * (_r0(p) - 1) / p["sigma1"]  # from dA/dt = 0 with f v G = R0 (muA + b1) A
    a = p["pi1"] * p["lambdaE"] / p["muE"]  # dR/dt = 0: a A^2 + beta A - muR R = 0
    apc = 2 * p["muR"] * r / (p["beta"] + np.sqrt(p["beta"] ** 2 + 4 * a * p["muR"] * r))
    e = p["lambdaE"] * apc / p["muE"]
    return {"A": apc, "R": r, "E": e, "G": p["gamma"] * e / (p["muG"] + p["v"])}


def test_r0_is_0_7996_and_the_outcome_is_tolerance(tmp_path):
    ds, summary = ilsim.run(MODEL, tmp_path / "out", report=False)
    assert summary["derived"]["R0"] == pytest.approx(0.7996, abs=1e-4)
    assert summary["derived"]["R0"] == pytest.approx(0.5 / (5.0025 * 0.5 * 0.25), rel=1e-12)
    assert summary["outcome"] == "tolerance"
    assert summary["t_end"] == 500
    assert summary["variables"]["E"]["final"] < 1e-3


def test_peaks_match_the_snapshot(aw, snapshot):
    # the paper's Fig. 2 shows this course as a plot only; the whole trajectory is checked against libroadrunner
    # on BIOMD0000000289 below, and the peaks, at a finer output step, are ilsim's snapshot
    ds = ilsim.simulate(aw, 10, points=10_001)  # output every 0.001 day
    for name, rel, days in (("E", 1.5e-4, 0.005), ("A", 1e-3, 0.01), ("R", 1e-3, 0.01)):
        i = int(ds[name].values.argmax())
        snapshot.check(f"paper's parameter values (R0 = 0.80): {name} peak", ds[name][i], rel=rel)
        snapshot.check(f"paper's parameter values (R0 = 0.80): day of the {name} peak", ds["time"][i], abs=days)
    assert ds["A"].values.argmax() < ds["E"].values.argmax() < ds["R"].values.argmax()  # pAPCs first, Tregs last


def test_effectors_then_decay_to_zero_at_the_rate_of_the_slowest_eigenvalue(aw):
    ds = ilsim.simulate(aw)
    t, effectors = ds["time"].values, ds["E"].values
    after_peak = effectors[int(effectors.argmax()):]
    assert np.all(np.diff(after_peak) <= 0)
    assert effectors[-1] < 1e-3
    # Linearised at 0, (A, E, G) decay as the roots of (x + muA + b1)(x + muE)(x + muG + v) = f v lambdaE gamma.
    p = _params(aw)
    cubic = np.poly([-(p["muA"] + p["b1"]), -p["muE"], -(p["muG"] + p["v"])])
    cubic[-1] -= p["f"] * p["v"] * p["lambdaE"] * p["gamma"]
    slowest = max(np.roots(cubic).real)
    assert slowest == pytest.approx(-0.03403, abs=1e-5)
    i300, i500 = np.searchsorted(t, 300), len(t) - 1
    rate = np.log(effectors[i500] / effectors[i300]) / (t[i500] - t[i300])
    assert rate == pytest.approx(slowest, rel=1e-3)


@pytest.mark.parametrize("change", [{"f": 2e-4}, {"gamma": 4000.0}, {"b1": 0.05}])
def test_r0_above_one_gives_chronic_autoimmunity_at_the_non_trivial_equilibrium(aw, change):
    ds = ilsim.simulate(aw, parameters=change)
    p = _params(aw, **change)
    assert _r0(p) > 1
    assert ds.attrs["outcome"] == "chronic autoimmunity"
    expected = _autoimmune_equilibrium(p)
    for name, value in expected.items():
        assert float(ds[name][-1]) == pytest.approx(value, rel=1e-3), name
    assert float(ds["E"][-1]) > 1e4  # the effectors persist, far above the tolerance threshold of one cell


def test_chronic_autoimmunity_is_reported_in_summary(aw, tmp_path):
    _, summary = ilsim.run(MODEL, tmp_path / "out", report=False, parameters={"f": 2e-4})
    p = _params(aw, f=2e-4)
    assert summary["derived"]["R0"] == pytest.approx(_r0(p), rel=1e-12)
    assert summary["outcome"] == "chronic autoimmunity"
    assert summary["variables"]["E"]["final"] == pytest.approx(_autoimmune_equilibrium(p)["E"], rel=1e-3)


def test_specific_tregs_change_the_level_but_not_the_outcome(aw):
    """The paper's claim: Tregs specific for the self-antigen (sigma1) play no role in the qualitative outcome."""
    levels = []
    for sigma1 in (1.5e-6, 3e-6, 6e-6):
        ds = ilsim.simulate(aw, parameters={"b1": 0.05, "sigma1": sigma1})
        assert ds.attrs["outcome"] == "chronic autoimmunity"
        levels.append(float(ds["E"][-1]))
        tolerant = ilsim.simulate(aw, parameters={"sigma1": sigma1})
        assert tolerant.attrs["outcome"] == "tolerance"
    assert levels[0] > levels[1] > levels[2]  # more suppression, lower chronic level


def test_initial_exposure_does_not_change_the_deterministic_outcome(aw):
    for g0 in (1e4, 1e10):
        assert ilsim.simulate(aw, parameters={"G0": g0}).attrs["outcome"] == "tolerance"
        assert ilsim.simulate(aw, parameters={"G0": g0, "f": 2e-4}).attrs["outcome"] == "chronic autoimmunity"


def test_labels_when_the_end_state_has_not_settled(aw):
    near = {"f": 1.2e-4}  # R0 = 0.96: E decays, but slowly
    assert _r0(_params(aw, **near)) == pytest.approx(0.9595, abs=1e-4)
    assert ilsim.simulate(aw, parameters=near).attrs["outcome"].startswith("tolerance not yet reached")
    assert ilsim.simulate(aw, 3000, parameters=near).attrs["outcome"] == "tolerance"
    nothing = {"f": 2e-4, "A0": 0.0, "G0": 0.0}  # R0 > 1, but nothing to start a response
    assert ilsim.simulate(aw, parameters=nothing).attrs["outcome"].startswith("no autoimmunity yet")


def test_species_stay_non_negative(aw):
    for change in ({}, {"f": 2e-4}, {"b1": 0.05}):
        ds = ilsim.simulate(aw, parameters=change)
        for name in "AREG":
            assert float(ds[name].min()) >= 0.0, (change, name)


def test_lsoda_and_bdf_agree(aw):
    lsoda = ilsim.simulate(aw, method="LSODA")
    bdf = ilsim.simulate(aw, method="BDF", rtol=1e-10, atol=1e-12)
    for name in "AREG":
        scale = np.abs(bdf[name].values) + 1e-6 * float(bdf[name].max())
        assert np.max(np.abs(lsoda[name].values - bdf[name].values) / scale) < 1e-4, name


def test_show_and_run_from_the_command_line(cli, tmp_path):
    shown = cli("show", MODEL)
    assert shown.exit_code == 0, shown.output
    assert "dE/dt = lambdaE*A - muE*E" in shown.stdout
    assert "R0 = f*v*lambdaE*gamma/((muG + v)*(muA + b1)*muE) = 0.7996" in shown.stdout
    ran = cli("run", MODEL, "--out", tmp_path / "aw", "--no-report")
    assert ran.exit_code == 0, ran.output
    assert "outcome: tolerance" in ran.stdout
    assert "R0 = 0.7996" in ran.stdout


def test_every_parameter_names_its_source_and_units():
    spec = ilsim.load(MODEL)
    assert all(p.source and p.units and p.description for p in spec.parameters)
    assert spec.metadata.references[0].doi == "10.1007/s11538-010-9519-2"
    assert [s.kind for s in spec.species] == ["cell", "cell", "cell", "other"]


# --- cross-check against the published SBML file, run by libroadrunner (CVODE) -------------------------------


@pytest.mark.parametrize("change", [{}, {"f": 2e-4}, {"b1": 0.05, "sigma1": 6e-6}])
def test_agrees_with_biomodels_sbml_in_libroadrunner(aw, shared_data, change):
    sbml = shared_data("biomodels/models", "BIOMD0000000289__*.xml")
    roadrunner = pytest.importorskip("roadrunner", reason="libroadrunner is a test extra: pip install -e '.[test]'")
    rr = roadrunner.RoadRunner(str(sbml))
    for name, value in change.items():
        rr[name] = value
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-10
    rr.timeCourseSelections = ["time", "A", "R", "E", "G"]
    expected = np.asarray(rr.simulate(0, 300, 3001))
    assert float(rr["R0"]) == pytest.approx(_r0(_params(aw, **change)), rel=1e-12)
    ds = ilsim.simulate(aw, 300, points=3001, parameters=change, rtol=1e-10, atol=1e-12)
    assert json.loads(ds.attrs["derived"])["R0"] == pytest.approx(float(rr["R0"]), rel=1e-12)
    for col, name in enumerate("AREG", start=1):
        scale = np.abs(expected[:, col]) + 1e-6 * np.abs(expected[:, col]).max()
        assert np.max(np.abs(ds[name].values - expected[:, col]) / scale) < 1e-5, name
