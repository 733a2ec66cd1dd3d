"""The stochastic engine against analytic answers of simple reaction networks.

One model serves every statistical check (so numba compiles one module): X immigrates at k, is born at b X,
dies at d X; a dose of ``dose`` at t = 5; when X reaches K every rate is switched off (an absorbing cap).
Oracles, all closed forms:
- immigration-death (b = 0): X(t) is Poisson with mean (k/d)(1 - exp(-d t)) from X(0) = 0 (its variance equals
  its mean), stationary mean k/d;
- linear birth-death (k = 0, b > d) from n: the chance of reaching 0 before K is the gambler's ruin
  ((d/b)^n - (d/b)^K) / (1 - (d/b)^K), about (d/b)^n;
- pure death (k = b = 0) from n: the time to extinction has mean sum_{i=1..n} 1/(i d) and variance
  sum 1/(i d)^2.
Statistical checks use fixed seeds (the result is reproducible) and bounds of 4 standard errors, so a correct
engine fails one with probability below 1e-4 per seed, and a wrong rate (off by 5%) fails it.
"""

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ilsim
from ilsim import ensemble
from ilsim.engines.ssa import SsaEngine
from ilsim.engines.ssa.engine import NEGATIVE_COUNT, NEGATIVE_PROPENSITY
from ilsim.errors import IlsimError

PARAMS = ("k", "b", "d", "K", "dose")


def birth_death():
    m = ilsim.Model(name="birth-death-immigration").add_parameter("x0", 0.0)
    for name, value in zip(PARAMS, (10.0, 0.0, 0.5, 1e9, 0.0)):
        m.add_parameter(name, value)
    m.add_species("X", "x0", kind="cell")
    m.add_process("immigration", "k", produces={"X": 1})
    m.add_process("birth", "b*X", produces={"X": 1})
    m.add_process("death", "d*X", consumes={"X": 1})
    m.add_event("dose", at=5.0, add={"X": "dose"})
    m.add_event("cap", when="X >= K", set={"k": 0, "b": 0, "d": 0})
    return ilsim.compile(m)


@pytest.fixture(scope="module")
def model():
    return birth_death()


def rows(model, n, **values):
    p = model.parameter_vector(values)
    return np.repeat(p[None, :], n, axis=0)


@pytest.mark.parametrize("method", ["direct", "next-reaction"])
def test_immigration_death_is_poisson_with_mean_k_over_d(model, method):
    n, t = 4000, np.array([0.0, 1.0, 4.0, 20.0])
    r = SsaEngine(seed=11, method=method).solve(model, t, rows(model, n))
    assert (r.status == 0).all()
    mean = 20.0 * (1 - np.exp(-0.5 * t[1:]))  # (k/d)(1 - e^{-dt}); t = 20 is stationary: k/d = 20 (to 1e-3)
    x = r.Y[:, 1:, 0]
    assert np.all(np.abs(x.mean(axis=0) - mean) < 4 * np.sqrt(mean / n))
    var_se = np.sqrt((mean + 2 * mean**2) / n)  # standard error of a sample variance of a Poisson variable
    assert np.all(np.abs(x.var(axis=0, ddof=1) - mean) < 4 * var_se)
    assert np.all(x == np.round(x)) and r.Y[:, 0, 0].tolist() == [0.0] * n


def test_linear_birth_death_goes_extinct_with_probability_d_over_b_to_the_n(model):
    n, x0, b, d, cap = 6000, 3, 1.0, 0.5, 60
    r = SsaEngine(seed=5).solve(model, np.array([0.0, 200.0]), rows(model, n, x0=x0, k=0.0, b=b, d=d, K=cap))
    assert (r.status == 0).all()
    final = r.Y[:, -1, 0]
    assert set(np.unique(final)) <= {0.0, float(cap)}  # absorbed at 0 or held at the cap
    q = d / b
    exact = (q**x0 - q**cap) / (1 - q**cap)
    assert abs(exact - q**x0) < 1e-15
    assert abs((final == 0).mean() - exact) < 4 * math.sqrt(exact * (1 - exact) / n)


