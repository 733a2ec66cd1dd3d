"""Figures of a fit: the waterfall of the starts, data against the fitted model, the profiles."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a screen
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ilsim.fit.profile import THRESHOLD  # noqa: E402
from ilsim.fit.result import FitResult  # noqa: E402
from ilsim.report.safe_text import figure_text  # noqa: E402


def waterfall(result: FitResult, path: Path) -> Path:
    values = np.array([s["objective"] for s in result.ranked], float)
    fig, ax = plt.subplots(figsize=(6, 4))
    if len(values):
        ax.plot(np.arange(1, len(values) + 1), values - values[0] + 1.0, "o-", ms=3)
        ax.set_yscale("log")
    ax.set_xlabel("start (sorted)")
    ax.set_ylabel("objective - best + 1")
    ax.set_title(figure_text(f"{result.problem.name}: {len(values)} of {len(result.starts)} starts ended"))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def data_vs_fit(result: FitResult, fitted: np.ndarray, path: Path) -> Path:
    """One panel per observable: measurements (points) and the model at the best parameters (lines), per simulation."""
    problem = result.problem
    meas = problem.measurements
    spec = problem.model.spec
    units = {s.name: s.units for s in spec.species} | {o.name: o.units for o in spec.observables}
    n = len(problem.observables)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for o, obs in enumerate(problem.observables):
        ax = axes[o // cols][o % cols]
        for k, sim in enumerate(problem.simulations):
            rows_o = sim.rows[meas.observable[sim.rows] == o]
            if not len(rows_o):
                continue
            order = np.argsort(meas.time[rows_o])
            r = rows_o[order]
            color = f"C{k % 10}"
            ax.plot(meas.time[r], meas.value[r], "o", ms=3, color=color)
            ax.plot(meas.time[r], fitted[r], "-", color=color, label=figure_text(sim.condition.id))
        if len(problem.simulations) > 1 and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, title="condition", title_fontsize=7)
        ax.set_title(figure_text(obs.id), fontsize=9)
        ax.set_xlabel(figure_text(f"time [{spec.metadata.time_units}]"))
        if units.get(obs.id):  # a PEtab observable is a formula of its own: its units are not known here
            ax.set_ylabel(figure_text(units[obs.id]))
    for o in range(n, rows * cols):
        axes[o // cols][o % cols].axis("off")
    # the model is evaluated at the measurement times only (what the likelihood compares); the lines join those
    fig.suptitle("points: measurements · lines: the model at the best parameters, at the measurement times", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def profiles(result: FitResult, path: Path) -> Path:
    names = list(result.profiles)
    units = {p.name: p.units for p in result.problem.model.spec.parameters}  # PEtab's noise parameters are not there
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    for i, name in enumerate(names):
        ax = axes[i // cols][i % cols]
        prof = result.profiles[name]
        ax.plot(prof["x"], prof["delta_nllh"], "-o", ms=2)
        ax.axhline(THRESHOLD, color="grey", ls="--", lw=0.8)
        ax.axvspan(prof["lower"], prof["upper"], color="C1", alpha=0.15)
        ax.set_title(figure_text(name + (" (flat)" if prof["flat"] else "")), fontsize=9)
        ax.set_ylabel("Δ nllh")
        ax.set_xlabel(figure_text(_scaled(name, result.problem.parameters.scales[result.problem.parameters.estimated[i]],
                                          units.get(name))))
    for i in range(len(names), rows * cols):
        axes[i // cols][i % cols].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _scaled(name: str, scale: str, units: str | None) -> str:
    """The profile's axis: the parameter on its fitting scale, a logarithm taken of the value in its units."""
    if scale == "lin":
        return f"{name} [{units}]" if units else name
    if not units or units == "dimensionless":
        return f"{scale}({name})"
    return f"{scale}({name} / ({units}))" if any(c in units for c in "/* ") else f"{scale}({name} / {units})"
