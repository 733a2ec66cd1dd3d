"""The `ilsim` command on user mistakes: exit code 2, one clear message, no traceback, and result
folders written completely or not at all (an existing folder that ilsim did not write is never touched).

Most tests run the Typer app in-process (fast); the `real_ilsim` tests run the installed executable.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ilsim


def leftovers(folder: Path) -> list[str]:
    """Temporary folders a run may leave beside its --out (.NAME.XXXX.partial, .NAME.PID.old)."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".partial", ".old")))


def failure_time(message: str) -> float:
    match = re.search(r"\bt = ([-+0-9.eE]+)", message)
    assert match, f"no time in: {message}"
    return float(match.group(1))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------ ilsim run


def test_run_writes_a_complete_result_folder(write_model, cli, tmp_path):
    out = tmp_path / "res"
    result = cli("run", write_model(), "--out", out, "--no-report")
    assert result.exit_code == 0, result.output
    assert {"results.nc", "results.csv", "summary.json", "model.yaml"} <= {p.name for p in out.iterdir()}
    assert leftovers(tmp_path) == []


def test_run_of_a_broken_model_names_file_and_field_and_writes_nothing(write_model, cli, refused, tmp_path):
    model = write_model({'rate: "k_sec*Teff"': 'rate: "k_sec*Tef"'})
    out = tmp_path / "res"
    refused(cli("run", model, "--out", out), "error", f"{model}: processes[3].rate: unknown name 'Tef'",
            "did you mean 'Teff'?")
    assert not out.exists() and leftovers(tmp_path) == []


def test_run_of_a_missing_file_names_it(cli, refused, tmp_path):
    missing = tmp_path / "nowhere.yaml"
    refused(cli("run", missing, "--out", tmp_path / "res"), f"{missing}: no such file")
    assert not (tmp_path / "res").exists()


BAD_OPTIONS = [
    (["--set", "k_sek=1"], ["--set", "unknown parameter 'k_sek'", "did you mean 'k_sec'?"]),
    (["--set", "IL2_0=fast"], ["--set", "value of 'IL2_0' must be a number", "fast"]),
    (["--set", "k_sec"], ["--set", "NAME=VALUE", "k_sec"]),
    (["--set", "=3"], ["--set", "NAME=VALUE"]),
    (["--method", "RK54"], ["unknown method 'RK54'", "did you mean 'RK45'?"]),
    (["--method", "lsoda"], ["unknown method 'lsoda'", "LSODA"]),
    (["--t-end", "-1"], ["t_end must be positive"]),
    (["--t-end", "nan"], ["t_end"]),
    (["--t-end", "inf"], ["t_end"]),
    (["--points", "1"], ["points must be at least 2"]),
    (["--rtol", "-1e-6"], ["rtol"]),
    (["--atol", "-1e-9", "--method", "RK45"], ["atol"]),
    (["--t-end", "soon"], ["--t-end", "number"]),  # refused by the option parser itself
    (["--points", "many"], ["--points", "integer"]),
]


@pytest.mark.parametrize("args, fragments", BAD_OPTIONS, ids=[" ".join(args) for args, _ in BAD_OPTIONS])
def test_run_refuses_bad_options_with_exit_2_and_writes_nothing(write_model, cli, refused, tmp_path, args, fragments):
    out = tmp_path / "res"
    refused(cli("run", write_model(), "--out", out, "--no-report", *args), *fragments)
    assert not out.exists() and leftovers(tmp_path) == []


def test_run_refuses_negative_tolerance_in_the_model_file(write_model, cli, refused, tmp_path):
    model = write_model({"points: 11}": "points: 11, atol: -1.0e-9}"})
    refused(cli("run", model, "--out", tmp_path / "res", "--method", "RK45"), "atol")
    assert not (tmp_path / "res").exists() and leftovers(tmp_path) == []


def test_run_refuses_an_out_folder_that_ilsim_did_not_write(write_model, cli, refused, tmp_path):
    out = tmp_path / "thesis"
    (out / "chapters").mkdir(parents=True)
    (out / "draft.txt").write_text("three years of work\n")
    (out / "chapters" / "one.tex").write_text("\\chapter{One}\n")
    before = snapshot(out)
    refused(cli("run", write_model(), "--out", out, "--no-report"), str(out), "not an ilsim result folder")
    assert snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["chapters", "draft.txt"]
    assert leftovers(tmp_path) == []


def test_run_refuses_an_out_that_is_a_file(write_model, cli, refused, tmp_path):
    out = tmp_path / "notes.txt"
    out.write_text("keep me\n")
    refused(cli("run", write_model(), "--out", out, "--no-report"), str(out))
    assert out.read_text() == "keep me\n"
    assert leftovers(tmp_path) == []


