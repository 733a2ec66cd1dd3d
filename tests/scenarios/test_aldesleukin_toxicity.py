"""Aldesleukin side effects: timing, CTCAE grades, the Textor et al. 1987 calibration, recovery, holding rule.

Published: Textor et al. 1987 (Am J Med 83:1055, abstract) give the weight gain and albumin after five days; the
US label gives the schedule and "more than two thirds need vasopressors"; both were calibration targets (see the
sources in src/ilsim/scenarios/aldesleukin.yaml), so agreement with them checks that the calibration holds.
Everything else (worst values, times, the dose log of a low-pressure patient) is ilsim's own output, pinned in
tests/scenarios/snapshots/aldesleukin.json to catch regressions.
"""

import numpy as np
import pytest

import ilsim
from ilsim.therapy import ctcae

MODEL = "aldesleukin"
LAST_DOSE = 104.0  # hours: dose 14 of the first course
IU_PER_CETUS_UNIT = 6.0  # Textor et al. 1987 dosed 100,000 (Cetus) U/kg, about 600,000 IU/kg
READOUTS = {"Hypotension": "systolic_bp", "Fever": "temperature", "Chills": "chills_index", "Nausea": "nausea_index",
            "Vomiting": "vomiting_rate", "Weight gain": "body_weight_now", "Platelet count decreased": "platelets"}


@pytest.fixture(scope="module")
def standard():
    ds = ilsim.simulate("aldesleukin")
    return ds, ilsim.summarise(ds)


def textor_spec():
    """100,000 U/kg every 8 h for 5 days (15 doses), no holding rule, as Textor et al. 1987 gave it."""
    spec = ilsim.load("aldesleukin")
    spec.doses = [{"drug": "aldesleukin", "route": "iv_infusion", "amount": 100_000 * IU_PER_CETUS_UNIT, "units": "IU/kg",
                   "duration": 0.25, "every": 8, "count": 15}]
    return spec


def grades(ds, term):
    return ctcae.grade_series(term, ds[READOUTS[term]].values, ds["time"].values,
                              baseline=70.0 if term == "Weight gain" else None)


def test_grades_for_the_standard_schedule(standard):
    _, summary = standard
    tox = summary["toxicity"]
    got = {term: tox[term]["max_grade"] for term in READOUTS}
    # the grades the model was calibrated to (aldesleukin.yaml): hypotension 4 (the vasopressor threshold), fever,
    # chills and vomiting 2, weight gain 1 (4 kg of 70 kg, Textor et al. 1987), platelets 1 (a nadir near
    # 100,000/mm3); nausea's parameters are assumed, so its grade 2 is ilsim's own result
    assert got == {"Hypotension": 4, "Fever": 2, "Chills": 2, "Nausea": 2, "Vomiting": 2, "Weight gain": 1,
                   "Platelet count decreased": 1}
    assert tox["Hypotension"]["hospitalisation"] and tox["Hypotension"]["intensive_care"]  # vasopressors
    assert not tox["Platelet count decreased"].get("flags")


def test_worst_values_and_their_times_match_the_snapshot(standard, snapshot):
    # the table "Grades for the standard schedule" of docs/scenarios/aldesleukin.md (first course)
    ds, summary = standard
    t = ds["time"].values
    course1 = t < 288
    for term, readout in READOUTS.items():
        values = ds[readout].values[course1]
        worst = values.min() if term in ("Hypotension", "Platelet count decreased") else values.max()
        snapshot.check(f"first course: worst {readout}", worst, rel=0.005)
        snapshot.check(f"first course: {term} reaches its highest grade at (h)", summary["toxicity"][term]["time_of_max"],
                       abs=0.5)
    snapshot.check("first course: lowest mean_arterial_pressure", ds["mean_arterial_pressure"].values[course1].min(),
                   rel=0.005)
    snapshot.check("first course: lowest albumin", ds["albumin"].values[course1].min(), rel=0.005)
    for grade, time in summary["toxicity"]["Hypotension"]["first_time_at_or_above"].items():
        snapshot.check(f"first course: hypotension grade {grade} first reached at (h)", time, abs=0.5)


def test_hypotension_builds_over_several_doses(standard):
    ds, summary = standard
    first = summary["toxicity"]["Hypotension"]["first_time_at_or_above"]
    first = {int(k): v for k, v in first.items()}
    assert first[2] > 16.0  # grade 2 not before dose 3 (t = 16 h)
    assert 24.0 < first[3] < first[4] < LAST_DOSE  # grade 3 after dose 4, grade 4 later in the first course
    t = ds["time"].values
    assert float(ds["systolic_bp"].values[t <= 8].min()) > 100  # the first dose alone: no hypotension


def test_vasopressor_threshold_is_crossed_by_the_typical_patient(standard):
    ds, _ = standard
    assert float(ds["mean_arterial_pressure"].min()) < 65  # Surviving Sepsis MAP target
    assert float(ds["vasopressors_indicated"].max()) == 1


