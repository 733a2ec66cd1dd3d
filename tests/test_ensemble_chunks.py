"""Stochastic ensembles in chunks (``ilsim.ensemble_chunks``, ``ilsim run --engine ssa --dask``): the same numbers as
the ensemble run in memory at the same seed, whatever the chunk size and the workers, written into results.zarr
chunk by chunk, statistics gathered from the chunks equal to those of the whole, and a failed chunk recorded with
its reason while the rest of the ensemble is kept. The oracle is ``ilsim.ensemble.run`` (everything in memory)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ilsim import ensemble, ensemble_chunks
from ilsim.engines.ssa import SsaEngine

ROOT = Path(__file__).resolve().parents[1]
INOCULUM = ROOT / "examples" / "inoculum-clearance.yaml"
SETTINGS = dict(report=False, parameters={"B0": 2}, points=6, t_end=0.4, time_to=["B < 1"])
N, SEED = 300, 5


@pytest.fixture(scope="module")
def in_memory(tmp_path_factory):
    out = tmp_path_factory.mktemp("memory") / "res"
    ds, summary = ensemble.run(INOCULUM, out, engine=SsaEngine(trajectories=N, seed=SEED), format="netcdf", **SETTINGS)
    return ds, summary, pd.read_csv(out / "statistics.csv", index_col=0)


@pytest.fixture(scope="module")
def local_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as lc, \
            distributed.Client(lc, set_as_default=False) as client:
        yield client


def same_ensemble(chunked: xr.Dataset, whole: xr.Dataset) -> None:
    a, b = chunked.load().copy(), whole.copy()
    assert {k: v for k, v in a.attrs.items() if k not in ("chunk_size", "scheduler")} | {"wall_time_s": 0} == \
        b.attrs | {"wall_time_s": 0}  # the run's attributes, not a chunk's (its trajectories, ...)
    a.attrs, b.attrs = {}, {}
    xr.testing.assert_identical(a, b)


def same_statistics(folder: Path, whole: pd.DataFrame) -> None:
    table = pd.read_csv(folder / "statistics.csv", index_col=0)
    assert list(table.columns) == list(whole.columns)
    quantiles = [c for c in table.columns if ".q" in c]
    assert np.array_equal(table[quantiles].values, whole[quantiles].values, equal_nan=True)  # exact, read back
    np.testing.assert_allclose(table.values, whole.values, rtol=1e-12, atol=1e-12)  # mean, sd: combined sums


@pytest.mark.parametrize("chunk_size", [16, 37, 300])
def test_chunks_in_process_give_the_ensemble_run_in_memory(in_memory, tmp_path, chunk_size):
    whole, summary, stats = in_memory
    ds, chunked = ensemble_chunks.run(INOCULUM, tmp_path / "res", engine=SsaEngine(trajectories=N, seed=SEED),
                                      chunk_size=chunk_size, **SETTINGS)
    same_ensemble(ds, whole)
    same_statistics(tmp_path / "res", stats)
    for key in ("extinction", "first_passage", "failed_count", "trajectories_finished", "seed"):
        assert chunked[key] == summary[key], key
    assert chunked["final"]["B"] == pytest.approx(summary["final"]["B"], rel=1e-12)
    stored = xr.open_zarr(tmp_path / "res" / "results.zarr")
    assert stored["B"].chunks[0][0] == chunk_size  # a Zarr chunk per chunk of trajectories
    assert json.loads((tmp_path / "res" / "summary.json").read_text())["chunks"] == -(-N // chunk_size)


def test_chunks_on_a_dask_cluster_give_the_same_numbers(in_memory, local_cluster, tmp_path):
    whole, summary, stats = in_memory
    ds, chunked = ensemble_chunks.run(INOCULUM, tmp_path / "res", engine=SsaEngine(trajectories=N, seed=SEED),
                                      dask=local_cluster, chunk_size=64, **SETTINGS)
    same_ensemble(ds, whole)
    same_statistics(tmp_path / "res", stats)
    assert chunked["scheduler"].startswith("Dask scheduler") and chunked["first_passage"] == summary["first_passage"]


@pytest.mark.parametrize("where", ["in-process", "cluster"])
def test_a_failed_chunk_is_recorded_with_its_reason_and_the_rest_kept(in_memory, tmp_path, monkeypatch, request, where):
    whole, _, _ = in_memory
    client = request.getfixturevalue("local_cluster") if where == "cluster" else None
    run_chunk = ensemble_chunks.simulate_chunk

    def crashing(task, p, lo, hi):
        if lo == 100:
            raise RuntimeError("worker lost its memory")
        return run_chunk(task, p, lo, hi)

    monkeypatch.setattr(ensemble_chunks, "simulate_chunk", crashing)
    ds, summary = ensemble_chunks.run(INOCULUM, tmp_path / "res", engine=SsaEngine(trajectories=N, seed=SEED),
                                      chunk_size=50, dask=client, **SETTINGS)
    status = ds["status"].values
    lost = slice(100, 150)
    assert (status[lost] == ensemble_chunks.CHUNK_FAILED).all() and (np.delete(status, np.r_[lost]) == 0).all()
    assert "chunk 2 (trajectories 100..149) failed: RuntimeError: worker lost its memory" in str(ds["status_text"].values[120])
    assert np.isnan(ds["B"].values[lost]).all()
    assert summary["chunks_failed"] == 1 and summary["failed_count"] == 50 and summary["trajectories_finished"] == N - 50
    # the statistics are those of the trajectories that ran (the oracle: the in-memory ensemble without them)
    kept = whole.isel(trajectory=np.r_[0:100, 150:N])
    expected = ensemble.statistics(kept)
    table = pd.read_csv(tmp_path / "res" / "statistics.csv", index_col=0)
    np.testing.assert_allclose(table["B.mean"].values, expected["B"].sel(statistic="mean").values, rtol=1e-12)
    np.testing.assert_array_equal(table["B.q50"].values, expected["B"].sel(statistic="q50").values)
    assert summary["extinction"] == ensemble.extinction(kept)


def test_the_cli_runs_an_ensemble_in_chunks_on_a_local_cluster(cli, in_memory, tmp_path):
    whole, _, stats = in_memory
    out = tmp_path / "res"
    result = cli("run", INOCULUM, "--engine", "ssa", "--trajectories", str(N), "--seed", str(SEED), "--set", "B0=2",
                 "--points", "6", "--t-end", "0.4", "--time-to", "B < 1", "--dask", "local", "--chunk-size", "100",
                 "--out", out, "--no-report")
    assert result.exit_code == 0, result.output
    assert "results.zarr" in result.output and not (out / "results.nc").exists()
    same_ensemble(xr.open_zarr(out / "results.zarr"), whole)
    same_statistics(out, stats)
