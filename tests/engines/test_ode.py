"""The ODE engine against analytic solutions: accuracy, exact events, non-negativity, mass balance."""

import functools
import json
import math

import numpy as np
import pytest
from event_cases import CASCADE_TIMES, endless_cascade, endless_cascade_exact

import ilsim
from ilsim.errors import SimulationError
from ilsim.model.compile import compile_model

METHODS = ["LSODA", "BDF", "Radau", "RK45", "DOP853"]


def decay(**extra):
    m = ilsim.Model(name="decay").add_parameter("k", 0.5, units="1/day", source="test")
    m.add_species("x", 8.0, units="mg")
    m.add_process("clearance", "k*x", consumes={"x": 1})
    for name, kwargs in extra.items():
        m.add_event(name, **kwargs)
    return m


@pytest.mark.parametrize("method", METHODS)
def test_every_method_matches_exponential_decay(method):
    ds = ilsim.simulate(decay(), 10, points=11, method=method, rtol=1e-9, atol=1e-12)
    t = ds["time"].values
    assert np.allclose(ds["x"].values, 8 * np.exp(-0.5 * t), rtol=1e-6, atol=1e-9)
    assert ds.attrs["method"] == method


@pytest.mark.parametrize("method", METHODS)
def test_timed_event_adds_a_bolus_exactly_at_its_time(method):
    ds = ilsim.simulate(decay(dose={"at": [2.5, 5.0], "add": {"x": 4}}), 10, points=21, method=method,
                        rtol=1e-9, atol=1e-12)
    t = ds["time"].values
    expected = 8 * np.exp(-0.5 * t) + 4 * np.exp(-0.5 * (t - 2.5)) * (t >= 2.5) + 4 * np.exp(-0.5 * (t - 5)) * (t >= 5)
    assert np.allclose(ds["x"].values, expected, rtol=1e-6)  # the output at t = 2.5 and 5 is after the dose
    assert [name for _, name in __import__("json").loads(ds.attrs["events_fired"])] == ["dose", "dose"]


def test_event_at_time_zero_applies_before_the_first_output():
    ds = ilsim.simulate(decay(start={"at": 0, "set": {"x": 1}}), 2, points=3)
    assert float(ds["x"][0]) == 1.0


def test_event_can_switch_a_parameter_and_the_switch_is_in_the_results():
    ds = ilsim.simulate(decay(stop_clearance={"at": 2, "set": {"k": 0}}), 6, points=7, rtol=1e-10, atol=1e-12)
    x2 = 8 * math.exp(-1.0)
    assert np.allclose(ds["x"].sel(time=[2, 4, 6]).values, x2, rtol=1e-7)
    assert list(ds["k"].values) == [0.5, 0.5, 0, 0, 0, 0, 0]
    assert ds["k"].attrs["role"] == "parameter"


@pytest.mark.parametrize("method", ["LSODA", "BDF", "DOP853"])
def test_condition_event_is_located_by_root_finding(method):
    # x grows at rate r; whenever x reaches 10 it is reset to 1: a sawtooth of period ln(10)/r
    m = ilsim.Model(name="sawtooth").add_parameter("r", 0.7).add_species("x", 1.0)
    m.add_process("growth", "r*x", produces={"x": 1})
    m.add_event("reset", when="x > 10", set={"x": 1})
    ds = ilsim.simulate(m, 10, points=101, method=method, rtol=1e-10, atol=1e-12)
    times = [t for t, _ in __import__("json").loads(ds.attrs["events_fired"])]
    period = math.log(10) / 0.7
    assert len(times) == int(10 / period)
    assert np.allclose(times, period * np.arange(1, len(times) + 1), rtol=1e-6)
    assert float(ds["x"].max()) <= 10 + 1e-6


def test_a_dose_that_crosses_a_threshold_fires_the_condition_event_at_once():
    m = ilsim.Model(name="cascade").add_species("x", 0.0).add_parameter("alarm", 0.0)
    m.add_event("dose", at=1, add={"x": 5})
    m.add_event("alarm", when="x > 3", set={"alarm": 1})
    ds = ilsim.simulate(m, 2, points=3)
    assert __import__("json").loads(ds.attrs["events_fired"]) == [[1.0, "dose"], [1.0, "alarm"]]
    assert list(ds["alarm"].values) == [0, 1, 1]