def test_textor_1987_weight_gain_and_albumin_after_5_days(snapshot):
    # published: mean weight gain 4.0 kg, albumin 3.6 -> 2.2 g/dL over 5 days (Textor et al. 1987, Am J Med
    # 83:1055, abstract); the model was calibrated to them, so this checks the calibration holds
    ds = ilsim.simulate(textor_spec(), 360, points=3601)
    t = ds["time"].values
    weight, albumin = float(np.interp(120, t, ds["weight_gain"].values)), float(np.interp(120, t, ds["albumin"].values))
    assert weight == pytest.approx(4.0, abs=0.5)
    assert albumin == pytest.approx(2.2, abs=0.2)
    snapshot.check("Textor schedule: weight gain at 120 h", weight, rel=0.005)
    snapshot.check("Textor schedule: albumin at 120 h", albumin, rel=0.005)
    snapshot.check("Textor schedule: albumin at 216 h", float(np.interp(216, t, ds["albumin"].values)), rel=0.005)
    snapshot.check("Textor schedule: weight gain at 264 h", float(np.interp(264, t, ds["weight_gain"].values)),
                   rel=0.005)
    assert float(ds["systolic_bp"].values[t <= 120].min()) < 80  # progressive hypotension
    assert float(np.interp(216, t, ds["albumin"].values)) > 3.0  # reversible: albumin back above 3 g/dL 4 days after
    late = t >= 264  # and weight within 2 kg of baseline 6 days after the last dose (t = 112 h)
    assert float(ds["weight_gain"].values[late].max()) < 2.0


@pytest.mark.parametrize(("term", "within"), [("Fever", 72), ("Chills", 72), ("Nausea", 72), ("Vomiting", 72),
                                              ("Hypotension", 72), ("Weight gain", 120), ("Platelet count decreased", 192)])
def test_each_side_effect_recovers_after_the_last_dose(standard, term, within):
    ds, _ = standard
    t = ds["time"].values
    g = grades(ds, term)
    course1 = (t > LAST_DOSE) & (t < 288)
    assert g[t < 288].max() > 0
    assert (g[course1 & (t >= LAST_DOSE + within)] == 0).all(), f"{term} still graded {within} h after the last dose"


def test_symptoms_fade_within_three_days(standard):
    ds, _ = standard
    t = ds["time"].values
    after = (t >= LAST_DOSE + 72) & (t < 288)
    assert float(ds["temperature"].values[after].max()) < 37.5
    assert float(ds["nausea_index"].values[after].max()) < 0.5
    assert float(ds["vomiting_rate"].values[after].max()) < 0.5


def test_dose_log_of_the_standard_schedule(standard):
    _, summary = standard
    log = summary["dose_log"]
    assert [e["status"] for e in log] == ["given"] * 28  # pre-dose SBP stays >= 80 mmHg: nothing held
    assert [e["time"] for e in log] == [8.0 * i for i in range(14)] + [288 + 8.0 * i for i in range(14)]


def test_holding_rule_for_a_patient_with_low_baseline_pressure(snapshot):
    ds = ilsim.simulate("aldesleukin", parameters={"SBP0": 100, "MAP0": 75})
    log = ilsim.summarise(ds)["dose_log"]
    statuses = [(e["time"], e["status"]) for e in log]
    given = next(i for i, (_, status) in enumerate(statuses) if status != "given")  # doses given before the first hold
    assert 0 < given < 14
    first_hold = 8.0 * given
    snapshot.check("low baseline pressure (SBP0 100, MAP0 75): first held dose (h)", first_hold, abs=0)
    # stop_after 3: three consecutive doses held, then the course is stopped
    assert statuses[:given + 4] == [(8.0 * i, "given") for i in range(given)] + [
        (first_hold, "held"), (first_hold + 8, "held"), (first_hold + 16, "held"), (first_hold + 16, "course stopped")]
    assert statuses[given + 4] == (288.0, "given")  # stopping one course does not cancel the next
    assert log[given]["reason"] == "systolic_bp < SBP_hold"
    t = ds["time"].values
    assert float(np.interp(first_hold, t, ds["systolic_bp"].values)) < 80  # grade 3 at the first held dose


def test_held_doses_resume_once_pressure_recovers():
    # a one-off hypotensive episode (SBP0 lowered for one dose only, via a shorter course) resumes dosing
    spec = ilsim.load("aldesleukin")
    d = spec.doses[0].model_dump(exclude_none=True)
    d.update(cycles=1, count=14, hold={"when": "systolic_bp < SBP_hold", "resume": "systolic_bp >= SBP_resume",
                                       "stop_after": 10})
    d.pop("cycle_length")
    spec.doses = [d]
    log = ilsim.summarise(ilsim.simulate(spec, 200, parameters={"SBP0": 100, "MAP0": 75}))["dose_log"]
    statuses = [e["status"] for e in log]
    assert "held" in statuses and "resumed" in statuses
    resumed = [e["time"] for e in log if e["status"] == "resumed"]
    held = [e["time"] for e in log if e["status"] == "held"]
    assert min(resumed) > min(held)


def test_readouts_are_non_negative_and_bounded(standard):
    ds, _ = standard
    for name in ("activation", "pyrogen", "plasma_volume", "extravascular_fluid", "albumin_iv", "albumin_ev", "platelets",
                 "systolic_bp", "mean_arterial_pressure", "albumin", "vomiting_rate", "nausea_index", "chills_index"):
        assert float(ds[name].min()) >= -1e-9, name
    assert float(ds["activation"].max()) <= 1.0
    assert float(ds["temperature"].max()) < 40.0


def test_second_course_starts_recovered(standard, snapshot):
    ds, _ = standard
    t = ds["time"].values
    i = np.searchsorted(t, 288.0)
    assert float(ds["systolic_bp"].values[i]) > 115
    assert float(ds["platelets"].values[i]) > 150_000  # the lower limit of the reference range (Kratz et al. 2004)
    for name in ("systolic_bp", "platelets", "weight_gain"):
        snapshot.check(f"start of the second course (288 h): {name}", ds[name].values[i], rel=0.005)
