"""Figures and HTML pages of parameter sweeps (outcome maps) and sensitivity analyses (index bar charts).

Outcome colours follow the model's order of outcome labels; 'undetermined' (no label holds) is light
grey and 'failed' (the integration failed) black, so failed points are always visible as such.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.patches import Patch

from ilsim.model.outcomes import FAILED, UNDETERMINED

if TYPE_CHECKING:  # only named in annotations: the report draws what patients.sweep computed, without importing it
    from ilsim.patients.sweep import SweepResult
from ilsim.report.figures import plt, wants_log
from ilsim.report.html import _STYLE, _image, _table
from ilsim.report.safe_text import figure_text, html_text

PALETTE = ("#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
SPECIAL = {UNDETERMINED: "#d9d9d9", FAILED: "#000000", "ok": "#9ecae1"}
DPI = 110


def outcome_colours(labels: list[str]) -> dict[str, str]:
    """A colour per outcome label: the palette in order, fixed colours for 'undetermined', 'failed' and 'ok'."""
    colours, k = {}, 0
    for label in labels:
        if label in SPECIAL:
            colours[label] = SPECIAL[label]
        else:
            colours[label] = PALETTE[k % len(PALETTE)]
            k += 1
    return colours


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around grid values (midpoints; in log10 on a log axis)."""
    v = np.log10(values) if log else np.asarray(values, dtype=float)
    mid = (v[1:] + v[:-1]) / 2
    edges = np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])
    return 10**edges if log else edges


def _label(info: dict, name: str) -> str:
    units = info["grid"][name].get("units")
    return figure_text(f"{name} [{units}]" if units else name)


def _codes(result: SweepResult) -> tuple[np.ndarray, list[str], dict[str, str]]:
    outcome = result.table["outcome"].replace("", "ok").to_numpy()
    labels = list(result.info["outcomes"])
    labels += [x for x in dict.fromkeys(outcome) if x not in labels]
    index = {label: k for k, label in enumerate(labels)}
    return np.array([index[x] for x in outcome]), labels, outcome_colours(labels)


def plot_sweep(result: SweepResult, path: Path) -> Path:
    """Write the outcome map (``draw_sweep``) as a PNG."""
    return _save(draw_sweep(result), path)


