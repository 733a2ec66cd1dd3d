"""Results as an xarray Dataset with units and provenance, and the files a run writes."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xarray as xr

from ilsim._version import __version__
from ilsim.engines.ode import Trajectory
from ilsim.errors import IlsimError, argument
from ilsim.io.atomic import recover, swap_folder
from ilsim.model.compile import CompiledModel
from ilsim.model.load import dump_spec
from ilsim.model.outcomes import label_outcomes, rules
from ilsim.model.sections.dosing import BOOKKEEPING

MARKER = ".ilsim-result"  # written last into every result folder: only such a folder may be replaced


def to_dataset(model: CompiledModel, traj: Trajectory, run_info: dict, p: np.ndarray | None = None) -> xr.Dataset:
    """A labelled Dataset: one variable over ``time`` per species, observable and switched parameter, then the
    run's records over their own dimensions (events fired over ``firing``, the dose log over ``dose``, CTCAE
    grades over ``toxicity_term``, starting parameter values over ``parameter``); ``units`` and ``long_name`` on
    every variable, provenance in attributes of plain types.

    ``p`` is the parameter vector the run started from (overrides included); the model hash is that of the model
    with these values and the run's settings, so the saved model.yaml reproduces the run.
    """
    spec = model.spec
    units = spec.metadata.time_units
    data_vars = {}
    for i, s in enumerate(spec.species):
        data_vars[s.name] = xr.Variable(
            "time", traj.y[:, i],
            {"units": s.units, "long_name": long_name(s.name, s.description), "kind": s.kind, "role": "species",
             "group": s.group or s.kind, "description": s.description},
        )
    obs = model.observe(traj.t, traj.y, traj.p.T)
    by_name = {o.name: o for o in spec.observables}
    for j, name in enumerate(model.observables):
        o = by_name[name]
        data_vars[name] = xr.Variable(
            "time", obs[:, j],
            {"units": o.units, "long_name": long_name(name, o.description), "role": "observable",
             "group": o.group or "readouts", "description": o.description},
        )
    changed = [j for j in range(len(model.parameters))
               if np.ptp(traj.p[:, j]) > 0 and spec.parameters[j].source != BOOKKEEPING]
    for j in changed:  # parameters that events switched are part of the trajectory
        par = spec.parameters[j]
        data_vars[par.name] = xr.Variable(
            "time", traj.p[:, j], {"units": par.units, "long_name": long_name(par.name, par.description),
                                   "role": "parameter", "group": "parameters", "description": par.description},
        )
    p_start = model.p0 if p is None else np.asarray(p, dtype=float)
    data_vars |= _records(model, traj, p_start)
    run_spec = as_run(model, p_start, run_settings(traj.t, run_info))
    outcome = classify(model, traj.t, traj.y, traj.p)
    attrs = {
        "title": spec.metadata.title or spec.metadata.name,
        "model_name": spec.metadata.name,
        "model_hash": run_spec.content_hash(),
        "model_source": model.source or "",
        "time_units": units,
        "outcome": outcome,
        "ilsim_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **{k: v for k, v in run_info.items() if v is not None},  # netCDF attributes cannot be None
        # JSON texts kept for one release for readers of earlier files; the variables above hold the same data
        "parameters": json.dumps(dict(zip(model.parameters, map(float, p_start)))),
        "outcome_rule": rules(model).get(outcome, ""),
        "derived": json.dumps(model.derived_values(p_start)),
        "toxicity": json.dumps([e.model_dump(mode="json", exclude_none=True) for e in spec.toxicity]),
        "events_fired": json.dumps([[t, name] for t, name in traj.event_log]),
    }
    time = xr.Variable("time", traj.t, {"units": units, "long_name": "time"})
    ds = xr.Dataset(data_vars, coords={"time": time}, attrs=attrs)
    # the summary entries of the domain layers (the dose log, CTCAE grades): computed by them, stored here as data
    sections = {key: report(ds) for key, report in model.reporters}
    ds.attrs["summary_sections"] = json.dumps(sections, default=_json_default)
    return ds.assign(_dose_variables(sections.get("dose_log") or [], units) |
                     _toxicity_variables(sections.get("toxicity") or {}, units))


def long_name(name: str, description: str = "") -> str:
    """A readable name for axes and tables: the description's first clause when it is short, else the name
    with spaces ("pathogen load", not "P")."""
    first = re.split(r";|\s\(|:\s", description or "", maxsplit=1)[0].strip().rstrip(".")
    return first if 0 < len(first) <= LONG_NAME_MAX else name.replace("_", " ")


LONG_NAME_MAX = 60


def time_series(ds: xr.Dataset) -> list[str]:
    """The data variables over time alone (species, observables, parameters): the ones to summarise, plot, write
    as columns of results.csv or compare; the run's records have dimensions of their own."""
    return [name for name, var in ds.data_vars.items() if var.dims == ("time",)]


