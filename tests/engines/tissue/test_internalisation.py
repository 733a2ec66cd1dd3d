"""A field taken into a species internal to cells (``uptake[].into``), contact killing whose rate depends on the
target's internal state, and the built-in ``physicell-virus-macrophage`` that needs both, against hand calculations
and invariants.

- internalisation conserves the field plus what the cells hold, to round-off, also when cells die and release it;
  one cell alone in a voxel without diffusion follows c0 / (1 + w U)^n and holds exactly what its voxel lost;
- a target touching a killer survives T minutes with probability exp(-k V_domain / V_contact x T) when its load
  passes the threshold, and always otherwise (binomial bounds), also with a contact reach of 1.5 x the radii;
- the scenario through ``ilsim tissue``: in its first hour no cell can burst (99 virions at 0.15/min take 660 min), so
  the virus field stays zero, every infected survivor holds exactly 1 + 0.15 t virions, no uninfected cell is eaten
  and the macrophages stay 50; its spatial part (domain, fields, radii, repulsion, motility, uptake) is what
  ``import-physicell`` reads from PhysiCell's own settings file.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from ilsim.engines.tissue.engine import run
from ilsim.engines.tissue.setup import build
from ilsim.errors import ModelError
from ilsim.model.load import spec_from_dict

SIZE, VOXEL = 100.0, 10.0  # a 10 x 10 grid, 2-D: V_domain = 100 x 100 x 10 µm³
V_DOMAIN, V_VOXEL = SIZE * SIZE * VOXEL, VOXEL**3


def _spec(agents, *, processes=(), parameters=(), diffusion=0.0, initial=4.0, dt=0.1, t_end=2.0, save_every=0.1):
    species = [{"name": "S", "kind": "cytokine", "initial": 0}, {"name": "A", "kind": "cell", "initial": 0},
               {"name": "B", "kind": "cell", "initial": 0}, {"name": "load", "kind": "other", "initial": 0}]
    section = {"domain": {"dimensions": 2, "size": [SIZE, SIZE], "voxel": VOXEL},
               "fields": [{"species": "S", "diffusion": diffusion, "initial": initial}], "agents": list(agents),
               "dt": dt, "t_end": t_end, "save_every": save_every}
    return spec_from_dict({"metadata": {"name": "internalise", "time_units": "minute"}, "species": species,
                           "parameters": list(parameters), "processes": list(processes), "tissue": section})


def _held(snapshot) -> float:
    """What the field and the cells hold together (concentration x µm³)."""
    inside = snapshot.agents["internal"][:, 0]
    return float(snapshot.fields.sum() * V_VOXEL + np.nansum(inside))


def test_one_cell_alone_holds_exactly_what_its_voxel_lost():
    spec = _spec([{"species": "A", "radius": 5.0, "internal": ["load"], "placement": {"kind": "random", "count": 1},
                   "uptake": [{"field": "S", "rate": 3.0, "into": "load"}]}])
    setup = build(spec)
    setup.agents.pos[:] = [45.0, 25.0, 0.0]
    out = run(setup)
    w = 0.1 * (4.0 / 3.0 * math.pi * 5.0**3) / V_VOXEL  # dt x V_cell / V_voxel
    for n, snap in enumerate(out.snapshots):
        level = 4.0 / (1.0 + w * 3.0) ** n  # BioFVM's implicit uptake, step after step
        assert snap.fields[0, 0, 2, 4] == pytest.approx(level, rel=1e-12)
        assert snap.agents["internal"][0, 0] == pytest.approx((4.0 - level) * V_VOXEL, rel=1e-12)


def test_internalisation_conserves_the_field_and_the_cells_together_through_deaths():
    # diffusing field, 40 cells taking it up, a quarter of them dying over the run and releasing what they hold
    spec = _spec([{"species": "A", "radius": 4.0, "internal": ["load"], "placement": {"kind": "random", "count": 40},
                   "speed": 2.0, "death": 0.15, "uptake": [{"field": "S", "rate": 5.0, "into": "load"}]}],
                 diffusion=50.0)
    out = run(build(spec), seed=4)
    total = _held(out.snapshots[0])
    assert len(out.snapshots[-1].agents["ids"]) < 40  # cells died (and released) during the run
    assert out.snapshots[-1].fields.sum() * V_VOXEL < 0.9 * total  # the cells hold a fair part of it
    for snap in out.snapshots:
        assert _held(snap) == pytest.approx(total, rel=1e-12)
    # the ledger agrees: the field lost what the cells took up and got back what the dead released
    ledger = out.state.ledger
    field_now = out.snapshots[-1].fields.sum() * V_VOXEL
    assert field_now - total == pytest.approx(ledger.net()[0], abs=1e-12 * total)


def test_a_fraction_released_at_death_of_zero_keeps_it_out_of_the_field():
    spec = _spec([{"species": "A", "radius": 4.0, "internal": ["load"], "placement": {"kind": "random", "count": 20},
                   "death": 0.5, "uptake": [{"field": "S", "rate": 5.0, "into": "load", "released_at_death": 0.0}]}])
    out = run(build(spec), seed=2)
    final = out.snapshots[-1]
    taken = out.state.ledger.taken_up[0]
    assert out.state.ledger.secreted[0] == 0.0
    assert final.fields.sum() * V_VOXEL == pytest.approx(4.0 * SIZE * SIZE * VOXEL - taken, rel=1e-12)
    assert np.nansum(final.agents["internal"][:, 0]) < taken  # the dead took theirs with them


@pytest.mark.parametrize(("reach", "spread", "k"), [(1.0, 8.0, 0.01), (1.5, 16.0, 0.06)])
def test_killing_that_depends_on_the_targets_load_has_the_closed_form_survival(reach, spread, k):
    # one killer at the centre, 200 targets all touching it (within reach x (6 + 6) µm: 12 or 18); the first 100
    # carry load 5 (> 1), the others 0; with reach 1.5, 44 % of them lie beyond 12 µm: were the reach ignored, about
    # 61 loaded targets would survive instead of 31
    spec = _spec([{"species": "A", "radius": 6.0, "contact_reach": reach,
                   "placement": {"kind": "cluster", "count": 1, "center": [50, 50], "radius": 0.01}},
                  {"species": "B", "radius": 6.0, "internal": ["load"], "placement": {"kind": "cluster", "count": 200,
                                                                                       "center": [50, 50], "radius": spread},
                   "initial_internal": [{"count": 100, "values": {"load": 5.0}}]}],
                 processes=[{"name": "eat", "rate": "k*A*B*piecewise(1, load > 1, 0)", "consumes": {"B": 1}}],
                 parameters=[{"name": "k", "value": k}], initial=0.0, save_every=2.0)
    setup = build(spec)
    kappa = k * V_DOMAIN / (math.pi * (12.0 * reach) ** 2 * VOXEL)  # per contact: k V_domain / V_contact (2-D disc)
    assert "depending on 'load'" in setup.processes_read["eat"]
    loaded = setup.agents.ids[setup.agents.internal[:, 0] == 5.0]
    assert len(loaded) == 100
    out = run(setup, seed=7)
    final = out.snapshots[-1].agents
    alive = set(final["ids"][final["typ"] == 1].tolist())
    survivors = len(alive & set(loaded.tolist()))
    p = math.exp(-kappa * 2.0)  # each step's probability 1 - exp(-kappa dt): survival over 2 min is exactly this
    assert abs(survivors - 100 * p) < 4 * math.sqrt(100 * p * (1 - p))
    assert len(alive) - survivors == 100  # below the threshold nobody is eaten
    assert 0.2 < p < 0.8  # (the bound above tests something)


@pytest.mark.parametrize(("agent", "message"), [
    ({"uptake": [{"field": "S", "rate": 1.0, "into": "load"}]}, "'load' is not a species internal to A"),
    ({"internal": ["load"], "initial_internal": [{"count": 5, "values": {"load": 1.0}}]}, "would need values but 3 are"),
    ({"internal": ["load"], "uptake": [{"field": "S", "rate": 1.0, "into": "load", "released_at_death": 2.0}]},
     "released_at_death must be a fraction"),
])
def test_bad_internalisation_settings_are_refused_naming_the_field(agent, message):
    with pytest.raises(ModelError, match=message):
        build(_spec([{"species": "A", "placement": {"kind": "random", "count": 3}, **agent}]))


def test_the_virus_macrophage_scenario_keeps_its_invariants_in_its_first_hour(cli, tmp_path):
    out = tmp_path / "vm"
    result = cli("tissue", "physicell-virus-macrophage", "--t-end", "60", "--save-every", "30", "--out", str(out))
    assert result.exit_code == 0, result.output
    agents = pd.read_parquet(out / "agents.parquet")
    final = agents[agents["time"] == agents["time"].max()]
    epithelial = final[final["type"] == "epithelial"]
    load = epithelial["virions_inside"].to_numpy()
    infected = load >= 1
    assert (final["type"] == "macrophage").sum() == 50
    assert (~infected).sum() == 1000 and np.all(load[~infected] == 0.0)  # the virus field is zero: nothing to take up
    assert 0 < infected.sum() <= 10  # only infected cells are eaten
    np.testing.assert_allclose(load[infected], 1.0 + 0.15 * 60.0, rtol=1e-9)  # replication 0.15/min from 1 virion
    timeseries = pd.read_csv(out / "timeseries.csv")
    assert np.all(timeseries.filter(like="virus").filter(like="mean").to_numpy() == 0.0)



def test_the_scenarios_spatial_part_is_what_the_importer_reads_from_physicells_settings(shared_data):
    # the oracle: ilsim import-physicell of the sample's own settings (what the custom C++ does is written by hand)
    from ilsim.io import physicell
    from ilsim.scenarios import builtin_path

    settings = shared_data("physicell/virus_macrophage", "PhysiCell_settings.xml")
    imported = physicell.import_physicell(settings, partial=True).data["tissue"]
    ours = yaml.safe_load(builtin_path("physicell-virus-macrophage").read_text())["tissue"]
    assert ours["domain"]["size"] == imported["domain"]["size"] and ours["domain"]["voxel"] == imported["domain"]["voxel"]
    for mine, theirs in zip(ours["fields"], imported["fields"]):
        assert mine["species"] == theirs["species"] and mine["diffusion"] == theirs["diffusion"]
    assert ours["t_end"] == imported["t_end"] and ours["save_every"] == imported["save_every"]
    for mine, theirs in zip(ours["agents"], imported["agents"]):
        assert mine["radius"] == pytest.approx(theirs["radius"], rel=1e-4)
        for key in ("repulsion", "speed", "persistence", "chemotaxis"):
            assert mine.get(key) == theirs.get(key), key
        assert [(u["field"], u["rate"]) for u in mine.get("uptake", [])] == [(u["field"], u["rate"])
                                                                             for u in theirs.get("uptake", [])]
