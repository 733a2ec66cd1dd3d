"""Mutation fuzzing of model files (a small fixed-seed budget; bench/fuzz_model_files.py runs 10,000 cases): every
mutated built-in scenario is validated and run through the command line and ends in exit 0 or 2 with no
traceback, within a bounded time. The oracle is the project's contract for bad input (docs/limits.md)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from ilsim.cli import app  # noqa: E402
from model_mutations import SCENARIOS, mutate, run_case  # noqa: E402

PER_CASE_S = 20  # a case that takes longer is a hang the limits missed (most take a tenth of a second)


@settings(derandomize=True, max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(scenario=st.sampled_from(SCENARIOS), seed=st.integers(0, 2**32 - 1))
def test_mutated_model_files_are_refused_or_run_never_crash(scenario, seed, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ILSIM_JIT", "0")  # a new kernel per case: numba would compile each for seconds
    text, what = mutate(random.Random(seed), scenario.read_text(encoding="utf-8"), "model.yaml")
    outcome, seconds, detail = run_case(CliRunner(), app, tmp_path_factory.mktemp("fuzz"), text)
    assert outcome in ("ok", "refused"), f"{scenario.name}, {what}: {outcome}\n{detail}"
    assert seconds < PER_CASE_S, f"{scenario.name}, {what}: {seconds:.1f} s"
