"""The model's processes read per cell: what each cell of the tissue does, derived from the rate laws the ODE engine
integrates, so that a ``tissue:`` section need only say what is spatial.

Convention: a cell species counts cells in the whole domain (a number, not a density), a field species is a
concentration, and ``V_domain`` is the grid's volume (voxels x voxel volume; 2-D: one voxel thick). Each process is
classified from its rate tree (observables inlined; ``model/derivative.py`` for the derivatives) and its net
stoichiometry, never by evaluating user text:

- a rate of degree 1 in the cells (r = sum over types A of A x r_A, each r_A free of cell numbers) changing fields
  only: each cell of A secretes (net > 0) or takes up (net < 0) net x r_A x V_domain per minute in its voxel, r_A
  evaluated with the cell's voxel levels and internal state; uptake is solved implicitly as BioFVM's, with the
  coefficient r_A / c (which must vanish with c), so it never drives a voxel negative;
- consuming A at A x r_A: death; producing A: division; A -> B: differentiation; all fired per cell with
  probability 1 - exp(-r_A dt) from the counter-based streams of ``agents.uniform``; a field such an event also
  produces (a lysis releasing virions) is put into the cell's voxel, n x V_domain per event;
- consuming B at k x A x B (k free of cells and fields; it may depend on B's internal species, evaluated per target
  cell each step: a phagocyte eating only cells whose viral load passes a threshold): killing on contact, per
  touching A at k x V_domain / V_contact with V_contact the volume within R_A + R_B (times A's contact_reach; 2-D: a
  disc one voxel thick),
  so that a target among uniformly spread killers dies at the mean-field rate k x A;
- producing A at a rate free of cells: recruitment, the rate (evaluated per voxel) spread over the vessel voxels,
  or over every voxel without vessels;
- a rate of fields only: k x c consuming c is the field's decay; anything else is a reaction in every voxel;
- changing species internal to a cell type (``agents[].internal``): a small ODE per cell of the types carrying
  them, integrated (RK4, fields frozen over the step) with the cell's voxel levels; those rates are per cell and
  contain no cell numbers.

A process that fits none of these is refused with the reason unless listed in ``tissue.explicit``; a process whose
reading the section already states by hand (the same type and field, or the same fate) is not read: the explicit
rules win. Processes touching no species of the tissue belong to the well-mixed part of the model and are left out.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
from numba import njit
from scipy.stats import poisson

from ilsim.engines.tissue.agents import Agents, uniform
from ilsim.errors import IlsimError, Problem
from ilsim.model.derivative import Differentiator
from ilsim.model.expressions import BinOp, Expr, Name, evaluate, evaluate_array, parse

PURPOSE = 64  # draws of the per-cell reading: purpose PURPOSE + term (the kernel's purposes are below)
RECRUIT_KEY = 1 << 42  # keys of recruitment draws, apart from agent ids
_CHECKS = 24  # random points at which an identity of rate trees is checked


class Refused(Exception):
    """A process that cannot be read per cell; the message says why."""


@dataclass
class CellRate:
    """A per-cell rate of one agent type changing fields: secretion (net > 0) or uptake (net < 0)."""

    process: str
    type: int
    tree: Expr
    net: dict[int, float]  # field index -> net stoichiometry
    zero: dict[int, Expr] = field(default_factory=dict)  # uptake field -> d rate / d c, the coefficient where c = 0


@dataclass
class Fate:
    process: str
    type: int
    kind: str  # death, division, differentiation
    tree: Expr
    into: int = -1
    release: dict[int, float] = field(default_factory=dict)  # field -> net amount each event puts into the voxel


@dataclass
class Recruit:
    process: str
    type: int
    tree: Expr  # cells per minute into the whole domain


@dataclass
class Reaction:
    """A process on fields alone, in every voxel."""

    process: str
    tree: Expr
    net: dict[int, float]
    zero: dict[int, Expr] = field(default_factory=dict)


@dataclass
class Internal:
    """A process changing species internal to the cells of one type: a term of their per-cell ODEs."""

    process: str
    type: int
    tree: Expr
    net: dict[int, float]  # internal column -> net stoichiometry


@dataclass
class Reading:
    """The model's processes as the tissue reads them (``read``); the engine calls ``before_fields``,
    ``after_fields`` and ``after_agents`` in each step."""

    values: dict[str, float]  # parameter values
    fields: list[str]
    agents: list[str]
    internal: list[str]  # species internal to cells: the columns of Agents.internal
    carriers: list[list[int]]  # per agent type, the internal columns it carries
    initial: np.ndarray  # per internal column, the value a new cell starts with
    volume: float  # V_domain, µm³
    cell_volume: np.ndarray  # per agent type
    rates: list[CellRate] = field(default_factory=list)
    fates: list[Fate] = field(default_factory=list)
    recruits: list[Recruit] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)
    odes: list[Internal] = field(default_factory=list)
    decay: dict[int, float] = field(default_factory=dict)  # field -> first-order decay read from processes
    kills: dict[tuple[int, int], float] = field(default_factory=dict)  # (killer, target) -> per-contact rate
    # killings whose rate depends on the target's internal state: (killer, target, k tree, V_domain / V_contact)
    state_kills: list[tuple[int, int, Expr, float]] = field(default_factory=list)
    read: dict[str, str] = field(default_factory=dict)  # process -> how it was read (for the docs and the tests)
    stated: set = field(default_factory=set)  # (agent or field index, setting) the section states by hand

    def __bool__(self) -> bool:
        return bool(self.rates or self.fates or self.recruits or self.reactions or self.odes or self.state_kills)

    def kill_rates(self, C, agents: Agents, geometry, t: float):
        """Per target cell and killer type, the per-contact rate of the killings that depend on the target's internal
        state (1/min; None when there are none), evaluated with the target's levels as the step's fates see them."""
        if not self.state_kills or not len(agents):
            return None
        nf = C.shape[0]
        flat = C.reshape(nf, int(np.prod(C.shape[1:])))
        out = np.zeros((len(agents), len(self.agents)))
        voxel = agents.voxels(geometry)
        for killer, target, tree, scale in self.state_kills:
            idx = np.flatnonzero(agents.typ == target)
            if len(idx):
                names = self._names(t, flat, voxel[idx], agents.internal[idx])
                out[idx, killer] += np.maximum(self._eval(tree, names, len(idx)), 0.0) * scale
        return out

    # ---- evaluation -------------------------------------------------------------------------------------------
    def _names(self, t, flat, voxel, internal):
        names = dict(self.values)
        names["t"] = t
        for f, name in enumerate(self.fields):
            names[name] = flat[f] if voxel is None else flat[f, voxel]
        if internal is not None:
            for k, name in enumerate(self.internal):
                names[name] = internal[:, k]
        return names

    def _eval(self, tree, names, n):
        return np.broadcast_to(np.asarray(evaluate_array(tree, names), dtype=float), (n,))

    def _coefficient(self, tree, zero, f, names, n):
        """rate / c where c > 0, else d rate / d c at c = 0: the implicit uptake coefficient (1/min)."""
        c = np.broadcast_to(np.asarray(names[self.fields[f]], dtype=float), (n,))
        rate = self._eval(tree, names, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(c > 0, rate / np.where(c > 0, c, 1.0), 0.0)
        if np.any(c <= 0):
            at_zero = {**names, self.fields[f]: np.zeros(n)}
            g = np.where(c > 0, g, self._eval(zero, at_zero, n))
        return g

    # ---- the step's hooks -------------------------------------------------------------------------------------
    def before_fields(self, C, agents: Agents, voxel, cells, t: float, dt: float) -> None:
        """Per-cell secretion and uptake into the solver's (voxel, w, S, T, U, E) arrays, then the internal ODEs."""
        nf = C.shape[0]
        flat = C.reshape(nf, int(np.prod(C.shape[1:])))  # (not -1: a tissue of cells alone has nf = 0)
        if cells is not None:
            E, U = cells[5], cells[4]
            for term in self.rates:
                idx = np.flatnonzero(agents.typ == term.type)
                if not len(idx):
                    continue
                names = self._names(t, flat, voxel[idx], agents.internal[idx])
                rate = None
                for f, net in term.net.items():
                    if net > 0:
                        if rate is None:
                            rate = self._eval(term.tree, names, len(idx))
                        E[idx, f] += net * rate * self.volume
                    else:
                        g = self._coefficient(term.tree, term.zero[f], f, names, len(idx))
                        U[idx, f] += -net * g * self.volume / self.cell_volume[term.type]
        if self.odes:
            self._integrate(flat, agents, voxel, t, dt)

    def _integrate(self, flat, agents: Agents, voxel, t, dt):
        for ty in sorted({o.type for o in self.odes}):
            idx = np.flatnonzero(agents.typ == ty)
            if not len(idx):
                continue
            terms = [o for o in self.odes if o.type == ty]
            x0 = agents.internal[idx].copy()

            def slope(x, s, idx=idx, terms=terms):
                names = self._names(s, flat, voxel[idx], x)
                dx = np.zeros_like(x)
                for o in terms:
                    rate = self._eval(o.tree, names, len(idx))
                    for k, net in o.net.items():
                        dx[:, k] += net * rate
                return dx

            k1 = slope(x0, t)
            k2 = slope(x0 + 0.5 * dt * k1, t + 0.5 * dt)
            k3 = slope(x0 + 0.5 * dt * k2, t + 0.5 * dt)
            k4 = slope(x0 + dt * k3, t + dt)
            x = x0 + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
            cols = self.carriers[ty]
            if not np.all(np.isfinite(x[:, cols])):
                bad = sorted({o.process for o in terms})
                raise IlsimError(f"the per-cell state of '{self.agents[ty]}' became non-finite at {t:g} min (processes "
                                 f"{', '.join(bad)}): a rate is undefined at the cells' levels (e.g. 0/0)")
            agents.internal[np.ix_(idx, cols)] = x[:, cols]

    def after_fields(self, C, ledger, t: float, dt: float, voxel_volume: float) -> None:
        """Reactions in every voxel: production explicit, consumption implicit (never below zero), over dt."""
        if not self.reactions:
            return
        nf = C.shape[0]
        flat = C.reshape(nf, int(np.prod(C.shape[1:])))  # (not -1: a tissue of cells alone has nf = 0)
        n = flat.shape[1]
        names = self._names(t, flat.copy(), None, None)
        gain, loss = np.zeros((nf, n)), np.zeros((nf, n))
        for r in self.reactions:
            rate = None
            for f, net in r.net.items():
                if net > 0:
                    if rate is None:
                        rate = self._eval(r.tree, names, n)
                    gain[f] += net * rate
                else:
                    loss[f] += -net * self._coefficient(r.tree, r.zero[f], f, names, n)
        for f in range(nf):
            old = flat[f].copy()
            flat[f] = (old + dt * gain[f]) / (1.0 + dt * loss[f])
            if ledger is not None:
                ledger.secreted[f] += dt * gain[f].sum() * voxel_volume
                ledger.decayed[f] += (dt * loss[f] * flat[f]).sum() * voxel_volume

    def after_agents(self, C, agents: Agents, types, geometry, vessels, step: int, dt: float, seed: int,
                     ledger=None) -> None:
        """Fates read from processes, recruitment, and the initial internal state of the cells new this step."""
        t = step * dt  # the fields and cells as they are at the end of the step
        nf = C.shape[0]
        flat = C.reshape(nf, int(np.prod(C.shape[1:])))  # (not -1: a tissue of cells alone has nf = 0)
        if self.fates and len(agents):
            voxel = agents.voxels(geometry)
            fate = np.zeros(len(agents), dtype=np.int64)
            newtype = agents.typ.copy()
            hits = []
            for i, term in enumerate(self.fates):
                idx = np.flatnonzero(agents.typ == term.type)
                if not len(idx):
                    continue
                rate = self._eval(term.tree, self._names(t, flat, voxel[idx], agents.internal[idx]), len(idx))
                p = 1.0 - np.exp(-np.maximum(rate, 0.0) * dt)
                hit = idx[draws(seed, agents.ids[idx], step, PURPOSE + i) < p]
                if term.kind == "death":
                    fate[hit] = 1  # (a cell can die only once: a second death term finds it dead already)
                elif term.kind == "division":
                    fate[hit] = np.where(fate[hit] == 1, 1, 2)
                else:
                    hit = hit[newtype[hit] == agents.typ[hit]]  # the first drawn differentiation wins
                    newtype[hit] = term.into
                hits.append((term, hit))
            for term, hit in hits:  # what the events that took place release into their cells' voxels
                if term.release and len(hit):
                    happened = {"death": hit, "division": hit[fate[hit] == 2]}.get(term.kind, hit[fate[hit] != 1])
                    self._release(flat, voxel[happened], term.release, geometry.dx**3, ledger)
            agents.release(C, np.flatnonzero(fate == 1), types, geometry, ledger)  # what the dead had internalised
            agents._apply(fate, newtype, types, geometry, step, seed)
        for i, term in enumerate(self.recruits):
            self._recruit(i, term, flat, agents, geometry, vessels, t, step, dt, seed)
        if self.internal and len(agents):
            # a cell new in its type (a recruit, or one that differentiated) starts with the species' initial values
            # of the state its type carries, and keeps none of the state of the type it left (NaN)
            carried = np.zeros((len(self.agents), len(self.internal)), dtype=bool)
            for ty, cols in enumerate(self.carriers):
                carried[ty, cols] = True
            mask = carried[agents.typ]
            state = agents.internal
            fresh = mask & np.isnan(state)
            state[fresh] = np.broadcast_to(self.initial, state.shape)[fresh]
            state[~mask] = np.nan

    def _release(self, flat, voxels, release: dict[int, float], voxel_volume: float, ledger) -> None:
        for f, n in release.items():
            np.add.at(flat[f], voxels, n * self.volume / voxel_volume)  # n units of concentration over the domain
            if ledger is not None:
                ledger.secreted[f] += n * self.volume * len(voxels)

    def _recruit(self, i, term: Recruit, flat, agents: Agents, geometry, vessels, t, step, dt, seed):
        where = np.asarray(vessels, dtype=np.int64) if vessels is not None and len(vessels) else np.arange(flat.shape[1])
        names = self._names(t, flat, where, None)
        rate = np.maximum(self._eval(term.tree, names, len(where)), 0.0) / len(where)
        total = float(rate.sum()) * dt
        if not total > 0:
            return
        key = RECRUIT_KEY + i * (1 << 32)
        count = int(poisson.ppf(uniform(seed, key, step, PURPOSE), total))
        if not count:
            return
        cumulative = np.cumsum(rate) / rate.sum()
        nx, ny, _ = geometry.shape
        pos = np.zeros((count, 3))
        for j in range(count):
            u = [uniform(seed, key + 1 + j, step, PURPOSE + p) for p in range(4)]
            v = int(where[min(np.searchsorted(cumulative, u[0]), len(where) - 1)])
            k, rem = divmod(v, nx * ny)
            jy, ix = divmod(rem, nx)
            corner = (ix, jy, k)
            for a in range(geometry.dims):  # uniform within the chosen voxel
                pos[j, a] = (corner[a] + u[1 + a]) * geometry.dx
        agents.add(pos, np.full(count, term.type, dtype=np.int64), seed, geometry.dims)


