"""Cross-check: ilsim's ODE engine against libroadrunner (CVODE) on the same equations.

The oracle is written independently, as Antimony text in the paper's notation, so a mistake in
the scenario file or in ilsim's compiler shows up as a difference.
"""

import numpy as np
import pytest

import ilsim

roadrunner = pytest.importorskip("roadrunner", reason="libroadrunner is a test extra: pip install -e '.[test]'")
antimony = pytest.importorskip("antimony", reason="antimony is a test extra: pip install -e '.[test]'")

REYNOLDS = """
function f(V, CA, cinf)
  V/(1 + (CA/cinf)^2)
end

model reynolds
  P' = kpg*P*(1 - P/pinf) - kpm*sm*P/(mum + kmp*P) - kpn*f(N, CA, cinf)*P
  N' = snr*R/(munr + R) - mun*N
  D' = kdn*f(N, CA, cinf)^6/(xdn^6 + f(N, CA, cinf)^6) - mud*D
  CA' = sc + kcn*f(N + kcnd*D, CA, cinf)/(1 + f(N + kcnd*D, CA, cinf)) - muc*CA
  R := f(knn*N + knp*P + knd*D, CA, cinf)
  P = 1; N = 0; D = 0; CA = 0.125
  kpg = 0.3; pinf = 20; kpm = 0.6; sm = 0.005; mum = 0.002; kmp = 0.01; kpn = 1.8; knp = 0.1
  knn = 0.01; snr = 0.08; munr = 0.12; mun = 0.05; knd = 0.02; kdn = 0.35; xdn = 0.06; mud = 0.02
  cinf = 0.28; sc = 0.0125; kcn = 0.04; kcnd = 48; muc = 0.1
end
"""


def _oracle(kpg: float, p0: float, t_end: float, points: int) -> np.ndarray:
    antimony.clearPreviousLoads()
    assert antimony.loadAntimonyString(REYNOLDS) >= 0, antimony.getLastError()
    rr = roadrunner.RoadRunner(antimony.getSBMLString("reynolds"))
    rr["init(P)"] = p0  # (setting an initial value resets the model: parameters after it)
    rr["kpg"] = kpg
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-12
    rr.timeCourseSelections = ["time", "P", "N", "D", "CA"]
    return np.asarray(rr.simulate(0, t_end, points))


@pytest.mark.parametrize(("kpg", "p0"), [(0.3, 1.0), (0.3, 1.5), (0.6, 1.0)])
def test_reynolds_agrees_with_libroadrunner(kpg, p0):
    expected = _oracle(kpg, p0, 300.0, 301)
    ds = ilsim.simulate("reynolds-2006", 300, points=301, parameters={"kpg": kpg, "P0": p0}, rtol=1e-10, atol=1e-12)
    for col, name in enumerate(["P", "N", "D", "CA"], start=1):
        scale = np.ptp(expected[:, col])
        assert np.abs(ds[name].values - expected[:, col]).max() < 1e-5 * scale, name
