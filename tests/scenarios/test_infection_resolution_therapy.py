"""Which therapy helps which fault (docs/scenarios/infection-resolution.md): each claim, run.

Each fault at severity 1; the therapy is given from day 20 to day 50 as events on the built-in
scenario; the outcome is read at day 120. The outcomes are the docs page's claims; the damage on days 45
and 120 is ilsim's own output, pinned in tests/scenarios/snapshots/infection-resolution.json.
"""

import pytest

import ilsim

MODEL = "infection-resolution"
THERAPIES = {
    "none": [],
    "anti-IL-12": [("s_IL12", 0.0)],
    "IL-10 infusion": [("il10_infusion", 300.0)],
    "remove self-reading subset": [("w_false", 0.0), ("k_auto", 0.0)],
}


def treated(therapy: str):
    model = ilsim.load("infection-resolution")
    model.add_parameter("il10_infusion", 0.0, units="pg/mL/day", source="therapy (test)")
    model.add_process("IL-10 infusion", "il10_infusion", produces={"IL10": 1})
    baseline = {p.name: p.value for p in model.parameters}
    changes = THERAPIES[therapy]
    if changes:
        model.add_event("therapy starts", at=20, set={name: value for name, value in changes})
        model.add_event("therapy stops", at=50, set={name: baseline[name] for name, _ in changes})
    return ilsim.compile(model)


@pytest.mark.parametrize(
    ("fault", "therapy", "outcome"),
    [
        ("stop-not-received", "none", "chronic"),
        ("stop-not-received", "IL-10 infusion", "chronic"),  # the receptor is missing: more signal cannot help
        ("stop-not-received", "anti-IL-12", "resolved"),  # blocking the fight loop lets damage heal
        ("stop-ignored", "IL-10 infusion", "chronic"),
        ("stop-ignored", "anti-IL-12", "resolved"),
        ("false-alarm", "anti-IL-12", "chronic"),  # less IL-2 also means fewer Tregs
        ("false-alarm", "remove self-reading subset", "resolved"),
    ],
)
def test_therapy_outcome_by_fault_mode(snapshot, fault, therapy, outcome):
    ds = ilsim.simulate(treated(therapy), 120, points=121, faults={fault: 1.0})
    label = ds.attrs["outcome"]
    assert (label == "resolved") == (outcome == "resolved"), (fault, therapy, label)
    if outcome == "resolved":
        assert float(ds["D"][-1]) < 1e-3
    for day in (45, 120):  # the table "Which therapy helps which mode" of docs/scenarios/infection-resolution.md
        snapshot.check(f"{fault}, severity 1, {therapy} on days 20-50: D on day {day}", ds["D"].sel(time=day),
                       rel=0.01, abs=1e-6)