def _records(model: CompiledModel, traj: Trajectory, p: np.ndarray) -> dict[str, xr.Variable]:
    """The events fired (one row per firing) and the starting parameter values, as variables."""
    units = model.spec.metadata.time_units
    times = np.array([t for t, _ in traj.event_log], dtype=float)
    names = np.array([name for _, name in traj.event_log], dtype=str)
    spec_parameters = {q.name: q for q in model.spec.parameters}
    return {
        "firing_time": xr.Variable("firing", times, {"units": units, "long_name": "time the event fired"}),
        "firing_event": xr.Variable("firing", names, {"units": "", "long_name": "event fired"}),
        "parameter_value": xr.Variable("parameter", np.asarray(p, dtype=float),
                                       {"units": "", "long_name": "parameter value at the start of the run"}),
        "parameter_units": xr.Variable("parameter", np.array([spec_parameters[n].units for n in model.parameters], dtype=str),
                                       {"units": "", "long_name": "units of the parameter"}),
        "parameter": xr.Variable("parameter", np.array(model.parameters, dtype=str), {"long_name": "parameter"}),
    }


def _dose_variables(log: list[dict], time_units: str) -> dict[str, xr.Variable]:
    """The dose log, one row per scheduled dose decision (dimension ``dose``)."""
    def column(key, dtype, default):
        return np.array([e.get(key, default) if e.get(key) is not None else default for e in log], dtype=dtype)

    return {
        "dose_time": xr.Variable("dose", column("time", float, np.nan), {"units": time_units, "long_name": "time of the dose"}),
        "dose_drug": xr.Variable("dose", column("drug", str, ""), {"units": "", "long_name": "drug"}),
        "dose_number": xr.Variable("dose", column("dose", int, 0), {"units": "", "long_name": "dose number in its schedule"}),
        "dose_amount": xr.Variable("dose", column("amount", float, np.nan),
                                   {"units": _one(column("units", str, "")), "long_name": "amount scheduled"}),
        "dose_units": xr.Variable("dose", column("units", str, ""), {"units": "", "long_name": "units of the amount"}),
        "dose_status": xr.Variable("dose", column("status", str, ""), {"units": "", "long_name": DOSE_STATUS}),
        "dose_reason": xr.Variable("dose", column("reason", str, ""), {"units": "", "long_name": "rule that decided"}),
    }


DOSE_STATUS = "given, held, not given (switched off), resumed or course stopped"


def _one(values: np.ndarray) -> str:
    """The common units of a column, or "mixed" (see the units column)."""
    kinds = sorted(set(values.tolist()) - {""})
    return kinds[0] if len(kinds) == 1 else "mixed (see dose_units)" if kinds else ""


