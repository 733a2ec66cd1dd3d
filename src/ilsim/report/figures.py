"""Figures of a run: one panel per group of variables, log axes where values span decades."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a screen
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from ilsim.report.safe_text import figure_text  # noqa: E402

DECADES_FOR_LOG = 3.0  # a panel whose positive values span more than this many decades gets a log axis


def groups(ds: xr.Dataset) -> dict[str, list[str]]:
    """Variables by their 'group' attribute (species default to their kind), in order of appearance."""
    out: dict[str, list[str]] = {}
    for name, var in ds.data_vars.items():
        if var.dims != ("time",) or var.attrs.get("role") == "parameter":  # the run's records have their own dims
            continue
        out.setdefault(var.attrs.get("group") or "other", []).append(name)
    return out


def wants_log(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    positive = finite[finite > 0]
    if positive.size < 2 or np.any(finite < 0):
        return False
    return math.log10(positive.max() / positive.min()) > DECADES_FOR_LOG


def plot_run(ds: xr.Dataset, path: Path, title: str | None = None) -> Path:
    """Write one PNG with a panel per group; return its path."""
    heading = title or ds.attrs.get("title", "")
    if ds.attrs.get("outcome"):
        heading += f"\noutcome: {ds.attrs['outcome']}"
    return plot_compare({"": ds}, path, heading)


def plot_compare(runs: dict[str, xr.Dataset], path: Path, title: str | None = None) -> Path:
    """Overlay runs of one model (e.g. intact and faulted): a panel per group, a line style per run."""
    first = next(iter(runs.values()))
    panels = groups(first)
    cols = 1 if len(panels) == 1 else 2
    rows = math.ceil(max(len(panels), 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 3.3 * rows), squeeze=False)
    styles = ["-", "--", ":", "-."]
    t_units = first.attrs.get("time_units", "")
    for ax, (group, names) in zip(axes.flat, panels.items()):
        stacked = []
        for k, ds in enumerate(runs.values()):
            for j, v in enumerate(names):
                units = ds[v].attrs.get("units", "")
                name = figure_text(f"{v} [{units}]" if units else v) if k == 0 else None  # colour = variable, style = run
                ax.plot(ds["time"].values, ds[v].values, styles[k % len(styles)], color=f"C{j}", lw=1.3, label=name)
                stacked.append(ds[v].values)
        values = np.concatenate(stacked)
        if wants_log(values):
            ax.set_yscale("log")
            positive = values[np.isfinite(values) & (values > 0)]
            ax.set_ylim(bottom=max(positive.min(), positive.max() * 1e-12) / 2)
        ax.set_title(figure_text(group.replace("_", " ")))
        ax.set_xlabel(figure_text(f"time [{t_units}]"))
        ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if len(runs) > 1:  # one key for the line styles
        keys = [plt.Line2D([], [], color="black", ls=styles[k % len(styles)], label=figure_text(label))
                for k, label in enumerate(runs)]
        fig.legend(handles=keys, loc="lower center", ncol=len(runs), fontsize=8, frameon=False)
        fig.subplots_adjust(bottom=0.08)
    fig.suptitle(figure_text(title if title is not None else f"{first.attrs.get('title', '')}: " + " vs ".join(runs)),
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.04 if len(runs) > 1 else 0, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
