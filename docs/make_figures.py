"""Regenerate the figures of the scenario pages into docs/figures/.

Run from the repository root:  python docs/make_figures.py

Each figure is drawn with matplotlib from trajectories computed by ``ilsim.simulate`` with the
built-in scenario files; the numbers printed are the ones quoted in the pages' tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import ilsim  # noqa: E402

FIGURES = Path(__file__).parent / "figures"
DPI = 90  # keeps each PNG well under 150 kB
COLOURS = {"E": "tab:blue", "T": "tab:red", "I": "tab:green", "P": "tab:red", "N": "tab:blue", "D": "tab:brown",
           "CA": "tab:green"}


def kirschner_panetta() -> Path:
    """Three regimes of Kirschner & Panetta 1998 (time in days, log axes)."""
    runs = [
        ("c = 0.02, no therapy: sustained oscillation", {"c": 0.02}, 1500),
        ("c = 0.035, no therapy: damped to a stable tumour", {"c": 0.035}, 3000),
        ("c = 0.02, s1 = 600 cells/day: tumour cleared", {"c": 0.02, "s1": 600}, 1000),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.9), sharey=True)
    for ax, (title, parameters, t_end) in zip(axes, runs):
        ds = ilsim.simulate("kirschner-panetta-1998", t_end=t_end, points=10 * t_end + 1, parameters=parameters)
        t = ds["time"].values
        for name, label in (("T", "T tumour [cells]"), ("E", "E effector [cells]"), ("I", "I IL-2 [IL-2 units]")):
            ax.plot(t, ds[name].values, color=COLOURS[name], lw=1.0, label=label)
        if parameters == {"c": 0.035}:  # the equilibrium solved in closed form from the paper's equations
            for name, value in (("T", 1.820e4), ("E", 2.128e4), ("I", 1.008e4)):
                ax.axhline(value, color=COLOURS[name], ls=":", lw=1.0)
        ax.set_yscale("log")
        ax.set_ylim(1e-2, 1e8)
        ax.set_xlim(0, t_end)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("time [day]")
        ax.grid(alpha=0.3)
        final = ", ".join(f"{v} = {float(ds[v][-1]):.4g}" for v in ("T", "E", "I"))
        print(f"KP {parameters}: at day {t_end}: {final}; outcome {ds.attrs['outcome']!r}")
    axes[0].set_ylabel("cells or IL-2 units")
    axes[2].legend(fontsize=8, loc="upper right")
    fig.suptitle("Kirschner & Panetta 1998 in ilsim (dotted: the analytic tumour equilibrium at c = 0.035)", fontsize=10)
    fig.tight_layout()
    return save(fig, "kirschner-panetta-1998.png")


def reynolds() -> Path:
    """The three outcomes of Reynolds et al. 2006, Fig. 5: one column per outcome, one row per variable."""
    runs = [
        ("kpg = 0.3/h, P0 = 1: health", {"kpg": 0.3, "P0": 1.0}),
        ("kpg = 0.3/h, P0 = 1.5: aseptic death", {"kpg": 0.3, "P0": 1.5}),
        ("kpg = 0.6/h, P0 = 1: septic death", {"kpg": 0.6, "P0": 1.0}),
    ]
    rows = [("P", "P pathogen\n[1e6 cells/cc]"), ("N", "N phagocytes\n[1e6 cells/cc]"), ("D", "D damage\n[a.u.]"),
            ("CA", "CA anti-infl.\n[a.u.]")]
    fig, axes = plt.subplots(len(rows), len(runs), figsize=(10, 7.5), sharex=True, sharey="row")
    for col, (title, parameters) in enumerate(runs):
        ds = ilsim.simulate("reynolds-2006", t_end=500, points=5001, parameters=parameters)
        t = ds["time"].values
        for row, (name, label) in enumerate(rows):
            ax = axes[row, col]
            ax.plot(t, ds[name].values, color=COLOURS[name], lw=1.2)
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel(label, fontsize=8)
        axes[0, col].set_title(f"{title}\n(ilsim outcome: {ds.attrs['outcome']})", fontsize=9)
        axes[-1, col].set_xlabel("time [hour]")
        peaks = ", ".join(
            f"{v} peak {np.max(ds[v].values):.4g} at {t[np.argmax(ds[v].values)]:.1f} h, final {float(ds[v][-1]):.4g}"
            for v in ("P", "N", "D", "CA")
        )
        print(f"Reynolds {parameters}: {ds.attrs['outcome']}: {peaks}")
    axes[0, 0].set_xlim(0, 500)
    fig.suptitle("Reynolds et al. 2006, Fig. 5 scenarios in ilsim", fontsize=10)
    fig.tight_layout()
    return save(fig, "reynolds-2006.png")


def alexander_wahl() -> Path:
    """Alexander & Wahl 2010: tolerance (R0 < 1) next to chronic autoimmunity (R0 > 1); log y axes.

    Top row: the first 20 days (the effector peak); bottom row: 500 days (decay or settling).
    """
    runs = [
        ("paper's parameter values: R0 = 0.80", {}),
        ("fewer Tregs of other specificities, b1 = 0.05/day: R0 = 1.33", {"b1": 0.05}),
    ]
    series = [("G", "G free self-antigen [antigen units]", "tab:green"), ("R", "R self-specific Tregs [cells]", "tab:purple"),
              ("E", "E autoreactive effectors [cells]", "tab:red"), ("A", "A mature pAPCs [cells]", "tab:blue")]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharey=True)
    for col, (title, parameters) in enumerate(runs):
        ds = ilsim.simulate("alexander-wahl-2010", t_end=500, points=50_001, parameters=parameters)
        t = ds["time"].values
        r0 = json.loads(ds.attrs["derived"])["R0"]
        for row, t_max in enumerate((20, 500)):
            ax = axes[row, col]
            for name, label, colour in series:
                ax.plot(t, ds[name].values, color=colour, lw=1.2, label=label)
                if ds.attrs["outcome"] == "chronic autoimmunity":  # the non-trivial equilibrium it settles at
                    ax.axhline(float(ds[name][-1]), color=colour, ls=":", lw=0.8)
            ax.axhline(1.0, color="grey", ls="--", lw=0.8)
            ax.set_yscale("log")
            ax.set_ylim(1e-4, 1e9)
            ax.set_xlim(0, t_max)
            ax.set_xlabel("time [day]")
            ax.grid(alpha=0.3)
        axes[0, col].set_title(f"{title}\n(ilsim: R0 = {r0:.4f}, outcome: {ds.attrs['outcome']})", fontsize=9)
        e = ds["E"].values
        i = int(np.argmax(e))
        if t[i] <= 20:  # the effector peak of the first response
            axes[0, col].plot(t[i], e[i], "o", color="tab:red", ms=4)
            axes[0, col].annotate(f"E peak {e[i]:.0f} at day {t[i]:.2f}", (t[i], e[i]), xytext=(6, 8), textcoords="offset points",
                                  fontsize=7, color="tab:red")
        peak = ", ".join(f"{v} peak {np.max(ds[v].values):.5g} at day {t[np.argmax(ds[v].values)]:.3f}" for v in "ARE")
        final = ", ".join(f"{v} = {float(ds[v][-1]):.4g}" for v in "AREG")
        below = f"E < 1 from day {t[np.argmax((e < 1) & (t > 10))]:.1f}" if e[-1] < 1 else "E stays above 1"
        print(f"AW {parameters}: R0 = {r0:.6g}, {ds.attrs['outcome']}; {peak}; at day 500: {final}; {below}")
    for row in range(2):
        axes[row, 0].set_ylabel("cells or antigen units")
    axes[1, 0].text(490, 1.3, "E = 1 cell: tolerance threshold", ha="right", va="bottom", fontsize=7, color="grey")
    axes[1, 1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Alexander & Wahl 2010 (system 1) in ilsim; dotted: the autoimmune equilibrium", fontsize=10)
    fig.tight_layout()
    return save(fig, "alexander-wahl-2010.png")


def infection_resolution() -> list[Path]:
    """infection-resolution: the intact run (pathogen, cells, cytokines, readouts), and the three
    faults at full severity overlaid on the intact run."""
    model = ilsim.compile("infection-resolution")
    ds = ilsim.simulate(model, t_end=60, points=1201)
    t = ds["time"].values
    panels = [
        ("bacteria and damage", [("P", "P bacteria [1e6 CFU]"), ("D", "D damage [% tissue]")], True),
        ("cells [cells/uL]", [("M", "M macrophages"), ("Th", "Th helper T"), ("E", "E effector T"),
                              ("Treg", "Treg")], True),
        ("fight cytokines [pg/mL]", [("IL1b", "IL-1b"), ("IL6", "IL-6"), ("IL12", "IL-12"), ("IL2", "IL-2")], False),
        ("stop signal [pg/mL]", [("IL10", "IL-10"), ("TGFb", "TGF-b")], False),
        ("temperature [C] and CRP [mg/L]", [("temperature", "temperature")], False),
        ("indices and repair rate", [("pain_index", "pain"), ("inflammation_index", "inflammation"),
                                     ("regeneration_rate", "regeneration [1/day]")], False),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.4))
    for ax, (title, names, log) in zip(axes.flat, panels):
        for j, (name, label) in enumerate(names):
            ax.plot(t, ds[name].values, color=f"C{j}", lw=1.2, label=label)
        if title.startswith("temperature"):
            ax.set_ylim(36.8, 40)
            twin = ax.twinx()
            twin.plot(t, ds["CRP"].values, color="tab:red", lw=1.0, ls="--", label="CRP")
            twin.set_ylabel("CRP [mg/L]", fontsize=8)
            twin.legend(fontsize=7, loc="center right")
        if log:
            ax.set_yscale("log")
            ax.set_ylim(1e-3, 2e3)
        ax.axvline(35, color="grey", ls=":", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("time [day]")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle("infection-resolution, intact (infection on day 1; dotted: day 35, everything back near baseline)"
                 f"; outcome: {ds.attrs['outcome']}", fontsize=10)
    fig.tight_layout()
    first = save(fig, "infection-resolution.png")
    i = int(np.argmax(ds["temperature"].values))
    print(f"infection-resolution intact: fever peak {ds['temperature'].values[i]:.2f} C on day {t[i]:.1f}, "
          f"IL-6 peak {ds['IL6'].values.max():.0f} pg/mL, CRP peak {ds['CRP'].values.max():.0f} mg/L, "
          f"E peak {ds['E'].values.max():.0f} cells/uL, D peak {ds['D'].values.max():.2f} %")

    variants = {"intact": {}, "stop-not-received": {"stop-not-received": 1.0},
                "stop-ignored": {"stop-ignored": 1.0}, "false-alarm": {"false-alarm": 1.0}}
    runs = {label: ilsim.simulate(model, t_end=120, points=1201, faults=f or None) for label, f in variants.items()}
    rows = [("P", "bacteria [1e6 CFU]", True), ("D", "damage [% tissue]", True), ("E", "effector T [cells/uL]", True),
            ("IL6", "IL-6 [pg/mL]", False), ("IL10", "IL-10, unbound [pg/mL]", False),
            ("stop_received", "stop signal received", False), ("stop_response", "stop signal acted on", False),
            ("temperature", "temperature [C]", False)]
    fig, axes = plt.subplots(2, 4, figsize=(14, 6.2))
    styles = {"intact": ("black", "-"), "stop-not-received": ("tab:blue", "--"), "stop-ignored": ("tab:orange", "-."),
              "false-alarm": ("tab:red", ":")}
    for ax, (name, label, log) in zip(axes.flat, rows):
        for variant, run in runs.items():
            colour, ls = styles[variant]
            ax.plot(run["time"].values, run[name].values, color=colour, ls=ls, lw=1.3, label=variant)
        if log:
            ax.set_yscale("log")
            ax.set_ylim(1e-4, 2e3)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("time [day]")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle("infection-resolution: the three faults at severity 1 vs intact", fontsize=10)
    fig.tight_layout()
    second = save(fig, "infection-resolution-faults.png")
    for variant, run in runs.items():
        values = ", ".join(f"{v} {float(run[v].sel(time=90)):.3g}" for v in
                           ("P", "D", "E", "IL6", "IL12", "IL2", "IL10", "IL10_bound", "stop_received", "stop_response",
                            "temperature", "CRP"))
        print(f"infection-resolution {variant}: day 90: {values}; outcome {run.attrs['outcome']!r}")
    return [first, second]


def infection_resolution_therapy() -> Path:
    """Which therapy helps which fault: damage over time, each fault at severity 1, therapy on days
    20-50 (the same runs as tests/scenarios/test_infection_resolution_therapy.py)."""
    therapies = {"no therapy": [], "IL-10 infusion": [("il10_infusion", 300.0)], "anti-IL-12": [("s_IL12", 0.0)],
                 "remove self-reading subset": [("w_false", 0.0), ("k_auto", 0.0)]}

    def treated(changes):
        model = ilsim.load("infection-resolution")
        model.add_parameter("il10_infusion", 0.0, units="pg/mL/day", source="therapy")
        model.add_process("IL-10 infusion", "il10_infusion", produces={"IL10": 1})
        baseline = {p.name: p.value for p in model.parameters}
        if changes:
            model.add_event("therapy starts", at=20, set=dict(changes))
            model.add_event("therapy stops", at=50, set={name: baseline[name] for name, _ in changes})
        return ilsim.compile(model)

    models = {label: treated(changes) for label, changes in therapies.items()}
    modes = ["stop-not-received", "stop-ignored", "false-alarm"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    for ax, mode in zip(axes, modes):
        for j, (label, model) in enumerate(models.items()):
            run = ilsim.simulate(model, t_end=120, points=601, faults={mode: 1.0})
            ax.plot(run["time"].values, run["D"].values, color=f"C{j}", lw=1.3,
                    label=f"{label} ({run.attrs['outcome'].split(' ')[0]})")
        ax.axvspan(20, 50, color="grey", alpha=0.12)
        ax.set_yscale("log")
        ax.set_ylim(1e-6, 1e2)
        ax.set_title(f"{mode} (severity 1)", fontsize=9)
        ax.set_xlabel("time [day]")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    axes[0].set_ylabel("tissue damage D [% tissue]")
    fig.suptitle("infection-resolution: which therapy (days 20-50, shaded) helps which fault", fontsize=10)
    fig.tight_layout()
    return save(fig, "infection-resolution-therapy.png")


def pharmacodynamics() -> Path:
    """docs/pharmacodynamics.md: the panels examples/tocilizumab-pd.yaml declares, drawn as `ilsim run` draws them."""
    from ilsim.report.figures import draw, panels

    model = ilsim.compile(str(Path(__file__).parents[1] / "examples" / "tocilizumab-pd.yaml"))
    ds = ilsim.simulate(model)
    fig = draw({"": ds}, panels(ds, model)[:len(model.spec.plots)])
    fig.suptitle("Tocilizumab 8 mg/kg at day 7: receptor occupancy, IL-6 signalling and CRP", fontsize=10)
    crp = ds["CRP"].values
    below = ds["time"].values[crp < 10.0]
    print(f"PD: CRP nadir {crp.min():.3g} mg/L at day {float(ds['time'][crp.argmin()]):.3g}; "
          f"below 10 mg/L from day {below[0]:.3g} to {below[-1]:.3g}")
    return save(fig, "pharmacodynamics.png")


def save(fig, name: str, dpi: int = DPI) -> Path:
    """Write a figure into docs/figures/ (every figure script saves through this)."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / name
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB)")
    return path


if __name__ == "__main__":
    kirschner_panetta()
    reynolds()
    infection_resolution()
    infection_resolution_therapy()
    alexander_wahl()
    pharmacodynamics()
    # scenarios whose figure scripts also print the numbers their pages quote
    import figures_aldesleukin
    import figures_allergy
    import figures_chronic_inflammation
    import figures_friberg

    for script in (figures_allergy, figures_chronic_inflammation, figures_aldesleukin, figures_friberg):
        script.main()
