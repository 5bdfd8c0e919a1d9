"""Mermaid output checked by the real Mermaid parser (the ``mermaid`` npm package
in headless Chromium), over Hypothesis-generated labels.

The npm package is pinned by ``tests/e2e/mermaid/package-lock.json`` and
installed here with ``npm ci`` when missing (the registry is reachable on
developer machines and in CI). Mermaid's ``parse`` needs a DOM, hence the
browser.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from playwright.sync_api import Page, sync_playwright

from relayna.observability import TaskRecords, build_execution_graph, execution_graph_mermaid

HERE = Path(__file__).resolve().parent / "mermaid"
MERMAID_JS = HERE / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def _install() -> None:
    if MERMAID_JS.exists():
        return
    npm = shutil.which("npm")
    assert npm is not None, "npm is needed to install the pinned mermaid package"
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, timeout=600)


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    _install()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            pg = browser.new_page()
            pg.set_content("<html><body></body></html>")
            pg.add_script_tag(path=str(MERMAID_JS))
            pg.evaluate("mermaid.initialize({startOnLoad: false})")
            yield pg
        finally:
            browser.close()


def parse_errors(page: Page, texts: list[str]) -> list[str | None]:
    """One entry per text: None when Mermaid parsed it, else the parser's error."""
    result: list[str | None] = page.evaluate(
        """async (texts) => {
            const out = [];
            for (const t of texts) {
              try { await mermaid.parse(t); out.push(null); }
              catch (e) { out.push(String(e && e.message || e)); }
            }
            return out;
        }""",
        texts,
    )
    return result


T0 = datetime(2026, 4, 6, 10, 0, 0, tzinfo=UTC)


def graph_text(label: str, i: int) -> str:
    at = (T0 + timedelta(seconds=i)).isoformat()
    records = TaskRecords(
        "task-1",
        statuses=[
            {
                "task_id": "task-1",
                "status": label,
                "timestamp": at,
                "event_id": "e",
                "message": label,
            }
        ],
        observations=[
            {
                "event_type": "WorkflowMessageReceived",
                "timestamp": at,
                "stage": label,
                "message_id": "m1",
                "task_id": "task-1",
            },
            {
                "event_type": "ConsumerDeadLetterPublished",
                "timestamp": at,
                "reason": label,
                "task_id": "task-1",
            },
        ],
    )
    return execution_graph_mermaid(build_execution_graph(records, topology_kind="x"))


def test_the_parser_rejects_broken_text(page: Page) -> None:
    # the check can fail: a broken label is reported
    assert parse_errors(page, ['flowchart LR\n  n0["a"" --> n1'])[0] is not None


NASTY = [
    '"quoted"',
    "a|b",
    "[x]",
    "{y}",
    "(z)",
    "line\nbreak",
    "<script>x</script>",
    "#35;",
    "end",
    "graph",
    "`tick`",
    "a;b",
    "%%c",
    "\\",
    "ünïcödé ✓ 漢字",
    "",
    "a" * 500,
    "-->",
    "&amp;",
    "\t\r\x00",
    "\ud800",
]


def test_nasty_labels_give_valid_mermaid(page: Page) -> None:
    texts = [graph_text(label, i) for i, label in enumerate(NASTY)]
    assert parse_errors(page, texts) == [None] * len(texts)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(labels=st.lists(st.text(min_size=0, max_size=80), min_size=20, max_size=20))
def test_generated_labels_give_valid_mermaid(page: Page, labels: list[str]) -> None:
    texts = [graph_text(label, i) for i, label in enumerate(labels)]
    errors: list[Any] = parse_errors(page, texts)
    bad = [(label, err) for label, err in zip(labels, errors, strict=True) if err is not None]
    assert bad == []
