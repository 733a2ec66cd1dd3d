"""Import every BioModels file of ../shared/data/biomodels, run it over 0..100 time units and compare with libroadrunner.

    python bench/biomodels_survey.py                         # all 271 files, one job
    python bench/biomodels_survey.py --only BIOMD0000000732 --verbose
    python bench/biomodels_survey.py --csv survey.csv        # one row per file as well

A model *imports* when ilsim maps it (refusals name the unsupported element), *runs* when the ODE
engine integrates it to t = 100, and *agrees* when, for every species and every parameter or compartment
that a rate rule changes (a model's state may live in those alone: MODEL2211040001), max |ilsim - roadrunner|
is at most 1e-4 of the quantity's range over the run (species as amounts, rtol 1e-10, atol 1e-12 in both tools).

The reference is checked first: libroadrunner runs the file at rtol 1e-10 / atol 1e-12 and again at
rtol 1e-8 / atol 1e-10; when the two differ by more than the agreement threshold on some species, the
model is *unstable* (its answer depends on the tolerance) and counted against neither tool.

First-run time: in a worker process that has already run one other model (so that both tools' modules
are loaded and neither pays its one-off start-up), ilsim's import + compile + simulate of the file with
an empty kernel cache, against libroadrunner's load + simulate, both at their default tolerances over
0..100 with 101 points. Warm time: the same simulation again on the compiled/loaded model. The
kernels are ilsim's default, tiered (plain Python first, compiled by numba once the model has made 20,000 calls in
the process; both give the same bits, so the warm run of a short model is still plain Python); --jit compiles
from the start (ILSIM_JIT=1), --plain never (ILSIM_JIT=0). With --cold, each tool also runs the file
in a new process of its own, timed from before its modules are imported (libsbml, SciPy, pint for ilsim;
libroadrunner's LLVM for it) to the end of the simulation.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import sys
import tempfile
import time
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "biomodels"
AGREE = 1e-4
MODEL_SECONDS = 300
TIGHT = (1e-10, 1e-12)  # rtol, atol of the comparison (both tools)
LOOSE = (1e-8, 1e-10)  # the second reference run of the stability check
FIELDS = ["model", "status", "detail", "ilsim_first_s", "roadrunner_first_s", "ilsim_warm_s", "roadrunner_warm_s",
          "ilsim_cold_s", "roadrunner_cold_s"]
# A new process per tool and model (--cold): the time from before its modules are imported to the end of the
# simulation, as a user's first command on a new model takes (less the interpreter's own start, the same for both).
_COLD = """
import sys, time, warnings
start = time.perf_counter()
warnings.simplefilter("ignore")
if sys.argv[2] == "ilsim":
    import numpy as np
    from ilsim.engines.ode import OdeEngine
    from ilsim.io.sbml_import import import_sbml
    from ilsim.model.compile import compile_model
    model = import_sbml(sys.argv[1])
    compiled = compile_model(model.spec, source=sys.argv[1])
    OdeEngine().run(compiled, np.linspace(0.0, 100.0, 101), compiled.p0)
else:
    import roadrunner
    roadrunner.RoadRunner(sys.argv[1]).simulate(0.0, 100.0, 101)
print(time.perf_counter() - start)
"""


def _cold(path: str, tool: str) -> str:
    import subprocess

    with tempfile.TemporaryDirectory() as cache:
        done = subprocess.run([sys.executable, "-c", _COLD, path, tool], capture_output=True, text=True,
                              env={**os.environ, "ILSIM_CACHE": cache}, timeout=MODEL_SECONDS)
    return f"{float(done.stdout.split()[-1]):.4f}" if done.returncode == 0 and done.stdout.split() else ""


def _roadrunner(path: str, species: list[str], t: np.ndarray, tolerances: tuple[float, float]) -> np.ndarray:
    import roadrunner

    rr = roadrunner.RoadRunner(path)
    rr.integrator.relative_tolerance, rr.integrator.absolute_tolerance = tolerances
    rr.integrator.setValue("maximum_num_steps", 1_000_000)
    rr.timeCourseSelections = ["time", *species]  # a bare species id selects its amount
    return np.asarray(rr.simulate(times=t))[:, 1:]


def _timed_first_run(path: str, t: np.ndarray) -> tuple[object, object, float, float, float, float]:
    """(imported model, compiled model, ilsim first, roadrunner first, ilsim warm, roadrunner warm) seconds."""
    import roadrunner

    from ilsim.engines.ode import OdeEngine
    from ilsim.io.sbml_import import import_sbml
    from ilsim.model.compile import compile_model

    with tempfile.TemporaryDirectory() as cache:  # an empty kernel cache: nothing of this model compiled before
        os.environ["ILSIM_CACHE"] = cache
        start = time.perf_counter()
        model = import_sbml(path)
        compiled = compile_model(model.spec, source=path)
        OdeEngine().run(compiled, t, compiled.p0)
        ilsim_first = time.perf_counter() - start
        start = time.perf_counter()
        OdeEngine().run(compiled, t, compiled.p0)
        ilsim_warm = time.perf_counter() - start
        start = time.perf_counter()
        rr = roadrunner.RoadRunner(path)
        rr.simulate(float(t[0]), float(t[-1]), len(t))
        rr_first = time.perf_counter() - start
        start = time.perf_counter()
        rr.resetAll()
        rr.simulate(float(t[0]), float(t[-1]), len(t))
        rr_warm = time.perf_counter() - start
        return model, compiled, ilsim_first, rr_first, ilsim_warm, rr_warm


_WARMED = False


def _warm_up() -> None:
    """Load both tools' modules with a small model of no file of the survey, once per worker (their start-up
    is not a model's cost)."""
    global _WARMED
    if _WARMED:
        return
    _WARMED = True
    import antimony

    antimony.loadAntimonyString("model warm_up\n S1 -> S2; k*S1; S2 -> ; piecewise(k, time > 50, 0)*S2\n"
                                " S1 = 10; S2 = 0; k = 0.1\n at time > 5: S1 = S1 + 1\nend")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "warm_up.xml"
        path.write_text(antimony.getSBMLString("warm_up"))
        _timed_first_run(str(path), np.linspace(0.0, 100.0, 101))


