"""`ilsim cohort`: a complete result folder, and every bad input refused with exit code 2, one clear
message and nothing written."""

from __future__ import annotations

import html
import json
import re

import pandas as pd
import pytest

KP = "kirschner-panetta-1998"
FAST = ["--t-end", "100", "--points", "21"]


def test_cohort_writes_the_result_folder_and_prints_the_outcomes(cli, tmp_path):
    out = tmp_path / "kp"
    result = cli("cohort", KP, "--patients", "120", "--seed", "3", "--vary", "c=uniform(0.02, 0.05)",
                 "--vary", "a=lognormal(median=1.0, cv=0.2)", "--time-to", "T < 1", "--save-trajectories",
                 "--chunk-size", "50", *FAST, "--out", out)
    assert result.exit_code == 0, result.output
    assert "120 virtual patients, seed 3" in result.stdout and "tumour persists" in result.stdout
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    names = {p.name for p in out.iterdir()}
    assert {"summary.parquet", "cohort.json", "model.yaml", "trajectories.zarr", "figures", "report.html"} <= names
    summary = pd.read_parquet(out / "summary.parquet")
    assert len(summary) == 120 and summary.columns[:3].tolist() == ["patient", "c", "a"]
    info = json.loads((out / "cohort.json").read_text())
    assert info["chunks"]["count"] == 3 and info["time"] == {"t_end": 100.0, "points": 21, "units": "day"}
    assert info["time_to"] == ["T < 1"] and info["trajectories"] is True
    page = (out / "report.html").read_text()
    # every outcome label with its rule; 'tumour cleared' needs 300 days, the run lasts 100: said so
    assert "<tr><td>tumour cleared</td><td>if T &lt; 1 for the last 300 (day)</td></tr>" in page
    assert "<tr><td>tumour persists</td><td>if T &gt;= 1 at the end</td></tr>" in page
    undetermined = html.unescape(page[page.index("<tr><td>undetermined</td>"):])
    assert "This run lasts 100 day, shorter than the held_for window of 'tumour cleared' (300 day)" in undetermined
    # the population as a table: each drawn parameter in a row with its distribution, no raw JSON
    assert re.search(r"<tr><td>c</td><td>parameter</td><td>distribution = uniform, low = 0.02, high = 0.05", page)
    assert re.search(r"<tr><td>a</td><td>parameter</td><td>distribution = lognormal", page)
    assert '"parameters": {' not in page


def gpu_present() -> bool:
    from ilsim.engines.cuda import cuda_unavailable_reason

    return cuda_unavailable_reason() is None


BAD = [
    (["--patients", "0"], ["--patients", "at least 1", "got 0"]),
    (["--patients", "-5"], ["--patients", "got -5"]),
    (["--patients", "20000000"], ["20,000,000", "more than 10,000,000", "--force"]),
    (["--patients", "10", "--chunk-size", "0"], ["--chunk-size", "at least 1"]),
    (["--patients", "10", "--backend", "tpu"], ["--backend", "cpu, gpu", "'tpu'"]),
    (["--patients", "10", "--vary", "c=uniform(0.05, 0.02)"], ["--vary", "low (0.05) must be less than high (0.02)"]),
    (["--patients", "10", "--vary", "cc=uniform(0.02, 0.05)"], ["--vary", "unknown parameter or covariate 'cc'", "'c'"]),
    (["--patients", "10", "--vary", "c=gamma(2, 3)"], ["--vary", "unknown distribution 'gamma'"]),
    (["--patients", "10", "--time-to", "Tumour < 1"], ["--time-to", "unknown name 'Tumour'"]),
    (["--patients", "10", "--time-to", "T + 1"], ["--time-to", "is not a condition"]),
    (["--patients", "10", "--points", "1"], ["--points", "at least 2"]),
    (["--patients", "10", "--seed", "-1"], ["--seed", "from 0 to"]),
]


@pytest.mark.parametrize("args, fragments", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_refused_and_nothing_is_written(cli, refused, tmp_path, args, fragments):
    out = tmp_path / "kp"
    refused(cli("cohort", KP, *FAST, *args, "--out", out), *fragments)
    assert list(tmp_path.iterdir()) == []


def test_gpu_backend_without_a_gpu_says_to_use_the_cpu(cli, refused, tmp_path):
    if gpu_present():
        pytest.skip("a CUDA GPU is present here")
    refused(cli("cohort", KP, "--patients", "10", "--backend", "gpu", *FAST, "--out", tmp_path / "kp"),
            "--backend gpu", "no CUDA GPU", "cpu")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_not_written_by_ilsim_is_refused(cli, refused, tmp_path):
    out = tmp_path / "kp"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    refused(cli("cohort", KP, "--patients", "10", *FAST, "--out", out), "is not an ilsim result folder")
    assert (out / "mine.txt").read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["kp"]
