"""The tissue's link to the body (tissue.systemic, engines/tissue/systemic.py), against invariants and the ODE engine.

- Mass across the link: what the vessels move between the grid and the linked well-mixed species is conserved to
  round-off: the change of (domain mean + scale x species / volume_ratio) equals the ledger's other entries (secreted,
  decayed, ...) over the domain volume.
- Doses of ``doses:``/``pk:`` enter the well-mixed part and reach the tissue through the vessels: with fast diffusion
  the tissue run's mean field follows the ODE engine's run of the same dosed model (whose exchange process is the
  well-mixed reading of the vessels), within 1%, and the difference halves with dt (the splitting is first order).
- Outcome labels of the model judged on the tissue run's series, and the well-mixed species in TissueEngine.solve.
- A link that contradicts the model is refused with the field named (exit 2 from the command, nothing written); the
  command writes the well-mixed species; a run interrupted after a checkpoint resumes to the same numbers, condition
  events armed, fired and pending across the cut included.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

import ilsim
from ilsim.engines.tissue import systemic
from ilsim.engines.tissue.engine import TissueEngine, run
from ilsim.engines.tissue.setup import build
from ilsim.errors import ModelError
from ilsim.model.load import spec_from_dict


def _linked(outcomes=(), events=(), **link):
    return spec_from_dict({
        "metadata": {"name": "linked", "time_units": "minute"},
        "species": [{"name": "C", "kind": "cytokine", "initial": 0}, {"name": "Cb", "kind": "cytokine", "initial": 3.0},
                    {"name": "Th", "kind": "cell", "initial": 0}],
        "outcomes": list(outcomes), "events": list(events),
        "tissue": {"domain": {"dimensions": 2, "size": [100, 60], "voxel": 10,
                              "vessels": [{"lower": [0, 0], "upper": [20, 60]}]},
                   "fields": [{"species": "C", "diffusion": 50, "decay": 0.01, "vessel_exchange": 0.5}],
                   "agents": [{"species": "Th", "secretion": [{"field": "C", "rate": 5000.0}],
                               "placement": {"kind": "cluster", "count": 3, "center": [70, 30], "radius": 5}}],
                   "dt": 0.5, "t_end": 20, "save_every": 5,
                   "systemic": {"volume_ratio": 0.05, "exchange": [{"field": "C", "species": "Cb", "scale": 2.0}], **link}}})


def test_mass_across_the_link_is_conserved_to_round_off():
    model = ilsim.compile(_linked())
    setup = build(model.spec)
    link = systemic.link(model, setup)
    result = run(setup, link=link)
    first = systemic.Body(result.snapshots[0].body, model.p0)
    change = link.total(result.state.body, result.state.fields) - link.total(first, result.snapshots[0].fields)
    ledger = result.state.ledger
    assert abs(ledger.blood[0]) > 1e3  # the vessels did move something
    expected = (ledger.net() - ledger.blood) / link.domain_volume  # secreted - decayed: what the link does not move
    assert change[0] == pytest.approx(expected[0], rel=1e-12, abs=1e-12 * abs(ledger.blood[0]) / link.domain_volume)
    assert result.state.body.y[model.species.index("Cb")] != 3.0  # the species took what left the tissue


def _dosed(dt: float):
    V, ratio, kv, fraction = 2.0, 0.02, 0.5, 0.2  # vessel voxels: 2 of 10 columns
    return spec_from_dict({
        "metadata": {"name": "dosed_link", "time_units": "minute"},
        "species": [{"name": "Dt", "kind": "drug", "units": "mg/L", "initial": 0}],
        "parameters": [{"name": "k_in", "value": kv * fraction, "units": "1/min"},
                       {"name": "k_d", "value": 0.02, "units": "1/min"}, {"name": "V", "value": V, "units": "L"}],
        "pk": [{"drug": "mab", "compartments": 1, "volume": "V", "clearance": 0.01}],
        "doses": [{"drug": "mab", "route": "iv_bolus", "amount": 1.0, "units": "mg", "at": 5.0},
                  {"drug": "mab", "route": "iv_infusion", "amount": 2.0, "units": "mg", "start": 20.0, "duration": 10.0}],
        # the well-mixed reading of the vessels: tissue relaxes to the plasma level, plasma loses what the tissue gains
        "processes": [{"name": "exchange", "rate": "k_in*(mab_central/V - Dt)", "produces": {"Dt": 1},
                       "consumes": {"mab_central": ratio * V}},
                      {"name": "decay", "rate": "k_d*Dt", "consumes": {"Dt": 1}}],
        "simulation": {"t_end": 60, "points": 121, "rtol": 1e-8, "atol": 1e-12},
        "tissue": {"domain": {"dimensions": 2, "size": [100, 100], "voxel": 10,
                              "vessels": [{"lower": [0, 0], "upper": [20, 100]}]},
                   "fields": [{"species": "Dt", "diffusion": 1e5, "decay": 0.02, "vessel_exchange": kv}],
                   "dt": dt, "t_end": 60, "save_every": 0.5,
                   "systemic": {"volume_ratio": ratio, "exchange": [{"field": "Dt", "species": "mab_central", "scale": 1 / V}]}}})


def _dose_error(dt: float) -> float:
    model = ilsim.compile(_dosed(dt))
    setup = build(model.spec)
    result = run(setup, link=systemic.link(model, setup))
    mean, _ = result.field_stats()
    ode = ilsim.simulate(model, t_end=60, points=121)["Dt"].values
    assert ode.max() > 1.0  # both doses arrived
    return float(np.max(np.abs(mean[:, 0] - ode)) / ode.max())


def test_doses_reach_the_tissue_through_the_blood_as_the_ode_engine_says():
    coarse, fine = _dose_error(0.05), _dose_error(0.025)
    assert fine < 0.01
    assert 0.4 < fine / coarse < 0.65  # first order in dt: the gap is the splitting's, not a missing term


def test_outcome_labels_and_the_engine_contract_see_the_well_mixed_species():
    spec = _linked(outcomes=[{"label": "drained", "when": "Cb < 2.99"}, {"label": "full", "when": "Cb >= 2.99"}])
    model = ilsim.compile(spec)
    setup = build(model.spec)
    result = run(setup, link=systemic.link(model, setup))
    cb = result.state.body.y[model.species.index("Cb")]
    assert systemic.outcome(result, model) == ("drained" if cb < 2.99 else "full")
    Y = systemic.series(result, model)
    assert Y[-1, model.species.index("Cb")] == cb and Y[-1, model.species.index("Th")] == 3
    out = TissueEngine().solve(model, np.arange(0, 21, 5.0), model.p0[None, :])
    assert np.isfinite(out.Y[0, :, model.species.index("Cb")]).all()
    assert out.Y[0, 0, model.species.index("Cb")] == 3.0


@pytest.mark.parametrize("link, field, words", [
    ({"exchange": [{"field": "X", "species": "Cb"}]}, "tissue.systemic.exchange[0].field", "not a field"),
    ({"exchange": [{"field": "C", "species": "Th"}]}, "tissue.systemic.exchange[0].species", "part of the tissue"),
    ({"exchange": [{"field": "C", "species": "Cx"}]}, "tissue.systemic.exchange[0].species", "not a species"),
])
def test_a_link_that_contradicts_the_model_is_refused(link, field, words):
    model = ilsim.compile(_linked(**link))
    with pytest.raises(ModelError) as info:
        systemic.link(model, build(model.spec))
    assert any(p.field == field and words in p.message for p in info.value.problems)


def _write(tmp_path, spec_dict, name="linked.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec_dict, sort_keys=False))
    return path


def _linked_dict(**link):
    return _linked(**link).model_dump(mode="json", exclude_defaults=True)


def test_the_command_writes_the_well_mixed_part_and_a_bad_link_is_refused(cli, refused, tmp_path):
    good = _write(tmp_path, _linked_dict())
    result = cli("tissue", good, "--out", tmp_path / "ok", "--quiet")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ok" / "figures" / "systemic.png").stat().st_size > 0  # the well-mixed species over time
    info = json.loads((tmp_path / "ok" / "summary.json").read_text())
    table = pd.read_csv(tmp_path / "ok" / "timeseries.csv")
    assert table["Cb"].iloc[0] == 3.0 and table["Cb"].iloc[-1] == pytest.approx(info["final_systemic"]["Cb"], rel=1e-15)
    bad = _write(tmp_path, _linked_dict(exchange=[{"field": "C", "species": "Th"}]), "bad.yaml")
    refused(cli("tissue", bad, "--out", tmp_path / "no", "--quiet"), "tissue.systemic.exchange[0].species", "part of the tissue")
    assert not (tmp_path / "no").exists()
    refused(cli("tissue", good, "--out", tmp_path / "no", "--quiet", "--fault", "stop-ignored"), "declares no fault")


class _Stop(Exception):
    pass


# condition events across the checkpoint at 10 min: one triggered at 9.5 and due at 11.5 with the value Cb had at its
# trigger (pending in the file), one on the well-mixed species (armed in the file), one re-arming on t
CONDITIONS = [{"name": "top-up", "when": "t > 9", "delay": 2, "add": {"Cb": "Cb"}},
              {"name": "low", "when": "Cb < 2.5", "add": {"Cb": 0.5}},
              {"name": "pulse", "when": "t > 8 and t < 9 or t > 13", "add": {"C": 0.01}}]


def test_an_interrupted_linked_run_resumes_to_the_same_numbers(tmp_path):
    model = _linked(events=CONDITIONS)
    whole, info = ilsim.tissue(model, tmp_path / "whole", report=False)

    def stop(t, cells):
        if t >= 12:  # after the checkpoint at 10 min
            raise _Stop

    with pytest.raises(_Stop):
        ilsim.tissue(model, tmp_path / "cut", report=False, progress=stop)
    again, info_again = ilsim.tissue(model, tmp_path / "cut", report=False)
    assert info_again["resumed_at_min"] == 10
    np.testing.assert_array_equal(again.state.body.y, whole.state.body.y)
    np.testing.assert_array_equal(again.state.fields, whole.state.fields)
    assert info_again["final_systemic"] == info["final_systemic"]
    for a, b in zip(again.snapshots, whole.snapshots, strict=True):
        np.testing.assert_array_equal(a.body, b.body)
        np.testing.assert_array_equal(a.fields, b.fields)
    plain, _ = ilsim.tissue(_linked(), tmp_path / "plain", report=False)
    assert whole.state.body.y[1] > plain.state.body.y[1]  # the top-up happened (Cb is the second species)


def _bad(change):
    data = _linked_dict()
    change(data["tissue"])
    return data


@pytest.mark.parametrize("change, words", [
    (lambda t: t["agents"][0].update(receptor={"field": "C", "kd": 1, "loss": 1.5}), "loss must lie between 0 and 1"),
    (lambda t: t["agents"][0].update(suppression={"ic50": 0.2}), "give receptor: too"),
    (lambda t: t["agents"][0].update(receptor={"field": "C", "kd": 1}, suppression={"ic50": 0.2, "blunting": 2}),
     "blunting must lie between 0 and 1"),
    (lambda t: t["systemic"].update(volume_ratio=0), "volume_ratio must be a positive number"),
    (lambda t: t["domain"].update(vessels=[]), "the domain has none"),
    (lambda t: t["fields"][0].update(vessel_exchange=0), "has no vessel_exchange"),
])
def test_bad_links_and_stop_rules_are_refused_before_anything_is_written(cli, refused, tmp_path, change, words):
    path = _write(tmp_path, _bad(change), "bad.yaml")
    refused(cli("tissue", path, "--out", tmp_path / "no", "--quiet"), "tissue", words)
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("trigger", [{"when": "t > 9"}, {"at": 9.5}], ids=["condition", "timed"])
@pytest.mark.parametrize("at_trigger", [True, False])
def test_a_delayed_condition_event_on_the_well_mixed_part_takes_its_values_when_the_model_says(at_trigger, trigger):
    """Triggered at 9.5 min, applied at 11.5: the run without the event is the same up to that step end, so the jump
    adds Cb as it was at 9.5 (values at the trigger) or doubles it (values when applied). A timed event (at: 9.5) with
    the delay means the same; applied once, so the link does not also run it at 9.5."""
    event = {"name": "top-up", **trigger, "delay": 2, "values_at_trigger": at_trigger, "add": {"Cb": "Cb"}}

    def cb(spec):
        model = ilsim.compile(spec)
        setup = build(model.spec)
        out = run(setup, t_end=12, save_every=0.5, link=systemic.link(model, setup))
        return np.array([s.body[1] for s in out.snapshots])  # Cb: the second species

    plain, jumped = cb(_linked()), cb(_linked(events=[event]))
    np.testing.assert_array_equal(jumped[:23], plain[:23])  # up to 11 min
    added = plain[19] if at_trigger else plain[23]  # Cb at 9.5 min, or at 11.5 before the jump
    assert jumped[23] == plain[23] + added


def test_the_systemic_figure_labels_each_axis_with_its_unit(tmp_path, monkeypatch):
    """One panel per well-mixed species: its y axis carries the species' unit (no unit declared: no label claimed)."""
    import matplotlib.pyplot as plt

    from ilsim.report import tissue as report

    spec = _linked()
    model = ilsim.compile(spec)
    setup = build(spec)
    result = run(setup, link=systemic.link(model, setup, model.p0))
    drawn = []
    monkeypatch.setattr(plt, "close", drawn.append)
    for units, label in [({"Cb": "pg/mL"}, "pg/mL"), ({}, "")]:
        report.systemic_figure(result, model, tmp_path / "systemic.png", units)
        figure = drawn.pop()
        assert [ax.get_ylabel() for ax in figure.axes] == [label]
        plt.close(figure)
