"""Speed of the tissue engine with cells: simulated minutes per wall second at several sizes (ilsim alone).

Each size keeps the density of cells and the voxel size: a 2-D square of side L (voxels of 20 µm, one field, IL-2
like), N cells of two types (secreting and consuming), with motility, soft-sphere repulsion, secretion, uptake
and stochastic division and death (balanced, so the count stays near N). Timed after a warm-up run (numba
compilation excluded); prints minutes simulated per wall second, microseconds per cell-step and per voxel-step.

The comparison with PhysiCell built here on the same model and thread count: bench/tissue_agents_vs_physicell.py.

Run:   python bench/tissue_agents.py [--cells 1000 10000 100000] [--minutes 10]
"""

from __future__ import annotations

import argparse
import math
import sys
import time

DENSITY = 1.0 / 2500.0  # cells per µm² (one per 50 x 50 µm)


def model(cells: int, minutes: float, side: float | None = None):
    """The benchmark's model; ``side`` (µm) overrides the side that keeps the density (bench/tissue_gpu.py)."""
    from ilsim.model.spec import ModelSpec

    side = 20.0 * max(3, round(math.sqrt(cells / DENSITY) / 20.0)) if side is None else side
    half = cells // 2
    agent = {"radius": 5.0, "speed": 2.0, "persistence": 3.0, "repulsion": 2.0, "division": 0.001, "death": 0.001}
    return ModelSpec.model_validate({
        "metadata": {"name": "bench", "time_units": "minute"},
        "species": [{"name": "S", "kind": "cell", "initial": 0}, {"name": "C", "kind": "cell", "initial": 0},
                    {"name": "IL2", "kind": "cytokine", "initial": 0}],
        "tissue": {"domain": {"dimensions": 2, "size": [side, side], "voxel": 20.0},
                   "fields": [{"species": "IL2", "diffusion": 600.0, "decay": 0.01}],
                   "agents": [{"species": "S", **agent, "secretion": [{"field": "IL2", "rate": 1000.0}],
                               "placement": {"kind": "random", "count": half}},
                              {"species": "C", **agent, "uptake": [{"field": "IL2", "rate": 5.0}],
                               "placement": {"kind": "random", "count": cells - half}}],
                   "dt": 0.1, "t_end": minutes, "save_every": minutes}})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args(argv)
    import numba

    from ilsim.engines.tissue.engine import run
    from ilsim.engines.tissue.setup import build

    run(build(model(200, 1.0)))  # compile
    print(f"numba threads: {numba.get_num_threads()}")
    for n in args.cells:
        setup = build(model(n, args.minutes))
        started = time.perf_counter()
        out = run(setup)
        wall = time.perf_counter() - started
        steps = round(args.minutes / setup.tissue.dt)
        voxels = math.prod(setup.geometry.shape)
        cells = int(out.counts()[-1].sum())
        print(f"{n:>8,} cells ({cells:,} at the end), {voxels:,} voxels: {args.minutes / wall:8.2f} simulated min per wall s; "
              f"{wall / steps / n * 1e6:.3f} µs per cell-step, {wall / steps / voxels * 1e6:.3f} µs per voxel-step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
