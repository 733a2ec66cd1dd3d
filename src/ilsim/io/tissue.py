"""The files of a tissue run, and its checkpoint.

A result folder (written atomically, like every ilsim result): ``agents.parquet`` (one row per cell per saved time:
time, id, type, x, y, z, receptor occupancy), ``fields.nc`` (each field species over time, (z,) y, x, coordinates in
µm at voxel centres), ``timeseries.csv`` (cells per type, mean and max of each field, per saved time), ``summary.json``
(settings, final counts, the mass ledger) and ``model.yaml``.

The checkpoint is one file beside the result folder, ``.OUT.tissue-checkpoint.npz``, replaced atomically after every
saved time: the run's state (step, fields, agent arrays, ledger, the parameters as events left them, the condition
events' armed flags and pending actions) and the snapshots so far, with a fingerprint of the
model and settings. A rerun of the same command that finds it continues from it; since the cells' random numbers
depend only on (seed, id, step), the result is bit for bit the one an uninterrupted run gives. It is removed once the
result folder is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ilsim.engines.tissue import systemic
from ilsim.engines.tissue.agents import Agents
from ilsim.engines.tissue.conditions import Watch
from ilsim.engines.tissue.diffusion import Ledger
from ilsim.engines.tissue.engine import Snapshot, TissueRun, TissueState, internal_means
from ilsim.engines.tissue.systemic import Body
from ilsim.io.atomic import atomic_file
from ilsim.io.results import write_json, write_netcdf
from ilsim.model.load import dump_spec
from ilsim.model.sections.tissue import AXES

_LEDGER = ("secreted", "taken_up", "decayed", "blood", "fixed", "dosed")


def checkpoint_path(out: Path) -> Path:
    out = Path(out).resolve()
    return out.with_name(f".{out.name}.tissue-checkpoint.npz")


def fingerprint(spec, settings: dict) -> str:
    text = json.dumps({"model": spec.content_hash(), **settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


_SNAPPED = ("ids", "typ", "pos", "occupancy", "on_since", "internal")


def save_checkpoint(path: Path, run: TissueRun, print_: str) -> None:
    state = run.state
    a = state.agents
    snaps = run.snapshots
    counts = np.array([len(s.agents["ids"]) for s in snaps])
    data = {
        "fingerprint": np.array(print_), "step": np.array(state.step), "fields": state.fields,
        **{f"agent_{k}": v for k, v in a.arrays().items()},
        **{f"ledger_{k}": getattr(state.ledger, k) for k in _LEDGER},
        "snap_times": np.array([s.time for s in snaps]), "snap_fields": np.stack([s.fields for s in snaps]),
        "snap_counts": counts,
        **{f"snap_{k}": np.concatenate([s.agents[k] for s in snaps]) for k in _SNAPPED},
    }
    if state.values is not None:  # the parameters as the events left them (condition events cannot be replayed)
        data.update(values_names=np.array(sorted(state.values), dtype=str),
                    values=np.array([state.values[k] for k in sorted(state.values)], dtype=float))
    if state.watch is not None:  # the condition events: armed flags and pending actions (due step, event, values)
        pending = state.watch.pending
        width = max((len(v) for _, _, v in pending if v is not None), default=0)
        data.update(watch_armed=state.watch.armed, watch_due=np.array([p[0] for p in pending], dtype=np.int64),
                    watch_slot=np.array([p[1] for p in pending], dtype=np.int64),
                    watch_length=np.array([-1 if p[2] is None else len(p[2]) for p in pending], dtype=np.int64),
                    watch_values=np.array([np.pad(v, (0, width - len(v))) if v is not None else np.zeros(width)
                                           for _, _, v in pending], dtype=float).reshape(len(pending), width))
    if state.body is not None:  # the well-mixed part of tissue.systemic: its state and its values at the saved times
        data.update(body_y=state.body.y, body_p=state.body.p, snap_body=np.stack([s.body for s in snaps]))
    # atomic_file also removes the temporary files of writers killed mid-save (a pid-named one was left behind)
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **data)
        fh.flush()
        os.fsync(fh.fileno())


def load_checkpoint(path: Path, setup, print_: str) -> TissueRun | None:
    """The run saved at ``path`` when it is one of this model and these settings; None otherwise."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["fingerprint"]) != print_:
                return None
            agents = Agents(z["agent_pos"], z["agent_typ"], z["agent_ids"], z["agent_direction"], z["agent_occupancy"],
                            z["agent_on_since"], int(z["agent_next_id"]), z["agent_internal"])
            ledger = Ledger(*(z[f"ledger_{k}"].copy() for k in _LEDGER))
            state = TissueState(int(z["step"]), z["fields"].copy(), agents, ledger)
            if "values" in z.files:
                state.values = dict(zip(map(str, z["values_names"]), map(float, z["values"])))
            if setup.conditions:
                state.watch = _watch(z, setup)
            linked = "body_y" in z.files
            if linked:
                state.body = Body(z["body_y"].copy(), z["body_p"].copy())
            bounds = np.concatenate([[0], np.cumsum(z["snap_counts"])])
            snaps = []
            for i, t in enumerate(z["snap_times"]):
                sl = slice(bounds[i], bounds[i + 1])
                snaps.append(Snapshot(float(t), z["snap_fields"][i].copy(),
                                      {k: z[f"snap_{k}"][sl].copy() for k in _SNAPPED},
                                      z["snap_body"][i].copy() if linked else None))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):  # a damaged or foreign file: start again rather than fail
        return None
    return TissueRun(setup, snaps, state)


