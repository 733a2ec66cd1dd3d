"""One conformance suite over engines: the known-answer event, dose, non-negativity and failure cases,
written once and run through the engine contract (``Engine.solve``) of every engine: the SciPy engine
(explicit and implicit methods), the numba batch engine (dopri5, rodas, auto) and the C/CUDA kernel built as
C on the CPU. A new engine joins by adding one entry to ENGINES.

Every expected value is exact (a closed form) or an invariant; none is another engine's output.
"""

import math

import event_cases as cases
import numpy as np
import pytest

import ilsim
from ilsim.engines.base import SOLVER_FAILED, STATUS
from ilsim.engines.batch import BatchEngine
from ilsim.engines.csource import HostCEngine, c_compiler
from ilsim.engines.ode import OdeEngine
from ilsim.engines.tableaux import BAD_DELAY, BAD_INITIAL, ENDLESS_EVENTS, MAX_PENDING, OK, PENDING_FULL

ENGINES = {
    "scipy-LSODA": lambda rtol, atol: OdeEngine("LSODA", rtol, atol),
    "scipy-Radau": lambda rtol, atol: OdeEngine("Radau", rtol, atol),
    "scipy-DOP853": lambda rtol, atol: OdeEngine("DOP853", rtol, atol),
    "batch-dopri5": lambda rtol, atol: BatchEngine(rtol, atol, method="dopri5"),
    "batch-rodas": lambda rtol, atol: BatchEngine(rtol, atol, method="rodas"),
    "batch-auto": lambda rtol, atol: BatchEngine(rtol, atol, method="auto"),
    "c-kernel-auto": lambda rtol, atol: HostCEngine(rtol, atol, method="auto"),
}
needs_c = pytest.mark.skipif(c_compiler() is None, reason="no C compiler to build the C kernel on the CPU")
PARAMS = [pytest.param(name, marks=needs_c) if name.startswith("c-") else name for name in ENGINES]


def engine(name, rtol=1e-10, atol=1e-12):
    return ENGINES[name](rtol, atol)


def counts_events(name) -> bool:
    return not name.startswith("c-")  # the C/CUDA kernel keeps no event counts (EngineResult.fired is -1)


def decay_with_doses():
    """x' = -k x from 8; doses of 4 at 2.5 and 5; 'x < 1' sets x = 5 and halves k; a guarded dose never given."""
    m = ilsim.Model(name="dosed").add_parameter("k", 0.5).add_parameter("dose", 4.0).add_species("x", 8.0)
    m.add_process("clearance", "k*x", consumes={"x": 1})
    m.add_event("dose", at=[2.5, 5.0], add={"x": "dose"})
    m.add_event("rescue", when="x < 1", set={"x": 5, "k": "k/2"})
    m.add_event("big dose only", at=[7.0], only_if="x > 100", add={"x": 1000})
    return ilsim.compile(m)


