"""Draw the figure of docs/tissue.md (the IL-2 niche) and print the numbers quoted there.

Run from the repository root:  PYTHONPATH=src python docs/figures_tissue.py

The built-in scenario ``il2-niche`` is run for Treg fractions 0, 20 % and 50 % of its 400 consuming cells and for
1x, 3x and 10x its secretion rate (10 molecules/s per producer). For each run: the receptor occupancy of every
responder at 120 min against its distance from the producers' centre, and the *half-occupancy distance* (the
smallest 10 µm distance bin, counted outwards, in which the responders' mean occupancy is below one half).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import ilsim
from ilsim.engines.tissue.engine import run
from ilsim.engines.tissue.setup import build

CENTRE = np.array([125.0, 125.0, 125.0])
CONSUMERS = 400
BINS = np.arange(0.0, 230.0, 10.0)


def niche(treg_fraction: float, secretion_scale: float, seed: int = 1):
    spec = ilsim.compile("il2-niche").spec
    tissue = spec.tissue.model_copy(deep=True)
    th, resp, treg = tissue.agents
    n_treg = round(CONSUMERS * treg_fraction)
    resp.placement.count, treg.placement.count = CONSUMERS - n_treg, n_treg
    spec = spec.model_copy(update={"tissue": tissue})
    q = next(p.value for p in spec.parameters if p.name == "q")
    setup = build(spec, values={"q": q * secretion_scale})  # the cells' secretion is read from the process on q
    out = run(setup, seed=seed)
    last = out.snapshots[-1]
    sel = last.agents["typ"] == 1
    r = np.linalg.norm(last.agents["pos"][sel] - CENTRE, axis=1)
    occ = last.agents["internal"][sel, setup.internal_names.index("occ")]  # the species internal to responders
    which = np.digitize(r, BINS) - 1
    means = np.array([occ[which == b].mean() if np.any(which == b) else np.nan for b in range(len(BINS) - 1)])
    below = np.flatnonzero(means < 0.5)
    half = BINS[below[0]] if len(below) else np.inf
    return r, occ, half, out


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fractions, scales = (0.0, 0.2, 0.5), (1.0, 3.0, 10.0)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    print("half-occupancy distance (µm) at 120 min; rows: secretion x1, x3, x10; columns: Treg fraction 0, 0.2, 0.5")
    for scale in scales:
        row = []
        for frac in fractions:
            r, occ, half, out = niche(frac, scale)
            row.append(half)
            ax = axes[scales.index(scale)]
            ax.scatter(r, occ, s=5, label=f"Treg {frac:.0%} (half at {half:g} µm)")
        print(f"  x{scale:g}: " + ", ".join(f"{h:g}" for h in row))
        ax = axes[scales.index(scale)]
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_title(f"secretion x{scale:g} (10 molecules/s x {scale:g} per producer)", fontsize=9)
        ax.set_xlabel("distance from the producers' centre (µm)")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("IL-2 receptor occupancy at 120 min")
    fig.tight_layout()
    path = Path(__file__).parent / "figures" / "tissue-il2-niche.png"
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")
    _, _, _, out = niche(0.2, 1.0)
    mean = out.field_stats()[0][:, 0]
    print("mean IL-2 (pM) over time (min):", ", ".join(f"{t:g}: {m:.3g}" for t, m in zip(out.times, mean)))


if __name__ == "__main__":
    main()
