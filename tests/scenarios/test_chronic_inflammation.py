"""chronic-inflammation: an RA/Crohn's-like inflammatory loop at steady state, treated with
tocilizumab (anti-IL-6R), anakinra (IL-1Ra) and ustekinumab (anti-IL-12/23) given as doses with
one-compartment pharmacokinetics; CRP and the inflammation index fall on treatment and rise after
washout."""

import math

import numpy as np
import pytest
from typer.testing import CliRunner

import ilsim
from ilsim.cli import app

MODEL = "chronic-inflammation"
T_END = 240
POINTS = 2401  # one output per 0.1 day
OFF = {"tcz_mg_per_kg": 0}  # tocilizumab is the only drug on by default
REGIMENS = {
    "untreated": OFF,
    "tocilizumab": {},  # 8 mg/kg IV on days 30, 58, 86
    "anakinra": {**OFF, "anakinra_mg": 100},  # 100 mg SC daily, days 30-57
    "ustekinumab": {**OFF, "ust_iv_mg": 390, "ust_sc_mg": 90},  # 390 mg IV day 30, 90 mg SC days 86, 142
}
CROHNS = {"il23_axis_weight": 0.7}
CRP_UNTREATED = 34.8  # mg/L, untreated steady state (active RA: tens of mg/L)
CRP_NORMAL = 3.0  # mg/L, 90th centile of healthy adults (Pepys & Hirschfield 2003)
FIRST_DOSE, LAST_TCZ_DOSE = 30.0, 86.0
TCZ_DOSES = (0, 0.5, 1, 2, 4, 8)  # mg/kg, dose-response table


@pytest.fixture(scope="module")
def model():
    return ilsim.compile(MODEL)


def run(model, **parameters):
    return ilsim.simulate(model, T_END, parameters=parameters, points=POINTS)


@pytest.fixture(scope="module")
def ra(model):
    return {name: run(model, **p) for name, p in REGIMENS.items()}


@pytest.fixture(scope="module")
def crohns(model):
    return {name: run(model, **p, **CROHNS) for name, p in REGIMENS.items()}


def at(ds, name, day):
    return float(ds[name].sel(time=day, method="nearest"))


def window(ds, name, start, end):
    t = ds["time"].values
    return ds[name].values[(t >= start) & (t <= end)]


def first_day(ds, condition, start):
    t = ds["time"].values
    hits = t[(t >= start) & condition]
    return float(hits[0]) if len(hits) else math.inf


def test_every_parameter_has_units_description_and_source():
    for p in ilsim.load(MODEL).parameters:
        assert p.units and p.description and p.source, p.name


def test_untreated_disease_sits_at_a_steady_state_with_raised_crp(ra):
    ds = ra["untreated"]
    crp, index = ds["CRP"].values, ds["inflammation_index"].values
    assert crp[0] == pytest.approx(CRP_UNTREATED, rel=0.01)
    assert np.all(np.abs(crp / crp[0] - 1) < 0.001)  # stays there for 240 days
    assert np.all(np.abs(index - 0.663) < 0.001)
    assert 20 < CRP_UNTREATED < 40  # typical of active RA
    for name in ("IL6", "IL1b", "TNF", "IL23", "IL17", "M", "Th17"):
        v = ds[name].values
        assert v[0] > 0 and np.all(np.abs(v / v[0] - 1) < 0.001), name
    assert ds.attrs["outcome"] == "active inflammation"


def test_tocilizumab_normalises_crp_within_two_weeks_and_lowers_the_index(ra):
    ds = ra["tocilizumab"]
    day = first_day(ds, ds["CRP"].values < CRP_NORMAL, FIRST_DOSE)
    assert day - FIRST_DOSE <= 16  # within about two weeks (measured: 3.2 days)
    assert day - FIRST_DOSE == pytest.approx(3.2, abs=0.2)
    on = window(ds, "CRP", FIRST_DOSE + 14, LAST_TCZ_DOSE + 28)
    assert np.all(on < CRP_NORMAL)  # stays normal through the dosing interval after the last dose
    assert on.min() == pytest.approx(0.82, abs=0.02)  # nadir: at baseline (0.8 mg/L)
    index_on = window(ds, "inflammation_index", FIRST_DOSE + 14, LAST_TCZ_DOSE + 28)
    assert np.all(index_on < 0.55)  # from 0.663 untreated
    assert index_on.min() == pytest.approx(0.528, abs=0.005)
    assert at(ds, "TCZ_occupancy", LAST_TCZ_DOSE + 28) > 0.99


def test_crp_and_index_rise_again_after_tocilizumab_washout(ra):
    ds = ra["tocilizumab"]
    assert at(ds, "CRP", 150) < CRP_NORMAL
    relapse = first_day(ds, ds["CRP"].values > 10, LAST_TCZ_DOSE)
    assert 190 < relapse < 200  # CRP > 10 mg/L again 15-16 weeks after the last dose (TCZ about 1 mg/L)
    assert at(ds, "CRP", 240) > 25  # most of the way back to 34.8 mg/L
    assert at(ds, "inflammation_index", 240) > at(ds, "inflammation_index", 150) + 0.08
    assert at(ds, "inflammation_index", 240) == pytest.approx(0.65, abs=0.01)
    assert ds.attrs["outcome"] == "active inflammation"


