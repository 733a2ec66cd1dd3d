"""Agents of the tissue engine against small cases computed by hand, and the same numbers at any thread count.

Oracles: the soft-sphere push (2 cells, one step), chemotactic drift in a linear field (sensitivity x slope x time),
the mean squared displacement of the persistent random walk (the exact sum for its turning probability), the
survival of targets touching a killer and of cells with a death rate (exp(-rate t), within binomial error), and
the identity of a run's numbers with 1 and 2 numba threads (separate processes).
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from ilsim.engines.tissue.setup import build
from ilsim.model.spec import ModelSpec

SRC = Path(__file__).resolve().parents[3] / "src"


def _spec(agents, size=(400.0, 400.0), voxel=10.0, fields=(), dt=0.1, extra_species=()):
    species = [{"name": a["species"], "kind": "cell", "initial": 0} for a in agents]
    species += [{"name": f["species"], "kind": "cytokine", "initial": 0} for f in fields]
    species += list(extra_species)
    return ModelSpec.model_validate({
        "metadata": {"name": "t", "time_units": "minute"}, "species": species,
        "tissue": {"domain": {"dimensions": len(size), "size": list(size), "voxel": voxel}, "fields": list(fields),
                   "agents": agents, "dt": dt, "t_end": 10, "save_every": 1}})


def _place(setup, pos, typ):
    from ilsim.engines.tissue.agents import Agents

    p = np.zeros((len(typ), 3))
    p[:, : len(pos[0])] = pos
    return Agents.place(p, np.array(typ), setup.tissue.seed, setup.geometry.dims)


def test_repulsion_pushes_overlapping_cells_apart_by_the_hand_computed_amount():
    setup = build(_spec([{"species": "A", "radius": 5.0, "repulsion": 2.0}]))
    agents = _place(setup, [[100.0, 200.0], [106.0, 200.0], [300.0, 300.0]], [0, 0, 0])
    agents.step(setup.initial, setup.types, setup.geometry, 1, 0.1, 0)
    # overlap: each cell moves 2 µm/min x (1 - 6/10) x 0.1 min = 0.08 µm away from the other; the far cell stays
    np.testing.assert_allclose(agents.pos[:, 0], [99.92, 106.08, 300.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(agents.pos[:, 1], [200.0, 200.0, 300.0], rtol=0, atol=1e-12)


def test_chemotaxis_drifts_by_sensitivity_times_slope_times_time():
    spec = _spec([{"species": "A", "chemotaxis": {"field": "X", "sensitivity": 50.0}},
                  {"species": "B", "chemotaxis": {"field": "X", "sensitivity": -20.0}}],
                 fields=[{"species": "X", "diffusion": 0.0}])
    setup = build(spec)
    C = setup.initial.copy()
    slope = 0.01  # per µm
    C[0, 0] = slope * (np.arange(40) + 0.5) * 10.0  # c = slope * x at voxel centres
    agents = _place(setup, [[150.0, 120.0], [250.0, 220.0]], [0, 1])
    for step in range(1, 51):
        agents.step(C, setup.types, setup.geometry, step, 0.1, 0)
    # 5 min: +50 x 0.01 x 5 = +2.5 µm for A, -20 x 0.01 x 5 = -1 µm for B; y unchanged
    np.testing.assert_allclose(agents.pos[:, 0], [152.5, 249.0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(agents.pos[:, 1], [120.0, 220.0], rtol=0, atol=1e-12)


def test_persistent_random_walk_has_the_exact_mean_squared_displacement():
    speed, persistence, dt, steps, n = 3.0, 2.0, 0.1, 60, 4000
    setup = build(_spec([{"species": "A", "speed": speed, "persistence": persistence}], size=(10000.0, 10000.0),
                        voxel=100.0))
    start = np.full((n, 2), 5000.0)
    agents = _place(setup, start, [0] * n)
    for step in range(1, steps + 1):
        agents.step(setup.initial, setup.types, setup.geometry, step, dt, 0)
    msd = np.sum((agents.pos[:, :2] - start) ** 2, axis=1)
    q = math.exp(-dt / persistence)  # a step keeps its direction with probability q, else draws a new one
    exact = (speed * dt) ** 2 * (steps + 2 * sum((steps - j) * q**j for j in range(1, steps)))
    assert abs(msd.mean() - exact) < 4 * msd.std() / math.sqrt(n), (msd.mean(), exact)


def test_contact_killing_and_death_follow_their_rates():
    rate, death, dt, steps, pairs = 0.5, 0.2, 0.1, 20, 1500
    spec = _spec([{"species": "K", "radius": 5.0, "kills": [{"target": "T", "rate": rate}]},
                  {"species": "T", "radius": 5.0}, {"species": "D", "death": death}], size=(30000.0, 3000.0), voxel=100.0)
    setup = build(spec)
    xs = 10.0 + 20.0 * np.arange(pairs)  # pairs 20 µm apart along x, one row touching (8 µm), one row apart (30 µm)
    pos, typ = [], []
    for x in xs:
        pos += [[x, 100.0], [x, 108.0], [x, 1000.0], [x, 1030.0], [x, 2000.0]]
        typ += [0, 1, 0, 1, 2]
    agents = _place(setup, pos, typ)
    for step in range(1, steps + 1):
        agents.step(setup.initial, setup.types, setup.geometry, step, dt, 0)
    y = agents.pos[:, 1]
    touching = np.sum((agents.typ == 1) & (y < 500))
    apart = np.sum((agents.typ == 1) & (y > 500))
    dying = np.sum(agents.typ == 2)
    for alive, p in ((touching, math.exp(-rate * steps * dt)), (dying, math.exp(-death * steps * dt))):
        assert abs(alive - pairs * p) < 4 * math.sqrt(pairs * p * (1 - p)), (alive, pairs * p)
    assert apart == pairs  # nobody out of reach dies
    assert np.sum(agents.typ == 0) == 2 * pairs


_RUN = textwrap.dedent("""
    import hashlib, sys
    import numpy as np
    import ilsim
    from ilsim.engines.tissue import agents, diffusion
    from ilsim.engines.tissue.engine import TissueEngine
    agents.PARALLEL_FROM = diffusion.PARALLEL_FROM = 0  # the threaded kernels, however small the case
    run = TissueEngine(t_end=3.0, save_every=1.0).run(ilsim.compile(sys.argv[1]))
    s = run.snapshots[-1]
    h = hashlib.sha256()
    for a in (s.fields, s.agents["ids"], s.agents["typ"], s.agents["pos"], s.agents["occupancy"]):
        h.update(np.ascontiguousarray(a).tobytes())
    print(len(s.agents["ids"]), h.hexdigest())
