"""Make docs/figures/chronic-inflammation.png: the built-in scenario `chronic-inflammation`
untreated and with each drug (RA-like setting), and print the numbers quoted in
docs/scenarios/chronic-inflammation.md.

    python docs/figures_chronic_inflammation.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from make_figures import save  # noqa: E402

import ilsim  # noqa: E402

OUT = Path(__file__).parent / "figures" / "chronic-inflammation.png"
OFF = {"tcz_mg_per_kg": 0}
REGIMENS = {
    "untreated": (OFF, "0.3"),
    "tocilizumab 8 mg/kg IV q4w x3": ({}, "C0"),
    "anakinra 100 mg SC daily x28": ({**OFF, "anakinra_mg": 100}, "C1"),
    "ustekinumab 390 mg IV + 90 mg SC q8w": ({**OFF, "ust_iv_mg": 390, "ust_sc_mg": 90}, "C2"),
}
DRUG = {"tocilizumab 8 mg/kg IV q4w x3": "TCZ", "anakinra 100 mg SC daily x28": "ANK",
        "ustekinumab 390 mg IV + 90 mg SC q8w": "UST"}


def main():
    model = ilsim.compile("chronic-inflammation")
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.4), sharex=True)
    for row, weight in enumerate((0.2, 0.7)):
        setting = "RA-like" if weight == 0.2 else "Crohn's-like"
        for label, (params, colour) in REGIMENS.items():
            ds = ilsim.simulate(model, 240, parameters={**params, "il23_axis_weight": weight}, points=1201)
            t = ds["time"].values
            axes[row, 0].plot(t, ds["CRP"], color=colour, label=label, lw=1.2)
            axes[row, 1].plot(t, ds["inflammation_index"], color=colour, lw=1.2)
            if label in DRUG:
                axes[row, 2].semilogy(t, ds[DRUG[label]].values.clip(1e-3), color=colour, lw=1.0)
            print(f"{setting:12s} {label:38s} CRP day 29 {float(ds['CRP'].sel(time=29)):5.1f}  "
                  f"CRP min {float(ds['CRP'].sel(time=slice(30, 240)).min()):5.2f}  "
                  f"index min {float(ds['inflammation_index'].sel(time=slice(30, 240)).min()):.3f}  "
                  f"CRP day 240 {float(ds['CRP'][-1]):5.1f}")
        axes[row, 0].axhline(3, color="k", ls=":", lw=0.8)
        axes[row, 0].set_ylabel(f"{setting} (il23_axis_weight {weight})\nCRP (mg/L)")
        axes[row, 1].set_ylabel("inflammation index")
        axes[row, 2].set_ylabel("drug concentration (mg/L)")
        axes[row, 2].set_ylim(1e-2, 400)
    axes[0, 0].legend(fontsize=7, loc="center right")
    axes[0, 0].set_title("CRP (dotted: 3 mg/L)", fontsize=9)
    axes[0, 1].set_title("inflammation index", fontsize=9)
    axes[0, 2].set_title("serum drug (same in both settings)", fontsize=9)
    for ax in axes[1]:
        ax.set_xlabel("day (doses from day 30)")
    fig.suptitle("chronic-inflammation: untreated and with tocilizumab, anakinra, ustekinumab", fontsize=10)
    fig.tight_layout()
    save(fig, OUT.name, dpi=80)


if __name__ == "__main__":
    main()
