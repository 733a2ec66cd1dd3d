"""The IL-2 / Treg model of examples/il2-treg.yaml, built in Python with the model builder.

Run from the repository root:  python examples/il2_treg.py

It builds the model, simulates 60 days, prints the helper (Th) and regulatory (Treg) T cell
responses to the two antigen pulses, and checks that the trajectory equals the one of the YAML file.
"""

from pathlib import Path

import numpy as np

import ilsim

ASSUMED = "assumed, illustrative"


def build() -> ilsim.Model:
    """Species, parameters, processes, readouts, events and outcome labels, one call each."""
    m = ilsim.Model(name="il2-treg")
    m.metadata.title = "IL-2 shared by helper and regulatory T cells after antigen pulses"
    m.metadata.time_units = "day"

    m.add_species("Ag", 0, kind="other", units="antigen units", group="antigen", description="antigen")
    m.add_species("Th", "Th0", kind="cell", units="cells/uL", description="helper T cells")
    m.add_species("Treg", "Treg0", kind="cell", units="cells/uL", description="regulatory T cells")
    m.add_species("IL2", 0, kind="cytokine", units="pM", description="free IL-2")

    m.add_parameter("Th0", 100, units="cells/uL", source=ASSUMED)
    m.add_parameter("Treg0", 10, units="cells/uL", source=ASSUMED)
    m.add_parameter("kAg", 0.5, units="1/day", source=ASSUMED)
    m.add_parameter("KAg", 1, units="antigen units", source=ASSUMED)
    m.add_parameter("dose", 10, units="antigen units", source=ASSUMED)
    m.add_parameter("rTh", 1.5, units="1/day", source=ASSUMED)
    m.add_parameter("KS", 20, units="cells/uL", source=ASSUMED)
    m.add_parameter("dTh", 0.1, units="1/day", source=ASSUMED)
    m.add_parameter("pIL2", 1.0, units="pM/day per (cells/uL)", source=ASSUMED)
    m.add_parameter("dIL2", 10, units="1/day", source=ASSUMED)
    m.add_parameter("kup", 2.0, units="pM/day per (cells/uL)", source=ASSUMED)
    m.add_parameter("KIL2", 10, units="pM", source="high-affinity IL-2R Kd, order of magnitude (Robb et al. 1984)")
    m.add_parameter("rTreg", 1.0, units="1/day", source=ASSUMED)
    m.add_parameter("dTreg", 0.1, units="1/day", source=ASSUMED)

    m.add_process("antigen clearance", "kAg*Ag", consumes={"Ag": 1})
    m.add_process("helper homeostasis", "dTh*Th0", produces={"Th": 1})
    m.add_process("helper proliferation", "rTh*Th*hill(Ag, KAg, 1)/(1 + Treg/KS)", produces={"Th": 1})
    m.add_process("helper death", "dTh*Th", consumes={"Th": 1})
    m.add_process("IL-2 secretion", "pIL2*Th*hill(Ag, KAg, 1)", produces={"IL2": 1})
    m.add_process("IL-2 uptake by Tregs", "kup*Treg*hill(IL2, KIL2, 1)", consumes={"IL2": 1})
    m.add_process("IL-2 loss", "dIL2*IL2", consumes={"IL2": 1})
    m.add_process("Treg homeostasis", "dTreg*Treg0", produces={"Treg": 1})
    m.add_process("Treg expansion", "rTreg*Treg*hill(IL2, KIL2, 1)", produces={"Treg": 1})
    m.add_process("Treg death", "dTreg*Treg", consumes={"Treg": 1})

    m.add_observable("Treg_fraction", "Treg/(Th + Treg)", units="fraction", group="readouts")
    m.add_observable("IL2R_occupancy", "hill(IL2, KIL2, 1)", units="fraction", group="readouts")

    m.add_event("antigen pulse", at=[2, 30], add={"Ag": "dose"})

    m.add_outcome("response resolved", "Th < 1.5*Th0 and Ag < 0.01")
    m.add_outcome("response ongoing", "Th >= 1.5*Th0 or Ag >= 0.01")
    return m


def peak(ds, name: str, start: float, stop: float) -> tuple[float, float]:
    """(value, time) of the largest value of a variable between two times."""
    window = ds[name].sel(time=slice(start, stop))
    i = int(np.argmax(window.values))
    return float(window.values[i]), float(window["time"].values[i])


def main() -> None:
    model = build()
    ds = ilsim.simulate(model, t_end=60, points=601, rtol=1e-8, atol=1e-10)
    print(f"{model.metadata.title}: outcome at day 60 = {ds.attrs['outcome']!r}")
    for label, (start, stop) in {"first pulse (day 2)": (2, 30), "second pulse (day 30)": (30, 60)}.items():
        th, t_th = peak(ds, "Th", start, stop)
        treg, t_treg = peak(ds, "Treg", start, stop)
        il2, t_il2 = peak(ds, "IL2", start, stop)
        print(f"  {label}: Th peaks at {th:.0f} cells/uL on day {t_th:.1f}, IL-2 at {il2:.1f} pM on day {t_il2:.1f},"
              f" Treg at {treg:.0f} cells/uL on day {t_treg:.1f}")
    rest = {p.name: p.value for p in model.parameters}["Treg0"]
    print(f"  Tregs present at the second pulse: {float(ds['Treg'].sel(time=30)):.0f} cells/uL "
          f"(rest: {rest:g}); they damp the second helper response")

    yaml_file = Path(__file__).with_name("il2-treg.yaml")
    from_file = ilsim.simulate(yaml_file)  # its simulation section: 60 days, 601 points, same tolerances
    same = all(np.array_equal(ds[v].values, from_file[v].values) for v in ds.data_vars)
    print(f"  same trajectory as {yaml_file.name}: {same}")


if __name__ == "__main__":
    main()
