"""The tissue engine's GPU backend (engines/tissue/gpu.py) against its CPU run, in numba's CUDA simulator.

Oracle: the CPU engine on the same grid, cells and seed. In the simulator the kernels run the CPU's own bodies in the
CPU's order of operations, so one LOD step (every kind of side, vessels, several cells per voxel) and ten full
steps with motility, chemotaxis, repulsion, sensing, secretion, uptake, division, death, killing and recruitment
must give the same numbers bit for bit: fields, every cell's position, direction, id, type and state, and the
ledger. The simulator runs in a subprocess (NUMBA_ENABLE_CUDASIM must be set before numba is imported) and records
each kernel's argument types; the kernels are then compiled to PTX for an sm_80 GPU with those types, so what the
simulator ran is also code a GPU accepts. Without a device the backend is refused with the way out.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

SRC = Path(__file__).resolve().parents[3] / "src"

MODEL = """
metadata: {name: gpu_tissue, time_units: minute}
species:
  - {name: Th, kind: cell, initial: 0}
  - {name: Mac, kind: cell, initial: 0}
  - {name: IL2, kind: cytokine, initial: 0}
  - {name: CCL, kind: cytokine, initial: 0.5}
tissue:
  domain: {dimensions: 2, size: [80, 60], voxel: 10, boundary: {x_min: periodic, x_max: periodic, y_max: 0.2},
           vessels: [{lower: [0, 0], upper: [20, 10]}]}
  fields:
    - {species: IL2, diffusion: 300, decay: 0.05, vessel_exchange: 0.3, blood: 1.5}
    - {species: CCL, diffusion: 100, decay: 0.01, initial: 0.5}
  agents:
    - {species: Th, radius: 6, speed: 4, persistence: 0.5, repulsion: 5, division: 0.3, death: 0.2,
       chemotaxis: {field: CCL, sensitivity: 40}, secretion: [{field: IL2, rate: 500, stimulus: CCL, threshold: 0.1,
       lag: 0.2}], receptor: {field: IL2, kd: 2, tau: 1}, uptake: [{field: IL2, rate: 3}],
       placement: {kind: random, count: 24}}
    - {species: Mac, radius: 8, speed: 2, persistence: 2, repulsion: 3, death: 0.1, uptake: [{field: CCL, rate: 1}],
       kills: [{target: Th, rate: 0.5}], recruitment: {rate: 0.5, field: IL2}, placement: {kind: random, count: 10}}
  dt: 0.1
  t_end: 1
  save_every: 0.5
  seed: 7
"""

SCRIPT = textwrap.dedent("""
    import pickle, sys
    import numba
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from ilsim.engines.tissue import gpu
    from ilsim.engines.tissue.diffusion import DiffusionSolver, Ledger
    from ilsim.engines.tissue.engine import run
    from ilsim.engines.tissue.setup import build
    from ilsim.model.spec import ModelSpec
    import yaml

    assert numba.config.ENABLE_CUDASIM
    module = gpu.gpu_module()
    names = {id(getattr(module, n)): n for n in dir(module) if n.endswith("_kernel")}
    signatures = {}
    launch = gpu._launch

    def recording(kernel, n, *args):  # each kernel's argument types, for the PTX compilation in the test
        host = [np.asarray(a._ary) if hasattr(a, "_ary") else a for a in args]
        signatures.setdefault(names[id(kernel)], tuple(numba.typeof(a) for a in host))
        launch(kernel, n, *args)

    gpu._launch = recording

    # one LOD step in 3-D: a periodic axis, fixed sides, vessels, several cells in one voxel
    rng = np.random.default_rng(3)
    shape = (5, 4, 3)
    solver = DiffusionSolver(shape, 10.0, 0.5, [200.0, 30.0], [0.02, 0.1], periodic=(False, False, True),
                             fixed={"x_min": [1.0, 0.0], "y_max": [0.0, 2.0]}, vessels=[7, 20, 33],
                             exchange=[0.4, 0.0], blood=[3.0, 0.0])
    C0 = rng.random((2, 3, 4, 5))
    n = 40
    voxel = rng.integers(0, 60, n)
    voxel[:6] = 11  # six cells in one voxel: each sees the update of those before it
    voxel[6] = -1  # outside the grid
    cells = (voxel, rng.random(n) * 0.3, rng.random((n, 2)), rng.random((n, 2)), rng.random((n, 2)),
             rng.random((n, 2)) * 50)
    out = {}
    for name, s in (("cpu", solver), ("gpu", gpu.GpuDiffusion.of(solver))):
        C, ledger = C0.copy(), Ledger.zeros(2)
        s.step(C, cells, ledger)
        out[name] = (C, ledger)
    (C_cpu, l_cpu), (C_gpu, l_gpu) = out["cpu"], out["gpu"]
    assert np.array_equal(C_cpu, C_gpu), np.abs(C_cpu - C_gpu).max()
    for k in ("secreted", "taken_up", "decayed", "blood", "fixed"):
        assert np.array_equal(getattr(l_cpu, k), getattr(l_gpu, k)), (k, getattr(l_cpu, k), getattr(l_gpu, k))
        assert np.any(getattr(l_cpu, k) != 0), ("nothing booked", k)  # every path of the step acted
    assert not np.array_equal(C_cpu, C0)

    # ten full steps: the cells and the fields together
    setup = build(ModelSpec.model_validate(yaml.safe_load(sys.argv[2])))
    cpu = run(setup, backend="cpu")
    on_gpu = run(setup, backend="gpu")
    assert len(cpu.snapshots) == len(on_gpu.snapshots) == 3
    for a, b in zip(cpu.snapshots, on_gpu.snapshots):
        assert np.array_equal(a.fields, b.fields), np.abs(a.fields - b.fields).max()
        for key in a.agents:
            assert np.array_equal(a.agents[key], b.agents[key], equal_nan=True), key
    assert np.array_equal(cpu.state.agents.direction, on_gpu.state.agents.direction)
    for k in ("secreted", "taken_up", "decayed", "blood", "fixed"):
        assert np.array_equal(getattr(cpu.state.ledger, k), getattr(on_gpu.state.ledger, k)), k
    # the run exercised what it compares: cells died, were born, recruited, moved, secreted and took up
    start, end = cpu.snapshots[0].agents, cpu.snapshots[-1].agents
    assert not set(start["ids"]) <= set(end["ids"]), "no cell died"
    assert max(s.agents["ids"].max() for s in cpu.snapshots) >= len(start["ids"]), "no cell was born or recruited"
    assert (cpu.state.ledger.secreted > 0).any() and (cpu.state.ledger.taken_up > 0).all()
    middle = cpu.snapshots[1].agents
    assert (middle["occupancy"][middle["typ"] == 0] > 0).all()  # the helper cells' receptors read IL-2
    with open(sys.argv[3], "wb") as fh:
        pickle.dump(signatures, fh)
    print("ok", len(end["ids"]), "cells")
