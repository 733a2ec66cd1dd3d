"""Units with meaning: every unit label of a model parsed by pint, extended with the domain's units.

A label is a unit expression (``pg/mL``, ``1/(1e6 cells/cc * hour)``, ``cells/uL per day``) optionally
followed by a note a reader needs (``1e9 cells/L (neutrophil equivalents)``, ``fraction of baseline``,
``1e6 CFU-equivalent``); a range such as ``0..1`` or ``(0-1)`` means a dimensionless quantity. Unknown
units are refused with the nearest known one. Expressions are checked for consistent dimensions, which
gives warnings (UnitWarning), never errors: published models are not always consistent.
"""

from __future__ import annotations

import functools
import math
import re
import sys
import warnings

from ilsim.errors import closest
from ilsim.model import expressions as ex

MAX_UNIT_CHARS = 200  # a unit label longer than this is not a unit (pint parses it character by character)

# the domain's units: each non-physical quantity is its own dimension, so that adding cells to pg/mL warns
_DEFINITIONS = (
    "cell = [cell] = cells",
    "colony_forming_unit = [pathogen] = CFU",
    "international_unit = [international_unit] = IU",
    "MIU = 1e6 * international_unit",
    "arbitrary_unit = [arbitrary] = _AU = units",
    "allergen_unit = [allergen] = UA",
    "antigen_unit = [antigen]",
    "activation_unit = [activation]",
    "damage_unit = [damage]",
    "IL2_unit = [IL2]",
    "fraction = 1 = fractions",
    "signal = 1 = signals",
    "ctcae_grade = 1",
    "copy = 1 = copies",
    "dose = 1 = doses",
    "episode = 1 = episodes",
    "index = 1 = indices",
    "m2 = meter ** 2",
    "mm3 = millimeter ** 3",
    "item = 1 = items",  # SBML's base unit for a count of entities (molecules, cells)
    "substance = mole",  # SBML's predefined units (Level 2): what an imported model's labels may name
    "volume = liter",
    "area = meter ** 2",
    "time = second",
    "pM = picomolar",
    "nM = nanomolar",
    "uM = micromolar",
)
# several words that name one unit (longest first), and symbols pint reads otherwise ('AU' is an astronomical unit)
_PHRASES = (
    ("arbitrary damage units", "damage_unit"), ("damage units", "damage_unit"), ("damage unit", "damage_unit"),
    ("% damage", "percent"), ("arbitrary units", "_AU"), ("allergen units", "UA"), ("antigen units", "antigen_unit"),
    ("antigen unit", "antigen_unit"), ("activation units", "activation_unit"), ("IL-2 units", "IL2_unit"),
    ("CTCAE grade", "ctcae_grade"),
)
_INTERLEUKIN_SIGNAL = re.compile(r"\bIL-?\d+\w*\s+(signal)")  # 'IL-6 signal': a signal
_WORD_AU = re.compile(r"\bAU\b|\ba\.u\.(?!\w)")  # 'a.u.' too: pint reads it as year x atomic mass unit
_RANGE = re.compile(r"^\(?\s*-?[\d.]+\s*(\.\.|-|–|or|to)\s*-?[\d.]+\s*\)?$")
_NOTE = re.compile(r"^(.*\S)\s+\(([^()]*)\)$")  # 'cells/uL (tissue, scaled)', but not 'x per (cells/uL)'
_OPERATOR_END = re.compile(r"(\bper|\bx|[*/])$")
_NUMBER_AFTER_SLASH = re.compile(r"/\s*(\d+(?:\.\d+)?(?:e-?\d+)?)\s*([A-Za-z_]\w*)")  # 'episodes/24h' per 24 hours
_EQUIVALENT = re.compile(r"-equivalents?\b")
# suggestions for a misspelt unit: the usual ones first, then every unit pint knows
COMMON = ("pM", "nM", "uM", "mM", "pg/mL", "ng/mL", "ug/mL", "mg/L", "mg", "ug", "g", "kg", "L", "mL", "uL", "cc",
          "cells", "cells/uL", "cells/L", "IU", "MIU", "IU/L", "CFU", "copies", "day", "hour", "minute", "week",
          "1/day", "1/hour", "fraction", "percent", "dimensionless", "mmHg", "degC", "m2", "AU", "UA", "signal")


