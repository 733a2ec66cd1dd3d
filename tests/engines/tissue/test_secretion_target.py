"""Secretion towards a target density (PhysiCell's secretion_rate and secretion_target): a lone cell in a field that
neither diffuses nor decays fills its voxel as the implicit step's closed form c_n = T (1 - (1 + w S)^-n), w = dt V_cell /
V_voxel, and leaves every other voxel untouched."""

from __future__ import annotations

import math

import numpy as np

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