def test_non_negative_species_stops_at_zero_instead_of_going_below():
    # zero-order consumption: naive integration drives x to -1 by t = 2
    m = ilsim.Model(name="depletion").add_species("x", 1.0).add_species("y", 1.0, nonnegative=False)
    m.add_process("use x", "0.5 + 0*x", consumes={"x": 1})
    m.add_process("use y", "0.5", consumes={"y": 1})
    for method in METHODS:
        ds = ilsim.simulate(m, 4, points=41, method=method)
        assert float(ds["x"].min()) >= 0.0
        assert float(ds["x"][-1]) == pytest.approx(0.0, abs=1e-9)
        assert float(ds["y"][-1]) == pytest.approx(-1.0, rel=1e-6)  # declared signed: free to go negative


def test_conversion_conserves_mass():
    m = ilsim.Model(name="conversion").add_parameter("k", 3.0).add_parameter("kb", 1.0)
    m.add_species("A", 2.0).add_species("B", 0.5)
    m.add_process("forward", "k*A", consumes={"A": 1}, produces={"B": 1})
    m.add_process("back", "kb*B**2", consumes={"B": 2}, produces={"A": 2})
    ds = ilsim.simulate(m, 5, points=51, method="Radau", rtol=1e-10, atol=1e-12)
    total = ds["A"].values + ds["B"].values
    assert np.allclose(total, 2.5, rtol=1e-8)


@pytest.mark.parametrize("name", ["kirschner-panetta-1998", "reynolds-2006"])
def test_analytic_jacobian_matches_finite_differences(name):
    model = ilsim.compile(name)
    rng = np.random.default_rng(1)
    for _ in range(5):
        y = rng.uniform(0.1, 3.0, len(model.species)) * np.maximum(1.0, np.abs(model.initial_state(model.p0)))
        jac = model.jacobian(y, 0.0, model.p0)
        numeric = np.empty_like(jac)
        for k in range(len(y)):
            h = 1e-6 * max(1.0, abs(y[k]))
            up, down = y.copy(), y.copy()
            up[k] += h
            down[k] -= h
            numeric[:, k] = (model.rhs(up, 0.0, model.p0) - model.rhs(down, 0.0, model.p0)) / (2 * h)
        assert np.allclose(jac, numeric, rtol=1e-5, atol=1e-8 * np.abs(numeric).max())


def test_methods_agree_on_the_reynolds_scenario():
    runs = {m: ilsim.simulate("reynolds-2006", 200, points=201, method=m, rtol=1e-9, atol=1e-11) for m in METHODS}
    ref = runs["Radau"]
    for method, ds in runs.items():
        for v in ("P", "N", "D", "CA"):
            scale = float(np.ptp(ref[v].values))
            assert np.abs(ds[v].values - ref[v].values).max() < 1e-4 * scale, (method, v)


def test_the_same_inputs_give_identical_numbers():
    a = ilsim.simulate("reynolds-2006", 100)
    b = ilsim.simulate("reynolds-2006", 100)
    for v in a.data_vars:
        assert np.array_equal(a[v].values, b[v].values)


def test_python_kernel_and_numba_kernel_agree():
    spec = ilsim.load("reynolds-2006")
    jit, plain = compile_model(spec, jit=True), compile_model(spec, jit=False)
    y = np.array([0.5, 0.2, 1.0, 0.3])
    assert np.allclose(jit.rhs(y, 0.0, jit.p0), plain.rhs(y, 0.0, plain.p0), rtol=1e-14)
    assert np.allclose(jit.jacobian(y, 0.0, jit.p0), plain.jacobian(y, 0.0, plain.p0), rtol=1e-14)


