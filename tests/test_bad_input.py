"""User mistakes in model files: each gives one clear message naming the file, the field, what is
wrong and (for unknown names) the closest known name; `ilsim validate` exits 2 without a traceback.

Each model here is the valid MINIMAL model of conftest.py with one thing broken.
"""

from __future__ import annotations

import re

import pytest

import ilsim
from ilsim.errors import Problem
from ilsim.io.results import atomic_folder
from ilsim.model import expressions as ex

# ------------------------------------------------------------------ `ilsim validate`: one broken thing per model

# id: (replace in MINIMAL, append to it, fragments the message must contain)
CASES = {
    "unknown_species_in_consumes": (
        {"consumes: {IL2: 1}": "consumes: {IL_2: 1}"}, "",
        ["processes[1].consumes", "unknown species 'IL_2'", "did you mean 'IL2'?"]),
    "unknown_name_in_rate": (
        {'rate: "k_sec*Teff"': 'rate: "k_sec*Tef"'}, "",
        ["processes[3].rate", "unknown name 'Tef'", "did you mean 'Teff'?"]),
    "misspelt_parameter_in_rate": (
        {'rate: "k_sec*Teff"': 'rate: "k_sek*Teff"'}, "",
        ["processes[3].rate", "unknown name 'k_sek'", "did you mean 'k_sec'?"]),
    "unknown_event_target": (
        {}, "events:\n  - {name: dose, at: 1, add: {IL_2: 5}}\n",
        ["events[0].add.IL_2", "unknown species or parameter 'IL_2'", "did you mean 'IL2'?"]),
    "unknown_function": (
        {'rate: "k_sec*Teff"': 'rate: "k_sec*hil(Teff, 1, 2)"'}, "",
        ["processes[3].rate", "invalid expression", "unknown function 'hil'", "did you mean 'hill'?"]),
    "duplicate_species_name": (
        {"  - {name: Teff, kind: cell, initial: 10}\n":
         "  - {name: Teff, kind: cell, initial: 10}\n  - {name: Teff, initial: 0}\n"}, "",
        ["species[2].name", "duplicate name 'Teff'"]),
    "parameter_with_a_species_name": (
        {"  - {name: k_sec, value: 0.2}\n": "  - {name: k_sec, value: 0.2}\n  - {name: IL2, value: 3}\n"}, "",
        ["parameters[4].name", "duplicate name 'IL2'", "species"]),
    "missing_initial_value": (
        {"{name: Teff, kind: cell, initial: 10}": "{name: Teff, kind: cell}"}, "",
        ["species[1]", "missing initial value"]),
    "misspelt_field_intial": (
        {"{name: Teff, kind: cell, initial: 10}": "{name: Teff, kind: cell, intial: 10}"}, "",
        ["species[1].intial", "unknown field 'intial'", "did you mean 'initial'?"]),
    "misspelt_section_name": (
        {"simulation: {t_end": "simulaton: {t_end"}, "",
        ["simulaton", "unknown field 'simulaton'", "did you mean 'simulation'?"]),
    "misspelt_nested_field": (
        {"{t_end: 5, points: 11}": "{t_ned: 5, points: 11}"}, "",
        ["simulation.t_ned", "unknown field 't_ned'", "did you mean 't_end'?"]),
    "rate_is_a_list": (
        {'rate: "k_sec*Teff"': "rate: [k_sec, Teff]"}, "",
        ["processes[3].rate", "expected an expression"]),
    "rate_is_a_mapping": (
        {'rate: "k_sec*Teff"': "rate: {k_sec: Teff}"}, "",
        ["processes[3].rate", "expected an expression"]),
    "rate_is_a_truth_value": (
        {'rate: "k_sec*Teff"': "rate: true"}, "",
        ["processes[3].rate", "expected an expression"]),
    "rate_with_a_syntax_error": (
        {'rate: "k_sec*Teff"': 'rate: "k_sec*Teff*"'}, "",
        ["processes[3].rate", "invalid expression 'k_sec*Teff*'", "syntax error"]),
    "rate_is_a_condition": (
        {'rate: "k_sec*Teff"': 'rate: "Teff > k_sec"'}, "",
        ["processes[3].rate", "expected a value, got a condition"]),
    "rate_divided_by_literal_zero": (
        {'rate: "k_sec*Teff"': 'rate: "k_sec*Teff/0"'}, "",
        ["processes[3].rate", "invalid expression", "division by zero"]),
    "rate_divided_by_literal_zero_point_zero": (
        {'rate: "k_sec*Teff"': 'rate: "k_sec/(0.0)*Teff"'}, "",
        ["processes[3].rate", "division by zero"]),
    "initial_uses_a_species": (
        {"initial: IL2_0}": "initial: Teff}"}, "",
        ["species[0].initial", "'Teff' cannot be used here"]),
    "event_in_the_past": (
        {}, "events:\n  - {name: dose, at: -1, add: {IL2: 5}}\n",
        ["events[0].at", "in the past"]),
    "one_of_several_event_times_in_the_past": (
        {}, "events:\n  - {name: dose, at: [1, -0.5, 2], add: {IL2: 5}}\n",
        ["events[0].at", "-0.5", "in the past"]),
    "parameter_value_not_a_number": (
        {"{name: k_decay, value: 0.1}": "{name: k_decay, value: fast}"}, "",
        ["parameters[2].value", "expected a number", "fast"]),
    "stoichiometry_not_a_number": (
        {"produces: {Teff: 1}": "produces: {Teff: one}"}, "",
        ["processes[0].produces", "expected a number", "one"]),
    "t_end_not_a_number": (
        {"{t_end: 5, points": "{t_end: soon, points"}, "",
        ["simulation.t_end", "expected a number", "soon"]),
    "unknown_method_in_model_file": (
        {"points: 11}": "points: 11, method: RK54}"}, "",
        ["simulation.method", "RK54", "RK45"]),
    "species_name_reserved": (
        {"{name: IL2, kind: cytokine, initial: IL2_0}": "{name: exp, kind: cytokine, initial: IL2_0}"}, "",
        ["species[0].name", "reserved"]),
    "whitelist_escape_in_rate": (
        {'rate: "k_sec*Teff"': "rate: \"__import__('os').system('touch PWNED')\""}, "",
        ["processes[3].rate", "invalid expression"]),
    "malformed_yaml": (
        {"  - {name: k_decay, value: 0.1}": "  - {name: k_decay, value: 0.1"}, "",
        ["the '{' opened at line", "is not closed"]),
    "duplicate_top_level_key": (
        {}, "simulation: {t_end: 7}\n",
        ["malformed YAML", "'simulation' appears twice", "line 16"]),
    "duplicate_key_inside_an_entry": (
        {"{name: Teff, kind: cell, initial: 10}": "{name: Teff, kind: cell, initial: 10, initial: 5}"}, "",
        ["'initial' appears twice", "line 4"]),
}


