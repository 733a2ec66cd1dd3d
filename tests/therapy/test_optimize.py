"""Schedule optimisation: the best feasible schedule, the Pareto front, the standard schedule, the
files the command writes, failed candidates and bad input."""

import csv
import json
from pathlib import Path

import pytest

from ilsim.errors import IlsimError
from ilsim.therapy.optimize import optimize, parse_constraint, parse_objective

TOY = Path(__file__).resolve().parents[2] / "examples" / "optimize-toy.yaml"
GRID = {"doses[0].amount": [50, 100, 150, 200], "doses[0].count": [2, 4, 6]}
OBJECTIVE = "max:reduction(T)"
LIMIT = "grade(Platelet count decreased) <= 2"


@pytest.fixture(scope="module")
def result():
    return optimize(TOY, GRID, OBJECTIVE, [LIMIT])


def grid_rows(result):
    return [r for r in result["candidates"] if not r["standard"]]


def test_every_grid_point_is_evaluated_once(result):
    rows = grid_rows(result)
    assert len(rows) == 12 and result["evaluated"] == 12 and result["failed"] == 0
    assert {(r["values"]["doses[0].amount"], r["values"]["doses[0].count"]) for r in rows} == {
        (a, c) for a in (50.0, 100.0, 150.0, 200.0) for c in (2, 4, 6)}


def test_the_best_schedule_is_feasible_and_optimal_among_feasible_grid_points(result):
    best = result["best"]
    assert best is not None and best["feasible"] and best["best"]
    assert all(c["ok"] and c["value"] <= 2 for c in best["constraints"])
    feasible = [r for r in result["candidates"] if r["feasible"]]
    assert best["objective"] == max(r["objective"] for r in feasible)
    # the toy model trades tumour kill for platelets: the most intense schedules reach grade 3
    infeasible = [r for r in grid_rows(result) if not r["feasible"]]
    assert infeasible and all(r["toxicity"] >= 3 for r in infeasible)
    assert max(r["objective"] for r in infeasible) > best["objective"]
    assert best["values"] == {"doses[0].amount": 150.0, "doses[0].count": 6}


def test_the_pareto_front_is_non_dominated_and_dominates_the_rest(result):
    ok = [r for r in result["candidates"] if r["status"] == "ok"]

    def dominates(a, b):  # higher objective and lower toxicity are better
        return (a["objective"] >= b["objective"] and a["toxicity"] <= b["toxicity"]
                and (a["objective"] > b["objective"] or a["toxicity"] < b["toxicity"]))

    front = [r for r in ok if r["pareto"]]
    assert front and result["pareto"] == [r["id"] for r in front]
    for r in front:
        assert not any(dominates(o, r) for o in ok)
    for r in ok:
        if not r["pareto"]:
            assert any(dominates(f, r) for f in front)


def test_the_standard_schedule_is_reported_with_the_models_own_values(result):
    std = result["standard"]
    assert std["standard"] and std["id"] == "standard"
    assert std["values"] == {"doses[0].amount": 100.0, "doses[0].count": 4}
    same = next(r for r in grid_rows(result) if r["values"] == std["values"])
    assert std["objective"] == pytest.approx(same["objective"])
    assert std["toxicity"] == same["toxicity"] and std["feasible"]
    assert result["toxicity"] == {"measure": "grade(Platelet count decreased)", "better": "lower"}


def test_parameters_can_be_varied_and_higher_is_safer_toxicity_measures(tmp_path):
    r = optimize(TOY, {"param:k_kill": [0.02, 0.04]}, "min:final(T)", ["nadir(platelets) >= 50000"])
    assert r["toxicity"] == {"measure": "nadir(platelets)", "better": "higher"}
    assert r["best"]["values"] == {"param:k_kill": 0.04}
    assert r["standard"]["values"] == {"param:k_kill": 0.04}


def test_quantities_read_the_run():
    r = optimize(TOY, {"doses[0].count": [3]}, "max:1 - at(T, 42)/initial(T)", ["doses_given(drugx) >= 3"],
                 toxicity="auc(drugx)")
    row = r["candidates"][1]
    assert row["constraints"][0]["value"] == 3 and row["feasible"]
    same = optimize(TOY, {"doses[0].count": [3]}, OBJECTIVE, ["doses_given(drugx) >= 3"])
    assert row["objective"] == pytest.approx(same["candidates"][1]["objective"])  # t = 42 is the end of the run
    # three 100 mg bolus doses into 10 L eliminated at 0.7/day: AUC = 3 * 10 mg/L / 0.7 per day (trapezoids: a bit more)
    assert row["toxicity"] == pytest.approx(3 * 10 / 0.7, rel=0.05)


