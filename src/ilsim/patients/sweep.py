"""Parameter sweeps: one or two parameters on a grid, every grid point a patient of the batch engine.

The grid is the product of the axes (the first axis varies slowest); each point is one row of
parameter values, integrated by the batch engine in chunks (so memory holds one chunk of
trajectories, whatever the grid's size), in this process or as tasks on a Dask cluster
(``patients.tasks``, as cohorts), and summarised by ``patients.metrics``: status, outcome
label, peak / nadir / final of every variable, derived values, first times of conditions. A point
whose integration fails keeps its row, with outcome ``failed`` and the engine's reason; it never
stops the sweep.

The pieces shared with sensitivity analysis (checking parameter names and ranges, checking a
metric name before any run, running many rows in chunks, here or on a cluster) live here too.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ilsim._version import __version__
from ilsim.engines.batch import BatchEngine
from ilsim.errors import IlsimError, did_you_mean
from ilsim.errors import argument as arg
from ilsim.io import models
from ilsim.io.results import atomic_folder, check_out, write_json
from ilsim.model.compile import CompiledModel
from ilsim.model.outcomes import UNDETERMINED
from ilsim.patients import tissue
from ilsim.patients.evaluate import output_times
from ilsim.patients.metrics import FAILED, parse_conditions, patient_metrics
from ilsim.patients.tasks import check_engine, chunk_task, cluster, run_chunks, summarise_chunk, where, worker_threads

MAX_POINTS = 1_000_000  # a larger grid needs force=True
MAX_AXES = 2
CHUNK_BYTES = 256 * 2**20  # trajectories held in memory at once (patients x times x species, float64)
CHUNKS_PER_THREAD = 4  # on a cluster: enough chunks that every worker thread stays busy to the end
OK = "ok"  # counted as the outcome of a point of a model without outcome labels
_RANGE = re.compile(r"^\s*([^=\s]+)\s*=\s*(.+)$")
_FIRST_TIME = re.compile(r"^first_time\[(.+)\]$")


# ------------------------------------------------------------------------------------ grids


@dataclass(frozen=True)
class Axis:
    """One swept parameter: its name and its values (increasing); ``log`` spacing is drawn on a log axis."""

    name: str
    values: np.ndarray
    log: bool = False
    spacing: str = "values"  # linear, log, or values (given explicitly)


def grid_values(low: float, high: float, n: int, *, log: bool = False, where: str = "--param") -> np.ndarray:
    """``n`` values from ``low`` to ``high`` inclusive, evenly spaced (or evenly in log10 with ``log``)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise IlsimError(f"{where}: the bounds must be finite numbers, got {low:g} and {high:g}")
    if low >= high:
        raise IlsimError(f"{where}: the low bound must be below the high bound, got {low:g} >= {high:g}")
    if n < 2:
        raise IlsimError(f"{where}: a grid needs at least 2 points, got {n}")
    if log:
        if low <= 0:
            raise IlsimError(f"{where}: log spacing needs positive bounds, got {low:g}:{high:g} (use linear spacing, "
                             "or a positive low bound)")
        return np.logspace(math.log10(low), math.log10(high), n)
    return np.linspace(low, high, n)


def parse_range(text: str, *, count: bool, option: str = "--param") -> tuple[str, float, float, int | None]:
    """``'kpg=0.1:2.0:40'`` -> ('kpg', 0.1, 2.0, 40) (with ``count``); ``'c=0.02:0.05'`` -> ('c', 0.02, 0.05, None)."""
    form = "NAME=LOW:HIGH:N, e.g. kpg=0.1:2.0:40" if count else "NAME=LOW:HIGH, e.g. c=0.02:0.05"
    m = _RANGE.match(str(text))
    if not m:
        raise IlsimError(f"{option} '{text}': expected {form}")
    name, parts = m.group(1), [p.strip() for p in m.group(2).split(":")]
    if len(parts) != (3 if count else 2):
        raise IlsimError(f"{option} '{text}': expected {form}")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise IlsimError(f"{option} '{text}': the bounds must be numbers, got '{parts[0]}' and '{parts[1]}'") from None
    n = None
    if count:
        try:
            n = int(parts[2])
        except ValueError:
            raise IlsimError(f"{option} '{text}': the number of points must be a whole number, got '{parts[2]}'") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise IlsimError(f"{option} '{text}': the bounds must be finite numbers")
    if low >= high:
        raise IlsimError(f"{option} '{text}': the low bound must be below the high bound, got {low:g} >= {high:g}")
    return name, low, high, n


