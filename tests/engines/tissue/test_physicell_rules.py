"""The rules added for PhysiCell's phenotypes, against hand calculations.

- Secretion towards a target density (secretion_rate, secretion_target): a lone cell in a field that neither diffuses
  nor decays fills its voxel as the implicit step's closed form c_n = T (1 - (1 + w S)^-n), w = dt V_cell / V_voxel,
  and leaves every other voxel untouched.
- Biased turns (migration_bias): a cell turning every step with bias 1 moves at its speed straight up the gradient
  (-1: down it); with bias 1/2 in 2-D the new direction is the half angle of a uniform one, (1 + cos a, sin a)/|..|
  = (cos a/2, sin a/2) for a in (-pi, pi), whose mean x-component is 2/pi.
"""

from __future__ import annotations

import math

import numpy as np

from ilsim.engines.tissue.agents import Agents
from ilsim.engines.tissue.engine import run
from ilsim.engines.tissue.setup import build
from ilsim.model.spec import ModelSpec


def test_voxel_relaxes_to_the_target_as_the_closed_form():
    S, T, dt, voxel, radius = 0.5, 2.0, 0.1, 20.0, 6.0
    spec = ModelSpec.model_validate({
        "metadata": {"name": "t", "time_units": "minute"},
        "species": [{"name": "T_cell", "kind": "cell", "initial": 0}, {"name": "IL2", "kind": "cytokine", "initial": 0}],
        "tissue": {"domain": {"dimensions": 2, "size": [100, 100], "voxel": voxel},
                   "fields": [{"species": "IL2", "diffusion": 0}],
                   "agents": [{"species": "T_cell", "radius": radius,
                               "secretion_target": [{"field": "IL2", "rate": S, "target": T}],
                               "placement": {"kind": "cluster", "count": 1, "center": [50, 50], "radius": 1}}],
                   "dt": dt, "t_end": 5, "save_every": 5}})
    result = run(build(spec))
    w = dt * (4 / 3 * math.pi * radius**3) / voxel**3
    field = result.snapshots[-1].fields[0, 0]
    expected = T * (1 - (1 + w * S) ** -50)
    assert field.max() == np.float64(field[2, 2]) and math.isclose(field[2, 2], expected, rel_tol=1e-12)
    assert np.count_nonzero(field) == 1


def _biased(bias, n_cells, speed=2.0):
    spec = ModelSpec.model_validate({
        "metadata": {"name": "t", "time_units": "minute"},
        "species": [{"name": "A", "kind": "cell", "initial": 0}, {"name": "X", "kind": "cytokine", "initial": 0}],
        "tissue": {"domain": {"dimensions": 2, "size": [4000, 4000], "voxel": 100},
                   "fields": [{"species": "X", "diffusion": 0}],
                   "agents": [{"species": "A", "speed": speed, "persistence": 1e-6,
                               "chemotaxis": {"field": "X", "bias": bias}}], "dt": 0.1, "t_end": 5, "save_every": 5}})
    setup = build(spec)
    C = setup.initial.copy()
    C[0, 0] = 0.01 * (np.arange(40) + 0.5) * 100.0  # rising along x
    pos = np.zeros((n_cells, 3))
    pos[:, 0], pos[:, 1] = 2000.0, np.linspace(500, 3500, n_cells)
    agents = Agents.place(pos.copy(), np.zeros(n_cells, dtype=np.int64), 5, 2)  # the agents move their array in place
    for step in range(1, 51):
        agents.step(C, setup.types, setup.geometry, step, 0.1, 5)
    return agents.pos[:, :2] - pos[:, :2]


def test_full_bias_moves_straight_along_the_gradient():
    for bias, sign in ((1.0, 1.0), (-1.0, -1.0)):
        moved = _biased(bias, 3)
        np.testing.assert_allclose(moved[:, 0], sign * 2.0 * 5.0, rtol=1e-12)
        np.testing.assert_allclose(moved[:, 1], 0.0, atol=1e-9)


def test_half_bias_drifts_at_two_over_pi_of_the_speed():
    n, speed, steps, dt = 3000, 2.0, 50, 0.1
    moved = _biased(0.5, n, speed)
    expected = speed * steps * dt * 2 / math.pi
    per_cell_sd = speed * dt * math.sqrt(steps * (0.5 - (2 / math.pi) ** 2))  # independent turns each step
    assert abs(moved[:, 0].mean() - expected) < 4 * per_cell_sd / math.sqrt(n)
    assert abs(moved[:, 1].mean()) < 4 * speed * dt * math.sqrt(steps * 0.5) / math.sqrt(n)
