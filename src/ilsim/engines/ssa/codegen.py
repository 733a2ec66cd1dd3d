"""A model as the stochastic engine runs it: one generated module of numba functions per model.

The module is the trajectory loop (``driver.py``, as text) followed by the model's own functions, printed from
its expression trees: ``rates`` (every process rate), ``rate_one`` (one process, for the next-reaction method),
``holds`` (condition events), ``next_check`` (when a condition on t flips), ``guard`` and ``value`` (event
guards and action values, each distinct expression once, as the batch engine's tables number them). It is
written to the kernel cache folder under a name that is the hash of its text, so numba's on-disk cache serves
a second process.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ilsim.engines.batch.codegen import distinct_event_expressions
from ilsim.engines.ssa import massaction
from ilsim.model import expressions as ex
from ilsim.model.compile import CompiledModel, _import_generated, kernel_names, unpack_lines
from ilsim.model.switches import time_switches

_LOADED: dict[str, object] = {}


def model_module(model: CompiledModel):
    """The compiled module of ``model`` (the driver's ``run_all`` against its functions), built on first use."""
    kernel = model.kernels["rhs_into"].py_func.__module__  # for hill() and factorial()
    source = (Path(__file__).with_name("driver.py").read_text() + model_source(model, kernel))
    name = f"ilsim_ssa_{hashlib.sha256(source.encode()).hexdigest()[:24]}"
    if name not in _LOADED:
        _LOADED[name] = _import_generated(source, True, name)
    return _LOADED[name]


def reads(model: CompiledModel, tree: ex.Expr) -> set[str]:
    """The names a tree reads, through the observables it uses (and those they use)."""
    by_name = dict(zip(model.observables, model.observable_trees))
    names, todo = set(), set(tree.names())
    while todo:
        n = todo.pop()
        if n not in names:
            names.add(n)
            todo |= by_name[n].names() if n in by_name else set()
    return names


def model_source(model: CompiledModel, kernel: str) -> str:
    names = kernel_names(model)
    index = {n: i for i, n in enumerate(model.species)}
    pindex = {n: i for i, n in enumerate(model.parameters)}

    def code(tree: ex.Expr) -> str:
        return ex.to_code(tree, names, False)

    def locals_for(trees: list[ex.Expr], indent: str) -> list[str]:
        """Only the species, parameters and observables these trees read (a process reads a few of many)."""
        used = set().union(*(reads(model, tr) for tr in trees)) if trees else set()
        out = [f"{indent}s_{index[n]} = y[{index[n]}]" for n in model.species if n in used]
        out += [f"{indent}k_{pindex[n]} = p[{pindex[n]}]" for n in model.parameters if n in used]
        out += [f"{indent}o_{i} = {code(tr)}" for i, (n, tr) in enumerate(zip(model.observables, model.observable_trees))
                if n in used]
        return out

    jit = "@njit(cache=True, error_model='numpy')"
    ma = massaction.table(model)  # a large network's mass-action rates as data, not code (massaction.py)
    gen = [j for j in range(len(model.rate_trees)) if ma is None or ma.row[j] < 0]  # the processes printed as code
    src = ["", "", f"# ---- model '{model.name}': the functions the loop above calls",
           f"from {kernel} import _factorial, _hill  # noqa: E402, F401", *([massaction.source(ma)] if ma else []), "", "",
           jit, "def rates(t, y, p, out):", *unpack_lines(model, [model.rate_trees[j] for j in gen], clip=False),
           *(["    _ma_rates(y, p, out)"] if ma else [])]
    src += [f"    out[{j}] = {code(model.rate_trees[j])}" for j in gen] or ["    pass"]

    def dispatch(lo: int, hi: int, indent: str) -> list[str]:
        """Processes lo..hi-1 by bisection on j: about log2(processes) comparisons per call, not one per process
        (a chain of 1,500 tests made the next-reaction method slower than its dependency graph saves)."""
        if hi - lo == 1:
            return [*locals_for([model.rate_trees[gen[lo]]], indent), f"{indent}return {code(model.rate_trees[gen[lo]])}"]
        mid = (lo + hi) // 2
        return [f"{indent}if j < {gen[mid]}:", *dispatch(lo, mid, indent + "    "), *dispatch(mid, hi, indent)]

    src += ["", "", jit, "def rate_one(j, t, y, p):"]
    src += ["    if MA_ROW[j] >= 0:", "        return _ma_one(MA_ROW[j], y, p)"] if ma else []
    src += dispatch(0, len(gen), "    ") if gen else ["    return 0.0"]

    def by_slot(function: str, trees: list[ex.Expr], value, default: str) -> list[str]:
        lines = ["", "", jit, f"def {function}(slot, t, y, p):"]
        for k, tree in enumerate(trees):
            lines += [f"    if slot == {k}:", *locals_for([tree], "        "), f"        return {value(tree)}"]
        return [*lines, f"    return {default}"]

    conditions = [e.condition for e in model.events if e.condition is not None]
    guards, values = distinct_event_expressions(model)
    src += by_slot("holds", conditions, lambda c: f"1 if {code(c)} else 0", "0")
    src += by_slot("guard", guards, lambda g: f"1 if {code(g)} else 0", "1")
    src += by_slot("value", values, code, "0.0")

    # the moments a condition on t flips (t >= c, t == c, floor windows): the loop stops there to test it on time
    src += ["", "", jit, "def next_check(t, t_stop, p):"]
    for tree in time_switches(model):  # with the events' conditions (rates reading t are refused)
        src += [*locals_for([tree], "    "), f"    v = {code(tree)}", "    if t < v < t_stop:", "        t_stop = v"]
    src += ["    return t_stop"]
    return "\n".join(src) + "\n"


def dependency_graph(model: CompiledModel) -> tuple[np.ndarray, np.ndarray]:
    """For each process, the processes whose rates read a species it changes (CSR: pointers, indices)."""
    species_read = [reads(model, r) & set(model.species) for r in model.rate_trees]
    ptr, idx = [0], []
    for j in range(len(model.rate_trees)):
        changed = {model.species[i] for i in np.flatnonzero(model.stoichiometry[:, j])}
        idx += [k for k, used in enumerate(species_read) if used & changed]
        ptr.append(len(idx))
    return np.array(ptr, dtype=np.int64), np.array(idx, dtype=np.int64)
