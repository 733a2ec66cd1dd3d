"""include: one model built from others, with clashes and mismatches refused."""

import pytest

import ilsim

BASE = """
metadata: {name: base, time_units: hour}
species:
  - {name: X, initial: 1}
parameters:
  - {name: k, value: 0.5}
processes:
  - {name: loss, rate: "k*X", consumes: {X: 1}}
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_an_included_model_runs_inside_the_including_one(tmp_path):
    _write(tmp_path, "base.yaml", BASE)
    top = _write(tmp_path, "top.yaml", """
metadata: {name: top, time_units: hour}
include: [base.yaml]
species:
  - {name: Y, initial: 0}
processes:
  - {name: gain, rate: "k*X", produces: {Y: 1}}
""")
    model = ilsim.compile(top)
    assert model.species == ("X", "Y")
    ds = ilsim.simulate(model, 20)
    assert float(ds["X"][-1] + ds["Y"][-1]) == pytest.approx(1.0, rel=1e-6)  # what X loses, Y gains


@pytest.mark.parametrize(
    ("top", "field", "message"),
    [
        ("metadata: {name: t, time_units: hour}\ninclude: [nowhere.yaml]\n", "include[0]", "no model file"),
        ("metadata: {name: t, time_units: day}\ninclude: [base.yaml]\n", "include[0]", "must share time units"),
        ("metadata: {name: t, time_units: hour}\ninclude: [base.yaml]\nparameters:\n  - {name: k, value: 1}\n",
         "parameters[0].name", "also defined in an included model"),
        ("metadata: {name: t, time_units: hour}\ninclude: [top.yaml]\n", "include[0]", "includes itself"),
    ],
)
def test_include_mistakes_are_refused(tmp_path, top, field, message):
    _write(tmp_path, "base.yaml", BASE)
    path = _write(tmp_path, "top.yaml", top)
    with pytest.raises(ilsim.ModelError) as info:
        ilsim.compile(path)
    assert any(p.field == field and message in p.message for p in info.value.problems), info.value.problems


def test_il2_therapy_shrinks_the_tumour_and_is_graded_in_the_same_run():
    ds = ilsim.simulate("kirschner-panetta-il2-therapy")
    tumour = ds["T"].values
    assert tumour.min() < 0.6 * tumour[0]  # the courses of IL-2 drive effector cells that shrink the tumour
    assert float(ds["I"].max()) > 1e6  # the aldesleukin input reaches the tumour site
    summary = ilsim.summarise(ds)
    assert {"Hypotension", "Fever"} <= set(summary["toxicity"])  # side effects of the same schedule, graded
    assert sum(e["status"] == "given" for e in summary["dose_log"]) >= 14


def test_a_mistake_inside_an_included_model_names_that_file(tmp_path):
    _write(tmp_path, "base.yaml", BASE.replace('rate: "k*X"', 'rate: "kk*X"'))
    top = _write(tmp_path, "top.yaml", "metadata: {name: t, time_units: hour}\ninclude: [base.yaml]\n")
    with pytest.raises(ilsim.ModelError) as info:
        ilsim.compile(top)
    problem = info.value.problems[0]
    assert problem.source.endswith("base.yaml") and problem.field == "processes[0].rate"


def test_including_the_same_names_twice_is_refused(tmp_path):
    _write(tmp_path, "base.yaml", BASE)
    _write(tmp_path, "copy.yaml", BASE.replace("name: base", "name: copy"))
    top = _write(tmp_path, "top.yaml", "metadata: {name: t, time_units: hour}\ninclude: [base.yaml, copy.yaml]\n")
    with pytest.raises(ilsim.ModelError, match="defined in more than one included model"):
        ilsim.compile(top)


def test_a_built_in_model_includes_built_in_models_even_with_a_same_named_folder_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "aldesleukin").mkdir()
    assert "aldesleukin_central" in ilsim.compile("kirschner-panetta-il2-therapy").species