def test_tiered_kernels_start_plain_and_switch_to_compiled_once_a_run_is_long():
    """The default (jit="auto"): a short run of a new model compiles nothing; a long run switches to the compiled
    kernels as it goes, and later runs start compiled. The plain and compiled kernels give the same bits, so every
    one of these runs gives exactly the numbers of a run compiled from the start."""
    from ilsim.engines.ode import OdeEngine

    m = ilsim.Model(name="tiered").add_parameter("a", 1.0).add_parameter("b", 0.4).add_species("x", 2.0).add_species("y", 1.0)
    m.add_process("prey", "a*x", produces={"x": 1}).add_process("meet", "b*x*y", consumes={"x": 1}, produces={"y": 1})
    m.add_process("loss", "y", consumes={"y": 1})
    tiered, compiled = compile_model(m), compile_model(m, jit=True)
    assert tiered.jit == "auto"
    ilsim.simulate(tiered, 5, points=6)
    assert "_compiled" not in tiered._kernels  # nothing compiled for a short run
    t = np.linspace(0.0, 2000.0, 11)
    engine = OdeEngine("RK45", 1e-10, 1e-12)  # ~10^5 right-hand sides: past the switch
    reference = engine.run(compiled, t, compiled.p0)
    first = engine.run(tiered, t, tiered.p0)
    assert "_compiled" in tiered._kernels  # the long run switched
    assert tiered.run_kernels()["rhs"] is tiered.compiled_kernels()["rhs"]  # later runs start compiled
    np.testing.assert_array_equal(first.y, reference.y)
    np.testing.assert_array_equal(engine.run(tiered, t, tiered.p0).y, reference.y)
    np.testing.assert_array_equal(engine.run(compile_model(m), t, tiered.p0).y, reference.y)  # a new model, the same
    plain = engine.run(compile_model(m, jit=False), t, tiered.p0)  # plain Python throughout: the same bits
    np.testing.assert_array_equal(plain.y, reference.y)


