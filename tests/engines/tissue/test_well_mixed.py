"""Well-mixed limit: with diffusion fast against every other process, the tissue engine's mean cell counts and
mean concentration follow the ODE run of the same model file (ilsim's SciPy engine) within 3 % (mean of 20
replicates). The model writes the same biology twice: as processes (the ODE) and as the tissue section's per-cell
rules (a Th cell divides at b, dies at d and secretes q; a Treg takes IL-2 up at U x V_cell / V_voxel; IL-2 decays
at k)."""

from __future__ import annotations

import math

import numpy as np

import ilsim
from ilsim.engines.tissue.engine import run
from ilsim.engines.tissue.setup import build

R = 5.0  # µm, cell radius
V_CELL = 4.0 / 3.0 * math.pi * R**3
SIZE, VOXEL = 400.0, 40.0
V_TISSUE = SIZE * SIZE * VOXEL  # 2-D: one voxel thick
B, D_RATE, Q, U, K = 0.01, 0.02, 2000.0, 3.0, 0.05

MODEL = f"""
metadata: {{name: well_mixed_il2, time_units: minute}}
species:
  - {{name: Th, kind: cell, initial: 1000}}
  - {{name: Treg, kind: cell, initial: 300}}
  - {{name: IL2, kind: cytokine, units: pM, initial: 0}}
parameters:
  - {{name: b, value: {B}}}
  - {{name: d, value: {D_RATE}}}
  - {{name: q, value: {Q}, description: "secretion per Th cell, pM x um^3 per min"}}
  - {{name: U, value: {U}}}
  - {{name: vcell, value: {V_CELL}}}
  - {{name: vtissue, value: {V_TISSUE}}}
  - {{name: k, value: {K}}}
processes:
  - {{name: division, rate: "b*Th", produces: {{Th: 1}}}}
  - {{name: death, rate: "d*Th", consumes: {{Th: 1}}}}
  - {{name: secretion, rate: "q*Th/vtissue", produces: {{IL2: 1}}}}
  - {{name: uptake, rate: "U*vcell*Treg*IL2/vtissue", consumes: {{IL2: 1}}}}
  - {{name: decay, rate: "k*IL2", consumes: {{IL2: 1}}}}
tissue:
  domain: {{dimensions: 2, size: [{SIZE}, {SIZE}], voxel: {VOXEL}}}
  fields: [{{species: IL2, diffusion: 1.0e6, decay: {K}}}]
  agents:
    - {{species: Th, radius: {R}, division: {B}, death: {D_RATE}, secretion: [{{field: IL2, rate: {Q}}}],
       placement: {{kind: random, count: 1000}}}}
    - {{species: Treg, radius: {R}, uptake: [{{field: IL2, rate: {U}}}], placement: {{kind: random, count: 300}}}}
  dt: 0.2
  t_end: 60
  save_every: 10
"""


def test_fast_diffusion_follows_the_ode_of_the_same_model(tmp_path):
    path = tmp_path / "well_mixed.yaml"
    path.write_text(MODEL)
    ode = ilsim.simulate(path, t_end=60, points=7)
    setup = build(ilsim.compile(path).spec)
    counts, il2 = [], []
    for replicate in range(20):
        out = run(setup, seed=1000 + replicate)
        counts.append(out.counts()[:, 0])
        il2.append(out.field_stats()[0][:, 0])
    th, c = np.mean(counts, axis=0), np.mean(il2, axis=0)
    expected_th = ode["Th"].values.ravel()
    expected_c = ode["IL2"].values.ravel()
    assert abs(expected_th[-1] / expected_th[0] - math.exp((B - D_RATE) * 60)) < 1e-4  # the ODE is what it says
    np.testing.assert_allclose(th, expected_th, rtol=0.03)
    np.testing.assert_allclose(c[1:], expected_c[1:], rtol=0.03)
    assert expected_c[-1] > 0.1 * expected_c.max()  # secretion, uptake and decay all matter along the way