def check_parameter(model: CompiledModel, name: str, option: str = "--param") -> None:
    """A name the model's parameters include (with a did-you-mean hint when not)."""
    if name not in model.parameters:
        hint = did_you_mean(name, model.parameters)
        raise IlsimError(f"{option} '{name}': model '{model.name}' has no parameter '{name}'{hint}")


def make_axes(model: CompiledModel, grid: Mapping[str, object], log: Sequence[str] = (), force: bool = False) -> list[Axis]:
    """The axes of a sweep from ``{name: values | "LOW:HIGH:N" | (low, high, n)}``, checked against the model
    (a grid of more than ``MAX_POINTS`` points is refused before any value is made, unless ``force``)."""
    if not grid:
        raise IlsimError(f"{arg('grid')}: nothing to sweep; give one or two parameters, e.g. kpg from 0.1 to 2.0 in 40 points")
    if len(grid) > MAX_AXES:
        raise IlsimError(f"{arg('grid')}: a sweep varies one or two parameters, got {len(grid)} ({', '.join(grid)}); "
                         "use `ilsim sensitivity` for more")
    unknown_log = [n for n in log if n not in grid]
    if unknown_log:
        raise IlsimError(f"{arg('log')} '{unknown_log[0]}': not a swept parameter{did_you_mean(unknown_log[0], grid)}; "
                         f"swept: {', '.join(grid)}")
    specs = {}
    for name, spec in grid.items():
        check_parameter(model, name)
        if isinstance(spec, str):
            _, low, high, n = parse_range(f"{name}={spec}", count=True)
            spec = (low, high, n)
        elif isinstance(spec, tuple) and len(spec) == 3:
            try:
                spec = (float(spec[0]), float(spec[1]), int(spec[2]))
            except (TypeError, ValueError):
                raise IlsimError(f"{arg('grid')} {name}: expected (low, high, n) with numbers and a whole n, "
                                 f"got {spec!r}") from None
        specs[name] = spec
    counts = [s[2] if isinstance(s, tuple) and len(s) == 3 else np.size(s) for s in specs.values()]
    total = math.prod(counts)
    if total > MAX_POINTS and not force:
        raise IlsimError(f"{arg('grid')}: the grid has {total:,} points, more than {MAX_POINTS:,}; use fewer points or force it "
                         f"({arg('force')})")
    axes = []
    for name, spec in specs.items():
        where = f"{arg('grid')} {name}"
        is_log = name in log
        if isinstance(spec, tuple) and len(spec) == 3:
            axes.append(Axis(name, grid_values(*spec, log=is_log, where=where), is_log, "log" if is_log else "linear"))
            continue
        try:
            values = np.asarray(spec, dtype=float).ravel()
        except (TypeError, ValueError):
            raise IlsimError(f"{where}: values must be numbers, got {spec!r}") from None
        if not np.isfinite(values).all():
            raise IlsimError(f"{where}: values must be finite numbers")
        values = np.unique(values)
        if len(values) < 2:
            raise IlsimError(f"{where}: a grid needs at least 2 distinct values, got {len(values)}")
        if is_log and values[0] <= 0:
            raise IlsimError(f"{where}: a log axis needs positive values, got {values[0]:g}")
        axes.append(Axis(name, values, is_log, "values"))
    return axes


# ------------------------------------------------------------------------------------ metrics


def metric_columns(model: CompiledModel, conditions=()) -> list[str]:
    """The columns of the per-patient table (computed on zero patients: nothing is integrated)."""
    empty = patient_metrics(model, np.array([0.0, 1.0]), np.empty((0, 2, len(model.species))),
                            np.empty((0, len(model.parameters))), np.empty(0, dtype=np.int64), conditions=conditions)
    return list(empty.columns)


