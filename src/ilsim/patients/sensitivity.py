"""Global sensitivity analysis: Sobol' indices and Morris screening (SALib) of one output of a model.

The parameters vary uniformly over the given ranges; SALib draws the sample (Sobol': a scrambled
Sobol' sequence in Saltelli's cross-sampling, ``SALib.sample.sobol``; Morris: trajectories on a
4-level grid, ``SALib.sample.morris``), every sample row is a patient of the batch engine, and the
output is one column of the per-patient table (``T.final``, ``E.peak``, ``first_time[T < 1000]``)
or an outcome indicator (``outcome=tumour cleared``: 1 when the run ends with that label, else 0).
``SALib.analyze.sobol`` / ``SALib.analyze.morris`` turn the outputs into indices with bootstrap
confidence intervals.

Both estimators need every run of a sample group (a Sobol' base point with its cross-samples, a
Morris trajectory). A run that fails, or whose output is undefined (NaN: a condition that never
held), stops the analysis with the count and the reasons, unless ``drop_failed``: then each group
with such a run is dropped whole and the indices describe only the rest of the parameter space,
so they are biased towards the region where the model integrates.

The seed is always recorded (drawn when not given); it fixes the sample, and ``seed + 1`` fixes the
bootstrap of the confidence intervals (SALib ignores a seed of 0 there), so the same seed gives
identical indices.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ilsim.errors import IlsimError, did_you_mean
from ilsim.errors import argument as arg
from ilsim.io import models
from ilsim.io.results import atomic_folder, check_out, write_json
from ilsim.patients.evaluate import output_times
from ilsim.patients.metrics import FAILED
from ilsim.patients.sweep import (
    base_parameters,
    check_metric,
    check_parameter,
    engine_for,
    model_record,
    parameter_units,
    parse_range,
    run_record,
    run_rows,
)

METHODS = ("sobol", "morris")
DEFAULT_SAMPLES = {"sobol": 256, "morris": 20}  # Sobol': base points N (runs: N(2D+2)); Morris: trajectories
MIN_SAMPLES = {"sobol": 16, "morris": 4}  # fewer gives bootstrap intervals too wide to say anything
MAX_RUNS = 10_000_000
NUM_LEVELS = 4  # Morris grid levels (Morris 1991; Campolongo et al. 2007 use 4)
NUM_RESAMPLES = 100  # bootstrap resamples for the confidence intervals (SALib's default)


@dataclass
class SensitivityResult:
    """Indices per parameter, every run (parameters, status, outcome, output), and the record of the analysis."""

    indices: pd.DataFrame
    samples: pd.DataFrame
    info: dict


def parse_ranges(texts: list[str], option: str = "--param") -> dict[str, tuple[float, float]]:
    """``['c=0.02:0.05', ...]`` -> ``{'c': (0.02, 0.05)}``; a parameter given twice is an error."""
    ranges: dict[str, tuple[float, float]] = {}
    for text in texts:
        name, low, high, _ = parse_range(text, count=False, option=option)
        if name in ranges:
            raise IlsimError(f"{option} '{name}': given twice; give each parameter's range once")
        ranges[name] = (low, high)
    return ranges


def _check_ranges(model, ranges: Mapping[str, object]) -> dict[str, tuple[float, float]]:
    if not ranges:
        raise IlsimError(f"{arg('ranges')}: nothing to vary; give each parameter's range, e.g. c from 0.02 to 0.05")
    checked = {}
    for name, bounds in ranges.items():
        check_parameter(model, name)
        if isinstance(bounds, str):
            _, low, high, _ = parse_range(f"{name}={bounds}", count=False)
        else:
            try:
                low, high = (float(b) for b in bounds)
            except (TypeError, ValueError):
                raise IlsimError(f"{arg('ranges')} {name}: expected a range (low, high), got {bounds!r}") from None
            if not (math.isfinite(low) and math.isfinite(high)):
                raise IlsimError(f"{arg('ranges')} {name}: the bounds must be finite numbers")
            if low >= high:
                raise IlsimError(f"{arg('ranges')} {name}: the low bound must be below the high bound, got {low:g} >= {high:g}")
        checked[name] = (low, high)
    return checked


def _check_samples(method: str, samples: int | None) -> int:
    n = DEFAULT_SAMPLES[method] if samples is None else int(samples)
    if n < MIN_SAMPLES[method]:
        what = "base points (a power of 2)" if method == "sobol" else "trajectories"
        raise IlsimError(f"{arg('samples')} {n}: too small for {method}; give at least {MIN_SAMPLES[method]} {what}")
    if method == "sobol" and n & (n - 1):
        low = 1 << (n.bit_length() - 1)
        raise IlsimError(f"{arg('samples')} {n}: Sobol' sampling needs a power of 2 (its convergence relies on it); "
                         f"use {low} or {2 * low}")
    return n


def draw_seed() -> int:
    """A fresh seed from the operating system's entropy (recorded, so the run can be repeated)."""
    return int(np.random.SeedSequence().generate_state(1)[0])


