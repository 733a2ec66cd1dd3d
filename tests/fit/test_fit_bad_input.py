"""Broken fitting problems: one clear message each (file, row, column), exit code 2, nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

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


CASES = {  # name: (edits as (file, row, column, value), fragments of the one message)
    "unknown observable": ([(MEAS, 3, "observableId", "pSTAT5A_rl")],
                           [MEAS, "row 5", "column 'observableId'", "'pSTAT5A_rl'"]),
    "unknown condition": ([(MEAS, 0, "simulationConditionId", "nowhere")],
                          [MEAS, "row 2", "column 'simulationConditionId'", "'nowhere'"]),
    "lower bound above upper": ([(PARAMS, 1, "lowerBound", "1e6")],
                                [PARAMS, "row 3", "column 'lowerBound'", "above upper bound"]),
    "log-scaled parameter with a zero bound": ([(PARAMS, 0, "lowerBound", "0")],
                                               [PARAMS, "row 2", "column 'lowerBound'", "log10 scale"]),
    "NaN measurement": ([(MEAS, 2, "measurement", "NaN")], [MEAS, "row 4", "column 'measurement'", "must be a number"]),
    "negative data with log-normal noise": ([(OBS, 0, "observableTransformation", "log10"), (MEAS, 1, "measurement", "-3.5")],
                                            [MEAS, "row 3", "column 'measurement'", "log-normal", "-3.5"]),
    "fails the petab linter": ([(PARAMS, 2, "estimate", "2")], [f"{NAME}.yaml", "petab linter", "estimate"]),
    "unsupported feature": ([(OBS, 0, "noiseDistribution", "laplace")],
                            [OBS, "row 2", "column 'noiseDistribution'", "'laplace'", "not supported"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_broken_petab_problem(cli, refused, boehm, tmp_path, case):
    problem, edit = boehm
    edits, fragments = CASES[case]
    for file, row, column, value in edits:
        edit(file, lambda t, row=row, column=column, value=value: t.loc.__setitem__((row, column), value))
    _refused_fit(cli, refused, problem, tmp_path / "out", *fragments)


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


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_workers_below_one_are_refused(cli, refused, tmp_path, workers):
    out = tmp_path / "out"
    problem = Path(__file__).resolve().parents[2] / "examples" / "fitting" / "treg-fit.yaml"
    output = refused(cli("fit", problem, "--starts", "1", "--workers", workers, "--out", out), "--workers", ">= 1")
    assert workers in output
    assert not out.exists() and not out.with_name("out.partial").exists()


MODEL_FIT = ("include: [alexander-wahl-2010]\nmetadata: {name: x, time_units: day}\nfit:\n  measurements: d.csv\n"
             "  parameters:\n    - {name: muE, lower: 0.01, upper: 1}\n")


@pytest.mark.parametrize("table, fragments", [
    ("observable,time,measurement\nE,1,2\nE,2,abc\n", ["d.csv", "row 3", "column 'measurement'", "'abc' is not a number"]),
    ("observable,time,measurement\nE,soon,2\n", ["d.csv", "row 2", "column 'time'", "'soon' is not a number"]),
    ("", ["d.csv", "cannot read the measurements table"]),
])
def test_measurements_that_are_not_numbers_or_no_table(cli, refused, tmp_path, table, fragments):
    (tmp_path / "d.csv").write_text(table)
    (tmp_path / "m.yaml").write_text(MODEL_FIT)
    _refused_fit(cli, refused, tmp_path / "m.yaml", tmp_path / "out", *fragments)


def test_a_parameter_listed_twice_is_refused(cli, refused, tmp_path):
    (tmp_path / "d.csv").write_text("observable,time,measurement\nE,1,2\n")
    (tmp_path / "m.yaml").write_text(MODEL_FIT + "    - {name: muE, lower: 0.1, upper: 2}\n")
    _refused_fit(cli, refused, tmp_path / "m.yaml", tmp_path / "out", "m.yaml", "fit.parameters[1].name",
                 "'muE' is listed twice")


def test_a_damaged_resume_folder_is_refused_or_its_damaged_starts_run_again(cli, refused, tmp_path):
    problem = Path(__file__).resolve().parents[2] / "examples" / "fitting" / "treg-fit.yaml"
    out, work = tmp_path / "out", tmp_path / "out.partial"
    work.mkdir()
    (work / "manifest.json").write_text("{bad")
    refused(cli("fit", problem, "--starts", "2", "--workers", "1", "--no-report", "--out", out),
            "manifest.json", "cannot be read as the manifest of an interrupted fit")
    assert not out.exists()
    (work / "manifest.json").unlink()
    (work / "start_0001.json").write_text("{bad")  # not a record: that start runs again
    res = cli("fit", problem, "--starts", "2", "--workers", "1", "--no-report", "--quiet", "--out", out)
    assert res.exit_code == 0, res.output
    starts = pd.read_csv(out / "starts.csv")
    assert sorted(starts["start"]) == [0, 1] and (starts["status"] != "failed").all()
    assert not work.exists()
