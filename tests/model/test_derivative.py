"""Derivatives of expression trees (the analytic Jacobian) against SymPy's and against finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ilsim.model import expressions as ex
from ilsim.model.derivative import Differentiator

# every function of the expression language, each where it is smooth at the sampled points
FORMULAS = [
    "k*x**3*y - x/(y + 2) + 5",
    "exp(-k*x)*log(y) + log10(x*y) + sqrt(x + y)",
    "sin(x)*cos(y) + tan(x/3) + sinh(y/4) - cosh(x/5) + tanh(x - y)",
    "asin(x/4) + acos(y/5) + atan(x*y)",
    "abs(x - y)**2 + min(x, y, k) + max(x*y, 2, y)",
    "hill(x, k, 2.5) + hill(y, x, 3)",
    "piecewise(x**2, x > y, y**3, x > 1, k*x*y)",
    "x**y + 2**x + y**k + log(x, y + 1)",
    "floor(x)*y + ceil(y)*x + (x > y)",
    "factorial(x) + factorial(y/2)",
]
POINTS = [(0.7, 1.3), (1.9, 0.4), (2.6, 2.1), (1.2, 2.9)]


def _sympy_value(text: str, name: str, at: dict[str, float]) -> float:
    sp = pytest.importorskip("sympy")
    symbols = {n: sp.Symbol(n, real=True) for n in ("x", "y", "k")}
    if "factorial" in text or "floor" in text:  # SymPy has no closed form; a central difference stands in
        h = 1e-6
        up, down = dict(at), dict(at)
        up[name] += h
        down[name] -= h
        return (ex.evaluate(ex.parse(text), up) - ex.evaluate(ex.parse(text), down)) / (2 * h)
    d = sp.diff(ex.to_sympy(ex.parse(text), symbols), symbols[name])
    return float(d.subs({symbols[n]: v for n, v in at.items()}).evalf())


@pytest.mark.parametrize("text", FORMULAS)
def test_derivatives_match_sympy(text):
    tree = ex.parse(text)
    calculus = Differentiator({})
    for x, y in POINTS:
        at = {"x": x, "y": y, "k": 0.8}
        for name in ("x", "y"):
            ours = float(ex.evaluate(calculus.derivative(tree, name), at))
            assert ours == pytest.approx(_sympy_value(text, name, at), rel=1e-6, abs=1e-8), (text, name, at)


def test_observables_are_followed_through_their_trees():
    observables = {"a": ex.parse("x*y"), "b": ex.parse("exp(a) + k*x")}
    calculus = Differentiator(observables)
    rate = ex.parse("b**2 - a")
    assert calculus.depends_on(rate) == {"x", "y", "k"}
    d = calculus.derivative(rate, "x")
    assert d.names() <= {"x", "y", "k"}  # observables inlined: the kernel computes species and parameters only
    at = {"x": 0.3, "y": 1.1, "k": 2.0}
    expected = 2 * (math.exp(0.33) + 0.6) * (1.1 * math.exp(0.33) + 2.0) - 1.1
    assert float(ex.evaluate(d, at)) == pytest.approx(expected, rel=1e-12)


def test_a_name_that_does_not_occur_has_derivative_zero():
    calculus = Differentiator({})
    assert calculus.derivative(ex.parse("k*exp(y) + piecewise(1, x > 2, 0)"), "x") == ex.Num(0.0)


def test_the_jacobian_of_a_model_with_nested_piecewise_matches_finite_differences(monkeypatch):
    """Nested piecewise conditions made SymPy write an if-then-else it could not give back; the trees are
    differentiated directly now, so such a model compiles its Jacobian and it is right."""
    import ilsim

    monkeypatch.setenv("ILSIM_JIT", "0")  # plain-Python kernels: nothing for numba to compile
    m = ilsim.Model(name="switches")
    m.add_species("A", 2.0).add_species("B", 1.0).add_parameter("k", 0.7)
    m.add_process("on", "piecewise(k*A*B, (A > 1 and B < 3) or not (A > 4), A**2, B > 0.5, k)", consumes={"A": 1},
                  produces={"B": 1})
    m.add_process("off", "max(B - A, 0.1*B)*hill(A, 1.5, 2)", consumes={"B": 1})
    model = ilsim.compile(m)
    rng = np.random.default_rng(3)
    for _ in range(6):
        y = rng.uniform(0.2, 5.0, 2)
        jac = model.jacobian(y, 0.0, model.p0)
        numeric = np.empty_like(jac)
        for k in range(2):
            h = 1e-7 * max(1.0, abs(y[k]))
            up, down = y.copy(), y.copy()
            up[k] += h
            down[k] -= h
            numeric[:, k] = (model.rhs(up, 0.0, model.p0) - model.rhs(down, 0.0, model.p0)) / (2 * h)
        assert np.allclose(jac, numeric, rtol=1e-5, atol=1e-7)
