"""Results as an xarray Dataset with units and provenance, and the files a run writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xarray as xr

from ilsim._version import __version__
from ilsim.engines.ode import Trajectory
from ilsim.errors import IlsimError
from ilsim.io.atomic import recover, swap_folder
from ilsim.model.compile import CompiledModel
from ilsim.model.load import dump_spec
from ilsim.model.outcomes import label_outcomes, rules
from ilsim.model.sections.dosing import BOOKKEEPING

MARKER = ".ilsim-result"  # written last into every result folder: only such a folder may be replaced


def to_dataset(model: CompiledModel, traj: Trajectory, run_info: dict, p: np.ndarray | None = None) -> xr.Dataset:
    """A labelled Dataset: one variable per species and observable, units in attrs.

    ``p`` is the parameter vector the run started from (overrides included); the model hash
    is that of the model with these values, so the saved model.yaml reproduces the run.
    """
    spec = model.spec
    units = spec.metadata.time_units
    data_vars = {}
    for i, s in enumerate(spec.species):
        data_vars[s.name] = xr.Variable(
            "time", traj.y[:, i],
            {"units": s.units, "kind": s.kind, "role": "species", "group": s.group or s.kind, "description": s.description},
        )
    obs = model.observe(traj.t, traj.y, traj.p.T)
    by_name = {o.name: o for o in spec.observables}
    for j, name in enumerate(model.observables):
        o = by_name[name]
        data_vars[name] = xr.Variable(
            "time", obs[:, j],
            {"units": o.units, "role": "observable", "group": o.group or "readouts", "description": o.description},
        )
    changed = [j for j in range(len(model.parameters))
               if np.ptp(traj.p[:, j]) > 0 and spec.parameters[j].source != BOOKKEEPING]
    for j in changed:  # parameters that events switched are part of the trajectory
        par = spec.parameters[j]
        data_vars[par.name] = xr.Variable(
            "time", traj.p[:, j], {"units": par.units, "role": "parameter", "group": "parameters",
                                   "description": par.description},
        )
    p_start = model.p0 if p is None else np.asarray(p, dtype=float)
    run_spec = as_run(model, p_start)
    outcome = classify(model, traj.t, traj.y, traj.p)
    attrs = {
        "title": spec.metadata.title or spec.metadata.name,
        "model_name": spec.metadata.name,
        "model_hash": run_spec.content_hash(),
        "model_source": model.source or "",
        "parameters": json.dumps(dict(zip(model.parameters, map(float, p_start)))),
        "time_units": units,
        "outcome": outcome,
        "outcome_rule": rules(model).get(outcome, ""),
        "derived": json.dumps(model.derived_values(p_start)),
        "toxicity": json.dumps([e.model_dump(mode="json", exclude_none=True) for e in spec.toxicity]),
        "events_fired": json.dumps([[t, name] for t, name in traj.event_log]),
        "ilsim_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **run_info,
    }
    ds = xr.Dataset(data_vars, coords={"time": ("time", traj.t, {"units": units})}, attrs=attrs)
    # the summary entries of the domain layers (the dose log, CTCAE grades): computed by them, stored here as data
    ds.attrs["summary_sections"] = json.dumps({key: report(ds) for key, report in model.reporters}, default=_json_default)
    return ds


def as_run(model: CompiledModel, p: np.ndarray):
    """The model's spec with the parameter values a run used."""
    return model.spec.with_parameters(dict(zip(model.parameters, map(float, p))))


def classify(model: CompiledModel, t: np.ndarray, y: np.ndarray, p: np.ndarray) -> str:
    """The run's outcome label ("" without outcomes): ``t`` its output times, ``y`` and ``p`` the states and
    parameters there (times x species, times x parameters); the rule is ``ilsim.model.outcomes``'s."""
    return str(label_outcomes(model, t, lambda k: model.namespace(t[k], y[k], p[k]), 1)[0])


def summarise(ds: xr.Dataset) -> dict:
    """Final state, peaks and troughs (with times), outcome and provenance, JSON-ready."""
    t = ds["time"].values
    variables = {}
    for name, var in ds.data_vars.items():
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
        "parameters": json.loads(attrs.get("parameters", "{}")),
        "events_fired": json.loads(attrs.get("events_fired", "[]")),
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


def _number(x) -> float | None:
    """A JSON-safe number: NaN and infinities become null."""
    return float(x) if np.isfinite(x) else None


def write_netcdf(ds: xr.Dataset, path: Path) -> None:
    ds.to_netcdf(path, engine=_netcdf_engine())


def _netcdf_engine() -> str | None:
    for engine, module in (("netcdf4", "netCDF4"), ("h5netcdf", "h5netcdf"), ("scipy", "scipy")):
        try:
            __import__(module)
            return engine
        except ImportError:
            continue
    return None


def write_csv(ds: xr.Dataset, path: Path) -> None:
    frame = ds.to_dataframe()
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


def check_out(out: str | Path) -> Path:
    """Refuse, before any work is done, an --out that ilsim must not replace.

    First finishes what an interrupted earlier write of ``out`` left beside it (``io.atomic.recover``):
    an earlier result found only in a hidden ``.old`` folder is put back, stale temporary folders go.
    """
    out = Path(out).resolve()
    recover(out, is_result)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not is_result(out))):
        raise IlsimError(f"{out}: exists and is not an ilsim result folder; choose another --out or remove it")
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise IlsimError(f"{out}: cannot create the result folder: {blocker} is a file, not a folder")
    return out


def is_result(folder: Path) -> bool:
    """A folder ilsim wrote (it carries the marker), which a later run may replace."""
    return (folder / MARKER).is_file()


@contextmanager
def atomic_folder(out: str | Path):
    """Write a result folder completely or not at all.

    Yields a temporary folder beside ``out``; on success the marker is written and the folder
    takes the place of ``out`` (an earlier result is moved aside first and put back if the swap
    fails); on any error it is removed and ``out`` is left as it was. An existing non-empty ``out``
    without the marker (not written by ilsim) is never replaced. A ``kill -9`` at any moment leaves
    ``out`` as it was or complete; the next write of ``out`` cleans up (``io.atomic``).
    """
    out = check_out(out)
    with ExitStack() as stack:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = stack.enter_context(swap_folder(out, lambda folder: (folder / MARKER).write_text(f"ilsim {__version__}\n")))
        except OSError as exc:
            blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
            why = f"{blocker} is a file, not a folder" if blocker else (exc.strerror or str(exc))
            raise IlsimError(f"{out}: cannot create the result folder: {why}") from None
        yield tmp


def write_run(ds: xr.Dataset, model: CompiledModel, out: str | Path, extra: Callable[[Path, dict], None] | None = None) -> dict:
    """Write results.nc, results.csv, summary.json and model.yaml (plus figures and report
    through ``extra``) atomically into ``out``; return the summary."""
    summary = summarise(ds)
    with atomic_folder(out) as tmp:
        write_netcdf(ds, tmp / "results.nc")
        write_csv(ds, tmp / "results.csv")
        (tmp / "model.yaml").write_text(dump_spec(model.spec.with_parameters(summary["parameters"])))
        if extra is not None:
            extra(tmp, summary)
        write_json(summary, tmp / "summary.json")
    return summary
