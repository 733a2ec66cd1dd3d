"""Resuming a cohort: after `kill -9` the same command computes no finished chunk again and gives the
same summary as an uninterrupted run; other settings are refused with a clear message."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

import ilsim
from ilsim.patients import store
from ilsim.patients.run import run_cohort

KP = "kirschner-panetta-1998"
ARGS = ["--patients", "600", "--seed", "11", "--chunk-size", "50", "--vary", "c=uniform(0.02, 0.05)",
        "--time-to", "T < 1", "--t-end", "200", "--points", "51"]
OPTIONS = dict(patients=600, seed=11, chunk_size=50, vary=["c=uniform(0.02, 0.05)"], time_to=["T < 1"], t_end=200.0,
               points=51)


def command(out, *extra) -> list[str]:
    return [sys.executable, "-m", "ilsim", "cohort", KP, *ARGS, "--out", str(out), "--no-report", "--quiet", *extra]


def chunks_in(work) -> list[int]:
    return sorted(int(p.name[6:12]) for p in work.glob("chunk-*.parquet")) if work.exists() else []


def test_a_killed_run_resumes_without_recomputing_finished_chunks(tmp_path):
    out = tmp_path / "kp"
    work = store.work_folder(out)
    run = subprocess.Popen(command(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not chunks_in(work) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(run.pid, signal.SIGKILL)
    run.communicate()
    assert run.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    kept = chunks_in(work)
    assert kept and len(kept) < 12 and not out.exists()
    (work / ".chunk-000011.parquet.abcd.tmp").write_bytes(b"torn")  # what a kill during a write leaves

    again = subprocess.run(command(out), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert not work.exists()
    info = json.loads((out / "cohort.json").read_text())
    assert info["chunks"]["reused"] == kept
    assert info["chunks"]["computed"] == [i for i in range(12) if i not in kept]

    whole = run_cohort(ilsim.compile(KP), out=tmp_path / "whole", report=False, **OPTIONS)
    resumed = pd.read_parquet(out / "summary.parquet")
    pd.testing.assert_frame_equal(resumed, whole.summary, check_exact=True)
    assert (out / "summary.parquet").read_bytes() == (tmp_path / "whole" / "summary.parquet").read_bytes()


class Interrupt(Exception):
    pass


def interrupted_run(out, after: int, **options) -> None:
    """A run stopped (as by Ctrl-C) once ``after`` patients are done."""

    def progress(done: int, total: int) -> None:
        if done >= after:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_cohort(ilsim.compile(KP), out=out, report=False, progress=progress, **{**OPTIONS, **options})


def test_other_settings_are_refused_and_the_recorded_seed_is_reused(tmp_path, cli, refused):
    out = tmp_path / "kp"
    work = store.work_folder(out)
    interrupted_run(out, after=50, patients=150)
    assert chunks_in(work) == [0]
    before = {p.name: p.read_bytes() for p in work.iterdir()}

    result = cli("cohort", KP, "--patients", "150", *ARGS[4:], "--seed", "12", "--out", out, "--no-report")
    message = " ".join(refused(result, "other settings").split())
    assert "other settings" in message and "seed: 12 now, 11 there" in message
    assert "another --out" in message and "remove" in message
    assert {p.name: p.read_bytes() for p in work.iterdir()} == before and not out.exists()

    # the same command without --seed resumes with the seed the work folder recorded
    options = {**OPTIONS, "patients": 150, "seed": None}
    messages = []
    result = run_cohort(ilsim.compile(KP), out=out, report=False, notify=messages.append, **options)
    assert result.info["seed"] == 11 and result.info["chunks"]["reused"] == [0]
    assert any("resuming: 1 of 3 chunks" in m for m in messages)
    whole = ilsim.cohort(KP, **{**OPTIONS, "patients": 150})
    pd.testing.assert_frame_equal(result.summary, whole, check_exact=True)


def test_a_folder_that_is_not_a_work_folder_is_left_alone(tmp_path):
    out = tmp_path / "kp"
    work = store.work_folder(out)
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    with pytest.raises(ilsim.IlsimError, match="not the work folder of an ilsim cohort run"):
        run_cohort(ilsim.compile(KP), out=out, report=False, **{**OPTIONS, "patients": 10})
    assert (work / "notes.txt").read_text() == "mine" and not out.exists()
