"""The body around the tissue: a well-mixed model integrated beside the grid and coupled to it through the vessels.

A model's ``tissue.systemic`` section names which fields exchange with which well-mixed species. The well-mixed
part is the model itself, minus the tissue: its species that are neither fields nor agents (plasma cytokines, CRP,
drug compartments) are integrated with the model's processes that change no tissue species (a process that changes a
field or an agent species, such as the well-mixed reading of a secretion or of the exchange with blood, is what the
grid, the cells and the vessel link do in a tissue run: kept, it would count twice). In their rates the tissue's
species read as the tissue shows them (a field: its mean over the domain; an agent species: its number of cells).

Coupling, by operator splitting at the tissue step dt (Lie: one after the other, first order in dt):

1. the vessel voxels of a linked field relax towards the blood level ``scale x species`` (the solver's implicit
   vessel update, ``diffusion.py``) during the tissue step;
2. the amount A (concentration x µm³) the step moved from blood into the domain, read from the ledger, leaves the
   species: ``species -= volume_ratio x A / (domain volume x scale)``, so that ``domain total / domain volume +
   scale x species / volume_ratio`` is unchanged by the link, to round-off;
3. the well-mixed ODE is integrated over the step (SciPy's LSODA, the model's tolerances), after the model's timed
   events due at the step's start (doses of ``doses:``/``pk:`` included) have acted on its species and parameters.

Limits: the model's time unit must be the minute (the tissue engine's); a condition event (``when:``) is judged at the
tissue's step ends (``conditions.py``), its actions on the well-mixed part applied there; so is a timed event with a
``delay:`` (or a guard and a tissue target), as a condition true from its time on (``setup._events``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import odeint

from ilsim.engines.tissue.setup import Setup
from ilsim.errors import ModelError, Problem, SimulationError, did_you_mean
from ilsim.model.compile import STATE


@dataclass
class Body:
    """The well-mixed state at a time: every species of the model (tissue slots hold the tissue's readings) and the
    parameters (events may change them)."""

    y: np.ndarray
    p: np.ndarray


class Link:
    """The well-mixed part of a compiled model and its exchange with a tissue ``setup``; see the module docstring."""

    def __init__(self, model, setup: Setup, p: np.ndarray | None = None, source: str | None = None):
        self.model = model
        self.setup = setup
        section = setup.tissue.systemic
        spec = model.spec
        problems: list[Problem] = []

        def problem(field: str, message: str) -> None:
            problems.append(Problem(field, message, source))

        if spec.metadata.time_units != "minute":
            problem("metadata.time_units", f"a tissue with a systemic: link needs time units of minute (the tissue "
                                           f"engine's), got '{spec.metadata.time_units}'")
        tissue_species = set(setup.fields) | set(setup.agent_names)
        index = {name: i for i, name in enumerate(model.species)}
        self.wellmixed = np.array([i for i, name in enumerate(model.species) if name not in tissue_species], dtype=np.int64)
        self.field_slots = [(k, index[f]) for k, f in enumerate(setup.fields) if f in index]
        self.agent_slots = [(k, index[a]) for k, a in enumerate(setup.agent_names) if a in index]
        self.exchange: list[tuple[int, int, float]] = []  # (field, species, scale)
        for j, e in enumerate(section.exchange):
            where = f"tissue.systemic.exchange[{j}]"
            if e.field not in setup.fields:
                problem(f"{where}.field", f"'{e.field}' is not a field of the tissue{did_you_mean(e.field, setup.fields)}")
            elif setup.tissue.fields[setup.fields.index(e.field)].vessel_exchange <= 0:
                problem(f"{where}.field", f"'{e.field}' has no vessel_exchange: nothing would pass between it and blood")
            if e.species not in index:
                problem(f"{where}.species", f"'{e.species}' is not a species of the model{did_you_mean(e.species, index)}")
            elif e.species in tissue_species:
                problem(f"{where}.species", f"'{e.species}' is part of the tissue; the link needs a well-mixed species "
                                            "(one that is neither a field nor an agent)")
            if e.field in setup.fields and e.species in index and e.species not in tissue_species:
                self.exchange.append((setup.fields.index(e.field), index[e.species], float(e.scale)))
        if not len(setup.vessels):
            problem("tissue.domain.vessels", "a systemic: link exchanges through vessel voxels; the domain has none")
        if problems:
            raise ModelError(problems)
        dt = setup.tissue.dt
        # a timed event the tissue runs as a condition event (one with a delay, or a guard and a tissue target:
        # setup._events) is applied there, on this link's state too, so it is not scheduled here as well
        watched = {ev.index for ev in setup.conditions if model.events[ev.index].condition is None}
        self.schedule: dict[int, list[int]] = {}
        for time, k in sorted((time, k) for k, ev in enumerate(model.events) for time in ev.times if k not in watched):
            step = round(time / dt)
            if abs(step * dt - time) > 1e-9 * max(1.0, abs(time)):
                raise ModelError([Problem(f"events[{k}].at", f"{time:g} min is not a whole number of tissue steps "
                                                             f"(dt = {dt:g} min)", source)])
            self.schedule.setdefault(step, []).append(k)
        self.p0 = model.p0.copy() if p is None else np.asarray(p, dtype=float).copy()
        self.domain_volume = float(np.prod(setup.geometry.shape[: setup.geometry.dims])) * setup.geometry.dx ** 3
        self.ratio = float(section.volume_ratio)
        self.rtol = float(spec.simulation.rtol)
        self.atol = float(spec.simulation.atol)
        self.names = [model.species[i] for i in self.wellmixed]
        self.body_model = _without(model, tissue_species)

    def start(self, C: np.ndarray, agents) -> Body:
        body = Body(self.model.initial_state(self.p0), self.p0.copy())
        self.read_tissue(body, C, agents)
        return body

    def read_tissue(self, body: Body, C: np.ndarray, agents) -> None:
        """The tissue's species in the well-mixed state: mean field levels and numbers of cells."""
        nf = C.shape[0]
        if self.field_slots:
            mean = C.reshape(nf, -1).mean(axis=1)
            for k, i in self.field_slots:
                body.y[i] = mean[k]
        if self.agent_slots:
            counts = np.bincount(agents.typ, minlength=len(self.setup.agent_names))
            for k, i in self.agent_slots:
                body.y[i] = counts[k]

    def events(self, body: Body, step: int, dt: float) -> None:
        """The model's timed events due at the start of ``step``: their actions on well-mixed species and on parameters
        (a tissue field's dose is the tissue engine's, ``setup.TissueEvent``); a guard (``only_if``) is tested first."""
        model = self.model
        t = step * dt
        for k in self.schedule.get(step, ()):
            ev = model.events[k]
            if ev.guard is not None and not model.evaluate(ev.guard, t, body.y, body.p):
                continue
            self.jump(body, k, t)

    def action_values(self, body: Body, k: int, t: float) -> np.ndarray:
        """Event ``k``'s action values on the state now (all from the old state, as in the ODE engine)."""
        return np.array([self.model.evaluate(node, t, body.y, body.p) for _, _, _, node in self.model.events[k].actions],
                        dtype=float)

    def jump(self, body: Body, k: int, t: float, values: np.ndarray | None = None) -> None:
        """Event ``k``'s actions on well-mixed species and on parameters (``values``: computed earlier, e.g. when a
        delayed event triggered; else now); its doses of tissue fields are the tissue engine's."""
        values = self.action_values(body, k, t) if values is None else values
        for (mode, kind, i, _), v in zip(self.model.events[k].actions, values):
            if kind == STATE and i not in self.wellmixed:
                continue
            target = body.y if kind == STATE else body.p
            target[i] = v if mode == "set" else target[i] + v
        body.y[self.wellmixed] = np.where(self.model.nonnegative[self.wellmixed],
                                          np.maximum(body.y[self.wellmixed], 0.0), body.y[self.wellmixed])

    def set_blood(self, solver, body: Body) -> None:
        """The blood level each linked field's vessel voxels see during the coming step."""
        for f, i, scale in self.exchange:
            solver.blood[f] = scale * body.y[i]

    def advance(self, body: Body, gained: np.ndarray, C: np.ndarray, agents, t: float, dt: float) -> None:
        """After a tissue step that moved ``gained`` (per field, concentration x µm³) from blood into the domain: take it
        out of the linked species, then integrate the well-mixed ODE over [t, t + dt] with the tissue as it now is."""
        for f, i, scale in self.exchange:
            body.y[i] -= self.ratio * gained[f] / (self.domain_volume * scale)
        self.read_tissue(body, C, agents)
        if not len(self.wellmixed):
            return
        y = body.y.copy()
        rhs = self.body_model.kernels["rhs"]
        w = self.wellmixed

        def f(yw, time, p):
            y[w] = yw
            return rhs(y, time, p)[w]

        out, info = odeint(f, body.y[w], [t, t + dt], args=(body.p,), rtol=self.rtol, atol=self.atol, full_output=True)
        if info["message"] != "Integration successful." or not np.all(np.isfinite(out[-1])):
            raise SimulationError(f"the well-mixed part of the tissue run failed between {t:g} and {t + dt:g} min: "
                                  f"{info['message']}")
        new = out[-1]
        body.y[w] = np.where(self.model.nonnegative[w], np.maximum(new, 0.0), new)

    def total(self, body: Body, C: np.ndarray) -> np.ndarray:
        """Per linked field, the amount the link conserves, per unit of domain volume: the domain's mean level plus
        scale x species / volume_ratio."""
        nf = C.shape[0]
        mean = C.reshape(nf, -1).mean(axis=1)
        return np.array([mean[f] + scale * body.y[i] / self.ratio for f, i, scale in self.exchange])


def _without(model, tissue_species: set[str]):
    """The compiled model without its processes that change a tissue species (same species, parameters and order)."""
    from ilsim.model.compile import compile_model

    spec = model.spec
    kept = [p for p in spec.processes if not (set(p.produces) | set(p.consumes)) & tissue_species]
    if len(kept) == len(spec.processes):
        return model
    return compile_model(spec.model_copy(update={"processes": kept}), source=model.source)


def link(model, setup: Setup, p: np.ndarray | None = None, source: str | None = None) -> Link | None:
    """The link of a model whose tissue has a ``systemic:`` section; None without one."""
    if setup.tissue.systemic is None:
        return None
    return Link(model, setup, p, source)


def series(run, model) -> np.ndarray:
    """Every species of the model at the run's saved times (times x species): an agent species' number of cells, a
    field's mean level, a well-mixed species' value (NaN without a systemic link); the ODE engine's reading of the
    same names, for outcome rules and summaries."""
    setup = run.setup
    index = {name: i for i, name in enumerate(model.species)}
    Y = np.full((len(run.snapshots), len(model.species)), np.nan)
    if run.link is not None:
        Y[:, run.link.wellmixed] = np.array([s.body for s in run.snapshots])[:, run.link.wellmixed]
    counts = run.counts()
    mean, _ = run.field_stats()
    for k, name in enumerate(setup.agent_names):
        Y[:, index[name]] = counts[:, k]
    for k, name in enumerate(setup.fields):
        Y[:, index[name]] = mean[:, k]
    return Y


def parameters_at_end(run, model, p: np.ndarray | None = None) -> np.ndarray:
    """The parameters at the end of the run: the well-mixed part's (events may have changed them), else ``p``."""
    if run.state is not None and run.state.body is not None:
        return run.state.body.p
    return model.p0 if p is None else p


def outcome(run, model, p: np.ndarray | None = None) -> str:
    """The model's outcome label (``outcomes:``, model/outcomes.py) of a tissue run, judged on ``series``; "" without
    outcome rules."""
    from ilsim.model.outcomes import label_outcomes

    t, Y = run.times, series(run, model)
    p_end = parameters_at_end(run, model, p)
    return str(label_outcomes(model, t, lambda k: model.namespace(t[k], Y[k], p_end), 1)[0])
