"""Rates that jump or bend at moments of time (floor, ceil, piecewise on t, abs, min/max): every method stops
there, so a square-wave drive integrates to its exact value.

Each oracle is worked out by hand: the integral of a piecewise constant (or piecewise linear) drive, or the
closed-form solution of dx/dt = u(t) - k x, interval by interval. Before the engines stopped at such moments,
BDF integrated the square wave below to 0 instead of 50 and RK45 to 18.
"""

import math

import numpy as np
import pytest

import ilsim
from ilsim.engines.ode import OdeEngine
from ilsim.model.switches import time_switches

SOLVERS = ["BDF", "LSODA", "Radau", "RK45", "DOP853"]
TOL = {"rtol": 1e-8, "atol": 1e-10}


def drive_model(rate: str, *, P: float = 2.5, k: float = 0.0, observables: dict | None = None):
    m = ilsim.Model(name="drive").add_parameter("P", P).add_parameter("k", k).add_species("x", 0.0, kind="other")
    for name, expression in (observables or {}).items():
        m.add_observable(name, expression)
    m.add_process("drive", rate, produces={"x": 1}).add_process("loss", "k*x", consumes={"x": 1})
    return m


def final(model, t_end: float, method: str) -> float:
    ds = ilsim.simulate(model, t_end, points=5, method=method, **TOL)
    return float(ds["x"].values[-1])


def square_wave_exact(t_end: float, P: float, k: float) -> float:
    """x(t_end) for dx/dt = u(t) - k x, x(0) = 0, u = 1 on the second half of each period P and 0 elsewhere."""
    x, t = 0.0, 0.0
    while t < t_end:
        period = math.floor(t / P + 1e-12)
        half = period * P + P / 2
        end = min(half if t < half else (period + 1) * P, t_end)
        u = 0.0 if t < half else 1.0
        h = end - t
        x = x * math.exp(-k * h) + (u * (1 - math.exp(-k * h)) / k if k else u * h)
        t = end
    return x


@pytest.mark.parametrize("method", SOLVERS)
def test_a_square_wave_written_with_floor_integrates_to_its_exact_value(method):
    # u = floor(2t/P) - 2 floor(t/P): 0 on the first half of each period, 1 on the second; P = 2.5 is not a
    # power of two, so the switch times are not exact binary numbers
    model = drive_model("floor(2*t/P) - 2*floor(t/P)")
    assert final(model, 101.3, method) == pytest.approx(50.05, rel=1e-7)  # 40 periods x 1.25, then 1.3 - 1.25
    leaky = drive_model("floor(2*t/P) - 2*floor(t/P)", k=0.3)
    assert final(leaky, 37.0, method) == pytest.approx(square_wave_exact(37.0, 2.5, 0.3), rel=1e-6)


@pytest.mark.parametrize("method", SOLVERS)
def test_a_pulse_train_as_piecewise_on_time_within_each_period(method):
    # on for D at the start of each period: t - P*floor(t/P) < D compares t with a term that changes each period
    model = drive_model("piecewise(1, t - P*floor(t/P) < 0.4, 0)")
    # 12 full periods of 2.5 (30) give 12 x 0.4; then t in [30, 31] adds 0.4 more
    assert final(model, 31.0, method) == pytest.approx(13 * 0.4, rel=1e-7)


@pytest.mark.parametrize("method", SOLVERS)
def test_floor_of_an_observable_of_time_and_a_falling_ceil(method):
    # phase = t/P is an observable; floor(phase) steps 0, 1, 2, 3 at t = 1.5, 3, 4.5, 6 (P = 1.5)
    model = drive_model("floor(phase)", P=1.5, observables={"phase": "t/P"})
    assert final(model, 7.0, method) == pytest.approx(1.5 * (0 + 1 + 2 + 3) + 4 * 1.0, rel=1e-7)
    # ceil(5 - t) is 5 on [0, 1], 4 on (1, 2], ...: over [0, 4.5], 5 + 4 + 3 + 2 + 0.5 x 1
    assert final(drive_model("ceil(5 - t)"), 4.5, method) == pytest.approx(14.5, rel=1e-7)