def _toxicity_variables(grades: dict[str, dict], time_units: str) -> dict[str, xr.Variable]:
    """Per CTCAE term graded: the readout, the worst grade and when it was first reached (dimension ``toxicity_term``)."""
    terms = list(grades)
    worst_time = [grades[t].get("time_of_max") for t in terms]
    return {
        "toxicity_term": xr.Variable("toxicity_term", np.array(terms, dtype=str), {"long_name": "CTCAE term"}),
        "toxicity_readout": xr.Variable("toxicity_term", np.array([grades[t].get("variable", "") for t in terms], dtype=str),
                                        {"units": "", "long_name": "variable graded"}),
        "toxicity_worst_grade": xr.Variable("toxicity_term", np.array([grades[t]["max_grade"] for t in terms], dtype=int),
                                            {"units": "CTCAE grade", "long_name": "worst CTCAE grade"}),
        "toxicity_worst_grade_time": xr.Variable("toxicity_term", np.array([np.nan if v is None else v for v in worst_time],
                                                                            dtype=float),
                                                 {"units": time_units, "long_name": "first time at the worst grade"}),
    }


def run_settings(t: np.ndarray, info: dict) -> dict:
    """The ``simulation:`` section that repeats a run: its output times (``linspace(0, t_end, points)``, when they
    are that: explicit uneven times cannot be written there) and, for the default engine, its method and tolerances."""
    even = t[0] == 0 and np.allclose(t, np.linspace(0.0, t[-1], len(t)), rtol=1e-12, atol=0.0)
    settings = {"t_end": float(t[-1]), "points": int(len(t))} if even else {}
    if info.get("engine") == "ode":
        settings |= {k: info[k] for k in ("method", "rtol", "atol") if info.get(k) not in (None, "")}
    return settings


def as_run(model: CompiledModel, p: np.ndarray, settings: dict | None = None):
    """The model's spec with the parameter values (and ``simulation:`` settings, from ``run_settings``) a run used."""
    spec = model.spec.with_parameters(dict(zip(model.parameters, map(float, p))))
    if settings:
        spec.simulation = spec.simulation.model_copy(update=settings)
    return spec


def classify(model: CompiledModel, t: np.ndarray, y: np.ndarray, p: np.ndarray) -> str:
    """The run's outcome label ("" without outcomes): ``t`` its output times, ``y`` and ``p`` the states and
    parameters there (times x species, times x parameters); the rule is ``ilsim.model.outcomes``'s."""
    return str(label_outcomes(model, t, lambda k: model.namespace(t[k], y[k], p[k]), 1)[0])


def summarise(ds: xr.Dataset) -> dict:
    """Final state, peaks and troughs (with times), outcome and provenance, JSON-ready."""
    t = ds["time"].values
    variables = {}
    for name in time_series(ds):
        var = ds[name]
        v = var.values
        defined = bool(np.isfinite(v).any())  # e.g. an observable 0/0 everywhere has no peak
        i_max, i_min = (int(np.nanargmax(v)), int(np.nanargmin(v))) if defined else (0, 0)
        variables[name] = {
            "units": var.attrs.get("units", ""),
            "role": var.attrs.get("role", ""),
            "initial": _number(v[0]),
            "final": _number(v[-1]),
            "peak": _number(v[i_max]) if defined else None,
            "peak_time": float(t[i_max]) if defined else None,
            "nadir": _number(v[i_min]) if defined else None,
            "nadir_time": float(t[i_min]) if defined else None,
        }
    attrs = dict(ds.attrs)
    sections = json.loads(attrs.get("summary_sections", "{}"))
    return {
        "model": attrs.get("model_name"),
        "model_hash": attrs.get("model_hash"),
        "outcome": attrs.get("outcome") or None,
        "outcome_rule": attrs.get("outcome_rule") or None,
        "derived": json.loads(attrs.get("derived", "{}")),
        "faults": json.loads(attrs.get("faults", "{}")),
        "t_end": float(t[-1]),
        "time_units": attrs.get("time_units"),
        "parameters": _parameters(ds),
        "events_fired": _events_fired(ds),
        "dose_log": sections.get("dose_log", []),
        "toxicity": sections.get("toxicity", {}),
        "engine": attrs.get("engine"),
        "method": attrs.get("method"),
        "rtol": attrs.get("rtol"),
        "atol": attrs.get("atol"),
        "ilsim_version": attrs.get("ilsim_version"),
        "wall_time_s": attrs.get("wall_time_s"),
        "variables": variables,
    }


