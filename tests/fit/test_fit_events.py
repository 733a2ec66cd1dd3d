"""Fitting models with timed events (doses, timed set/add): the segment-by-segment simulation and the jump of
the sensitivities across each event.

Oracles: the closed form of a one-compartment model with a bolus (its log-likelihood and gradient by hand),
central finite differences of the objective for events whose values read parameters and states, and the ODE
engine's own run of the same model file for the states.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_gradient import finite_differences

import ilsim
from ilsim.fit.model_io import load_model_fit
from ilsim.fit.objective import Objective
from ilsim.fit.problem import FitError

ONE_COMPARTMENT = """\
metadata: {name: one-compartment, time_units: day}
species:
  - {name: A, initial: A0}
parameters:
  - {name: A0, value: 2.0}
  - {name: k, value: 0.3}
  - {name: D, value: 5.0}
  - {name: k_late, value: 0.1}
observables:
  - {name: signal, expression: "A*k"}
processes:
  - {name: elimination, rate: "k*A", consumes: {A: 1}}
events:
EVENTS
fit:
  measurements: data.csv
  parameters:
    - {name: k, lower: 0.01, upper: 10}
    - {name: D, lower: 0.1, upper: 100}
    - {name: A0, lower: 0.1, upper: 100}
EXTRA
  noise:
    - {observable: A, sigma: 0.2}
    - {observable: signal, sigma: 0.2}
"""
TIMES = [0.0, 1.0, 2.0, 2.5, 4.0, 6.0, 9.0]
DATA = [2.1, 1.4, 6.2, 5.1, 3.0, 1.6, 0.7]


def _problem(tmp_path, events: str, extra: str = "", observables=("A",)):
    rows = "".join(f"{o},{t:g},{v:g}\n" for o in observables for t, v in zip(TIMES, DATA))
    (tmp_path / "data.csv").write_text("observable,time,measurement\n" + rows)
    path = tmp_path / "model.yaml"
    path.write_text(ONE_COMPARTMENT.replace("EVENTS", events).replace("EXTRA", extra))
    return load_model_fit(path), path


def test_bolus_matches_the_closed_form(tmp_path):
    problem, _ = _problem(tmp_path, "  - {name: bolus, at: 2, add: {A: D}}")
    objective = Objective(problem)
    k, D, A0 = 0.4, 7.0, 3.0
    theta = np.log10([k, D, A0])
    ev = objective(theta, gradient=True)
    t = np.array(TIMES)
    after = t >= 2.0  # the output at the dose's time is the state after it
    decay = np.exp(-k * (t - 2.0)) * after
    A = A0 * np.exp(-k * t) + D * decay
    dA = np.stack([-t * A0 * np.exp(-k * t) - (t - 2.0) * D * decay, decay, np.exp(-k * t)], axis=1)
    sigma = 0.2
    r = (np.array(DATA) - A) / sigma
    nllh = float(np.sum(0.5 * r**2 + math.log(sigma) + 0.5 * math.log(2 * math.pi)))
    gradient = (-r / sigma) @ dA * np.array([k, D, A0]) * math.log(10.0)
    assert ev.nllh == pytest.approx(nllh, rel=1e-6)
    np.testing.assert_allclose(ev.gradient, gradient, rtol=1e-5)


def test_parameter_dependent_jumps_match_finite_differences(tmp_path):
    # a dose whose amount reads parameters, a set of the state that reads the state and a parameter, and an
    # event that switches the elimination rate to an estimated parameter: each makes the sensitivities jump
    events = ("  - {name: bolus, at: 2, add: {A: \"D*k_late*10\"}}\n"
              "  - {name: halve, at: 4, set: {A: \"A*k_late*5 + A0/4\"}}\n"
              "  - {name: slower, at: 5, set: {k: \"k_late\"}}")
    extra = "    - {name: k_late, lower: 0.01, upper: 10}"
    problem, path = _problem(tmp_path, events, extra, observables=("A", "signal"))
    objective = Objective(problem)
    rng = np.random.default_rng(16)
    for _ in range(2):
        theta = np.log10([0.3, 5.0, 2.0, 0.1]) + rng.uniform(-0.3, 0.3, 4)
        ev = objective(theta, gradient=True)
        fd = finite_differences(objective, theta)
        np.testing.assert_allclose(ev.gradient, fd, rtol=1e-4, atol=1e-4 * max(1e-2, np.abs(fd).max()))
    # the states against the ODE engine's run of the same model file at the nominal values
    nominal = objective(problem.parameters.scale(problem.parameters.nominal[problem.parameters.estimated]))
    ds = ilsim.simulate(path, t_eval=np.array(TIMES), rtol=1e-10, atol=1e-12)
    engine = np.concatenate([ds["A"].values, ds["signal"].values])
    np.testing.assert_allclose(nominal.simulated, engine, rtol=1e-6)


def test_condition_events_are_refused_by_name(tmp_path):
    with pytest.raises(FitError, match=r"model.yaml: event 'rescue' fires on a condition"):
        _problem(tmp_path, "  - {name: rescue, when: \"A < 0.5\", add: {A: D}}")


INFUSION = """\
metadata: {name: infusion, time_units: day}
species:
  - {name: X, initial: 0}
parameters:
  - {name: dose_mg, value: 50}
pk:
  - {drug: drugA, compartments: 1, amount_units: mg, volume: 3.0, k10: 0.5}
doses:
  - {drug: drugA, route: iv_infusion, amount: dose_mg, units: mg, duration: 0.5, start: 1, every: 2, count: 2}
processes:
  - {name: production, rate: "0.1*drugA", produces: {X: 1}}
fit:
  measurements: data.csv
  parameters:
    - {name: dose_mg, lower: 1, upper: 1000}
  noise:
    - {observable: drugA, sigma: 0.5}
    - {observable: X, sigma: 0.5}
"""


def test_infusions_switch_parameters_with_their_sensitivities(tmp_path):
    # an infusion is a pair of guarded events setting the drug's infusion rate (dose_mg / duration): a parameter
    # whose value, and derivative by dose_mg, the events change mid-run; outputs during, at and after each infusion
    (tmp_path / "data.csv").write_text("observable,time,measurement\ndrugA,1.2,3\ndrugA,1.5,6\ndrugA,2,4\n"
                                       "drugA,3.3,9\nX,1.5,1\nX,4,2\n")
    (tmp_path / "model.yaml").write_text(INFUSION)
    problem = load_model_fit(tmp_path / "model.yaml")
    objective = Objective(problem)
    theta = np.log10([70.0])
    ev = objective(theta, gradient=True)
    np.testing.assert_allclose(ev.gradient, finite_differences(objective, theta), rtol=1e-4)
    ds = ilsim.simulate(tmp_path / "model.yaml", t_eval=np.array([0.0, 1.2, 1.5, 2.0, 3.3, 4.0]), rtol=1e-10, atol=1e-12)
    engine = np.concatenate([ds["drugA"].values[1:5], ds["X"].values[[2, 5]]])
    np.testing.assert_allclose(objective(np.log10([50.0])).simulated, engine, rtol=1e-6)
