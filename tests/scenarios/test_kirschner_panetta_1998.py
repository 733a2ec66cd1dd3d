"""Kirschner & Panetta 1998 (J Math Biol 37:235): the published regimes, re-derived by stability analysis."""

import numpy as np
import pytest
from scipy.signal import find_peaks

import ilsim

MODEL = "kirschner-panetta-1998"


@pytest.fixture(scope="module")
def kp():
    return ilsim.compile(MODEL)


def test_stable_tumour_at_c_0035_matches_published_equilibrium(kp):
    ds = ilsim.simulate(kp, 10_000, points=1001, parameters={"c": 0.035})
    final = {v: float(ds[v][-1]) for v in "ETI"}
    assert final["T"] == pytest.approx(1.820e4, rel=0.01)
    assert final["E"] == pytest.approx(2.128e4, rel=0.01)
    assert final["I"] == pytest.approx(1.008e4, rel=0.01)
    # damped: late oscillation amplitude is tiny compared with the first excursion
    late = ds["T"].sel(time=slice(8000, 10_000)).values
    assert np.ptp(late) < 0.01 * float(ds["T"].max())


def test_sustained_oscillation_at_c_002_has_period_242_days(kp):
    ds = ilsim.simulate(kp, 6000, points=60_001, parameters={"c": 0.02})
    t, tumour = ds["time"].values, ds["T"].values
    peaks, _ = find_peaks(tumour, prominence=1e4)
    late = peaks[t[peaks] > 2000]
    assert len(late) >= 8
    period = np.diff(t[late])
    assert period.mean() == pytest.approx(242, abs=2)
    heights = tumour[late]
    assert heights.min() > 0.99 * heights.max()  # neither damped nor growing


@pytest.mark.parametrize(("s1", "cleared"), [(600.0, True), (500.0, False)])
def test_adoptive_therapy_clears_tumour_only_above_540(kp, s1, cleared):
    ds = ilsim.simulate(kp, 3000, parameters={"c": 0.02, "s1": s1})
    final_tumour = float(ds["T"][-1])
    assert (final_tumour < 1.0) is cleared
    assert ds.attrs["outcome"] == ("tumour cleared" if cleared else "tumour persists")


def test_il2_therapy_above_threshold_makes_effectors_grow_without_bound(kp):
    threshold = 0.03 * 10 * 2e7 / (0.1245 - 0.03)
    assert threshold == pytest.approx(6.349e7, rel=1e-3)
    toxic = ilsim.simulate(kp, 1000, parameters={"c": 0.035, "s2": 1e8})
    bounded = ilsim.simulate(kp, 1000, parameters={"c": 0.035, "s2": 6e7})
    assert float(toxic["E"][-1]) > 1e9
    assert toxic.attrs["outcome"] == "effector expansion without bound (toxic IL-2)"
    assert float(bounded["E"][-1]) == pytest.approx(1.7e4, rel=0.02)
    assert float(bounded["E"].sel(time=slice(500, 1000)).max()) < 1e5


def test_every_parameter_names_its_source():
    spec = ilsim.load(MODEL)
    assert all(p.source for p in spec.parameters)
    assert spec.metadata.references[0].doi == "10.1007/s002850050127"
