"""A fitting problem in one form, whatever file it came from: the model, the parameters to estimate (scales,
bounds, priors), the simulations to run (conditions, preequilibration) and the measurements with their
observable and noise formulas.

Formulas arrive as SymPy expressions over the problem's names; ``observe`` turns each observable into one
vectorised function of (states, model parameters, row values) that also returns its derivatives, so the
objective's value and gradient come from the same expressions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ilsim.errors import IlsimError
from ilsim.model.compile import CompiledModel

SCALES = ("lin", "log", "log10")
TRANSFORMS = ("lin", "log", "log10")


class FitError(IlsimError):
    """A fitting problem that cannot be read or fitted: the message names the file, row and column."""


def where(file: str, row: int | None = None, column: str | None = None) -> str:
    """``file, row 3, column 'lowerBound'``: the place a message points at (rows counted as a spreadsheet
    shows them: the header is row 1)."""
    out = file
    if row is not None:
        out += f", row {row}"
    if column is not None:
        out += f", column '{column}'"
    return out


@dataclass
class Parameters:
    """The problem's parameters (all of them, fixed ones too), values on the linear scale."""

    ids: list[str]
    scales: list[str]
    lower: np.ndarray
    upper: np.ndarray
    nominal: np.ndarray
    estimate: np.ndarray  # bool
    priors: list[tuple[str, float, float] | None]  # (kind, mean, sd): normal on the linear or on the parameter scale

    @property
    def estimated(self) -> np.ndarray:
        return np.flatnonzero(self.estimate)

    @property
    def names(self) -> list[str]:
        return [self.ids[i] for i in self.estimated]

    def scale(self, values: np.ndarray, which: np.ndarray | None = None) -> np.ndarray:
        which = self.estimated if which is None else which
        out = np.array(values, float, copy=True)
        for j, i in enumerate(which):
            out[..., j] = _to_scale(out[..., j], self.scales[i])
        return out

    def unscale(self, theta: np.ndarray) -> np.ndarray:
        out = np.array(theta, float, copy=True)
        for j, i in enumerate(self.estimated):
            out[..., j] = from_scale(out[..., j], self.scales[i])
        return out

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of the estimated parameters on their scales."""
        idx = self.estimated
        return self.scale(self.lower[idx]), self.scale(self.upper[idx])

    def full(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every parameter's linear value from the estimated ones on their scales, and d(value)/d(theta)."""
        phi = self.nominal.copy()
        idx = self.estimated
        lin = self.unscale(theta)
        phi[idx] = lin
        dphi = np.array([_scale_derivative(v, self.scales[i]) for v, i in zip(lin, idx)])
        return phi, dphi


def _to_scale(x, scale: str):
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"lin": lambda v: v, "log": np.log, "log10": np.log10}[scale](x)


def from_scale(x, scale: str):
    return {"lin": lambda v: v, "log": np.exp, "log10": lambda v: np.power(10.0, v)}[scale](x)


def _scale_derivative(lin: float, scale: str) -> float:
    """d(linear value)/d(value on its scale)."""
    return {"lin": 1.0, "log": lin, "log10": lin * math.log(10.0)}[scale]


@dataclass
class ConditionMap:
    """How one condition sets the model: model parameter ``targets[k]`` takes problem parameter ``sources[k]``;
    the others keep ``base``; ``species`` resets initial states to a number or a problem parameter."""

    id: str
    base: np.ndarray
    targets: np.ndarray
    sources: np.ndarray
    species: list[tuple[int, float | None, int | None]] = field(default_factory=list)  # (state, number, parameter)

    def parameters(self, phi: np.ndarray) -> np.ndarray:
        p = self.base.copy()
        p[self.targets] = phi[self.sources]
        return p

    def problem_parameters(self) -> set[int]:
        return set(map(int, self.sources)) | {j for _, _, j in self.species if j is not None}


@dataclass
class Observable:
    """One observable: ``function(*columns)`` returns [h, sigma, dh/d(slot) ..., dsigma/d(slot) ...] for the slots
    in ``h_slots`` and ``s_slots`` (a slot is a species, a model parameter or a row value, see ``Simulation``)."""

    id: str
    transform: str
    function: object
    h_slots: list[int]
    s_slots: list[int]
    row_slots: list[str]  # names of the row values, in slot order after species and model parameters


@dataclass
class Simulation:
    """One run of the model: an optional preequilibration, then a condition; the measurement rows it explains."""

    preeq: ConditionMap | None
    condition: ConditionMap
    times: np.ndarray  # sorted unique output times
    rows: np.ndarray  # indices into the measurement arrays
    time_index: np.ndarray  # per row, its time in ``times``


@dataclass
class Measurements:
    """The measurement table as arrays: one entry per row."""

    observable: np.ndarray  # index into FitProblem.observables
    time: np.ndarray
    value: np.ndarray
    row_numbers: np.ndarray  # the row in its file, for messages
    # per row and row slot of its observable: a number (slot_value) or a problem parameter (slot_param >= 0)
    slot_value: list[np.ndarray]
    slot_param: list[np.ndarray]


@dataclass
class FitProblem:
    name: str
    model: CompiledModel
    parameters: Parameters
    observables: list[Observable]
    measurements: Measurements
    simulations: list[Simulation]
    source: str
    # the model parameters written into a fitted model file: model parameter name -> problem parameter index
    model_parameters: dict[str, int] = field(default_factory=dict)
    rtol: float = 1e-8
    atol: float = 1e-10
