"""Interactive figures of a run (Plotly): the panels of the report, with hover values, zoom and a log switch.

The panels themselves (which variables, in which order, with which thresholds and CTCAE lines) are the
report's (``ilsim.report.figures.panels``), so the page and report.html group the curves alike.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ilsim.report.figures import LOG_FLOOR, Panel, panels, series_wants_log

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]
DASHES = ["solid", "dash", "dot", "dashdot", "longdash"]
FONT = 16  # readable on a projector


def run_panels(runs: dict, model) -> list[Panel]:
    first, *others = runs.values()
    return panels(first, model, tuple(others))


def panel_figure(panel: Panel, runs: dict, t_units: str) -> go.Figure:
    """One panel: a line per variable (colour) and per run (dash: the current run solid, overlays dashed)."""
    fig = go.Figure()
    logs = []
    for k, (label, ds) in enumerate(runs.items()):
        t = ds["time"].values
        for i, name in enumerate(panel.names):
            if name not in ds:
                continue
            y = ds[name].values
            top = np.nanmax(np.abs(y)) if np.isfinite(y).any() else 0.0
            logs.append(series_wants_log(y, top * LOG_FLOOR))
            shown = name if len(runs) == 1 else f"{name} ({label})"
            fig.add_trace(go.Scatter(x=t, y=y, mode="lines", name=shown,
                                     line={"color": COLOURS[i % len(COLOURS)], "dash": DASHES[k % len(DASHES)],
                                           "width": 3 if k == 0 else 2},
                                     hovertemplate=f"{name}: %{{y:.4g}} {panel.units}<br>t = %{{x:.4g}} {t_units}"
                                                   f"<extra>{label}</extra>"))
    for value, label in panel.thresholds:
        fig.add_hline(y=value, line={"color": "#555", "dash": "dot", "width": 1}, annotation_text=label,
                      annotation_position="top left")
    log = panel.scale == "log" or (panel.scale == "auto" and any(logs))
    fig.update_layout(title={"text": f"{panel.title}", "font": {"size": FONT + 2}}, font={"size": FONT},
                      margin={"l": 60, "r": 20, "t": 60, "b": 50}, height=340, template="plotly_white",
                      legend={"orientation": "h", "y": -0.25},
                      updatemenus=[{"type": "buttons", "direction": "right", "x": 1.0, "xanchor": "right", "y": 1.18,
                                    "showactive": True, "active": 1 if log else 0, "font": {"size": 12},
                                    "buttons": [{"label": "linear", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
                                                {"label": "log", "method": "relayout", "args": [{"yaxis.type": "log"}]}]}])
    fig.update_xaxes(title_text=f"time ({t_units})")
    fig.update_yaxes(title_text=panel.units, type="log" if log else "linear")
    return fig


def thumbnail(ds, model) -> go.Figure:
    """The first panel of a run, small and still: the gallery's picture of a scenario."""
    panel = run_panels({"run": ds}, model)[0]
    fig = panel_figure(panel, {"run": ds}, ds.attrs.get("time_units", ""))
    fig.update_layout(height=220, margin={"l": 40, "r": 10, "t": 40, "b": 30}, showlegend=False,
                      font={"size": 12}, title={"font": {"size": 14}})
    fig.layout.updatemenus = ()  # no log switch on a still picture
    fig.update_xaxes(title_text="")
    return fig