def _survey_one(path: str) -> dict:
    """One row: status is refused, failed, roadrunner-failed, unstable, disagrees or agrees."""
    import roadrunner

    from ilsim.engines.ode import OdeEngine
    from ilsim.errors import IlsimError, ModelError
    from ilsim.io.sbml_import.crosscheck import differences
    from ilsim.io.sbml_import.suite import read_back

    roadrunner.Logger.setLevel(roadrunner.Logger.LOG_ERROR)
    warnings.simplefilter("ignore")
    _warm_up()

    def timeout(*_):
        raise TimeoutError

    signal.signal(signal.SIGALRM, timeout)
    signal.alarm(MODEL_SECONDS)
    row = {"model": Path(path).name.split("__")[0]}
    t = np.linspace(0.0, 100.0, 101)
    try:
        model, compiled, *times = _timed_first_run(path, t)
        row.update(zip(FIELDS[3:7], (f"{s:.6f}" for s in times)))  # warm runs take 0.2 ms: 4 decimals would round ratios by half
        if os.environ.get("ILSIM_SURVEY_COLD") == "1":
            row.update(ilsim_cold_s=_cold(path, "ilsim"), roadrunner_cold_s=_cold(path, "roadrunner"))
        species = _compared(model, compiled)
        traj = OdeEngine("LSODA", *TIGHT).run(compiled, t, compiled.p0)
        ours = read_back(compiled, traj, [model.quantities[s].amount or model.quantities[s].value for s in species])
        try:
            tight = _roadrunner(path, species, t, TIGHT)
            loose = _roadrunner(path, species, t, LOOSE)
        except RuntimeError as exc:  # libroadrunner's own failures
            return {**row, "status": "roadrunner-failed", "detail": " ".join(str(exc).split())[:200]}
    except ModelError as exc:
        shown = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in exc.problems[:2])
        return {**row, "status": "refused", "detail": _and_roadrunner(path, t) + " ".join(shown.split())[:300]}
    except IlsimError as exc:
        return {**row, "status": "failed", "detail": _and_roadrunner(path, t) + " ".join(str(exc).split())[:300]}
    except TimeoutError:
        return {**row, "status": "failed", "detail": _and_roadrunner(path, t) + f"timeout after {MODEL_SECONDS} s"}
    except RuntimeError as exc:  # libroadrunner failing to load the file
        return {**row, "status": "roadrunner-failed", "detail": " ".join(str(exc).split())[:200]}
    except Exception as exc:  # a crash of ilsim: reported, not hidden
        return {**row, "status": "failed", "detail": f"crash: {type(exc).__name__}: {exc}"[:300]}
    finally:
        signal.alarm(0)
    reference = differences(tight, loose, tight, species)
    if reference and max(reference.values()) > AGREE:
        name = max(reference, key=reference.get)
        return {**row, "status": "unstable", "detail": f"libroadrunner's {name} moves by {reference[name]:.2g} of its "
                                                        "range between rtol 1e-10 and 1e-8"}
    diffs = differences(ours, tight, tight, species)
    if not diffs:
        return {**row, "status": "agrees", "detail": "no species and no rate rule"}
    worst = max(diffs, key=diffs.get)
    k = species.index(worst)
    detail = f"worst {worst}: max|diff|/range = {diffs[worst]:.2g}"
    if diffs[worst] > AGREE:
        gap = np.abs(ours[:, k] - tight[:, k])
        at = int(np.nanargmax(gap)) if np.isfinite(gap).any() else 0
        first = t[int(np.argmax(~(gap <= AGREE * max(float(np.ptp(tight[:, k])), 1e-12))))]
        detail += (f" (first at t = {first:g}, largest at t = {t[at]:g}: ilsim {ours[at, k]:.4g}, "
                   f"libroadrunner {tight[at, k]:.4g}; {len(compiled.events)} events)")
    return {**row, "status": "agrees" if diffs[worst] <= AGREE else "disagrees", "detail": detail}


