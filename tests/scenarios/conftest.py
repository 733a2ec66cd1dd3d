"""Snapshots: ilsim's own outputs for each scenario, pinned to catch regressions (not published values).

A test compares a number it has computed with ``snapshot.check(name, value, rel=..., abs=...)``; the
values live in ``snapshots/<scenario>.json``, one file per scenario, labelled as ilsim's own output.
``python tests/scenarios/make_snapshots.py`` regenerates every file: it runs these tests with
ILSIM_UPDATE_SNAPSHOTS=1, where ``check`` records the value instead of comparing it, and the files are
written at the end of the session only if every test passed (a failed test would leave a value out).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ilsim

SNAPSHOTS = Path(__file__).with_name("snapshots")
LABEL = "snapshot of ilsim's own output, not a published value"
REGENERATE = "python tests/scenarios/make_snapshots.py"
UPDATE = os.environ.get("ILSIM_UPDATE_SNAPSHOTS") == "1"
_recorded: dict[str, dict[str, float]] = {}  # scenario -> name -> value, filled in update mode


class Snapshot:
    """The pinned values of one scenario."""

    def __init__(self, scenario: str):
        self.scenario = scenario
        self.path = SNAPSHOTS / f"{scenario}.json"
        self.values = json.loads(self.path.read_text(encoding="utf-8"))["values"] if self.path.exists() else {}

    def check(self, name: str, value: float, *, rel: float | None = None, abs: float | None = None) -> None:
        """Assert ``value`` equals the snapshot within the stated tolerance (or record it in update mode)."""
        value = float(value)
        if UPDATE:
            _recorded.setdefault(self.scenario, {})[name] = value
            return
        assert name in self.values, f"{name!r} is not in {self.path}; regenerate with {REGENERATE}"
        expected = self.values[name]
        assert value == pytest.approx(expected, rel=rel, abs=abs), (
            f"{self.scenario}: {name} = {value!r}, but ilsim's snapshot is {expected!r} (rel={rel}, abs={abs}). "
            f"If the change is intended, regenerate with {REGENERATE} and say why in the commit.")


@pytest.fixture(scope="module")
def snapshot(request) -> Snapshot:
    """The snapshot of the test module's scenario (its MODEL)."""
    return Snapshot(request.module.MODEL)


def _commit() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=SNAPSHOTS.parent, capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def pytest_sessionfinish(session, exitstatus):
    if not UPDATE or not _recorded:
        return
    if exitstatus != 0:
        print(f"\nsnapshots NOT written: a test failed (exit status {exitstatus})", file=sys.stderr)
        return
    SNAPSHOTS.mkdir(exist_ok=True)
    commit = _commit()  # before writing: the first file written would make the tree look modified to the rest
    for scenario, values in sorted(_recorded.items()):
        document = {"label": LABEL, "scenario": scenario, "ilsim_version": ilsim.__version__, "commit": commit,
                    "regenerate": REGENERATE, "values": dict(sorted(values.items()))}
        (SNAPSHOTS / f"{scenario}.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {SNAPSHOTS / scenario}.json ({len(values)} values)", file=sys.stderr)
