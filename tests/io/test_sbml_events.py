"""SBML events against libroadrunner (the oracle): the situations issue 13 found on BioModels entries, written as
small models. Each is imported, run by the SciPy engine and compared, at every output time, with libroadrunner's
run of the same file: strict triggers on their threshold (BIOMD0000000297), an output at the time a strict
'time > c' fires (104, 125, 601, 121), equality on time (828, 814), floor windows and an equality beside a
crossing (695, 825), priorities and delays with persistence and values from the trigger time."""

from __future__ import annotations

import numpy as np
import pytest
from roadrunner_oracle import amounts, sbml_file

import ilsim
from ilsim.engines.batch import BatchEngine
from ilsim.engines.csource import HostCEngine, c_compiler
from ilsim.engines.ode import OdeEngine
from ilsim.io.sbml import to_string

CASES = {
    "strict trigger on its threshold": ("Clb = 1; flag = 0; species n = 0; Clb' = -0.1*Clb; "
                                        "E: at (Clb < 0.2 && flag > 0): n = n + 1, flag = 0", 20),
    "output at a strict time trigger": ("species x = 1; x' = 0.1; E: at (time > 5): x = 10", 10),
    "time >= c": ("species x = 1; x' = 0.1; E: at (time >= 5): x = 10", 10),
    "time % 12 == 0": ("species n = 0; E: at (time % 12 == 0): n = n + 1", 50),
    "time % 28 == 27 && time > 30": ("species n = 0; E: at (time % 28 == 27 && time > 30): n = n + 1", 100),  # 814
    "time == 3 || time == 15": ("species n = 0; E: at (time == 3 || time == 15): n = n + 1", 20),
    "floor window": ("species n = 0; E: at (floor(time/5) == 2 && time > 7): n = n + 1", 20),
    "crossing beside an equality": ("species V = 0, n = 0; u = 0; V_d = 3.3; V' = 1; "
                                    "E: at ((V > V_d) && (u == 0)): V = 0, n = n + 1", 20),
    "priorities": ("species y = 0; A: at (time >= 2), priority = 1: y = 1; B: at (time >= 2), priority = 5: y = 2", 5),
    "delay, values at the trigger": ("species y = 0; x = 0; x' = 1; A: at 2 after (x > 3.3): y = x", 10),
    "delay, values when applied": ("species y = 0; x = 0; x' = 1; A: at 2 after (x > 3.3), fromTrigger=false: y = x", 10),
    "delay, not persistent": ("species y = 0, z = 0; x = 0; x' = 1; B: at (time >= 4): z = 1; "
                              "A: at 2 after (x > 3.3 && z < 0.5), persistent=false: y = 5", 10),
    "delay 0 on an equality of time": ("species y = 0; A: at 0 after (time == 2): y = y + 1", 5),
    "delay, persistent": ("species y = 0, z = 0; x = 0; x' = 1; B: at (time >= 4): z = 1; "
                          "A: at 2 after (x > 3.3 && z < 0.5), persistent=true: y = 5", 10),
    # events that trigger together: values read at the trigger, applied in priority order (imported with delay 0)
    "simultaneous, values at the trigger": ("species a = 1, b = 2; A: at (time >= 2), priority = 2: a = b; "
                                            "B: at (time >= 2), priority = 1: b = a", 5),
    "simultaneous, values when applied": ("species a = 1, b = 2; A: at (time >= 2), priority = 2, fromTrigger=false: a = b; "
                                          "B: at (time >= 2), priority = 1, fromTrigger=false: b = a", 5),
    "simultaneous, persistence": ("species s = 0, u = 0; A: at (time >= 2 && s < 0.5), priority = 3: s = 1, u = u + 10; "
                                  "B: at (time >= 2 && s < 0.5), priority = 2, persistent=true: s = 3, u = u + 30; "
                                  "C: at (time >= 2 && s < 0.5), priority = 1, persistent=false: s = 2, u = u + 20", 5),
    "simultaneous strict triggers": ("species x = 3, y = 0; E1: at (time > 3.5), priority = 10: x = 7; "  # 01330
                                     "E2: at (time > 3.5), priority = 5: y = x", 5),
    "window narrower than a step": ("species x = 10, n = 0; x' = -1; E: at (x <= 4.3 && x >= 3): x = 10, n = n + 1", 10),
}


@pytest.mark.parametrize("case", CASES)
def test_events_fire_as_in_libroadrunner(tmp_path, case):
    text, t_end = CASES[case]
    path = sbml_file(tmp_path, f"model m\n{text.replace('; ', chr(10))}\nend")
    t = np.linspace(0.0, t_end, t_end + 1)  # output times on the event times of the time triggers
    ours, theirs, _ = amounts(path, t, OdeEngine("LSODA", 1e-10, 1e-12), 1e-10, 1e-12)
    assert np.allclose(ours, theirs, rtol=1e-6, atol=1e-8), f"{case}: ilsim\n{ours}\nlibroadrunner\n{theirs}"


@pytest.mark.parametrize("case", [case for case in CASES if case.startswith(("delay", "simultaneous"))])
@pytest.mark.parametrize("engine", ["batch-auto", "c-kernel-auto"])
def test_delayed_events_run_in_the_batch_engine_and_the_c_kernel_as_in_libroadrunner(tmp_path, case, engine):
    """The same delay cases through the numba engine's and the C kernel's queues of pending firings."""
    if engine.startswith("c-") and c_compiler() is None:
        pytest.skip("no C compiler to build the C kernel on the CPU")
    text, t_end = CASES[case]
    path = sbml_file(tmp_path, f"model m\n{text.replace('; ', chr(10))}\nend")
    t = np.linspace(0.0, t_end, t_end + 1)
    run = BatchEngine(1e-10, 1e-12, method="auto") if engine == "batch-auto" else HostCEngine(1e-10, 1e-12, method="auto")
    ours, theirs, _ = amounts(path, t, run, 1e-10, 1e-12)
    assert np.allclose(ours, theirs, rtol=1e-6, atol=1e-8), f"{case}: ilsim\n{ours}\nlibroadrunner\n{theirs}"


@pytest.mark.parametrize("persistent, at_trigger", [(True, True), (True, False), (False, True)])
def test_an_exported_delayed_event_runs_in_libroadrunner_as_in_ilsim(tmp_path, persistent, at_trigger):
    m = ilsim.Model(name="delayed").add_species("x", 0.0).add_species("y", 0.0).add_species("z", 0.0)
    m.add_process("clock", "1", produces={"x": 1})
    m.add_event("late", when="x > 3.3 and z < 0.5", set={"y": "x"}, delay="2", persistent=persistent,
                values_at_trigger=at_trigger)
    m.add_event("close", at=4.0, set={"z": 1})
    path = tmp_path / "delayed.xml"
    path.write_text(to_string(ilsim.compile(m))[0])
    t = np.linspace(0.0, 10.0, 11)
    ours, theirs, _ = amounts(path, t, OdeEngine("LSODA", 1e-10, 1e-12), 1e-10, 1e-12)
    assert np.allclose(ours, theirs, rtol=1e-6, atol=1e-8)
    assert theirs[-1, 1] == pytest.approx(0.0 if not persistent else (3.3 if at_trigger else 5.3))
