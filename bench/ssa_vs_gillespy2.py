"""ilsim's stochastic engine against GillesPy2's C++ and NumPy SSA solvers, side by side in one run.

The model of issue 15 (examples/immune-birth-death.yaml; built again in GillesPy2 below): effector
cells E born at rate 1 and dying at 0.1 per cell, each secreting IL at 5 per
cell, IL decaying at 1 per molecule; from E = IL = 0, 1,000 trajectories over t = 0..50 (51 output times).
Each tool runs its exact direct method; compile time (ilsim: numba, GillesPy2 C++: the solver's build) is
timed apart from the runs, and each run is the median of ``--repeats``. The means at t = 50 are printed
beside each other (stationary mean E = 10, IL = 50) as a check that the tools simulate the same thing.

GillesPy2 is installed by this script into its own virtual environment under ~/.cache/ilsim-bench (never a
dependency of ilsim or its tests) and runs there in a subprocess, with NUMBA_NUM_THREADS of ilsim's side set
by the caller (default: all cores).

    PYTHONPATH=src python bench/ssa_vs_gillespy2.py [--trajectories 1000] [--repeats 5] [--no-numpy]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

VENV = Path(os.environ.get("ILSIM_BENCH_CACHE", Path.home() / ".cache" / "ilsim-bench")) / "gillespy2-venv"
GILLESPY2 = "gillespy2>=1.8,<2"

MODEL = Path(__file__).resolve().parents[1] / "examples" / "immune-birth-death.yaml"  # the same model for ilsim

GILLESPY2_SIDE = textwrap.dedent("""
    import json, resource, statistics, sys, time
    import numpy as np
    import gillespy2
    from gillespy2 import NumPySSASolver, SSACSolver

    trajectories, repeats, numpy_too = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"

    def model():
        m = gillespy2.Model(name="immune")
        b, d, s, k = (gillespy2.Parameter(name=n, expression=v) for n, v in
                      (("birth", 1.0), ("death", 0.1), ("secretion", 5.0), ("decay", 1.0)))
        m.add_parameter([b, d, s, k])
        E = gillespy2.Species(name="E", initial_value=0, mode="discrete")
        IL = gillespy2.Species(name="IL", initial_value=0, mode="discrete")
        m.add_species([E, IL])
        m.add_reaction([
            gillespy2.Reaction(name="born", reactants={}, products={E: 1}, rate=b),
            gillespy2.Reaction(name="dies", reactants={E: 1}, products={}, rate=d),
            gillespy2.Reaction(name="secretes", reactants={E: 1}, products={E: 1, IL: 1}, rate=s),
            gillespy2.Reaction(name="decays", reactants={IL: 1}, products={}, rate=k)])
        m.timespan(np.linspace(0, 50, 51))
        return m

    out = {"gillespy2": gillespy2.__version__}
    m = model()
    start = time.perf_counter()
    solver = SSACSolver(model=m)  # builds the C++ executable for this model
    out["cpp_compile_s"] = time.perf_counter() - start
    runs, cpu = [], []
    for _ in range(repeats):
        start, c0, r0 = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
        result = m.run(solver=solver, number_of_trajectories=trajectories, seed=7)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the C++ solver runs as a child process
        runs.append(time.perf_counter() - start)
        cpu.append(time.process_time() - c0 + (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime))
    out["cpp_run_s"] = statistics.median(runs)
    out["cpp_cpu_s"] = statistics.median(cpu)
    out["cpp_mean_end"] = {s: float(np.mean([r[s][-1] for r in result])) for s in ("E", "IL")}
    if numpy_too:
        start = time.perf_counter()
        result = m.run(solver=NumPySSASolver, number_of_trajectories=trajectories, seed=7)
        out["numpy_run_s"] = time.perf_counter() - start
        out["numpy_mean_end"] = {s: float(np.mean([r[s][-1] for r in result])) for s in ("E", "IL")}
    print(json.dumps(out))
""")


def ensure_gillespy2() -> Path:
    """The virtual environment's python, with GillesPy2 installed on first use."""
    python = VENV / "bin" / "python"
    if not python.exists():
        VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    check = subprocess.run([str(python), "-c", "import gillespy2"], capture_output=True)
    if check.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", GILLESPY2], check=True)
    return python


