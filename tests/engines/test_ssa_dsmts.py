"""Three DSMTS cases through SBML import and the stochastic engine, by the suite's own protocol (bench/ssa_dsmts.py):
a birth-death process (00001), an immigration-death process reset by an event at t = 25 (00028, a condition
on t: it must fire at 25, not at the next reaction), and a birth-death process of a concentration in a
compartment of size 2 (00011: counted through the compartment's volume, compared in amounts). 1,000
trajectories, the suite's minimum: the mean test Z_t = sqrt(n) (mean - mu) / sigma within (-3, 3) and the
variance test within (-5, 5) at each of 51 times; a
case passes with at most one point out of range per test (a correct engine fails with probability about 1%
per case, the suite's README calls 0-1 points "great"). The full run (10,000 trajectories, every case) is
``python bench/ssa_dsmts.py``."""

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ssa_dsmts.py"


@pytest.fixture(scope="module")
def dsmts():
    spec = importlib.util.spec_from_file_location("ssa_dsmts", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("case", ["00001", "00028", "00011"])
def test_dsmts_case_passes_the_suites_mean_and_variance_tests(dsmts, shared_data, case):
    folder = shared_data("sbml-test-suite/stochastic", case)
    result = dsmts.run_case(folder, trajectories=1000, seed=1)
    assert result["verdict"] == "passed", result
