"""What a run keeps: model.yaml repeats it exactly; the Dataset holds its records (events fired, dose log,
CTCAE grades, starting parameters) as variables with their own dimensions, with long_name and units on all."""

import json
from collections import Counter

import numpy as np
import pytest
import xarray as xr

import ilsim
from ilsim.io.results import time_series


def same_values(a: xr.Dataset, b: xr.Dataset) -> None:
    """Every variable of two result files equal, value for value (the same engine settings give the same numbers)."""
    assert sorted(a.variables) == sorted(b.variables)
    for name in a.variables:
        assert a[name].dims == b[name].dims, name
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


@pytest.mark.parametrize("model, options", [
    ("kirschner-panetta-1998", ["--t-end", "60", "--points", "301", "--method", "BDF", "--rtol", "1e-7",
                                "--atol", "1e-10", "--set", "c=0.03", "--set", "s2=90"]),
    ("infection-resolution", ["--t-end", "40", "--fault", "stop-ignored:0.6", "--method", "Radau"]),
    ("aldesleukin", ["--t-end", "30", "--points", "121", "--dose", "aldesleukin:iv_bolus:1e6 IU/m2:start=2"]),
])
def test_the_saved_model_repeats_the_run_exactly(cli, tmp_path, model, options):
    first, second = tmp_path / "first", tmp_path / "second"
    result = cli("run", model, "--out", first, "--no-report", *options)
    assert result.exit_code == 0, result.output
    saved = ilsim.load(first / "model.yaml")
    result = cli("run", first / "model.yaml", "--out", second, "--no-report")  # no options: all in the file
    assert result.exit_code == 0, result.output
    with xr.open_dataset(first / "results.nc") as a, xr.open_dataset(second / "results.nc") as b:
        same_values(a, b)
        assert b.attrs["model_hash"] == a.attrs["model_hash"] == saved.content_hash()
        settings = {k: a.attrs[k] for k in ("method", "rtol", "atol")}
    given = dict(zip(options[::2], options[1::2]))
    sim = saved.simulation
    assert sim.t_end == float(given["--t-end"]) and sim.points == int(given.get("--points", sim.points))
    assert {"method": sim.method, "rtol": sim.rtol, "atol": sim.atol} == settings
    if "--method" in given:
        assert sim.method == given["--method"]
    if "--rtol" in given:
        assert (sim.rtol, sim.atol) == (float(given["--rtol"]), float(given["--atol"]))
    values = {p.name: p.value for p in saved.parameters}
    if model == "kirschner-panetta-1998":
        assert (values["c"], values["s2"]) == (0.03, 90)
    if model == "infection-resolution":
        assert values["stop_blunting"] == 0.6  # the fault's parameter at its severity


def test_a_run_with_held_doses_records_them_as_variables(tmp_path):
    # held doses: hold below an SBP that the capillary leak reaches in the first course
    ds = ilsim.simulate("aldesleukin", 300, points=3001, parameters={"SBP_hold": 100, "SBP_resume": 110})
    summary = ilsim.summarise(ds)
    log = summary["dose_log"]
    assert ds["dose_status"].dims == ("dose",) and ds.sizes["dose"] == len(log)
    statuses = Counter(ds["dose_status"].values.tolist())
    assert statuses["held"] > 0 and statuses["given"] > 0
    assert ds["dose_time"].values.tolist() == [e["time"] for e in log]
    assert ds["dose_drug"].values.tolist() == ["aldesleukin"] * len(log)
    # each held dose was decided at a time when SBP was below the hold threshold (or the course was already held)
    t, sbp = ds["time"].values, ds["systolic_bp"].values
    first_hold = next(e for e in log if e["status"] == "held")
    assert np.interp(first_hold["time"], t, sbp) < 100
    # amount: 600,000 IU/kg of the label x the patient's body weight, in the drug's IU
    weight = float(ds["parameter_value"].sel(parameter="body_weight"))
    np.testing.assert_allclose(ds["dose_amount"].values, 600_000 * weight)
    assert ds["dose_amount"].attrs["units"] == "IU"
    # events fired: one row per firing, the same as the event log
    assert ds["firing_event"].dims == ("firing",)
    fired = list(zip(ds["firing_time"].values.tolist(), ds["firing_event"].values.tolist()))
    assert fired == [tuple(x) for x in json.loads(ds.attrs["events_fired"])]
    # grades per term, as the summary computes them from the readouts
    grades = summary["toxicity"]
    assert ds["toxicity_term"].values.tolist() == list(grades)
    assert ds["toxicity_worst_grade"].values.tolist() == [g["max_grade"] for g in grades.values()]
    hypo = ds.sel(toxicity_term="Hypotension")
    assert int(hypo["toxicity_worst_grade"]) >= 3 and str(hypo["toxicity_readout"].values) == "systolic_bp"
    assert float(hypo["toxicity_worst_grade_time"]) == grades["Hypotension"]["time_of_max"]


