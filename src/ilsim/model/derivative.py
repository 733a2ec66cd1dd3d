"""Symbolic derivatives of expression trees, for the analytic Jacobian.

Differentiating the tree directly, rule by rule, costs a few microseconds a node; SymPy took most of a new
model's first run (half a second for 34 species, seconds for larger ones: every expression is rebuilt as SymPy
objects, canonicalised and converted back). The result is not simplified beyond dropping zeros and ones;
repeated pieces are computed once by the kernel (``expressions.common_subexpressions``).

Conventions, as SymPy had them: a ``piecewise`` is differentiated branch by branch (its conditions switch, their
derivative is zero almost everywhere), as are ``floor``, ``ceil`` and comparisons; ``abs`` has derivative
sign(x); ``min``/``max`` take the derivative of the argument that is chosen; ``factorial`` (gamma(x + 1)) has a
central difference, since its derivative has no form in the expression language and a Jacobian only steers
the solver's Newton iterations.
"""

from __future__ import annotations

import math

from ilsim.model.expressions import BinOp, Call, Compare, Expr, Logic, Name, Neg, Not, Num

ZERO, ONE, TWO = Num(0.0), Num(1.0), Num(2.0)


def _is(node: Expr, value: float) -> bool:
    return isinstance(node, Num) and node.value == value


def add(a: Expr, b: Expr) -> Expr:
    if _is(a, 0.0):
        return b
    if _is(b, 0.0):
        return a
    if isinstance(a, Num) and isinstance(b, Num):
        return Num(a.value + b.value)
    return BinOp("+", a, b)


def sub(a: Expr, b: Expr) -> Expr:
    if _is(b, 0.0):
        return a
    if _is(a, 0.0):
        return neg(b)
    if isinstance(a, Num) and isinstance(b, Num):
        return Num(a.value - b.value)
    return BinOp("-", a, b)


def mul(a: Expr, b: Expr) -> Expr:
    if _is(a, 0.0) or _is(b, 0.0):
        return ZERO  # as SymPy: 0 * x is 0 (a Jacobian entry is not where inf * 0 should surface)
    if _is(a, 1.0):
        return b
    if _is(b, 1.0):
        return a
    if isinstance(a, Num) and isinstance(b, Num):
        return Num(a.value * b.value)
    return BinOp("*", a, b)


def div(a: Expr, b: Expr) -> Expr:
    if _is(a, 0.0):
        return ZERO
    if _is(b, 1.0):
        return a
    return BinOp("/", a, b)


def neg(a: Expr) -> Expr:
    if isinstance(a, Num):
        return Num(-a.value)
    if isinstance(a, Neg):
        return a.arg
    return Neg(a)


def _call(name: str, *args: Expr) -> Expr:
    return Call(name, args)


def _sign(x: Expr) -> Expr:
    return _call("piecewise", ONE, Compare(">", x, ZERO), Num(-1.0), Compare("<", x, ZERO), ZERO)


