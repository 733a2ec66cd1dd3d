"""Virtual patients: distributions, correlations and covariates from `population:` and --vary.

Statistical checks use fixed seeds and 100,000 patients: a deterministic test whose tolerances are
several standard errors wide, yet tight enough that a wrong parameterisation fails.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml
from scipy import stats

import ilsim
from ilsim.model.compile import compile_model
from ilsim.model.load import dump_spec, read_spec, spec_from_dict
from ilsim.patients.population import BLOCK, Population, parse_vary, population_sampler

MODEL = """\
metadata: {name: population-demo, time_units: hour}
species:
  - {name: A, kind: drug, initial: 0}
parameters:
  - {name: c, value: 0.03}
  - {name: kpg, value: 0.6}
  - {name: s1, value: 550}
  - {name: CL, value: 0.5, units: L/hour}
  - {name: r2, value: 0.2}
  - {name: k_other, value: 7.5}
  - {name: body_weight, value: 70, units: kg}
processes:
  - {name: clearance, rate: "CL*A", consumes: {A: 1}}
population:
  seed: 20240601
  parameters:
    c: {distribution: uniform, low: 0.02, high: 0.05}
    kpg: {distribution: lognormal, median: 0.6, cv: 0.3}
    s1: {distribution: normal, mean: 550, sd: 50, lower: 0}
    CL: {distribution: lognormal, median: 0.5, cv: 0.25, scale: "(body_weight / 70)^0.75"}
    r2: {distribution: fixed, value: 0.18}
  correlations:
    - [kpg, s1, -0.4]
  covariates:
    body_weight: {distribution: normal, mean: 75, sd: 12, lower: 40, upper: 160, units: kg}