def test_mean_first_passage_of_pure_death(model):
    n, x0, d, dt = 4000, 10, 0.5, 0.01
    t = np.arange(0.0, 40.0 + dt / 2, dt)
    ds = SsaEngine(trajectories=n, seed=2).simulate(model, t, model.parameter_vector({"x0": x0, "k": 0.0, "d": d}))
    summary, times = ensemble.first_passage(model, ds, ["X < 1"])
    mean = sum(1 / (i * d) for i in range(1, x0 + 1))
    sd = math.sqrt(sum(1 / (i * d) ** 2 for i in range(1, x0 + 1)))
    assert summary["X < 1"]["reached"] == n  # P(T > 40) is below 1e-4 here
    # the first output time at or after T: late by up to one output step
    assert abs(times.mean() - dt / 2 - mean) < 4 * sd / math.sqrt(n) + dt / 2
    lo, hi = summary["X < 1"]["ci95"]
    assert lo > 0.999 and hi == 1.0


def test_tau_leaping_matches_the_exact_distribution_on_large_counts(model):
    """k = d 10^4, d = 1 from X(0) = 10^4: X(t) is Binomial(10^4, e^-t) + Poisson(10^4 (1 - e^-t)), mean 10^4 and
    variance 10^4 (1 - e^-2t). Tau-leaping's mean and sd within 2% (40,000 trajectories: the sd's standard error
    is 0.35%, so 2% is its systematic error plus more than 4 standard errors), its mean within 4 standard errors
    of the exact method's, in far fewer steps."""
    t = np.array([0.0, 0.5, 2.0])
    P = rows(model, 40_000, x0=1e4, k=1e4, d=1.0)
    tau = SsaEngine(seed=3, method="tau").solve(model, t, P)
    sd = np.sqrt(1e4 * (1 - np.exp(-2 * t[1:])))
    x = tau.Y[:, 1:, 0]
    assert np.all(np.abs(x.mean(axis=0) / 1e4 - 1) < 0.02)
    assert np.all(np.abs(x.std(axis=0, ddof=1) / sd - 1) < 0.02)
    exact = SsaEngine(seed=4, method="direct").solve(model, t, P[:100])
    assert np.all(np.abs(exact.Y[:, 1:, 0].mean(axis=0) - x.mean(axis=0)) < 4 * sd / np.sqrt(100))
    assert tau.steps.mean() < 0.01 * exact.steps.mean()


def test_tau_leaping_takes_exact_steps_at_small_counts(model):
    """Where no leap is worth taking (counts of ~20) tau-leaping takes exact direct steps: the same trajectories
    as the direct method from the same seed."""
    t = np.linspace(0.0, 10.0, 11)
    P = rows(model, 200)
    tau = SsaEngine(seed=9, method="tau").solve(model, t, P)
    direct = SsaEngine(seed=9, method="direct").solve(model, t, P)
    assert np.array_equal(tau.Y, direct.Y)


def test_a_dose_applies_exactly_at_its_time_and_the_cap_fires_after_the_reaction_that_reaches_it(model):
    t = np.array([0.0, 4.999999, 5.0, 6.0])
    r = SsaEngine(seed=1).solve(model, t, rows(model, 50, x0=7, k=0.0, d=0.0, dose=3.0), log_events=5)
    assert r.Y[:, :, 0].tolist() == [[7.0, 7.0, 10.0, 10.0]] * 50
    assert r.event_log[0] == [(5.0, 0)]
    capped = SsaEngine(seed=1).solve(model, np.array([0.0, 50.0]), rows(model, 50, x0=1, k=0.0, b=1.0, d=0.0, K=25))
    assert capped.Y[:, -1, 0].tolist() == [25.0] * 50  # stopped by the condition right after the 24th birth
    assert capped.fired[:, 1].tolist() == [1] * 50


def test_a_negative_propensity_flags_that_trajectory_alone(model):
    P = rows(model, 4)
    P[2, PARAMS.index("k") + 1] = -1.0  # immigration at a negative rate
    r = SsaEngine(seed=1).solve(model, np.linspace(0, 1, 3), P)
    assert r.status.tolist() == [0, 0, NEGATIVE_PROPENSITY, 0]
    assert "immigration" in r.messages[2] and "t = 0" in r.messages[2] and "X = 0" in r.messages[2]
    assert np.isnan(r.Y[2]).all() and np.isfinite(r.Y[[0, 1, 3]]).all()


