"""Events inside the batch kernel: timed doses, condition events, guards, parameter actions, cascades."""

import json

import event_cases as cases
import numpy as np
import pytest
from event_cases import equal_thresholds, exchange_rates, fills_to_its_threshold, short_infusion, short_infusion_exact

import ilsim
from ilsim.engines.batch import ENDLESS_EVENTS, OK, STATUS, BatchEngine
from ilsim.engines.ode import OdeEngine


def decay_with_doses():
    m = ilsim.Model(name="dosed").add_parameter("k", 0.5).add_parameter("dose", 4.0).add_species("x", 8.0)
    m.add_process("clearance", "k*x", consumes={"x": 1})
    m.add_event("dose", at=[2.5, 5.0], add={"x": "dose"})
    m.add_event("rescue", when="x < 1", set={"x": 5, "k": "k/2"})
    m.add_event("big dose only", at=[7.0], only_if="x > 100", add={"x": 1000})
    return ilsim.compile(m)


@pytest.mark.parametrize("method", ["dopri5", "rodas"])
def test_doses_conditions_and_guards_follow_the_exact_solution(method):
    m = decay_with_doses()
    t = np.linspace(0.0, 10.0, 201)
    P = np.array([m.p0, m.p0 * [1.0, 0.0]])  # the second patient gets empty doses
    r = BatchEngine(rtol=1e-10, atol=1e-12, method=method).run_full(m, t, P)
    assert (r.status == OK).all()
    ref = OdeEngine("LSODA", rtol=1e-11, atol=1e-13).run(m, t, m.p0)
    assert np.abs(r.Y[0] - ref.y).max() < 1e-7
    assert r.Y[0, t == 2.5, 0] == pytest.approx(8.0 * np.exp(-1.25) + 4.0, rel=1e-8)  # an output at a dose: after it
    names = [e.name for e in m.events]
    assert r.fired[0, names.index("dose")] == 2
    assert r.fired[0, names.index("big dose only")] == 0  # its guard was false
    rescues = r.fired[:, names.index("rescue")]
    assert rescues[0] == sum(1 for _, n in ref.event_log if n == "rescue") >= 1
    assert r.P_end[0, m.parameters.index("k")] == pytest.approx(0.5 / 2 ** rescues[0])
    # without doses: x = 8 exp(-t/2) reaches 1 at t = 2 ln 8 exactly; then x = 5, k = 1/4
    t_hit = 2.0 * np.log(8.0)
    after = t > t_hit
    expected = np.where(after, 5.0 * np.exp(-0.25 * (t - t_hit)), 8.0 * np.exp(-0.5 * t))
    assert np.allclose(r.Y[1, :, 0], expected, rtol=1e-7, atol=1e-9)
    assert r.P_end[1].tolist() == [0.25, 0.0]


def test_a_cascade_of_condition_events_fires_in_one_instant():
    m = ilsim.Model(name="cascade").add_species("x", 0.0).add_species("y", 0.0).add_species("z", 0.0)
    m.add_process("clock", "1", produces={"x": 1})
    m.add_event("first", when="x > 1", set={"y": 2})
    m.add_event("second", when="y > 1", set={"z": 3})
    m = ilsim.compile(m)
    r = BatchEngine().run_full(m, np.linspace(0.0, 2.0, 5), m.p0[None, :])
    assert r.status[0] == OK
    assert r.fired[0].tolist() == [1, 1]
    assert r.Y[0, -1].tolist() == pytest.approx([2.0, 2.0, 3.0])