"""
N = 100_000


def _data() -> dict:
    return yaml.safe_load(MODEL)


def _compiled(data: dict | None = None, source: str = "model.yaml"):
    return compile_model(spec_from_dict(data or _data(), source), source=source)


@pytest.fixture(scope="module")
def compiled():
    return _compiled()


@pytest.fixture(scope="module")
def cohort(compiled):
    return population_sampler(compiled).draw(0, N)


def _ks_pvalue(sample, cdf) -> float:
    return stats.kstest(sample, cdf).pvalue


# ------------------------------------------------------------------------------ the model file


def test_model_file_population_loads_and_round_trips(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text(MODEL)
    spec = read_spec(path)
    assert spec.population.seed == 20240601
    assert spec.population.parameters["kpg"].cv == 0.3
    again = tmp_path / "again.yaml"
    again.write_text(dump_spec(spec))
    assert read_spec(again).content_hash() == spec.content_hash()


def test_the_documented_example_runs():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "population.md").read_text()
    model = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    sampler = population_sampler(_compiled(yaml.safe_load(model), "population.md"), vary=["c=normal(0.03, 0.005, lower=0)"])
    p, table = sampler.draw(0, 1000)
    assert sampler.seed == 20240601 and p.shape == (1000, 6) and table.shape == (1000, 6)


def test_draws_fill_the_parameter_matrix(compiled, cohort):
    p, table = cohort
    sampler = population_sampler(compiled)
    assert sampler.seed == 20240601
    assert sampler.names == ("body_weight", "c", "kpg", "s1", "CL", "r2")
    assert p.shape == (N, len(compiled.parameters)) and p.dtype == np.float64
    assert list(table.columns) == list(sampler.names)
    assert table.index[0] == 0 and table.index[-1] == N - 1 and table.index.name == "patient"
    index = {n: i for i, n in enumerate(compiled.parameters)}
    for name in sampler.names:  # body_weight is a covariate and a model parameter: it sets the parameter
        np.testing.assert_array_equal(p[:, index[name]], table[name].to_numpy())
    np.testing.assert_array_equal(p[:, index["k_other"]], 7.5)  # not varied: the model's value


# ------------------------------------------------------------------------------ marginals


def test_uniform_marginal(cohort):
    c = cohort[1]["c"].to_numpy()
    assert c.min() >= 0.02 and c.max() <= 0.05
    assert _ks_pvalue(c, stats.uniform(0.02, 0.03).cdf) > 1e-3
    np.testing.assert_allclose(np.quantile(c, [0.1, 0.5, 0.9]), [0.023, 0.035, 0.047], atol=3e-4)


def test_lognormal_median_and_cv_marginal_is_exact_under_correlation(cohort):
    kpg = cohort[1]["kpg"].to_numpy()
    sigma = math.sqrt(math.log1p(0.3**2))
    assert _ks_pvalue(kpg, stats.lognorm(sigma, scale=0.6).cdf) > 1e-3
    assert np.median(kpg) == pytest.approx(0.6, rel=0.01)
    assert kpg.std() / kpg.mean() == pytest.approx(0.3, rel=0.02)


def test_truncated_normal_marginals(cohort):
    table = cohort[1]
    weight = table["body_weight"].to_numpy()
    assert weight.min() >= 40 and weight.max() <= 160
    exact = stats.truncnorm((40 - 75) / 12, (160 - 75) / 12, loc=75, scale=12)
    assert _ks_pvalue(weight, exact.cdf) > 1e-3
    assert weight.mean() == pytest.approx(exact.mean(), abs=0.15)
    assert weight.std() == pytest.approx(exact.std(), rel=0.01)
    s1 = table["s1"].to_numpy()
    assert s1.min() >= 0 and s1.mean() == pytest.approx(550, abs=0.6) and s1.std() == pytest.approx(50, rel=0.01)


def test_fixed_value(cohort):
    assert (cohort[1]["r2"] == 0.18).all()


@pytest.mark.parametrize("entry, exact", [
    ({"distribution": "lognormal", "mu": -1.0, "sigma": 0.5}, stats.lognorm(0.5, scale=math.exp(-1.0))),
    ({"distribution": "lognormal", "mean": 2.0, "sd": 1.0},
     stats.lognorm(math.sqrt(math.log1p(0.25)), scale=2.0 / math.sqrt(1.25))),
    ({"distribution": "loguniform", "low": 1e-3, "high": 1.0}, stats.loguniform(1e-3, 1.0)),
    ({"distribution": "truncated", "mean": 1.0, "sd": 2.0, "lower": 0.5, "upper": 3.0},
     stats.truncnorm(-0.25, 1.0, loc=1.0, scale=2.0)),
    ({"distribution": "lognormal", "median": 1.0, "cv": 1.0, "upper": 2.0},  # sigma^2 = log(1 + cv^2) = log 2
     stats.truncnorm(-np.inf, math.sqrt(math.log(2.0)), scale=math.sqrt(math.log(2.0)))),
    ({"distribution": "uniform", "low": 0.0, "high": 10.0, "lower": 2.0}, stats.uniform(2.0, 8.0)),
    ({"distribution": "normal", "mean": -3.0, "sd": 0.5, "lower": 0.0}, stats.truncnorm(6.0, np.inf, loc=-3.0, scale=0.5)),
])
def test_every_distribution_matches_scipy(entry, exact):
    compiled = _compiled()
    sampler = population_sampler(compiled, {"seed": 7, "parameters": {"c": entry}})
    c = sampler.draw(0, 50_000)[1]["c"].to_numpy()
    if entry["distribution"] == "lognormal" and "upper" in entry:  # compared in log space
        assert c.max() <= entry["upper"]
        c = np.log(c)
    assert np.isfinite(c).all()
    assert _ks_pvalue(c, exact.cdf) > 1e-3
    if "lower" in entry:
        assert c.min() >= entry["lower"]


# ------------------------------------------------------------------------------ correlations


def test_correlation_of_normal_scores_matches_the_requested_one(cohort):
    table = cohort[1]
    scores = stats.norm.ppf(table[["kpg", "s1"]].rank().to_numpy() / (N + 1))
    assert np.corrcoef(scores.T)[0, 1] == pytest.approx(-0.4, abs=0.01)
    # Spearman's rho of a Gaussian copula: (6/pi) asin(r/2)
    assert stats.spearmanr(table["kpg"], table["s1"]).statistic == pytest.approx(6 / math.pi * math.asin(-0.2), abs=0.01)
    # entries not correlated are independent
    assert abs(stats.spearmanr(table["c"], table["kpg"]).statistic) < 0.01


def test_correlated_covariates():
    data = _data()
    data["population"]["covariates"]["age"] = {"distribution": "uniform", "low": 20, "high": 80, "units": "year"}
    data["population"]["correlations"].append(["age", "body_weight", 0.5])
    table = population_sampler(_compiled(data)).draw(0, 50_000)[1]
    scores = stats.norm.ppf(table[["age", "body_weight"]].rank().to_numpy() / (len(table) + 1))
    assert np.corrcoef(scores.T)[0, 1] == pytest.approx(0.5, abs=0.015)


# ------------------------------------------------------------------------------ covariates


def test_covariate_scaling(cohort):
    table = cohort[1]
    scale = (table["body_weight"] / 70) ** 0.75
    unscaled = (table["CL"] / scale).to_numpy()
    assert _ks_pvalue(unscaled, stats.lognorm(math.sqrt(math.log1p(0.25**2)), scale=0.5).cdf) > 1e-3
    heavy = table["body_weight"] > 90
    light = table["body_weight"] < 60
    ratio = table["CL"][heavy].median() / table["CL"][light].median()
    expected = (table["body_weight"][heavy].median() / table["body_weight"][light].median()) ** 0.75
    assert ratio == pytest.approx(expected, rel=0.03)


def test_covariate_sets_per_kg_doses():
    """A body_weight covariate is the patient's weight: a per-kg dose follows it."""
    text = """\
metadata: {name: per-kg, time_units: day}
patient: {body_weight: 70}
pk:
  - {drug: D, compartments: 1, amount_units: mg, volume: 5, clearance: 1}
doses:
  - {drug: D, route: iv_bolus, amount: 2, units: mg/kg, at: [0]}
population:
  seed: 3
  covariates:
    body_weight: {distribution: uniform, low: 50, high: 100, units: kg}
"""
    compiled = compile_model(spec_from_dict(yaml.safe_load(text), "per-kg.yaml"))
    p, table = population_sampler(compiled).draw(0, 5)
    weight = p[:, compiled.parameters.index("body_weight")]
    np.testing.assert_array_equal(weight, table["body_weight"].to_numpy())
    (dose,) = compiled.events
    (_, _, _, amount), = dose.actions
    for row, w in zip(p, weight):  # 2 mg/kg for this patient's weight
        assert compiled.evaluate(amount, 0.0, compiled.initial_state(row), row) == pytest.approx(2 * w)


