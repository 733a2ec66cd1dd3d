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


def endless_cascade(rounds: int | None = None):
    """Three condition events whose jumps make one another's conditions true at one instant, for ever.

    x = t until 'x > 0.6' fires X (x = -10, y = 1). If y_on < 1, Y fires (y = 0, x = 1, s = 1), which fires
    'rearm' (s = 0, y = 0: Y false, so Y re-arms) and X again (x > 0.6), which fires Y again, and so on:
    each event re-arms (its condition false) before a later jump makes it true. With y_on >= 1, Y never
    fires: X fires once and then x = t - 10.6, y = 1, s = 0. Parameter: y_on. With ``rounds``, X counts its
    firings in n and Y fires only while n < rounds: a finite cascade of 3 rounds - 2 firings.
    """
    m = ilsim.Model(name="endless cascade").add_parameter("y_on", 0.5)
    m.add_species("x", 0.0, nonnegative=False).add_species("y", 0.0).add_species("s", 0.0)
    m.add_process("clock", "1", produces={"x": 1})
    m.add_event("rearm", when="s > 0.5", set={"s": 0, "y": 0})
    if rounds is None:
        m.add_event("X", when="x > 0.6", set={"x": -10, "y": 1})
        m.add_event("Y", when="y > y_on", set={"y": 0, "x": 1, "s": 1})
    else:  # n stops half a unit short of 'rounds', not on it: the condition is not left sitting at its root
        m.add_parameter("rounds", float(rounds)).add_species("n", 0.0)
        m.add_event("X", when="x > 0.6", set={"x": -10, "y": 1}, add={"n": 1})
        m.add_event("Y", when="y > y_on and n < rounds - 0.5", set={"y": 0, "x": 1, "s": 1})
    return m


CASCADE_TIMES = np.linspace(0.0, 2.0, 9)  # outputs at 0, 0.25, 0.5, then after the cascade at t = 0.6
CASCADE_P = np.array([[2.0], [0.5], [2.0]])  # the middle patient's events fire endlessly


def endless_cascade_exact(t: np.ndarray) -> np.ndarray:
    """(x, y, s) of a patient whose Y never fires (y_on >= 1)."""
    after = t > 0.6
    return np.column_stack([np.where(after, t - 10.6, t), np.where(after, 1.0, 0.0), np.zeros_like(t)])


def sbml_triggers():
    """Triggers as SBML models write them (issue 13), with a clock x = t and counters n1..n5:

    - 'flag > 0 and x > 3': a strict comparison sitting on its threshold (flag = 0) is false, so it never
      fires, though 'x > 3' crosses (with min(flag, x - 3) = 0 it used to);
    - 't > 5': strict, false at 5, so an output at 5 shows the state before it (n2 = 0 there);
    - 't == 3 or t == 15': equality on time, true at two instants;
    - 't - 12*floor(t/12) == 0' (time % 12 == 0): true at 12, 24, 36, 48 (not at 0, where it holds at the start);
    - 'floor(t/5) == 2 and t > 7': true on [10, 15), so it fires once, at 10;
    - 'piecewise(t - 12*ceil(t/12), t < 0, t - 12*floor(t/12)) == 7' (time % 12 == 7 as the SBML import writes
      rem): the remainder rises through 7 at 7, 19, 31, 43, where it is true for an instant (BIOMD0000000814).
    Parameter: flag."""
    m = ilsim.Model(name="sbml triggers").add_parameter("flag", 0.0).add_species("x", 0.0)
    for k in range(1, 7):
        m.add_species(f"n{k}", 0.0)
    m.add_process("clock", "1", produces={"x": 1})
    m.add_event("strict on its threshold", when="flag > 0 and x > 3", add={"n1": 1})
    m.add_event("after 5", when="t > 5", add={"n2": 1})
    m.add_event("at 3 and 15", when="t == 3 or t == 15", add={"n3": 1})
    m.add_event("every 12", when="t - 12*floor(t/12) == 0", add={"n4": 1})
    m.add_event("window", when="floor(t/5) == 2 and t > 7", add={"n5": 1})
    m.add_event("rem 7", when="piecewise(t - 12*ceil(t/12), t < 0, t - 12*floor(t/12)) == 7", add={"n6": 1})
    return m