def run_gillespy2(trajectories: int, repeats: int, numpy_too: bool) -> dict:
    python = ensure_gillespy2()
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(GILLESPY2_SIDE)
    # GillesPy2 builds its C++ solver with SCons run by the base interpreter the venv points to: it finds SCons
    # (installed into the venv with GillesPy2) through PYTHONPATH
    site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True,
                          text=True, check=True).stdout.strip()
    env = {**os.environ, "PYTHONPATH": site}
    try:
        done = subprocess.run([str(python), f.name, str(trajectories), str(repeats), "1" if numpy_too else "0"],
                              capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SystemExit(f"GillesPy2 failed:\n{done.stderr[-3000:]}")
    finally:
        os.unlink(f.name)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_ilsim(trajectories: int, repeats: int, method: str) -> dict:
    import numba

    import ilsim
    from ilsim.engines.ssa import SsaEngine
    from ilsim.engines.ssa.codegen import model_module

    model = ilsim.compile(ilsim.load(MODEL))
    start = time.perf_counter()
    model_module(model)  # generate and import (numba compiles on the first call, timed next)
    t = np.linspace(0.0, 50.0, 51)
    engine = SsaEngine(trajectories=trajectories, seed=7, method=method)
    engine.solve(model, t, model.p0[None, :])  # one trajectory: compiles (or loads numba's cache)
    compile_s = time.perf_counter() - start
    P = np.repeat(model.p0[None, :], trajectories, axis=0)
    runs, cpu = [], []
    for _ in range(repeats):
        start, c0 = time.perf_counter(), time.process_time()
        result = engine.solve(model, t, P)
        runs.append(time.perf_counter() - start)
        cpu.append(time.process_time() - c0)  # all of this process's threads
    return {"compile_s": compile_s, "run_s": float(np.median(runs)), "cpu_s": float(np.median(cpu)),
            "threads": numba.get_num_threads(),
            "reactions_per_trajectory": float(result.steps.mean()),
            "mean_end": {s: float(result.Y[:, -1, i].mean()) for i, s in enumerate(model.species)}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trajectories", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--method", default="direct")
    ap.add_argument("--no-numpy", action="store_true", help="skip GillesPy2's NumPy solver (about 13 s)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    ours = run_ilsim(args.trajectories, args.repeats, args.method)
    theirs = run_gillespy2(args.trajectories, args.repeats, not args.no_numpy)
    n = args.trajectories
    reactions = ours["reactions_per_trajectory"] * n
    print(f"{n:,} trajectories, t = 0..50, {ours['reactions_per_trajectory']:.0f} reactions per trajectory "
          f"(ilsim), median of {args.repeats} runs; wall-clock time, and CPU time (all threads and child processes)")
    print(f"  ilsim ssa ({args.method}, {ours['threads']} threads): {ours['run_s']:.4f} s wall, {ours['cpu_s']:.4f} s CPU "
          f"({ours['cpu_s'] / reactions * 1e9:.1f} ns CPU per reaction; compile or cache load {ours['compile_s']:.2f} s)"
          f"   mean at t=50: {ours['mean_end']}")
    print(f"  GillesPy2 {theirs['gillespy2']} C++ SSA:   {theirs['cpp_run_s']:.4f} s wall, {theirs['cpp_cpu_s']:.4f} s CPU "
          f"(build {theirs['cpp_compile_s']:.2f} s)   mean at t=50: {theirs['cpp_mean_end']}")
    print(f"  ratio, GillesPy2 C++ / ilsim: {theirs['cpp_run_s'] / ours['run_s']:.1f}x wall-clock, "
          f"{theirs['cpp_cpu_s'] / ours['cpu_s']:.1f}x CPU time (target: 10x)")
    if "numpy_run_s" in theirs:
        print(f"  GillesPy2 NumPy SSA:        {theirs['numpy_run_s']:.4f} s   mean at t=50: {theirs['numpy_mean_end']}"
              f"   ratio {theirs['numpy_run_s'] / ours['run_s']:.0f}x")
    if args.json:
        args.json.write_text(json.dumps({"ilsim": ours, "gillespy2": theirs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
