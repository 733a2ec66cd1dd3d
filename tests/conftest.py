"""Shared fixtures: a small valid model to break and a CLI runner (bad-input and CLI tests), and the shared data
kept beside the repository (BioModels, SBML Test Suite)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ilsim.cli import app

# CI keeps shared data beside the repository: <repo>/../shared/data
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def in_ci() -> bool:
    """CI services (GitHub Actions, GitLab, ...) set CI=true."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require_shared_data(folder: str, pattern: str | None = None) -> Path:
    """``SHARED_DATA/folder`` (or its first file matching ``pattern``) for a test that needs it.

    When it is missing the test fails in CI, where the data must be there and a skip would hide that the
    check never ran, and is skipped, with the path it looked for, everywhere else.
    """
    path = SHARED_DATA / folder
    if path.is_dir():
        found = sorted(path.glob(pattern)) if pattern else [path]
        if found:
            return found[0]
    wanted = path / pattern if pattern else path
    message = f"shared test data not found: {wanted} (kept beside the repository, in ../shared/data)"
    if in_ci():
        pytest.fail(f"{message}; CI=true, so this test fails instead of skipping", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data():
    """shared_data(folder, pattern=None) -> Path; see require_shared_data."""
    return require_shared_data


# A small valid model: each test breaks exactly one thing in it (see `write_model`).
MINIMAL = """\
metadata: {name: mini, time_units: day}
species:
  - {name: IL2, kind: cytokine, initial: IL2_0}
  - {name: Teff, kind: cell, initial: 10}
parameters:
  - {name: IL2_0, value: 1.0}
  - {name: k_prolif, value: 0.5}
  - {name: k_decay, value: 0.1}
  - {name: k_sec, value: 0.2}
processes:
  - {name: proliferation, rate: "k_prolif*IL2*Teff/(1 + Teff)", produces: {Teff: 1}}
  - {name: IL-2 consumption, rate: "k_decay*IL2*Teff", consumes: {IL2: 1}}
  - {name: T cell death, rate: "k_decay*Teff", consumes: {Teff: 1}}
  - {name: IL-2 secretion, rate: "k_sec*Teff", produces: {IL2: 1}}
simulation: {t_end: 5, points: 11}
"""

# dx/dt = x**2 from x = 1: x = 1/(1 - t) blows up at t = 1, before t_end = 2.
BLOWUP = """\
metadata: {name: blowup}
species:
  - {name: x, initial: 1}
processes:
  - {name: runaway, rate: "x**2", produces: {x: 1}}
simulation: {t_end: 2}
"""


@pytest.fixture
def write_model(tmp_path):
    """write_model(replace={old: new}, append=..., text=MINIMAL, name="model.yaml") -> Path."""

    def write(replace: dict[str, str] | None = None, append: str = "", text: str = MINIMAL, name: str = "model.yaml") -> Path:
        for old, new in (replace or {}).items():
            assert old in text, f"test setup: {old!r} is not in the model text"
            text = text.replace(old, new, 1)
        path = tmp_path / name
        path.write_text(text + append, encoding="utf-8")
        return path

    return write


@pytest.fixture
def blowup_model(write_model):
    return write_model(text=BLOWUP, name="blowup.yaml")


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str
    output: str  # stdout and stderr together
    exception: BaseException | None


@pytest.fixture
def cli():
    """Run `ilsim ARGS...` in-process; a wide COLUMNS keeps Rich from wrapping the messages."""
    runner = CliRunner(env={"COLUMNS": "10000"})

    def invoke(*args) -> CliResult:
        res = runner.invoke(app, [str(a) for a in args], prog_name="ilsim")
        return CliResult(res.exit_code, res.stdout, res.stderr, res.output, res.exception)

    return invoke


@pytest.fixture
def refused():
    """refused(result, *fragments): exit code 2, no traceback or stray exception, every fragment in the output."""

    def check(result: CliResult, *fragments: str) -> str:
        unexpected = result.exception if not isinstance(result.exception, SystemExit) else None
        assert unexpected is None, f"crashed with {unexpected!r}; output:\n{result.output}"
        assert result.exit_code == 2, f"exit code {result.exit_code}; output:\n{result.output}"
        assert "Traceback" not in result.output
        for fragment in fragments:
            assert fragment in result.output, f"{fragment!r} not in the output:\n{result.output}"
        return result.output

    return check


@pytest.fixture(autouse=True)
def _quick_dask_refusals(monkeypatch):
    """A Dask scheduler that does not answer is refused after 1 s in the tests, not the 5 s a user gets: the tests of
    that refusal (a closed port) learn nothing more from waiting, and a scheduler that is up answers in milliseconds."""
    import ilsim.patients.tasks as tasks

    monkeypatch.setattr(tasks, "CONNECT_TIMEOUT_S", 1)
