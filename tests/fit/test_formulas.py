"""Observable formulas reach the code generator as SymPy objects only: text is refused, never evaluated."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy as sp

from ilsim.fit import formulas
from ilsim.fit.run import load_problem

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fitting" / "treg-fit.yaml"


def test_text_is_refused_and_not_run(tmp_path, monkeypatch):
    model = load_problem(EXAMPLE).model
    monkeypatch.chdir(tmp_path)
    with pytest.raises(sp.SympifyError):
        formulas.build(model, "__import__('pathlib').Path('PWNED').touch()", sp.Float(0.1), [formulas.TIME_SLOT])
    assert not (tmp_path / "PWNED").exists()
    # the same observable as a SymPy expression is built: h = E, sigma constant, dh/dE = 1
    function, h_slots, s_slots = formulas.build(model, sp.Symbol("E"), sp.Float(0.1), [formulas.TIME_SLOT])
    assert len(h_slots) == 1 and s_slots == []
