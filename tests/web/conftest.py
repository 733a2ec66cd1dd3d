"""The explorer served on the loopback in a thread, and a headless Chromium (Debian's) driven by Playwright.

Without chromium or Playwright the browser tests skip, saying what is missing; under CI=true they fail instead
(.ci/run installs Debian's chromium). Screenshots go to $OUT/web-screenshots when OUT is set, else to
tmp/web-screenshots in the repository (ignored by git).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def _missing(reason: str):
    if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:  # as tests/conftest.py's in_ci
        pytest.fail(f"{reason}; CI=true, so the browser tests fail instead of skipping", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    for name in CHROMIUM:
        found = shutil.which(name)
        if found:
            return found
    _missing("no chromium on PATH (Debian: apt-get install chromium)")


@pytest.fixture(scope="session")
def browser(chromium_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed (pip install 'ilsim[test]')")
    with sync_playwright() as p:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start
        chromium = p.chromium.launch(executable_path=chromium_path, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    """(base URL, the Dash app) of an explorer on 127.0.0.1, a free port, with a results folder of its own."""
    from ilsim.web import start, url

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    results = tmp_path_factory.mktemp("results")
    server = start("127.0.0.1", 0, results)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url(server), server.dash_app, results
    server.shutdown()
    server.dash_app.runner.shutdown()
    server.dash_app.launcher.shutdown()


@pytest.fixture(scope="session")
def shots() -> Path:
    out = os.environ.get("OUT")
    folder = Path(out) / "web-screenshots" if out else Path(__file__).resolve().parents[2] / "tmp" / "web-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