@pytest.mark.parametrize("name", PARAMS)
def test_timed_doses_guards_and_a_condition_follow_the_exact_solution(name):
    m = decay_with_doses()
    t = np.linspace(0.0, 10.0, 41)
    P = np.array([m.p0, m.p0 * [1.0, 0.0]])  # the second patient's doses are empty
    r = engine(name).solve(m, t, P)
    assert r.status.tolist() == [OK, OK]
    # patient 0: doses at 2.5 and 5 keep x above 1 until after 5: x(5+) = (8 e^-1.25 + 4) e^-1.25 + 4
    x5 = (8.0 * math.exp(-1.25) + 4.0) * math.exp(-1.25) + 4.0
    t_hit = 5.0 + 2.0 * math.log(x5)  # x = x5 exp(-(t - 5)/2) reaches 1
    exact0 = np.where(t < 2.5, 8.0 * np.exp(-0.5 * t),
                      np.where(t < 5.0, (8.0 * math.exp(-1.25) + 4.0) * np.exp(-0.5 * (t - 2.5)),
                               np.where(t < t_hit, x5 * np.exp(-0.5 * (t - 5.0)), 5.0 * np.exp(-0.25 * (t - t_hit)))))
    assert np.allclose(r.Y[0, :, 0], exact0, rtol=1e-6, atol=1e-8)
    assert r.Y[0, t == 2.5, 0] == pytest.approx(8.0 * math.exp(-1.25) + 4.0, rel=1e-8)  # an output at a dose: after it
    # patient 1: no doses; x = 8 exp(-t/2) reaches 1 at t = 2 ln 8 exactly; then x = 5, k = 1/4
    t_hit = 2.0 * math.log(8.0)
    exact1 = np.where(t > t_hit, 5.0 * np.exp(-0.25 * (t - t_hit)), 8.0 * np.exp(-0.5 * t))
    assert np.allclose(r.Y[1, :, 0], exact1, rtol=1e-6, atol=1e-8)
    if counts_events(name):
        assert r.fired.tolist() == [[2, 1, 0], [2, 1, 0]]  # the guarded dose was never given
        assert r.P_end[:, 0].tolist() == pytest.approx([0.25, 0.25])  # an event changed a parameter per patient


@pytest.mark.parametrize("name", PARAMS)
def test_a_cascade_of_condition_events_fires_in_one_instant(name):
    m = ilsim.Model(name="cascade").add_species("x", 0.0).add_species("y", 0.0).add_species("z", 0.0)
    m.add_process("clock", "1", produces={"x": 1})
    m.add_event("first", when="x > 1", set={"y": 2})
    m.add_event("second", when="y > 1", set={"z": 3})
    m = ilsim.compile(m)
    r = engine(name).solve(m, np.linspace(0.0, 2.0, 5), m.p0[None, :])
    assert r.status[0] == OK and r.Y[0, -1].tolist() == pytest.approx([2.0, 2.0, 3.0])
    assert r.Y[0, 1].tolist() == pytest.approx([0.5, 0.0, 0.0], abs=1e-9)
    if counts_events(name):
        assert r.fired[0].tolist() == [1, 1]


@pytest.mark.parametrize("name", PARAMS)
def test_a_condition_true_at_the_start_waits_until_it_becomes_true_again(name):
    """x = 2 - t: 'x > 1' holds at t = 0 (no firing), is false after 1; 'x < 0.5' fires once at t = 1.5."""
    m = ilsim.Model(name="start").add_species("x", 2.0, nonnegative=False).add_species("n", 0.0)
    m.add_process("fall", "1", consumes={"x": 1})
    m.add_event("high", when="x > 1", add={"n": 100})
    m.add_event("low", when="x < 0.5", add={"n": 1})
    m = ilsim.compile(m)
    t = np.array([0.0, 0.7, 1.4, 2.1, 2.8])
    r = engine(name).solve(m, t, m.p0[None, :])
    assert r.status[0] == OK
    assert np.allclose(r.Y[0, :, 0], 2.0 - t, atol=1e-9)
    assert r.Y[0, :, 1].tolist() == [0, 0, 0, 1, 1]  # 'low' once, at 1.5; 'high' never


@pytest.mark.parametrize("name", PARAMS)
def test_a_trigger_that_settles_on_its_threshold_fires_once(name):
    m = ilsim.compile(cases.fills_to_its_threshold())
    t = np.linspace(0.0, 50.0, 11)
    P = cases.exchange_rates()[::5]
    r = engine(name, 1e-8, 1e-10).solve(m, t, P)
    assert (r.status == OK).all()
    assert (r.Y[:, -1, 2] == 1.0).all()  # rounding noise on A + B at its threshold never re-arms it
    assert np.allclose(r.Y[:, :, 0] + r.Y[:, :, 1], np.minimum(t, 1.0), atol=1e-7)


