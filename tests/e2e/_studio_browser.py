"""What the Studio browser tests share: a Chromium page, and the axe-core check.

Import as ``from _studio_browser import check_axe, open_page`` (tests/e2e is on
sys.path: pytest's rootdir-relative imports put each test's directory there).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from browser import launch  # scripts/ is on sys.path (tests/conftest.py)
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "studio" / "ui" / "node_modules" / "axe-core" / "axe.min.js"


@contextmanager
def open_page(artifacts: Path, *, height: int = 860) -> Iterator[Page]:
    """A fresh headless Chromium page, 1280 wide; ``artifacts`` is created for screenshots."""
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            yield browser.new_context(viewport={"width": 1280, "height": height}).new_page()
        finally:
            browser.close()


def check_axe(page: Page) -> None:
    """No serious or critical axe-core violation on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => (await axe.run(document)).violations")
    bad = [f"{v['id']}: {v['help']} ({len(v['nodes'])}x) {v['nodes'][0]['html'][:160]}"
           for v in result if v["impact"] in ("serious", "critical")]  # fmt: skip
    assert not bad, f"{page.url}:\n" + "\n".join(bad)