def plot_indices(result, path: Path) -> Path:
    """Write the index chart (``draw_indices``) as a PNG."""
    return _save(draw_indices(result), path)


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def draw_sweep(result: SweepResult):
    """The outcome map: 2-D, the outcome label over the grid (and the metric beside it); 1-D, the metric
    against the parameter above a band coloured by outcome."""
    info, table, axes = result.info, result.table, result.axes
    codes, labels, colours = _codes(result)
    cmap = ListedColormap([colours[label] for label in labels])
    metric = info["metric"]
    shown_metric = figure_text(metric)
    y = table[metric].to_numpy(dtype=float)
    failed = (table["outcome"] == FAILED).to_numpy()
    present = [label for label in labels if np.any(codes == labels.index(label))]
    handles = [Patch(facecolor=colours[label], edgecolor="#555555", lw=0.5,
                     label=figure_text(f"{label} ({int(np.sum(codes == k))})"))
               for k, label in enumerate(labels) if label in present]
    title = info["title"]

    if len(axes) == 2:
        xa, ya = axes
        shape = (len(xa.values), len(ya.values))
        ex, ey = _edges(xa.values, xa.log), _edges(ya.values, ya.log)
        with_outcomes = bool(result.info["outcomes"]) and set(present) != {"ok"}
        panels = 2 if with_outcomes else 1
        fig, ax_all = plt.subplots(1, panels, figsize=(6.0 * panels + 1.2, 4.8), squeeze=False)
        ax_all = list(ax_all.flat)
        if with_outcomes:
            ax = ax_all[0]
            ax.pcolormesh(ex, ey, codes.reshape(shape).T, cmap=cmap, vmin=-0.5, vmax=len(labels) - 0.5, shading="flat")
            ax.set_title("outcome", fontsize=10)
            ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.14), ncol=min(3, len(handles)),
                      frameon=False)
        ax = ax_all[-1]
        finite = y[np.isfinite(y)]
        norm, shown = None, y
        if wants_log(finite):
            norm = LogNorm(vmin=finite[finite > 0].min(), vmax=finite.max())
            shown = np.where(np.isfinite(y) & (y <= 0), norm.vmin, y)  # zeros in the lowest colour, not as undefined
        grid = np.ma.masked_invalid(shown.reshape(shape).T)
        mesh_cmap = plt.get_cmap("viridis").with_extremes(bad=SPECIAL[UNDETERMINED])
        mesh = ax.pcolormesh(ex, ey, grid, cmap=mesh_cmap, norm=norm, shading="flat")
        fig.colorbar(mesh, ax=ax, label=shown_metric)
        if failed.any():
            X, Y = np.meshgrid(xa.values, ya.values, indexing="ij")
            ax.scatter(X.ravel()[failed], Y.ravel()[failed], marker="x", color="black", s=18, label="failed")
            ax.legend(fontsize=8, loc="upper right")
        ax.set_title(f"{shown_metric} (grey: undefined)" if np.isnan(y[~failed]).any() else shown_metric, fontsize=10)
        for ax in ax_all:
            ax.set_xlabel(_label(info, xa.name))
            ax.set_ylabel(_label(info, ya.name))
            if xa.log:
                ax.set_xscale("log")
            if ya.log:
                ax.set_yscale("log")
        fig.suptitle(figure_text(f"{title}\nsweep over {xa.name} x {ya.name} ({info['points']} points)"), fontsize=10)
    else:
        (xa,) = axes
        fig, (ax, band) = plt.subplots(2, 1, figsize=(7.4, 5.2), sharex=True, gridspec_kw={"height_ratios": [4, 1]})
        ax.plot(xa.values, y, "-o", ms=3, lw=1.3, color="C0")
        if failed.any():
            ax.scatter(xa.values[failed], np.zeros(failed.sum()), transform=ax.get_xaxis_transform(), marker="x",
                       color="black", s=30, clip_on=False, label="failed", zorder=3)
            ax.legend(fontsize=8, loc="best")
        finite = y[np.isfinite(y)]
        if wants_log(finite):
            ax.set_yscale("log")
        ax.set_ylabel(shown_metric)
        ax.grid(alpha=0.3)
        band.pcolormesh(_edges(xa.values, xa.log), [0.0, 1.0], codes[None, :], cmap=cmap, vmin=-0.5,
                        vmax=len(labels) - 0.5, shading="flat")
        band.set_yticks([])
        band.set_ylabel("outcome", fontsize=9)
        band.set_xlabel(_label(info, xa.name))
        if xa.log:
            band.set_xscale("log")
        band.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.55), ncol=min(4, len(handles)),
                    frameon=False)
        fig.suptitle(figure_text(f"{title}\n{metric} over {xa.name} ({info['points']} points)"), fontsize=10)
    fig.tight_layout()
    return fig


def _page(title: str, subtitle: str, body: list[str]) -> str:
    return "\n".join([
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html_text(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html_text(title)}</h1>", f"<p class='muted'>{subtitle}</p>", *body, "</body></html>",
    ])


def _subtitle(info: dict) -> str:
    return (f"model <code>{html_text(info['model'])}</code> · hash <code>{html_text(info['model_hash'][:16])}</code> · "
            f"ilsim {html_text(str(info['ilsim_version']))} · {html_text(info['created'])}")


def _provenance(info: dict, keys: tuple[str, ...]) -> str:
    rows = [[k, info.get(k)] for k in keys]
    if info.get("parameters"):
        rows.append(["parameters set", ", ".join(f"{k} = {v:g}" for k, v in info["parameters"].items())])
    return "<h2>Provenance</h2>" + _table(["field", "value"], rows)


