"""Observable and noise formulas as vectorised functions with their derivatives.

A formula arrives as a SymPy expression over the model's names (species, parameters, observables, which are
inlined) and the names a measurement row fills in (placeholders, parameters outside the model, time). Every
name is replaced by a positional symbol before code is generated, so no user text reaches the generated
source; SymPy differentiates, as it does for the model's Jacobian.
"""

from __future__ import annotations

from ilsim.model import expressions as ex
from ilsim.model.compile import CompiledModel

TIME_SLOT = "time"  # the row value that carries the measurement's time (PEtab's ``time``, ilsim's ``t``)


def model_symbols(m: CompiledModel) -> dict:
    """SymPy expressions of the model's names: species and parameters as symbols, observables inlined, t as time."""
    import sympy as sp  # lazy: heavy (SymPy)

    symbols = {n: sp.Symbol(n, real=True) for n in (*m.species, *m.parameters)}
    symbols[ex.TIME] = sp.Symbol(TIME_SLOT, real=True)
    for name, tree in zip(m.observables, m.observable_trees):
        symbols[name] = ex.to_sympy(tree, symbols)
    return symbols


def build(m: CompiledModel, h, sigma, row_slots: list[str]):
    """(function, h_slots, s_slots): ``function(*x_columns, *p_values, *row_columns)`` returns
    [h, sigma, dh/d(slot) for h_slots, dsigma/d(slot) for s_slots], slots numbered species, parameters, rows."""
    import sympy as sp  # lazy: heavy (SymPy)

    names = [*m.species, *m.parameters, *row_slots]
    positional = [sp.Symbol(f"v{i}", real=True) for i in range(len(names))]
    rename = {sp.Symbol(n, real=True): v for n, v in zip(names, positional)}
    rename.update({sp.Symbol(n): v for n, v in zip(names, positional)})
    # strict: SymPy objects and numbers only; text would be run through eval() by sympify, so none is accepted here
    h, sigma = sp.sympify(h, strict=True).xreplace(rename), sp.sympify(sigma, strict=True).xreplace(rename)
    index = {v: i for i, v in enumerate(positional)}
    h_slots = sorted(index[s] for s in h.free_symbols)
    s_slots = sorted(index[s] for s in sigma.free_symbols)
    outputs = [h, sigma, *[sp.diff(h, positional[i]) for i in h_slots], *[sp.diff(sigma, positional[i]) for i in s_slots]]
    function = sp.lambdify(positional, outputs, modules="numpy", cse=True)
    return function, h_slots, s_slots
