"""Figures of a run, designed to be read: one unit per axis, log or linear chosen per axis, clinical thresholds,
peaks and nadirs marked, distinct colours, legends beside the data. docs/figures.md says what a reader sees.

Panels: first those the model declares (``plots:``), then one per group of variables (their ``group``, or
their kind), split by unit and, within a unit, by magnitude (a count near 5 and one near 250 on one linear
axis hide each other's dips). Variables that are 0 throughout are not drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a screen
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from ilsim.io.results import time_series  # noqa: E402
from ilsim.report.safe_text import figure_text  # noqa: E402
from ilsim.therapy.ctcae import grade_thresholds  # noqa: E402

DECADES_FOR_LOG = 3.0  # values (or, over time, a rise or fall) spanning more decades than this get a log axis
LOG_FLOOR = 1e-6  # on a log axis, values below max * LOG_FLOOR are not drawn (solver noise near 0 is no signal)
MAGNITUDE_SPLIT = 10.0  # within one unit, variables whose peaks differ by more than this go to separate panels
# (10, not 30: a 4 kg weight gain beside a 74 kg body weight, 16-fold apart, was a flat line at the bottom)
ANNOTATE_UP_TO = 3  # panels with at most this many lines get their peaks and nadirs written out (others: marked)
COLOURS = plt.get_cmap("tab10").colors  # qualitative: ten distinct colours; line styles tell more lines apart
STYLES = ["-", "--", ":", "-."]


@dataclass
class Panel:
    title: str
    names: list[str]
    units: str
    scale: str = "auto"  # auto, linear or log
    thresholds: list[tuple[float, str]] = field(default_factory=list)


def groups(ds: xr.Dataset) -> dict[str, list[str]]:
    """Variables by their 'group' attribute (species default to their kind), in order of appearance."""
    out: dict[str, list[str]] = {}
    for name, var in ds.data_vars.items():
        if var.dims != ("time",) or var.attrs.get("role") == "parameter":  # the run's records have their own dims
            continue
        out.setdefault(var.attrs.get("group") or "other", []).append(name)
    return out


def wants_log(values: np.ndarray) -> bool:
    """Whether a set of values (a histogram's, a cohort's) is best read on a log axis: none negative, and the positive
    ones at or above the floor (max * LOG_FLOOR) span more than DECADES_FOR_LOG decades."""
    finite = values[np.isfinite(values)]
    positive = finite[finite > 0]
    if positive.size < 2 or np.any(finite < 0):
        return False
    shown = positive[positive >= positive.max() * LOG_FLOOR]
    return math.log10(shown.max() / shown.min()) > DECADES_FOR_LOG


def series_wants_log(y: np.ndarray, floor: float) -> bool:
    """Whether a time course is best read on a log axis: it grows from its initial value, or falls from it, by
    more than DECADES_FOR_LOG decades (values below ``floor`` not counted).

    A transient that rises from 0 and returns to 0 (a cytokine burst, one course of a drug after another)
    stays linear: on a log axis its peak would be squeezed into the top decade and its return drawn as a
    long slope of no interest."""
    y = np.where(np.isfinite(y) & (y >= floor), y, np.nan)
    if np.all(np.isnan(y)) or floor <= 0:
        return False
    ratio = 10.0 ** DECADES_FOR_LOG
    top = np.nanmax(y)
    if np.isfinite(y[0]) and top / y[0] > ratio:  # grows from its initial value (a tumour from one cell)
        return True
    return bool(np.nanargmax(y) == 0 and top / np.nanmin(y) > ratio)  # falls from it (antigen cleared)


def _peak(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.max()) if finite.size else 0.0


def _by_magnitude(names: list[str], peaks: dict[str, float]) -> list[list[str]]:
    """Split names (of one unit) so that within each part the largest peak is at most MAGNITUDE_SPLIT times the
    smallest; each part keeps the model's order."""
    parts: list[list[str]] = []
    top = None
    for name in sorted(names, key=lambda n: -peaks[n]):
        if top is None or peaks[name] * MAGNITUDE_SPLIT < top:
            parts.append([])
            top = peaks[name]
        parts[-1].append(name)
    order = {n: i for i, n in enumerate(names)}
    return [sorted(part, key=order.__getitem__) for part in parts]


