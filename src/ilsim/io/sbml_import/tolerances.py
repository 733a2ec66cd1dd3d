"""Absolute tolerances scaled to each species' size, for models written in SI amounts (1e-20 mol).

One absolute tolerance for every state (ilsim's default atol = 1e-9) leaves a species whose amount is 1e-20
uncontrolled: its error test passes whatever its value, and the run is silently wrong. CVODE users give such
models a vector of absolute tolerances; the import does the same, from the initial values:

- a species' size is its initial magnitude, or, for one that starts at zero, the smallest non-zero initial
  magnitude of the model's species (a species produced from the others is seldom far smaller than they are);
- its tolerance is ``ATOL_PER_SIZE`` times its size (the size read to a millionth, as the default relative
  tolerance reads it), written into the species' ``atol`` only where that is below ``DEFAULT_ATOL``: every
  engine integrates it with min(atol, this), so a model of ordinary sizes keeps one tolerance and its speed.

A model file keeps these values; a user can change them there, and an engine's smaller atol still wins.
"""

from __future__ import annotations

import math

from ilsim.model.spec import SimulationDefaults, Species

ATOL_PER_SIZE = 1e-6
DEFAULT_ATOL = SimulationDefaults().atol


def scale_tolerances(species: list[Species]) -> list[Species]:
    """The species with ``atol`` set where their size calls for a smaller absolute tolerance than the default."""
    sizes = [abs(float(s.initial)) if isinstance(s.initial, (int, float)) else math.nan for s in species]
    nonzero = [v for v in sizes if math.isfinite(v) and v > 0]
    if not nonzero:
        return species
    fallback = min(nonzero)
    out = []
    for s, size in zip(species, sizes):
        size = size if math.isfinite(size) and size > 0 else fallback
        atol = ATOL_PER_SIZE * size
        out.append(s.model_copy(update={"atol": atol}) if s.atol is None and atol < DEFAULT_ATOL else s)
    return out
