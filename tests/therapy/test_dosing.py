"""Doses and pharmacokinetics: schedules, routes, unit conversion, holding rules, bad input."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

import ilsim
from ilsim.cli import app
from ilsim.model.load import dump_spec, spec_from_dict


def aldesleukin_with(doses):
    spec = ilsim.load("aldesleukin")
    spec.doses = doses
    return spec


def test_aldesleukin_distribution_and_elimination_half_lives_are_13_and_85_minutes():
    spec = aldesleukin_with([{"drug": "aldesleukin", "route": "iv_bolus", "amount": 1e6, "units": "IU/m2"}])
    t = np.linspace(0, 8, 4801)  # hours
    c = ilsim.simulate(spec, t_eval=t, rtol=1e-10, atol=1e-9)["aldesleukin"].values
    late = (t >= 4) & (t <= 8)
    beta, log_b = np.polyfit(t[late], np.log(c[late]), 1)
    assert math.log(2) / -beta * 60 == pytest.approx(85, rel=0.01)
    residual = c - np.exp(log_b + beta * t)  # peel off the slow phase: what is left is the fast one
    early = (t > 0) & (t <= 0.5)
    alpha, _ = np.polyfit(t[early], np.log(residual[early]), 1)
    assert math.log(2) / -alpha * 60 == pytest.approx(13, rel=0.02)


def test_a_1e6_u_per_m2_bolus_gives_about_650_u_per_ml():
    spec = aldesleukin_with([{"drug": "aldesleukin", "route": "iv_bolus", "amount": 1e6, "units": "IU/m2"}])
    c0 = float(ilsim.simulate(spec, t_eval=[0, 0.01])["aldesleukin"][0])  # IU/L
    assert c0 / 1000 == pytest.approx(650, rel=0.01)


def test_labelled_schedule_gives_two_courses_of_14_doses_8_hours_apart():
    ds = ilsim.simulate("aldesleukin")
    log = ilsim.summarise(ds)["dose_log"]
    given = [e["time"] for e in log if e["status"] == "given"]
    assert given == [8.0 * i for i in range(14)] + [288 + 8.0 * i for i in range(14)]
    # a 15-minute infusion: the concentration peaks at the end of each infusion
    t = ds["time"].values
    first = (t >= 0) & (t <= 2)
    assert t[first][np.argmax(ds["aldesleukin"].values[first])] == pytest.approx(0.25, abs=0.05)


def _one_compartment(**dose):
    m = ilsim.Model(name="pk", time_units="hour")
    m.pk = [{"drug": "drug", "volume": 10, "k10": 0.0, "ka": 0.5, "bioavailability": 0.6, "iu_per_mg": 1000}]
    m.doses = [{"drug": "drug", **dose}]
    return m


@pytest.mark.parametrize(
    ("dose", "expected_amount"),
    [
        ({"route": "iv_bolus", "amount": 5, "units": "mg"}, 5.0),
        ({"route": "iv_bolus", "amount": 500, "units": "ug"}, 0.5),
        ({"route": "iv_infusion", "amount": 5, "units": "mg", "duration": 2}, 5.0),
        ({"route": "sc", "amount": 5, "units": "mg"}, 3.0),  # bioavailability 0.6
        ({"route": "iv_bolus", "amount": 2000, "units": "IU"}, 2.0),  # 1000 IU per mg
        ({"route": "iv_bolus", "amount": 0.004, "units": "g"}, 4.0),  # converted by pint (model/units.py)
        ({"route": "iv_bolus", "amount": 3, "units": "kIU"}, 3.0),
        ({"route": "iv_bolus", "amount": 0.002, "units": "MU"}, 2.0),  # a label's MU is a million IU
    ],
)
def test_every_route_delivers_the_dose_in_the_drug_units(dose, expected_amount):
    ds = ilsim.simulate(_one_compartment(**dose), 48, rtol=1e-10, atol=1e-12)
    delivered = float(ds["drug_central"][-1])  # no elimination: all that arrives stays
    assert delivered == pytest.approx(expected_amount, rel=1e-6)


def test_an_infusion_rises_linearly_for_its_duration_and_stops():
    ds = ilsim.simulate(_one_compartment(route="iv_infusion", amount=5, units="mg", duration=2, start=1),
                        t_eval=np.linspace(0, 5, 11))
    assert ds["drug_central"].values == pytest.approx([0, 0, 0, 1.25, 2.5, 3.75, 5, 5, 5, 5, 5], abs=1e-9)


def test_per_kg_doses_scale_with_body_weight():
    spec = aldesleukin_with([{"drug": "aldesleukin", "route": "iv_bolus", "amount": 1000, "units": "IU/kg"}])
    heavy = ilsim.simulate(spec, 1, parameters={"body_weight": 100})
    assert float(heavy["aldesleukin_central"][0]) == pytest.approx(100_000)


def test_holding_rule_holds_resumes_and_stops_the_course():
    m = ilsim.Model(name="hold", time_units="hour").add_parameter("toxicity", 0.0)
    m.pk = [{"drug": "drug", "volume": 1, "k10": 0.1}]
    m.doses = [{"drug": "drug", "route": "iv_bolus", "amount": 1, "units": "mg", "every": 8, "count": 8,
                "hold": {"when": "toxicity >= 3", "resume": "toxicity <= 1", "stop_after": 3}}]
    m.add_event("toxicity rises", at=10, set={"toxicity": 3})
    m.add_event("toxicity eases", at=20, set={"toxicity": 1})
    m.add_event("toxicity returns", at=30, set={"toxicity": 4})
    log = ilsim.summarise(ilsim.simulate(m, 70))["dose_log"]
    statuses = [(e["time"], e["status"]) for e in log]
    assert statuses == [(0, "given"), (8, "given"), (16, "held"), (24, "resumed"), (24, "given"), (32, "held"),
                        (40, "held"), (40, "course stopped")]
    assert log[2]["reason"] == "toxicity >= 3"


@pytest.mark.parametrize(
    ("doses", "field", "message"),
    [
        ([{"drug": "aldesleukin", "route": "iv_infusion", "amount": 1, "units": "IU/kg", "duration": 10, "every": 8,
           "count": 2}], "doses[0].duration", "overlap"),
        ([{"drug": "aldesleukn", "route": "iv_bolus", "amount": 1, "units": "IU"}], "doses[0].drug",
         "did you mean 'aldesleukin'"),
        ([{"drug": "aldesleukin", "route": "iv_bolus", "amount": 1e8, "units": "IU/kg"}], "doses[0].amount",
         "more than 100 times the labelled dose"),
        ([{"drug": "aldesleukin", "route": "iv_bolus", "amount": 1, "units": "IU/lb"}], "doses[0].units", "per kg or per m2"),
        ([{"drug": "aldesleukin", "route": "iv_bolus", "amount": -1, "units": "IU"}], "doses[0].amount", "positive"),
    ],
)
def test_bad_doses_are_refused_naming_the_field(doses, field, message):
    data = ilsim.load("aldesleukin").model_dump(mode="json", exclude_defaults=True)
    with pytest.raises(ilsim.ModelError) as info:
        ilsim.compile(spec_from_dict({**data, "doses": doses}, "aldesleukin.yaml"))
    problems = {p.field: p.message for p in info.value.problems}
    assert field in problems and message in problems[field], problems


def test_a_dose_into_a_species_that_is_not_a_drug_is_refused():
    m = ilsim.Model(name="x").add_species("IL2", 0.0, kind="cytokine")
    m.doses = [{"drug": "IL2", "route": "iv_bolus", "amount": 1, "units": "mg"}]
    with pytest.raises(ilsim.ModelError, match="is a species, not a drug with a pk entry"):
        ilsim.compile(m)


def test_per_kg_dose_without_a_body_weight_is_refused():
    m = ilsim.Model(name="x")
    m.pk = [{"drug": "drug", "volume": 1, "k10": 1}]
    m.doses = [{"drug": "drug", "route": "iv_bolus", "amount": 1, "units": "mg/kg"}]
    with pytest.raises(ilsim.ModelError, match="needs the patient's body weight"):
        ilsim.compile(m)


def test_high_dose_override_is_explicit():
    spec = aldesleukin_with([{"drug": "aldesleukin", "route": "iv_bolus", "amount": 1e8, "units": "IU/kg"}])
    assert ilsim.compile(spec, allow_high_dose=True).name == "aldesleukin"


def test_cli_dose_option_adds_a_schedule_and_reports_it(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "kirschner-panetta-1998", "--t-end", "5", "--no-report", "--out", str(out),
                                 "--dose", "x:iv_bolus:1 mg"], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "doses[0].drug" in result.output and not out.exists()
    result = runner.invoke(app, ["run", "aldesleukin", "--t-end", "30", "--no-report", "--out", str(out),
                                 "--dose", "aldesleukin:iv_bolus:1e6 IU/m2:start=24"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    log = json.loads((out / "summary.json").read_text())["dose_log"]
    assert [e["time"] for e in log if e["status"] == "given"] == [0, 8, 16, 24, 24]
    high = runner.invoke(app, ["run", "aldesleukin", "--t-end", "1", "--no-report", "--out", str(tmp_path / "h"),
                               "--dose", "aldesleukin:iv_bolus:1e9 IU/kg"], env={"COLUMNS": "200"})
    assert high.exit_code == 2 and "--allow-high-dose" in high.output


def test_toxicity_section_grades_readouts_in_the_summary(tmp_path):
    m = ilsim.Model(name="fever", time_units="hour").add_species("IL6", 0.0, kind="cytokine", units="pg/mL")
    m.add_motif("readout", kind="fever", inputs={"IL6": 1}, half_saturation=50, hill=2)
    m.add_event("storm", at=2, set={"IL6": 400})
    m.add_motif("clearance", species="IL6", half_life=6)
    m.toxicity = [{"term": "Fever", "readout": "temperature"}]
    summary = ilsim.summarise(ilsim.simulate(m, 72))
    fever = summary["toxicity"]["Fever"]
    assert fever["max_grade"] == 2  # peak just under 40 C: grade 2 (>39.0-40.0 C)
    assert fever["recovered_by"] is not None
    data = m.model_dump(mode="json", exclude_defaults=True)
    # the model's schema holds the entry as plain data; the CTCAE check runs when the model is compiled
    bad = tmp_path / "m.yaml"
    bad.write_text(dump_spec(spec_from_dict({**data, "toxicity": [{"term": "Fevre", "readout": "temperature"}]})))
    with pytest.raises(ilsim.ModelError, match=r"m.yaml: toxicity\[0\].term: unknown CTCAE term 'Fevre' \(did you mean"):
        ilsim.compile(bad)
    with pytest.raises(ilsim.ModelError, match=r"toxicity\[0\].readout"):
        ilsim.compile(spec_from_dict({**data, "toxicity": [{"term": "Fever", "readout": "temp"}]}, "m.yaml"))


def test_a_dose_amount_may_be_a_parameter_that_set_changes():
    m = _one_compartment(route="iv_bolus", amount="dose_mg", units="mg")
    m.add_parameter("dose_mg", 0.0, units="mg", source="test")
    assert float(ilsim.simulate(m, 2)["drug_central"][-1]) == 0.0
    assert float(ilsim.simulate(m, 2, parameters={"dose_mg": 4})["drug_central"][-1]) == pytest.approx(4.0)


def test_a_course_stopped_by_holds_does_not_cancel_the_next_course():
    m = ilsim.Model(name="hold", time_units="hour").add_parameter("toxicity", 0.0)
    m.pk = [{"drug": "drug", "volume": 1, "k10": 0.1}]
    m.doses = [{"drug": "drug", "route": "iv_bolus", "amount": 1, "units": "mg", "every": 8, "count": 4, "cycles": 2,
                "cycle_length": 100, "hold": {"when": "toxicity >= 3", "resume": "toxicity <= 1", "stop_after": 2}}]
    m.add_event("toxic", at=4, set={"toxicity": 3})
    m.add_event("recovered", at=50, set={"toxicity": 0})
    log = ilsim.summarise(ilsim.simulate(m, 140))["dose_log"]
    assert [(e["time"], e["status"]) for e in log] == [
        (0, "given"), (8, "held"), (16, "held"), (16, "course stopped"),
        (100, "given"), (108, "given"), (116, "given"), (124, "given")]


def test_subcutaneous_aldesleukin_gives_about_2_percent_of_the_iv_peak_flat_for_8_hours():
    # Konrad et al. 1990: SC levels about 2% of the IV peak, flat for about 8 h
    t = np.linspace(0, 24, 2401)
    iv = ilsim.simulate(aldesleukin_with([{"drug": "aldesleukin", "route": "iv_bolus", "amount": 1e6, "units": "IU/m2"}]),
                        t_eval=t)["aldesleukin"].values
    sc = ilsim.simulate(aldesleukin_with([{"drug": "aldesleukin", "route": "sc", "amount": 1e6, "units": "IU/m2"}]),
                        t_eval=t)["aldesleukin"].values
    assert sc.max() / iv.max() == pytest.approx(0.02, rel=0.15)
    window = (t >= 1) & (t <= 8)
    assert sc[window].min() > 0.7 * sc.max()


def test_an_sc_dose_of_a_drug_without_absorption_is_refused():
    m = ilsim.Model(name="x")
    m.pk = [{"drug": "drug", "volume": 1, "k10": 1}]
    m.doses = [{"drug": "drug", "route": "sc", "amount": 1, "units": "mg"}]
    with pytest.raises(ilsim.ModelError, match=r"doses\[0\].route: a sc dose needs an absorption rate 'ka'"):
        ilsim.compile(m)


@pytest.mark.parametrize("units_amount", [("MIU/kg", 600000), ("mg/kg", 3000), ("IU", 600000 * 70 * 101)])
def test_the_high_dose_check_holds_whatever_units_the_dose_is_written_in(units_amount):
    units, amount = units_amount
    spec = aldesleukin_with([{"drug": "aldesleukin", "route": "iv_bolus", "amount": amount, "units": units}])
    with pytest.raises(ilsim.ModelError, match="more than 100 times the labelled dose"):
        ilsim.compile(spec)


@pytest.mark.parametrize("field", [{"amount": float("inf")}, {"at": []}, {"every": 0, "count": 2}, {"start": float("nan")}])
def test_non_finite_or_empty_schedules_are_refused(field):
    data = ilsim.load("aldesleukin").model_dump(mode="json", exclude_defaults=True)
    dose = {"drug": "aldesleukin", "route": "iv_bolus", "amount": 1, "units": "IU", **field}
    with pytest.raises(ilsim.ModelError, match=r"doses\[0\]"):
        spec_from_dict({**data, "doses": [dose]}, "m.yaml")


def test_a_single_dose_time_may_be_written_as_a_number():
    one = ilsim.simulate(_one_compartment(route="iv_bolus", amount=5, units="mg", at=1), 4, points=5)
    listed = ilsim.simulate(_one_compartment(route="iv_bolus", amount=5, units="mg", at=[1]), 4, points=5)
    np.testing.assert_array_equal(one["drug_central"].values, listed["drug_central"].values)
    assert float(one["drug_central"][0]) == 0.0 and float(one["drug_central"][1]) == pytest.approx(5.0)


@pytest.mark.parametrize("value", [".inf", ".nan"])
def test_a_non_finite_patient_covariate_is_refused_naming_it(value, tmp_path):
    """Found by mutation fuzzing (bench/fuzz_model_files.py, seed 21): an infinite body surface area in a model file
    reached the expanded parameters and ended in a pydantic traceback."""
    from ilsim.scenarios import builtin_path

    text = builtin_path("aldesleukin").read_text()
    path = tmp_path / "model.yaml"
    path.write_text(text.replace("body_surface_area: 1.8}", f"body_surface_area: {value}}}", 1))
    with pytest.raises(ilsim.ModelError, match=r"patient.body_surface_area: Input should be a finite number"):
        ilsim.compile(path)
