"""Mass-action rates as data: the stochastic engine's propensities of a large network without a line of code each.

A rate that is a product of numbers, parameters (whole powers, divided by too) and species (whole positive powers),
``k * A * B``, ``0.5 * A``, ``k / V * A^2``, is one row of a table: a number, the parameters with their powers and
the species with theirs. ``rates`` and ``rate_one`` of the generated module (``codegen.py``) compute such a process
by one loop over its row (``_ma_one`` below) instead of a line of generated code. numba compiled the generated code
of a 1,501-reaction network in minutes (a ``rates`` of 1,501 lines and a ``rate_one`` of 1,501 branches, inlined into
the trajectory loop), the table in seconds; generated code stays for the other rates (observables, functions,
sums) and for networks of at most ``GENERATED_UP_TO`` processes, where it is a little faster per reaction and
compiles quickly anyway (bench/ssa_methods.py prints both).

The table enters the module as constant arrays (numba freezes a module's global arrays into the compiled code), so
the data differ per network while the loops over them are the same text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ilsim.model import expressions as ex
from ilsim.model.compile import CompiledModel

GENERATED_UP_TO = 100  # processes: up to this many, every rate is generated code (a table above)
MAX_POWER = 8  # a whole power above this is left to generated code (a loop of multiplications per evaluation)


@dataclass(frozen=True)
class Table:
    row: np.ndarray  # per process: its row in the table, or -1 (generated code)
    coefficient: np.ndarray  # per row: the product of its numbers
    param_ptr: np.ndarray  # CSR over rows: parameter indices and their (whole, maybe negative) powers
    param_index: np.ndarray
    param_power: np.ndarray
    species_ptr: np.ndarray  # CSR over rows: species indices and their (whole, positive) powers
    species_index: np.ndarray
    species_power: np.ndarray


def factors(tree: ex.Expr, species: dict[str, int], params: dict[str, int], power: int = 1):
    """(number, {parameter: power}, {species: power}) when ``tree`` (raised to ``power``) is a mass-action product,
    None otherwise."""
    if isinstance(tree, ex.Num):
        return (float(tree.value) ** power, {}, {}) if tree.value != 0 or power > 0 else None  # (1/0: left to code)
    if isinstance(tree, ex.Name):
        if tree.id in params:
            return 1.0, {params[tree.id]: power}, {}
        if tree.id in species and power > 0:
            return 1.0, {}, {species[tree.id]: power}
        return None  # an observable, the time, or a species divided by
    if isinstance(tree, ex.BinOp) and tree.op in ("*", "/"):
        left = factors(tree.left, species, params, power)
        right = factors(tree.right, species, params, power if tree.op == "*" else -power)
        if left is None or right is None:
            return None
        number = left[0] * right[0]
        merged = [dict(left[1]), dict(left[2])]
        for into, extra in zip(merged, right[1:]):
            for k, v in extra.items():
                into[k] = into.get(k, 0) + v
        return number, *merged
    if isinstance(tree, ex.BinOp) and tree.op == "**" and isinstance(tree.right, ex.Num):
        e = tree.right.value
        if e == int(e) and 0 < abs(e) <= MAX_POWER:
            return factors(tree.left, species, params, power * int(e))
    return None


def table(model: CompiledModel) -> Table | None:
    """The mass-action table of a network above ``GENERATED_UP_TO`` processes (None for a smaller one or where no
    rate is mass action)."""
    if len(model.rate_trees) <= GENERATED_UP_TO:
        return None
    species = {n: i for i, n in enumerate(model.species)}
    params = {n: i for i, n in enumerate(model.parameters)}
    row = np.full(len(model.rate_trees), -1, dtype=np.int64)
    coefficient, pp, pi, pe, sp, si, se = [], [0], [], [], [0], [], []
    for j, tree in enumerate(model.rate_trees):
        f = factors(tree, species, params)
        if f is None or not np.isfinite(f[0]) or any(abs(v) > MAX_POWER for d in f[1:] for v in d.values()):
            continue
        row[j] = len(coefficient)
        coefficient.append(f[0])
        for index, power in sorted(f[1].items()):
            if power:
                pi.append(index)
                pe.append(power)
        for index, power in sorted(f[2].items()):
            if power:
                si.append(index)
                se.append(power)
        pp.append(len(pi))
        sp.append(len(si))
    if not coefficient:
        return None

    def ints(v):
        return np.array(v, dtype=np.int64)

    return Table(row, np.array(coefficient, dtype=np.float64), ints(pp), ints(pi), ints(pe), ints(sp), ints(si), ints(se))


def source(t: Table) -> str:
    """The table as constant arrays and the two functions reading it, to append to a generated module."""

    def array(name: str, values: np.ndarray) -> str:
        dtype = "np.float64" if values.dtype.kind == "f" else "np.int64"
        return f"{name} = np.array([{', '.join(repr(float(v)) if values.dtype.kind == 'f' else str(int(v)) for v in values)}]," \
               f" dtype={dtype})"

    lines = ["", "", "# ---- mass-action rates as data (engines/ssa/massaction.py)",
             array("MA_ROW", t.row), array("MA_C", t.coefficient), array("MA_PP", t.param_ptr),
             array("MA_PI", t.param_index), array("MA_PE", t.param_power), array("MA_SP", t.species_ptr),
             array("MA_SI", t.species_index), array("MA_SE", t.species_power), "", "", KERNELS]
    return "\n".join(lines) + "\n"


KERNELS = '''@njit(cache=True, error_model='numpy')
def _ma_one(m, y, p):
    """Row m's rate: its number times its parameters and species to their whole powers."""
    r = MA_C[m]
    for q in range(MA_PP[m], MA_PP[m + 1]):
        v = p[MA_PI[q]]
        e = MA_PE[q]
        if e > 0:
            for _ in range(e):
                r *= v
        else:
            for _ in range(-e):
                r /= v
    for q in range(MA_SP[m], MA_SP[m + 1]):
        v = y[MA_SI[q]]
        for _ in range(MA_SE[q]):
            r *= v
    return r


@njit(cache=True, error_model='numpy')
def _ma_rates(y, p, out):
    for j in range(MA_ROW.shape[0]):
        m = MA_ROW[j]
        if m >= 0:
            out[j] = _ma_one(m, y, p)'''
