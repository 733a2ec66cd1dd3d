"""Faults are declared modifiers: a mode sets its severity parameters, nothing else changes."""

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

import ilsim
from ilsim.cli import app


def model():
    m = ilsim.Model(name="stop-signal", time_units="day")
    m.add_species("E", 1.0, kind="cell").add_species("IL10", 0.0, kind="cytokine")
    m.add_parameter("receptor_loss", 0.0).add_parameter("blunting", 0.0)
    m.add_process("IL-10 secretion", "0.5*E", produces={"IL10": 1})
    m.add_process("IL-10 clearance", "IL10", consumes={"IL10": 1})
    m.add_process("effector contraction", "(1 - blunting)*(1 - receptor_loss)*IL10*E", consumes={"E": 1})
    m.faults = [
        {"mode": "stop-not-received", "parameters": ["receptor_loss"]},
        {"mode": "stop-ignored", "parameters": ["blunting"]},
    ]
    return m


def test_a_fault_sets_its_parameters_to_the_severity():
    ds = ilsim.simulate(model(), 10, faults={"stop-ignored": 0.4})
    assert json.loads(ds.attrs["parameters"])["blunting"] == 0.4
    assert json.loads(ds.attrs["parameters"])["receptor_loss"] == 0.0
    assert json.loads(ds.attrs["faults"]) == {"stop-ignored": 0.4}


def test_severity_zero_is_the_intact_model_and_effect_grows_with_severity():
    intact = ilsim.simulate(model(), 20)
    zero = ilsim.simulate(model(), 20, faults={"stop-not-received": 0.0})
    assert np.array_equal(intact["E"].values, zero["E"].values)
    finals = [float(ilsim.simulate(model(), 20, faults={"stop-not-received": s})["E"][-1]) for s in (0, 0.5, 0.9, 1)]
    assert finals == sorted(finals) and finals[-1] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        ({"stop-ignord": 1}, "unknown fault mode 'stop-ignord' (did you mean 'stop-ignored'?)"),
        ({"false-alarm": 1}, "declares no fault 'false-alarm'"),
        ({"stop-ignored": 1.5}, "must be between 0 and 1"),
        ({"stop-ignored": -0.1}, "must be between 0 and 1"),
    ],
)
def test_bad_fault_requests_are_refused(faults, message):
    with pytest.raises(ilsim.ModelError, match=re.escape(message)):
        ilsim.simulate(model(), 5, faults=faults)


def test_a_parameter_cannot_be_set_by_both_a_fault_and_set():
    with pytest.raises(ilsim.IlsimError, match=r"both by a fault \(faults\) and by parameters"):  # Python words
        ilsim.simulate(model(), 5, faults={"stop-ignored": 1}, parameters={"blunting": 0.2})


def test_fault_declaring_an_unknown_parameter_is_a_model_error():
    m = model()
    m.faults = [{"mode": "false-alarm", "parameters": ["self_reading"]}]
    with pytest.raises(ilsim.ModelError, match=r"faults\[0\].parameters\[0\]: unknown parameter 'self_reading'"):
        ilsim.compile(m)


def test_cli_run_and_compare_apply_faults(tmp_path):
    path = tmp_path / "m.yaml"
    from ilsim.model.load import dump_spec

    path.write_text(dump_spec(model()))
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(path), "--fault", "stop-ignored:0.5", "--t-end", "5", "--out",
                                 str(tmp_path / "run"), "--no-report"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["faults"] == {"stop-ignored": 0.5}
    result = runner.invoke(app, ["compare", str(path), "--fault", "stop-not-received", "--fault", "stop-ignored:0.5",
                                 "--t-end", "5", "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir()) == [
        ".ilsim-result", "compare.csv", "compare.json", "compare.png", "summary.json"]
    table = json.loads((tmp_path / "cmp" / "compare.json").read_text())["table"]
    assert table["E"]["stop-not-received"]["final"] == pytest.approx(1.0)
    assert table["E"]["intact"]["final"] < table["E"]["stop-ignored:0.5"]["final"] < 1.0
    bad = runner.invoke(app, ["run", str(path), "--fault", "stop-ignored:2", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "between 0 and 1" in bad.output and not (tmp_path / "x").exists()
