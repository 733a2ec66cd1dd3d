"""Motifs expand into ordinary processes: same trajectories as the hand-written network."""

import math

import numpy as np
import pytest

import ilsim
from ilsim.model.compile import compile_model
from ilsim.report import text

HAND_WRITTEN = """
metadata: {name: hand, time_units: hour}
species:
  - {name: P, kind: pathogen, units: cells, initial: 1}
  - {name: M, kind: cell, units: cells, initial: 100}
  - {name: IL6, kind: cytokine, units: pM, initial: 0}
  - {name: IL10, kind: cytokine, units: pM, initial: 0.5}
  - {name: Teff, kind: cell, units: cells, initial: 10}
  - {name: D, kind: tissue, units: au, initial: 0}
  - {name: syn, kind: other, initial: 0}
parameters:
  - {name: kg, value: 0.2}
  - {name: k6, value: 0.05}
  - {name: K, value: 0.5}
  - {name: tau, value: 2.0}
  - {name: kk, value: 0.01}
  - {name: kc, value: 0.3}
processes:
  - {name: pathogen growth, rate: "kg*P", produces: {P: 1}}
  - {name: switch on, rate: "hill(P, K, 2)/tau", produces: {syn: 1}}
  - {name: switch off, rate: "syn/tau", consumes: {syn: 1}}
  - {name: secretion, rate: "k6*M*syn/(1 + (IL10/0.4)**1)", produces: {IL6: 1}}
  - {name: IL-6 clearance, rate: "0.6931471805599453/0.5*IL6", consumes: {IL6: 1}}
  - {name: expansion, rate: "0.1*hill(IL6, 3, 1)*Teff", produces: {Teff: 1}}
  - {name: killing, rate: "kk*Teff*P", consumes: {P: 1}, produces: {D: 0.01}}
  - {name: uptake, rate: "kc*Teff*IL6/(2 + IL6)", consumes: {IL6: 1}}
observables:
  - {name: signal, expression: "hill(IL6, 3, 1)"}
  - {name: temperature, expression: "37 + 3*hill(IL6, 20, 2)"}
"""

MOTIFS = """
metadata: {name: motifs, time_units: hour}
species:
  - {name: P, kind: pathogen, units: cells, initial: 1}
  - {name: M, kind: cell, units: cells, initial: 100}
  - {name: IL6, kind: cytokine, units: pM, initial: 0}
  - {name: IL10, kind: cytokine, units: pM, initial: 0.5}
  - {name: Teff, kind: cell, units: cells, initial: 10}
  - {name: D, kind: tissue, units: au, initial: 0}
parameters:
  - {name: kg, value: 0.2}
  - {name: k6, value: 0.05}
  - {name: K, value: 0.5}
  - {name: tau, value: 2.0}
  - {name: kk, value: 0.01}
  - {name: kc, value: 0.3}
processes:
  - {name: pathogen growth, rate: "kg*P", produces: {P: 1}}
motifs:
  - secretion: {cytokine: IL6, producer: M, stimulus: P, rate: k6, half_saturation: K, hill: 2, lag: tau}
  - clearance: {species: IL6, half_life: 0.5}
  - signalling: {name: signal, cytokine: IL6, target: Teff, ec50: 3}
  - proliferation: {cells: Teff, rate: 0.1, driver: signal}
  - killing: {killer: Teff, target: P, rate: kk, collateral: {D: 0.01}}
  - consumption: {cytokine: IL6, consumer: Teff, rate: kc, half_saturation: 2}
  - suppression: {signal: IL10, targets: [IL6 secretion by M], ic50: 0.4}
  - readout: {kind: fever, inputs: {IL6: 1}, half_saturation: 20, hill: 2}
"""


def _load(tmp_path, text, name):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return ilsim.load(path)


def test_motif_model_and_hand_written_processes_give_identical_trajectories(tmp_path):
    grid = np.linspace(0, 48, 97)
    hand = ilsim.simulate(_load(tmp_path, HAND_WRITTEN, "hand"), t_eval=grid, rtol=1e-10, atol=1e-12)
    motif = ilsim.simulate(_load(tmp_path, MOTIFS, "motifs"), t_eval=grid, rtol=1e-10, atol=1e-12)
    for name in ("P", "M", "IL6", "IL10", "Teff", "D", "signal", "temperature"):
        assert np.allclose(motif[name].values, hand[name].values, rtol=1e-7, atol=1e-10), name
    assert np.allclose(motif["IL6_synthesis_in_M"].values, hand["syn"].values, rtol=1e-7, atol=1e-12)


def test_show_prints_the_processes_a_motif_expands_to(tmp_path):
    model = ilsim.compile(_load(tmp_path, MOTIFS, "motifs"))
    equations = "\n".join(text.equations(model))
    assert "dIL6_synthesis_in_M/dt = hill(P, K, 2)/tau - IL6_synthesis_in_M/tau" in equations
    assert "dIL6/dt = k6*M*IL6_synthesis_in_M*1/(1 + (IL10/0.4)**1) - 0.6931471805599453/0.5*IL6" in equations


def secretion_model(stimulus_off_at: float | None):
    m = ilsim.Model(name="secretion", time_units="hour")
    m.add_species("M", 50, kind="cell").add_species("IL1b", 0.0, kind="cytokine", units="pg/mL")
    m.add_parameter("stim", 0.0).add_parameter("lag", 1.5, units="hour")
    m.add_motif("secretion", cytokine="IL1b", producer="M", stimulus="stim", rate=0.2, half_saturation=1, lag="lag")
    m.add_motif("clearance", species="IL1b", half_life=2.0)
    if stimulus_off_at is not None:
        m.add_event("stimulus on", at=1, set={"stim": 5})
        m.add_event("stimulus off", at=stimulus_off_at, set={"stim": 0})
    return m