class UnitWarning(UserWarning):
    """An expression whose units do not match what it is used for (a rate against its species' units per time)."""


class UnitError(ValueError):
    """A unit label that does not parse (raised by ``parse``; the schema turns it into a ModelError)."""


def _import_pint():
    """pint, imported without its dask integration when dask is not loaded yet: pint.compat imports dask whenever
    it is installed (0.1-0.5 s, more than pint itself), and ilsim never hands pint a dask array."""
    if "pint" in sys.modules or "dask" in sys.modules:
        import pint

        return pint
    sys.modules["dask"] = None  # importlib.util.find_spec, which pint.compat asks, then reports dask as absent
    try:
        import pint
    finally:
        if "dask" in sys.modules and sys.modules["dask"] is None:
            del sys.modules["dask"]  # a later `import dask` by the user's code works as before
    return pint


@functools.lru_cache(maxsize=1)
def registry():
    pint = _import_pint()  # lazy: about 0.3 s to import and 0.5 s to build, needed only when units are read

    reg = pint.UnitRegistry(cache_folder=None, autoconvert_offset_to_baseunit=True)
    for line in _DEFINITIONS:
        reg.define(line)
    return reg


def _normalise(label: str) -> str:
    """A label as a pint expression: phrases as single units, 'per' and 'x' as operators, notes dropped."""
    text = " ".join(label.split())
    for phrase, name in _PHRASES:
        text = text.replace(phrase, name)
    text = _INTERLEUKIN_SIGNAL.sub(r"\1", text)
    text = _WORD_AU.sub("_AU", _EQUIVALENT.sub("", text))
    text = _NUMBER_AFTER_SLASH.sub(r"/(\1 \2)", "1" + text if text.startswith("/") else text)
    text = text.split(" of ", 1)[0]  # 'fraction of baseline': a note after the unit
    text = re.sub(r"\s+x\s+", " * ", text)
    parts = text.split(" per ")
    return parts[0] if len(parts) == 1 else " / ".join(f"({p})" for p in parts)


@functools.lru_cache(maxsize=4096)
def parse(label: str):
    """The unit of a label as a pint Quantity (its magnitude is the label's scale, e.g. 1e6 for '1e6 cells/cc');
    raise UnitError naming the unknown unit and the nearest known one."""
    reg = registry()
    text = str(label).strip()
    if len(text) > MAX_UNIT_CHARS:
        raise UnitError(f"a unit label of at most {MAX_UNIT_CHARS} characters, got {len(text)}")
    if not text or text.lower() in ("dimensionless", "1", "none", "-") or _RANGE.match(text):
        return reg.Quantity(1.0)
    note = _NOTE.match(text)  # '1e9 cells/L (neutrophil equivalents)', 'fraction (0-1)': a note, not a unit
    if note and not _OPERATOR_END.search(note.group(1)):
        return parse(note.group(1))
    return _quantity(reg, _normalise(text))


_POWER = re.compile(r"(\*\*|\^)\s*")
_SMALL_EXPONENT = re.compile(r"\(?-?\d{1,2}(\.\d*)?\)?(?![\d.]|\s*(\*\*|\^))")


def _quantity(reg, text: str):
    import pint

    for power in _POWER.finditer(text):  # pint computes numbers exactly: 9**9**9 would never finish
        before = text[:power.start()].rstrip()
        if (before[-1:].isdigit() and not re.search(r"[A-Za-z_]\d+$", before)) or not _SMALL_EXPONENT.match(text, power.end()):
            raise UnitError("a power in a unit must be a unit to a small number (m**2, cm^3)")

    try:
        value = reg.parse_expression(text)
    except pint.UndefinedUnitError as exc:
        name = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
        near = closest(name, COMMON) or closest(name, [u for u in reg._units if len(u) > 1])
        hint = f" (did you mean '{near}'?)" if near else ""
        raise UnitError(f"unknown unit '{name}'{hint}") from None
    except Exception:  # noqa: BLE001 - pint's tokenizer and evaluator raise many kinds on text that is not a unit
        raise UnitError("not a unit expression") from None
    if not isinstance(value, reg.Quantity):
        value = reg.Quantity(float(value))
    try:
        scale = float(value.magnitude)
    except (OverflowError, TypeError, ValueError):
        scale = math.inf
    if not math.isfinite(scale) or scale == 0:
        raise UnitError("the scale of a unit must be a finite, non-zero number")
    return value


