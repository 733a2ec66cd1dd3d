"""Where a right-hand side switches in time: the moments every engine must stop at.

An adaptive integrator assumes a smooth right-hand side; a step that straddles a jump (``floor(t)``, a
``piecewise`` on ``t``) or a kink (``abs(t - t0)``) is accepted with an error the error estimate never saw:
a square wave written with ``floor`` came out 8% off with BDF at any tolerance, and every method
disagreed. The engines therefore end a segment at each such moment, as at a timed event.

``time_switches(model)`` returns trees over ``t`` and the parameters; evaluated at the start ``t`` of a
segment, each gives a candidate moment of the next switch, and a value that is not later than ``t`` means
"none ahead". The SciPy engine evaluates them, the batch engine and the C/CUDA kernel print them as code, so
the three stop at the same times. Event conditions count too: a condition on time (``t == 3``,
``floor(t/5) == 2``) is tested where it switches, at a segment's end. Recognised: comparisons (in
``piecewise``, ``a if c else b``), ``floor``/``ceil`` (a switch at every integer value of the argument: the
next one is computed from the current time, so a periodic drive costs one tree, not a list of times), ``abs``
(a kink at zero) and ``min``/``max`` (kinks where two arguments meet), whenever the quantity involved is
affine in ``t`` (``a*t + b``) with ``a`` and ``b`` made of parameters, numbers, observables of those, and
``floor``/``ceil`` of such terms (constant between their own switches), or ``piecewise`` of such terms whose
conditions compare such terms (SBML's ``time % 28``; the branch in force at a segment's start). A switch that depends on the state
(``x < 1``) or on ``t`` in a non-affine way (``sin(t) > 0``) is not found here: the first needs a condition
event, the second
is listed in docs/limits.md.
"""

from __future__ import annotations

from ilsim.model import expressions as ex

_ZERO, _ONE, _T = ex.Num(0.0), ex.Num(1.0), ex.Name(ex.TIME)
_NONE_AHEAD = ex.BinOp("-", _T, _ONE)  # a 'next switch' earlier than t: none


def time_switches(model) -> list[ex.Expr]:
    """Trees over t and the parameters: at the start t of a segment, each value later than t is a moment
    where a rate or observable jumps or has a kink (see the module's documentation)."""
    affine = _affine_in(model)
    out: list[ex.Expr] = []
    for node in _nodes(model, conditions=True):
        found: list[ex.Expr | None] = []
        if isinstance(node, ex.Compare):
            found.append(_crossing(affine(ex.BinOp("-", node.left, node.right))))
        elif isinstance(node, ex.Call) and node.func in ("floor", "ceil"):
            found.append(_lattice(affine(node.args[0])))
        elif isinstance(node, ex.Call) and node.func == "abs":
            found.append(_crossing(affine(node.args[0])))
        elif isinstance(node, ex.Call) and node.func in ("min", "max"):
            found += [_crossing(affine(ex.BinOp("-", first, second)))
                      for i, first in enumerate(node.args) for second in node.args[i + 1:]]
        out += [tree for tree in found if tree is not None and tree not in out]
    return out


def state_switches(model) -> list[str]:
    """Comparisons in rates and observables that read the state ('x < 1'), as text: where such a switch
    drives the state back across its own threshold, a solver chatters (named when a run's budget runs out)."""
    affine = _affine_in(model)
    texts = [ex.to_text(node) for node in _nodes(model)
             if isinstance(node, ex.Compare) and affine(ex.BinOp("-", node.left, node.right)) is None]
    return list(dict.fromkeys(texts))


def _nodes(model, conditions: bool = False):
    """Every node of the model's rates and observables (and with ``conditions``, of its events' conditions),
    depth first."""
    trees = [*model.rate_trees, *model.observable_trees]
    if conditions:  # a condition on time ('time == 3', 'time % 12 == 0') is tested exactly where it switches
        trees += [e.condition for e in model.events if e.condition is not None]
    stack = [tree for tree in trees if tree is not None]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(ex.children(node))