@njit(cache=True)
def draws(seed, ids, step, purpose):
    """One uniform number per agent id for this step and purpose (the agents' counter-based streams)."""
    out = np.empty(ids.shape[0])
    for a in range(ids.shape[0]):
        out[a] = uniform(seed, ids[a], step, purpose)
    return out


# ---- reading the processes ------------------------------------------------------------------------------------
def read(spec, tissue, values: dict[str, float], shape, dx: float, problems: list[Problem], source=None) -> Reading:
    """The processes of ``spec`` (expanded) as per-cell rules of ``tissue``; one Problem per process that cannot be
    read (added to ``problems``)."""
    fields = [f.species for f in tissue.fields]
    agents = [a.species for a in tissue.agents]
    species = {s.name: s for s in spec.species}
    internal: list[str] = []
    for i, a in enumerate(tissue.agents):
        for name in a.internal:
            where = f"tissue.agents[{i}].internal"
            if name not in species:
                problems.append(Problem(where, f"'{name}' is not a species of the model", source))
            elif name in fields or species[name].kind == "cell":
                problems.append(Problem(where, f"'{name}' is a field or a cell species: a species internal to cells is "
                                               "a value per cell (kind other, e.g. receptor occupancy)", source))
            elif name not in internal:
                internal.append(name)
    carriers = [[internal.index(n) for n in a.internal if n in internal] for a in tissue.agents]
    initial = np.array([_number(species[n].initial, values) for n in internal])
    dims = len(shape)
    volume = math.prod(shape) * dx**3
    radius = np.array([a.radius for a in tissue.agents])
    cell_volume = 4.0 / 3.0 * math.pi * radius**3
    reading = Reading(values, fields, agents, internal, carriers, initial, volume, cell_volume,
                      stated=_stated(spec.tissue or tissue))
    observables = {o.name: parse(o.expression) for o in spec.observables}
    observables.update({d.name: parse(d.expression) for d in spec.derived})
    calculus = Differentiator(observables)
    explicit = set(tissue.explicit)
    names = {p.name for p in spec.processes}
    for k, name in enumerate(tissue.explicit):
        if name not in names:
            problems.append(Problem(f"tissue.explicit[{k}]", f"'{name}' is not a process of the model", source))
    for k, p in enumerate(spec.processes):
        if p.name in explicit:
            continue
        try:
            how = _read_one(reading, tissue, spec, p, calculus, dims, dx, species)
        except Refused as exc:
            problems.append(Problem(f"processes[{k}]", f"'{p.name}' cannot be read per cell by the tissue engine: {exc}; "
                                                      "state its rule in the tissue: section and list it under "
                                                      "tissue.explicit (docs/tissue.md)", source))
            continue
        if how:
            reading.read[p.name] = how
    return reading