def describe_metrics(model: CompiledModel) -> str:
    """The metric names a user can ask for, in a few lines' worth of text."""
    names = [*model.species, *model.observables]
    parts = [f"NAME.peak, NAME.peak_time, NAME.nadir, NAME.nadir_time or NAME.final for NAME in {', '.join(names)}"]
    if model.derived:
        parts.append(f"derived: {', '.join(n for n, _ in model.derived)}")
    if model.spec.toxicity:
        parts.append("grade[TERM] for the terms of its toxicity: section")
    parts.append("first_time[CONDITION], e.g. first_time[" + (f"{model.species[0]} < 1" if model.species else "t > 1") + "]")
    return "; ".join(parts)


def check_metric(model: CompiledModel, name: str, option: str, conditions: list, *, allow_outcome: bool = False,
                 extra: Sequence[str] = ()) -> list:
    """Check that ``name`` is a numeric column (or ``outcome=LABEL`` with ``allow_outcome``; or one of ``extra``, the
    columns an engine adds); return the conditions with the one a ``first_time[COND]`` metric needs added."""
    name = str(name).strip()
    if allow_outcome and name.startswith("outcome="):
        label = name.partition("=")[2].strip()
        labels = [o.label for o in model.outcomes]
        if not labels:
            raise IlsimError(f"{option} '{name}': model '{model.name}' has no outcome labels; choose a metric: "
                             f"{describe_metrics(model)}")
        if label not in labels:
            raise IlsimError(f"{option} '{name}': model '{model.name}' has no outcome '{label}'{did_you_mean(label, labels)}; "
                             f"its outcomes: {', '.join(labels)}")
        return conditions
    m = _FIRST_TIME.match(name)
    if m and all(text != m.group(1) for text, _ in conditions):
        conditions = [*conditions, *parse_conditions(model, [m.group(1)], option)]
    columns = [c for c in metric_columns(model, conditions) if c not in ("status", "outcome")] + list(extra)
    if name not in columns:
        if name in ("status", "outcome"):
            hint = " (use outcome=LABEL for a 0/1 indicator)" if allow_outcome else " (the outcome map shows it already)"
            raise IlsimError(f"{option} '{name}': not a number{hint}; choose a metric: {describe_metrics(model)}")
        raise IlsimError(f"{option} '{name}': unknown metric{did_you_mean(name, columns)}; choose one of: "
                         f"{describe_metrics(model)}" + ("; or outcome=LABEL" if allow_outcome and model.outcomes else ""))
    return conditions


# ------------------------------------------------------------------------------------- runs


def base_parameters(model: CompiledModel, overrides: Mapping[str, float] | None, varied: Sequence[str]) -> np.ndarray:
    """The parameter vector every point starts from: the model's values with ``--set`` overrides."""
    clash = sorted(set(overrides or {}) & set(varied))
    if clash:
        raise IlsimError(f"{arg('parameters')} '{clash[0]}': the parameter is also varied by {arg('grid')}; give it once")
    return model.parameter_vector(dict(overrides or {}))


