"""Multistart local optimisation: seeded Latin-hypercube starts within the bounds, each run by fides (an
interior trust-region method made for ODE fitting) or SciPy's least_squares (trust-region reflective), both
on the objective's sensitivity derivatives.

Starts run in worker processes (forked, so each inherits the compiled problem) or as tasks on a Dask cluster
(``StartTask``: the model travels as its specification, compiled once per worker process by the cohorts'
machinery in ``patients.tasks``); a start that fails is recorded with its reason and never stops the others.
With a work folder every finished start is written there atomically (``start_0007.json``, by this process, so
Dask workers need no shared file system) and a later run with the same problem and settings skips it: a fit
killed at any moment (even ``kill -9``) resumes from the starts that finished.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from ilsim.fit.objective import Objective
from ilsim.fit.problem import FitError
from ilsim.io.atomic import atomic_file
from ilsim.patients.tasks import ChunkTask, chunk_task, compiled_model, run_chunks

_OBJECTIVE: Objective | None = None  # the objective a forked worker inherits
_HERE = threading.local()  # per thread of a Dask worker: its objectives (a Simulator keeps state between calls)


def latin_hypercube(lower: np.ndarray, upper: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n starts (rows) stratified in every parameter, within the bounds on the parameters' scales."""
    from scipy.stats import qmc  # lazy: heavy (SciPy)

    unit = qmc.LatinHypercube(d=len(lower), seed=np.random.default_rng(seed)).random(n)
    return qmc.scale(unit, lower, upper) if np.all(upper > lower) else lower + unit * (upper - lower)


OPTIMIZERS = ("fides", "trf")


def local_fit(objective: Objective, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray, max_evaluations: int = 400,
              optimizer: str = "fides") -> dict:
    """One start from x0: fides (interior trust region, the Fisher information from the sensitivities as its
    Hessian) or SciPy's least_squares (TRF); a dict with the end point, its objective and why it stopped."""
    started = time.perf_counter()
    record = {"x0": x0.tolist()}
    try:
        x, evaluations, status, message = (_fides if optimizer == "fides" else _trf)(objective, x0, lower, upper,
                                                                                   max_evaluations)
        end = objective(x)
        record.update(x=x.tolist(), objective=_finite(end.objective), nllh=_finite(end.nllh), status=status,
                      message=message, evaluations=evaluations)
    except _StartFailed as exc:
        record.update(x=None, objective=None, nllh=None, status="failed", message=str(exc), evaluations=1)
    except Exception as exc:  # noqa: BLE001 - a start that breaks is recorded, never fatal to the fit
        record.update(x=None, objective=None, nllh=None, status="failed", message=f"{type(exc).__name__}: {exc}",
                      evaluations=None)
    record["seconds"] = time.perf_counter() - started
    return record


def _fides(objective, x0, lower, upper, max_evaluations):
    import logging

    import fides  # lazy: optional (the fit extra)

    n = len(x0)
    calls = 0

    def fun(x):
        nonlocal calls
        calls += 1
        ev = objective(x, gradient=True)
        if ev.gradient is None:
            if calls == 1:
                raise _StartFailed("the model cannot be simulated at the start point")
            return math.inf, np.full(n, np.nan), np.full((n, n), np.nan)  # fides shrinks its trust region
        return ev.objective, ev.gradient, ev.fisher

    opt = fides.Optimizer(fun, ub=upper, lb=lower, verbose=logging.ERROR,
                          options={fides.Options.MAXITER: max_evaluations})
    _, x, _, _ = opt.minimize(np.asarray(x0, float))
    flag = opt.exitflag
    status = "converged" if int(flag) > 0 else ("max_evaluations" if flag == fides.ExitFlag.MAXITER else "failed")
    return np.asarray(x, float), calls, status, str(flag.name)


def _trf(objective, x0, lower, upper, max_evaluations):
    from scipy.optimize import least_squares  # lazy: heavy (SciPy)

    cache: dict = {}
    n_res = None

    def evaluate(x):
        key = x.tobytes()
        if key not in cache:
            cache.clear()
            cache[key] = objective(x, gradient=True)
        return cache[key]

    def residuals(x):
        nonlocal n_res
        ev = evaluate(x)
        if ev.residuals is None:  # a failed simulation: TRF shrinks its trust region and tries a shorter step
            if n_res is None:
                raise _StartFailed("the model cannot be simulated at the start point")
            return np.full(n_res, np.inf)
        n_res = len(ev.residuals)
        return ev.residuals

    def jacobian(x):
        return evaluate(x).jacobian

    sol = least_squares(residuals, x0, jac=jacobian, bounds=(lower, upper), method="trf", x_scale="jac",
                        max_nfev=max_evaluations, ftol=1e-10, xtol=1e-10, gtol=1e-8)
    return sol.x, int(sol.nfev), "converged" if sol.status > 0 else "max_evaluations", str(sol.message)


class _StartFailed(Exception):
    pass


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _worker(index: int, x0: np.ndarray, lower, upper, max_evaluations, optimizer, work: str | None) -> dict:
    record = local_fit(_OBJECTIVE, x0, lower, upper, max_evaluations, optimizer)
    record["index"] = index
    if work is not None:
        _write_start(Path(work), record)
    return record


