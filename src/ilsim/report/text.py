"""A model in readable math: the ODE right-hand sides, observables and events as text."""

from __future__ import annotations

from ilsim.model import expressions as ex
from ilsim.model.compile import STATE, CompiledModel
from ilsim.model.outcomes import rules


def equations(model: CompiledModel) -> list[str]:
    """'dE/dt = c*T - mu2*E + ...', one line per species: exactly what is integrated."""
    return [f"d{s}/dt = {ex.to_text(tree)}" for s, tree in zip(model.species, model.rhs_trees)]


def observable_lines(model: CompiledModel) -> list[str]:
    return [f"{name} = {ex.to_text(tree)}" for name, tree in zip(model.observables, model.observable_trees)]


def event_lines(model: CompiledModel) -> list[str]:
    lines = []
    for ev in model.events:
        trigger = f"at t = {', '.join(f'{x:g}' for x in ev.times)}" if ev.times else f"when {ex.to_text(ev.condition)}"
        actions = "; ".join(
            f"{(model.species if kind == STATE else model.parameters)[i]} {'=' if mode == 'set' else '+='} "
            f"{ex.to_text(value)}"
            for mode, kind, i, value in ev.actions
        )
        lines.append(f"{ev.name}: {trigger}: {actions}")
    return lines


def outcome_lines(model: CompiledModel) -> list[str]:
    return [f"{label}: {rule}" for label, rule in rules(model).items()]


def derived_lines(model: CompiledModel) -> list[str]:
    values = model.derived_values(model.p0)
    return [f"{name} = {ex.to_text(tree)} = {values[name]:.6g}" for name, tree in model.derived]
