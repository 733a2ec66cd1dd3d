"""Units read by pint (model/units.py): every label of the built-in models parses, unknown units are refused with
the nearest known one, conversions agree with the definitions of the units, and dimension mismatches of rates
and readouts are warnings (UnitWarning, listed by `ilsim validate`), never errors."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest
import yaml

import ilsim
from ilsim.errors import ModelError
from ilsim.model import units

ROOT = Path(__file__).resolve().parents[2]
MODEL_FILES = sorted((ROOT / "src" / "ilsim" / "scenarios").glob("*.yaml")) + sorted((ROOT / "examples").glob("*.yaml"))


def _labels(data):
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("units", "time_units") and isinstance(value, str):
                yield value
            yield from _labels(value)
    elif isinstance(data, list):
        for item in data:
            yield from _labels(item)


def test_every_unit_label_of_the_built_in_models_and_examples_parses():
    labels = {label for path in MODEL_FILES for label in _labels(yaml.safe_load(path.read_text(encoding="utf-8")))}
    assert len(labels) > 50  # the survey this test stands for
    for label in labels:
        units.check(label)


@pytest.mark.parametrize(("label", "unknown", "near"), [("pMM", "pMM", "pM"), ("1/dya", "dya", "day"),
                                                       ("cells/uL per dya", "dya", "day")])
def test_unknown_units_are_refused_with_the_nearest_known_one(write_model, cli, label, unknown, near):
    path = write_model(append=f"observables:\n  - {{name: shown, expression: '1', units: '{label}'}}\n")
    result = cli("validate", path)
    assert result.exit_code == 2 and result.exception is None or isinstance(result.exception, SystemExit)
    assert f"observables[0].units: unknown unit '{unknown}'" in result.output
    assert f"(did you mean '{near}'?)" in result.output


def test_time_units_must_be_a_time():
    with pytest.raises((ModelError, ValueError), match="time_units must be a unit of time"):
        ilsim.Model(name="x", time_units="kg")


@pytest.mark.parametrize("label", ["9**9**9", "10**400", "m**100", "2^3^2 m", "x" * 300, "cells/uL)", "1/0"])
def test_labels_that_are_not_units_are_refused_quickly(label):
    start = time.perf_counter()
    with pytest.raises(ValueError):
        units.check(label)
    assert time.perf_counter() - start < 1.0


def test_conversions_follow_the_definitions_of_the_units():
    assert units.hours_per("day") == 24.0 and units.hours_per("week") == 168.0
    assert units.hours_per("min") == pytest.approx(1 / 60, rel=1e-15)
    assert units.hours_per("kg") is None and units.hours_per("time") is None
    # 1 cc = 1 mL = 1000 uL, so 1e6 cells/cc = 1000 cells/uL; 1 pg/mL = 1 ng/L; 2 MIU = 2e6 IU
    assert units.to_units(1.0, "1e6 cells/cc", "cells/uL") == pytest.approx(1000.0, rel=1e-12)
    assert units.to_units(3.0, "pg/mL", "ng/L") == pytest.approx(3.0, rel=1e-12)
    assert units.to_units(2.0, "MIU", "IU") == pytest.approx(2e6, rel=1e-12)
    assert units.to_units(1.0, "cells/uL", "pg/mL") is None  # not one dimension


MODEL = """\
metadata: {{name: dims, time_units: day}}
species:
  - {{name: A, units: pM, initial: 1}}
  - {{name: C, units: cells/uL, initial: 2}}
parameters:
  - {{name: k, value: 0.5, units: 1/day}}
  - {{name: K, value: 3, units: {K_units}}}
processes:
  - {{name: decay, rate: "{rate}", consumes: {{A: 1}}}}
observables:
  - {{name: ratio, expression: "A/K", units: "{ratio_units}"}}
