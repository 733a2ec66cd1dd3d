"""The compiled sensitivity system (fit/augmented.py: numba, banded Newton matrix) against the NumPy one it
replaced for models built without numba (dense Newton matrix, the same LSODA): the same states and sensitivities
to well within the integration tolerances."""

from __future__ import annotations

import dataclasses

import numpy as np

from ilsim.fit.objective import Objective
from ilsim.fit.petab_io import load_petab


def test_compiled_sensitivities_match_the_numpy_path(shared_data):
    name = "Boehm_JProteomeRes2014"
    problem = load_petab(shared_data("petab-benchmarks") / name / f"{name}.yaml")
    plain = dataclasses.replace(problem, model=dataclasses.replace(problem.model, jit=False, _kernels={}))
    compiled, numpy_path = Objective(problem), Objective(plain)
    assert compiled.simulator.m.jit and not numpy_path.simulator.m.jit
    params = problem.parameters
    rng = np.random.default_rng(4)
    theta = params.scale(params.nominal[params.estimated]) + rng.uniform(-0.3, 0.3, compiled.n)
    phi, _ = params.full(theta)
    sim = problem.simulations[0]
    cols = np.arange(len(phi))[params.estimated]
    X1, S1 = compiled.simulator.run(sim, phi, cols)
    X2, S2 = numpy_path.simulator.run(sim, phi, cols)
    assert S1.shape == S2.shape == (len(sim.times), len(problem.model.species), len(cols))
    np.testing.assert_allclose(X1, X2, rtol=1e-6, atol=1e-9 * np.abs(X2).max())
    np.testing.assert_allclose(S1, S2, rtol=1e-5, atol=1e-8 * np.abs(S2).max())
    a, b = compiled(theta, gradient=True), numpy_path(theta, gradient=True)
    assert abs(a.nllh - b.nllh) <= 1e-8 * abs(b.nllh)
    np.testing.assert_allclose(a.gradient, b.gradient, rtol=1e-5, atol=1e-8 * np.abs(b.gradient).max())
