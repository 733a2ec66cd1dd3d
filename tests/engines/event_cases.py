"""Event models whose answer is known, shared by the tests of every batch engine (numba, C/CUDA)."""

import numpy as np

import ilsim


def fills_to_its_threshold():
    """A + B fills at rate 1 until 'A + B > 1' stops the inflow; then A <-> B exchange with A + B = 1 exactly,
    so the trigger sits on its threshold at the steady state, within rounding. Parameters: inflow, kf, kb."""
    m = ilsim.Model(name="fills").add_parameter("inflow", 1.0).add_parameter("kf", 2.0).add_parameter("kb", 1.0)
    m.add_species("A", 0.0).add_species("B", 0.0).add_species("n", 0.0)
    m.add_process("make", "inflow", produces={"A": 1})
    m.add_process("forward", "kf*A", consumes={"A": 1}, produces={"B": 1})
    m.add_process("back", "kb*B", consumes={"B": 1}, produces={"A": 1})
    m.add_event("full", when="A + B > 1", set={"inflow": 0}, add={"n": 1})
    return m


def exchange_rates() -> np.ndarray:
    """16 patients of fills_to_its_threshold: kf and kb on a 4 x 4 grid."""
    kf, kb = np.meshgrid(np.linspace(0.5, 5.0, 4), np.linspace(0.5, 5.0, 4))
    return np.column_stack([np.ones(kf.size), kf.ravel(), kb.ravel()])


def equal_thresholds():
    """'x > e' and 'x > exp(1)' are crossed at the same instant; the second reads what the first set (y = 1)."""
    m = ilsim.Model(name="equal thresholds").add_parameter("g", 0.7).add_species("x", 0.1)
    m.add_species("y", 0.0).add_species("z", 0.0)
    m.add_process("growth", "g*x", produces={"x": 1})
    m.add_event("first", when="x > e", add={"y": 1})
    m.add_event("second", when="x > exp(1)", set={"z": "y + 10"})
    return m


def short_infusion():
    """A 0.1-long infusion written as a piecewise function of time inside a rate. Parameters: rate, t_on, kel."""
    m = ilsim.Model(name="short infusion").add_parameter("rate", 10.0).add_parameter("t_on", 50.0)
    m.add_parameter("kel", 0.01).add_species("drug", 0.0)
    m.add_process("infusion", "piecewise(rate, t >= t_on and t < t_on + 0.1, 0)", produces={"drug": 1})
    m.add_process("elimination", "kel*drug", consumes={"drug": 1})
    return m


def short_infusion_exact(t: np.ndarray, rate: float, t_on: float, kel: float) -> np.ndarray:
    """drug = rate/kel (1 - exp(-kel 0.1)) exp(-kel (t - t_on - 0.1)) after the infusion, 0 before."""
    return np.where(t >= t_on + 0.1, rate / kel * (1 - np.exp(-kel * 0.1)) * np.exp(-kel * (t - t_on - 0.1)), 0.0)
