"""The tissue engine on a CUDA GPU beside the CPU: steps per second with 1,000,000 cells on a 1000 x 1000 grid.

The model is bench/tissue_agents.py's (two cell types with motility, repulsion, secretion, uptake and balanced
division and death; one IL-2-like field; 20 µm voxels, dt = 0.1 min), on a square of 1000 x 1000 voxels (20 mm) with
1,000,000 cells. Both backends start from the same placement and seed. First both run ``--check`` steps and the
script reports how far the GPU's numbers are from the CPU's (in numba's CUDA simulator they are equal; on a device,
fused multiply-adds and the GPU's exp/cos may move the last bits, and a moved bit can change a draw's outcome); then
it times ``--steps`` steps on the GPU and ``--cpu-steps`` on the CPU (numba's threads: all cores unless
NUMBA_NUM_THREADS says otherwise), after a warm-up run on a small grid so that compilation is not counted.

Needs a CUDA GPU and the extra (pip install 'ilsim[gpu]'); without one it says so and exits with 2. It also runs in
numba's CUDA simulator for a check of the script itself (NUMBA_ENABLE_CUDASIM=1, with --cells 40 --voxels 8).

Run:   python bench/tissue_gpu.py [--cells 1000000] [--voxels 1000] [--steps 50] [--cpu-steps 3] [--check 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from tissue_agents import model  # noqa: E402  (the same model as the CPU's benchmark)


def timed(setup, steps: int, backend: str):
    from ilsim.engines.tissue.engine import run

    dt = setup.tissue.dt
    started = time.perf_counter()
    out = run(setup, t_end=steps * dt, save_every=steps * dt, backend=backend)
    return out, time.perf_counter() - started


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=1_000_000)
    ap.add_argument("--voxels", type=int, default=1000, help="voxels along each side of the square")
    ap.add_argument("--steps", type=int, default=50, help="GPU steps timed")
    ap.add_argument("--cpu-steps", type=int, default=3, help="CPU steps timed")
    ap.add_argument("--check", type=int, default=3, help="steps run on both and compared")
    args = ap.parse_args(argv)
    import numba
    import numpy as np

    from ilsim.engines.tissue.gpu import require_gpu
    from ilsim.engines.tissue.setup import build
    from ilsim.errors import IlsimError

    try:
        require_gpu()
    except IlsimError as exc:
        print(f"tissue_gpu: {exc}", file=sys.stderr)
        return 2
    if numba.config.ENABLE_CUDASIM:
        print("numba's CUDA simulator: the numbers are checked, the speeds mean nothing")
    else:
        from numba import cuda

        name = cuda.get_current_device().name
        print(f"device: {name.decode() if isinstance(name, bytes) else name}")
    print(f"numba threads (CPU): {numba.get_num_threads()}")
    side = 20.0 * args.voxels
    small = build(model(200, 1.0))
    for backend in ("cpu", "gpu"):  # compile
        timed(small, 2, backend)
    setup = build(model(args.cells, 1.0, side=side))
    voxels = int(np.prod(setup.geometry.shape))
    print(f"{len(setup.agents.typ):,} cells, {voxels:,} voxels ({setup.geometry.shape[0]} x {setup.geometry.shape[1]})")

    if args.check:
        cpu, _ = timed(setup, args.check, "cpu")
        gpu, _ = timed(setup, args.check, "gpu")
        a, b = cpu.snapshots[-1], gpu.snapshots[-1]
        same = a.agents["ids"].shape == b.agents["ids"].shape and all(
            np.array_equal(a.agents[k], b.agents[k], equal_nan=True) for k in a.agents)
        scale = max(float(np.abs(a.fields).max()), 1e-300)
        print(f"after {args.check} steps: fields differ by at most {np.abs(a.fields - b.fields).max() / scale:.3g} "
              f"(relative to the largest level); cells {'identical' if same else 'differ'} "
              f"({len(a.agents['ids']):,} on the CPU, {len(b.agents['ids']):,} on the GPU)")

    for backend, steps in (("gpu", args.steps), ("cpu", args.cpu_steps)):
        if steps <= 0:
            continue
        out, wall = timed(setup, steps, backend)
        print(f"{backend}: {steps} steps in {wall:.3g} s: {steps / wall:.3g} steps per s, "
              f"{steps * setup.tissue.dt / wall:.3g} simulated min per wall s, {wall / steps / len(setup.agents.typ) * 1e9:.3g} "
              f"ns per cell-step ({len(out.state.agents):,} cells at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
