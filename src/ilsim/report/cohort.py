"""Figures and the self-contained HTML report of a virtual-patient cohort.

Three figures: outcome fractions, distributions of chosen metrics (drawn parameters, times to
threshold, toxicity grades, peaks of the main species) and a spaghetti plot of a sample of patients
(the first ``SAMPLE`` patients, re-run on a fine time grid, coloured by outcome). The main species
are those the model's outcome rules read (else its first species). Distributions are read column
by column from summary.parquet, so a million-patient cohort never sits in memory whole.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a screen
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ilsim.model.compile import CompiledModel  # noqa: E402
from ilsim.model.outcomes import NO_OUTCOME, UNDETERMINED, rules  # noqa: E402
from ilsim.report.figures import wants_log  # noqa: E402
from ilsim.report.html import _STYLE, _image, _table  # noqa: E402
from ilsim.report.safe_text import figure_text, html_text  # noqa: E402

MAX_PANELS = 9


def main_species(model: CompiledModel, limit: int = 3) -> list[str]:
    """The species the outcome rules read, in order; the first species when there are no rules."""
    names: list[str] = []
    for outcome in model.outcomes:
        names += sorted(n for n in outcome.condition.names() if n in model.species and n not in names)
    return (names or list(model.species[:2]))[:limit]


def chosen_metrics(model: CompiledModel, columns: list[str], drawn: list[str]) -> list[str]:
    """Columns whose distributions are plotted: drawn values, times to threshold, grades, main species' peaks."""
    picked = drawn[:3]
    picked += [c for c in columns if c.startswith("first_time[")]
    picked += [c for c in columns if c.startswith("grade[")]
    for name in main_species(model):
        picked += [c for c in (f"{name}.peak", f"{name}.final") if c in columns]
    return list(dict.fromkeys(picked))[:MAX_PANELS]


