"""Per-patient metrics of a batch agree with the single-run summary of the same patient."""

import numpy as np
import pytest

import ilsim
from ilsim.errors import ModelError
from ilsim.io.results import summarise
from ilsim.model import expressions as ex
from ilsim.patients.evaluate import evaluate, output_times
from ilsim.patients.metrics import FAILED, parse_conditions, patient_metrics


@pytest.fixture(scope="module")
def kp():
    return ilsim.compile("kirschner-panetta-1998")


def test_metrics_match_single_run_summaries(kp):
    t = output_times(kp, 400.0, 401)
    cs = [0.02, 0.035, 0.05]
    P = np.tile(kp.p0, (len(cs), 1))
    P[:, kp.parameters.index("c")] = cs
    block = evaluate(kp, P, t, conditions=parse_conditions(kp, ["T < 1e4", "E > 3e4"]))
    m = block.metrics
    assert list(m.index) == [0, 1, 2] and (m["status"] == "ok").all()
    for k, c in enumerate(cs):
        ds = ilsim.simulate(kp, t_eval=t, parameters={"c": c}, rtol=1e-9, atol=1e-12)
        summary = summarise(ds)
        assert m.loc[k, "outcome"] == summary["outcome"]
        for name, var in summary["variables"].items():
            scale = max(abs(var["peak"]), 1e-12)
            assert m.loc[k, f"{name}.peak"] == pytest.approx(var["peak"], rel=1e-4, abs=1e-6 * scale)
            assert m.loc[k, f"{name}.final"] == pytest.approx(var["final"], rel=1e-4, abs=1e-6 * scale)
            assert m.loc[k, f"{name}.nadir"] == pytest.approx(var["nadir"], rel=1e-4, abs=1e-6 * scale)
            assert abs(m.loc[k, f"{name}.peak_time"] - var["peak_time"]) <= 1.0  # one output step
        below = ds["T"].values < 1e4
        expected = float(t[np.argmax(below)]) if below.any() else np.nan
        assert m.loc[k, "first_time[T < 1e4]"] == pytest.approx(expected, nan_ok=True)


def test_outcome_is_the_first_label_that_holds(kp):
    """Vectorised outcome labels equal the tree-walking classification of each final state."""
    from ilsim.io.results import classify

    rng = np.random.default_rng(3)
    n, t = 50, np.array([0.0, 1.0])
    Y = np.abs(rng.lognormal(8, 3, size=(n, 2, len(kp.species))))
    Y[::3, -1, kp.species.index("T")] = 0.0  # some cleared tumours
    P = np.tile(kp.p0, (n, 1))
    m = patient_metrics(kp, t, Y, P, np.zeros(n, dtype=int))
    for k in range(n):
        assert m.loc[k, "outcome"] == classify(kp, t, Y[k], np.tile(P[k], (len(t), 1)))


def test_failed_patient_keeps_nan_metrics_and_others_are_untouched(kp):
    n, t = 3, np.linspace(0, 1, 3)
    Y = np.ones((n, 3, len(kp.species)))
    Y[1, 1:] = np.nan
    status = np.array([0, 2, 0])
    m = patient_metrics(kp, t, Y, np.tile(kp.p0, (n, 1)), status, status_text={0: "ok", 2: "step size underflow"},
                        first_id=100)
    assert list(m.index) == [100, 101, 102]
    assert m.loc[101, "outcome"] == FAILED and m.loc[101, "status"] == "step size underflow"
    assert np.isnan(m.loc[101, "T.peak"]) and m.loc[100, "T.peak"] == 1.0 and m.loc[102, "T.final"] == 1.0


def test_bad_conditions_are_clear_errors(kp):
    with pytest.raises(ModelError, match="unknown name 'Tumour'.*did you mean"):
        parse_conditions(kp, ["Tumour < 3"])
    with pytest.raises(ModelError, match="not a condition"):
        parse_conditions(kp, ["T + 1"])
    with pytest.raises(ModelError, match="time_to"):
        parse_conditions(kp, ["T <"])


def test_evaluate_array_matches_scalar_evaluation():
    node = ex.parse("piecewise(x * 2, x > 1 and not (y < 0), max(x, y) + log(x + 2) - hill(x, 1, 2))")
    xs, ys = np.linspace(-1, 3, 9), np.linspace(-2, 2, 9)
    got = ex.evaluate_array(node, {"x": xs, "y": ys})
    want = [ex.evaluate(node, {"x": a, "y": b}) for a, b in zip(xs, ys)]
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_a_window_labels_each_patient_of_a_batch_as_a_single_run_labels_it():
    """x = a sin t to t = 7 pi, 'settled low' if x < 0.5 over the last 0.6: only a < 0.5 / sin 0.6 stays low there,
    while at the final instant (x = 0) every patient reads low."""
    t = np.linspace(0.0, 7 * np.pi, 701)
    amplitudes = np.array([0.3, 0.85, 0.9, 1.0, 2.0])  # the edge: 0.5 / sin(last s on the grid) = 0.89
    for held_for, expected in [(None, ["settled low"] * 5), (0.6, ["settled low"] * 2 + ["still swinging"] * 3)]:
        m = ilsim.Model(name="sine").add_parameter("a", 1.0).add_species("x", 0.0, nonnegative=False)
        m.add_process("drive", "a*cos(t)", produces={"x": 1})
        m.add_outcome("settled low", "x < 0.5", held_for=held_for).add_outcome("still swinging", "x > -3")
        compiled = ilsim.compile(m)
        block = evaluate(compiled, amplitudes[:, None], t)
        assert block.metrics["outcome"].tolist() == expected
        for a, got in zip(amplitudes, block.metrics["outcome"]):
            assert ilsim.simulate(compiled, t_eval=t, parameters={"a": a}).attrs["outcome"] == got