def check(label: str) -> str:
    """A schema validator: the label unchanged when it parses, else ValueError with the reason."""
    try:
        parse(label)
    except UnitError as exc:
        message = str(exc)
        if message.startswith("unknown unit") and str(label).strip() != message.split("'")[1]:
            message = message.replace("'", f"' in '{str(label).strip()[:MAX_UNIT_CHARS]}'", 2).replace(
                f"' in '{str(label).strip()[:MAX_UNIT_CHARS]}'", "'", 1)
        raise ValueError(message if message.startswith("unknown unit") else f"'{label}' is not a unit: {message}") from None
    return label


UNDECLARED_TIME = ("time", "dimensionless")  # SBML models that do not say their time unit


def check_time(label: str) -> str:
    """A validator for time_units: a unit of time."""
    if label in UNDECLARED_TIME:
        return label
    check(label)
    if parse(label).dimensionality != registry().Quantity(1.0, "hour").dimensionality:
        raise ValueError(f"time_units must be a unit of time (hour, day, ...), got '{label}'")
    return label


def hours_per(time_units: str) -> float | None:
    """Hours in one unit of ``time_units`` ('hour', 'days', 'min', ...), or None if it is not a unit of time."""
    if time_units in UNDECLARED_TIME:
        return None
    try:
        q = parse(str(time_units))
        return float(q.to("hour").magnitude)
    except Exception:  # noqa: BLE001 - pint's DimensionalityError and ours alike mean 'not a time'
        return None


def to_units(amount: float, from_units: str, to_units: str) -> float | None:
    """``amount`` of ``from_units`` in ``to_units``, or None when the two are not of one dimension."""
    try:
        return float((amount * parse(from_units)).to(parse(to_units)).magnitude / parse(to_units).magnitude)
    except Exception:  # noqa: BLE001 - DimensionalityError, UnitError
        return None


# ------------------------------------------------------------------------------------ dimensions

class _Any:
    """The dimension of a bare number: whatever its context needs (models write 0.5*x and x + 1)."""


ANY = _Any()


def dimension_problems(tree: ex.Expr, units: dict[str, object]) -> tuple[object, list[str]]:
    """The dimension (a pint Quantity of magnitude 1, or ANY, or None when unknown) of an expression whose names
    have the ``units`` given (Quantities; a name not there is unknown), and what is inconsistent inside it."""
    reg = registry()
    found: list[str] = []
    one = reg.Quantity(1.0)

    def same(a, b, what: str):
        if a is None or b is None:
            return None
        if a is ANY:
            return b
        if b is ANY or a.dimensionality == b.dimensionality:
            return a
        found.append(f"{what}: {_show(a)} and {_show(b)}")
        return None

    def dimensionless(a, what: str):
        if a is not None and a is not ANY and not a.dimensionless:
            found.append(f"{what} needs a dimensionless argument, got {_show(a)}")

    def walk(node):
        if isinstance(node, ex.Num):  # a count (2*k*A) is dimensionless; 0.1005*A may carry 1/hour: unknown
            return ANY if node.value.is_integer() or not math.isfinite(node.value) else None
        if isinstance(node, ex.Name):
            return units.get(node.id)
        if isinstance(node, ex.Neg):
            return walk(node.arg)
        if isinstance(node, ex.BinOp):
            a, b = walk(node.left), walk(node.right)
            if node.op in "+-":
                return same(a, b, f"'{ex.to_text(node)[:80]}' adds or subtracts different units")
            if node.op == "**":
                dimensionless(b, "an exponent")
                if a is ANY or a is None:
                    return a
                if isinstance(node.right, ex.Num) and math.isfinite(node.right.value):
                    return a ** node.right.value
                dimensionless(a, f"'{ex.to_text(node)[:80]}' (a power with a variable exponent)")
                return one
            if a is None or b is None:
                return None
            if a is ANY or b is ANY:
                other = b if a is ANY else a
                if other is ANY or other.dimensionless:  # a number times a pure number (3*hill(...), 2*D in %):
                    return ANY  # a number whose units are what its context needs, as export-sbml writes it
                return (b if node.op == "*" else 1 / b) if a is ANY else a
            return a * b if node.op == "*" else a / b
        if isinstance(node, ex.Compare):
            same(walk(node.left), walk(node.right), f"'{ex.to_text(node)[:80]}' compares different units")
            return one
        if isinstance(node, (ex.Logic, ex.Not)):
            for child in ex.children(node):
                walk(child)
            return one
        if isinstance(node, ex.Call):
            args = [walk(a) for a in node.args]
            f = node.func
            if f == "hill":
                same(args[0], args[1], "hill(x, K, n): x and K have different units")
                dimensionless(args[2], "hill's exponent n")
                return one
            if f == "piecewise":
                out = args[-1]
                for value in args[:-1:2]:
                    out = same(out, value, "the branches of a piecewise (if/else) have different units")
                return out
            if f in ("min", "max"):
                out = args[0]
                for a in args[1:]:
                    out = same(out, a, f"the arguments of {f}() have different units")
                return out
            if f in ("abs", "floor", "ceil"):
                return args[0]
            if f == "sqrt":
                return args[0] if args[0] is None or args[0] is ANY else args[0] ** 0.5
            for a in args:
                dimensionless(a, f"{f}()")
            return one
        return None

    try:
        return walk(tree), found
    except RecursionError:  # bounded by the parser's depth limit; never fail a compile over a warning
        return None, found