def _affine_in(model):
    """``_affine`` with the model's parameters fixed and its observables read through their trees."""
    fixed = frozenset(model.parameters)
    observables = dict(zip(model.observables, model.observable_trees))
    memo: dict = {}  # observables read by many others are analysed once
    return lambda node: _affine(node, fixed, observables, memo)


def _affine(node: ex.Expr, fixed: frozenset, observables: dict, memo: dict) -> tuple[ex.Expr, ex.Expr] | None:
    """(a, b) with node = a*t + b between switches, a and b free of t except inside floor/ceil of affine
    terms (constant until their own switch); observables read through their trees. None if not affine."""
    if node not in memo:
        memo[node] = _affine_node(node, fixed, observables, memo)
    return memo[node]


def _affine_node(node: ex.Expr, fixed: frozenset, observables: dict, memo: dict) -> tuple[ex.Expr, ex.Expr] | None:
    if isinstance(node, ex.Num):
        return _ZERO, node
    if isinstance(node, ex.Name):
        if node.id == ex.TIME:
            return _ONE, _ZERO
        if node.id in fixed:
            return _ZERO, node
        if node.id in observables:
            return _affine(observables[node.id], fixed, observables, memo)
        return None  # a species: the switch depends on the state
    if isinstance(node, ex.Neg):
        inner = _affine(node.arg, fixed, observables, memo)
        return None if inner is None else (_neg(inner[0]), _neg(inner[1]))
    if isinstance(node, ex.BinOp):
        left, right = _affine(node.left, fixed, observables, memo), _affine(node.right, fixed, observables, memo)
        if left is None or right is None:
            return None
        (la, lb), (ra, rb) = left, right
        if node.op in "+-":
            return _add(la, ra, node.op), _add(lb, rb, node.op)
        if node.op == "*" and _is_zero(la):
            return _mul(lb, ra), _mul(lb, rb)
        if node.op == "*" and _is_zero(ra):
            return _mul(la, rb), _mul(lb, rb)
        if node.op == "/" and _is_zero(ra):
            return _div(la, rb), _div(lb, rb)
        if node.op == "**" and _is_zero(la) and _is_zero(ra):
            return _ZERO, ex.BinOp("**", lb, rb)
        return None
    if isinstance(node, ex.Call) and node.func in ("floor", "ceil"):
        inner = _affine(node.args[0], fixed, observables, memo)  # its own switches are listed separately
        return None if inner is None else (_ZERO, ex.Call(node.func, (_rebuild(*inner),)))
    if isinstance(node, ex.Call) and node.func == "piecewise" and not node.names() <= fixed:
        return _affine_piecewise(node, fixed, observables, memo)
    if isinstance(node, ex.Call) and node.func != "piecewise":
        args = [_affine(a, fixed, observables, memo) for a in node.args]
        if any(a is None or not _is_zero(a[0]) for a in args):
            return None
        return _ZERO, ex.Call(node.func, tuple(b for _, b in args))
    if node.names() <= fixed:  # a piecewise or condition of parameters only
        return _ZERO, node
    return None


def _affine_piecewise(node: ex.Call, fixed: frozenset, observables: dict, memo: dict) -> tuple[ex.Expr, ex.Expr] | None:
    """A piecewise whose conditions compare affine terms of t (SBML's 'time % 28', imported as
    piecewise(t - 28*ceil(t/28), t < 0, t - 28*floor(t/28))) keeps one branch between the switches of those
    conditions, which are listed on their own: (piecewise of the branches' a, piecewise of their b), each
    evaluated at a segment's start. Without it, 'time % 28 == 27' crossing 27 at t = 55 was never stopped at,
    and an equality holds only where an engine stops."""
    values = node.args[0::2]
    conditions = [_time_condition(c, fixed, observables, memo) for c in node.args[1::2]]
    if any(c is None for c in conditions):
        return None
    forms = [_affine(v, fixed, observables, memo) for v in values]
    if any(f is None for f in forms):
        return None

    def pick(part: int) -> ex.Expr:
        branches = [f[part] for f in forms]
        if all(b == branches[0] for b in branches):
            return branches[0]
        args: list[ex.Expr] = []
        for k, condition in enumerate(conditions):
            args += [branches[k], condition]
        return ex.Call("piecewise", (*args, *branches[len(conditions):]))

    return pick(0), pick(1)


