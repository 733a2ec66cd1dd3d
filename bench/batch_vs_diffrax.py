"""ilsim's batch engine against JAX + diffrax (Tsit5, vmap over patients) on the CPU, in one process.

The same virtual cohort as bench/batch_vs_roadrunner.py: Kirschner-Panetta 1998, c ~ U[0.02, 0.05]
(numpy default_rng(0)), 1000 days, 1001 output points, rtol 1e-6, atol 1e-9, float64.

diffrax integrates the same equations written in JAX (the right-hand side below is the
scenario's, term by term); its batch is ``jax.vmap`` of one ``diffeqsolve``, so every patient
takes as many steps as the slowest one. Both are timed after a warm-up call (JIT compilation
excluded and reported separately); ratios are printed, plus the max difference of each against
ilsim's SciPy engine at rtol 1e-10 on a sample of patients.

Needs: pip install "jax[cpu]" diffrax   (benchmark baseline only; not an ilsim dependency)
Run:   python bench/batch_vs_diffrax.py [--patients 10000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import ilsim
from ilsim.engines.batch import BatchEngine
from ilsim.engines.ode import OdeEngine

T_END, POINTS, RTOL, ATOL = 1000.0, 1001, 1e-6, 1e-9
SAMPLE = 20


def diffrax_solver(params: dict):
    import diffrax
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    k = {name: float(v) for name, v in params.items()}

    def rhs(t, y, c):  # Kirschner & Panetta 1998, eqs. (1)-(3), as in the built-in scenario
        E, T, IL = jnp.maximum(y[0], 0.0), jnp.maximum(y[1], 0.0), jnp.maximum(y[2], 0.0)
        dE = c * T - k["mu2"] * E + k["p1"] * E * IL / (k["g1"] + IL) + k["s1"]
        dT = k["r2"] * T * (1 - k["b"] * T) - k["a"] * E * T / (k["g2"] + T)
        dI = k["p2"] * E * T / (k["g3"] + T) - k["mu3"] * IL + k["s2"]
        return jnp.stack([dE, dT, dI])

    ts = jnp.linspace(0.0, T_END, POINTS)

    def one(c):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(rhs), diffrax.Tsit5(), t0=0.0, t1=T_END, dt0=None, y0=jnp.ones(3), args=c,
            saveat=diffrax.SaveAt(ts=ts), stepsize_controller=diffrax.PIDController(rtol=RTOL, atol=ATOL),
            max_steps=1_000_000,
        )
        return sol.ys

    return jax.jit(jax.vmap(one))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=10_000)
    n = ap.parse_args(argv).patients
    m = ilsim.compile("kirschner-panetta-1998")
    c = np.random.default_rng(0).uniform(0.02, 0.05, n)
    P = np.tile(m.p0, (n, 1))
    P[:, m.parameters.index("c")] = c
    t = np.linspace(0.0, T_END, POINTS)

    engine = BatchEngine(rtol=RTOL, atol=ATOL)
    t0 = time.perf_counter()
    engine.run(m, t, P[:4])
    ilsim_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    Y, status = engine.run(m, t, P)
    ilsim_time = time.perf_counter() - t0

    solve = diffrax_solver(dict(zip(m.parameters, m.p0)))
    import jax.numpy as jnp

    t0 = time.perf_counter()
    solve(jnp.asarray(c[:4])).block_until_ready()
    jax_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    Yd = np.asarray(solve(jnp.asarray(c)).block_until_ready())
    jax_time = time.perf_counter() - t0

    ref = OdeEngine("LSODA", rtol=1e-10, atol=1e-12)
    err_ilsim = err_jax = 0.0
    for k in np.linspace(0, n - 1, SAMPLE).astype(int):
        yr = ref.run(m, t, P[k]).y
        span = np.ptp(yr, axis=0)
        err_ilsim = max(err_ilsim, float(np.max(np.abs(Y[k] - yr) / span)))
        err_jax = max(err_jax, float(np.max(np.abs(Yd[k] - yr) / span)))

    print(f"Kirschner-Panetta 1998, {n} patients, {T_END:g} days, {POINTS} points, rtol {RTOL:g}, atol {ATOL:g}")
    print(f"  {'':28} {'time':>10} {'patients/s':>12} {'compile':>9} {'max err/range':>14}")
    print(f"  {'ilsim batch (numba)':28} {ilsim_time:9.2f}s {n / ilsim_time:12.0f} {ilsim_compile:8.1f}s {err_ilsim:14.2e}")
    print(f"  {'diffrax Tsit5 (jax.vmap)':28} {jax_time:9.2f}s {n / jax_time:12.0f} {jax_compile:8.1f}s {err_jax:14.2e}")
    print(f"  ratio diffrax / ilsim: {jax_time / ilsim_time:.1f}x   (failed ilsim patients: {int(np.sum(status != 0))})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
