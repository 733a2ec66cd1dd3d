"""The stiff method: Robertson's chemical kinetics, where DOPRI5 runs out of steps and RODAS (and auto) do not."""

import numpy as np
import pytest

import ilsim
from ilsim.engines.batch import MAX_STEPS, OK, BatchEngine, integrator
from ilsim.engines.batch.codegen import model_functions
from ilsim.engines.ode import OdeEngine


def robertson():
    """Robertson (1966): A -> B (0.04), 2B -> B + C (3e7), B + C -> A + C (1e4); Hairer & Wanner, Solving ODEs II, IV.1."""
    m = ilsim.Model(name="robertson").add_parameter("k1", 0.04).add_parameter("k2", 3e7).add_parameter("k3", 1e4)
    m.add_species("A", 1.0).add_species("B", 0.0).add_species("C", 0.0)
    m.add_process("A to B", "k1*A", consumes={"A": 1}, produces={"B": 1})
    m.add_process("B to C", "k2*B^2", consumes={"B": 1}, produces={"C": 1})
    m.add_process("B to A", "k3*B*C", consumes={"B": 1}, produces={"A": 1})
    return ilsim.compile(m)


T = np.concatenate(([0.0], np.logspace(-5, 4, 46)))


def test_dopri5_needs_more_than_max_steps_on_a_stiff_model():
    m = robertson()
    _, status = BatchEngine(rtol=1e-6, atol=1e-10, max_steps=50_000, method="dopri5").run(m, T, m.p0[None, :])
    assert status[0] == MAX_STEPS


@pytest.mark.parametrize("method", ["rodas", "auto"])
def test_rodas_and_auto_solve_robertson_like_radau(method):
    m = robertson()
    P = np.array([m.p0, m.p0 * [1.0, 0.5, 2.0]])
    r = BatchEngine(rtol=1e-8, atol=1e-12, max_steps=50_000, method=method).run_full(m, T, P)
    assert (r.status == OK).all()
    assert r.stiff.all()  # auto switched every patient to RODAS
    for i in range(2):
        ref = OdeEngine("Radau", rtol=1e-10, atol=1e-14).run(m, T, P[i]).y
        span = ref.max(axis=0) - ref.min(axis=0)
        assert (np.abs(r.Y[i] - ref).max(axis=0) / span).max() < 1e-4
        assert np.allclose(r.Y[i].sum(axis=1), 1.0, rtol=1e-8)  # mass is conserved


def logistic():
    """x' = r x (1 - x/K) from x0 = 0.1 (r = K = 1): nonlinear, with exact solution x = 1/(1 + 9 exp(-t))."""
    m = ilsim.Model(name="logistic").add_parameter("r", 1.0).add_parameter("K", 1.0).add_species("x", 0.1)
    m.add_process("growth", "r*x", produces={"x": 1})
    m.add_process("crowding", "r*x^2/K", consumes={"x": 1})
    return ilsim.compile(m)


def logistic_exact(t):
    return 1.0 / (1.0 + 9.0 * np.exp(-t))


def test_rodas_step_has_fourth_order_global_error():
    """The observed order: the engine's own RODAS step (integrator.rodas_try, with the analytic Jacobian) at
    fixed step sizes h = 4/8 .. 4/128 over [0, 4]; the slope of log(global error) against log(h) is the order."""
    m = logistic()
    fn = model_functions(m)
    p = np.asarray(m.p0, dtype=np.float64)
    t_end = 4.0
    steps = np.array([8, 16, 32, 64, 128])
    errors = []
    for n in steps:
        h, t, y = t_end / n, 0.0, np.array([0.1])
        f0, dT, ynew, u = np.empty(1), np.zeros(1), np.empty(1), np.empty(1)  # dT = df/dt = 0: autonomous
        J, W, K, piv = np.empty((1, 1)), np.empty((1, 1)), np.empty((7, 1)), np.empty(1, dtype=np.int64)
        for _ in range(n):
            integrator.rhs_into(fn, y, t, p, f0)
            integrator.jac_into(fn, y, t, p, J)
            # (the tolerances, 1 and 1 per species: only the error estimate is read)
            integrator.rodas_try(fn, t, h, y, f0, dT, J, W, piv, p, K, ynew, u, 1.0, np.ones(len(y)))
            y, t = ynew.copy(), t + h
        errors.append(abs(y[0] - logistic_exact(t_end)))
    order, _ = np.polyfit(np.log(t_end / steps), np.log(errors), 1)
    assert order == pytest.approx(4.0, abs=0.5)  # measured 4.03
    assert errors[-1] < 1e-9 and errors[-1] > 1e-14  # the finest step is still above round-off


def test_adaptive_rodas_error_follows_the_tolerance():
    """With step control the global error is proportional to the tolerance (not to h^4): each 100x tighter
    tolerance cuts the error by 30x to 300x, and it stays within a small multiple of the tolerance."""
    m = logistic()
    t = np.linspace(0.0, 4.0, 9)
    errors = []
    for tol in (1e-4, 1e-6, 1e-8):
        Y, status = BatchEngine(rtol=tol, atol=tol, method="rodas").run(m, t, m.p0[None, :])
        assert status[0] == OK
        errors.append(np.abs(Y[0, :, 0] - logistic_exact(t)).max())
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert ((ratios > 30) & (ratios < 300)).all(), (errors, ratios)  # measured 115x and 115x
    assert errors[-1] < 10 * 1e-8