def _time_condition(node: ex.Expr, fixed: frozenset, observables: dict, memo: dict) -> ex.Expr | None:
    """A condition made of comparisons of affine terms of t and of parameters, rewritten over t and the
    parameters only (each comparison as 'a*t + b op 0', observables read through their trees, as the switch
    trees are evaluated without them); None if it reads the state."""
    if isinstance(node, ex.Compare):
        form = _affine(ex.BinOp("-", node.left, node.right), fixed, observables, memo)
        return None if form is None else ex.Compare(node.op, _rebuild(*form), _ZERO)
    if isinstance(node, (ex.Logic, ex.Not)):
        parts = [_time_condition(a, fixed, observables, memo) for a in ex.children(node)]
        return None if any(p is None for p in parts) else ex.with_children(node, parts)
    return node if node.names() <= fixed else None


def _crossing(form: tuple[ex.Expr, ex.Expr] | None) -> ex.Expr | None:
    """The moment a*t + b crosses zero (a switch of a comparison, a kink of abs, min or max)."""
    if form is None or _is_zero(form[0]):
        return None
    a, b = form
    moment = _div(_neg(b), a)
    return moment if isinstance(a, ex.Num) else ex.Call("piecewise", (moment, ex.Compare("!=", a, _ZERO), _NONE_AHEAD))


def _lattice(form: tuple[ex.Expr, ex.Expr] | None) -> ex.Expr | None:
    """The next moment after t at which a*t + b reaches an integer (floor and ceil jump there).

    The integer beyond the current value is floor(a*t + b) + 1 (rising) or ceil(a*t + b) - 1 (falling). At a
    switch just reached, rounding can leave a*t + b a hair short of the integer, so the formula gives t
    itself back: the switch after it, one period 1/|a| later, is taken instead.
    """
    if form is None or _is_zero(form[0]):
        return None
    a, b = form
    g = _rebuild(a, b)

    def next_one(rising: bool) -> ex.Expr:
        integer = _add(ex.Call("floor" if rising else "ceil", (g,)), _ONE, "+" if rising else "-")
        moment = _div(_add(integer, b, "-"), a)
        period = _div(_ONE, a) if rising else _neg(_div(_ONE, a))
        return ex.Call("piecewise", (moment, ex.Compare(">", moment, _T), _add(moment, period, "+")))

    if isinstance(a, ex.Num):
        return next_one(a.value > 0)
    return ex.Call("piecewise", (next_one(True), ex.Compare(">", a, _ZERO), next_one(False),
                                 ex.Compare("<", a, _ZERO), _NONE_AHEAD))


# small constant-folding constructors: the trees stay as short as the ones a user would write

def _is_zero(node: ex.Expr) -> bool:
    return isinstance(node, ex.Num) and node.value == 0.0


def _neg(node: ex.Expr) -> ex.Expr:
    if isinstance(node, ex.Num):
        return ex.Num(-node.value)
    return node.arg if isinstance(node, ex.Neg) else ex.Neg(node)


def _add(left: ex.Expr, right: ex.Expr, op: str) -> ex.Expr:
    if _is_zero(right):
        return left
    if _is_zero(left):
        return right if op == "+" else _neg(right)
    return ex.BinOp(op, left, right)


def _mul(left: ex.Expr, right: ex.Expr) -> ex.Expr:
    if _is_zero(left) or _is_zero(right):
        return _ZERO
    if left == _ONE:
        return right
    return left if right == _ONE else ex.BinOp("*", left, right)


def _div(left: ex.Expr, right: ex.Expr) -> ex.Expr:
    if _is_zero(left):
        return _ZERO
    return left if right == _ONE else ex.BinOp("/", left, right)


def _rebuild(a: ex.Expr, b: ex.Expr) -> ex.Expr:
    return _add(_mul(a, _T), b, "+")
