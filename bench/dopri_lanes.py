"""Headroom of the batch engine on the CPU: a bare DOPRI5 loop for Kirschner-Panetta with L patients
interleaved per thread (L = 1, 2, 4, 8), each lane keeping its own step size.

The batch engine integrates one patient at a time per thread, and a small model's step is bound by
latency (each Runge-Kutta stage waits for the one before), not by the number of instructions.
Interleaving independent patients lets the CPU overlap their stages. This script measures what that
gains on its own (no events, no dense output, one thread) to size the next change of the engine.
The coefficients and step control are the engine's (engines/batch/integrator.py).

Run:  python bench/dopri_lanes.py [--patients 600]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from numba import njit

import ilsim
from ilsim.engines.batch import integrator as rk

T_END, RTOL, ATOL = 1000.0, 1e-6, 1e-9


def make_solver(rhs):
    @njit(fastmath={"contract", "arcp"}, error_model="numpy")
    def stage(y, k, h, a, ks, out):
        """out = y + h * sum_j a[j] * k[ks[j]] for one lane."""
        for i in range(y.shape[0]):
            s = 0.0
            for j in range(len(a)):
                s += a[j] * k[ks[j], i]
            out[i] = y[i] + h * s

    A = [np.array(a) for a in ((rk.A21,), (rk.A31, rk.A32), (rk.A41, rk.A42, rk.A43),
                               (rk.A51, rk.A52, rk.A53, rk.A54), (rk.A61, rk.A62, rk.A63, rk.A64, rk.A65),
                               (rk.A71, 0.0, rk.A73, rk.A74, rk.A75, rk.A76))]
    S = [np.arange(len(a)) for a in A]
    C = np.array([rk.C2, rk.C3, rk.C4, rk.C5, 1.0, 1.0])
    E = np.array([rk.E1, 0.0, rk.E3, rk.E4, rk.E5, rk.E6, rk.E7])
    a1, a2, a3, a4, a5, a6 = A
    s1, s2, s3, s4, s5, s6 = S

    @njit(fastmath={"contract", "arcp"}, error_model="numpy")
    def solve(P, y0, t_end, rtol, atol):
        lanes, ns = P.shape[0], y0.shape[0]
        y = np.empty((lanes, ns))
        K = np.empty((lanes, 7, ns))
        tmp = np.empty((lanes, ns))
        t = np.zeros(lanes)
        h = np.full(lanes, 1e-3)
        hs = np.empty(lanes)
        log_err_old = np.full(lanes, math.log(1e-4))
        for j in range(lanes):
            y[j] = y0
            rhs(y[j], 0.0, P[j], K[j, 0])
        steps = 0
        active = lanes
        while active > 0:
            for j in range(lanes):
                hs[j] = min(h[j], t_end - t[j])
            for s, (a, ks) in enumerate(((a1, s1), (a2, s2), (a3, s3), (a4, s4), (a5, s5), (a6, s6))):
                for j in range(lanes):  # the lanes' stages are independent: the CPU overlaps them
                    stage(y[j], K[j], hs[j], a, ks, tmp[j])
                    rhs(tmp[j], t[j] + C[s] * hs[j], P[j], K[j, s + 1])
            active = 0
            for j in range(lanes):
                if t[j] >= t_end:
                    continue
                err = 0.0
                for i in range(ns):
                    e = 0.0
                    for q in range(7):
                        e += E[q] * K[j, q, i]
                    sc = atol + rtol * max(abs(y[j, i]), abs(tmp[j, i]))
                    err += (hs[j] * e / sc) ** 2
                err = math.sqrt(err / ns)
                steps += 1
                if err <= 1.0:
                    log_err = math.log(max(err, 1e-10))
                    fac = min(10.0, max(0.2, 0.9 * math.exp(rk.BETA * log_err_old[j] - rk.EXPO * log_err)))
                    log_err_old[j] = log_err
                    t[j] += hs[j]
                    for i in range(ns):
                        y[j, i] = tmp[j, i]
                        K[j, 0, i] = K[j, 6, i]
                    h[j] = hs[j] * fac
                else:
                    h[j] = hs[j] * max(0.2, 0.9 * err**-0.2)
                if t[j] < t_end:
                    active += 1
        return steps

    return solve


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=600)
    n = ap.parse_args(argv).patients
    m = ilsim.compile("kirschner-panetta-1998")
    solve = make_solver(m.kernels["rhs_into"])
    P = np.tile(m.p0, (n, 1))
    P[:, m.parameters.index("c")] = np.random.default_rng(0).uniform(0.02, 0.05, n)
    y0 = m.initial_state(m.p0)
    print(f"Kirschner-Panetta 1998, {n} patients, {T_END:g} days, rtol {RTOL:g}, atol {ATOL:g}, one thread")
    base = None
    for lanes in (1, 2, 4, 8):
        solve(P[:lanes].copy(), y0, 10.0, RTOL, ATOL)  # compile for this lane count's shapes
        start = time.perf_counter()
        steps = sum(solve(P[j:j + lanes], y0, T_END, RTOL, ATOL) for j in range(0, n, lanes))
        per = (time.perf_counter() - start) / n
        base = base or per
        print(f"  {lanes} lane(s): {per * 1e3:.3f} ms per patient, {steps / n:.0f} steps, {base / per:.2f}x of one lane")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