@pytest.mark.parametrize("replace, append, fragments", list(CASES.values()), ids=list(CASES))
def test_validate_reports_the_file_the_field_and_what_is_wrong(write_model, cli, refused, replace, append, fragments,
                                                                tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a whitelist escape, were it evaluated, would leave PWNED here
    path = write_model(replace, append)
    result = cli("validate", path)
    refused(result, f"invalid {path}", str(path), *fragments)
    assert result.stdout == ""  # the reasons go to stderr
    assert not (tmp_path / "PWNED").exists()


def test_validate_accepts_the_unbroken_model(write_model, cli):
    path = write_model()
    result = cli("validate", path)
    assert result.exit_code == 0, result.output
    assert f"valid {path}" in result.stdout


def test_validate_lists_every_problem_with_its_own_field(write_model, cli, refused):
    path = write_model({'rate: "k_sec*Teff"': 'rate: "k_sec*Tef"', "consumes: {IL2: 1}": "consumes: {IL_2: 1}",
                        "{name: k_decay, value: 0.1}": "{name: k_decay, value: 0.1}\n  - {name: k_decay, value: 2}"})
    out = refused(cli("validate", path), "3 problem(s)")
    problem_lines = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert len(problem_lines) == 3, out
    assert all(line.startswith(f"{path}: ") for line in problem_lines), out
    for field in ("processes[3].rate", "processes[1].consumes", "parameters[3].name"):
        assert any(f": {field}: " in line for line in problem_lines), (field, out)


def test_validate_checks_every_file_and_fails_if_any_is_invalid(write_model, cli, refused):
    good = write_model(name="good.yaml")
    bad = write_model({'rate: "k_sec*Teff"': 'rate: "k_sec*Tef"'}, name="bad.yaml")
    result = cli("validate", good, bad, "reynolds-2006")
    refused(result, f"invalid {bad}", "processes[3].rate")
    assert f"valid {good}" in result.stdout and "valid reynolds-2006" in result.stdout


def _not_a_model(folder, what):
    """A path that is not a model file, made in `folder`."""
    path = folder / f"{what.replace(' ', '_')}.yaml"
    if what == "folder":
        path.mkdir()
    elif what == "empty file":
        path.write_text("")
    elif what == "top level is a list":
        path.write_text("- a\n- b\n")
    elif what == "not UTF-8":
        path.write_bytes(b"metadata: {name: caf\xe9}\n")
    elif what == "python object tag":
        path.write_text("metadata: !!python/object/apply:os.system [ls]\n")
    return path  # "missing file": not created


@pytest.mark.parametrize("what, fragments", [
    ("missing file", ["no such file"]),
    ("folder", ["folder, not a model file"]),
    ("empty file", ["the file is empty"]),
    ("top level is a list", ["mapping at the top level"]),
    ("not UTF-8", ["UTF-8"]),
    ("python object tag", ["malformed YAML"]),
])
def test_validate_refuses_files_that_are_not_models(tmp_path, cli, refused, what, fragments):
    path = _not_a_model(tmp_path, what)
    refused(cli("validate", path), f"{path}: ", *fragments)


def test_validate_suggests_the_closest_builtin_model(cli, refused):
    refused(cli("validate", "reynolds2006"), "reynolds2006", "no such file or built-in model",
            "did you mean 'reynolds-2006'?")


def test_show_refuses_a_broken_model_with_exit_2(write_model, cli, refused):
    path = write_model({"{name: Teff, kind: cell, initial: 10}": "{name: Teff, kind: cell, intial: 10}"})
    refused(cli("show", path), str(path), "species[1].intial", "did you mean 'initial'?")


# --------------------------------------------------------------------------- the expression whitelist

ESCAPES = [
    "__import__('os')",
    "__import__('os').system('touch PWNED')",
    "Teff.real",
    "().__class__.__bases__",
    "(lambda: 1)()",
    "lambda: 1",
    "[x for x in (1, 2)]",
    "{x: 1 for x in (1, 2)}",
    "max(x for x in (1, 2))",
    "Teff[0]",
    "(Teff := 1)",
    "'text'",
    "open('/etc/passwd')",
    "eval('1 + 1')",
    "__builtins__",
    "max(*Teff)",
    "exp(x=1)",
]


@pytest.mark.parametrize("text", ESCAPES)
def test_expression_outside_the_whitelist_is_an_invalid_expression(text):
    with pytest.raises(ilsim.ExpressionError, match="^invalid expression"):
        ex.parse(text)


@pytest.mark.parametrize("text", ["__import__('os').system('touch PWNED')", "Teff.real", "(lambda: 1)()", "Teff[0]",
                                  "[x for x in (1, 2)]"])
def test_compile_refuses_a_whitelist_escape_naming_the_field(text, write_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = ilsim.load(write_model({'rate: "k_sec*Teff"': f"rate: {text!r}"}))
    with pytest.raises(ilsim.ModelError) as info:
        ilsim.compile(spec)
    [problem] = info.value.problems
    assert problem.field == "processes[3].rate"
    assert problem.message.startswith("invalid expression")
    assert not (tmp_path / "PWNED").exists()


# --------------------------------------------------------------------------------- library level

def test_errors_are_ilsim_errors():
    for cls in (ilsim.ModelError, ilsim.ExpressionError, ilsim.SimulationError):
        assert issubclass(cls, ilsim.IlsimError)


def test_load_of_a_missing_file_names_it(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(ilsim.ModelError, match="no such file") as info:
        ilsim.load(missing)
    assert info.value.problems == [Problem("", "no such file", str(missing))]
    assert str(missing) in str(info.value)


def test_load_of_malformed_yaml_gives_the_line(write_model):
    path = write_model({"  - {name: k_decay, value: 0.1}": "  - {name: k_decay, value: 0.1"})
    with pytest.raises(ilsim.ModelError) as info:
        ilsim.load(path)
    [problem] = info.value.problems
    assert problem.source == str(path)
    assert re.match(r"line [89], column \d+$", problem.field), problem  # the brace opened on 8 is unclosed on 9
    assert re.match(r"the '\{' opened at line 8, column \d+ is not closed", problem.message), problem


def test_load_refuses_duplicate_keys(write_model):
    path = write_model({"initial: 10}": "initial: 10, initial: 5}"})
    with pytest.raises(ilsim.ModelError, match="'initial' appears twice"):
        ilsim.load(path)


def test_load_names_the_misspelt_field_and_the_right_one(write_model):
    path = write_model({"initial: 10}": "intial: 10}"})
    with pytest.raises(ilsim.ModelError) as info:
        ilsim.load(path)
    by_field = {p.field: p.message for p in info.value.problems}
    assert by_field["species[1].intial"] == "unknown field 'intial' (did you mean 'initial'?)"
    assert "missing initial value" in by_field["species[1]"]
    assert all(p.source == str(path) for p in info.value.problems)


def test_compile_collects_every_problem_with_file_and_field(write_model):
    path = write_model({'rate: "k_sec*Teff"': 'rate: "k_sec*Tef/0"', "consumes: {IL2: 1}": "consumes: {IL_2: 1}"},
                       append="events: [{name: dose, at: -2, add: {IL2: 1}}]\n")
    with pytest.raises(ilsim.ModelError) as info:
        ilsim.compile(path)
    problems = {p.field: p for p in info.value.problems}
    assert set(problems) == {"processes[3].rate", "processes[1].consumes", "events[0].at"}
    assert "division by zero" in problems["processes[3].rate"].message
    assert problems["processes[1].consumes"].message == "unknown species 'IL_2' (did you mean 'IL2'?)"
    assert "in the past" in problems["events[0].at"].message
    assert all(p.source == str(path) for p in problems.values())
    text = str(info.value)
    assert f"{path}: processes[1].consumes: unknown species 'IL_2'" in text


def test_simulate_refuses_an_unknown_parameter_with_a_suggestion(write_model):
    with pytest.raises(ilsim.ModelError, match=r"unknown parameter 'k_sek' \(did you mean 'k_sec'\?\)"):
        ilsim.simulate(write_model(), parameters={"k_sek": 1.0})


def test_simulate_refuses_a_non_numeric_parameter_value(write_model):
    with pytest.raises(ilsim.ModelError, match="value of 'k_sec' must be a number"):
        ilsim.simulate(write_model(), parameters={"k_sec": "fast"})


def test_simulate_refuses_an_unknown_method_with_a_suggestion(write_model):
    with pytest.raises(ilsim.IlsimError, match=r"unknown method 'RK54' \(did you mean 'RK45'\?\)"):
        ilsim.simulate(write_model(), method="RK54")


@pytest.mark.parametrize("method, option, value", [
    ("LSODA", "rtol", -1e-6), ("RK45", "rtol", -1e-6), ("LSODA", "atol", -1e-9), ("RK45", "atol", -1e-9),
    ("LSODA", "t_end", float("inf")),  # (not with RK45: an unchecked infinite t_end makes it integrate forever)
    ("LSODA", "t_end", float("nan")), ("LSODA", "points", 1),
])
def test_simulate_refuses_nonsense_numeric_options_before_integrating(write_model, method, option, value):
    with pytest.raises(ilsim.IlsimError, match=option):
        ilsim.simulate(write_model(), method=method, **{option: value})


def failure_time(message: str) -> float:
    match = re.search(r"\bt = ([-+0-9.eE]+)", message)
    assert match, f"no time in: {message}"
    return float(match.group(1))


@pytest.mark.parametrize("method, points", [("LSODA", None), ("LSODA", 3), ("BDF", 3), ("Radau", 21), ("RK45", 3)])
def test_integration_failure_names_the_time_and_the_variable(blowup_model, method, points):
    """x = 1/(1 - t) blows up at t = 1: the message says when (near t = 1) and that x is involved."""
    with pytest.raises(ilsim.SimulationError) as info:
        ilsim.simulate(blowup_model, method=method, points=points)
    message = str(info.value)
    assert message.startswith("integration failed at t = "), message
    assert 0.8 <= failure_time(message) <= 1.05, message
    assert "day" in message  # the model's time units
    assert re.search(r"variables involved: x = ", message), message


def test_atomic_folder_removes_its_temporary_folder_and_keeps_the_old_result(tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    (out / "summary.json").write_text("{}\n")  # an earlier ilsim result
    (out / ".ilsim-result").write_text('{"ilsim": "0", "files": ["summary.json"]}\n')  # the marker lists it
    with pytest.raises(RuntimeError, match="disk full"), atomic_folder(out) as tmp:
        (tmp / "results.csv").write_text("half")
        raise RuntimeError("disk full")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]
    assert sorted(p.name for p in out.iterdir()) == [".ilsim-result", "summary.json"]
    assert (out / "summary.json").read_text() == "{}\n"


def test_a_folder_with_a_summary_json_but_no_marker_is_never_replaced(tmp_path):
    out = tmp_path / "project"
    out.mkdir()
    (out / "summary.json").write_text("{}\n")  # someone else's summary.json
    (out / "thesis.tex").write_text("precious\n")
    with pytest.raises(ilsim.IlsimError, match="not an ilsim result folder"), atomic_folder(out):
        pass
    assert (out / "thesis.tex").read_text() == "precious\n"


# ------------------------------------------------------------------- the caller's words, plain YAML mistakes


def test_python_errors_name_the_arguments_and_the_cli_its_options(cli):
    with pytest.raises(ilsim.ModelError) as info:
        ilsim.simulate("kirschner-panetta-1998", 1, parameters={"nope": 1})
    assert "parameters: unknown parameter 'nope'" in str(info.value) and "--set" not in str(info.value)
    with pytest.raises(ilsim.ModelError, match="faults: unknown fault mode 'stop-ignord'"):
        ilsim.simulate("infection-resolution", 1, faults={"stop-ignord": 1})
    with pytest.raises(ilsim.IlsimError, match="^points must be at least 2"):
        ilsim.simulate("kirschner-panetta-1998", 1, points=1)
    result = cli("run", "kirschner-panetta-1998", "--set", "nope=1", "--out", "unused")
    assert result.exit_code == 2 and "--set: unknown parameter 'nope'" in result.output
    result = cli("run", "kirschner-panetta-1998", "--points", "1", "--out", "unused")
    assert result.exit_code == 2 and "--points must be at least 2" in result.output
    with pytest.raises(ilsim.IlsimError, match="^t_end must be a number"):
        ilsim.cohort("kirschner-panetta-1998", patients=2, t_end="soon")


@pytest.mark.parametrize("replace, field, message", [
    ({"  - {name: Teff, kind: cell, initial: 10}": "\t- {name: Teff, kind: cell, initial: 10}"},
     "line 4, column 1", "a tab; indent with spaces"),
    ({"  - {name: Teff, kind: cell, initial: 10}": "    - {name: Teff, kind: cell, initial: 10}"},
     "line 4", "indentation does not match the lines above"),
    ({"metadata: {name: mini, time_units: day}": "metadata: {name: mini, time_units: day}\nnotes: \"unfinished"},
     "line 2", "a quote is not closed"),  # the last quote of the file: no later quote closes it
])
def test_yaml_mistakes_are_named_in_plain_words_with_the_line(write_model, replace, field, message):
    path = write_model(replace, text='metadata: {name: mini, time_units: day}\nspecies:\n  - {name: IL2, initial: 1}\n'
                                     '  - {name: Teff, kind: cell, initial: 10}\nparameters: []\n')
    with pytest.raises(ilsim.ModelError) as info:
        ilsim.load(path)
    [problem] = info.value.problems
    assert (problem.source, problem.field) == (str(path), field), problem
    assert message in problem.message and "<block" not in problem.message
