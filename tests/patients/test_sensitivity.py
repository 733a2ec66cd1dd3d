"""`ilsim sensitivity`: Sobol' and Morris indices with known answers, seeds, failed runs, bad input."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ilsim

KNOWN = Path(__file__).parent / "known_answers.yaml"  # y(1) = a + b, z(1) = Ishigami(x1, x2, x3), w blows up for k > 1
LINEAR = {"a": (0.0, 1.0), "b": (0.0, 2.0), "c": (0.0, 1.0)}  # Var a = 1/12, Var b = 4/12, c has no effect
ISHIGAMI = {name: (-math.pi, math.pi) for name in ("x1", "x2", "x3")}
# Ishigami with a = 7, b = 0.1 (Saltelli et al. 2008, Global Sensitivity Analysis: The Primer, 4.8)
ISHIGAMI_S1 = {"x1": 0.3139, "x2": 0.4424, "x3": 0.0}
ISHIGAMI_ST = {"x1": 0.5576, "x2": 0.4424, "x3": 0.2437}


def test_sobol_indices_of_a_sum_are_the_variance_shares():
    result = ilsim.sensitivity(KNOWN, LINEAR, "y.final", samples=512, seed=1)
    frame = result.indices
    for name, exact in (("a", 0.2), ("b", 0.8), ("c", 0.0)):
        for index in ("S1", "ST"):
            assert abs(frame.at[name, index] - exact) <= max(frame.at[name, f"{index}_conf"], 1e-9), (name, index)
            assert frame.at[name, index] == pytest.approx(exact, abs=0.01)
    assert frame.at["a", "S2[b]"] == pytest.approx(0.0, abs=0.05)  # an additive output has no interaction
    assert result.info["evaluated"] == 512 * (2 * 3 + 2)


def test_sobol_indices_of_the_ishigami_function_match_the_published_values():
    result = ilsim.sensitivity(KNOWN, ISHIGAMI, "z.final", samples=1024, seed=3)
    frame = result.indices
    for name in ISHIGAMI:
        assert abs(frame.at[name, "S1"] - ISHIGAMI_S1[name]) <= frame.at[name, "S1_conf"]
        assert abs(frame.at[name, "ST"] - ISHIGAMI_ST[name]) <= frame.at[name, "ST_conf"]
    pairs = {tuple(p["pair"]): p["S2"] for p in result.info["S2"]}
    assert pairs[("x1", "x3")] == pytest.approx(0.2437, abs=0.1)  # x3 acts only through x1 (ST3 = S13)


def test_morris_measures_of_a_sum_are_the_ranges_and_rank_the_parameters():
    frame = ilsim.sensitivity(KNOWN, LINEAR, "y.final", method="morris", samples=20, seed=2).indices
    assert frame["mu_star"].to_dict() == pytest.approx({"a": 1.0, "b": 2.0, "c": 0.0}, abs=1e-9)
    assert frame["sigma"].max() < 1e-9  # a linear output: every elementary effect is the same
    assert list(frame["mu_star"].sort_values(ascending=False).index) == ["b", "a", "c"]


def test_the_same_seed_gives_identical_indices_and_a_missing_seed_is_drawn_and_recorded(tmp_path):
    first = ilsim.sensitivity(KNOWN, ISHIGAMI, "z.final", samples=64, seed=11)
    again = ilsim.sensitivity(KNOWN, ISHIGAMI, "z.final", samples=64, seed=11)
    pd.testing.assert_frame_equal(first.indices, again.indices)
    other = ilsim.sensitivity(KNOWN, ISHIGAMI, "z.final", samples=64, seed=12)
    assert not np.allclose(first.indices["S1"], other.indices["S1"])

    drawn = ilsim.sensitivity(KNOWN, LINEAR, "y.final", tmp_path / "sa", method="morris", samples=8)
    recorded = json.loads((tmp_path / "sa" / "indices.json").read_text())
    assert recorded["seed"] == drawn.info["seed"] and isinstance(recorded["seed"], int)
    replay = ilsim.sensitivity(KNOWN, LINEAR, "y.final", method="morris", samples=8, seed=recorded["seed"])
    pd.testing.assert_frame_equal(drawn.indices, replay.indices)


def test_an_outcome_label_is_analysed_as_a_zero_one_indicator():
    result = ilsim.sensitivity(KNOWN, {"a": (0.0, 1.0), "c": (0.0, 1.0)}, "outcome=y above 1.5", method="morris",
                               samples=16, seed=4)
    values = result.samples["outcome=y above 1.5"]
    assert set(values.unique()) == {0.0, 1.0}
    assert ((values == 1.0) == (result.samples["a"] > 0.5)).all()  # y(1) = a + 1 with b = 1
    assert result.indices.at["a", "mu_star"] > 0 and result.indices.at["c", "mu_star"] == 0


def test_failed_runs_stop_the_analysis_unless_dropped(cli, refused, tmp_path):
    args = ["sensitivity", KNOWN, "--param", "a=0:1", "--param", "k=-1:2", "--output", "y.final", "--samples", "32",
            "--seed", "5", "--out", tmp_path / "sa"]
    output = refused(cli(*args), "runs failed", "--drop-failed", "biased")
    assert "step size underflow" in output or "infinite" in output
    assert not (tmp_path / "sa").exists()

    result = ilsim.sensitivity(KNOWN, {"a": (0.0, 1.0), "k": (-1.0, 2.0)}, "y.final", tmp_path / "sa", samples=32, seed=5,
                               drop_failed=True)
    info = json.loads((tmp_path / "sa" / "indices.json").read_text())
    assert info["failed"] > 0 and info["biased"] and info["dropped_groups"] > 0
    assert info["failed"] == int((result.samples["outcome"] == "failed").sum())
    samples = pd.read_parquet(tmp_path / "sa" / "samples.parquet")
    assert not samples.loc[samples["outcome"] == "failed", "used"].any()
    assert samples["used"].sum() == info["used_runs"] == 6 * (32 - info["dropped_groups"])
    assert "biased" in (tmp_path / "sa" / "report.html").read_text()


def test_the_command_writes_indices_a_chart_and_a_report(cli, tmp_path):
    res = cli("sensitivity", KNOWN, "--param", "a=0:1", "--param", "b=0:2", "--output", "y.final", "--samples", "32",
              "--seed", "9", "--out", tmp_path / "sa")
    assert res.exit_code == 0, res.output
    assert "seed 9" in res.stdout
    folder = tmp_path / "sa"
    table = pd.read_csv(folder / "indices.csv", index_col="parameter")
    assert {"S1", "S1_conf", "ST", "ST_conf", "S2[b]"} <= set(table.columns)
    info = json.loads((folder / "indices.json").read_text())
    assert info["seed"] == 9 and info["method"] == "sobol" and info["indices"]["b"]["S1"] == pytest.approx(0.8, abs=0.05)
    assert info["S2"][0]["pair"] == ["a", "b"]
    assert (folder / "indices.png").stat().st_size > 0
    assert "data:image/png;base64," in (folder / "report.html").read_text()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--param", "aa=0:1", "--output", "y.final"], ["--param 'aa'", "no parameter 'aa'", "did you mean 'a'"]),
        (["--param", "a=0.1", "--output", "y.final"], ["--param 'a=0.1'", "NAME=LOW:HIGH"]),
        (["--param", "a=1:0", "--output", "y.final"], ["--param 'a=1:0'", "low bound must be below"]),
        (["--param", "a=0:1", "--param", "a=0:2", "--output", "y.final"], ["--param 'a'", "given twice"]),
        (["--param", "a=0:1", "--output", "y.fnal"], ["--output 'y.fnal'", "did you mean 'y.final'", "NAME.peak"]),
        (["--param", "a=0:1", "--output", "outcome=y above 2"], ["no outcome 'y above 2'", "y above 1.5"]),
        (["--param", "a=0:1", "--output", "y.final", "--samples", "8"], ["--samples 8", "too small", "at least 16"]),
        (["--param", "a=0:1", "--output", "y.final", "--samples", "100"], ["--samples 100", "power of 2", "64 or 128"]),
        (["--param", "a=0:1", "--output", "y.final", "--method", "morris", "--samples", "2"], ["--samples 2", "at least 4"]),
        (["--param", "a=0:1", "--output", "y.final", "--method", "sobl"], ["--method 'sobl'", "did you mean 'sobol'"]),
        (["--param", "c=0:1", "--output", "y.final"], ["--output y.final", "same value", "no variance"]),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(cli, refused, tmp_path, args, fragments):
    refused(cli("sensitivity", KNOWN, *args, "--out", tmp_path / "sa"), *fragments)
    assert not (tmp_path / "sa").exists()
