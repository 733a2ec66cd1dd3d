"""PhysiCell's virus-macrophage sample beside ilsim's scenario ``physicell-virus-macrophage``: cell counts over time.

    python bench/tissue_virus_macrophage_vs_physicell.py [--seeds 10] [--minutes 2880] [--jobs 2] [--out DIR]

PhysiCell's side: the sample project built from its public source (``bench/tissue_vs_physicell.py``'s ``build``:
~/.cache/ilsim-bench/physicell/virus-sample, ``make virus-macrophage-sample`` and ``make -jJOBS`` when missing), run
with its own settings (shared/data/physicell/virus_macrophage) and, per run, ``random_seed`` set to the seed, one
OpenMP thread, SVG off, full output every 60 min; the counts are read from each ``outputNNNNNNNN_cells.mat`` (label
indices from the matching XML): live epithelial cells holding fewer than one virion (uninfected) or at least one
(infected: they replicate, custom.cpp's min_virion_count), dead epithelial cells (PhysiCell removes lysed and eaten
cells, so dead = 1010 - live epithelial), and macrophages.

ilsim's side: ``ilsim.compile("physicell-virus-macrophage")`` built with each seed (placement and the cells' random
streams), the same counts from the snapshots (every 60 min). Writes counts.csv (tool, seed, time, counts), a figure
per count (mean and min-max band of the replicates for both tools, minutes on x: counts.png) and prints, per count,
the means and standard deviations of both at every 480 min with the difference in standard errors.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))

from tissue_vs_physicell import HOME, build, outputs, write_settings  # noqa: E402  (the PhysiCell build the sample benches share)

COUNTS = ("uninfected", "infected", "dead", "macrophages")
EPITHELIAL = 1010  # custom.cpp setup_tissue: 10 infected + 1000 uninfected
INFECTED_FROM = 1.0  # virions: custom_data min_virion_count (replication starts)


def physicell_run(binary: Path, seed: int, minutes: float, work: Path) -> tuple[list[tuple], float]:
    settings = write_settings(seed, minutes, work / f"physicell_seed{seed}")
    start = time.perf_counter()
    subprocess.run([str(binary), str(settings)], cwd=HOME, check=True, capture_output=True)
    wall = time.perf_counter() - start
    rows = []
    for t, labels, cells in outputs(settings.parent):
        typ = cells[labels["cell_type"]].astype(int)
        live = cells[labels["dead"]] == 0
        virus = cells[labels["internalized_total_substrates"]]  # the first of its two entries: virus
        epithelial = (typ == 0) & live
        infected = int(np.sum(epithelial & (virus >= INFECTED_FROM)))
        rows.append((t, int(epithelial.sum()) - infected, infected, EPITHELIAL - int(epithelial.sum()),
                     int(np.sum((typ == 1) & live))))
    return rows, wall


def ilsim_run(seed: int, minutes: float) -> tuple[list[tuple], float]:
    import ilsim
    from ilsim.engines.tissue.engine import run
    from ilsim.engines.tissue.setup import build as build_setup

    setup = build_setup(ilsim.compile("physicell-virus-macrophage").spec, seed=seed)
    column = setup.internal_names.index("virions_inside")
    epithelial_type, macrophage_type = setup.agent_names.index("epithelial"), setup.agent_names.index("macrophage")
    start = time.perf_counter()
    result = run(setup, t_end=minutes, save_every=60.0, seed=seed)
    wall = time.perf_counter() - start
    rows = []
    for s in result.snapshots:
        epithelial = s.agents["typ"] == epithelial_type
        infected = int(np.sum(epithelial & (s.agents["internal"][:, column] >= INFECTED_FROM)))
        rows.append((s.time, int(epithelial.sum()) - infected, infected, EPITHELIAL - int(epithelial.sum()),
                     int(np.sum(s.agents["typ"] == macrophage_type))))
    return rows, wall


def table(rows: list[dict], tool: str) -> tuple[np.ndarray, np.ndarray]:
    """Times and counts (seeds x times x counts) of one tool."""
    mine = [r for r in rows if r["tool"] == tool]
    times = np.array(sorted({r["time"] for r in mine}))
    seeds = sorted({r["seed"] for r in mine})
    out = np.full((len(seeds), len(times), len(COUNTS)), np.nan)
    for r in mine:
        out[seeds.index(r["seed"]), np.searchsorted(times, r["time"])] = [r[c] for c in COUNTS]
    return times, out


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    for tool, colour in (("PhysiCell", "tab:blue"), ("ilsim", "tab:orange")):
        times, data = table(rows, tool)
        for k, ax in enumerate(axes.ravel()):
            values = data[:, :, k]
            ax.fill_between(times, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=colour, alpha=0.25, lw=0)
            ax.plot(times, np.nanmean(values, axis=0), color=colour, label=f"{tool} (mean, min-max of {len(data)} seeds)")
            ax.set_title(COUNTS[k])
            ax.set_ylabel("cells")
    for ax in axes[1]:
        ax.set_xlabel("time (min)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("PhysiCell's virus-macrophage sample and ilsim's physicell-virus-macrophage")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(rows: list[dict], every: float = 480.0) -> None:
    times, pc = table(rows, "PhysiCell")
    _, il = table(rows, "ilsim")
    print(f"{'count':12s} {'t(min)':>7s} {'PhysiCell mean±sd':>20s} {'ilsim mean±sd':>18s} {'diff/SE':>8s}")
    for k, name in enumerate(COUNTS):
        for j, t in enumerate(times):
            if t % every and j != len(times) - 1:
                continue
            a, b = pc[:, j, k], il[:, j, k]
            se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
            z = (b.mean() - a.mean()) / se if se > 0 else 0.0
            print(f"{name:12s} {t:7.0f} {a.mean():12.1f} ± {a.std(ddof=1):5.1f} {b.mean():10.1f} ± {b.std(ddof=1):5.1f} "
                  f"{z:8.2f}")


def read_rows(path: Path) -> list[dict]:
    with path.open() as fh:
        return [{**r, "seed": int(r["seed"]), "time": float(r["time"]), **{c: int(r[c]) for c in COUNTS}}
                for r in csv.DictReader(fh)]


def write_rows(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["tool", "seed", "time", *COUNTS])
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def milestones(rows: list[dict]) -> None:
    """Per tool, over the seeds: when half the epithelium is dead (first saved time), and the infected peak."""
    for tool in ("PhysiCell", "ilsim"):
        times, data = table(rows, tool)
        dead, infected = data[:, :, COUNTS.index("dead")], data[:, :, COUNTS.index("infected")]
        half = [times[np.argmax(d >= EPITHELIAL / 2)] if (d >= EPITHELIAL / 2).any() else np.nan for d in dead]
        peak, when = infected.max(axis=1), times[infected.argmax(axis=1)]
        print(f"{tool:9s} half dead at {np.nanmean(half):6.0f} ± {np.nanstd(half, ddof=1):4.0f} min "
              f"({np.isfinite(half).sum()} of {len(half)} seeds); infected peak {peak.mean():5.1f} ± {peak.std(ddof=1):4.1f} "
              f"at {when.mean():5.0f} ± {when.std(ddof=1):4.0f} min")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--minutes", type=float, default=2880)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "virus_macrophage")
    ap.add_argument("--only", choices=("PhysiCell", "ilsim"),
                    help="run one tool (two processes, one per tool, may share --out: each writes counts_TOOL.csv)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    binary = build(args.jobs) if args.only != "ilsim" else None
    work = HOME.parent / "physicell-virus-macrophage"
    runners = {"PhysiCell": lambda s: physicell_run(binary, s, args.minutes, work), "ilsim": lambda s: ilsim_run(s, args.minutes)}
    for tool in [args.only] if args.only else list(runners):
        rows = []
        for seed in range(args.seeds):
            got, wall = runners[tool](seed)
            print(f"{tool:9s} seed {seed}: {wall:.1f} s, final {dict(zip(COUNTS, got[-1][1:]))}", flush=True)
            rows += [{"tool": tool, "seed": seed, "time": r[0], **dict(zip(COUNTS, r[1:]))} for r in got]
            write_rows(args.out / f"counts_{tool}.csv", rows)  # after every run: a partial result survives
    parts = [args.out / f"counts_{tool}.csv" for tool in runners]
    if all(p.is_file() for p in parts):  # both tools' rows: the combined CSV, the figure and the comparison
        rows = [r for p in parts for r in read_rows(p)]
        write_rows(args.out / "counts.csv", rows)
        figure(rows, args.out / "counts.png")
        report(rows)
        milestones(rows)
        print(f"wrote {args.out / 'counts.csv'} and {args.out / 'counts.png'}")


if __name__ == "__main__":
    main()
