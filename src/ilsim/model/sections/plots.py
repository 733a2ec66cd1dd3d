"""The schema of the ``plots:`` section: the panels a model asks its figures to show first.

A panel names variables of one unit (species or observables), an axis scale and the clinical
thresholds to draw (fever 38 degC, neutropenia 0.5e9/L, ...). Drawing is ``ilsim.report.figures``'
job; ``plot_problems`` checks the names and units against the model when it is compiled.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ilsim.errors import did_you_mean
from ilsim.model.base import _Strict
from ilsim.model.sections.catalogue import Text


class Threshold(_Strict):
    """A horizontal line at ``value`` (in the panel's units), labelled."""

    value: float
    label: Text

    @field_validator("value")
    @classmethod
    def _finite(cls, v):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"a threshold must be a finite number, got {v}")
        return v


class PlotPanel(_Strict):
    """``plots: [{title: Neutrophils, variables: [Circ], scale: linear, thresholds: [...]}, ...]``."""

    title: Text
    variables: list[Text] = Field(min_length=1)
    scale: Literal["auto", "linear", "log"] = "auto"  # auto: docs/figures.md, "Scales and the floor"
    thresholds: list[Threshold] = Field(default_factory=list)
    description: str = ""


def plot_problems(spec) -> list[tuple[str, str]]:
    """(field, message) for each panel variable that is not a species or observable, and each panel mixing units."""
    units = {s.name: s.units for s in spec.species} | {o.name: o.units for o in spec.observables}
    problems = []
    for i, panel in enumerate(spec.plots):
        for j, name in enumerate(panel.variables):
            if name not in units:
                problems.append((f"plots[{i}].variables[{j}]",
                                 f"unknown species or observable '{name}'{did_you_mean(name, units)}"))
        seen = {units[n] for n in panel.variables if n in units}
        if len(seen) > 1:
            problems.append((f"plots[{i}].variables",
                             f"a panel shows one unit, but these variables are in {', '.join(sorted(map(repr, seen)))}; "
                             "split them into one panel per unit"))
    return problems
