"""The tissue solver against BioFVM built from its public source (bench/tissue_vs_biofvm.py builds the driver into
~/.cache/ilsim-bench/biofvm; without it this test is skipped, so CI needs no C++ peer)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "tissue_vs_biofvm.py"


def _bench():
    spec = importlib.util.spec_from_file_location("tissue_vs_biofvm", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("dims", [2, 3])
def test_same_numbers_as_biofvm(dims):
    bench = _bench()
    exe = bench.driver_path()
    if not exe.exists():
        pytest.skip("BioFVM driver not built here: run `python bench/tissue_vs_biofvm.py` once to build it")
    problem = bench.agreement_problem(dims)
    ref, _ = bench.run_biofvm(exe, problem, threads=1)
    ours, _ = bench.run_ilsim(problem)
    assert not np.allclose(ref, problem["initial"])  # the steps changed the fields
    assert np.max(np.abs(ours - ref) / np.abs(ref)) < 1e-9
