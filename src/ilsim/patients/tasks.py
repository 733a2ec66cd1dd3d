"""Chunks of patients as tasks, and where they run: one after the other in this process, or on a Dask cluster.

A task carries the model as its specification (JSON text), which a process compiles once; compiled
models and their numba kernels never travel. On a cluster, tasks are submitted a few at a time, so
the client holds only a window of parameter rows, and a lost worker's tasks are run again
elsewhere with the same inputs, hence the same results. Cohorts, sweeps and sensitivity analyses
all run their chunks through ``run_chunks``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from ilsim.engines.batch import BatchEngine
from ilsim.errors import IlsimError
from ilsim.errors import argument as arg
from ilsim.model.compile import CompiledModel, compile_model
from ilsim.model.load import spec_from_dict
from ilsim.patients.evaluate import Block, evaluate
from ilsim.patients.metrics import parse_conditions

CONNECT_TIMEOUT_S = 5
KEEP_MODELS = 8  # compiled models kept per process (the most recently used)
IN_PROCESS = "in-process"


@dataclasses.dataclass(frozen=True)
class ChunkTask:
    """What a process needs to run patients of one model: plain data, no compiled code."""

    spec_json: str
    model_hash: str
    t_eval: np.ndarray
    conditions: tuple[str, ...]  # time_to conditions, as text (parsed again where the task runs)
    backend: str
    rtol: float
    atol: float
    trajectories: bool
    engine: object = None  # an engine object given by the caller (ilsim.engines.base.Engine); else one for backend


_MODELS: dict[str, CompiledModel] = {}  # model hash -> compiled model, per process, oldest first
_MODELS_LOCK = threading.Lock()  # a worker may run several tasks at once, in threads


def _keep(model_hash: str, model: CompiledModel) -> CompiledModel:
    with _MODELS_LOCK:
        _MODELS.pop(model_hash, None)
        _MODELS[model_hash] = model
        while len(_MODELS) > KEEP_MODELS:
            del _MODELS[next(iter(_MODELS))]
    return model


def chunk_task(model: CompiledModel, t_eval: np.ndarray, conditions, *, rtol: float, atol: float,
               backend: str = "cpu", trajectories: bool = False, engine=None) -> ChunkTask:
    """The task of ``model`` (already compiled in this process, so it is not compiled again here); ``engine``, if
    given, runs its patients instead of the backend's batch engine."""
    model_hash = model.spec.content_hash()
    task = ChunkTask(json.dumps(model.spec.model_dump(mode="json")), model_hash, t_eval, tuple(conditions), backend,
                     # an engine without tolerances (the tissue engine) gives None
                     None if rtol is None else float(rtol), None if atol is None else float(atol), bool(trajectories), engine)
    _keep(model_hash, model)
    return task


def compiled_model(task: ChunkTask) -> CompiledModel:
    """The task's model, compiled once per process from its specification."""
    model = _MODELS.get(task.model_hash)
    if model is None:
        model = compile_model(spec_from_dict(json.loads(task.spec_json)))
    return _keep(task.model_hash, model)


def make_engine(backend: str, rtol: float, atol: float):
    """The batch engine of a backend: numba on the CPU, or CUDA."""
    if backend == "cpu":
        return BatchEngine(rtol=rtol, atol=atol)
    try:
        from ilsim.engines.cuda import CudaBatchEngine  # lazy: optional (CuPy, the gpu extra)
    except ImportError as exc:
        raise IlsimError(f"{arg('backend')} gpu: the GPU engine cannot be loaded ({exc}); use {arg('backend')} cpu") from None
    return CudaBatchEngine(rtol=rtol, atol=atol)


def task_engine(task: ChunkTask):
    """The engine that runs the task's patients: the caller's, or the backend's batch engine."""
    return task.engine if task.engine is not None else make_engine(task.backend, task.rtol, task.atol)


def check_engine(engine, rtol, atol, backend: str = "cpu"):
    """An engine given by the caller carries its own tolerances and backend: refuse them beside it."""
    if engine is None:
        return
    from ilsim.engines.base import Engine  # lazy: the engines are above tasks' own needs

    if not isinstance(engine, Engine):
        raise IlsimError(f"engine must be an ilsim engine (BatchEngine, OdeEngine, ...), got {type(engine).__name__}")
    given = [name for name, v in (("rtol", rtol), ("atol", atol)) if v is not None] + (["backend"] if backend != "cpu" else [])
    if given:
        raise IlsimError(f"give {', '.join(given)} to the engine, not beside it (the engine holds its settings)")


def evaluate_chunk(task: ChunkTask, P: np.ndarray, first: int) -> tuple[CompiledModel, Block]:
    """Integrate and summarise the rows of ``P`` (patients ``first``, ``first + 1``, ...) as the task says."""
    model = compiled_model(task)
    block = evaluate(model, P, task.t_eval, engine=task_engine(task),
                     conditions=parse_conditions(model, task.conditions), first_id=first)
    return model, block