def test_tiered_kernels_count_calls_over_short_runs():
    """Short runs of one model add up: once they have made ``TIERED_CALLS`` right-hand-side calls, the next run
    starts compiled, with the numbers of the first."""
    from ilsim.engines.ode import OdeEngine
    from ilsim.model.compile import TIERED_CALLS

    m = ilsim.Model(name="short").add_parameter("k", 0.3).add_species("x", 1.0).add_species("y", 0.0)
    m.add_process("convert", "k*x*exp(-y)", consumes={"x": 1}, produces={"y": 1})
    tiered = compile_model(m)
    engine, t = OdeEngine("RK45", 1e-8, 1e-10), np.linspace(0.0, 50.0, 6)
    first = engine.run(tiered, t, tiered.p0)
    calls = tiered._kernels["_calls"]
    assert 0 < calls < TIERED_CALLS and "_compiled" not in tiered._kernels
    for _ in range(TIERED_CALLS // calls + 1):
        np.testing.assert_array_equal(engine.run(tiered, t, tiered.p0).y, first.y)
    assert "_compiled" in tiered._kernels
    np.testing.assert_array_equal(engine.run(tiered, t, tiered.p0).y, first.y)


@pytest.mark.parametrize("method", ["LSODA", "BDF", "RK45"])
def test_condition_event_whose_action_leaves_it_true_fires_once(method):
    m = ilsim.Model(name="flag").add_species("x", 0.0).add_parameter("flag", 0.0)
    m.add_process("inflow", "1", produces={"x": 1})
    m.add_event("mark", when="x > 2.5", set={"flag": 1})
    ds = ilsim.simulate(m, 10, points=11, method=method)
    assert __import__("json").loads(ds.attrs["events_fired"]) == [[pytest.approx(2.5), "mark"]]
    assert list(ds["flag"].values) == [0, 0, 0] + [1] * 8


@pytest.mark.parametrize("jit", [True, False])
def test_factorial_is_gamma_of_x_plus_one_in_kernels_and_jacobian(jit):
    m = ilsim.Model(name="fact").add_species("x", 0.5).add_process("growth", "0.1*factorial(x)", produces={"x": 1})
    compiled = compile_model(m, jit=jit)
    y = np.array([2.5])
    assert compiled.rhs(y, 0.0, compiled.p0)[0] == pytest.approx(0.1 * math.gamma(3.5), rel=1e-14)
    h = 1e-6  # the Jacobian's factorial derivative is a central difference: close to 0.1 * gamma(3.5) * digamma(3.5)
    fd = 0.1 * (math.gamma(3.5 + h) - math.gamma(3.5 - h)) / (2 * h)
    assert compiled.jacobian(y, 0.0, compiled.p0)[0, 0] == pytest.approx(fd, rel=1e-5)
    from ilsim.model import expressions as ex

    assert ex.evaluate(ex.parse("factorial(4)"), {}) == 24.0
    assert math.isnan(ex.evaluate(ex.parse("factorial(-2)"), {})) and ex.evaluate(ex.parse("factorial(200)"), {}) == math.inf


def test_yaml_parameters_must_still_be_finite():
    with pytest.raises(Exception, match="finite"):
        ilsim.Model(name="bad").add_parameter("k", math.inf)


@pytest.mark.parametrize("method", ["LSODA", "RK45", "Radau"])
def test_an_endless_cascade_is_a_clear_error_naming_the_time_and_events(method):
    spec = endless_cascade()
    message = r"events fire endlessly at t = 0\.6: more than 1000 firings at this one instant.*\(X, Y, rearm\)"
    with pytest.raises(SimulationError, match=message):
        ilsim.simulate(spec, t_eval=CASCADE_TIMES, method=method)
    ds = ilsim.simulate(spec, t_eval=CASCADE_TIMES, method=method, parameters={"y_on": 2.0}, rtol=1e-10, atol=1e-12)
    assert np.allclose(np.column_stack([ds[v].values for v in "xys"]), endless_cascade_exact(CASCADE_TIMES), atol=1e-8)


def test_a_long_finite_cascade_completes_in_order():
    """X, Y and rearm feed one another for 300 rounds at t = 0.6 (898 firings, nested 600 deep), then stop."""
    ds = ilsim.simulate(endless_cascade(rounds=300), t_eval=CASCADE_TIMES)
    fired = [name for _, name in json.loads(ds.attrs["events_fired"])]
    assert fired == ["X"] + ["Y", "rearm", "X"] * 299 and float(ds["n"][-1]) == 300
    assert np.allclose(ds["x"].values, endless_cascade_exact(CASCADE_TIMES)[:, 0], atol=1e-8)


@pytest.mark.parametrize("method", ["LSODA", "BDF", "Radau", "RK45", "DOP853"])
def test_a_condition_true_only_inside_a_window_narrower_than_a_step_is_not_stepped_over(method):
    """x = 10 - t is in [3, 4.3] only for 5.7 <= t <= 7, while a linear decline lets the solver take steps far
    longer than that (SBML Test Suite 01703): the event fires at 5.7 exactly and resets x to 10."""
    m = ilsim.Model(name="window").add_species("x", 10.0).add_species("n", 0.0)
    m.add_process("drain", "1", consumes={"x": 1})
    m.add_event("in the window", when="x <= 4.3 and x >= 3", set={"x": 10, "n": "n + 1"})
    m = ilsim.compile(m)
    tr = ilsim.OdeEngine(method).run(m, np.array([0.0, 5.0, 10.0]), m.p0)
    assert [name for _, name in tr.event_log] == ["in the window"]
    assert tr.event_log[0][0] == pytest.approx(5.7, abs=1e-6)
    assert tr.y[-1].tolist() == pytest.approx([10.0 - (10.0 - 5.7), 1.0], abs=1e-6)  # x = 10 - (t - 5.7) at 10


@functools.lru_cache(maxsize=1)
def chain(n: int, k: float):
    """x0 -> x1 -> ... -> x(n-1) at rate k, from x0 = 1 (compiled once for the tests below)."""
    m = ilsim.Model(name="chain").add_parameter("k", k)
    for i in range(n):
        m.add_species(f"x{i}", 1.0 if i == 0 else 0.0)
    for i in range(n - 1):
        m.add_process(f"step{i}", f"k*x{i}", consumes={f"x{i}": 1}, produces={f"x{i + 1}": 1})
    return compile_model(m, jit=False)  # plain Python kernels: numba would take longer to compile than to run


@pytest.mark.parametrize("method", ["LSODA", "BDF", "Radau"])
def test_a_large_sparse_network_is_integrated_with_a_sparse_jacobian_to_the_exact_solution(method):
    """A chain of 100 species at rate k from x0 = 1: x_n(t) = (kt)^n e^(-kt) / n! (Poisson). From SPARSE_FROM
    species on, the implicit methods factorise a sparse Jacobian and LSODA (dense only) gives way to BDF."""
    from ilsim.engines.ode import SPARSE_FROM

    n, k = SPARSE_FROM, 2.0
    m = chain(n, k)
    t = np.array([0.0, 1.0, 5.0, 20.0])
    tr = ilsim.OdeEngine(method, rtol=1e-8, atol=1e-12).run(m, t, m.p0)
    assert tr.stats["method"] == ("BDF" if method == "LSODA" else method)
    j = np.arange(n - 1)
    log_poisson = j[None, :] * np.log(np.maximum(k * t[:, None], 1e-300)) - k * t[:, None] - np.array(
        [math.lgamma(i + 1) for i in j])[None, :]
    exact = np.where(t[:, None] == 0, (j == 0)[None, :].astype(float), np.exp(log_poisson))
    assert np.allclose(tr.y[:, :-1], exact, rtol=1e-5, atol=1e-9)
    assert np.allclose(tr.y.sum(axis=1), 1.0, rtol=1e-7)  # mass is conserved
