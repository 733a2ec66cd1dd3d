"""ilsim's tissue diffusion solver against BioFVM (Ghaffarizadeh et al. 2016), built here from its public source.

Two checks, side by side in one run:

1. the same numbers: a grid with several fields, cells secreting and taking up (BioFVM's Basic_Agent
   S, T, U form), fixed-value voxels, 2-D and 3-D, the same time step and number of steps; the largest
   relative difference of every voxel must be below 1e-9;
2. the same work timed: 500 x 500 voxels, 3 fields, one LOD diffusion-decay step (no cells), both on the
   same number of threads (OpenMP for BioFVM, numba for ilsim); median of the steps, and the ratio.

BioFVM's source is taken from the mirror (/work/.mirror/MathCancer+BioFVM/repo, a bare git repository) or from
``--biofvm-src``; a small driver (written below) is compiled with ``g++ -O3 -fopenmp`` into
~/.cache/ilsim-bench/biofvm (once; rebuilt when the driver's text changes). Nothing here is an ilsim dependency.

Run:   python bench/tissue_vs_biofvm.py [--threads 2] [--steps 50]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("ILSIM_BENCH_CACHE", Path.home() / ".cache" / "ilsim-bench")) / "biofvm"
MIRROR = Path("/work/.mirror/MathCancer+BioFVM/repo")
SOURCES = ["BioFVM_vector", "BioFVM_matlab", "BioFVM_utilities", "BioFVM_mesh", "BioFVM_microenvironment",
           "BioFVM_solvers", "BioFVM_basic_agent", "BioFVM_agent_container", "BioFVM_MultiCellDS", "pugixml"]

# The driver reads one problem from a binary file and writes the fields after the steps (voxel-major, as BioFVM keeps
# them), or times the diffusion-decay step alone. Input layout (all float64 unless said):
#   int32 dims, nx, ny, nz, nf, steps, ncells, ndirichlet;  dx, dt;  D[nf], decay[nf];  density[nvox*nf]
#   per cell: x, y, z, volume, S[nf], T[nf], U[nf];   per Dirichlet node: int32 voxel, value[nf]
DRIVER = r"""
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <algorithm>
#include <vector>
#include <omp.h>
#include "BioFVM.h"
using namespace BioFVM;

template <class T> T get(FILE* f) { T v; if (fread(&v, sizeof(T), 1, f) != 1) { exit(3); } return v; }

