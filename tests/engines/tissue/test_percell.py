"""The model's processes read per cell by the tissue engine (engines/tissue/percell.py), against hand calculations.

Each kind of reading on a case small enough to compute by hand (secretion, uptake, decay, a voxel reaction, a
per-cell ODE with each cell's own level, fates and recruitment against their binomial and Poisson laws, the per-contact
killing rate k V_domain / V_contact), the refusals (one message naming the process and the reason, exit 2), and the
il2-niche scenario read per cell against the same scenario written with explicit rules (same seed).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

import ilsim
from ilsim.engines.tissue.engine import run
from ilsim.engines.tissue.setup import build
from ilsim.errors import ModelError
from ilsim.model.load import spec_from_dict

SIZE, VOXEL = 100.0, 10.0  # a 10 x 10 grid, 2-D: V_domain = 100 x 100 x 10 µm³
V_DOMAIN, V_VOXEL = SIZE * SIZE * VOXEL, VOXEL**3


def _model(processes, *, agents=(), species=(), parameters=(), fields=({"species": "S", "diffusion": 0.0},), motifs=(),
           **tissue) -> dict:
    section = {"domain": {"dimensions": 2, "size": [SIZE, SIZE], "voxel": VOXEL}, "fields": list(fields),
               "agents": list(agents), "dt": 0.1, "t_end": 2, "save_every": 1, **tissue}
    base = [{"name": "S", "kind": "cytokine", "initial": 0}, {"name": "P", "kind": "cytokine", "initial": 0},
            {"name": "A", "kind": "cell", "initial": 0}, {"name": "B", "kind": "cell", "initial": 0}]
    return {"metadata": {"name": "percell", "time_units": "minute"}, "species": base + list(species),
            "parameters": list(parameters), "processes": list(processes), "motifs": list(motifs), "tissue": section}


def _spec(processes, **options):
    return spec_from_dict(_model(processes, **options))


def _one_cell_at(setup, x, y):
    setup.agents.pos[:] = [x, y, 0.0]
    return setup


def test_secretion_puts_rate_times_domain_volume_into_the_cells_voxel():
    spec = _spec([{"name": "sec", "rate": "3*A", "produces": {"S": 2}}],
                 agents=[{"species": "A", "placement": {"kind": "random", "count": 1}}])
    out = run(_one_cell_at(build(spec), 45.0, 25.0))
    level = out.snapshots[-1].fields[0, 0]
    expected = np.zeros((10, 10))
    expected[2, 4] = 2 * 3 * 2.0 * V_DOMAIN / V_VOXEL  # net 2 x rate per cell 3/min x 2 min, spread over one voxel
    np.testing.assert_allclose(level, expected, rtol=1e-12)
    assert level.mean() == pytest.approx(2 * 3 * 2.0)  # the well-mixed reading: dS/dt = 2 x 3 x A


def test_uptake_is_implicit_in_the_cells_voxel_with_the_per_cell_coefficient():
    spec = _spec([{"name": "up", "rate": "0.002*A*S", "consumes": {"S": 1}}],
                 agents=[{"species": "A", "placement": {"kind": "random", "count": 1}}],
                 fields=[{"species": "S", "diffusion": 0.0, "initial": 4.0}])
    out = run(_one_cell_at(build(spec), 5.0, 95.0))
    level = out.snapshots[-1].fields[0, 0]
    per_step = 1.0 + 0.1 * 0.002 * V_DOMAIN / V_VOXEL  # c <- c / (1 + dt k V_domain / V_voxel), 20 steps
    expected = np.full((10, 10), 4.0)
    expected[9, 0] = 4.0 / per_step**20
    np.testing.assert_allclose(level, expected, rtol=1e-12)


def test_first_order_decay_becomes_the_fields_decay_unless_the_section_states_one():
    spec = _spec([{"name": "decay", "rate": "0.3*S", "consumes": {"S": 1}}])
    setup = build(spec)
    assert setup.solver.decay.tolist() == [0.3]
    assert setup.percell is None and "decay" not in setup.agent_names  # nothing left to do per cell
    stated = build(_spec([{"name": "decay", "rate": "0.3*S", "consumes": {"S": 1}}],
                         fields=[{"species": "S", "diffusion": 0.0, "decay": 0.1}]))
    assert stated.solver.decay.tolist() == [0.1]  # the explicit rule wins


def test_a_reaction_of_fields_runs_in_every_voxel():
    # dS/dt = -k S^2 (S -> P): per voxel S <- S / (1 + dt k S), P <- P + dt k S^2, and S(t) = S0 / (1 + k S0 t)
    spec = _spec([{"name": "pairing", "rate": "k*S*S", "consumes": {"S": 1}, "produces": {"P": 1}}],
                 parameters=[{"name": "k", "value": 0.5}],
                 fields=[{"species": "S", "diffusion": 0.0, "initial": 2.0}, {"species": "P", "diffusion": 0.0}])
    out = run(build(spec))
    s, p = 2.0, 0.0
    for _ in range(20):
        s, p = s / (1.0 + 0.1 * 0.5 * s), p + 0.1 * 0.5 * s * s
    fields = out.snapshots[-1].fields
    np.testing.assert_allclose(fields[0], s, rtol=1e-12)
    np.testing.assert_allclose(fields[1], p, rtol=1e-12)
    assert s == pytest.approx(2.0 / (1.0 + 0.5 * 2.0 * 2.0), rel=0.03)  # the scheme follows the exact solution
    ledger = out.state.ledger
    total = np.array([f.sum() * V_VOXEL for f in fields])
    np.testing.assert_allclose(ledger.net(), total - [2.0 * 100 * V_VOXEL, 0.0], rtol=1e-10)


def test_a_per_cell_ode_follows_each_cells_own_level():
    # d act/dt = c/(c + K)/tau - act/tau, c frozen per voxel: act(t) = c/(c + K) (1 - exp(-t/tau)) in each cell
    spec = _spec([{"name": "on", "rate": "S/(S + K)/tau", "produces": {"act": 1}},
                  {"name": "off", "rate": "act/tau", "consumes": {"act": 1}}],
                 species=[{"name": "act", "kind": "other", "initial": 0}],
                 parameters=[{"name": "K", "value": 2.0}, {"name": "tau", "value": 1.5}],
                 agents=[{"species": "A", "placement": {"kind": "random", "count": 3}, "internal": ["act"]},
                         {"species": "B", "placement": {"kind": "random", "count": 1}}])
    setup = build(spec)
    setup.agents.pos[:3] = [[5.0, 5.0, 0.0], [55.0, 5.0, 0.0], [95.0, 95.0, 0.0]]
    levels = {0: 0.5, 5: 2.0, 99: 8.0}
    for v, c in levels.items():
        setup.initial[0].reshape(-1)[v] = c
    out = run(setup)
    last = out.snapshots[-1].agents
    expected = [c / (c + 2.0) * (1.0 - math.exp(-2.0 / 1.5)) for c in levels.values()]
    np.testing.assert_allclose(last["internal"][:3, 0], expected, rtol=1e-6)  # RK4 over dt = 0.1: error ~ (dt/tau)^4
    assert np.isnan(last["internal"][3, 0])  # B does not carry act


def test_the_secretion_motif_is_read_with_its_lag_as_a_per_cell_programme():
    # the motif's programme p follows hill(S, K, 1) with time constant lag: p(t) = h (1 - exp(-t/lag)) at a fixed
    # stimulus; each producer secretes rate x p x V_domain into its voxel
    model = _model([], species=[{"name": "Q", "kind": "cytokine", "initial": 0}],
                   agents=[{"species": "A", "placement": {"kind": "random", "count": 1}, "internal": ["Q_synthesis_in_A"]}],
                   fields=[{"species": "S", "diffusion": 0.0, "initial": 3.0}, {"species": "Q", "diffusion": 0.0}],
                   motifs=[{"secretion": {"cytokine": "Q", "producer": "A", "stimulus": "S", "rate": 0.4,
                                          "half_saturation": 1.0, "lag": 2.0}}])
    spec = ilsim.compile(spec_from_dict(model)).spec  # the motif expanded into a programme species and processes
    out = run(_one_cell_at(build(spec), 35.0, 35.0), t_end=6)
    h, lag = 3.0 / 4.0, 2.0
    # secretion uses the programme at the start of each step (RK4 between): a left Riemann sum of h (1 - exp(-t/lag))
    times = np.arange(60) * 0.1
    expected = 0.4 * h * (1.0 - np.exp(-times / lag)).sum() * 0.1 * V_DOMAIN / V_VOXEL
    level = out.snapshots[-1].fields[1, 0].reshape(-1)
    assert level[33] == pytest.approx(expected, rel=1e-6)
    assert np.count_nonzero(level) == 1


def _counts(spec, seed=1, **options):
    return run(build(spec), seed=seed, **options).counts()[-1]


def test_fates_follow_their_laws():
    # 2000 still cells for 2 min: death at 0.2/min x S (S = 0.5 everywhere), division at 0.1/min, A -> B at 0.05/min,
    # each an independent per-cell event: binomial counts around the exact means
    processes = [{"name": "death", "rate": "0.2*S*A", "consumes": {"A": 1}},
                 {"name": "division", "rate": "0.1*B", "produces": {"B": 1}},
                 {"name": "differentiation", "rate": "0.05*A", "consumes": {"A": 1}, "produces": {"B": 1}}]
    spec = _spec(processes, agents=[{"species": "A", "placement": {"kind": "random", "count": 2000}},
                                    {"species": "B", "placement": {"kind": "random", "count": 2000}}],
                 fields=[{"species": "S", "diffusion": 0.0, "initial": 0.5}])
    a, b = _counts(spec)
    leave = 0.1 + 0.05  # A dies at 0.2 x 0.5 and turns into B at 0.05
    expect_a = 2000 * math.exp(-leave * 2.0)
    assert abs(a - expect_a) < 4 * math.sqrt(2000 * math.exp(-leave * 2) * (1 - math.exp(-leave * 2)))
    # B: 2000 growing at 0.1, plus the A turned B at 0.05 A(s), growing from then: 100 e^0.2 (1 - e^-0.5) / 0.25
    expect_b = 2000 * math.exp(0.2) + 2000 * 0.05 * math.exp(0.2) * (1 - math.exp(-(leave + 0.1) * 2)) / (leave + 0.1)
    assert abs(b - expect_b) < 0.03 * expect_b  # about 3 standard deviations of the branching count


def test_recruitment_spreads_over_vessels_or_the_whole_domain():
    # 40 cells/min for 2 min: Poisson(80); with vessels every recruit lies in a vessel voxel
    processes = [{"name": "recruit", "rate": "20*S", "produces": {"A": 1}}]
    fields = [{"species": "S", "diffusion": 0.0, "initial": 2.0}]
    counts = [_counts(_spec(processes, agents=[{"species": "A"}], fields=fields), seed=s)[0] for s in range(5)]
    assert abs(np.mean(counts) - 80) < 4 * math.sqrt(80 / 5)
    vessel = {"lower": [0, 0], "upper": [20, 100]}
    spec = _spec(processes, agents=[{"species": "A"}], fields=fields, domain={"dimensions": 2, "size": [SIZE, SIZE],
                                                                               "voxel": VOXEL, "vessels": [vessel]})
    out = run(build(spec), seed=3)
    pos = out.snapshots[-1].agents["pos"]
    assert len(pos) > 40 and np.all(pos[:, 0] < 20.0)


def test_killing_on_contact_has_the_mean_field_rate_per_contact():
    spec = _spec([{"name": "kill", "rate": "k*A*B", "consumes": {"B": 1}}], parameters=[{"name": "k", "value": 0.003}],
                 agents=[{"species": "A", "radius": 4.0}, {"species": "B", "radius": 6.0}])
    setup = build(spec)
    contact = math.pi * (4.0 + 6.0) ** 2 * VOXEL  # 2-D: a disc of radius R_A + R_B, one voxel thick
    assert setup.types.kill_rate[0, 1] == pytest.approx(0.003 * V_DOMAIN / contact, rel=1e-12)
    assert setup.types.kill_rate.sum() == setup.types.kill_rate[0, 1]


def test_explicit_rules_win_over_the_processes_they_restate():
    spec = _spec([{"name": "sec", "rate": "3*A", "produces": {"S": 1}}, {"name": "die", "rate": "0.1*A", "consumes": {"A": 1}}],
                 agents=[{"species": "A", "secretion": [{"field": "S", "rate": 7.0}], "death": 0.0,
                          "placement": {"kind": "random", "count": 1}}])
    setup = _one_cell_at(build(spec), 5.0, 5.0)
    assert setup.percell is None  # neither process is read: the section states both rules
    assert run(setup).snapshots[-1].fields[0].sum() == pytest.approx(7.0 * 2 / V_VOXEL)
    assert len(run(setup).snapshots[-1].agents["ids"]) == 1


REFUSED = {
    "degree_two": ({"name": "crowd", "rate": "k*A*A", "produces": {"A": 1}}, "of degree 2 in 'A'"),
    "product_of_types": ({"name": "help", "rate": "k*A*B", "produces": {"S": 1}}, "a product of 'A', 'B'"),
    "whole_cells": ({"name": "split", "rate": "k*A", "produces": {"A": 2}}, "must be one cell"),
    "unrelated_types": ({"name": "spawn", "rate": "k*A", "produces": {"B": 1}}, "no death, division, differentiation"),
    "not_in_tissue": ({"name": "leak", "rate": "k*Blood*A", "produces": {"S": 1}}, "'Blood', which the tissue does not hold"),
    "uptake_of_nothing": ({"name": "drain", "rate": "k*A", "consumes": {"S": 1}}, "does not vanish where 'S' is 0"),
    "cells_and_field": ({"name": "eat", "rate": "k*A*S", "consumes": {"A": 1, "S": 1}},
                        "changes cells and consumes a field in one process"),
    "kill_releasing": ({"name": "lyse", "rate": "k*A*B", "consumes": {"B": 1}, "produces": {"S": 1}},
                       "only a death, division or differentiation of one cell can release a field"),
    "offset": ({"name": "base", "rate": "k*A + 1", "produces": {"S": 1}}, "not proportional to the cells"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_processes_that_cannot_be_read_per_cell_are_refused_with_the_reason(cli, refused, tmp_path, case):
    process, reason = REFUSED[case]
    spec = _spec([process], species=[{"name": "Blood", "kind": "cytokine", "initial": 0}],
                 parameters=[{"name": "k", "value": 0.1}], agents=[{"species": "A"}, {"species": "B"}])
    with pytest.raises(ModelError) as exc:
        build(spec)
    assert [p.field for p in exc.value.problems] == ["processes[0]"]
    message = exc.value.problems[0].message
    assert f"'{process['name']}' cannot be read per cell" in message and reason in message and "tissue.explicit" in message
    build(spec.model_copy(update={"tissue": spec.tissue.model_copy(update={"explicit": [process["name"]]})}))  # accepted
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_model([process], species=[{"name": "Blood", "kind": "cytokine", "initial": 0}],
                                          parameters=[{"name": "k", "value": 0.1}],
                                          agents=[{"species": "A"}, {"species": "B"}]), sort_keys=False))
    out = tmp_path / "out"
    refused(cli("tissue", path, "--out", out), "processes[0]", reason)
    assert not out.exists()


# ---- il2-niche: read per cell against the same scenario with its rules written by hand (the version before) ----
EXPLICIT_NICHE = {
    "domain": {"dimensions": 3, "size": [250, 250, 250], "voxel": 10},
    "fields": [{"species": "IL2", "diffusion": "10 um^2/s", "decay": 0.00815}],
    "agents": [
        {"species": "Th", "radius": 5, "placement": {"kind": "cluster", "count": 5, "center": [125, 125, 125], "radius": 15},
         "secretion": [{"field": "IL2", "rate": 996000, "lag": 10}], "uptake": [{"field": "IL2", "rate": 31.4}], "repulsion": 5},
        {"species": "Tresp", "radius": 5, "speed": 0, "placement": {"kind": "random", "count": 320},
         "uptake": [{"field": "IL2", "rate": 31.4}], "receptor": {"field": "IL2", "kd": 10, "tau": 5}, "repulsion": 5},
        {"species": "Treg", "radius": 5, "placement": {"kind": "random", "count": 80},
         "uptake": [{"field": "IL2", "rate": 104.7}], "receptor": {"field": "IL2", "kd": 10, "tau": 5}, "repulsion": 5}],
    "dt": 0.02, "t_end": 120, "save_every": 10, "seed": 1,
    "explicit": ["occupancy_binding", "occupancy_release"],
}


def test_il2_niche_read_per_cell_matches_its_explicit_version():
    spec = ilsim.compile("il2-niche").spec
    assert set(spec.tissue.agents[1].model_fields_set) <= {"species", "radius", "placement", "internal", "repulsion"}
    explicit = spec.model_copy(update={"tissue": type(spec.tissue).model_validate(EXPLICIT_NICHE)})
    per_cell, by_hand = build(spec), build(explicit)
    assert sorted(per_cell.processes_read) == sorted(p.name for p in spec.processes)  # every process is read
    assert per_cell.processes_read["decay"] == "first-order decay of IL2" and per_cell.solver.decay.tolist() == [0.00815]
    assert by_hand.percell is None
    np.testing.assert_array_equal(per_cell.agents.pos, by_hand.agents.pos)
    a, b = run(per_cell, t_end=16, save_every=8), run(by_hand, t_end=16, save_every=8)
    fa, fb = a.snapshots[-1].fields, b.snapshots[-1].fields
    assert fb.max() > 10 * fb.mean() > 0  # secretion has started (lag 10 min) and is local
    np.testing.assert_allclose(fa, fb, rtol=1e-5, atol=1e-9 * fb.max())  # uptake 31.4 vs 31.4 x vcell / V_cell(r = 5)
    responders = b.snapshots[-1].agents["typ"] > 0
    occ_hand = b.snapshots[-1].agents["occupancy"][responders]
    occ_cell = a.snapshots[-1].agents["internal"][responders, 0]
    assert occ_hand.max() > 0.05
    np.testing.assert_allclose(occ_cell, occ_hand, rtol=1e-5, atol=1e-9)


ODE_CELLS = dict(species=[{"name": "act", "kind": "other", "initial": 0}],
                 parameters=[{"name": "K", "value": 2.0}, {"name": "tau", "value": 1.5}, {"name": "b", "value": 0.3}],
                 fields=[{"species": "S", "diffusion": 0.0, "initial": 1.0}])
ODE_PROCESSES = [{"name": "on", "rate": "S/(S + K)/tau", "produces": {"act": 1}},
                 {"name": "off", "rate": "act/tau", "consumes": {"act": 1}},
                 {"name": "divide", "rate": "b*act*A", "produces": {"A": 1}}]


def test_the_engine_contract_sets_the_processes_parameters_per_row_and_gives_the_internal_mean():
    from ilsim.engines.tissue.engine import TissueEngine

    spec = _spec(ODE_PROCESSES, agents=[{"species": "A", "placement": {"kind": "random", "count": 50},
                                         "internal": ["act"]}], **ODE_CELLS)
    compiled = ilsim.compile(spec)
    P = np.repeat(np.atleast_2d(compiled.p0), 2, axis=0)
    P[1, compiled.parameters.index("K")] = 0.25
    ds = TissueEngine().simulate(compiled, [0.0, 1.0, 2.0], P)
    for row, K in enumerate((2.0, 0.25)):  # every cell sees S = 1: act = 1/(1 + K) (1 - exp(-t/tau)), daughters too
        expected = [1.0 / (1.0 + K) * (1.0 - math.exp(-t / 1.5)) for t in (0.0, 1.0, 2.0)]
        np.testing.assert_allclose(ds["act"].values[row], expected, rtol=1e-6)
    assert ds["A"].values[1, -1] > ds["A"].values[0, -1] > 50  # division grows with act, higher at the lower K


def test_a_checkpoint_keeps_the_internal_state_and_the_resumed_run_is_identical(tmp_path):
    from ilsim.engines.tissue.engine import TissueRun
    from ilsim.io.tissue import agents_table, load_checkpoint, save_checkpoint, timeseries

    spec = _spec(ODE_PROCESSES, agents=[{"species": "A", "speed": 3, "placement": {"kind": "random", "count": 40},
                                         "internal": ["act"]}], **ODE_CELLS)
    setup = build(spec)
    full = run(setup, t_end=4)
    half = run(setup, t_end=2)
    save_checkpoint(tmp_path / "c.npz", half, "same")
    loaded = load_checkpoint(tmp_path / "c.npz", setup, "same")
    assert isinstance(loaded, TissueRun)
    resumed = run(setup, t_end=4, resume=loaded)
    assert len(full.snapshots[-1].agents["ids"]) > 40  # cells divided, daughters carrying their parent's state
    for key in ("ids", "pos", "internal"):
        np.testing.assert_array_equal(resumed.snapshots[-1].agents[key], full.snapshots[-1].agents[key])
    table = agents_table(full)
    assert "act" in table.columns and table["act"].notna().all()
    series = timeseries(full)
    np.testing.assert_allclose(series["act_mean"], [np.mean(s.agents["internal"][:, 0]) for s in full.snapshots])


def test_replicates_and_bound_values_keep_what_the_section_leaves_to_the_model():
    # a seed or a bound value validates the section anew; the count and the rules it leaves out still come from the model
    model = _model([{"name": "die", "rate": "d*C", "consumes": {"C": 1}}],
                   parameters=[{"name": "d", "value": 0.1}, {"name": "r", "value": 6.0}],
                   species=[{"name": "C", "kind": "cell", "initial": 30}],
                   agents=[{"species": "A", "radius": 5.0}, {"species": "C"}])
    model["tissue"]["parameters"] = {"r": "agents[A].radius"}
    spec = spec_from_dict(model)
    for setup in (build(spec), build(spec, seed=5), build(spec, values={"r": 4.0})):
        assert np.bincount(setup.agents.typ, minlength=2).tolist() == [0, 30]  # A: initial 0; C: initial 30
        assert setup.percell.read == {"die": "death of C"}


def test_a_timed_event_changing_a_rate_parameter_changes_what_the_cells_do():
    # one still cell secreting q per minute (q x V_domain into its voxel): q = 2 until t = 0.5, then 5, to t = 2
    model = _model([{"name": "sec", "rate": "q*A", "produces": {"S": 1}}], parameters=[{"name": "q", "value": 2.0}],
                   agents=[{"species": "A", "placement": {"kind": "random", "count": 1}}])
    model["events"] = [{"name": "more", "at": 0.5, "set": {"q": 5.0}}]
    setup = build(spec_from_dict(model))
    out = run(setup)
    assert out.snapshots[-1].fields[0].mean() == pytest.approx(2.0 * 0.5 + 5.0 * 1.5, rel=1e-12)
    # a condition: judged at step ends (dt = 0.1), the mean 2 t first exceeds 1.1 at 0.6 min
    model["events"] = [{"name": "more", "when": "S > 1.1", "set": {"q": 5.0}}]
    out = run(build(spec_from_dict(model)))
    assert out.snapshots[-1].fields[0].mean() == pytest.approx(2.0 * 0.6 + 5.0 * 1.4, rel=1e-12)


def test_a_cell_that_changes_type_takes_up_the_state_of_its_new_type():
    # A -> B at 2/min; only B carries act (initial 0.25, relaxing to S/(S + K) = 1/3): every B has a value, no A has one
    processes = [{"name": "turn", "rate": "2*A", "consumes": {"A": 1}, "produces": {"B": 1}}, *ODE_PROCESSES[:2]]
    cells = dict(ODE_CELLS, species=[{"name": "act", "kind": "other", "initial": 0.25}])
    spec = _spec(processes, agents=[{"species": "A", "placement": {"kind": "random", "count": 200}},
                                    {"species": "B", "internal": ["act"]}], **cells)
    last = run(build(spec), t_end=1).snapshots[-1].agents
    b = last["typ"] == 1
    assert 0 < b.sum() < 200
    assert np.all(np.isnan(last["internal"][~b, 0]))
    values = last["internal"][b, 0]
    assert np.all((values >= 0.25) & (values <= 1 / 3))  # between the initial value and the level it relaxes to
    assert np.ptp(values) > 0.01  # cells that turned earlier have relaxed further


def test_a_per_cell_state_that_becomes_undefined_stops_the_run_with_the_processes_named():
    from ilsim.errors import IlsimError

    processes = [{"name": "on", "rate": "act/(S - 1)", "produces": {"act": 1}}]  # S = 1 everywhere: 0/0 at act = 0
    spec = _spec(processes, agents=[{"species": "A", "placement": {"kind": "random", "count": 3}, "internal": ["act"]}],
                 **ODE_CELLS)
    with pytest.raises(IlsimError, match="per-cell state of 'A' became non-finite.*processes on"):
        run(build(spec), t_end=1)


def test_the_identity_checks_visit_every_branch_of_a_switch_in_time():
    # the part after t = 50 is not proportional to A: refused, though it is zero before 50
    spec = _spec([{"name": "late", "rate": "piecewise(0, t < 50, 2*A + 1)", "produces": {"S": 1}}],
                 agents=[{"species": "A"}])
    with pytest.raises(ModelError, match="not proportional to the cells"):
        build(spec)


def test_an_explicit_secretion_does_not_hide_the_uptake_of_the_same_field():
    spec = _spec([{"name": "up", "rate": "0.002*A*S", "consumes": {"S": 1}}],
                 agents=[{"species": "A", "secretion": [{"field": "S", "rate": 1.0}]}])
    assert build(spec).percell.read == {"up": "uptake by 'A'"}


def test_a_death_that_releases_a_field_puts_it_into_the_dying_cells_voxel():
    # each of 300 cells dies at 0.4/min releasing 3 units (3 x V_domain into its voxel): the mean level is 3 x the dead
    spec = _spec([{"name": "burst", "rate": "0.4*A", "consumes": {"A": 1}, "produces": {"S": 3}}],
                 agents=[{"species": "A", "placement": {"kind": "random", "count": 300}}])
    setup = build(spec)
    assert setup.percell.read == {"burst": "death of A, releasing 'S'"}
    out = run(setup)
    dead = 300 - out.counts()[:, 0]
    assert dead[-1] > 100
    np.testing.assert_allclose([s.fields[0].mean() for s in out.snapshots], 3.0 * dead, rtol=1e-12)
    assert out.state.ledger.secreted[0] == pytest.approx(3.0 * dead[-1] * V_DOMAIN, rel=1e-12)


def test_unknown_names_in_internal_and_explicit_are_refused_naming_the_field():
    spec = _spec([{"name": "sec", "rate": "3*A", "produces": {"S": 1}}],
                 agents=[{"species": "A", "internal": ["occ", "S"]}], explicit=["secretion"])
    with pytest.raises(ModelError) as exc:
        build(spec)
    problems = {(p.field, p.message) for p in exc.value.problems}
    assert problems == {("tissue.agents[0].internal", "'occ' is not a species of the model"),
                        ("tissue.agents[0].internal", "'S' is a field or a cell species: a species internal to cells is a "
                                                      "value per cell (kind other, e.g. receptor occupancy)"),
                        ("tissue.explicit[0]", "'secretion' is not a process of the model")}
