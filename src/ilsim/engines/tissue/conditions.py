"""The model's condition events (``when:``) in a tissue run, tested at the end of every step.

A stepped engine sees its state only between steps, so a condition is judged on the run's well-mixed view at each
step end (resolution dt): ``t``, the parameters' current values, each agent species as its number of live cells, each
field species as its mean concentration over the domain and, with a ``tissue.systemic`` link, each well-mixed species
as its value. As in the ODE engine, an event fires when its condition goes from false to true (one already true at
t = 0 does not fire), re-arms once it is false again, tests its ``only_if`` guard when it triggers and, with a
``delay`` (a whole number of steps), applies its actions that many steps later; ``persistent: false`` drops pending
actions whose condition turned false at a step end before they were due. Firings at one step end do not cascade: a
jump that makes another condition true is seen at the next step end.

The armed flags and the pending actions (``Watch``) are part of the run's state, so a checkpoint carries them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ilsim.model.expressions import Expr, evaluate


@dataclass
class ConditionEvent:
    """A condition event of the model acting on the tissue (or, with a systemic link, on its well-mixed part)."""

    index: int  # the event's position in the model (its compiled twin in the link's model)
    name: str
    condition: Expr
    guard: Expr | None
    delay: int  # steps
    persistent: bool
    doses: list[tuple[int, float]]  # (field index, rise of the field's mean concentration)
    sets: dict[str, float]
    adds: dict[str, float]
    wellmixed: bool  # it acts on well-mixed species too (only with a systemic link)
    values_at_trigger: bool = True
    at_start: bool = False  # a timed event at t = 0 (with only_if or delay): it triggers as the run starts

    def parameters(self, values: dict[str, float]) -> dict[str, float]:
        return changed(values, self.sets, self.adds)


def changed(values: dict[str, float], sets: dict[str, float], adds: dict[str, float]) -> dict[str, float]:
    """Parameter values after an event's ``set`` and ``add``."""
    new = {**values, **sets}
    for name, delta in adds.items():
        new[name] = new[name] + delta
    return new


@dataclass
class Watch:
    """The condition events' state: armed flags (one per event) and actions waiting for their step
    (due step end, event slot, the well-mixed action values computed at the trigger, or None)."""

    armed: np.ndarray
    pending: list[tuple[int, int, np.ndarray | None]] = field(default_factory=list)


def view(setup, t: float, values: dict[str, float], C: np.ndarray, agents, body=None, link=None) -> dict[str, float]:
    """The names a condition may read, with their values now."""
    out = {**setup.constants, **values, "t": float(t)}
    if setup.fields:
        out.update(zip(setup.fields, map(float, C.reshape(len(setup.fields), -1).mean(axis=1))))
    counts = np.bincount(agents.typ, minlength=len(setup.agent_names))
    out.update((name, float(counts[k])) for k, name in enumerate(setup.agent_names))
    if link is not None and body is not None:  # the link's parameters are the run's (every event acts on them too)
        out.update(zip(link.model.parameters, map(float, body.p)))
        out.update((link.model.species[i], float(body.y[i])) for i in link.wellmixed)
    return out


def start(setup, names: dict[str, float], act=None, compute=None) -> Watch:
    """Armed where the condition is false at t = 0: one already true does not fire until it has been false. A timed
    event at t = 0 (``at_start``) triggers now: its guard is tested on the t = 0 view, and its actions apply now
    (``act``) or after its delay (queued, with the values ``compute`` gives at the trigger)."""
    watch = Watch(np.array([not evaluate(ev.condition, names) for ev in setup.conditions], dtype=bool))
    for slot, ev in enumerate(setup.conditions):
        if not ev.at_start or (ev.guard is not None and not evaluate(ev.guard, names)):
            continue
        if ev.delay:
            watch.pending.append((ev.delay, slot, compute(ev) if ev.values_at_trigger else None))
        else:
            act(ev, None)
    return watch


def step_end(setup, watch: Watch, end: int, names: dict[str, float], act, compute) -> None:
    """At the end of step ``end`` (its index + 1), on the view ``names``: the pending actions due now, then the
    conditions. ``act(event, values)`` applies an event's actions (``values``: the well-mixed action values computed at
    its trigger, or None to compute them now); ``compute(event)`` computes them."""
    truth = [bool(evaluate(ev.condition, names)) for ev in setup.conditions]
    # a non-persistent event's pending actions are dropped once its condition is false before they apply
    watch.pending = [p for p in watch.pending if setup.conditions[p[1]].persistent or truth[p[1]] or p[0] == end]
    due = [p for p in watch.pending if p[0] == end]
    watch.pending = [p for p in watch.pending if p[0] != end]
    for _, slot, values in due:
        act(setup.conditions[slot], values)
    for slot, ev in enumerate(setup.conditions):
        if not truth[slot]:
            watch.armed[slot] = True
            continue
        if not watch.armed[slot]:
            continue
        watch.armed[slot] = False
        if ev.guard is not None and not evaluate(ev.guard, names):
            continue
        if ev.delay:
            watch.pending.append((end + ev.delay, slot, compute(ev) if ev.values_at_trigger else None))
        else:
            act(ev, None)
