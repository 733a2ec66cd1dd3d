"""The public functions: load a model, compile it, simulate it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import xarray as xr

from ilsim.engines.base import STATUS, Engine
from ilsim.engines.ode import MAX_EVENTS, METHODS, OdeEngine, Trajectory
from ilsim.errors import IlsimError, SimulationError, argument, did_you_mean
from ilsim.io.models import compile, load  # noqa: F401 - public here as before; patients and therapy use them too
from ilsim.io.results import atomic_folder, check_out, summarise, to_dataset, write_json, write_run
from ilsim.limits import MAX_RHS_EVALUATIONS, output_problem, run_settings_problem
from ilsim.model.compile import CompiledModel
from ilsim.model.spec import ModelSpec
from ilsim.report import html


def simulate(
    model: str | Path | ModelSpec | CompiledModel,
    t_end: float | None = None,
    *,
    points: int | None = None,
    t_eval=None,
    method: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    parameters: dict[str, float] | None = None,
    faults: dict[str, float] | None = None,
    doses: list[dict] | None = None,
    allow_high_dose: bool = False,
    engine: Engine | None = None,
    max_rhs_evaluations: int = MAX_RHS_EVALUATIONS,
    max_wall_s: float | None = None,
) -> xr.Dataset:
    """Integrate a model and return an xarray Dataset with units and provenance.

    ``t_end``, ``points``, ``method`` and tolerances default to the model's ``simulation``
    section; ``parameters`` overrides values by name; ``t_eval`` gives explicit output times
    (starting at 0). ``faults`` maps fault modes the model declares (``stop-not-received``,
    ``stop-ignored``, ``false-alarm``) to severities in [0, 1]. ``engine`` runs it on any engine
    (``OdeEngine``, the default, built from ``method``, the tolerances and the budget; ``BatchEngine``; ...),
    which then carries the method and tolerances itself; a stochastic engine (``SsaEngine``) gives its whole
    ensemble, over a ``trajectory`` dimension (see ``ilsim.ensemble``). The default engine stops with a SimulationError
    after ``max_rhs_evaluations`` right-hand-side evaluations or ``max_wall_s`` seconds (docs/limits.md).
    """
    compiled = compile(model, doses=doses, allow_high_dose=allow_high_dose)
    defaults = compiled.spec.simulation
    if engine is not None:
        given = [name for name, value in (("method", method), ("rtol", rtol), ("atol", atol)) if value is not None]
        if given:
            raise IlsimError(f"give {', '.join(given)} to the engine, not beside it (the engine holds its settings)")
        if not isinstance(engine, Engine):
            raise IlsimError(f"engine must be an ilsim engine (OdeEngine, BatchEngine, ...), got {type(engine).__name__}")
    else:
        method = method or defaults.method
        if method not in METHODS:
            raise IlsimError(f"{argument('method')}: unknown method '{method}'{did_you_mean(method, METHODS)}; "
                             f"choose one of {', '.join(METHODS)}")
        rtol = defaults.rtol if rtol is None else float(rtol)
        atol = defaults.atol if atol is None else float(atol)
        problem = run_settings_problem(rtol, atol)
        if problem:
            raise IlsimError(problem)
        engine = OdeEngine(method, rtol, atol, max_rhs_evaluations, max_wall_s)
    t_eval = output_times(compiled, t_end, points, t_eval)
    p = parameter_row(compiled, parameters, faults)
    start = time.perf_counter()
    if engine.supports.get("stochastic"):  # an ensemble (SsaEngine): every trajectory, over a trajectory dimension
        ds = engine.simulate(compiled, t_eval, p[None, :])
        ds.attrs.update(title=compiled.spec.metadata.title or compiled.name, model_hash=compiled.spec.content_hash(),
                        time_units=compiled.spec.metadata.time_units, wall_time_s=round(time.perf_counter() - start, 6),
                        parameters=json.dumps(dict(zip(compiled.parameters, map(float, p)))))
        return ds
    traj = _trajectory(engine, compiled, t_eval, p)
    wall = time.perf_counter() - start
    settings = engine.settings()
    info = {"engine": engine.name, "method": settings.get("method", ""), "rtol": settings.get("rtol"),
            "atol": settings.get("atol"), "wall_time_s": round(wall, 6),
            "faults": json.dumps({mode: float(v) for mode, v in (faults or {}).items()})}
    return to_dataset(compiled, traj, info, p)


def output_times(compiled: CompiledModel, t_end: float | None = None, points: int | None = None, t_eval=None) -> np.ndarray:
    """The output times of a run: ``t_eval`` checked, or ``points`` times from 0 to ``t_end`` (the model's defaults)."""
    defaults = compiled.spec.simulation
    if t_eval is None:
        t_end = defaults.t_end if t_end is None else float(t_end)
        points = defaults.points if points is None else int(points)
        problem = run_settings_problem(t_end=t_end)
        if problem:
            raise IlsimError(problem)
        if points < 2:
            raise IlsimError(f"{argument('points')} must be at least 2, got {points}")
        problem = output_problem(points, len(compiled.species) + len(compiled.observables))
        if problem:
            raise IlsimError(problem)
        t_eval = np.linspace(0.0, t_end, points)
    else:
        t_eval = np.asarray(t_eval, dtype=float)
        problem = output_problem(t_eval.size, len(compiled.species) + len(compiled.observables))
        if problem:
            raise IlsimError(problem)
        if (t_eval.ndim != 1 or len(t_eval) < 2 or t_eval[0] != 0 or np.any(np.diff(t_eval) <= 0)
                or not np.isfinite(t_eval).all()):
            raise IlsimError("t_eval must be increasing output times starting at 0")
        problem = run_settings_problem(t_end=float(t_eval[-1]))
        if problem:
            raise IlsimError(problem.replace("t_end", "the last output time"))
    return t_eval


def parameter_row(compiled: CompiledModel, parameters: dict[str, float] | None = None,
                  faults: dict[str, float] | None = None) -> np.ndarray:
    """The model's parameter values with ``parameters`` (by name) and the ``faults``' values in place."""
    fault_values = compiled.fault_overrides(faults)
    clash = sorted(set(fault_values) & set(parameters or {}))
    if clash:
        raise IlsimError(f"parameter(s) {', '.join(clash)} set both by a fault ({argument('faults')}) and by "
                         f"{argument('parameters')}; give one")
    return compiled.parameter_vector({**(parameters or {}), **fault_values})


def _trajectory(engine: Engine, model: CompiledModel, t_eval: np.ndarray, p: np.ndarray) -> Trajectory:
    """One run of any engine as a Trajectory (states, parameters over time, the firing log); a failure raises
    SimulationError with the engine's reason."""
    if isinstance(engine, OdeEngine):
        return engine.run(model, t_eval, p)
    result = engine.solve(model, t_eval, p[None, :], record_parameters=True, log_events=MAX_EVENTS)
    if result.status[0] != 0:
        why = (result.messages[0] if result.messages else "") or STATUS.get(int(result.status[0]), "failed")
        raise SimulationError(f"{engine.name} engine: {why}")
    log = [(t, model.events[k].name) for t, k in (result.event_log or [[]])[0]]
    return Trajectory(t_eval, result.Y[0], np.asarray(result.P_t[0]), log, fired=[k for _, k in result.event_log[0]])


def run(model, out: str | Path, *, report: bool = True, overwrite: bool = False, **options) -> tuple[xr.Dataset, dict]:
    """Simulate and write a complete result folder (atomically): results.nc, results.csv,
    summary.json, model.yaml (the model with every setting of this run: it repeats it), figures/ and report.html.
    An earlier result folder in ``out`` that holds files ilsim did not write is refused, or with ``overwrite``
    replaced with those files kept. ``options`` go to ``simulate``."""
    from ilsim.report.figures import plot_run  # lazy: heavy (matplotlib)

    check_out(out, overwrite)  # before a long run, not after it
    compiled = compile(model, doses=options.pop("doses", None), allow_high_dose=options.pop("allow_high_dose", False))
    ds = simulate(compiled, **options)

    def figures_and_report(folder: Path, summary: dict) -> None:
        if not report:
            return
        (folder / "figures").mkdir()
        figures = [plot_run(ds, folder / "figures" / "overview.png", model=compiled)]
        html.write_report(compiled, summary, figures, folder / "report.html")

    summary = write_run(ds, compiled, out, figures_and_report, overwrite)
    return ds, summary


def compare(model, variants: dict[str, dict[str, float]], out: str | Path | None = None, *, overwrite: bool = False,
            **options) -> dict:
    """Run the model once per variant (a label -> fault severities) and compare them.

    Returns {variable: {label: {"final", "peak", "peak_time"}}}; with ``out``, also writes
    compare.png (every variant overlaid, one panel per group), compare.csv and compare.json (``overwrite`` as in ``run``).
    """
    from ilsim.report.figures import plot_compare  # lazy: heavy (matplotlib)

    if out is not None:
        check_out(out, overwrite)
    compiled = compile(model)
    runs = {label: simulate(compiled, faults=faults or None, **options) for label, faults in variants.items()}
    summaries = {label: summarise(ds) for label, ds in runs.items()}
    table = {
        name: {label: {k: s["variables"][name][k] for k in ("final", "peak", "peak_time")} for label, s in summaries.items()}
        for name in next(iter(summaries.values()))["variables"]
    }
    if out is not None:
        with atomic_folder(out, overwrite) as tmp:
            plot_compare(runs, tmp / "compare.png", model=compiled)
            rows = ["variable,variant,final,peak,peak_time"] + [
                f"{name},{label},{v['final']!r},{v['peak']!r},{v['peak_time']!r}"
                for name, by_label in table.items() for label, v in by_label.items()
            ]
            (tmp / "compare.csv").write_text("\n".join(rows) + "\n")
            write_json({"variants": variants, "outcomes": {label: s["outcome"] for label, s in summaries.items()},
                        "table": table}, tmp / "compare.json")
            write_json({label: s for label, s in summaries.items()}, tmp / "summary.json")
    return table


def cohort(model, *, patients: int, out: str | Path | None = None, **options):
    """Run a cohort of virtual patients; return its summary table (a pandas DataFrame, one row per patient).

    Patients are drawn from the model's ``population:`` section, with each ``vary`` text
    (``"c=uniform(0.02, 0.05)"``, or a list of them) replacing or adding one distribution; the seed
    is recorded even when drawn. ``time_to`` conditions (``"T < 1"``) give each patient the first
    time they hold. Chunks run in-process, or on a Dask cluster given as ``client`` (a
    ``dask.distributed.Client``) or ``scheduler`` (``"tcp://HOST:PORT"``), with the same results.
    ``engine`` (``BatchEngine``, ``OdeEngine``, ...; engines/base.py) runs the patients instead of the default
    batch engine. Other ``options``: ``seed``, ``population``, ``save_trajectories``, ``chunk_size``, ``backend``,
    ``t_end``, ``points``, ``rtol``, ``atol``, ``force``, ``report``. With ``out`` the result folder
    (summary.parquet, cohort.json, model.yaml, figures/, report.html and, with
    ``save_trajectories``, trajectories.zarr) is written atomically, and an interrupted run
    resumes from ``OUT.partial/``. See docs/cohort.md.
    """
    from ilsim.patients.run import run_cohort  # lazy: heavy (pandas, pyarrow, dask)

    return run_cohort(compile(model), patients=patients, out=out, **options).summary


def sweep(model, grid: dict, out: str | Path | None = None, **options):
    """Run a model at every point of a grid over one or two parameters (batch engine); return a ``SweepResult``
    (``.table``: one row per point with its parameter values and every metric; ``.info``: grid, counts per
    outcome, failed points, provenance).

    ``grid`` maps each parameter to its values, ``"LOW:HIGH:N"`` or ``(low, high, n)``; ``options``:
    ``log`` (names with log spacing), ``metric``, ``time_to``, ``parameters``, ``t_end``, ``points``,
    ``rtol``, ``atol`` (or ``engine``: any engine object instead of the batch engine), ``force``, ``report``,
    and ``client`` (a ``dask.distributed.Client``) or ``scheduler`` (``"tcp://HOST:PORT"``) to run the points on
    a Dask cluster, with the same results.
    With ``out``, writes sweep.parquet, sweep.csv, sweep.json, outcome_map.png and report.html
    atomically. See docs/sweep.md.
    """
    from ilsim.patients.sweep import sweep as run_sweep  # lazy: heavy (pandas, dask)

    return run_sweep(model, grid, out, **options)


def sensitivity(model, ranges: dict, output: str, out: str | Path | None = None, **options):
    """Sobol' indices or Morris measures (SALib) of one output over uniform parameter ranges; return a
    ``SensitivityResult`` (``.indices``, ``.samples``, ``.info`` with the seed).

    ``ranges`` maps parameters to ``(low, high)``; ``output`` is a per-patient metric (``T.final``,
    ``first_time[T < 1000]``) or ``outcome=LABEL``; ``options``: ``method`` ("sobol" or "morris"),
    ``samples``, ``seed``, ``drop_failed``, ``parameters``, ``t_end``, ``points``, ``rtol``, ``atol`` (or ``engine``),
    ``report``, and ``client`` (a ``dask.distributed.Client``) or ``scheduler`` (``"tcp://HOST:PORT"``)
    to run the samples on a Dask cluster, with the same results. With ``out``, writes indices.csv,
    indices.json, samples.parquet, indices.png and report.html atomically. See docs/sensitivity.md.
    """
    from ilsim.patients.sensitivity import sensitivity as run_sensitivity  # lazy: heavy (pandas, dask, SALib)

    return run_sensitivity(model, ranges, output, out, **options)


def tissue(
    model: str | Path | ModelSpec | CompiledModel,
    out: str | Path | None = None,
    *,
    t_end: float | None = None,
    save_every: float | None = None,
    seed: int | None = None,
    report: bool = True,
    overwrite: bool = False,
    progress=None,
    faults: dict[str, float] | None = None,
    backend: str = "cpu",
):
    """Run a model's ``tissue:`` section (docs/tissue.md): fields on a voxel grid and individual cells.

    ``t_end`` and ``save_every`` are minutes (defaults from the section), ``seed`` defaults to the section's. Without
    ``out`` the run (``TissueRun``: snapshots, counts, field statistics) is returned; with ``out`` the result folder is
    written atomically too (agents.parquet, fields.nc, timeseries.csv, summary.json, model.yaml, figures, the
    animation, report.html) and ``(run, summary)`` returned. A run with ``out`` checkpoints beside the folder after
    every saved time; the same call after an interruption (even ``kill -9``) continues from there and gives the same
    numbers, bit for bit. ``progress`` is called with (minutes simulated, cells) after every step. ``faults`` maps
    fault modes the model declares to severities (0..1), setting their parameters: the tissue numbers bound to them
    (``tissue.parameters``) and the well-mixed part's (``tissue.systemic``). The summary carries the model's outcome
    label, judged on the run's time series (cells per type, mean field levels, the well-mixed species). ``backend``:
    cpu, or gpu (the fields' and the cells' loops on a CUDA device; refused before anything is written where
    there is none).
    """
    from ilsim.engines.tissue.engine import run as run_tissue  # lazy: heavy (numba)
    from ilsim.engines.tissue.gpu import backend_parts
    from ilsim.engines.tissue.setup import build
    from ilsim.engines.tissue.systemic import link as tissue_link
    from ilsim.io import tissue as tissue_io
    from ilsim.report import tissue as tissue_report

    backend_parts(backend)  # an unknown backend, or the GPU without a device: refused first
    compiled = compile(model)
    source = str(model) if isinstance(model, (str, Path)) else None
    base = Path(source).parent if source and Path(source).is_file() else Path.cwd()
    values = compiled.fault_overrides(faults)
    setup = build(compiled.spec, source=source, base=base, values=values or None)
    link = tissue_link(compiled, setup, compiled.parameter_vector(values), source)
    section = setup.tissue
    settings = {"t_end": section.t_end if t_end is None else float(t_end), "dt": section.dt,
                "save_every": section.save_every if save_every is None else float(save_every),
                "seed": section.seed if seed is None else int(seed)}
    if faults:
        settings["faults"] = {mode: float(v) for mode, v in faults.items()}
    if backend != "cpu":  # a device's rounding may differ: its checkpoints are not a CPU run's (and the reverse)
        settings["backend"] = backend
    options = {"t_end": settings["t_end"], "save_every": settings["save_every"], "seed": settings["seed"],
               "on_step": progress, "link": link, "backend": backend}
    if out is None:
        return run_tissue(setup, **options)
    out = check_out(out, overwrite)
    checkpoint = tissue_io.checkpoint_path(out)
    fingerprint = tissue_io.fingerprint(compiled.spec, settings)
    resume = tissue_io.load_checkpoint(checkpoint, setup, fingerprint)
    resumed_at = resume.state.step * section.dt if resume is not None else None  # before the run advances that state
    started = time.perf_counter()
    result = run_tissue(setup, resume=resume, on_save=lambda r: tissue_io.save_checkpoint(checkpoint, r, fingerprint),
                        **options)
    wall = time.perf_counter() - started
    with atomic_folder(out, overwrite) as tmp:
        info = tissue_io.write_tissue(tmp, result, compiled.spec, {**settings, "resumed_at_min": resumed_at}, wall,
                                      compiled)
        if report:
            tissue_report.write_report(tmp, result, info, compiled.spec.metadata.title or compiled.spec.metadata.name,
                                        {s.name: s.units for s in compiled.spec.species if s.units}
                                        | {o.name: o.units for o in compiled.spec.observables if o.units}, compiled)
    checkpoint.unlink(missing_ok=True)
    return result, info