def sbml_triggers_exact(t: np.ndarray, flag: float) -> np.ndarray:
    """(x, n1..n6) of sbml_triggers at the output times t."""
    return np.column_stack([t, np.where((t > 3) & (flag > 0), 1.0, 0.0), np.where(t > 5, 1.0, 0.0),
                            (t >= 3).astype(float) + (t >= 15), np.floor(t / 12), np.where(t >= 10, 1.0, 0.0),
                            np.floor((t + 5) / 12)])


def reset_when_idle():
    """V grows at rate 1 and is reset to 0 when 'V > V_d and u == 0' (u = 0 throughout): an equality that holds
    all along, beside a crossing, fires at each crossing, t = 3, 6, 9, ... Parameters: V_d, u."""
    m = ilsim.Model(name="reset when idle").add_parameter("V_d", 3.0).add_parameter("u", 0.0)
    m.add_species("V", 0.0).add_species("n", 0.0)
    m.add_process("charge", "1", produces={"V": 1})
    m.add_event("reset", when="V > V_d and u == 0", set={"V": 0}, add={"n": 1})
    return m


def delayed(persistent: bool = True, values_at_trigger: bool = True):
    """x = t; 'x > 3 and z < 0.5' triggers at 3 an event applied 2 later (at 5), setting y = x (3 read at the
    trigger, 5 when applied). A timed event sets z = 1 at 4, so the condition is false from 4 on: not
    persistent, the pending event is dropped."""
    m = ilsim.Model(name="delayed").add_species("x", 0.0).add_species("y", 0.0).add_species("z", 0.0)
    m.add_process("clock", "1", produces={"x": 1})
    m.add_event("late", when="x > 3 and z < 0.5", set={"y": "x"}, delay="2", persistent=persistent,
                values_at_trigger=values_at_trigger)
    m.add_event("close", at=4.0, set={"z": 1})
    return m


def delayed_twice(times=(1.0, 2.0), d: float = 3.0, values_at_trigger: bool = True, delay: str = "d*x"):
    """x = t; a timed event at each of ``times`` adds x to y after a delay of d*x evaluated at its trigger: with
    the defaults it triggers at 1 (due 4) and at 2 (due 8), two firings of one event pending at once. y adds the
    trigger times (1, then 3) with values taken at the trigger, the due times (4, then 12) without."""
    m = ilsim.Model(name="delayed twice").add_parameter("d", d)
    m.add_species("x", 0.0).add_species("y", 0.0)
    m.add_process("clock", "1", produces={"x": 1})
    m.add_event("late dose", at=list(times), add={"y": "x"}, delay=delay, values_at_trigger=values_at_trigger)
    return m


def tiny_amounts(atol: float | None = 1e-26):
    """A -> B -> C with amounts of 1e-20 (SI moles), rate constants k1 = 1, k2 = 0.5: Bateman's solution. With
    one atol of 1e-9 for all, no error test ever sees these species; their own ``atol`` controls them."""
    m = ilsim.Model(name="tiny amounts").add_parameter("k1", 1.0).add_parameter("k2", 0.5)
    m.add_species("A", 1e-20, atol=atol).add_species("B", 0.0, atol=atol).add_species("C", 0.0, atol=atol)
    m.add_process("first", "k1*A", consumes={"A": 1}, produces={"B": 1})
    m.add_process("second", "k2*B", consumes={"B": 1}, produces={"C": 1})
    return m


def tiny_amounts_exact(t: np.ndarray) -> np.ndarray:
    a = 1e-20 * np.exp(-t)
    b = 1e-20 * (np.exp(-0.5 * t) - np.exp(-t)) / 0.5
    return np.column_stack([a, b, 1e-20 - a - b])


