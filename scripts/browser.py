"""Debian's Chromium for the browser tests and benchmarks (Playwright, system browser).

Never ``playwright install``: the browser comes from apt (``scripts/services.py``
installs it). Without the background-networking flags Chromium keeps trying
hosts this closed network refuses.
"""

from __future__ import annotations

import shutil
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(playwright: Any) -> Any:
    """A headless Chromium (Playwright's sync API; it gives each launch a fresh profile)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