def test_a_candidate_that_cannot_run_is_recorded_and_skipped():
    r = optimize(TOY, {"doses[0].amount": [100, 20000]}, OBJECTIVE, [LIMIT])
    failed = [c for c in r["candidates"] if c["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["values"]["doses[0].amount"] == 20000
    assert "labelled dose" in failed[0]["reason"]
    assert not failed[0]["feasible"] and not failed[0]["pareto"]
    assert r["best"]["values"]["doses[0].amount"] == 100


def test_nelder_mead_searches_a_continuous_range_within_its_budget():
    r = optimize(TOY, {"doses[0].amount": (50, 200, 2)}, OBJECTIVE, [LIMIT], method="nelder-mead", max_evaluations=12)
    assert 1 <= r["evaluated"] <= 14
    assert r["best"] is not None and r["best"]["feasible"]
    assert all(50 <= c["values"]["doses[0].amount"] <= 200 for c in r["candidates"])


def test_cli_writes_the_table_the_json_and_the_figure(cli, tmp_path):
    out = tmp_path / "opt"
    res = cli("optimize", TOY, "--vary", "doses[0].amount=50,100,150,200", "--vary", "doses[0].count=2:6:3",
              "--objective", OBJECTIVE, "--constraint", LIMIT, "--out", out)
    assert res.exit_code == 0, res.output
    assert {"optimize.csv", "optimize.json", "pareto.png"} <= {p.name for p in out.iterdir()}
    rows = list(csv.DictReader((out / "optimize.csv").open()))
    assert len(rows) == 13 and rows[0]["id"] == "standard"
    assert sum(r["best"] == "True" for r in rows) == 1
    data = json.loads((out / "optimize.json").read_text())
    assert data["best"]["values"] == {"doses[0].amount": 150.0, "doses[0].count": 6}
    assert (out / "pareto.png").stat().st_size > 1000
    assert "best feasible schedule (9)" in res.stdout
    again = cli("optimize", TOY, "--vary", "doses[0].count=2", "--objective", OBJECTIVE, "--constraint", LIMIT, "--out", out)
    assert again.exit_code == 0, again.output  # its own earlier result folder is replaced


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--vary", "doses[0].amout=50,100"], ["doses[0].amout", "did you mean 'amount'"]),
        (["--vary", "doses[3].amount=50"], ["doses[0] to doses[0]"]),
        (["--vary", "param:k_kil=0.1"], ["no parameter 'k_kil'", "did you mean 'k_kill'"]),
        (["--vary", "dose.amount=1"], ["doses[I].FIELD"]),
        (["--vary", "doses[0].amount=a,b"], ["must be numbers"]),
        (["--vary", "doses[0].count=2.5,3"], ["whole numbers"]),
        (["--vary", "doses[0].amount=50:100:0"], ["empty"]),
        (["--vary", "doses[0].amount=1:100:50", "--vary", "doses[0].count=1:50:50"], ["2500 candidates", "--force"]),
        (["--objective", "reduction(T)"], ["max:", "min:"]),
        (["--objective", "max:reduktion(T)"], ["unknown quantity or function 'reduktion'", "did you mean 'reduction'"]),
        (["--objective", "max:reduction(Tumour)"], ["no variable 'Tumour'"]),
        (["--objective", "max:T"], ["unknown name 'T'", "final(T)"]),
        (["--objective", "max:reduction(T"], ["syntax error"]),
        (["--constraint", "grade(Platelet count decreased)"], ["one comparison"]),
        (["--constraint", "grade(Hypotension) <= 2"], ["does not grade Hypotension", "Platelet count decreased"]),
        (["--constraint", "grade(Hypotenshun) <= 2"], ["Hypotenshun"]),
        (["--constraint", "at(T, 100) < 1"], ["outside the run"]),
        (["--constraint", "doses_given(drugy) >= 1"], ["no drug 'drugy'", "did you mean 'drugx'"]),
        (["--method", "simplex"], ["unknown search method"]),
    ],
)
def test_bad_input_is_refused_with_exit_2_and_nothing_written(cli, refused, tmp_path, args, fragments):
    base = {"--vary": "doses[0].amount=50,100", "--objective": OBJECTIVE, "--constraint": LIMIT}
    given = {args[i] for i in range(0, len(args), 2)}
    argv = [a for k, v in base.items() if k not in given for a in (k, v)] + args
    out = tmp_path / "opt"
    refused(cli("optimize", TOY, *argv, "--out", out), *fragments)
    assert not out.exists() and not list(tmp_path.glob(".opt*"))


def test_expressions_are_parsed_safely_never_evaluated_as_python():
    for text in ["max:__import__('os')", "max:final(T).real", "max:[final(T)]"]:
        with pytest.raises(IlsimError):
            parse_objective(text)
    with pytest.raises(IlsimError, match="one comparison"):
        parse_constraint("grade(Fever) <= 2 and peak(T) < 1")
    c = parse_constraint("peak(aldesleukin) < 1e7")
    assert c.op == "<" and [q.text for q in c.quantities.values()] == ["peak(aldesleukin)"]


def test_no_toxicity_measure_is_refused():
    with pytest.raises(IlsimError, match=r"toxicity expression \(toxicity\)"):
        optimize(TOY, GRID, OBJECTIVE, [])


def test_doses_of_an_included_model_can_be_optimised():
    from ilsim.therapy.optimize import optimize

    result = optimize("kirschner-panetta-il2-therapy", {"doses[0].amount": [300000, 600000]}, "max:reduction(T)",
                      ["grade(Hypotension) <= 3"], t_end=300)
    assert result["best"]["values"] == {"doses[0].amount": 300000.0}  # the labelled dose exceeds grade 3 here
    assert result["standard"]["feasible"] is False


def test_a_search_runs_on_the_engine_it_is_given(result):
    """engine= reaches every candidate's run: the batch engine finds the schedule the SciPy engine finds, with
    objective values within the two engines' tolerance."""
    from ilsim.engines.batch import BatchEngine

    batch = optimize(TOY, GRID, OBJECTIVE, [LIMIT], engine=BatchEngine(rtol=1e-8, atol=1e-10))
    assert batch["best"]["id"] == result["best"]["id"]
    for a, b in zip(batch["candidates"], result["candidates"]):
        assert a["feasible"] == b["feasible"] and a["objective"] == pytest.approx(b["objective"], rel=1e-4, abs=1e-6)
