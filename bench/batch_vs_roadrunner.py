"""ilsim's batch engine against a libroadrunner loop and ilsim's SciPy engine loop, in one process.

A virtual cohort of Kirschner-Panetta 1998 patients (default 10,000) with c drawn uniformly from
[0.02, 0.05] (numpy default_rng(0)); 1000 days, 1001 output points, rtol 1e-6, atol 1e-9.

Measured:
  1. the batch engine on the whole cohort (``BatchEngine.run``), after a warm-up call on a few
     patients so that numba compilation is excluded; the compile + first call time is reported
     separately;
  2. libroadrunner (CVODE) in a loop over the first --rr-runs patients (default 1,000; resetAll,
     set c, simulate), extrapolated linearly to the whole cohort;
  3. ilsim's SciPy engine (``OdeEngine("LSODA").run``) in a loop over the first --ode-runs patients
     (default 200), extrapolated linearly to the whole cohort;
  4. accuracy: max over 50 patients and over E, T, I of |batch - reference| / (range of the variable),
     the reference being ilsim's SciPy engine at rtol 1e-10, atol 1e-12.

Run:  python bench/batch_vs_roadrunner.py [--patients 10000] [--rr-runs 1000] [--ode-runs 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import ilsim
from ilsim.engines.batch import BatchEngine
from ilsim.engines.ode import OdeEngine

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kp_vs_roadrunner import SPECIES, make_roadrunner, rr_run, versions  # noqa: E402

MODEL = "kirschner-panetta-1998"
T_END, POINTS = 1000.0, 1001
RTOL, ATOL = 1e-6, 1e-9
C_LOW, C_HIGH = 0.02, 0.05
ACCURACY_PATIENTS = 50


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=10_000)
    ap.add_argument("--rr-runs", type=int, default=1_000)
    ap.add_argument("--ode-runs", type=int, default=200)
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
    cs = np.random.default_rng(0).uniform(C_LOW, C_HIGH, n)
    P = np.tile(m.p0, (n, 1))
    P[:, m.parameters.index("c")] = cs
    cols = [m.species.index(s) for s in SPECIES]

    # 1. batch engine
    batch = BatchEngine(RTOL, ATOL)
    start = time.perf_counter()
    batch.run(m, t_eval, P[:4])
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    Y, status = batch.run(m, t_eval, P)
    batch_s = time.perf_counter() - start
    failed = int(np.count_nonzero(status))
    print(f"1. batch engine: compile + first call (4 patients) {compile_s:.2f} s; "
          f"{n} patients {batch_s:.3f} s ({batch_s / n * 1e3:.3f} ms per patient), {failed} failed")

    # 2. roadrunner loop
    r = make_roadrunner()
    rr_run(r, float(cs[0]))  # warm-up
    start = time.perf_counter()
    for c in cs[:rr_runs]:
        rr_run(r, float(c))
    rr_measured = time.perf_counter() - start
    rr_s = rr_measured * n / rr_runs
    print(f"2. roadrunner loop: {rr_runs} runs {rr_measured:.3f} s ({rr_measured / rr_runs * 1e3:.3f} ms per run); "
          f"extrapolated x{n / rr_runs:g} to {n}: {rr_s:.2f} s")

    # 3. SciPy engine loop
    ode = OdeEngine("LSODA", RTOL, ATOL)
    ode.run(m, t_eval, P[0])  # warm-up
    start = time.perf_counter()
    for i in range(ode_runs):
        ode.run(m, t_eval, P[i])
    ode_measured = time.perf_counter() - start
    ode_s = ode_measured * n / ode_runs
    print(f"3. ilsim SciPy engine (LSODA) loop: {ode_runs} runs {ode_measured:.3f} s "
          f"({ode_measured / ode_runs * 1e3:.3f} ms per run); extrapolated x{n / ode_runs:g} to {n}: {ode_s:.2f} s")

    # 4. accuracy
    tight = OdeEngine("LSODA", 1e-10, 1e-12)
    worst, worst_at = 0.0, ""
    for i in range(min(ACCURACY_PATIENTS, n)):
        ref = tight.run(m, t_eval, P[i]).y[:, cols]
        span = ref.max(axis=0) - ref.min(axis=0)
        err = np.abs(Y[i][:, cols] - ref).max(axis=0) / np.where(span > 0, span, 1.0)
        if err.max() > worst:
            worst, worst_at = float(err.max()), f"{SPECIES[int(err.argmax())]}, patient {i}"
    print(f"4. batch vs SciPy reference (rtol 1e-10, atol 1e-12), {min(ACCURACY_PATIENTS, n)} patients: "
          f"max |diff| / range = {worst:.2e} ({worst_at})")

    print(f"\nsummary for {n} patients (roadrunner and SciPy loops extrapolated)")
    print(f"  batch engine        {batch_s:9.3f} s")
    print(f"  roadrunner loop     {rr_s:9.3f} s   roadrunner / batch = {rr_s / batch_s:.1f}x")
    print(f"  SciPy engine loop   {ode_s:9.3f} s   SciPy / batch      = {ode_s / batch_s:.1f}x")
    print(f"  batch compile       {compile_s:9.3f} s   (once per model and process, not included above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
