"""A fit's result folder: tables, NetCDF, figures, report.html and the fitted model as an ilsim model file."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

from ilsim.fit.objective import Objective
from ilsim.fit.result import FitResult
from ilsim.io.results import atomic_folder, write_json, write_netcdf
from ilsim.model.load import dump_spec, spec_from_dict

FILES = ["fit.json", "starts.csv", "starts.parquet", "parameters.csv", "results.nc", "model.yaml",
         "figures/waterfall.png", "figures/fit.png", "report.html"]


def summary(result: FitResult) -> dict:
    problem = result.problem
    return {
        "problem": problem.name, "source": problem.source, "optimizer": result.optimizer, "seed": result.seed,
        "starts": len(result.starts), "failed_starts": len(result.failed()),
        "converged_fraction_0.1": result.converged_fraction(0.1), "wall_time_s": result.wall_time_s,
        "best": {"nllh": result.nllh, "llh": result.llh, "objective": result.best.get("objective"),
                 "parameters": result.parameters},
        "profiles": {k: {kk: v[kk] for kk in ("lower", "upper", "flat", "flat_lower", "flat_upper")}
                     for k, v in result.profiles.items()},
    }


def fitted_spec(result: FitResult):
    """The model with the fitted values (in its first simulation's condition) as parameter values, and its
    simulation running to the last measurement."""
    problem = result.problem
    phi, _ = problem.parameters.full(result.x)
    p = problem.simulations[0].condition.parameters(phi)
    data = problem.model.spec.model_dump(mode="json", exclude_defaults=True)
    data.pop("fit", None)  # the fitted model runs as it is; its fit: section belongs to the problem
    values = dict(zip(problem.model.parameters, map(float, p)))
    for entry in data.get("parameters", []):
        if entry["name"] in values:
            entry["value"] = values[entry["name"]]
    t_end = float(problem.measurements.time.max()) or 1.0
    data.setdefault("simulation", {})["t_end"] = t_end
    return spec_from_dict(data, problem.source)


def write(result: FitResult, out: str | Path, overwrite: bool = False, report: bool = True) -> Path:
    import pandas as pd  # lazy: heavy (pandas)
    import xarray as xr  # lazy: heavy (xarray)

    problem = result.problem
    names = result.names
    with atomic_folder(out, overwrite) as tmp:
        write_json(summary(result), tmp / "fit.json")
        rows = []
        for s in result.starts:
            row = {"start": s["index"], "status": s["status"], "objective": s["objective"], "nllh": s["nllh"],
                   "evaluations": s["evaluations"], "seconds": s["seconds"], "message": s["message"]}
            for name, v in zip(names, s["x"] or [np.nan] * len(names)):
                row[name] = v
            rows.append(row)
        starts = pd.DataFrame(rows)
        starts.to_csv(tmp / "starts.csv", index=False)
        starts.to_parquet(tmp / "starts.parquet", index=False)
        table = result.table()
        table.to_csv(tmp / "parameters.csv", index=False)
        x0 = np.array([s["x0"] for s in result.starts], float)
        xe = np.array([s["x"] if s["x"] is not None else [np.nan] * len(names) for s in result.starts], float)
        obj = np.array([np.nan if s["objective"] is None else s["objective"] for s in result.starts], float)
        best = Objective(problem)(result.x)
        meas = problem.measurements
        ds = xr.Dataset(
            {"start_point": (("start", "parameter"), x0, {"long_name": "start on the parameters' scales"}),
             "end_point": (("start", "parameter"), xe, {"long_name": "end point on the parameters' scales"}),
             "objective": (("start",), obj, {"long_name": "negative log-likelihood (+ priors) at the end point"}),
             "measured": (("measurement",), meas.value),
             "fitted": (("measurement",), best.simulated, {"long_name": "model at the best parameters"}),
             "time": (("measurement",), meas.time),
             "observable": (("measurement",), np.array([problem.observables[o].id for o in meas.observable]))},
            coords={"start": np.arange(len(result.starts)), "parameter": names},
            attrs={"problem": problem.name, "seed": result.seed, "optimizer": result.optimizer},
        )
        write_netcdf(ds, tmp / "results.nc")  # with the engine every result file is written with
        (tmp / "model.yaml").write_text(dump_spec(fitted_spec(result)), encoding="utf-8")
        if report:
            from ilsim.fit import figures  # lazy: heavy (matplotlib)

            (tmp / "figures").mkdir()
            pictures = [figures.waterfall(result, tmp / "figures" / "waterfall.png"),
                        figures.data_vs_fit(result, best.simulated, tmp / "figures" / "fit.png")]
            if result.profiles:
                pictures.append(figures.profiles(result, tmp / "figures" / "profiles.png"))
            (tmp / "report.html").write_text(_report(result, table, pictures), encoding="utf-8")
    return Path(out)


def _report(result: FitResult, table, pictures: list[Path]) -> str:
    from ilsim.report.safe_text import html_text

    info = summary(result)
    head = ["parameter", "scale", "estimate", "95% lower", "95% upper", "identifiable"]
    rows = "".join(
        "<tr>" + "".join(f"<td>{html_text(_fmt(r[c]))}</td>" for c in
                         ("parameter", "scale", "estimate", "ci95_lower", "ci95_upper", "identifiable")) + "</tr>"
        for _, r in table.iterrows())
    images = "".join(f"<p><img alt='{html_text(p.stem)}' src='data:image/png;base64,"
                     f"{base64.b64encode(p.read_bytes()).decode('ascii')}'></p>" for p in pictures)
    facts = html_text(json.dumps({k: info[k] for k in ("starts", "failed_starts", "converged_fraction_0.1", "seed",
                                                        "optimizer", "wall_time_s")}))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>fit: {html_text(result.problem.name)}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:auto}td,th{padding:2px 8px}</style></head><body>"
            f"<h1>Fit of {html_text(result.problem.name)}</h1>"
            f"<p>best log-likelihood {result.llh:.6g}; {facts}</p>"
            f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{rows}</table>{images}</body></html>")


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)
