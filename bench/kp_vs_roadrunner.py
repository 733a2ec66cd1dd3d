"""ilsim against libroadrunner on the Kirschner-Panetta 1998 model, side by side in one process.

Why: libroadrunner (LLVM-compiled SBML + SUNDIALS CVODE) is the usual reference for fast ODE
simulation of biochemical models. ilsim generates a numba-compiled right-hand side and hands it to
SciPy's LSODA (ODEPACK), so each right-hand-side evaluation crosses from Fortran into Python; this
benchmark checks that this design stays within a small factor (target: ilsim <= 3x roadrunner for a
warm single run) and that the two tools compute the same trajectories.

The model (time in days; c = 0.02, mu2 = 0.03, p1 = 0.1245, g1 = 2e7, g2 = 1e5, r2 = 0.18,
b = 1e-9, a = 1, mu3 = 10, p2 = 5, g3 = 1e3, s1 = s2 = 0; E = T = I = 1 at t = 0):

    dE/dt = c T - mu2 E + p1 E I/(g1 + I) + s1
    dT/dt = r2 T (1 - b T) - a E T/(g2 + T)
    dI/dt = p2 E T/(g3 + T) - mu3 I + s2

ilsim runs its built-in scenario ``kirschner-panetta-1998``; roadrunner runs the Antimony model
below (the paper's equations; BioModels 732 is not used, its IL-2 term differs). Both use
rtol = 1e-6, atol = 1e-9, 1000 days, 1001 output points. Roadrunner uses its default integrator
(CVODE, stiff = BDF); ilsim uses LSODA, which switches between Adams and BDF by itself.

Measured:
  1. one warm run (after warm-ups): median of --repeats runs per tool, the tools interleaved;
  2. a loop of --runs runs with c drawn uniformly from [0.02, 0.05] (numpy default_rng(0)), the
     same values for both tools: total time (the tools take turns every 100 runs);
  3. agreement at c = 0.02 and c = 0.035: max |ilsim - roadrunner| / (range of the variable over the
     run) for E, T and I, at the benchmark tolerances and, as a check that the models are the same,
     at tight ones (rtol = 1e-10, atol = 1e-12);
  4. for information, cold starts in fresh processes: ilsim import + compile + first run, with
     ilsim's on-disk kernel cache as it is and with an empty one (numba compiles from scratch), and
     roadrunner import + Antimony load + first run.

Two ilsim timings are given everywhere:
  "simulate": the public ``ilsim.simulate(model, ...)`` (builds the xarray Dataset with units and
              provenance: what users call);
  "engine":   ``OdeEngine.run(model, t_eval, p)``, the raw integration with no Dataset (the
              lowest-overhead loop).
Roadrunner's time includes ``resetAll()`` and setting c before each ``simulate``; ilsim's includes
building the parameter vector. The model is compiled / loaded once, outside the timings.

Run:  python bench/kp_vs_roadrunner.py [--runs 1000] [--repeats 30] [--no-cold]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import antimony
import numpy as np
import roadrunner

import ilsim
from ilsim.engines.ode import OdeEngine

MODEL = "kirschner-panetta-1998"
T_END, POINTS = 1000.0, 1001
RTOL, ATOL = 1e-6, 1e-9
TIGHT_RTOL, TIGHT_ATOL = 1e-10, 1e-12
C_LOW, C_HIGH = 0.02, 0.05
AGREEMENT_C = (0.02, 0.035)
SPECIES = ("E", "T", "I")
TARGET_RATIO = 3.0

ANTIMONY = """
model kirschner_panetta_1998
  E = 1; T = 1; I = 1
  c = 0.02; mu2 = 0.03; p1 = 0.1245; g1 = 2e7; g2 = 1e5; r2 = 0.18; b = 1e-9; a = 1
  mu3 = 10; p2 = 5; g3 = 1e3; s1 = 0; s2 = 0
  E' = c*T - mu2*E + p1*E*I/(g1 + I) + s1
  T' = r2*T*(1 - b*T) - a*E*T/(g2 + T)
  I' = p2*E*T/(g3 + T) - mu3*I + s2