@pytest.mark.parametrize("method", SOLVERS)
def test_kinks_of_abs_and_max_in_time(method):
    # the integral of |t - 3| over [0, 7] is 9/2 + 16/2; of max(1, t - 2) over [0, 6]: 3 x 1 + (4**2 - 1)/2
    assert final(drive_model("abs(t - 3)"), 7.0, method) == pytest.approx(12.5, rel=1e-8)
    assert final(drive_model("max(1, t - 2)"), 6.0, method) == pytest.approx(3 + 7.5, rel=1e-8)


def test_the_next_switch_is_computed_from_the_current_time_not_listed():
    """One tree per floor(): the engine asks it for the next switch after the current time; far into a run it
    still gives the next multiple of the period (no list of times was made)."""
    compiled = ilsim.compile(drive_model("floor(2*t/P) - 2*floor(t/P)"))
    trees = time_switches(compiled)
    assert len(trees) == 2
    values = {"P": 2.5, "k": 0.0}
    for t, want in [(0.0, 1.25), (1.25, 2.5), (2.4, 2.5), (1e6 + 0.1, 1e6 + 1.25)]:
        nxt = min(v for v in (ilsim.model.expressions.evaluate(tr, {**values, "t": t}) for tr in trees) if v > t)
        assert nxt == pytest.approx(want, rel=1e-14)
    trace = OdeEngine("BDF", **TOL).run(compiled, np.linspace(0, 10, 3), compiled.p0)
    assert trace.stats["segments"] == 8  # one per half period: the switches at 1.25, 2.5, ..., 8.75


def test_a_switch_that_depends_on_the_state_is_not_a_time_switch():
    compiled = ilsim.compile(drive_model("1 if x < 1 else 0"))
    assert time_switches(compiled) == []


@pytest.mark.parametrize("method", ["dopri5", "rodas"])
def test_the_batch_engine_stops_at_the_same_moments(method):
    compiled = ilsim.compile(drive_model("floor(2*t/P) - 2*floor(t/P)", k=0.3))
    P = np.tile(compiled.p0, (3, 1))
    P[:, compiled.parameters.index("P")] = [2.5, 1.0, 3.7]
    Y, status = ilsim.BatchEngine(rtol=1e-9, atol=1e-11, method=method).run(compiled, np.array([0.0, 37.0]), P)
    assert (status == 0).all()
    for row, period in zip(Y[:, -1, 0], [2.5, 1.0, 3.7]):
        assert row == pytest.approx(square_wave_exact(37.0, period, 0.3), rel=1e-6)


def test_the_c_kernel_stops_at_the_same_moments():
    from ilsim.engines.csource import HostKernel, c_compiler

    if c_compiler() is None:
        pytest.skip("no C compiler to build the kernel")
    compiled = ilsim.compile(drive_model("floor(2*t/P) - 2*floor(t/P)", k=0.3))
    P = np.tile(compiled.p0, (2, 1))
    P[:, compiled.parameters.index("P")] = [2.5, 3.7]
    Y, status = HostKernel(compiled).run(np.array([0.0, 37.0]), P, rtol=1e-9, atol=1e-11)
    assert (status == 0).all()
    for row, period in zip(Y[:, -1, 0], [2.5, 3.7]):
        assert row == pytest.approx(square_wave_exact(37.0, period, 0.3), rel=1e-6)


@pytest.mark.parametrize("method", SOLVERS)
def test_a_daily_window_after_an_offset_is_met_every_day(method):
    """BioModels BIOMD0000000577's light cycle: 1 before t = 28, then within each 24 h from 28 a value of 2 for
    4 h and 3 for the rest. Computed with rounding, the switch at 28 came back as 28.000000000000004 (a segment of
    one ulp, which LSODA refused) and floor((52 - 28)/24) as 0, which stepped over the window at 52."""
    model = drive_model("piecewise(1, t < 28, piecewise(2, t - 28 - 24*floor((t - 28)/24) < 4, 3))")
    # 28 x 1, then three days of 4 h x 2 + 20 h x 3
    assert final(model, 100.0, method) == pytest.approx(28 + 3 * (4 * 2 + 20 * 3), rel=1e-7)