_BOUND = re.compile(r"^(agents|fields)\[([^\]]+)\]\.(death|division|decay)$")


def _stated(section) -> set:
    """The numeric rules the section states by hand: set in the file, or bound to a parameter. Read from the section
    as written (``spec.tissue``): a section with bound values set is validated anew and marks every field as set."""
    out = set()
    for i, a in enumerate(section.agents):
        out |= {(i, name) for name in ("death", "division") if name in a.model_fields_set}
    for i, f in enumerate(section.fields):
        if "decay" in f.model_fields_set:
            out.add((i, "decay"))
    for path in section.parameters.values():
        m = _BOUND.match(path.replace(" ", ""))
        if m:
            entries = section.agents if m.group(1) == "agents" else section.fields
            index = m.group(2)
            i = int(index) if index.isdigit() else next((k for k, e in enumerate(entries) if e.species == index), -1)
            out.add((i, m.group(3)))
    return out


def parameters_used(spec, tissue) -> set[str]:
    """The parameters in the rates of the processes that touch the tissue's species (and are not explicit): a timed
    event changing one changes what the cells do."""
    held = {f.species for f in tissue.fields} | {a.species for a in tissue.agents} | {n for a in tissue.agents
                                                                                     for n in a.internal}
    parameters = {p.name for p in spec.parameters}
    observables = {o.name: parse(o.expression) for o in spec.observables}
    calculus = Differentiator(observables)
    out: set[str] = set()
    for p in spec.processes:
        if p.name in tissue.explicit:
            continue
        names = calculus.depends_on(parse(p.rate))
        if (names | set(p.consumes) | set(p.produces)) & held:
            out |= names & parameters
    return out