def _watch(z, setup) -> Watch:
    """The condition events' state saved in checkpoint ``z`` (a KeyError when it has none: the run starts again)."""
    armed = z["watch_armed"].copy()
    if len(armed) != len(setup.conditions):
        raise KeyError("watch_armed")
    rows = zip(z["watch_due"], z["watch_slot"], z["watch_length"], z["watch_values"])
    return Watch(armed, [(int(due), int(slot), row[:n].copy() if n >= 0 else None) for due, slot, n, row in rows])


def agents_table(run: TissueRun):
    import pandas as pd  # lazy: heavy (pandas)

    names = np.array(run.setup.agent_names + ["?"], dtype=object)
    frames = []
    dims = run.setup.geometry.dims
    for s in run.snapshots:
        a = s.agents
        cols = {"time": np.full(len(a["ids"]), s.time), "id": a["ids"], "type": names[a["typ"]]}
        for k in range(dims):
            cols[AXES[k]] = a["pos"][:, k]
        cols["occupancy"] = a["occupancy"]
        for k, name in enumerate(run.setup.internal_names):  # the model's species internal to cells (NaN: not carried)
            cols[name] = a["internal"][:, k]
        frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True)


def fields_dataset(run: TissueRun, spec):
    import xarray as xr  # lazy: heavy (xarray)

    setup = run.setup
    dims = setup.geometry.dims
    nx, ny, nz = setup.geometry.shape
    dx = setup.geometry.dx
    coords = {"time": ("time", run.times, {"units": "min"})}
    for a, n in zip(AXES, (nx, ny, nz)):
        coords[a] = (a, (np.arange(n) + 0.5) * dx, {"units": "um", "long_name": f"{a} of the voxel centre"})
    if dims == 2:
        coords.pop("z")
    stack = np.stack([s.fields for s in run.snapshots])  # time x fields x z x y x x
    species = {s.name: s for s in spec.species}
    data = {}
    for k, name in enumerate(setup.fields):
        values = stack[:, k] if dims == 3 else stack[:, k, 0]
        units = species[name].units if name in species else ""
        data[name] = xr.Variable(("time", "z", "y", "x") if dims == 3 else ("time", "y", "x"), values,
                                 {"units": units, "long_name": f"{name} per voxel"})
    return xr.Dataset(data, coords=coords)


