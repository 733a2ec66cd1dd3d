"""Counts through each species' compartment volume (engines/ssa/volumes.py). Oracles: the ODE solution of the same
model (the SciPy engine) in amounts, the exact binomial law of a first-order transport, and the conservation of
the amount moved across compartments in every trajectory."""

from __future__ import annotations

import numpy as np
import pytest

import ilsim
from ilsim.engines.ssa import SsaEngine
from ilsim.errors import IlsimError

V1, V2, K, KP = 2.0, 5.0, 0.3, 1.2


def transport(produced: float = V1 / V2, **extra):
    """A (50 per volume in V1 = 2: 100 molecules) moves to B (in V2 = 5) at k per molecule; B is also made at kp
    per unit volume of V2 (a source: its propensity is kp x V2). The ODE needs produces B: V1/V2."""
    m = ilsim.Model(name="transport").add_parameter("V1", V1).add_parameter("V2", V2).add_parameter("k", K)
    m.add_parameter("kp", KP)
    m.add_species("A", 50.0, compartment="V1", **extra).add_species("B", 0.0, compartment="V2")
    m.add_process("move", "k*A", consumes={"A": 1}, produces={"B": produced})
    m.add_process("make", "kp", produces={"B": 1})
    return m.add_observable("moles_A", "A*V1")


def test_a_transport_between_compartments_has_the_ode_mean_in_amounts():
    t = np.linspace(0.0, 6.0, 7)
    n = 4000
    ssa = ilsim.simulate(transport(), t_eval=t, engine=SsaEngine(trajectories=n, seed=11))
    ode = ilsim.simulate(transport(), t_eval=t, rtol=1e-10, atol=1e-12)
    a = ssa["A"].values * V1  # molecules
    assert np.array_equal(ssa["moles_A"].values, a)  # observables read the model's values, not counts
    moved = ssa["B"].values * V2
    # the ODE in amounts, and A's exact law: each of 100 molecules still in V1 with probability exp(-kt)
    np.testing.assert_allclose(ode["A"].values * V1, 100 * np.exp(-K * t), rtol=1e-7)
    survive = np.exp(-K * t)
    se = np.sqrt(100 * survive * (1 - survive) / n)
    assert np.all(np.abs(a.mean(0) - ode["A"].values * V1) <= 4 * se + 1e-12)
    assert np.all(np.abs(moved.mean(0) - ode["B"].values * V2) <= 4 * np.maximum(moved.std(0), 1e-9) / np.sqrt(n) + 1e-12)
    np.testing.assert_allclose(ode["B"].values * V2, 100 * (1 - survive) + KP * V2 * t, rtol=1e-7)
    assert np.array_equal(a, np.round(a)) and np.array_equal(moved, np.round(moved))  # whole molecules
    # one molecule leaves V1 per firing and one arrives in V2: nothing made or lost in the move
    made = moved - (100 - a)
    assert np.all(made >= 0) and np.allclose(made.mean(0), KP * V2 * t, atol=5 * np.sqrt(KP * V2 * t.max() / n))


def test_system_size_overrides_the_volumes():
    # one size for both compartments: the transport's 0.4 B per A is no longer one molecule per firing
    with pytest.raises(IlsimError, match=r"process 'move'.*stoichiometry must be whole numbers"):
        ilsim.simulate(transport(), t_eval=[0.0, 1.0], engine=SsaEngine(trajectories=5, seed=1, system_size=10))


@pytest.mark.parametrize("model, words", [
    (transport(produced=0.3), ["process 'move' (processes[0])", "B by 0.3", "0.75 molecules per firing"]),
    (transport().add_event("shrink", at=1.0, set={"V1": 1.0}), ["parameter 'V1'", "volumes constant"]),
])
def test_what_volumes_cannot_count_is_refused_by_name(model, words):
    with pytest.raises(IlsimError) as info:
        ilsim.simulate(model, t_eval=[0.0, 1.0], engine=SsaEngine(trajectories=3, seed=1))
    for w in words:
        assert w in str(info.value)


def test_a_compartment_that_is_not_a_parameter_is_refused_when_the_model_compiles():
    from ilsim.errors import ModelError

    with pytest.raises(ModelError) as info:
        ilsim.compile(transport().add_species("C", 1.0, compartment="V3"))
    problem = info.value.problems[0]
    assert problem.field == "species[2].compartment" and "'V3' is not a parameter" in problem.message
