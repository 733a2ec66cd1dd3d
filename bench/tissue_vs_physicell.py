"""PhysiCell's virus-macrophage sample beside ilsim's import of its settings: cell counts over time, a few seeds each.

    python bench/tissue_vs_physicell.py [--seeds 3] [--minutes 240] [--jobs 2]

Builds PhysiCell from the local mirror (/work/.mirror/MathCancer+PhysiCell/repo, a bare git directory) into
~/.cache/ilsim-bench/physicell with ``make -j JOBS`` (the sample project: ``make virus-macrophage-sample``), runs it
with each seed on one thread (output every 60 min; SVG off), and reads live epithelial, dead epithelial and
macrophage counts from each ``outputNNNNNNNN_cells.mat`` (the label indices from the matching XML).

ilsim's side: ``ilsim import-physicell --skip-unmapped`` of the same settings, with the cells the sample's custom
``setup_tissue`` places (10 infected + 1000 uninfected epithelial cells and 50 macrophages, uniform in the domain)
written as its cells CSV, run with the same seeds. What the sample's custom C++ code does (viral replication inside
cells, lysis at the burst count, interferon secretion, macrophages eating infected cells) has no ilsim equivalent and
is not in the imported model, so the epithelium's counts there stay constant: the comparison shows how far the
part the importer maps carries, and where the custom code takes over.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

REPO = Path("/work/.mirror/MathCancer+PhysiCell/repo")
HOME = Path.home() / ".cache" / "ilsim-bench" / "physicell"
SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "physicell" / "virus_macrophage"
ROOT = Path(__file__).resolve().parents[1]


def build(jobs: int) -> Path:
    binary = HOME / "virus-sample"
    if binary.is_file():
        return binary
    HOME.mkdir(parents=True, exist_ok=True)
    if not (HOME / "Makefile").is_file():
        archive = subprocess.run(["git", f"--git-dir={REPO}", "archive", "HEAD"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(HOME)], input=archive, check=True)
        subprocess.run(["make", "virus-macrophage-sample"], cwd=HOME, check=True, capture_output=True)
    subprocess.run(["make", f"-j{jobs}"], cwd=HOME, check=True)
    return binary


def write_settings(seed: int, minutes: float, out: Path) -> Path:
    """The sample's settings with this seed and end, one thread, SVG off, full output into ``out`` (made empty)."""
    root = ET.parse(SAMPLE / "PhysiCell_settings.xml").getroot()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    root.find("overall/max_time").text = str(minutes)
    root.find("options/random_seed").text = str(seed)
    root.find("parallel/omp_num_threads").text = "1"
    root.find("save/folder").text = str(out)
    root.find("save/SVG/enable").text = "false"
    settings = out / "settings.xml"
    ET.ElementTree(root).write(settings)
    return settings


def outputs(out: Path):
    """Each full output of a run: (time in min, label -> row index, the cells matrix: rows x cells)."""
    from scipy.io import loadmat  # lazy: only the bench needs it

    for xml in sorted(out.glob("output*.xml")):
        if not re.fullmatch(r"output\d{8}\.xml", xml.name):
            continue
        doc = ET.parse(xml).getroot()
        labels = {el.text.strip(): int(el.get("index")) for el in doc.iter("label")}
        yield float(doc.find(".//current_time").text), labels, loadmat(out / xml.name.replace(".xml", "_cells.mat"))["cells"]


def physicell_counts(binary: Path, seed: int, minutes: float) -> list[tuple[float, int, int, int]]:
    out = HOME / f"output_seed{seed}"
    settings = write_settings(seed, minutes, out)
    subprocess.run([str(binary), str(settings)], cwd=HOME, check=True, capture_output=True)
    rows = []
    for t, labels, cells in outputs(out):
        typ = cells[labels["cell_type"]].astype(int)
        dead = cells[labels["dead"]] > 0 if "dead" in labels else np.isin(cells[labels["cycle_model"]], (100, 101))
        rows.append((t, int(np.sum((typ == 0) & ~dead)), int(np.sum((typ == 0) & dead)), int(np.sum(typ == 1))))
    return rows


def ilsim_counts(seed: int, minutes: float, work: Path) -> list[tuple[float, int, int, int]]:
    sys.path.insert(0, str(ROOT / "src"))
    import ilsim
    from ilsim.io import physicell

    imported = physicell.import_physicell(SAMPLE / "PhysiCell_settings.xml", partial=True, name="virus_macrophage")
    rng = np.random.default_rng(seed)  # setup_tissue: uniform positions in the domain
    size = imported.data["tissue"]["domain"]["size"]
    cells = [(*(rng.random(2) * size), "epithelial_cell") for _ in range(1010)]
    cells += [(*(rng.random(2) * size), "macrophage") for _ in range(50)]
    imported.cells = cells
    imported.data["tissue"]["agents"][0]["placement"] = {"kind": "csv", "file": None}
    model = work / "virus_macrophage.yaml"
    physicell.write(imported, model)
    result = ilsim.tissue(str(model), t_end=minutes, save_every=60, seed=seed)
    counts = result.counts()
    return [(t, int(c[0]), 0, int(c[1])) for t, c in zip(result.times, counts)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=240)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    binary = build(args.jobs)
    work = HOME / "ilsim_models"
    work.mkdir(exist_ok=True)
    print("seed  engine    t(min)  epithelial_live  epithelial_dead  macrophages")
    for seed in range(args.seeds):
        for name, rows in (("physicell", physicell_counts(binary, seed, args.minutes)),
                           ("ilsim", ilsim_counts(seed, args.minutes, work))):
            for t, live, dead, mac in rows:
                print(f"{seed:4d}  {name:9s} {t:7.0f}  {live:15d}  {dead:15d}  {mac:11d}")


if __name__ == "__main__":
    main()