@dataclasses.dataclass(frozen=True)
class StartTask:
    """What a Dask worker needs to run starts of one problem: plain data, no compiled code."""

    model: ChunkTask  # the model as its specification, compiled once per process (patients.tasks)
    problem: bytes  # the rest of the problem, pickled by cloudpickle (its observables are generated functions)
    key: str


def start_task(objective: Objective) -> StartTask:
    import cloudpickle  # lazy: comes with dask.distributed

    problem = objective.problem
    model = chunk_task(problem.model, np.zeros(0), (), rtol=problem.rtol, atol=problem.atol)
    with warnings.catch_warnings():  # cloudpickle looks names up in every loaded module: petab's warn when touched
        warnings.simplefilter("ignore", DeprecationWarning)
        rest = cloudpickle.dumps(dataclasses.replace(problem, model=None))
    return StartTask(model, rest, model.model_hash + hashlib.sha256(rest).hexdigest())


def task_objective(task: StartTask) -> Objective:
    """The task's objective, built once per worker thread (the pickled problem is unpickled once too)."""
    import pickle

    kept = getattr(_HERE, "objectives", None)
    if kept is None or task.key not in kept:
        problem = dataclasses.replace(pickle.loads(task.problem), model=compiled_model(task.model))
        kept = _HERE.objectives = {task.key: Objective(problem)}  # the latest problem only: bounded memory
    return kept[task.key]


def _task_start(task: StartTask, index: int, x0: np.ndarray, lower, upper, max_evaluations, optimizer) -> dict:
    record = local_fit(task_objective(task), x0, lower, upper, max_evaluations, optimizer)
    record["index"] = index
    return record


def _warm(objective: Objective, x: np.ndarray) -> None:
    """One evaluation with the gradient before forking: what it compiles and derives on first use (the augmented
    sensitivity system, about 0.7 s for Boehm; SymPy's derivatives) is then done once, not once per worker."""
    try:
        objective(x, gradient=True)
    except Exception:  # noqa: BLE001 - the start that breaks on it is recorded by its worker, never fatal here
        pass


def _write_start(work: Path, record: dict) -> None:
    with atomic_file(work / f"start_{record['index']:04d}.json") as tmp:
        tmp.write_text(json.dumps(record))


def fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def run_starts(objective: Objective, starts: int, seed: int, work: Path | None = None, workers: int | None = None,
               max_evaluations: int = 400, optimizer: str = "fides", settings: dict | None = None,
               progress=None, client=None) -> list[dict]:
    """Every start's record, in start order; those already in ``work`` (same ``settings``) are not run again.
    With ``client`` (a ``dask.distributed.Client``) the starts run as tasks on its cluster."""
    global _OBJECTIVE
    lower, upper = objective.problem.parameters.bounds()
    points = latin_hypercube(lower, upper, starts, seed)
    done: dict[int, dict] = {}
    if work is not None:
        manifest = {"settings": settings or {}, "fingerprint": fingerprint({**(settings or {}), "seed": seed, "starts": starts,
                                                                            "optimizer": optimizer})}
        work.mkdir(parents=True, exist_ok=True)
        path = work / "manifest.json"
        if path.exists():
            try:
                there = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                there = None
            if not isinstance(there, dict):
                raise FitError(f"{path}: cannot be read as the manifest of an interrupted fit (damaged); remove {work} "
                               "or use another --out")
            if there.get("fingerprint") != manifest["fingerprint"]:
                raise FitError(f"{work}: holds the starts of another fit (other problem, seed, number of starts or "
                               "settings); remove it or use another --out")
        else:
            with atomic_file(path) as tmp:
                tmp.write_text(json.dumps(manifest))
        for file in sorted(work.glob("start_*.json")):
            try:
                record = json.loads(file.read_text())
                index = int(record["index"])
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # written atomically, so damaged by something else: that start is run again
            if 0 <= index < starts:
                done[index] = record
    todo = [i for i in range(starts) if i not in done]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    results = dict(done)
    if progress:
        progress(len(results), starts)
    if client is not None:
        task = start_task(objective)
        jobs = ((i, (task, i, points[i], lower, upper, max_evaluations, optimizer)) for i in todo)
        for _, record in run_chunks(client, _task_start, jobs, name="fit",
                                    on_failure="; the finished starts are kept, the same command resumes"):
            if work is not None:
                _write_start(work, record)
            results[record["index"]] = record
            if progress:
                progress(len(results), starts)
    elif workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
        _OBJECTIVE = objective
        for i in todo:
            results[i] = _worker(i, points[i], lower, upper, max_evaluations, optimizer, None if work is None else str(work))
            if progress:
                progress(len(results), starts)
    else:
        _OBJECTIVE = objective  # forked workers inherit it: the compiled model is not sent anywhere
        objective.problem.model.kernels  # noqa: B018 - build the kernels once, before forking
        if todo:
            _warm(objective, points[todo[0]])
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(_worker, i, points[i], lower, upper, max_evaluations, optimizer,
                                   None if work is None else str(work)) for i in todo]
            for future in as_completed(futures):
                record = future.result()
                results[record["index"]] = record
                if progress:
                    progress(len(results), starts)
    return [results[i] for i in range(starts)]
