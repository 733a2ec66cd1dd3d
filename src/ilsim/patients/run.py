"""Virtual-patient cohorts in chunks: plan them, run them in-process or on Dask, resume after a kill.

Patients 0..N-1 are split into chunks. A chunk is the unit of work and of saving: the client draws
its parameter rows (``population_sampler``: patient i depends only on the seed and i), the batch
engine integrates them and ``cohort.evaluate`` summarises them, and the client writes the rows
atomically into the work folder ``OUT.partial/`` (``cohort.store``), whose manifest records the
settings. Running again with the same settings computes no chunk that is already there; other
settings are refused. When every chunk is there, the output folder is assembled atomically and the
work folder removed.

On Dask each chunk is one task (``patients.tasks``: the model travels as its specification, tasks
are submitted a few at a time, a lost worker's tasks run again elsewhere with the same inputs).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from ilsim._version import __version__
from ilsim.errors import IlsimError
from ilsim.errors import argument as arg
from ilsim.io.results import atomic_folder, check_out, write_json
from ilsim.model.compile import CompiledModel
from ilsim.model.load import dump_spec
from ilsim.patients import store, tissue
from ilsim.patients.evaluate import output_times
from ilsim.patients.metrics import observables_over_time, parse_conditions
from ilsim.patients.population import parse_vary, population_sampler
from ilsim.patients.tasks import (
    ChunkTask,
    call,
    check_client,
    check_engine,
    chunk_task,
    cluster,
    compiled_model,
    evaluate_chunk,
    run_chunks,
    task_engine,
    where,
)

MAX_PATIENTS = 10_000_000  # above this a cohort needs force=True (--force)
CHUNK_BYTES = 100e6  # the default chunk keeps its trajectories (float64) below this
CHUNK_MIN, CHUNK_MAX, CHUNKS_WANTED = 1_000, 100_000, 20  # default chunks: about 20, within these sizes
SAMPLE = 50  # patients re-run on a finer time grid for the spaghetti plot
SAMPLE_POINTS = 201
BACKENDS = ("cpu", "gpu")


def run_chunk(task: ChunkTask, P: np.ndarray, table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Integrate and summarise the patients of one chunk (rows of ``P``, ids from ``table``'s index).

    Returns their summary rows (id, drawn values, metrics) and, when the task keeps them, their
    trajectories (patients x times x (species + observables)).
    """
    model, block = evaluate_chunk(task, P, int(table.index[0]) if len(table) else 0)
    clash = sorted(set(table.columns) & set(block.metrics.columns))
    if clash:
        raise IlsimError(f"population: '{clash[0]}' names both a drawn value and a summary column; rename it")
    frame = pd.concat([table, block.metrics], axis=1).reset_index()
    trajectories = None
    if task.trajectories:
        obs = observables_over_time(model, task.t_eval, block.Y, P)
        trajectories = np.concatenate([block.Y, obs], axis=2)
    return frame, trajectories


def probe(task: ChunkTask, p: np.ndarray) -> None:
    """One patient over the first output step: the engine accepts the model on this backend (and is compiled)."""
    t = task.t_eval[:2]
    task_engine(task).solve(compiled_model(task), t, p[None, :])


