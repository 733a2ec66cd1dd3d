"""Draw docs/figures/aldesleukin.png and print the numbers quoted in docs/scenarios/aldesleukin.md.

Run from the repository root:  python docs/figures_aldesleukin.py

Trajectories come from ``ilsim.simulate`` with the built-in scenario ``aldesleukin`` (the labelled
schedule with the hypotension holding rule), the Textor et al. 1987 schedule (100,000 U/kg, taken as
600,000 IU/kg, every 8 h for 5 days, no holding rule) and a patient with a low baseline pressure
(SBP0 = 100 mmHg) to show the holding rule at work.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from make_figures import save  # noqa: E402

import ilsim  # noqa: E402
from ilsim.therapy import ctcae  # noqa: E402

OUT = Path(__file__).parent / "figures" / "aldesleukin.png"
DPI = 70
LAST_DOSE = 104.0
READOUTS = {"Hypotension": "systolic_bp", "Fever": "temperature", "Chills": "chills_index", "Nausea": "nausea_index",
            "Vomiting": "vomiting_rate", "Weight gain": "body_weight_now", "Platelet count decreased": "platelets"}


def textor_spec():
    spec = ilsim.load("aldesleukin")
    spec.doses = [{"drug": "aldesleukin", "route": "iv_infusion", "amount": 600_000, "units": "IU/kg", "duration": 0.25,
                   "every": 8, "count": 15}]
    return spec


def grades_table(ds, title, last_dose):
    summary = ilsim.summarise(ds)
    t = ds["time"].values
    print(f"\n{title}\n| CTCAE term | readout | worst value | max grade | reached at [h] | flags "
          "| grade 0 again [h after last dose] |")
    print("|---|---|---|---|---|---|---|")
    for term, var in READOUTS.items():
        tox = summary["toxicity"][term]
        x = ds[var].values[t < 288]
        worst = x.min() if term in ("Hypotension", "Platelet count decreased") else x.max()
        if term == "Weight gain":
            worst -= 70.0
        g = ctcae.grade_series(term, ds[var].values, t, baseline=70.0 if term == "Weight gain" else None)
        after = (t > last_dose) & (t < 288)
        bad = t[after & (g > 0)]
        back = f"{bad.max() - last_dose:.1f}" if bad.size else "-"
        flags = ", ".join(tox.get("flags") or []) or "-"
        first = tox["time_of_max"]
        first = "-" if first is None else f"{first:.1f}"
        print(f"| {term} | `{var}` | {worst:.4g} | {tox['max_grade']} | {first} | {flags} | {back} |")
    return summary


def main() -> None:
    ds = ilsim.simulate("aldesleukin")
    t = ds["time"].values
    summary = grades_table(ds, "standard schedule (600,000 IU/kg q8h x 14, two courses)", LAST_DOSE)
    log = summary["dose_log"]
    print(f"\ndose log: {sum(e['status'] == 'given' for e in log)} given, {sum(e['status'] == 'held' for e in log)} held")
    pre = [float(np.interp(8.0 * i, t, ds["systolic_bp"].values)) for i in range(14)]
    print("SBP before each dose of course 1 [mmHg]:", ", ".join(f"{v:.1f}" for v in pre))
    c1 = t < 288
    for name, label in (("systolic_bp", "SBP nadir"), ("mean_arterial_pressure", "MAP nadir")):
        x = ds[name].values[c1]
        print(f"{label}: {x.min():.1f} mmHg at {t[c1][x.argmin()]:.1f} h")
    for name, label in (("weight_gain", "peak weight gain [kg]"), ("temperature", "peak temperature [C]"),
                        ("vomiting_rate", "peak vomiting [episodes/24h]")):
        x = ds[name].values[c1]
        print(f"{label}: {x.max():.2f} at {t[c1][x.argmax()]:.1f} h")
    x = ds["platelets"].values[c1]
    print(f"platelet nadir: {x.min():.0f}/mm3 at {t[c1][x.argmin()]:.1f} h; "
          f"albumin nadir {ds['albumin'].values[c1].min():.2f} g/dL")

    tx = ilsim.simulate(textor_spec(), 360, points=3601)
    tt = tx["time"].values
    print("\nTextor schedule at 120 h: weight gain {:.2f} kg, albumin {:.2f} g/dL; "
          "albumin at 216 h {:.2f}; weight at 264 h {:.2f} kg"
          .format(*(float(np.interp(h, tt, tx[v].values)) for h, v in ((120, "weight_gain"), (120, "albumin"),
                                                                        (216, "albumin"), (264, "weight_gain")))))
    grades_table(tx, "Textor schedule (15 doses, no holding rule)", 112.0)

    low = ilsim.simulate("aldesleukin", parameters={"SBP0": 100, "MAP0": 75})
    print("\nlow baseline pressure (SBP0 100 mmHg): dose log")
    for e in ilsim.summarise(low)["dose_log"]:
        if e["status"] != "given" or e["time"] >= 32:
            print(f"  t = {e['time']:.0f} h: dose {e['dose']} {e['status']} {e['reason']}")

    fig, axes = plt.subplots(3, 2, figsize=(11, 9), sharex=True)
    th = t / 24
    ax = axes[0, 0]
    ax.semilogy(th, np.maximum(ds["aldesleukin"].values / 1000, 1e-2))
    ax.set_ylim(1, 3e4)
    ax.set_ylabel("IL-2 [IU/mL]")
    ax.set_title("aldesleukin concentration")
    ax = axes[0, 1]
    ax.plot(th, ds["systolic_bp"], label="SBP")
    ax.plot(th, ds["mean_arterial_pressure"], label="MAP")
    for y, lab in ((100, "g1"), (90, "g2"), (80, "g3 (hold)"), (70, "g4")):
        ax.axhline(y, color="grey", lw=0.5, ls=":")
        ax.text(th[-1], y, lab, fontsize=7, va="bottom", ha="right")
    ax.axhline(65, color="red", lw=0.5, ls="--")
    ax.set_ylabel("mmHg")
    ax.set_title("blood pressure (SBP grades; MAP 65 dashed)")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    ax.plot(th, ds["weight_gain"], label="weight gain [kg]")
    ax.plot(th, ds["albumin"], label="albumin [g/dL]")
    ax.plot(tx["time"].values / 24, tx["weight_gain"], ls="--", color="C0", alpha=0.6, label="Textor: weight gain")
    ax.plot(tx["time"].values / 24, tx["albumin"], ls="--", color="C1", alpha=0.6, label="Textor: albumin")
    ax.plot([5, 5], [4.0, 2.2], "kx")
    ax.set_title("capillary leak (x: Textor et al. 1987 at day 5)")
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    ax.plot(th, ds["temperature"], color="C3")
    ax.axhline(38, color="grey", lw=0.5, ls=":")
    ax.axhline(39, color="grey", lw=0.5, ls=":")
    ax.set_ylabel("degC")
    ax.set_title("temperature")
    ax = axes[2, 0]
    ax.plot(th, ds["platelets"] / 1000)
    ax.axhline(150, color="grey", lw=0.5, ls=":")
    ax.axhline(75, color="grey", lw=0.5, ls=":")
    ax.set_ylabel("x1000 /mm3")
    ax.set_title("platelets (LLN 150, grade 2 below 75)")
    ax = axes[2, 1]
    for k, (term, var) in enumerate(READOUTS.items()):
        g = ctcae.grade_series(term, ds[var].values, t, baseline=70.0 if term == "Weight gain" else None)
        ax.plot(th, g + 0.06 * k, label=term, lw=1)
    ax.set_ylabel("CTCAE grade")
    ax.set_title("grades over time")
    ax.legend(fontsize=6, ncol=2)
    for a in axes[2]:
        a.set_xlabel("day")
    for a in axes.flat:
        for start in (0, 12):
            a.axvspan(start, start + LAST_DOSE / 24, color="grey", alpha=0.08)
    fig.tight_layout()
    save(fig, OUT.name, dpi=DPI)


if __name__ == "__main__":
    main()
