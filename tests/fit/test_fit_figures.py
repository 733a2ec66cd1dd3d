"""The data-against-fit figure names its axes' units: the model's time units and each observed species' units, as the
model file declares them (the oracle is the file itself)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from ilsim.fit import figures
from ilsim.fit.result import FitResult
from ilsim.fit.run import load_problem

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fitting" / "treg-fit.yaml"


def test_data_vs_fit_axes_carry_the_model_units(tmp_path, monkeypatch):
    problem = load_problem(EXAMPLE)
    spec = problem.model.spec
    drawn = []
    monkeypatch.setattr(figures.plt, "close", drawn.append)  # keep the figure to read its axes back
    figures.data_vs_fit(FitResult(problem, [], 1, 0.0, "fides"), problem.measurements.value, tmp_path / "fit.png")
    assert (tmp_path / "fit.png").is_file()
    species_units = {s.name: s.units for s in spec.species}
    axes = [ax for ax in drawn[0].axes if ax.get_title()]
    assert sorted(ax.get_title() for ax in axes) == sorted(o.id for o in problem.observables)
    for ax in axes:
        assert ax.get_xlabel() == f"time [{spec.metadata.time_units}]" == "time [day]"
        assert ax.get_ylabel() == species_units[ax.get_title()] and ax.get_ylabel()
    plt.close(drawn[0])


def test_profile_axes_name_the_scale_and_the_parameter_units():
    assert figures._scaled("muE", "log10", "1/day") == "log10(muE / (1/day))"
    assert figures._scaled("muE", "log10", "day") == "log10(muE / day)"
    assert figures._scaled("beta", "lin", "cells") == "beta [cells]"
    assert figures._scaled("sigma_R", "log", None) == "log(sigma_R)"