def timeseries(run: TissueRun, model=None):
    """Cells per type, each field's mean and max, and with a systemic link (``model``: the compiled model) each
    well-mixed species and every observable of the model (fever, CRP, ...), per saved time."""
    import pandas as pd  # lazy: heavy (pandas)

    counts = run.counts()
    mean, peak = run.field_stats()
    cols = {"time_min": run.times}
    for k, name in enumerate(run.setup.agent_names):
        cols[f"{name}_cells"] = counts[:, k]
    for k, name in enumerate(run.setup.fields):
        cols[f"{name}_mean"] = mean[:, k]
        cols[f"{name}_max"] = peak[:, k]
    for k, name in enumerate(run.setup.internal_names):  # a species internal to cells: its mean over the carriers
        cols[f"{name}_mean"] = internal_means(run, k)
    if model is not None and run.link is not None:
        for i in run.link.wellmixed:
            cols[model.species[i]] = np.array([s.body[i] for s in run.snapshots])
        if model.observables:
            obs = model.observe(run.times, systemic.series(run, model), systemic.parameters_at_end(run, model))
            for j, name in enumerate(model.observables):
                cols.setdefault(name, obs[:, j])
    return pd.DataFrame(cols)


def summary(run: TissueRun, spec, settings: dict, wall_s: float, model=None) -> dict:
    ledger = run.state.ledger
    total0 = run.setup.solver.total(run.snapshots[0].fields)
    total1 = run.setup.solver.total(run.state.fields)
    counts = run.counts()
    mean, peak = run.field_stats()
    extra = {}
    if model is not None:  # outcome labels (outcomes:) and the well-mixed part, as the ODE engine's runs report them
        if model.outcomes:
            extra["outcome"] = systemic.outcome(run, model)
        if run.link is not None:
            extra["final_systemic"] = {model.species[i]: float(run.state.body.y[i]) for i in run.link.wellmixed}
            extra["systemic_link"] = {e.field: {"species": e.species, "scale": e.scale}
                                      for e in run.setup.tissue.systemic.exchange}
            extra["systemic_link"]["volume_ratio"] = run.link.ratio
    return {
        "model": spec.metadata.name, "engine": "tissue", **settings, "wall_time_s": wall_s,
        "voxels": list(run.setup.geometry.shape[: run.setup.geometry.dims]), "voxel_um": run.setup.geometry.dx,
        "final_cells": {name: int(counts[-1, k]) for k, name in enumerate(run.setup.agent_names)},
        "final_fields": {name: {"mean": float(mean[-1, k]), "max": float(peak[-1, k])}
                         for k, name in enumerate(run.setup.fields)},
        # amounts are concentration x µm³; the change of the total equals the net of the ledger to round-off
        "mass_ledger": {name: {**{k: float(getattr(ledger, k)[i]) for k in _LEDGER},
                               "change_of_total": float(total1[i] - total0[i])} for i, name in enumerate(run.setup.fields)},
        "processes_read_per_cell": run.setup.processes_read,  # how each of the model's processes acts in the tissue
        **extra,
    }


def write_tissue(folder: Path, run: TissueRun, spec, settings: dict, wall_s: float, model=None) -> dict:
    """agents.parquet, fields.nc, timeseries.csv, summary.json and model.yaml into ``folder``; the summary. With the
    compiled ``model``: its outcome label and the well-mixed part (tissue.systemic) in the time series and summary."""
    agents_table(run).to_parquet(folder / "agents.parquet", index=False)
    write_netcdf(fields_dataset(run, spec), folder / "fields.nc")
    timeseries(run, model).to_csv(folder / "timeseries.csv", index=False)
    (folder / "model.yaml").write_text(dump_spec(spec))
    info = summary(run, spec, settings, wall_s, model)
    write_json(info, folder / "summary.json")
    return info
