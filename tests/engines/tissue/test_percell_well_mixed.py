"""Well-mixed limit of the per-cell reading: a model whose tissue section says only what is spatial (a periodic
square, fast diffusion, moving cells) and whose secretion, uptake, decay, a voxel reaction, division, death (through a
per-cell internal state), differentiation, recruitment and killing on contact all come from its processes. With
diffusion fast against every process and cells mixing fast against the killing, the mean of 20 replicates follows the
ODE run of the same model file within 3 % (counts, mean concentrations and the per-cell state's mean)."""

from __future__ import annotations

import numpy as np

import ilsim
from ilsim.engines.tissue.engine import run
from ilsim.engines.tissue.setup import build

MODEL = """
metadata: {name: percell_well_mixed, time_units: minute}
species:
  - {name: A, kind: cell, initial: 1000}
  - {name: B, kind: cell, initial: 500}
  - {name: K, kind: cell, initial: 100}
  - {name: S, kind: cytokine, units: pM, initial: 0}
  - {name: P, kind: cytokine, units: pM, initial: 0}
  - {name: act, kind: other, units: fraction, initial: 0}
parameters:
  - {name: b, value: 0.02}
  - {name: d, value: 0.01}
  - {name: m, value: 0.01}
  - {name: dB, value: 0.005}
  - {name: kk, value: 0.00005}
  - {name: rho, value: 0.5}
  - {name: q, value: 0.01}
  - {name: u, value: 0.0002}
  - {name: k, value: 0.05}
  - {name: k2, value: 0.1}
  - {name: kp, value: 0.03}
  - {name: Kd, value: 0.5}
  - {name: tau, value: 5}
processes:
  - {name: division, rate: "b*A", produces: {A: 1}}
  - {name: death, rate: "d*A*(1 + act)", consumes: {A: 1}}
  - {name: differentiation, rate: "m*A", consumes: {A: 1}, produces: {B: 1}}
  - {name: B death, rate: "dB*B", consumes: {B: 1}}
  - {name: killing, rate: "kk*K*B", consumes: {B: 1}}
  - {name: recruitment, rate: "rho*S", produces: {K: 1}}
  - {name: secretion, rate: "q*A", produces: {S: 1}}
  - {name: uptake, rate: "u*(B + K)*S", consumes: {S: 1}}
  - {name: decay, rate: "k*S", consumes: {S: 1}}
  - {name: conversion, rate: "k2*S*S/(1 + S)", consumes: {S: 1}, produces: {P: 1}}
  - {name: P decay, rate: "kp*P", consumes: {P: 1}}
  - {name: activation, rate: "S/(S + Kd)/tau", produces: {act: 1}}
  - {name: deactivation, rate: "act/tau", consumes: {act: 1}}
tissue:
  domain: {dimensions: 2, size: [400, 400], voxel: 40, boundary: {all: periodic}}
  fields: [{species: S, diffusion: 1.0e6}, {species: P, diffusion: 1.0e6}]
  agents:
    - {species: A, radius: 5, speed: 20, internal: [act]}
    - {species: B, radius: 5, speed: 20}
    - {species: K, radius: 5, speed: 20}
  dt: 0.2
  t_end: 40
  save_every: 10
"""

READ = {"division": "division of A", "death": "death of A", "differentiation": "differentiation of A into B",
        "B death": "death of B", "recruitment": "recruitment of K", "secretion": "secretion by 'A'",
        "uptake": "uptake by 'B', 'K'", "decay": "first-order decay of S", "conversion": "reaction in every voxel",
        "P decay": "first-order decay of P", "activation": "per-cell ODE of 'A'", "deactivation": "per-cell ODE of 'A'"}


def test_every_kind_of_reading_follows_the_ode_of_the_same_model_in_the_well_mixed_limit(tmp_path):
    path = tmp_path / "well_mixed.yaml"
    path.write_text(MODEL)
    ode = ilsim.simulate(path, t_end=40, points=5)
    setup = build(ilsim.compile(path).spec)
    reading = setup.percell.read
    assert {p: h for p, h in reading.items() if p != "killing"} == READ
    assert reading["killing"].startswith("killing of B on contact with K")
    counts, levels, act = [], [], []
    for replicate in range(20):
        out = run(setup, seed=100 + replicate)
        counts.append(out.counts())
        levels.append(out.field_stats()[0])
        act.append([np.mean(s.agents["internal"][s.agents["typ"] == 0, 0]) for s in out.snapshots])
    counts, levels, act = np.mean(counts, axis=0), np.mean(levels, axis=0), np.mean(act, axis=0)
    for k, name in enumerate(setup.agent_names):
        np.testing.assert_allclose(counts[:, k], ode[name].values.ravel(), rtol=0.03, err_msg=name)
    for k, name in enumerate(setup.fields):
        np.testing.assert_allclose(levels[1:, k], ode[name].values.ravel()[1:], rtol=0.03, err_msg=name)
    np.testing.assert_allclose(act[1:], ode["act"].values.ravel()[1:], rtol=0.03)
    expected = ode["K"].values.ravel()
    assert expected[-1] > 5 * expected[0] and ode["B"].values.ravel()[-1] < 0.85 * 500  # recruitment and killing matter