class Differentiator:
    """d(tree)/d(name) for trees over species, parameters, t and observables; observables are followed through
    their own trees (given), and every result is a tree over the names that are not observables."""

    def __init__(self, observables: dict[str, Expr]):
        self._observables = observables
        self._inlined: dict[str, Expr] = {}
        self._derivatives: dict[tuple[str, str], Expr] = {}
        self._depends: dict[str, frozenset[str]] = {}
        self._inline_memo: dict[int, tuple[Expr, Expr]] = {}  # id(node) -> (node, inlined): nodes are shared

    def inline(self, tree: Expr) -> Expr:
        """The tree with every observable replaced by its (inlined) tree."""
        if isinstance(tree, Num) or (isinstance(tree, Name) and tree.id not in self._observables):
            return tree
        hit = self._inline_memo.get(id(tree))
        if hit is not None and hit[0] is tree:
            return hit[1]
        out = self._inline(tree)
        self._inline_memo[id(tree)] = (tree, out)
        return out

    def _inline(self, tree: Expr) -> Expr:
        if isinstance(tree, Name):
            if tree.id not in self._observables:
                return tree
            if tree.id not in self._inlined:
                self._inlined[tree.id] = self.inline(self._observables[tree.id])
            return self._inlined[tree.id]
        if isinstance(tree, (Neg, Not)):
            return type(tree)(self.inline(tree.arg))
        if isinstance(tree, (BinOp, Compare)):
            return type(tree)(tree.op, self.inline(tree.left), self.inline(tree.right))
        if isinstance(tree, Logic):
            return Logic(tree.op, tuple(self.inline(a) for a in tree.args))
        if isinstance(tree, Call):
            return Call(tree.func, tuple(self.inline(a) for a in tree.args))
        raise TypeError(tree)

    def depends_on(self, tree: Expr) -> frozenset[str]:
        """The names a tree depends on, through observables (not the observables themselves)."""
        out: set[str] = set()
        for name in tree.names():
            if name in self._observables:
                if name not in self._depends:
                    self._depends[name] = frozenset()  # a cycle cannot reach here (compile refuses them)
                    self._depends[name] = self.depends_on(self._observables[name])
                out |= self._depends[name]
            else:
                out.add(name)
        return frozenset(out)

    def derivative(self, tree: Expr, x: str) -> Expr:
        d = self._d
        if isinstance(tree, Num):
            return ZERO
        if isinstance(tree, Name):
            if tree.id == x:
                return ONE
            if tree.id not in self._observables:
                return ZERO
            key = (tree.id, x)
            if key not in self._derivatives:
                self._derivatives[key] = d(self._observables[tree.id], x)
            return self._derivatives[key]
        if isinstance(tree, Neg):
            return neg(d(tree.arg, x))
        if isinstance(tree, BinOp):
            return self._binop(tree, x)
        if isinstance(tree, (Compare, Logic, Not)):
            return ZERO  # a truth value changes by jumps
        if isinstance(tree, Call):
            return self._call(tree, x)
        raise TypeError(tree)

    _d = derivative

    def _binop(self, tree: BinOp, x: str) -> Expr:
        a, b = tree.left, tree.right
        da, db = self._d(a, x), self._d(b, x)
        op = tree.op
        if op == "+":
            return add(da, db)
        if op == "-":
            return sub(da, db)
        if op == "*":
            return add(mul(da, self.inline(b)), mul(self.inline(a), db))
        a, b = self.inline(a), self.inline(b)
        if op == "/":
            if _is(db, 0.0):
                return div(da, b)
            return sub(div(da, b), div(mul(a, db), BinOp("**", b, TWO)))
        # a ** b
        if _is(db, 0.0):
            if _is(da, 0.0):
                return ZERO
            lower = Num(b.value - 1.0) if isinstance(b, Num) else sub(b, ONE)
            power = ONE if _is(lower, 0.0) else (a if _is(lower, 1.0) else BinOp("**", a, lower))
            return mul(mul(b, power), da)
        return mul(BinOp("**", a, b), add(mul(db, _call("log", a)), div(mul(b, da), a)))

    def _call(self, tree: Call, x: str) -> Expr:
        f = tree.func
        if f == "piecewise":
            args = list(tree.args)
            out = [self._d(v, x) if i % 2 == 0 else self.inline(v) for i, v in enumerate(args)]  # value, condition, ...
            if all(_is(v, 0.0) for v in out[0::2]):
                return ZERO
            return Call("piecewise", tuple(out))
        if f in ("floor", "ceil"):
            return ZERO
        if f in ("min", "max"):
            first, rest = tree.args[0], tree.args[1:]
            other = rest[0] if len(rest) == 1 else Call(f, rest)
            d_first, d_other = self._d(first, x), self._d(other, x)
            if _is(d_first, 0.0) and _is(d_other, 0.0):
                return ZERO
            chosen = Compare("<=" if f == "min" else ">=", self.inline(first), self.inline(other))
            return _call("piecewise", d_first, chosen, d_other)
        if f == "hill":
            xx, k, n = tree.args
            return self._d(BinOp("/", BinOp("**", xx, n), BinOp("+", BinOp("**", k, n), BinOp("**", xx, n))), x)
        if f == "log" and len(tree.args) == 2:
            value, base = tree.args
            return self._d(BinOp("/", _call("log", value), _call("log", base)), x)
        (arg,) = tree.args
        da = self._d(arg, x)
        if _is(da, 0.0):
            return ZERO
        u = self.inline(arg)
        if f == "factorial":
            h = mul(Num(1e-6), _call("max", ONE, _call("abs", u)))
            return mul(div(sub(_call("factorial", add(u, h)), _call("factorial", sub(u, h))), mul(TWO, h)), da)
        return mul(_outer(f, u), da)


def _outer(f: str, u: Expr) -> Expr:
    """d f(u) / du for the functions of one argument."""
    if f == "exp":
        return _call("exp", u)
    if f == "log":
        return div(ONE, u)
    if f == "log10":
        return div(ONE, mul(u, Num(math.log(10.0))))
    if f == "sqrt":
        return div(ONE, mul(TWO, _call("sqrt", u)))
    if f == "abs":
        return _sign(u)
    if f == "sin":
        return _call("cos", u)
    if f == "cos":
        return neg(_call("sin", u))
    if f == "tan":
        return add(BinOp("**", _call("tan", u), TWO), ONE)
    if f == "sinh":
        return _call("cosh", u)
    if f == "cosh":
        return _call("sinh", u)
    if f == "tanh":
        return sub(ONE, BinOp("**", _call("tanh", u), TWO))
    if f == "asin":
        return div(ONE, _call("sqrt", sub(ONE, BinOp("**", u, TWO))))
    if f == "acos":
        return neg(div(ONE, _call("sqrt", sub(ONE, BinOp("**", u, TWO)))))
    if f == "atan":
        return div(ONE, add(ONE, BinOp("**", u, TWO)))
    raise TypeError(f"no derivative for the function '{f}'")
