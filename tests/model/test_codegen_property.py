"""Generated code is correct for every expression the parser accepts: random expression trees, compiled as a
one-species model's rate (plain Python, no numba), give the value of the tree-walking evaluator (the oracle:
expressions.evaluate, which shares no code with the printer)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ilsim.errors import ExpressionError
from ilsim.model import expressions as ex
from ilsim.model.compile import compile_model
from ilsim.model.load import spec_from_dict

NUMBERS = [0.0, 1.0, -1.0, 2.0, 3.0, 0.5, -2.5, 1e6, 1e300, -1e300, 1e-300, 7.25]
NAMES = ["X", "a", "b", "t"]
ONE_ARG = ["exp", "log", "log10", "sqrt", "abs", "sin", "cos", "tanh", "tan", "sinh", "cosh", "asin", "acos", "atan",
           "floor", "ceil", "factorial"]
VALUES = {"X": [0.0, 1.5, -2.0, 1e300, 3.0], "a": [0.0, 2.0, -0.5, 1e-300], "b": [1.0, -3.0, 700.0], "t": [0.0, 0.25, 9.0]}


def _leaf():
    return st.one_of(st.sampled_from(NUMBERS).map(ex.Num), st.sampled_from(NAMES).map(ex.Name))


def _condition(value):
    compare = st.builds(ex.Compare, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), value, value)
    return st.one_of(
        compare,
        st.builds(lambda op, cs: ex.Logic(op, tuple(cs)), st.sampled_from(["and", "or"]),
                  st.lists(compare, min_size=2, max_size=3)),
        compare.map(ex.Not),
    )


def _extend(value):
    return st.one_of(
        st.builds(ex.BinOp, st.sampled_from(["+", "-", "*", "/", "**"]), value, value),
        value.map(ex.Neg),
        st.builds(lambda f, x: ex.Call(f, (x,)), st.sampled_from(ONE_ARG), value),
        st.builds(lambda x, base: ex.Call("log", (x, base)), value, value),
        st.builds(lambda f, xs: ex.Call(f, tuple(xs)), st.sampled_from(["min", "max"]), st.lists(value, min_size=2, max_size=3)),
        st.builds(lambda x, k, n: ex.Call("hill", (x, k, n)), value, value, value),
        st.builds(lambda v1, c1, v2: ex.Call("piecewise", (v1, c1, v2)), value, _condition(value), value),
        st.builds(lambda v1, c1, v2, c2, v3: ex.Call("piecewise", (v1, c1, v2, c2, v3)),
                  value, _condition(value), value, _condition(value), value),
    )


TREES = st.recursive(_leaf(), _extend, max_leaves=12)


def _same(got: float, want: float) -> bool:
    got, want = float(got), float(want)
    if math.isnan(got) or math.isnan(want):
        return math.isnan(got) and math.isnan(want)
    if math.isinf(got) or math.isinf(want):
        return got == want
    return math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-300)


@settings(derandomize=True, max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=TREES, point=st.fixed_dictionaries({n: st.sampled_from(v) for n, v in VALUES.items()}))
def test_generated_kernel_agrees_with_the_tree_walk(tree, point):
    text = ex.to_text(tree)
    try:
        parsed = ex.parse(text)  # the tree as a model file gives it: the parser folds -1 and refuses x/0 written out
    except ExpressionError:
        assume(False)
    spec = spec_from_dict({
        "metadata": {"name": "property"},
        "species": [{"name": "X", "initial": 1, "nonnegative": False}],
        "parameters": [{"name": "a", "value": point["a"]}, {"name": "b", "value": point["b"]}],
        "processes": [{"name": "r", "rate": text, "produces": {"X": 1}}],
    })
    model = compile_model(spec, jit=False)
    out = np.empty(1)
    with np.errstate(all="ignore"):
        model.kernels["rhs_into"](np.array([point["X"]]), point["t"], model.p0, out)
    want = ex.evaluate(parsed, point)
    assert _same(out[0], 1.0 * float(want)), f"{text} at {point}: kernel {out[0]!r}, tree walk {want!r}"
