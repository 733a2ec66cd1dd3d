"""Friberg et al. 2002 (J Clin Oncol 20:4713): neutropenia after 200 mg docetaxel; recovery with and without support.

The paper fitted its model to patients' own concentration courses and did not simulate this typical 200 mg
infusion, so no published number exists for it. The course is checked against the model's equations solved
here independently (the paper's equations typed below, SciPy's solve_ivp, the infusion's concentration from
the matrix exponential) and its numbers are pinned in ilsim's snapshot."""

import math

import numpy as np
import pytest
import scipy.linalg
from scipy.integrate import solve_ivp
from typer.testing import CliRunner

import ilsim
from ilsim.cli import app

MODEL = "friberg-docetaxel"
CIRC0 = 5.05  # 1e9/L
V1, CL, K12, K21, K13, K31 = 7.4, 38.5, 1.06, 1.51, 1.26, 0.084  # L, L/h, 1/h
MTT, GAMMA, SLOPE, MW = 88.7, 0.161, 8.58, 807.9  # h, -, 1/uM (Friberg et al. 2002, docetaxel); g/mol
PK = np.array([[-(CL / V1 + K12 + K13), K21, K31], [K12, -K21, 0.0], [K13, 0.0, -K31]])  # amounts A1, A2, A3


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


def _friberg_rhs(t, y):
    """The paper's model (kprol = kcirc = ktr = 4/MTT) driven by the three-compartment infusion, typed here."""
    a, prol, t1, t2, t3, circ = y[:3], *y[3:]
    ktr = 4.0 / MTT
    rate = np.array([200.0 if t < 1.0 else 0.0, 0.0, 0.0])  # 200 mg over the first hour
    edrug = SLOPE * (a[0] / V1) * 1000.0 / MW
    dprol = ktr * prol * (1.0 - edrug) * (CIRC0 / circ) ** GAMMA - ktr * prol
    return [*(PK @ a + rate), dprol, ktr * (prol - t1), ktr * (t1 - t2), ktr * (t2 - t3), ktr * (t3 - circ)]


def _independent_course(t_hours):
    y0 = [0.0, 0.0, 0.0, *[CIRC0] * 5]
    first = solve_ivp(_friberg_rhs, (0.0, 1.0), y0, method="LSODA", rtol=1e-10, atol=1e-12)  # the infusion
    rest = solve_ivp(_friberg_rhs, (1.0, t_hours[-1]), first.y[:, -1], method="LSODA", rtol=1e-10, atol=1e-12,
                     t_eval=t_hours[t_hours >= 1.0])
    return rest.t, rest.y[-1]


def _nadir_and_rebound(t_days, circ):
    i = int(circ.argmin())
    j = i + int(circ[i:].argmax())
    return {"nadir": circ[i], "nadir day": t_days[i], "rebound peak": circ[j], "rebound day": t_days[j]}


def test_neutrophil_course_agrees_with_the_equations_solved_independently(untreated):
    t, c = untreated["time"].values, untreated["Circ"].values
    t_ref, c_ref = _independent_course(t)
    ours, theirs = _nadir_and_rebound(t / 24.0, c), _nadir_and_rebound(t_ref / 24.0, c_ref)
    for key in ("nadir", "rebound peak"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-5), key
    for key in ("nadir day", "rebound day"):
        assert ours[key] == pytest.approx(theirs[key], abs=0.5 / 24 + 1e-9), key  # within one output step
    assert np.abs(c[t >= 1.0] - c_ref).max() < 1e-5 * CIRC0


