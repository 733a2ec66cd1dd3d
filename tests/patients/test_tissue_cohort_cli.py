"""`ilsim cohort|sweep MODEL --engine tissue`: replicates and sweeps of a tissue model from the command line.

Oracles: a single tissue run with a row's recorded seed (engines/tissue/engine.run) reproduces that row, bit for bit;
the Python API gives the CLI's numbers for the same seed; with diffusion fast against everything else the field is
uniform, so at steady state secretion = decay + uptake gives the mean, N q / (k V + N U V_cell), for every secretion
rate of a sweep; a Dask cluster of worker processes gives the in-process numbers; an interrupted cohort resumes to the
uninterrupted result.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import ilsim
from ilsim.engines.tissue.engine import TissueEngine, run
from ilsim.engines.tissue.setup import build
from ilsim.patients import store
from ilsim.patients.run import run_cohort

MODEL = """
metadata: {name: secreting, time_units: minute}
parameters:
  - {name: k_sec, value: 2.0}
  - {name: unbound, value: 1.0}
species:
  - {name: Th, kind: cell, initial: 0}
  - {name: IL2, kind: cytokine, initial: 0}
tissue:
  domain: {dimensions: 2, size: [200, 200], voxel: 20}
  fields: [{species: IL2, diffusion: 100, decay: 0.1}]
  agents:
    - {species: Th, speed: 1, division: 0.05, death: 0.05, secretion: [{field: IL2, rate: 1.0}],
       uptake: [{field: IL2, rate: 0.5}], placement: {kind: random, count: 20}}
  dt: 0.5
  t_end: 4
  save_every: 1
  seed: 7
  parameters: {k_sec: "agents[Th].secretion[0].rate"}
"""

# steady state: N cells that neither move nor divide, diffusion fast across the 200 um square
N, R, U, K, SIZE, VOXEL, DT = 30, 5.0, 2.0, 0.05, 200.0, 20.0, 0.02
STEADY = f"""
metadata: {{name: steady, time_units: minute}}
parameters: [{{name: q, value: 1000.0}}]
species: [{{name: T, kind: cell, initial: 0}}, {{name: IL2, kind: cytokine, initial: 0}}]
tissue:
  domain: {{dimensions: 2, size: [{SIZE}, {SIZE}], voxel: {VOXEL}}}
  fields: [{{species: IL2, diffusion: 1.0e5, decay: {K}}}]
  agents:
    - {{species: T, radius: {R}, secretion: [{{field: IL2, rate: 1.0}}], uptake: [{{field: IL2, rate: {U}}}],
       placement: {{kind: random, count: {N}}}}}
  dt: {DT}
  t_end: 100  # nine relaxation times, 1 / (k + N U V_cell / V) = 11 min
  save_every: 20
  seed: 1
  parameters: {{q: "agents[T].secretion[0].rate"}}
