"""The expression language: a whitelist parser, printing, code generation and SymPy conversion."""

import math

import numpy as np
import pytest
import sympy as sp

from ilsim.errors import ExpressionError
from ilsim.model import expressions as ex

ROUND_TRIP = [
    "p1*E*I/(g1 + I)",
    "r2*T*(1 - b*T)",
    "a - (b - c)",
    "a/(b*c)",
    "-x**2",
    "(-x)**2",
    "2**(-x)",
    "x**y**z",
    "(x**y)**z",
    "hill(x, K, 6) + min(a, b, c)",
    "x < 3 and (y > 2 or not z >= 1)",
    "piecewise(1, x < 2, y, x < 5, 3)",
    "exp(-k*t)*log(x, 10) + sqrt(abs(y))",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_printed_form_parses_back_to_the_same_tree(text):
    tree = ex.parse(text)
    assert ex.parse(ex.to_text(tree)) == tree


@pytest.mark.parametrize(
    "text",
    ["__import__('os')", "os.system('x')", "x.real", "x[0]", "lambda: 1", "[i for i in x]", "{i: 1 for i in x}",
     "(y := 3)", "'text'", "f(*x)", "exp(x=1)", "x @ y", "~x", "open('f')", "eval('1')", "__builtins__"],
)
def test_constructs_outside_the_whitelist_are_refused(text):
    with pytest.raises(ExpressionError, match="invalid expression|not allowed|unknown function"):
        ex.parse(text)


def test_division_by_a_literal_zero_is_refused():
    with pytest.raises(ExpressionError, match="division by zero"):
        ex.parse("k/0")


def test_unknown_function_suggests_the_closest():
    with pytest.raises(ExpressionError, match="did you mean 'hill'"):
        ex.parse("hil(x, 1, 2)")


def test_wrong_number_of_arguments_is_refused():
    with pytest.raises(ExpressionError, match=r"hill\(\) takes 3 arguments, got 2"):
        ex.parse("hill(x, 1)")
    with pytest.raises(ExpressionError, match="odd number"):
        ex.parse("piecewise(1, x < 2, 3, x < 4)")


def test_caret_means_power_and_conditional_means_piecewise():
    assert ex.parse("x^2") == ex.parse("x**2")
    assert ex.parse("a if x > 1 else b") == ex.parse("piecewise(a, x > 1, b)")


def _scalar(tree, values):
    code = ex.to_code(tree, {n: f"v[{n!r}]" for n in tree.names()}, vectorised=False)
    return eval(code, {"math": math, "_hill": ex.hill, "v": values})  # generated from a checked tree (test only)


def _vector(tree, values):
    code = ex.to_code(tree, {n: f"v[{n!r}]" for n in tree.names()}, vectorised=True)
    return eval(code, {"np": np, "_hill": ex.hill, "v": values})


@pytest.mark.parametrize("text", [t for t in ROUND_TRIP if "and" not in t])
def test_scalar_code_vector_code_and_tree_walk_agree(text):
    tree = ex.parse(text)
    rng = np.random.default_rng(3)
    names = sorted(tree.names())
    arrays = {n: rng.uniform(0.2, 3.0, 7) for n in names}
    vec = np.broadcast_to(_vector(tree, arrays), (7,))
    for i in range(7):
        point = {n: float(a[i]) for n, a in arrays.items()}
        assert _scalar(tree, point) == pytest.approx(vec[i], rel=1e-12)
        assert ex.evaluate(tree, point) == pytest.approx(vec[i], rel=1e-12)


def test_hill_is_half_maximal_at_k_and_zero_at_zero():
    tree = ex.parse("hill(x, K, n)")
    assert ex.evaluate(tree, {"x": 2.0, "K": 2.0, "n": 4.0}) == pytest.approx(0.5)
    assert ex.evaluate(tree, {"x": 0.0, "K": 2.0, "n": 4.0}) == 0.0


def test_sympy_round_trip_keeps_the_value():
    tree = ex.parse("kdn*hill(N/(1 + (CA/cinf)**2), xdn, 6) - mud*D + piecewise(1, D > 2, 0)")
    symbols = {n: sp.Symbol(n) for n in tree.names()}
    back = ex.from_sympy(ex.to_sympy(tree, symbols))
    point = {"kdn": 0.35, "N": 0.1, "CA": 0.2, "cinf": 0.28, "xdn": 0.06, "mud": 0.02, "D": 3.0}
    assert ex.evaluate(back, point) == pytest.approx(ex.evaluate(tree, point), rel=1e-12)


def test_root_function_is_positive_exactly_where_the_condition_holds():
    cond = ex.parse("x > 2 and not y <= 1")
    root = ex.root_function(cond)
    for x in (1.0, 3.0):
        for y in (0.5, 1.5):
            v = {"x": x, "y": y}
            assert (ex.evaluate(root, v) > 0) == bool(ex.evaluate(cond, v))


def test_common_subexpressions_compute_each_repeated_piece_once_with_the_same_values():
    trees = [ex.parse(text) for text in ("(a*b + c)**2 + exp(a*b + c)", "3*(a*b + c) - a*b",
                                         "piecewise(1/(a*b + c), x > 0, 0) + a*b")]
    shared, rewritten = ex.common_subexpressions(trees)
    assert [ex.to_text(tree) for _, tree in shared] == ["a*b", "cse_0 + c"]  # each piece once, in order of need
    rng = np.random.default_rng(0)
    for _ in range(20):
        values = dict(zip("abcx", rng.normal(size=4)))
        for name, tree in shared:
            values[name] = ex.evaluate(tree, values)
        for old, new in zip(trees, rewritten):
            assert ex.evaluate(new, values) == pytest.approx(ex.evaluate(old, {k: values[k] for k in "abcx"}))
    assert "piecewise(1/(a*b + c)" in ex.to_text(rewritten[2])  # a branch is evaluated only when chosen


def test_boolean_if_then_else_and_xor_from_sympy_keep_their_truth_table():
    """SymPy writes nested piecewise conditions as ITE (a traceback on BIOMD0000000859's Jacobian) or Xor."""
    x, y = sp.symbols("x y", real=True)
    for expr in (sp.ITE(x > 1, y > 2, y < 0), sp.Xor(x > 1, y > 2)):
        tree = ex.from_sympy(expr)
        for xv in (0.0, 1.5):
            for yv in (-1.0, 1.0, 3.0):
                assert bool(ex.evaluate(tree, {"x": xv, "y": yv})) == bool(expr.subs({x: xv, y: yv}))
