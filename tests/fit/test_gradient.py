"""Gradients from forward sensitivities against central finite differences of the objective itself
(the oracle needs nothing but the objective's value), at random points near the benchmark optima."""

from __future__ import annotations

import numpy as np
import pytest

from ilsim.fit.objective import Objective
from ilsim.fit.petab_io import load_petab


def finite_differences(objective, theta, h=1e-5):
    out = np.empty(len(theta))
    for k in range(len(theta)):
        step = np.zeros(len(theta))
        step[k] = h
        out[k] = (objective(theta + step).objective - objective(theta - step).objective) / (2 * h)
    return out


@pytest.mark.parametrize("name", ["Boehm_JProteomeRes2014", "Crauste_CellSystems2017"])
def test_sensitivity_gradient_matches_finite_differences(shared_data, name):
    folder = shared_data("petab-benchmarks") / name
    problem = load_petab(folder / f"{name}.yaml")
    objective = Objective(problem)
    params = problem.parameters
    nominal = params.scale(params.nominal[params.estimated])
    rng = np.random.default_rng(16)
    checked = 0
    while checked < 2:
        theta = nominal + rng.uniform(-0.3, 0.3, len(nominal))  # log10 scale: factors 0.5 to 2
        ev = objective(theta, gradient=True)
        if not np.isfinite(ev.nllh):  # Crauste's cells grow without bound at some points: a failed run, no gradient
            assert ev.gradient is None
            continue
        checked += 1
        fd = finite_differences(objective, theta)
        # 1e-4 relative, against the larger of the two and 1e-2 (a component near zero is compared absolutely)
        np.testing.assert_allclose(ev.gradient, fd, rtol=1e-4, atol=1e-4 * max(1e-2, np.abs(fd).max()))
        # the residuals' Jacobian is the one the gradient came from: grad = J^T r
        np.testing.assert_allclose(ev.jacobian.T @ ev.residuals, ev.gradient, rtol=1e-12, atol=1e-9)
        assert 0.5 * ev.residuals @ ev.residuals == pytest.approx(ev.objective + _shift(objective), rel=1e-9)


def _shift(objective):
    """0.5 |r|^2 - nllh: constants only (0.5 log 2 pi, the change of variables, C/2 of each sigma term)."""
    from ilsim.fit.objective import SIGMA_SHIFT

    n = len(objective.problem.measurements.value)
    return n * (0.5 * SIGMA_SHIFT - 0.5 * np.log(2 * np.pi)) - objective._jac_term.sum()
