"""Plain-Python kernels give the numba-compiled kernels' bits (model/ieee.py), so that a run may switch from one to
the other at any call without changing a number. The oracle is the compiled kernel itself: the right-hand side
and the Jacobian of both, at many random states, must be equal bit for bit (NaN counted equal to NaN)."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest

import ilsim
from ilsim.engines.ode import OdeEngine
from ilsim.model.compile import compile_model
from ilsim.scenarios import builtin_names

# Every function of the expression language, the powers LLVM rewrites (x**2, x**0.5, x**-1, 2**x, 8**x), the
# helpers hill() and factorial(), and divisions that meet zero (the plain kernels' careful path).
RATES = ["exp(x/3)", "log(x + y)", "log10(x*y + 1)", "tanh(x - y)", "sinh(x/10)", "cosh(y/10)", "tan(x)", "atan(x*y)",
         "(x + y)**2", "(x*y)**0.5", "2**(x/7)", "8**(y/9)", "0.5**x", "(x + 1)**-1", "(x + y)**1.7", "x**3",
         "hill(x, y, 2)", "hill(x, 1.5, 2.7)", "factorial(x/2)", "floor(x*3)", "ceil(y*5)", "sin(x)*cos(y)",
         "asin(y/(abs(y) + 1))", "acos(x/(abs(x) + 1))", "log(x, y + 2)", "sqrt(x + y)", "x/(y - 1)", "1/x",
         "max(x, y)*min(x, 2)", "piecewise(x, x > y, y)", "exp(x)**2", "exp(x*y)/exp(-y*y)"]


def _states(compiled, n: int, seed: int):
    """Random states: log-normal around the initial state, signed, with zeros, and over 80 orders of magnitude."""
    rng = np.random.default_rng(seed)
    ns = len(compiled.species)
    y0 = np.abs(compiled.initial_state(compiled.p0))
    scale = np.where((y0 > 0) & np.isfinite(y0), y0, 1.0)
    for k in range(n):
        kind = k % 4
        if kind == 0:
            y = scale * np.exp(rng.normal(0.0, 2.0, ns))
        elif kind == 1:
            y = rng.normal(0.0, 1.0, ns) * scale
        elif kind == 2:
            y = np.where(rng.random(ns) < 0.3, 0.0, scale * rng.random(ns))
        else:
            y = np.exp(rng.uniform(-40.0, 40.0, ns))
        p = compiled.p0 * np.exp(rng.normal(0.0, 0.3, len(compiled.p0))) if k % 3 == 0 else compiled.p0
        yield y, float(rng.uniform(0.0, 200.0)), p


def _assert_same_bits(make, n: int = 200, seed: int = 0) -> None:
    """``make(jit)``: the model compiled with those kernels."""
    plain, compiled = make(False), make(True)
    for y, t, p in _states(plain, n, seed):
        with np.errstate(all="ignore"):
            want = compiled.rhs(y, t, p)
            np.testing.assert_array_equal(plain.rhs(y, t, p), want, err_msg=f"rhs at y={y!r}, t={t!r}")
            np.testing.assert_array_equal(plain.kernels["rhs_list"](y, t, p), want)  # the SciPy engine's form
            np.testing.assert_array_equal(plain.jacobian(y, t, p), compiled.jacobian(y, t, p),
                                          err_msg=f"Jacobian at y={y!r}, t={t!r}")


def _model_of(rates: list[str]) -> ilsim.Model:
    m = ilsim.Model(name="bits").add_species("x", 1.0).add_species("y", 2.0)
    for k, rate in enumerate(rates):
        m.add_process(f"r{k}", rate, produces={"x" if k % 2 else "y": 1})
    return m


def test_every_function_and_rewritten_power_gives_the_compiled_bits():
    _assert_same_bits(lambda jit: compile_model(_model_of(RATES), jit=jit), n=3000)


@pytest.mark.parametrize("rate", ["hill(x, 1.5, 2)", "hill(x, y, 2)", "(x + 0.25)**2", "x**2", "2**x", "(x + 0.25)**0.5"])
def test_constant_powers_where_the_c_library_and_llvm_round_apart(rate):
    """At states where C's pow(x, 2.0) is an ulp from x * x (numba's rewrite; one x in a thousand), the plain kernel
    computes what the compiled one does: hill() with a constant exponent (numba inlines it) too."""
    import math

    rng = np.random.default_rng(0)
    xs = [x for x in rng.uniform(0.5, 2.0, 100_000).tolist() if math.pow(x + 0.25, 2.0) != (x + 0.25) * (x + 0.25)
          or math.pow(x, 2.0) != x * x][:40]
    assert len(xs) >= 20  # the states where the two roundings differ exist
    plain, compiled = compile_model(_model_of([rate]), jit=False), compile_model(_model_of([rate]), jit=True)
    for x in xs:
        y = np.array([x, 1.5])
        np.testing.assert_array_equal(plain.kernels["rhs_list"](y, 0.0, plain.p0), compiled.rhs(y, 0.0, compiled.p0))
        np.testing.assert_array_equal(plain.jacobian(y, 0.0, plain.p0), compiled.jacobian(y, 0.0, compiled.p0))


@pytest.mark.parametrize("rate", ["x/(y - 1)", "exp(x*1000)", "(x - 2)**0.5", "log(x - 1)", "(-x)**1.5", "1/(x - 1)",
                                  "floor(1/(x - 1))", "ceil(-1/(x - 1))"])
def test_overflow_poles_and_domain_errors_give_the_compiled_inf_and_nan(rate):
    """At states where the fast path raises (1/0, exp overflow, a negative base's fractional power), the careful
    path answers what the compiled kernel does."""
    plain, compiled = compile_model(_model_of([rate]), jit=False), compile_model(_model_of([rate]), jit=True)
    for y in ([1.0, 1.0], [2.0, 1.0], [0.5, 3.0], [1e300, 0.0], [-0.0, 1.0]):
        y = np.array(y)
        with np.errstate(all="ignore"):
            got, want = plain.rhs(y, 0.0, plain.p0), compiled.rhs(y, 0.0, compiled.p0)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(plain.kernels["rhs_list"](y, 0.0, plain.p0), want)
            np.testing.assert_array_equal(plain.jacobian(y, 0.0, plain.p0), compiled.jacobian(y, 0.0, compiled.p0))
    assert not np.isfinite(plain.rhs(np.array([1.0, 1.0]), 0.0, plain.p0)).all()  # the careful path was taken


@pytest.mark.parametrize("name", builtin_names())
def test_builtin_scenarios_plain_and_compiled_kernels_agree_to_the_bit(name):
    def make(jit: bool):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the scenarios' documented unit warnings
            return ilsim.compile(name, jit=jit)

    _assert_same_bits(make, n=100)


def test_biomodels_sample_plain_and_compiled_kernels_agree_to_the_bit(shared_data):
    from ilsim.io.sbml_import import import_sbml

    folder = shared_data("biomodels")
    with open(folder / "manifest.csv") as f:
        files = [folder / row["file"] for row in csv.DictReader(f)][::45]  # 7 files of 271, every 45th
    compared = 0
    for path in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unit warnings of the files
            try:
                spec = import_sbml(path).spec
            except ilsim.IlsimError:  # a refused file: nothing to compare
                continue
            _assert_same_bits(lambda jit, spec=spec, path=path: compile_model(spec, source=str(path), jit=jit), n=60)
            # and so whole runs (events, switches and the solver's choices included) are the same to the bit
            t = np.linspace(0.0, 100.0, 101)
            plain, compiled = compile_model(spec, jit=False), compile_model(spec, jit=True)
            np.testing.assert_array_equal(OdeEngine().run(plain, t, plain.p0).y, OdeEngine().run(compiled, t, compiled.p0).y)
        compared += 1
    assert compared >= 5
