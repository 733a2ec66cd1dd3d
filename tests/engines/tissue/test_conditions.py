"""The model's condition events (``when:``) in a tissue run (engines/tissue/conditions.py), against hand calculations.

- A still cell secretes r per minute into a field that neither diffuses nor decays, so the mean after n steps is
  r n dt / domain volume; ``when: IL2 > c`` setting the (bound) secretion rate to 0 fires at the first step end whose
  mean exceeds c (n = floor(c V / (r dt)) + 1) and the field's total stays r n dt from then on.
- A count condition (``when: Th < n`` on a dying population) fires at the first step end whose live count is below n:
  its dose shows in exactly the snapshots from that one on.
- Conditions on t: a firing is not repeated while the condition stays true, comes again after it has been false, and a
  condition already true at t = 0 does not fire until it has been false; a delay of whole steps applies the actions
  that many steps later, ``persistent: false`` drops them when the condition turns false first, ``only_if`` is
  tested when the event triggers.
- A run stopped, checkpointed (armed flags, pending delayed actions and changed parameters in the file) and resumed
  gives the uninterrupted run's numbers bit for bit.
- Timed events with ``only_if`` or ``delay`` (run as conditions true from their time on): a guarded dose applies only
  where its guard holds at its time; a delayed parameter change on the still cell applies exactly its delay later.
- Conditions the tissue cannot judge, delays that are not whole steps, and such timed events at t = 0 are refused
  before the run.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ilsim.engines.tissue.engine import run
from ilsim.engines.tissue.setup import build
from ilsim.errors import ModelError
from ilsim.io.tissue import load_checkpoint, save_checkpoint
from ilsim.model.load import spec_from_dict

DT, VOLUME = 0.5, 100 * 60 * 10.0  # min; domain volume in µm³ (2-D: one voxel deep)


def _spec(events, *, agents=(), parameters=(), bound=None, t_end=5, species=()):
    tissue = {"domain": {"dimensions": 2, "size": [100, 60], "voxel": 10},
              "fields": [{"species": "IL2", "diffusion": 0.0}], "agents": list(agents),
              "dt": DT, "t_end": t_end, "save_every": DT}
    if bound:
        tissue["parameters"] = bound
    return spec_from_dict({
        "metadata": {"name": "conditions", "time_units": "minute"}, "parameters": list(parameters),
        "species": [{"name": "IL2", "kind": "cytokine", "initial": 0}, {"name": "Th", "kind": "cell", "initial": 0},
                    *species],
        "events": events, "tissue": tissue})


def _means(result):
    return np.array([s.fields[0].mean() for s in result.snapshots])


RATE = 3.0  # amount per minute
SECRETING = [{"species": "Th", "secretion": [{"field": "IL2", "rate": 1.0}],
              "placement": {"kind": "cluster", "count": 1, "center": [55, 35], "radius": 1}}]


def _secreting(threshold, **event):
    return _spec([{"name": "enough", "when": f"IL2 > {threshold!r}", "set": {"k_sec": 0.0}, **event}], agents=SECRETING,
                 parameters=[{"name": "k_sec", "value": RATE}], bound={"k_sec": "agents[Th].secretion[0].rate"})


def test_a_field_condition_stops_secretion_at_the_first_step_whose_mean_exceeds_it():
    threshold = 0.9e-4  # mean after n steps: RATE n DT / VOLUME
    n = math.floor(threshold * VOLUME / (RATE * DT)) + 1
    assert RATE * (n - 1) * DT / VOLUME < threshold < RATE * n * DT / VOLUME  # no tie at the threshold
    result = run(build(_secreting(threshold)))
    totals = np.array([s.fields.sum() * 1000.0 for s in result.snapshots])  # amount: level x voxel volume
    expected = RATE * DT * np.minimum(np.arange(len(totals)), n)
    np.testing.assert_allclose(totals, expected, rtol=1e-12, atol=0)
    assert result.state.values["k_sec"] == 0.0


def test_a_count_condition_fires_at_the_step_its_count_first_drops_below_it():
    dying = [{"species": "Th", "death": 0.3, "placement": {"kind": "random", "count": 40}}]
    spec = _spec([{"name": "thinned", "when": "Th < 25", "add": {"IL2": 1.0}}], agents=dying, t_end=10)
    result = run(build(spec))
    counts = result.counts()[:, 0]
    first = int(np.argmax(counts < 25))
    assert counts[first] < 25 and counts[0] == 40 and 0 < first < len(counts) - 1  # the oracle is not trivial
    means = _means(result)
    np.testing.assert_array_equal(means[:first], 0.0)
    np.testing.assert_allclose(means[first:], 1.0, rtol=1e-13)  # uniform: no vessels; once: the count stays low


def test_a_firing_repeats_only_after_its_condition_was_false():
    events = [{"name": "window", "when": "t > 1 and t < 2 or t > 3", "add": {"IL2": 1.0}},  # true 1.5, false 2..3, true 3.5
              {"name": "late", "when": "t < 1 or t > 4", "add": {"IL2": 10.0}}]  # true at t = 0: first fires at 4.5
    means = _means(run(build(_spec(events))))
    times = np.arange(len(means)) * DT
    expected = 1.0 * (times >= 1.5) + 1.0 * (times >= 3.5) + 10.0 * (times >= 4.5)
    np.testing.assert_allclose(means, expected, rtol=1e-13, atol=0)


def test_a_delay_applies_whole_steps_later_unless_a_transient_condition_drops_it():
    events = [{"name": "held", "when": "t > 1 and t < 2", "delay": 1, "add": {"IL2": 1.0}},
              {"name": "dropped", "when": "t > 1 and t < 2", "delay": 1, "persistent": False, "add": {"IL2": 10.0}},
              {"name": "kept", "when": "t > 1 and t < 3", "delay": "d", "persistent": False, "add": {"IL2": 100.0}},
              {"name": "guarded", "when": "t > 1", "only_if": "IL2 > 50", "add": {"IL2": 1000.0}}]
    spec = _spec(events, parameters=[{"name": "d", "value": 1.0}])
    means = _means(run(build(spec)))
    times = np.arange(len(means)) * DT
    # all trigger at 1.5: 'held' applies at 2.5; 'dropped' is false at 2 before its time; 'kept' still true at 2.5
    expected = 101.0 * (times >= 2.5)
    np.testing.assert_allclose(means, expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("g", [1.0, 0.0])
def test_a_guarded_timed_dose_applies_only_where_its_guard_holds_at_its_time(g):
    """Doses of 1 at 1 and 2 min guarded by ``g > 0 and IL2 < 0.5``: with g = 1 the first applies (IL2 is 0 then) and
    the second does not (IL2 is 1); with g = 0 neither. A dose at t_k acts before the step from t_k on: it shows from
    the snapshot at t_k (run as a condition judged at the step end t_k)."""
    events = [{"name": "guarded", "at": [1, 2], "only_if": "g > 0 and IL2 < 0.5", "add": {"IL2": 1.0}}]
    means = _means(run(build(_spec(events, parameters=[{"name": "g", "value": g}]))))
    times = np.arange(len(means)) * DT
    np.testing.assert_allclose(means, g * (times >= 1), rtol=1e-13, atol=0)


def test_a_delayed_timed_parameter_change_applies_exactly_its_delay_later():
    """``at: 1, delay: 1.5`` setting the secretion rate to 0: the still cell secretes until 2.5 min, so the field's total
    is RATE min(t, 2.5) at every snapshot (no diffusion, no decay)."""
    spec = _spec([{"name": "stop", "at": 1, "delay": 1.5, "set": {"k_sec": 0.0}}], agents=SECRETING,
                 parameters=[{"name": "k_sec", "value": RATE}], bound={"k_sec": "agents[Th].secretion[0].rate"})
    result = run(build(spec))
    totals = np.array([s.fields.sum() * 1000.0 for s in result.snapshots])
    times = np.arange(len(totals)) * DT
    np.testing.assert_allclose(totals, RATE * np.minimum(times, 2.5), rtol=1e-12, atol=0)
    assert result.state.values["k_sec"] == 0.0


@pytest.mark.parametrize("g", [1.0, 0.0])
def test_a_timed_event_at_zero_with_a_guard_or_a_delay_triggers_as_the_run_starts(g):
    """At t = 0 the guard is tested on the starting view and an undelayed dose is in the field from the first snapshot
    (g IL2 everywhere); a delay counts from 0: ``at: 0, delay: 1.5`` stopping the still cell's secretion leaves
    RATE min(t, 1.5) in the field, as the same change written ``at: 1.5`` does."""
    guarded = [{"name": "start", "at": 0, "only_if": "g > 0 and IL2 < 0.5", "add": {"IL2": 1.0}}]
    means = _means(run(build(_spec(guarded, parameters=[{"name": "g", "value": g}]))))
    np.testing.assert_allclose(means, np.full(len(means), g), rtol=1e-13, atol=0)
    delayed = [{"name": "stop", "at": 0, "delay": 1.5, "only_if": "g > 0", "set": {"k_sec": 0.0}}]
    spec = _spec(delayed, agents=SECRETING, parameters=[{"name": "k_sec", "value": RATE}, {"name": "g", "value": g}],
                 bound={"k_sec": "agents[Th].secretion[0].rate"})
    totals = np.array([s.fields.sum() * 1000.0 for s in run(build(spec)).snapshots])
    times = np.arange(len(totals)) * DT
    np.testing.assert_allclose(totals, RATE * (np.minimum(times, 1.5) if g else times), rtol=1e-12, atol=0)


def test_a_checkpointed_run_resumes_with_its_armed_and_pending_events_bit_for_bit(tmp_path):
    threshold = 0.9e-4
    spec = _secreting(threshold, delay=1.5)  # fires at 2 min (n = 4), applies at 3.5: pending over the cut at 3
    dying = {"species": "Th", "death": 0.1, "placement": {"kind": "random", "count": 30}}
    data = spec.model_dump(mode="json", exclude_defaults=True)
    data["species"].append({"name": "Tc", "kind": "cell", "initial": 0})
    data["tissue"]["agents"].append({**dying, "species": "Tc"})
    data["events"].append({"name": "thinned", "when": "Tc < 25", "add": {"IL2": 1e-3}})
    data["events"].append({"name": "late", "at": 2.5, "delay": 1, "add": {"IL2": 2e-3}})  # timed: pending over the cut too
    setup = build(spec_from_dict(data))
    whole = run(setup)
    part = run(setup, t_end=3)
    assert len(part.state.watch.pending) == 2 and part.state.values["k_sec"] == RATE
    save_checkpoint(tmp_path / "c.npz", part, "same")
    loaded = load_checkpoint(tmp_path / "c.npz", setup, "same")
    resumed = run(setup, resume=loaded)
    assert whole.state.values["k_sec"] == 0.0
    assert whole.snapshots[-1].fields.sum() * 1000.0 >= RATE * 7 * DT  # secreted until 3.5: the delay held
    for a, b in zip(whole.snapshots, resumed.snapshots, strict=True):
        np.testing.assert_array_equal(a.fields, b.fields)
        for key in ("ids", "typ", "pos"):
            np.testing.assert_array_equal(a.agents[key], b.agents[key])


INTERNAL = [{"species": "Th", "internal": ["R"], "placement": {"kind": "cluster", "count": 1, "center": [55, 35],
                                                                "radius": 1}}]


@pytest.mark.parametrize("events, fragment", [
    ([{"name": "late", "when": "time > 1", "add": {"IL2": 1}}], "events[0].when: 'late' reads 'time', not something"),
    ([{"name": "inside", "when": "R > 1", "add": {"IL2": 1}}], "'inside' reads 'R', a species internal to cells"),
    ([{"name": "plasma", "when": "CRP > 1", "add": {"IL2": 1}}], "reads 'CRP', not something"),
    ([{"name": "odd", "when": "t > 1", "delay": 0.7, "add": {"IL2": 1}}], "events[0].delay: 'odd': the tissue engine "
                                                                           "needs a delay of a whole number of steps"),
    ([{"name": "moving", "when": "t > 1", "delay": "IL2", "add": {"IL2": 1}}], "events[0].delay"),
    ([{"name": "odd", "at": 1, "delay": 0.7, "add": {"IL2": 1}}], "events[0].delay: 'odd': the tissue engine needs a"),
])
def test_conditions_the_tissue_cannot_judge_are_refused(events, fragment):
    spec = _spec(events, agents=INTERNAL, species=[{"name": "R", "kind": "other", "initial": 0},
                                                   {"name": "CRP", "kind": "other", "initial": 0}])
    with pytest.raises(ModelError) as info:
        build(spec)
    assert fragment in str(info.value)
