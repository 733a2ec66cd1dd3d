"""chronic-inflammation: an RA/Crohn's-like inflammatory loop at steady state, treated with
tocilizumab (anti-IL-6R), anakinra (IL-1Ra) and ustekinumab (anti-IL-12/23) given as doses with
one-compartment pharmacokinetics; CRP and the inflammation index fall on treatment and rise after
washout.

No paper publishes this model's course: its loop is assumed and calibrated (docs/scenarios/chronic-inflammation.md,
"What is sourced, calibrated and assumed"). The tests check behaviour (steady state, falls on treatment,
relapse after washout, orderings between drugs and settings, monotone dose-response, half-lives, the dose/volume
peak) against the stated thresholds and sources; ilsim's own numbers are pinned in
tests/scenarios/snapshots/chronic-inflammation.json to catch regressions.
"""

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


def test_untreated_disease_sits_at_a_steady_state_with_raised_crp(ra, snapshot):
    ds = ra["untreated"]
    crp, index = ds["CRP"].values, ds["inflammation_index"].values
    assert np.all(np.abs(crp / crp[0] - 1) < 0.001)  # stays there for 240 days
    assert np.all(np.abs(index - index[0]) < 0.001)
    assert 20 < crp[0] < 40  # typical of active RA (tens of mg/L; calibrated to about 30 mg/L)
    snapshot.check("untreated: CRP", crp[0], rel=0.01)
    snapshot.check("untreated: inflammation index", index[0], abs=0.001)
    for name in ("IL6", "IL1b", "TNF", "IL23", "IL17", "M", "Th17"):
        v = ds[name].values
        assert v[0] > 0 and np.all(np.abs(v / v[0] - 1) < 0.001), name
    assert ds.attrs["outcome"] == "active inflammation"


def test_tocilizumab_normalises_crp_within_two_weeks_and_lowers_the_index(ra, snapshot):
    ds = ra["tocilizumab"]
    day = first_day(ds, ds["CRP"].values < CRP_NORMAL, FIRST_DOSE)
    assert day - FIRST_DOSE <= 16  # within about two weeks, as in patients (ilsim: the snapshot)
    snapshot.check("tocilizumab: days from the first dose to CRP < 3 mg/L", day - FIRST_DOSE, abs=0.2)
    on = window(ds, "CRP", FIRST_DOSE + 14, LAST_TCZ_DOSE + 28)
    assert np.all(on < CRP_NORMAL)  # stays normal through the dosing interval after the last dose
    snapshot.check("tocilizumab: CRP nadir", on.min(), abs=0.02)  # near CRP's baseline (0.8 mg/L)
    index_on = window(ds, "inflammation_index", FIRST_DOSE + 14, LAST_TCZ_DOSE + 28)
    assert np.all(index_on < 0.55)  # from 0.663 untreated
    snapshot.check("tocilizumab: lowest inflammation index", index_on.min(), abs=0.005)
    assert at(ds, "TCZ_occupancy", LAST_TCZ_DOSE + 28) > 0.99


def test_crp_and_index_rise_again_after_tocilizumab_washout(ra, snapshot):
    ds = ra["tocilizumab"]
    assert at(ds, "CRP", 150) < CRP_NORMAL
    relapse = first_day(ds, ds["CRP"].values > 10, LAST_TCZ_DOSE)
    assert 150 < relapse < 240  # CRP > 10 mg/L again once TCZ falls to about 1 mg/L, within the run
    snapshot.check("tocilizumab: day CRP > 10 mg/L again", relapse, abs=3.9)  # was: between days 190 and 200
    assert at(ds, "CRP", 240) > 25  # most of the way back to the untreated level
    snapshot.check("tocilizumab: CRP on day 240", at(ds, "CRP", 240), rel=0.01)
    assert at(ds, "inflammation_index", 240) > at(ds, "inflammation_index", 150) + 0.08
    snapshot.check("tocilizumab: inflammation index on day 240", at(ds, "inflammation_index", 240), abs=0.01)
    assert ds.attrs["outcome"] == "active inflammation"


def test_anakinra_lowers_the_il1_axis_and_crp_less_than_tocilizumab(ra, snapshot):
    ank, tcz, untreated = ra["anakinra"], ra["tocilizumab"], ra["untreated"]
    il1 = window(ank, "IL1_signal_effective", 40, 57).mean()
    assert il1 < 0.5 * at(untreated, "IL1_signal_effective", 40)  # IL-1R1 signalling more than halved
    crp = window(ank, "CRP", 40, 57)
    assert crp.mean() < at(untreated, "CRP", 40) and crp.min() > CRP_NORMAL  # a modest fall, never normal
    assert crp.mean() > 10 * window(tcz, "CRP", 40, 57).mean()
    snapshot.check("anakinra: mean CRP, days 40-57", crp.mean(), rel=0.01)
    index = window(ank, "inflammation_index", 40, 57).mean()
    assert window(tcz, "inflammation_index", 40, 57).mean() < index < at(untreated, "inflammation_index", 40)
    snapshot.check("anakinra: mean inflammation index, days 40-57", index, abs=0.01)
    assert at(ank, "CRP", 120) == pytest.approx(at(untreated, "CRP", 120), rel=0.01)  # back after stopping on day 57