def default_chunk_size(patients: int, points: int, variables: int) -> int:
    """About ``CHUNKS_WANTED`` chunks of ``CHUNK_MIN``..``CHUNK_MAX`` patients, trajectories under ``CHUNK_BYTES``."""
    by_memory = max(1, int(CHUNK_BYTES // (8 * points * max(variables, 1))))
    wanted = max(CHUNK_MIN, math.ceil(patients / CHUNKS_WANTED))
    return max(1, min(by_memory, CHUNK_MAX, wanted, patients))


def plan_chunks(patients: int, chunk_size: int) -> list[tuple[int, int, int]]:
    """(index, first patient, stop) of every chunk."""
    return [(i, start, min(start + chunk_size, patients)) for i, start in enumerate(range(0, patients, chunk_size))]


@dataclasses.dataclass
class CohortRun:
    """What a cohort run produced: ``info`` (the content of cohort.json) and the summary table."""

    info: dict
    out: Path | None
    _summary: pd.DataFrame | None = None

    @property
    def summary(self) -> pd.DataFrame:
        """One row per patient (read from summary.parquet when the run wrote a folder)."""
        if self._summary is None and self.out is not None:
            self._summary = pd.read_parquet(self.out / "summary.parquet")
        return self._summary


def run_cohort(
    model: CompiledModel,
    *,
    patients: int,
    seed: int | None = None,
    population=None,
    vary: str | Sequence[str] = (),
    time_to: str | Sequence[str] = (),
    save_trajectories: bool = False,
    chunk_size: int | None = None,
    client=None,
    scheduler: str | None = None,
    backend: str = "cpu",
    engine=None,
    t_end: float | None = None,
    points: int | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    force: bool = False,
    out: str | Path | None = None,
    report: bool = True,
    progress: Callable[[int, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> CohortRun:
    """Run a virtual-patient cohort of ``model``; see the module docstring and docs/cohort.md.

    ``engine`` (an ilsim engine object: ``BatchEngine(method="rodas")``, ``OdeEngine("Radau")``, ...) runs the
    patients instead of the backend's batch engine, with its own tolerances. Every input is checked before
    anything is written. ``progress(done, total)`` is called with
    patient counts as chunks finish; ``notify(text)`` with messages such as a resumed run's count.
    """
    started = time.perf_counter()
    notify = notify or (lambda text: None)
    vary = [vary] if isinstance(vary, str) else list(vary)
    time_to = [time_to] if isinstance(time_to, str) else list(time_to)
    patients = _check_count(patients, arg("patients"), "patients")
    if patients > MAX_PATIENTS and not force:
        raise IlsimError(f"{arg('patients')} {patients:,} is more than {MAX_PATIENTS:,}: give {arg('force')} if you mean it")
    if chunk_size is not None:
        chunk_size = _check_count(chunk_size, arg("chunk_size"), "patients per chunk")
    if backend not in BACKENDS:
        raise IlsimError(f"{arg('backend')} must be one of {', '.join(BACKENDS)}, got '{backend}'")
    check_client(client, scheduler)
    check_engine(engine, rtol, atol, backend)
    if save_trajectories and out is None:
        raise IlsimError(f"trajectories are saved into the output folder: give {arg('out')} with "
                         f"{arg('save_trajectories')}")
    out = None if out is None else check_out(out, overwrite)
    work = None if out is None else store.work_folder(out)
    manifest = None if work is None else store.read_manifest(work)
    if seed is None and manifest is not None:
        seed = manifest["settings"]["seed"]  # the same command without --seed resumes the run it started
        notify(f"resuming with the seed recorded in {work}: {seed}")

    sim = model.spec.simulation
    if tissue.is_tissue(engine):
        tissue.check(model)
        model = tissue.located(model)
        t_end, points = tissue.output_times(model, t_end, points)
        if seed is None:  # the replicates' seeds are mixed from the section's, as a single run's is its own
            seed = tissue.run_seed(model, engine, None)
    t_eval = output_times(model, t_end, points)
    t_end = float(t_eval[-1])
    if engine is not None:
        rtol, atol = engine.settings().get("rtol"), engine.settings().get("atol")
    rtol = sim.rtol if rtol is None else float(rtol)
    atol = sim.atol if atol is None else float(atol)
    parse_conditions(model, time_to)  # mistakes reported here, before anything runs
    sampler = population_sampler(model, population=population, vary=vary, seed=seed)
    if tissue.is_tissue(engine):  # replicates that vary a parameter the tissue does not read would all be one run
        named = {parse_vary(text, arg("vary"))[0] for text in vary}
        tissue.check(model, [(arg("vary") if n in named else "population.parameters", n) for n in sampler.parameters])
    if engine is not None and (engine.supports.get("stochastic") or engine.supports.get("replicates")) \
            and getattr(engine, "seed", 0) is None:
        engine = copy.copy(engine)  # the caller's object keeps its None
        engine.seed = sampler.seed  # the cohort's seed: recorded and resumed with it; streams apart (engines/ssa)
    variables = _variables(model)
    # a tissue replicate takes seconds: one per chunk, so a resumed run loses at most one and Dask spreads them
    chunk_size = chunk_size or (1 if tissue.is_tissue(engine) else default_chunk_size(patients, len(t_eval), len(variables)))
    chunks = plan_chunks(patients, chunk_size)
    settings = {
        "ilsim_version": _version(), "model": model.name, "model_hash": model.spec.content_hash(), "patients": patients,
        "seed": sampler.seed, "population": sampler.describe(), "chunk_size": chunk_size, "t_end": t_end,
        "points": len(t_eval), "time_to": time_to, "trajectories": bool(save_trajectories), "backend": backend,
        "rtol": rtol, "atol": atol, **({"engine": {"name": engine.name, **engine.settings()}} if engine else {}),
    }
    if manifest is not None:
        _check_same(settings, manifest.get("settings", {}), work)
    task = chunk_task(model, t_eval, time_to, rtol=rtol, atol=atol, backend=backend, trajectories=save_trajectories,
                      engine=engine)
    engine = task_engine(task)  # checks the tolerances; its name and method go into cohort.json

    with cluster(client, scheduler) as client:
        p0 = sampler.draw(0, 1)[0][0]
        try:
            call(client, probe, task, p0)
        except IlsimError as exc:
            if backend == "gpu":
                advice = "" if "cpu" in str(exc) else f"; use {arg('backend')} cpu"
                raise IlsimError(f"{arg('backend')} gpu: {exc}{advice}") from None
            raise
        done, computed, frames = _compute_chunks(client, task, sampler, chunks, work, settings, progress, notify)
        info = {
            "ilsim_version": settings["ilsim_version"], "created": _now(), "model": model.name,
            "model_title": model.spec.metadata.title or model.name, "model_source": model.source,
            "model_hash": settings["model_hash"], "patients": patients, "seed": sampler.seed,
            "population": sampler.describe(),
            "engine": {"name": engine.name, "backend": backend, "rtol": rtol, "atol": atol, **engine.settings()},
            "time": {"t_end": t_end, "points": len(t_eval), "units": model.spec.metadata.time_units},
            "time_to": time_to, "trajectories": bool(save_trajectories), "scheduler": where(client),
            "chunks": {"size": chunk_size, "count": len(chunks), "reused": done, "computed": computed},
        }
        if out is None:
            summary = pd.concat([frames[i] for i, _, _ in chunks], ignore_index=True) if chunks else pd.DataFrame()
            tally = store.Tally()
            tally.add(summary)
            info.update(tally.record(), wall_time_s=round(time.perf_counter() - started, 3))
            return CohortRun(info, None, summary)

        sample = None
        if report:
            if tissue.is_tissue(engine):  # run again at the output times: a tissue run's times are whole steps
                n, fine = min(tissue.REPORT_REPLICATES, patients), dataclasses.replace(task, trajectories=True)
            else:
                n = min(SAMPLE, patients)
                fine = dataclasses.replace(task, t_eval=np.linspace(0.0, t_end, max(SAMPLE_POINTS, len(t_eval))),
                                           trajectories=True)
            sample = (fine.t_eval, *call(client, run_chunk, fine, *sampler.draw(0, n)))
        _assemble(model, out, work, chunks, info, variables, t_eval, sample, started, overwrite)
        return CohortRun(info, out)


def _compute_chunks(client, task: ChunkTask, sampler, chunks, work: Path | None, settings: dict, progress, notify):
    """Run every chunk not already in the work folder; return (reused, computed, frames).

    With a work folder each finished chunk is saved there (``frames`` stays empty); without one the
    chunks' rows are returned in ``frames`` (chunk index -> rows).
    """
    patients = chunks[-1][2]
    reused: list[int] = []
    if work is not None:
        if not work.exists():
            store.create_work(work, {"settings": settings, "created": _now()})
        reused = store.finished_chunks(work, len(chunks), task.trajectories)
        if reused:
            notify(f"resuming: {len(reused)} of {len(chunks)} chunks already in {work}")
    kept = set(reused)
    todo = [c for c in chunks if c[0] not in kept]
    done = patients - sum(stop - start for _, start, stop in todo)
    if progress:
        progress(done, patients)
    run_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    frames: dict[int, pd.DataFrame] = {}
    computed = []
    jobs = ((index, (task, *sampler.draw(start, stop))) for index, start, stop in todo)
    kept_hint = "" if work is None else f"; the finished chunks are kept in {work}: run the same command again to resume"
    for index, (frame, trajectories) in run_chunks(client, run_chunk, jobs, name="cohort", on_failure=kept_hint):
        if work is not None:
            store.write_chunk(work, index, frame, trajectories, {"chunk": index, "run": run_id, "created": _now()})
        else:
            frames[index] = frame
        computed.append(index)
        done += len(frame)
        if progress:
            progress(done, patients)
    return reused, sorted(computed), frames


def _assemble(model, out: Path, work: Path, chunks, info: dict, variables, t_eval, sample, started: float,
              overwrite: bool = False) -> None:
    """Write the output folder atomically from the work folder, then remove the work folder."""
    meta = {k: info[k] for k in ("model", "model_hash", "patients", "seed")}
    with atomic_folder(out, overwrite) as tmp:
        tally = store.write_summary(work, [i for i, _, _ in chunks], tmp / "summary.parquet", meta)
        info.update(tally.record())
        if info["trajectories"]:
            store.write_trajectories(work, chunks, tmp / "trajectories.zarr", t=t_eval, variables=variables,
                                     time_units=model.spec.metadata.time_units,
                                     attrs={**meta, "title": info["model_title"], "ilsim_version": info["ilsim_version"]})
        (tmp / "model.yaml").write_text(dump_spec(model.spec))
        info["wall_time_s"] = round(time.perf_counter() - started, 3)
        if sample is not None:
            from ilsim.report.cohort import write_cohort_report  # lazy: heavy (matplotlib)

            write_cohort_report(model, info, tmp, sample)
        write_json(info, tmp / "cohort.json")
    store.remove_work(work)


def _variables(model: CompiledModel) -> list[dict]:
    """Species then observables, as stored in trajectories: name, units, role, description."""
    spec = model.spec
    out = [{"name": s.name, "units": s.units, "role": "species", "description": s.description} for s in spec.species]
    observables = {o.name: o for o in spec.observables}
    out += [{"name": n, "units": observables[n].units, "role": "observable", "description": observables[n].description}
            for n in model.observables]
    return out


def _check_count(value, option: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise IlsimError(f"{option} must be a whole number of {what}, at least 1; got {value}")
    return int(value)


def _check_same(here: dict, there: dict, work: Path) -> None:
    """Refuse to resume a run whose settings differ, naming what differs."""
    differ = [k for k in sorted(set(here) | set(there)) if here.get(k) != there.get(k)]
    if not differ:
        return

    def show(value) -> str:
        text = json.dumps(value)
        return text if len(text) <= 40 else text[:37] + "..."

    what = "; ".join(f"{k}: {show(here.get(k))} now, {show(there.get(k))} there" for k in differ)
    raise IlsimError(f"{work} holds an unfinished cohort run with other settings ({what}); run it again with the same "
                     f"settings to resume it, or choose another {arg('out')}, or remove {work} to start afresh")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _version() -> str:
    return __version__


class ProgressBar:
    """A Rich progress bar of patients (patients/s, time left), for ``run_cohort(progress=...)``.

    Patients finished by an earlier, interrupted run start the bar without counting towards the speed.
    """

    def __init__(self, console) -> None:
        class Speed(ProgressColumn):
            def render(self, task) -> Text:
                speed = task.finished_speed or task.speed
                return Text(f"{speed:,.0f} patients/s" if speed else "- patients/s", style="progress.data.speed")

        self._progress = Progress(TextColumn("patients"), BarColumn(), MofNCompleteColumn(), Speed(),
                                  TextColumn("left"), TimeRemainingColumn(), console=console, transient=False)
        self._task = None

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def __call__(self, done: int, total: int) -> None:
        if self._task is None:
            self._task = self._progress.add_task("cohort", total=total, completed=done)
        else:
            self._progress.update(self._task, completed=done)
