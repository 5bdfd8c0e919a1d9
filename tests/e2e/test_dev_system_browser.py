"""`relayna dev` as a newcomer meets it: Studio in real Chromium, on asyncio and trio.

``relayna dev`` runs as a subprocess exactly as the README says (plus free
ports); Playwright drives Debian's Chromium (system browser) from the Studio
URL it prints: submit a task of each kind from the task list, watch the task
detail's graph gain an attempt, a retry and a dead letter live, replay the
dead letter from the DLQ explorer and see the task complete, follow an
aggregation fan-out's children, open a two-stage workflow task and see both
stages (and its topology), search a task by id, and refuse an invalid JSON override
(client-side message; 422 from the backend when forced). axe-core checks
every page; screenshots land in artifacts/dev-system/.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _studio_browser import check_axe, open_page
from playwright.sync_api import Page, expect
from services import free_port

import studio_ui  # scripts/ is on sys.path (tests/conftest.py)
from _dev_process import relayna_dev  # tests/ is on sys.path (rootdir conftest)

# Tens of seconds per test: the slow tier (its own step of .ci/run; see tests/conftest.py).
pytestmark = [pytest.mark.timeout(300), pytest.mark.slow_tier]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "dev-system"
LIVE = 30_000  # ms: a bound on each live wait, never a sleep


@pytest.fixture(scope="module", autouse=True)
def _ui_packages() -> None:
    """axe-core comes from the UI's node_modules: ``npm ci`` when it is missing or stale."""
    studio_ui.install()