def sensitivity(
    model,
    ranges: Mapping[str, object],
    output: str,
    out: str | Path | None = None,
    *,
    method: str = "sobol",
    samples: int | None = None,
    seed: int | None = None,
    drop_failed: bool = False,
    second_order: bool = True,
    conf_level: float = 0.95,
    parameters: Mapping[str, float] | None = None,
    t_end: float | None = None,
    points: int | None = None,
    rtol: float | None = None,
    engine=None,
    atol: float | None = None,
    report: bool = True,
    client=None,
    scheduler: str | None = None,
    overwrite: bool = False,
) -> SensitivityResult:
    """Sobol' indices (S1, ST, S2) or Morris measures (mu, mu*, sigma) of ``output`` over uniform parameter ranges.

    ``ranges`` maps parameter names to ``(low, high)`` (or ``"LOW:HIGH"``); ``output`` is a numeric column
    of the per-patient table (see ``ilsim.patients.metrics``) or ``outcome=LABEL``. ``samples`` is the
    number of Sobol' base points (a power of 2; runs: N(2D+2), or N(D+2) without second order) or of
    Morris trajectories (runs: N(D+1)). With ``out``, writes indices.csv, indices.json,
    samples.parquet, indices.png and report.html atomically. The runs go in this process, or in chunks
    on a Dask cluster given as ``client`` (a ``dask.distributed.Client``) or ``scheduler``
    (``"tcp://HOST:PORT"``), with the same results.
    """
    from SALib.analyze import morris as morris_analyze  # lazy: heavy (SALib)
    from SALib.analyze import sobol as sobol_analyze
    from SALib.sample import morris as morris_sample
    from SALib.sample import sobol as sobol_sample

    if method not in METHODS:
        raise IlsimError(f"{arg('method')} '{method}': unknown method{did_you_mean(method, METHODS)}; choose sobol or morris")
    if out is not None:
        check_out(out, overwrite)
    if not 0 < conf_level < 1:
        raise IlsimError(f"conf_level must be between 0 and 1, got {conf_level:g}")
    compiled = models.compile(model)
    bounds = _check_ranges(compiled, ranges)
    names = list(bounds)
    n = _check_samples(method, samples)
    conditions = check_metric(compiled, output, arg("output"), [], allow_outcome=True)
    t_eval = output_times(compiled, t_end, points)
    engine = engine_for(compiled, rtol, atol, engine)
    p = base_parameters(compiled, parameters, names)
    if seed is None:
        seed = draw_seed()
    elif not (isinstance(seed, (int, np.integer)) and 0 <= seed < 2**32):
        raise IlsimError(f"{arg('seed')} must be a whole number from 0 to {2**32 - 1}, got {seed!r}")
    seed = int(seed)

    d = len(names)
    problem = {"num_vars": d, "names": names, "bounds": [list(bounds[k]) for k in names]}
    second = bool(second_order and method == "sobol" and d > 1)
    group = (2 * d + 2 if second else d + 2) if method == "sobol" else d + 1
    if n * group > MAX_RUNS:
        raise IlsimError(f"{arg('samples')} {n}: {n * group:,} runs, more than {MAX_RUNS:,}; use fewer samples")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SALib's advice on sample sizes: checked above, in ilsim's words
        if method == "sobol":
            X = sobol_sample.sample(problem, n, calc_second_order=second, seed=seed)
        else:
            X = morris_sample.sample(problem, n, num_levels=NUM_LEVELS, seed=seed)

    P = np.tile(p, (len(X), 1))
    for j, name in enumerate(names):
        P[:, compiled.parameters.index(name)] = X[:, j]
    rows = run_rows(compiled, P, t_eval, rtol=engine.settings()["rtol"], atol=engine.settings()["atol"],
                    engine=engine, conditions=conditions, client=client,
                    scheduler=scheduler, name="sensitivity")
    metrics = rows.metrics

    if output.startswith("outcome="):
        label = output.partition("=")[2].strip()
        y = np.where(metrics["outcome"] == FAILED, np.nan, (metrics["outcome"] == label).astype(float)).astype(float)
    else:
        y = metrics[output].to_numpy(dtype=float)
    ran = (metrics["outcome"] != FAILED).to_numpy()
    bad = ~ran | ~np.isfinite(y)
    reasons = metrics.loc[~ran, "status"].value_counts().to_dict()
    if (ran & ~np.isfinite(y)).any():
        reasons[f"{output} undefined (NaN)"] = int((ran & ~np.isfinite(y)).sum())
    keep = np.ones(len(y), dtype=bool)
    if bad.any():
        detail = "; ".join(f"{k}: {v}" for k, v in reasons.items())
        if not drop_failed:
            raise IlsimError(f"{int(bad.sum())} of {len(y)} runs failed or gave no value for {output} ({detail}); "
                             f"{method} indices need every run: narrow the {arg('ranges')} "
                             f"ranges, or pass {arg('drop_failed')} to drop "
                             "the sample groups with a failed run (the estimate is then biased)")
        keep = ~bad.reshape(-1, group).any(axis=1).repeat(group)
    kept_groups = int(keep.sum()) // group
    if kept_groups < 2:
        raise IlsimError(f"only {kept_groups} complete sample group(s) of {n} left after dropping failed runs; "
                         f"narrow the {arg('ranges')} ranges")
    if method == "sobol" and np.ptp(y[keep]) == 0:
        raise IlsimError(f"{arg('output')} {output}: the same value ({y[keep][0]:g}) in every run, so it has no variance to "
                         "apportion; choose another output or wider ranges")

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if method == "sobol":
            si = sobol_analyze.analyze(problem, y[keep], calc_second_order=second, num_resamples=NUM_RESAMPLES,
                                       conf_level=conf_level, seed=seed + 1)
            columns = ("S1", "S1_conf", "ST", "ST_conf")
        else:
            si = morris_analyze.analyze(problem, X[keep], y[keep], num_resamples=NUM_RESAMPLES, conf_level=conf_level,
                                        num_levels=NUM_LEVELS, seed=seed + 1)
            columns = ("mu", "mu_star", "mu_star_conf", "sigma")
    indices = pd.DataFrame({c: np.asarray(si[c], dtype=float) for c in columns}, index=pd.Index(names, name="parameter"))
    pairs = []
    if second:
        s2, s2c = np.asarray(si["S2"], dtype=float), np.asarray(si["S2_conf"], dtype=float)
        for i in range(d):
            for j in range(i + 1, d):
                pairs.append({"pair": [names[i], names[j]], "S2": _finite(s2[i, j]), "S2_conf": _finite(s2c[i, j])})
        for j, other in enumerate(names):  # symmetric in the table: S2[b] on row a is S2 of (a, b)
            indices[f"S2[{other}]"] = [s2[min(i, j), max(i, j)] if i != j else np.nan for i in range(d)]
            indices[f"S2_conf[{other}]"] = [s2c[min(i, j), max(i, j)] if i != j else np.nan for i in range(d)]

    samples_table = pd.DataFrame(X, columns=names, index=pd.RangeIndex(len(X), name="run"))
    samples_table["status"] = metrics["status"].to_numpy()
    samples_table["outcome"] = metrics["outcome"].to_numpy()
    samples_table[output] = y
    samples_table["used"] = keep
    info = {
        **model_record(compiled),
        "method": method,
        "sampler": "SALib.sample.sobol (Saltelli cross-sampling" + (", second order)" if second else ")")
                   if method == "sobol" else f"SALib.sample.morris ({NUM_LEVELS} levels)",
        "output": output,
        "ranges": {k: {"low": lo, "high": hi, "units": parameter_units(compiled, k), "distribution": "uniform"}
                   for k, (lo, hi) in bounds.items()},
        "samples": n,
        "seed": seed,
        "bootstrap_seed": seed + 1,
        "conf_level": conf_level,
        "num_resamples": NUM_RESAMPLES,
        "evaluated": len(y),
        "failed": int(bad.sum()),
        "failure_reasons": {str(k): int(v) for k, v in reasons.items()},
        "dropped_groups": int((len(y) - int(keep.sum())) // group),
        "used_runs": int(keep.sum()),
        "biased": bool(bad.any()),
        "indices": {name: {c: _finite(v) for c, v in row.items()} for name, row in indices.iterrows()},
        "S2": pairs,
        "parameters": {k: float(v) for k, v in (parameters or {}).items()},
        "t_end": float(t_eval[-1]),
        "output_points": len(t_eval),
        "time_units": compiled.spec.metadata.time_units,
        **run_record(engine, rows, "engine_method"),
    }
    result = SensitivityResult(indices, samples_table, info)
    if out is not None:
        write_sensitivity(result, out, report=report, overwrite=overwrite)
    return result


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def write_sensitivity(result: SensitivityResult, out: str | Path, *, report: bool = True, overwrite: bool = False) -> None:
    """indices.csv, indices.json, samples.parquet (and indices.png, report.html), written atomically."""
    from ilsim.report.sweep import plot_indices, sensitivity_report  # lazy: heavy (matplotlib)

    with atomic_folder(out, overwrite) as tmp:
        result.indices.to_csv(tmp / "indices.csv")
        write_json(result.info, tmp / "indices.json")
        result.samples.to_parquet(tmp / "samples.parquet")
        if report:
            figure = plot_indices(result, tmp / "indices.png")
            sensitivity_report(result, figure, tmp / "report.html")