def sweep_report(result: SweepResult, figure: Path, path: Path) -> Path:
    """report.html of a sweep: the grid, the outcome map, counts per outcome, failed points, provenance."""
    info = result.info
    total = info["points"]
    body = ["<h2>Grid</h2>", _table(["parameter", "units", "low", "high", "points", "spacing"],
                                    [[name, g["units"], g["low"], g["high"], g["n"], g["spacing"]]
                                     for name, g in info["grid"].items()], numeric={2, 3, 4}),
            f"<p>{total} points, each run with the {html_text(info['engine'])} engine to t = {info['t_end']:g} "
            f"{html_text(info['time_units'])}; metric shown: <code>{html_text(info['metric'])}</code>. Every point's "
            "parameters and metrics are in <code>sweep.parquet</code> and <code>sweep.csv</code>.</p>",
            "<h2>Outcome map</h2>", _image(figure)]
    if info["outcomes"]:
        body.append(_table(["outcome", "points", "share"],
                           [[label, n, f"{100 * n / total:.1f}%"] for label, n in info["outcomes"].items()], numeric={1, 2}))
    body.append("<h2>Failed points</h2>")
    if info["failed"]:
        shown = info["failed"][:100]
        names = list(info["grid"])
        body.append(_table(["point", *names, "reason"], [[f["point"], *(f["values"][n] for n in names), f["reason"]]
                                                          for f in shown], numeric=set(range(len(names) + 1))))
        if len(info["failed"]) > len(shown):
            body.append(f"<p class='muted'>{len(info['failed']) - len(shown)} more in sweep.json.</p>")
    else:
        body.append("<p>None: every point integrated to the end.</p>")
    body.append(_provenance(info, ("engine", "method", "rtol", "atol", "t_end", "output_points", "wall_time_s", "model_hash",
                                   "model_source", "ilsim_version")))
    path.write_text(_page(f"Sweep: {info['title']}", _subtitle(info), body), encoding="utf-8")
    return path


# -------------------------------------------------------------------------------- sensitivity


def draw_indices(result):
    """Sobol: first-order and total indices per parameter with confidence intervals; Morris: mu* with its
    confidence interval, and sigma against mu* (non-linear or interacting parameters lie high)."""
    info, frame = result.info, result.indices
    names = [figure_text(name) for name in frame.index]
    x = np.arange(len(names))
    level = f"{100 * info['conf_level']:g}%"
    if info["method"] == "sobol":
        fig, ax = plt.subplots(figsize=(max(7.8, 1.1 * len(names) + 2.5), 4.4))
        width = 0.38
        ax.bar(x - width / 2, frame["S1"], width, yerr=frame["S1_conf"], capsize=3, color="C0", label="first order S1")
        ax.bar(x + width / 2, frame["ST"], width, yerr=frame["ST_conf"], capsize=3, color="C1", label="total order ST")
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_ylabel("Sobol' index")
        ax.set_ylim(min(0.0, float(np.nanmin(frame[["S1", "ST"]].to_numpy() - frame[["S1_conf", "ST_conf"]].to_numpy())))
                    - 0.02, max(1.0, float(np.nanmax(frame[["S1", "ST"]].to_numpy()
                                                     + frame[["S1_conf", "ST_conf"]].to_numpy()))) + 0.05)
        ax.set_xticks(x, names)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
        ax.set_title(figure_text(f"{info['title']}\nSobol' indices of {info['output']} ({info['evaluated']} runs, "
                                 f"{level} intervals)"), fontsize=10)
    else:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(max(9.0, 1.1 * len(names) + 6.0), 4.4))
        ax.bar(x, frame["mu_star"], 0.6, yerr=frame["mu_star_conf"], capsize=3, color="C0")
        ax.set_xticks(x, names)
        ax.set_ylabel("mu* (mean |elementary effect|)")
        ax.grid(alpha=0.3, axis="y")
        ax.set_title(f"mu* with {level} intervals", fontsize=10)
        ax2.errorbar(frame["mu_star"], frame["sigma"], xerr=frame["mu_star_conf"], fmt="o", color="C1", capsize=3)
        for name, mu, sigma in zip(names, frame["mu_star"], frame["sigma"]):
            ax2.annotate(name, (mu, sigma), textcoords="offset points", xytext=(4, 4), fontsize=8)
        top_mu = float(np.nanmax(frame["mu_star"] + frame["mu_star_conf"])) if len(frame) else 0.0
        top_mu = top_mu if top_mu > 0 else 1.0
        ax2.set_xlim(0.0, 1.15 * top_mu)  # both are non-negative; a sigma at rounding level stays at zero
        ax2.set_ylim(0.0, max(1.15 * float(np.nanmax(frame["sigma"])), 0.05 * top_mu))
        ax2.set_xlabel("mu*")
        ax2.set_ylabel("sigma (spread of elementary effects)")
        ax2.grid(alpha=0.3)
        ax2.set_title("sigma against mu*", fontsize=10)
        fig.suptitle(figure_text(f"{info['title']}\nMorris screening of {info['output']} ({info['evaluated']} runs)"),
                     fontsize=10)
    fig.tight_layout()
    return fig