def plot_outcomes(outcomes: dict, path: Path, title: str) -> Path:
    labels = list(outcomes)
    fractions = [outcomes[k]["fraction"] for k in labels]
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * max(len(labels), 1) + 1.4))
    bars = ax.barh(range(len(labels)), fractions, color=[_colour(k, labels) for k in labels])
    ax.set_yticks(range(len(labels)), [figure_text(label) for label in labels])
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("fraction of patients")
    for bar, label in zip(bars, labels):
        ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2,
                f"{outcomes[label]['fraction']:.1%} ({outcomes[label]['count']:,})", va="center", fontsize=8)
    ax.set_title(figure_text(textwrap.fill(title, 70)), fontsize=10)  # wrapped: a long model title is never cut off
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_distributions(summary: Path, metrics: list[str], units: dict[str, str], path: Path) -> Path:
    import pyarrow.parquet as pq  # lazy: heavy (pyarrow)

    cols = min(3, max(len(metrics), 1))
    rows = math.ceil(max(len(metrics), 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, name in zip(axes.flat, metrics):
        values = pq.read_table(summary, columns=[name]).column(0).to_numpy(zero_copy_only=False).astype(float)
        finite = values[np.isfinite(values)]
        missing = len(values) - len(finite)
        log = finite.size > 1 and wants_log(finite) and np.all(finite > 0)
        if finite.size:
            bins = np.geomspace(finite.min(), finite.max(), 41) if log else 40
            ax.hist(finite, bins=bins, color="C0", alpha=0.85)
        if log:
            ax.set_xscale("log")
        unit = units.get(name.split(".")[0], "") if "." in name else units.get(name, "")
        ax.set_xlabel(figure_text(f"{name} [{unit}]" if unit else name), fontsize=8)
        note = f"{missing:,} never / undefined" if missing else ""
        ax.set_title(note, fontsize=8)
        ax.set_ylabel("patients", fontsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_spaghetti(model: CompiledModel, t: np.ndarray, frame: pd.DataFrame, Y: np.ndarray, species: list[str],
                   path: Path, time_units: str, labels: list[str]) -> Path:
    """One panel per main species: every sampled patient's trajectory, coloured by its outcome."""
    units = {s.name: s.units for s in model.spec.species}
    fig, axes = plt.subplots(len(species), 1, figsize=(8, 2.8 * len(species)), squeeze=False, sharex=True)
    outcomes = frame["outcome"].astype(str).to_numpy()
    for ax, name in zip(axes[:, 0], species):
        j = model.species.index(name)
        seen = set()
        for k in range(len(Y)):
            label = outcomes[k] or NO_OUTCOME
            ax.plot(t, Y[k, :, j], color=_colour(label, labels), lw=0.8, alpha=0.7,
                    label=None if label in seen else figure_text(label))
            seen.add(label)
        if wants_log(Y[:, :, j]):
            ax.set_yscale("log")
        ax.set_ylabel(figure_text(f"{name} [{units[name]}]" if units.get(name) else name))
        ax.legend(fontsize=7, loc="best")
    axes[-1, 0].set_xlabel(figure_text(f"time [{time_units}]"))
    axes[0, 0].set_title(f"{len(Y)} sampled patients", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _colour(label: str, labels: list[str]) -> str:
    if label == "failed":
        return "0.45"
    return f"C{labels.index(label) % 10}" if label in labels else "C9"


def metric_rows(summary: Path, columns: list[str]) -> list[list]:
    """Median and 5th / 95th percentiles of each numeric column (read one column at a time)."""
    import pyarrow.parquet as pq  # lazy: heavy (pyarrow)

    rows = []
    for name in columns:
        values = pq.read_table(summary, columns=[name]).column(0).to_numpy(zero_copy_only=False)
        if values.dtype.kind not in "fiu" or name == "patient":
            continue
        values = values.astype(float)
        finite = values[np.isfinite(values)]
        if finite.size:
            lo, med, hi = np.percentile(finite, [5, 50, 95])
            rows.append([name, float(med), float(lo), float(hi), int(len(values) - finite.size)])
        else:
            rows.append([name, "-", "-", "-", int(len(values))])
    return rows


def write_cohort_report(model: CompiledModel, info: dict, folder: Path, sample: tuple) -> Path:
    """figures/outcomes.png, figures/distributions.png, figures/trajectories.png and report.html in ``folder``."""
    import pyarrow.parquet as pq  # lazy: heavy (pyarrow)

    summary = folder / "summary.parquet"
    figures = folder / "figures"
    figures.mkdir(exist_ok=True)
    columns = pq.read_schema(summary).names
    drawn = list(info["population"].get("covariates", {})) + list(info["population"].get("parameters", {}))
    units = {s.name: s.units for s in model.spec.species} | {o.name: o.units for o in model.spec.observables}
    units |= {p.name: p.units for p in model.spec.parameters}
    time_units = info["time"]["units"]
    units |= {c: time_units for c in columns if c.startswith("first_time[")}
    labels = [label for label in info["outcomes"]]
    t, frame, Y = sample
    labels += [str(x) for x in frame["outcome"].unique() if str(x) not in labels]
    plots = [plot_outcomes(info["outcomes"], figures / "outcomes.png",
                           f"{info['model_title']}: {info['patients']:,} virtual patients (seed {info['seed']})")]
    metrics = chosen_metrics(model, columns, drawn)
    if metrics:
        plots.append(plot_distributions(summary, metrics, units, figures / "distributions.png"))
    plots.append(plot_spaghetti(model, t, frame, Y, main_species(model), figures / "trajectories.png", time_units, labels))
    path = folder / "report.html"
    path.write_text(render(info, plots, metric_rows(summary, columns), explain_outcomes(model, info)), encoding="utf-8")
    return path


def explain_outcomes(model: CompiledModel, info: dict) -> dict[str, str]:
    """Each outcome label with the rule that gives it; 'undetermined' with why a patient gets it in this run."""
    out = rules(model)
    t_end = info["time"]["t_end"]
    short = [f"'{d.label}' ({d.held_for:g} {info['time']['units']})" for d in model.spec.outcomes
             if d.held_for is not None and d.held_for > t_end]
    if short:
        out[UNDETERMINED] += (f". This run lasts {t_end:g} {info['time']['units']}, shorter than the held_for window of "
                              + ", ".join(short) + ", so no patient can get that label: run longer (--t-end) to decide them")
    return out


def population_rows(population: dict) -> list[list]:
    """One row per drawn parameter or covariate: its name, what it is, its distribution's settings."""
    rows = []
    for kind in ("covariates", "parameters"):
        for name, dist in population.get(kind, {}).items():
            settings = dist if isinstance(dist, dict) else {"value": dist}
            rows.append([name, kind[:-1], ", ".join(f"{k} = {v}" for k, v in settings.items())])
    for first, second, r in population.get("correlations", []):  # [name, name, r] (Gaussian copula)
        rows.append([f"{first} and {second}", "correlation", f"r = {r}"])
    return rows


def render(info: dict, figures: list[Path], metrics: list[list], explained: dict[str, str] | None = None) -> str:
    title = f"{info['model_title']}: virtual cohort of {info['patients']:,} patients"
    failed = info["failed"]
    engine = info["engine"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html_text(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html_text(title)}</h1>",
        f"<p class='muted'>model <code>{html_text(info['model'])}</code> · hash <code>{html_text(info['model_hash'][:16])}</code>"
        f" · seed <code>{info['seed']}</code> · ilsim {html_text(str(info['ilsim_version']))}</p>",
        "<h2>Outcomes</h2>",
        _table(["outcome", "patients", "fraction"],
               [[label, v["count"], f"{v['fraction']:.2%}"] for label, v in info["outcomes"].items()], numeric={1, 2}),
    ]
    if explained:  # every label the model defines, with its rule, whether or not a patient got it
        parts.append("<h3>What each label means</h3><p class='muted'>Each patient gets the first label, in this order, "
                     "whose rule holds at the end of the run (or at every output time of its held_for window).</p>")
        parts.append(_table(["outcome", "rule"], [[label, rule] for label, rule in explained.items()]))
    if failed["count"]:
        parts.append(f"<h3>Failed patients ({failed['count']:,})</h3>")
        parts.append(_table(["reason", "patients"], [[r, c] for r, c in failed["by_reason"].items()], numeric={1}))
        parts.append("<p class='muted'>first failed patients: "
                     + html_text(", ".join(str(f["patient"]) for f in failed["patients"][:50])) + "</p>")
    parts.append("<h2>Figures</h2>")
    parts += [_image(f) for f in figures]
    parts.append("<h2>Metrics across patients</h2>")
    parts.append(_table(["column", "median", "5th percentile", "95th percentile", "undefined (NaN)"], metrics,
                        numeric={1, 2, 3, 4}))
    parts.append("<h2>Population</h2>")
    parts.append(_table(["name", "drawn as", "distribution"], population_rows(info["population"])))
    parts.append(f"<p class='muted'>seed {info['population'].get('seed')}; {html_text(info['population'].get('copula', ''))}"
                 f" copula; {html_text(info['population'].get('generator', ''))}</p>")
    prov = [["patients", info["patients"]], ["seed", info["seed"]], ["engine", f"{engine['name']} ({engine['backend']}), "
                                                                              f"{engine['method']}"],
            ["rtol", engine["rtol"]], ["atol", engine["atol"]],
            ["time", f"0..{info['time']['t_end']:g} {info['time']['units']}, {info['time']['points']} points"],
            ["chunks", f"{info['chunks']['count']} of {info['chunks']['size']} patients "
                       f"({len(info['chunks']['reused'])} reused from an interrupted run)"],
            ["run on", info["scheduler"]], ["wall time [s]", info.get("wall_time_s")], ["model hash", info["model_hash"]],
            ["model source", info.get("model_source") or "-"], ["created", info["created"]]]
    parts.append("<h2>Provenance</h2>" + _table(["field", "value"], prov))
    parts.append("</body></html>")
    return "\n".join(parts)
