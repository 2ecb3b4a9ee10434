"""Find a Chromium for the browser test, on any machine: a system Chromium or Chrome, else
the one Playwright downloads (``python -m playwright install chromium``).

``python -m tests.chromium`` prints the path found, or exits 1 (``./scripts/test`` uses it to
decide whether to install one).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

#: Commands on PATH, in order of preference (Debian's package first: CI uses it).
COMMANDS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
#: Where macOS keeps the apps.
MAC_APPS = (
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
)
INSTALL_HINT = (
    "install Chromium or Google Chrome (Debian/Ubuntu: apt-get install chromium), or run "
    "`python -m playwright install chromium`; SPARK_CHROMIUM=/path/to/chrome names one"
)


def find_chromium() -> str | None:
    """``SPARK_CHROMIUM``, a Chromium/Chrome on PATH or in /Applications, or Playwright's own."""
    named = os.environ.get("SPARK_CHROMIUM")
    if named:
        return named if Path(named).exists() else None
    for command in COMMANDS:
        found = shutil.which(command)
        if found:
            return found
    for app in MAC_APPS:
        if Path(app).exists():
            return app
    return _playwright_chromium()


def _playwright_chromium() -> str | None:
    """The Chromium ``python -m playwright install chromium`` downloaded, if it did."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    with sync_playwright() as playwright:
        path = playwright.chromium.executable_path
    return path if path and Path(path).exists() else None


if __name__ == "__main__":
    path = find_chromium()
    if path is None:
        sys.exit(1)
    print(path)
