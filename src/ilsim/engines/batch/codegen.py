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

from ilsim.engines.ode import _time_switches
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
    switches = _time_switches(model)
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