@pytest.mark.parametrize("method", ["dopri5", "rodas", "auto"])
def test_a_trigger_that_settles_on_its_threshold_fires_once(method):
    spec = fills_to_its_threshold()
    m = ilsim.compile(spec)
    t = np.linspace(0.0, 50.0, 11)
    P = exchange_rates()
    r = BatchEngine(method=method).run_full(m, t, P)
    assert (r.status == OK).all()
    assert (r.fired[:, 0] == 1).all() and (r.Y[:, -1, 2] == 1.0).all()  # rounding noise on A + B never re-arms it
    assert np.allclose(r.Y[:, :, 0] + r.Y[:, :, 1], np.minimum(t, 1.0), atol=1e-8)
    ref = ilsim.simulate(spec, t_eval=t, parameters={"kf": P[5, 1], "kb": P[5, 2]})
    assert [name for _, name in json.loads(ref.attrs["events_fired"])] == ["full"]
    assert np.allclose(r.Y[5, :, 0], ref["A"].values, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("method", ["dopri5", "rodas", "auto"])
def test_conditions_with_equal_thresholds_fire_together_in_model_order(method):
    spec = equal_thresholds()
    m = ilsim.compile(spec)
    t = np.linspace(0.0, 8.0, 5)
    P = np.linspace(0.5, 1.5, 16)[:, None]
    r = BatchEngine(rtol=1e-6, atol=1e-9, method=method).run_full(m, t, P)
    assert (r.status == OK).all()
    assert (r.fired == 1).all()
    assert np.allclose(r.Y[:, -1, 1:], [1.0, 11.0])
    ref = ilsim.simulate(spec, t_eval=t)
    assert [name for _, name in json.loads(ref.attrs["events_fired"])] == ["first", "second"]
    assert [ref[v].values[-1] for v in ("y", "z")] == [1.0, 11.0]


@pytest.mark.parametrize("method", ["dopri5", "rodas", "auto"])
def test_a_short_infusion_in_a_rate_is_not_stepped_over(method):
    """Nothing changes for 50 time units, so DOPRI5's steps grow far beyond the 0.1-long infusion."""
    spec = short_infusion()
    m = ilsim.compile(spec)
    t = np.linspace(0.0, 100.0, 11)
    P = np.array([m.p0, m.p0 * [1.0, 0.5, 1.0]])  # the second patient's infusion starts at t = 25
    r = BatchEngine(rtol=1e-8, atol=1e-10, method=method).run_full(m, t, P)
    assert (r.status == OK).all()
    for patient, p in enumerate(P):
        rate, t_on, kel = p
        exact = short_infusion_exact(t, rate, t_on, kel)
        ref = ilsim.simulate(spec, t_eval=t, rtol=1e-8, atol=1e-10, parameters={"t_on": t_on})
        assert np.allclose(r.Y[patient, :, 0], exact, rtol=1e-6, atol=1e-9)
        assert np.allclose(ref["drug"].values, exact, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("method", ["dopri5", "rodas", "auto"])
def test_an_endless_cascade_ends_that_patient_alone_with_its_status(method):
    m = ilsim.compile(cases.endless_cascade())
    r = BatchEngine(rtol=1e-10, atol=1e-12, method=method).run_full(m, cases.CASCADE_TIMES, cases.CASCADE_P)
    assert r.status.tolist() == [OK, ENDLESS_EVENTS, OK]
    assert "endlessly" in STATUS[ENDLESS_EVENTS]
    before = cases.CASCADE_TIMES < 0.6
    assert np.allclose(r.Y[1, before], cases.endless_cascade_exact(cases.CASCADE_TIMES)[before], atol=1e-9)
    assert np.isnan(r.Y[1, ~before]).all()  # every row from the failure on
    for patient in (0, 2):
        assert np.allclose(r.Y[patient], cases.endless_cascade_exact(cases.CASCADE_TIMES), atol=1e-8)
        assert r.fired[patient].tolist() == [0, 1, 0]  # X once; Y and rearm never


def test_a_long_finite_cascade_fires_as_in_the_scipy_engine():
    """300 rounds of X -> Y -> rearm at t = 0.6: 898 firings at one instant, below the limit of 1000."""
    spec = cases.endless_cascade(rounds=300)
    m = ilsim.compile(spec)
    r = BatchEngine().run_full(m, cases.CASCADE_TIMES, m.p0[None, :])
    assert r.status[0] == OK and r.fired[0].tolist() == [299, 300, 299] and r.Y[0, -1, 3] == 300
    ref = ilsim.simulate(spec, t_eval=cases.CASCADE_TIMES)
    assert len(json.loads(ref.attrs["events_fired"])) == 898
    assert np.allclose(r.Y[0, :, 0], ref["x"].values, atol=1e-8)