def _parameters(ds: xr.Dataset) -> dict[str, float]:
    """Starting parameter values by name (from the variables; the JSON attribute of files before them)."""
    if "parameter_value" in ds:
        return {str(n): float(v) for n, v in zip(ds["parameter"].values, ds["parameter_value"].values)}
    return json.loads(ds.attrs.get("parameters", "{}"))


def _events_fired(ds: xr.Dataset) -> list[list]:
    """[time, event name] per firing (from the variables; the JSON attribute of files before them)."""
    if "firing_time" in ds:
        return [[float(t), str(n)] for t, n in zip(ds["firing_time"].values, ds["firing_event"].values)]
    return json.loads(ds.attrs.get("events_fired", "[]"))


def _number(x) -> float | None:
    """A JSON-safe number: NaN and infinities become null."""
    return float(x) if np.isfinite(x) else None


def write_netcdf(ds: xr.Dataset, path: Path) -> None:
    ds.to_netcdf(path, engine=_netcdf_engine())


def write_zarr(ds: xr.Dataset, path: Path, chunk: dict[str, int]) -> None:
    """A Dataset as a Zarr store (format 2, consolidated metadata, as the cohorts' trajectories.zarr), chunked along
    ``chunk``'s dimensions, so a reader loads the trajectories it needs only (``xarray.open_zarr``)."""
    sizes = {d: min(n, ds.sizes[d]) for d, n in chunk.items() if d in ds.sizes}
    encoding = {name: {"chunks": tuple(sizes.get(d, ds.sizes[d]) for d in v.dims)}
                for name, v in ds.variables.items() if v.dims and v.dtype.kind in "fiub"}
    ds.to_zarr(path, mode="w", zarr_format=2, consolidated=True, encoding=encoding)


def _netcdf_engine() -> str | None:
    for engine, module in (("netcdf4", "netCDF4"), ("h5netcdf", "h5netcdf"), ("scipy", "scipy")):
        try:
            __import__(module)
            return engine
        except ImportError:
            continue
    return None


def write_csv(ds: xr.Dataset, path: Path) -> None:
    """The time series as columns (the run's records are in results.nc and summary.json)."""
    frame = ds[time_series(ds)].to_dataframe()
    frame.columns = [f"{c} [{ds[c].attrs.get('units', '')}]" for c in frame.columns]
    frame.index.name = f"time [{ds.attrs.get('time_units', '')}]"
    frame.to_csv(path)


def write_json(data: dict, path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value))


def check_out(out: str | Path, overwrite: bool = False) -> Path:
    """Refuse, before any work is done, an out folder that ilsim must not replace: one it did not write, or
    one that holds files it did not write (unless ``overwrite``: those are then kept, see ``atomic_folder``).

    First finishes what an interrupted earlier write of ``out`` left beside it (``io.atomic.recover``):
    an earlier result found only in a hidden ``.old`` folder is put back, stale temporary folders go.
    """
    out = Path(out).resolve()
    recover(out, is_result)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not is_result(out))):
        raise IlsimError(f"{out}: exists and is not an ilsim result folder; choose another {argument('out')} or remove it")
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise IlsimError(f"{out}: cannot create the result folder: {blocker} is a file, not a folder")
    if not overwrite:
        _refuse_extra_files(out)
    return out


def is_result(folder: Path) -> bool:
    """A folder ilsim wrote (it carries the marker), which a later run may replace."""
    return (folder / MARKER).is_file()


def folder_files(folder: Path) -> list[str]:
    """Every file under ``folder`` (links included, not followed), as relative POSIX paths, without the marker."""
    found = []
    for root, dirs, files in os.walk(folder):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            found.append(Path(root, name).relative_to(folder).as_posix())
    return sorted(f for f in found if f != MARKER)