def test_nadir_rebound_and_recovery(untreated, snapshot):
    t, c = _days(untreated), untreated["Circ"].values
    numbers = _nadir_and_rebound(t, c)
    assert numbers["nadir"] < 1.0 <= c[0]  # grade 3 neutropenia: 0.5 <= ANC < 1.0 (CTCAE v5.0)
    assert int(untreated["neutropenia_grade"].values[int(c.argmin())]) == 3
    assert numbers["rebound peak"] > CIRC0  # the feedback overshoots on the way back
    assert abs(c[-1] - CIRC0) < 0.02 * CIRC0  # day 42: back towards the steady state Circ0
    assert untreated.attrs["outcome"] == "recovered"
    snapshot.check("no support: neutrophil nadir [1e9/L]", numbers["nadir"], rel=0.01)
    snapshot.check("no support: day of the nadir", numbers["nadir day"], abs=0.25)
    snapshot.check("no support: rebound peak [1e9/L]", numbers["rebound peak"], rel=0.01)
    snapshot.check("no support: day of the rebound peak", numbers["rebound day"], abs=0.5)


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
    a = PK
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
    peak = expected_end[0] / V1  # mg/L at the end of the infusion: 3.98
    assert float(ds["docetaxel"].values.max()) == pytest.approx(peak, rel=1e-6)
    assert float(ds["docetaxel_uM"].values.max()) == pytest.approx(peak * 1000 / MW, rel=1e-6)


def test_terminal_half_life_is_ln2_over_the_smallest_eigenvalue(friberg):
    t, ds = _concentration_after_bolus_like_infusion(friberg)
    rates = np.sort(-np.linalg.eigvals(PK).real)
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


def test_filgrastim_support_shortens_neutrophil_recovery_by_about_3_days(friberg, untreated, snapshot):
    # the G-CSF effect is assumed (not in Friberg et al.): these are ilsim's numbers for it
    supported = ilsim.simulate(friberg, parameters={"filgrastim_on": 1})
    without, with_gcsf = recovery_day(untreated), recovery_day(supported)
    snapshot.check("no support: day back at ANC >= 1.5", without, abs=0.1)
    snapshot.check("filgrastim: day back at ANC >= 1.5", with_gcsf, abs=0.1)
    assert without - with_gcsf >= 2.5
    snapshot.check("no support: days with ANC < 1.0", days_below(untreated, "Circ", 1.0), abs=0.1)
    assert days_below(supported, "Circ", 1.0) == 0  # with support the nadir stays at grade 2 (1.21e9/L)
    log = ilsim.summarise(supported)["dose_log"]
    given = [e["time"] for e in log if e["drug"] == "filgrastim" and e["status"] == "given"]
    assert given == [24.0 * d for d in range(1, 11)]


def test_support_is_off_by_default_and_its_doses_are_not_given_not_held(untreated):
    log = ilsim.summarise(untreated)["dose_log"]
    assert [e["status"] for e in log if e["drug"] == "docetaxel"] == ["given"]
    for drug, n in (("filgrastim", 10), ("oprelvekin", 14)):
        entries = [e for e in log if e["drug"] == drug]
        assert [e["status"] for e in entries] == ["not given"] * n  # an option switched off, not a hold for toxicity
        assert {e["reason"] for e in entries} == {f"switched off ({drug}_on < 0.5)"}
    assert float(untreated["filgrastim"].max()) == 0 and float(untreated["oprelvekin"].max()) == 0


def test_oprelvekin_shortens_the_time_with_platelets_below_normal(friberg, untreated, snapshot):
    # the platelet chain and the IL-11 effect are assumed: these are ilsim's numbers for them
    supported = ilsim.simulate(friberg, parameters={"oprelvekin_on": 1})
    assert 75 <= float(untreated["Plt"].min()) < 150  # grade 1 thrombocytopenia (CTCAE v5.0: 75 to < LLN 150)
    snapshot.check("no support: platelet nadir [1e9/L]", untreated["Plt"].min(), abs=3)
    without, with_il11 = days_below(untreated, "Plt", 150), days_below(supported, "Plt", 150)
    assert with_il11 < without
    snapshot.check("no support: days with platelets < 150", without, abs=0.2)
    snapshot.check("oprelvekin: days with platelets < 150", with_il11, abs=0.2)
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
    assert "doses: 11 given, 14 not given" in ran.output and (out / "summary.json").exists()  # oprelvekin: switched off