def test_ustekinumab_silences_il17_but_barely_moves_crp_in_ra(ra, snapshot):
    ust, untreated = ra["ustekinumab"], ra["untreated"]
    assert window(ust, "IL17", 60, 160).max() < 0.05 * at(untreated, "IL17", 60)
    crp = window(ust, "CRP", 60, 160).mean()
    assert 0.9 * at(untreated, "CRP", 60) < crp < at(untreated, "CRP", 60)  # IL-23 carries 20% of the loop (RA-like)
    snapshot.check("ustekinumab: mean CRP, days 60-160", crp, rel=0.01)
    index = window(ust, "inflammation_index", 60, 160).mean()
    assert index < at(untreated, "inflammation_index", 60)
    snapshot.check("ustekinumab: mean inflammation index, days 60-160", index, abs=0.003)


def test_ustekinumab_beats_tocilizumab_on_the_index_in_crohns(crohns, snapshot):
    ust, tcz, untreated = crohns["ustekinumab"], crohns["tocilizumab"], crohns["untreated"]
    crp_untreated = at(untreated, "CRP", 60)  # steady state with the Crohn's-like weight
    snapshot.check("Crohn's-like: untreated CRP", crp_untreated, abs=0.2)
    snapshot.check("Crohn's-like: untreated inflammation index", at(untreated, "inflammation_index", 60), abs=0.005)
    index_ust = window(ust, "inflammation_index", 60, 160).mean()
    index_tcz = window(tcz, "inflammation_index", 60, 110).mean()
    assert index_ust < index_tcz < at(untreated, "inflammation_index", 60)
    snapshot.check("Crohn's-like: ustekinumab, mean inflammation index, days 60-160", index_ust, abs=0.01)
    snapshot.check("Crohn's-like: tocilizumab, mean inflammation index, days 60-110", index_tcz, abs=0.005)
    crp_ust = window(ust, "CRP", 60, 160).mean()
    assert CRP_NORMAL < crp_ust < crp_untreated  # CRP falls, but only tocilizumab normalises it
    snapshot.check("Crohn's-like: ustekinumab, mean CRP, days 60-160", crp_ust, rel=0.01)
    assert window(tcz, "CRP", 60, 110).max() < CRP_NORMAL


def test_tocilizumab_dose_response_is_monotone(model, snapshot):
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
    assert nadirs[0] == pytest.approx(means[0], rel=0.001)  # no drug: CRP stays at its untreated steady state
    assert means[-1] < 2.0
    for dose, _, mean, nadir, relapse_day in rows:  # the dose-response table of docs/scenarios/chronic-inflammation.md
        snapshot.check(f"tocilizumab {dose} mg/kg: mean CRP, days 30-114", mean, rel=0.01)
        snapshot.check(f"tocilizumab {dose} mg/kg: CRP nadir", nadir, rel=0.01)
        if dose:
            snapshot.check(f"tocilizumab {dose} mg/kg: day CRP > 10 mg/L again", relapse_day, abs=0.2)


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
    # 8 mg/kg x 70 kg / 3.5 L = 160 mg/L after the first dose; each later dose adds 160 mg/L to what is left of
    # the earlier ones after 28 days of first-order elimination (half-life 11 days): the closed form of the model
    assert at(ra["tocilizumab"], "TCZ", FIRST_DOSE) == pytest.approx(160.0, rel=1e-6)
    third = 160.0 * (1 + 2 ** (-28 / 11) + 2 ** (-56 / 11))
    assert float(ra["tocilizumab"]["TCZ"].max()) == pytest.approx(third, rel=1e-4)
    # published: predicted mean (SD) steady-state Cmax 183 (85.6) ug/mL at 8 mg/kg every 4 weeks (Actemra US
    # prescribing information, section 12.3, population PK); the model's peak lies well within one SD of it
    assert abs(third - 183) < 85.6 and 150 < third < 200


def test_cli_runs_and_shows_the_scenario(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["show", MODEL])
    assert result.exit_code == 0, result.output
    assert "IL6_signal_effective" in result.output and "tocilizumab" in result.output
    out = tmp_path / "ci"
    result = runner.invoke(app, ["run", MODEL, "--out", str(out), "--set", "anakinra_mg=100", "--points", "241"])
    assert result.exit_code == 0, result.output
    assert (out / "summary.json").exists()