def simultaneous():
    """SBML's events at one instant (delay 0: values read when triggered, applied in model order, a firing that
    is not persistent dropped once its trigger is false). x = t. At 1, 'swap a' sets a = b and 'swap b' sets
    b = a, both from the values at the trigger: they swap (1, 2 -> 2, 1); read one after the other, both would
    end 2. At 2, 'go' sets g = 1 and three events trigger on 'g > 0.5 and s < 0.5' (SBML Test Suite 00935):
    'first' sets s = 1 (u = u + 10), making the trigger false; 'second' (persistent) still applies, s = 3 and
    u = u + 30 read at the trigger (u = 0), so u = 30; 'third' (not persistent) is dropped."""
    m = ilsim.Model(name="simultaneous").add_species("x", 0.0)
    for name, value in (("a", 1.0), ("b", 2.0), ("s", 0.0), ("u", 0.0)):
        m.add_species(name, value)
    m.add_parameter("g", 0.0)
    m.add_process("clock", "1", produces={"x": 1})
    m.add_event("swap a", at=1.0, set={"a": "b"}, delay="0")
    m.add_event("swap b", at=1.0, set={"b": "a"}, delay="0")
    m.add_event("go", at=2.0, set={"g": 1})
    trigger = "g > 0.5 and s < 0.5"
    m.add_event("first", when=trigger, set={"s": 1, "u": "u + 10"}, delay="0")
    m.add_event("second", when=trigger, set={"s": 3, "u": "u + 30"}, delay="0")
    m.add_event("third", when=trigger, set={"s": 2, "u": "u + 20"}, delay="0", persistent=False)
    return m


def narrow_window():
    """x drains at rate k from 10; 'x <= hi and x >= lo' resets it to 10 (SBML Test Suite 01703, 01710). A linear
    decline lets a solver take steps far longer than the window [lo, hi], whose ends then lie inside one step
    where the condition's root function is negative at both: only a watch on each comparison sees it. With
    lo > hi the window is empty: both comparisons cross, the condition never holds. Parameters: k, lo, hi."""
    m = ilsim.Model(name="narrow window").add_parameter("k", 1.0).add_parameter("lo", 3.0).add_parameter("hi", 4.3)
    m.add_species("x", 10.0).add_species("n", 0.0)
    m.add_process("drain", "k", consumes={"x": 1})
    m.add_event("in the window", when="x <= hi and x >= lo", set={"x": 10}, add={"n": 1})
    return m


def narrow_window_exact(t: np.ndarray, k: float, lo: float, hi: float) -> np.ndarray:
    """(x, n): x reaches hi every (10 - hi)/k and is reset there; it falls through an empty window (lo > hi)."""
    if lo > hi:
        return np.column_stack([10.0 - k * t, np.zeros_like(t)])
    period = (10.0 - hi) / k
    return np.column_stack([10.0 - k * np.mod(t, period), np.floor(t / period)])


def daily_wrap():
    """A daily dose while the fraction of the day since t0 = (t_first + lag) h is at most one half, written as
    MODEL2211040001 writes it: x - floor(x) <= 0.5 with x = (t - t0)/day (seconds). The condition jumps from false
    to true as x passes each integer, where rounding puts the floor switch a hair after the jump. Parameters:
    t_first, lag, day."""
    m = ilsim.Model(name="daily wrap").add_parameter("t_first", 8.0).add_parameter("lag", 16.3)
    m.add_parameter("day", 86400.0).add_species("n", 0.0)
    m.add_event("daily", when="(t - (t_first + lag)*3600)/day - floor((t - (t_first + lag)*3600)/day) <= 0.5",
                add={"n": 1})
    return m


def daily_wrap_exact(t: np.ndarray, t_first: float, lag: float, day: float) -> np.ndarray:
    """n: x = (t - t0)/day starts at -1.0125 (false: 0.9875 > 0.5); one firing as x passes each integer from -1."""
    x = (t - (t_first + lag) * 3600.0) / day
    return np.where(x >= -1.0, np.floor(x) + 2.0, 0.0)[:, None]