def test_friberg_records_support_doses_as_not_given_and_the_round_trip_keeps_them(tmp_path):
    ds, summary = ilsim.run("friberg-docetaxel", tmp_path / "f", report=False)
    assert Counter(ds["dose_status"].values.tolist()) == {"given": 1, "not given": 24}  # 10 filgrastim + 14 oprelvekin
    reasons = set(ds["dose_reason"].values[ds["dose_status"].values == "not given"].tolist())
    assert reasons == {"switched off (filgrastim_on < 0.5)", "switched off (oprelvekin_on < 0.5)"}
    assert float(ds["dose_amount"][0]) == 200.0 and str(ds["dose_units"][0].values) == "mg"
    with xr.open_dataset(tmp_path / "f" / "results.nc") as back:
        same_values(ds.drop_attrs() if hasattr(ds, "drop_attrs") else ds, back)
        for name in ("dose_status", "dose_reason", "firing_event", "toxicity_term", "parameter"):
            assert back[name].values.tolist() == ds[name].values.tolist()
        assert all(isinstance(v, (str, int, float, np.number)) for v in back.attrs.values())
    # the time series alone go to results.csv and the summary
    header = (tmp_path / "f" / "results.csv").read_text().splitlines()[0].split(",")
    assert len(header) == 1 + len(time_series(ds)) and not any(h.startswith("dose_") for h in header)
    assert set(summary["variables"]) == set(time_series(ds))


def test_support_switched_on_gives_its_doses_and_each_lands_in_the_depot():
    ds = ilsim.simulate("friberg-docetaxel", 400, points=801, parameters={"filgrastim_on": 1})
    log = ilsim.summarise(ds)["dose_log"]
    given = [e for e in log if e["drug"] == "filgrastim"]
    assert [e["status"] for e in given] == ["given"] * 10
    assert {e["status"] for e in log if e["drug"] == "oprelvekin"} == {"not given"}
    # oracle: a dose adds bioavailability x amount to the SC depot at its time (the depot holds nothing before it)
    first = next(i for i, e in enumerate(ds["dose_drug"].values) if e == "filgrastim")
    t0 = float(ds["dose_time"][first])
    pk = next(p for p in ilsim.load("friberg-docetaxel").pk if p.drug == "filgrastim")
    depot = float(ds["filgrastim_depot"].sel(time=t0 + 0.5))  # first-order absorption for 0.5 h since the dose
    np.testing.assert_allclose(depot * np.exp(pk.ka * 0.5), pk.bioavailability * float(ds["dose_amount"][first]),
                               rtol=1e-4)


def test_a_hold_on_the_patients_state_is_still_held_not_switched_off():
    m = ilsim.Model(name="hold", time_units="hour").add_parameter("toxicity", 0.0)
    m.pk = [{"drug": "drug", "volume": 1, "k10": 0.1}]
    m.doses = [{"drug": "drug", "route": "iv_bolus", "amount": 1, "units": "mg", "every": 8, "count": 3,
                "hold": {"when": "toxicity >= 3", "resume": "toxicity <= 1"}}]
    m.add_event("toxicity rises", at=4, set={"toxicity": 3})  # an event changes the parameter: not a switch
    ds = ilsim.simulate(m, 30)
    assert ds["dose_status"].values.tolist() == ["given", "held", "held"]


def test_every_variable_has_a_long_name_and_units():
    ds = ilsim.simulate("infection-resolution", 10)
    for name, var in ds.variables.items():
        assert var.attrs.get("long_name"), name
        assert "units" in var.attrs or name in ("parameter", "toxicity_term"), name
    assert ds["P"].attrs["long_name"] != "P"
    assert ds["time"].attrs["long_name"] == "time"


def test_uneven_output_times_are_not_written_as_an_even_grid():
    """A run with explicit uneven times cannot be repeated by t_end and points: the saved model keeps the model's
    own simulation settings instead of claiming a grid the run did not use."""
    from ilsim.io.results import run_settings

    assert run_settings(np.array([0.0, 1.0, 10.0]), {}) == {}
    assert run_settings(np.linspace(0.0, 5.0, 11), {}) == {"t_end": 5.0, "points": 11}
