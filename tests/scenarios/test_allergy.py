"""allergy: a first allergen exposure sensitises (IgE, memory Th2 cells) with only a weak reaction;
a second exposure four weeks later gives a faster and stronger reaction, which ends when the
allergen is cleared.

No paper publishes this model's numbers: it is built from order-of-magnitude literature values and
assumptions (docs/scenarios/allergy.md). So the tests check behaviour (faster, stronger, reversible,
non-negative, the sensitisation threshold of 0.35 kUA/L) and pin ilsim's own numbers in
tests/scenarios/snapshots/allergy.json to catch regressions.
"""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import ilsim
from ilsim.cli import app

MODEL = "allergy"
FIRST, SECOND = 0.0, 28.0  # exposure days (events in the model file)
T_END, POINTS = 56.0, 1121  # one output every 0.05 day
CYTOKINES = ("IL4", "IL5", "IL13")
EOS0 = 150.0  # resting blood eosinophils, cells/uL

# The criteria of "faster and stronger" (ilsim's own numbers for them are in the snapshot: 92% shorter,
# peak index x 6.1, eosinophils above baseline x 3.9); the broken variants below each fail at least one.
FASTER_BY = 0.85  # X: time to peak shorter by at least 85%
STRONGER_INDEX = 4.0  # Y: peak reaction index at least 4 times higher
STRONGER_EOS = 3.0  # peak eosinophils above baseline at least 3 times higher


@pytest.fixture(scope="module")
def model():
    return ilsim.compile(MODEL)


def run(model, **parameters):
    return ilsim.simulate(model, T_END, points=POINTS, parameters=parameters)


@pytest.fixture(scope="module")
def both(model):
    return run(model)


@pytest.fixture(scope="module")
def no_allergen(model):
    return run(model, dose1=0.0, dose2=0.0)


def window(ds, name, start, length=28.0):
    t = ds["time"].values
    w = (t >= start) & (t < start + length)
    return t[w] - start, ds[name].values[w]


def reaction(ds, start):
    """Time from exposure to the peak reaction index, the peak index and the peak eosinophils above
    baseline, in the 28 days after an exposure."""
    t, index = window(ds, "allergic_reaction_index", start)
    _, eos = window(ds, "Eos", start)
    return t[index.argmax()], index.max(), eos.max() - EOS0


def comparison(ds):
    t1, i1, e1 = reaction(ds, FIRST)
    t2, i2, e2 = reaction(ds, SECOND)
    return {"faster_by": 1 - t2 / t1, "index_ratio": i2 / i1, "eos_ratio": e2 / e1}


def meets_all(c):
    return c["faster_by"] >= FASTER_BY and c["index_ratio"] >= STRONGER_INDEX and c["eos_ratio"] >= STRONGER_EOS


def test_every_parameter_has_units_description_and_source():
    spec = ilsim.load(MODEL)
    for p in spec.parameters:
        assert p.units and p.description and p.source, p.name
    linked = {s.name: s.interleukin for s in spec.species if s.interleukin}
    assert linked == {"IL4": "IL-4", "IL5": "IL-5", "IL13": "IL-13"}


def test_without_allergen_nothing_happens(no_allergen):
    ds = no_allergen
    for name in (*CYTOKINES, "Ag", "Th2", "Tm", "PC", "sIgE", "IgE_mc", "crosslinking"):
        assert np.all(ds[name].values == 0.0), name
    for name in ("IL4_synthesis_in_Th2", "IL5_synthesis_in_Th2", "IL13_synthesis_in_Th2"):
        assert np.all(ds[name].values == 0.0), name
    assert np.all(ds["Eos"].values == EOS0)
    assert np.all(ds["allergic_reaction_index"].values == 0.0)
    assert ds.attrs["outcome"] == "not sensitised"


def test_first_exposure_sensitises_with_only_a_weak_reaction(both):
    t = both["time"].values
    _, peak_index, eos_rise = reaction(both, FIRST)
    assert peak_index < 0.1  # weak reaction
    assert eos_rise < 200  # mild eosinophilia (peak below 350 cells/uL)
    before_second = (t >= 14) & (t < SECOND)  # weeks 2 to 4 after the first exposure
    assert np.all(both["sIgE"].values[before_second] >= 0.35)  # sensitised: specific IgE >= 0.35 kUA/L
    assert np.all(both["IgE_mc"].values[before_second] > 0.5)  # mast cells armed with IgE
    assert np.all(both["Tm"].values[before_second] > 0.04)  # memory Th2 cells, cells/uL
    # ... while the response itself is over: allergen, cytokines, effector Th2 cells, eosinophils
    late = (t >= 21) & (t < SECOND)
    assert np.all(both["Ag"].values[late] < 1e-4)
    for name in CYTOKINES:
        assert np.all(both[name].values[late] < 1e-3), name
    assert np.all(both["Th2"].values[late] < 0.01)
    assert np.all(np.abs(both["Eos"].values[late] - EOS0) < 0.01 * EOS0)
    assert np.all(both["allergic_reaction_index"].values[late] < 1e-3)


