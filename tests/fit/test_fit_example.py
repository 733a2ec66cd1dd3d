"""The built-in fitting example: recovering the parameters of alexander-wahl-2010 from synthetic noisy data.

Oracles: the truth the data were drawn from (the model's published values, examples/fitting/make_data.py)
must lie in every 95% profile interval; the best fit is at least as good as the truth (an optimum); the
fitted model file runs with `ilsim run` and reproduces the fitted values.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ilsim
from ilsim.fit.objective import Objective
from ilsim.fit.run import load_problem

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fitting" / "treg-fit.yaml"
TRUTH = {"beta": 200.0, "lambdaE": 1000.0, "muE": 0.25}
SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_example_recovers_the_truth(tmp_path):
    result = ilsim.fit(EXAMPLE, starts=2, seed=1, profiles=True, workers=1, out=tmp_path / "fit")
    table = result.table().set_index("parameter")
    for name, truth in TRUTH.items():
        row = table.loc[name]
        assert row["ci95_lower"] < truth < row["ci95_upper"], (name, row.to_dict())
        assert bool(row["identifiable"])
        assert row["ci95_upper"] / row["ci95_lower"] < 1.5  # 24 points of 10% noise pin each parameter down
    problem = load_problem(EXAMPLE)
    params = problem.parameters
    truth = Objective(problem)(params.scale(np.array([TRUTH[n] for n in params.names])))
    assert result.nllh <= truth.nllh + 1e-6
    saved = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert saved["best"]["parameters"] == pytest.approx(result.parameters)
    for name in ("report.html", "figures/waterfall.png", "figures/fit.png", "figures/profiles.png", "starts.parquet",
                 "results.nc", "parameters.csv"):
        assert (tmp_path / "fit" / name).is_file(), name
    # the fitted model is an ilsim model file: run at the fitted values it gives the fitted trajectories
    times = problem.simulations[0].times
    fitted = ilsim.simulate(tmp_path / "fit" / "model.yaml", t_eval=np.concatenate([[0.0], times]))
    best = Objective(problem)(result.x)
    rows = problem.simulations[0]
    for k, o in enumerate(problem.measurements.observable[rows.rows]):
        name = problem.observables[o].id
        assert fitted[name].values[rows.time_index[k] + 1] == pytest.approx(best.simulated[rows.rows[k]], rel=1e-5)
    assert not (tmp_path / "fit.partial").exists()


def test_fit_resumes_after_kill_9(tmp_path):
    out = tmp_path / "fit"
    work = Path(str(out) + ".partial")
    command = [sys.executable, "-m", "ilsim", "fit", str(EXAMPLE), "--starts", "4", "--seed", "3", "--workers", "1",
               "--out", str(out), "--no-report", "-q"]
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(work.glob("start_*.json"))) < 1 and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {f.name: f.read_text() for f in work.glob("start_*.json")}
    assert 1 <= len(before) < 4 and not out.exists()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    starts = pd.read_csv(out / "starts.csv")
    assert sorted(starts["start"]) == list(range(4))
    for text in before.values():  # the finished starts were kept, not run again
        record = json.loads(text)
        row = starts.set_index("start").loc[record["index"]]
        assert row["seconds"] == pytest.approx(record["seconds"]) and row["objective"] == pytest.approx(record["objective"])
    assert not work.exists()


def test_a_failing_start_is_recorded_not_fatal(shared_data):
    from ilsim.fit.multistart import local_fit
    from ilsim.fit.petab_io import load_petab

    folder = shared_data("petab-benchmarks") / "Crauste_CellSystems2017"
    problem = load_petab(folder / f"{folder.name}.yaml")
    objective = Objective(problem)
    lower, upper = problem.parameters.bounds()
    params = problem.parameters
    # a point near the optimum where the cell counts grow without bound and the integration fails
    x0 = params.scale(params.nominal[params.estimated]) + np.random.default_rng(16).uniform(-0.3, 0.3, len(lower))
    x0 = np.clip(x0, lower, upper)
    assert not np.isfinite(objective(x0).nllh)
    record = local_fit(objective, x0, lower, upper, 10)
    assert record["status"] == "failed" and "cannot be simulated" in record["message"]