end
"""

# Cold starts run in fresh interpreters; each prints a JSON object of its phase times (seconds).
COLD_ILSIM = f"""
import json, time
t0 = time.perf_counter()
import ilsim
t1 = time.perf_counter()
m = ilsim.compile({MODEL!r})
t2 = time.perf_counter()
ilsim.simulate(m, {T_END}, points={POINTS}, method="LSODA", rtol={RTOL}, atol={ATOL})
t3 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "compile": t2 - t1, "first run": t3 - t2, "total": t3 - t0}}))
"""

COLD_ROADRUNNER = f"""
import json, time
t0 = time.perf_counter()
import antimony, roadrunner
t1 = time.perf_counter()
antimony.clearPreviousLoads()
antimony.loadAntimonyString({ANTIMONY!r})
r = roadrunner.RoadRunner(antimony.getSBMLString("kirschner_panetta_1998"))
r.integrator.relative_tolerance, r.integrator.absolute_tolerance = {RTOL}, {ATOL}
t2 = time.perf_counter()
r.simulate(0, {T_END}, {POINTS})
t3 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "compile": t2 - t1, "first run": t3 - t2, "total": t3 - t0}}))
"""


# ----------------------------------------------------------------------------- the two tools
def make_roadrunner(rtol: float = RTOL, atol: float = ATOL) -> roadrunner.RoadRunner:
    antimony.clearPreviousLoads()
    if antimony.loadAntimonyString(ANTIMONY) < 0:
        raise RuntimeError(antimony.getLastError())
    r = roadrunner.RoadRunner(antimony.getSBMLString("kirschner_panetta_1998"))
    r.integrator.relative_tolerance = rtol
    r.integrator.absolute_tolerance = atol
    r.timeCourseSelections = ["time", *SPECIES]
    return r


def rr_run(r: roadrunner.RoadRunner, c: float) -> np.ndarray:
    """Times x (E, T, I)."""
    r.resetAll()
    r["c"] = c
    return np.asarray(r.simulate(0.0, T_END, POINTS))[:, 1:]


def ilsim_simulate(m, c: float, rtol: float = RTOL, atol: float = ATOL) -> np.ndarray:
    ds = ilsim.simulate(m, T_END, points=POINTS, method="LSODA", rtol=rtol, atol=atol, parameters={"c": c})
    return np.column_stack([ds[s].values for s in SPECIES])


def ilsim_engine(m, engine: OdeEngine, t_eval: np.ndarray, c: float) -> np.ndarray:
    traj = engine.run(m, t_eval, m.parameter_vector({"c": c}))
    return traj.y[:, [m.species.index(s) for s in SPECIES]]


# ----------------------------------------------------------------------------- measurements
def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def single_runs(tools: dict, repeats: int, c: float = 0.02) -> dict[str, float]:
    """Median time of one run per tool; the tools take turns so that drift hits them alike."""
    for fn in tools.values():  # warm-up: numba dispatch, SymPy Jacobian, roadrunner JIT
        fn(c)
        fn(c)
    times: dict[str, list[float]] = {name: [] for name in tools}
    for _ in range(repeats):
        for name, fn in tools.items():
            times[name].append(timed(lambda fn=fn: fn(c)))
    return {name: statistics.median(ts) for name, ts in times.items()}


def loops(tools: dict, cs: np.ndarray, chunk: int = 100) -> dict[str, float]:
    """Total time of one run per value of c, per tool. The tools take turns every `chunk` runs
    (each still runs every c, in order), so a slow spell of a shared machine hits them alike."""
    totals = dict.fromkeys(tools, 0.0)
    for first in range(0, len(cs), chunk):
        part = [float(c) for c in cs[first : first + chunk]]
        for name, fn in tools.items():
            start = time.perf_counter()
            for c in part:
                fn(c)
            totals[name] += time.perf_counter() - start
    return totals


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Max |a - b| per variable, relative to the variable's range over the run (in b)."""
    span = b.max(axis=0) - b.min(axis=0)
    err = np.abs(a - b).max(axis=0) / np.where(span > 0, span, 1.0)
    return dict(zip(SPECIES, map(float, err)))


