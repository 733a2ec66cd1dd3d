"""Stochastic ensembles: statistics over trajectories, first-passage times, extinction, and the result folder.

``ilsim.simulate(model, engine=SsaEngine(trajectories=1000, seed=7))`` gives the ensemble as a Dataset with a
``trajectory`` dimension. This module reads it:

- ``statistics``: mean, standard deviation and quantiles of every species and observable at every output time,
  over the trajectories that finished (status 0);
- ``first_passage``: for each condition (``"P < 1"``, parsed by ilsim's expression parser and evaluated on the
  trajectories, never run as code), each trajectory's first output time at which it holds (so the time is
  resolved to the output spacing, late by at most one step), the fraction that reached it with a Wilson
  score interval, and the mean and median time among those;
- ``extinction``: for each species, the fraction of trajectories at zero at the end, with its Wilson interval;
- ``run``: all of it written atomically as a result folder (``ilsim run MODEL --engine ssa``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from ilsim.api import compile, simulate
from ilsim.engines.ssa import SsaEngine
from ilsim.errors import IlsimError, argument
from ilsim.io.results import atomic_folder, check_out, write_json, write_netcdf, write_zarr
from ilsim.model import expressions as ex
from ilsim.model.load import dump_spec
from ilsim.patients.metrics import parse_conditions

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
Z95 = 1.959963984540054  # the standard normal's 97.5% point: 95% intervals


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion k / n (Wilson 1927): sound near 0 and 1, where the normal one is not."""
    if n <= 0:
        return (math.nan, math.nan)
    phat = k / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
    return (0.0 if k == 0 else max(0.0, centre - half), 1.0 if k == n else min(1.0, centre + half))


def series(ds: xr.Dataset) -> list[str]:
    """The species and observables of an ensemble."""
    return [name for name, v in ds.data_vars.items() if v.attrs.get("role") in ("species", "observable")]


def finished(ds: xr.Dataset) -> xr.Dataset:
    """The trajectories that ran to the end (status 0)."""
    return ds.isel(trajectory=np.flatnonzero(ds["status"].values == 0))


def statistic_labels(quantiles: Sequence[float] = QUANTILES) -> list[str]:
    return ["mean", "sd", *(f"q{round(100 * q):02d}" for q in quantiles)]


def statistics(ds: xr.Dataset, quantiles: Sequence[float] = QUANTILES) -> xr.Dataset:
    """Mean, sd (n - 1) and quantiles over the finished trajectories: one variable per series over (statistic, time)."""
    ok = finished(ds)
    labels = statistic_labels(quantiles)
    out = {}
    for name in series(ds):
        v = ok[name].values
        if v.shape[0] == 0:  # every trajectory flagged
            rows = [np.full(v.shape[1], np.nan)] * len(labels)
        else:
            rows = [np.mean(v, axis=0), np.std(v, axis=0, ddof=1) if v.shape[0] > 1 else np.full(v.shape[1], np.nan)]
            rows += list(np.quantile(v, quantiles, axis=0))
        out[name] = xr.Variable(("statistic", "time"), np.array(rows), ds[name].attrs)
    return xr.Dataset(out, coords={"statistic": labels, "time": ds["time"]},
                      attrs={**ds.attrs, "trajectories_used": int(ok.sizes["trajectory"])})


def first_passage(model, ds: xr.Dataset, conditions: Sequence[str]) -> tuple[dict, np.ndarray]:
    """Per condition: how many finished trajectories reached it by the end, the fraction with its 95% Wilson interval,
    and the mean and median first time among them; and the times (trajectory x condition, NaN: not reached)."""
    parsed = parse_conditions(model, list(conditions), source="--time-to")
    ok = finished(ds)
    t = ok["time"].values
    n = ok.sizes["trajectory"]
    P = ok["parameters_end"].values
    times = np.full((n, len(parsed)), np.nan)
    summary = {}
    arrays = {name: ok[name].values for name in series(ok)}
    params = {p: P[:, j] for j, p in enumerate(model.parameters)}
    for c, (text, node) in enumerate(parsed):
        pending = np.ones(n, dtype=bool)
        for k in range(len(t)):
            values = {ex.TIME: t[k], **params, **{name: v[:, k] for name, v in arrays.items()}}
            holds = np.broadcast_to(np.asarray(ex.evaluate_array(node, values), dtype=bool), (n,)) & pending
            times[holds, c] = t[k]
            pending &= ~holds
            if not pending.any():
                break
        summary[text] = passage_summary(times[:, c][np.isfinite(times[:, c])], n, t)
    return summary, times


def passage_summary(reached: np.ndarray, n: int, t: np.ndarray) -> dict:
    """One condition's line of the summary from the first times of the trajectories that reached it, of n."""
    lo, hi = wilson(len(reached), n)
    return {"trajectories": n, "reached": int(len(reached)), "probability": len(reached) / n if n else None,
            "ci95": [lo, hi], "mean_time": float(reached.mean()) if len(reached) else None,
            "median_time": float(np.median(reached)) if len(reached) else None,
            "time_resolution": float(np.max(np.diff(t))) if len(t) > 1 else 0.0}


def extinction(ds: xr.Dataset) -> dict:
    """Per species: the fraction of finished trajectories with none left at the end, with its 95% Wilson interval."""
    ok = finished(ds)
    n = ok.sizes["trajectory"]
    return {name: extinct_line(int(np.sum(v.values[:, -1] == 0)), n) for name, v in ok.data_vars.items()
            if v.attrs.get("role") == "species"}