def _ctcae_lines(model, name: str, units: str) -> list[tuple[float, str]]:
    """CTCAE grade boundaries of the terms graded from variable ``name`` (the model's ``toxicity:``)."""
    lines: dict[float, list[int]] = {}
    for entry in model.spec.toxicity if model is not None else ():
        if entry.readout != name:
            continue
        try:
            for grade, value in grade_thresholds(entry.term, scale=entry.scale, lln=entry.lln, units=units):
                lines.setdefault(value, []).append(grade)
        except Exception:  # noqa: BLE001  units the grading would refuse: the compiler has reported them
            continue
    return [(v, "grade " + "-".join(map(str, sorted({min(g), max(g)}))))
            for v, g in sorted(lines.items())]


def panels(ds: xr.Dataset, model=None, others: tuple[xr.Dataset, ...] = ()) -> list[Panel]:
    """The panels of a run's figure: the model's ``plots:`` first, then its groups split by unit and magnitude
    (peaks over ``ds`` and ``others``, the other runs of a comparison: a variable 0 in one run only is drawn)."""
    series = time_series(ds)  # the run's records (doses, firings, grades) have dimensions of their own
    units = {name: ds[name].attrs.get("units", "") for name in series}
    peaks = {name: max(_peak(run[name].values) for run in (ds, *others) if name in run) for name in series}
    out = []
    for declared in (model.spec.plots if model is not None else ()):
        names = [n for n in declared.variables if n in series]
        if names:
            out.append(Panel(declared.title, names, units[names[0]], declared.scale,
                             [(t.value, t.label) for t in declared.thresholds]))
    for group, names in groups(ds).items():
        by_unit: dict[str, list[str]] = {}
        for name in names:
            if peaks[name] > 0:  # a variable 0 (or undefined) throughout says nothing on a figure
                by_unit.setdefault(units[name], []).append(name)
        for unit, same in by_unit.items():
            out += [Panel(group.replace("_", " "), part, unit) for part in _by_magnitude(same, peaks)]
    for panel in out:
        for name in panel.names:
            panel.thresholds += _ctcae_lines(model, name, panel.units)
    return out


def plot_run(ds: xr.Dataset, path: Path, title: str | None = None, model=None) -> Path:
    """Write one PNG with a panel per declared plot and per group and unit; return its path.
    ``model`` (the CompiledModel) gives the declared panels and the CTCAE thresholds."""
    heading = title or ds.attrs.get("title", "")
    if ds.attrs.get("outcome"):
        heading += f"\noutcome: {ds.attrs['outcome']}"
    return plot_compare({"": ds}, path, heading, model=model)


