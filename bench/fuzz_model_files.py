"""Mutation fuzzing of model files: N model files made by mutating the built-in scenarios, each validated and run
through the command line (ILSIM_JIT=0); counts by outcome, and the first cases of each bug group.

    PYTHONPATH=src python bench/fuzz_model_files.py --cases 10000 --seed 14 [--minutes 60]

Every case must end in 'ok' or 'refused' (exit 0 or 2, no traceback) within its time; tests/test_fuzz_model_files.py
runs a small fixed-seed sample of the same mutations in CI.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ILSIM_JIT", "0")  # thousands of new kernels: numba would spend seconds compiling each
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from typer.testing import CliRunner  # noqa: E402

from ilsim.cli import app  # noqa: E402
from model_mutations import SCENARIOS, mutate, run_case  # noqa: E402

SLOW_S = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long, reporting what ran")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    runner = CliRunner()
    counts: collections.Counter[str] = collections.Counter()
    examples: dict[str, list[str]] = collections.defaultdict(list)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for case in range(args.cases):
            if args.minutes and time.perf_counter() - start > args.minutes * 60:
                break
            source = rng.choice(SCENARIOS)
            text, what = mutate(rng, source.read_text(encoding="utf-8"), "model.yaml")
            folder = Path(tmp) / str(case)
            folder.mkdir()
            outcome, seconds, detail = run_case(runner, app, folder, text)
            counts[outcome] += 1
            if seconds > SLOW_S:
                counts[f"slower than {SLOW_S:g} s"] += 1
            if outcome not in ("ok", "refused") or seconds > SLOW_S:
                key = detail.strip().splitlines()[-1][:120] if detail.strip() else outcome
                if len(examples[key]) < 2:
                    examples[key].append(f"case {case} ({source.name}, {what}, {seconds:.1f} s)")
            if (case + 1) % 250 == 0:
                print(f"{case + 1} cases, {time.perf_counter() - start:.0f} s: {dict(counts)}", flush=True)
    total = sum(counts[k] for k in counts if not k.startswith("slower"))
    print(f"\n{total} cases in {time.perf_counter() - start:.0f} s (seed {args.seed})")
    for outcome, n in counts.most_common():
        print(f"  {outcome}: {n}")
    for key, cases in examples.items():
        print(f"- {key}\n    " + "\n    ".join(cases))


if __name__ == "__main__":
    main()
