"""The Studio web UI in real Chromium against a real Studio and a real relayna service.

One process (``tests/e2e/_studio_stack.py``) runs ``relayna dev``'s demo
service (memory broker and store, the demo worker) and Studio serving its
bundled UI, on asyncio or trio. Playwright drives Debian's Chromium (system
browser, no download) as an operator would; axe-core checks every page
(no serious or critical violation); screenshots land in ``artifacts/``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _studio_browser import check_axe, open_page
from playwright.sync_api import Page, expect
from services import free_port

import studio_ui  # scripts/ is on sys.path (tests/conftest.py)
from _dev_process import running  # tests/ is on sys.path (rootdir conftest)

# A browser, a Studio and a service per test; each test's waits are bounded below.
# Tens of seconds per test: the slow tier (its own step of .ci/run; see tests/conftest.py).
pytestmark = [pytest.mark.timeout(300), pytest.mark.slow_tier]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "studio-ui"


def _stack(backend: str, *, auth: bool, step_seconds: float = 0.4) -> Iterator[dict[str, Any]]:
    argv = [sys.executable, str(ROOT / "tests" / "e2e" / "_studio_stack.py"), "--backend", backend,
            "--service-port", str(free_port()), "--studio-port", str(free_port())]  # fmt: skip
    argv += ["--step-seconds", str(step_seconds)]
    if auth:
        argv.append("--auth")
    with running(argv, '"ready": true') as line:
        yield json.loads(line)


@pytest.fixture(params=["asyncio", "trio"])
def stack(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    yield from _stack(request.param, auth=False)


@pytest.fixture(params=["asyncio", "trio"])
def slow_stack(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Tasks take about 20 s: long enough to cut the network in the middle."""
    yield from _stack(request.param, auth=False, step_seconds=1.0)