def _number(text, values) -> float:
    return float(evaluate(parse(text), values))


def _read_one(reading: Reading, tissue, spec, p, calculus: Differentiator, dims: int, dx: float, species) -> str | None:
    fields, agents, internal = reading.fields, reading.agents, reading.internal
    tree = calculus.inline(parse(p.rate))
    used = tree.names() - {"t"} - set(reading.values)
    net: dict[str, float] = {}
    for s, n in p.produces.items():
        net[s] = net.get(s, 0.0) + float(n)
    for s, n in p.consumes.items():
        net[s] = net.get(s, 0.0) - float(n)
    net = {s: n for s, n in net.items() if n != 0}
    touched = used | set(net)
    in_tissue = set(fields) | set(agents) | set(internal)
    if not touched & in_tissue:
        return None  # the well-mixed part of the model
    outside = sorted(touched - in_tissue)
    if outside and tissue.systemic is not None:
        # tissue and body together (a transport into plasma, a drug entering from blood): the systemic link moves
        # them through the vessel voxels (systemic.py), and the well-mixed part integrates what changes no tissue
        # species; read per cell too, they would be counted twice
        return f"left to the systemic link (it involves the well-mixed {_list(outside)})"
    if outside:
        raise Refused(f"it involves {_list(outside)}, which the tissue does not hold (neither a field, an agent type nor "
                      "a species internal to cells)")
    in_rate = {a for a in agents if a in used}
    changed_agents = {a: n for a, n in net.items() if a in agents}
    changed_fields = {fields.index(f): n for f, n in net.items() if f in fields}
    changed_internal = {internal.index(s): n for s, n in net.items() if s in internal}
    agent = {a: i for i, a in enumerate(agents)}
    spec_agents = tissue.agents

    if changed_internal:
        if changed_agents or changed_fields:
            raise Refused("it changes a species internal to cells together with cells or a field; write each part as a "
                          "process of its own (a field taken into cells: uptake: [{field, rate, into}] in the section)")
        if in_rate:
            raise Refused(f"its rate contains cell numbers ({_list(sorted(in_rate))}); a rate of species internal to cells "
                          "is per cell")
        needed = {s for s in used if s in internal} | {internal[c] for c in changed_internal}
        types = [i for i, a in enumerate(spec_agents) if needed <= set(a.internal)]
        if not types:
            raise Refused(f"no agent type carries all of {_list(sorted(needed))} (agents[].internal)")
        for ty in types:
            reading.odes.append(Internal(p.name, ty, tree, changed_internal))
        return f"per-cell ODE of {_list([agents[t] for t in types])}"

    if not changed_agents:  # fields change
        if not in_rate:
            if used & set(internal):
                raise Refused("its rate uses a species internal to cells but no cell number: a per-cell rate needs its "
                              "cells as a factor")
            if len(changed_fields) == 1 and next(iter(changed_fields.values())) == -1:
                f = next(iter(changed_fields))
                d = calculus.derivative(tree, fields[f])
                if not d.names() - set(reading.values) and _same(tree, BinOp("*", Name(fields[f]), d), reading):
                    if (f, "decay") in reading.stated:
                        return None  # the section's decay states it
                    reading.decay[f] = reading.decay.get(f, 0.0) + float(evaluate(d, reading.values))
                    return f"first-order decay of {fields[f]}"
            zero = _uptake_zero(tree, changed_fields, reading, calculus)
            reading.reactions.append(Reaction(p.name, tree, changed_fields, zero))
            return "reaction in every voxel"
        parts = _per_cell(tree, sorted(in_rate), reading, calculus)
        read = []
        for a, part in parts.items():
            ty = agent[a]
            _own_internal(part, ty, reading)
            rules = spec_agents[ty]
            target = {g.field for g in rules.secretion_target}
            secreted = {s.field for s in rules.secretion} | target
            taken = {u.field for u in rules.uptake} | target
            if any(fields[f] in (secreted if n > 0 else taken) for f, n in changed_fields.items()):
                continue  # the section states this cell type's rule for the field
            zero = _uptake_zero(part, changed_fields, reading, calculus)
            reading.rates.append(CellRate(p.name, ty, part, changed_fields, zero))
            read.append(a)
        kinds = {"secretion" if n > 0 else "uptake" for n in changed_fields.values()}
        return f"{'/'.join(sorted(kinds))} by {_list(read)}" if read else None

    released = {f: n for f, n in changed_fields.items() if n > 0}
    if len(released) < len(changed_fields):
        raise Refused("it changes cells and consumes a field in one process; write the field's part as a process of "
                      "its own")
    if released and not (len(in_rate) == 1 and len(changed_agents) <= 2):
        raise Refused("only a death, division or differentiation of one cell can release a field (into its voxel); "
                      "write the field's part as a process of its own")
    for a, n in changed_agents.items():
        if n not in (1.0, -1.0):
            raise Refused(f"its net stoichiometry of {a} is {n:g}; on cells it must be one cell (+1 or -1): a cell "
                          "dies, divides, changes type or arrives")
    lost = [a for a, n in changed_agents.items() if n < 0]
    gained = [a for a, n in changed_agents.items() if n > 0]
    if len(lost) == 1 and len(gained) == 0 and len(in_rate) == 2 and lost[0] in in_rate:
        target = lost[0]
        killer = next(iter(in_rate - {target}))
        d = calculus.derivative(calculus.derivative(tree, killer), target)
        ka, kt = agent[killer], agent[target]
        own = {internal[c] for c in reading.carriers[kt]}  # k may depend on the target's state (its internal species)
        if d.names() - set(reading.values) - own or not _same(tree, BinOp("*", BinOp("*", Name(killer), Name(target)), d),
                                                              reading):
            raise Refused(f"a killing of {target} by {killer} is read as k*{killer}*{target} with k a constant or a "
                          f"function of {target}'s internal species; this rate is not of that form")
        if any(kl.target == target for kl in spec_agents[ka].kills):
            return None
        reach = (spec_agents[ka].radius + spec_agents[kt].radius) * spec_agents[ka].contact_reach
        contact = 4.0 / 3.0 * math.pi * reach**3 if dims == 3 else math.pi * reach**2 * dx
        if d.names() & own:
            reading.state_kills.append((ka, kt, d, reading.volume / contact))
            return (f"killing of {target} on contact with {killer}: k x V_domain / V_contact per contact, k depending "
                    f"on {_list(sorted(d.names() & own))} of the target")
        rate = float(evaluate(d, reading.values)) * reading.volume / contact
        reading.kills[(ka, kt)] = reading.kills.get((ka, kt), 0.0) + rate
        return f"killing of {target} on contact with {killer}: {rate:.6g}/min per contact"
    if not in_rate:
        if len(gained) == 1 and not lost:
            if used & set(internal):
                raise Refused("a recruitment rate cannot use a species internal to cells")
            ty = agent[gained[0]]
            if spec_agents[ty].recruitment is not None:
                return None
            reading.recruits.append(Recruit(p.name, ty, tree))
            return f"recruitment of {gained[0]}"
        raise Refused("it changes cells at a rate free of cells; only recruitment (one new cell of one type) is read so")
    if len(in_rate) != 1:
        raise Refused(f"its rate contains {_list(sorted(in_rate))}: a cell event's rate must be proportional to the cells "
                      "it happens to (one type), or to a killer and its target")
    a = next(iter(in_rate))
    part = _per_cell(tree, [a], reading, calculus)[a]
    ty = agent[a]
    _own_internal(part, ty, reading)
    rules = spec_agents[ty]
    if lost == [a] and not gained:
        kind, into = "death", -1
        stated = (ty, "death") in reading.stated
    elif gained == [a] and not lost:
        kind, into = "division", -1
        stated = (ty, "division") in reading.stated
    elif lost == [a] and len(gained) == 1:
        kind, into = "differentiation", agent[gained[0]]
        stated = rules.differentiation is not None
    else:
        raise Refused(f"it changes {_list(sorted(changed_agents))} at a rate proportional to {a}: that is no death, "
                      "division, differentiation or killing on contact of one cell")
    if stated:
        return None
    reading.fates.append(Fate(p.name, ty, kind, part, into, released))
    out = f"{kind} of {a}" + (f" into {gained[0]}" if into >= 0 else "")
    return out + (f", releasing {_list(fields[f] for f in released)}" if released else "")


