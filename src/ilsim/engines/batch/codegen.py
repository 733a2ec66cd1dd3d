"""The model's functions for the batch integrator: one small module of C-callable functions per model.

``integrator.py`` is compiled once for every model; a model enters it as the tuple of functions this
module writes (``model_functions``), each taking raw pointers with the signatures of
``integrator.SIGNATURES``. The right-hand side, its Jacobian and the root functions are the lines
``ilsim.model.compile`` prints for the SciPy engine's kernels (``rhs_lines``, ``jacobian_lines``,
``root_lines``), here over raw pointers; the event functions and the lane-group right-hand side are printed
here from the same expression trees.

The source is written to the kernel cache folder (``ilsim.model.compile.cache_dir()``) under a name that
is the hash of its text, which names the model's kernel modules (themselves named by the hash of their
source); numba's ``cache=True`` keeps the compiled functions beside it, so a second process loads them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ilsim.engines.batch.integrator import SIGNATURES
from ilsim.model import expressions as ex
from ilsim.model.analysis import condition_scale_code, time_switches, window_watches
from ilsim.model.compile import (
    STATE,
    CompiledModel,
    _import_generated,
    jacobian_entries,
    jacobian_lines,
    kernel_names,
    rhs_lines,
    root_lines,
    unpack_lines,
)

_LOADED: dict[str, object] = {}  # generated module name -> the model's tuple (or the integrator), for this process
_ORDER = tuple(SIGNATURES)  # the tuple's order: rhs, jac, roots, initial, holds, scale, next_switch, guard, ...

_HEADER = """\
import math

import numpy as np
from numba import cfunc, types

F64P = types.CPointer(types.float64)
_SIG = {
%s
}


def _c(name):
    return cfunc(_SIG[name], cache=True, error_model="numpy", fastmath={"contract", "arcp"})