def test_a_rate_that_does_not_vanish_at_zero_is_flagged_when_it_empties_a_species():
    m = ilsim.Model(name="zero-order").add_species("x", 2.0).add_process("removal", "1", consumes={"x": 1})
    r = SsaEngine(seed=0, trajectories=3).simulate(ilsim.compile(m), np.linspace(0, 50, 3))
    assert (r["status"].values == NEGATIVE_COUNT).all()
    assert "removal" in str(r["status_text"].values[0]) and "x = -1" in str(r["status_text"].values[0])


@pytest.mark.parametrize("change, message", [
    (lambda m: m.add_process("half", "X", consumes={"X": 0.5}), "whole numbers"),
    (lambda m: m.add_process("clock", "t", produces={"X": 1}), "reads the time t"),
    (lambda m: m.add_process("rate rule of X", "1", produces={"X": 1}), "rate rule"),
])
def test_what_cannot_be_made_discrete_is_refused_naming_the_process(change, message):
    m = ilsim.Model(name="bad").add_species("X", 1.0)
    change(m)
    with pytest.raises(IlsimError, match=message) as info:
        SsaEngine(trajectories=2).simulate(ilsim.compile(m), [0.0, 1.0])
    assert "process '" in str(info.value)


def test_initial_counts_must_be_whole_and_settings_integers(model):
    with pytest.raises(IlsimError, match=r"species 'X'.*2.5.*not a whole number"):
        SsaEngine().solve(model, [0.0, 1.0], rows(model, 2, x0=2.5))
    with pytest.raises(IlsimError, match="species 'X'.*not a non-negative"):
        SsaEngine().solve(model, [0.0, 1.0], rows(model, 2, x0=-1.0))
    assert SsaEngine(system_size=2.0).solve(model, [0.0, 1.0], rows(model, 2, x0=2.5, k=0.0, d=0.0)).Y[0, -1, 0] == 2.5
    for bad in (1.5, "7", True):
        with pytest.raises(IlsimError, match="seed must be an integer"):
            SsaEngine(seed=bad)
    with pytest.raises(IlsimError, match=r"trajectories: .* GiB"):
        SsaEngine().solve(model, np.linspace(0, 1, 10_000), rows(model, 1_000_000))


def test_the_same_seed_gives_the_same_numbers_at_any_thread_count(model, tmp_path):
    script = textwrap.dedent("""
        import hashlib, sys
        import numpy as np
        sys.path.insert(0, sys.argv[1])
        import test_ssa
        from ilsim.engines.ssa import SsaEngine
        m = test_ssa.birth_death()
        for method in ("direct", "next-reaction", "tau"):
            r = SsaEngine(seed=123, method=method).solve(m, np.linspace(0, 10, 11), test_ssa.rows(m, 97, k=50.0))
            print(method, hashlib.sha256(r.Y.tobytes()).hexdigest())
    """)
    here = os.path.dirname(__file__)
    outputs = []
    for threads in ("1", "2"):
        env = {**os.environ, "NUMBA_NUM_THREADS": threads}
        done = subprocess.run([sys.executable, "-c", script, here], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] and len(outputs[0].splitlines()) == 3
    other = SsaEngine(seed=124).solve(model, np.linspace(0, 10, 11), rows(model, 97, k=50.0))
    first = SsaEngine(seed=123).solve(model, np.linspace(0, 10, 11), rows(model, 97, k=50.0))
    assert not np.array_equal(first.Y, other.Y)


def test_wilson_interval():
    """Against the closed form at k = 0 (upper bound z^2 / (n + z^2)) and the textbook 95% example 81/263."""
    z = ensemble.Z95
    assert ensemble.wilson(0, 100) == (0.0, pytest.approx(z * z / (100 + z * z)))
    lo, hi = ensemble.wilson(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)


