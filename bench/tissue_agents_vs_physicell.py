"""Cells beside PhysiCell: the same model, the same thread count, simulated minutes per wall second on both sides.

    python bench/tissue_agents_vs_physicell.py [--cells 10000 100000] [--threads 1 2] [--minutes 5]
    python bench/tissue_agents_vs_physicell.py --scaling | --counts 8

The model (no custom behaviour: PhysiCell's built-in models only): a 2-D square at one cell per 50 x 50 µm, 20 µm
voxels, one field (IL-2 like: D = 600 µm²/min, decay 0.01/min); two cell types of radius 5 µm, half secreting
(net export 1000 per min) and half consuming (uptake 5/min), all on a persistent random walk (2 µm/min, 3 min),
repelling each other (strength 10, no adhesion), dividing at 0.002/min (PhysiCell's "live" cycle) and dying at
0.001/min (apoptosis). Both step diffusion, mechanics and fates every 0.1 min.

PhysiCell's side: this script writes the settings XML and the cells CSV, and a small project whose only code places
those cells (``load_cells_from_pugixml``) and steps the loop, timing the loop alone; it is compiled against the
objects of the PhysiCell build in ~/.cache/ilsim-bench/physicell (``make -j2`` of the core objects when missing,
from the mirror /work/.mirror/MathCancer+PhysiCell/repo). ilsim's side: ``ilsim import-physicell`` of the very
same XML and CSV, then the tissue engine on that model, timed after a warm-up (numba compilation excluded), setup
excluded as on PhysiCell's side. No output during the loop on either side.

Checked on both: the live cells at the end against N0·e^((b−d)t) (a birth-death process; ± its standard
deviation), and the mean field at the end (deterministic given the cells, so it must agree closely).

``--scaling`` times ilsim alone at 3 cell counts on one grid size and 3 grid sizes with one cell count (cost per step);
``--counts SEEDS`` runs a smaller case longer (2,000 cells, 60 min) with that many seeds on both and compares the
mean live count at the end with the birth-death process's.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path("/work/.mirror/MathCancer+PhysiCell/repo")
HOME = Path.home() / ".cache" / "ilsim-bench" / "physicell"
WORK = HOME / "agents_bench"
ROOT = Path(__file__).resolve().parents[1]
DENSITY = 1.0 / 2500.0  # cells per µm²
VOXEL, DT, RADIUS = 20.0, 0.1, 5.0
BIRTH, DEATH = 0.002, 0.001  # 1/min
SECRETION, UPTAKE, DIFFUSION, DECAY = 1000.0, 5.0, 600.0, 0.01
SPEED, PERSISTENCE, REPULSION = 2.0, 3.0, 10.0
CFLAGS = ["-march=native", "-O3", "-fomit-frame-pointer", "-mfpmath=both", "-fopenmp", "-m64", "-std=c++11"]
OBJECTS = ("BioFVM_vector.o BioFVM_mesh.o BioFVM_microenvironment.o BioFVM_solvers.o BioFVM_matlab.o BioFVM_utilities.o "
           "BioFVM_basic_agent.o BioFVM_MultiCellDS.o BioFVM_agent_container.o pugixml.o PhysiCell_phenotype.o "
           "PhysiCell_cell_container.o PhysiCell_standard_models.o PhysiCell_cell.o PhysiCell_custom.o "
           "PhysiCell_utilities.o PhysiCell_constants.o PhysiCell_signal_behavior.o PhysiCell_rules.o "
           "PhysiCell_basic_signaling.o PhysiCell_SVG.o PhysiCell_pathology.o PhysiCell_MultiCellDS.o "
           "PhysiCell_various_outputs.o PhysiCell_pugixml.o PhysiCell_settings.o PhysiCell_geometry.o").split()

# The project's whole code: PhysiCell's default cell functions, the types from the XML, the cells from the CSV; the
# loop of PhysiCell's main.cpp (diffusion, then every cell's phenotype, mechanics and fates), timed alone.
MAIN_CPP = r"""
#include <cstdio>
#include <omp.h>
#include "core/PhysiCell.h"
#include "modules/PhysiCell_standard_modules.h"
using namespace BioFVM;
using namespace PhysiCell;

