"""Cohorts on Dask: the same chunks on a cluster give the same patients as in-process, even when a
worker is killed mid-run (a scheduler that does not answer: test_sweep_sensitivity_dask.py)."""

from __future__ import annotations

import os
import signal

import pandas as pd

import ilsim
from ilsim.patients.run import run_cohort

KP = "kirschner-panetta-1998"
OPTIONS = dict(patients=400, seed=5, chunk_size=20, vary=["c=uniform(0.02, 0.05)"], time_to=["T < 1"], t_end=200.0,
               points=51)


def test_a_cluster_with_a_killed_worker_gives_every_patient_once_as_in_process(client, tmp_path):
    out = tmp_path / "kp"
    victim = next(iter(client.run(os.getpid).values()))
    killed = {}

    def kill_a_worker_after_the_first_chunk(done: int, total: int) -> None:
        if done and not killed:
            os.kill(victim, signal.SIGKILL)
            killed["patients done"] = done

    result = run_cohort(ilsim.compile(KP), client=client, out=out, report=False,
                        progress=kill_a_worker_after_the_first_chunk, **OPTIONS)
    assert 0 < killed.get("patients done", 0) < 400, f"the worker was not killed mid-run: {killed}"
    assert victim not in client.run(os.getpid).values()  # the nanny started a new worker process

    summary = result.summary
    assert summary["patient"].tolist() == list(range(400))  # each patient exactly once, in order
    assert result.info["scheduler"].startswith("Dask scheduler tcp://")
    here = run_cohort(ilsim.compile(KP), **OPTIONS).summary
    pd.testing.assert_frame_equal(summary, here, check_exact=True)


def test_a_scheduler_address_runs_the_same_cohort(client):
    options = {**OPTIONS, "patients": 60}
    there = run_cohort(ilsim.compile(KP), scheduler=client.scheduler.address, **options)
    assert there.info["scheduler"] == f"Dask scheduler {client.scheduler.address}"
    pd.testing.assert_frame_equal(there.summary, run_cohort(ilsim.compile(KP), **options).summary, check_exact=True)