""")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """The simulator's comparison (asserted in the subprocess); the kernels' argument types it recorded."""
    path = tmp_path_factory.mktemp("gpu") / "signatures.pkl"
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(SRC), MODEL, str(path)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stderr[-4000:]
    with open(path, "rb") as fh:
        return pickle.load(fh)


def test_in_the_simulator_the_gpu_gives_the_cpus_numbers_bit_for_bit(simulated):
    assert set(simulated) == {"sweep_kernel", "cells_kernel", "vessels_kernel", "fixed_kernel", "sense_kernel",
                              "velocity_kernel", "advance_kernel", "fate_kernel"}


def test_every_kernel_compiles_to_ptx_for_a_gpu(simulated, monkeypatch):
    from numba import cuda
    from numba.cuda import dispatcher

    from ilsim.engines.tissue.gpu import gpu_module

    if "numba_cuda" not in cuda.__file__:
        # numba's bundled numba.cuda (deprecated) fails on min() of two integers; the gpu extra installs NVIDIA's
        pytest.skip("NVIDIA's numba-cuda (pip install 'ilsim[gpu]') is not installed")
    # a device function is compiled for the current device's architecture: without a device, name the PTX's
    monkeypatch.setattr(dispatcher, "get_current_device", lambda: SimpleNamespace(compute_capability=(8, 0)))
    module = gpu_module()
    try:
        cuda.compile_ptx(module.advance_kernel.py_func, simulated["advance_kernel"], cc=(8, 0))
    except Exception as exc:  # no NVVM or NVRTC (the CUDA toolkit's compiler libraries) here
        if not any(word in f"{type(exc).__name__} {exc}".lower() for word in ("nvvm", "nvrtc", "libnotfound")):
            raise
        pytest.skip(f"numba-cuda finds no CUDA compiler library: {exc}")
    for name, types in simulated.items():
        ptx, _ = cuda.compile_ptx(getattr(module, name).py_func, types, cc=(8, 0))
        assert ".entry" in ptx and "sm_80" in ptx, name


def _spec():
    import yaml

    from ilsim.model.spec import ModelSpec

    return ModelSpec.model_validate(yaml.safe_load(MODEL))


def _setup():
    from ilsim.engines.tissue.setup import build

    return build(_spec())


def _no_gpu():
    from ilsim.engines.tissue.gpu import cuda_unavailable_reason

    if cuda_unavailable_reason() is None:
        pytest.skip("a CUDA device (or numba's simulator) is available here")


def test_without_a_gpu_the_backend_is_refused_with_the_way_out():
    from ilsim.engines.tissue.engine import run
    from ilsim.errors import IlsimError

    _no_gpu()
    with pytest.raises(IlsimError, match=r"no CUDA GPU is available for the tissue engine \(.+\); run it on the CPU "
                                         r"\(backend cpu\)"):
        run(_setup(), backend="gpu")
    with pytest.raises(IlsimError, match="backend must be cpu or gpu, got 'tpu'"):
        run(_setup(), backend="tpu")
    import ilsim
    from ilsim.engines.tissue.engine import TissueEngine

    model = ilsim.compile(_spec())
    with pytest.raises(IlsimError, match=r"no CUDA GPU is available for the tissue engine .*\(backend cpu\)"):
        TissueEngine(backend="gpu").solve(model, [0.0, 0.1], model.p0[None, :])  # refused outright, not row by row
    with pytest.raises(IlsimError, match="backend must be cpu or gpu, got 'tpu'"):
        TissueEngine(backend="tpu")


def test_the_cli_refuses_the_gpu_without_one_and_writes_nothing(cli, refused, tmp_path):
    _no_gpu()
    model = tmp_path / "gpu_tissue.yaml"
    model.write_text(MODEL)
    out = tmp_path / "out"
    refused(cli("tissue", model, "--backend", "gpu", "--out", out, "--quiet"), "no CUDA GPU is available",
            "--backend cpu", "pip install 'ilsim[gpu]'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu_tissue.yaml"]
    refused(cli("tissue", model, "--backend", "tpu", "--out", out, "--quiet"), "--backend must be cpu or gpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu_tissue.yaml"]
