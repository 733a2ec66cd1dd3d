"""Tissue figures: the colour scale of the field starts at zero and is shared by every panel, also when the field
stays at zero all run (matplotlib widened that empty range to -0.1..0.1: negative concentrations on the bar)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from ilsim.engines.tissue.engine import run
from ilsim.engines.tissue.setup import build
from ilsim.model.load import spec_from_dict
from ilsim.report import tissue as report


def _run(secretion: float):
    return run(build(spec_from_dict({
        "metadata": {"name": "quiet", "time_units": "minute"},
        "species": [{"name": "IL2", "kind": "cytokine", "units": "pM", "initial": 0},
                    {"name": "Th", "kind": "cell", "initial": 0}],
        "tissue": {"domain": {"dimensions": 2, "size": [100, 60], "voxel": 10},
                   "fields": [{"species": "IL2", "diffusion": 0.0}],
                   "agents": [{"species": "Th", "speed": 0, "secretion": [{"field": "IL2", "rate": secretion}],
                               "placement": {"kind": "random", "count": 3}}],
                   "dt": 0.5, "t_end": 2, "save_every": 0.5}})))


@pytest.mark.parametrize("secretion", [0.0, 5.0])
def test_snapshot_panels_share_one_scale_from_zero(tmp_path, monkeypatch, secretion):
    result = _run(secretion)
    top = max(float(s.fields.max()) for s in result.snapshots)
    assert (top > 0) == (secretion > 0)
    drawn = []
    monkeypatch.setattr(plt, "close", drawn.append)  # keep the figure to read its images back
    report.snapshot_figure(result, tmp_path / "snapshots.png", {"IL2": "pM"})
    images = [im for ax in drawn[0].axes for im in ax.get_images()]
    assert len(images) == 4
    for im in images:
        assert im.get_clim() == (0.0, top if top > 0 else 1.0)
    bar = [ax for ax in drawn[0].axes if ax.get_ylabel() == "IL2 (pM)"]
    assert len(bar) == 1 and bar[0].get_ylim()[0] == 0.0
    monkeypatch.undo()
    plt.close(drawn[0])



def test_time_series_puts_fields_of_different_units_on_different_axes(tmp_path, monkeypatch):
    """A figure mixes no units on an axis: fields in pM and in a.u. get one panel each, each labelled with its unit;
    a field with no declared unit says so rather than borrowing another's; fields sharing a unit share a panel."""
    def two_fields(alarm_units):
        alarm = {"name": "alarm", "kind": "cytokine", "initial": 0} | ({"units": alarm_units} if alarm_units else {})
        return run(build(spec_from_dict({
            "metadata": {"name": "two", "time_units": "minute"},
            "species": [{"name": "IL2", "kind": "cytokine", "units": "pM", "initial": 0}, alarm,
                        {"name": "Th", "kind": "cell", "initial": 0}],
            "tissue": {"domain": {"dimensions": 2, "size": [60, 60], "voxel": 10},
                       "fields": [{"species": "IL2", "diffusion": 0.0}, {"species": "alarm", "diffusion": 0.0}],
                       "agents": [{"species": "Th", "speed": 0, "secretion": [{"field": "IL2", "rate": 1.0}],
                                   "placement": {"kind": "random", "count": 2}}],
                       "dt": 0.5, "t_end": 1, "save_every": 0.5}})))

    drawn = []
    monkeypatch.setattr(plt, "close", drawn.append)
    for alarm_units, labels in [("a.u.", ["cells", "concentration (pM)", "concentration (a.u.)"]),
                                (None, ["cells", "concentration (pM)", "level (no unit declared)"]),
                                ("pM", ["cells", "concentration (pM)"])]:
        units = {"IL2": "pM"} | ({"alarm": alarm_units} if alarm_units else {})
        report.timeseries_figure(two_fields(alarm_units), tmp_path / "timeseries.png", units)
        figure = drawn.pop()
        assert [ax.get_ylabel() for ax in figure.axes] == labels
        plt.close(figure)
