"""The batch engine: one model, many patients, in parallel (see ``engine.py``)."""

from ilsim.engines.batch.engine import (
    BAD_INITIAL,
    ENDLESS_EVENTS,
    MAX_STEPS,
    METHODS,
    NON_FINITE,
    OK,
    STATUS,
    STEP_UNDERFLOW,
    BatchEngine,
    BatchResult,
)

__all__ = ["BAD_INITIAL", "ENDLESS_EVENTS", "MAX_STEPS", "METHODS", "NON_FINITE", "OK", "STATUS", "STEP_UNDERFLOW",
           "BatchEngine", "BatchResult"]
