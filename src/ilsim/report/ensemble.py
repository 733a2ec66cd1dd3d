"""The fan chart and the HTML report of a stochastic ensemble (``ilsim run MODEL --engine ssa``).

The fan chart shows, per panel, the median of each species and observable over the trajectories with the
25-75% and 5-95% bands and the mean dashed: where the average and the typical trajectory part (an inoculum
cleared in most runs, exploding in a few) the gap is visible at once.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a screen
import matplotlib.pyplot as plt  # noqa: E402
import xarray as xr  # noqa: E402

from ilsim.model.compile import CompiledModel  # noqa: E402
from ilsim.report import text  # noqa: E402
from ilsim.report.html import _STYLE, _image, _stoich, _table  # noqa: E402
from ilsim.report.safe_text import figure_text, html_text  # noqa: E402

MAX_PANELS = 12


def plot_fan(stats: xr.Dataset, path: Path, title: str | None = None) -> Path:
    """One panel per series: median, 25-75% and 5-95% bands, mean (from ``ilsim.ensemble.statistics``)."""
    names = list(stats.data_vars)[:MAX_PANELS]
    cols = min(3, max(1, len(names)))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    t = stats["time"].values
    for ax, name in zip(axes.flat, names):
        v = stats[name]
        ax.fill_between(t, v.sel(statistic="q05"), v.sel(statistic="q95"), color="tab:blue", alpha=0.18, lw=0,
                        label="5-95%")
        ax.fill_between(t, v.sel(statistic="q25"), v.sel(statistic="q75"), color="tab:blue", alpha=0.35, lw=0,
                        label="25-75%")
        ax.plot(t, v.sel(statistic="q50"), color="tab:blue", lw=1.6, label="median")
        ax.plot(t, v.sel(statistic="mean"), color="black", lw=1.0, ls="--", label="mean")
        units = v.attrs.get("units", "")
        ax.set_title(figure_text(name), fontsize=10)
        ax.set_ylabel(figure_text(units) if units and units != "dimensionless" else "")
        time_units = stats.attrs.get("time_units", "")
        ax.set_xlabel(f"time [{figure_text(time_units)}]" if time_units else "time")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8, frameon=False)
    n = stats.attrs.get("trajectories_used", "")
    fig.suptitle(figure_text(title or f"{stats.attrs.get('title') or stats.attrs.get('model_name', '')}: {n} trajectories"),
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render(model: CompiledModel, summary: dict, figures: list[Path]) -> str:
    meta = model.spec.metadata
    tu = summary.get("time_units", "")
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>{html_text(meta.title or meta.name)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{html_text(meta.title or meta.name)}: stochastic ensemble</h1>",
             f"<p class='muted'>{summary['trajectories']} trajectories, seed {summary['seed']}, method "
             f"{html_text(str(summary['method_used']))}, {_size(summary.get('system_size'))}; "
             f"{summary['trajectories_finished']} finished, {summary['failed_count']} flagged</p>"]
    parts += [_image(f) for f in figures]
    parts.append("<h2>At the end</h2>")
    parts.append(_table(["variable", "mean", "sd"], [[k, v["mean"], v["sd"]] for k, v in summary["final"].items()],
                        numeric={1, 2}))
    parts.append("<h2>Extinction (none left at the end; 95% Wilson interval)</h2>")
    parts.append(_table(["species", "probability", "interval", "trajectories"],
                        [[k, v["probability"], f"{v['ci95'][0]:.4g} - {v['ci95'][1]:.4g}", v["trajectories"]]
                         for k, v in summary["extinction"].items()], numeric={1, 3}))
    if summary.get("first_passage"):
        parts.append(f"<h2>First-passage times [{html_text(tu)}]</h2>")
        parts.append(_table(["condition", "reached", "probability", "interval", "mean time", "median time"],
                            [[k, v["reached"], v["probability"], f"{v['ci95'][0]:.4g} - {v['ci95'][1]:.4g}",
                              v["mean_time"], v["median_time"]] for k, v in summary["first_passage"].items()],
                            numeric={1, 2, 4, 5}))
    if summary.get("failed"):
        parts.append("<h2>Flagged trajectories</h2>")
        parts.append(_table(["trajectory", "why"], [[f["trajectory"], f["message"]] for f in summary["failed"]]))
    parts.append("<h2>Reactions</h2><pre>" + html_text("\n".join(text.equations(model))) + "</pre>")
    parts.append(_table(["process", "rate", "consumes", "produces"],
                        [[p.name, p.rate, _stoich(p.consumes), _stoich(p.produces)] for p in model.spec.processes]))
    prov = [[k, summary.get(k)] for k in ("engine", "method", "method_used", "seed", "trajectories", "system_size",
                                          "eps", "t_end", "wall_time_s", "model_hash")]
    parts.append("<h2>Provenance</h2>" + _table(["field", "value"], prov) + "</body></html>")
    return "\n".join(parts)


def write_report(model: CompiledModel, summary: dict, figures: list[Path], path: Path) -> Path:
    path.write_text(render(model, summary, figures), encoding="utf-8")
    return path


def _size(size) -> str:
    """How counts were made: one system size, or each species' compartment volume (None)."""
    return "counts through each compartment's volume" if size is None else f"system size {size:g}"
