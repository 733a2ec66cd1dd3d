"""Run figures designed for reading (docs/figures.md): each axis one unit, log axes floored, thresholds drawn,
the model's own `plots:` panels; and the console summary's nadirs and outcome rule."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

import ilsim
from ilsim.errors import ModelError
from ilsim.report.figures import LOG_FLOOR, draw, panels, plot_compare

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # matplotlib layout notes are not failures


@pytest.fixture(scope="module")
def runs():
    """Built-in scenarios whose figures the issue complained about (each runs in well under a second)."""
    out = {}
    for name in ("aldesleukin", "friberg-docetaxel", "kirschner-panetta-1998", "infection-resolution"):
        model = ilsim.compile(name)
        out[name] = (model, ilsim.simulate(model))
    return out


def drawn_axes(model, ds: xr.Dataset):
    """(axis, [variable names drawn on it]) for every axis of the run's figure."""
    fig = draw({"": ds}, panels(ds, model))
    found = []
    for ax in fig.axes:
        names = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
        if names:
            found.append((ax, names))
    return found


@pytest.mark.parametrize("name", ["aldesleukin", "friberg-docetaxel", "infection-resolution"])
def test_no_axis_mixes_units(runs, name):
    model, ds = runs[name]
    axes = drawn_axes(model, ds)
    assert axes
    for ax, names in axes:
        units = {ds[n].attrs["units"] for n in names}
        assert len(units) == 1, f"{ax.get_title()}: {names} in {units}"
        assert ax.get_ylabel() == units.pop()  # and the axis says which


def test_aldesleukin_blood_pressure_is_no_longer_one_panel_of_four_units(runs):
    model, ds = runs["aldesleukin"]
    by_var = {n: ax for ax, names in drawn_axes(model, ds) for n in names}
    # mmHg, a CTCAE grade, a 0/1 flag and 0..1 signals: four axes
    assert len({id(by_var[n]) for n in ("systolic_bp", "hypotension_grade", "vasopressors_indicated",
                                         "vasodilation")}) == 4


def test_neutrophils_and_platelets_do_not_share_an_axis(runs):
    # same unit (1e9 cells/L), peaks near 6 and near 280: one linear axis would flatten the neutrophil nadir
    model, ds = runs["friberg-docetaxel"]
    for _ax, names in drawn_axes(model, ds):
        assert not {"Circ", "Plt"} <= set(names)


def test_a_log_axis_stops_at_the_floor_and_draws_nothing_below_it(runs):
    model, ds = runs["kirschner-panetta-1998"]  # T falls from 1e5 to 1e-13 between its relapses
    logs = [(ax, names) for ax, names in drawn_axes(model, ds) if ax.get_yscale() == "log"]
    assert logs
    for ax, names in logs:
        top = max(float(np.nanmax(ds[n].values)) for n in names)
        floor = top * LOG_FLOOR
        assert ax.get_ylim()[0] >= floor
        for line in ax.get_lines():
            y = np.asarray(line.get_ydata(), dtype=float)
            assert not np.any(y[np.isfinite(y)] < floor)
    assert float(ds["T"].min()) < float(ds["T"].max()) * LOG_FLOOR  # the data do go below: the floor did the work


def test_a_transient_that_returns_to_zero_gets_a_linear_axis(runs):
    # the pathogen rises to ~14 and is cleared to 0: read on a linear axis, not one running down to 1e-12
    model, ds = runs["infection-resolution"]
    for ax, names in drawn_axes(model, ds):
        if names == ["P"]:
            assert ax.get_yscale() == "linear"
            assert ax.get_ylim()[1] < 2 * float(ds["P"].max())


def horizontal_lines(ax) -> set[float]:
    return {round(float(line.get_ydata()[0]), 9) for line in ax.get_lines()
            if len(set(np.asarray(line.get_ydata(), dtype=float))) == 1 and line.get_label().startswith("_")}


def test_declared_thresholds_are_drawn(runs):
    model, ds = runs["friberg-docetaxel"]
    declared = next(p for p in model.spec.plots if p.variables == ["Circ"])
    ax = next(ax for ax, names in drawn_axes(model, ds) if ax.get_title() == declared.title)
    assert {0.5, 1.0, 1.5} <= horizontal_lines(ax)  # neutropenia grade 4 at 0.5e9/L, as the YAML declares
    lo, hi = ax.get_ylim()
    assert lo < 0.5 < hi


