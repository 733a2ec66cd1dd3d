"""The schema of the ``toxicity:`` section, as plain data: which CTCAE term is graded from which readout.

Whether a term, its scale and ``lln`` exist is CTCAE knowledge: ``ilsim.therapy.ctcae`` checks that
when the model is compiled (``toxicity_problems``) and grades a run's readouts.
"""

from __future__ import annotations

from pydantic import Field

from ilsim.model.base import _Strict
from ilsim.model.sections.catalogue import Text


class Toxicity(_Strict):
    """``toxicity: [{term: Fever, readout: temperature}, ...]`` in a model file."""

    term: Text  # a CTCAE v5.0 term ilsim grades (any case, or an alias)
    readout: Text  # a species or observable of the model
    scale: Text | None = None  # one of the term's scales (default: its first)
    lln: float | None = Field(default=None, gt=0, allow_inf_nan=False)  # lower limit of normal, in the scale's units
    baseline: float | None = None  # for baseline-relative scales (default: the first value)
