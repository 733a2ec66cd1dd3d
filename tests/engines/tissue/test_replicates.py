"""Replicates and sweeps of a tissue model through the cohort and sweep machinery (in-process).

Oracles: the field is linear in the secretion rate (no uptake or stimulus), so the mean field of a sweep over the rate
bound to a parameter is the rate times the mean at rate 1, to round-off (monotonic a fortiori); a rate the section
refuses fails that point alone, with the reason; the same run seed gives the same replicates, bit for bit, and
replicates of one run differ from each other (their own seeds) while each is reproduced by a single run with its seed.
"""

from __future__ import annotations

import numpy as np
import pytest

import ilsim
from ilsim.engines.tissue.engine import TissueEngine, replicate_seed, run
from ilsim.engines.tissue.setup import build
from ilsim.errors import ModelError

MODEL = {
    "metadata": {"name": "secreting", "time_units": "minute"},
    "parameters": [{"name": "k_sec", "value": 2.0}],
    "species": [{"name": "Th", "kind": "cell", "initial": 0}, {"name": "IL2", "kind": "cytokine", "initial": 0}],
    "tissue": {"domain": {"dimensions": 2, "size": [200, 200], "voxel": 20},
               "fields": [{"species": "IL2", "diffusion": 100, "decay": 0.1}],
               "agents": [{"species": "Th", "speed": 1, "division": 0.05, "death": 0.05,
                           "secretion": [{"field": "IL2", "rate": 1.0}],
                           "placement": {"kind": "random", "count": 20}}],
               "dt": 0.5, "t_end": 4, "save_every": 1, "seed": 7,
               "parameters": {"k_sec": "agents[Th].secretion[0].rate"}},
}


def _spec(**tissue):
    from ilsim.model.load import spec_from_dict

    data = {**MODEL, "tissue": {**MODEL["tissue"], **tissue}}
    return spec_from_dict(data)


def test_sweep_over_a_bound_secretion_rate_scales_the_mean_field():
    rates = [0.5, 1.0, 2.0, 4.0]
    engine = TissueEngine(seed=3)
    table = ilsim.sweep(_spec(), {"k_sec": rates + [-1.0]}, engine=engine, t_end=4, points=5, report=False).table
    table = table.sort_values("k_sec")
    failed = table[table.k_sec < 0]
    assert list(failed.status) != ["ok"] and "must be a finite number >= 0" in failed.status.iloc[0]
    ok = table[table.k_sec > 0]
    assert list(ok.status) == ["ok"] * 4
    final = ok["IL2.final"].to_numpy()
    assert np.all(np.diff(final) > 0)
    # every point is its own replicate (seed mixed with its index), so compare each with a single run of that seed
    for point, rate in zip(ok.index, ok.k_sec):
        one = run(build(_spec(), values={"k_sec": 1.0}, seed=replicate_seed(3, point)), seed=replicate_seed(3, point))
        assert final[list(ok.k_sec).index(rate)] == pytest.approx(rate * one.field_stats()[0][-1, 0], rel=1e-10)


def test_replicates_reproduce_with_the_same_seed_and_differ_among_themselves():
    first = ilsim.cohort(_spec(), patients=4, engine=TissueEngine(seed=11), t_end=4, points=5, report=False)
    again = ilsim.cohort(_spec(), patients=4, engine=TissueEngine(seed=11), t_end=4, points=5, report=False)
    other = ilsim.cohort(_spec(), patients=4, engine=TissueEngine(seed=12), t_end=4, points=5, report=False)
    cols = ["Th.final", "IL2.final", "IL2.peak"]
    assert first[cols].equals(again[cols])
    assert not first[cols].equals(other[cols])
    assert first["IL2.final"].nunique() == 4  # each replicate its own random placement and fates
    seed = replicate_seed(11, 2)
    single = run(build(_spec(), seed=seed), seed=seed)
    assert first["Th.final"].iloc[2] == single.counts()[-1, 0]
    assert first["IL2.final"].iloc[2] == single.field_stats()[0][-1, 0]


def test_bad_bindings_are_refused_naming_them():
    with pytest.raises(ModelError) as info:
        build(_spec(parameters={"k_se": "agents[Th].secretion[0].rate", "k_sec": "agents[Tx].speed"}))
    text = str(info.value)
    assert "tissue.parameters.k_se: 'k_se' is not a parameter of the model (did you mean 'k_sec'?)" in text
    assert "tissue.parameters.k_sec: agents[Tx].speed: 'agents' has no entry 'Tx'" in text
