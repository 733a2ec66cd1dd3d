"""From a model's ``tissue:`` section to the solver, the per-type tables and the first cells, checking it against
the model and the machine first: every mistake found is reported at once, as one ModelError naming the field
(``tissue.fields[1].species``), before anything is computed or written."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from ilsim.engines.tissue import bindings, percell
from ilsim.engines.tissue.agents import MAX_SECRETIONS, Agents, Geometry, Types
from ilsim.engines.tissue.conditions import ConditionEvent, changed
from ilsim.engines.tissue.diffusion import DiffusionSolver
from ilsim.errors import IlsimError, ModelError, Problem, did_you_mean
from ilsim.model.expressions import Expr, ExpressionError, evaluate, parse
from ilsim.model.sections.tissue import AXES, Tissue

BYTES_PER_AGENT = 200  # arrays of one agent and the step's temporaries, rounded up
MAX_CSV_CELLS = 10_000_000


@dataclass
class Setup:
    tissue: Tissue
    solver: DiffusionSolver
    types: Types
    geometry: Geometry
    agents: Agents
    fields: list[str]  # species names of the fields, in order
    agent_names: list[str]  # species names of the agent types, in order
    vessels: np.ndarray  # flat voxel indices
    initial: np.ndarray  # the fields at t = 0 (fields x z x y x x)
    events: list[TissueEvent] = field(default_factory=list)  # the model's timed events that act on the tissue
    values: dict[str, float] = field(default_factory=dict)  # the bound parameters' values at t = 0
    rebuild: Callable[[dict[str, float]], Setup] | None = None  # the same setup with other parameter values
    percell: percell.Reading | None = None  # the model's processes read per cell (percell.py)
    internal_names: list[str] = field(default_factory=list)  # species internal to cells: columns of Agents.internal
    processes_read: dict[str, str] = field(default_factory=dict)  # process -> how the tissue reads it per cell
    conditions: list[ConditionEvent] = field(default_factory=list)  # the model's condition events (conditions.py)
    constants: dict[str, float] = field(default_factory=dict)  # every parameter's value at t = 0, for conditions


@dataclass
class TissueEvent:
    """A timed event of the model acting on the tissue at the start of step ``step``: doses of field species (a rise
    of the mean concentration, delivered through the vessel voxels, or uniformly without vessels) and new values of
    bound parameters."""

    step: int
    name: str
    doses: list[tuple[int, float]]  # (field index, rise of the field's mean concentration)
    sets: dict[str, float]
    adds: dict[str, float]

    def parameters(self, values: dict[str, float]) -> dict[str, float]:
        return changed(values, self.sets, self.adds)


def memory_needed(tissue: Tissue, agents: int) -> int:
    """Bytes a run needs at least: the fields three times over (state, saved copy, scratch) and the agents."""
    voxels = math.prod(tissue.domain.shape())
    return 3 * 8 * voxels * max(1, len(tissue.fields)) + BYTES_PER_AGENT * agents


def machine_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def bound_section(spec, values: dict[str, float] | None = None, seed: int | None = None, source: str | None = None) -> Tissue:
    """``spec.tissue`` with its bound numbers set from the model's parameters (``values`` overriding theirs by name)
    and, if given, another seed; one ModelError naming every binding that is wrong."""
    tissue: Tissue | None = spec.tissue
    if tissue is None:
        raise ModelError([Problem("tissue", "the model has no tissue: section (docs/tissue.md)", source)])
    if not tissue.parameters and seed is None:
        return tissue
    known = {p.name: float(p.value) for p in spec.parameters}
    problems = []
    for name, path in tissue.parameters.items():
        if name not in known:
            problems.append(Problem(f"tissue.parameters.{name}", f"'{name}' is not a parameter of the model"
                                                                 f"{did_you_mean(name, known)}", source))
            continue
        try:
            bindings.check(tissue, path)
        except ValueError as exc:
            problems.append(Problem(f"tissue.parameters.{name}", f"{path}: {exc}", source))
    if problems:
        raise ModelError(problems)
    values = {**known, **(values or {})}
    try:
        return bindings.apply(tissue, {path: values[name] for name, path in tissue.parameters.items()}, seed)
    except ValidationError as exc:
        set_to = ", ".join(f"{n} = {values[n]:g}" for n in tissue.parameters)
        raise ModelError([Problem("tissue.parameters", f"with {set_to}: {e['msg']} (at {'.'.join(map(str, e['loc']))})",
                                  source) for e in exc.errors()]) from None


def build(spec, source: str | None = None, base: Path | None = None, memory: int | None = None,
          values: dict[str, float] | None = None, seed: int | None = None) -> Setup:
    """Check ``spec.tissue`` against the model (``spec``: the expanded model spec) and build the run's pieces; ``values``
    (parameter -> value) and ``seed`` replace the model's for a replicate or a point of a sweep."""
    tissue = bound_section(spec, values, seed, source)
    problems: list[Problem] = []
    # the parameters a timed event can change in a tissue run: bound ones, and those of the processes read per cell
    changeable = set(tissue.parameters) | percell.parameters_used(spec, tissue)
    start = {**{p.name: float(p.value) for p in spec.parameters if p.name in changeable}, **(values or {})}
    constants = {**{p.name: float(p.value) for p in spec.parameters}, **(values or {})}
    events, conditions = _events(spec, tissue, start, source, problems, changeable, constants)

    def problem(field: str, message: str) -> None:
        problems.append(Problem(f"tissue.{field}", message, source))

    species = {s.name: s for s in spec.species}
    fields = [f.species for f in tissue.fields]
    agent_names = [a.species for a in tissue.agents]
    for i, f in enumerate(tissue.fields):
        if f.species not in species:
            problem(f"fields[{i}].species", f"'{f.species}' is not a species of the model{did_you_mean(f.species, species)}")
        elif species[f.species].kind == "cell":
            problem(f"fields[{i}].species", f"'{f.species}' is a cell species: list it under agents, not fields")
    for i, a in enumerate(tissue.agents):
        where = f"agents[{i}]"
        if a.species not in species:
            problem(f"{where}.species", f"'{a.species}' is not a species of the model{did_you_mean(a.species, species)}")
        elif species[a.species].kind != "cell":
            problem(f"{where}.species", f"'{a.species}' is a {species[a.species].kind} species; agents are cell species "
                                        "(kind: cell)")
        uses = [("chemotaxis.field", a.chemotaxis.field if a.chemotaxis else None),
                ("receptor.field", a.receptor.field if a.receptor else None),
                ("recruitment.field", a.recruitment.field if a.recruitment else None)]
        uses += [(f"secretion[{k}].field", s.field) for k, s in enumerate(a.secretion)]
        uses += [(f"secretion[{k}].stimulus", s.stimulus) for k, s in enumerate(a.secretion)]
        uses += [(f"uptake[{k}].field", u.field) for k, u in enumerate(a.uptake)]
        uses += [(f"secretion_target[{k}].field", g.field) for k, g in enumerate(a.secretion_target)]
        for name, used in uses:
            if used is not None and used not in fields:
                problem(f"{where}.{name}", f"'{used}' is not a field of the tissue{did_you_mean(used, fields)}"
                                           f" (fields: {', '.join(fields) or 'none'})")
        if len(a.secretion) > MAX_SECRETIONS:
            problem(f"{where}.secretion", f"at most {MAX_SECRETIONS} secretion entries per cell type")
        for k, kill in enumerate(a.kills):
            if kill.target not in agent_names:
                problem(f"{where}.kills[{k}].target",
                        f"'{kill.target}' is not an agent type{did_you_mean(kill.target, agent_names)}")
        for k, u in enumerate(a.uptake):
            if u.into is not None and u.into not in a.internal:
                problem(f"{where}.uptake[{k}].into", f"'{u.into}' is not a species internal to {a.species} (list it under "
                                                     f"{where}.internal)")
        for k, entry in enumerate(a.initial_internal):
            for name in entry.values:
                if name not in a.internal:
                    problem(f"{where}.initial_internal[{k}].values", f"'{name}' is not a species internal to {a.species} "
                                                                     f"(list it under {where}.internal)")
        if a.differentiation and a.differentiation.into not in agent_names:
            into = a.differentiation.into
            problem(f"{where}.differentiation.into", f"'{into}' is not an agent type{did_you_mean(into, agent_names)}")
    domain = tissue.domain
    size = np.array(domain.size)
    dims = domain.dimensions
    shape = domain.shape()
    parameters = {**{p.name: float(p.value) for p in spec.parameters}, **(values or {})}
    reading = percell.read(spec, tissue, parameters, shape, domain.voxel, problems, source) if not problems else None
    for a in range(dims):
        if domain.side(f"{AXES[a]}_min").kind == "periodic" and shape[a] < 3:
            problem("domain.boundary", f"a periodic axis needs at least 3 voxels; {AXES[a]} has {shape[a]}")
    placed_pos, placed_typ = [], []
    rng = np.random.default_rng(tissue.seed)
    for i, a in enumerate(tissue.agents):
        where = f"agents[{i}].placement"
        pl = a.placement
        count = pl.count
        written = spec.tissue.agents[i].placement  # as written: a section with bound values marks every field as set
        if "count" not in written.model_fields_set and pl.kind != "csv" and a.species in species:
            # the model's initial number of these cells (the per-cell reading counts cells in the domain)
            count = _initial_count(species[a.species], parameters, f"{where}.count", problem)
        if pl.kind == "random":
            lo, hi = (np.array(pl.region.lower), np.array(pl.region.upper)) if pl.region else (np.zeros(dims), size)
            if len(lo) != dims or np.any(lo < 0) or np.any(hi > size):
                problem(f"{where}.region", f"the region must lie inside the domain (0..{_sizes(size)} µm)")
                continue
            placed_pos.append(lo + rng.random((count, dims)) * (hi - lo))
        elif pl.kind == "cluster":
            c = np.array(pl.center)
            if len(c) != dims or np.any(c < 0) or np.any(c > size):
                problem(f"{where}.center", f"the centre {pl.center} lies outside the domain (0..{_sizes(size)} µm)")
                continue
            u = rng.normal(size=(count, dims))
            u /= np.linalg.norm(u, axis=1, keepdims=True)
            r = pl.radius * rng.random(count) ** (1.0 / dims)
            placed_pos.append(np.clip(c + u * r[:, None], 0.0, np.nextafter(size, 0.0)))
        else:
            got = _read_csv(Path(base or ".") / pl.file, dims, size, a.species, agent_names, f"{where}.file", problem)
            if got is None:
                continue
            pos, typ = got
            placed_pos.append(pos)
            placed_typ.append(typ)
            continue
        placed_typ.append(np.full(count, i, dtype=np.int64))
    total_agents = sum(len(t) for t in placed_typ)
    if problems:
        raise ModelError(problems)
    need = memory_needed(tissue, total_agents)
    have = memory if memory is not None else machine_memory()
    if have is not None and need > have:
        raise IlsimError(f"{source + ': ' if source else ''}tissue: this run needs about {need / 2**30:.3g} GiB "
                         f"({math.prod(shape):,} voxels x {len(fields)} fields, {total_agents:,} cells) and the machine has "
                         f"{have / 2**30:.3g} GiB; use larger voxels, a smaller domain or fewer cells")
    pos3 = np.zeros((total_agents, 3))
    if total_agents:
        pos3[:, :dims] = np.concatenate(placed_pos)
    typ = np.concatenate(placed_typ) if placed_typ else np.zeros(0, dtype=np.int64)
    periodic = np.array([domain.side(f"{AXES[a]}_min").kind == "periodic" if a < dims else False for a in range(3)])
    fixed = {}
    for side in [f"{AXES[a]}_{e}" for a in range(dims) for e in ("min", "max")]:
        b = domain.side(side)
        if b.kind == "fixed":
            fixed[side] = [b.value] * len(fields)
    vessels = _vessel_voxels(domain, shape)
    solver = DiffusionSolver(shape, domain.voxel, tissue.dt, [f.diffusion for f in tissue.fields],
                             [reading.decay.get(k, f.decay) for k, f in enumerate(tissue.fields)],
                             periodic=tuple(periodic[:dims]), fixed=fixed, vessels=vessels,
                             exchange=[f.vessel_exchange for f in tissue.fields], blood=[f.blood for f in tissue.fields])
    initial = solver.zeros()
    for k, f in enumerate(tissue.fields):
        initial[k] = f.initial
    shape3 = tuple(shape) + (1,) * (3 - dims)
    geometry = Geometry(dims, shape3, domain.voxel, periodic)
    types = _types(tissue, fields, agent_names)
    for (killer, target), rate in reading.kills.items():
        types.kill_rate[killer, target] += rate
    types.into, types.release = _internalisation(tissue, fields, reading.internal)
    internal = np.full((total_agents, len(reading.internal)), np.nan)
    for t, columns in enumerate(reading.carriers):
        internal[np.ix_(typ == t, columns)] = reading.initial[columns]
        _initial_internal(tissue.agents[t], t, np.flatnonzero(typ == t), internal, reading.internal, problem)
    if problems:
        raise ModelError(problems)
    return Setup(tissue, solver, types, geometry, Agents.place(pos3, typ, tissue.seed, dims, internal), fields, agent_names,
                 vessels, initial, events, start, lambda new: build(spec, source, base, memory, new, tissue.seed),
                 reading if reading else None, reading.internal, reading.read, conditions, constants)