@pytest.mark.parametrize("name", PARAMS)
def test_conditions_with_equal_thresholds_fire_together_in_model_order(name):
    m = ilsim.compile(cases.equal_thresholds())
    t = np.linspace(0.0, 8.0, 5)
    P = np.linspace(0.5, 1.5, 4)[:, None]
    r = engine(name, 1e-8, 1e-10).solve(m, t, P)
    assert (r.status == OK).all()
    assert np.allclose(r.Y[:, -1, 1:], [1.0, 11.0])  # 'second' read y = 1, set by 'first' at the same instant
    assert np.allclose(r.Y[:, -1, 0], 0.1 * np.exp(P[:, 0] * 8.0), rtol=1e-6)


@pytest.mark.parametrize("name", PARAMS)
def test_a_short_infusion_written_in_a_rate_is_not_stepped_over(name):
    """Nothing changes for 50 time units, so steps grow far beyond the 0.1-long infusion."""
    m = ilsim.compile(cases.short_infusion())
    t = np.linspace(0.0, 100.0, 11)
    P = np.array([m.p0, m.p0 * [1.0, 0.5, 1.0]])  # the second patient's infusion starts at t = 25
    r = engine(name, 1e-8, 1e-10).solve(m, t, P)
    assert (r.status == OK).all()
    for patient, (rate, t_on, kel) in enumerate(P):
        assert np.allclose(r.Y[patient, :, 0], cases.short_infusion_exact(t, rate, t_on, kel), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", PARAMS)
def test_a_daily_window_computed_with_rounding_is_met_every_day(name):
    """BIOMD0000000577's light cycle: 2 for 4 h, then 3, each day from t = 28 (1 before). Its switch at 28 is
    computed as 28.000000000000004 and floor((52 - 28)/24) as 0: no one-ulp segment, no window stepped over."""
    m = ilsim.Model(name="daily").add_parameter("k", 1.0).add_species("x", 0.0, kind="other")
    m.add_process("drive", "k*piecewise(1, t < 28, piecewise(2, t - 28 - 24*floor((t - 28)/24) < 4, 3))", produces={"x": 1})
    m = ilsim.compile(m)
    r = engine(name, 1e-8, 1e-10).solve(m, np.array([0.0, 28.0, 56.0, 100.0]), m.p0[None, :])
    assert (r.status == OK).all()
    assert np.allclose(r.Y[0, :, 0], [0.0, 28.0, 28 + 8 + 60 + 8, 28 + 3 * 68], rtol=1e-6)  # a missed window: 3e-2


@pytest.mark.parametrize("name", PARAMS)
def test_non_negative_quantities_stay_non_negative(name):
    """Zero-order removal (rate k, not k x) drives x to zero at t = 1 and no further; an event that subtracts
    more than there is leaves zero, not a negative amount."""
    m = ilsim.Model(name="floor").add_parameter("k", 1.0).add_species("x", 1.0).add_species("y", 1.0)
    m.add_process("removal", "k", consumes={"x": 1})
    m.add_event("overdraw", at=0.5, add={"y": -5})
    m = ilsim.compile(m)
    t = np.linspace(0.0, 3.0, 13)
    r = engine(name, 1e-8, 1e-10).solve(m, t, m.p0[None, :])
    assert r.status[0] == OK
    assert (r.Y[0] >= 0.0).all()
    assert np.allclose(r.Y[0, :, 0], np.maximum(1.0 - t, 0.0), atol=1e-6)
    assert r.Y[0, t >= 0.5, 1].tolist() == [0.0] * int((t >= 0.5).sum())


@pytest.mark.parametrize("name", PARAMS)
def test_an_endless_cascade_fails_that_patient_alone(name):
    m = ilsim.compile(cases.endless_cascade())
    r = engine(name).solve(m, cases.CASCADE_TIMES, cases.CASCADE_P)
    expected = SOLVER_FAILED if name.startswith("scipy") else ENDLESS_EVENTS
    assert r.status.tolist() == [OK, expected, OK]
    assert "endless" in (r.messages[1] or STATUS[expected])
    exact = cases.endless_cascade_exact(cases.CASCADE_TIMES)
    for patient in (0, 2):  # its neighbours are untouched
        assert np.allclose(r.Y[patient], exact, atol=1e-8)


@pytest.mark.parametrize("name", PARAMS)
def test_a_bad_initial_state_fails_that_patient_alone(name):
    """x0 = a parameter: -1 is not allowed for a non-negative species, NaN nowhere; the others run."""
    m = ilsim.Model(name="start value").add_parameter("x0", 1.0).add_species("x", "x0")
    m.add_process("decay", "x", consumes={"x": 1})
    m = ilsim.compile(m)
    t = np.linspace(0.0, 1.0, 3)
    r = engine(name).solve(m, t, np.array([[1.0], [-1.0], [np.nan], [2.0]]))
    assert r.status.tolist() == [OK, BAD_INITIAL, BAD_INITIAL, OK]
    assert np.allclose(r.Y[[0, 3], :, 0], np.outer([1.0, 2.0], np.exp(-t)), rtol=1e-7)
    assert np.isnan(r.Y[[1, 2]]).all()


@pytest.mark.parametrize("name", [n for n in ENGINES if not n.startswith("c-")])
def test_parameters_over_time_and_the_firing_log(name):
    """With record_parameters and log_events, the engine keeps what events changed and when each fired."""
    m = decay_with_doses()
    t = np.linspace(0.0, 10.0, 21)
    r = engine(name).solve(m, t, m.p0[None, :], record_parameters=True, log_events=10)
    x5 = (8.0 * math.exp(-1.25) + 4.0) * math.exp(-1.25) + 4.0
    t_hit = 5.0 + 2.0 * math.log(x5)  # 'x < 1' (8.5166...): the rescue halves k
    assert (r.P_t[0, :, 0] == np.where(t < t_hit, 0.5, 0.25)).all()
    times = [time for time, _ in r.event_log[0]]
    names = [m.events[e].name for _, e in r.event_log[0]]
    assert names == ["dose", "dose", "rescue"] and times[:2] == [2.5, 5.0]
    assert times[2] == pytest.approx(t_hit, rel=1e-8)


@pytest.mark.parametrize("name", [n for n in ENGINES if not n.startswith("c-")])
def test_ilsim_simulate_runs_on_any_engine_with_the_same_dataset(name):
    """``ilsim.simulate(engine=...)``: the same variables, units, outcome and dose log whatever the engine."""
    import json

    m = decay_with_doses()
    t = np.linspace(0.0, 10.0, 41)
    ds = ilsim.simulate(m, t_eval=t, engine=engine(name))
    x5 = (8.0 * math.exp(-1.25) + 4.0) * math.exp(-1.25) + 4.0
    t_hit = 5.0 + 2.0 * math.log(x5)
    assert [n for _, n in json.loads(ds.attrs["events_fired"])] == ["dose", "dose", "rescue"]
    assert json.loads(ds.attrs["events_fired"])[2][0] == pytest.approx(t_hit, rel=1e-8)
    assert (ds["k"].values == np.where(t < t_hit, 0.5, 0.25)).all()  # a parameter an event changed, over time
    assert ds.attrs["engine"] == ENGINES[name](1e-10, 1e-12).name
    with pytest.raises(ilsim.IlsimError, match="give rtol to the engine"):
        ilsim.simulate(m, t_eval=t, engine=engine(name), rtol=1e-3)


@pytest.mark.parametrize("name", PARAMS)
def test_engine_simulate_gives_patients_as_a_dimension(name):
    m = decay_with_doses()
    t = np.linspace(0.0, 10.0, 11)
    P = np.array([m.p0, m.p0 * [1.0, 0.0]])
    if name.startswith("c-"):  # its events change k: the C kernel cannot say how, and says so
        with pytest.raises(ilsim.IlsimError, match="does not record parameters"):
            engine(name).simulate(m, t, P)
        return
    ds = engine(name).simulate(m, t, P)
    assert ds["x"].dims == ("patient", "time") and ds["x"].attrs["units"] == m.spec.species[0].units
    assert ds["status"].values.tolist() == [OK, OK] and list(ds["status_text"].values) == ["ok", "ok"]
    assert ds["events_fired"].sel(event="dose").values.tolist() == [2, 2]
    assert ds["parameters_end"].sel(parameter="k").values.tolist() == [0.25, 0.25]


@pytest.mark.parametrize("name", PARAMS)
def test_events_that_share_a_name_are_counted_apart(name):
    """Event names need not be unique (a dose's two 'held' events share one): counts go by event, not by name."""
    m = ilsim.Model(name="twins").add_species("x", 0.0)
    m.add_process("clock", "1", produces={"x": 1})
    m.add_event("e", at=1.0, add={"x": 10})
    m.add_event("e", at=2.0, add={"x": 100})
    m = ilsim.compile(m)
    r = engine(name).solve(m, np.linspace(0.0, 3.0, 4), m.p0[None, :])
    assert r.Y[0, :, 0].tolist() == pytest.approx([0.0, 11.0, 112.0, 113.0])
    if counts_events(name):
        assert r.fired.tolist() == [[1, 1]]


@pytest.mark.parametrize("name", PARAMS)
def test_sbml_triggers_strict_equal_and_on_time_fire_where_the_spec_says(name):
    """Strict comparisons are false at their threshold (an output at 5 shows 't > 5' not yet fired), equality on
    time fires at its instants, floor windows where they open, a remainder of time rising through a value fires
    there: counts at each output time, exactly."""
    m = ilsim.compile(cases.sbml_triggers())
    t = np.linspace(0.0, 50.0, 51)
    P = np.array([[0.0], [1.0]])
    r = engine(name, 1e-8, 1e-10).solve(m, t, P)
    assert (r.status == OK).all()
    for patient, (flag,) in enumerate(P):
        assert np.allclose(r.Y[patient], cases.sbml_triggers_exact(t, flag), atol=1e-7)
    if counts_events(name):
        assert r.fired.tolist() == [[0, 1, 2, 4, 1, 4], [1, 1, 2, 4, 1, 4]]


@pytest.mark.parametrize("name", PARAMS)
def test_a_condition_that_jumps_true_fires_once_per_jump(name):
    """A remainder of time wrapping to 0 makes 'rem <= 0.5' jump from false to true (MODEL2211040001's daily
    doses): located on its old side, it used to fire there and again across the jump, or restart for ever."""
    m = ilsim.compile(cases.daily_wrap())
    t = np.linspace(0.0, 20 * 86400.0, 81)  # every 6 hours, none on a jump (1080 + k day)
    r = engine(name, 1e-8, 1e-10).solve(m, t, m.p0[None, :])
    assert r.status[0] == OK
    assert r.Y[0].tolist() == cases.daily_wrap_exact(t, *m.p0).tolist()
    if counts_events(name):
        assert r.fired.tolist() == [[20]]


@pytest.mark.parametrize("name", PARAMS)
def test_an_equality_that_holds_all_along_does_not_move_a_crossing(name):
    m = ilsim.compile(cases.reset_when_idle())
    t = np.concatenate([[0.0], np.arange(0.5, 20.0, 1.0)])  # between the resets at 3, 6, 9, ...
    r = engine(name, 1e-8, 1e-10).solve(m, t, m.p0[None, :])
    assert r.status[0] == OK
    assert np.allclose(r.Y[0, :, 0], t - 3.0 * np.floor(t / 3.0), atol=1e-7)
    assert r.Y[0, :, 1].tolist() == np.floor(t / 3.0).tolist()


@pytest.mark.parametrize("name", PARAMS)
def test_a_window_narrower_than_a_step_is_met_and_an_empty_one_never_fires(name):
    """'x <= hi and x >= lo' with x falling linearly (SBML Test Suite 01703): each patient's window is far narrower
    than the steps a straight line allows, 0.01 wide for the second; the third's is empty (lo > hi), so its
    comparisons cross one after the other and the condition never holds. Resets at every (10 - hi)/k, exactly."""
    m = ilsim.compile(cases.narrow_window())
    t = np.linspace(0.0, 20.0, 41)  # between the resets (5.7, 11.4, 17.1; 6.99, 13.98)
    P = np.array([[1.0, 3.0, 4.3], [1.0, 3.0, 3.01], [0.4, 3.0, 2.9]])
    r = engine(name, 1e-8, 1e-10).solve(m, t, P)
    assert (r.status == OK).all()
    for patient, (k, lo, hi) in enumerate(P):
        assert np.allclose(r.Y[patient], cases.narrow_window_exact(t, k, lo, hi), atol=1e-7)
    if counts_events(name):
        assert r.fired[:, 0].tolist() == [3, 2, 0]


@pytest.mark.parametrize("persistent, at_trigger, y_end", [(True, True, 3.0), (True, False, 5.0), (False, True, 0.0)])
@pytest.mark.parametrize("name", PARAMS)
def test_a_delayed_event_applies_later_with_its_persistence_and_values(name, persistent, at_trigger, y_end):
    m = ilsim.compile(cases.delayed(persistent, at_trigger))
    t = np.array([0.0, 4.5, 5.5, 8.0])
    r = engine(name).solve(m, t, m.p0[None, :])
    assert r.status[0] == OK
    assert np.allclose(r.Y[0, :, 0], t) and r.Y[0, :, 1].tolist() == pytest.approx([0.0, 0.0, y_end, y_end])
    if counts_events(name):
        assert r.fired[0].tolist() == [1 if persistent else 0, 1]


@pytest.mark.parametrize("at_trigger, y", [(True, [0, 0, 1, 1, 3, 3]), (False, [0, 0, 4, 4, 12, 12])])
@pytest.mark.parametrize("name", PARAMS)
def test_two_firings_of_one_event_pending_at_once_each_apply_when_due(name, at_trigger, y):
    """Triggered at 1 and 2 with a delay d*x read at the trigger (due at 4 and 8): both wait in the queue."""
    m = ilsim.compile(cases.delayed_twice(values_at_trigger=at_trigger))
    t = np.array([0.0, 3.5, 4.5, 7.5, 8.5, 10.0])
    r = engine(name).solve(m, t, m.p0[None, :])
    assert r.status[0] == OK
    assert r.Y[0, :, 1].tolist() == pytest.approx(y, rel=1e-9)
    if counts_events(name):
        assert r.fired[0].tolist() == [2]


@pytest.mark.parametrize("name", PARAMS)
def test_events_at_one_instant_read_the_state_at_the_trigger_and_keep_their_persistence(name):
    """SBML's semantics of simultaneous events (L3 section 4.12; Test Suite 00935): the oracle is the spec."""
    m = ilsim.compile(cases.simultaneous())
    t = np.array([0.0, 0.5, 1.5, 3.0])
    r = engine(name).solve(m, t, m.p0[None, :])
    assert r.status[0] == OK
    a, b, s, u = (r.Y[0, :, m.species.index(v)].tolist() for v in "absu")
    assert (a, b) == ([1, 1, 2, 2], [2, 2, 1, 1])  # swapped, each from the other's value at the trigger
    assert (s[-1], u[-1]) == (3, 30)  # 'first', then 'second' (u read at the trigger) though the trigger is false
    if counts_events(name):  # 'third' was dropped
        assert r.fired[0].tolist() == [1, 1, 1, 1, 1, 0]


@pytest.mark.parametrize("name", PARAMS)
def test_more_pending_firings_than_the_queue_holds_fail_that_patient_by_name(name):
    """MAX_PENDING + 1 triggers at 0.01, 0.02, ... all due after the end: the SciPy engine's queue has no bound;
    the batch engine and the C/CUDA kernel stop the patient at the trigger that finds their queue full."""
    times = 0.01 * np.arange(1, MAX_PENDING + 2)
    m = ilsim.compile(cases.delayed_twice(times=times.tolist(), d=1000.0))
    t = np.array([0.0, 0.5, 1.0])
    r = engine(name).solve(m, t, np.vstack([m.p0, m.p0]))
    if name.startswith("scipy"):
        assert r.status.tolist() == [OK, OK] and r.Y[:, :, 1].tolist() == [[0.0] * 3] * 2
        return
    assert r.status.tolist() == [PENDING_FULL] * 2 and "delayed event firings pending" in r.messages[0]
    assert np.allclose(r.Y[:, :2, 0], [0.0, 0.5]) and np.isnan(r.Y[:, 2]).all()


@pytest.mark.parametrize("name", PARAMS)
def test_a_negative_delay_fails_that_patient_naming_the_delay(name):
    m = ilsim.compile(cases.delayed_twice(delay="x - 5"))  # -4 at the trigger at 1
    r = engine(name).solve(m, np.array([0.0, 0.5, 3.0]), m.p0[None, :])
    assert r.status[0] == (SOLVER_FAILED if name.startswith("scipy") else BAD_DELAY)
    assert "delay" in r.messages[0] and np.isnan(r.Y[0, 2]).all()
    if not name.startswith("scipy"):  # (the SciPy engine keeps no rows of a failed run)
        assert np.allclose(r.Y[0, :2, 0], [0.0, 0.5])


@pytest.mark.parametrize("name", PARAMS)
def test_species_of_1e_minus_20_are_integrated_to_their_own_size_at_the_default_tolerances(name):
    m = ilsim.compile(cases.tiny_amounts())
    t = np.linspace(0.0, 20.0, 21)
    r = ENGINES[name](1e-6, 1e-9).solve(m, t, m.p0[None, :])  # the defaults of every engine and of model files
    assert r.status[0] == OK
    assert np.allclose(r.Y[0], cases.tiny_amounts_exact(t), rtol=0.0, atol=1e-4 * 1e-20)


# ---- the stochastic engine (engines/ssa): the cases whose answer does not depend on chance. The others above
# compare with continuous solutions, which a stochastic trajectory does not follow (tests/engines/test_ssa.py
# checks its distributions against closed forms instead).
def test_ssa_applies_timed_doses_and_guards_exactly_where_no_process_fires():
    from ilsim.engines.ssa import SsaEngine

    m = decay_with_doses()
    t = np.linspace(0.0, 10.0, 41)
    r = SsaEngine(seed=0).solve(m, t, np.array([m.p0 * [0.0, 1.0]]), log_events=4)  # k = 0: only the events act
    assert r.status.tolist() == [OK]
    assert r.Y[0, :, 0].tolist() == (8.0 + 4.0 * (t >= 2.5) + 4.0 * (t >= 5.0)).tolist()  # after a dose at its time
    assert r.fired[0].tolist() == [2, 0, 0] and r.event_log[0] == [(2.5, 0), (5.0, 0)]


def test_ssa_refuses_a_delayed_event_by_name():
    from ilsim.engines.ssa import SsaEngine

    m = ilsim.compile(cases.delayed())
    with pytest.raises(ilsim.IlsimError, match="stochastic engine does not run events with a delay.*event 'late'"):
        SsaEngine(seed=0).solve(m, np.array([0.0, 1.0]), m.p0[None, :])


def test_ssa_an_endless_cascade_fails_that_trajectory_alone():
    from ilsim.engines.ssa import SsaEngine

    m = ilsim.compile(cases.endless_cascade())
    r = SsaEngine(seed=0).solve(m, cases.CASCADE_TIMES, cases.CASCADE_P)
    assert r.status.tolist() == [OK, ENDLESS_EVENTS, OK]
    assert "endless" in r.messages[1]
    for patient in (0, 2):  # X fires once, at the clock's first tick (if it ticks by t = 2); Y and rearm never
        ticked = bool(r.Y[patient, -1, 1] == 1.0)
        assert r.fired[patient].tolist() == [0, int(ticked), 0]
        assert r.Y[patient, -1, 2] == 0.0
