"""Draw docs/figures/friberg-docetaxel.png and print the numbers quoted in docs/scenarios/friberg-docetaxel.md.

Run from the repository root:  python docs/figures_friberg.py

Trajectories come from ``ilsim.simulate`` with the built-in scenario ``friberg-docetaxel`` (200 mg
docetaxel as a 1-hour IV infusion at t = 0; time in hours, shown in days): without support, with
filgrastim (``filgrastim_on = 1``) and with oprelvekin (``oprelvekin_on = 1``).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from make_figures import save  # noqa: E402

import ilsim  # noqa: E402

OUT = Path(__file__).parent / "figures" / "friberg-docetaxel.png"
DPI = 80  # keeps the PNG under 150 kB
CIRC0 = 5.05


def recovery_day(ds, name="Circ", level=1.5):
    t, c = ds["time"].values / 24, ds[name].values
    i = int(c.argmin())
    return float(t[i:][c[i:] >= level][0])


def days_below(ds, name, level):
    t = ds["time"].values / 24
    return float(np.sum(ds[name].values < level) * (t[1] - t[0]))


def nadir_and_rebound(ds, name):
    t, c = ds["time"].values / 24, ds[name].values
    i = int(c.argmin())
    j = i + int(c[i:].argmax())
    return c[i], t[i], c[j], t[j]


def terminal_half_life():
    k10 = 38.5 / 7.4
    a = np.array([[-(k10 + 1.06 + 1.26), 1.51, 0.084], [1.06, -1.51, 0.0], [1.26, 0.0, -0.084]])
    rates = np.sort(-np.linalg.eigvals(a).real)
    return rates, [math.log(2) / r for r in rates]


def main() -> None:
    model = ilsim.compile("friberg-docetaxel")
    runs = {
        "no support": ilsim.simulate(model),
        "filgrastim (G-CSF)": ilsim.simulate(model, parameters={"filgrastim_on": 1}),
        "oprelvekin (IL-11)": ilsim.simulate(model, parameters={"oprelvekin_on": 1}),
    }
    base = runs["no support"]
    t = base["time"].values / 24
    n, tn, r, tr = nadir_and_rebound(base, "Circ")
    # Friberg et al. did not simulate this 200 mg infusion: every number here is ilsim's own (snapshot), not published
    print("| quantity | ilsim (snapshot) |\n|---|---|")
    print(f"| neutrophil nadir | {n:.3f}e9/L |")
    print(f"| time of nadir | day {tn:.2f} |")
    print(f"| rebound peak | {r:.2f}e9/L on day {tr:.1f} (Circ0 = 5.05e9/L) |")
    print(f"| Circ on day 42 | {base['Circ'].values[-1]:.3f}e9/L |")
    print(f"docetaxel Cmax {base['docetaxel'].values.max():.3f} mg/L = {base['docetaxel_uM'].values.max():.3f} uM "
          f"at {base['time'].values[base['docetaxel'].values.argmax()]:.2f} h; Edrug max {base['Edrug'].values.max():.1f}")
    edrug = base["Edrug"].values
    print(f"Edrug > 1 until {base['time'].values[edrug > 1].max():.1f} h; Prol minimum {base['Prol'].values.min():.3f}e9/L"
          f" on day {t[base['Prol'].values.argmin()]:.2f}")
    rates, halves = terminal_half_life()
    print("eigenvalues [1/h]: " + ", ".join(f"{x:.4f}" for x in rates)
          + "; half-lives [h]: " + ", ".join(f"{h:.3g}" for h in halves))
    print("\n| | nadir [1e9/L] | day of nadir | back to >= 1.5e9/L on day | days < 1.5 | days < 1.0 (grade >= 3) |"
          " rebound peak [1e9/L] | platelet nadir [1e9/L] | days with platelets < 150 |\n|---|---|---|---|---|---|---|---|---|")
    for label, ds in runs.items():
        n, tn, r, tr = nadir_and_rebound(ds, "Circ")
        print(f"| {label} | {n:.3f} | {tn:.2f} | {recovery_day(ds):.2f} | {days_below(ds, 'Circ', 1.5):.2f} |"
              f" {days_below(ds, 'Circ', 1.0):.2f} | {r:.2f} (day {tr:.1f}) | {ds['Plt'].values.min():.1f} |"
              f" {days_below(ds, 'Plt', 150):.2f} |")
    for label in ("filgrastim (G-CSF)", "oprelvekin (IL-11)"):
        ds = runs[label]
        drug = "filgrastim_ng_mL" if label.startswith("filgrastim") else "oprelvekin_ng_mL"
        print(f"{label}: peak {ds[drug].values.max():.1f} ng/mL; platelets peak {ds['Plt'].values.max():.0f}e9/L on day"
              f" {t[ds['Plt'].values.argmax()]:.1f}")
    print(f"neutrophil recovery earlier with filgrastim by "
          f"{recovery_day(base) - recovery_day(runs['filgrastim (G-CSF)']):.2f} days; platelets below 150e9/L shorter with "
          f"oprelvekin by {days_below(base, 'Plt', 150) - days_below(runs['oprelvekin (IL-11)'], 'Plt', 150):.2f} days")

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    ax.semilogy(base["time"].values, base["docetaxel"].values, color="black", lw=1.2, label="docetaxel [mg/L]")
    ax.semilogy(runs["filgrastim (G-CSF)"]["time"].values, runs["filgrastim (G-CSF)"]["filgrastim_ng_mL"].values / 1000,
                color="tab:blue", lw=0.9, label="filgrastim [mg/L]")
    ax.set_ylim(1e-5, 10)
    ax.set_xlim(0, 96)
    ax.set_xlabel("time [hour]")
    ax.set_title("drug concentrations (first 4 days)", fontsize=9)
    ax.legend(fontsize=7)
    for ax, name, title, levels in ((axes[1], "Circ", "neutrophils [1e9/L]", (1.5, 1.0, 0.5)),
                                    (axes[2], "Plt", "platelets [1e9/L] (assumed chain)", (150,))):
        for label, ds in runs.items():
            if name == "Circ" and label.startswith("oprelvekin") or name == "Plt" and label.startswith("filgrastim"):
                continue
            ax.plot(ds["time"].values / 24, ds[name].values, lw=1.3, label=label)
        for level in levels:
            ax.axhline(level, color="grey", ls=":", lw=0.8)
        ax.set_xlabel("time [day]")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    axes[1].axhline(CIRC0, color="black", ls="--", lw=0.7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("friberg-docetaxel: 200 mg docetaxel (1-h infusion at t = 0); support doses daily from day 1 "
                 "(effects assumed)", fontsize=10)
    fig.tight_layout()
    save(fig, OUT.name, dpi=DPI)


if __name__ == "__main__":
    main()
