"""`relayna dev` in a real browser: submit a task on the page, see it complete live.

Headless Debian Chromium driven by Playwright (system browser, no download).
The screenshot lands in artifacts/ for people to look at.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import launch  # scripts/ is on sys.path (tests/conftest.py)
from playwright.sync_api import expect, sync_playwright
from services import free_port

from _dev_process import relayna_dev  # tests/ is on sys.path (rootdir conftest)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(params=["asyncio", "trio"])
def dev_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    port = free_port()
    argv = [sys.executable, "-m", "relayna.cli", "dev", "--port", str(port),
            "--backend", request.param, "--no-studio"]  # the service's own page  # fmt: skip
    with relayna_dev(argv, port) as url:
        yield f"{url}/", request.param


def test_submit_task_and_watch_it_complete_live(dev_server: tuple[str, str]) -> None:
    url, backend = dev_server
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            page.goto(url)
            page.fill("#text", "browser test")
            page.fill("#steps", "3")
            page.select_option("#mode", "fail_once")
            page.click("#go")
            card = page.locator(".card").first
            card.locator(".state").wait_for()
            # The failed first attempt is retried by the broker, then completes.
            page.wait_for_selector(".card.completed", timeout=30_000)
            timeline = card.locator("li").all_inner_texts()
            assert any(t.startswith("retrying") for t in timeline), timeline
            assert timeline[-1].startswith("completed"), timeline
            assert card.locator(".state").inner_text().lower() == "completed"
            page.screenshot(path=str(ARTIFACTS / f"relayna-dev-{backend}.png"), full_page=True)
            # The page starts the two-stage workflow too: planner, then worker.
            page.fill("#steps", "1")
            page.select_option("#mode", "workflow")
            page.click("#go")
            expect(page.locator(".card.completed")).to_have_count(2, timeout=30_000)
            flow = page.locator(".card").first
            expect(flow.locator("li").last).to_contain_text("worker: done")
            expect(flow.locator("li").first).to_contain_text("planner")
        finally:
            browser.close()
