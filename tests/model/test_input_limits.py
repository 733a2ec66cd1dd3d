"""Model files that used to end in a traceback (issue 14's fuzzing groups): each is now a clear error naming the
file and the field, or runs. The oracles are the limits of ilsim.limits (docs/limits.md) and IEEE arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ilsim
from ilsim.errors import IlsimError, ModelError
from ilsim.limits import MAX_EXPRESSION_DEPTH, MAX_OUTPUT_VALUES, MAX_YAML_DEPTH, MAX_YAML_INT_DIGITS
from ilsim.model import expressions as ex
from ilsim.model.compile import compile_model

BASE = """\
metadata: {{name: base, time_units: day}}
species: [{{name: x, initial: 1, nonnegative: false}}]
parameters: [{{name: k, value: 0.5}}]
processes: [{{name: decay, rate: "{rate}", consumes: {{x: 1}}}}]
"""


def refused(tmp_path, text: str, *fragments: str) -> str:
    path = tmp_path / "model.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ModelError) as info:
        ilsim.compile(str(path))
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("rate", [
    "+".join(["x"] * 5000),  # RecursionError in Python's parser
    "not " * 3000 + "x",
    "hill(" * 200 + "x" + ", 1, 2)" * 200,  # 'too many nested parentheses'
    " if x > 1 else ".join(["x"] * 400),
    "piecewise(" + "1, x > 1, " * (MAX_EXPRESSION_DEPTH + 1) + "0)",  # nests once per pair in generated code
    "x + " * 60_000 + "x",  # longer than MAX_EXPRESSION_CHARS
])
def test_long_and_deep_expressions_are_refused_by_field(tmp_path, rate):
    refused(tmp_path, BASE.format(rate=rate), "processes[0].rate:")


def test_expressions_at_the_depth_limit_compile_and_run():
    # a sum of MAX_EXPRESSION_DEPTH - 1 terms: its generated code stays under Python's 200 nested parentheses
    text = "+".join(["x"] * (MAX_EXPRESSION_DEPTH - 1))
    spec = ilsim.Model(name="deep").add_species("x", initial=1).add_process("d", rate=text, consumes={"x": 1})
    model = compile_model(spec, jit=False)
    assert model.rhs(np.array([2.0]), 0.0, model.p0)[0] == pytest.approx(-2.0 * (MAX_EXPRESSION_DEPTH - 1))


def test_yaml_nesting_big_integers_and_unhashable_keys_are_refused(tmp_path):
    deep = "metadata: {name: x}\nspecies: " + "[" * (MAX_YAML_DEPTH + 5) + "]" * (MAX_YAML_DEPTH + 5) + "\n"
    refused(tmp_path, deep, f"nested more than {MAX_YAML_DEPTH} levels")
    refused(tmp_path, deep.replace("[", "[" * 20).replace("]", "]" * 20), f"nested more than {MAX_YAML_DEPTH} levels")
    big = BASE.format(rate="k*x").replace("value: 0.5", "value: " + "9" * (MAX_YAML_INT_DIGITS + 1))
    refused(tmp_path, big, f"more than {MAX_YAML_INT_DIGITS} digits", "line 3")
    refused(tmp_path, BASE.format(rate="k*x") + "? [a, b]\n: 1\n", "a key must be a name or a number, not a list")


def test_non_finite_stoichiometry_is_refused(tmp_path):
    refused(tmp_path, BASE.format(rate="k*x").replace("{x: 1}", "{x: .inf}"), "stoichiometry of 'x' must be a positive, finite")
    refused(tmp_path, BASE.format(rate="k*x").replace("{x: 1}", "{x: .nan}"), "stoichiometry of 'x'")


def test_an_include_that_cannot_be_looked_up_is_an_error(tmp_path):
    refused(tmp_path, BASE.format(rate="k*x") + f"include: ['{'a' * 5000}.yaml']\n", "include[0]: no model file")


def test_output_points_are_limited(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text(BASE.format(rate="k*x"))
    with pytest.raises(IlsimError, match="output points"):
        ilsim.simulate(str(path), t_end=1, points=MAX_OUTPUT_VALUES + 1)  # x 1 species: one value too many
    refused(tmp_path, BASE.format(rate="k*x") + "simulation: {points: 100000000000}\n", "simulation.points")


def test_an_event_that_makes_a_state_infinite_is_a_simulation_error(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text(BASE.format(rate="k*x") + "events: [{name: boom, at: 0.5, set: {x: 'exp(1000)'}}]\n")
    with pytest.raises(IlsimError, match="event 'boom' at t = 0.5 makes 'x' inf"):
        ilsim.simulate(str(path), t_end=1, points=3)


@pytest.mark.parametrize(("text", "want"), [
    ("1/(k - k)", math.inf), ("(k - k)/(k - k)", math.nan), ("(-8*k)**0.5", math.nan), ("10**(1000*k)", math.inf),
    ("hill(k - k, k - k, 2)", math.nan), ("log(k, 2*k)", -math.inf), ("floor(1/(k - k))", math.inf),
    ("(x > 0 and k) + 1", 2.0),
])
def test_plain_python_kernels_and_the_tree_walk_give_ieee_values(text, want):
    spec = ilsim.Model(name="ieee").add_species("x", initial=1, nonnegative=False).add_parameter("k", 0.5)
    spec = spec.add_process("r", rate=text, produces={"x": 1})
    model = compile_model(spec, jit=False)
    with np.errstate(all="ignore"):
        got = model.rhs(np.array([1.0]), 0.0, model.p0)[0]
    walked = ex.evaluate(ex.parse(text), {"x": 1.0, "k": 0.5})
    for value in (got, walked):
        assert (math.isnan(value) and math.isnan(want)) or value == pytest.approx(want, rel=1e-12)


def test_yaml_nesting_hidden_behind_aliases_is_refused(tmp_path):
    """Each anchor wraps the one before it 60 levels deep, and the aliases are listed shallowest first: a walk
    that counts a shared node where it first meets it sees 61 levels, the document nests 2,400."""
    chain = ["&a0 " + "[" * 50 + "1" + "]" * 50]
    for k in range(1, 40):
        chain.append(f"&a{k} " + "[" * 60 + f"*a{k - 1}" + "]" * 60)
    path = tmp_path / "deep.yaml"
    path.write_text("metadata: {name: x}\nparameters: [{name: k, value: [" + ", ".join(chain) + "]}]\n")
    with pytest.raises(ilsim.ModelError, match="nested more than 100 levels deep"):
        ilsim.load(path)
