"""Runs requested by the pages, executed off the server's request threads, cached, cancellable.

A run is named by what decides its result (the model, the parameter values, the fault severities), so two
sessions asking for the same run share one integration, and moving a slider back to a value already seen
answers from the cache. A small pool bounds how many integrations run at once whatever the number of
browser sessions; each one has a wall-clock budget (ilsim's own ``max_wall_s``), so a model that integrates
badly ends with its error rather than holding a worker.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import ilsim

WORKERS = 4  # integrations at once (the rest wait in the queue); the machine, not the sessions, sets this
CACHE_RUNS = 256  # finished runs kept (each a few hundred kB at most: output size is capped by ilsim's limits)
MAX_WALL_S = 60.0  # one integration's budget; the error names it when spent
FORGET_S = 600.0  # a finished job nobody has asked about for this long is dropped


@dataclass
class Job:
    key: str
    future: Future
    started: float = field(default_factory=time.monotonic)
    stage: str = "queued"
    cancelled: bool = False
    seen: float = field(default_factory=time.monotonic)

    def state(self) -> str:
        if self.cancelled:
            return "cancelled"
        if not self.future.done():
            return self.stage
        return "failed" if self.future.exception() is not None else "done"


def run_key(model_key: str, parameters: dict[str, float], faults: dict[str, float], doses: list[dict] = ()) -> str:
    return json.dumps([model_key, sorted(parameters.items()), sorted(faults.items()), list(doses)], sort_keys=True)


class Runner:
    """Submit runs, ask how they are going, cancel them; identical runs come from the cache."""

    def __init__(self, workers: int = WORKERS, max_wall_s: float = MAX_WALL_S):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ilsim-run")
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Future] = OrderedDict()
        self._jobs: dict[str, Job] = {}
        self.max_wall_s = max_wall_s
        self.integrations = 0  # how many runs were integrated (not answered from the cache): the tests read it

    def submit(self, model_key: str, compiled, parameters: dict[str, float], faults: dict[str, float],
               doses: list[dict] = (), source=None) -> str:
        """A job id for this run; the run starts now, or is already running or finished (then shared). ``doses``
        (entries of a doses: section) are added to ``source``, the model as written (not yet compiled)."""
        key = run_key(model_key, parameters, faults, doses)
        with self._lock:
            self._forget_old()
            future = self._cache.get(key)
            if future is not None and (future.cancelled() or (future.done() and future.exception() is not None)):
                future = None  # a failure is not cached: the user may have fixed what made it fail elsewhere
            job_id = uuid.uuid4().hex
            if future is None:
                job = Job(key, Future())
                job.future = self._pool.submit(self._integrate, job, compiled, dict(parameters), dict(faults),
                                               list(doses), source)
                self._cache[key] = job.future
                while len(self._cache) > CACHE_RUNS:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(key)
                job = Job(key, future, stage="running")
            self._jobs[job_id] = job
        return job_id

    def _integrate(self, job: Job, compiled, parameters: dict, faults: dict, doses: list, source):
        self.integrations += 1
        if doses:
            job.stage = "compiling the doses"
            compiled = ilsim.compile(source, doses=doses)  # a dose ilsim refuses fails the run with its message
        job.stage = "integrating"
        ds = ilsim.simulate(compiled, parameters=parameters or None, faults=faults or None, max_wall_s=self.max_wall_s)
        job.stage = "summarising"
        return ds, ilsim.summarise(ds)

    def job(self, job_id: str | None) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id or "")
            if job is not None:
                job.seen = time.monotonic()
            return job

    def wait(self, job_id: str, timeout: float) -> Job | None:
        """The job, after waiting up to ``timeout`` seconds for it to finish (a short run answers at once)."""
        job = self.job(job_id)
        if job is not None:
            try:
                job.future.exception(timeout=timeout)
            except Exception:  # noqa: BLE001 - still running (TimeoutError) or cancelled: the state says which
                pass
        return job

    def cancel(self, job_id: str | None) -> None:
        """Stop waiting for a job: a queued run never starts; a running one (SciPy cannot be interrupted) ends
        within its budget and its result stays in the cache for whoever asks again."""
        job = self.job(job_id)
        if job is None:
            return
        job.cancelled = True
        if job.future.cancel():
            with self._lock:
                if self._cache.get(job.key) is job.future:
                    del self._cache[job.key]

    def _forget_old(self) -> None:
        now = time.monotonic()
        for job_id in [j for j, job in self._jobs.items() if job.future.done() and now - job.seen > FORGET_S]:
            del self._jobs[job_id]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