""")

_MODEL = """
metadata: {name: threads, time_units: minute}
species:
  - {name: Th, kind: cell, initial: 0}
  - {name: Treg, kind: cell, initial: 0}
  - {name: IL2, kind: cytokine, units: pM, initial: 0}
tissue:
  domain: {dimensions: 2, size: [600, 600], voxel: 10, boundary: {x_min: periodic, x_max: periodic}}
  fields: [{species: IL2, diffusion: 600, decay: 0.01}]
  agents:
    - {species: Th, speed: 3, persistence: 2, repulsion: 2, division: 0.05, death: 0.02,
       placement: {kind: cluster, count: 400, center: [300, 300], radius: 150},
       secretion: [{field: IL2, rate: 100, stimulus: IL2, threshold: 0.001, lag: 1}, {field: IL2, rate: 10}],
       receptor: {field: IL2, kd: 1}, chemotaxis: {field: IL2, sensitivity: 100}}
    - {species: Treg, speed: 2, repulsion: 2, kills: [{target: Th, rate: 0.2}], uptake: [{field: IL2, rate: 1}],
       placement: {kind: random, count: 300}}
  dt: 0.1
  seed: 11
"""


def test_same_numbers_at_any_thread_count(tmp_path):
    model = tmp_path / "m.yaml"
    model.write_text(_MODEL)
    script = tmp_path / "run.py"
    script.write_text(_RUN)
    outs = []
    for threads in ("1", "2"):
        env = {**os.environ, "NUMBA_NUM_THREADS": threads, "PYTHONPATH": str(SRC)}
        done = subprocess.run([sys.executable, str(script), str(model)], capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        outs.append(done.stdout.split())
    assert outs[0] == outs[1]
    assert int(outs[0][0]) != 700  # divisions, deaths and killings happened
    assert hashlib.sha256(b"").hexdigest() not in outs[0]