def summarise_chunk(task: ChunkTask, P: np.ndarray, first: int) -> pd.DataFrame:
    """The summary rows of a chunk only (its trajectories stay where it ran)."""
    return evaluate_chunk(task, P, first)[1].metrics


# ---------------------------------------------------------------------------------- where tasks run


def connect(address: str):
    """A Dask client of the scheduler at ``address``; a clear error after ``CONNECT_TIMEOUT_S`` if none answers."""
    from dask.distributed import Client  # lazy: heavy (dask)

    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise IlsimError(f"{arg('scheduler')} {address}: no Dask scheduler answered within {CONNECT_TIMEOUT_S} s ({why}); "
                         "start one (`dask scheduler`, then `dask worker ADDRESS`) or leave out --scheduler to run "
                         "in-process") from None


def check_client(client, scheduler: str | None) -> None:
    """A Dask client or a scheduler address (or neither: in-process), not both."""
    if client is not None and scheduler is not None:
        raise IlsimError("give a Dask client or a scheduler address, not both")


LOCAL = "local"  # scheduler= / --scheduler local: a Dask cluster of worker processes on this machine


@contextmanager
def cluster(client=None, scheduler: str | None = None, workers: int | None = None):
    """The client to run tasks with: ``client``, one connected to ``scheduler`` (closed on exit), a cluster of
    ``workers`` processes on this machine (one per CPU by default) for ``scheduler="local"``, or None (in-process)."""
    check_client(client, scheduler)
    if scheduler == LOCAL:
        import os

        from dask.distributed import Client, LocalCluster  # lazy: heavy (dask)

        with LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as local, Client(local, set_as_default=False) as own:
            yield own
        return
    own = None if scheduler is None else connect(scheduler)
    try:
        yield client if own is None else own
    finally:
        if own is not None:
            own.close()


def where(client) -> str:
    """Where tasks run, for the record: 'in-process' or 'Dask scheduler ADDRESS'."""
    return IN_PROCESS if client is None else f"Dask scheduler {client.scheduler.address}"


def worker_threads(client) -> int:
    """Tasks that run at once: 1 in-process, else the cluster's worker threads (at least 1)."""
    return 1 if client is None else max(sum(client.nthreads().values()), 1)


def call(client, fn: Callable, *args):
    """``fn(*args)`` here, or as one task on the cluster."""
    if client is None:
        return fn(*args)
    return client.submit(fn, *args, pure=False).result()


@dataclasses.dataclass(frozen=True)
class ChunkFailed:
    """What ``run_chunks(..., keep_going=True)`` yields for a chunk whose task failed: the reason."""

    reason: str


def run_chunks(client, fn: Callable, jobs: Iterator[tuple[int, tuple]], *, name: str,
               on_failure: str = "", keep_going: bool = False) -> Iterator[tuple[int, object]]:
    """``(index, fn(*args))`` for each job ``(index, args)``, in completion order: here one after the other, or
    on the cluster with a bounded number of tasks in flight (``jobs`` is drawn from only as tasks finish).

    A task that fails on the cluster for another reason than an IlsimError stops the run with a message
    naming the chunk, followed by ``on_failure``; the tasks still pending are cancelled. With ``keep_going``
    such a failure is yielded instead, as ``(index, ChunkFailed(reason))``, and the run goes on.
    """
    if client is None:
        for index, args in jobs:
            try:
                result = fn(*args)
            except IlsimError:
                raise
            except Exception as exc:
                if not keep_going:
                    raise
                result = ChunkFailed(f"{type(exc).__name__}: {exc}")
            yield index, result
        return
    from dask.distributed import as_completed  # lazy: heavy (dask)

    window = 2 * worker_threads(client) + 1
    pending: dict = {}
    queue = as_completed(loop=client.loop)  # this client's loop: it need not be the default client

    def submit_next() -> None:
        item = next(jobs, None)
        if item is not None:
            index, args = item
            future = client.submit(fn, *args, pure=False, key=f"ilsim-{name}-chunk-{index}-{uuid.uuid4().hex}")
            pending[future.key] = (index, future)
            queue.add(future)

    try:
        for _ in range(window):
            submit_next()
        for future in queue:
            index, _ = pending.pop(future.key)
            try:
                result = future.result()
            except IlsimError:
                raise
            except Exception as exc:
                if not keep_going:
                    raise IlsimError(f"chunk {index} could not be run on the cluster: {type(exc).__name__}: {exc}"
                                     f"{on_failure}") from None
                result = ChunkFailed(f"{type(exc).__name__}: {exc}")
            future.release()
            submit_next()
            yield index, result
    finally:
        if pending:  # stopped early (an error, Ctrl-C): the cluster need not run the rest
            client.cancel([f for _, f in pending.values()])
