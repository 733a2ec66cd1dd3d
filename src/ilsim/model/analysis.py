"""What every engine needs to know about a compiled model's time switches and events, computed once here.

The SciPy engine (``engines/ode.py``), the numba batch engine (``engines/batch``) and the C/CUDA printer
(``engines/csource.py``) all read these, so the rules they follow (where a segment must end, how far a
fired condition must fall before it re-arms, which conditions a jump re-tests, in what order timed events
fire) are stated once:

- ``time_switches``: the moments a rate or observable switches in time (t comparisons, floor/ceil, abs, min/max);
- ``condition_scale``: the size of what a condition compares, as an expression tree, for its re-arm band
  rtol * scale + atol;
- ``touches``: for each event and each condition event, whether the event's jumps can change that condition;
- ``timed_schedule``: the timed events in firing order (by time, then by declaration);
- ``uses_time``: whether the right-hand side reads t (a stiff method then needs df/dt);
- ``absolute_tolerances``: each species' absolute tolerance, the engine's atol capped by the species' own;
- ``window_watches``: the comparisons inside compound conditions that read the state, whose crossings bound a
  window the condition holds in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ilsim.model import expressions as ex
from ilsim.model import switches

if TYPE_CHECKING:
    from ilsim.model.compile import CompiledModel


def time_switches(model: CompiledModel) -> list[ex.Expr]:
    """The moments a rate or observable switches in time, as trees over t and the parameters: evaluated at the
    start t of a segment, each value later than t is a switch ahead (``ilsim.model.switches``). Found once per model
    (a walk of every tree: tens of microseconds, which every run of the SciPy engine would pay again)."""
    found = model.__dict__.get("_time_switches")
    if found is None:
        found = model.__dict__["_time_switches"] = tuple(switches.time_switches(model))
    return list(found)


def condition_scale(node: ex.Expr) -> ex.Expr:
    """The magnitude of the quantities a condition compares, as a tree: |a| + |b| for a comparison 'a < b',
    the largest over 'and' / 'or', that of the negated condition for 'not', 1 for a number used as a truth
    value (its root function is +-1). A fired condition re-arms once its root function is below
    -(rtol * scale + atol): a trigger that settles on its threshold fires once."""
    if isinstance(node, ex.Compare):
        return ex.BinOp("+", ex.Call("abs", (node.left,)), ex.Call("abs", (node.right,)))
    if isinstance(node, ex.Logic):
        parts = tuple(condition_scale(a) for a in node.args)
        return parts[0] if len(parts) == 1 else ex.Call("max", parts)
    if isinstance(node, ex.Not):
        return condition_scale(node.arg)
    return ex.Num(1.0)


def condition_scale_code(node: ex.Expr, code) -> str:
    """``condition_scale(node)`` printed by ``code`` (a tree printer of the caller's language)."""
    return code(condition_scale(node))


def touches(model: CompiledModel) -> np.ndarray:
    """events x condition events (bool): whether event k's jumps can change condition event c's condition
    (through observables); the condition is re-tested at once after such a jump (a cascade)."""
    cond = condition_events(model)
    out = np.zeros((len(model.events), len(cond)), dtype=np.bool_)
    for k, ev in enumerate(model.events):
        jumped = {(kind, i) for _, kind, i, _ in ev.actions}
        for c, kc in enumerate(cond):
            out[k, c] = bool(jumped & model.events[kc].depends)
    return out


def condition_events(model: CompiledModel) -> list[int]:
    """The indices of the events triggered by a condition, in model order."""
    return [k for k, e in enumerate(model.events) if e.condition is not None]


def timed_schedule(model: CompiledModel, t0: float = -np.inf, t_end: float = np.inf) -> list[tuple[float, int]]:
    """(time, event) of every timed event in [t0, t_end], in firing order: by time, then by declaration."""
    return sorted((time, k) for k, e in enumerate(model.events) for time in e.times if t0 <= time <= t_end)


def uses_time(model: CompiledModel) -> bool:
    """Whether the right-hand side reads t (the stiff methods then need df/dt)."""
    trees = [*model.rate_trees, *model.observable_trees]
    return any(ex.TIME in tree.names() for tree in trees if tree is not None)


def absolute_tolerances(model: CompiledModel, atol: float) -> np.ndarray:
    """Each species' absolute tolerance: the engine's ``atol``, capped by the species' own ``atol`` where the model
    gives one (a species whose size is far below atol, which one atol for all would leave uncontrolled)."""
    caps = np.array([np.inf if s.atol is None else float(s.atol) for s in model.spec.species], dtype=np.float64)
    return np.minimum(float(atol), caps)


def window_watches(model: CompiledModel) -> list[ex.Expr]:
    """The root functions of the comparisons that read the state (species, observables) inside a condition that
    combines two or more of them ('S <= 4.3 and S >= 3'). Such a condition can hold only inside a window narrower
    than an integrator step, whose two ends lie inside one step where its root function is negative: no sign
    change, stepped over (SBML Test Suite 01703, 01710). Each comparison alone changes sign where it crosses, as
    CVODE's one root function per comparison does, so an engine that stops there and tests the condition sees
    the window. Comparisons of time with parameters are time switches already (``time_switches``)."""
    state = set(model.species) | set(model.observables)
    watches: list[ex.Expr] = []
    for ev in model.events:
        if ev.condition is None:
            continue
        atoms = [a for a in _comparisons(ev.condition) if a.names() & state]
        if len(atoms) >= 2:
            watches += [ex.root_function(a) for a in atoms if ex.root_function(a) not in watches]
    return watches


def _comparisons(node: ex.Expr) -> list[ex.Compare]:
    if isinstance(node, ex.Compare):
        return [node]
    if isinstance(node, ex.Logic):
        return [c for a in node.args for c in _comparisons(a)]
    if isinstance(node, ex.Not):
        return _comparisons(node.arg)
    return []
