"""Figures, the animation and report.html of a tissue run.

Snapshots show the first field (a slice through the middle in 3-D) with the cells on it, coloured by type; the
time series shows cells per type and each field's mean and max. The animation is an MP4 when imageio and
imageio-ffmpeg are installed (``pip install ilsim[tissue]``), else a GIF (matplotlib's Pillow writer).
"""

from __future__ import annotations

import base64
import html as _html
import json
from pathlib import Path

import numpy as np

from ilsim.report.safe_text import html_text

COLOURS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
MAX_FRAMES = 200  # an animation longer than this shows every k-th saved time


def _plane(fields: np.ndarray, k: int, dims: int) -> np.ndarray:
    return fields[k, 0] if dims == 2 else fields[k, fields.shape[1] // 2]


def _draw(ax, run, snap, vmax):
    setup = run.setup
    g = setup.geometry
    extent = [0, g.shape[0] * g.dx, 0, g.shape[1] * g.dx]
    image = None
    if setup.fields:
        image = ax.imshow(_plane(snap.fields, 0, g.dims), origin="lower", extent=extent, cmap="Greys", vmin=0, vmax=vmax)
    for t, name in enumerate(setup.agent_names):
        sel = snap.agents["typ"] == t
        if g.dims == 3:  # cells within one voxel layer of the slice
            mid = (g.shape[2] // 2 + 0.5) * g.dx
            sel &= np.abs(snap.agents["pos"][:, 2] - mid) < setup.types.radius[t] + g.dx
        ax.scatter(snap.agents["pos"][sel, 0], snap.agents["pos"][sel, 1], s=6, color=COLOURS[t % len(COLOURS)],
                   label=name, linewidths=0)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.set_title(f"t = {snap.time:g} min", fontsize=9)
    return image


def _top(run) -> float | None:
    """The colour scale's top: the first field's largest value over the run. A field that stays at zero gets 1, so
    that zero is white in every panel (matplotlib widened an empty range to -0.1..0.1, negative concentrations)."""
    if not run.setup.fields:
        return None
    top = max(float(s.fields[0].max()) for s in run.snapshots)
    return top if top > 0 else 1.0


def snapshot_figure(run, path: Path, units: dict[str, str] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: heavy (matplotlib)

    snaps = run.snapshots
    picks = sorted({0, len(snaps) // 3, 2 * len(snaps) // 3, len(snaps) - 1})
    vmax = _top(run)
    fig, axes = plt.subplots(1, len(picks), figsize=(3.2 * len(picks) + 1, 3.4), squeeze=False, layout="constrained")
    image = None
    for ax, i in zip(axes[0], picks):
        image = _draw(ax, run, snaps[i], vmax)
        ax.set_xlabel("x (µm)")
    axes[0][0].set_ylabel("y (µm)")
    axes[0][-1].legend(loc="upper right", fontsize=7, markerscale=2)
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label=_labelled(run.setup.fields[0], units))
    fig.savefig(path, dpi=110, bbox_inches="tight")  # (square panels without a colour bar left the titles outside)
    plt.close(fig)
    return path


def timeseries_figure(run, path: Path, units: dict[str, str] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: heavy (matplotlib)

    counts = run.counts()
    mean, peak = run.field_stats()
    # one panel per unit among the fields (a figure mixes no units on an axis); a tissue of cells alone: counts only
    groups: dict[str | None, list[int]] = {}
    for k, name in enumerate(run.setup.fields):
        groups.setdefault((units or {}).get(name), []).append(k)
    panels = 1 + len(groups)
    fig, axes = plt.subplots(1, panels, figsize=(5 + 4.6 * (panels - 1) if panels > 1 else 5.5, 3.6), squeeze=False)
    a = axes[0][0]
    for k, name in enumerate(run.setup.agent_names):
        a.plot(run.times, counts[:, k], color=COLOURS[k % len(COLOURS)], label=name)
    a.set_xlabel("time (min)")
    a.set_ylabel("cells")
    a.legend(fontsize=8)
    for b, (unit, members) in zip(axes[0][1:], groups.items()):
        for k in members:  # a field's mean and maximum in one colour: solid and dashed
            name, colour = run.setup.fields[k], COLOURS[k % len(COLOURS)]
            b.plot(run.times, mean[:, k], color=colour, label=f"{name} mean")
            b.plot(run.times, peak[:, k], color=colour, linestyle="--", label=f"{name} max")
        b.set_xlabel("time (min)")
        b.set_ylabel(f"concentration ({unit})" if unit else "level (no unit declared)")
        b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def body_columns(run, model) -> dict[str, np.ndarray]:
    """The well-mixed species and the model's observables over the run (tissue.systemic), by name."""
    from ilsim.io.tissue import timeseries  # the one place those columns are computed

    table = timeseries(run, model)
    names = [model.species[i] for i in run.link.wellmixed] + list(model.observables)
    return {name: table[name].to_numpy() for name in names if name in table}


def systemic_figure(run, model, path: Path, units: dict[str, str] | None = None) -> Path | None:
    """The body beside the lesion: one panel per plot of the model's ``plots:`` whose variables are all well-mixed
    species or observables (fever, CRP), with their thresholds; else one panel per well-mixed species. None without a
    systemic link."""
    if run.link is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: heavy (matplotlib)

    columns = body_columns(run, model)
    panels = [(p.title, p.variables, p.thresholds) for p in model.spec.plots if all(v in columns for v in p.variables)]
    panels = panels or [(name, [name], []) for name in list(columns)[:4]]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 0.5, 3.4), squeeze=False)
    for ax, (title, names, thresholds) in zip(axes[0], panels):
        for name in names:
            ax.plot(run.times, columns[name], label=_labelled(name, units))
        for th in thresholds:
            ax.axhline(th.value, color="grey", linestyle=":", linewidth=1)
            ax.annotate(th.label or f"{th.value:g}", (run.times[0], th.value), fontsize=7, color="grey",
                        va="bottom")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("time (min)")
        shared = {(units or {}).get(name) for name in names}  # the axis's unit where the panel's lines share one
        if len(shared) == 1 and None not in shared:
            ax.set_ylabel(shared.pop())
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def animation(run, folder: Path, units: dict[str, str] | None = None) -> Path:
    """animation.mp4 (imageio-ffmpeg) or animation.gif, with the snapshots' axes and colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: heavy (matplotlib)
    from matplotlib.animation import FuncAnimation, PillowWriter
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    snaps = run.snapshots
    step = max(1, -(-len(snaps) // MAX_FRAMES))
    frames = snaps[::step]
    vmax = _top(run)
    fig, ax = plt.subplots(figsize=(5, 5))
    if run.setup.fields:  # the frames' scale is fixed, so one colour bar serves them all
        fig.colorbar(ScalarMappable(Normalize(0, vmax), "Greys"), ax=ax, shrink=0.8,
                     label=_labelled(run.setup.fields[0], units))

    def frame(i):
        ax.clear()
        _draw(ax, run, frames[i], vmax)
        ax.set_xlabel("x (µm)")
        ax.set_ylabel("y (µm)")

    anim = FuncAnimation(fig, frame, frames=len(frames))
    try:
        import imageio_ffmpeg  # noqa: F401  lazy: optional (the tissue extra)
        from matplotlib.animation import FFMpegWriter

        matplotlib.rcParams["animation.ffmpeg_path"] = imageio_ffmpeg.get_ffmpeg_exe()
        path = folder / "animation.mp4"
        anim.save(path, writer=FFMpegWriter(fps=8))
    except ImportError:
        path = folder / "animation.gif"
        anim.save(path, writer=PillowWriter(fps=8))
    plt.close(fig)
    return path


def _labelled(name: str, units: dict[str, str] | None) -> str:
    unit = (units or {}).get(name)
    return f"{name} ({unit})" if unit else name


def write_report(folder: Path, run, info: dict, title: str, units: dict[str, str] | None = None, model=None) -> Path:
    """figures/snapshots.png, figures/timeseries.png, the animation and report.html (self-contained); ``units``: the
    species' unit labels, for the axes; with the compiled ``model`` and a systemic link, figures/systemic.png too."""
    figures = folder / "figures"
    figures.mkdir(exist_ok=True)
    pngs = [snapshot_figure(run, figures / "snapshots.png", units), timeseries_figure(run, figures / "timeseries.png", units)]
    body = systemic_figure(run, model, figures / "systemic.png", units) if model is not None else None
    if body is not None:
        pngs.append(body)
    movie = animation(run, figures, units)
    data = base64.b64encode(movie.read_bytes()).decode("ascii")
    media = (f"<video controls loop src='data:video/mp4;base64,{data}'></video>" if movie.suffix == ".mp4"
             else f"<img alt='animation' src='data:image/gif;base64,{data}'>")
    images = "".join(f"<p><img alt='{html_text(p.stem)}' src='data:image/png;base64,"
                     f"{base64.b64encode(p.read_bytes()).decode('ascii')}'></p>" for p in pngs)
    outcome = f"; outcome: <b>{html_text(info['outcome'])}</b>" if info.get("outcome") else ""
    body = (f"<h1>{html_text(title)}</h1><p>tissue run: {html_text(str(info.get('t_end')))} min, seed "
            f"{html_text(str(info.get('seed')))}{outcome}</p><h2>Animation</h2><p>{media}</p><h2>Figures</h2>{images}"
            f"<h2>Summary</h2><pre>{_html.escape(json.dumps(info, indent=2))}</pre>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html_text(title)}</title>"
            f"<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}} img,video{{max-width:100%}}</style>"
            f"</head><body>{body}</body></html>")
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
