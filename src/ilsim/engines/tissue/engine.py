"""TissueEngine: a model's ``tissue:`` section run as a voxel grid of diffusing species and individual cells.

One step of ``dt`` (minutes): the cells sense their voxels and set their secretion and uptake, the fields take
one LOD diffusion-decay step with those sources (``diffusion.py``), then the cells move and meet their fates
(``agents.py``). The state after any step is (step number, fields, agent arrays, ledger): ``TissueState``, which
``run`` can start from, so a run continues from a checkpoint with the very numbers it would have had.

On the engine contract (``engines/base.py``): ``solve(model, t_eval, P)`` gives, per row of ``P`` (a replicate: the
seed mixed with the row's index; model parameters set the tissue numbers bound to them and the rates of the processes
read per cell), the number of cells of each agent species, the mean concentration of each field species and the mean
of each species internal to cells over the cells that carry it, at the output times (minutes), NaN for the other
species; so ``simulate`` and the cohort machinery can read a tissue run like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ilsim.engines.base import NON_FINITE, OK, SOLVER_FAILED, Engine, EngineResult
from ilsim.engines.tissue import conditions, gpu, systemic
from ilsim.engines.tissue.agents import Agents
from ilsim.engines.tissue.diffusion import Ledger
from ilsim.engines.tissue.setup import Setup, build
from ilsim.engines.tissue.systemic import Body, Link
from ilsim.errors import IlsimError, argument


@dataclass
class TissueState:
    step: int
    fields: np.ndarray
    agents: Agents
    ledger: Ledger
    body: Body | None = None  # the well-mixed part (tissue.systemic), if the model has one
    values: dict[str, float] | None = None  # the parameters the tissue uses, as the events so far left them
    watch: conditions.Watch | None = None  # the condition events' armed flags and pending actions


@dataclass
class Snapshot:
    time: float  # min
    fields: np.ndarray  # fields x z x y x x
    agents: dict  # arrays: ids, typ, pos, occupancy, on_since, internal
    body: np.ndarray | None = None  # every species of the well-mixed state (tissue.systemic)


@dataclass
class TissueRun:
    setup: Setup
    snapshots: list[Snapshot] = field(default_factory=list)
    state: TissueState | None = None
    link: Link | None = None  # the well-mixed part's coupling (tissue.systemic)

    def counts(self) -> np.ndarray:
        """Cells of each agent type at each saved time (times x types)."""
        nt = len(self.setup.agent_names)
        return np.array([np.bincount(s.agents["typ"], minlength=nt)[:nt] for s in self.snapshots])

    def field_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and max of each field at each saved time (times x fields)."""
        if not self.setup.fields:  # a tissue of cells alone: no columns (a reshape of its empty grid would fail)
            empty = np.zeros((len(self.snapshots), 0))
            return empty, empty.copy()
        mean = np.array([s.fields.reshape(len(self.setup.fields), -1).mean(axis=1) for s in self.snapshots])
        peak = np.array([s.fields.reshape(len(self.setup.fields), -1).max(axis=1) for s in self.snapshots])
        return mean, peak

    @property
    def times(self) -> np.ndarray:
        return np.array([s.time for s in self.snapshots])


def _snapshot(t, C, agents: Agents, body: Body | None = None) -> Snapshot:
    return Snapshot(t, C.copy(), {"ids": agents.ids.copy(), "typ": agents.typ.copy(), "pos": agents.pos.copy(),
                                  "occupancy": agents.occupancy.copy(), "on_since": agents.on_since.copy(),
                                  "internal": agents.internal.copy()},
                    None if body is None else body.y.copy())