int main(int argc, char* argv[])
{
    if (argc < 2 || !load_PhysiCell_config_file(argv[1])) { return 1; }
    omp_set_num_threads(PhysiCell_settings.omp_num_threads);
    initialize_microenvironment();
    create_cell_container_for_microenvironment(microenvironment, 30);
    initialize_default_cell_definition();
    cell_defaults.phenotype.secretion.sync_to_microenvironment(&microenvironment);
    cell_defaults.functions.volume_update_function = standard_volume_update_function;
    cell_defaults.functions.update_velocity = standard_update_cell_velocity;
    cell_defaults.functions.update_migration_bias = NULL;
    cell_defaults.functions.update_phenotype = NULL;
    cell_defaults.functions.custom_cell_rule = NULL;
    cell_defaults.functions.contact_function = NULL;
    cell_defaults.functions.add_cell_basement_membrane_interactions = NULL;
    cell_defaults.functions.calculate_distance_to_membrane = NULL;
    initialize_cell_definitions_from_pugixml();
    build_cell_definitions_maps();
    setup_signal_behavior_dictionaries();
    setup_cell_rules();
    load_cells_from_pugixml();
    int steps = (int) std::round(PhysiCell_settings.max_time / diffusion_dt);
    double start = omp_get_wtime();
    for (int s = 0; s < steps; s++)
    {
        microenvironment.simulate_diffusion_decay(diffusion_dt);
        ((Cell_Container*) microenvironment.agent_container)->update_all_cells(PhysiCell_globals.current_time);
        PhysiCell_globals.current_time += diffusion_dt;
    }
    double wall = omp_get_wtime() - start;
    long live[2] = {0, 0}, dead = 0;
    for (Cell* c : *all_cells)
    {
        if (c->phenotype.death.dead) { dead++; } else { live[c->type]++; }
    }
    double total = 0.0;
    for (unsigned int n = 0; n < microenvironment.number_of_voxels(); n++) { total += microenvironment.density_vector(n)[0]; }
    std::printf("RESULT steps=%d wall_s=%.6f live_S=%ld live_C=%ld dead=%ld field_mean=%.10g\n", steps, wall, live[0],
                live[1], dead, total / microenvironment.number_of_voxels());
    return 0;
}
"""


def cell_definition(name: str, index: int, secretion: float, uptake: float) -> str:
    volume = 4.0 / 3.0 * math.pi * RADIUS**3
    return f"""
    <cell_definition name="{name}" ID="{index}">
      <phenotype>
        <cycle code="5" name="live">
          <phase_transition_rates units="1/min">
            <rate start_index="0" end_index="0" fixed_duration="false">{BIRTH}</rate></phase_transition_rates>
        </cycle>
        <death>
          <model code="100" name="apoptosis"><death_rate units="1/min">{DEATH}</death_rate>
            <phase_durations units="min"><duration index="0" fixed_duration="true">516</duration></phase_durations></model>
          <model code="101" name="necrosis"><death_rate units="1/min">0</death_rate>
            <phase_durations units="min"><duration index="0" fixed_duration="true">0</duration>
              <duration index="1" fixed_duration="true">86400</duration></phase_durations></model>
        </death>
        <volume><total units="micron^3">{volume:.6f}</total></volume>
        <mechanics>
          <cell_cell_adhesion_strength units="micron/min">0</cell_cell_adhesion_strength>
          <cell_cell_repulsion_strength units="micron/min">{REPULSION}</cell_cell_repulsion_strength>
          <attachment_rate units="1/min">0</attachment_rate>
        </mechanics>
        <motility>
          <speed units="micron/min">{SPEED}</speed>
          <persistence_time units="min">{PERSISTENCE}</persistence_time>
          <migration_bias units="dimensionless">0</migration_bias>
          <options><enabled>true</enabled><use_2D>true</use_2D><chemotaxis><enabled>false</enabled>
            <substrate>IL2</substrate><direction>1</direction></chemotaxis></options>
        </motility>
        <secretion>
          <substrate name="IL2"><secretion_rate units="1/min">0</secretion_rate><secretion_target>0</secretion_target>
            <uptake_rate units="1/min">{uptake}</uptake_rate><net_export_rate>{secretion}</net_export_rate></substrate>
        </secretion>
      </phenotype>
    </cell_definition>"""


def settings_xml(side: float, minutes: float, threads: int, seed: int, folder: Path, voxel: float = VOXEL) -> str:
    return f"""<PhysiCell_settings version="devel-version">
  <domain><x_min>0</x_min><x_max>{side}</x_max><y_min>0</y_min><y_max>{side}</y_max>
    <z_min>{-voxel / 2}</z_min><z_max>{voxel / 2}</z_max>
    <dx>{voxel}</dx><dy>{voxel}</dy><dz>{voxel}</dz><use_2D>true</use_2D></domain>
  <overall><max_time units="min">{minutes}</max_time><time_units>min</time_units><space_units>micron</space_units>
    <dt_diffusion units="min">{DT}</dt_diffusion><dt_mechanics units="min">{DT}</dt_mechanics>
    <dt_phenotype units="min">{DT}</dt_phenotype></overall>
  <parallel><omp_num_threads>{threads}</omp_num_threads></parallel>
  <save><folder>{folder}</folder><full_data><interval units="min">{minutes}</interval><enable>false</enable></full_data>
    <SVG><interval units="min">{minutes}</interval><enable>false</enable></SVG>
    <legacy_data><enable>false</enable></legacy_data></save>
  <options><virtual_wall_at_domain_edge>true</virtual_wall_at_domain_edge>
    <disable_automated_spring_adhesions>true</disable_automated_spring_adhesions><random_seed>{seed}</random_seed></options>
  <microenvironment_setup>
    <variable name="IL2" units="dimensionless" ID="0">
      <physical_parameter_set><diffusion_coefficient units="micron^2/min">{DIFFUSION}</diffusion_coefficient>
        <decay_rate units="1/min">{DECAY}</decay_rate></physical_parameter_set>
      <initial_condition units="dimensionless">0</initial_condition>
      <Dirichlet_boundary_condition units="dimensionless" enabled="false">0</Dirichlet_boundary_condition>
    </variable>
    <options><calculate_gradients>false</calculate_gradients>
      <track_internalized_substrates_in_each_agent>false</track_internalized_substrates_in_each_agent></options>
  </microenvironment_setup>
  <cell_definitions>{cell_definition("S", 0, SECRETION, 0.0)}{cell_definition("C", 1, 0.0, UPTAKE)}
  </cell_definitions>
  <initial_conditions><cell_positions type="csv" enabled="true"><folder>.</folder><filename>cells.csv</filename>
    </cell_positions></initial_conditions>