def chunk_rows(rows: int, points: int, species: int, threads: int = 1) -> int:
    """Rows per chunk: trajectories under ``CHUNK_BYTES``, and on a cluster (``threads`` > 1) about
    ``CHUNKS_PER_THREAD`` chunks per worker thread."""
    by_memory = max(1, CHUNK_BYTES // max(1, points * species * 8))
    spread = rows if threads <= 1 else math.ceil(rows / (CHUNKS_PER_THREAD * threads))
    return max(1, min(by_memory, spread))


@dataclass
class Rows:
    """The per-patient table of many rows (in row order), where they ran, and the time it took."""

    metrics: pd.DataFrame
    scheduler: str  # 'in-process' or 'Dask scheduler ADDRESS'
    wall_time_s: float


def run_rows(model: CompiledModel, P: np.ndarray, t_eval: np.ndarray, *, rtol: float, atol: float, conditions=(),
             client=None, scheduler: str | None = None, name: str = "sweep", engine=None) -> Rows:
    """Integrate every row of ``P`` in chunks (with ``engine``, else the batch engine), in this process or as
    tasks on a Dask cluster (``client``, or one connected to ``scheduler``); the table is the same wherever
    the chunks ran."""
    task = chunk_task(model, t_eval, [text for text, _ in conditions], rtol=rtol, atol=atol, engine=engine)
    with cluster(client, scheduler) as client:
        start = time.perf_counter()
        size = chunk_rows(len(P), len(t_eval), len(model.species), worker_threads(client))
        jobs = ((i, (task, P[first:first + size], first)) for i, first in enumerate(range(0, len(P), size)))
        frames = dict(run_chunks(client, summarise_chunk, jobs, name=name))
        metrics = pd.concat([frames[i] for i in sorted(frames)])
        return Rows(metrics, where(client), time.perf_counter() - start)


def model_record(model: CompiledModel) -> dict:
    """The model part of a sweep's or sensitivity analysis's provenance record."""
    return {"model": model.name, "title": model.spec.metadata.title or model.name,
            "model_hash": model.spec.content_hash(), "model_source": model.source}


def run_record(engine, rows: Rows, method_key: str = "method") -> dict:
    """How and where the rows ran: engine, method (under ``method_key``), tolerances, scheduler, wall time,
    ilsim version and date, for a sweep's or sensitivity analysis's provenance record."""
    settings = engine.settings()
    return {"engine": engine.name, method_key: settings.get("method"), "rtol": settings.get("rtol"),
            "atol": settings.get("atol"), "scheduler": rows.scheduler, "wall_time_s": round(rows.wall_time_s, 6),
            "ilsim_version": __version__, "created": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")}


def engine_for(model: CompiledModel, rtol: float | None, atol: float | None, engine=None):
    """The caller's engine (then no tolerances beside it), else the batch engine at the given or the model's tolerances."""
    if engine is not None:
        check_engine(engine, rtol, atol)
        return engine
    sim = model.spec.simulation
    return BatchEngine(rtol=sim.rtol if rtol is None else float(rtol), atol=sim.atol if atol is None else float(atol))


def outcome_order(model: CompiledModel, outcomes: Sequence[str]) -> list[str]:
    """Outcome labels in the model's order (or 'ok' when it has none), then 'undetermined' and 'failed' when they occur."""
    order = [o.label for o in model.outcomes] or [OK]
    for extra in (UNDETERMINED, FAILED):
        if extra in set(outcomes) and extra not in order:
            order.append(extra)
    return order


# ------------------------------------------------------------------------------------ sweep


@dataclass
class SweepResult:
    """A finished sweep: one row per grid point (parameter values, then every metric) and its record."""

    table: pd.DataFrame
    info: dict
    axes: list[Axis] = field(default_factory=list)


def sweep(
    model,
    grid: Mapping[str, object],
    out: str | Path | None = None,
    *,
    log: Sequence[str] = (),
    metric: str | None = None,
    time_to: Sequence[str] = (),
    parameters: Mapping[str, float] | None = None,
    t_end: float | None = None,
    points: int | None = None,
    rtol: float | None = None,
    engine=None,
    atol: float | None = None,
    force: bool = False,
    report: bool = True,
    client=None,
    scheduler: str | None = None,
    overwrite: bool = False,
) -> SweepResult:
    """Run a model at every point of a grid over one or two parameters (batch engine).

    ``grid`` maps each parameter to its values (an array), a range ``"LOW:HIGH:N"`` or ``(low, high, n)``;
    names in ``log`` get log spacing (ranges) and a log axis. ``metric`` is the column drawn in the
    figure (default: the first species' final value); ``time_to`` adds ``first_time[COND]`` columns.
    With ``out``, writes sweep.parquet, sweep.csv, sweep.json, outcome_map.png and report.html
    atomically. A grid of more than ``MAX_POINTS`` points needs ``force``. The points run in this
    process, or in chunks on a Dask cluster given as ``client`` (a ``dask.distributed.Client``) or
    ``scheduler`` (``"tcp://HOST:PORT"``), with the same results.
    """
    if out is not None:
        check_out(out, overwrite)
    compiled = models.compile(model)
    axes = make_axes(compiled, grid, log, force)
    total = math.prod(len(a.values) for a in axes)
    replicates = tissue.is_tissue(engine)
    if replicates:  # every point a tissue replicate: what it varies must reach the tissue section
        tissue.check(compiled, [(arg("grid"), a.name) for a in axes] + [(arg("parameters"), n) for n in parameters or {}])
        compiled = tissue.located(compiled)
        t_end, points = tissue.output_times(compiled, t_end, points)
    conditions = parse_conditions(compiled, list(time_to))
    if metric is None:
        metric = tissue.default_metric(compiled) if replicates else f"{compiled.species[0]}.final"
    conditions = check_metric(compiled, metric, arg("metric"), conditions, extra=tissue.summary_columns(engine, compiled))
    t_eval = output_times(compiled, t_end, points)
    engine = engine_for(compiled, rtol, atol, engine)
    p = base_parameters(compiled, parameters, [a.name for a in axes])

    mesh = np.meshgrid(*(a.values for a in axes), indexing="ij")  # first axis varies slowest
    P = np.tile(p, (total, 1))
    for a, values in zip(axes, mesh):
        P[:, compiled.parameters.index(a.name)] = values.ravel()
    rows = run_rows(compiled, P, t_eval, rtol=engine.settings()["rtol"], atol=engine.settings()["atol"],
                    engine=engine, conditions=conditions, client=client,
                    scheduler=scheduler, name="sweep")
    metrics = rows.metrics

    table = pd.DataFrame({a.name: values.ravel() for a, values in zip(axes, mesh)},
                         index=pd.RangeIndex(total, name="point"))
    table = pd.concat([table, metrics.set_axis(table.index)], axis=1)
    failed = table["outcome"] == FAILED
    counts = table["outcome"].replace("", OK).value_counts()  # a model without outcome labels: ok or failed
    info = {
        **model_record(compiled),
        "grid": {a.name: {"values": a.values.tolist(), "low": float(a.values[0]), "high": float(a.values[-1]),
                          "n": len(a.values), "spacing": a.spacing,
                          "units": parameter_units(compiled, a.name)} for a in axes},
        "points": total,
        "shape": [len(a.values) for a in axes],
        "parameters": {k: float(v) for k, v in (parameters or {}).items()},
        "metric": metric,
        "time_to": [text for text, _ in conditions],
        "t_end": float(t_eval[-1]),
        "output_points": len(t_eval),
        **({"seed": tissue.run_seed(compiled, engine, None)} if replicates else {}),  # each point's own: the seed column
        "time_units": compiled.spec.metadata.time_units,
        **run_record(engine, rows),
        "outcomes": {label: int(counts.get(label, 0)) for label in outcome_order(compiled, table["outcome"])},
        "failed": [{"point": int(i), "values": {a.name: float(table.at[i, a.name]) for a in axes},
                    "reason": str(table.at[i, "status"])} for i in table.index[failed]],
    }
    result = SweepResult(table, info, axes)
    if out is not None:
        write_sweep(result, out, report=report, overwrite=overwrite)
    return result


def parameter_units(model: CompiledModel, name: str) -> str:
    return next((p.units for p in model.spec.parameters if p.name == name), "")


def write_sweep(result: SweepResult, out: str | Path, *, report: bool = True, overwrite: bool = False) -> None:
    """sweep.parquet, sweep.csv, sweep.json (and outcome_map.png, report.html), written atomically."""
    from ilsim.report.sweep import plot_sweep, sweep_report  # lazy: heavy (matplotlib)

    with atomic_folder(out, overwrite) as tmp:
        result.table.to_parquet(tmp / "sweep.parquet")
        result.table.to_csv(tmp / "sweep.csv")
        write_json(result.info, tmp / "sweep.json")
        if report:
            figure = plot_sweep(result, tmp / "outcome_map.png")
            sweep_report(result, figure, tmp / "report.html")
