"""Safe expressions: text -> whitelisted tree -> code, SymPy and readable math.

A user's rate law is data. Text is parsed by Python's ``ast`` parser (which executes nothing) and
every node is checked against a whitelist before it becomes one of the small immutable nodes below;
anything else (attribute access, subscripts, lambdas, comprehensions, strings, unknown functions) is
refused. Code is later generated from the tree, never from the user's text.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ilsim.errors import ExpressionError, did_you_mean
from ilsim.limits import MAX_EXPRESSION_CHARS, MAX_EXPRESSION_DEPTH, excerpt

# name -> (min args, max args); max None means any number
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "exp": (1, 1),
    "log": (1, 2),
    "log10": (1, 1),
    "sqrt": (1, 1),
    "abs": (1, 1),
    "min": (2, None),
    "max": (2, None),
    "hill": (3, 3),
    "piecewise": (3, None),
    "sin": (1, 1),
    "cos": (1, 1),
    "tanh": (1, 1),
    "tan": (1, 1),
    "sinh": (1, 1),
    "cosh": (1, 1),
    "asin": (1, 1),
    "acos": (1, 1),
    "atan": (1, 1),
    "floor": (1, 1),
    "ceil": (1, 1),
    "factorial": (1, 1),  # gamma(x + 1): SBML's factorial, defined for every real x
}
CONSTANTS = {"pi": math.pi, "e": math.e, "inf": math.inf, "nan": math.nan}
TIME = "t"
_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_ARC = {"asin": "arcsin", "acos": "arccos", "atan": "arctan"}  # inverse trigonometric functions in NumPy


class Expr:
    """Base of expression nodes; nodes are immutable and hashable."""

    __slots__ = ()

    def names(self) -> set[str]:
        """Every variable name used (not function names, not constants)."""
        out: set[str] = set()
        _collect_names(self, out)
        return out


@dataclass(frozen=True)
class Num(Expr):
    value: float


@dataclass(frozen=True)
class Name(Expr):
    id: str


@dataclass(frozen=True)
class Neg(Expr):
    arg: Expr


@dataclass(frozen=True)
class BinOp(Expr):
    op: str  # + - * / **
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Compare(Expr):
    op: str  # < <= > >= == !=
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Logic(Expr):
    op: str  # and / or
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Not(Expr):
    arg: Expr


@dataclass(frozen=True)
class Call(Expr):
    func: str
    args: tuple[Expr, ...]


def _collect_names(node: Expr, out: set[str]) -> None:
    if isinstance(node, Name):
        out.add(node.id)
    for child in children(node):
        _collect_names(child, out)


def children(node: Expr) -> tuple[Expr, ...]:
    if isinstance(node, (Neg, Not)):
        return (node.arg,)
    if isinstance(node, (BinOp, Compare)):
        return (node.left, node.right)
    if isinstance(node, (Logic, Call)):
        return node.args
    return ()


def with_children(node: Expr, new: list[Expr]) -> Expr:
    """``node`` with its children (as ``children`` lists them) replaced by ``new``."""
    if isinstance(node, Neg):
        return Neg(new[0])
    if isinstance(node, Not):
        return Not(new[0])
    if isinstance(node, BinOp):
        return BinOp(node.op, new[0], new[1])
    if isinstance(node, Compare):
        return Compare(node.op, new[0], new[1])
    if isinstance(node, Logic):
        return Logic(node.op, tuple(new))
    if isinstance(node, Call):
        return Call(node.func, tuple(new))
    return node


def common_subexpressions(trees: list[Expr], prefix: str = "cse_") -> tuple[list[tuple[str, Expr]], list[Expr]]:
    """Subtrees that occur more than once across ``trees``, each computed once: ``(assignments, trees)``, where
    every assignment ``(name, tree)`` may use the names assigned before it and the new trees use them all.

    A Jacobian derived by SymPy repeats pieces of the right-hand side in many entries; computed once, its
    kernel is smaller and compiles faster. Nothing inside a ``piecewise`` is taken out of it (its branches
    are evaluated only when chosen), nor are truth values.
    """
    counts: dict[Expr, int] = {}

    def count(node: Expr) -> None:
        if isinstance(node, (Num, Name)):
            return
        counts[node] = counts.get(node, 0) + 1
        if counts[node] > 1 or (isinstance(node, Call) and node.func == "piecewise"):
            return  # its children are counted already / stay inside their branch
        for child in children(node):
            count(child)

    for tree in trees:
        count(tree)
    shared = {n for n, k in counts.items() if k > 1 and not isinstance(n, (Compare, Logic, Not))}
    assignments: list[tuple[str, Expr]] = []
    named: dict[Expr, str] = {}

    def rebuild(node: Expr) -> Expr:
        if node in named:
            return Name(named[node])
        if isinstance(node, (Num, Name)) or (isinstance(node, Call) and node.func == "piecewise"):
            new = node
        else:
            new = with_children(node, [rebuild(child) for child in children(node)])
        if node in shared:
            named[node] = f"{prefix}{len(assignments)}"
            assignments.append((named[node], new))
            return Name(named[node])
        return new

    return assignments, [rebuild(tree) for tree in trees]


def is_condition(node: Expr) -> bool:
    """True for nodes whose value is a truth value (comparisons and logic)."""
    return isinstance(node, (Compare, Logic, Not))


@lru_cache(maxsize=4096)
def parse(text: str | float | int) -> Expr:
    """Parse an expression; raise ExpressionError naming what is not allowed.

    Accepts Python-style arithmetic (``^`` also means power), comparisons, ``and or not``,
    ``a if cond else b``, the functions in FUNCTIONS and numbers. Does not resolve names.
    """
    if isinstance(text, bool):
        raise ExpressionError(f"expected an expression, got the truth value {text}")
    if isinstance(text, (int, float)):
        return Num(float(text))
    if not isinstance(text, str):
        raise ExpressionError(f"expected an expression (text or number), got {type(text).__name__}")
    source = text.strip().replace("^", "**")
    if not source:
        raise ExpressionError("the expression is empty")
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"the expression '{excerpt(text)}' is longer than {MAX_EXPRESSION_CHARS:,} characters; "
                              "split it into observables")
    too_deep = ExpressionError(
        f"the expression '{excerpt(text)}' is nested more than {MAX_EXPRESSION_DEPTH} levels deep (each term of a long "
        "sum or product, each nested call, condition or if/else counts a level); split it into observables")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        if "nested" in str(exc.msg):  # the tokenizer's 'too many nested parentheses'
            raise too_deep from None
        raise ExpressionError(f"invalid expression '{excerpt(text)}': syntax error at column {exc.offset}") from None
    except (RecursionError, MemoryError):  # Python's parser recurses on 'a+a+...' and 'not not ...'
        raise too_deep from None
    if _ast_depth(tree.body) > MAX_EXPRESSION_DEPTH:
        raise too_deep
    node = _convert(tree.body, text)
    if nesting(node) > MAX_EXPRESSION_DEPTH:  # piecewise(v1, c1, v2, c2, ...) nests once per pair in generated code
        raise too_deep
    return node


def _ast_depth(root: ast.AST) -> int:
    """Depth of a Python syntax tree, without recursion (a deep tree is what this guards against)."""
    deepest, todo = 0, [(root, 1)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_EXPRESSION_DEPTH:
            todo.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def nesting(node: Expr) -> int:
    """Levels of parentheses generated code needs for a tree (Python refuses more than 200): one per node, and one
    per value/condition pair of a piecewise. Only for trees the parser's depth limit already bounds."""
    inner = max((nesting(child) for child in children(node)), default=0)
    if isinstance(node, Call) and node.func == "piecewise":
        return inner + len(node.args) // 2
    return inner + (0 if isinstance(node, (Num, Name)) else 1)


