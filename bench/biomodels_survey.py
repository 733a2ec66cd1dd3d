"""Import every BioModels file of ../shared/data/biomodels, run it over 0..100 time units and compare with libroadrunner.

    python bench/biomodels_survey.py                 # all 271 files, 2 jobs
    python bench/biomodels_survey.py --only BIOMD0000000732 --verbose

A model *imports* when ilsim maps it (refusals name the unsupported element), *runs* when the ODE
engine integrates it to t = 100, and *agrees* when, for every species, max |ilsim - roadrunner| is at
most 1e-4 of the species' range over the run (amounts, rtol 1e-10, atol 1e-12 in both tools).
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "biomodels"
AGREE = 1e-4
MODEL_SECONDS = 300


def _survey_one(path: str) -> tuple[str, str, str]:
    """(file, status, detail): status is refused, failed, roadrunner-failed, disagrees or agrees."""
    from ilsim.errors import IlsimError, ModelError
    from ilsim.io.sbml_import.crosscheck import compare_with_roadrunner

    def timeout(*_):
        raise TimeoutError

    signal.signal(signal.SIGALRM, timeout)
    signal.alarm(MODEL_SECONDS)
    name = Path(path).name.split("__")[0]
    try:
        agreement = compare_with_roadrunner(path)
    except ModelError as exc:
        shown = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in exc.problems[:2])
        return name, "refused", " ".join(shown.split())[:300]
    except IlsimError as exc:
        return name, "failed", str(exc)
    except TimeoutError:
        return name, "failed", f"timeout after {MODEL_SECONDS} s"
    except RuntimeError as exc:  # libroadrunner's own failures
        return name, "roadrunner-failed", " ".join(str(exc).split())[:200]
    except Exception as exc:  # a crash of ilsim: reported, not hidden
        return name, "failed", f"crash: {type(exc).__name__}: {exc}"
    finally:
        signal.alarm(0)
    worst, ratio = agreement.worst
    detail = f"worst {worst}: max|diff|/range = {ratio:.2g}"
    return name, "agrees" if ratio <= AGREE else "disagrees", detail


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--only", nargs="*", help="BioModels ids to run (default: all)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--verbose", action="store_true", help="also list the models that agree")
    args = parser.parse_args(argv)
    os.environ.setdefault("ILSIM_JIT", "0")  # one run per model: numba's compile time would dominate
    with open(args.data / "manifest.csv") as f:
        files = [str(args.data / row["file"]) for row in csv.DictReader(f)
                 if not args.only or row["biomodels_id"] in args.only]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(_survey_one, files))
    counts = Counter(status for _, status, _ in results)
    for name, status, detail in sorted(results, key=lambda r: (r[1], r[0])):
        if status != "agrees" or args.verbose:
            print(f"{name} {status}: {detail}")
    imported = len(results) - counts["refused"]
    ran = imported - counts["failed"]
    print(f"\n{len(results)} files: {imported} import, {ran} run, {counts['agrees']} agree with libroadrunner, "
          f"{counts['disagrees']} disagree, {counts['roadrunner-failed']} failed in libroadrunner "
          f"({time.perf_counter() - start:.0f} s, {args.jobs} jobs)")
    def reason(status: str, detail: str) -> str:  # the kind of problem, without the element it names
        if status == "failed":
            return "failed: " + ("a rate became infinite or NaN" if "infinite or NaN" in detail else detail[:60])
        first = detail.split("; ")[0]
        return "refused: " + (first.split(": ", 1)[-1] if not first.startswith("line ") else first.split(": ", 2)[1])[:70]

    reasons = Counter(reason(status, detail) for _, status, detail in results if status in ("refused", "failed"))
    for reason, n in reasons.most_common():
        print(f"  {n:4d}  {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
