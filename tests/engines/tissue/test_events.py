"""The model's timed events in a tissue run, against hand calculations.

- A systemic dose (an event adding to a field species) raises the field's mean by the amount added, the mass added
  being rise x domain volume: through the vessel voxels in equal shares, or uniformly without vessels; the ledger's
  ``dosed`` entry holds it and the mass balance still closes.
- An event setting a parameter bound to a secretion rate switches the rule at its time: a still cell in a field that
  neither diffuses nor decays has put exactly rate x (t_end - t_event) into its voxel.
- A resumed run replays the parameter changes it passed; events the tissue cannot run are refused before the run
  (condition events, and timed ones with only_if or delay: test_conditions.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from ilsim.engines.tissue.engine import run
from ilsim.engines.tissue.setup import build
from ilsim.errors import ModelError
from ilsim.model.load import spec_from_dict


def _spec(events, *, vessels=(), diffusion=0.0, agents=(), parameters=None, bound=None):
    tissue = {"domain": {"dimensions": 2, "size": [100, 60], "voxel": 10, "vessels": list(vessels)},
              "fields": [{"species": "IL2", "diffusion": diffusion}], "agents": list(agents),
              "dt": 0.5, "t_end": 5, "save_every": 0.5}
    if bound:
        tissue["parameters"] = bound
    return spec_from_dict({
        "metadata": {"name": "dosed", "time_units": "minute"}, "parameters": parameters or [],
        "species": [{"name": "IL2", "kind": "cytokine", "initial": 0}, {"name": "Th", "kind": "cell", "initial": 0}],
        "events": events, "tissue": tissue})


DOSE = [{"name": "bolus", "at": 1.5, "add": {"IL2": 0.4}}]


def test_dose_through_vessels_lands_in_the_vessel_voxels():
    vessel = {"lower": [0, 0], "upper": [20, 60]}  # voxel centres at x = 5 and 15: 2 columns x 6 rows = 12 voxels
    result = run(build(_spec(DOSE, vessels=[vessel])))
    before, after = result.snapshots[3].fields[0, 0], result.snapshots[4].fields[0, 0]  # t = 1.5 (before the dose), 2
    assert not before.any()
    expected = np.zeros((6, 10))
    expected[:, :2] = 0.4 * 60 / 12  # the rise of the mean x all voxels / vessel voxels
    np.testing.assert_array_equal(after, expected)
    ledger = result.state.ledger
    assert ledger.dosed[0] == pytest.approx(0.4 * 100 * 60 * 10, rel=1e-14)  # rise x domain volume (µm³)


def test_dose_without_vessels_is_uniform_and_diffusion_keeps_its_mass():
    result = run(build(_spec(DOSE, diffusion=50.0)))
    assert np.allclose(result.snapshots[-1].fields[0, 0], 0.4, rtol=1e-13, atol=0)
    vessel = {"lower": [40, 20], "upper": [50, 30]}
    result = run(build(_spec(DOSE, vessels=[vessel], diffusion=50.0)))
    last = result.snapshots[-1].fields[0, 0]
    assert last.mean() == pytest.approx(0.4, rel=1e-12) and last.max() > 2 * last.min()
    ledger = result.state.ledger
    assert ledger.net()[0] == pytest.approx(last.sum() * 1000.0, rel=1e-12)


SWITCH = [{"name": "stimulated", "at": 2, "set": {"k_sec": 3.0}}]
CELL = [{"species": "Th", "secretion": [{"field": "IL2", "rate": 1.0}],
         "placement": {"kind": "cluster", "count": 1, "center": [55, 35], "radius": 1}}]


def _switched():
    return _spec(SWITCH, agents=CELL, parameters=[{"name": "k_sec", "value": 0.0}],
                 bound={"k_sec": "agents[Th].secretion[0].rate"})


def test_event_setting_a_bound_rate_switches_the_rule_at_its_time():
    result = run(build(_switched()))
    assert not result.snapshots[4].fields.any()  # t = 2: nothing secreted yet
    voxel = result.snapshots[-1].fields[0, 0, 3, 5]
    assert voxel == pytest.approx(3.0 * (5 - 2) / 1000.0, rel=1e-13)  # amount/min x min / voxel volume
    assert np.count_nonzero(result.snapshots[-1].fields) == 1


def test_a_resumed_run_replays_the_parameter_changes():
    setup = build(_switched())
    whole = run(setup)
    part = run(setup, t_end=3)
    resumed = run(setup, resume=part)
    np.testing.assert_array_equal(whole.snapshots[-1].fields, resumed.snapshots[-1].fields)


@pytest.mark.parametrize("events, fragment", [
    ([{"name": "guarded", "at": 1, "only_if": "k_sec > 0", "set": {"k_sec": -2}}], "(after 'guarded')"),
    ([{"name": "odd", "at": 1.2, "add": {"IL2": 1}}], "events[0].at: 1.2 min is not a whole number of steps"),
    ([{"name": "reset", "at": 1, "set": {"IL2": 0}}], "events[0].set.IL2: 'IL2' is a tissue field"),
    ([{"name": "bad", "at": 1, "set": {"k_sec": -2}}], "(after 'bad' at 1 min)"),
])
def test_events_the_tissue_cannot_run_are_refused(events, fragment):
    spec = _spec(events, agents=CELL, parameters=[{"name": "k_sec", "value": 0.0}],
                 bound={"k_sec": "agents[Th].secretion[0].rate"})
    with pytest.raises(ModelError) as info:
        build(spec)
    assert fragment in str(info.value)