def test_the_large_size_limit_approaches_the_ode_as_one_over_root_size(model):
    """Immigration k = 2 and death d = 1 in concentration units, system size 10, 100, 1000: the mean of c = X / size
    follows the ODE c(t) = 2 (1 - e^-t) (solved by the SciPy engine), and the spread around it shrinks as
    1 / sqrt(size): sd(c) sqrt(size) = sqrt(c(t)) (Poisson counts)."""
    from ilsim.engines.ode import OdeEngine

    t = np.array([0.0, 1.0, 3.0])
    p = model.parameter_vector({"k": 2.0, "d": 1.0})
    ode = OdeEngine("LSODA", 1e-10, 1e-12).solve(model, t, p[None, :]).Y[0, 1:, 0]
    assert np.allclose(ode, 2 * (1 - np.exp(-t[1:])), rtol=1e-7)
    n = 2000
    for size in (10.0, 100.0, 1000.0):
        c = SsaEngine(seed=8, system_size=size).solve(model, t, np.repeat(p[None, :], n, axis=0)).Y[:, 1:, 0]
        sd = np.sqrt(ode / size)
        assert np.all(np.abs(c.mean(axis=0) - ode) < 4 * sd / np.sqrt(n))
        assert np.all(np.abs(c.std(axis=0, ddof=1) * np.sqrt(size) / np.sqrt(ode) - 1) < 4 / np.sqrt(2 * n))


# --------------------------------------------------------------------------------- stochastic cohorts


def _cohort(model, chunk, threads=1, seed=7, vary="k=uniform(5, 15)", patients=200):
    import numba

    numba.set_num_threads(threads)
    try:
        return ilsim.cohort(model, patients=patients, seed=seed, vary=vary, chunk_size=chunk, t_end=10.0, points=6,
                            engine=SsaEngine(seed=None), report=False)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def test_a_stochastic_cohort_is_the_same_at_any_chunk_size_and_thread_count(model):
    import numba
    import pandas as pd

    whole = _cohort(model, chunk=200)
    threads = numba.config.NUMBA_NUM_THREADS
    for chunk, n in ((37, threads), (1, 1), (64, 1)):
        pd.testing.assert_frame_equal(_cohort(model, chunk, n), whole)
    assert (whole["status"] == "ok").all()
    # patient i is the trajectory of stream (seed, i), whatever chunk it ran in: run alone here
    for i in (0, 113):
        alone = SsaEngine(seed=7).solve(model, np.linspace(0, 10, 6), rows(model, 1, k=whole["k"][i]), first=i)
        assert alone.Y[0, -1, 0] == whole["X.final"][i]
    # each patient's own k: X(10) is Poisson with mean (k/d)(1 - e^(-10 d)) from 0 (variance = mean)
    mean = whole["k"] / 0.5 * (1 - math.exp(-5.0))
    assert abs((whole["X.final"] - mean).sum()) < 4 * math.sqrt(mean.sum())
    assert not _cohort(model, chunk=37, seed=8)["X.final"].equals(whole["X.final"])  # another seed, another cohort


def test_a_failed_trajectory_is_recorded_with_its_reason_and_the_cohort_goes_on(model):
    cohort = _cohort(model, chunk=7, vary="k=uniform(-1, 1)", patients=30)
    negative = (cohort["k"] < 0).to_numpy()
    assert 0 < negative.sum() < 30
    reasons = cohort["status"][negative]
    assert reasons.str.startswith("a propensity became negative: process 'immigration' had a negative propensity "
                                  "at t = 0").all()
    assert (cohort["status"][~negative] == "ok").all() and cohort["X.final"][~negative].notna().all()


def test_the_ziggurat_draws_standard_exponential_numbers():
    from numba import njit
    from scipy import stats

    from ilsim.engines.ssa import driver

    @njit
    def draws(state, n):
        out = np.empty(n)
        for k in range(n):
            out[k] = driver.exponential(state)
        return out

    x = draws(np.random.SeedSequence(3).generate_state(4, np.uint64), 1_000_000)
    assert stats.kstest(x, "expon").pvalue > 1e-3  # the whole distribution (Kolmogorov-Smirnov)
    assert abs(x.mean() - 1) < 4e-3 and abs(x.var() - 1) < 1e-2  # 4 standard errors
    for edge in (3.0, driver.ZIGGURAT_R):  # a layer's edge and the tail beyond the base layer
        p = math.exp(-edge)
        assert abs((x > edge).mean() - p) < 4 * math.sqrt(p / len(x))
