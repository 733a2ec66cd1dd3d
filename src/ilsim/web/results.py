"""Views of finished cohort and sweep result folders: outcome fractions, histograms, the outcome map.

Only the folders directly under the root that ``ilsim serve --results`` names are listed, and a page can
open only a name from that listing: no page reads a path a browser sends. A symbolic link (a folder or one of
its files) that leads outside the root is not listed: the server shows what lies under the root and nothing else.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import plotly.express as px
import plotly.graph_objects as go
from dash import dcc, html

KINDS = {"cohort": ("cohort.json", "summary.parquet"), "sweep": ("sweep.json", "sweep.parquet"),
         "tissue": ("summary.json", "timeseries.csv")}  # `ilsim tissue`'s folder (io/tissue.py)
EMBED_BYTES = 20_000_000  # a tissue run's picture or animation larger than this is left to its report.html
HISTOGRAMS = 6  # metrics shown as histograms for a cohort


def result_folders(root: Path | None) -> list[tuple[str, str]]:
    """(folder name, 'cohort', 'sweep' or 'tissue') of each finished result directly under ``root``."""
    if root is None or not Path(root).is_dir():
        return []
    top = Path(root).resolve()
    found = []
    for folder in sorted(Path(root).iterdir()):
        for kind, files in KINDS.items():
            if folder.is_dir() and all((folder / f).is_file() and _inside(folder / f, top) for f in files):
                found.append((folder.name, kind))
    return found


def _inside(path: Path, top: Path) -> bool:
    """Whether ``path``, its links followed, lies under ``top``."""
    return path.resolve().is_relative_to(top)


def result_view(root: Path | None, name: str | None) -> html.Div | None:
    listed = dict(result_folders(root))
    if not name or name not in listed:  # a name outside the listing is never turned into a path
        return None
    import pandas as pd  # lazy: heavy

    folder = Path(root) / name
    kind = listed[name]
    try:
        if kind == "tissue":
            return tissue_view(folder, name)
        record_file, table_file = KINDS[kind]
        record = json.loads((folder / record_file).read_text())
        table = pd.read_parquet(folder / table_file)
        return outcome_view(name, kind, record, table)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # a folder damaged or edited after ilsim wrote it
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return html.Div(f"{name}: cannot be shown: its files cannot be read as ilsim wrote them ({reason})",
                        className="problem", id="result-unreadable")


def outcome_view(name: str, kind: str, record: dict, table, prefix: str = "") -> html.Div:
    """Outcome fractions (a bar chart and a table of counts), then histograms (cohort) or the outcome map (sweep):
    of a finished folder or of a run launched from the page (``prefix`` keeps the two views' ids apart)."""
    import pandas as pd  # lazy: heavy

    counts = table["outcome"].astype(str).value_counts()
    fractions = go.Figure(go.Bar(x=counts.index.tolist(), y=(counts / counts.sum()).tolist(),
                                 text=[f"{n}" for n in counts.tolist()], hovertemplate="%{x}: %{y:.1%} (%{text})<extra></extra>"))
    fractions.update_layout(title="Fraction per outcome", yaxis_tickformat=".0%", template="plotly_white", font={"size": 15})
    figures = [dcc.Graph(figure=fractions, id=f"{prefix}outcome-fractions")]
    if kind == "sweep":
        figures.append(dcc.Graph(figure=_outcome_map(record, table), id=f"{prefix}outcome-map"))
    else:
        metrics = [c for c in table.columns if c.endswith(".peak") and pd.api.types.is_numeric_dtype(table[c])][:HISTOGRAMS]
        for metric in metrics:
            fig = px.histogram(table, x=metric, color="outcome", nbins=30, template="plotly_white")
            fig.update_layout(title=f"{metric} ({table[metric].isna().sum()} without a value)", font={"size": 14}, height=320)
            figures.append(dcc.Graph(figure=fig))
    rows = [html.Tr([html.Td(label), html.Td(f"{n}"), html.Td(f"{n / counts.sum():.1%}")],
                    className="outcome-count", **{"data-outcome": label, "data-count": str(n)}) for label, n in counts.items()]
    return html.Div([html.H2(f"{name}: {kind} of {len(table)} {'patients' if kind == 'cohort' else 'points'}"),
                     html.P(f"model {record.get('model_name') or record.get('model_source') or record.get('model') or ''}, "
                            f"ilsim {record.get('ilsim_version', ilsim_version())}"),
                     html.Table([html.Tr([html.Th("outcome"), html.Th("count"), html.Th("fraction")]), *rows],
                                id=f"{prefix}outcome-table", className="values"),
                     html.Div(figures, className="plots")])


def ilsim_version() -> str:
    from ilsim import __version__

    return __version__


def _outcome_map(record: dict, table) -> go.Figure:
    """Two swept parameters: the outcome label over the grid; one: the outcome along the parameter."""
    swept = [p for p in record.get("grid", {}) if p in table.columns]
    labels = sorted(table["outcome"].astype(str).unique())
    code = table["outcome"].astype(str).map({label: i for i, label in enumerate(labels)})
    if len(swept) >= 2:
        x, y = swept[:2]
        fig = go.Figure(go.Heatmap(x=table[x], y=table[y], z=code, text=table["outcome"], colorscale="Viridis",
                                   hovertemplate=f"{x} = %{{x:.4g}}<br>{y} = %{{y:.4g}}<br>%{{text}}<extra></extra>",
                                   colorbar={"tickvals": list(range(len(labels))), "ticktext": labels}))
        fig.update_layout(xaxis_title=x, yaxis_title=y)
    else:
        x = swept[0] if swept else table.columns[0]
        fig = go.Figure(go.Scatter(x=table[x], y=table["outcome"], mode="markers"))
        fig.update_layout(xaxis_title=x)
    fig.update_layout(title="Outcome map", template="plotly_white", font={"size": 15})
    return fig


MEDIA = {"snapshots.png": "image/png", "timeseries.png": "image/png", "animation.mp4": "video/mp4", "animation.gif": "image/gif"}


def tissue_view(folder: Path, name: str) -> html.Div:
    """A tissue run: its settings and final counts, the cells and fields over time (interactive), the animation and
    the snapshots (the figures `ilsim tissue` wrote; only these fixed names inside a listed folder are read)."""
    import pandas as pd  # lazy: heavy

    summary = json.loads((folder / "summary.json").read_text())
    series = pd.read_csv(folder / "timeseries.csv")
    cells = [c for c in series.columns if c.endswith("_cells")]
    fields = [c for c in series.columns if c != "time_min" and c not in cells]
    figures = []
    for title, columns, axis in (("Cells per type", cells, "cells"), ("Fields: mean and max over the voxels", fields, "")):
        if columns:
            fig = go.Figure([go.Scatter(x=series["time_min"], y=series[c], name=c, mode="lines+markers") for c in columns])
            fig.update_layout(title=title, xaxis_title="time (min)", yaxis_title=axis, template="plotly_white",
                              font={"size": 15}, height=360)
            figures.append(dcc.Graph(figure=fig))
    media = []
    for file, mime in MEDIA.items():
        path = folder / "figures" / file
        if not path.is_file() or not _inside(path, folder.parent.resolve()):  # a figure linked out of the root
            continue
        if path.stat().st_size > EMBED_BYTES:
            media.append(html.P(f"figures/{file} is larger than {EMBED_BYTES // 1_000_000} MB: open the folder's report.html"))
            continue
        src = f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
        ident = f"tissue-{file.split('.')[0]}"
        media.append(html.Video(src=src, controls=True, loop=True, id=ident, className="tissue-media") if mime == "video/mp4"
                     else html.Img(src=src, id=ident, className="tissue-media", alt=f"{name}: {file}"))
    counts = ", ".join(f"{k} {v:,}" for k, v in summary.get("final_cells", {}).items())
    return html.Div([html.H2(f"{name}: tissue run of {summary.get('model', '?')}"),
                     html.P(f"to {summary.get('t_end', '?')} min (dt {summary.get('dt', '?')} min, saved every "
                            f"{summary.get('save_every', '?')} min), seed {summary.get('seed', '?')}, grid "
                            f"{' x '.join(str(v) for v in summary.get('voxels', []))} voxels of "
                            f"{summary.get('voxel_um', '?')} µm; "
                            f"final cells: {counts or 'none'}", id="tissue-summary"),
                     html.Div(figures, className="plots"),
                     html.H3("Animation and snapshots"), html.Div(media, className="tissue-figures")])
