"""Units for the literal numbers of exported SBML math, so that libsbml's unit check can balance every expression.

SBML Level 3 lets a literal carry units (``<cn sbml:units="...">``); without them libsbml cannot check an
expression that holds a number (warning 99505). The units a literal needs follow from its context, which this
module reads from the units of the model's names (their labels, in SBML base units: io/sbml_units.py) and from
what the whole expression must be (a kinetic law: its species' units per time; a rule: its variable's units):

- in a sum, a difference, a comparison, min/max or the branches of a piecewise: the units of the other operands;
- as a factor or divisor: what balances the product against what it must be (``0.2*Y`` in a rate of Y per day
  gives 0.2 the units 1/day; ``platelets/(24*lifespan)`` with the lifespan in days and the model in hours gives
  24 the units hour/day, a dimensionless scale of 1/24), else dimensionless;
- an exponent, a Hill coefficient, the argument of exp/log/sin/...: dimensionless.

Scales count: libsbml compares multipliers, so a literal's units carry the scale its context needs. A literal
never changes its number. Where the model's own names do not balance (a scenario mixing units), the literal
cannot repair it and libsbml reports it, as ilsim's own unit check does (model/units.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ilsim.model import expressions as ex

_BOOLEAN = (ex.Compare, ex.Logic, ex.Not)
_DIMENSIONLESS_ARGS = {"exp", "log", "log10", "sin", "cos", "tan", "tanh", "sinh", "cosh", "asin", "acos", "atan",
                       "factorial"}


@dataclass(frozen=True)
class Unit:
    """A unit in SBML base units: scale x the product of kind^power."""

    scale: float
    terms: tuple[tuple[str, float], ...]  # sorted by kind, no zero powers

    @classmethod
    def make(cls, scale: float, terms) -> Unit:
        merged: dict[str, float] = {}
        for kind, power in terms:
            merged[kind] = merged.get(kind, 0.0) + power
        # powers rounded: (x^(1/3))^3 is x^1, not x^0.9999999999999999
        return cls(float(scale), tuple(sorted((k, round(p, 12)) for k, p in merged.items() if abs(p) > 1e-12)))

    def __mul__(self, other: Unit) -> Unit:
        return Unit.make(self.scale * other.scale, [*self.terms, *other.terms])

    def __truediv__(self, other: Unit) -> Unit:
        return self * other ** -1.0

    def __pow__(self, power: float) -> Unit:
        return Unit.make(self.scale ** power, [(k, p * power) for k, p in self.terms])

    def same(self, other: Unit) -> bool:
        return self.terms == other.terms and math.isclose(self.scale, other.scale, rel_tol=1e-9)

    def finite(self) -> bool:
        """Whether SBML can write it (not a scale or power beyond floating point, from x**1000 or x**inf)."""
        return 0 < self.scale < math.inf and all(math.isfinite(p) for _, p in self.terms)

    def key(self) -> tuple:
        """A hashable key: units that are the same have the same key."""
        return round(math.log10(self.scale), 9) if self.scale > 0 else self.scale, self.terms


ONE = Unit(1.0, ())


@dataclass(frozen=True)
class Literal(ex.Num):
    """A number with the units its context gives it (only in trees built for export)."""

    unit: Unit = ONE


def with_units(tree: ex.Expr, names: dict[str, Unit], want: Unit | None) -> ex.Expr:
    """``tree`` with every number a Literal carrying the units its context needs; ``names`` are the units of the
    names it reads (a name not there is unknown), ``want`` those the whole expression must have (None: unknown)."""
    try:
        return _Solver(names).down(tree, want)[0]
    except RecursionError:  # bounded by the parser's depth limit; never fail an export over units
        return tree


class _Solver:
    def __init__(self, names: dict[str, Unit]):
        self.names = names

    def up(self, node: ex.Expr) -> Unit | None:
        """The units of a subtree as its names give them; None where a number without units leaves them open."""
        if isinstance(node, Literal):
            return node.unit
        if isinstance(node, ex.Num):
            return None
        if isinstance(node, ex.Name):
            return self.names.get(node.id)
        if isinstance(node, ex.Neg):
            return self.up(node.arg)
        if isinstance(node, _BOOLEAN):
            return ONE
        if isinstance(node, ex.BinOp):
            a, b = self.up(node.left), self.up(node.right)
            if node.op in "+-":
                return a or b
            if node.op == "**":
                if isinstance(node.right, ex.Num):
                    try:
                        return None if a is None else a ** node.right.value
                    except OverflowError:
                        return None
                return ONE if a is not None and not a.terms and a.scale == 1.0 else None
            if a is None or b is None:
                return None
            return a * b if node.op == "*" else a / b
        if isinstance(node, ex.Call):
            f, args = node.func, node.args
            if f == "hill" or f in _DIMENSIONLESS_ARGS:
                return ONE
            if f == "piecewise":
                return next((u for u in map(self.up, args[0::2]) if u is not None), None)
            if f in ("min", "max"):
                return next((u for u in map(self.up, args) if u is not None), None)
            if f == "sqrt":
                a = self.up(args[0])
                return None if a is None else a ** 0.5
            return self.up(args[0])  # abs, floor, ceil
        return None

    def down(self, node: ex.Expr, want: Unit | None) -> tuple[ex.Expr, Unit | None]:
        """``node`` with its numbers given units, wanting ``want`` for the whole; and the units it then has."""
        new = self._down(node, want)
        return new, self.up(new)

    def _down(self, node: ex.Expr, want: Unit | None) -> ex.Expr:
        if isinstance(node, Literal) or isinstance(node, ex.Name):
            return node
        if isinstance(node, ex.Num):
            return Literal(node.value, want if want is not None and want.finite() else ONE)
        if isinstance(node, ex.Neg):
            return ex.Neg(self._down(node.arg, want))
        if isinstance(node, ex.BinOp):
            return self._binop(node, want)
        if isinstance(node, ex.Compare):
            left, right = self._same([node.left, node.right], None)
            return ex.Compare(node.op, left, right)
        if isinstance(node, (ex.Logic, ex.Not)):
            return ex.with_children(node, [self._down(child, None) for child in ex.children(node)])
        if isinstance(node, ex.Call):
            return self._call(node, want)
        return node

    def _same(self, nodes: list[ex.Expr], want: Unit | None) -> list[ex.Expr]:
        """Operands that must share units (a sum, a comparison, min/max): those of the first that has them."""
        known = next((u for u in map(self.up, nodes) if u is not None), want)
        return [self._down(n, self.up(n) or known) for n in nodes]

    def _binop(self, node: ex.BinOp, want: Unit | None) -> ex.Expr:
        left, right, op = node.left, node.right, node.op
        if op in "+-":
            return ex.BinOp(op, *self._same([left, right], want))
        if op == "**":
            exponent = self._down(right, ONE)
            base_want = None
            if isinstance(right, ex.Num) and want is not None and right.value != 0 and math.isfinite(right.value):
                try:
                    base_want = want ** (1.0 / right.value)
                except OverflowError:  # a scale beyond floating point (x**0.001): no units to give
                    base_want = None
            elif not isinstance(right, ex.Num):
                base_want = ONE  # a variable exponent: only a dimensionless base has units libsbml can state
            return ex.BinOp(op, self._down(left, self.up(left) or base_want), exponent)
        a, b = self.up(left), self.up(right)
        if a is not None or b is None:  # the left is known, or neither is: settle the left first
            new_left, a = self.down(left, a)
            other = None if want is None or a is None else (want / a if op == "*" else a / want)
            return ex.BinOp(op, new_left, self._down(right, b or other))
        other = None if want is None else (want / b if op == "*" else want * b)
        return ex.BinOp(op, self._down(left, other), self._down(right, b))

    def _call(self, node: ex.Call, want: Unit | None) -> ex.Expr:
        f, args = node.func, list(node.args)
        if f == "hill":
            x, k = self._same(args[:2], None)
            return ex.Call(f, (x, k, self._down(args[2], ONE)))
        if f in _DIMENSIONLESS_ARGS:
            return ex.Call(f, tuple(self._down(a, ONE) for a in args))
        if f == "piecewise":
            values = self._same(args[0::2], want)
            out = list(args)
            out[0::2] = values
            out[1::2] = [self._down(c, None) for c in args[1::2]]
            return ex.Call(f, tuple(out))
        if f in ("min", "max"):
            return ex.Call(f, tuple(self._same(args, want)))
        if f == "sqrt":
            return ex.Call(f, (self._down(args[0], None if want is None else want ** 2),))
        return ex.Call(f, tuple(self._down(a, want) for a in args))  # abs, floor, ceil