def plot_compare(runs: dict[str, xr.Dataset], path: Path, title: str | None = None, model=None) -> Path:
    """Overlay runs of one model (e.g. intact and faulted): a panel per group and unit, a line style per run,
    each run's outcome in the key."""
    first = next(iter(runs.values()))
    fig = draw(runs, panels(first, model, tuple(runs.values())[1:]))
    if len(runs) > 1:  # one key for the runs, with each run's outcome
        keys = [plt.Line2D([], [], color="black", ls=STYLES[k % len(STYLES)], lw=_width(k, len(runs)),
                           label=figure_text(label + (f": {ds.attrs['outcome']}" if ds.attrs.get("outcome") else "")))
                for k, (label, ds) in enumerate(runs.items())]
        fig.legend(handles=keys, loc="outside lower center", ncol=min(len(runs), 3), fontsize=8, frameon=False)
    fig.suptitle(figure_text(title if title is not None else f"{first.attrs.get('title', '')}: " + " vs ".join(runs)),
                 fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _width(k: int, n: int) -> float:
    """The first run is drawn widest and each later one narrower on top, so identical curves stay visible."""
    return 1.4 if n == 1 else 1.0 + 1.8 * (n - 1 - k) / (n - 1)


def draw(runs: dict[str, xr.Dataset], shown: list[Panel]):
    """A figure with one axis per panel, every run on each; returns the matplotlib Figure."""
    first = next(iter(runs.values()))
    cols = 1 if len(shown) <= 1 else 2
    rows = math.ceil(max(len(shown), 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7.6 * cols, 3.0 * rows + 0.8), squeeze=False, layout="constrained")
    t_units = first.attrs.get("time_units", "")
    for ax, panel in zip(axes.flat, shown):
        _draw_panel(ax, panel, runs, t_units)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    return fig


def _draw_panel(ax, panel: Panel, runs: dict[str, xr.Dataset], t_units: str) -> None:
    values = np.concatenate([ds[v].values for ds in runs.values() for v in panel.names])
    finite = values[np.isfinite(values)]
    positive = finite[finite > 0]
    floor = positive.max() * LOG_FLOOR if positive.size else 0.0
    auto = panel.scale == "auto" and not np.any(finite < 0) and any(
        series_wants_log(ds[v].values, floor) for ds in runs.values() for v in panel.names)
    log = (panel.scale == "log" or auto) and positive.size > 0
    floor = floor if log else -np.inf
    n = len(runs)
    for k, ds in enumerate(runs.values()):
        t = ds["time"].values
        for j, name in enumerate(panel.names):
            y = ds[name].values.astype(float)
            if log:
                y = np.where(y >= floor, y, np.nan)  # below the floor: not drawn
            style = STYLES[k % len(STYLES)] if n > 1 else STYLES[(j // len(COLOURS)) % len(STYLES)]
            ax.plot(t, y, style, color=COLOURS[j % len(COLOURS)], lw=_width(k, n),
                    label=figure_text(name) if k == 0 else None)
            if k == 0:
                _mark_extremes(ax, t, y, COLOURS[j % len(COLOURS)], len(panel.names) <= ANNOTATE_UP_TO, t_units)
    if log:
        ax.set_yscale("log")
        shown = positive[positive >= floor]
        ax.set_ylim(max(floor, shown.min() / 2), shown.max() * 2)
    lo, hi = ax.get_ylim()
    span = hi - lo if not log else 0.0
    drawn = [(v, label) for v, label in panel.thresholds
             if ((floor <= v <= hi * 10) if log else (lo - span <= v <= hi + span))]  # one far off would squash the data
    if drawn and not log:  # every line drawn lies inside the axis, with a margin
        values_drawn = [v for v, _ in drawn]
        ax.set_ylim(min(lo, min(values_drawn) - 0.05 * span), max(hi, max(values_drawn) + 0.05 * span))
    for value, label in drawn:
        ax.axhline(value, color="0.3", ls=(0, (4, 3)), lw=0.9, zorder=1)
        ax.text(0.995, value, figure_text(label), transform=blended_transform_factory(ax.transAxes, ax.transData),
                ha="right", va="bottom", fontsize=7, color="0.25")
    ax.set_title(figure_text(panel.title), fontsize=10)
    ax.set_ylabel(figure_text(panel.units or "dimensionless"), fontsize=9)
    ax.set_xlabel(figure_text(f"time [{t_units}]"), fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, borderaxespad=0)
    ax.grid(alpha=0.3)


def _mark_extremes(ax, t: np.ndarray, y: np.ndarray, colour, write: bool, t_units: str) -> None:
    """Mark an interior peak (^) and nadir (v) of a line; with ``write``, their value and time too."""
    if not np.isfinite(y).any():
        return
    hi, lo = float(np.nanmax(y)), float(np.nanmin(y))
    if hi - lo <= 1e-3 * max(abs(hi), abs(lo)):  # flat: no extreme worth a mark
        return
    for i, marker, offset in ((int(np.nanargmax(y)), "^", 6), (int(np.nanargmin(y)), "v", -12)):
        if not (0 < i < len(y) - 1 and np.isfinite(y[i - 1]) and np.isfinite(y[i + 1])):
            continue  # at an end of the run or of the drawn curve: no turning point
        ax.plot(t[i], y[i], marker, color=colour, ms=6, mec="black", mew=0.5, zorder=4)
        if write:
            ax.annotate(figure_text(f"{y[i]:.3g} at {t[i]:.4g} {t_units}"), (t[i], y[i]), textcoords="offset points",
                        xytext=(4, offset), fontsize=7, color=colour)
