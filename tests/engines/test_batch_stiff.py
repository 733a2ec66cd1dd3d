"""The stiff method: Robertson's chemical kinetics, where DOPRI5 runs out of steps and RODAS (and auto) do not."""

import numpy as np
import pytest

import ilsim
from ilsim.engines.batch import MAX_STEPS, OK, BatchEngine
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


def test_rodas_converges_at_fourth_order_on_a_linear_problem():
    """x' = -x from 1 with fixed tolerance ratios: 10x tighter tolerance shrinks the error by about 10x."""
    m = ilsim.Model(name="decay").add_parameter("k", 1.0).add_species("x", 1.0)
    m.add_process("decay", "k*x", consumes={"x": 1})
    m = ilsim.compile(m)
    t = np.linspace(0.0, 5.0, 11)
    errors = []
    for tol in (1e-5, 1e-7, 1e-9):
        Y, status = BatchEngine(rtol=tol, atol=tol * 1e-3, method="rodas").run(m, t, m.p0[None, :])
        assert status[0] == OK
        errors.append(np.abs(Y[0, :, 0] - np.exp(-t)).max())
    assert errors[2] < errors[1] < errors[0] < 1e-4