def run(setup: Setup, *, t_end: float | None = None, save_every: float | None = None, seed: int | None = None,
        resume: TissueRun | None = None, on_save: Callable[[TissueRun], None] | None = None,
        on_step: Callable[[float, int], None] | None = None, link: Link | None = None, backend: str = "cpu") -> TissueRun:
    """Step the tissue to ``t_end`` (min), keeping a snapshot every ``save_every`` min (and at 0); ``resume`` continues
    a run from its state. ``on_save`` is called after each snapshot (checkpoints), ``on_step`` with (time, cells).
    ``link`` (``systemic.link``): the well-mixed part of the model, stepped beside the tissue. ``backend``: cpu (numba's
    threads) or gpu (the fields' and the cells' loops on a CUDA device, ``gpu.py``; refused where there is none)."""
    on_device, drivers = gpu.backend_parts(backend)
    tissue = setup.tissue
    dt = tissue.dt
    seed = tissue.seed if seed is None else seed
    t_end = tissue.t_end if t_end is None else t_end
    save_every = tissue.save_every if save_every is None else save_every
    for name, value in (("t_end", t_end), ("save_every", save_every)):
        # checked before rounding: NaN or infinity would otherwise escape as a ValueError/OverflowError from round()
        if not np.isfinite(value) or value <= 0:
            raise IlsimError(f"{argument(name)} must be a positive, finite number of minutes, got {value:g}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        # as the section's seed: a negative one would wrap silently in the counter-based draws
        raise IlsimError(f"{argument('seed')} must be an integer from 0 to 2**63 - 1, got {seed!r}")
    steps = round(t_end / dt)
    every = max(1, round(save_every / dt))
    if abs(steps * dt - t_end) > 1e-9 * t_end or abs(every * dt - save_every) > 1e-9 * save_every:
        raise IlsimError(f"t_end ({t_end:g} min) and save_every ({save_every:g} min) must be whole numbers of steps "
                         f"(dt = {dt:g} min)")
    if resume is not None and resume.state is not None:
        result = resume
        state = resume.state
    else:
        # fresh arrays each run (the setup's stay as placed): the cells' random streams start from this run's seed
        agents = Agents.place(setup.agents.pos.copy(), setup.agents.typ.copy(), seed, setup.geometry.dims,
                              setup.agents.internal.copy())
        state = TissueState(0, setup.initial.copy(), agents, Ledger.zeros(len(setup.fields)))
        state.body = link.start(state.fields, agents) if link is not None else None
        if setup.conditions:
            def act0(ev, due):  # a timed event at t = 0 with a guard and no delay: before the first step
                _jump(ev, state.fields, setup, state, link, 0.0, due)
                if ev.sets or ev.adds:
                    state.values = ev.parameters(state.values if state.values is not None else dict(setup.values))

            def compute0(ev):
                return link.action_values(state.body, ev.index, 0.0) if link is not None else None

            state.watch = conditions.start(setup, conditions.view(setup, 0.0, setup.values, state.fields, agents,
                                                                  state.body, link), act0, compute0)
        result = TissueRun(setup, [_snapshot(0.0, state.fields, agents, state.body)], state)
    result.link = link
    C, agents = state.fields, state.agents
    solver, types, geometry, reading = on_device(setup.solver), setup.types, setup.geometry, setup.percell
    # the bound parameters as the events before this step left them (a resumed run replays them; doses are in C)
    values, changed = dict(setup.values), False
    if state.values is not None:  # kept in the state: condition events cannot be replayed from a schedule
        values, changed = dict(state.values), state.values != setup.values
    else:
        for ev in setup.events:
            if ev.step < state.step and (ev.sets or ev.adds):
                values, changed = ev.parameters(values), True
    if changed:
        current = setup.rebuild(values)
        solver, types, reading = on_device(current.solver), current.types, current.percell
    events = [ev for ev in setup.events if ev.step >= state.step]
    for step in range(state.step, steps):
        t = step * dt
        while events and events[0].step == step:
            ev = events.pop(0)
            for f, rise in ev.doses:
                _dose(C[f], setup, rise, state.ledger, f)
            if ev.sets or ev.adds:
                values = ev.parameters(values)
                current = setup.rebuild(values)  # checked before the run: every value is one the section accepts
                solver, types, reading = on_device(current.solver), current.types, current.percell
        if link is not None:
            link.events(state.body, step, dt)
            link.set_blood(solver, state.body)
            before = state.ledger.blood.copy()
        cells = agents.sources(C, types, geometry, t, dt, drivers) if setup.fields and len(agents) else None
        if reading:  # the model's processes read per cell (percell.py)
            reading.before_fields(C, agents, agents.voxels(geometry), cells, t, dt)
        if setup.fields:  # a tissue of cells alone has no grid to step
            taken = np.zeros((len(agents), len(setup.fields))) if cells is not None else None
            solver.step(C, cells, state.ledger, taken)
            if taken is not None:
                agents.internalise(taken, types)  # uptake[].into: what the voxels lost, the cells gain
            if reading:
                reading.after_fields(C, state.ledger, t, dt, solver.voxel_volume)
        extra = reading.kill_rates(C, agents, geometry, (step + 1) * dt) if reading else None
        agents.step(C, types, geometry, step + 1, dt, seed, setup.vessels, drivers, ledger=state.ledger, kill_extra=extra)
        if reading:
            reading.after_agents(C, agents, types, geometry, setup.vessels, step + 1, dt, seed, state.ledger)
        if link is not None:
            link.advance(state.body, state.ledger.blood - before, C, agents, t, dt)
        if setup.conditions:
            end = step + 1

            def act(ev, due, end=end):
                nonlocal values, solver, types, reading
                _jump(ev, C, setup, state, link, end * dt, due)
                if ev.sets or ev.adds:
                    values = ev.parameters(values)
                    current = setup.rebuild(values)  # a value the section refuses stops the run with its ModelError
                    solver, types, reading = on_device(current.solver), current.types, current.percell

            def compute(ev, end=end):
                return link.action_values(state.body, ev.index, end * dt) if link is not None else None

            conditions.step_end(setup, state.watch, end,
                                conditions.view(setup, end * dt, values, C, agents, state.body, link), act, compute)
        state.values = dict(values)
        state.agents = agents
        state.step = step + 1
        if on_step is not None:
            on_step((step + 1) * dt, len(agents))
        if (step + 1) % every == 0 or step + 1 == steps:
            result.snapshots.append(_snapshot((step + 1) * dt, C, agents, state.body))
            if on_save is not None:
                on_save(result)
    return result


def internal_means(out: TissueRun, k: int) -> np.ndarray:
    """The mean of internal species ``k`` over the cells carrying it, per saved time (NaN where none does)."""
    means = []
    for s in out.snapshots:
        values = s.agents["internal"][:, k]
        values = values[~np.isnan(values)]
        means.append(values.mean() if len(values) else np.nan)
    return np.array(means)


def replicate_seed(seed: int, index: int) -> int:
    """The seed of replicate ``index`` of a run seeded ``seed``: both mixed by NumPy's SeedSequence, so replicates of
    neighbouring run seeds do not share streams (seed s, replicate 1 is not seed s + 1, replicate 0)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _jump(ev, C, setup, state, link, t: float, due) -> None:
    """A condition event's doses of tissue fields and, with a link, its actions on the well-mixed part."""
    for f, rise in ev.doses:
        _dose(C[f], setup, rise, state.ledger, f)
    if link is not None:
        link.jump(state.body, ev.index, t, due)


def _dose(level: np.ndarray, setup: Setup, rise: float, ledger: Ledger, f: int) -> None:
    """A systemic dose raising the field's mean by ``rise``: the amount rise x domain volume enters through the vessel
    voxels (equal shares), or spread uniformly over every voxel where the domain has no vessels."""
    flat = level.reshape(-1)
    voxel_volume = setup.geometry.dx ** 3
    amount = rise * flat.size * voxel_volume
    if len(setup.vessels):
        flat[setup.vessels] += amount / (len(setup.vessels) * voxel_volume)
    else:
        flat += rise
    ledger.dosed[f] += amount


class TissueEngine(Engine):
    """The tissue engine on the engine contract (see the module's docstring for what ``solve`` returns)."""

    name = "tissue"
    supports = {"events": True, "doses": True, "replicates": True}  # timed and condition events; doses through tissue.systemic

    def __init__(self, t_end: float | None = None, save_every: float | None = None, seed: int | None = None,
                 backend: str = "cpu"):
        if backend not in ("cpu", "gpu"):
            raise IlsimError(f"{argument('backend')} must be cpu or gpu, got {backend!r}")
        self.t_end = t_end
        self.save_every = save_every
        self.seed = seed
        self.backend = backend  # gpu: refused when the run starts where there is no CUDA device

    def settings(self) -> dict:
        # no tolerances: the diffusion step is LOD at a fixed dt and the cells' rules are stochastic
        return {"method": "lod", "rtol": None, "atol": None, "t_end": self.t_end, "save_every": self.save_every,
                "seed": self.seed, "backend": self.backend}

    def run(self, model, seed: int | None = None, source: str | None = None, base=None, **options) -> TissueRun:
        """One tissue run of a compiled model (its expanded spec's ``tissue:`` section)."""
        setup = build(model.spec, source=source, base=base)
        return run(setup, t_end=options.pop("t_end", self.t_end), save_every=options.pop("save_every", self.save_every),
                   seed=seed, link=systemic.link(model, setup, source=source), backend=self.backend, **options)

    def solve(self, model, t_eval, P, *, record_parameters: bool = False, log_events: int = 0, first: int = 0) -> EngineResult:
        """Row ``r`` of ``P`` is replicate ``first + r``: its bound tissue numbers (``tissue.parameters``) take the row's
        parameter values, and its seed (placement and every draw) is ``replicate_seed(run seed, first + r)``. A row
        whose values the section refuses, or whose fields turn non-finite, is marked failed with the reason; the
        other rows run on."""
        t_eval = np.asarray(t_eval, dtype=float)
        P = np.atleast_2d(np.asarray(P, dtype=float))
        tissue = model.spec.tissue
        build(model.spec)  # the model itself must be right: that is refused outright, not per row
        if self.backend == "gpu":  # so is the GPU where there is none
            gpu.require_gpu()
        dt = tissue.dt
        if t_eval[0] != 0.0 or np.any(np.abs(np.round(t_eval / dt) * dt - t_eval) > 1e-9 * max(1.0, t_eval[-1])):
            raise IlsimError(f"the tissue engine's output times are minutes from 0 in whole steps of dt = {dt:g} min")
        names = [s.name for s in model.spec.species]
        column = {name: i for i, name in enumerate(model.parameters)}
        base_seed = tissue.seed if self.seed is None else self.seed
        n, nt = P.shape[0], len(t_eval)
        Y = np.full((n, nt, len(names)), np.nan)
        status = np.full(n, OK)
        messages = [""] * n
        keep = np.round(t_eval / dt).astype(int)
        columns = self.summary_columns(model)
        extra = {name: np.full(n, np.nan) for name in columns}
        extra["seed"] = np.zeros(n, dtype=np.int64)  # every row has one, failed or not: it reproduces the row alone
        for row in range(n):
            seed = replicate_seed(base_seed, first + row)
            extra["seed"][row] = seed
            # every parameter: the bound tissue numbers and the rates of the processes read per cell
            values = {name: float(P[row, i]) for name, i in column.items()}
            try:
                setup = build(model.spec, values=values, seed=seed)
                out = run(setup, t_end=float(t_eval[-1]), save_every=dt, seed=seed, link=systemic.link(model, setup, P[row]),
                          backend=self.backend)
            except IlsimError as exc:
                status[row], messages[row] = SOLVER_FAILED, str(exc)
                continue
            counts = out.counts()[keep]
            mean, peak = out.field_stats()
            if not np.all(np.isfinite(mean)):
                status[row], messages[row] = NON_FINITE, "a field became non-finite"
                continue
            for k, a in enumerate(setup.agent_names):
                Y[row, :, names.index(a)] = counts[:, k]
            for k, f in enumerate(setup.fields):
                Y[row, :, names.index(f)] = mean[keep, k]
                top = peak[keep, k]  # the highest voxel at each output time
                i = int(np.argmax(top))
                extra[f"max[{f}].final"][row] = top[-1]
                extra[f"max[{f}].peak"][row] = top[i]
                extra[f"max[{f}].peak_time"][row] = t_eval[i]
            for k, name in enumerate(setup.internal_names):  # a species internal to cells: its mean over the carriers
                Y[row, :, names.index(name)] = internal_means(out, k)[keep]
            if out.link is not None:  # the well-mixed species of tissue.systemic
                body = np.array([s.body for s in out.snapshots])[keep]
                Y[row, :, out.link.wellmixed] = body[:, out.link.wellmixed].T
        P_t = np.repeat(P[:, None, :], nt, axis=1) if record_parameters else None
        return EngineResult(Y=Y, status=status, fired=np.zeros((n, len(model.events)), dtype=np.int64),
                            P_end=P.copy(), P_t=P_t, event_log=None, messages=messages, columns=extra)

    @staticmethod
    def summary_columns(model) -> list[str]:
        """The per-row columns ``solve`` adds beside the species' metrics: each field's highest voxel at the last output
        time, its largest value over the output times and when (``max[IL2].final``, ``.peak``, ``.peak_time``), and the
        row's own seed (``seed``: ``replicate_seed(run seed, row)``, which reproduces it alone)."""
        tissue = model.spec.tissue
        fields = [f.species for f in tissue.fields] if tissue is not None else []
        return ["seed"] + [f"max[{f}].{what}" for f in fields for what in ("final", "peak", "peak_time")]
