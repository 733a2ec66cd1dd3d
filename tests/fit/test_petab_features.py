"""PEtab features the benchmarks do not cover, on a problem with a closed-form solution.

The model: 0 -> A (kin), A -> B (k1 A), B -> 0 (k2 B), written as an ilsim model and exported to SBML.
Conditions: 'pre' (kin = kin_pre) as preequilibration to the steady state A* = kin_pre/k1, B* = kin_pre/k2,
then 'wash' (kin = 0, states carried over); 'fresh' (kin = 0, A reset to the parameter A0, B to 0). Observables:
A with a noise formula and a numeric noise parameter per row; B scaled by an estimated observable parameter,
log10-normal with an estimated sigma. A0 has a parameterScaleNormal prior.

Oracles: the negative log-likelihood written out from the analytic solution; central finite differences for
the gradient; petab's linter accepts the problem.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml

import ilsim
from ilsim.fit.objective import Objective
from ilsim.fit.petab_io import load_petab
from ilsim.io.sbml import write as write_sbml

TIMES = [0.0, 0.5, 1.0, 2.0, 4.0, 8.0]
NOMINAL = {"k1": 0.5, "k2": 0.2, "kin_pre": 2.0, "A0": 3.0, "scale_B": 2.0, "sigma_B": 0.1}
SCALES = {"k1": "log10", "k2": "log10", "kin_pre": "log10", "A0": "log10", "scale_B": "lin", "sigma_B": "log10"}


def solution(cond: str, t, v):
    t = np.asarray(t, float)
    k1, k2 = v["k1"], v["k2"]
    if cond == "wash":
        a0, b0 = v["kin_pre"] / k1, v["kin_pre"] / k2
    else:
        a0, b0 = v["A0"], 0.0
    a = a0 * np.exp(-k1 * t)
    b = b0 * np.exp(-k2 * t) + a0 * k1 / (k2 - k1) * (np.exp(-k1 * t) - np.exp(-k2 * t))
    return a, b


def analytic_nllh(measurements: pd.DataFrame, v: dict) -> float:
    total = 0.0
    for _, r in measurements.iterrows():
        a, b = solution(r["simulationConditionId"], [r["time"]], v)
        m = r["measurement"]
        if r["observableId"] == "obs_A":
            y, sigma = a[0], float(r["noiseParameters"]) + 0.1 * a[0]
            total += 0.5 * ((m - y) / sigma) ** 2 + math.log(sigma) + 0.5 * math.log(2 * math.pi)
        else:
            y, sigma = v["scale_B"] * b[0], v["sigma_B"]
            res = (math.log10(m) - math.log10(y)) / sigma
            total += 0.5 * res**2 + math.log(sigma) + 0.5 * math.log(2 * math.pi) + math.log(m * math.log(10))
    return total


@pytest.fixture(scope="module")
def problem_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("petab")
    model = ilsim.Model(name="abc", time_units="hour")
    model.add_species("A", 0.0).add_species("B", 0.0)
    for name, value in (("k1", 0.5), ("k2", 0.2), ("kin", 0.0)):
        model.add_parameter(name, value)
    model.add_process("influx", "kin", produces={"A": 1}).add_process("conversion", "k1*A", consumes={"A": 1},
                                                                       produces={"B": 1})
    model.add_process("loss", "k2*B", consumes={"B": 1})
    write_sbml(ilsim.compile(model), folder / "model.xml")
    pd.DataFrame({"conditionId": ["pre", "wash", "fresh"], "kin": ["kin_pre", "0", "0"],
                  "A": ["NaN", "NaN", "A0"], "B": ["NaN", "NaN", "0"]}).to_csv(folder / "conditions.tsv", sep="\t",
                                                                             index=False)
    pd.DataFrame({"observableId": ["obs_A", "obs_B"],
                  "observableFormula": ["A", "observableParameter1_obs_B * B"],
                  "noiseFormula": ["noiseParameter1_obs_A + 0.1 * A", "noiseParameter1_obs_B"],
                  "observableTransformation": ["lin", "log10"], "noiseDistribution": ["normal", "normal"]}
                 ).to_csv(folder / "observables.tsv", sep="\t", index=False)
    rng = np.random.default_rng(7)
    rows = []
    for pre, cond in ((("pre", "wash")), ("", "fresh")):
        a, b = solution(cond, TIMES, NOMINAL)
        for t, av, bv in zip(TIMES, a, b):
            rows.append([ "obs_A", pre, cond, av + 0.05 * rng.standard_normal(), t, "", "0.05"])
            if t > 0:  # B starts at 0 after 'fresh': no log of it
                rows.append(["obs_B", pre, cond, NOMINAL["scale_B"] * bv * 10 ** (0.1 * rng.standard_normal()), t,
                             "scale_B", "sigma_B"])
    pd.DataFrame(rows, columns=["observableId", "preequilibrationConditionId", "simulationConditionId", "measurement",
                                "time", "observableParameters", "noiseParameters"]
                 ).to_csv(folder / "measurements.tsv", sep="\t", index=False)
    params = pd.DataFrame({"parameterId": list(NOMINAL), "parameterScale": [SCALES[k] for k in NOMINAL],
                           "lowerBound": [0.01, 0.01, 0.1, 0.1, 0.1, 0.01], "upperBound": [10, 10, 100, 100, 10, 1],
                           "nominalValue": list(NOMINAL.values()), "estimate": [1] * len(NOMINAL),
                           "objectivePriorType": ["", "", "", "parameterScaleNormal", "", ""],
                           "objectivePriorParameters": ["", "", "", "0.5;0.2", "", ""]})
    params.to_csv(folder / "parameters.tsv", sep="\t", index=False)
    (folder / "problem.yaml").write_text(yaml.safe_dump({
        "format_version": 1, "parameter_file": "parameters.tsv",
        "problems": [{"sbml_files": ["model.xml"], "condition_files": ["conditions.tsv"],
                      "measurement_files": ["measurements.tsv"], "observable_files": ["observables.tsv"]}]}))
    return folder / "problem.yaml"


def _theta(problem, values: dict) -> np.ndarray:
    return problem.parameters.scale(np.array([values[n] for n in problem.parameters.names]))


def test_likelihood_equals_the_closed_form(problem_file):
    problem = load_petab(problem_file)  # passes petab's linter
    objective = Objective(problem)
    measurements = pd.read_csv(problem_file.parent / "measurements.tsv", sep="\t", keep_default_na=False)
    rng = np.random.default_rng(3)
    for _ in range(3):
        values = {k: v * math.exp(rng.uniform(-0.3, 0.3)) for k, v in NOMINAL.items()}
        ev = objective(_theta(problem, values))
        assert ev.nllh == pytest.approx(analytic_nllh(measurements, values), rel=1e-6)
        # the prior: normal on log10(A0), mean 0.5, sd 0.2
        z = (math.log10(values["A0"]) - 0.5) / 0.2
        assert ev.prior == pytest.approx(0.5 * z * z + math.log(0.2) + 0.5 * math.log(2 * math.pi), rel=1e-12)


def test_gradient_through_preequilibration_resets_and_row_parameters(problem_file):
    problem = load_petab(problem_file)
    objective = Objective(problem)
    rng = np.random.default_rng(5)
    for _ in range(3):
        theta = _theta(problem, {k: v * math.exp(rng.uniform(-0.3, 0.3)) for k, v in NOMINAL.items()})
        ev = objective(theta, gradient=True)
        h = 1e-5
        fd = np.array([(objective(theta + h * e).objective - objective(theta - h * e).objective) / (2 * h)
                       for e in np.eye(len(theta))])
        np.testing.assert_allclose(ev.gradient, fd, rtol=1e-4, atol=1e-4 * np.abs(fd).max())
