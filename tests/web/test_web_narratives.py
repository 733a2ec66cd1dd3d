"""Every built-in scenario has teaching notes, and every curve, fault and place they name is in the model."""

from __future__ import annotations

import pytest

pytest.importorskip("dash", reason="the web explorer needs the 'web' extra (dash, plotly)")

import ilsim  # noqa: E402
from ilsim.errors import ModelError  # noqa: E402
from ilsim.web import narratives  # noqa: E402


@pytest.mark.parametrize("name", ilsim.builtin_models())
def test_each_builtin_scenario_has_notes_naming_only_its_own_curves_and_faults(name):
    note = narratives.narrative(name)
    assert note is not None, f"web/narratives/{name}.yaml is missing"
    assert note.interleukin.strip() and note.curves and note.look_for
    ds = ilsim.simulate(name)  # the oracle: the curves a run of the model actually has
    curves = {v for v in ds.data_vars if ds[v].dims == ("time",)}
    assert note.named_curves() <= curves, f"not in {name}: {sorted(note.named_curves() - curves)}"
    assert set(note.faults) <= {f.mode for f in ilsim.load(name).faults}


def test_a_note_with_an_unknown_field_is_refused_naming_the_file_and_field(tmp_path, monkeypatch):
    (tmp_path / "x.yaml").write_text("interleukin: IL-2\ncurves: {I: IL-2}\nlook_at: []\n")
    monkeypatch.setattr(narratives, "FOLDER", tmp_path)
    narratives.narrative.cache_clear()
    try:
        with pytest.raises(ModelError) as err:
            narratives.narrative("x")
        (problem,) = err.value.problems
        assert problem.field == "look_at" and problem.source == str(tmp_path / "x.yaml")
    finally:
        narratives.narrative.cache_clear()