"""


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "secreting.yaml"
    path.write_text(MODEL)
    return path


def single_run(model, seed: int, values=None):
    """The tissue run of one replicate, from its own seed alone."""
    spec = ilsim.compile(model).spec
    return run(build(spec, values=values, seed=seed), seed=seed)


def test_cli_cohort_equals_the_python_api_and_each_replicate_its_single_run(model, tmp_path, cli):
    res = cli("cohort", model, "--engine", "tissue", "--patients", 3, "--seed", 5, "--out", tmp_path / "c", "--no-report")
    assert res.exit_code == 0, res.output
    summary = pd.read_parquet(tmp_path / "c" / "summary.parquet")
    api = ilsim.cohort(model, patients=3, seed=5, engine=TissueEngine(), report=False)
    pd.testing.assert_frame_equal(summary, api, check_exact=True)
    info = json.loads((tmp_path / "c" / "cohort.json").read_text())
    assert info["seed"] == 5 and info["engine"]["name"] == "tissue" and info["engine"]["seed"] == 5
    assert info["time"] == {"t_end": 4.0, "points": 5, "units": "minute"}  # the section's t_end and save_every
    assert summary["seed"].nunique() == 3
    for _, row in summary.iterrows():
        one = single_run(model, int(row["seed"]))
        mean, peak = one.field_stats()
        assert row["Th.final"] == one.counts()[-1, 0]
        assert row["IL2.final"] == mean[-1, 0] and row["max[IL2].final"] == peak[-1, 0]
        assert row["max[IL2].peak"] == peak.max() and row["IL2.peak"] == mean.max()


def test_cli_sweep_equals_the_python_api(model, tmp_path, cli):
    res = cli("sweep", model, "--engine", "tissue", "--seed", 3, "--param", "k_sec=0.5:4:3", "--metric",
              "max[IL2].final", "--out", tmp_path / "s")
    assert res.exit_code == 0, res.output
    table = pd.read_parquet(tmp_path / "s" / "sweep.parquet")
    api = ilsim.sweep(model, {"k_sec": "0.5:4:3"}, engine=TissueEngine(seed=3), report=False).table
    pd.testing.assert_frame_equal(table, api, check_exact=True)
    info = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert info["seed"] == 3 and info["engine"] == "tissue" and info["metric"] == "max[IL2].final"
    assert (tmp_path / "s" / "outcome_map.png").stat().st_size > 0
    row = table.iloc[2]
    one = single_run(model, int(row["seed"]), {"k_sec": 4.0})
    assert row["IL2.final"] == one.field_stats()[0][-1, 0]


def test_more_secretion_raises_the_mean_field_to_the_steady_state_mass_balance(tmp_path):
    path = tmp_path / "steady.yaml"
    path.write_text(STEADY)
    rates = [500.0, 1000.0, 2000.0]
    table = ilsim.sweep(path, {"q": rates}, engine=TissueEngine(), report=False).table
    assert list(table.status) == ["ok"] * 3
    v_cell, volume = 4 / 3 * math.pi * R**3, SIZE * SIZE * VOXEL  # 2-D: one voxel thick
    expected = N * np.array(rates) / (K * volume + N * U * v_cell)  # secreted = decayed + taken up
    final = table["IL2.final"].to_numpy()
    assert np.all(np.diff(final) > 0)
    np.testing.assert_allclose(final, expected, rtol=0.01)
    np.testing.assert_allclose(table["max[IL2].final"], final, rtol=0.01)  # fast diffusion: a uniform field


def test_a_local_dask_cluster_gives_the_in_process_numbers(model, tmp_path, cli):
    here = cli("sweep", model, "--engine", "tissue", "--param", "k_sec=0.5:4:4", "--out", tmp_path / "here", "--no-report")
    there = cli("sweep", model, "--engine", "tissue", "--param", "k_sec=0.5:4:4", "--out", tmp_path / "there",
                "--no-report", "--dask", "local")
    assert here.exit_code == 0 and there.exit_code == 0, here.output + there.output
    a, b = (pd.read_parquet(tmp_path / d / "sweep.parquet") for d in ("here", "there"))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert json.loads((tmp_path / "there" / "sweep.json").read_text())["scheduler"].startswith("Dask scheduler")


class Interrupt(Exception):
    pass


def test_an_interrupted_cohort_resumes_to_the_uninterrupted_result(model, tmp_path):
    out = tmp_path / "c"
    options = dict(patients=4, seed=9, engine=TissueEngine(), report=False)

    def stop_after_two(done: int, total: int) -> None:
        if done >= 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_cohort(ilsim.compile(model), out=out, progress=stop_after_two, **options)
    assert len(list(store.work_folder(out).glob("chunk-*.parquet"))) == 2 and not out.exists()
    resumed = run_cohort(ilsim.compile(model), out=out, **options)
    assert resumed.info["chunks"]["reused"] == [0, 1] and resumed.info["chunks"]["computed"] == [2, 3]
    whole = run_cohort(ilsim.compile(model), **options).summary
    pd.testing.assert_frame_equal(resumed.summary, whole, check_exact=True)


def test_a_refused_point_keeps_its_row_with_the_reason(model):
    table = ilsim.sweep(model, {"k_sec": [1.0, -1.0]}, engine=TissueEngine(), report=False).table
    bad = table[table.k_sec < 0].iloc[0]
    assert bad["outcome"] == "failed" and "must be a finite number >= 0" in bad["status"]
    assert np.isnan(bad["IL2.final"]) and np.isnan(bad["max[IL2].final"]) and bad["seed"] > 0
    assert table[table.k_sec > 0].iloc[0]["status"] == "ok"


def test_bad_input_exits_2_naming_what_is_wrong_and_writes_nothing(model, tmp_path, cli, refused):
    plain = tmp_path / "plain.yaml"
    plain.write_text("metadata: {name: plain}\nspecies: [{name: X, initial: 1}]\nparameters: [{name: k, value: 1}]\n"
                     "processes: [{name: decay, rate: k*X, consumes: {X: 1}}]\n")
    out = tmp_path / "never"
    refused(cli("cohort", plain, "--engine", "tissue", "--patients", 2, "--out", out), "has no tissue: section")
    refused(cli("sweep", plain, "--engine", "tissue", "--param", "k=1:2:2", "--out", out), "has no tissue: section")
    refused(cli("sweep", model, "--engine", "tissue", "--param", "unbound=1:2:2", "--out", out),
            "--param 'unbound': parameter 'unbound' is not bound to the tissue section", "bound: k_sec")
    refused(cli("sweep", model, "--engine", "tissue", "--param", "k_sec=1:2:2", "--set", "unbound=3", "--out", out),
            "--set 'unbound'")
    refused(cli("cohort", model, "--engine", "tissue", "--patients", 2, "--vary", "unbound=uniform(1, 2)", "--out", out),
            "--vary 'unbound'")
    refused(cli("sweep", model, "--engine", "tissue", "--param", "k_sec=1:2:2", "--rtol", "1e-6", "--out", out),
            "--engine tissue: --rtol")
    refused(cli("sweep", model, "--param", "k_sec=1:2:2", "--seed", 1, "--out", out), "--seed needs --engine tissue")
    refused(cli("sweep", model, "--engine", "gpu", "--param", "k_sec=1:2:2", "--out", out), "--engine must be batch or tissue")
    refused(cli("cohort", model, "--engine", "tissue", "--patients", 2, "--t-end", 1.25, "--points", 2, "--out", out),
            "whole steps of dt")
    assert not out.exists() and not store.work_folder(out).exists()


def test_cells_placed_from_a_csv_beside_the_model_are_found_wherever_the_rows_run(tmp_path, cli, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "cells.csv").write_text("x,y,type\n50,50,Th\n150,150,Th\n100,30,Th\n")
    text = MODEL.replace("placement: {kind: random, count: 20}", "placement: {kind: csv, file: cells.csv}")
    (folder / "m.yaml").write_text(text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the rows run from another folder than the model's
    res = cli("cohort", folder / "m.yaml", "--engine", "tissue", "--patients", 2, "--seed", 4, "--out", "c", "--no-report")
    assert res.exit_code == 0, res.output
    summary = pd.read_parquet(elsewhere / "c" / "summary.parquet")
    for _, row in summary.iterrows():
        spec = ilsim.compile(folder / "m.yaml").spec
        seed = int(row["seed"])
        one = run(build(spec, base=folder, seed=seed), seed=seed)
        assert one.counts()[0, 0] == 3 and row["Th.final"] == one.counts()[-1, 0]
        assert row["IL2.final"] == one.field_stats()[0][-1, 0]


def test_a_parameter_of_a_process_read_per_cell_may_be_varied_without_a_binding():
    """il2-niche binds nothing: it reads its secretion per cell from the process 'q*Th/vtissue', so q and vtissue
    change the run and may be varied (a parameter that neither a binding nor such a process uses is refused: above)."""
    from ilsim.engines.tissue.percell import parameters_used
    from ilsim.patients.tissue import check

    niche = ilsim.compile(ilsim.load("il2-niche"))
    assert not niche.spec.tissue.parameters and {"q", "vtissue"} <= parameters_used(niche.spec, niche.spec.tissue)
    check(niche, [("--vary", "q"), ("--param", "vtissue")])
