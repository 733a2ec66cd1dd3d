"""Peak memory of `ilsim cohort` without trajectories: a large cohort against a small baseline.

Each cohort runs as its own `python -m ilsim cohort` process (Kirschner-Panetta 1998, c drawn from
uniform(0.02, 0.05), default 1,000,000 patients, default chunks, figures and report included); the
peak resident set size (RSS) of that process is read from the kernel when it ends (``os.wait4``,
``ru_maxrss``). The baseline is the same command with --baseline patients (default 1,000): the
ratio shows how much memory grows with the cohort. Chunks are streamed to the work folder and the
summary is assembled row group by row group, so the large run should stay under 2 GB.

Few output points (--points, default 2: start and end) keep each chunk's trajectories small; peaks
and nadirs are then taken over those points only, which is fine for a memory figure. --t-end
shortens the integration (default: the model's 1000 days) without changing memory use.

Run:  python bench/cohort_memory.py [--patients 1000000] [--baseline 1000] [--points 2] [--t-end 1000]
      python bench/cohort_memory.py --patients 20000    # quick check (well under a minute)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "kirschner-panetta-1998"
TARGET_GB = 2.0


def peak_rss(patients: int, points: int, t_end: float | None, out: Path) -> tuple[float, float]:
    """(peak RSS in GB, wall time in s) of one `ilsim cohort` process."""
    command = [sys.executable, "-m", "ilsim", "cohort", MODEL, "--patients", str(patients), "--seed", "1",
               "--vary", "c=uniform(0.02, 0.05)", "--points", str(points), "--out", str(out), "--quiet"]
    if t_end is not None:
        command += ["--t-end", str(t_end)]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"ilsim cohort failed (exit {child.returncode}): {' '.join(command)}")
    return usage.ru_maxrss / 1024**2, time.perf_counter() - start  # ru_maxrss is in KiB on Linux


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=1_000_000)
    ap.add_argument("--baseline", type=int, default=1_000)
    ap.add_argument("--points", type=int, default=2)
    ap.add_argument("--t-end", type=float, default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base_gb, base_s = peak_rss(args.baseline, args.points, args.t_end, Path(tmp) / "baseline")
        big_gb, big_s = peak_rss(args.patients, args.points, args.t_end, Path(tmp) / "cohort")
    t_end = "model's t_end" if args.t_end is None else f"t_end {args.t_end:g}"
    print(f"ilsim cohort {MODEL}, no trajectories, {args.points} output points, {t_end}")
    print(f"{'patients':>12} {'peak RSS [GB]':>14} {'wall [s]':>10} {'patients/s':>11}")
    for n, gb, s in ((args.baseline, base_gb, base_s), (args.patients, big_gb, big_s)):
        print(f"{n:>12,} {gb:>14.3f} {s:>10.1f} {n / s:>11,.0f}")
    print(f"ratio (large / baseline): peak RSS {big_gb / base_gb:.2f}x for {args.patients / args.baseline:,.0f}x the "
          f"patients; target < {TARGET_GB:g} GB: {'met' if big_gb < TARGET_GB else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