# ------------------------------------------------------------------------------ seeds and chunks


def test_same_seed_same_patients_other_seed_others(compiled):
    a = population_sampler(compiled).draw(0, 1000)
    b = population_sampler(compiled).draw(0, 1000)
    np.testing.assert_array_equal(a[0], b[0])
    other = population_sampler(compiled, seed=20240602)
    assert other.seed == 20240602
    assert not np.any(other.draw(0, 1000)[1]["kpg"].to_numpy() == a[1]["kpg"].to_numpy())


@pytest.mark.parametrize("cuts", [(300,), (1, 4095, 4096, 4097), (2500, 5000, 9000), tuple(range(0, 10_000, 777))])
def test_draws_do_not_depend_on_chunking(compiled, cuts):
    sampler = population_sampler(compiled)
    whole = sampler.draw(0, 10_000)
    bounds = [0, *cuts, 10_000]
    pieces = [sampler.draw(lo, hi) for lo, hi in zip(bounds, bounds[1:])]
    np.testing.assert_array_equal(whole[0], np.vstack([p for p, _ in pieces]))
    np.testing.assert_array_equal(whole[1].index, np.concatenate([t.index for _, t in pieces]))
    middle = sampler.draw(BLOCK - 10, 2 * BLOCK + 10)
    np.testing.assert_array_equal(middle[0], whole[0][BLOCK - 10:2 * BLOCK + 10])