</PhysiCell_settings>
"""


def side_for(cells: int) -> float:
    return VOXEL * max(3, round(math.sqrt(cells / DENSITY) / VOXEL))


def write_case(cells: int, minutes: float, threads: int, seed: int, side: float | None = None, voxel: float = VOXEL) -> Path:
    """A folder with PhysiCell_settings.xml and cells.csv (version 1: x, y, z, type ID; half of each type)."""
    side = side or side_for(cells)
    folder = WORK / f"case_{cells}_{int(side)}_{voxel:g}_{threads}t_{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    xy = RADIUS + rng.random((cells, 2)) * (side - 2 * RADIUS)
    kinds = np.arange(cells) % 2
    np.savetxt(folder / "cells.csv", np.column_stack([xy, np.zeros(cells), kinds]), fmt=["%.4f", "%.4f", "%g", "%d"],
               delimiter=",")
    (folder / "PhysiCell_settings.xml").write_text(settings_xml(side, minutes, threads, seed, folder / "output", voxel))
    (folder / "output").mkdir(exist_ok=True)
    return folder


def build_physicell(jobs: int = 2) -> Path:
    """The bench binary, linked against the core objects of the PhysiCell build (made with make -jJOBS if missing)."""
    binary = WORK / "agents-bench"
    if binary.is_file():
        return binary
    WORK.mkdir(parents=True, exist_ok=True)
    if not (HOME / "Makefile").is_file():
        HOME.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", f"--git-dir={REPO}", "archive", "HEAD"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(HOME)], input=archive, check=True)
    missing = [o for o in OBJECTS if not (HOME / o).is_file()]
    if missing:
        subprocess.run(["make", f"-j{min(jobs, 2)}", *missing], cwd=HOME, check=True, capture_output=True)
    (WORK / "main.cpp").write_text(MAIN_CPP)
    subprocess.run(["g++", *CFLAGS, f"-I{HOME}", "-o", str(binary), str(WORK / "main.cpp"), *(str(HOME / o) for o in OBJECTS)],
                   check=True)
    return binary


def run_physicell(binary: Path, folder: Path) -> dict:
    out = subprocess.run([str(binary), str(folder / "PhysiCell_settings.xml")], cwd=folder, check=True, capture_output=True,
                         text=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    values = dict(item.split("=") for item in line.split()[1:])
    return {"wall_s": float(values["wall_s"]), "steps": int(values["steps"]),
            "live": int(values["live_S"]) + int(values["live_C"]), "field_mean": float(values["field_mean"])}


def import_model(folder: Path) -> Path:
    """``ilsim import-physicell`` of the case's settings (and the cells CSV they enable): nothing left out."""
    model = folder / "model.yaml"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([sys.executable, "-m", "ilsim", "import-physicell", str(folder / "PhysiCell_settings.xml"), "--out",
                    str(model), "--overwrite"], check=True, capture_output=True, env=env)
    return model


