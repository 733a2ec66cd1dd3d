"""Sweeps and sensitivity analyses on Dask: the rows run in chunks on a cluster and come back as the
in-process run's table, value for value and in order; where they ran is recorded. Every command
(cohort, sweep, sensitivity) stops with a clear message, exit code 2, when no scheduler answers."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pandas as pd
import pytest

import ilsim
from ilsim.errors import IlsimError
from ilsim.patients.sweep import chunk_rows

KNOWN = Path(__file__).parent / "known_answers.yaml"  # y(1) = a + b, z(1) = Ishigami(x1, x2, x3), w blows up for k > 1
ISHIGAMI = {name: (-math.pi, math.pi) for name in ("x1", "x2", "x3")}
RUN_DEPENDENT = ("scheduler", "wall_time_s", "created")


def same_record(here: dict, there: dict) -> None:
    assert {k: v for k, v in here.items() if k not in RUN_DEPENDENT} == \
           {k: v for k, v in there.items() if k not in RUN_DEPENDENT}


@pytest.mark.parametrize(
    ("model", "grid", "options"),
    [
        ("reynolds-2006", {"kpg": "0.1:0.7:4", "P0": "0.5:2.0:3"}, {"metric": "D.final", "time_to": ["P < 0.01"]}),
        (KNOWN, {"k": "-1.2:2:5", "a": "0:1:2"}, {"metric": "w.final"}),  # k > 1 fails: the failed rows come back too
    ],
)
def test_a_sweep_on_a_cluster_gives_the_in_process_table(client, model, grid, options):
    there = ilsim.sweep(model, grid, client=client, **options)
    points = there.info["points"]
    assert chunk_rows(points, there.info["output_points"], 4, threads=2) <= points / 4  # several chunks per worker
    assert there.info["scheduler"] == f"Dask scheduler {client.scheduler.address}"
    here = ilsim.sweep(model, grid, **options)
    assert here.info["scheduler"] == "in-process"
    pd.testing.assert_frame_equal(there.table, here.table, check_exact=True)
    same_record(here.info, there.info)


def test_a_sensitivity_analysis_on_a_cluster_gives_the_in_process_indices(client):
    options = dict(method="morris", samples=8, seed=3)
    there = ilsim.sensitivity(KNOWN, ISHIGAMI, "z.final", scheduler=client.scheduler.address, **options)
    assert there.info["scheduler"] == f"Dask scheduler {client.scheduler.address}"
    here = ilsim.sensitivity(KNOWN, ISHIGAMI, "z.final", **options)
    pd.testing.assert_frame_equal(there.samples, here.samples, check_exact=True)
    pd.testing.assert_frame_equal(there.indices, here.indices, check_exact=True)
    same_record(here.info, there.info)


@pytest.mark.parametrize(
    ("command", "files"),
    [
        (["sweep", KNOWN, "--param", "a=0:1:9", "--metric", "y.final"], "sweep.json"),
        (["sensitivity", KNOWN, "--param", "a=0:1", "--param", "b=0:2", "--output", "y.final", "--samples", "16",
          "--seed", "1"], "indices.json"),
    ],
)
def test_the_commands_run_on_a_scheduler_and_record_it(cli, client, tmp_path, command, files):
    address = client.scheduler.address
    res = cli(*command, "--scheduler", address, "--out", tmp_path / "out", "--no-report")
    assert res.exit_code == 0, res.output
    assert f"Dask scheduler {address}" in res.stdout
    assert json.loads((tmp_path / "out" / files).read_text())["scheduler"] == f"Dask scheduler {address}"


@pytest.mark.parametrize(
    "command",
    [
        ["cohort", "kirschner-panetta-1998", "--patients", "10"],
        ["sweep", KNOWN, "--param", "a=0:1:3"],
        ["sensitivity", KNOWN, "--param", "a=0:1", "--param", "b=0:2", "--output", "y.final"],
    ],
)
def test_an_unreachable_scheduler_is_a_clear_error_and_nothing_is_written(cli, refused, unreachable, tmp_path, command):
    started = time.monotonic()
    result = cli(*command, "--scheduler", unreachable, "--out", tmp_path / "out")
    refused(result, f"--scheduler {unreachable}", "no Dask scheduler answered within 1 s", "leave out --scheduler")
    assert time.monotonic() - started < 30
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("run", [ilsim.sweep, ilsim.sensitivity])
def test_a_client_and_a_scheduler_address_together_are_refused(run):
    args = ({"a": "0:1:3"},) if run is ilsim.sweep else ({"a": (0, 1), "b": (0, 2)}, "y.final")
    with pytest.raises(IlsimError, match="a Dask client or a scheduler address, not both"):
        run(KNOWN, *args, client=object(), scheduler="tcp://127.0.0.1:1")
