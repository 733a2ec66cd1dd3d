"""Check and time the generated batch kernel in one go: on a CUDA GPU (CuPy), or on the CPU through its C build.

On a GPU (defaults): 1,000,000 Kirschner-Panetta patients (c ~ U(0.02, 0.05), seed 0, 1000 days,
1001 output points, rtol 1e-6, atol 1e-9), the kernel timed with CUDA events apart from compilation
and transfers; 20 of them against the SciPy engine (LSODA, rtol 1e-10, atol 1e-12) and against the
same kernel built as C on the CPU; Reynolds 2006 patients per second (kpg ~ U(0.3, 0.7), 500 h);
aldesleukin with its dose-holding rule (SBP0 ~ U(95, 125) mmHg) as an events check (these three with
DOPRI5); Robertson's stiff kinetics (k1 ~ U(0.02, 0.08), atol 1e-12) with methods auto and rodas, which
must agree. Exits 1 when a sample disagrees with SciPy (or auto with rodas) by more than --max-error of a
variable's range, or a patient fails.

Without a GPU (or with --cpu) the same checks run on the C build with small cohorts (seconds).

    python bench/gpu_check.py                 # GPU if there is one, else the CPU check
    python bench/gpu_check.py --cpu           # force the C build
    python bench/gpu_check.py --kp 200000     # cohort sizes
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import ilsim
from ilsim.engines.batch import STATUS
from ilsim.engines.csource import HostKernel, c_compiler
from ilsim.engines.cuda import CudaBatchEngine, cuda_unavailable_reason

RTOL, ATOL = 1e-6, 1e-9


def cohort(model, rng, n, **ranges):
    P = np.tile(model.p0, (n, 1))
    for name, (low, high) in ranges.items():
        P[:, model.parameters.index(name)] = rng.uniform(low, high, n)
    return P


def run(device: str, model, t, P, method: str = "dopri5", atol: float = ATOL) -> tuple[np.ndarray, np.ndarray, dict]:
    """(Y, status, timing) on the GPU (kernel time from CUDA events) or the C build (wall time)."""
    if device == "gpu":
        engine = CudaBatchEngine(RTOL, atol, method=method)
        Y, status = engine.run(model, t, P)
        return Y, status, engine.last_timing
    start = time.perf_counter()
    kernel = HostKernel(model)
    kernel.solver(method)  # built here, apart from the run
    built = time.perf_counter() - start
    start = time.perf_counter()
    Y, status = kernel.run(t, P, RTOL, atol, method=method)
    return Y, status, {"compile_s": built, "kernel_s": time.perf_counter() - start, "to_device_s": 0.0,
                       "from_device_s": 0.0}


def scipy_error(model, t, P, Y, sample) -> float:
    """Max over the sample and species of |kernel - SciPy| / (range of the species in SciPy's run)."""
    worst = 0.0
    for i in sample:
        ds = ilsim.simulate(model, t_eval=t, method="LSODA", rtol=1e-10, atol=1e-12,
                            parameters=dict(zip(model.parameters, map(float, P[i]))))
        ref = np.column_stack([ds[s].values for s in model.species])
        span = ref.max(axis=0) - ref.min(axis=0)
        worst = max(worst, float((np.abs(Y[i] - ref).max(axis=0) / np.where(span > 1e-9, span, 1.0)).max()))
    return worst


def failures(status) -> str:
    codes, counts = np.unique(status, return_counts=True)
    return ", ".join(f"{c} x{STATUS[int(code)].split(' (')[0]}" for code, c in zip(codes, counts) if code != 0) or "none"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", action="store_true", help="use the C build on the CPU even if a GPU is present")
    parser.add_argument("--kp", type=int, help="Kirschner-Panetta patients (GPU 1,000,000; CPU 2,000)")
    parser.add_argument("--kp-points", type=int, default=1001, help="output points of the Kirschner-Panetta run")
    parser.add_argument("--reynolds", type=int, help="Reynolds patients (GPU 100,000; CPU 1,000)")
    parser.add_argument("--aldesleukin", type=int, help="aldesleukin patients (GPU 20,000; CPU 200)")
    parser.add_argument("--stiff", type=int, help="Robertson patients (GPU 10,000; CPU 200)")
    parser.add_argument("--sample", type=int, default=20, help="patients checked against SciPy")
    parser.add_argument("--max-error", type=float, default=1e-4, help="largest accepted error, fraction of range")
    args = parser.parse_args()

    reason = cuda_unavailable_reason()
    device = "cpu" if args.cpu or reason is not None else "gpu"
    big = device == "gpu"
    n_kp = args.kp or (1_000_000 if big else 2_000)
    n_rey = args.reynolds or (100_000 if big else 1_000)
    n_ald = args.aldesleukin or (20_000 if big else 200)
    n_stiff = args.stiff or (10_000 if big else 200)
    if device == "gpu":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        print(f"device: {name} (CUDA, CuPy {cupy.__version__}); rtol {RTOL:g}, atol {ATOL:g}")
    else:
        print(f"device: CPU, the kernel built as C ({reason or '--cpu'}); rtol {RTOL:g}, atol {ATOL:g}")
    rng = np.random.default_rng(0)
    rows: list[tuple[str, str]] = []
    ok = True

    # 1. Kirschner-Panetta: the throughput target
    kp = ilsim.compile("kirschner-panetta-1998")
    t = np.linspace(0.0, 1000.0, args.kp_points)
    P = cohort(kp, rng, n_kp, c=(0.02, 0.05))
    Y, status, timing = run(device, kp, t, P)
    sample = rng.choice(n_kp, size=min(args.sample, n_kp), replace=False)
    err = scipy_error(kp, t, P, Y, sample)
    ok &= err <= args.max_error and not status.any()
    rows += [(f"KP {n_kp:,} patients x {len(t)} points: kernel", f"{timing['kernel_s']:.3f} s"),
             ("KP compile (first use in this process)", f"{timing['compile_s']:.2f} s"),
             ("KP transfers to / from the device", f"{timing['to_device_s']:.2f} s / {timing['from_device_s']:.2f} s"),
             ("KP patients per second (kernel)", f"{n_kp / timing['kernel_s']:,.0f}"),
             ("KP failed patients", failures(status)),
             (f"KP max error vs SciPy ({len(sample)} patients)", f"{err:.2e} of range")]
    if device == "gpu" and c_compiler() is not None:  # the same kernel on both sides: only rounding (FMA contraction) may differ
        Yc, _ = HostKernel(kp).run(t, P[sample], RTOL, ATOL, method="dopri5")
        gap = np.abs(Y[sample] - Yc) / np.maximum(np.ptp(Yc, axis=1, keepdims=True), 1e-300)
        rows.append(("KP GPU vs C build, same patients", f"{float(gap.max()):.2e} of range"))
    if big and timing["kernel_s"] > 0.5:
        rows.append(("KP target kernel <= 0.5 s", "NOT met"))
    elif big:
        rows.append(("KP target kernel <= 0.5 s", "met"))
    del Y

    # 2. Reynolds 2006: patients per second
    rey = ilsim.compile("reynolds-2006")
    t = np.linspace(0.0, 500.0, 1001)
    P = cohort(rey, rng, n_rey, kpg=(0.3, 0.7))
    Y, status, timing = run(device, rey, t, P)
    sample = rng.choice(n_rey, size=min(args.sample, n_rey), replace=False)
    err = scipy_error(rey, t, P, Y, sample)
    ok &= err <= args.max_error and not status.any()
    rows += [(f"Reynolds {n_rey:,} patients x {len(t)} points: kernel", f"{timing['kernel_s']:.3f} s"),
             ("Reynolds patients per second (kernel)", f"{n_rey / timing['kernel_s']:,.0f}"),
             ("Reynolds failed patients", failures(status)),
             (f"Reynolds max error vs SciPy ({len(sample)} patients)", f"{err:.2e} of range")]
    del Y

    # 3. Aldesleukin: 169 timed events, guards of a dose-holding rule
    ald = ilsim.compile("aldesleukin")
    t = np.linspace(0.0, 600.0, 1201)
    P = cohort(ald, rng, n_ald, SBP0=(95.0, 125.0))
    P[:, ald.parameters.index("MAP0")] = 0.75 * P[:, ald.parameters.index("SBP0")]
    Y, status, timing = run(device, ald, t, P)
    sample = rng.choice(n_ald, size=min(5, n_ald), replace=False)
    err = scipy_error(ald, t, P, Y, sample)
    ok &= err <= args.max_error and not status.any()
    rows += [(f"aldesleukin {n_ald:,} patients x {len(t)} points: kernel", f"{timing['kernel_s']:.3f} s"),
             ("aldesleukin patients per second (kernel)", f"{n_ald / timing['kernel_s']:,.0f}"),
             ("aldesleukin failed patients", failures(status)),
             (f"aldesleukin max error vs SciPy ({len(sample)} patients)", f"{err:.2e} of range")]

    # 4. Robertson's kinetics (stiff; B peaks at 4e-5, hence atol 1e-12): auto (DOPRI5, then RODAS) agrees with rodas
    rob = ilsim.Model(name="robertson").add_parameter("k1", 0.04).add_parameter("k2", 3e7).add_parameter("k3", 1e4)
    rob.add_species("A", 1.0).add_species("B", 0.0).add_species("C", 0.0)
    rob.add_process("A to B", "k1*A", consumes={"A": 1}, produces={"B": 1})
    rob.add_process("B to C", "k2*B^2", consumes={"B": 1}, produces={"C": 1})
    rob.add_process("B to A", "k3*B*C", consumes={"B": 1}, produces={"A": 1})
    rob = ilsim.compile(rob)
    t = np.concatenate(([0.0], np.logspace(-5, 4, 91)))
    P = cohort(rob, rng, n_stiff, k1=(0.02, 0.08))
    (Ya, sa, ta), (Yr, sr, tr) = (run(device, rob, t, P, method, atol=1e-12) for method in ("auto", "rodas"))
    gap = float((np.abs(Ya - Yr).max(axis=1) / np.maximum(np.ptp(Yr, axis=1), 1e-300)).max())
    ok &= gap <= args.max_error and not sa.any() and not sr.any()
    rows += [(f"Robertson {n_stiff:,} patients, auto / rodas: kernel", f"{ta['kernel_s']:.3f} s / {tr['kernel_s']:.3f} s"),
             ("Robertson failed patients, auto / rodas", f"{failures(sa)} / {failures(sr)}"),
             ("Robertson auto vs rodas", f"{gap:.2e} of range")]

    width = max(len(k) for k, _ in rows)
    print(f"\n  {'check':<{width}}  value\n  {'-' * width}  {'-' * 16}")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    print(f"\nagreement (SciPy; auto with rodas) within {args.max_error:g} of range and no failed patient: "
          f"{'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