def test_seed_is_drawn_and_recorded_when_none_given():
    data = _data()
    del data["population"]["seed"]
    compiled = _compiled(data)
    first, second = population_sampler(compiled), population_sampler(compiled)
    assert isinstance(first.seed, int) and 0 <= first.seed < 2**63 and first.seed != second.seed
    assert json.loads(json.dumps(first.describe()))["seed"] == first.seed
    again = population_sampler(compiled, seed=first.seed)
    np.testing.assert_array_equal(again.draw(0, 500)[0], first.draw(0, 500)[0])


def test_describe_is_json_and_reproduces_the_cohort(compiled):
    sampler = population_sampler(compiled, vary=["c=normal(0.03, 0.005, lower=0)"])
    record = json.loads(json.dumps(sampler.describe()))
    assert record["seed"] == 20240601 and record["correlations"] == [["kpg", "s1", -0.4]]
    assert record["parameters"]["c"] == {"distribution": "normal", "mean": 0.03, "sd": 0.005, "lower": 0.0}
    population = Population.model_validate({k: record[k] for k in ("seed", "parameters", "covariates", "correlations")})
    np.testing.assert_array_equal(population_sampler(compiled, population).draw(0, 300)[0], sampler.draw(0, 300)[0])


def test_model_without_population_draws_identical_patients():
    data = _data()
    del data["population"]
    compiled = _compiled(data)
    p, table = population_sampler(compiled).draw(5, 8)
    np.testing.assert_array_equal(p, np.tile(compiled.p0, (3, 1)))
    assert table.shape == (3, 0) and list(table.index) == [5, 6, 7]


# ------------------------------------------------------------------------------ --vary


@pytest.mark.parametrize("text, name, fields", [
    ("c=uniform(0.02, 0.05)", "c", {"distribution": "uniform", "low": 0.02, "high": 0.05}),
    ("kpg=lognormal(median=0.6, cv=0.3)", "kpg", {"distribution": "lognormal", "median": 0.6, "cv": 0.3}),
    ("s1=normal(550, 50, lower=0)", "s1", {"distribution": "normal", "mean": 550, "sd": 50, "lower": 0}),
    ("r2=fixed(0.18)", "r2", {"distribution": "fixed", "value": 0.18}),
    ("x=loguniform(1e-3, 1)", "x", {"distribution": "loguniform", "low": 1e-3, "high": 1}),
    (" m = normal(-2, 0.5, upper=-1) ", "m", {"distribution": "normal", "mean": -2, "sd": 0.5, "upper": -1}),
    ('CL=lognormal(median=0.5, cv=0.25, scale="(body_weight/70)^0.75")', "CL",
     {"distribution": "lognormal", "median": 0.5, "cv": 0.25, "scale": "(body_weight/70)^0.75"}),
])
def test_parse_vary(text, name, fields):
    got_name, dist = parse_vary(text)
    assert got_name == name
    assert dist.model_dump(exclude_defaults=True) == fields


def test_vary_overrides_and_adds_entries(compiled):
    sampler = population_sampler(compiled, vary=["c=fixed(0.04)", "k_other=uniform(1, 2)", "body_weight=fixed(70)"])
    assert sampler.names == ("body_weight", "c", "kpg", "s1", "CL", "r2", "k_other")
    table = sampler.draw(0, 1000)[1]
    assert (table["c"] == 0.04).all() and (table["body_weight"] == 70).all()
    assert table["k_other"].between(1, 2).all()
    np.testing.assert_allclose(table["CL"].median(), 0.5, rtol=0.03)  # a weight of 70 kg scales by 1


# ------------------------------------------------------------------------------ mistakes


def _set(path: str, value):
    def change(population: dict):
        *parents, last = path.split(".")
        node = population
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return change


