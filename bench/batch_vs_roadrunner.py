"""ilsim's batch engine against a libroadrunner loop and ilsim's SciPy engine loop, in one process.

A virtual cohort of Kirschner-Panetta 1998 patients (default 10,000) with c drawn uniformly from
[0.02, 0.05] (numpy default_rng(0)); 1000 days, 1001 output points, rtol 1e-6, atol 1e-9.

Measured:
  1. the batch engine on the whole cohort, for each method (auto, the default; dopri5; rodas), after a
     warm-up call on a few patients so that compilation (or loading it from the disk cache) is excluded;
  2. libroadrunner (CVODE) in a loop over the first --rr-runs patients (resetAll, set c, simulate),
     extrapolated linearly to the whole cohort;
  3. ilsim's SciPy engine (``OdeEngine("LSODA").run``) in a loop over the first --ode-runs patients,
     extrapolated linearly;
  4. accuracy: max over 50 patients and over E, T, I of |batch - reference| / (range of the variable),
     the reference being ilsim's SciPy engine at rtol 1e-10, atol 1e-12 (target <= 1e-5);
  5. scaling: the batch engine (auto) on 1e3, 1e4 and 1e5 patients, time per patient;
  6. Reynolds et al. 2006 (kpg ~ U[0.3, 0.7], 500 h, 1001 points): the batch engine against roadrunner
     running ilsim's own SBML export of the model;
  7. start-up of a fresh process (import, compile or load, first run of 4 patients) with an empty
     kernel cache (cold) and again with the cache it left (warm).

Run:  python bench/batch_vs_roadrunner.py [--patients 10000] [--rr-runs 1000] [--ode-runs 200] [--no-scaling] [--no-cold]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import roadrunner

import ilsim
from ilsim.engines.batch import BatchEngine
from ilsim.engines.ode import OdeEngine
from ilsim.io.sbml import to_string

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kp_vs_roadrunner import SPECIES, make_roadrunner, rr_run, versions  # noqa: E402

MODEL = "kirschner-panetta-1998"
T_END, POINTS = 1000.0, 1001
RTOL, ATOL = 1e-6, 1e-9
C_LOW, C_HIGH = 0.02, 0.05
ACCURACY_PATIENTS = 50
SCALES = (1_000, 10_000, 100_000)
START = """
import time; s = time.perf_counter()
import numpy as np, ilsim
from ilsim.engines.batch import BatchEngine
m = ilsim.compile("kirschner-panetta-1998")
BatchEngine().run(m, np.linspace(0.0, 1000.0, 1001), np.tile(m.p0, (4, 1)))
print(time.perf_counter() - s)
"""


def cohort(m, name: str, low: float, high: float, n: int, seed: int = 0) -> np.ndarray:
    P = np.tile(m.p0, (n, 1))
    P[:, m.parameters.index(name)] = np.random.default_rng(seed).uniform(low, high, n)
    return P


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def reynolds(batch_patients: int, rr_runs: int) -> tuple[float, float]:
    """Seconds per patient: batch engine (auto) and a roadrunner loop on ilsim's SBML export."""
    m = ilsim.compile("reynolds-2006")
    t = np.linspace(0.0, 500.0, 1001)
    P = cohort(m, "kpg", 0.3, 0.7, batch_patients)
    engine = BatchEngine(RTOL, ATOL)
    engine.run(m, t, P[:4])
    batch_s = timed(lambda: engine.run(m, t, P)) / batch_patients
    sbml, _ = to_string(m)
    r = roadrunner.RoadRunner(sbml)
    r.integrator.relative_tolerance, r.integrator.absolute_tolerance = RTOL, ATOL

    def loop():
        for kpg in P[:rr_runs, m.parameters.index("kpg")]:
            r.resetAll()
            r["kpg"] = float(kpg)
            r.simulate(0.0, 500.0, 1001)

    loop()
    return batch_s, timed(loop) / rr_runs


