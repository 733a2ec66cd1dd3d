"""The figures of docs/stochastic.md: the fan chart of the immune birth-death example, and the chance that a small
inoculum is cleared before the interleukin response against the branching-process answers.

Run from the repository root:  PYTHONPATH=src python docs/figures_stochastic.py

Clearance before t_IL with division rate lam and killing mu per bacterium (examples/inoculum-clearance.yaml):
each bacterium's line is a linear birth-death process, so the inoculum is gone by t with probability q(t)^n,
q(t) = mu (e^{(lam - mu) t} - 1) / (lam e^{(lam - mu) t} - mu) (Kendall 1948); the branching-process
approximation usually quoted is the ultimate extinction probability (mu / lam)^n, which ignores that the
response starts at t_IL. The SSA estimate (Wilson 95% intervals) is printed beside both.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import ilsim  # noqa: E402
from ilsim import ensemble  # noqa: E402
from ilsim.engines.ssa import SsaEngine  # noqa: E402
from ilsim.report.ensemble import plot_fan  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"


def fan() -> Path:
    ds = ilsim.simulate(ROOT / "examples" / "immune-birth-death.yaml", engine=SsaEngine(trajectories=1000, seed=7))
    stats = ensemble.statistics(ds)
    (e_mean, e_sd), (il_mean, il_sd) = (stats[v].sel(statistic=["mean", "sd"]).values[:, -1] for v in ("E", "IL"))
    print(f"immune birth-death at t = 50: mean E {e_mean:.3f}, sd {e_sd:.3f}; mean IL {il_mean:.2f}, sd {il_sd:.2f}")
    return plot_fan(stats, FIGURES / "stochastic-fan.png")


def clearance(t_il: float = 0.5, lam: float = 4.0, mu: float = 2.5, trajectories: int = 4000) -> Path:
    model = ilsim.compile(ilsim.load(ROOT / "examples" / "inoculum-clearance.yaml"))
    e = math.exp((lam - mu) * t_il)
    q = mu * (e - 1) / (lam * e - mu)
    sizes = np.arange(1, 13)
    rows = []
    for n in sizes:
        ds = ilsim.simulate(model, t_eval=[0.0, t_il], parameters={"B0": float(n)},
                            engine=SsaEngine(trajectories=trajectories, seed=int(n)))
        cleared = int((ds["B"].values[:, -1] == 0).sum())
        lo, hi = ensemble.wilson(cleared, trajectories)
        rows.append((n, cleared / trajectories, lo, hi, q**n, (mu / lam) ** n))
    print(f"{'n':>3} {'SSA':>7} {'95% interval':>17} {'q(t_IL)^n':>10} {'(mu/lam)^n':>11}")
    for n, p, lo, hi, exact, branching in rows:
        print(f"{n:3d} {p:7.4f} {lo:8.4f}-{hi:8.4f} {exact:10.4f} {branching:11.4f}")
    r = np.array(rows)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.errorbar(r[:, 0], r[:, 1], yerr=[r[:, 1] - r[:, 2], r[:, 3] - r[:, 1]], fmt="o", color="tab:blue", ms=4,
                capsize=2, label=f"SSA, {trajectories:,} trajectories (95% Wilson)")
    ax.plot(r[:, 0], r[:, 4], color="black", lw=1.2, label=r"exact: $q(t_{IL})^n$ (birth-death, Kendall)")
    ax.plot(r[:, 0], r[:, 5], color="tab:red", lw=1.2, ls="--", label=r"branching process: $(\mu/\lambda)^n$")
    ax.set_xlabel("inoculum (bacteria)")
    ax.set_ylabel(f"P(cleared before t_IL = {t_il:g} day)")
    ax.set_yscale("log")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    path = FIGURES / "stochastic-clearance.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


if __name__ == "__main__":
    print(fan())
    print(clearance())