BAD = {
    "negative_sd": (_set("parameters.s1.sd", -5), ["population.parameters.s1.sd", "must be positive, got -5"]),
    "zero_cv": (_set("parameters.kpg.cv", 0), ["population.parameters.kpg.cv", "must be positive"]),
    "lower_above_upper": (_set("covariates.body_weight.lower", 200), ["population.covariates.body_weight",
                                                                       "lower (200) must be less than upper (160)"]),
    "lower_equals_upper": (_set("covariates.body_weight.lower", 160), ["lower (160) must be less than upper (160)"]),
    "low_not_below_high": (_set("parameters.c.low", 0.05), ["population.parameters.c", "low (0.05) must be less than high"]),
    "median_not_positive": (_set("parameters.kpg.median", 0), ["population.parameters.kpg.median",
                                                               "lognormal median must be positive"]),
    "unknown_parameter": (_set("parameters.kpgg", {"distribution": "fixed", "value": 1}),
                          ["population.parameters.kpgg", "unknown parameter 'kpgg'", "did you mean 'kpg'?"]),
    "correlation_above_one": (_set("correlations", [["kpg", "s1", 1.5]]),
                              ["population.correlations[0]", "between -1 and 1, got 1.5"]),
    "correlation_with_itself": (_set("correlations", [["kpg", "kpg", 0.3]]), ["correlations[0]", "itself"]),
    "correlation_unknown_name": (_set("correlations", [["kpg", "cl", 0.3]]),
                                 ["correlations[0]", "'cl' has no distribution", "did you mean 'CL'?"]),
    "correlation_fixed_name": (_set("correlations", [["kpg", "r2", 0.3]]), ["correlations[0]", "'r2' is fixed"]),
    "correlation_pair_twice": (_set("correlations", [["kpg", "s1", 0.3], ["s1", "kpg", 0.2]]),
                               ["correlations[1]", "already given in correlations[0]"]),
    "correlation_wrong_shape": (_set("correlations", [["kpg", "s1"]]), ["population.correlations[0]", "[name, name, r]"]),
    "not_positive_definite": (_set("correlations", [["kpg", "s1", 0.9], ["s1", "c", 0.9], ["c", "kpg", -0.9]]),
                              ["not positive definite", "correlations[0] (kpg, s1, 0.9)", "correlations[2] (c, kpg, -0.9)"]),
    "fixed_outside_range": (_set("parameters.r2", {"distribution": "fixed", "value": 2, "lower": 0, "upper": 1}),
                            ["population.parameters.r2", "value 2 lies outside lower..upper (0..1)"]),
    "scale_unknown_name": (_set("parameters.CL.scale", "(weight / 70)^0.75"),
                           ["parameters.CL.scale", "unknown covariate 'weight'", "did you mean 'body_weight'?"]),
    "scale_not_an_expression": (_set("parameters.CL.scale", "__import__('os')"),
                                ["population.parameters.CL.scale", "invalid expression"]),
    "scale_on_a_covariate": (_set("covariates.body_weight.scale", "2"), ["covariates.body_weight.scale", "unscaled"]),
    "field_of_another_kind": (_set("parameters.c.mean", 1), ["population.parameters.c", "uniform takes low and high",
                                                              "'mean' does not apply"]),
    "lognormal_two_forms": (_set("parameters.kpg.mu", 0), ["population.parameters.kpg", "lognormal takes one pair"]),
    "missing_sd": (_set("parameters.s1", {"distribution": "normal", "mean": 1}), ["parameters.s1", "normal needs sd"]),
    "unknown_kind": (_set("parameters.c.distribution", "gaussian"), ["population.parameters.c.distribution", "'gaussian'"]),
    "misspelt_field": (_set("parameters.c.hihg", 1), ["population.parameters.c.hihg", "did you mean 'high'?"]),
    "truncation_outside_uniform": (_set("parameters.c.lower", 0.1), ["parameters.c", "leaves nothing of low..high"]),
    "negative_seed": (_set("seed", -1), ["population.seed", "integer from 0 to"]),
    "bad_name": (_set("covariates.2x", {"distribution": "fixed", "value": 1}),
                 ["population.covariates", "'2x' is not a valid name"]),
    "both_parameter_and_covariate": (_set("covariates.c", {"distribution": "fixed", "value": 1}),
                                     ["'c' is both a parameter and a covariate"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_population_mistakes_name_file_and_field(case):
    change, fragments = BAD[case]
    data = _data()
    change(data["population"])
    with pytest.raises(ilsim.ModelError) as info:
        population_sampler(_compiled(data, source="cohort.yaml"))
    message = str(info.value)
    assert message.startswith("cohort.yaml: ")
    for fragment in fragments:
        assert fragment in message, message


def test_truncated_needs_a_bound():
    with pytest.raises(ilsim.ModelError, match="truncated needs lower, upper or both"):
        population_sampler(_compiled(), {"parameters": {"c": {"distribution": "truncated", "mean": 1, "sd": 1}}})


def test_population_given_as_mapping_names_its_source(compiled):
    with pytest.raises(ilsim.ModelError, match=r"^cohort.json: population.parameters.c.sd: must be positive"):
        population_sampler(compiled, {"parameters": {"c": {"distribution": "normal", "mean": 1, "sd": 0}}},
                           source="cohort.json")


def test_unknown_population_parameter_is_found_when_compiling():
    data = _data()
    data["population"]["parameters"]["kpgg"] = {"distribution": "fixed", "value": 1}
    with pytest.raises(ilsim.ModelError, match=r"population.parameters.kpgg: unknown parameter 'kpgg' \(did you mean 'kpg'\?\)"):
        _compiled(data)


VARY_BAD = {
    "c=normal(1, -2)": ["vary: c.sd: must be positive, got -2", "(in 'c=normal(1, -2)')"],
    "c=normal(1, 0)": ["c.sd: must be positive"],
    "c=uniform(0.05, 0.02)": ["vary: c: low (0.05) must be less than high (0.02)"],
    "c=normal(1, 2, lower=3, upper=2)": ["lower (3) must be less than upper (2)"],
    "kpg=lognormal(median=-1, cv=0.3)": ["kpg.median: a lognormal median must be positive"],
    "kpg=lognormal(0.6, 0.3)": ["lognormal takes its values by name"],
    "c=gauss(1, 2)": ["unknown distribution 'gauss'", "use one of normal"],
    "c=normal(1, 2, lower=__import__('os'))": ["expected a number, got"],
    "c=uniform(0.02, 0.05, 3)": ["uniform takes at most 2 values by position"],
    "c=normal(1, 2, lowr=0)": ["c.lowr: unknown field 'lowr'", "did you mean 'lower'?"],
    "kpgg=uniform(0, 1)": ["vary: kpgg: unknown parameter or covariate 'kpgg'", "did you mean 'kpg'?"],
    "c=normal(1, 2, scale='weight')": ["c.scale: unknown covariate 'weight'", "did you mean 'body_weight'?"],
    "kpg=fixed(1)": ["'kpg' is correlated in the model's population: it cannot be fixed"],
    "c": ["expected NAME=DISTRIBUTION(...)"],
    "2c=fixed(1)": ["'2c' is not a valid name"],
    "r2=fixed(1, lower=2)": ["value 1 lies outside lower..upper"],
}


@pytest.mark.parametrize("text", sorted(VARY_BAD))
def test_vary_mistakes_name_the_option(compiled, text):
    with pytest.raises(ilsim.ModelError) as info:
        population_sampler(compiled, vary=[text])
    message = str(info.value)
    assert message.startswith("vary: ")  # the Python argument; the CLI says --vary
    for fragment in VARY_BAD[text]:
        assert fragment in message, message


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True, 2**63])
def test_bad_seed(compiled, seed):
    with pytest.raises(ilsim.ModelError, match="seed: the seed must be an integer from 0 to"):
        population_sampler(compiled, seed=seed)


@pytest.mark.parametrize("start, stop", [(-1, 5), (5, 4)])
def test_bad_patient_range(compiled, start, stop):
    with pytest.raises(ilsim.IlsimError, match="need 0 <= start <= stop"):
        population_sampler(compiled).draw(start, stop)