def run_ilsim(model: Path, threads: int, seed: int) -> dict:
    import numba

    import ilsim
    from ilsim.engines.tissue.engine import run
    from ilsim.engines.tissue.setup import build

    numba.set_num_threads(threads)
    spec = ilsim.compile(str(model)).spec
    setup = build(spec, source=str(model), base=model.parent)
    started = time.perf_counter()
    out = run(setup, seed=seed)
    wall = time.perf_counter() - started
    mean, _ = out.field_stats()
    return {"wall_s": wall, "steps": round(setup.tissue.t_end / setup.tissue.dt), "live": int(out.counts()[-1].sum()),
            "field_mean": float(mean[-1, 0])}


def warm_up() -> None:
    folder = write_case(4000, 1.0, 1, 0)  # past both PARALLEL_FROM thresholds: the threaded drivers compiled or loaded too
    run_ilsim(import_model(folder), 1, 0)


def compare(args) -> None:
    binary = build_physicell()
    warm_up()
    print(f"{args.minutes:g} simulated min at dt = {DT} min; live cells expected N0·e^((b−d)t) ± sd")
    print("| cells | voxels | threads | PhysiCell sim min/s | ilsim sim min/s | ilsim / PhysiCell | live at end: "
          "expected | PhysiCell | ilsim | mean field at end: PhysiCell | ilsim |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for cells in args.cells:
        expected, sd = expected_live(cells, args.minutes)
        for threads in args.threads:
            folder = write_case(cells, args.minutes, threads, args.seed)
            model = import_model(folder)
            pc = run_physicell(binary, folder)
            il = run_ilsim(model, threads, args.seed)
            voxels = round(side_for(cells) / VOXEL) ** 2
            speed = {k: args.minutes / v["wall_s"] for k, v in (("pc", pc), ("il", il))}
            print(f"| {cells:,} | {voxels:,} | {threads} | {speed['pc']:.3g} | {speed['il']:.3g} | "
                  f"{speed['il'] / speed['pc']:.2f} | {expected:,.0f} ± {sd:.0f} | {pc['live']:,} | {il['live']:,} | "
                  f"{pc['field_mean']:.5g} | {il['field_mean']:.5g} |", flush=True)


def expected_live(cells: int, minutes: float) -> tuple[float, float]:
    """Mean and standard deviation of the live count of a linear birth-death process started from ``cells``."""
    growth = math.exp((BIRTH - DEATH) * minutes)
    return cells * growth, math.sqrt(cells * (BIRTH + DEATH) / (BIRTH - DEATH) * growth * (growth - 1))


def counts(args) -> None:
    """The live count at the end over several seeds, both engines, against the birth-death process's mean."""
    binary = build_physicell()
    warm_up()
    cells, minutes = args.count_cells, args.count_minutes
    live: dict[str, list[int]] = {"PhysiCell": [], "ilsim": []}
    field: dict[str, list[float]] = {"PhysiCell": [], "ilsim": []}
    for seed in range(args.counts):
        folder = write_case(cells, minutes, 1, seed)
        for name, result in (("PhysiCell", run_physicell(binary, folder)), ("ilsim", run_ilsim(import_model(folder), 1, seed))):
            live[name].append(result["live"])
            field[name].append(result["field_mean"])
    mean, sd = expected_live(cells, minutes)
    print(f"{cells:,} cells, {minutes:g} min, {args.counts} seeds: live cells expected {mean:,.1f} (sd of one run {sd:.1f}, "
          f"of the mean of {args.counts}: {sd / math.sqrt(args.counts):.1f})")
    for name in live:
        x = np.array(live[name], dtype=float)
        print(f"  {name:9s} live at the end: mean {x.mean():,.1f} ± {x.std(ddof=1) / math.sqrt(len(x)):.1f} (s.e.), "
              f"{(x.mean() - mean) / (sd / math.sqrt(len(x))):+.2f} sd of the mean from expected; "
              f"mean field {np.mean(field[name]):.6g}")


def scaling(args) -> None:
    """ilsim's cost per step (one thread; the faster of two runs, as other jobs load the machine). Cells: 10,000,
    40,000 and 160,000 at the benchmark's density, the voxels grown with the domain so the grid stays 500 x 500.
    Voxels: 10,000 cells on a 10 mm square cut into 250 x 250, 500 x 500 and 1000 x 1000 voxels. Each series with
    its least-squares line a + b·x."""
    warm_up()
    series = {"cells": [(n, 500 * v, v) for n, v in ((10_000, 10.0), (40_000, 20.0), (160_000, 40.0))],
              "voxels": [(10_000, 10_000.0, v) for v in (40.0, 20.0, 10.0)]}
    print("| varied | cells | voxels | ms per step | fitted a + b·x |")
    print("|---|---|---|---|---|")
    for varied, cases in series.items():
        rows = []
        for cells, side, voxel in cases:
            model = import_model(write_case(cells, args.minutes, 1, args.seed, side, voxel))
            il = min((run_ilsim(model, 1, args.seed) for _ in range(2)), key=lambda r: r["wall_s"])
            rows.append((cells, round(side / voxel) ** 2, il["wall_s"] / il["steps"] * 1e3))
        x = np.array([r[0] if varied == "cells" else r[1] for r in rows], dtype=float)
        y = np.array([r[2] for r in rows])
        b, a = np.polyfit(x, y, 1)
        for (cells, voxels, ms), fit in zip(rows, a + b * x):
            print(f"| {varied} | {cells:,} | {voxels:,} | {ms:.2f} | {fit:.2f} |")
        print(f"| {varied}: a = {a:.2f} ms, b = {b * 1e3:.4f} µs per {varied[:-1]}; largest residual "
              f"{np.max(np.abs(a + b * x - y) / y):.1%} | | | | |", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scaling", action="store_true", help="ilsim's cost against cells and voxels instead")
    ap.add_argument("--counts", type=int, default=0, help="instead: the live count over this many seeds, both engines")
    ap.add_argument("--count-cells", type=int, default=2000)
    ap.add_argument("--count-minutes", type=float, default=60.0)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    if args.counts:
        counts(args)
    elif args.scaling:
        scaling(args)
    else:
        compare(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