@pytest.fixture(params=["asyncio", "trio"])
def auth_stack(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    yield from _stack(request.param, auth=True)


@pytest.fixture(scope="module", autouse=True)
def _ui_packages() -> None:
    """axe-core comes from the UI's node_modules: ``npm ci`` when it is missing or stale."""
    studio_ui.install()


@pytest.fixture
def page() -> Iterator[Page]:
    with open_page(ARTIFACTS) as opened:
        yield opened


def submit(service: str, mode: str, steps: int = 3) -> str:
    body = json.dumps({"payload": {"mode": mode, "steps": steps, "text": mode}}).encode()
    request = urllib.request.Request(
        f"{service}/tasks", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["task_id"])


def register(page: Page, studio: str, service_id: str, base_url: str) -> None:
    page.goto(f"{studio}/services")
    page.get_by_role("button", name="Register service").click()
    form = page.get_by_role("form", name="Register a service")
    form.get_by_label("Service id").fill(service_id)
    form.get_by_label("Name").fill(f"{service_id} service")
    form.get_by_label("Base URL").fill(base_url)
    form.get_by_role("button", name="Register service").click()


def test_register_a_service_and_follow_a_task_live(stack: dict[str, Any], page: Page) -> None:
    studio, service = stack["studio"], stack["service"]
    # A URL outside the egress allowlist: the backend's reason is shown in the form.
    register(page, studio, "outside", "http://localhost:9")
    expect(
        page.get_by_role("form", name="Register a service").get_by_role("alert")
    ).to_contain_text("localhost")
    page.get_by_role("button", name="Cancel").click()
    register(page, studio, "demo", service)
    expect(page).to_have_url(f"{studio}/services/demo")
    expect(page.get_by_role("heading", name="demo service")).to_be_visible()
    check_axe(page)
    page.screenshot(path=str(ARTIFACTS / "service-detail.png"), full_page=True)

    # A task that fails once and succeeds on the retry: the timeline and graph update live.
    task_id = submit(service, "fail_once", steps=4)
    page.goto(f"{studio}/tasks/demo/{task_id}")
    timeline = page.get_by_test_id("timeline")
    expect(timeline.locator("li[data-status='retrying']").first).to_be_visible(timeout=30_000)
    expect(timeline.locator("li[data-status='completed']")).to_have_count(1, timeout=30_000)
    statuses = timeline.locator("li").evaluate_all("els => els.map(e => e.dataset.status)")
    assert statuses[-1] == "completed", statuses
    check_axe(page)
    page.screenshot(path=str(ARTIFACTS / "task-detail.png"), full_page=True)

    pages = {
        "overview": "/",
        "services": "/services",
        "task-search": f"/tasks/search?task_id={task_id}",
        "failed-tasks": "/failed-tasks",
        "dlq": "/services/demo/dlq",
        "topology": "/services/demo/topology",
        "audit": "/admin",
    }
    for name, path in pages.items():
        page.goto(f"{studio}{path}")
        expect(page.locator("h1")).to_be_visible()
        check_axe(page)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.emulate_media(color_scheme="dark")
    page.goto(f"{studio}/tasks/demo/{task_id}")
    expect(page.get_by_test_id("timeline").locator("li").first).to_be_visible()
    check_axe(page)
    page.screenshot(path=str(ARTIFACTS / "task-detail-dark.png"), full_page=True)


class FlakyLink:
    """A loopback TCP forwarder to Studio whose link can be cut: every open
    connection is reset and new ones are refused until it is restored."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up.clear()
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # shutdown wakes the forwarding threads blocked in recv (close alone would not).
                c.shutdown(socket.SHUT_RDWR)
                c.close()

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_network_loss_mid_stream_resumes_without_duplicates(
    slow_stack: dict[str, Any], page: Page
) -> None:
    studio, service = slow_stack["studio"], slow_stack["service"]
    register(page, studio, "demo", service)
    expect(page).to_have_url(f"{studio}/services/demo")
    link = FlakyLink(int(studio.rsplit(":", 1)[1]))
    try:
        task_id = submit(service, "ok", steps=20)
        page.goto(f"http://127.0.0.1:{link.port}/tasks/demo/{task_id}")
        timeline = page.get_by_test_id("timeline")
        expect(timeline.locator("li[data-status='running']").first).to_be_visible(timeout=30_000)
        link.cut()
        expect(page.get_by_role("status").filter(has_text="reconnecting")).to_be_visible(
            timeout=15_000
        )
        link.restore()
        expect(timeline.locator("li[data-status='completed']")).to_have_count(1, timeout=60_000)
        rows = timeline.locator("li").evaluate_all("els => els.map(e => e.textContent)")
        assert len(rows) == len(set(rows)), rows
        steps = [r for r in rows if "step" in r]
        assert len(steps) == 20, rows  # every step once: nothing lost, nothing twice
    finally:
        link.close()


def test_a_reader_cannot_replay_or_change_the_registry(
    auth_stack: dict[str, Any], page: Page
) -> None:
    studio, service, tokens = auth_stack["studio"], auth_stack["service"], auth_stack["tokens"]
    page.goto(f"{studio}/")
    page.get_by_label("API token").fill(tokens["admin"])
    page.get_by_role("button", name="Sign in").click()
    register(page, studio, "demo", service)
    expect(page).to_have_url(f"{studio}/services/demo")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API token").fill(tokens["reader"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("e2e-reader · reader")).to_be_visible()
    page.goto(f"{studio}/services")
    expect(page.get_by_role("link", name="demo service")).to_be_visible()
    assert page.get_by_role("button", name="Register service").count() == 0
    assert page.get_by_role("button", name="Delete demo").count() == 0
    # And the backend refuses anyway.
    answer = page.request.delete(
        f"{studio}/studio/services/demo", headers={"authorization": f"Bearer {tokens['reader']}"}
    )
    assert answer.status == 403, answer.text()


def test_an_operator_cancels_a_running_task_from_its_page(
    slow_stack: dict[str, Any], page: Page
) -> None:
    """relayna dev's demo service (the cancel route in its capabilities): the task page's
    Cancel button, its confirm dialog, and the timeline ending ``cancelled`` live."""
    studio, service = slow_stack["studio"], slow_stack["service"]
    register(page, studio, "demo", service)
    expect(page).to_have_url(f"{studio}/services/demo")
    refreshed = page.request.post(f"{studio}/studio/services/demo/refresh")  # read its routes now
    assert "tasks.cancel" in refreshed.json()["capabilities"]["supported_routes"]
    task_id = submit(service, "ok", steps=20)  # about 20 s: it is cancelled long before
    page.goto(f"{studio}/tasks/demo/{task_id}")
    timeline = page.get_by_test_id("timeline")
    expect(timeline.locator("li[data-status='running']").first).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Cancel task").click()
    dialog = page.get_by_role("dialog", name=f"Cancel {task_id}?")
    expect(dialog).to_be_visible()
    check_axe(page)
    page.screenshot(path=str(ARTIFACTS / "task-cancel-dialog.png"), full_page=True)
    dialog.get_by_role("button", name="Yes, cancel it").click()
    expect(timeline.locator("li[data-status='cancelled']")).to_have_count(1, timeout=30_000)
    expect(page.get_by_role("button", name="Cancel task")).to_have_count(0)
    statuses = timeline.locator("li").evaluate_all("els => els.map(e => e.dataset.status)")
    assert statuses[-1] == "cancelled", statuses
    assert "completed" not in statuses