def written_files(folder: Path) -> set[str] | None:
    """The files the marker lists as written by ilsim; None for a marker of a version before the lists."""
    try:
        return set(json.loads((folder / MARKER).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def extra_files(folder: Path) -> list[str]:
    """Files in a result folder that ilsim did not write (all of them when the marker has no list)."""
    if not is_result(folder):
        return []
    written = written_files(folder) or set()
    return [f for f in folder_files(folder) if f not in written]


def _refuse_extra_files(out: Path) -> None:
    extras = extra_files(out)
    if not extras:
        return
    shown = ", ".join(extras[:5]) + (f" and {len(extras) - 5} more" if len(extras) > 5 else "")
    why = ("was written by an ilsim that did not list its files, so its files cannot be told from yours"
           if written_files(out) is None else "holds files ilsim did not write")
    raise IlsimError(f"{out}: {why} ({shown}); move them elsewhere or choose another {argument('out')}, or give "
                     f"{argument('overwrite')} to replace ilsim's files and keep these")


def _seal(out: Path, overwrite: bool):
    """What completes a new result folder before it takes the place of ``out``: the user's files of the earlier
    result copied in (only with ``overwrite``; without it, files that appeared during the run stop the swap),
    then the marker with the list of files ilsim wrote."""
    def seal(folder: Path) -> None:
        written = folder_files(folder)
        if out.is_dir() and is_result(out):
            if not overwrite:
                _refuse_extra_files(out)
            keep = extra_files(out)
            clash = [f for f in keep if (folder / f).exists() or (folder / f).is_symlink()]
            if written_files(out) is None:  # an earlier ilsim's folder, no list: the new result's own files win
                keep, clash = [f for f in keep if f not in clash], []
            if clash:
                raise IlsimError(f"{out}: the new result writes {', '.join(clash[:5])}, which ilsim did not write before; "
                                 f"move them elsewhere or choose another {argument('out')}")
            for name in keep:  # copies: the earlier folder stays whole until the swap has succeeded
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(out / name, folder / name, follow_symlinks=False)
        (folder / MARKER).write_text(json.dumps({"ilsim": __version__, "files": written}, indent=0) + "\n")
    return seal


@contextmanager
def atomic_folder(out: str | Path, overwrite: bool = False):
    """Write a result folder completely or not at all, never losing a file ilsim did not write.

    Yields a temporary folder beside ``out``; on success the marker (listing the files written) goes in and the
    folder takes the place of ``out`` (an earlier result is moved aside first and put back if the swap fails); on
    any error it is removed and ``out`` is left as it was. An existing non-empty ``out`` without the marker (not
    written by ilsim) is never replaced; an earlier result that holds files ilsim did not write is replaced
    only with ``overwrite``, and those files are carried over into the new result. A ``kill -9`` at any moment
    leaves ``out`` as it was or complete; the next write of ``out`` cleans up (``io.atomic``).
    """
    out = check_out(out, overwrite)
    with ExitStack() as stack:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = stack.enter_context(swap_folder(out, _seal(out, overwrite)))
        except OSError as exc:
            blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
            why = f"{blocker} is a file, not a folder" if blocker else (exc.strerror or str(exc))
            raise IlsimError(f"{out}: cannot create the result folder: {why}") from None
        yield tmp


def write_run(ds: xr.Dataset, model: CompiledModel, out: str | Path, extra: Callable[[Path, dict], None] | None = None,
              overwrite: bool = False) -> dict:
    """Write results.nc, results.csv, summary.json and model.yaml (plus figures and report
    through ``extra``) atomically into ``out``; return the summary."""
    summary = summarise(ds)
    with atomic_folder(out, overwrite) as tmp:
        write_netcdf(ds, tmp / "results.nc")
        write_csv(ds, tmp / "results.csv")
        p = [summary["parameters"][name] for name in model.parameters]
        (tmp / "model.yaml").write_text(dump_spec(as_run(model, p, run_settings(ds["time"].values, ds.attrs))))
        if extra is not None:
            extra(tmp, summary)
        write_json(summary, tmp / "summary.json")
    return summary
