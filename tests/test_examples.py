"""The examples in docs/ and examples/ run, and the YAML and Python forms are the same model."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import ilsim

ROOT = Path(__file__).resolve().parents[1]


def _example_module():
    spec = importlib.util.spec_from_file_location("il2_treg_example", ROOT / "examples" / "il2_treg.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_il2_treg_yaml_and_python_builder_give_identical_trajectories():
    from_file = ilsim.load(ROOT / "examples" / "il2-treg.yaml")
    built = _example_module().build()
    options = {"t_end": 60, "points": 601, "rtol": 1e-8, "atol": 1e-10}
    a, b = ilsim.simulate(from_file, **options), ilsim.simulate(built, **options)
    assert set(a.data_vars) == set(b.data_vars)
    for v in a.data_vars:
        assert np.array_equal(a[v].values, b[v].values), v


def test_il2_treg_example_keeps_cells_non_negative_and_fires_its_antigen_pulses():
    ds = ilsim.simulate(ilsim.load(ROOT / "examples" / "il2-treg.yaml"))
    for name, var in ds.data_vars.items():
        if var.attrs.get("role") == "species":
            assert float(var.min()) >= 0.0, name
    assert len(__import__("json").loads(ds.attrs["events_fired"])) >= 2


def test_macrophage_fever_example_gives_fever_and_crp_that_resolve():
    ds = ilsim.simulate(ilsim.load(ROOT / "examples" / "macrophage-fever.yaml"))
    assert 38.5 < float(ds["temperature"].max()) < 40.0
    assert float(ds["temperature"][-1]) == pytest.approx(37.0, abs=0.01)
    assert float(ds["CRP"].max()) > 20 and float(ds["CRP"][-1]) < 10
    assert float(ds["IL6"].sel(time=slice(0, 2)).max()) == 0.0  # nothing secreted before the challenge