def test_anakinra_lowers_the_il1_axis_and_crp_less_than_tocilizumab(ra):
    ank, tcz, untreated = ra["anakinra"], ra["tocilizumab"], ra["untreated"]
    il1 = window(ank, "IL1_signal_effective", 40, 57).mean()
    assert il1 < 0.5 * at(untreated, "IL1_signal_effective", 40)  # IL-1R1 signalling more than halved
    crp = window(ank, "CRP", 40, 57)
    assert 30 < crp.mean() < 33.5  # a modest fall from 34.8 mg/L, never normal
    assert crp.mean() > 10 * window(tcz, "CRP", 40, 57).mean()
    index = window(ank, "inflammation_index", 40, 57).mean()
    assert 0.57 < index < 0.61  # from 0.663; tocilizumab: about 0.53
    assert at(ank, "CRP", 120) == pytest.approx(CRP_UNTREATED, rel=0.01)  # back after stopping on day 57


def test_ustekinumab_silences_il17_but_barely_moves_crp_in_ra(ra):
    ust, untreated = ra["ustekinumab"], ra["untreated"]
    assert window(ust, "IL17", 60, 160).max() < 0.05 * at(untreated, "IL17", 60)
    assert 32 < window(ust, "CRP", 60, 160).mean() < 33.5  # IL-23 carries 20% of the loop (RA-like)
    assert 0.61 < window(ust, "inflammation_index", 60, 160).mean() < 0.62


def test_ustekinumab_beats_tocilizumab_on_the_index_in_crohns(crohns):
    ust, tcz, untreated = crohns["ustekinumab"], crohns["tocilizumab"], crohns["untreated"]
    assert at(untreated, "CRP", 60) == pytest.approx(31.3, abs=0.2)  # steady state with the Crohn's-like weight
    index_ust = window(ust, "inflammation_index", 60, 160).mean()
    index_tcz = window(tcz, "inflammation_index", 60, 110).mean()
    assert index_ust < 0.3 < 0.48 < index_tcz < 0.5  # from 0.581
    crp_ust = window(ust, "CRP", 60, 160).mean()
    assert 19 < crp_ust < 22  # CRP falls by a third, but only tocilizumab normalises it
    assert window(tcz, "CRP", 60, 110).max() < CRP_NORMAL


def test_tocilizumab_dose_response_is_monotone(model):
    rows = []
    for dose in TCZ_DOSES:
        ds = ilsim.simulate(model, T_END, parameters={"tcz_mg_per_kg": dose}, points=POINTS)
        crp = window(ds, "CRP", FIRST_DOSE, LAST_TCZ_DOSE + 28)
        rows.append((dose, float(ds["TCZ"].max()), crp.mean(), crp.min(),
                     first_day(ds, ds["CRP"].values > 10, LAST_TCZ_DOSE)))
    print("\nmg/kg  TCZ peak (mg/L)  mean CRP d30-114  CRP nadir  CRP > 10 again on day")
    for row in rows:
        print("{:5.1f}  {:15.1f}  {:16.2f}  {:9.2f}  {:>8}".format(*row[:4], f"{row[4]:.1f}" if row[0] else "-"))
    means = [r[2] for r in rows]
    nadirs = [r[3] for r in rows]
    relapse = [r[4] for r in rows[1:]]
    assert all(a > b for a, b in zip(means, means[1:]))
    assert all(a >= b for a, b in zip(nadirs, nadirs[1:]))
    assert all(a < b for a, b in zip(relapse, relapse[1:]))
    assert means[0] == pytest.approx(CRP_UNTREATED, rel=0.01)
    assert means[-1] < 2.0


@pytest.mark.parametrize("regimen, drug, last_dose, start, end, half_life", [
    ("tocilizumab", "TCZ", 86, 100, 200, 11.0),
    ("anakinra", "ANK", 57, 59, 60, 4 / 24),
    ("ustekinumab", "UST", 142, 190, 240, 19.0),
])
def test_drug_concentrations_are_non_negative_and_decay_with_their_half_life(ra, regimen, drug, last_dose, start,
                                                                            end, half_life):
    ds = ra[regimen]
    c = ds[drug].values
    assert np.all(c >= -1e-9)
    assert at(ds, drug, last_dose + 0.1) > 0
    c0, c1 = at(ds, drug, start), at(ds, drug, end)
    measured = (end - start) * math.log(2) / math.log(c0 / c1)
    assert measured == pytest.approx(half_life, rel=0.05)
    for other in {"TCZ", "ANK", "UST"} - {drug}:
        assert np.all(np.abs(ds[other].values) < 1e-9)  # the other drugs are off (dose 0)


def test_tocilizumab_peak_matches_the_label(ra):
    # 8 mg/kg x 70 kg / 3.5 L = 160 mg/L after the first dose; label mean Cmax at steady state about 183 ug/mL
    assert at(ra["tocilizumab"], "TCZ", FIRST_DOSE) == pytest.approx(160.0, rel=1e-6)
    assert 150 < float(ra["tocilizumab"]["TCZ"].max()) < 200


def test_cli_runs_and_shows_the_scenario(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["show", MODEL])
    assert result.exit_code == 0, result.output
    assert "IL6_signal_effective" in result.output and "tocilizumab" in result.output
    out = tmp_path / "ci"
    result = runner.invoke(app, ["run", MODEL, "--out", str(out), "--set", "anakinra_mg=100", "--points", "241"])
    assert result.exit_code == 0, result.output
    assert (out / "summary.json").exists()
