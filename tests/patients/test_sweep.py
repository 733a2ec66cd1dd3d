"""`ilsim sweep`: the Reynolds outcome map, agreement with ilsim.simulate, failed points, result files, bad input."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ilsim

KNOWN = Path(__file__).parent / "known_answers.yaml"  # w blows up before t = 1 when k > 1
# Reynolds et al. 2006, Fig. 5 (docs/scenarios/reynolds-2006.md): the published course at each (kpg [1/h], P0)
PUBLISHED = {(0.3, 1.0): "health", (0.3, 1.5): "aseptic death", (0.6, 1.0): "septic death"}


@pytest.fixture(scope="module")
def reynolds_map():
    """kpg = 0.1 .. 0.7 /h by 0.1, P0 = 0.5 .. 2 by 0.5 (the published points lie on the grid)."""
    return ilsim.sweep("reynolds-2006", {"kpg": "0.1:0.7:7", "P0": "0.5:2.0:4"}, metric="D.final")


def outcome_at(result, kpg, p0) -> str:
    row = result.table[np.isclose(result.table["kpg"], kpg) & np.isclose(result.table["P0"], p0)]
    assert len(row) == 1
    return row["outcome"].iloc[0]


def test_the_reynolds_outcome_map_has_the_papers_structure(reynolds_map):
    assert reynolds_map.info["points"] == 28 and not reynolds_map.info["failed"]
    for (kpg, p0), published in PUBLISHED.items():
        assert outcome_at(reynolds_map, kpg, p0) == published, (kpg, p0)
    assert outcome_at(reynolds_map, 0.1, 0.5) == "health"  # slow pathogen, small inoculum
    assert all(outcome_at(reynolds_map, 0.7, p0) == "septic death" for p0 in (0.5, 1.0, 1.5, 2.0))  # fast pathogen
    grid = reynolds_map.table["outcome"].to_numpy().reshape(7, 4)  # kpg (rows) x P0 (columns)
    for row in grid:  # at each growth rate, health only below some inoculum
        healthy = row == "health"
        assert not np.any(healthy[1:] & ~healthy[:-1])
    for column in grid.T:  # at each inoculum, septic death only above some growth rate
        septic = column == "septic death"
        assert not np.any(septic[:-1] & ~septic[1:])
    assert set(reynolds_map.info["outcomes"]) == {"septic death", "aseptic death", "health"}
    assert sum(reynolds_map.info["outcomes"].values()) == 28


def test_grid_points_agree_with_ilsim_simulate(reynolds_map):
    for kpg, p0 in PUBLISHED:
        ds = ilsim.simulate("reynolds-2006", parameters={"kpg": kpg, "P0": p0})
        row = reynolds_map.table[np.isclose(reynolds_map.table["kpg"], kpg) & np.isclose(reynolds_map.table["P0"], p0)].iloc[0]
        assert row["outcome"] == ds.attrs["outcome"]
        for name in ("P", "N", "D", "CA"):
            assert row[f"{name}.final"] == pytest.approx(float(ds[name][-1]), rel=1e-3, abs=1e-6), (kpg, p0, name)
            assert row[f"{name}.peak"] == pytest.approx(float(ds[name].max()), rel=1e-3, abs=1e-6), (kpg, p0, name)


def test_the_command_writes_table_record_figure_and_report(cli, tmp_path):
    res = cli("sweep", "reynolds-2006", "--param", "kpg=0.05:1.0:12", "--log", "kpg", "--metric", "D.final",
              "--time-to", "P < 0.01", "--out", tmp_path / "sw")
    assert res.exit_code == 0, res.output
    folder = tmp_path / "sw"
    table = pd.read_parquet(folder / "sweep.parquet")
    assert len(table) == 12 and table.index.name == "point"
    assert np.allclose(table["kpg"], np.logspace(np.log10(0.05), 0.0, 12))
    assert {"outcome", "status", "D.final", "N.peak", "first_time[P < 0.01]"} <= set(table.columns)
    csv = pd.read_csv(folder / "sweep.csv", index_col="point")
    assert list(csv.columns) == list(table.columns)
    info = json.loads((folder / "sweep.json").read_text())
    assert info["grid"]["kpg"]["spacing"] == "log" and info["grid"]["kpg"]["n"] == 12
    assert info["model_hash"] == ilsim.load("reynolds-2006").content_hash()
    assert info["engine"] == "batch" and info["rtol"] == 1e-8
    assert info["outcomes"] == table["outcome"].value_counts().to_dict()
    assert info["outcomes"]["health"] > 0 and info["outcomes"]["septic death"] > 0
    assert (folder / "outcome_map.png").stat().st_size > 0
    assert "data:image/png;base64," in (folder / "report.html").read_text()
    cleared = table["first_time[P < 0.01]"]
    assert cleared[table["outcome"] == "health"].notna().all()  # health means the pathogen was cleared
    assert cleared[table["outcome"] == "septic death"].isna().all()


def test_failed_points_keep_their_rows_and_reasons(cli, tmp_path):
    res = cli("sweep", KNOWN, "--param", "k=-1.2:2:5", "--param", "a=0:1:2", "--metric", "w.final", "--out", tmp_path / "sw")
    assert res.exit_code == 0, res.output
    assert "failed" in res.stdout
    table = pd.read_parquet(tmp_path / "sw" / "sweep.parquet")
    failed = table["outcome"] == "failed"
    assert list(table.loc[failed, "k"].unique()) == pytest.approx([1.2, 2.0])  # w = 1/(1 - k t) blows up at t = 1/k < 1
    assert table.loc[failed, "w.final"].isna().all() and table.loc[~failed, "w.final"].notna().all()
    assert np.allclose(table.loc[~failed, "w.final"], 1.0 / (1.0 - table.loc[~failed, "k"]), rtol=1e-5)
    info = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert info["outcomes"]["failed"] == 4 and len(info["failed"]) == 4
    assert all(f["reason"] and f["reason"] != "ok" and f["values"]["k"] > 1 for f in info["failed"])


def test_python_grid_of_explicit_values():
    result = ilsim.sweep(KNOWN, {"a": np.array([0.75, 0.0, 0.25])}, metric="y.final")
    assert list(result.table["a"]) == [0.0, 0.25, 0.75]  # sorted
    assert np.allclose(result.table["y.final"], result.table["a"] + 1.0)
    assert result.info["grid"]["a"]["spacing"] == "values"
    assert result.info["outcomes"] == {"y above 1.5": 1, "y at most 1.5": 2}


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--param", "kpgg=0.1:1:5"], ["--param 'kpgg'", "no parameter 'kpgg'", "did you mean 'kpg'"]),
        (["--param", "kpg=0.1:1"], ["--param 'kpg=0.1:1'", "NAME=LOW:HIGH:N"]),
        (["--param", "kpg=0.1:x:5"], ["--param 'kpg=0.1:x:5'", "must be numbers"]),
        (["--param", "kpg=0.1:1:2.5"], ["--param 'kpg=0.1:1:2.5'", "whole number"]),
        (["--param", "kpg=1:0.1:5"], ["--param 'kpg=1:0.1:5'", "low bound must be below"]),
        (["--param", "kpg=0.1:1:1"], ["--param kpg", "at least 2 points"]),
        (["--param", "P0=0:2:5", "--log", "P0"], ["--param P0", "log spacing needs positive bounds"]),
        (["--param", "kpg=0.1:1:5", "--log", "P0"], ["--log 'P0'", "not a swept parameter"]),
        (["--param", "kpg=0.1:1:3", "--param", "P0=0:1:3", "--param", "mun=0.01:0.1:3"], ["--param", "one or two"]),
        (["--param", "kpg=0.1:1:5", "--param", "kpg=0.2:1:5"], ["--param 'kpg'", "given twice"]),
        (["--param", "kpg=0.1:1:2000", "--param", "P0=0:2:1000"], ["2,000,000 points", "--force"]),
        (["--param", "kpg=0.1:1:5", "--metric", "D.fnal"], ["--metric 'D.fnal'", "did you mean 'D.final'", "NAME.peak"]),
        (["--param", "kpg=0.1:1:5", "--time-to", "Q < 1"], ["--time-to", "unknown name 'Q'"]),
        (["--param", "kpg=0.1:1:5", "--set", "kpg=0.3"], ["--set 'kpg'", "also varied"]),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(cli, refused, tmp_path, args, fragments):
    refused(cli("sweep", "reynolds-2006", *args, "--out", tmp_path / "sw"), *fragments)
    assert not (tmp_path / "sw").exists()
