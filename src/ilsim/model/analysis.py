"""What every engine needs to know about a compiled model's time switches and events, computed once here.

The SciPy engine (``engines/ode.py``), the numba batch engine (``engines/batch``) and the C/CUDA printer
(``engines/csource.py``) all read these, so the rules they follow (where a segment must end, how far a
fired condition must fall before it re-arms, which conditions a jump re-tests, in what order timed events
fire) are stated once:

- ``time_switches``: the times at which a rate or observable switches (t compared with parameters);
- ``condition_scale``: the size of what a condition compares, as an expression tree, for its re-arm band
  rtol * scale + atol;
- ``touches``: for each event and each condition event, whether the event's jumps can change that condition;
- ``timed_schedule``: the timed events in firing order (by time, then by declaration);
- ``uses_time``: whether the right-hand side reads t (a stiff method then needs df/dt).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ilsim.model import expressions as ex

if TYPE_CHECKING:
    from ilsim.model.compile import CompiledModel


def time_switches(model: CompiledModel) -> list[ex.Expr]:
    """The times at which a rate or observable switches, as trees over parameters: the other side of each
    comparison of t with an expression of parameters ('t >= t_dose + duration' in a piecewise infusion).
    An integrator with long steps could step over such a switch; every engine stops there instead."""
    fixed = {*model.parameters, *(name for name, _ in model.derived)}
    out: list[ex.Expr] = []

    def walk(node: ex.Expr) -> None:
        if isinstance(node, ex.Compare):
            for this, other in ((node.left, node.right), (node.right, node.left)):
                if this == ex.Name(ex.TIME) and other.names() <= fixed and other not in out:
                    out.append(other)
        for child in ex.children(node):
            walk(child)

    for tree in (*model.rate_trees, *model.observable_trees):
        if tree is not None:
            walk(tree)
    return out


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
