"""ilsim fit against pyPESTO + AMICI on the PEtab benchmark Boehm_JProteomeRes2014: 100 starts each.

    python bench/fit_vs_pypesto.py                    # --starts 100 --seed 1
    python bench/fit_vs_pypesto.py --skip-pypesto     # ilsim only (no C++ build)
    python bench/fit_vs_pypesto.py --evaluations-only  # objective + gradient per problem: Boehm, Crauste, Bachmann

pyPESTO, AMICI, fides and petab are installed by this script into their own virtual environment
(~/.cache/ilsim-bench/pypesto-venv, from the package registry; AMICI compiles C++ and needs swig, cmake and
a CBLAS: `apt-get install swig libopenblas-dev libhdf5-serial-dev`), never into ilsim's. Both tools run the
same starts count on the same machine, one after the other, with fides as the optimizer (trust region,
Gauss-Newton Hessian from forward sensitivities in both). Reported per tool: wall time, the fraction of
starts that reach the best known optimum (log-likelihood within 0.1 of AMICI's reference, -138.222), failed
starts, and the time of one objective + gradient evaluation at the nominal parameters (median of 20).

Besides the fit, one objective + gradient evaluation at the nominal parameters is timed per problem in
EVAL_PROBLEMS (median of 20, of 3 for Bachmann), in ilsim and in pyPESTO's AMICI objective (AMICI's model
build, C++ compiled with 2 jobs, is timed apart and cached under ~/.cache/ilsim-bench/amici_models).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROBLEM = "Boehm_JProteomeRes2014"
BEST_LLH = -138.22199693517703  # AMICI's reference at the nominal parameters, the best known optimum
VENV = Path.home() / ".cache" / "ilsim-bench" / "pypesto-venv"
PACKAGES = ["pypesto>=0.5,<0.8", "amici>=0.30,<2", "fides>=0.7,<0.9", "petab>=0.5,<0.9", "swig>=4.1,<4.4"]
# SWIG 4.4 and later wrap AMICI's models so that get_model() returns a bare SwigPyObject: AMICI and its models are
# built (build isolation included, through PIP_CONSTRAINT) with an earlier SWIG
SWIG_CONSTRAINT = "swig>=4.1,<4.4\n"

EVAL_PROBLEMS = {"Boehm_JProteomeRes2014": 20, "Crauste_CellSystems2017": 20, "Bachmann_MSB2011": 3}  # name: repeats

AMICI_TIMED = r'''
import json, sys, time, numpy as np
import pypesto, pypesto.optimize, pypesto.petab


def timed(yaml_path, repeats):
    """pyPESTO's AMICI problem, its build seconds, the median seconds of one objective + gradient evaluation at the
    nominal parameters, and the objective there."""
    importer = pypesto.petab.PetabImporter.from_yaml(yaml_path)
    t = time.perf_counter()
    problem = importer.create_problem()
    build = time.perf_counter() - t
    x = np.asarray(importer.petab_problem.x_nominal_free_scaled, float)
    problem.objective(x, sensi_orders=(0, 1))
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); problem.objective(x, sensi_orders=(0, 1)); times.append(time.perf_counter() - t)
    return problem, build, float(np.median(times)), float(problem.objective(x))
'''

AMICI_EVAL = AMICI_TIMED + r'''
out, runs = sys.argv[1], json.loads(sys.argv[2])  # {yaml path: repeats}
results = {}
for yaml_path, repeats in runs.items():
    _, build, seconds, nllh = timed(yaml_path, repeats)
    results[yaml_path] = {"build_s": build, "eval_grad_s": seconds, "nllh": nllh}
    json.dump(results, open(out, "w"))  # after each problem: a build that does not finish keeps the others
'''

PYPESTO_RUN = AMICI_TIMED + r'''
yaml_path, starts, seed, best, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
problem, build, eval_grad, fval_nominal = timed(yaml_path, 20)
np.random.seed(seed)
engine = pypesto.engine.MultiProcessEngine(n_procs=int(sys.argv[6]))
t = time.perf_counter()
result = pypesto.optimize.minimize(problem, optimizer=pypesto.optimize.FidesOptimizer(), n_starts=starts,
                                   engine=engine, progress_bar=False)
wall = time.perf_counter() - t
fvals = np.array([r.fval for r in result.optimize_result.list], float)
json.dump({"wall_s": wall, "build_s": build, "eval_grad_s": eval_grad, "fval_nominal": fval_nominal,
           "fvals": [None if not np.isfinite(v) else float(v) for v in fvals]}, open(out, "w"))
'''


def problem_path(name: str) -> Path:
    return ROOT.parent / "shared" / "data" / "petab-benchmarks" / name / f"{name}.yaml"


def ilsim_evaluation(name: str, repeats: int = 20) -> tuple:
    """(problem, objective, nominal point, median seconds of one objective + gradient evaluation there)."""
    sys.path.insert(0, str(ROOT / "src"))
    from ilsim.fit.objective import Objective
    from ilsim.fit.petab_io import load_petab

    problem = load_petab(problem_path(name))
    objective = Objective(problem)
    params = problem.parameters
    x = params.scale(params.nominal[params.estimated])
    objective(x, gradient=True)  # kernels and SymPy derivatives built before timing
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        objective(x, gradient=True)
        times.append(time.perf_counter() - t)
    return problem, objective, x, float(np.median(times))


def ilsim_side(starts: int, seed: int, workers: int) -> dict:
    from ilsim.fit.run import fit

    problem, objective, x, eval_grad = ilsim_evaluation(PROBLEM)
    t = time.perf_counter()
    result = fit(problem, starts=starts, seed=seed, workers=workers)
    wall = time.perf_counter() - t
    values = [s["nllh"] for s in result.starts]
    return {"wall_s": wall, "eval_grad_s": eval_grad, "fvals": values,
            "nllh_nominal": objective(x).nllh}


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import amici, pypesto, fides, petab"], capture_output=True)
    if probe.returncode != 0:
        constraint = VENV.parent / "constraints.txt"
        constraint.write_text(SWIG_CONSTRAINT)
        env = {**os.environ, "AMICI_PARALLEL_COMPILE": "2", "MAKEFLAGS": "-j2", "PIP_CONSTRAINT": str(constraint)}
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PACKAGES], check=True, env=env)
    return python


def pypesto_side(starts: int, seed: int, workers: int) -> dict:
    python = ensure_venv()
    path = problem_path(PROBLEM)
    out = VENV.parent / "pypesto_result.json"
    script = VENV.parent / "pypesto_run.py"
    script.write_text(PYPESTO_RUN)
    env = {**os.environ, "AMICI_PARALLEL_COMPILE": "2"}
    subprocess.run([str(python), str(script), str(path), str(starts), str(seed), str(-BEST_LLH), str(out),
                    str(workers)], check=True, env=env, cwd=VENV.parent)
    return json.loads(out.read_text())


def evaluations() -> None:
    """One objective + gradient evaluation per problem, ilsim then AMICI (through pyPESTO's objective)."""
    ours = {}
    for name, repeats in EVAL_PROBLEMS.items():
        _, objective, x, seconds = ilsim_evaluation(name, repeats)
        ours[name] = (seconds, objective(x).objective)  # nllh + prior: pyPESTO's objective adds the priors too
        print(f"ilsim    {name:26s} objective+gradient {seconds * 1e3:9.1f} ms   objective {ours[name][1]:.4f}", flush=True)
    python = ensure_venv()
    out = VENV.parent / "amici_eval.json"
    script = VENV.parent / "amici_eval.py"
    script.write_text(AMICI_EVAL)
    runs = {str(problem_path(name)): repeats for name, repeats in EVAL_PROBLEMS.items()}
    env = {**os.environ, "AMICI_PARALLEL_COMPILE": "2", "MAKEFLAGS": "-j2"}
    log = VENV.parent / "amici_eval.log"  # AMICI's build and debug messages
    with log.open("w") as sink:
        done = subprocess.run([str(python), str(script), str(out), json.dumps(runs)], env=env, cwd=VENV.parent,
                              stdout=sink, stderr=subprocess.STDOUT)
    theirs = json.loads(out.read_text()) if out.exists() else {}
    for name in EVAL_PROBLEMS:
        info = theirs.get(str(problem_path(name)))
        if info is None:
            print(f"AMICI    {name:26s} not measured (the AMICI run stopped with exit code {done.returncode}; see {log})")
            continue
        print(f"AMICI    {name:26s} objective+gradient {info['eval_grad_s'] * 1e3:9.1f} ms   objective {info['nllh']:.4f}   "
              f"(model build {info['build_s']:.0f} s)   ilsim/AMICI {ours[name][0] / info['eval_grad_s']:.1f}x", flush=True)


def summarise(name: str, info: dict) -> str:
    values = np.array([np.nan if v is None else v for v in info["fvals"]], float)
    ok = np.isfinite(values)
    hits = np.sum(values[ok] <= -BEST_LLH + 0.1)
    return (f"{name:8s} wall {info['wall_s']:8.1f} s   reached optimum {hits}/{len(values)} ({hits / len(values):.0%})   "
            f"failed {np.sum(~ok)}   best nllh {np.nanmin(values):.4f}   objective+gradient {info['eval_grad_s'] * 1e3:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-pypesto", action="store_true")
    parser.add_argument("--skip-ilsim", action="store_true")
    parser.add_argument("--evaluations-only", action="store_true",
                        help="only one objective + gradient evaluation per problem, ilsim and AMICI")
    args = parser.parse_args()
    if args.evaluations_only:
        evaluations()
        return
    lines = []
    if not args.skip_ilsim:
        ours = ilsim_side(args.starts, args.seed, args.workers)
        lines.append(summarise("ilsim", ours))
        print(lines[-1], flush=True)
    if not args.skip_pypesto:
        theirs = pypesto_side(args.starts, args.seed, args.workers)
        lines.append(summarise("pyPESTO", theirs))
        print(lines[-1], flush=True)
        print(f"negative log-likelihood at the nominal parameters: pyPESTO+AMICI {theirs['fval_nominal']:.4f}"
              + ("" if args.skip_ilsim else f", ilsim {ours['nllh_nominal']:.4f}"))
    print(f"(optimum: log-likelihood {BEST_LLH:.3f}; {args.workers} processes each; same machine, one after the other)")


if __name__ == "__main__":
    main()
