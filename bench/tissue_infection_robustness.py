"""How robust the outcome of the built-in `tissue-infection` is: healthy and each fault, over seeds and time steps.

For every (variant, dt, seed), the scenario (or another model file with the same faults) runs from its own seed at
that dt to ``--t-end`` minutes, and the model's outcome label is judged on the run's series (``systemic.outcome``, as
``ilsim tissue`` does). A healthy lesion counts as healed when the label is ``resolved`` or ``resolving`` (bacteria
cleared, TNF down); a faulted one as not healed when it is ``chronic inflammation`` or ``infection persists``.

A run whose cells pass ``--max-cells`` is stopped there and labelled ``runaway``: a lesion that has filled a quarter
of the square millimetre with neutrophils and is still growing does not heal, and running it on would take minutes
per run. It counts as not healed.

Prints one line per run and, at the end, the table of counts used in docs/tissue-infection.md (markdown).

Run:   python bench/tissue_infection_robustness.py [--seeds 1 2 3 4 5] [--dt 0.25 0.5 1] [--t-end 2880] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor

VARIANTS = ["healthy", "stop-not-received", "stop-ignored", "false-alarm"]
HEALED = ("resolved", "resolving")


class _Runaway(Exception):
    pass


def one(job: tuple) -> dict:
    model_name, variant, seed, dt, t_end, max_cells = job
    import ilsim
    from ilsim.engines.tissue import systemic
    from ilsim.engines.tissue.engine import run
    from ilsim.engines.tissue.setup import build

    model = ilsim.compile(model_name)
    spec = model.spec.model_copy(update={"tissue": model.spec.tissue.model_copy(update={"dt": dt})})
    values = model.fault_overrides({} if variant == "healthy" else {variant: 1.0})
    setup = build(spec, values=values or None, seed=seed)

    def watch(t: float, cells: int) -> None:
        if cells > max_cells:
            raise _Runaway(t, cells)

    start = time.perf_counter()
    row = {"variant": variant, "dt": dt, "seed": seed}
    try:
        result = run(setup, link=systemic.link(model, setup, model.parameter_vector(values)), t_end=t_end,
                     save_every=60.0, seed=seed, on_step=watch)
    except _Runaway as stop:
        return {**row, "label": "runaway", "at_min": stop.args[0], "cells": stop.args[1],
                "wall_s": round(time.perf_counter() - start, 1)}
    Y = systemic.series(result, model)
    s = model.species.index
    temperature = model.observe(result.times, Y, model.p0)[:, list(model.observables).index("temperature")]
    return {**row, "label": systemic.outcome(result, model), "B_end": int(Y[-1, s("B")]),
            "Neu_peak": int(Y[:, s("Neu")].max()), "Neu_end": int(Y[-1, s("Neu")]), "TNF_end": round(float(Y[-1, s("TNF")]), 2),
            "IL10_peak": round(float(Y[:, s("IL10")].max()), 1), "T_peak": round(float(temperature.max()), 2),
            "T_end": round(float(temperature[-1]), 2), "wall_s": round(time.perf_counter() - start, 1)}


def table(rows: list[dict], dts: list[float], n_seeds: int) -> str:
    lines = ["| variant | " + " | ".join(f"dt {d:g} min" for d in dts) + " |", "|---" * (len(dts) + 1) + "|"]
    for variant in VARIANTS:
        cells = []
        for d in dts:
            got = [r for r in rows if r["variant"] == variant and r["dt"] == d]
            if not got:
                cells.append("-")
                continue
            healed = sum(r["label"] in HEALED for r in got)
            cells.append(f"{healed}/{len(got)} healed" if variant == "healthy" else f"{len(got) - healed}/{len(got)} not healed")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tissue-infection")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--dt", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--t-end", type=float, default=2880.0, help="minutes (the scenario's 48 h)")
    parser.add_argument("--max-cells", type=int, default=2500)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    jobs = [(args.model, v, s, d, args.t_end, args.max_cells) for v in args.variants for d in args.dt for s in args.seeds]
    rows = []
    with ProcessPoolExecutor(args.workers) as pool:
        for row in pool.map(one, jobs):
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{args.model}, to {args.t_end:g} min, seeds {' '.join(map(str, args.seeds))}:\n")
    print(table(rows, args.dt, len(args.seeds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