def _dimension(q):
    """A unit as a Quantity of magnitude 1 in base units (degC as kelvin: offset units do not multiply)."""
    return registry().Quantity(1.0, q.to_base_units().units)


def _show(q) -> str:
    return "dimensionless" if q.dimensionless else str(q.dimensionality).replace(" ** ", "^")


def unit_warnings(spec, rate_trees, observables: list[tuple[str, ex.Expr]], origins: dict[str, str] | None = None,
                  source: str | None = None) -> list:
    """Problems (to be shown as warnings) where a rate's dimensions are not its species' units per time unit, or an
    observable's are not its declared units, or an expression combines units inconsistently."""
    from ilsim.errors import Problem

    origins = origins or {}
    try:
        time = parse(spec.metadata.time_units)
    except UnitError:
        return []
    if time.dimensionless:  # an SBML model's undeclared time: every rate 'per time' is unknown
        return []
    units: dict[str, object] = {ex.TIME: _dimension(time)}

    def declared(entry):
        if "units" not in entry.model_fields_set:
            return None  # never stated: unknown, not dimensionless
        try:
            q = parse(entry.units)
        except UnitError:
            return None
        return _dimension(q)

    for entry in [*spec.species, *spec.parameters, *spec.observables]:
        units[entry.name] = declared(entry)
    out = []

    def warn(field: str, message: str) -> None:
        out.append(Problem(origins.get(field, field), message, source))

    index = {o.name: i for i, o in enumerate(spec.observables)}
    for name, tree in observables:
        i = index[name]
        got, found = dimension_problems(tree, units)
        for f in found:
            warn(f"observables[{i}].expression", f)
        want = units.get(name)
        if want is not None and got is not None and got is not ANY and got.dimensionality != want.dimensionality:
            warn(f"observables[{i}].expression", f"has units of {_show(got)}, but the observable is declared in "
                 f"'{spec.observables[i].units}' ({_show(want)})")
    species = {s.name: s for s in spec.species}
    for j, (process, tree) in enumerate(zip(spec.processes, rate_trees)):
        if tree is None:
            continue
        got, found = dimension_problems(tree, units)
        for f in found:
            warn(f"processes[{j}].rate", f)
        if got is None or got is ANY:
            continue
        counts = {**process.consumes, **process.produces}
        for name, count in counts.items():
            want = units.get(name)
            if want is None or name not in species or not float(count).is_integer():
                continue  # a count such as 0.1 (% damage per 1e6 CFU killed) may carry units, as a number in a rate may
            if got.dimensionality != (want / units[ex.TIME]).dimensionality:
                warn(f"processes[{j}].rate", f"has units of {_show(got)}, but a rate of '{name}' "
                     f"({species[name].units}) per {spec.metadata.time_units} is {_show(want / units[ex.TIME])}")
                break
    return out


def warn_all(problems) -> None:
    """Each problem as a UnitWarning; control characters of the model's text escaped (a warning reaches a terminal)."""
    for p in problems:
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(p))
        warnings.warn(text, UnitWarning, stacklevel=3)
