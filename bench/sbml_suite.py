"""SBML Test Suite conformance of the importer and the ODE engine.

    python bench/sbml_suite.py --subset T4              # the 1,102 cases of T4
    python bench/sbml_suite.py --cases 1-100 --jobs 2   # a range of case numbers

Prints passed / failed / refused counts and each case that did not pass with its reason. The suite is
read from ../shared/data/sbml-test-suite beside the repository (or --suite).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SUITE = ROOT.parent / "shared" / "data" / "sbml-test-suite"
CASE_SECONDS = 120  # a case still running after this long fails as a timeout


def _one(case_dir: str):
    from ilsim.io.sbml_import.suite import CaseResult, run_case

    def timeout(*_):
        raise TimeoutError

    signal.signal(signal.SIGALRM, timeout)
    signal.alarm(CASE_SECONDS)
    try:
        return run_case(case_dir)
    except TimeoutError:
        return CaseResult(Path(case_dir).name, "failed", f"timeout after {CASE_SECONDS} s")
    except Exception as exc:  # a crash is a failure of ilsim, reported, not a reason to stop
        return CaseResult(Path(case_dir).name, "failed", f"crash: {type(exc).__name__}: {exc}"[:300])
    finally:
        signal.alarm(0)


def _range(text: str) -> set[str]:
    lo, _, hi = text.partition("-")
    return {f"{n:05d}" for n in range(int(lo), int(hi or lo) + 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subset", choices=("T1", "T2", "T3", "T4"))
    parser.add_argument("--cases", help="case numbers, e.g. 1-100 or 42")
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quiet", action="store_true", help="counts only, no per-case list")
    args = parser.parse_args(argv)
    os.environ.setdefault("ILSIM_JIT", "0")  # a fresh kernel per case: numba's compile time would dominate
    from ilsim.io.sbml_import.suite import subset_cases

    cases = subset_cases(args.suite, args.subset)
    if args.cases:
        wanted = _range(args.cases)
        cases = [c for c in cases if c in wanted]
    start = time.perf_counter()
    dirs = [str(args.suite / "cases" / c) for c in cases]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(_one, dirs, chunksize=4))
    counts = Counter(r.status for r in results)
    if not args.quiet:
        for r in results:
            if r.status != "passed":
                print(f"{r.case} {r.status}: {r.reason}")
    label = args.subset or "all"
    print(f"{label}{' cases ' + args.cases if args.cases else ''}: {len(results)} cases, {counts['passed']} passed, "
          f"{counts['failed']} failed, {counts['refused']} refused ({time.perf_counter() - start:.0f} s, {args.jobs} jobs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
