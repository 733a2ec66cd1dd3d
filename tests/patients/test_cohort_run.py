"""Virtual-patient cohorts in-process: one row per patient, the same patients whatever the chunking,
agreement with the ODE engine, the result folder's files, and failed patients recorded, not fatal."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import ilsim
from ilsim.patients.run import default_chunk_size, plan_chunks, run_cohort

KP = "kirschner-panetta-1998"
# Kirschner & Panetta 1998: antigenicity c spans 0..0.05 (Table 1); 500 days: long enough for 'tumour cleared'
# (T < 1 held for 300 days) to be reached by some patients and not by others
COMMON = dict(vary="c=uniform(0.005, 0.05)", time_to="T < 1", t_end=500.0, points=51)


@pytest.fixture(scope="module")
def kp():
    return ilsim.compile(KP)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, kp):
    out = tmp_path_factory.mktemp("cohort") / "kp"
    summary = ilsim.cohort(kp, patients=300, seed=7, chunk_size=100, out=out, save_trajectories=True, **COMMON)
    return out, summary


def test_one_row_per_patient_with_drawn_values_and_metrics(folder):
    _, summary = folder
    assert list(summary["patient"]) == list(range(300))
    assert summary.columns[:2].tolist() == ["patient", "c"]
    assert summary["c"].between(0.005, 0.05).all() and summary["c"].nunique() == 300
    for column in ("status", "outcome", "T.peak", "T.nadir_time", "E.final", "tumour_burden.peak", "first_time[T < 1]"):
        assert column in summary.columns
    assert set(summary["outcome"]) <= {"tumour cleared", "tumour persists", "effector expansion without bound (toxic IL-2)",
                                      "undetermined"}
    cleared = summary["outcome"] == "tumour cleared"
    assert cleared.any() and (~cleared).any()  # c up to 0.05 clears some tumours, not all
    assert summary.loc[cleared, "first_time[T < 1]"].notna().all()


def test_the_same_patients_whatever_the_chunking(kp, folder):
    _, summary = folder
    other = ilsim.cohort(kp, patients=300, seed=7, chunk_size=37, **COMMON)
    pd.testing.assert_frame_equal(other, summary, check_exact=True)


def test_a_patient_agrees_with_the_ode_engine(folder):
    _, summary = folder
    row = summary.iloc[5]
    ds = ilsim.simulate(KP, t_end=500.0, points=51, parameters={"c": row["c"]})
    assert row["T.peak"] == pytest.approx(float(ds["T"].max()), rel=1e-4)
    assert row["E.final"] == pytest.approx(float(ds["E"][-1]), rel=1e-4)


def test_the_result_folder_holds_every_file(folder, kp):
    out, summary = folder
    assert not out.with_name(out.name + ".partial").exists()  # the work folder is removed on success
    pd.testing.assert_frame_equal(pd.read_parquet(out / "summary.parquet"), summary, check_exact=True)
    info = json.loads((out / "cohort.json").read_text())
    assert info["seed"] == 7 and info["patients"] == 300 and info["model_hash"] == kp.spec.content_hash()
    assert info["chunks"] == {"size": 100, "count": 3, "reused": [], "computed": [0, 1, 2]}
    assert info["engine"]["rtol"] == kp.spec.simulation.rtol and info["engine"]["backend"] == "cpu"
    assert info["population"]["parameters"]["c"] == {"distribution": "uniform", "low": 0.005, "high": 0.05}
    counts = summary["outcome"].value_counts()
    assert {k: v["count"] for k, v in info["outcomes"].items()} == counts.to_dict()
    assert sum(v["fraction"] for v in info["outcomes"].values()) == pytest.approx(1.0)
    assert info["failed"]["count"] == 0
    assert ilsim.compile(out / "model.yaml").spec.content_hash() == kp.spec.content_hash()
    for name in ("outcomes.png", "distributions.png", "trajectories.png"):
        assert (out / "figures" / name).stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert "seed <code>7</code>" in html and "tumour cleared" in html and "data:image/png;base64" in html
    assert "src='http" not in html


def test_trajectories_are_chunked_by_patient_with_time_and_units(folder):
    import xarray as xr

    out, summary = folder
    ds = xr.open_zarr(out / "trajectories.zarr")
    assert set(ds.data_vars) == {"E", "T", "I", "tumour_burden"}
    assert ds["T"].dims == ("patient", "time") and ds["T"].shape == (300, 51)
    assert ds["T"].encoding["chunks"] == (100, 51)
    assert ds["time"].attrs["units"] == "day" and ds["T"].attrs["units"] == "cells"
    assert ds.attrs["seed"] == 7
    np.testing.assert_array_equal(ds["T"].isel(time=-1).values, summary["T.final"].to_numpy())
    np.testing.assert_array_equal(ds["tumour_burden"].max("time").values, summary["tumour_burden.peak"].to_numpy())


def test_the_seed_is_drawn_and_recorded_when_not_given(kp, tmp_path):
    first = run_cohort(kp, patients=20, out=tmp_path / "a", report=False, vary=["c=uniform(0.02, 0.05)"], t_end=50.0,
                       points=11)
    seed = json.loads((tmp_path / "a" / "cohort.json").read_text())["seed"]
    assert isinstance(seed, int) and seed == first.info["seed"]
    again = ilsim.cohort(kp, patients=20, seed=seed, vary="c=uniform(0.02, 0.05)", t_end=50.0, points=11)
    pd.testing.assert_frame_equal(again, first.summary, check_exact=True)


def test_failed_patients_are_recorded_with_their_reason_and_do_not_sink_the_run(kp, tmp_path):
    # logistic growth r2*T*(1 - b*T) with b = -B < 0 blows up when 1/T = -B + (1 + B) exp(-r2 t) reaches 0,
    # at t* = ln((1 + B)/B)/r2: before t_end = 50 days (r2 = 0.18/day) for B > 1/(exp(9) - 1) = 1.2e-4
    result = run_cohort(kp, patients=200, seed=3, vary=["b=uniform(-2.5e-4, 1e-9)"], chunk_size=64, t_end=50.0,
                        points=11, out=tmp_path / "out", report=True)
    summary = result.summary
    doomed, safe = summary["b"] < -1.5e-4, summary["b"] > -1.0e-4
    assert doomed.sum() > 20 and safe.sum() > 20
    assert (summary.loc[doomed, "outcome"] == "failed").all() and (summary.loc[safe, "status"] == "ok").all()
    assert summary.loc[doomed, "T.peak"].isna().all() and summary.loc[doomed, "b"].notna().all()
    failing = summary["status"] != "ok"
    failed = result.info["failed"]
    assert failed["count"] == failing.sum() == sum(failed["by_reason"].values())
    assert [f["patient"] for f in failed["patients"]] == summary.loc[failing, "patient"].tolist()
    assert [f["reason"] for f in failed["patients"]] == summary.loc[failing, "status"].tolist()
    assert result.info["outcomes"]["failed"]["count"] == failing.sum()
    assert "Failed patients" in (tmp_path / "out" / "report.html").read_text()


def test_trajectories_need_an_output_folder(kp):
    with pytest.raises(ilsim.IlsimError, match="give out"):
        run_cohort(kp, patients=5, save_trajectories=True)


def test_default_chunks_stay_under_100_mb_of_trajectories():
    assert plan_chunks(10, 4) == [(0, 0, 4), (1, 4, 8), (2, 8, 10)]
    assert default_chunk_size(1_000_000, 2, 4) == 50_000  # about 20 chunks
    assert default_chunk_size(500, 101, 4) == 500  # one chunk: at least 1000 patients each
    size = default_chunk_size(1_000_000, 1001, 40)
    assert size * 1001 * 40 * 8 <= 100e6 < (size + 1) * 1001 * 40 * 8
