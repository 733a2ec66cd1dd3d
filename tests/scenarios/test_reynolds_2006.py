"""Reynolds et al. 2006 (J Theor Biol 242:220), Fig. 5: health, aseptic death, septic death.

What is published: Fig. 5 is a plot of the three courses; the paper states their outcomes, not numbers. So the
outcomes are checked against the paper, and the numbers (peaks, values at 500 h) against an independent solver,
libroadrunner (CVODE) running the BioModels encoding BIOMD0000000714, and against ilsim's own snapshot.
"""

import numpy as np
import pytest

import ilsim

MODEL = "reynolds-2006"
# (kpg [1/h], P0): the course the paper's Fig. 5 shows for it (outcome labels as in docs/scenarios/reynolds-2006.md)
FIG5 = {(0.3, 1.0): "health", (0.3, 1.5): "aseptic death", (0.6, 1.0): "septic death"}
SBML_NAMES = {"P": "P", "N": "Nstar", "D": "D", "CA": "C_A"}  # ilsim -> BIOMD0000000714


@pytest.fixture(scope="module")
def courses():
    model = ilsim.compile(MODEL)
    return {case: ilsim.simulate(model, 500, points=5001, parameters={"kpg": case[0], "P0": case[1]}) for case in FIG5}


def _peak(ds, name):
    """Works on an xarray Dataset and on a dict of arrays (the oracle's)."""
    values = np.asarray(ds[name])
    i = int(values.argmax())
    return float(values[i]), float(np.asarray(ds["time"])[i])


def _numbers(ds) -> dict[str, float]:
    """Peak, its time and the value at 500 h of every species of one course."""
    out = {}
    for name in SBML_NAMES:
        out[f"{name} peak"], out[f"{name} peak time"] = _peak(ds, name)
        out[f"{name} at 500 h"] = float(np.asarray(ds[name])[-1])
    return out


@pytest.mark.parametrize("case", list(FIG5))
def test_each_course_has_the_outcome_of_fig_5(courses, case):
    assert courses[case].attrs["outcome"] == FIG5[case]


def test_aseptic_death_clears_the_pathogen_but_inflammation_persists(courses):
    ds = courses[0.3, 1.5]
    assert float(ds["P"][-1]) < 1e-6
    assert float(ds["D"][-1]) > 5 and float(ds["N"][-1]) > 0.05


@pytest.mark.parametrize("case", list(FIG5))
def test_numbers_agree_with_libroadrunner_on_biomodels_714(courses, shared_data, case):
    sbml = shared_data("biomodels/models", "BIOMD0000000714__*.xml")
    roadrunner = pytest.importorskip("roadrunner", reason="libroadrunner is a test extra: pip install -e '.[test]'")
    rr = roadrunner.RoadRunner(str(sbml))  # the file's initial values are the scenario's: P = 1, N = D = 0, CA = 0.125
    rr["init(P)"] = case[1]  # (setting an initial value resets the model: parameters after it)
    rr["k_pg"] = case[0]
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-12
    rr.timeCourseSelections = ["time", *SBML_NAMES.values()]
    expected = np.asarray(rr.simulate(0, 500, 5001))
    oracle = {"time": expected[:, 0]} | {name: expected[:, col] for col, name in enumerate(SBML_NAMES, start=1)}
    ours, theirs = _numbers(courses[case]), _numbers(oracle)
    for key, value in ours.items():
        if key.endswith("peak time"):
            assert value == pytest.approx(theirs[key], abs=0.1 + 1e-9), key  # within one output step
        else:
            assert value == pytest.approx(theirs[key], rel=1e-6, abs=1e-9), key


@pytest.mark.parametrize("case", list(FIG5))
def test_numbers_match_the_snapshot(courses, snapshot, case):
    numbers = _numbers(courses[case])
    label = f"kpg={case[0]}, P0={case[1]}"
    for name in ("N", "D"):  # the response: peak size and time, state at 500 h
        snapshot.check(f"{label}: {name} peak", numbers[f"{name} peak"], rel=0.005)
        snapshot.check(f"{label}: {name} peak time", numbers[f"{name} peak time"], abs=1.0)
        snapshot.check(f"{label}: {name} at 500 h", numbers[f"{name} at 500 h"], rel=0.005, abs=1e-6)
    snapshot.check(f"{label}: P peak", numbers["P peak"], rel=0.005)
    snapshot.check(f"{label}: P peak time", numbers["P peak time"], abs=1.0)
    snapshot.check(f"{label}: P at 500 h", numbers["P at 500 h"], rel=0.005, abs=1e-6)


def test_outcome_is_written_to_summary(tmp_path):
    _, summary = ilsim.run(MODEL, tmp_path / "out", report=False, parameters={"kpg": 0.6})
    assert summary["outcome"] == "septic death"
