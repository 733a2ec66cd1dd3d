"""An imported SBML model run by ilsim and the original file run by libroadrunner, side by side.

libroadrunner is a test-only dependency (``pip install ilsim[test]``); it is imported on use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ilsim.engines.ode import OdeEngine
from ilsim.io.sbml_import import import_sbml
from ilsim.io.sbml_import.suite import read_back
from ilsim.model.compile import compile_model

FLOOR = 1e-12  # absolute floor of a species' range (species that do not move)


@dataclass(frozen=True)
class Agreement:
    """Per species: max |ilsim - roadrunner| divided by the species' range over the run (roadrunner's)."""

    t: np.ndarray
    differences: dict[str, float]
    ilsim_values: np.ndarray  # times x species
    roadrunner_values: np.ndarray

    @property
    def worst(self) -> tuple[str, float]:
        if not self.differences:
            return "", 0.0
        name = max(self.differences, key=self.differences.get)
        return name, self.differences[name]


def compare_with_roadrunner(path: str | Path, t_end: float = 100.0, points: int = 101, rtol: float = 1e-10,
                            atol: float = 1e-12, method: str = "LSODA", jit: bool | None = None) -> Agreement:
    """Amounts of every species over 0..t_end in ilsim (imported model) and libroadrunner (the file itself)."""
    import roadrunner  # lazy: optional (libroadrunner, a test extra)

    roadrunner.Logger.setLevel(roadrunner.Logger.LOG_ERROR)
    model = import_sbml(path)
    compiled = compile_model(model.spec, source=str(path), jit=jit)
    t = np.linspace(0.0, t_end, points)
    traj = OdeEngine(method, rtol, atol).run(compiled, t, compiled.p0)
    species = [sid for sid, q in model.quantities.items() if q.amount is not None]
    ours = read_back(compiled, traj, [model.quantities[s].amount for s in species])
    rr = roadrunner.RoadRunner(str(path))
    rr.integrator.relative_tolerance = rtol
    rr.integrator.absolute_tolerance = atol
    rr.integrator.setValue("maximum_num_steps", 1_000_000)
    rr.timeCourseSelections = ["time", *species]  # a bare species id selects its amount
    theirs = np.asarray(rr.simulate(times=t))[:, 1:]
    return Agreement(t, differences(ours, theirs, theirs, species), ours, theirs)


def differences(a: np.ndarray, b: np.ndarray, reference: np.ndarray, species: list[str]) -> dict[str, float]:
    """Per species (columns): max |a - b| over the time points, divided by the species' range in ``reference``
    (at least FLOOR, and 1e-9 of its largest magnitude); inf where the difference is not finite."""
    out = {}
    with np.errstate(invalid="ignore"):
        for k, sid in enumerate(species):
            span = max(float(np.ptp(reference[:, k])), FLOOR, 1e-9 * float(np.max(np.abs(reference[:, k]))))
            diff = float(np.max(np.abs(a[:, k] - b[:, k])))
            out[sid] = diff / span if np.isfinite(diff) else float("inf")
    return out
