"""Broken fitting problems: one clear message each (file, row, column), exit code 2, nothing written."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

NAME = "Boehm_JProteomeRes2014"
PARAMS, MEAS, OBS = (f"parameters_{NAME}.tsv", f"measurementData_{NAME}.tsv", f"observables_{NAME}.tsv")


@pytest.fixture
def boehm(shared_data, tmp_path):
    folder = tmp_path / NAME
    shutil.copytree(shared_data("petab-benchmarks") / NAME, folder)
    for file in folder.iterdir():
        file.chmod(0o644)

    def edit(file: str, change) -> None:
        table = pd.read_csv(folder / file, sep="\t", dtype=str, keep_default_na=False)
        change(table)
        table.to_csv(folder / file, sep="\t", index=False)

    return folder / f"{NAME}.yaml", edit


def _refused_fit(cli, refused, problem, out, *fragments):
    output = refused(cli("fit", problem, "--starts", "2", "--out", out), *fragments)
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()
    return output


def test_unknown_observable(cli, refused, boehm, tmp_path):
    problem, edit = boehm
    edit(MEAS, lambda t: t.loc.__setitem__((3, "observableId"), "pSTAT5A_rl"))
    _refused_fit(cli, refused, problem, tmp_path / "out", MEAS, "row 5", "column 'observableId'", "'pSTAT5A_rl'")


def test_unknown_condition(cli, refused, boehm, tmp_path):
    problem, edit = boehm
    edit(MEAS, lambda t: t.loc.__setitem__((0, "simulationConditionId"), "nowhere"))
    _refused_fit(cli, refused, problem, tmp_path / "out", MEAS, "row 2", "column 'simulationConditionId'", "'nowhere'")


def test_lower_bound_above_upper(cli, refused, boehm, tmp_path):
    problem, edit = boehm
    edit(PARAMS, lambda t: t.loc.__setitem__((1, "lowerBound"), "1e6"))
    _refused_fit(cli, refused, problem, tmp_path / "out", PARAMS, "row 3", "column 'lowerBound'", "above upper bound")


def test_log_scaled_parameter_with_a_zero_bound(cli, refused, boehm, tmp_path):
    problem, edit = boehm
    edit(PARAMS, lambda t: t.loc.__setitem__((0, "lowerBound"), "0"))
    _refused_fit(cli, refused, problem, tmp_path / "out", PARAMS, "row 2", "column 'lowerBound'", "log10 scale")


def test_nan_measurement(cli, refused, boehm, tmp_path):
    problem, edit = boehm
    edit(MEAS, lambda t: t.loc.__setitem__((2, "measurement"), "NaN"))
    _refused_fit(cli, refused, problem, tmp_path / "out", MEAS, "row 4", "column 'measurement'", "must be a number")


def test_negative_data_with_log_normal_noise(cli, refused, boehm, tmp_path):
    problem, edit = boehm
    edit(OBS, lambda t: t.loc.__setitem__((0, "observableTransformation"), "log10"))
    edit(MEAS, lambda t: t.loc.__setitem__((1, "measurement"), "-3.5"))
    _refused_fit(cli, refused, problem, tmp_path / "out", MEAS, "row 3", "column 'measurement'", "log-normal", "-3.5")


def test_problem_failing_the_petab_linter(cli, refused, boehm, tmp_path):
    problem, edit = boehm
    edit(PARAMS, lambda t: t.loc.__setitem__((2, "estimate"), "2"))  # estimate must be 0 or 1
    _refused_fit(cli, refused, problem, tmp_path / "out", f"{NAME}.yaml", "petab linter")


def test_unsupported_feature_is_named(cli, refused, boehm, tmp_path):
    problem, edit = boehm
    edit(OBS, lambda t: t.loc.__setitem__((0, "noiseDistribution"), "laplace"))
    _refused_fit(cli, refused, problem, tmp_path / "out", OBS, "row 2", "column 'noiseDistribution'", "'laplace'",
                 "not supported")


def test_model_file_fit_section_bounds(cli, refused, tmp_path):
    model = tmp_path / "m.yaml"
    (tmp_path / "d.csv").write_text("observable,time,measurement\nE,1,2\n")
    model.write_text("include: [alexander-wahl-2010]\nmetadata: {name: x, time_units: day}\nfit:\n  measurements: d.csv\n"
                     "  parameters:\n    - {name: muE, lower: 0, upper: 1, scale: log10}\n")
    _refused_fit(cli, refused, model, tmp_path / "out", "m.yaml", "fit.parameters", "positive bounds")


def test_model_file_unknown_observable_in_data(cli, refused, tmp_path):
    model = tmp_path / "m.yaml"
    (tmp_path / "d.csv").write_text("observable,time,measurement\nE,1,2\nQ,2,3\n")
    model.write_text("include: [alexander-wahl-2010]\nmetadata: {name: x, time_units: day}\nfit:\n  measurements: d.csv\n"
                     "  parameters:\n    - {name: muE, lower: 0.01, upper: 1}\n")
    _refused_fit(cli, refused, model, tmp_path / "out", "d.csv", "row 3", "column 'observable'", "'Q'")