def _list(names) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _per_cell(tree, cells: list[str], reading: Reading, calculus: Differentiator) -> dict[str, Expr]:
    """Each cell type's per-cell rate: d rate / d A, refused unless free of cell numbers and rate = sum A x d rate/d A."""
    parts = {a: calculus.derivative(tree, a) for a in cells}
    for a, d in parts.items():
        again = sorted(d.names() & set(reading.agents))
        if again:
            what = f"of degree 2 in '{a}'" if a in again else f"a product of {_list(sorted({a, *again}))}"
            raise Refused(f"its rate is {what}, not a sum of per-cell rates (degree 1 in the cells)")
    total: Expr | None = None
    for a, d in parts.items():
        term = BinOp("*", Name(a), d)
        total = term if total is None else BinOp("+", total, term)
    if not _same(tree, total, reading):
        raise Refused(f"its rate has a part that is not proportional to the cells ({_list(cells)}); split that part "
                      "into a process of its own")
    return parts


def _own_internal(tree, ty: int, reading: Reading) -> None:
    foreign = sorted(n for n in tree.names() if n in reading.internal and reading.internal.index(n) not in reading.carriers[ty])
    if foreign:
        raise Refused(f"its rate for '{reading.agents[ty]}' uses {_list(foreign)}, which that cell type does not carry")


