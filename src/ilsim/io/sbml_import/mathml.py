"""libsbml MathML ASTs -> ilsim expression trees, built node by node (no text from the file is evaluated).

Function definitions are inlined (their arguments substituted), up to MAX_EXPANDED_NODES nodes and
MAX_EXPANDED_DEPTH levels per formula: a definition calling the previous one twice doubles the size at each
level, so 29 such definitions in a 10 KB file would expand to a billion nodes. Functions ilsim lacks are written
through ones it has (sec = 1/cos, arcsinh(x) = ln(x + sqrt(x^2 + 1)), ...). A csymbol delay of an
expression of time and constants is that expression at max(time - delay, 0) (its history before the start is
its value at the start); a delay of anything that changes otherwise needs a delay-differential solver and is
refused. Anything else without a meaning in a deterministic simulation (rateOf, the distributions) is refused
with an UnsupportedSbml naming the element.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import libsbml as sb

from ilsim.limits import MAX_EXPANDED_DEPTH, MAX_EXPANDED_NODES
from ilsim.model import expressions as ex

AVOGADRO = 6.02214179e23  # mol^-1, the value SBML Level 3 Version 1 fixes for its csymbol avogadro
TRUE = ex.Compare("==", ex.Num(1.0), ex.Num(1.0))
FALSE = ex.Compare("!=", ex.Num(1.0), ex.Num(1.0))


class UnsupportedSbml(Exception):
    """An SBML construct ilsim cannot represent; the message names it (the importer adds the element)."""


def _n(v: float) -> ex.Num:
    return ex.Num(float(v))


def _bin(op: str, a: ex.Expr, b: ex.Expr) -> ex.Expr:
    return ex.BinOp(op, a, b)


def _call(name: str, *args: ex.Expr) -> ex.Expr:
    return ex.Call(name, tuple(args))


def _inv(x: ex.Expr) -> ex.Expr:
    return _bin("/", _n(1), x)


def _ln_of(x: ex.Expr) -> ex.Expr:
    return _call("log", x)


def _sq(x: ex.Expr) -> ex.Expr:
    return _bin("**", x, _n(2))


def _asinh(x):
    return _ln_of(_bin("+", x, _call("sqrt", _bin("+", _sq(x), _n(1)))))


def _acosh(x):
    return _ln_of(_bin("+", x, _call("sqrt", _bin("-", _sq(x), _n(1)))))


def _atanh(x):
    return _bin("*", _n(0.5), _ln_of(_bin("/", _bin("+", _n(1), x), _bin("-", _n(1), x))))


# MathML functions of one argument, written with ilsim's functions.
_UNARY: dict[int, Callable[[ex.Expr], ex.Expr]] = {
    sb.AST_FUNCTION_ABS: lambda x: _call("abs", x),
    sb.AST_FUNCTION_EXP: lambda x: _call("exp", x),
    sb.AST_FUNCTION_LN: _ln_of,
    sb.AST_FUNCTION_FLOOR: lambda x: _call("floor", x),
    sb.AST_FUNCTION_CEILING: lambda x: _call("ceil", x),
    sb.AST_FUNCTION_SIN: lambda x: _call("sin", x),
    sb.AST_FUNCTION_COS: lambda x: _call("cos", x),
    sb.AST_FUNCTION_TAN: lambda x: _call("tan", x),
    sb.AST_FUNCTION_SEC: lambda x: _inv(_call("cos", x)),
    sb.AST_FUNCTION_CSC: lambda x: _inv(_call("sin", x)),
    sb.AST_FUNCTION_COT: lambda x: _bin("/", _call("cos", x), _call("sin", x)),
    sb.AST_FUNCTION_SINH: lambda x: _call("sinh", x),
    sb.AST_FUNCTION_COSH: lambda x: _call("cosh", x),
    sb.AST_FUNCTION_TANH: lambda x: _call("tanh", x),
    sb.AST_FUNCTION_SECH: lambda x: _inv(_call("cosh", x)),
    sb.AST_FUNCTION_CSCH: lambda x: _inv(_call("sinh", x)),
    sb.AST_FUNCTION_COTH: lambda x: _bin("/", _call("cosh", x), _call("sinh", x)),
    sb.AST_FUNCTION_ARCSIN: lambda x: _call("asin", x),
    sb.AST_FUNCTION_ARCCOS: lambda x: _call("acos", x),
    sb.AST_FUNCTION_ARCTAN: lambda x: _call("atan", x),
    sb.AST_FUNCTION_ARCSEC: lambda x: _call("acos", _inv(x)),
    sb.AST_FUNCTION_ARCCSC: lambda x: _call("asin", _inv(x)),
    sb.AST_FUNCTION_ARCCOT: lambda x: _call("atan", _inv(x)),
    sb.AST_FUNCTION_ARCSINH: _asinh,
    sb.AST_FUNCTION_ARCCOSH: _acosh,
    sb.AST_FUNCTION_ARCTANH: _atanh,
    sb.AST_FUNCTION_ARCSECH: lambda x: _acosh(_inv(x)),
    sb.AST_FUNCTION_ARCCSCH: lambda x: _asinh(_inv(x)),
    sb.AST_FUNCTION_ARCCOTH: lambda x: _atanh(_inv(x)),
}
_RELATIONS = {sb.AST_RELATIONAL_EQ: "==", sb.AST_RELATIONAL_NEQ: "!=", sb.AST_RELATIONAL_GT: ">",
              sb.AST_RELATIONAL_GEQ: ">=", sb.AST_RELATIONAL_LT: "<", sb.AST_RELATIONAL_LEQ: "<="}


def as_value(node: ex.Expr) -> ex.Expr:
    """A truth value used as a number is 1 or 0 (SBML Level 3 Version 2 allows it)."""
    return _call("piecewise", _n(1), node, _n(0)) if ex.is_condition(node) else node


def as_condition(node: ex.Expr) -> ex.Expr:
    """A number used as a truth value is true when it is not zero."""
    return node if ex.is_condition(node) else ex.Compare("!=", node, _n(0))


class MathConverter:
    """Converts ASTs with a name table (SBML id -> tree) and the model's function definitions."""

    def __init__(self, names: Callable[[str], ex.Expr], functions: dict[str, tuple[list[str], object]],
                 constant: Callable[[str], bool] = lambda name: False):
        self._names = names
        self._functions = functions  # id -> (argument names, body ASTNode)
        self._constant = constant  # whether a name (as _names gives it) never changes in a run

    def convert(self, node, scope: dict[str, ex.Expr] | None = None) -> ex.Expr:
        self._nodes_left, self._depth = MAX_EXPANDED_NODES, 0
        return self._convert(node, scope or {}, ())

    def _convert(self, node, scope: dict[str, ex.Expr], calling: tuple[str, ...]) -> ex.Expr:
        self._nodes_left -= 1
        self._depth += 1
        try:
            if self._nodes_left < 0 or self._depth > MAX_EXPANDED_DEPTH:
                what = (f"more than {MAX_EXPANDED_NODES:,} nodes" if self._nodes_left < 0
                        else f"more than {MAX_EXPANDED_DEPTH} levels deep")
                raise UnsupportedSbml(f"the formula is {what} once its function definitions are inlined "
                                      f"({' -> '.join(calling[:5]) or 'no function'}{' ...' if len(calling) > 5 else ''})")
            return self._convert_node(node, scope, calling)
        finally:
            self._depth -= 1

    def _convert_node(self, node, scope: dict[str, ex.Expr], calling: tuple[str, ...]) -> ex.Expr:
        def kids() -> list[ex.Expr]:
            return [self._convert(node.getChild(i), scope, calling) for i in range(node.getNumChildren())]

        def values() -> list[ex.Expr]:
            return [as_value(k) for k in kids()]

        t = node.getType()
        if t == sb.AST_INTEGER:
            return _n(node.getInteger())
        if t in (sb.AST_REAL, sb.AST_REAL_E, sb.AST_RATIONAL):
            return _n(node.getReal())  # notanumber and infinity too: ilsim's constants nan and inf
        if t == sb.AST_NAME:
            name = node.getName()
            return scope[name] if name in scope else self._names(name)
        if t == sb.AST_NAME_TIME:
            return ex.Name(ex.TIME)
        if t == sb.AST_NAME_AVOGADRO:
            return _n(AVOGADRO)
        if t == sb.AST_CONSTANT_E:
            return _n(math.e)
        if t == sb.AST_CONSTANT_PI:
            return _n(math.pi)
        if t == sb.AST_CONSTANT_TRUE:
            return TRUE
        if t == sb.AST_CONSTANT_FALSE:
            return FALSE
        if t == sb.AST_PLUS:
            args = values()
            return _fold("+", args) if args else _n(0)
        if t == sb.AST_TIMES:
            args = values()
            return _fold("*", args) if args else _n(1)
        if t == sb.AST_MINUS:
            args = values()
            if len(args) == 1:
                return ex.Num(-args[0].value) if isinstance(args[0], ex.Num) else ex.Neg(args[0])
            return _bin("-", args[0], args[1])
        if t == sb.AST_DIVIDE:
            a, b = values()
            return _bin("/", a, b)
        if t in (sb.AST_POWER, sb.AST_FUNCTION_POWER):
            a, b = values()
            return _bin("**", a, b)
        if t == sb.AST_FUNCTION_ROOT:
            args = values()
            if len(args) == 1:
                return _call("sqrt", args[0])
            degree, x = args
            return _call("sqrt", x) if degree == _n(2) else _bin("**", x, _inv(degree))
        if t == sb.AST_FUNCTION_LOG:
            args = values()
            if len(args) == 1:
                return _call("log10", args[0])
            base, x = args
            return _call("log10", x) if base == _n(10) else _bin("/", _ln_of(x), _ln_of(base))
        if t in _UNARY:
            (x,) = values()
            return _UNARY[t](x)
        if t == sb.AST_FUNCTION_FACTORIAL:
            (x,) = values()
            if isinstance(x, ex.Num) and 0 <= x.value <= 170 and x.value.is_integer():
                return _n(math.factorial(int(x.value)))
            return _call("factorial", x)  # gamma(x + 1)
        if t in (sb.AST_FUNCTION_MAX, sb.AST_FUNCTION_MIN):
            args = values()
            name = "max" if t == sb.AST_FUNCTION_MAX else "min"
            return args[0] if len(args) == 1 else _call(name, *args)
        if t in (sb.AST_FUNCTION_QUOTIENT, sb.AST_FUNCTION_REM):
            a, b = values()
            ratio = _bin("/", a, b)  # truncated towards zero, as C's integer division
            quotient = _call("piecewise", _call("floor", ratio), ex.Compare(">=", ratio, _n(0)), _call("ceil", ratio))
            return quotient if t == sb.AST_FUNCTION_QUOTIENT else _bin("-", a, _bin("*", b, quotient))
        if t == sb.AST_FUNCTION_PIECEWISE:
            args = kids()
            pieces: list[ex.Expr] = []
            for i in range(0, len(args) - 1, 2):
                pieces += [as_value(args[i]), as_condition(args[i + 1])]
            otherwise = as_value(args[-1]) if len(args) % 2 else _n(0)  # SBML leaves it undefined; 0 as libroadrunner
            return _call("piecewise", *pieces, otherwise) if pieces else otherwise
        if t in _RELATIONS:
            args = values()
            op = _RELATIONS[t]
            if len(args) < 2:
                return TRUE
            terms = tuple(ex.Compare(op, args[i], args[i + 1]) for i in range(len(args) - 1))
            return terms[0] if len(terms) == 1 else ex.Logic("and", terms)
        if t in (sb.AST_LOGICAL_AND, sb.AST_LOGICAL_OR):
            args = [as_condition(k) for k in kids()]
            if not args:
                return TRUE if t == sb.AST_LOGICAL_AND else FALSE
            return args[0] if len(args) == 1 else ex.Logic("and" if t == sb.AST_LOGICAL_AND else "or", tuple(args))
        if t == sb.AST_LOGICAL_NOT:
            (x,) = [as_condition(k) for k in kids()]
            return ex.Not(x)
        if t == sb.AST_LOGICAL_XOR:
            args = [as_condition(k) for k in kids()]
            if not args:
                return FALSE
            out = args[0]
            for b in args[1:]:
                out = ex.Logic("or", (ex.Logic("and", (out, ex.Not(b))), ex.Logic("and", (ex.Not(out), b))))
            return out
        if t == sb.AST_LOGICAL_IMPLIES:
            a, b = [as_condition(k) for k in kids()]
            return ex.Logic("or", (ex.Not(a), b))
        if t == sb.AST_FUNCTION:
            return self._call_function(node, kids(), calling)
        if t == sb.AST_FUNCTION_DELAY:
            return self._delay(node, *values())
        if t == sb.AST_FUNCTION_RATE_OF:
            raise UnsupportedSbml("the csymbol rateOf is not supported")
        what = node.getName() or sb.formulaToL3String(node) or f"type {t}"
        raise UnsupportedSbml(f"the MathML element '{what}' is not supported")

    def _delay(self, node, x: ex.Expr, delay: ex.Expr) -> ex.Expr:
        """x as it was ``delay`` ago: exact when x changes only with time (a known history)."""
        varying = sorted(n for n in (x.names() | delay.names()) - {ex.TIME} if not self._constant(n))
        if varying or ex.TIME in delay.names():
            raise UnsupportedSbml(f"'{sb.formulaToL3String(node)}': a csymbol delay of a quantity that changes in the "
                                  f"run ({', '.join(varying) or 'time'}) needs a delay-differential solver, which ilsim "
                                  "does not have (libroadrunner 2.10 refuses delays too)")
        then = _call("max", _bin("-", ex.Name(ex.TIME), delay), _n(0))
        return _substitute(x, ex.TIME, then)

    def _call_function(self, node, args: list[ex.Expr], calling: tuple[str, ...]) -> ex.Expr:
        name = node.getName()
        if name not in self._functions:
            raise UnsupportedSbml(f"call of '{name}', which is not a function definition of the model")
        if name in calling:
            raise UnsupportedSbml(f"function definition '{name}' calls itself")
        params, body = self._functions[name]
        if len(args) != len(params):
            raise UnsupportedSbml(f"function '{name}' takes {len(params)} argument(s), called with {len(args)}")
        return self._convert(body, dict(zip(params, args)), (*calling, name))


def _substitute(tree: ex.Expr, name: str, by: ex.Expr) -> ex.Expr:
    if isinstance(tree, ex.Name):
        return by if tree.id == name else tree
    return ex.with_children(tree, [_substitute(child, name, by) for child in ex.children(tree)])


def _fold(op: str, args: list[ex.Expr]) -> ex.Expr:
    out = args[0]
    for a in args[1:]:
        out = _bin(op, out, a)
    return out


def function_definitions(model) -> dict[str, tuple[list[str], object]]:
    """id -> (argument names, body) of every function definition of a libsbml Model."""
    out = {}
    for i in range(model.getNumFunctionDefinitions()):
        fd = model.getFunctionDefinition(i)
        lam = fd.getMath()
        if lam is None or lam.getType() != sb.AST_LAMBDA:
            continue  # Level 3 Version 2 allows an empty definition; calling it is an error
        n = lam.getNumChildren()
        params = [lam.getChild(k).getName() for k in range(n - 1)]
        out[fd.getId()] = (params, lam.getChild(n - 1))
    return out
