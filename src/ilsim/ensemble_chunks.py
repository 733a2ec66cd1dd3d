"""Stochastic ensembles larger than memory: trajectories in chunks, each chunk a task (in this process or on a Dask
cluster), written into results.zarr as it arrives, with the statistics gathered from the chunks.

``run(model, out, engine=SsaEngine(trajectories=10**6, seed=7), dask="local", chunk_size=10_000)`` (the CLI's
``ilsim run MODEL --engine ssa --dask local|ADDRESS``) writes the result folder of ``ilsim.ensemble.run``, but never
holds the ensemble whole:

- chunk k runs trajectories lo..hi-1 on their own streams (``SsaEngine(first_trajectory=lo)``: trajectory i draws
  from child i of the seed's SeedSequence whichever chunk holds it), so the numbers are those of the run in memory at
  the same seed, at any chunk size and worker count;
- the tasks go through the cohorts' machinery (``ilsim.patients.tasks``: the model travels as its specification, a
  bounded number of tasks in flight); this process writes each finished chunk into its region of results.zarr (Zarr
  chunks of ``chunk_size`` trajectories), so workers need no shared file system;
- mean and sd are combined chunk by chunk (Chan, Golub & LeVeque's pairwise update of mean and sum of squares, exact
  up to rounding); extinction and first-passage counts add up; quantiles are exact: after the last chunk, the store is
  read back a block of output times at a time (every finished trajectory's values at those times, about
  ``QUANTILE_BLOCK_BYTES`` at once, at least one time point: 8 bytes x trajectories) and ``numpy.quantile`` taken
  over them, as the run in memory does; the median first-passage time holds the times of the trajectories that
  reached the condition (8 bytes each);
- a trajectory the engine flags keeps its status and reason, as in memory; a chunk whose task fails (a crash, a lost
  worker) is recorded too: its trajectories get status ``CHUNK_FAILED`` and the chunk's reason, NaN values, and the
  rest of the ensemble is kept. An IlsimError (the model cannot be made discrete, ...) stops the run: nothing written.
"""

from __future__ import annotations

import copy
import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr
from xarray.coding.variables import SerializationWarning

from ilsim import ensemble
from ilsim.api import compile, output_times, parameter_row
from ilsim.engines.ssa import SsaEngine
from ilsim.engines.ssa.engine import STATUS_TEXT, check_memory, whole
from ilsim.errors import IlsimError, argument
from ilsim.io.results import atomic_folder, check_out
from ilsim.patients.metrics import parse_conditions
from ilsim.patients.tasks import ChunkFailed, ChunkTask, chunk_task, compiled_model, connect, run_chunks, where

CHUNK_FAILED = 9  # status of the trajectories of a chunk whose task failed
CHUNK_SIZE = 1000  # trajectories per chunk (and per Zarr chunk) by default
QUANTILE_BLOCK_BYTES = 256 * 2**20  # values read back at once for the exact quantiles
STATUS_TEXT.setdefault(CHUNK_FAILED, "the chunk of trajectories holding it failed")


