"""Regenerate every scenario snapshot (tests/scenarios/snapshots/*.json) from ilsim's current output.

    PYTHONPATH=src python tests/scenarios/make_snapshots.py

Runs the scenario tests with ILSIM_UPDATE_SNAPSHOTS=1: each ``snapshot.check`` records its value instead of
comparing it, and tests/scenarios/conftest.py writes one file per scenario when every test has passed. It runs
the whole folder (no selection), so that each file holds every value its tests check.
Snapshots are ilsim's own output, pinned to catch regressions; a published value never belongs in them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    env = {**os.environ, "ILSIM_UPDATE_SNAPSHOTS": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", str(HERE)], cwd=HERE.parents[1], env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