def start_up() -> tuple[float, float]:
    """Seconds for a fresh process to give its first batch result: empty cache, then the cache it left."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "ILSIM_CACHE": cache}
        runs = [float(subprocess.run([sys.executable, "-c", START], env=env, check=True, capture_output=True,
                                     text=True).stdout) for _ in range(2)]
    return runs[0], runs[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=10_000)
    ap.add_argument("--rr-runs", type=int, default=1_000)
    ap.add_argument("--ode-runs", type=int, default=200)
    ap.add_argument("--no-scaling", action="store_true")
    ap.add_argument("--no-cold", action="store_true")
    args = ap.parse_args(argv)
    n = args.patients
    rr_runs, ode_runs = min(args.rr_runs, n), min(args.ode_runs, n)

    import numba

    print(versions())
    print(f"numba threads: {numba.get_num_threads()}")
    print(f"model {MODEL}: {T_END:g} days, {POINTS} points, rtol {RTOL:g}, atol {ATOL:g}, {n} patients, "
          f"c ~ U[{C_LOW}, {C_HIGH}] (seed 0)\n")

    m = ilsim.compile(MODEL)
    t_eval = np.linspace(0.0, T_END, POINTS)
    P = cohort(m, "c", C_LOW, C_HIGH, n)
    cols = [m.species.index(s) for s in SPECIES]

    # 1. batch engine, each method
    batch, batch_cpu = {}, {}
    Y = None
    for method in ("auto", "dopri5", "rodas"):
        engine = BatchEngine(RTOL, ATOL, method=method)
        first = timed(lambda e=engine: e.run(m, t_eval, P[:4]))
        start, cpu = time.perf_counter(), time.process_time()
        result = engine.run_full(m, t_eval, P)
        batch[method], batch_cpu[method] = time.perf_counter() - start, time.process_time() - cpu
        Y = result.Y if method == "auto" else Y
        print(f"1. batch engine ({method}): first call {first:.2f} s; {n} patients {batch[method]:.3f} s "
              f"({batch[method] / n * 1e3:.3f} ms per patient), {int(np.count_nonzero(result.status))} failed, "
              f"{int(result.stiff.sum())} on RODAS")

    # 2. roadrunner loop
    r = make_roadrunner()
    rr_run(r, float(P[0, m.parameters.index("c")]))  # warm-up
    cpu = time.process_time()
    rr_measured = timed(lambda: [rr_run(r, float(c)) for c in P[:rr_runs, m.parameters.index("c")]])
    rr_cpu = (time.process_time() - cpu) * n / rr_runs
    rr_s = rr_measured * n / rr_runs
    print(f"2. roadrunner loop: {rr_runs} runs {rr_measured:.3f} s ({rr_measured / rr_runs * 1e3:.3f} ms per run); "
          f"extrapolated to {n}: {rr_s:.2f} s")

    # 3. SciPy engine loop
    ode = OdeEngine("LSODA", RTOL, ATOL)
    ode.run(m, t_eval, P[0])  # warm-up
    ode_measured = timed(lambda: [ode.run(m, t_eval, P[i]) for i in range(ode_runs)])
    ode_s = ode_measured * n / ode_runs
    print(f"3. ilsim SciPy engine (LSODA) loop: {ode_runs} runs {ode_measured:.3f} s "
          f"({ode_measured / ode_runs * 1e3:.3f} ms per run); extrapolated to {n}: {ode_s:.2f} s")

    # 4. accuracy
    tight = OdeEngine("LSODA", 1e-10, 1e-12)
    worst, worst_at = 0.0, ""
    for i in range(min(ACCURACY_PATIENTS, n)):
        ref = tight.run(m, t_eval, P[i]).y[:, cols]
        span = ref.max(axis=0) - ref.min(axis=0)
        err = np.abs(Y[i][:, cols] - ref).max(axis=0) / np.where(span > 0, span, 1.0)
        if err.max() > worst:
            worst, worst_at = float(err.max()), f"{SPECIES[int(err.argmax())]}, patient {i}"
    print(f"4. batch (auto) vs SciPy reference (rtol 1e-10, atol 1e-12), {min(ACCURACY_PATIENTS, n)} patients: "
          f"max |diff| / range = {worst:.2e} ({worst_at}); target <= 1e-5: {'met' if worst <= 1e-5 else 'NOT met'}")

    # 5. scaling
    if not args.no_scaling:
        engine = BatchEngine(RTOL, ATOL)
        for size in SCALES:
            Ps = cohort(m, "c", C_LOW, C_HIGH, size, seed=1)
            s = timed(lambda Ps=Ps: engine.run(m, t_eval, Ps))
            print(f"5. scaling: {size:7d} patients {s:8.3f} s, {s / size * 1e3:.4f} ms per patient")

    # 6. Reynolds
    rey_batch, rey_rr = reynolds(1000, 200)
    print(f"6. reynolds-2006 (kpg ~ U[0.3, 0.7], 500 h, 1001 points): batch {rey_batch * 1e3:.3f} ms per patient, "
          f"roadrunner (SBML export) {rey_rr * 1e3:.3f} ms per run: roadrunner / batch = {rey_rr / rey_batch:.1f}x")

    # 7. start-up
    if not args.no_cold:
        cold, warm = start_up()
        print(f"7. fresh process to first batch result: cache empty {cold:.2f} s, cache warm {warm:.2f} s")

    print(f"\nsummary for {n} Kirschner-Panetta patients (roadrunner and SciPy loops extrapolated)")
    for method, s in batch.items():
        print(f"  batch engine ({method:6s}) {s:9.3f} s   roadrunner / batch = {rr_s / s:5.1f}x   "
              f"SciPy / batch = {ode_s / s:5.1f}x")
    print(f"  roadrunner loop       {rr_s:9.3f} s")
    # on a shared machine wall times swing with other load; CPU seconds much less
    threads = numba.get_num_threads()
    for method, c in batch_cpu.items():
        print(f"  CPU time ({method:6s}) batch {c:8.2f} s vs roadrunner {rr_cpu:8.2f} s: roadrunner / (batch / "
              f"{threads} threads) = {rr_cpu / (c / threads):5.1f}x")
    print(f"  SciPy engine loop     {ode_s:9.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
