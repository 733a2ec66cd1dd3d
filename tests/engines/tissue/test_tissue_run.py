"""`ilsim tissue`: the files it writes, bad tissue sections refused (exit 2, the field named, nothing written), and a
run killed with SIGKILL that, rerun, ends bit for bit where an uninterrupted run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

SRC = Path(__file__).resolve().parents[3] / "src"

MODEL = """
metadata: {name: small_tissue, time_units: minute}
species:
  - {name: Th, kind: cell, initial: 0}
  - {name: Treg, kind: cell, initial: 0}
  - {name: IL2, kind: cytokine, units: pM, initial: 0}
  - {name: Tissue, kind: tissue, initial: 1}
tissue:
  domain: {dimensions: 2, size: [300, 200], voxel: 10}
  fields: [{species: IL2, diffusion: "10 um^2/s", decay: 0.01}]
  agents:
    - {species: Th, speed: 2, repulsion: 2, division: 0.02, placement: {kind: cluster, count: 30, center: [150, 100],
       radius: 40}, secretion: [{field: IL2, rate: 300}], receptor: {field: IL2, kd: 5}}
    - {species: Treg, speed: 2, repulsion: 2, uptake: [{field: IL2, rate: 2}], placement: {kind: random, count: 20}}
  dt: 0.1
  t_end: 6
  save_every: 1