def sensitivity_report(result, figure: Path, path: Path) -> Path:
    """report.html of a sensitivity analysis: ranges, indices with intervals, failures, seed, provenance."""
    info, frame = result.info, result.indices
    method = "Sobol'" if info["method"] == "sobol" else "Morris"
    body = ["<h2>Parameters (uniform ranges)</h2>",
            _table(["parameter", "units", "low", "high"], [[n, r["units"], r["low"], r["high"]]
                                                         for n, r in info["ranges"].items()], numeric={2, 3}),
            f"<p>Output: <code>{html_text(info['output'])}</code>. {info['evaluated']} runs ({html_text(info['sampler'])}, "
            f"seed {info['seed']}), {html_text(info['engine'])} engine to t = {info['t_end']:g} "
            f"{html_text(info['time_units'])}.</p>",
            f"<h2>{method} indices</h2>", _image(figure),
            _table(["parameter", *frame.columns], [[name, *row] for name, row in zip(frame.index, frame.to_numpy().tolist())],
                   numeric=set(range(1, len(frame.columns) + 1)))]
    if info["method"] == "sobol":
        body.append("<p class='muted'>S1: share of the output's variance due to the parameter alone; ST: including its "
                    "interactions. Second-order indices S2 are in indices.json and indices.csv.</p>")
    else:
        body.append("<p class='muted'>mu*: mean absolute elementary effect (output change across the parameter's range, "
                    "per unit of the normalised range); sigma: their spread (non-linearity or interactions).</p>")
    body.append("<h2>Failed runs</h2>")
    if info["failed"]:
        body.append(f"<p>{info['failed']} of {info['evaluated']} runs failed or gave no value; "
                    + ("the indices were computed without them (dropped with their whole sample group): <b>the estimate "
                       "is biased</b> towards the region where the model integrates.</p>" if info["dropped_groups"] else "</p>"))
        body.append(_table(["reason", "runs"], [[r, n] for r, n in info["failure_reasons"].items()], numeric={1}))
    else:
        body.append("<p>None.</p>")
    body.append(_provenance(info, ("method", "sampler", "samples", "seed", "conf_level", "engine", "engine_method", "rtol",
                                   "atol", "t_end", "output_points", "wall_time_s", "model_hash", "model_source",
                                   "ilsim_version")))
    path.write_text(_page(f"Sensitivity: {info['title']}", _subtitle(info), body), encoding="utf-8")
    return path

