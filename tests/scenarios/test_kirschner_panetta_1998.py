"""Kirschner & Panetta 1998 (J Math Biol 37:235): the regimes of the paper's eqs. (1)-(3), checked against
analysis done here from the equations, typed independently of the scenario file (never via ilsim's
right-hand side): the equilibrium in closed form (reduced to one equation in T), its stability from a
SymPy Jacobian, and the therapy thresholds from the linearisation at the tumour-free state. Numbers the
analysis cannot give (the period of the limit cycle, E under IL-2 therapy) are ilsim's snapshot."""

import numpy as np
import pytest
import sympy as sp
from scipy.optimize import brentq
from scipy.signal import find_peaks

import ilsim

MODEL = "kirschner-panetta-1998"
# Table 1 of the paper (per day; cells, IL-2 units), typed here rather than read from the scenario file
TABLE1 = {"mu2": 0.03, "p1": 0.1245, "g1": 2e7, "g2": 1e5, "r2": 0.18, "b": 1e-9, "a": 1.0, "mu3": 10.0, "p2": 5.0,
          "g3": 1e3}


def _paper_rhs(E, T, IL, c, s1=0.0, s2=0.0, p=TABLE1):
    """Eqs. (1)-(3) of the paper."""
    dE = c * T - p["mu2"] * E + p["p1"] * E * IL / (p["g1"] + IL) + s1
    dT = p["r2"] * T * (1 - p["b"] * T) - p["a"] * E * T / (p["g2"] + T)
    dIL = p["p2"] * E * T / (p["g3"] + T) - p["mu3"] * IL + s2
    return dE, dT, dIL


def _tumour_equilibrium(c: float, p=TABLE1) -> tuple[float, float, float]:
    """(E, T, IL) with T > 0, no therapy: dT/dt = 0 gives E(T), dIL/dt = 0 gives IL(T), dE/dt = 0 is solved for T."""

    def e_of(t):
        return p["r2"] * (1 - p["b"] * t) * (p["g2"] + t) / p["a"]

    def il_of(t):
        return p["p2"] * e_of(t) * t / (p["mu3"] * (p["g3"] + t))

    t = brentq(lambda t: _paper_rhs(e_of(t), t, il_of(t), c)[0], 1e3, 1e6, xtol=1e-10, rtol=1e-14)
    return e_of(t), t, il_of(t)


def _eigenvalues(c: float) -> np.ndarray:
    E, T, IL = sp.symbols("E T IL")
    jac = sp.Matrix(_paper_rhs(E, T, IL, c)).jacobian([E, T, IL])
    point = dict(zip((E, T, IL), _tumour_equilibrium(c)))
    return np.linalg.eigvals(np.array(jac.subs(point).evalf(), dtype=float))


@pytest.fixture(scope="module")
def kp():
    return ilsim.compile(MODEL)


def test_the_analysis_itself():
    for c in (0.035, 0.02):
        assert np.allclose(_paper_rhs(*_tumour_equilibrium(c), c), 0.0, atol=1e-6)
    # c = 0.035: a stable spiral (complex pair with negative real part); c = 0.02: an unstable one
    damped, growing = _eigenvalues(0.035), _eigenvalues(0.02)
    assert (damped.real < 0).all() and np.iscomplex(damped).sum() == 2
    assert growing[np.iscomplex(growing)].real.min() > 0


def test_at_c_0035_the_tumour_settles_at_the_analytic_equilibrium(kp):
    ds = ilsim.simulate(kp, 10_000, points=1001, parameters={"c": 0.035})
    e, t, il = _tumour_equilibrium(0.035)
    assert float(ds["E"][-1]) == pytest.approx(e, rel=1e-4)
    assert float(ds["T"][-1]) == pytest.approx(t, rel=1e-4)
    assert float(ds["I"][-1]) == pytest.approx(il, rel=1e-4)
    # damped: late oscillation amplitude is tiny compared with the first excursion
    late = ds["T"].sel(time=slice(8000, 10_000)).values
    assert np.ptp(late) < 0.01 * float(ds["T"].max())


def test_at_c_002_the_oscillation_is_sustained(kp, snapshot):
    ds = ilsim.simulate(kp, 6000, points=60_001, parameters={"c": 0.02})
    t, tumour = ds["time"].values, ds["T"].values
    peaks, _ = find_peaks(tumour, prominence=1e4)
    late = peaks[t[peaks] > 2000]
    assert len(late) >= 8
    heights = tumour[late]
    assert heights.min() > 0.99 * heights.max()  # neither damped nor growing: the limit cycle
    snapshot.check("c=0.02: period of the tumour oscillation [day]", np.diff(t[late]).mean(), abs=2)


@pytest.mark.parametrize(("s1", "cleared"), [(600.0, True), (500.0, False)])
def test_adoptive_therapy_clears_tumour_only_above_the_threshold(kp, s1, cleared):
    # At T = 0 (so IL = 0), E -> s1/mu2 and dT/dt ~ (r2 - a E/g2) T: the tumour-free state is stable iff
    # s1 > r2 g2 mu2 / a (the threshold does not depend on c)
    p = TABLE1
    threshold = p["r2"] * p["g2"] * p["mu2"] / p["a"]
    assert threshold == pytest.approx(540.0)
    ds = ilsim.simulate(kp, 3000, parameters={"c": 0.02, "s1": s1})
    assert (s1 > threshold) is cleared
    assert (float(ds["T"][-1]) < 1.0) is cleared
    assert ds.attrs["outcome"] == ("tumour cleared" if cleared else "tumour persists")


def test_il2_therapy_above_threshold_makes_effectors_grow_without_bound(kp, snapshot):
    # At T = 0, IL -> s2/mu3 and dE/dt = (p1 IL/(g1 + IL) - mu2) E: E grows without bound iff s2 > mu2 mu3 g1/(p1 - mu2)
    p = TABLE1
    threshold = p["mu2"] * p["mu3"] * p["g1"] / (p["p1"] - p["mu2"])
    assert threshold == pytest.approx(6.349e7, rel=1e-3)
    toxic = ilsim.simulate(kp, 1000, parameters={"c": 0.035, "s2": 1e8})
    bounded = ilsim.simulate(kp, 1000, parameters={"c": 0.035, "s2": 6e7})
    assert 1e8 > threshold > 6e7
    assert float(toxic["E"][-1]) > 1e9
    assert toxic.attrs["outcome"] == "effector expansion without bound (toxic IL-2)"
    assert float(bounded["E"].sel(time=slice(500, 1000)).max()) < 1e5
    snapshot.check("c=0.035, s2=6e7: E at day 1000", bounded["E"][-1], rel=0.02)


def test_every_parameter_names_its_source():
    spec = ilsim.load(MODEL)
    assert all(p.source for p in spec.parameters)
    assert spec.metadata.references[0].doi == "10.1007/s002850050127"
    values = {p.name: p.value for p in spec.parameters}
    assert {name: values[name] for name in TABLE1} == TABLE1  # the scenario uses Table 1, as typed above