@pytest.fixture(params=["asyncio", "trio"])
def dev(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """``relayna dev`` on one backend: (the Studio task-list URL it printed, backend)."""
    port, studio_port = free_port(), free_port()
    argv = [sys.executable, "-m", "relayna.cli", "dev", "--port", str(port),
            "--studio-port", str(studio_port), "--backend", request.param]  # fmt: skip
    output: list[str] = []
    with relayna_dev(argv, port, output=output):
        [line] = [line for line in output if "Studio: http" in line]
        yield line.split("Studio: ", 1)[1].split()[0], request.param


@pytest.fixture
def page() -> Iterator[Page]:
    with open_page(ARTIFACTS, height=900) as opened:
        yield opened


def shot(page: Page, backend: str, name: str) -> None:
    check_axe(page)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{backend}.png"), full_page=True)


def submit(page: Page, task_list: str, example: str) -> str:
    """Submit one of the form's example payloads from the task list; the new task's id."""
    page.goto(task_list)
    form = page.get_by_role("form", name="Submit a task")
    form.get_by_role("button", name=example).click()
    form.get_by_role("button", name="Submit task").click()
    expect(page).to_have_url(re.compile(r"/tasks/demo/[0-9a-f]{32}$"))
    return page.url.rsplit("/", 1)[1]


def fit_graph(page: Page) -> None:
    """Fit the live-grown graph into its view (React Flow fits only on first render)."""
    graph = page.get_by_test_id("execution-graph")
    graph.get_by_role("button", name=re.compile("fit view", re.IGNORECASE)).click()


def graph_nodes(page: Page, kind: str) -> object:
    return page.get_by_test_id("execution-graph").locator(f"[data-kind='{kind}']")


def test_a_newcomer_runs_every_kind_of_task_from_studio(dev: tuple[str, str], page: Page) -> None:
    task_list, backend = dev
    studio = task_list.split("/tasks/", 1)[0]
    page.goto(task_list)
    expect(page.get_by_role("heading", name="Task search")).to_be_visible()
    expect(page.get_by_role("form", name="Submit a task")).to_be_visible()
    shot(page, backend, "task-list")

    # An invalid payload is refused in the browser, before any request.
    form = page.get_by_role("form", name="Submit a task")
    form.get_by_label("Payload (JSON object)").fill("{mode: ok")
    form.get_by_role("button", name="Submit task").click()
    expect(form.get_by_role("alert")).to_contain_text("not valid JSON")
    expect(page).to_have_url(task_list)

    # Fails once, retried: the graph gains an attempt, a retry, then a second attempt.
    retried = submit(page, task_list, "fails once, retried")
    timeline = page.get_by_test_id("timeline")
    expect(timeline.locator("li[data-status='completed']")).to_have_count(1, timeout=LIVE)
    expect(graph_nodes(page, "retry").first).to_be_visible(timeout=LIVE)
    expect(graph_nodes(page, "task_attempt")).to_have_count(2, timeout=LIVE)
    shot(page, backend, "task-retried")

    # Dead-lettered until replayed: a DLQ node appears live, then the replay completes it.
    dead = submit(page, task_list, "dead-lettered until replayed")
    expect(timeline.locator("li[data-status='failed']")).to_have_count(1, timeout=LIVE)
    expect(graph_nodes(page, "dlq_record").first).to_be_visible(timeout=LIVE)
    shot(page, backend, "task-dead-lettered")
    page.goto(f"{studio}/services/demo/dlq?task_id={dead}")
    page.get_by_role("button", name=re.compile(r"^Replay [0-9a-f]{64}$")).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Replay {dead}?")
    shot(page, backend, "dlq-replay")
    dialog.get_by_role("button", name="Replay").click()
    expect(page.get_by_role("table")).to_contain_text(re.compile("replayed .1"), timeout=LIVE)
    page.goto(f"{studio}/tasks/demo/{dead}")
    expect(page.get_by_test_id("timeline").locator("li[data-status='completed']")).to_have_count(
        1, timeout=LIVE
    )

    # Aggregation fan-out: the children, each run by the aggregation consumer, hang
    # off the parent's graph; the last one completes the parent.
    parent = submit(page, task_list, "aggregation fan-out, 3 children")
    expect(graph_nodes(page, "aggregation_child")).to_have_count(3, timeout=LIVE)
    expect(graph_nodes(page, "task_attempt")).to_have_count(4, timeout=LIVE)  # parent + 3
    expect(timeline.locator("li[data-status='completed']")).to_have_count(1, timeout=LIVE)
    fit_graph(page)
    shot(page, backend, "task-fanout")

    # Two-stage workflow: the task page shows both stages and the hop between them,
    # and links to the workflow topology, drawn as a graph.
    submit(page, task_list, "two-stage workflow")
    stages = graph_nodes(page, "stage_attempt")
    expect(stages.filter(has_text="planner attempt 1")).to_have_count(1, timeout=LIVE)
    expect(stages.filter(has_text="worker attempt 1")).to_have_count(1, timeout=LIVE)
    graph = page.get_by_test_id("execution-graph")
    expect(graph.locator(".gedge-stage_transitioned_to")).to_have_count(1, timeout=LIVE)
    expect(timeline.locator("li[data-status='completed']")).to_have_count(1, timeout=LIVE)
    expect(page.get_by_test_id("workflow-stages")).to_contain_text("planner → worker")
    run = page.get_by_test_id("workflow-run")  # Studio's federated workflow run
    expect(run.locator("tr[data-stage='worker'][data-status='completed']")).to_have_count(
        1, timeout=LIVE
    )
    expect(run.locator("tr[data-stage='planner'][data-status='completed']")).to_have_count(1)
    fit_graph(page)
    shot(page, backend, "task-workflow")
    page.get_by_test_id("workflow-stages").get_by_role("link", name="topology").click()
    expect(page.get_by_role("heading", name="Workflow topology")).to_be_visible()
    expect(graph_nodes(page, "stage")).to_have_count(1, timeout=LIVE)  # planner
    expect(graph_nodes(page, "terminal_stage")).to_have_count(1)  # worker
    expect(graph_nodes(page, "terminal_stage")).to_contain_text("worker")
    shot(page, backend, "workflow-topology")

    # Search a task by id.
    page.goto(f"{studio}/tasks/search")
    search = page.get_by_role("form", name="Search tasks")
    search.get_by_label("task id").fill(retried)
    search.get_by_role("button", name="Search").click()
    expect(page.get_by_role("link", name=retried)).to_be_visible(timeout=LIVE)
    expect(page).to_have_url(re.compile(f"task_id={retried}"))

    # The retry override: refused client-side with a message, 422 when forced.
    page.goto(f"{studio}/failed-tasks?service_id=demo&task_id={dead}")
    page.get_by_role("button", name=re.compile("^Open failure ")).first.click()
    retry = page.get_by_role("form", name="Retry")
    retry.get_by_label("Override payload (JSON object, optional)").fill("{not json")
    retry.get_by_role("button", name="Retry task").click()
    expect(retry.get_by_role("alert")).to_contain_text("not valid JSON")
    shot(page, backend, "failed-task-override")
    failure_id = page.evaluate(
        "async (t) => (await (await fetch('/studio/failed-tasks?service_id=demo&task_id=' + t))"
        ".json()).items[0].failure_id",
        dead,
    )
    forced = page.request.post(
        f"{studio}/studio/failed-tasks/demo/{failure_id}/retry",
        data=json.dumps({"override_payload": "{not json"}),
        headers={"content-type": "application/json"},
    )
    assert forced.status == 422, forced.text()
    assert parent  # every kind ran from the UI