def _refuse(node: ast.AST, text: str, what: str) -> ExpressionError:
    return ExpressionError(f"invalid expression '{excerpt(text)}': {what} is not allowed in an expression")


def _convert(node: ast.AST, text: str) -> Expr:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise _refuse(node, text, f"the constant {node.value!r}")
        return Num(float(node.value))
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return Num(CONSTANTS[node.id])
        if node.id.startswith("__"):
            raise _refuse(node, text, f"the name '{node.id}'")
        return Name(node.id)
    if isinstance(node, ast.UnaryOp):
        arg = _convert(node.operand, text)
        if isinstance(node.op, ast.USub):
            return Num(-arg.value) if isinstance(arg, Num) else Neg(arg)
        if isinstance(node.op, ast.UAdd):
            return arg
        if isinstance(node.op, ast.Not):
            return Not(arg)
        raise _refuse(node, text, "the operator '~'")
    if isinstance(node, ast.BinOp):
        op = _BINARY.get(type(node.op))
        if op is None:
            raise _refuse(node, text, f"the operator {type(node.op).__name__}")
        left, right = _convert(node.left, text), _convert(node.right, text)
        if op == "/" and isinstance(right, Num) and right.value == 0.0:
            raise ExpressionError(f"invalid expression '{excerpt(text)}': division by zero")
        return BinOp(op, left, right)
    if isinstance(node, ast.Compare):
        parts = [_convert(node.left, text)] + [_convert(c, text) for c in node.comparators]
        terms = tuple(
            Compare(_COMPARE[type(op)], parts[i], parts[i + 1])
            for i, op in enumerate(node.ops)
            if type(op) in _COMPARE or _raise(_refuse(node, text, f"the comparison {type(op).__name__}"))
        )
        return terms[0] if len(terms) == 1 else Logic("and", terms)
    if isinstance(node, ast.BoolOp):
        op = "and" if isinstance(node.op, ast.And) else "or"
        return Logic(op, tuple(_convert(v, text) for v in node.values))
    if isinstance(node, ast.IfExp):
        return Call(
            "piecewise",
            (_convert(node.body, text), _convert(node.test, text), _convert(node.orelse, text)),
        )
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise _refuse(node, text, "calling something other than a named function")
        name = node.func.id
        if name not in FUNCTIONS:
            raise ExpressionError(
                f"invalid expression '{excerpt(text)}': unknown function '{name}'{did_you_mean(name, FUNCTIONS)}"
                f"; known functions: {', '.join(sorted(FUNCTIONS))}"
            )
        if node.keywords:
            raise _refuse(node, text, "a keyword argument")
        args = tuple(_convert(a, text) for a in node.args)
        lo, hi = FUNCTIONS[name]
        if len(args) < lo or (hi is not None and len(args) > hi):
            want = f"{lo}" if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
            raise ExpressionError(f"invalid expression '{excerpt(text)}': {name}() takes {want} arguments, got {len(args)}")
        if name == "piecewise" and len(args) % 2 == 0:
            raise ExpressionError(
                f"invalid expression '{excerpt(text)}': piecewise(value1, condition1, ..., otherwise) needs an odd number "
                "of arguments (the last is the value when no condition holds)"
            )
        return Call(name, args)
    what = {
        ast.Attribute: "attribute access ('.')",
        ast.Subscript: "subscripting ('[...]')",
        ast.Lambda: "a lambda",
        ast.ListComp: "a comprehension",
        ast.SetComp: "a comprehension",
        ast.DictComp: "a comprehension",
        ast.GeneratorExp: "a comprehension",
        ast.NamedExpr: "assignment (':=')",
        ast.Starred: "unpacking ('*')",
    }.get(type(node), f"a {type(node).__name__} ")
    raise _refuse(node, text, what.strip())