def run(model, out: str | Path, *, engine: SsaEngine, dask=None, chunk_size: int = CHUNK_SIZE,
        time_to: Sequence[str] = (), report: bool = True, overwrite: bool = False, t_end: float | None = None,
        points: int | None = None, parameters: dict[str, float] | None = None, faults: dict[str, float] | None = None,
        doses: list | None = None, allow_high_dose: bool = False) -> tuple[xr.Dataset, dict]:
    """The ensemble of ``engine`` (its ``trajectories`` and ``seed``) in chunks of ``chunk_size`` trajectories, run
    in this process (``dask=None``), on a local Dask cluster (``"local"``), a scheduler's (``"tcp://HOST:PORT"``)
    or a ``dask.distributed.Client``; a result folder as ``ilsim.ensemble.run`` writes, with results.zarr. Returns
    the ensemble read lazily from the folder's results.zarr, and the summary."""
    chunk_size = whole("chunk_size", chunk_size, 1)
    if not isinstance(engine, SsaEngine):
        raise IlsimError(f"{argument('engine')} must be a stochastic engine (SsaEngine) to run in chunks, "
                         f"got {type(engine).__name__}")
    out = check_out(out, overwrite)
    compiled = compile(model, doses=doses, allow_high_dose=allow_high_dose)
    if time_to:
        parse_conditions(compiled, list(time_to), source="--time-to")  # refuse a bad condition before the run
    t_eval, p = output_times(compiled, t_end, points), parameter_row(compiled, parameters, faults)
    n = engine.trajectories
    check_memory(min(chunk_size, n), len(t_eval), len(compiled.species) + len(compiled.observables)
                 + len(compiled.parameters))  # a chunk must fit (the window of chunks in flight is a few)
    chunks = [(lo, min(lo + chunk_size, n)) for lo in range(0, n, chunk_size)]
    start = time.perf_counter()
    # the attributes of the ensemble run in memory (ilsim.simulate's), then those of chunks
    attrs = {**{k: v for k, v in engine.settings().items() if v is not None and k != "method"},  # (the chunk's: used)
             "title": compiled.spec.metadata.title or compiled.name, "model_hash": compiled.spec.content_hash(),
             "time_units": compiled.spec.metadata.time_units,
             "parameters": json.dumps(dict(zip(compiled.parameters, map(float, p)))), "chunk_size": chunk_size}
    with atomic_folder(out, overwrite) as tmp, _client(dask) as client:
        task = chunk_task(compiled, t_eval, tuple(time_to), rtol=None, atol=None, engine=engine)
        attrs["scheduler"] = where(client)
        store = Store(tmp / "results.zarr", n, chunk_size, list(time_to), attrs)
        jobs = ((k, (task, p, lo, hi)) for k, (lo, hi) in enumerate(chunks))
        for k, ds in run_chunks(client, simulate_chunk, jobs, name="ensemble", keep_going=True):
            lo, hi = chunks[k]
            if isinstance(ds, ChunkFailed):
                store.failed(lo, hi, f"chunk {k} (trajectories {lo}..{hi - 1}) failed: {ds.reason}")
            else:
                store.add(ds)
        attrs = store.close(wall_time_s=round(time.perf_counter() - start, 6))
        stats = store.statistics(attrs)
        summary = ensemble.summary_of(compiled, engine, attrs, float(t_eval[-1]), stats, store.flagged,
                                      store.failed_count, "results.zarr", store.extinction(), store.passage(t_eval))
        summary.update(chunk_size=chunk_size, chunks=len(chunks), chunks_failed=store.chunks_failed,
                       scheduler=where(client))
        ensemble.write_rest(tmp, compiled, stats, summary, report)
    return xr.open_zarr(out / "results.zarr"), summary


def simulate_chunk(task: ChunkTask, p: np.ndarray, lo: int, hi: int) -> xr.Dataset:
    """Trajectories lo..hi-1 of the task's ensemble (run where the task runs), with their first-passage times."""
    model = compiled_model(task)
    engine = copy.copy(task.engine)
    engine.trajectories, engine.first_trajectory = hi - lo, lo
    ds = engine.simulate(model, task.t_eval, p[None, :]).assign_coords(trajectory=np.arange(lo, hi))
    ds.attrs["time_units"] = model.spec.metadata.time_units
    if task.conditions:
        _, times = ensemble.first_passage(model, ds, task.conditions)
        full = np.full((hi - lo, len(task.conditions)), np.nan)
        full[ds["status"].values == 0] = times
        ds = ensemble.with_first_times(ds, full, list(task.conditions))
    return ds


