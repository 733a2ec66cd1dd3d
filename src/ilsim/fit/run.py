"""``ilsim.fit(...)`` and ``ilsim fit``: read a problem, run the starts, profile, write the result folder."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ilsim.errors import argument
from ilsim.fit.multistart import OPTIMIZERS, run_starts
from ilsim.fit.objective import Objective
from ilsim.fit.problem import FitError, FitProblem
from ilsim.fit.profile import profile
from ilsim.fit.result import FitResult


def load_problem(problem: str | Path | FitProblem) -> FitProblem:
    """A FitProblem from a PEtab v1 problem file (YAML with ``format_version``) or an ilsim model file with a
    ``fit:`` section."""
    if isinstance(problem, FitProblem):
        return problem
    path = Path(problem)
    if not path.is_file():
        raise FitError(f"{path}: no such file")
    import yaml  # PyYAML: is it PEtab's problem file or an ilsim model?

    try:
        head = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FitError(f"{path}: not YAML: {str(exc).splitlines()[0]}") from None
    if isinstance(head, dict) and "format_version" in head and "problems" in head:
        from ilsim.fit.petab_io import load_petab

        return load_petab(path)
    from ilsim.fit.model_io import load_model_fit

    return load_model_fit(path)


def fit(problem: str | Path | FitProblem, *, starts: int = 100, seed: int = 1, out: str | Path | None = None,
        workers: int | None = None, optimizer: str = "fides", max_evaluations: int = 400, profiles: bool = False,
        overwrite: bool = False, report: bool = True, progress=None, client=None, scheduler: str | None = None
        ) -> FitResult:
    """Fit a problem by multistart optimisation; with ``out`` the result folder is written atomically and the
    finished starts are kept in ``OUT.partial/`` until then, so an interrupted fit resumes from them.

    The starts run in forked processes (``workers``), or as tasks on a Dask cluster: ``client`` (a
    ``dask.distributed.Client``), ``scheduler`` (``"tcp://HOST:PORT"``) or ``scheduler="local"`` (a
    LocalCluster of ``workers`` single-threaded processes, closed at the end)."""
    if optimizer not in OPTIMIZERS:
        raise FitError(f"{argument('optimizer')}: unknown optimizer '{optimizer}' (known: {', '.join(OPTIMIZERS)})")
    if not isinstance(starts, int) or starts < 1:
        raise FitError(f"{argument('starts')}: must be a whole number >= 1, got {starts!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        # 0 or a negative count used to fall back silently to one process per CPU
        raise FitError(f"{argument('workers')}: must be a whole number >= 1, got {workers!r}")
    if out is not None:
        from ilsim.io.results import check_out

        check_out(out, overwrite)  # before any work: a folder ilsim must not replace is refused now
    problem = load_problem(problem)
    objective = Objective(problem)
    work = None if out is None else Path(str(Path(out).resolve()) + ".partial")
    settings = {"problem": problem.source, "content": _content_hash(problem), "max_evaluations": max_evaluations}
    started = time.perf_counter()
    with _cluster(client, scheduler, workers) as client:
        records = run_starts(objective, starts, seed, work=work, workers=workers, max_evaluations=max_evaluations,
                             optimizer=optimizer, settings=settings, progress=progress, client=client)
    result = FitResult(problem, records, seed, time.perf_counter() - started, optimizer)
    if not result.ranked:
        raise FitError(f"{problem.source}: every start failed; first reason: {records[0]['message']}")
    if profiles:
        result.profiles = profile_all(objective, result.x, workers, optimizer)
    result.wall_time_s = time.perf_counter() - started
    if out is not None:
        from ilsim.fit.outputs import write

        write(result, out, overwrite=overwrite, report=report)
        _remove_work(work)
    return result


@contextmanager
def _cluster(client, scheduler: str | None, workers: int | None):
    """The Dask client the starts run on, or None (forked processes); one this function opened is closed."""
    from ilsim.patients.tasks import cluster

    with cluster(client, scheduler, workers) as client:
        yield client


def profile_all(objective: Objective, best: np.ndarray, workers: int | None, optimizer: str) -> dict[str, dict]:
    names = objective.problem.parameters.names
    return {name: profile(objective, best, k, optimizer=optimizer) for k, name in enumerate(names)}


def _content_hash(problem: FitProblem) -> str:
    """The problem's data as the starts saw it: a changed file is another fit, never resumed into this one."""
    import hashlib

    h = hashlib.sha256(problem.model.spec.content_hash().encode())
    for array in (problem.measurements.value, problem.measurements.time, problem.parameters.lower,
                  problem.parameters.upper, problem.parameters.nominal, problem.parameters.estimate.astype(float)):
        h.update(np.ascontiguousarray(array, float).tobytes())
    h.update("|".join(problem.parameters.ids).encode())
    return h.hexdigest()


def _remove_work(work: Path | None) -> None:
    """The work folder holds only what this fit wrote there (start files and the manifest)."""
    if work is None or not work.is_dir():
        return
    for file in work.iterdir():
        if file.name == "manifest.json" or (file.name.startswith("start_") and file.suffix == ".json"):
            file.unlink()
    try:
        work.rmdir()
    except OSError:  # something else is in it: left for the user
        pass
