"""Events inside the batch kernel beyond the conformance suite (test_conformance.py): a long finite cascade."""

import json

import event_cases as cases
import numpy as np

import ilsim
from ilsim.engines.batch import OK, BatchEngine


def test_a_long_finite_cascade_fires_as_in_the_scipy_engine():
    """300 rounds of X -> Y -> rearm at t = 0.6: 898 firings at one instant, below the limit of 1000."""
    spec = cases.endless_cascade(rounds=300)
    m = ilsim.compile(spec)
    r = BatchEngine().run_full(m, cases.CASCADE_TIMES, m.p0[None, :])
    assert r.status[0] == OK and r.fired[0].tolist() == [299, 300, 299] and r.Y[0, -1, 3] == 300
    ref = ilsim.simulate(spec, t_eval=cases.CASCADE_TIMES)
    assert len(json.loads(ref.attrs["events_fired"])) == 898
    assert np.allclose(r.Y[0, :, 0], ref["x"].values, atol=1e-8)
