"""Multistart on a Dask cluster (two worker processes): the same starts and results as the in-process path with
the same seed, failed starts recorded, finished starts written by the client and resumed from.

Oracle: the in-process run (forked workers or this process) of the same problem, seed and settings; a start is
a deterministic function of its start point, so every record must match exactly wherever it ran.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ilsim
from ilsim.errors import IlsimError
from ilsim.fit.multistart import run_starts
from ilsim.fit.objective import Objective
from ilsim.fit.run import load_problem

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fitting" / "treg-fit.yaml"
SAME = ("index", "x0", "x", "objective", "nllh", "status", "message", "evaluations")  # all but the wall time


@pytest.fixture(scope="module")
def client():
    """A client of a local cluster of two single-threaded worker processes, not the default client."""
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with distributed.Client(cluster, set_as_default=False) as c:
            yield c


def _same(a: list[dict], b: list[dict]) -> None:
    assert [{k: r[k] for k in SAME} for r in a] == [{k: r[k] for k in SAME} for r in b]


def test_starts_on_the_cluster_match_the_in_process_starts(client, tmp_path):
    here = ilsim.fit(EXAMPLE, starts=4, seed=3, workers=1, max_evaluations=30)
    there = ilsim.fit(EXAMPLE, starts=4, seed=3, client=client, max_evaluations=30, out=tmp_path / "fit", report=False)
    _same(there.starts, here.starts)
    assert there.llh == here.llh
    saved = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert saved["best"]["parameters"] == pytest.approx(here.parameters)
    assert not (tmp_path / "fit.partial").exists()


def test_failed_starts_are_recorded_on_the_cluster(client, shared_data):
    folder = shared_data("petab-benchmarks") / "Crauste_CellSystems2017"
    objective = Objective(load_problem(folder / f"{folder.name}.yaml"))
    # seed 1: starts 3 and 4 lie where Crauste's cell counts grow without bound, so their integration fails
    here = run_starts(objective, 6, 1, workers=1, max_evaluations=5)
    there = run_starts(objective, 6, 1, client=client, max_evaluations=5)
    assert [r["status"] for r in here].count("failed") >= 1
    _same(there, here)


def test_the_cluster_resumes_from_finished_starts(client, tmp_path):
    objective = Objective(load_problem(EXAMPLE))
    work = tmp_path / "work"
    here = run_starts(objective, 4, 5, work=work, workers=1, max_evaluations=30)
    for index in (1, 3):  # as if the fit had been killed before these two finished
        (work / f"start_{index:04d}.json").unlink()
    kept = work / "start_0000.json"
    marked = {**json.loads(kept.read_text()), "seconds": -1.0}  # a start run again would carry its real wall time
    kept.write_text(json.dumps(marked))
    done = []
    there = run_starts(objective, 4, 5, work=work, client=client, max_evaluations=30, progress=lambda d, n: done.append(d))
    _same(there, here)
    assert there[0]["seconds"] == -1.0 and done == [2, 3, 4]
    assert sorted(f.name for f in work.glob("start_*.json")) == [f"start_{i:04d}.json" for i in range(4)]
    assert json.loads((work / "start_0003.json").read_text())["x"] == here[3]["x"]


def test_a_client_and_a_scheduler_together_are_refused(client):
    with pytest.raises(IlsimError, match="not both"):
        ilsim.fit(EXAMPLE, starts=1, client=client, scheduler="local")


def test_cli_dask_local_runs_the_starts_on_a_local_cluster(cli, tmp_path):
    out = tmp_path / "fit"
    done = cli("fit", EXAMPLE, "--starts", "2", "--seed", "3", "--max-evaluations", "30", "--dask", "local",
               "--workers", "2", "--no-report", "-q", "--out", out)
    assert done.exit_code == 0, done.output
    here = ilsim.fit(EXAMPLE, starts=2, seed=3, workers=1, max_evaluations=30)
    saved = json.loads((out / "fit.json").read_text())
    assert saved["best"]["parameters"] == pytest.approx(here.parameters, rel=1e-12)


def test_cli_a_scheduler_that_does_not_answer_is_refused_and_nothing_written(cli, refused, tmp_path):
    import socket

    with socket.socket() as s:  # a port where no scheduler listens
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    out = tmp_path / "fit"
    refused(cli("fit", EXAMPLE, "--starts", "2", "--dask", address, "--out", out), address, "no Dask scheduler answered")
    assert not out.exists() and not (tmp_path / "fit.partial").exists()
