"""Friberg et al. 2002 (J Clin Oncol 20:4713): neutropenia after 200 mg docetaxel; recovery with and without support."""

import math

import numpy as np
import pytest
import scipy.linalg
from typer.testing import CliRunner

import ilsim
from ilsim.cli import app

MODEL = "friberg-docetaxel"
CIRC0 = 5.05  # 1e9/L
V1, CL, K12, K21, K13, K31 = 7.4, 38.5, 1.06, 1.51, 1.26, 0.084  # L, L/h, 1/h


@pytest.fixture(scope="module")
def friberg():
    return ilsim.compile(MODEL)


@pytest.fixture(scope="module")
def untreated(friberg):
    return ilsim.simulate(friberg)  # 42 days, output every 0.5 h


def _days(ds):
    return ds["time"].values / 24.0


def recovery_day(ds, name="Circ", level=1.5):
    """First day after the nadir at which the count is back at or above level."""
    t, c = _days(ds), ds[name].values
    i = int(c.argmin())
    return float(t[i:][c[i:] >= level][0])


def days_below(ds, name, level):
    t, c = _days(ds), ds[name].values
    return float(np.sum(c < level) * (t[1] - t[0]))


def test_neutrophil_nadir_is_about_0_75e9_per_l_near_day_7_7(untreated):
    t, c = _days(untreated), untreated["Circ"].values
    i = int(c.argmin())
    assert c[i] == pytest.approx(0.75, rel=0.10)  # measured 0.750
    assert t[i] == pytest.approx(7.7, abs=1.0)  # measured day 7.71
    assert int(untreated["neutropenia_grade"].values[i]) == 3


def test_rebound_peaks_above_baseline_near_day_20_then_returns_towards_baseline(untreated):
    t, c = _days(untreated), untreated["Circ"].values
    after = t > t[int(c.argmin())]
    j = int(np.argmax(np.where(after, c, -np.inf)))
    assert c[j] > 1.2 * CIRC0  # measured 6.41e9/L
    assert t[j] == pytest.approx(20, abs=2.5)  # measured day 19.8
    assert abs(c[-1] - CIRC0) < 0.02 * CIRC0  # day 42: 5.047e9/L
    assert untreated.attrs["outcome"] == "recovered"


def test_starting_state_is_the_steady_state(friberg):
    ds = ilsim.simulate(friberg, 240, parameters={"slope": 0.0, "slope_plt": 0.0})
    for name in ("Prol", "Transit1", "Transit2", "Transit3", "Circ"):
        assert ds[name].values == pytest.approx(CIRC0, rel=1e-9)


def _concentration_after_bolus_like_infusion(friberg):
    t = np.concatenate([np.linspace(0, 1, 61), np.linspace(1, 336, 20101)[1:]])  # hours
    ds = ilsim.simulate(friberg, t_eval=t, rtol=1e-11, atol=1e-14)
    return t, ds


def test_docetaxel_concentration_is_the_three_compartment_solution(friberg):
    t, ds = _concentration_after_bolus_like_infusion(friberg)
    k10 = CL / V1
    a = np.array([[-(k10 + K12 + K13), K21, K31], [K12, -K21, 0.0], [K13, 0.0, -K31]])
    end = int(np.searchsorted(t, 1.0))
    amounts_at_end = np.array([float(ds[n][end]) for n in ("docetaxel_central", "docetaxel_peripheral1",
                                                           "docetaxel_peripheral2")])
    # the amounts at the end of the 1-h infusion: integral of exp(A s) * 200 mg/h over the hour
    expected_end = scipy.linalg.solve(a, (scipy.linalg.expm(a) - np.eye(3)) @ np.array([200.0, 0, 0]))
    assert amounts_at_end == pytest.approx(expected_end, rel=1e-6)
    later = t > 1.0
    expected = np.array([scipy.linalg.expm(a * (s - 1.0)) @ expected_end for s in t[later]])[:, 0] / V1
    c = ds["docetaxel"].values[later]  # mg/L
    big = expected > 1e-4
    assert c[big] == pytest.approx(expected[big], rel=1e-5)
    assert float(ds["docetaxel"].values.max()) == pytest.approx(3.98, abs=0.02)  # mg/L at the end of the infusion
    assert float(ds["docetaxel_uM"].values.max()) == pytest.approx(3.98 * 1000 / 807.9, abs=0.03)


