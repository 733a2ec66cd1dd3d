"""The stochastic engine: exact SSA (direct, next-reaction) and tau-leaping over a model's reaction network."""

from ilsim.engines.ssa.engine import METHODS, SsaEngine

__all__ = ["METHODS", "SsaEngine"]