def _uptake_zero(tree, net: dict[int, float], reading: Reading, calculus: Differentiator) -> dict[int, Expr]:
    """For each consumed field, d rate / d c (the uptake coefficient at c = 0); refused when the rate does not vanish
    with the consumed field (a cell would take up what is not there)."""
    zero = {}
    for f, n in net.items():
        if n >= 0:
            continue
        name = reading.fields[f]
        if not _vanishes(tree, name, reading):
            raise Refused(f"it consumes '{name}' at a rate that does not vanish where '{name}' is 0; a per-cell or voxel "
                          "uptake must be proportional to what it takes up (e.g. k*cells*c or a Michaelis-Menten form)")
        zero[f] = calculus.derivative(tree, name)
    return zero


def _points(reading: Reading, n: int = _CHECKS):
    """Positive values spread over six decades (time up to 10^4 min), so that the branches of a piecewise rate or a
    switch in time are visited; the parameters at their values."""
    rng = np.random.default_rng(12)  # fixed: the check is the same in every run
    names = dict(reading.values)
    for name in [*reading.fields, *reading.agents, *reading.internal]:
        names[name] = 10.0 ** rng.uniform(-3.0, 3.0, n)
    names["t"] = 10.0 ** rng.uniform(-2.0, 4.0, n)
    return names


def _same(a: Expr, b: Expr, reading: Reading) -> bool:
    """Whether two trees are the same function: equal at random positive points (an identity test; trees are compared
    numerically because the expression language has no canonical form)."""
    names = _points(reading)
    x = np.asarray(evaluate_array(a, names), dtype=float)
    y = np.asarray(evaluate_array(b, names), dtype=float)
    return bool(np.all(np.isclose(x, y, rtol=1e-9, atol=1e-300) | (np.isnan(x) & np.isnan(y))))


def _vanishes(tree: Expr, name: str, reading: Reading) -> bool:
    names = _points(reading)
    names[name] = np.zeros(_CHECKS)
    x = np.asarray(evaluate_array(tree, names), dtype=float)
    return bool(np.all(x == 0))