"""


def integrator_module():
    """The integrator (``integrator.py``) as run: a copy in the kernel cache folder named by the hash of its
    source, of the modules whose constants and functions numba compiles into it (``tableaux.py``, ``powers.py``:
    numba would not notice them change) and of numba's version, so that numba's on-disk cache of it (tens of
    seconds to build) survives a new clone or install of ilsim with the same engine source, and a read-only
    installation still caches."""
    import numba

    if "integrator" not in _LOADED:
        here = Path(__file__).parent
        inputs = "".join(path.read_text() for path in (here.parent / "tableaux.py", here / "powers.py"))
        digest = hashlib.sha256(inputs.encode()).hexdigest()[:24]
        source = (here / "integrator.py").read_text() + f"\n# compiled by numba {numba.__version__} with {digest}\n"
        name = f"ilsim_integrator_{hashlib.sha256(source.encode()).hexdigest()[:24]}"
        _LOADED["integrator"] = _import_generated(source, True, name)
    return _LOADED["integrator"]


def model_functions(model: CompiledModel) -> tuple:
    """The model as the integrator takes it: its compiled functions in the order of ``integrator.SIGNATURES``
    (written and compiled on first use, cached on disk), then its ``event_tables``, its ``delay_table`` and the
    number of its window watches (``analysis.window_watches``: root functions written after the conditions')."""
    kernel = model.compiled_kernels()["rhs_into"].py_func.__module__
    source = functions_source(model, kernel)
    name = f"ilsim_batch_{hashlib.sha256(source.encode()).hexdigest()[:24]}"
    if name not in _LOADED:
        module = _import_generated(source, True, name)
        _LOADED[name] = tuple(getattr(module, f) for f in _ORDER)
    return (*_LOADED[name], *event_tables(model), delay_table(model), len(window_watches(model)))


def functions_source(model: CompiledModel, kernel: str) -> str:
    """The module's source: the right-hand side, Jacobian and root functions printed by ``ilsim.model.compile``
    (the same lines as the SciPy engine's kernels, here over raw pointers), the rest printed here; ``kernel``
    is the model's kernel module, for the helpers hill() and factorial()."""
    names = kernel_names(model)
    conditions = [e.condition for e in model.events if e.condition is not None]
    npar = len(model.parameters)

    def code(tree: ex.Expr) -> str:
        return ex.to_code(tree, names, False)

    def unpack(trees: list[ex.Expr]) -> list[str]:
        """Locals for the names the trees read (raw state, as the SciPy engine evaluates events)."""
        return unpack_lines(model, trees, clip=False) if trees else []

    src = [_HEADER % _signature_lines(), f"# ---- model '{model.name}'",
           f"from {kernel} import _factorial, _hill  # noqa: E402, F401"]
    src += ["", "", "@_c('rhs')", "def rhs(t, y, p, out):", *rhs_lines(model)]
    src += ["", "", "@_c('jac')", "def jac(t, y, p, out):", *jacobian_lines(model, jacobian_entries(model), flat=True)]
    src += ["", "", "@_c('roots')", "def roots(t, y, p, out):"]
    for k, condition in enumerate(conditions):  # each root function inline, as ``root_k`` of the kernels
        body = root_lines(model, condition)
        src += [*body[:-1], f"    out[{k}] = {body[-1].removeprefix('    return ')}"]
    for k, watch in enumerate(window_watches(model), start=len(conditions)):  # then the watched comparisons
        src += [*unpack([watch]), f"    out[{k}] = {code(watch)}"]
    src += ["    return"]

    src += ["", "", "@_c('initial')", "def initial(p, out):"]
    src += [f"    k_{i} = p[{i}]" for i in range(npar)]
    src += [f"    out[{i}] = {code(tr)}" for i, tr in enumerate(model.initial_trees)] or ["    pass"]

    def by_slot(function: str, trees: list[ex.Expr], value, default: str) -> list[str]:
        """``function(slot, t, y, p)``: ``value(tree)`` of the slot-th tree, ``default`` for any other slot."""
        lines = ["", "", f"@_c('{function}')", f"def {function}(slot, t, y, p):", *unpack(trees)]
        for k, tree in enumerate(trees):
            lines += [f"    if slot == {k}:", f"        return {value(tree)}"]
        return [*lines, f"    return {default}"]

    src += by_slot("holds", conditions, lambda c: f"1 if {code(c)} else 0", "0")
    # the size of what each condition compares (|a| + |b| for 'a < b'), for its re-arm tolerance
    src += by_slot("scale", conditions, lambda c: condition_scale_code(c, code), "1.0")

    # the times where a rate or observable switches (t compared with parameters): segments end there
    switches = time_switches(model)
    src += ["", "", "@_c('next_switch')", "def next_switch(t, t_stop, p):"]
    src += [f"    k_{i} = p[{i}]" for i, n in enumerate(model.parameters)
            if any(n in tree.names() for tree in switches)]
    for tree in switches:
        src += [f"    v = {code(tree)}", "    if t < v < t_stop:", "        t_stop = v"]
    src += ["    return t_stop"]

    # guards and action values, each distinct expression once (a dosing schedule repeats a few of them over
    # hundreds of events); which event uses which is data (``event_tables``), read by the integrator
    guards, values = distinct_event_expressions(model)
    src += by_slot("guard", guards, lambda g: f"1 if {code(g)} else 0", "1")
    src += by_slot("value", values, code, "0.0")
    src += rhs_lanes_source(model) if not conditions else ["", "", "@_c('rhs_lanes')",
                                                           "def rhs_lanes(t, y, p, out):", "    pass"]
    return "\n".join(src) + "\n"


def _signature_lines() -> str:
    """``integrator.SIGNATURES`` as source for the generated module (numba prints pointers as float64*)."""
    return "\n".join(f"    {name!r}: types.{sig.return_type}({', '.join(_type_text(a) for a in sig.args)}),"
                     for name, sig in SIGNATURES.items())


def _type_text(t) -> str:
    return "F64P" if str(t) == "float64*" else f"types.{t}"


def distinct_event_expressions(model: CompiledModel) -> tuple[list[ex.Expr], list[ex.Expr]]:
    """The distinct guard trees and value trees of the model's events, in order of first use: the action values,
    then the delays (evaluated when a delayed event triggers)."""
    guards = list(dict.fromkeys(e.guard for e in model.events if e.guard is not None))
    values = list(dict.fromkeys([*(a[3] for e in model.events for a in e.actions),
                                 *(e.delay for e in model.events if e.delay is not None)]))
    return guards, values


def event_tables(model: CompiledModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The events as data for the integrator: ``guard_slot`` (per event, -1 when it has no guard),
    ``action_start`` (per event and one past the last: its actions are rows start..next start) and
    ``actions`` (per action: set 0 / add 1, state 0 / parameter 1, index, value slot)."""
    guards, values = distinct_event_expressions(model)
    guard_slot = np.array([-1 if e.guard is None else guards.index(e.guard) for e in model.events], dtype=np.int64)
    start = np.zeros(len(model.events) + 1, dtype=np.int64)
    rows = []
    for k, e in enumerate(model.events):
        rows += [(0 if mode == "set" else 1, 0 if kind == STATE else 1, i, values.index(node))
                 for mode, kind, i, node in e.actions]
        start[k + 1] = len(rows)
    return guard_slot, start, np.array(rows, dtype=np.int64).reshape(len(rows), 4)


def delay_table(model: CompiledModel) -> np.ndarray:
    """The delayed events as data for the integrator: per event (its delay's value slot, -1 without a delay;
    persistent 0/1; values taken at the trigger 0/1; its condition's slot, -1 for a timed event)."""
    _, values = distinct_event_expressions(model)
    slots = {k: s for s, k in enumerate(k for k, e in enumerate(model.events) if e.condition is not None)}
    rows = [(-1 if e.delay is None else values.index(e.delay), int(e.persistent), int(e.values_at_trigger), slots.get(k, -1))
            for k, e in enumerate(model.events)]
    return np.array(rows, dtype=np.int64).reshape(len(rows), 4)


def lane_groups(model: CompiledModel) -> bool:
    """Whether the model runs in lane groups: it has no condition events and no delayed events."""
    return all(e.condition is None and e.delay is None for e in model.events)


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
    """``rhs_lanes(t, y, p, out)``: the right-hand side of ``lanes(model)`` patients, each at its own time t[c], with
    species and parameters laid out one row per name and one column per patient (row-major pointers), so that
    the loop over patients compiles to vector instructions (as ``rhs_into``, which ``ilsim.model.compile``
    writes for one patient)."""
    names = {n: f"s_{i}" for i, n in enumerate(model.species)}
    names.update({n: f"k_{i}" for i, n in enumerate(model.parameters)})
    names.update({n: f"o_{i}" for i, n in enumerate(model.observables)})
    names[ex.TIME] = "t_c"
    width = lanes(model)

    def code(tree: ex.Expr) -> str:
        return ex.to_code(tree, names, False)

    lines = ["", "", "@_c('rhs_lanes')", "def rhs_lanes(t, y, p, out):", f"    for c in range({width}):", "        t_c = t[c]"]
    used = set().union(*(tr.names() for tr in (*model.rate_trees, *model.observable_trees)))
    lines += [f"        s_{i} = max(y[{i * width} + c], 0.0)" if model.nonnegative[i] else f"        s_{i} = y[{i * width} + c]"
              for i, n in enumerate(model.species) if n in used]
    lines += [f"        k_{i} = p[{i * width} + c]" for i, n in enumerate(model.parameters) if n in used]
    lines += [f"        o_{i} = {code(tr)}" for i, tr in enumerate(model.observable_trees)]
    lines += [f"        r_{j} = {code(r)}" for j, r in enumerate(model.rate_trees)]
    for i in range(len(model.species)):
        row = model.stoichiometry[i]
        terms = " + ".join(f"{float(row[j])!r} * r_{j}" for j in range(len(model.rate_trees)) if row[j]) or "0.0"
        if model.nonnegative[i] and terms != "0.0":  # at zero a non-negative quantity cannot decrease further
            lines += [f"        v = {terms}",
                      f"        out[{i * width} + c] = 0.0 if (y[{i * width} + c] <= 0.0 and v < 0.0) else v"]
        else:
            lines.append(f"        out[{i * width} + c] = {terms}")
    return lines
