"""What both browser tests share: the system chromium (skip with the reason where it or Playwright is missing),
its flags, and where screenshots are kept."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Playwright's launch() already uses a fresh temporary profile (it rejects --user-data-dir in args;
# launch_persistent_context passes a fresh one explicitly). Without the background-networking flags the closed
# network refuses chromium's own connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser_exe() -> str:
    """The system chromium; skip (with the reason) when it or Playwright is missing. Playwright's own browser
    download (`playwright install`) is blocked here, so the distribution's binary is its executable_path."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip('playwright is not installed: pip install -e ".[ui]" (do not run `playwright install`)')
    exe = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(exe, os.X_OK):
        pytest.skip("no chromium binary (PATH or /usr/bin/chromium): apt-get install -y chromium")
    return exe


def save_screenshot(page, path: Path) -> None:
    """A full-page screenshot at `path` (the test's tmp dir), kept as a test artifact: copied to
    $GINN_UI_SCREENSHOTS, else to outputs/ui/ (git-ignored by its own .gitignore: screenshots are per machine)."""
    page.screenshot(path=str(path), full_page=True)
    dest = Path(os.environ.get("GINN_UI_SCREENSHOTS") or ROOT / "outputs" / "ui")
    dest.mkdir(parents=True, exist_ok=True)
    if dest == ROOT / "outputs" / "ui" and not (dest / ".gitignore").is_file():
        (dest / ".gitignore").write_text("*\n")
    shutil.copy2(path, dest / path.name)
