"""Interactive figures of a run (Plotly): the panels of the report, with hover values, zoom and a log switch.

The panels themselves (which variables, in which order, with which thresholds and CTCAE lines) are the
report's (``ilsim.report.figures.panels``), so the page and report.html group the curves alike.
"""

from __future__ import annotations

import numpy as np

from ilsim.report.figures import LOG_FLOOR, Panel, panels, series_wants_log

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]
DASHES = ["solid", "dash", "dot", "dashdot", "longdash"]
FONT = 16  # readable on a projector
MAX_POINTS = 600  # points drawn per curve (shown_points)
MAX_EVENT_LINES = 6  # event firings marked on the plots
TAB_PANELS = 6  # panels per tab after the first: the browser draws only the chosen tab's, not all twenty
GRID = {"gridcolor": "#e3e3e3", "zerolinecolor": "#bbb", "linecolor": "#444", "showline": True}


def shown_points(y: np.ndarray, most: int = MAX_POINTS) -> np.ndarray:
    """Indices of the output times drawn: all when there are at most ``most``; else the first, the last and the
    lowest and highest point of each of most/2 equal stretches, so every peak and trough stays on the curve (and
    its hover value is an output value) while the page receives a fraction of the numbers."""
    n = len(y)
    if n <= most:
        return np.arange(n)
    edges = np.linspace(0, n, most // 2 + 1).astype(int)
    filled = np.where(np.isfinite(y), y, 0.0)
    keep = [0, n - 1]
    for a, b in zip(edges[:-1], edges[1:]):
        if b > a:
            keep += [a + int(np.argmin(filled[a:b])), a + int(np.argmax(filled[a:b]))]
    return np.unique(keep)


def run_panels(runs: dict, model) -> list[Panel]:
    first, *others = runs.values()
    return panels(first, model, tuple(others))


def panel_tabs(panels: list[Panel], declared: int) -> list[tuple[str, list[int]]]:
    """The panels split into tabs, as (label, indices into ``panels``): the model's own ``plots:`` (its first
    ``declared`` panels) make the first tab, the groups after them tabs of at most TAB_PANELS in report order.

    Drawing a Plotly panel costs the browser tens of milliseconds; drawing all twenty of a large model after every
    slider move took most of a second, so only the tab on screen is drawn."""
    first = min(declared, len(panels)) or min(TAB_PANELS, len(panels))
    tabs = [("main", list(range(first)))] if first else []
    for start in range(first, len(panels), TAB_PANELS):
        indices = list(range(start, min(start + TAB_PANELS, len(panels))))
        titles = list(dict.fromkeys(panels[i].title for i in indices))
        tabs.append((", ".join(titles) if len(titles) <= 3 else f"{titles[0]} … {titles[-1]}", indices))
    return tabs


def panel_figure(panel: Panel, runs: dict, t_units: str, events: list = ()) -> dict:
    """One panel: a line per variable (colour) and per run (dash: the current run solid, overlays dashed), and a
    vertical line at each of a few ``events`` ([time, name] fired in the current run: an infection, a dose).

    A plain figure dict, not plotly.graph_objects: validating twenty panels of a thousand points each took about
    a second, most of the time between a slider's move and the redrawn plots."""
    traces, logs = [], []
    for k, (label, ds) in enumerate(runs.items()):
        t = ds["time"].values
        for i, name in enumerate(panel.names):
            if name not in ds:
                continue
            y = ds[name].values
            top = float(np.nanmax(np.abs(y))) if np.isfinite(y).any() else 0.0
            logs.append(series_wants_log(y, top * LOG_FLOOR))
            at = shown_points(y)
            traces.append({"type": "scatter", "mode": "lines", "x": t[at].tolist(),
                           "y": np.where(np.isfinite(y[at]), y[at], None).tolist(),
                           "name": name if len(runs) == 1 else f"{name} ({label})",
                           "line": {"color": COLOURS[i % len(COLOURS)], "dash": DASHES[k % len(DASHES)],
                                    "width": 3 if k == 0 else 2},
                           "hovertemplate": f"{name}: %{{y:.4g}} {panel.units}<br>t = %{{x:.4g}} {t_units}"
                                            f"<extra>{label}</extra>"})
    shapes = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": value, "y1": value,
               "line": {"color": "#555", "dash": "dot", "width": 1}} for value, _ in panel.thresholds]
    notes = [{"xref": "paper", "x": 0, "y": value, "text": label, "showarrow": False, "xanchor": "left", "yanchor": "bottom",
              "font": {"size": 12}} for value, label in panel.thresholds]
    if len(events) <= MAX_EVENT_LINES:  # a schedule of many doses would hide the curves: its firings stay off
        shapes += [{"type": "line", "yref": "paper", "y0": 0, "y1": 1, "x0": t, "x1": t,
                    "line": {"color": "#b35900", "dash": "dot", "width": 1}} for t, _ in events]
        notes += [{"yref": "paper", "x": t, "y": 1, "text": name, "showarrow": False, "xanchor": "left", "yanchor": "top",
                   "font": {"size": 12, "color": "#b35900"}} for t, name in events]
    log = panel.scale == "log" or (panel.scale == "auto" and any(logs))
    layout = {
        "title": {"text": panel.title, "font": {"size": FONT + 2}}, "font": {"size": FONT, "color": "#111"},
        "plot_bgcolor": "white", "paper_bgcolor": "white",
        "margin": {"l": 60, "r": 20, "t": 60, "b": 40}, "height": 380,
        "legend": {"orientation": "h", "y": -0.42, "yanchor": "top"},
        "shapes": shapes, "annotations": notes,
        "xaxis": {"title": {"text": f"time ({t_units})"}, **GRID},
        "yaxis": {"title": {"text": panel.units}, "type": "log" if log else "linear", **GRID},
        "updatemenus": [{"type": "buttons", "direction": "right", "x": 1.0, "xanchor": "right", "y": 1.18, "showactive": True,
                         "active": 1 if log else 0, "font": {"size": 12},
                         "buttons": [{"label": "linear", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
                                     {"label": "log", "method": "relayout", "args": [{"yaxis.type": "log"}]}]}],
    }
    return {"data": traces, "layout": layout}


def thumbnail(ds, model) -> dict:
    """The first panel of a run, small and still: the gallery's picture of a scenario."""
    panel = run_panels({"run": ds}, model)[0]
    fig = panel_figure(panel, {"run": ds}, ds.attrs.get("time_units", ""))
    fig["layout"].update(height=220, margin={"l": 40, "r": 10, "t": 40, "b": 30}, showlegend=False, font={"size": 12},
                         title={"text": panel.title, "font": {"size": 14}}, updatemenus=[])  # no log switch on a still picture
    fig["layout"]["xaxis"]["title"] = {"text": ""}
    return fig