def cold_start(code: str, env: dict | None = None) -> dict[str, float]:
    """Phase times printed by a fresh interpreter, plus the whole process's wall time."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - start
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process"] = wall
    return result


# ----------------------------------------------------------------------------- report
def versions() -> str:
    import numba
    import scipy

    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs (nproc), {platform.processor() or platform.machine()}\n"
        f"Python {platform.python_version()}, ilsim {ilsim.__version__}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"numba {numba.__version__}, libroadrunner {roadrunner.__version__}"
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000, help="runs in the parameter loop (default 1000)")
    ap.add_argument("--repeats", type=int, default=30, help="repeats of the single warm run (default 30)")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-start subprocesses")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.repeats < 1:
        ap.error("--runs and --repeats must be at least 1")

    print(versions())
    print(f"model {MODEL}: {T_END:g} days, {POINTS} points, rtol {RTOL:g}, atol {ATOL:g}\n")

    m = ilsim.compile(MODEL)
    engine = OdeEngine("LSODA", RTOL, ATOL)
    t_eval = np.linspace(0.0, T_END, POINTS)
    r = make_roadrunner()
    print(f"roadrunner integrator: {r.integrator.getName()}, stiff = {r.integrator.stiff}; ilsim: LSODA (odeint)")
    tools = {
        "ilsim simulate": lambda c: ilsim_simulate(m, c),
        "ilsim engine": lambda c: ilsim_engine(m, engine, t_eval, c),
        "roadrunner": lambda c: rr_run(r, c),
    }

    # 1. one warm run
    single = single_runs(tools, args.repeats)
    print(f"\n1. one warm run, median of {args.repeats}")
    for name, t in single.items():
        print(f"   {name:15s} {ms(t):>10s}")

    # 2. a loop over c
    cs = np.random.default_rng(0).uniform(C_LOW, C_HIGH, args.runs)
    loop = loops(tools, cs)
    print(f"\n2. loop of {args.runs} runs, c ~ U[{C_LOW}, {C_HIGH}] (seed 0), tools taking turns every 100 runs")
    for name, t in loop.items():
        print(f"   {name:15s} {t:9.3f} s   ({ms(t / args.runs)} per run)")

    # 3. agreement
    print("\n3. agreement: max |ilsim - roadrunner| / range of the variable")
    r_tight = make_roadrunner(TIGHT_RTOL, TIGHT_ATOL)
    agree = {}
    for c in AGREEMENT_C:
        agree[(c, "bench")] = agreement(ilsim_simulate(m, c), rr_run(r, c))
        agree[(c, "tight")] = agreement(ilsim_simulate(m, c, TIGHT_RTOL, TIGHT_ATOL), rr_run(r_tight, c))
        for tol in ("bench", "tight"):
            text = "  ".join(f"{s} {e:.2e}" for s, e in agree[(c, tol)].items())
            print(f"   c = {c:<6g} {tol} tolerances: {text}")

    # 4. cold starts
    cold = {}
    if not args.no_cold:
        print("\n4. cold start in a fresh process (information)")
        cold["ilsim, kernel cache warm"] = cold_start(COLD_ILSIM)
        with tempfile.TemporaryDirectory(prefix="ilsim-bench-cache-") as empty:
            cold["ilsim, kernel cache empty"] = cold_start(COLD_ILSIM, {**os.environ, "ILSIM_CACHE": empty})
        cold["roadrunner"] = cold_start(COLD_ROADRUNNER)
        for name, phases in cold.items():
            text = ", ".join(f"{k} {v:.3f} s" for k, v in phases.items())
            print(f"   {name:26s} {text}")

    # summary table
    rr_single, rr_loop = single["roadrunner"], loop["roadrunner"]
    rows = [("measure", "ilsim", "roadrunner", "ratio")]
    for kind in ("simulate", "engine"):
        name = f"ilsim {kind}"
        rows.append((f"one warm run, {kind}", ms(single[name]), ms(rr_single), f"{single[name] / rr_single:.2f}x"))
    for kind in ("simulate", "engine"):
        name = f"ilsim {kind}"
        rows.append((f"{args.runs} runs, {kind}", f"{loop[name]:.3f} s", f"{rr_loop:.3f} s", f"{loop[name] / rr_loop:.2f}x"))
    for (c, tol), errs in agree.items():
        worst = max(errs, key=errs.get)
        rows.append((f"max rel. diff c={c:g}, {tol} tol", f"{errs[worst]:.1e} ({worst})", "", ""))
    for cache in ("warm", "empty"):
        name = f"ilsim, kernel cache {cache}"
        if name in cold:
            ilsim_t, rr_t = cold[name]["total"], cold["roadrunner"]["total"]
            rows.append((f"cold start, ilsim cache {cache}", f"{ilsim_t:.2f} s", f"{rr_t:.2f} s", f"{ilsim_t / rr_t:.2f}x"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    print("\nsummary (ratio = ilsim time / roadrunner time)")
    for k, row in enumerate(rows):
        cells = [cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        print(("  " + "  ".join(cells)).rstrip())
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths))
    worst_ratio = max(single["ilsim simulate"], single["ilsim engine"]) / rr_single
    verdict = "met" if worst_ratio <= TARGET_RATIO else "NOT met"
    print(f"\ntarget one warm run <= {TARGET_RATIO:g}x roadrunner: {verdict} (worst {worst_ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