class Store:
    """results.zarr filled chunk by chunk, and the running sums the statistics need."""

    def __init__(self, path: Path, n: int, chunk_size: int, conditions: list[str], attrs: dict):
        self.path, self.n, self.chunk_size, self.conditions = path, n, chunk_size, conditions
        self.attrs = dict(attrs)  # over a chunk's own (its method), under the run's: the store's attributes
        self.template: xr.Dataset | None = None  # the first chunk that arrived: names, dims, attrs
        self.pending_failures: list[tuple[int, int, str]] = []
        self.flagged: list[tuple[int, int, str]] = []  # (trajectory, status, message), the first MAX_LISTED
        self.failed_count = self.chunks_failed = 0
        self.moments: dict[str, list[np.ndarray]] = {}  # name -> [count, mean, sum of squared deviations] per time
        self.extinct: dict[str, int] = {}
        self.reached: list[list[tuple[int, np.ndarray]]] = [[] for _ in conditions]  # (chunk's first trajectory, times)
        self.finished = 0

    def add(self, ds: xr.Dataset) -> None:
        if self.template is None:
            self._create(ds)
        lo = int(ds["trajectory"].values[0])
        region = ds.drop_vars([v for v in ds.variables if "trajectory" not in ds[v].dims])
        region.to_zarr(self.path, region={"trajectory": slice(lo, lo + ds.sizes["trajectory"])}, zarr_format=2,
                         consolidated=False)
        status = ds["status"].values
        ok = status == 0
        self.finished += int(ok.sum())
        for i in np.flatnonzero(~ok):
            self._flag(lo + int(i), int(status[i]), str(ds["status_text"].values[i]))
        for name in ensemble.series(ds):
            v = ds[name].values[ok]
            self._combine(name, v)
            if ds[name].attrs.get("role") == "species":
                self.extinct[name] = self.extinct.get(name, 0) + int(np.sum(v[:, -1] == 0))
        for c in range(len(self.conditions)):
            times = ds["first_time"].values[ok, c]
            self.reached[c].append((lo, times[np.isfinite(times)]))

    def failed(self, lo: int, hi: int, reason: str) -> None:
        """A chunk whose task failed: written as NaN with its reason once a chunk has given the store its shape."""
        self.chunks_failed += 1
        for i in range(lo, hi):
            self._flag(i, CHUNK_FAILED, reason)
        self.pending_failures.append((lo, hi, reason))

    def close(self, **attrs) -> dict:
        """Write the failed chunks and ``attrs``, consolidate the metadata; the store's attributes."""
        if self.template is None:
            reason = self.pending_failures[0][2] if self.pending_failures else "no chunk ran"
            raise IlsimError(f"every chunk of the ensemble failed; the first: {reason}")
        for lo, hi, reason in self.pending_failures:
            blank = self.template.isel(trajectory=slice(0, 0)).reindex(trajectory=np.arange(lo, hi))
            blank["status"] = ("trajectory", np.full(hi - lo, CHUNK_FAILED, dtype=self.template["status"].dtype))
            blank["status_text"] = ("trajectory", np.array([reason] * (hi - lo), dtype=object))
            for name in ("events_fired",):
                if name in blank:
                    blank[name] = blank[name].fillna(0).astype(self.template[name].dtype)
            blank = blank.drop_vars([v for v in blank.variables if "trajectory" not in blank[v].dims])
            blank.to_zarr(self.path, region={"trajectory": slice(lo, hi)}, zarr_format=2, consolidated=False)
        import zarr  # lazy: heavy

        self.attrs.update(attrs)
        zarr.open_group(str(self.path), mode="a").attrs.update(self.attrs)
        zarr.consolidate_metadata(str(self.path))
        return self.attrs

    def _create(self, ds: xr.Dataset) -> None:
        """The store's arrays at their full size (metadata and the coordinates only: regions are written later)."""
        import dask.array as da  # lazy: heavy

        self.template = ds.isel(trajectory=slice(0, 0))
        self.attrs = {**ds.attrs, **self.attrs}
        full = {}
        for name, v in ds.data_vars.items():
            if "trajectory" in v.dims:
                shape = tuple(self.n if d == "trajectory" else ds.sizes[d] for d in v.dims)
                chunks = tuple(self.chunk_size if d == "trajectory" else ds.sizes[d] for d in v.dims)
                # text (status_text) filled with "": xarray reads what a lazy array of objects holds from its values
                data = da.full(shape, "", chunks=chunks, dtype=object) if v.dtype.kind == "O" else \
                    da.empty(shape, chunks=chunks, dtype=v.dtype)
                full[name] = xr.Variable(v.dims, data, v.attrs)
            else:
                full[name] = v
        coords = {k: c for k, c in ds.coords.items() if k != "trajectory"}
        template = xr.Dataset(full, coords={**coords, "trajectory": np.arange(self.n)}, attrs=self.attrs)
        encoding = {name: {"chunks": tuple(min(self.chunk_size, self.n) if d == "trajectory" else template.sizes[d]
                                           for d in v.dims)}
                    for name, v in template.data_vars.items() if "trajectory" in v.dims and v.dtype.kind in "fiub"}
        with warnings.catch_warnings():  # xarray looks at the "" of status_text (8 bytes a trajectory) for its type
            warnings.simplefilter("ignore", SerializationWarning)
            template.to_zarr(self.path, mode="w", compute=False, zarr_format=2, consolidated=False, encoding=encoding)

    def _flag(self, i: int, code: int, text: str) -> None:
        self.failed_count += 1
        if len(self.flagged) < ensemble.MAX_LISTED:
            self.flagged.append((i, code, text))

    def _combine(self, name: str, v: np.ndarray) -> None:
        """Chan, Golub & LeVeque (1979): the count, mean and sum of squared deviations of two parts combined."""
        nb = v.shape[0]
        if nb == 0:
            return
        mb = v.mean(axis=0)
        m2b = ((v - mb) ** 2).sum(axis=0)
        if name not in self.moments:
            self.moments[name] = [nb, mb, m2b]
            return
        na, ma, m2a = self.moments[name]
        total = na + nb
        delta = mb - ma
        self.moments[name] = [total, ma + delta * (nb / total), m2a + m2b + delta**2 * (na * nb / total)]

    def statistics(self, attrs: dict, quantiles: Sequence[float] = ensemble.QUANTILES) -> xr.Dataset:
        """As ``ensemble.statistics``: mean and sd from the running sums, quantiles exactly from the store."""
        labels = ensemble.statistic_labels(quantiles)
        stored = xr.open_zarr(self.path, consolidated=True)
        ok = np.flatnonzero(stored["status"].values == 0)
        nt = stored.sizes["time"]
        block = max(1, QUANTILE_BLOCK_BYTES // (8 * max(len(ok), 1)))
        out = {}
        for name in ensemble.series(stored):
            rows = np.full((len(labels), nt), np.nan)
            if name in self.moments:
                count, mean, m2 = self.moments[name]
                rows[0] = mean
                rows[1] = np.sqrt(m2 / (count - 1)) if count > 1 else np.nan
                for t0 in range(0, nt, block):
                    values = stored[name][:, t0:t0 + block].values[ok]
                    rows[2:, t0:t0 + block] = np.quantile(values, quantiles, axis=0)
            out[name] = xr.Variable(("statistic", "time"), rows, stored[name].attrs)
        return xr.Dataset(out, coords={"statistic": labels, "time": stored["time"]},
                          attrs={**attrs, "trajectories_used": self.finished})

    def extinction(self) -> dict:
        return {name: ensemble.extinct_line(k, self.finished) for name, k in self.extinct.items()}

    def passage(self, t_eval: np.ndarray) -> dict:
        # in trajectory order, whatever order the chunks arrived in: the mean time is then the in-memory run's to the bit
        return {text: ensemble.passage_summary(np.concatenate([t for _, t in sorted(self.reached[c], key=lambda r: r[0])])
                                               if self.reached[c] else np.array([]),
                                               self.finished, t_eval)
                for c, text in enumerate(self.conditions)}


def _client(dask):
    """A context giving the Dask client to run on: None (this process), a LocalCluster's (``"local"``: one worker in
    this process, one thread: each chunk already runs its trajectories on every core), or a scheduler's."""
    from contextlib import closing, contextmanager, nullcontext

    if dask is None or not isinstance(dask, str):
        return nullcontext(dask)
    if dask != "local":
        try:
            return closing(connect(dask))
        except IlsimError as exc:
            why = str(exc).split(": ", 1)[-1].split(";")[0]
            raise IlsimError(f"{argument('dask')} {dask}: {why}; start one (`dask scheduler`, then `dask worker "
                             "ADDRESS`) or give --dask local") from None

    @contextmanager
    def local():
        from dask.distributed import Client, LocalCluster  # lazy: heavy (dask)

        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as lc, \
                Client(lc, set_as_default=False) as client:
            yield client

    return local()


__all__ = ["CHUNK_FAILED", "CHUNK_SIZE", "run", "simulate_chunk"]
