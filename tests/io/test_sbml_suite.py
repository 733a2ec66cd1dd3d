"""SBML Test Suite conformance: the T1 subset (compartments, species, reactions, parameters) passes,
except the cases listed here with their reasons. `python bench/sbml_suite.py --subset T4` runs the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sbml-test-suite"

# Cases of T1 that do not pass, and why (each refused with a message naming the element).
EXPECTED_NOT_PASSING = {
    "00028": "factorial of a species (only the factorial of a number written in the file is supported)",
    "00951": "parameters of value INF, -INF and NaN (ilsim parameters are finite numbers)",
}
T1_PASSED = 294  # of 296


@pytest.fixture(scope="module")
def t1_results():
    if not SUITE.is_dir():
        pytest.skip(f"SBML Test Suite not found at {SUITE}")
    from ilsim.io.sbml_import.suite import run_case, subset_cases

    return {case: run_case(SUITE / "cases" / case) for case in subset_cases(SUITE, "T1")}


def test_t1_passes(t1_results):
    passed = [c for c, r in t1_results.items() if r.status == "passed"]
    unexpected = {c: f"{r.status}: {r.reason}" for c, r in t1_results.items()
                  if r.status != "passed" and c not in EXPECTED_NOT_PASSING}
    assert not unexpected, f"cases that should pass: {unexpected}"
    assert len(passed) >= T1_PASSED


def test_not_passing_cases_are_refused_with_a_reason(t1_results):
    for case in EXPECTED_NOT_PASSING:
        result = t1_results[case]
        assert result.status in ("refused", "passed"), f"{case}: {result.status}: {result.reason}"
        if result.status == "refused":
            assert "factorial" in result.reason or "not a finite number" in result.reason
