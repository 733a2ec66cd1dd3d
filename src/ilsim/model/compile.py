"""ModelSpec -> CompiledModel: names resolved, stoichiometry built, kernels generated.

Every engine consumes a CompiledModel. Kernels (right-hand side, Jacobian) are Python source
generated from the checked expression trees and compiled with numba when it is installed; the
source is written to a cache folder keyed by its hash so numba's on-disk cache makes the second
run of a model start fast. Observables are generated as vectorised NumPy code over a trajectory.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ilsim._version import __version__
from ilsim.errors import ExpressionError, IlsimError, ModelError, Problem, argument, did_you_mean
from ilsim.model import expressions as ex
from ilsim.model import units
from ilsim.model.derivative import Differentiator
from ilsim.model.sections.plots import plot_problems
from ilsim.model.spec import FAULT_MODES, ModelSpec

STATE, PARAM, OBS = "state", "parameter", "observable"


@dataclass(frozen=True)
class CompiledEvent:
    name: str
    times: tuple[float, ...]  # timed events; empty for condition events
    condition: ex.Expr | None  # condition events: fire when this becomes true
    actions: tuple[tuple[str, str, int, ex.Expr], ...]  # (mode set/add, STATE/PARAM, index, value)
    depends: frozenset[tuple[str, int]] = frozenset()  # species and parameters the condition reads
    guard: ex.Expr | None = None  # tested when the event fires; actions apply only if it holds
    delay: ex.Expr | None = None  # evaluated when the event triggers; its actions apply that much later
    persistent: bool = True  # a delayed event still applies if its condition turned false meanwhile
    values_at_trigger: bool = True  # a delayed event's values are computed when it triggers


@dataclass(frozen=True)
class CompiledOutcome:
    label: str
    condition: ex.Expr


@dataclass
class CompiledModel:
    """A model ready to integrate: ordered names, stoichiometry, generated kernels."""

    spec: ModelSpec
    source: str | None
    species: tuple[str, ...]
    parameters: tuple[str, ...]
    observables: tuple[str, ...]  # in evaluation order (each may use the ones before it)
    p0: np.ndarray
    stoichiometry: np.ndarray  # species x processes
    nonnegative: np.ndarray  # bool per species
    initial_trees: tuple[ex.Expr, ...]
    rate_trees: tuple[ex.Expr, ...]
    observable_trees: tuple[ex.Expr, ...]
    rhs_trees: tuple[ex.Expr, ...]  # d(species)/dt, written with observable names
    events: tuple[CompiledEvent, ...]
    outcomes: tuple[CompiledOutcome, ...]
    derived: tuple[tuple[str, ex.Expr], ...] = ()  # parameter-only quantities, e.g. R0
    jit: bool | str = "auto"  # True: numba-compiled kernels; False: plain Python; "auto": tiered (see kernels)
    # (key, function of a run's Dataset): summary entries the domain layers compute (the dose log, CTCAE
    # grades); io stores what they return with the run and grades nothing itself
    reporters: tuple[tuple[str, Callable], ...] = ()
    # where a rate's or readout's dimensions do not match its units (shown by `ilsim validate`, warned at compile)
    unit_warnings: tuple[Problem, ...] = ()
    _kernels: dict = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.spec.metadata.name

    @cached_property
    def _species_index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.species)}

    @cached_property
    def _param_index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.parameters)}

    def parameter_vector(self, overrides: dict[str, float] | None = None, source: str | None = None) -> np.ndarray:
        """The parameter values, with overrides by name (unknown names are a ModelError naming ``source``, the
        caller's word for the overrides: ``parameters`` from Python, ``--set`` from the CLI)."""
        source = source or argument("parameters")
        p = self.p0.copy()
        for name, value in (overrides or {}).items():
            if name not in self._param_index:
                hint = did_you_mean(name, self.parameters)
                raise ModelError([Problem(source, f"unknown parameter '{name}'{hint}", self.source)])
            try:
                p[self._param_index[name]] = float(value)
            except (TypeError, ValueError):
                raise ModelError([Problem(source, f"value of '{name}' must be a number, got {value!r}", self.source)]) from None
        return p

    def fault_overrides(self, faults: dict[str, float] | None, source: str | None = None) -> dict[str, float]:
        """Parameter values that apply fault modes at given severities (0 intact .. 1 complete)."""
        source = source or argument("faults")
        declared = {f.mode: f for f in self.spec.faults}
        out: dict[str, float] = {}
        for mode, severity in (faults or {}).items():
            if mode not in declared:
                if mode in FAULT_MODES:
                    msg = f"model '{self.name}' declares no fault '{mode}'"
                else:
                    msg = f"unknown fault mode '{mode}'{did_you_mean(mode, FAULT_MODES)}"
                known = ", ".join(declared) or "none"
                raise ModelError([Problem(source, f"{msg}; its fault modes: {known}", self.source)])
            try:
                value = float(severity)
            except (TypeError, ValueError):
                msg = f"severity of '{mode}' must be a number, got {severity!r}"
                raise ModelError([Problem(source, msg, self.source)]) from None
            if not 0.0 <= value <= 1.0:
                raise ModelError([Problem(source, f"severity of '{mode}' must be between 0 and 1, got {value:g}", self.source)])
            for name in declared[mode].parameters:
                out[name] = value
        return out

    def initial_state(self, p: np.ndarray) -> np.ndarray:
        return np.array(self.kernels["initial"](p), dtype=float)

    # ----------------------------------------------------------------------------- kernels
    @property
    def kernels(self) -> dict:
        """The model's kernels: numba-compiled (``jit=True``) or plain Python (``jit=False``, and ``"auto"``, the
        default, whose runs switch to the compiled ones as they go: ``run_kernels``)."""
        if "rhs" not in self._kernels:  # (compiled_kernels may have been built first, under "_compiled")
            self._kernels.update(_build_kernels(self, self.jit is True))
        return self._kernels

    def compiled_kernels(self) -> dict:
        """The numba-compiled kernels, whatever ``jit`` says the default ones are (fitting hands them to LSODA as
        compiled calls); built once per model and process."""
        if self.jit is True:
            return self.kernels
        with _COMPILING:  # (two threads' runs of one model crossing the switch together: one compilation)
            if "_compiled" not in self._kernels:
                self._kernels["_compiled"] = _build_kernels(self, True)
        return self._kernels["_compiled"]

    def run_kernels(self) -> dict:
        """The right-hand side (it may return a list) and Jacobian one run of the ODE engine starts with, and when it
        is to switch. With
        ``jit="auto"`` (the default) they are tiered: plain Python until the model has made ``TIERED_CALLS``
        right-hand-side calls in this process (over all its runs, ``count_calls``), then compiled, so a short run of a
        new model waits for no compiler while long or repeated runs run compiled. ``"compile_after"``: the run's call
        at which to take ``"compiled"()`` instead (None: never). Plain and compiled kernels give the same bits
        (model/ieee.py), so where a run switches changes no number: a run's numbers do not depend on what ran before
        it in the process."""
        if self.jit != "auto":
            return {"rhs": self.kernels["rhs_list"], "jac": self.kernels["jac"], "compile_after": None, "compiled": None}
        left = TIERED_CALLS - self._kernels.get("_calls", 0)
        kernels = self.kernels if left > 0 and "_compiled" not in self._kernels else self.compiled_kernels()
        return {"rhs": kernels["rhs_list"], "jac": kernels["jac"], "compiled": self.compiled_kernels,
                "compile_after": left if kernels is self.kernels else None}

    def count_calls(self, calls: int) -> None:
        """A run's right-hand-side calls, added to the model's count (``run_kernels``). Not locked: runs in threads
        may lose a few, which only moves the switch."""
        self._kernels["_calls"] = self._kernels.get("_calls", 0) + calls

    def rhs(self, y: np.ndarray, t: float, p: np.ndarray) -> np.ndarray:
        return self.kernels["rhs"](y, t, p)

    def jacobian(self, y: np.ndarray, t: float, p: np.ndarray) -> np.ndarray:
        return self.kernels["jac"](y, t, p)

    def observe(self, t: np.ndarray, states: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Observables along a trajectory: (times x species) -> (times x observables)."""
        if not self.observables:
            return np.empty((len(t), 0))
        with np.errstate(all="ignore"):  # 0/0 or overflow in a readout: NaN/inf, reported by the summary
            cols = self.kernels["observe"](np.asarray(t, float), np.asarray(states, float), p)
        return np.column_stack([np.broadcast_to(np.asarray(c, float), (len(t),)) for c in cols])

    def evaluate(self, node: ex.Expr, t: float, y: np.ndarray, p: np.ndarray):
        """Value of an expression (e.g. an event condition) at one state; for rare calls only."""
        return ex.evaluate(node, self.namespace(t, y, p))

    def derived_values(self, p: np.ndarray) -> dict[str, float]:
        values = dict(zip(self.parameters, map(float, p)))
        return {name: float(ex.evaluate(node, values)) for name, node in self.derived}

    def namespace(self, t: float, y: np.ndarray, p: np.ndarray) -> dict[str, float]:
        values: dict[str, float] = {"t": float(t)}
        values.update(zip(self.parameters, map(float, p)))
        values.update(self.derived_values(p))
        values.update(zip(self.species, map(float, y)))
        if self.observables:
            obs = self.observe(np.array([t]), np.asarray(y, float)[None, :], p)[0]
            values.update(zip(self.observables, map(float, obs)))
        return values


# ------------------------------------------------------------------------- domain sections


@dataclass(frozen=True)
class Expanded:
    """A spec as the domain layers hand it to the compiler: a plain reaction network."""

    spec: ModelSpec  # include:, doses:, motifs: ... replaced by species, parameters, processes, events
    origins: dict[str, str] = field(default_factory=dict)  # generated field -> the section field that made it
    problems: tuple[Problem, ...] = ()  # what only a domain can check (catalogue names, CTCAE terms)
    reporters: tuple[tuple[str, Callable], ...] = ()  # see CompiledModel.reporters

# Sections of a model file that only the layers above this one give meaning to.
DOMAIN_SECTIONS = ("include", "motifs", "pk", "doses", "patient", "toxicity", "interleukins", "cell_types")

# The model layer imports nothing above it, so the domain layers hand it their expansion: ilsim.domain sets it,
# and the package imports ilsim.domain first, before any of its modules can be used.
_expansion: list[Callable[[ModelSpec, str | None, bool], Expanded]] = []


def set_expansion(expand: Callable[[ModelSpec, str | None, bool], Expanded]) -> None:
    """``expand(spec, source, allow_high_dose) -> Expanded`` runs before every compile (one, set by ilsim.domain)."""
    _expansion[:] = [expand]


def _expand(spec: ModelSpec, source: str | None, allow_high_dose: bool) -> Expanded:
    if _expansion:
        return _expansion[0](spec, source, allow_high_dose)
    used = [name for name in DOMAIN_SECTIONS if getattr(spec, name)]
    if used or any(s.interleukin or s.cell_type for s in spec.species):
        raise IlsimError(f"model '{spec.name}' uses {', '.join(used) or 'catalogue names'}, which need the domain layers: "
                         "import ilsim (it sets them up) before compiling")
    return Expanded(spec)


# --------------------------------------------------------------------------------- checks


def compile_model(spec: ModelSpec, source: str | None = None, jit: bool | str | None = None,
                  allow_high_dose: bool = False) -> CompiledModel:
    """Resolve every name and build a CompiledModel; raise ModelError listing every problem.

    The domain sections are expanded first (``include:``, then doses, then motifs: see ``ilsim.domain``)."""
    expanded = _expand(spec, source, allow_high_dose)
    spec, origins = expanded.spec, expanded.origins
    problems: list[Problem] = list(expanded.problems)

    def bad(field_: str, message: str) -> None:
        # a mistake in an entry generated by a motif is reported at the motif's field
        problems.append(Problem(origins.get(field_, field_), message, source))

    def parse(field_: str, text) -> ex.Expr | None:
        try:
            return ex.parse(text)
        except ExpressionError as exc:
            bad(field_, str(exc))
            return None

    species = [s.name for s in spec.species]
    params = [p.name for p in spec.parameters]
    obs = [o.name for o in spec.observables]
    seen: dict[str, str] = {}
    for section, names in (("species", species), ("parameters", params), ("observables", obs)):
        for i, n in enumerate(names):
            if n in seen:
                bad(f"{section}[{i}].name", f"duplicate name '{n}' (already used in {seen[n]})")
            else:
                seen[n] = section
    known = set(species) | set(params) | set(obs) | {ex.TIME}

    def resolve(field_: str, text, allowed: set[str], what: str = "name") -> ex.Expr | None:
        node = parse(field_, text)
        if node is None:
            return None
        for n in sorted(node.names() - allowed):
            if n in known:
                bad(field_, f"'{n}' cannot be used here (only {what})")
            else:
                bad(field_, f"unknown name '{n}'{did_you_mean(n, known)}")
        return node

    def numeric(field_: str, node: ex.Expr | None, condition: bool) -> ex.Expr | None:
        if node is not None and ex.is_condition(node) != condition:
            bad(field_, "expected a condition (e.g. 'P < 0.01')" if condition else "expected a value, got a condition")
            return None
        return node

    initial = [
        numeric(f"species[{i}].initial", resolve(f"species[{i}].initial", s.initial, set(params), "parameters"), False)
        for i, s in enumerate(spec.species)
    ]
    for i, s in enumerate(spec.species):  # the parameter holding its compartment's volume (the stochastic engine's)
        if s.compartment is not None and s.compartment not in params:
            bad(f"species[{i}].compartment", f"'{s.compartment}' is not a parameter (the volume of the species' "
                                            f"compartment){did_you_mean(s.compartment, params)}")
    observables = _order_observables(spec, resolve, numeric, bad)
    rates = [
        numeric(f"processes[{j}].rate", resolve(f"processes[{j}].rate", pr.rate, known), False)
        for j, pr in enumerate(spec.processes)
    ]
    stoich = np.zeros((len(species), len(spec.processes)))
    index = {n: i for i, n in enumerate(species)}
    for j, pr in enumerate(spec.processes):
        for side, sign in (("consumes", -1.0), ("produces", 1.0)):
            for name, count in getattr(pr, side).items():
                if name not in index:
                    bad(f"processes[{j}].{side}", f"unknown species '{name}'{did_you_mean(name, species)}")
                else:
                    stoich[index[name], j] += sign * count

    events = []
    for k, ev in enumerate(spec.events):
        for time in ev.times:
            if time < 0:
                bad(f"events[{k}].at", f"event time {time} is in the past (the run starts at t = 0)")
        cond = guard = None
        if ev.when is not None:
            cond = numeric(f"events[{k}].when", resolve(f"events[{k}].when", ev.when, known), True)
        if ev.only_if is not None:
            guard = numeric(f"events[{k}].only_if", resolve(f"events[{k}].only_if", ev.only_if, known), True)
        actions = []
        for mode in ("set", "add"):
            for target, value in getattr(ev, mode).items():
                where = f"events[{k}].{mode}.{target}"
                if target in index:
                    kind, i = STATE, index[target]
                elif target in params:
                    kind, i = PARAM, params.index(target)
                else:
                    bad(where, f"unknown species or parameter '{target}'{did_you_mean(target, species + params)}")
                    continue
                node = numeric(where, resolve(where, value, known), False)
                if node is not None:
                    actions.append((mode, kind, i, node))
        delay = None
        if ev.delay is not None:
            delay = numeric(f"events[{k}].delay", resolve(f"events[{k}].delay", ev.delay, known), False)
        events.append(CompiledEvent(ev.name, tuple(ev.times), cond, tuple(actions), _depends(cond, spec), guard,
                                    delay, ev.persistent, ev.values_at_trigger))

    modes_seen: set[str] = set()
    for k, fault in enumerate(spec.faults):
        if fault.mode in modes_seen:
            bad(f"faults[{k}].mode", f"fault mode '{fault.mode}' is declared twice")
        modes_seen.add(fault.mode)
        for i, name in enumerate(fault.parameters):
            if name not in params:
                bad(f"faults[{k}].parameters[{i}]", f"unknown parameter '{name}'{did_you_mean(name, params)}")
    for name in spec.population.parameters if spec.population else ():
        if name not in params:  # the population varies model parameters only (covariates may be new names)
            bad(f"population.parameters.{name}", f"unknown parameter '{name}'{did_you_mean(name, params)}")

    for where, message in plot_problems(spec):
        bad(where, message)

    derived = []
    for k, d in enumerate(spec.derived):
        where = f"derived[{k}].expression"
        if d.name in seen:
            bad(f"derived[{k}].name", f"duplicate name '{d.name}' (already used in {seen[d.name]})")
        seen[d.name] = "derived"
        derived.append((d.name, numeric(where, resolve(where, d.expression, set(params), "parameters"), False)))

    outcomes = []
    for k, oc in enumerate(spec.outcomes):
        where = f"outcomes[{k}].when"
        cond = numeric(where, resolve(where, oc.when, known | {name for name, _ in derived}), True)
        outcomes.append(CompiledOutcome(oc.label, cond))

    p0 = np.array([p.value for p in spec.parameters], dtype=float)
    values = dict(zip(params, p0))
    for i, (s, node) in enumerate(zip(spec.species, initial)):
        if node is None or problems:
            continue
        value = ex.evaluate(node, values)
        if not np.isfinite(value):
            bad(f"species[{i}].initial", f"initial value of '{s.name}' is not a finite number ({value})")
        elif value < 0 and s.nonnegative:
            bad(f"species[{i}].initial", f"initial value of '{s.name}' is {value:g}, but it cannot be negative "
                "(declare 'nonnegative: false' if it may)")

    if problems:
        raise ModelError(problems)

    obs_order = [name for name, _ in observables]
    unit_warnings = units.unit_warnings(spec, rates, observables, origins, source)
    units.warn_all(unit_warnings)
    return CompiledModel(
        spec=spec,
        source=source,
        species=tuple(species),
        parameters=tuple(params),
        observables=tuple(obs_order),
        p0=p0,
        stoichiometry=stoich,
        nonnegative=np.array([s.nonnegative for s in spec.species], dtype=bool),
        initial_trees=tuple(initial),
        rate_trees=tuple(rates),
        observable_trees=tuple(node for _, node in observables),
        rhs_trees=tuple(_rhs_tree(stoich[i], rates) for i in range(len(species))),
        events=tuple(events),
        outcomes=tuple(outcomes),
        derived=tuple(derived),
        jit=_jit_default() if jit is None else jit,
        reporters=expanded.reporters,
        unit_warnings=tuple(unit_warnings),
    )


def _depends(node: ex.Expr | None, spec: ModelSpec) -> frozenset[tuple[str, int]]:
    """The (STATE/PARAM, index) pairs an expression reads, through observables."""
    if node is None:
        return frozenset()
    species = {s.name: i for i, s in enumerate(spec.species)}
    params = {p.name: i for i, p in enumerate(spec.parameters)}
    observables = {o.name: o.expression for o in spec.observables}
    out, todo, seen = set(), list(node.names()), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in species:
            out.add((STATE, species[name]))
        elif name in params:
            out.add((PARAM, params[name]))
        elif name in observables:
            todo.extend(ex.parse(observables[name]).names())
    return frozenset(out)


def _order_observables(spec, resolve, numeric, bad) -> list[tuple[str, ex.Expr]]:
    """Observables in an order where each only uses ones computed before it (cycles are errors)."""
    trees: dict[str, ex.Expr] = {}
    where: dict[str, str] = {}
    known = None
    for i, o in enumerate(spec.observables):
        field_ = f"observables[{i}].expression"
        known = known or {s.name for s in spec.species} | {p.name for p in spec.parameters} | {
            x.name for x in spec.observables} | {ex.TIME}
        node = numeric(field_, resolve(field_, o.expression, known), False)
        if node is not None:
            trees[o.name] = node
            where[o.name] = field_
    ordered: list[tuple[str, ex.Expr]] = []
    done: set[str] = set()
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycle = " -> ".join(visiting[visiting.index(name):] + [name])
            bad(where[name], f"observables refer to each other in a cycle: {cycle}")
            raise _Cycle
        visiting.append(name)
        for dep in sorted(trees[name].names() & trees.keys()):
            visit(dep)
        visiting.pop()
        done.add(name)
        ordered.append((name, trees[name]))

    try:
        for name in trees:
            visit(name)
    except _Cycle:
        return []
    return ordered


class _Cycle(Exception):
    pass


def _rhs_tree(row: np.ndarray, rates: list[ex.Expr]) -> ex.Expr:
    """sum_j S_ij * rate_j as a readable tree: c*T - mu2*E + ..."""
    out: ex.Expr | None = None
    for coef, rate in zip(row, rates):
        if coef == 0 or rate is None:
            continue
        term = rate if abs(coef) == 1 else ex.BinOp("*", ex.Num(float(abs(coef))), rate)
        if out is None:
            out = term if coef > 0 else ex.Neg(term)
        else:
            out = ex.BinOp("+" if coef > 0 else "-", out, term)
    return out if out is not None else ex.Num(0.0)


def _jit_default() -> bool | str:
    """ILSIM_JIT=1: compiled kernels from the start; 0: plain Python throughout; unset: tiered ("auto")."""
    return {"0": False, "1": True}.get(os.environ.get("ILSIM_JIT", ""), "auto")


# A model's kernels are plain Python for its first this many right-hand-side calls in a process, then compiled
# (numba, cached on disk and built once per process): a plain call of a small model costs 1-30 µs, compiling a
# right-hand side 0.2-2 s, so runs switch after a few tenths of a second of plain calls, and a first run shorter than
# that (most single runs) never waits for the compiler. Counted per model over its runs (a scan of short runs
# compiles too); the count decides only the speed, never a number, as both kernels give the same bits.
TIERED_CALLS = 20_000
_COMPILING = threading.Lock()
_DERIVING = threading.RLock()


# ------------------------------------------------------------------------------- codegen


# The top of every generated module: numba when installed (else plain Python), hill() and factorial().
_PRELUDE = (
    "import math",
    "from math import copysign as _copysign, gamma as _gamma",
    "import numpy as np",
    "if JIT:  # numba takes a sixth of a second to import: plain kernels do not load it",
    "    try:",
    "        from numba import njit",
    "        _jit = njit(cache=True, error_model='numpy')",
    "    except ImportError:",
    "        JIT = False",
    "_f = float",
    "if not JIT:  # plain Python: functions with the compiled kernels' bits (model/ieee.py); NumPy floats where",
    "    from ilsim.model import ieee as _ieee  # 1/0 must be inf, as compiled (the careful path)",
    "    _f = np.float64",
    "    _ndarray = np.ndarray",
    "    def _jit(f):",
    "        return f",
    "",
    "def _hill_py(x, k, n):",
    "    xn = x ** n",
    "    return xn / (k ** n + xn)",
    "_hill = _jit(_hill_py) if JIT else _hill_py",
    "",
    "def _factorial_py(x):  # gamma(x + 1), as ilsim.model.expressions.factorial, for numba and NumPy alike",
    "    z = x + 1.0",
    "    if z != z or z > 171.62:",
    "        return z if z != z else np.inf",
    "    if z <= 0.0 and (z == -np.inf or z % 1.0 == 0.0):",
    "        return _copysign(np.inf, z) if z == 0.0 else np.nan",
    "    if abs(z) < 1e-300:",
    "        return 1.0 / z",
    "    return _gamma(z)",
    "_factorial = _jit(_factorial_py) if JIT else _factorial_py",
    "_factorial_vec = np.vectorize(_factorial_py, otypes=[float])",
    "",
)


def kernel_names(m: CompiledModel, plain: bool | str = False) -> dict[str, str]:
    """Every user name as the positional name generated code uses (s_0, k_3, o_1, t); ``plain``: for a kernel run
    as plain Python, where t is made a NumPy float (see _plain_number), but for the fast path (``"fast"``)."""
    names = {n: f"s_{i}" for i, n in enumerate(m.species)}
    names.update({n: f"k_{i}" for i, n in enumerate(m.parameters)})
    names.update({n: f"o_{i}" for i, n in enumerate(m.observables)})
    names[ex.TIME] = "_f(t)" if plain is True else "t"
    return names


def _plain_number(text: str) -> str:
    """A constant in a kernel run as plain Python: a NumPy float, so that 1/0, 10.0**400 and (-8)**0.5 give inf and
    NaN as under numba (error_model='numpy') instead of raising ZeroDivisionError, OverflowError or a complex."""
    return f"_f({text})"


def _numpy_number(text: str) -> str:
    return f"np.float64({text})"


def _code(tree: ex.Expr, names: dict[str, str], plain: bool | str) -> str:
    """A tree as scalar code: for numba (``plain`` False); for plain Python with the compiled code's bits, over
    Python floats (``"fast"``: 1/0 raises) or over NumPy floats (True, the careful path: 1/0 is inf)."""
    if plain == "fast":
        return ex.to_code(tree, names, False, None, "_ieee.fast")
    if plain:
        return ex.to_code(tree, names, False, _plain_number, "_ieee.careful")
    return ex.to_code(tree, names, False, float_rounding=True)


def unpack_lines(m: CompiledModel, trees: list[ex.Expr], clip: bool, plain: bool = False) -> list[str]:
    """Locals for the species and parameters the trees (and the observables) read, then every observable;
    ``clip``: non-negative species read as max(y, 0), as the right-hand side does."""
    names = kernel_names(m, plain)
    used = set().union(*(tr.names() for tr in trees)) if trees else set()
    wanted = range(len(m.observables))
    if plain == "fast":  # plain Python pays for every line (numba drops unused ones): only the observables read
        wanted = []
        for i in reversed(range(len(m.observables))):  # (each may read earlier ones)
            if m.observables[i] in used:
                wanted.insert(0, i)
                used |= m.observable_trees[i].names()
    else:
        used |= set().union(*(tr.names() for tr in m.observable_trees)) if m.observables else set()
    lines = []
    for i, n in enumerate(m.species):
        if n not in used:
            continue
        if clip and m.nonnegative[i]:  # (the fast path's form is max()'s, a call less: NaN and -0.0 pass as they are)
            zero = "_f(0.0)" if plain is True else "0.0"  # (the careful path: a NumPy zero, which 0/0 cannot trip)
            clipped = f"0.0 if y[{i}] < 0.0 else y[{i}]" if plain == "fast" else f"max(y[{i}], {zero})"
            lines.append(f"    s_{i} = {clipped}")
        else:
            lines.append(f"    s_{i} = y[{i}]")
    lines += [f"    k_{i} = p[{i}]" for i, n in enumerate(m.parameters) if n in used]
    lines += [f"    o_{i} = {_code(m.observable_trees[i], names, plain)}" for i in wanted]
    return lines


def rhs_lines(m: CompiledModel, plain: bool = False) -> list[str]:
    """The body of ``rhs_into(y, t, p, out)``: dy/dt into out, rates read at max(y, 0) for non-negative species,
    whose derivative is zeroed at zero when falling. Indexing only (y[i], p[i], out[i]), so the same text
    serves NumPy arrays (the kernel here) and raw pointers (the batch engine's C-callable functions)."""
    names = kernel_names(m, plain)
    lines = [*unpack_lines(m, list(m.rate_trees), clip=True, plain=plain),
             *[f"    r_{j} = {_code(r, names, plain)}" for j, r in enumerate(m.rate_trees)]]
    for i in range(len(m.species)):
        terms = [f"{float(m.stoichiometry[i, j])!r} * r_{j}" for j in range(len(m.rate_trees)) if m.stoichiometry[i, j]]
        if plain == "fast":  # 1.0 * r + -1.0 * s is r - s exactly (IEEE's a - b is a + -b): two products less
            terms = [t.replace("1.0 * ", "", 1) if t.startswith(("1.0 * ", "-1.0 * ")) else t for t in terms]
            terms = [(" - " + t[1:] if t.startswith("-") and k else " + " + t if k else t) for k, t in enumerate(terms)]
            lines.append(f"    out[{i}] = {''.join(terms) if terms else '0.0'}")
        else:
            lines.append(f"    out[{i}] = {' + '.join(terms) if terms else '0.0'}")
        if terms and m.nonnegative[i]:  # at zero a non-negative quantity cannot decrease further
            lines.append(f"    if y[{i}] <= 0.0 and out[{i}] < 0.0:\n        out[{i}] = 0.0")
    return lines


def root_lines(m: CompiledModel, condition: ex.Expr, plain: bool = False) -> list[str]:
    """The body of a condition's root function ``(t, y, p)``: positive while the condition holds."""
    root = ex.root_function(condition)
    return [*unpack_lines(m, [root], clip=False, plain=plain), f"    return {_code(root, kernel_names(m, plain), plain)}"]


def jacobian_lines(m: CompiledModel, entries: tuple[tuple[int, int, ex.Expr], ...], flat: bool,
                   plain: bool = False) -> list[str]:
    """The body of ``jac_into(y, t, p, out)``: out[i, k] = d(dy_i/dt)/dy_k (``flat``: out[i * ns + k], for a
    raw pointer), each piece repeated across entries computed once."""
    ns = len(m.species)
    shared, trees = ex.common_subexpressions([tree for *_, tree in entries])  # each repeated piece once
    fast = plain == "fast"  # plain Python's fast path: only the names read, into zeros its caller passes
    used = set().union(*(tree.names() for tree in [*trees, *(tree for _, tree in shared)])) if fast else None
    lines = [f"    s_{i} = y[{i}]" for i, n in enumerate(m.species) if not fast or n in used]
    lines += [f"    k_{i} = p[{i}]" for i, n in enumerate(m.parameters) if not fast or n in used]
    if not fast:
        lines += [f"    for q in range({ns * ns}):", "        out[q] = 0.0"] if flat else ["    out[:, :] = 0.0"]
    names = {**kernel_names(m, plain), **{name: name for name, _ in shared}}
    lines += [f"    {name} = {_code(tree, names, plain)}" for name, tree in shared]
    lines += [f"    out[{i * ns + k if flat else f'{i}, {k}'}] = {_code(tree, names, plain)}"
              for (i, k, _), tree in zip(entries, trees)]
    return lines


def _into(name: str, body, plain: bool, n: int, matrix: bool = False) -> list[str]:
    """``{name}_into(y, t, p, out)`` with the lines ``body(style)`` print, and ``{name}(y, t, p)``, which returns a new
    vector of ``n`` (``matrix``: n x n). Compiled: a function and its wrapper. Plain: the fast path over Python
    floats (a quarter of the time NumPy's scalars take), and where that divides by zero, the careful path over
    NumPy floats, where 1/0 is inf and 0/0 NaN as in the compiled code; both compute what it does, bit for bit."""
    shape = f"({n}, {n})" if matrix else f"{n}"
    if not plain:
        return [f"def {name}_into(y, t, p, out):", *body(False), "",
                f"{name}_into = _jit({name}_into)", "",
                f"def {name}(y, t, p):", f"    out = np.empty({shape})", f"    {name}_into(y, t, p, out)", "    return out",
                "", f"{name} = _jit({name})", ""]

    def dispatch(fast_out: str, careful_out: str, done: str) -> list[str]:
        return ["    try:",
                f"        _{name}_fast(y.tolist() if y.__class__ is _ndarray else [*map(float, y)], t,",
                f"        {' ' * len(name)}p.tolist() if p.__class__ is _ndarray else [*map(float, p)], {fast_out})",
                f"        {done}",
                "    except (ArithmeticError, ValueError):  # 1/0, or a math function outside its domain",
                "        with np.errstate(all='ignore'):",
                f"            _{name}_careful(np.asarray(y, dtype=float), t, np.asarray(p, dtype=float), {careful_out})"]

    lines = [f"def _{name}_fast(y, t, p, out):", *(body("fast") or ["    pass"]), "",  # (a Jacobian of zeros)
             f"def _{name}_careful(y, t, p, out):", *body(True), ""]
    if matrix:  # the fast path fills a flat vector of zeros (a quarter of the time a matrix's [i, k] takes)
        return [*lines, f"def {name}(y, t, p):", f"    flat = np.zeros({n * n})",
                *dispatch("flat", "out", f"return flat.reshape({n}, {n})")[:-1],
                f"            out = np.empty({shape})", *dispatch("flat", "out", "")[-1:], "    return out", "",
                f"def {name}_into(y, t, p, out):", f"    out[:, :] = {name}(y, t, p)", ""]
    return [*lines, f"def {name}_into(y, t, p, out):", *dispatch("out", "out", "return"), "",
            f"def {name}(y, t, p):  # (the dispatch again, not a call of {name}_into: a call less, run after run)",
            f"    out = np.empty({shape})", *dispatch("out", "out", "return out"), "    return out", "",
            # the SciPy engine's: a list, which its solvers take as it is, filled faster, and the fast path inline
            f"def {name}_list(y_, t, p_):", f"    out = [0.0] * {n}", "    try:",
            "        y = y_.tolist() if y_.__class__ is _ndarray else [*map(float, y_)]",
            "        p = p_.tolist() if p_.__class__ is _ndarray else [*map(float, p_)]",
            *["    " + line.replace("\n", "\n    ") for line in body("fast")], "        return out",
            *dispatch("out", "out", "")[-3:-1],
            f"            _{name}_careful(np.asarray(y_, dtype=float), t, np.asarray(p_, dtype=float), out)",
            "    return out", ""]


def _build_kernels(m: CompiledModel, jit: bool) -> dict:
    plain = not jit
    names = kernel_names(m, plain)
    vec_names = {n: f"y[:, {i}]" for i, n in enumerate(m.species)}
    vec_names.update({n: f"p[{i}]" for i, n in enumerate(m.parameters)})
    vec_names.update({n: f"o_{i}" for i, n in enumerate(m.observables)})
    vec_names[ex.TIME] = "t"
    ns, nobs = len(m.species), len(m.observables)

    src = [*_PRELUDE, *_into("rhs", lambda style: rhs_lines(m, style), plain, ns)]  # rhs_into: no allocation
    # one root function per condition event: positive while its condition holds
    conditions = [e.condition for e in m.events if e.condition is not None]
    for k, condition in enumerate(conditions):
        src += [f"def root_{k}(t, y, p):", *root_lines(m, condition, plain), ""]
        src += [f"root_{k} = _jit(root_{k}) if JIT else root_{k}", ""]
    src += [f"roots = [{', '.join(f'root_{k}' for k in range(len(conditions)))}]", ""]
    src += [
        "def observe(t, y, p):",
        # constants as NumPy floats: 10.0**400 in a readout is inf, as in the kernels, not an OverflowError
        *[f"    o_{i} = {ex.to_code(tr, vec_names, True, _numpy_number)}" for i, tr in enumerate(m.observable_trees)],
        f"    return ({', '.join(f'o_{i}' for i in range(nobs))}{',' if nobs else ''})",
        "",
        "def initial(p):",
        *[f"    k_{i} = p[{i}]" for i in range(len(m.parameters))],
        f"    return [{', '.join(_code(tr, names, plain) for tr in m.initial_trees)}]",
        "",
    ]
    module = _import_generated("\n".join(src), jit)
    module.__dict__.setdefault("_ilsim_jacobian", _LazyJacobian(m, module.__name__, jit))
    kernels = {"rhs": module.rhs, "rhs_into": module.rhs_into, "observe": module.observe, "initial": module.initial,
               "roots": module.roots, "rhs_list": getattr(module, "rhs_list", module.rhs)}
    kernels["jac"] = module._ilsim_jacobian  # one per generated module: derived once per model
    return kernels


class _LazyJacobian:
    """The analytic Jacobian, derived (model/derivative.py) on first use (only stiff methods need it)."""

    def __init__(self, m: CompiledModel, rhs_module: str, jit: bool):
        # the Jacobian follows from the right-hand side, so its cached file is named after it
        self._m, self._module, self._jit = m, None, jit
        self._name = f"{rhs_module}_jac_into_{__version__.replace('.', '_')}"
        self._entries: dict[tuple, tuple[tuple[int, int, ex.Expr], ...]] = {}

    def __call__(self, y, t, p):
        return self.module().jac(y, t, p)

    def module(self):
        """The generated module: ``jac(y, t, p)`` returns the matrix, ``jac_into(y, t, p, out)`` fills one."""
        if self._module is None:
            with _DERIVING:  # runs in threads: one builds it, the others wait (not a half-run module from sys.modules)
                if self._module is None:
                    cached = _import_cached(self._name)
                    if cached is None:
                        cached = _build_jacobian(self._m, self._name, self.entries(self._m), self._jit)
                    self._module = cached
        return self._module

    def entries(self, m: CompiledModel) -> tuple[tuple[int, int, ex.Expr], ...]:
        """``jacobian_entries(m)``, kept per model names: models that share this right-hand side module differ
        at most in what their species and parameters are called."""
        key = (m.species, m.parameters)
        if key not in self._entries:
            self._entries[key] = _differentiate(m)
        return self._entries[key]


def jacobian_entries(m: CompiledModel) -> tuple[tuple[int, int, ex.Expr], ...]:
    """The nonzero entries ``(i, k, d(dy_i/dt)/dy_k)`` of the model's analytic Jacobian as expression trees over
    its species, parameters and t (observables inlined), row by row; derived once per model and process.
    Printed as Python by the stiff engines' kernels and as C by ``engines.csource``."""
    return m.kernels["jac"].entries(m)


def _differentiate(m: CompiledModel, wrt: tuple[str, ...] | None = None) -> tuple[tuple[int, int, ex.Expr], ...]:
    """Nonzero ``(i, k, d(dy_i/dt)/d wrt_k)``: by the species (the Jacobian) unless ``wrt`` names parameters."""
    calculus = Differentiator(dict(zip(m.observables, m.observable_trees)))  # observables inlined: chains differentiate
    names = m.species if wrt is None else wrt
    wanted = set(names)
    entries = []
    for i, tree in enumerate(m.rhs_trees):
        depends = calculus.depends_on(tree) & wanted
        for k, s in enumerate(names):
            if s in depends:
                try:
                    d = calculus.derivative(tree, s)
                except (TypeError, RecursionError) as exc:  # a function without a derivative rule: named, not a traceback
                    raise ModelError([Problem(f"species '{m.species[i]}'", "the analytic Jacobian cannot be derived "
                                              f"(d/d{s} of its rate of change): {exc}", m.source)]) from None
                if not (isinstance(d, ex.Num) and d.value == 0.0):
                    entries.append((i, k, d))
    return tuple(entries)


def parameter_derivative_kernel(m: CompiledModel):
    """``dfdp_into(y, t, p, out)``: the derivatives of the right-hand sides by every parameter (species x
    parameters), from the same trees and code generator as the Jacobian; forward sensitivities need it."""
    entries = _differentiate(m, m.parameters)
    jit = bool(m.jit)  # "auto" too: sensitivities run long, and fitting hands this to LSODA as a compiled call
    lines = ["def dfdp_into(y, t, p, out):", *jacobian_lines(m, entries, flat=False, plain=not jit)]
    lines += ["", "dfdp_into = _jit(dfdp_into) if JIT else dfdp_into"]
    return _import_generated("\n".join([*_PRELUDE, *lines]), jit).dfdp_into


def _build_jacobian(m: CompiledModel, module_name: str,
                    entries: tuple[tuple[int, int, ex.Expr], ...], jit: bool):
    ns = len(m.species)
    lines = _into("jac", lambda style: jacobian_lines(m, entries, flat=style == "fast", plain=style), not jit, ns, True)
    return _import_generated("\n".join([*_PRELUDE, *lines]), jit, module_name)


def cache_dir() -> Path:
    root = os.environ.get("ILSIM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ilsim")
    return Path(root) / "kernels"


def trusted_cache_dir() -> Path:
    """The kernel cache folder, created private; a private temporary folder instead when it cannot be written
    or is not safe to run code from (owned by someone else, or writable by others, who could plant a kernel)."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if hasattr(os, "getuid") and folder.stat().st_uid == os.getuid() and folder.stat().st_mode & 0o022:
            folder.chmod(folder.stat().st_mode & ~0o022)  # ours, left open by a umask: close it
        if _owned_privately(folder):
            return folder
    except OSError:  # a read-only home
        pass
    return _private_folder()


@functools.lru_cache(maxsize=1)
def _private_folder() -> Path:

    return Path(tempfile.mkdtemp(prefix="ilsim-"))


def _owned_privately(path: Path) -> bool:
    """Owned by this user and writable by no one else (POSIX; elsewhere the folder's own rights apply)."""
    if not hasattr(os, "getuid"):
        return True
    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


_HEADER = "# ilsim kernel, sha256 of the lines below: "


def _signed(source: str) -> str:
    return f"{_HEADER}{hashlib.sha256(source.encode()).hexdigest()}\n{source}"


def _verified(path: Path, source: str | None = None) -> bool:
    """Whether a cached kernel file is intact: its first line carries the SHA-256 of the rest, the rest is
    ``source`` when that is known, and the file is this user's alone. A file that fails is regenerated, never
    imported: the cache must not run whatever file happens to carry a kernel's name."""
    try:
        text = path.read_text(encoding="utf-8")
        if not _owned_privately(path):
            return False
    except (OSError, UnicodeDecodeError):
        return False
    first, _, rest = text.partition("\n")
    digest = first.removeprefix(_HEADER)
    return (first.startswith(_HEADER) and hashlib.sha256(rest.encode()).hexdigest() == digest
            and (source is None or rest == source))


def _import_cached(name: str):
    """A generated module already written (intact) by an earlier process, or None."""
    if name in sys.modules:
        return sys.modules[name]
    path = trusted_cache_dir() / f"{name}.py"
    return _load_module(name, path) if path.exists() and _verified(path) else None


def _load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: a cfunc compiled (or loaded from numba's cache) as the module runs
    try:                        # looks its module up by name
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _import_generated(source: str, jit: bool, name: str | None = None):
    """Import generated kernel source from a file named by its hash (numba caches per file); a file of that
    name whose content is not this source (tampered with, truncated) is written again first."""
    source = f"JIT = {bool(jit)}\n" + source
    name = name or f"ilsim_kernel_{hashlib.sha256(source.encode()).hexdigest()[:24]}"
    if name in sys.modules:
        return sys.modules[name]
    path = trusted_cache_dir() / f"{name}.py"
    if not _verified(path, source):
        try:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(_signed(source))
            tmp.chmod(0o644)
            os.replace(tmp, path)
        except OSError:  # the folder became unwritable: a private temporary one
            path = _private_folder() / f"{name}.py"
            path.write_text(_signed(source))
    return _load_module(name, path)
