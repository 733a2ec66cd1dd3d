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


def test_tocilizumab_pd_example_follows_the_closed_form():
    # docs/pharmacodynamics.md: one bolus of 8 mg/kg * 70 kg / 3.5 L = 160 mg/L at day 7, half-life 11 days,
    # occupancy C/(C + IC50) (n = 1, Imax = 1); the oracle is the closed form of that concentration
    ds = ilsim.simulate(ilsim.load(ROOT / "examples" / "tocilizumab-pd.yaml"), rtol=1e-9, atol=1e-12)
    t = ds["time"].values
    after = t > 7.0
    c = 160.0 * 0.5 ** ((t[after] - 7.0) / 11.0)
    assert np.allclose(ds["TCZ"].values[after], c, rtol=1e-6)
    assert np.allclose(ds["occupancy"].values[after], c / (c + 0.08), rtol=1e-6)
    assert np.all(ds["TCZ"].values[t < 7.0] == 0) and float(ds["CRP"][0]) == 0.8 + 70.0 * 0.5
    # the page's numbers: CRP below 10 mg/L from day 8.6 to day 112, its nadir 0.835 mg/L at day 18.1
    below = t[ds["CRP"].values < 10.0]
    assert (round(below[0], 1), round(below[-1])) == (8.6, 112)
    assert float(ds["CRP"].min()) == pytest.approx(0.835, abs=5e-4)
