"""Synthetic measurements for treg-fit.yaml: the built-in alexander-wahl-2010 model at its published
parameters, regulatory (R) and effector (E) T cells on 12 days, with 10% log-normal noise (seed 16).

    python examples/fitting/make_data.py     # writes examples/fitting/treg-data.csv
"""

from pathlib import Path

import numpy as np

import ilsim

TIMES = [1, 2, 4, 6, 8, 10, 15, 20, 30, 40, 60, 80]
SIGMA = 0.1  # on the natural log scale: about 10% noise


def main() -> None:
    ds = ilsim.simulate("alexander-wahl-2010", t_eval=np.array([0.0, *TIMES], float))
    rng = np.random.default_rng(16)
    lines = ["observable,time,measurement"]
    for species in ("R", "E"):
        values = ds[species].values[1:]
        noisy = values * np.exp(SIGMA * rng.standard_normal(len(values)))
        lines += [f"{species},{t:g},{v:.6g}" for t, v in zip(TIMES, noisy)]
    (Path(__file__).parent / "treg-data.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
