"""The stochastic engine's mass-action table (engines/ssa/massaction.py): a large network's mass-action rates as
data rather than generated code. Oracle: ilsim's expression evaluator (the rates and single rates the compiled
module gives, table and generated code mixed, against the model's own rate expressions at random states)."""

from __future__ import annotations

import numpy as np
import pytest

import ilsim
from ilsim.engines.ssa import SsaEngine, massaction
from ilsim.engines.ssa.codegen import model_module
from ilsim.model import expressions as ex

SPECIES = {"A": 0, "B": 1, "C": 2}
PARAMS = {"k": 0, "V": 1}


@pytest.mark.parametrize("text, expected", [
    ("k*A*B", (1.0, {0: 1}, {0: 1, 1: 1})),
    ("0.5*A**2/V", (0.5, {1: -1}, {0: 2})),
    ("k/V/V*C", (1.0, {0: 1, 1: -2}, {2: 1})),
    ("3", (3.0, {}, {})),
    ("(k*A)**2", (1.0, {0: 2}, {0: 2})),
])
def test_a_mass_action_rate_is_a_number_parameters_and_species_with_their_powers(text, expected):
    assert massaction.factors(ex.parse(text), SPECIES, PARAMS) == expected


@pytest.mark.parametrize("text", ["k*A/(1 + B)", "k*A/B", "A + B", "k*A**0.5", "exp(k)*A", "k*A*o"])
def test_other_rates_are_left_to_generated_code(text):
    assert massaction.factors(ex.parse(text), SPECIES, PARAMS) is None  # a sum, a species divided by, ...
    assert massaction.factors(ex.BinOp("/", ex.Name("A"), ex.Num(0.0)), SPECIES, PARAMS) is None  # (not 1/0 here)


def network():
    m = ilsim.Model(name="mixed-network").add_parameter("k", 0.3).add_parameter("V", 2.0)
    for name, n0 in (("A", 40), ("B", 30), ("C", 5)):
        m.add_species(name, float(n0))
    m.add_observable("total", "A + B")
    m.add_process("in", "4", produces={"A": 1})
    m.add_process("bind", "k*A*B", consumes={"A": 1, "B": 1}, produces={"C": 1})
    m.add_process("pair", "0.5*k*A*A", consumes={"A": 1}, produces={"B": 1})
    m.add_process("free", "k*C/V", consumes={"C": 1}, produces={"A": 1, "B": 1})
    m.add_process("crowd", "k*B/(1 + total)", consumes={"B": 1})  # not mass action: generated code
    m.add_process("out", "0.1*C", consumes={"C": 1})
    return ilsim.compile(m)


def test_the_table_gives_the_model_rates(monkeypatch):
    model = network()
    monkeypatch.setattr(massaction, "GENERATED_UP_TO", 0)  # the table for this small network too
    table = massaction.table(model)
    assert [int(r >= 0) for r in table.row] == [1, 1, 1, 1, 0, 1]
    module = model_module(model)
    rng = np.random.default_rng(0)
    out = np.empty(len(model.rate_trees))
    for _ in range(20):
        y, p = rng.uniform(0, 50, 3), rng.uniform(0.1, 3, 2)
        module.rates(0.0, y, p, out)
        values = {**dict(zip(model.parameters, p)), **dict(zip(model.species, y))}
        values["total"] = y[0] + y[1]
        expected = [ex.evaluate(tree, values) for tree in model.rate_trees]
        np.testing.assert_allclose(out, expected, rtol=1e-14)
        np.testing.assert_allclose([module.rate_one(j, 0.0, y, p) for j in range(len(expected))], expected, rtol=1e-14)
    P = np.repeat(model.p0[None, :], 40, axis=0)
    for method in ("direct", "next-reaction"):  # the loop runs on them
        run = SsaEngine(trajectories=40, seed=3, method=method).solve(model, np.linspace(0.0, 3.0, 7), P)
        assert (run.status == 0).all() and np.isfinite(run.Y).all() and (run.steps > 0).all()
