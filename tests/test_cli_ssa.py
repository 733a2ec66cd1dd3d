"""`ilsim run MODEL --engine ssa`: a complete ensemble result folder, and every mistake refused with exit code 2,
a message naming the option or the field, and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
IMMUNE = ROOT / "examples" / "immune-birth-death.yaml"
INOCULUM = ROOT / "examples" / "inoculum-clearance.yaml"


def test_run_writes_an_ensemble_with_statistics_extinction_and_first_passage(cli, tmp_path):
    out = tmp_path / "res"
    result = cli("run", INOCULUM, "--engine", "ssa", "--trajectories", "400", "--seed", "7", "--out", out,
                 "--points", "11", "--t-end", "0.4", "--set", "B0=2", "--time-to", "B < 1")
    assert result.exit_code == 0, result.output
    assert {"results.nc", "statistics.csv", "summary.json", "model.yaml", "report.html"} <= {p.name for p in out.iterdir()}
    assert (out / "figures" / "fan.png").stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 7 and summary["trajectories"] == 400 and summary["method_used"] == "direct"
    ds = xr.open_dataset(out / "results.nc")
    assert ds.sizes["trajectory"] == 400 and ds.attrs["seed"] == 7
    final = ds["B"].values[:, -1]
    extinct = summary["extinction"]["B"]
    assert extinct["extinct"] == int((final == 0).sum())  # the summary reads the trajectories written
    lo, hi = extinct["ci95"]
    assert lo < extinct["probability"] < hi
    # every trajectory extinct by the end has a first time at which B < 1, and no other has
    first = ds["first_time"].values[:, 0]
    assert np.isfinite(first[final == 0]).all()
    assert summary["first_passage"]["B < 1"]["reached"] == int(np.isfinite(first).sum())
    ds.close()
    again = tmp_path / "again"
    assert cli("run", INOCULUM, "--engine", "ssa", "--trajectories", "400", "--seed", "7", "--out", again,
               "--points", "11", "--t-end", "0.4", "--set", "B0=2", "--no-report").exit_code == 0
    with xr.open_dataset(again / "results.nc") as second, xr.open_dataset(out / "results.nc") as first_run:
        assert np.array_equal(second["B"].values, first_run["B"].values)  # the same seed, the same numbers


BAD = [
    (["--seed", "abc"], ["--seed"]),
    (["--seed", "1.5"], ["--seed"]),
    (["--seed", "-1"], ["--seed must be at least 0"]),
    (["--trajectories", "0"], ["--trajectories must be at least 1"]),
    (["--trajectories", "1000000000"], ["--trajectories", "GiB", "fewer trajectories", "--dask local"]),
    (["--chunk-size", "10"], ["--chunk-size needs --dask"]),
    (["--dask", "local", "--chunk-size", "0"], ["--chunk-size must be at least 1"]),
    (["--dask", "local", "--format", "netcdf"], ["--format netcdf", "results.zarr"]),
    (["--dask", "tcp://127.0.0.1:9", "--trajectories", "10"], ["--dask", "no Dask scheduler answered"]),
    (["--set", "B0=2.5"], ["species 'B'", "2.5", "not a whole number"]),
    (["--set", "B0=-3"], ["species 'B'", "not a non-negative"]),
    (["--method", "gillespie"], ["--method", "unknown stochastic method 'gillespie'"]),
    (["--system-size", "0"], ["--system-size must be a positive"]),
    (["--rtol", "1e-6"], ["--rtol", "the stochastic engine has none"]),
    (["--time-to", "Q < 1"], ["--time-to", "unknown name 'Q'"]),
    (["--time-to", "B + 1"], ["--time-to", "not a condition"]),
    (["--format", "hdf5"], ["--format must be one of auto, netcdf, zarr"]),
]


@pytest.mark.parametrize("args, fragments", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_stochastic_options_are_refused_and_nothing_is_written(cli, refused, tmp_path, args, fragments):
    out = tmp_path / "res"
    refused(cli("run", INOCULUM, "--engine", "ssa", "--out", out, *args), *fragments)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []


def test_stochastic_options_need_the_stochastic_engine(cli, refused, tmp_path):
    refused(cli("run", IMMUNE, "--trajectories", "10", "--out", tmp_path / "a"), "--trajectories", "--engine ssa")
    refused(cli("run", IMMUNE, "--engine", "gillespie", "--out", tmp_path / "b"), "--engine must be ode or ssa")
    assert list(tmp_path.iterdir()) == []


def test_a_model_that_cannot_be_made_discrete_is_refused_naming_the_process(write_model, cli, refused, tmp_path):
    model = write_model()  # conftest's MINIMAL: IL2_0 = 1, k_decay ... ; a rate reading t makes it non-discrete
    text = model.read_text().replace('rate: "k_sec*Teff"', 'rate: "k_sec*Teff*t"')
    model.write_text(text)
    refused(cli("run", model, "--engine", "ssa", "--out", tmp_path / "res"), "process 'IL-2 secretion'", "reads the time t")
    assert not (tmp_path / "res").exists()


def test_cohort_with_the_stochastic_engine_is_the_api_cohort_at_the_same_seed(cli, tmp_path):
    import pandas as pd

    import ilsim
    from ilsim.engines.ssa import SsaEngine

    out = tmp_path / "cohort"
    args = ("--patients", "60", "--seed", "3", "--vary", "lam=uniform(3, 5)", "--t-end", "0.4", "--points", "5")
    result = cli("cohort", INOCULUM, *args, "--engine", "ssa", "--chunk-size", "25", "--out", out, "--no-report")
    assert result.exit_code == 0, result.output
    info = json.loads((out / "cohort.json").read_text())
    assert info["engine"]["name"] == "ssa" and info["engine"]["seed"] == 3  # the cohort's seed seeds the trajectories
    written = pd.read_parquet(out / "summary.parquet")
    api = ilsim.cohort(INOCULUM, patients=60, seed=3, vary="lam=uniform(3, 5)", t_end=0.4, points=5, chunk_size=60,
                       engine=SsaEngine(seed=3), report=False)
    pd.testing.assert_frame_equal(written.reset_index(drop=True)[api.columns], api, check_dtype=False)
    # whole counts, spread by chance (the ODE engine's would be smooth in lam)
    assert (written["B.final"] == np.round(written["B.final"])).all() and written["B.final"].nunique() > 5


@pytest.mark.parametrize("extra, words", [
    (["--engine", "ssa", "--rtol", "1e-6"], ["--rtol", "the stochastic engine has none"]),
    (["--system-size", "2"], ["--system-size", "--engine ssa"]),
    (["--engine", "gillespie"], ["--engine must be batch, ssa or tissue"]),
    (["--engine", "ssa", "--vary", "B0=uniform(1, 3)"], ["species 'B'", "not a whole number"]),
])
def test_cohort_engine_mistakes_are_refused_with_nothing_written(cli, tmp_path, extra, words):
    out = tmp_path / "cohort"
    result = cli("cohort", INOCULUM, "--patients", "5", "--seed", "1", "--vary", "lam=uniform(3, 5)", *extra, "--out", out)
    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.output
    assert not out.exists()


def test_run_writes_zarr_that_reads_back_as_the_ensemble(cli, tmp_path):
    import ilsim
    from ilsim import ensemble
    from ilsim.engines.ssa import SsaEngine

    out = tmp_path / "res"
    args = ("--set", "B0=2", "--points", "6", "--t-end", "0.4", "--time-to", "B < 1")
    result = cli("run", INOCULUM, "--engine", "ssa", "--trajectories", "1500", "--seed", "5", *args,
                 "--format", "zarr", "--out", out, "--no-report")
    assert result.exit_code == 0, result.output
    assert (out / "results.zarr").is_dir() and not (out / "results.nc").exists()
    assert json.loads((out / "summary.json").read_text())["results"] == "results.zarr"
    back = xr.open_zarr(out / "results.zarr")
    assert back["B"].chunks[0] == (1000, 500)  # chunked by trajectories: a reader loads the ones it needs
    # the same run in memory (the API, the same seed): every variable, coordinate and attribute but the wall time
    ds, _ = ensemble.run(INOCULUM, tmp_path / "api", engine=SsaEngine(trajectories=1500, seed=5), report=False,
                         parameters={"B0": 2}, points=6, t_end=0.4, time_to=["B < 1"], format="netcdf")
    loaded = back.load()
    for d in (loaded, ds):
        d.attrs.pop("wall_time_s")
    xr.testing.assert_identical(loaded, ds)
    assert ilsim  # the package imported from this worktree


def test_auto_format_writes_zarr_above_the_size_and_netcdf_below(tmp_path, monkeypatch):
    from ilsim import ensemble
    from ilsim.engines.ssa import SsaEngine

    small = dict(engine=SsaEngine(trajectories=50, seed=1), report=False, points=3, t_end=0.1)
    ensemble.run(INOCULUM, tmp_path / "small", **small)
    assert (tmp_path / "small" / "results.nc").is_file()
    monkeypatch.setattr(ensemble, "ZARR_ABOVE", 50 * 3 * 8 - 1)  # one species' trajectories already exceed it
    ds, summary = ensemble.run(INOCULUM, tmp_path / "big", **small)
    assert summary["results"] == "results.zarr"
    xr.testing.assert_equal(xr.open_zarr(tmp_path / "big" / "results.zarr").load(), ds)


def test_a_delayed_event_is_refused_not_fired_at_its_trigger(cli, refused, tmp_path):
    # the driver has no queue of pending firings: the event used to fire at once, the delay dropped silently
    model = tmp_path / "delayed.yaml"
    model.write_text("metadata: {name: delayed, time_units: day}\n"
                     "species: [{name: X, kind: cell, units: cells, initial: 5}]\n"
                     "parameters: [{name: d, value: 0.1, units: 1/day}]\n"
                     "processes: [{name: death, rate: d*X, consumes: {X: 1}}]\n"
                     "events: [{name: low, when: X < 3, delay: 1, set: {X: 10}}]\n")
    out = tmp_path / "res"
    refused(cli("run", model, "--engine", "ssa", "--trajectories", "3", "--out", out),
            "the stochastic engine does not run events with a delay", "event 'low'")
    assert not out.exists()