def _raise(exc: Exception):
    raise exc


# ----------------------------------------------------------------------------------------------
# Readable math (for `ilsim show`, reports): minimal parentheses by precedence.

_PREC = {"or": 1, "and": 2, "not": 3, "cmp": 4, "+": 5, "-": 5, "*": 6, "/": 6, "neg": 7, "**": 8}


def to_text(node: Expr) -> str:
    """Readable infix form, e.g. ``p1*E*I/(g1 + I)``; parses back to an equal tree."""
    return _text(node)[0]


def operand_text(value) -> str:
    """An expression (text or number) as readable text, parenthesised unless it is a name, number or
    call: safe to paste next to '*' or '/' when generating entries from motifs and doses."""
    tree = parse(value)
    text = to_text(tree)
    return text if isinstance(tree, (Name, Num, Call)) else f"({text})"


def _text(node: Expr) -> tuple[str, int]:
    if isinstance(node, Num):
        v = node.value
        s = repr(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
        return (s, 9) if v >= 0 else (s, _PREC["neg"])
    if isinstance(node, Name):
        return node.id, 9
    if isinstance(node, Neg):
        s, p = _text(node.arg)
        return "-" + (s if p > _PREC["neg"] else f"({s})"), _PREC["neg"]
    if isinstance(node, Not):
        s, p = _text(node.arg)
        return "not " + (s if p > _PREC["not"] else f"({s})"), _PREC["not"]
    if isinstance(node, BinOp):
        prec = _PREC[node.op]
        ls, lp = _text(node.left)
        rs, rp = _text(node.right)
        if node.op == "**":  # right-associative
            ls = ls if lp > prec else f"({ls})"
            rs = rs if rp >= prec else f"({rs})"
            return f"{ls}**{rs}", prec
        ls = ls if lp >= prec else f"({ls})"
        rs = rs if rp > prec else f"({rs})"
        sep = " " if node.op in "+-" else ""
        return f"{ls}{sep}{node.op}{sep}{rs}", prec
    if isinstance(node, Compare):
        ls, lp = _text(node.left)
        rs, rp = _text(node.right)
        prec = _PREC["cmp"]
        return f"{ls if lp > prec else f'({ls})'} {node.op} {rs if rp > prec else f'({rs})'}", prec
    if isinstance(node, Logic):
        prec = _PREC[node.op]
        parts = [s if p > prec else f"({s})" for s, p in map(_text, node.args)]
        return f" {node.op} ".join(parts), prec
    if isinstance(node, Call):
        return f"{node.func}({', '.join(_text(a)[0] for a in node.args)})", 9
    raise TypeError(node)


# ----------------------------------------------------------------------------------------------
# Substitution and code generation.


STRICT_MARGIN = 1e-300  # subtracted from a strict comparison's root function: zero at its threshold is 'false'


def root_function(node: Expr) -> Expr:
    """A function that is >= 0 exactly where a condition holds and crosses zero where it changes, so an ODE
    solver can locate the moment a condition becomes true by root finding.

    Strict comparisons are false at their threshold, so their function is shifted by a margin below any
    difference of two doubles that are not equal: 'x > 1' at x = 1 gives -1e-300, not 0 (and 'flag > 0 and
    y < 1' with flag = 0 never reaches zero, where min(flag, 1 - y) would sit on it and fire). An equality
    holds at a point only: its function is -|a - b|, and +1 where it holds exactly (a value that holds, not
    a flat zero, which would let the root search stop anywhere once the other side of an 'and' crosses);
    such a condition becomes true where the engines stop exactly on it (time switches: 'time == 3').
    """
    if isinstance(node, Compare):
        if node.op in ("==", "!="):
            differ = Call("abs", (BinOp("-", node.left, node.right),))
            equal = Call("piecewise", (Num(1.0), Compare("==", node.left, node.right), Neg(differ)))
            return equal if node.op == "==" else BinOp("-", Neg(equal), Num(STRICT_MARGIN))
        difference = BinOp("-", node.right, node.left) if node.op in ("<", "<=") else BinOp("-", node.left, node.right)
        return BinOp("-", difference, Num(STRICT_MARGIN)) if node.op in ("<", ">") else difference
    if isinstance(node, Logic):
        return Call("min" if node.op == "and" else "max", tuple(root_function(a) for a in node.args))
    if isinstance(node, Not):
        return BinOp("-", Neg(root_function(node.arg)), Num(STRICT_MARGIN))  # true where the other is < 0
    # a value used as a truth value: +1 when non-zero, -1 when zero
    return Call("piecewise", (Num(-1.0), Compare("==", node, Num(0.0)), Num(1.0)))


def _balanced(fn: str, args: list[str]) -> str:
    """fn(fn(a, b), fn(c, d)): a two-argument NumPy function over many arguments, nested log2(n) deep, not n."""
    if len(args) == 1:
        return args[0]
    half = len(args) // 2
    return f"{fn}({_balanced(fn, args[:half])}, {_balanced(fn, args[half:])})"


def to_code(node: Expr, names: dict[str, str], vectorised: bool, number=None, library: str | None = None,
            float_rounding: bool = False) -> str:
    """Python source for a node, with each name replaced by ``names[name]``.

    ``vectorised`` selects NumPy forms (``np.where``, ``np.maximum``) that work on arrays of
    states; otherwise scalar forms (``math``, ``if/else``) that numba compiles into tight loops.
    The text is built only from the checked tree, so no user text reaches the compiler. ``number`` wraps each
    constant's text (plain-Python kernels make constants NumPy floats, so 1/0 is inf as under numba, not an error).
    ``library`` (scalar forms only): the name of a module like ``ilsim.model.ieee`` whose functions every call and
    power go through, as plain-Python kernels that must give the compiled kernels' bits print them.
    ``float_rounding`` (scalar forms): floor and ceil as NumPy's, float to float, for numba, whose math.floor returns
    an int64 (floor(inf) would be -2**63).
    """
    return _code(node, names, vectorised, number, library, float_rounding)


def _power(node: BinOp, c, lib: str) -> str:
    """A power through ``lib``, with the constant operands that LLVM rewrites (numba's x ** 2.0 is x * x, ...)
    printed as the rewritten function, so that plain Python computes what the compiled code does."""
    left, right = node.left, node.right
    exponent, base = _constant(right), _constant(left)
    if exponent in _REWRITTEN_EXPONENTS:
        return f"{lib}.{_REWRITTEN_EXPONENTS[exponent]}({c(left)})"
    if base is not None and base > 0.0 and math.frexp(base)[0] == 0.5 and base != 1.0:
        n = float(math.frexp(base)[1] - 1)  # (2 ** n) ** x is exp2(n * x)
        return f"{lib}.exp2({c(right)})" if n == 1.0 else f"{lib}.exp2(({c(Num(n))} * {c(right)}))"
    return f"{lib}.pow({c(left)}, {c(right)})"


_REWRITTEN_EXPONENTS = {2.0: "square", 0.5: "root", -1.0: "reciprocal"}


def _constant(node: Expr) -> float | None:
    """The value of a number, or of a negated one (-1.0 prints as (-1.0), a constant to LLVM too)."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Neg) and isinstance(node.arg, Num):
        return -node.arg.value
    return None


def _code(node: Expr, names: dict[str, str], vec: bool, number=None, lib: str | None = None,
          float_rounding: bool = False) -> str:
    def c(n: Expr) -> str:
        return _code(n, names, vec, number, lib, float_rounding)

    if isinstance(node, Num):
        text = repr(node.value) if math.isfinite(node.value) else f"float('{node.value}')"
        return number(text) if number else text
    if isinstance(node, Name):
        return names[node.id]
    if isinstance(node, Neg):
        return f"(-{c(node.arg)})"
    if isinstance(node, BinOp):
        if node.op == "**" and isinstance(node.right, Num) and node.right.value in (2.0, 3.0) and isinstance(
                node.left, (Name, Num)):  # a name, not a subtree: (x**3)**3 ... would triple the text at each level
            base = c(node.left)
            return f"({base}*{base})" if node.right.value == 2.0 else f"({base}*{base}*{base})"
        if node.op == "**" and lib and not vec:
            return _power(node, c, lib)
        return f"({c(node.left)} {node.op} {c(node.right)})"
    if isinstance(node, Compare):
        return f"({c(node.left)} {node.op} {c(node.right)})"
    if isinstance(node, Logic):
        if vec:
            return _balanced("np.logical_and" if node.op == "and" else "np.logical_or", [c(a) for a in node.args])
        # a value used as a truth value is tested as one: 'x and y' is True/False, as evaluate() has it, not y
        return "(" + f" {node.op} ".join(c(a) if is_condition(a) else f"bool({c(a)})" for a in node.args) + ")"
    if isinstance(node, Not):
        return f"np.logical_not({c(node.arg)})" if vec else f"(not {c(node.arg)})"
    if isinstance(node, Call):
        args = [c(a) for a in node.args]
        f = node.func
        if f == "hill" and (lib or float_rounding) and _constant(node.args[2]) is not None:
            # with a constant exponent, numba's _hill is inlined and its powers rewritten (x**2.0 as x*x): printed
            # out as its formula, each power follows the printing rules of the plain and compiled kernels alike
            x, k, n = node.args
            return c(BinOp("/", BinOp("**", x, n), BinOp("+", BinOp("**", k, n), BinOp("**", x, n))))
        if lib and not vec and f not in ("piecewise", "min", "max", "abs"):
            return (f"({lib}.log({args[0]}) / {lib}.log({args[1]}))" if f == "log" and len(args) == 2
                    else f"{lib}.{f}({', '.join(args)})")
        if f == "hill":
            x, k, n = args
            return f"_hill({x}, {k}, {n})"
        if f == "piecewise":
            out = args[-1]
            for value, cond in reversed(list(zip(args[:-1:2], args[1:-1:2]))):
                out = f"np.where({cond}, {value}, {out})" if vec else f"({value} if {cond} else {out})"
            return out
        if f in ("min", "max"):
            if vec:
                return _balanced("np.minimum" if f == "min" else "np.maximum", args)
            return f"{f}({', '.join(args)})"
        if f == "log" and len(args) == 2:
            return f"(np.log({args[0]}) / np.log({args[1]}))" if vec else f"(math.log({args[0]}) / math.log({args[1]}))"
        if f == "abs":
            return f"np.abs({args[0]})" if vec else f"abs({args[0]})"
        if f == "factorial":  # helpers of the kernel prelude (model/compile.py)
            return f"_factorial_vec({args[0]})" if vec else f"_factorial({args[0]})"
        if f in _ARC:  # NumPy's names, which numba also compiles for scalars
            return f"np.{_ARC[f]}({args[0]})"
        lib = "np" if vec or (float_rounding and f in ("floor", "ceil")) else "math"
        return f"{lib}.{f}({args[0]})"
    raise TypeError(node)


def evaluate(node: Expr, values: dict[str, float]):
    """Value of a tree at one point, by walking it (for rare calls: conditions, outcomes). Arithmetic is IEEE as in
    the compiled kernels: 1/0 is inf, 0/0 and (-8)**0.5 are NaN, overflow is inf."""
    with np.errstate(all="ignore"):
        return _evaluate(node, values)


def _evaluate(node: Expr, values: dict[str, float]):
    v = values
    evaluate = _evaluate
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Name):
        return v[node.id]
    if isinstance(node, Neg):
        return -evaluate(node.arg, v)
    if isinstance(node, Not):
        return not evaluate(node.arg, v)
    if isinstance(node, BinOp):
        a, b = evaluate(node.left, v), evaluate(node.right, v)
        return float(_ARITH[node.op](np.float64(a), np.float64(b)))
    if isinstance(node, Compare):
        return _RELATION[node.op](evaluate(node.left, v), evaluate(node.right, v))
    if isinstance(node, Logic):
        results = (bool(evaluate(a, v)) for a in node.args)
        return all(results) if node.op == "and" else any(results)
    if isinstance(node, Call):
        if node.func == "piecewise":
            args = node.args
            for value, cond in zip(args[:-1:2], args[1:-1:2]):
                if evaluate(cond, v):
                    return evaluate(value, v)
            return evaluate(args[-1], v)
        args = [evaluate(a, v) for a in node.args]
        return _SCALAR_FUNCTIONS[node.func](*args)
    raise TypeError(node)


def evaluate_array(node: Expr, values: dict):
    """Value of a tree over arrays (one element per patient, say), by walking it with NumPy.

    ``values`` maps names to arrays (or scalars) that broadcast together; division by zero and
    overflow give inf/NaN as in the compiled kernels.
    """
    def ev(n: Expr):
        return evaluate_array(n, values)

    if isinstance(node, Num):
        return node.value
    if isinstance(node, Name):
        return values[node.id]
    if isinstance(node, Neg):
        return -ev(node.arg)
    if isinstance(node, Not):
        return np.logical_not(ev(node.arg))
    with np.errstate(all="ignore"):
        if isinstance(node, BinOp):
            a, b = np.asarray(ev(node.left), dtype=float), np.asarray(ev(node.right), dtype=float)
            return _ARITH[node.op](a, b)
        if isinstance(node, Compare):
            return _RELATION[node.op](ev(node.left), ev(node.right))
        if isinstance(node, Logic):
            fn = np.logical_and if node.op == "and" else np.logical_or
            return fn.reduce(np.broadcast_arrays(*(np.asarray(ev(a), dtype=bool) for a in node.args)))
        if isinstance(node, Call):
            if node.func == "piecewise":
                args = node.args
                conds = [np.asarray(ev(c), dtype=bool) for c in args[1:-1:2]]
                return np.select(conds, [ev(v) for v in args[:-1:2]], default=ev(args[-1]))
            args = [np.asarray(ev(a), dtype=float) for a in node.args]
            return _ARRAY_FUNCTIONS.get(node.func, np.vectorize(_SCALAR_FUNCTIONS[node.func]))(*args)
    raise TypeError(node)


_ARITH = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "**": lambda a, b: a**b,
}
_RELATION = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def hill(x, k, n):
    """Saturating activation x^n / (K^n + x^n), 0 at x = 0 and 1/2 at x = K."""
    with np.errstate(all="ignore"):
        x, k, n = (np.asarray(a, dtype=float) for a in (x, k, n))
        xn = x**n
        return (xn / (k**n + xn))[()]  # a float for numbers, an array for arrays


def _safe_log(x, base=None):
    with np.errstate(all="ignore"):
        return float(np.log(np.float64(x)) if base is None else np.log(np.float64(x)) / np.log(np.float64(base)))


def _np1(fn):
    """A NumPy function of one number as a float (inf/NaN where math raises)."""
    def scalar(x):
        with np.errstate(all="ignore"):
            return float(fn(np.float64(x)))
    return scalar


def factorial(x: float) -> float:
    """x! = gamma(x + 1) for every real x: inf past the largest double, NaN at the poles (negative integers)."""
    z = x + 1.0
    if z != z or z > 171.62:  # NaN; gamma(171.62) is about the largest double
        return z if z != z else math.inf
    if z <= 0.0 and (z == -math.inf or z % 1.0 == 0.0):
        return math.copysign(math.inf, z) if z == 0.0 else math.nan
    if abs(z) < 1e-300:  # gamma(z) ~ 1/z near 0
        return 1.0 / z
    return math.gamma(z)


_SCALAR_FUNCTIONS = {
    "exp": _np1(np.exp),
    "log": _safe_log,
    "log10": _np1(np.log10),
    "sqrt": _np1(np.sqrt),
    "abs": abs,
    "min": min,
    "max": max,
    "hill": hill,
    "sin": _np1(np.sin),
    "cos": _np1(np.cos),
    "tanh": _np1(np.tanh),
    "tan": _np1(np.tan),
    "sinh": _np1(np.sinh),
    "cosh": _np1(np.cosh),
    "asin": _np1(np.arcsin),
    "acos": _np1(np.arccos),
    "atan": _np1(np.arctan),
    "floor": _np1(np.floor),
    "ceil": _np1(np.ceil),
    "factorial": factorial,
}

def _array_hill(x, k, n):
    xn = x**n
    return xn / (k**n + xn)


_ARRAY_FUNCTIONS = {  # NumPy forms for evaluate_array (others fall back to the scalar ones, vectorised)
    "exp": np.exp,
    "log": lambda x, base=None: np.log(x) if base is None else np.log(x) / np.log(base),
    "log10": np.log10,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "min": lambda *a: np.minimum.reduce(np.broadcast_arrays(*a)),
    "max": lambda *a: np.maximum.reduce(np.broadcast_arrays(*a)),
    "hill": _array_hill,
    "sin": np.sin,
    "cos": np.cos,
    "tanh": np.tanh,
    "floor": np.floor,
    "ceil": np.ceil,
}


# ----------------------------------------------------------------------------------------------
# SymPy (for the analytic Jacobian): built from the tree, never from text.


def to_sympy(node: Expr, symbols: dict):
    import sympy as sp  # lazy: heavy (SymPy: only the analytic Jacobian needs it)

    def s(n: Expr):
        return to_sympy(n, symbols)

    if isinstance(node, Num):
        v = node.value
        return sp.Integer(int(v)) if v.is_integer() and abs(v) < 1e15 else sp.Float(v)
    if isinstance(node, Name):
        return symbols[node.id]
    if isinstance(node, Neg):
        return -s(node.arg)
    if isinstance(node, BinOp):
        a, b = s(node.left), s(node.right)
        return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b, "**": lambda: a**b}[
            node.op
        ]()
    if isinstance(node, Compare):
        a, b = s(node.left), s(node.right)
        return {"<": sp.Lt, "<=": sp.Le, ">": sp.Gt, ">=": sp.Ge, "==": sp.Eq, "!=": sp.Ne}[node.op](a, b)
    if isinstance(node, Logic):
        return (sp.And if node.op == "and" else sp.Or)(*[s(a) for a in node.args])
    if isinstance(node, Not):
        return sp.Not(s(node.arg))
    if isinstance(node, Call):
        args = [s(a) for a in node.args]
        f = node.func
        if f == "hill":
            x, k, n = args
            return x**n / (k**n + x**n)
        if f == "piecewise":
            pairs = [(v, c) for v, c in zip(args[:-1:2], args[1:-1:2])]
            return sp.Piecewise(*pairs, (args[-1], True))
        if f == "log" and len(args) == 2:
            return sp.log(args[0]) / sp.log(args[1])
        if f == "factorial":
            return _sympy_factorial()(*args)
        table = {
            "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs, "min": sp.Min, "max": sp.Max,
            "sin": sp.sin, "cos": sp.cos, "tanh": sp.tanh, "floor": sp.floor, "ceiling": sp.ceiling,
            "tan": sp.tan, "sinh": sp.sinh, "cosh": sp.cosh, "asin": sp.asin, "acos": sp.acos, "atan": sp.atan,
            "ceil": sp.ceiling, "log10": lambda x: sp.log(x, 10),
        }
        return table[f](*args)
    raise TypeError(node)


@lru_cache(maxsize=1)
def _sympy_factorial():
    """factorial as a SymPy function whose derivative is a central difference of itself: the derivative,
    gamma(x + 1) * digamma(x + 1), has no form in the expression language, and a Jacobian only steers the
    solver's Newton iterations (its accuracy does not depend on it)."""
    import sympy as sp  # lazy: heavy (SymPy: only the analytic Jacobian needs it)

    class ilsim_factorial(sp.Function):  # noqa: N801 (SymPy prints functions by their class name)
        def fdiff(self, argindex=1):
            x = self.args[0]
            h = sp.Float(1e-6) * sp.Max(1, sp.Abs(x))
            return (self.func(x + h) - self.func(x - h)) / (2 * h)

    return ilsim_factorial


def _balanced_tree(op: str, args: list[Expr]) -> Expr:
    if len(args) == 1:
        return args[0]
    half = len(args) // 2
    return BinOp(op, _balanced_tree(op, args[:half]), _balanced_tree(op, args[half:]))


def from_sympy(expr) -> Expr:
    """Convert a SymPy expression (e.g. a Jacobian entry) back into our tree for code generation."""
    import sympy as sp  # lazy: heavy (SymPy: only the analytic Jacobian needs it)

    if expr.is_Integer or expr.is_Float or expr.is_Rational:
        return Num(float(expr))
    if expr is sp.S.Pi:
        return Num(math.pi)
    if expr is sp.S.NaN or expr is sp.S.ComplexInfinity:
        return Num(math.nan)
    if expr is sp.S.Infinity or expr is sp.S.NegativeInfinity:
        return Num(math.inf if expr is sp.S.Infinity else -math.inf)
    if expr is sp.S.Exp1:
        return Num(math.e)
    if expr is sp.S.true:
        return Compare("==", Num(0.0), Num(0.0))
    if expr is sp.S.false:
        return Compare("!=", Num(0.0), Num(0.0))
    if expr.is_Symbol:
        return Name(expr.name)
    if isinstance(expr, sp.Piecewise):
        flat: list[Expr] = []
        for value, cond in expr.args:
            flat += [from_sympy(value), from_sympy(cond)]
        if expr.args[-1][1] is sp.true:
            return Call("piecewise", tuple(flat[:-1]))
        return Call("piecewise", (*flat, Num(math.nan)))
    if isinstance(expr, (sp.Derivative, sp.Subs)) or expr.func.__name__ == "DiracDelta":
        return Num(0.0)  # derivatives of step functions (floor, ceiling): zero almost everywhere
    args = [from_sympy(a) for a in expr.args]
    if expr.is_Add or expr.is_Mul:  # balanced: a sum of n terms nests log2(n) deep in generated code, not n
        return _balanced_tree("+" if expr.is_Add else "*", args)
    if expr.is_Pow:
        return BinOp("**", args[0], args[1])
    rel = {sp.StrictLessThan: "<", sp.LessThan: "<=", sp.StrictGreaterThan: ">", sp.GreaterThan: ">=",
           sp.Equality: "==", sp.Unequality: "!="}
    for cls, op in rel.items():
        if isinstance(expr, cls):
            return Compare(op, args[0], args[1])
    if isinstance(expr, sp.And):
        return Logic("and", tuple(args))
    if isinstance(expr, sp.Or):
        return Logic("or", tuple(args))
    if isinstance(expr, sp.Not):
        return Not(args[0])
    if isinstance(expr, sp.ITE):  # a boolean if-then-else, as SymPy writes nested conditions of a piecewise
        cond, then, other = args
        return Logic("or", (Logic("and", (cond, then)), Logic("and", (Not(cond), other))))
    if isinstance(expr, sp.Xor):
        out = args[0]
        for a in args[1:]:
            out = Logic("or", (Logic("and", (out, Not(a))), Logic("and", (Not(out), a))))
        return out
    funcs = {sp.exp: "exp", sp.log: "log", sp.Abs: "abs", sp.Min: "min", sp.Max: "max", sp.sin: "sin",
             sp.cos: "cos", sp.tanh: "tanh", sp.floor: "floor", sp.ceiling: "ceil", sp.tan: "tan", sp.sinh: "sinh",
             sp.cosh: "cosh", sp.asin: "asin", sp.acos: "acos", sp.atan: "atan"}
    for cls, name in funcs.items():
        if isinstance(expr, cls):
            return Call(name, tuple(args))
    if isinstance(expr, _sympy_factorial()):
        return Call("factorial", tuple(args))
    if isinstance(expr, sp.sign):
        x = args[0]
        return Call("piecewise", (Num(1.0), Compare(">", x, Num(0.0)), Num(-1.0), Compare("<", x, Num(0.0)), Num(0.0)))
    if isinstance(expr, (sp.Heaviside,)):
        x = args[0]
        return Call("piecewise", (Num(1.0), Compare(">", x, Num(0.0)), Num(0.0)))
    raise TypeError(f"cannot convert {expr.func.__name__} back to an ilsim expression")
