"""Synthetic measurements for the fitting examples, each from its model at the true parameters with 10 or 15%
log-normal noise:

- treg-fit.yaml: the built-in alexander-wahl-2010 model at its published parameters, regulatory (R) and
  effector (E) T cells on 12 days (seed 16);
- tocilizumab-fit.yaml: serum IL-6 and CRP on 18 days around one tocilizumab dose on day 7, the model at the
  values it is written with (seed 17).

    python examples/fitting/make_data.py     # writes examples/fitting/treg-data.csv and tocilizumab-data.csv
"""

from pathlib import Path

import numpy as np

import ilsim

HERE = Path(__file__).parent
TREG_TIMES = [1, 2, 4, 6, 8, 10, 15, 20, 30, 40, 60, 80]
TCZ_TIMES = [0, 3, 6, 7, 8, 10, 14, 21, 28, 42, 56, 70, 84, 98, 112, 126, 140, 168]  # day 7: just after the dose


def noisy_table(model, times, observables, sigma: float, seed: int) -> str:
    """observable,time,measurement rows: the model's values times exp(sigma * standard normal)."""
    grid = np.unique([0.0, *times])  # the runs start at 0
    ds = ilsim.simulate(model, t_eval=grid)
    at = np.searchsorted(grid, times)
    rng = np.random.default_rng(seed)
    lines = ["observable,time,measurement"]
    for name in observables:
        values = ds[name].values[at]
        noisy = values * np.exp(sigma * rng.standard_normal(len(values)))
        lines += [f"{name},{t:g},{v:.6g}" for t, v in zip(times, noisy)]
    return "\n".join(lines) + "\n"


def main() -> None:
    (HERE / "treg-data.csv").write_text(noisy_table("alexander-wahl-2010", TREG_TIMES, ("R", "E"), 0.1, 16))
    (HERE / "tocilizumab-data.csv").write_text(noisy_table(HERE / "tocilizumab-fit.yaml", TCZ_TIMES, ("IL6", "CRP"),
                                                           0.15, 17))


if __name__ == "__main__":
    main()