def test_ctcae_grade_boundaries_of_a_graded_readout_are_drawn(runs):
    # aldesleukin grades Hypotension from systolic_bp: ctcae.yaml's surrogate thresholds 100/90/80/70 mmHg
    model, ds = runs["aldesleukin"]
    ax = next(ax for ax, names in drawn_axes(model, ds) if names == ["systolic_bp"])
    assert {100.0, 90.0, 80.0, 70.0} <= horizontal_lines(ax)


def test_every_builtin_declares_panels_that_are_drawn_first():
    for name, _title in ilsim.scenarios.describe():
        model = ilsim.compile(name)
        assert model.spec.plots, f"{name} declares no plots:"
        ds = ilsim.simulate(model, t_end=1.0, points=5)
        shown = panels(ds, model)
        assert [p.title for p in shown[:len(model.spec.plots)]] == [p.title for p in model.spec.plots]


def test_compare_keys_each_variant_with_its_outcome(tmp_path):
    model = ilsim.compile("infection-resolution")
    runs = {"intact": ilsim.simulate(model), "stop-ignored": ilsim.simulate(model, faults={"stop-ignored": 1.0})}
    outcomes = {label: ds.attrs["outcome"] for label, ds in runs.items()}
    assert len(set(outcomes.values())) == 2  # the fault changes the outcome
    import matplotlib.pyplot as plt

    captured = {}
    original = plt.Figure.savefig

    def keep(fig, *args, **kwargs):
        captured["texts"] = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
        return original(fig, *args, **kwargs)

    plt.Figure.savefig = keep
    try:
        plot_compare(runs, tmp_path / "c.png", model=model)
    finally:
        plt.Figure.savefig = original
    assert captured["texts"] == [f"{label}: {outcome}" for label, outcome in outcomes.items()]


PLOTS = """
plots:
  - {title: Both, variables: [IL2, Tefff]}
"""


def test_a_plot_of_an_unknown_variable_names_the_entry(write_model):
    with pytest.raises(ModelError) as err:
        ilsim.compile(str(write_model(append=PLOTS)))
    assert any(p.field == "plots[0].variables[1]" and "Tefff" in p.message and "Teff" in p.message
               for p in err.value.problems), err.value.problems


def test_a_plot_mixing_units_is_refused(write_model, cli, refused):
    path = write_model(replace={"{name: Teff, kind: cell, initial: 10}": "{name: Teff, kind: cell, initial: 10, units: cells}"},
                       append=PLOTS.replace("Tefff", "Teff"))
    refused(cli("validate", path), "plots[0].variables", "one unit", "'cells'", "'dimensionless'")


def test_console_summary_gives_the_nadir_and_the_outcome_rule(cli, tmp_path):
    out = tmp_path / "ald"
    result = cli("run", "aldesleukin", "--out", out)
    assert result.exit_code == 0, result.output
    ds = xr.open_dataset(out / "results.nc")
    bp = ds["systolic_bp"].values
    i = int(np.argmin(bp))  # the oracle: the saved trajectory itself
    row = next(line for line in result.stdout.splitlines() if line.split("│")[0].strip() == "systolic_bp")
    cells = [c.strip() for c in row.split("│")]
    assert cells[5:7] == [f"{bp[i]:.4g}", f"{float(ds['time'][i]):.4g}"]  # nadir, and its time
    assert (cells[5], cells[6]) == ("67.86", "74.75")  # the numbers
    ds.close()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["variables"]["systolic_bp"]["nadir_time"] == pytest.approx(74.75)

    result = cli("run", "infection-resolution", "--out", tmp_path / "ir")
    summary = json.loads((tmp_path / "ir" / "summary.json").read_text())
    assert summary["outcome"] == "resolved" and summary["outcome_rule"].startswith("if P < ")
    assert f"outcome: resolved  ({summary['outcome_rule']})" in result.stdout


def test_a_variable_zero_in_the_first_run_only_is_still_drawn_in_a_comparison():
    t = np.linspace(0, 1, 5)

    def run(values):
        return xr.Dataset({"x": ("time", np.asarray(values, dtype=float), {"units": "pM", "group": "g"}),
                           "y": ("time", np.ones(5), {"units": "pM", "group": "g"})}, coords={"time": t})

    untreated, treated = run(np.zeros(5)), run([0, 1, 2, 1, 0.5])
    assert [p.names for p in panels(untreated)] == [["y"]]  # alone, a line 0 throughout is left out
    assert [p.names for p in panels(untreated, None, (treated,))] == [["x", "y"]]
