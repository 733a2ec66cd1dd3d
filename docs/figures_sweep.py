"""Draw the figures of docs/sweep.md and docs/sensitivity.md and print the numbers quoted there.

Run from the repository root:  python docs/figures_sweep.py

Both use the built-in scenario ``reynolds-2006`` and the library's own figure functions (the ones
``ilsim sweep`` and ``ilsim sensitivity`` put in their result folders):

* sweep-reynolds-2006.png: the outcome over pathogen growth rate kpg x initial load P0, 80 x 80 points,
  beside the tissue damage D at 500 h;
* sensitivity-reynolds-2006.png: Sobol' indices of the outcome "health" (a 0/1 indicator) over kpg,
  P0, the phagocytes' killing rate kpn and the anti-inflammatory scale cinf (N = 512, seed 2006).
"""

from __future__ import annotations

from make_figures import save

import ilsim
from ilsim.report.sweep import draw_indices, draw_sweep

SWEEP_GRID = {"kpg": "0.05:1.0:80", "P0": "0.05:4.0:80"}  # 1/h and 1e6 cells/cc; the paper's Fig. 5 lies inside
SENSITIVITY_RANGES = {"kpg": (0.1, 0.7), "P0": (0.5, 2.0), "kpn": (0.9, 2.7), "cinf": (0.14, 0.42)}  # kpn, cinf: +-50%


def sweep_figure():
    result = ilsim.sweep("reynolds-2006", SWEEP_GRID, metric="D.final")
    info = result.info
    print(f"sweep: {info['points']} points in {info['wall_time_s']:.2f} s; outcomes {info['outcomes']}")
    table = result.table
    for kpg in (0.05, 0.3, 0.5):  # the largest inoculum that still heals, at a few growth rates
        column = table[abs(table["kpg"] - kpg) == abs(table["kpg"] - kpg).min()]
        healthy = column.loc[column["outcome"] == "health", "P0"]
        print(f"  kpg = {column['kpg'].iloc[0]:.3g}/h: health up to P0 = {healthy.max():.3g}")
    septic = table.loc[table["outcome"] == "septic death", "kpg"]
    print(f"  septic death from kpg = {septic.min():.3g}")
    return save(draw_sweep(result), "sweep-reynolds-2006.png")


def sensitivity_figure():
    result = ilsim.sensitivity("reynolds-2006", SENSITIVITY_RANGES, "outcome=health", samples=512, seed=2006)
    info = result.info
    print(f"sensitivity: {info['evaluated']} runs in {info['wall_time_s']:.2f} s, {info['failed']} failed")
    print(result.indices[["S1", "S1_conf", "ST", "ST_conf"]].round(3).to_string())
    return save(draw_indices(result), "sensitivity-reynolds-2006.png")


if __name__ == "__main__":
    sweep_figure()
    sensitivity_figure()
