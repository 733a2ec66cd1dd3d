"""Absolute tolerances scaled to each species' size on import (io/sbml_import/tolerances.py): a model in SI
amounts (1e-20 .. 1e-9 mol) runs at ilsim's default tolerances as libroadrunner runs it at tight ones (the oracle);
a model of ordinary sizes is imported with no tolerance of its own; a bad ``atol`` is refused by name."""

from __future__ import annotations

import numpy as np
import pytest
from roadrunner_oracle import amounts, sbml_file

import ilsim
from ilsim.engines.ode import OdeEngine
from ilsim.errors import ModelError
from ilsim.io.sbml_import import import_sbml

TINY = """model tiny
 compartment cell = 1
 species A in cell = 1e-9, B in cell = 0, C in cell = 1e-20, D in cell = 0
 J1: A -> B; k1*A
 J2: B + C -> D; k2*B*C
 J3: D -> C; k3*D
 J4: C -> ; k4*C
 k1 = 0.1; k2 = 1e9; k3 = 0.5; k4 = 0.05
end"""


def test_amounts_of_1e_minus_20_agree_with_libroadrunner_at_the_default_tolerances(tmp_path):
    t = np.linspace(0.0, 100.0, 101)
    ours, theirs, model = amounts(sbml_file(tmp_path, TINY), t, OdeEngine(), 1e-12, 1e-35)  # ilsim: rtol 1e-6, atol 1e-9
    assert {s.name: s.atol for s in model.spec.species} == pytest.approx(
        {"A": 1e-15, "B": 1e-26, "C": 1e-26, "D": 1e-26})  # a millionth of each size (of the smallest, from 0)
    assert np.all(np.abs(ours - theirs) <= 1e-4 * np.abs(theirs).max(axis=0))


def test_a_model_of_ordinary_sizes_keeps_one_tolerance(tmp_path):
    spec = import_sbml(sbml_file(tmp_path, "species X = 10, Y = 0; J: X -> Y; 0.1*X")).spec
    assert [s.atol for s in spec.species] == [None, None]


@pytest.mark.parametrize("atol", [0.0, -1e-12, float("nan"), float("inf")])
def test_a_species_atol_that_is_not_a_positive_number_is_refused_by_name(atol):
    with pytest.raises(ModelError, match=r"add_species\('X'\).*atol must be a positive, finite"):
        ilsim.Model(name="m").add_species("X", 1.0, atol=atol)


def test_parameters_that_rate_rules_change_get_tolerances_of_their_size(tmp_path):
    """A model whose state lives in rate-ruled parameters of size 1e-12 (as MODEL2211040001, in mol): each gets an
    atol a millionth of its size, and the default run follows the closed form a = a0 e^(-t/10),
    b = 2 a0 (e^(-t/20) - e^(-t/10)) to 1e-6 of its size; with the one default atol it is not controlled at all."""
    from ilsim.io.sbml_import.suite import read_back
    from ilsim.model.compile import compile_model

    path = sbml_file(tmp_path, "a = 1e-12; b = 0; a' = -0.1*a; b' = 0.1*a - 0.05*b")
    model = import_sbml(path)
    assert {s.name: s.atol for s in model.spec.species} == pytest.approx({"a": 1e-18, "b": 1e-18})
    t = np.linspace(0.0, 100.0, 101)
    exact = np.column_stack([1e-12 * np.exp(-t / 10), 2e-12 * (np.exp(-t / 20) - np.exp(-t / 10))])

    def error(spec) -> float:
        compiled = compile_model(spec, source=str(path))
        ours = read_back(compiled, OdeEngine().run(compiled, t, compiled.p0), [model.quantities[q].value for q in "ab"])
        return float(np.max(np.abs(ours - exact) / np.abs(exact).max(axis=0)))

    assert error(model.spec) <= 1e-5
    one_atol = model.spec.model_copy(update={"species": [s.model_copy(update={"atol": None}) for s in model.spec.species]})
    assert error(one_atol) > 1e-3  # what the scaled tolerances cure
