"""The tissue-infection scenario and the rules it adds, against hand calculations and the seed model's expectations.

- A stop signal read through the receptor (``suppression``) and receptors lost (``receptor.loss``): a still cell in a
  field that neither diffuses nor decays secretes sum over steps of rate x dt / (1 + ((1 - blunting) occ_n / ic50)^h),
  occ_n the exact relaxation towards (1 - loss) c / (c + kd): computed by hand here.
- The scenario, over seeds and time steps (each (seed, dt) a different draw of every cell's fate): the healthy run clears
  the bacteria, stops recruiting (TNF back down) and its plasma IL-6 gives a fever that ends; each of the seed model's
  three faults (complete) leaves a lesion that does not heal (TNF stays up: the outcome 'chronic inflammation'), with
  the bacteria cleared all the same, at the same seed and step as a healthy run that heals. Complete loss of the IL-10
  receptor and complete ignoring of the signal both remove the suppression entirely, so they give the same numbers.
  Three (seed, dt) pairs here, one per step; the 5 seeds x 3 steps x 4 variants are counted by
  bench/tissue_infection_robustness.py (docs/tissue-infection.md, Robustness).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import ilsim
from ilsim.engines.tissue import systemic
from ilsim.engines.tissue.engine import run
from ilsim.engines.tissue.setup import build
from ilsim.model.load import spec_from_dict


@pytest.mark.parametrize("loss, blunting", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.7), (1.0, 0.0)])
def test_secretion_suppressed_through_the_receptor_matches_the_hand_sum(loss, blunting):
    c, kd, tau, ic50, hill, rate, dt, steps = 3.0, 1.0, 2.0, 0.3, 2.0, 1000.0, 0.5, 20
    spec = spec_from_dict({
        "metadata": {"name": "stop", "time_units": "minute"},
        "species": [{"name": "IL10", "kind": "cytokine", "initial": 0}, {"name": "X", "kind": "cytokine", "initial": 0},
                    {"name": "M", "kind": "cell", "initial": 0}],
        "tissue": {"domain": {"dimensions": 2, "size": [50, 50], "voxel": 10},
                   "fields": [{"species": "IL10", "diffusion": 0, "initial": c}, {"species": "X", "diffusion": 0}],
                   "agents": [{"species": "M", "placement": {"kind": "cluster", "count": 1, "center": [25, 25], "radius": 1},
                               "receptor": {"field": "IL10", "kd": kd, "tau": tau, "loss": loss},
                               "suppression": {"ic50": ic50, "hill": hill, "blunting": blunting},
                               "secretion": [{"field": "X", "rate": rate}]}],
                   "dt": dt, "t_end": steps * dt, "save_every": steps * dt}})
    result = run(build(spec))
    target = (1 - loss) * c / (c + kd)
    occ = [target * (1 - math.exp(-(n + 1) * dt / tau)) for n in range(steps)]  # updated before each step's secretion
    amount = sum(rate * dt / (1 + ((1 - blunting) * o / ic50) ** hill) for o in occ)
    assert result.snapshots[-1].fields[1].sum() * 1000.0 == pytest.approx(amount, rel=1e-12)  # voxel volume 1000 µm³
    assert result.snapshots[-1].agents["occupancy"][0] == pytest.approx(occ[-1], rel=1e-12)


T_END = 600.0  # min: the bacteria are gone by about 5 h; a healthy lesion's TNF is below 2 pg/mL by 7 h, its fever over by 9 h
T_FAULT = 420.0  # min: a faulted lesion has flared by 7 h; later it fills the square with thousands of neutrophils (slow)
HEALTHY = [(4, 0.5), (2, 0.25), (3, 1.0)]  # (seed, dt): one per step
FAULTED = {"stop-not-received": (4, 0.5), "stop-ignored": (4, 0.5), "false-alarm": (3, 1.0)}


def _run(model, faults, seed, dt, t_end):
    spec = model.spec.model_copy(update={"tissue": model.spec.tissue.model_copy(update={"dt": dt})})
    values = model.fault_overrides(faults)
    setup = build(spec, values=values or None, seed=seed)
    result = run(setup, link=systemic.link(model, setup, model.parameter_vector(values)), t_end=t_end, save_every=60,
                 seed=seed)
    return result, systemic.outcome(result, model), systemic.series(result, model)


@pytest.fixture(scope="module")
def runs():
    model = ilsim.compile("tissue-infection")
    out = {("healthy", seed, dt): _run(model, {}, seed, dt, T_END) for seed, dt in HEALTHY}
    for fault, (seed, dt) in FAULTED.items():
        out[(fault, seed, dt)] = _run(model, {fault: 1.0}, seed, dt, T_FAULT)
    return model, out


@pytest.mark.parametrize("seed, dt", HEALTHY)
def test_the_healthy_lesion_heals_and_its_il6_gives_a_fever(runs, seed, dt):
    model, out = runs
    result, label, Y = out[("healthy", seed, dt)]
    assert label in ("resolving", "resolved")
    s = model.species.index
    assert Y[-1, s("B")] == 0 and Y[:, s("B")].max() >= 200
    assert Y[-1, s("TNF")] < 2 < Y[:, s("TNF")].max()
    temperature = model.observe(result.times, Y, model.p0)[:, list(model.observables).index("temperature")]
    assert temperature.max() > 37.8 and temperature[-1] < 37.5  # fever from the lesion's IL-6 and IL-1b, then none
    assert Y[:, s("CRP")].max() > 10.0  # CRP above the upper normal


@pytest.mark.parametrize("fault", ["stop-not-received", "stop-ignored", "false-alarm"])
def test_each_fault_leaves_a_lesion_that_does_not_heal(runs, fault):
    model, out = runs
    seed, dt = FAULTED[fault]
    result, label, Y = out[(fault, seed, dt)]
    s = model.species.index
    assert label == "chronic inflammation"
    assert Y[-1, s("B")] == 0  # the bacteria are cleared; what fails is the stop
    healthy = out[("healthy", seed, dt)][2][len(Y) - 1]  # the healthy run with the same draws, at the same time
    assert Y[-1, s("TNF")] > 2 * healthy[s("TNF")] + 2


def test_losing_the_receptor_and_ignoring_the_signal_are_the_same_when_complete(runs):
    _, out = runs
    a, b = out[("stop-not-received", *FAULTED["stop-not-received"])][0], out[("stop-ignored", *FAULTED["stop-ignored"])][0]
    np.testing.assert_array_equal(a.state.fields, b.state.fields)
    np.testing.assert_array_equal(a.counts(), b.counts())