"""


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "tissue.yaml"
    path.write_text(MODEL)
    return path


def test_writes_agents_fields_and_summary(cli, model, tmp_path):
    out = tmp_path / "out"
    res = cli("tissue", model, "--out", out, "--no-report")
    assert res.exit_code == 0, res.output
    agents = pd.read_parquet(out / "agents.parquet")
    assert sorted(agents.columns) == ["id", "occupancy", "time", "type", "x", "y"]
    assert sorted(agents["time"].unique()) == [0, 1, 2, 3, 4, 5, 6]
    assert (agents[agents.time == 0].type == "Th").sum() == 30
    fields = xr.open_dataset(out / "fields.nc")
    assert fields["IL2"].dims == ("time", "y", "x") and fields["IL2"].shape == (7, 20, 30)
    series = pd.read_csv(out / "timeseries.csv")
    assert list(series["Th_cells"]) == [int((agents[agents.time == t].type == "Th").sum()) for t in range(7)]
    np.testing.assert_allclose(series["IL2_mean"], fields["IL2"].mean(("x", "y")).values, rtol=1e-12)
    import json

    info = json.loads((out / "summary.json").read_text())
    ledger = info["mass_ledger"]["IL2"]
    net = ledger["secreted"] - ledger["taken_up"] - ledger["decayed"] + ledger["blood"] + ledger["fixed"]
    assert net == pytest.approx(ledger["change_of_total"], rel=1e-10)
    assert not any(p.name.endswith("tissue-checkpoint.npz") for p in tmp_path.iterdir())  # removed when done


BAD = {
    "field_not_a_species": ({"species: IL2, diffusion": "species: IL_2, diffusion"},
                            ["tissue.fields[0].species", "'IL_2' is not a species", "did you mean 'IL2'?"]),
    "agent_not_a_cell": ({"{species: Treg, speed": "{species: Tissue, speed"},
                         ["tissue.agents[1].species", "'Tissue' is a tissue species"]),
    "voxel_larger_than_domain": ({"voxel: 10}": "voxel: 250}"}, ["tissue.domain", "larger than the domain along y"]),
    "negative_diffusion": ({'diffusion: "10 um^2/s"': "diffusion: -5"}, ["tissue.fields[0].diffusion", "must not be negative"]),
    "diffusion_wrong_units": ({'diffusion: "10 um^2/s"': 'diffusion: "10 pM"'}, ["diffusion", "cannot be converted"]),
    "csv_outside_domain": ({"placement: {kind: random, count: 20}": "placement: {kind: csv, file: cells.csv}"},
                           ["tissue.agents[1].placement.file", "line 3", "outside the domain"]),
    "unknown_uptake_field": ({"uptake: [{field: IL2": "uptake: [{field: IL6"},
                             ["tissue.agents[1].uptake[0].field", "'IL6' is not a field of the tissue"]),
    "memory": ({"size: [300, 200], voxel: 10": "size: [300000000, 200000000], voxel: 10"},
               ["needs about", "GiB", "the machine has"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_tissue_sections_are_refused_before_anything_is_written(cli, refused, tmp_path, case):
    replace, fragments = BAD[case]
    text = MODEL
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    (tmp_path / "cells.csv").write_text("x,y\n10,10\n400,10\n")
    out = tmp_path / "out"
    refused(cli("tissue", path, "--out", out), *fragments)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "cells.csv"]


@pytest.mark.parametrize("option, value", [("--t-end", "nan"), ("--t-end", "inf"), ("--t-end", "-5"),
                                           ("--save-every", "nan"), ("--save-every", "0")])
def test_nonsense_times_on_the_command_line_are_refused(cli, refused, model, tmp_path, option, value):
    out = tmp_path / "out"
    refused(cli("tissue", model, "--out", out, option, value), f"{option} must be a positive, finite number")
    assert not out.exists()


def test_a_negative_seed_on_the_command_line_is_refused_as_in_the_section(cli, refused, model, tmp_path):
    out = tmp_path / "out"
    refused(cli("tissue", model, "--out", out, "--seed", "-1"), "--seed must be an integer from 0 to 2**63 - 1, got -1")
    assert not out.exists()


@pytest.mark.parametrize("damage", [b"PK\x03\x04" + b"x" * 100, b"not a checkpoint"])
def test_a_damaged_checkpoint_is_ignored_and_the_run_starts_again(cli, model, tmp_path, damage):
    full, again = tmp_path / "full", tmp_path / "again"
    assert cli("tissue", model, "--out", full, "--no-report", "--quiet").exit_code == 0
    checkpoint = tmp_path / ".again.tissue-checkpoint.npz"
    checkpoint.write_bytes(damage)  # a truncated zip (BadZipFile escaped as a traceback) or foreign bytes
    res = cli("tissue", model, "--out", again, "--no-report", "--quiet")
    assert res.exit_code == 0, res.output
    assert pd.read_parquet(again / "agents.parquet").equals(pd.read_parquet(full / "agents.parquet"))
    assert not checkpoint.exists()


def _cli(args, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(SRC), **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "ilsim", "tissue", *map(str, args), "--no-report", "--quiet"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_resume_after_kill_9_is_bit_identical(tmp_path):
    text = MODEL.replace("t_end: 6", "t_end: 100").replace("save_every: 1", "save_every: 5").replace("count: 20", "count: 200")
    model = tmp_path / "m.yaml"
    model.write_text(text)
    full, cut = tmp_path / "full", tmp_path / "cut"
    done = _cli([model, "--out", full])
    assert done.wait(timeout=600) == 0, done.stderr.read()
    checkpoint = tmp_path / ".cut.tissue-checkpoint.npz"
    victim = _cli([model, "--out", cut])
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline and victim.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere after a checkpoint, mid-run
    if victim.poll() is not None:
        pytest.skip("the run finished before it could be killed (machine too fast for this size)")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert checkpoint.exists() and not cut.exists()
    again = _cli([model, "--out", cut])
    assert again.wait(timeout=600) == 0, again.stderr.read()
    import json

    assert json.loads((cut / "summary.json").read_text())["resumed_at_min"] > 0
    a, b = pd.read_parquet(full / "agents.parquet"), pd.read_parquet(cut / "agents.parquet")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    fa, fb = xr.open_dataset(full / "fields.nc"), xr.open_dataset(cut / "fields.nc")
    assert np.array_equal(fa["IL2"].values, fb["IL2"].values)
    assert not checkpoint.exists()


def test_engine_contract_gives_counts_and_mean_fields_per_replicate(model):
    import ilsim
    from ilsim.engines.tissue.engine import TissueEngine, replicate_seed, run
    from ilsim.engines.tissue.setup import build

    compiled = ilsim.compile(model)
    P = np.repeat(np.atleast_2d(compiled.p0), 2, axis=0)
    ds = TissueEngine().simulate(compiled, [0.0, 2.0, 6.0], P)
    for row in range(2):  # replicate r: placement and draws seeded by replicate_seed(the section's seed, r)
        seed = replicate_seed(compiled.spec.tissue.seed, row)
        setup = build(compiled.spec, seed=seed)
        direct = run(setup, t_end=6.0, save_every=0.1, seed=seed)
        keep = [0, 20, 60]
        assert list(ds["Th"].values[row]) == list(direct.counts()[keep, 0])
        np.testing.assert_array_equal(ds["IL2"].values[row], direct.field_stats()[0][keep, 0])
    assert np.isnan(ds["Tissue"].values).all()  # not a tissue species: no value
    assert not np.array_equal(ds["IL2"].values[0], ds["IL2"].values[1])  # replicates differ


def test_a_tissue_of_cells_alone_runs_and_writes_its_counts(tmp_path):
    """No field to diffuse: cells that only die. The count follows the binomial law of survival, e^(-d t) each,
    and the result folder is written without field columns (the field statistics of an empty grid used to fail)."""
    import ilsim

    spec = {"metadata": {"name": "dying", "time_units": "minute"},
            "species": [{"name": "T", "kind": "cell", "initial": 400}],
            "parameters": [{"name": "d", "value": 0.01}],
            "processes": [{"name": "death", "rate": "d*T", "consumes": {"T": 1}}],
            "tissue": {"domain": {"dimensions": 2, "size": [400, 400], "voxel": 20},
                       "agents": [{"species": "T", "radius": 5, "placement": {"kind": "random", "count": 400}}],
                       "dt": 0.5, "t_end": 30, "save_every": 10, "seed": 3}}
    from ilsim.model.spec import ModelSpec

    _, info = ilsim.tissue(ModelSpec.model_validate(spec), tmp_path / "out", report=False)
    table = pd.read_csv(tmp_path / "out" / "timeseries.csv")
    survive = np.exp(-0.01 * 30)
    sd = np.sqrt(400 * survive * (1 - survive))
    assert abs(table["T_cells"].iloc[-1] - 400 * survive) < 4 * sd
    assert not [c for c in table.columns if c.endswith("_max")]