def test_run_refuses_an_out_inside_a_file(write_model, cli, refused, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me\n")
    out = tmp_path / "notes.txt" / "res"
    refused(cli("run", write_model(), "--out", out, "--no-report"), "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "keep me\n"
    assert leftovers(tmp_path) == []


def test_run_replaces_an_earlier_result_folder(write_model, cli, tmp_path):
    out = tmp_path / "res"
    assert cli("run", write_model(), "--out", out, "--no-report").exit_code == 0
    result = cli("run", write_model(), "--out", out, "--no-report", "--set", "k_sec=0.4")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["parameters"]["k_sec"] == 0.4
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("method", ["LSODA", "BDF", "RK45"])
def test_run_that_fails_to_integrate_reports_time_and_variable_and_writes_nothing(blowup_model, cli, refused, tmp_path,
                                                                                  method):
    out = tmp_path / "res"
    text = refused(cli("run", blowup_model, "--out", out, "--method", method, "--points", "3"),
                   "integration failed at t = ", "variables involved: x = ")
    assert 0.8 <= failure_time(text) <= 1.05, text  # x = 1/(1 - t) blows up at t = 1
    assert not out.exists() and leftovers(tmp_path) == []


def test_failed_run_leaves_the_earlier_result_at_out_intact(write_model, blowup_model, cli, refused, tmp_path):
    out = tmp_path / "res"
    assert cli("run", write_model(), "--out", out, "--no-report").exit_code == 0
    before = snapshot(out)
    refused(cli("run", blowup_model, "--out", out), "integration failed")
    assert snapshot(out) == before
    assert leftovers(tmp_path) == []


def test_run_that_fails_while_writing_leaves_no_partial_folder_and_keeps_the_earlier_result(
        write_model, cli, tmp_path, monkeypatch):
    out = tmp_path / "res"
    assert cli("run", write_model(), "--out", out, "--no-report").exit_code == 0
    before = snapshot(out)

    def broken_report(*args, **kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr("ilsim.report.html.write_report", broken_report)
    result = cli("run", write_model(), "--out", out, "--set", "k_sec=0.4")  # with the report, which fails
    assert isinstance(result.exception, RuntimeError) and "disk is full" in str(result.exception)
    assert snapshot(out) == before
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------- the installed `ilsim` executable


def ilsim_command() -> list[str]:
    exe = shutil.which("ilsim") or str(Path(sys.executable).with_name("ilsim"))
    return [exe] if Path(exe).exists() else [sys.executable, "-m", "ilsim"]


def run_real(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}  # as in a pipe, a CI log
    return subprocess.run([*ilsim_command(), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_real_ilsim_validate_exits_2_with_one_line_per_problem(write_model, tmp_path):
    deep = tmp_path / "a folder with a rather long name" / "models of interleukin signalling"
    deep.mkdir(parents=True)
    model = write_model({'rate: "k_sec*Teff"': 'rate: "k_sec*Tef"'}, name="il2 model.yaml")
    model = model.rename(deep / model.name)
    proc = run_real("validate", model, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout == ""
    lines = [line.strip() for line in proc.stderr.splitlines()]
    # the whole message on one line, however narrow the (absent) terminal: a path folded in two cannot be found
    assert f"{model}: processes[3].rate: unknown name 'Tef' (did you mean 'Teff'?)" in lines, proc.stderr


def test_real_ilsim_run_integration_failure_is_one_clean_message(blowup_model, tmp_path):
    out = tmp_path / "res"
    proc = run_real("run", blowup_model, "--out", out, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "Warning" not in proc.stderr, proc.stderr  # e.g. SciPy's ODEintWarning: the error says it all
    message = " ".join(proc.stderr.split())
    assert "integration failed at t = " in message and "variables involved: x = " in message, message
    assert 0.8 <= failure_time(message) <= 1.05, message
    assert not out.exists() and leftovers(tmp_path) == []


def test_errors_name_python_arguments_from_python_and_options_from_the_command_line(cli, tmp_path):
    """One message, in the words of whoever called: the argument from Python, the option from the CLI."""
    with pytest.raises(ilsim.IlsimError, match=r"^grid: nothing to sweep"):
        ilsim.sweep("reynolds-2006", {})
    with pytest.raises(ilsim.IlsimError, match=r"^ranges c: the low bound must be below the high bound"):
        ilsim.sensitivity("kirschner-panetta-1998", {"c": (0.05, 0.02)}, "T.final")
    result = cli("sensitivity", "kirschner-panetta-1998", "--param", "c=0.05:0.02", "--output", "T.final",
                 "--out", tmp_path / "sa")
    assert result.exit_code == 2 and "--param 'c=0.05:0.02': the low bound must be below the high bound" in result.output
    assert not (tmp_path / "sa").exists()


def test_the_console_summary_keeps_every_number_whole_at_80_columns(cli, tmp_path):
    """A narrow terminal folds names and units, never a number: the nadir of systolic pressure and its time
    stand on the pressure's own line."""
    result = cli("run", "aldesleukin", "--out", tmp_path / "a", "--no-report")
    assert result.exit_code == 0
    line = next(row for row in result.output.splitlines() if "systolic_bp" in row)
    assert "67.86" in line and "74.75" in line
    assert "times ('at') in hour" in result.output
