"""Draw docs/figures/allergy.png and print the numbers quoted in docs/scenarios/allergy.md.

Run from the repository root:  python docs/figures_allergy.py

Trajectories come from ``ilsim.simulate`` with the built-in scenario ``allergy`` (allergen
exposures on days 0 and 28), and, for comparison, the same model without memory Th2 cells
(``k_mem = 0``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from make_figures import save  # noqa: E402

import ilsim  # noqa: E402

OUT = Path(__file__).parent / "figures" / "allergy.png"
DPI = 80  # keeps the PNG under 150 kB
EXPOSURES = (0.0, 28.0)
T_END, POINTS = 56.0, 1121
EOS0 = 150.0


def window(ds, name, start, length=28.0):
    t = ds["time"].values
    w = (t >= start) & (t < start + length)
    return t[w] - start, ds[name].values[w]


def reaction(ds, start):
    t, index = window(ds, "allergic_reaction_index", start)
    out = {"time to peak index [day]": t[index.argmax()], "peak reaction index": index.max()}
    for name, label in (("Eos", "peak eosinophils [cells/uL]"), ("Th2", "peak effector Th2 [cells/uL]"),
                        ("IL4", "peak IL-4 [pg/mL]"), ("IL5", "peak IL-5 [pg/mL]"), ("IL13", "peak IL-13 [pg/mL]"),
                        ("sIgE", "peak serum specific IgE [kUA/L]"), ("crosslinking", "peak cross-linking [AU x kUA/L]")):
        out[label] = window(ds, name, start)[1].max()
    tt, eos = window(ds, "Eos", start)
    out["time to peak eosinophils [day]"] = tt[eos.argmax()]
    out["IgE on mast cells at exposure [kUA/L-eq.]"] = window(ds, "IgE_mc", start)[1][0]
    out["memory Th2 at exposure [cells/uL]"] = window(ds, "Tm", start)[1][0]
    return out


def last_day(ds, name, test, start):
    """Last output day (from start on) at which test(value) fails."""
    t = ds["time"].values
    w = t >= start
    bad = t[w][~test(ds[name].values[w])]
    return bad.max() if bad.size else start


def table(ds, title):
    first, second = reaction(ds, EXPOSURES[0]), reaction(ds, EXPOSURES[1])
    print(f"\n{title}\n| | first exposure (day 0) | second exposure (day 28) | second / first |\n|---|---|---|---|")
    for key in first:
        a, b = first[key], second[key]
        ratio = f"{b / a:.2f}" if a > 0 else "-"
        print(f"| {key} | {a:.3g} | {b:.3g} | {ratio} |")
    t1, t2 = first["time to peak index [day]"], second["time to peak index [day]"]
    e1, e2 = first["peak eosinophils [cells/uL]"] - EOS0, second["peak eosinophils [cells/uL]"] - EOS0
    print(f"faster by {100 * (1 - t2 / t1):.1f}%; peak index x{second['peak reaction index'] / first['peak reaction index']:.2f};"
          f" eosinophils above baseline x{e2 / e1:.2f} ({e1:.0f} -> {e2:.0f} cells/uL)")
    return second


def main() -> None:
    model = ilsim.compile("allergy")
    ds = ilsim.simulate(model, T_END, points=POINTS)
    second = table(ds, "allergy (as shipped)")
    table(ilsim.simulate(model, T_END, points=POINTS, parameters={"k_mem": 0.0}), "without memory Th2 cells (k_mem = 0)")
    peak2 = second["peak reaction index"]
    end_index = last_day(ds, "allergic_reaction_index", lambda v: v < 0.05 * peak2, 28.0)
    end_eos = last_day(ds, "Eos", lambda v: np.abs(v - EOS0) <= 0.1 * EOS0, 28.0)
    print(f"\nafter the second exposure: index last >= 5% of its peak on day {end_index:.2f}"
          f" ({end_index - 28:.2f} days after); eosinophils last outside 150 +/- 10% on day {end_eos:.2f}")
    t = ds["time"].values
    for day in (14, 27.95, 56):
        i = int(np.argmin(np.abs(t - day)))
        print(f"day {t[i]:.2f}: sIgE {ds['sIgE'].values[i]:.3g} kUA/L, IgE_mc {ds['IgE_mc'].values[i]:.3g}, "
              f"Tm {ds['Tm'].values[i]:.3g} cells/uL")
    print(f"outcome at day {T_END:g}: {ds.attrs['outcome']!r}; at day 27: "
          f"{ilsim.simulate(model, 27, points=541).attrs['outcome']!r}")

    panels = [
        ("allergen [AU]", [("Ag_muc", "on the mucosa"), ("Ag", "in the tissue")], False),
        ("Th2 cells [cells/uL]", [("Th2", "effector Th2"), ("Tm", "memory Th2")], True),
        ("Th2 cytokines [pg/mL]", [("IL4", "IL-4"), ("IL5", "IL-5"), ("IL13", "IL-13")], False),
        ("allergen-specific IgE", [("sIgE", "serum [kUA/L]"), ("IgE_mc", "on mast cells [kUA/L-eq.]")], False),
        ("blood eosinophils [cells/uL]", [("Eos", "eosinophils")], False),
        ("allergic reaction index (0-1)", [("allergic_reaction_index", "index")], False),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6), sharex=True)
    for ax, (title, lines, log) in zip(axes.flat, panels):
        for name, label in lines:
            ax.plot(t, ds[name].values, lw=1.2, label=label)
        for day in EXPOSURES:
            ax.axvline(day, color="grey", ls=":", lw=0.8)
        if log:
            ax.set_yscale("log")
            ax.set_ylim(1e-3, 20)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=7)
    axes.flat[3].axhline(0.35, color="black", ls="--", lw=0.8)
    axes.flat[3].text(40, 0.5, "0.35 kUA/L: sensitised", fontsize=7)
    axes.flat[4].axhline(EOS0, color="black", ls="--", lw=0.8)
    for ax in axes[1]:
        ax.set_xlabel("time [day]")
    fig.suptitle("allergy: exposures on days 0 and 28 (dotted); the first sensitises, the second reacts faster and "
                 "more strongly", fontsize=10)
    fig.tight_layout()
    save(fig, OUT.name, dpi=DPI)


if __name__ == "__main__":
    main()