def secretion_rate(ds):
    return 0.2 * ds["M"].values * ds["IL1b_synthesis_in_M"].values


def test_no_stimulus_means_exactly_zero_secretion():
    ds = ilsim.simulate(secretion_model(None), 24)
    assert np.all(ds["IL1b"].values == 0.0)
    assert np.all(secretion_rate(ds) == 0.0)


def test_secretion_starts_after_the_stimulus_and_stops_within_4_6_lags_after_it_ends():
    ds = ilsim.simulate(secretion_model(stimulus_off_at=10), 30, points=3001, rtol=1e-10, atol=1e-14)
    t, rate = ds["time"].values, secretion_rate(ds)
    assert np.all(rate[t <= 1] == 0.0)  # nothing stored: nothing released before stimulation
    at_off = rate[np.searchsorted(t, 10)]
    assert at_off > 0
    after = rate[t >= 10 + math.log(100) * 1.5]
    assert after.max() < 0.01 * at_off + 1e-15
    one_lag_after = rate[np.searchsorted(t, 11.5)]
    assert one_lag_after == pytest.approx(at_off * math.exp(-1), rel=1e-3)


def test_crp_readout_sits_at_baseline_and_rises_with_il6():
    m = ilsim.Model(name="crp", time_units="hour").add_species("IL6", 0.0, kind="cytokine", units="pg/mL")
    m.add_motif("readout", kind="crp", inputs={"IL6": 1}, half_saturation=50)
    m.add_event("storm", at=24, set={"IL6": 500})
    ds = ilsim.simulate(m, 24 * 6, points=145)
    assert float(ds["CRP"].sel(time=24)) == pytest.approx(0.8)
    assert float(ds["CRP"][-1]) > 100  # severe inflammation: hundreds of mg/L within days
    model = ilsim.compile(m)
    clearance = dict(zip(model.parameters, model.p0))["CRP_clearance"]
    assert math.log(2) / clearance == pytest.approx(19.0)  # plasma half-life 19 h


def test_motif_mistakes_name_the_motif_field(tmp_path):
    broken = MOTIFS.replace("producer: M,", "producer: Mac,").replace("[IL6 secretion by M]", "[IL6 secretion by Mx]")
    with pytest.raises(ilsim.ModelError) as info:
        compile_model(_load(tmp_path, broken, "broken"), source="broken.yaml")
    problems = {p.field: p.message for p in info.value.problems}
    assert problems["motifs[0].secretion.producer"] == "unknown species 'Mac' (did you mean 'M'?)"
    assert "motifs[6].suppression.targets[0]" in problems


def test_unknown_name_in_a_motif_expression_is_reported_at_the_motif(tmp_path):
    broken = MOTIFS.replace("stimulus: P,", "stimulus: Pathogen,")
    with pytest.raises(ilsim.ModelError) as info:
        compile_model(_load(tmp_path, broken, "broken"))
    assert [p.field for p in info.value.problems] == ["motifs[0].secretion.stimulus"]
    assert "unknown name 'Pathogen'" in info.value.problems[0].message


def test_a_motif_entry_must_have_exactly_one_known_kind(tmp_path):
    broken = MOTIFS.replace("  - clearance:", "  - clearence:")
    with pytest.raises(ilsim.ModelError) as info:
        ilsim.load(_write(tmp_path, broken))
    assert any("clearence" in str(p) and "clearance" in str(p) for p in info.value.problems)


def _write(tmp_path, text):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return path


def test_clearance_without_a_rate_takes_the_half_life_from_the_catalogue():
    from ilsim.biology.catalogue import builtin_catalogue

    m = ilsim.Model(name="hl", time_units="day").add_species("IL6", 100.0, kind="cytokine", interleukin="IL-6")
    m.add_motif("clearance", species="IL6")
    expected_days = builtin_catalogue().get("IL-6").half_life.hours / 24
    ds = ilsim.simulate(m, 2 * expected_days, t_eval=[0, expected_days, 2 * expected_days], rtol=1e-10, atol=1e-12)
    assert ds["IL6"].values == pytest.approx([100, 50, 25], rel=1e-6)
    assert "catalogue half-life of IL-6" in ilsim.compile(m).spec.processes[0].description


def test_clearance_without_a_rate_needs_a_catalogue_half_life():
    m = ilsim.Model(name="hl").add_species("IL4", 1.0, kind="cytokine", interleukin="IL-4")
    m.add_motif("clearance", species="IL4")
    with pytest.raises(ilsim.ModelError, match=r"motifs\[0\].clearance: the catalogue has no half-life for IL-4"):
        ilsim.compile(m)
    plain = ilsim.Model(name="plain").add_species("X", 1.0).add_motif("clearance", species="X")
    with pytest.raises(ilsim.ModelError, match="names no interleukin"):
        ilsim.compile(plain)


def test_motif_names_and_readout_inputs_that_are_not_names_are_refused_at_the_motif(tmp_path):
    text = """
metadata: {name: x}
species:
  - {name: X, initial: 1}
motifs:
  - readout: {kind: pain, name: "my pain", inputs: {X: 1}, half_saturation: 1}
  - signalling: {cytokine: X, target: "bad target", ec50: 1}
  - readout: {kind: pain, name: p2, inputs: {"X, 1, 1) + hill(X": 1}, half_saturation: 1}
"""
    with pytest.raises(ilsim.ModelError) as info:
        ilsim.compile(_write(tmp_path, text))
    assert [p.field for p in info.value.problems] == [
        "motifs[0].readout.name", "motifs[1].signalling.name", "motifs[2].readout.inputs"]