def _compared(model, compiled) -> list[str]:
    """The SBML ids compared: every species (as an amount), and every other id that a rate rule makes a state of
    ilsim's run (a parameter, a compartment); libroadrunner's selection of a bare id gives the same quantities."""
    from ilsim.model import expressions as ex

    states = set(compiled.species)
    return [sid for sid, q in model.quantities.items()
            if q.amount is not None or (isinstance(q.value, ex.Name) and q.value.id in states)]


def _and_roadrunner(path: str, t: np.ndarray) -> str:
    """Where ilsim refuses or fails a file, whether libroadrunner runs it (at the comparison's tolerances): the
    prefix of the row's detail, so that each such row says which of the two is behind."""
    signal.alarm(MODEL_SECONDS)
    try:
        _roadrunner(path, [], t, TIGHT)
    except (RuntimeError, TimeoutError):
        return "[libroadrunner fails too] "
    finally:
        signal.alarm(0)
    return "[libroadrunner runs it] "


def _reason(row: dict) -> str:
    """The kind of problem, without the element it names."""
    status, detail = row["status"], row["detail"]
    side, _, detail = detail.rpartition("] ")
    side = f" {side}]" if side else ""
    if status == "failed":
        return "failed" + side + ": " + ("a rate became infinite or NaN" if "infinite or NaN" in detail else detail[:60])
    first = detail.split("; ")[0]
    return "refused" + side + ": " + (first.split(": ", 1)[-1] if not first.startswith("line ") else first.split(": ", 2)[1])[:70]


def _ratio_summary(rows: list[dict], ours: str, theirs: str) -> str:
    ratios = [float(r[ours]) / float(r[theirs]) for r in rows if r.get(ours) and r.get(theirs) and float(r[theirs]) > 0]
    if not ratios:
        return "no timings"
    return (f"median {np.median(ratios):.2f}x, 90th percentile {np.percentile(ratios, 90):.2f}x "
            f"over {len(ratios)} models")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--only", nargs="*", help="BioModels ids to run (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (timings are fairest with one)")
    parser.add_argument("--jit", action="store_true", help="compile kernels with numba from the start (first runs pay for it)")
    parser.add_argument("--plain", action="store_true", help="plain-Python kernels throughout (ILSIM_JIT=0)")
    parser.add_argument("--cold", action="store_true", help="also time each tool's first run in a new process")
    parser.add_argument("--csv", type=Path, help="also write one row per file here")
    parser.add_argument("--verbose", action="store_true", help="also list the models that agree")
    args = parser.parse_args(argv)
    if args.jit or args.plain:
        os.environ["ILSIM_JIT"] = "1" if args.jit else "0"
    else:
        os.environ.pop("ILSIM_JIT", None)  # the default: tiered
    os.environ["ILSIM_SURVEY_COLD"] = "1" if args.cold else "0"
    with open(args.data / "manifest.csv") as f:
        files = [str(args.data / row["file"]) for row in csv.DictReader(f)
                 if not args.only or (row.get("biomodels_id") or Path(row["file"]).stem.split("__")[0]) in args.only]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(_survey_one, files))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, FIELDS)
            writer.writeheader()
            writer.writerows(rows)
    counts = Counter(row["status"] for row in rows)
    for row in sorted(rows, key=lambda r: (r["status"], r["model"])):
        if row["status"] != "agrees" or args.verbose:
            print(f"{row['model']} {row['status']}: {row['detail']}")
    imported = len(rows) - counts["refused"]
    ran = imported - counts["failed"]
    print(f"\n{len(rows)} files: {imported} import, {ran} run, {counts['agrees']} agree with libroadrunner, "
          f"{counts['disagrees']} disagree, {counts['unstable']} unstable reference (not counted), "
          f"{counts['roadrunner-failed']} failed in libroadrunner ({time.perf_counter() - start:.0f} s, {args.jobs} jobs)")
    reasons = Counter(_reason(row) for row in rows if row["status"] in ("refused", "failed"))
    for reason, n in reasons.most_common():
        print(f"  {n:4d}  {reason}")
    timed = [r for r in rows if r["status"] in ("agrees", "disagrees", "unstable", "roadrunner-failed")]
    first = _ratio_summary(timed, "ilsim_first_s", "roadrunner_first_s")
    print(f"first run (import + compile + simulate vs load + simulate): {first}")
    print(f"warm run (simulate again vs reset + simulate): {_ratio_summary(timed, 'ilsim_warm_s', 'roadrunner_warm_s')}")
    if args.cold:
        cold = _ratio_summary(timed, "ilsim_cold_s", "roadrunner_cold_s")
        print(f"first run in a new process (module imports + the above): {cold}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