def test_terminal_half_life_is_ln2_over_the_smallest_eigenvalue(friberg):
    t, ds = _concentration_after_bolus_like_infusion(friberg)
    k10 = CL / V1
    a = np.array([[-(k10 + K12 + K13), K21, K31], [K12, -K21, 0.0], [K13, 0.0, -K31]])
    rates = np.sort(-np.linalg.eigvals(a).real)
    assert len(set(np.round(rates, 6))) == 3  # three distinct phases: tri-exponential decline
    window = (t >= 96) & (t <= 336)
    beta, _ = np.polyfit(t[window], np.log(ds["docetaxel"].values[window]), 1)
    assert math.log(2) / -beta == pytest.approx(math.log(2) / rates[0], rel=0.02)  # about 10.3 h
    auc = np.trapezoid(ds["docetaxel"].values, t)
    assert auc == pytest.approx(200 / CL, rel=0.01)  # dose / clearance, up to the tail after 336 h


def test_drug_effect_exceeds_one_and_every_count_stays_non_negative(untreated):
    assert float(untreated["Edrug"].max()) > 30  # 8.58/uM x 4.9 uM: the proliferation term is a net kill
    for name in ("Prol", "Transit1", "Transit2", "Transit3", "Circ", "ProlP", "TransitP1", "TransitP2", "TransitP3", "Plt"):
        assert float(untreated[name].min()) > 0
    assert float(untreated["Prol"].min()) < 0.1 * CIRC0  # the pool is nearly emptied, not driven below zero


def test_filgrastim_support_shortens_neutrophil_recovery_by_about_3_days(friberg, untreated):
    supported = ilsim.simulate(friberg, parameters={"filgrastim_on": 1})
    without, with_gcsf = recovery_day(untreated), recovery_day(supported)
    assert without == pytest.approx(10.8, abs=0.1)
    assert with_gcsf == pytest.approx(7.7, abs=0.1)
    assert without - with_gcsf >= 2.5
    assert days_below(untreated, "Circ", 1.0) == pytest.approx(3.5, abs=0.1)  # grade 3 for 3.5 days
    assert days_below(supported, "Circ", 1.0) == 0  # with support the nadir stays at grade 2 (1.21e9/L)
    log = ilsim.summarise(supported)["dose_log"]
    given = [e["time"] for e in log if e["drug"] == "filgrastim" and e["status"] == "given"]
    assert given == [24.0 * d for d in range(1, 11)]


def test_support_is_off_by_default_and_its_doses_are_held(untreated):
    log = ilsim.summarise(untreated)["dose_log"]
    assert [e["status"] for e in log if e["drug"] == "docetaxel"] == ["given"]
    for drug, n in (("filgrastim", 10), ("oprelvekin", 14)):
        statuses = [e["status"] for e in log if e["drug"] == drug]
        assert statuses == ["held"] * n
    assert float(untreated["filgrastim"].max()) == 0 and float(untreated["oprelvekin"].max()) == 0


def test_oprelvekin_shortens_the_time_with_platelets_below_normal(friberg, untreated):
    supported = ilsim.simulate(friberg, parameters={"oprelvekin_on": 1})
    assert float(untreated["Plt"].min()) == pytest.approx(97, abs=3)  # assumed chain: grade 1
    without, with_il11 = days_below(untreated, "Plt", 150), days_below(supported, "Plt", 150)
    assert without == pytest.approx(10.5, abs=0.2)
    assert with_il11 == pytest.approx(5.9, abs=0.2)
    assert float(supported["oprelvekin_ng_mL"].max()) > 0
    # IL-11 acts on the platelet chain only
    assert supported["Circ"].values == pytest.approx(untreated["Circ"].values, rel=1e-6)


def test_every_parameter_has_units_description_and_source(friberg):
    spec = ilsim.load(MODEL)
    for p in spec.parameters:
        assert p.units and p.description and p.source, p.name


def test_cli_show_and_run(tmp_path):
    runner = CliRunner()
    shown = runner.invoke(app, ["show", MODEL], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "dProl/dt" in shown.output
    out = tmp_path / "fr"
    ran = runner.invoke(app, ["run", MODEL, "--out", str(out), "--no-report", "--set", "filgrastim_on=1"],
                        env={"COLUMNS": "200"})
    assert ran.exit_code == 0, ran.output
    assert "doses: 11 given, 14 held" in ran.output and (out / "summary.json").exists()
