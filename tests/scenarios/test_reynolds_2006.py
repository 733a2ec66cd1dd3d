"""Reynolds et al. 2006 (J Theor Biol 242:220), Fig. 5: health, aseptic death, septic death."""

import pytest

import ilsim

MODEL = "reynolds-2006"


@pytest.fixture(scope="module")
def reynolds():
    return ilsim.compile(MODEL)


def _run(model, kpg, p0):
    return ilsim.simulate(model, 500, points=5001, parameters={"kpg": kpg, "P0": p0})


def _peak(ds, name):
    i = int(ds[name].values.argmax())
    return float(ds[name][i]), float(ds["time"][i])


def test_small_infection_resolves_to_health(reynolds):
    ds = _run(reynolds, 0.3, 1.0)
    assert ds.attrs["outcome"] == "health"
    n_peak, n_time = _peak(ds, "N")
    d_peak, d_time = _peak(ds, "D")
    assert n_peak == pytest.approx(0.196, abs=0.002)
    assert n_time == pytest.approx(34, abs=1.5)
    assert d_peak == pytest.approx(3.41, abs=0.02)
    assert d_time == pytest.approx(32, abs=1.5)


def test_larger_infection_gives_aseptic_death(reynolds):
    ds = _run(reynolds, 0.3, 1.5)
    assert ds.attrs["outcome"] == "aseptic death"
    assert float(ds["P"][-1]) < 1e-6  # the pathogen is gone...
    assert float(ds["N"][-1]) == pytest.approx(0.635, abs=0.005)  # ...but inflammation persists
    assert float(ds["D"][-1]) == pytest.approx(17.4, abs=0.1)


def test_fast_growing_pathogen_gives_septic_death(reynolds):
    ds = _run(reynolds, 0.6, 1.0)
    assert ds.attrs["outcome"] == "septic death"
    p_peak, p_time = _peak(ds, "P")
    assert p_peak == pytest.approx(7.89, abs=0.03)
    assert p_time == pytest.approx(16, abs=1)
    assert float(ds["P"][-1]) == pytest.approx(4.94, abs=0.03)
    assert float(ds["D"][-1]) == pytest.approx(17.5, abs=0.1)


def test_outcome_is_written_to_summary(tmp_path):
    _, summary = ilsim.run(MODEL, tmp_path / "out", report=False, parameters={"kpg": 0.6})
    assert summary["outcome"] == "septic death"