int main(int argc, char** argv) {
    if (argc < 4) { fprintf(stderr, "usage: driver IN OUT THREADS [time]\n"); return 2; }
    omp_set_num_threads(atoi(argv[3]));
    bool timing = argc > 4;
    FILE* in = fopen(argv[1], "rb");
    int dims = get<int>(in), nx = get<int>(in), ny = get<int>(in), nz = get<int>(in), nf = get<int>(in);
    int steps = get<int>(in), ncells = get<int>(in), ndir = get<int>(in);
    double dx = get<double>(in), dt = get<double>(in);
    Microenvironment M;
    M.set_density(0, "f0", "none");
    for (int f = 1; f < nf; f++) M.add_density("f" + std::to_string(f), "none");
    M.resize_space_uniform(0, nx * dx, 0, ny * dx, 0, nz * dx, dx);
    for (int f = 0; f < nf; f++) M.diffusion_coefficients[f] = get<double>(in);
    for (int f = 0; f < nf; f++) M.decay_rates[f] = get<double>(in);
    M.diffusion_decay_solver = dims == 2 ? diffusion_decay_solver__constant_coefficients_LOD_2D
                                         : diffusion_decay_solver__constant_coefficients_LOD_3D;
    int nvox = M.number_of_voxels();
    for (int v = 0; v < nvox; v++) for (int f = 0; f < nf; f++) M.density_vector(v)[f] = get<double>(in);
    for (int c = 0; c < ncells; c++) {
        std::vector<double> p(3); p[0] = get<double>(in); p[1] = get<double>(in); p[2] = get<double>(in);
        Basic_Agent* a = create_basic_agent();
        a->register_microenvironment(&M);
        a->assign_position(p);
        a->volume = get<double>(in);
        for (int f = 0; f < nf; f++) (*a->secretion_rates)[f] = get<double>(in);
        for (int f = 0; f < nf; f++) (*a->saturation_densities)[f] = get<double>(in);
        for (int f = 0; f < nf; f++) (*a->uptake_rates)[f] = get<double>(in);
        a->set_internal_uptake_constants(dt);
    }
    for (int d = 0; d < ndir; d++) {
        int v = get<int>(in); std::vector<double> val(nf);
        for (int f = 0; f < nf; f++) val[f] = get<double>(in);
        M.add_dirichlet_node(v, val);
    }
    fclose(in);
    std::vector<double> times;
    for (int s = 0; s < steps; s++) {
        auto t0 = std::chrono::steady_clock::now();
        if (!timing) M.simulate_cell_sources_and_sinks(dt);
        M.simulate_diffusion_decay(dt);
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    FILE* out = fopen(argv[2], "wb");
    for (int v = 0; v < nvox; v++) fwrite(M.density_vector(v).data(), sizeof(double), nf, out);
    fclose(out);
    std::sort(times.begin(), times.end());
    printf("median_step_s %.9g min_step_s %.9g\n", times[times.size() / 2], times[0]);
    return 0;
}
"""


def biofvm_source(explicit: str | None = None) -> Path | None:
    """A folder with BioFVM's sources: ``explicit``, or extracted once from the mirror into the cache."""
    if explicit:
        return Path(explicit)
    src = CACHE / "src"
    if (src / "BioFVM.h").exists():
        return src
    if not MIRROR.exists():
        return None
    src.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "--git-dir", str(MIRROR), "archive", "HEAD"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    return src


def driver_path() -> Path:
    """Where the driver of this text is (or would be) built."""
    return CACHE / f"driver-{hashlib.sha256(DRIVER.encode()).hexdigest()[:12]}"


def build_driver(explicit_src: str | None = None, jobs: int = 2) -> Path | None:
    """The compiled driver (built when missing or when its text changed), or None without BioFVM's source or g++."""
    exe = driver_path()
    if exe.exists():
        return exe
    src = biofvm_source(explicit_src)
    if src is None or shutil.which("g++") is None:
        return None
    obj = CACHE / "obj"
    obj.mkdir(parents=True, exist_ok=True)
    flags = ["-O3", "-march=native", "-fopenmp", "-std=c++11"]
    procs = []
    for name in SOURCES:
        target = obj / f"{name}.o"
        if not target.exists():
            procs.append(subprocess.Popen(["g++", *flags, "-c", str(src / f"{name}.cpp"), "-o", str(target)]))
            if len(procs) >= jobs:
                if procs.pop(0).wait() != 0:
                    raise RuntimeError(f"building BioFVM failed at {name}")
    if any(p.wait() != 0 for p in procs):
        raise RuntimeError("building BioFVM failed")
    driver = exe.with_suffix(".cpp")
    driver.write_text(DRIVER)
    tmp = exe.with_suffix(".tmp")
    subprocess.run(["g++", *flags, "-I", str(src), str(driver), *[str(obj / f"{n}.o") for n in SOURCES], "-o", str(tmp)],
                   check=True)
    tmp.replace(exe)
    return exe


def run_biofvm(exe: Path, problem: dict, threads: int = 2, timing: bool = False) -> tuple[np.ndarray, float]:
    """BioFVM's fields after ``problem['steps']`` steps, shaped (fields, z, y, x) as ilsim keeps them, and its median
    step time."""
    nx, ny, nz = problem["shape"]
    nf = len(problem["D"])
    cells = problem.get("cells", [])
    dirichlet = problem.get("dirichlet", [])
    with tempfile.TemporaryDirectory() as tmp:
        path_in, path_out = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        with open(path_in, "wb") as f:
            head = [problem["dims"], nx, ny, nz, nf, problem["steps"], len(cells), len(dirichlet)]
            f.write(np.array(head, dtype=np.int32).tobytes())
            f.write(np.array([problem["dx"], problem["dt"], *problem["D"], *problem["decay"]], dtype=np.float64).tobytes())
            density = problem["initial"].reshape(nf, -1).T  # voxel-major
            f.write(np.ascontiguousarray(density, dtype=np.float64).tobytes())
            for cell in cells:
                f.write(np.array([*cell["position"], cell["volume"], *cell["S"], *cell["T"], *cell["U"]],
                                 dtype=np.float64).tobytes())
            for voxel, values in dirichlet:
                f.write(np.array([voxel], dtype=np.int32).tobytes())
                f.write(np.array(values, dtype=np.float64).tobytes())
        args = [str(exe), str(path_in), str(path_out), str(threads)] + (["time"] if timing else [])
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        fields = np.fromfile(path_out, dtype=np.float64).reshape(-1, nf).T.reshape(nf, nz, ny, nx)
    words = out.split()
    return fields, float(words[words.index("median_step_s") + 1])


def run_ilsim(problem: dict, timing: bool = False) -> tuple[np.ndarray, float]:
    """The same problem through ilsim's solver: fields (fields, z, y, x) and the median step time."""
    import time

    from ilsim.engines.tissue.diffusion import DiffusionSolver

    nx, ny, nz = problem["shape"]
    dims, dx, dt = problem["dims"], problem["dx"], problem["dt"]
    shape = (nx, ny, nz)[:dims]
    solver = DiffusionSolver(shape, dx, dt, problem["D"], problem["decay"])
    if problem.get("dirichlet"):  # BioFVM's Dirichlet nodes: the solver's fixed voxels, listed one by one
        solver.fixed_index = np.array([v for v, _ in problem["dirichlet"]], dtype=np.int64)
        solver.fixed_values = np.ascontiguousarray(np.array([vals for _, vals in problem["dirichlet"]]).T)
    C = np.ascontiguousarray(problem["initial"], dtype=np.float64).copy()
    cells = None
    if problem.get("cells") and not timing:
        cs = problem["cells"]
        pos = np.array([c["position"] for c in cs])
        ijk = np.clip(np.floor(pos / dx).astype(np.int64), 0, np.array([nx, ny, nz]) - 1)
        voxel = ijk[:, 0] + nx * (ijk[:, 1] + ny * ijk[:, 2])
        w = dt * np.array([c["volume"] for c in cs]) / dx**3
        cells = (voxel, w, np.array([c["S"] for c in cs]), np.array([c["T"] for c in cs]), np.array([c["U"] for c in cs]),
                 np.zeros((len(cs), len(problem["D"]))))
    times = []
    for _ in range(problem["steps"]):
        t0 = time.perf_counter()
        solver.step(C, cells)
        times.append(time.perf_counter() - t0)
    return C, float(np.median(times))


def agreement_problem(dims: int, seed: int = 1) -> dict:
    """A small problem that exercises everything the two solvers share: 3 fields, decay, cells, Dirichlet voxels."""
    rng = np.random.default_rng(seed)
    shape = (24, 18, 1) if dims == 2 else (12, 10, 9)
    nx, ny, nz = shape
    dx = 20.0
    nf = 3
    nvox = nx * ny * nz
    cells = []
    used = rng.choice(nvox, 15, replace=False)  # one cell per voxel: BioFVM updates a shared voxel from several threads
    for v in used:
        k, rem = divmod(int(v), nx * ny)
        j, i = divmod(rem, nx)
        centre = [(i + 0.5) * dx, (j + 0.5) * dx, (k + 0.5) * dx]
        cells.append({"position": centre, "volume": 2494.0, "S": list(rng.random(nf) * 2), "T": list(rng.random(nf) * 5),
                      "U": list(rng.random(nf))})
    dirichlet = [(int(v), list(rng.random(nf))) for v in rng.choice(np.setdiff1d(np.arange(nvox), used), 6, replace=False)]
    return {"dims": dims, "shape": shape, "dx": dx, "dt": 0.05, "steps": 40, "D": [1000.0, 100.0, 5.0],
            "decay": [0.1, 0.01, 0.0], "initial": rng.random((nf, nz, ny, nx)), "cells": cells, "dirichlet": dirichlet}


def timing_problem(steps: int) -> dict:
    nf = 3
    return {"dims": 2, "shape": (500, 500, 1), "dx": 20.0, "dt": 0.01, "steps": steps, "D": [1000.0, 100.0, 10.0],
            "decay": [0.1, 0.01, 0.0], "initial": np.random.default_rng(0).random((nf, 1, 500, 500))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--biofvm-src", default=None, help="a folder with BioFVM's sources (default: the mirror)")
    args = ap.parse_args(argv)
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    import numba

    numba.set_num_threads(args.threads)
    exe = build_driver(args.biofvm_src)
    if exe is None:
        print("BioFVM's source or g++ is missing: nothing to compare against", file=sys.stderr)
        return 1
    for dims in (2, 3):
        problem = agreement_problem(dims)
        ref, _ = run_biofvm(exe, problem, args.threads)
        ours, _ = run_ilsim(problem)
        rel = float(np.max(np.abs(ours - ref) / np.maximum(np.abs(ref), 1e-300)))
        print(f"{dims}-D, {problem['steps']} steps, 3 fields, {len(problem['cells'])} cells: "
              f"max relative difference {rel:.2e} ({'ok' if rel < 1e-9 else 'ABOVE 1e-9'})")
    problem = timing_problem(args.steps)
    run_ilsim({**problem, "steps": 2}, timing=True)  # compile first
    _, t_biofvm = run_biofvm(exe, problem, args.threads, timing=True)
    _, t_ilsim = run_ilsim(problem, timing=True)
    print(f"500 x 500 voxels, 3 fields, one LOD step on {args.threads} threads (median of {args.steps}): "
          f"BioFVM {t_biofvm * 1e3:.2f} ms, ilsim {t_ilsim * 1e3:.2f} ms, BioFVM / ilsim = {t_biofvm / t_ilsim:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