def _internalisation(tissue: Tissue, fields: list[str], internal: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per type and field: the internal column an uptake adds to (-1: none) and the fraction released at death."""
    nt, nf = len(tissue.agents), len(fields)
    into, release = np.full((nt, nf), -1, dtype=np.int64), np.zeros((nt, nf))
    for t, a in enumerate(tissue.agents):
        for u in a.uptake:
            if u.into is not None:
                into[t, fields.index(u.field)] = internal.index(u.into)
                release[t, fields.index(u.field)] = u.released_at_death
    return into, release


def _initial_internal(agent, t: int, cells: np.ndarray, internal: np.ndarray, names: list[str], problem) -> None:
    """The ``initial_internal`` entries of one type: consecutive runs of its cells, in the order they were placed."""
    start = 0
    for k, entry in enumerate(agent.initial_internal):
        if start + entry.count > len(cells):
            problem(f"agents[{t}].initial_internal[{k}].count", f"{start + entry.count} cells of {agent.species} would "
                                                                f"need values but {len(cells)} are placed")
            return
        for name, value in entry.values.items():
            internal[cells[start:start + entry.count], names.index(name)] = value
        start += entry.count


def _initial_count(species, parameters, field, problem) -> int:
    try:
        value = float(evaluate(parse(species.initial), parameters))
    except (KeyError, TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and 0 <= value < MAX_CSV_CELLS):
        problem(field, f"no count given and the initial number of '{species.name}' ({species.initial}) is not a number of "
                       "cells; give placement.count")
        return 0
    return round(value)


def _events(spec, tissue: Tissue, start: dict[str, float], source, problems: list[Problem], changeable: set[str],
            constants: dict[str, float]) -> tuple[list[TissueEvent], list[ConditionEvent]]:
    """The model's timed events and condition events that add to a field species (a systemic dose), set or add to a
    parameter the tissue uses (bound, or in a process read per cell) or, with a systemic link, act on its well-mixed
    species (condition events; the link runs timed ones); events acting on none of these belong to the well-mixed
    part of the model, which the tissue engine runs only through tissue.systemic."""
    fields = [f.species for f in tissue.fields]
    agents = [a.species for a in tissue.agents]
    internal = {name for a in tissue.agents for name in a.internal}
    wellmixed = {s.name for s in spec.species} - set(fields) - set(agents) - internal if tissue.systemic else set()
    readable = {"t", *constants, *fields, *agents, *wellmixed}
    # with a systemic link, a condition event's actions on well-mixed species and on parameters only the well-mixed
    # part reads are the link's (it evaluates them on its state); without one they act on nothing the run has
    linked = wellmixed | (set(constants) - changeable) if tissue.systemic else set()
    out: list[TissueEvent] = []
    conditions: list[ConditionEvent] = []
    for k, ev in enumerate(spec.events):
        where = f"events[{k}]"
        # a timed event with a guard or a delay runs as a condition event true from its time on (below); one with a
        # guard alone acting only on the well-mixed part stays the link's timed event (systemic.py)
        guarded = ev.when is None and (ev.only_if is not None or ev.delay is not None)
        watched = ev.when is not None or ev.delay is not None
        touched = [t for t in (*ev.set, *ev.add) if t in fields or t in changeable or (watched and t in linked)]
        if not touched:
            continue
        numbers: dict[str, dict[str, float]] = {"set": {}, "add": {}}
        for mode in ("set", "add"):
            for target, value in getattr(ev, mode).items():
                if target not in touched or target in linked:
                    continue
                if mode == "set" and target in fields:
                    problems.append(Problem(f"{where}.set.{target}", f"'{target}' is a tissue field: a dose adds to it "
                                                                      "(add:), setting its level has no tissue meaning", source))
                    continue
                try:
                    numbers[mode][target] = float(value)
                except (TypeError, ValueError):
                    problems.append(Problem(f"{where}.{mode}.{target}", f"the tissue engine needs a number here, got "
                                                                        f"'{value}'", source))
        doses = [(fields.index(f), d) for f, d in numbers["add"].items() if f in fields]
        adds = {p: d for p, d in numbers["add"].items() if p not in fields}
        condition = partial(_condition, ev, k, numbers["set"], doses, adds, bool(set(touched) & linked), readable,
                            internal, constants, tissue.dt, lambda f, m: problems.append(Problem(f, m, source)))
        if ev.when is not None:
            conditions.extend(filter(None, [condition()]))
            continue
        times = ev.at if isinstance(ev.at, list) else [ev.at]
        for t in times:
            step = round(t / tissue.dt)
            if abs(step * tissue.dt - t) > 1e-9 * max(1.0, abs(t)):
                problems.append(Problem(f"{where}.at", f"{t:g} min is not a whole number of steps (dt = {tissue.dt:g} min)",
                                        source))
                continue
            if not guarded:
                out.append(TissueEvent(step, ev.name, doses, numbers["set"], adds))
            elif step <= 0:  # true from t = 0 on: it triggers as the run starts (conditions.start)
                found = condition(parse(f"t >= {-0.5 * tissue.dt!r}"))
                if found is not None:
                    conditions.append(dataclasses.replace(found, at_start=True))
            else:
                # true from step end t on and never false again: it triggers once, at t (its guard tested then), and
                # its actions apply its delay later; the text is built from numbers, never from the model's text
                conditions.extend(filter(None, [condition(parse(f"t >= {(step - 0.5) * tissue.dt!r}"))]))
    out.sort(key=lambda e: e.step)  # stable: events at one time act in the order the model lists them
    values = dict(start)
    for ev in out:  # every value the events give must be one the section accepts, checked before the run
        if ev.sets or ev.adds:
            values = ev.parameters(values)
            _accepted(spec, values, f"(after '{ev.name}' at {ev.step * tissue.dt:g} min)", source, problems)
    for ev in conditions:  # a condition event's values, applied once to the values at t = 0
        if ev.sets or ev.adds:
            _accepted(spec, ev.parameters(start), f"(after '{ev.name}')", source, problems)
    return out, conditions


def _accepted(spec, values: dict[str, float], when: str, source, problems: list[Problem]) -> None:
    try:
        bound_section(spec, values, source=source)
    except ModelError as exc:
        problems.extend(Problem(f"{p.field} {when}", p.message, source) for p in exc.problems)


def _condition(ev, k: int, sets, doses, adds, wellmixed: bool, readable: set[str], internal: set[str],
               constants: dict[str, float], dt: float, problem, when: Expr | None = None) -> ConditionEvent | None:
    """A condition event as the tissue runs it, or None (with the reasons given to ``problem``); ``when``: the condition
    of a timed event run as one (else the event's own ``when:``)."""
    where = f"events[{k}]"
    ok = True
    tests = {} if when is None else {"when": when}
    for key, text in (("when", ev.when), ("only_if", ev.only_if)):
        if text is None:
            continue
        try:
            tests[key] = parse(text)
        except ExpressionError as exc:
            problem(f"{where}.{key}", str(exc))
            ok = False
            continue
        for name in sorted(tests[key].names() - readable):
            ok = False
            why = ("a species internal to cells: a condition reads the tissue's well-mixed view (cell counts, mean "
                   "field levels, parameters, t and, with tissue.systemic, the well-mixed species)" if name in internal else
                   "not something a tissue run's condition can read (t, parameters, cell counts, mean field levels and, "
                   "with tissue.systemic, well-mixed species)")
            problem(f"{where}.{key}", f"'{ev.name}' reads '{name}', {why}")
    steps = 0
    if ev.delay is not None:
        try:
            delay = float(evaluate(parse(ev.delay), constants))
        except (ExpressionError, KeyError, TypeError, ValueError):
            delay = math.nan
        steps = round(delay / dt) if math.isfinite(delay) else -1
        if steps < 0 or abs(steps * dt - delay) > 1e-9 * max(1.0, abs(delay)):
            problem(f"{where}.delay", f"'{ev.name}': the tissue engine needs a delay of a whole number of steps (dt = "
                                      f"{dt:g} min), from numbers and parameters only; got '{ev.delay}'")
            ok = False
    if not ok:
        return None
    return ConditionEvent(k, ev.name, tests["when"], tests.get("only_if"), steps, ev.persistent, doses, sets, adds,
                          wellmixed, ev.values_at_trigger)


def _sizes(size) -> str:
    return " x ".join(f"{s:g}" for s in size)


def _read_csv(path: Path, dims, size, species, agent_names, field, problem):
    """Positions (µm; columns x, y(, z)) and types (column type, default this entry's species) from a CSV file."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problem(field, f"cannot read '{path}': {exc.__class__.__name__}")
        return None
    if len(rows) > MAX_CSV_CELLS:
        problem(field, f"'{path}' lists more than {MAX_CSV_CELLS:,} cells")
        return None
    pos = np.zeros((len(rows), dims))
    typ = np.zeros(len(rows), dtype=np.int64)
    for r, row in enumerate(rows, start=2):  # line numbers of the file (the header is line 1)
        try:
            p = [float(row[a]) for a in AXES[:dims]]
        except (KeyError, TypeError, ValueError):
            problem(field, f"'{path}' line {r}: needs numbers in columns {', '.join(AXES[:dims])}")
            return None
        if not all(math.isfinite(v) and 0 <= v <= s for v, s in zip(p, size)):
            problem(field, f"'{path}' line {r}: position ({', '.join(f'{v:g}' for v in p)}) lies outside the domain "
                           f"(0..{_sizes(size)} µm)")
            return None
        name = (row.get("type") or species).strip()
        if name not in agent_names:
            problem(field, f"'{path}' line {r}: '{name}' is not an agent type{did_you_mean(name, agent_names)}")
            return None
        pos[r - 2] = np.minimum(p, np.nextafter(size, 0.0))
        typ[r - 2] = agent_names.index(name)
    return pos, typ


def _vessel_voxels(domain, shape) -> np.ndarray:
    if not domain.vessels:
        return np.zeros(0, dtype=np.int64)
    dims = domain.dimensions
    centres = [(np.arange(n) + 0.5) * domain.voxel for n in shape]
    grids = np.meshgrid(*centres[::-1], indexing="ij")[::-1]  # x, y(, z) of every voxel, arrays in (z,) y, x order
    inside = np.zeros(grids[0].shape, dtype=bool)
    for region in domain.vessels:
        box = np.ones_like(inside)
        for a in range(dims):
            box &= (grids[a] >= region.lower[a]) & (grids[a] <= region.upper[a])
        inside |= box
    return np.flatnonzero(inside.ravel())


def _types(tissue: Tissue, fields: list[str], names: list[str]) -> Types:
    nt, nf = len(tissue.agents), len(fields)
    index = {f: k for k, f in enumerate(fields)}

    def col(get, dtype=float):
        return np.array([get(a) for a in tissue.agents], dtype=dtype).reshape(nt)

    kill = np.zeros((nt, nt))
    uptake = np.zeros((nt, nf))
    target_rate, target_level = np.zeros((nt, nf)), np.zeros((nt, nf))
    sec = {k: np.full((nt, MAX_SECRETIONS), -1 if k in ("field", "stimulus") else 0.0,
                      dtype=np.int64 if k in ("field", "stimulus") else float)
           for k in ("field", "rate", "stimulus", "threshold", "lag")}
    for t, a in enumerate(tissue.agents):
        for kl in a.kills:
            kill[t, names.index(kl.target)] += kl.rate
        for u in a.uptake:
            uptake[t, index[u.field]] += u.rate
        for g in a.secretion_target:
            target_rate[t, index[g.field]] = g.rate
            target_level[t, index[g.field]] = g.target
        for k, s in enumerate(a.secretion):
            sec["field"][t, k] = index[s.field]
            sec["rate"][t, k] = s.rate
            sec["stimulus"][t, k] = index[s.stimulus] if s.stimulus else -1
            sec["threshold"][t, k] = s.threshold
            sec["lag"][t, k] = s.lag
    radius = col(lambda a: a.radius)
    return Types(
        radius=radius, volume=4.0 / 3.0 * math.pi * radius**3, speed=col(lambda a: a.speed),
        persistence=col(lambda a: a.persistence),
        chemo_field=col(lambda a: index[a.chemotaxis.field] if a.chemotaxis else -1, np.int64),
        chemo_sensitivity=col(lambda a: a.chemotaxis.sensitivity if a.chemotaxis else 0.0),
        chemo_bias=col(lambda a: a.chemotaxis.bias if a.chemotaxis else 0.0),
        repulsion=col(lambda a: a.repulsion), death=col(lambda a: a.death), division=col(lambda a: a.division),
        differentiate_into=col(lambda a: names.index(a.differentiation.into) if a.differentiation else -1, np.int64),
        differentiate_rate=col(lambda a: a.differentiation.rate if a.differentiation else 0.0),
        kill_rate=kill, uptake=uptake, target_rate=target_rate, target_level=target_level,
        sec_field=sec["field"], sec_rate=sec["rate"], sec_stimulus=sec["stimulus"],
        sec_threshold=sec["threshold"], sec_lag=sec["lag"],
        receptor_field=col(lambda a: index[a.receptor.field] if a.receptor else -1, np.int64),
        receptor_kd=col(lambda a: a.receptor.kd if a.receptor else 1.0),
        receptor_tau=col(lambda a: a.receptor.tau if a.receptor else 1.0),
        recruit_rate=col(lambda a: a.recruitment.rate if a.recruitment else 0.0),
        recruit_field=col(lambda a: index[a.recruitment.field] if a.recruitment and a.recruitment.field else -1,
                          np.int64),
        receptor_loss=col(lambda a: a.receptor.loss if a.receptor else 0.0),
        contact_reach=col(lambda a: a.contact_reach),
        suppression=np.array([(s.ic50, s.hill, s.blunting) if (s := a.suppression) else (0.0, 1.0, 0.0)
                              for a in tissue.agents], dtype=float).reshape(nt, 3),
    )
