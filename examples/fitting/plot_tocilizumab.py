"""The figure of docs/fitting.md's tocilizumab example: the measurements, the model at the truth and at the fit
(from the fitted model file a fit writes), day by day, and the receptor occupancy.

    ilsim fit examples/fitting/tocilizumab-fit.yaml --starts 20 --seed 1 --profiles --out tcz-fit
    python examples/fitting/plot_tocilizumab.py tcz-fit docs/figures/fitting-tocilizumab.png
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import ilsim  # noqa: E402

HERE = Path(__file__).parent


def main(fit_dir: str, out: str) -> None:
    grid = np.linspace(0.0, 168.0, 1681)
    truth = ilsim.simulate(HERE / "tocilizumab-fit.yaml", t_eval=grid)
    fitted = ilsim.simulate(Path(fit_dir) / "model.yaml", t_eval=grid)
    data = pd.read_csv(HERE / "tocilizumab-data.csv")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, name, units in zip(axes, ("IL6", "CRP"), ("pg/mL", "mg/L")):
        rows = data[data["observable"] == name]
        ax.plot(grid, truth[name].values, color="0.6", lw=2.5, label="truth")
        ax.plot(grid, fitted[name].values, color="C0", lw=1.2, label="fit")
        ax.plot(rows["time"], rows["measurement"], "o", color="C3", ms=4, label="measurements")
        ax.set_title(f"serum {name} ({units})")
    axes[2].plot(grid, truth["TCZ_occupancy"].values, color="0.6", lw=2.5, label="truth")
    axes[2].plot(grid, fitted["TCZ_occupancy"].values, color="C0", lw=1.2, label="fit")
    axes[2].set_title("IL-6R blocked by tocilizumab (fraction)")
    for ax in axes:
        ax.axvline(7.0, color="0.8", ls=":", lw=1)
        ax.set_xlabel("day (dose on day 7)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower left", bbox_to_anchor=(0.7, 0.25), frameon=False)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