def extinct_line(k: int, n: int) -> dict:
    lo, hi = wilson(k, n)
    return {"extinct": k, "trajectories": n, "probability": k / n if n else None, "ci95": [lo, hi]}


FORMATS = ("auto", "netcdf", "zarr")
ZARR_ABOVE = 2**30  # bytes of trajectories above which format 'auto' writes results.zarr rather than results.nc
ZARR_CHUNK = 1000  # trajectories per Zarr chunk


def run(model, out: str | Path, *, engine: SsaEngine, time_to: Sequence[str] = (), report: bool = True,
        overwrite: bool = False, format: str = "auto", **options) -> tuple[xr.Dataset, dict]:  # noqa: A002
    """Simulate an ensemble and write a result folder atomically: results.nc or results.zarr (every trajectory;
    ``format`` 'netcdf', 'zarr' or 'auto': Zarr above ``ZARR_ABOVE`` bytes), statistics.csv (mean, sd and quantiles
    over time), summary.json (extinction, first-passage times, failures), model.yaml, figures/fan.png and
    report.html. ``options`` go to ``ilsim.simulate``."""
    if format not in FORMATS:
        raise IlsimError(f"{argument('format')} must be one of {', '.join(FORMATS)}, got {format!r}")
    check_out(out, overwrite)  # before a long run, not after it
    compiled = compile(model, doses=options.pop("doses", None), allow_high_dose=options.pop("allow_high_dose", False))
    if time_to:
        parse_conditions(compiled, list(time_to), source="--time-to")  # refuse a bad condition before the run
    ds = simulate(compiled, engine=engine, **options)
    stats = statistics(ds)
    passage, times = first_passage(compiled, ds, time_to) if time_to else ({}, None)
    status = ds["status"].values
    failed = np.flatnonzero(status != 0)
    summary = summary_of(compiled, engine, ds.attrs, float(ds["time"].values[-1]), stats,
                         [(int(i), int(status[i]), str(ds["status_text"].values[i])) for i in failed[:MAX_LISTED]],
                         len(failed), _results_file(ds, format), extinction(ds), passage)
    if times is not None:
        ok = np.flatnonzero(status == 0)
        full = np.full((ds.sizes["trajectory"], len(passage)), np.nan)
        full[ok] = times
        ds = with_first_times(ds, full, list(passage))
    with atomic_folder(out, overwrite) as tmp:
        if summary["results"] == "results.zarr":
            write_zarr(ds, tmp / "results.zarr", {"trajectory": ZARR_CHUNK})
        else:
            write_netcdf(ds, tmp / "results.nc")
        write_rest(tmp, compiled, stats, summary, report)
    return ds, summary


MAX_LISTED = 100  # flagged trajectories listed in summary.json (failed_count counts them all)


def summary_of(compiled, engine: SsaEngine, attrs: dict, t_end: float, stats: xr.Dataset, failed: list[tuple],
               failed_count: int, results: str, extinct: dict, passage: dict) -> dict:
    """summary.json of an ensemble: ``failed`` lists (trajectory, status, message) of the first flagged ones."""
    return {
        "model": compiled.name, "title": attrs.get("title"), "model_hash": attrs.get("model_hash"),
        "engine": "ssa", **engine.settings(), "method_used": attrs.get("method"),
        "time_units": attrs.get("time_units"), "t_end": t_end,
        "wall_time_s": attrs.get("wall_time_s"), "trajectories_finished": int(stats.attrs["trajectories_used"]),
        "failed": [{"trajectory": i, "status": code, "message": text} for i, code, text in failed],
        "failed_count": int(failed_count),
        "results": results,
        "extinction": extinct, "first_passage": passage,
        "final": {name: {"mean": _number(stats[name].values[0, -1]), "sd": _number(stats[name].values[1, -1])}
                  for name in stats.data_vars},
    }


def with_first_times(ds: xr.Dataset, times: np.ndarray, conditions: list[str]) -> xr.Dataset:
    """``first_time`` over (trajectory, condition): each trajectory's first output time where a condition holds."""
    ds["first_time"] = xr.Variable(("trajectory", "condition"), times,
                                   {"long_name": "first output time at which the condition holds (NaN: never)",
                                    "units": ds.attrs.get("time_units", "")})
    return ds.assign_coords(condition=conditions)


def write_rest(tmp: Path, compiled, stats: xr.Dataset, summary: dict, report: bool) -> None:
    """Everything of an ensemble's result folder but the trajectories: statistics.csv, model.yaml, the figure,
    report.html and summary.json."""
    table = stats.to_dataframe().unstack("statistic")
    table.columns = [f"{name}.{stat}" for name, stat in table.columns]
    table.to_csv(tmp / "statistics.csv")
    (tmp / "model.yaml").write_text(dump_spec(compiled.spec))
    if report:
        from ilsim.report.ensemble import plot_fan, write_report  # lazy: heavy (matplotlib)

        (tmp / "figures").mkdir()
        fan = plot_fan(stats, tmp / "figures" / "fan.png")
        write_report(compiled, summary, [fan], tmp / "report.html")
    write_json(summary, tmp / "summary.json")


def _results_file(ds: xr.Dataset, format: str) -> str:  # noqa: A002
    """results.zarr (chunked by trajectories: read lazily) when asked or when the trajectories exceed ZARR_ABOVE."""
    big = sum(v.nbytes for v in ds.data_vars.values() if "trajectory" in v.dims) > ZARR_ABOVE
    return "results.zarr" if format == "zarr" or (format == "auto" and big) else "results.nc"


def _number(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


__all__ = ["QUANTILES", "extinction", "first_passage", "run", "statistics", "wilson"]
