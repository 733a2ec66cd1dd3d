"""Cohorts, sweeps and sensitivity analyses run on the engine the caller gives (engines/base.py)."""

import numpy as np
import pytest

import ilsim
from ilsim.engines.batch import BatchEngine
from ilsim.engines.ode import OdeEngine


def decay():
    """x' = -k x from x0: x(t) = x0 exp(-k t) exactly."""
    m = ilsim.Model(name="decay").add_parameter("k", 0.5).add_parameter("x0", 2.0).add_species("x", "x0")
    m.add_process("clearance", "k*x", consumes={"x": 1})
    return ilsim.compile(m)


def test_a_cohort_runs_on_the_scipy_engine_and_agrees_with_the_exact_answer():
    m = decay()
    kw = {"patients": 6, "seed": 3, "vary": "k=uniform(0.1, 1.0)", "t_end": 4.0, "points": 9}
    scipy = ilsim.cohort(m, engine=OdeEngine("Radau", rtol=1e-10, atol=1e-12), **kw)
    batch = ilsim.cohort(m, **kw)
    assert scipy["k"].tolist() == batch["k"].tolist()  # the same patients, whatever the engine
    exact = 2.0 * np.exp(-4.0 * scipy["k"].to_numpy())
    assert np.allclose(scipy["x.final"], exact, rtol=1e-8)
    assert np.allclose(batch["x.final"], exact, rtol=1e-5)


def test_a_sweep_and_a_sensitivity_analysis_take_an_engine():
    m = decay()
    table = ilsim.sweep(m, {"k": (0.1, 1.0, 4)}, engine=BatchEngine(rtol=1e-10, atol=1e-12, method="rodas"),
                        t_end=2.0, points=3).table
    assert np.allclose(table["x.final"], 2.0 * np.exp(-2.0 * table["k"].to_numpy()), rtol=1e-8)
    result = ilsim.sensitivity(m, {"k": (0.1, 1.0), "x0": (1.0, 3.0)}, "x.final", engine=OdeEngine("LSODA"),
                               method="morris", samples=4, seed=1, t_end=2.0, points=3)
    assert result.info["engine"] == "ode"


def test_tolerances_beside_an_engine_are_refused():
    with pytest.raises(ilsim.IlsimError, match="give rtol to the engine"):
        ilsim.cohort(decay(), patients=2, engine=BatchEngine(), rtol=1e-3)
    with pytest.raises(ilsim.IlsimError, match="must be an ilsim engine"):
        ilsim.sweep(decay(), {"k": (0.1, 1.0, 2)}, engine="fast")


@pytest.mark.parametrize("t_end", [1e20, float("inf"), -1.0])
def test_cohorts_refuse_the_end_times_a_single_run_refuses(t_end):
    with pytest.raises(ilsim.IlsimError, match="t_end must be"):
        ilsim.cohort(decay(), patients=2, t_end=t_end)
    with pytest.raises(ilsim.IlsimError, match="t_end must be"):
        ilsim.simulate(decay(), t_end=t_end)
