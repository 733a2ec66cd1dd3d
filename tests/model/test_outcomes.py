"""Outcome labels judged at the final instant or over a final window of output times (``held_for``)."""

import math

import numpy as np
import pytest
from pydantic import ValidationError

import ilsim
from ilsim.errors import ModelError
from ilsim.model.load import dump_spec, read_spec
from ilsim.model.outcomes import window

T_END = 7 * math.pi  # x = a sin t is 0 here; x(7 pi - s) = a sin s, so within the last s it peaked at a sin(min(s, pi/2))
GRID = np.linspace(0.0, T_END, 7001)


def sine(held_for=None):
    """x = a sin t (a species driven by a cos t), labelled 'settled low' if x < 0.5, else 'still swinging'."""
    m = ilsim.Model(name="sine").add_parameter("a", 1.0).add_species("x", 0.0, nonnegative=False)
    m.add_process("drive", "a*cos(t)", produces={"x": 1})
    m.add_outcome("settled low", "x < 0.5", held_for=held_for)
    m.add_outcome("still swinging", "x > -2")
    return m


def label(model, a=1.0, t_eval=GRID):
    return ilsim.simulate(model, t_eval=t_eval, parameters={"a": a}, rtol=1e-9, atol=1e-12).attrs["outcome"]


def test_the_window_is_the_output_times_of_the_last_held_for():
    t = np.linspace(0.0, 1000.0, 1001)
    assert window(t, None).tolist() == [1000]
    assert window(t, 0.0).tolist() == [1000]
    assert window(t, 200.0).tolist() == list(range(800, 1001))  # t = 800 belongs, whatever the rounding of linspace
    assert window(t, 0.5).tolist() == [1000]  # no output time between 999.5 and 1000 but the last
    assert window(t, 1000.0).tolist() == list(range(1001))  # the whole run
    assert window(t, 1000.1).size == 0  # longer than the run: nothing can show it held that long
    assert window(np.linspace(3.0, 4.0, 11), 1.0).tolist() == list(range(11))  # the run need not start at 0


def test_the_final_instant_and_a_window_give_different_labels_for_an_oscillation():
    assert label(sine()) == "settled low"  # x(7 pi) = 0
    assert label(sine(held_for=0.6)) == "still swinging"  # x = sin 0.6 = 0.56 at t = 7 pi - 0.6


@pytest.mark.parametrize(("held_for", "expected"), [(0.5, "settled low"), (0.53, "still swinging")])
def test_the_window_is_judged_exactly_at_its_known_edge(held_for, expected):
    """sin s < 0.5 for s < pi/6 = 0.5236: a window shorter than that holds, a longer one does not."""
    assert label(sine(held_for)) == expected


def test_a_small_amplitude_stays_low_over_any_window_that_fits_in_the_run():
    assert label(sine(held_for=T_END - 0.5), a=0.4) == "settled low"  # 0.4 sin t < 0.5 always
    assert label(sine(held_for=T_END), a=0.4) == "settled low"  # exactly the whole run


def test_a_run_shorter_than_the_window_cannot_show_it_so_the_next_label_applies():
    assert label(sine(held_for=T_END + 1.0), a=0.4) == "still swinging"
    short = ilsim.simulate(sine(held_for=30.0), 20.0, parameters={"a": 0.4})
    assert short.attrs["outcome"] == "still swinging"


def test_without_a_catch_all_no_label_holding_is_undetermined():
    m = ilsim.Model(name="sine").add_parameter("a", 1.0).add_species("x", 0.0, nonnegative=False)
    m.add_process("drive", "a*cos(t)", produces={"x": 1}).add_outcome("settled low", "x < 0.5", held_for=1.0)
    assert label(m) == "undetermined"


def test_a_window_reads_parameters_that_events_switch_at_each_output_time():
    """'k < 1' holds at the end, but an event set k = 0 only at t = 9: it did not hold over the last 2."""
    m = ilsim.Model(name="switch").add_parameter("k", 5.0).add_species("x", 1.0)
    m.add_process("decay", "k*x", consumes={"x": 1}).add_event("off", at=9.0, set={"k": 0})
    m.add_outcome("switched off for a while", "k < 1", held_for=2.0).add_outcome("other", "k >= 0")
    assert ilsim.simulate(m, 10.0, points=11).attrs["outcome"] == "other"
    assert ilsim.simulate(m, 12.0, points=13).attrs["outcome"] == "switched off for a while"


def test_kirschner_panetta_tumour_in_a_trough_is_not_cleared():
    """c = 0.02: the tumour is below one cell at day 5000 (a trough of its 242-day oscillation) and regrows."""
    ds = ilsim.simulate("kirschner-panetta-1998", 5000, parameters={"c": 0.02})
    assert float(ds["T"][-1]) < 1 and float(ds["T"].sel(time=slice(4700, 5000)).max()) > 1e4
    assert ds.attrs["outcome"] == "undetermined"
    therapy = ilsim.simulate("kirschner-panetta-1998", 1000, parameters={"c": 0.02, "s1": 600})
    assert therapy.attrs["outcome"] == "tumour cleared"  # T < 1 from day 330.8 on


def test_a_model_file_with_a_window_loads_runs_and_dumps_back(tmp_path):
    path = tmp_path / "sine.yaml"
    path.write_text("""
metadata: {name: sine}
parameters: [{name: a, value: 1.0}]
species: [{name: x, initial: 0, nonnegative: false}]
processes: [{name: drive, rate: "a*cos(t)", produces: {x: 1}}]
outcomes:
  - {label: settled low, when: "x < 0.5", held_for: 0.6}
  - {label: still swinging, when: "x > -2"}
""")
    spec = read_spec(path)
    assert spec.outcomes[0].held_for == 0.6 and spec.outcomes[1].held_for is None
    assert spec.content_hash() == sine(held_for=0.6).content_hash()
    assert label(spec) == "still swinging"
    copy = tmp_path / "copy.yaml"
    copy.write_text(dump_spec(spec))
    assert "held_for: 0.6" in copy.read_text() and read_spec(copy).content_hash() == spec.content_hash()


@pytest.mark.parametrize("value", ["-1", ".inf", ".nan", "-.inf", "long"])
def test_a_bad_window_in_a_model_file_names_the_file_and_field(tmp_path, value):
    path = tmp_path / "bad.yaml"
    path.write_text(f"metadata: {{name: m}}\nspecies: [{{name: x, initial: 1}}]\n"
                    f"outcomes: [{{label: a, when: 'x > 0'}}, {{label: b, when: 'x < 0', held_for: {value}}}]\n")
    with pytest.raises(ModelError) as err:
        read_spec(path)
    text = str(err.value)
    assert "bad.yaml" in text and "outcomes[1].held_for" in text
    assert ("finite, non-negative time" in text) if value != "long" else ("expected a number" in text)


def test_a_bad_window_in_python_names_the_call():
    with pytest.raises(ModelError, match=r"add_outcome\('low'\).*held_for.*finite, non-negative.*-2"):
        ilsim.Model(name="m").add_outcome("low", "x < 1", held_for=-2)
    m = sine()
    with pytest.raises(ValidationError, match="finite, non-negative"):  # assignments are validated too
        m.outcomes[0].held_for = float("nan")