"""


def _compile(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = ilsim.compile(str(path))
    return model, [str(w.message) for w in caught if issubclass(w.category, units.UnitWarning)]


@pytest.mark.parametrize(("rate", "K_units", "ratio_units", "expected"), [
    ("k*A", "pM", "dimensionless", []),
    ("k*A*hill(A, K, 2)", "pM", "1", []),
    ("k*A*A", "pM", "1", ["has units of [substance]^2"]),
    ("k*A*exp(A)", "pM", "1", ["exp() needs a dimensionless argument"]),
    ("k*A*hill(A, K, 2)", "cells/uL", "pM/(cells/uL)", ["hill(x, K, n): x and K have different units"]),
    ("k*(A + C)", "pM", "1", ["adds or subtracts different units"]),
    # a number times a pure number takes the units its context needs (export-sbml gives it those): no warning,
    # where the pure number alone is a mismatch
    ("k*(A + 2*hill(A, K, 2))", "pM", "1", []),
    ("k*(A + hill(A, K, 2))", "pM", "1", ["adds or subtracts different units"]),
    ("k*A", "pM", "pM", ["the observable is declared in 'pM'"]),
])
def test_dimension_mismatches_are_warnings_not_errors(tmp_path, cli, rate, K_units, ratio_units, expected):
    path = tmp_path / "dims.yaml"
    path.write_text(MODEL.format(rate=rate, K_units=K_units, ratio_units=ratio_units))
    model, caught = _compile(path)
    assert len(caught) == len(expected) and len(model.unit_warnings) == len(expected), caught
    for message, fragment in zip(caught, expected):
        assert fragment.replace(" ^ ", "^") in message
    result = cli("validate", path)
    assert result.exit_code == 0
    for fragment in expected:
        assert fragment.replace(" ^ ", "^") in result.output


@pytest.mark.parametrize(("count", "expected"), [(1, 1), (2, 1), (0.1, 0)])
def test_a_count_that_is_not_a_whole_number_may_carry_units(tmp_path, count, expected):
    """A process consuming C (cells/uL) and producing A (pM) mixes units, unless its count for A is a number such
    as 0.1 (pM per cell/uL), which may carry units as a number in a rate may."""
    path = tmp_path / "counts.yaml"
    kill = f"\n  - {{name: kill, rate: 'k*C', consumes: {{C: 1}}, produces: {{A: {count}}}}}"
    text = MODEL.format(rate="k*A", K_units="pM", ratio_units="1")
    path.write_text(text.replace("consumes: {A: 1}}", "consumes: {A: 1}}" + kill))
    caught = _compile(path)[1]
    assert len(caught) == expected, caught
    assert all("a rate of 'A' (pM) per day" in message for message in caught)


def test_no_built_in_scenario_has_a_unit_warning():
    """Each agrees with libsbml's unit check of its export, which reports nothing (tests/io/test_sbml_export.py)."""
    counts = {path.stem: _compile(path)[1] for path in MODEL_FILES if path.parent.name == "scenarios"}
    assert {name: found for name, found in counts.items() if found} == {}


def _fresh(code: str) -> str:
    """The last line ``code`` prints in a new interpreter on the ilsim under test."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(ilsim.__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_the_registry_does_not_import_dask_and_leaves_it_importable():
    # pint imports dask whenever it is installed; ilsim's registry turns that off for its own import only
    code = ("import sys\nfrom ilsim.model import units\nq = units.parse('pg/mL')\n"
            "assert 'dask' not in sys.modules and sys.modules.get('dask', 0) != None\n"
            "import dask, dask.array, pint.compat\n"
            "print(pint.compat.HAS_DASK, round(float((1 * q).to('ng/L').magnitude), 12), dask.array.ones(3).sum().compute())")
    assert _fresh(code) == "False 1.0 3.0"  # 1 pg/mL = 1 ng/L


def test_a_process_that_loaded_dask_first_keeps_pints_dask_support():
    code = "import dask\nfrom ilsim.model import units\nunits.registry()\nimport pint.compat\nprint(pint.compat.HAS_DASK)"
    assert _fresh(code) == "True"
