"""Every SciPy run has a budget (right-hand-side evaluations, optionally seconds) and ends with a clear message
when it is spent; tolerances and end times that no solver can honour are refused before a run.

Small budgets keep these tests fast; the defaults are in ilsim.limits (docs/limits.md).
"""

import numpy as np
import pytest
from typer.testing import CliRunner

import ilsim
from ilsim.cli import app
from ilsim.engines.ode import OdeEngine
from ilsim.limits import RTOL_MIN

BUDGET = 20_000


def sliding_mode():
    """dx/dt = k below 1 and -k above: the state reaches 1 at t = 1 and is pushed back from both sides."""
    m = ilsim.Model(name="sliding").add_parameter("k", 1.0).add_species("x", 0.0, kind="other")
    return m.add_process("drive", "k if x < 1 else -k", produces={"x": 1})


def robertson():
    """Robertson's stiff chemical kinetics (rate constants 0.04, 3e7, 1e4)."""
    m = ilsim.Model(name="robertson").add_parameter("k1", 0.04).add_parameter("k2", 3e7).add_parameter("k3", 1e4)
    for name, value in (("A", 1.0), ("B", 0.0), ("C", 0.0)):
        m.add_species(name, value, kind="other")
    m.add_process("r1", "k1*A", consumes={"A": 1}, produces={"B": 1})
    m.add_process("r2", "k2*B**2", consumes={"B": 2}, produces={"B": 1, "C": 1})
    return m.add_process("r3", "k3*B*C", consumes={"B": 1, "C": 1}, produces={"A": 1, "C": 1})


@pytest.mark.parametrize("method", ["LSODA", "RK45"])
def test_a_sliding_mode_stops_at_the_budget_naming_the_switch(method):
    model = ilsim.compile(sliding_mode())
    with pytest.raises(ilsim.SimulationError) as err:
        OdeEngine(method, max_rhs_evaluations=BUDGET).run(model, np.linspace(0, 10, 11), model.p0)
    message = str(err.value)
    assert f"{BUDGET:,} right-hand-side evaluations" in message and "'x < 1'" in message
    t_failed = float(message.split("t = ")[1].split()[0])
    assert 0.99 < t_failed < 10  # the chattering starts where x reaches 1, at t = 1


@pytest.mark.parametrize("method", ["RK45", "DOP853"])
def test_a_stiff_system_under_an_explicit_method_stops_and_suggests_a_stiff_one(method):
    model = ilsim.compile(robertson())
    with pytest.raises(ilsim.SimulationError, match=r"stiff .*use a stiff method \(method BDF, Radau or LSODA\)"):
        OdeEngine(method, max_rhs_evaluations=BUDGET).run(model, np.array([0.0, 40.0]), model.p0)
    # the same budget is ample for a stiff method; the oracle is SciPy's Radau on the equations typed here
    y = OdeEngine("BDF", rtol=1e-8, atol=1e-12, max_rhs_evaluations=BUDGET).run(model, np.array([0.0, 40.0]), model.p0).y[-1]
    from scipy.integrate import solve_ivp

    def f(t, u):
        a, b, c = u
        return [-0.04 * a + 1e4 * b * c, 0.04 * a - 3e7 * b * b - 1e4 * b * c, 3e7 * b * b]

    exact = solve_ivp(f, (0.0, 40.0), [1.0, 0.0, 0.0], method="Radau", rtol=1e-11, atol=1e-14).y[:, -1]
    assert y == pytest.approx(exact, rel=1e-4)


def test_a_wall_clock_limit_stops_a_run():
    model = ilsim.compile(robertson())
    model.rhs(np.array([1.0, 0.0, 0.0]), 0.0, model.p0)  # compile the kernels outside the timed run
    with pytest.raises(ilsim.SimulationError, match=r"0\.05 s of wall-clock time \(max_wall_s\)"):
        OdeEngine("RK45", max_wall_s=0.05).run(model, np.array([0.0, 1e5]), model.p0)


def test_the_budget_reaches_simulate_and_is_checked():
    with pytest.raises(ilsim.SimulationError, match="budget of 50 right-hand-side"):
        ilsim.simulate(sliding_mode(), 10, max_rhs_evaluations=50)
    with pytest.raises(ilsim.IlsimError, match="max_rhs_evaluations must be at least 1"):
        ilsim.simulate(sliding_mode(), 10, max_rhs_evaluations=0)
    with pytest.raises(ilsim.IlsimError, match="max_wall_s must be a positive number"):
        ilsim.simulate(sliding_mode(), 10, max_wall_s=-1)


@pytest.mark.parametrize("options, what", [
    ({"rtol": 1e-300}, "rtol must be between"), ({"rtol": RTOL_MIN / 10}, "rtol must be between"),
    ({"atol": 1e-300}, "atol must be at least"), ({"t_end": 1e-300}, "t_end must be positive and between"),
    ({"t_end": 1e300}, "t_end must be positive and between"),
    ({"t_eval": [0.0, 1e-300]}, "the last output time must be positive and between"),
])
def test_tolerances_and_end_times_no_solver_can_honour_are_refused(options, what):
    with pytest.raises(ilsim.IlsimError, match=what):
        ilsim.simulate(sliding_mode(), **({"t_end": 10} | options))


def test_a_model_file_and_the_command_line_refuse_them_too(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("metadata: {name: tiny}\nspecies: [{name: x, initial: 1}]\nprocesses: [{name: d, rate: x, "
                    "consumes: {x: 1}}]\nsimulation: {rtol: 1.0e-300}\n")
    with pytest.raises(ilsim.ModelError, match=r"simulation.rtol: .*rtol must be between"):
        ilsim.load(path)
    runner = CliRunner()
    for option in (["--rtol", "1e-300"], ["--t-end", "1e-300"], ["--atol", "1e-300"], ["--max-rhs-evaluations", "10"]):
        result = runner.invoke(app, ["run", "kirschner-panetta-1998", "--out", str(tmp_path / "out"), *option])
        assert result.exit_code == 2, (option, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