def test_first_exposure_alone_leaves_a_sensitised_person(model):
    ds = ilsim.simulate(model, 27, points=541)
    assert ds.attrs["outcome"] == "sensitised"


def test_second_exposure_is_faster_and_stronger(both):
    c = comparison(both)
    assert c["faster_by"] >= FASTER_BY
    assert c["index_ratio"] >= STRONGER_INDEX
    assert c["eos_ratio"] >= STRONGER_EOS
    assert reaction(both, SECOND)[1] > 0.3  # a clear reaction
    for name in ("Th2", *CYTOKINES):  # the recall response is larger throughout
        assert window(both, name, SECOND)[1].max() > 10 * window(both, name, FIRST)[1].max(), name
    assert window(both, "sIgE", SECOND)[1].max() > 3 * window(both, "sIgE", FIRST)[1].max()  # IgE boosted


def test_reactions_match_the_snapshot(both, snapshot):
    # the table "Second exposure (day 28): faster and stronger" of docs/scenarios/allergy.md
    for label, start in (("first exposure", FIRST), ("second exposure", SECOND)):
        t, index, eos_rise = reaction(both, start)
        snapshot.check(f"{label}: days to the peak reaction index", t, abs=0.05)  # one output step
        snapshot.check(f"{label}: peak reaction index", index, rel=0.01)
        snapshot.check(f"{label}: peak eosinophils above baseline", eos_rise, rel=0.01)
        for name in ("Th2", *CYTOKINES, "sIgE", "crosslinking"):
            snapshot.check(f"{label}: peak {name}", window(both, name, start)[1].max(), rel=0.01)
        days, eos = window(both, "Eos", start)
        snapshot.check(f"{label}: days to the peak eosinophils", days[eos.argmax()], abs=0.05)
        for name in ("IgE_mc", "Tm"):  # the sensitisation the exposure meets
            snapshot.check(f"{label}: {name} at exposure", window(both, name, start)[1][0], rel=0.01, abs=1e-9)
    for key, value in comparison(both).items():
        snapshot.check(f"second / first: {key}", value, rel=0.01)


@pytest.mark.parametrize(("broken", "parameters", "fails"), [
    ("no memory Th2 cells", {"k_mem": 0.0}, "eos_ratio"),
    ("no IgE", {"R_PC": 0.0}, "faster_by"),
    ("no memory at all", {"k_mem": 0.0, "hl_PC": 1.0, "hl_IgE_mc": 1.0}, "index_ratio"),
])
def test_a_model_without_sensitisation_fails_the_criteria(model, snapshot, broken, parameters, fails):
    ds = run(model, **parameters)
    c = comparison(ds)
    assert not meets_all(c), (broken, c)
    limit = {"faster_by": FASTER_BY, "index_ratio": STRONGER_INDEX, "eos_ratio": STRONGER_EOS}[fails]
    assert c[fails] < limit, (broken, c)
    for key, value in c.items():  # the table "What each part of the sensitisation does"
        snapshot.check(f"{broken}: {key}", value, rel=0.01, abs=1e-3)
    for label, start in (("first", FIRST), ("second", SECOND)):
        snapshot.check(f"{broken}: days to the peak reaction index, {label} exposure", reaction(ds, start)[0], abs=0.05)


def test_the_reaction_ends_when_the_allergen_is_gone(both, snapshot):
    t = both["time"].values
    _, index = window(both, "allergic_reaction_index", SECOND)
    after = t >= SECOND + 14  # two weeks after the last exposure
    assert np.all(both["allergic_reaction_index"].values[after] < 0.05 * index.max())
    assert np.all(np.abs(both["Eos"].values[after] - EOS0) <= 0.1 * EOS0)
    assert np.all(both["Ag"].values[after] < 1e-3)
    for name in CYTOKINES:
        assert np.all(both[name].values[after] < 0.01 * window(both, name, SECOND)[1].max()), name
    # sensitisation remains: the person is still sensitised at the end
    assert both.attrs["outcome"] == "sensitised"
    assert float(both["sIgE"][-1]) >= 0.35 and float(both["Tm"][-1]) > 0.5
    for name in ("sIgE", "IgE_mc", "Tm"):
        snapshot.check(f"day 56: {name}", both[name][-1], rel=0.01)


def test_all_species_stay_non_negative(both):
    species = [name for name in both.data_vars if both[name].attrs.get("role") == "species"]
    assert len(species) == 14  # 11 declared, 3 synthesis programmes generated by the secretion motifs
    for name in species:
        assert np.all(both[name].values >= 0.0), name


def test_cli_run_and_show(tmp_path):
    runner = CliRunner()
    out = tmp_path / "al"
    result = runner.invoke(app, ["run", MODEL, "--out", str(out), "--points", "561"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["outcome"] == "sensitised"
    result = runner.invoke(app, ["show", MODEL])
    assert result.exit_code == 0, result.output
    assert "allergic_reaction_index" in result.output
