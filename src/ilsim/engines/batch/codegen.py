"""The batch driver module of one model: the integrator template plus the model's event and initial-value functions.

The generated source is written to the kernel cache folder (``ilsim.model.compile.cache_dir()``) under a
name that is the hash of its text, which contains the template (so a new engine version gets a new
file) and the names of the model's kernel modules (themselves named by the hash of their source).
numba's ``cache=True`` then keeps the compiled driver beside it, so a second process loads it
instead of compiling it again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ilsim.engines.switches import time_switches
from ilsim.model import expressions as ex
from ilsim.model.compile import STATE, CompiledModel, _import_generated

TEMPLATE = Path(__file__).with_name("integrator.py")
_LOADED: dict[str, object] = {}  # driver module name -> module, for this process


def driver_module(model: CompiledModel):
    """The imported driver module of ``model`` (written and compiled on first use; cached on disk)."""
    kernel = model.kernels["rhs_into"].py_func.__module__
    jacobian = model.kernels["jac"].module().__name__
    source = driver_source(model, kernel, jacobian)
    name = f"ilsim_batch_{hashlib.sha256(source.encode()).hexdigest()[:24]}"
    if name not in _LOADED:
        _LOADED[name] = _import_generated(source, True, name)
    return _LOADED[name]


def uses_time(model: CompiledModel) -> bool:
    """Whether the right-hand side reads t (the stiff method then needs df/dt)."""
    trees = [*model.rate_trees, *model.observable_trees]
    return any(ex.TIME in tree.names() for tree in trees if tree is not None)


def driver_source(model: CompiledModel, kernel: str, jacobian: str) -> str:
    names = {n: f"s_{i}" for i, n in enumerate(model.species)}
    names.update({n: f"k_{i}" for i, n in enumerate(model.parameters)})
    names.update({n: f"o_{i}" for i, n in enumerate(model.observables)})
    names[ex.TIME] = "t"
    conditions = [e.condition for e in model.events if e.condition is not None]

    def code(tree: ex.Expr) -> str:
        return ex.to_code(tree, names, False)

    def unpack(trees: list[ex.Expr]) -> list[str]:
        """Locals for the names the trees read (raw state, as the SciPy engine evaluates events)."""
        used = set().union(*(tr.names() for tr in trees), *(tr.names() for tr in model.observable_trees))
        lines = [f"    s_{i} = y[{i}]" for i, n in enumerate(model.species) if n in used]
        lines += [f"    k_{i} = p[{i}]" for i, n in enumerate(model.parameters) if n in used]
        lines += [f"    o_{i} = {code(tr)}" for i, tr in enumerate(model.observable_trees)] if trees else []
        return lines

    src = [TEMPLATE.read_text(), "", f"# ---- model '{model.name}'", f"from {jacobian} import jac_into  # noqa: E402"]
    roots = [f"root_{k}" for k in range(len(conditions))]
    src.append(f"from {kernel} import {', '.join(['_hill', '_factorial', 'rhs_into', *roots])}  # noqa: E402")
    src += ["", "", "@_jit", "def roots_into(t, y, p, out):"]
    src += [f"    out[{k}] = root_{k}(t, y, p)" for k in range(len(conditions))] or ["    pass"]

    src += [f"LANE_GROUPS = {not conditions}", f"LANES = {lanes(model)}"]
    src += rhs_lanes_source(model) if not conditions else []

    src += ["", "", "@_jit", "def initial_into(p, out):"]
    src += [f"    k_{i} = p[{i}]" for i in range(len(model.parameters))]
    src += [f"    out[{i}] = {code(tr)}" for i, tr in enumerate(model.initial_trees)]

    src += ["", "", "@_jit", "def condition_holds(slot, t, y, p):", *unpack(conditions)]
    for k, cond in enumerate(conditions):
        src += [f"    if slot == {k}:", f"        return {code(cond)}"]
    src += ["    return False"]

    # the size of what each condition compares (|a| + |b| for 'a < b'), for its re-arm tolerance
    src += ["", "", "@_jit", "def condition_scale(slot, t, y, p):", *unpack(conditions)]
    for k, cond in enumerate(conditions):
        src += [f"    if slot == {k}:", f"        return {scale_code(cond, code)}"]
    src += ["    return 1.0"]

    # the times where a rate or observable switches (t compared with parameters): segments end there
    switches = time_switches(model)
    src += ["", "", "@_jit", "def next_switch(t, t_stop, p):"]
    src += [f"    k_{i} = p[{i}]" for i, n in enumerate(model.parameters)
            if any(n in tree.names() for tree in switches)]
    for tree in switches:
        src += [f"    v = {code(tree)}", "    if t < v < t_stop:", "        t_stop = v"]
    src += ["    return t_stop"]

    guards = [(k, e.guard) for k, e in enumerate(model.events) if e.guard is not None]
    src += ["", "", "@_jit", "def guard_holds(k, t, y, p):", *unpack([g for _, g in guards])]
    for k, guard in guards:
        src += [f"    if k == {k}:", f"        return {code(guard)}"]
    src += ["    return True"]

    # every value is computed from the state before the event, then all are applied
    src += ["", "", "@_jit", "def apply_actions(k, t, y, p):", *unpack([a[3] for e in model.events for a in e.actions])]
    for k, event in enumerate(model.events):
        src.append(f"    if k == {k}:")
        src += [f"        v_{a} = {code(node)}" for a, (_, _, _, node) in enumerate(event.actions)]
        for a, (mode, kind, i, _) in enumerate(event.actions):
            target = "y" if kind == STATE else "p"
            src.append(f"        {target}[{i}] {'=' if mode == 'set' else '+='} v_{a}")
        src.append("        return")
    src += ["    return", ""]
    return "\n".join(src)


LANE_BYTES = 32 * 1024  # a lane group's states, stages and parameters: kept within a core's level-1 data cache


def lanes(model: CompiledModel) -> int:
    """Patients side by side in a lane group: the most (a power of two, 8 to 64) whose arrays fit LANE_BYTES.
    More lanes hide more latency (Kirschner-Panetta, 3 species: 16 lanes 0.32 ms per patient, 32 0.24,
    64 0.21; bench/README.md); past the cache, loads cost more than that gains."""
    per_lane = 8 * (12 * len(model.species) + len(model.parameters))  # 12 state-sized arrays, the parameters
    count = 8
    while count < 64 and 2 * count * per_lane <= LANE_BYTES:
        count *= 2
    return count


def rhs_lanes_source(model: CompiledModel) -> list[str]:
    """``rhs_lanes(y, t, p, out)``: the right-hand side of ``lanes(model)`` patients, each at its own time t[c], with
    species and parameters laid out one row per name and one column per patient, so that the loop over
    patients compiles to vector instructions (as ``rhs_into``, which ``ilsim.model.compile`` writes for
    one patient)."""
    names = {n: f"s_{i}" for i, n in enumerate(model.species)}
    names.update({n: f"k_{i}" for i, n in enumerate(model.parameters)})
    names.update({n: f"o_{i}" for i, n in enumerate(model.observables)})
    names[ex.TIME] = "t_c"

    def code(tree: ex.Expr) -> str:
        return ex.to_code(tree, names, False)

    lines = ["", "", "@_jit", "def rhs_lanes(y, t, p, out):", "    for c in range(LANES):", "        t_c = t[c]"]
    used = set().union(*(tr.names() for tr in (*model.rate_trees, *model.observable_trees)))
    lines += [f"        s_{i} = max(y[{i}, c], 0.0)" if model.nonnegative[i] else f"        s_{i} = y[{i}, c]"
              for i, n in enumerate(model.species) if n in used]
    lines += [f"        k_{i} = p[{i}, c]" for i, n in enumerate(model.parameters) if n in used]
    lines += [f"        o_{i} = {code(tr)}" for i, tr in enumerate(model.observable_trees)]
    lines += [f"        r_{j} = {code(r)}" for j, r in enumerate(model.rate_trees)]
    for i in range(len(model.species)):
        row = model.stoichiometry[i]
        terms = " + ".join(f"{float(row[j])!r} * r_{j}" for j in range(len(model.rate_trees)) if row[j]) or "0.0"
        if model.nonnegative[i] and terms != "0.0":  # at zero a non-negative quantity cannot decrease further
            lines += [f"        v = {terms}", f"        out[{i}, c] = 0.0 if (y[{i}, c] <= 0.0 and v < 0.0) else v"]
        else:
            lines.append(f"        out[{i}, c] = {terms}")
    return lines


def scale_code(node: ex.Expr, code) -> str:
    """Source of the magnitude of the quantities a condition compares: its root function's scale
    (as the SciPy engine's dead band: |a| + |b| for a comparison, the largest over 'and'/'or')."""
    if isinstance(node, ex.Compare):
        return f"(abs({code(node.left)}) + abs({code(node.right)}))"
    if isinstance(node, ex.Logic):
        return "max(" + ", ".join(scale_code(a, code) for a in node.args) + ")"
    if isinstance(node, ex.Not):
        return scale_code(node.arg, code)
    return "1.0"  # a number used as a truth value: its root function is +-1
