"""The `relayna dev` service in-process on the memory transports, both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import orjson
import pytest
from services import free_port  # scripts/ is on sys.path (tests/conftest.py)

from relayna.devserver import DevConfig, run_dev

pytestmark = pytest.mark.anyio


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    config = DevConfig(port=free_port(), step_seconds=0.01, retry_delay_ms=100, drain_timeout=5)
    shutdown = anyio.Event()
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            url = await tg.start(run_dev, config, shutdown)
            try:
                yield url.rstrip("/")
            finally:
                shutdown.set()


async def _events(client: httpx.AsyncClient, task_id: str) -> list[dict[str, object]]:
    """Follow the SSE stream of a task to its end; return the status events."""
    events: list[dict[str, object]] = []
    kind = None
    async with client.stream("GET", f"/events/{task_id}") as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        async for line in resp.aiter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and kind == "status":
                events.append(orjson.loads(line[5:]))
    return events


async def _submit(client: httpx.AsyncClient, payload: dict[str, object]) -> str:
    resp = await client.post("/tasks", json={"payload": payload})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["events_url"] == f"/events/{body['task_id']}"
    return str(body["task_id"])


async def test_page_is_served(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        resp = await client.get("/")
    assert resp.status_code == 200
    assert '<form id="submit">' in resp.text
    assert "EventSource" in resp.text


@pytest.mark.parametrize(
    ("mode", "final", "attempts", "must_see"),
    [
        ("ok", "completed", 1, None),
        ("fail_once", "completed", 2, "retrying"),
        ("handoff", "completed", 2, "manual_retrying"),  # two handler runs: process, review
        ("fail_always", "failed", 3, "retrying"),
    ],
)
async def test_modes_end_in_the_expected_status(
    base_url: str, mode: str, final: str, attempts: int, must_see: str | None
) -> None:
    with anyio.fail_after(30):
        async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
            task_id = await _submit(client, {"text": "abc", "steps": 2, "mode": mode})
            events = await _events(client, task_id)
            statuses = [e["status"] for e in events]
            assert statuses[-1] == final, statuses
            assert statuses.count("processing") == attempts, statuses
            if must_see:
                assert must_see in statuses
            latest = (await client.get(f"/status/{task_id}")).json()
            assert latest["event"]["status"] == final
            # A reconnect after the terminal event is told there is nothing more.
            last_id = str(events[-1]["event_id"])
            again = await client.get(f"/events/{task_id}", headers={"Last-Event-ID": last_id})
            assert again.status_code == 204


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"content-type": "text/plain"}, b"{}", 415),
        ({"content-type": "application/json"}, b"{not json", 400),
        ({"content-type": "application/json"}, b"[1]", 422),
        ({"content-type": "application/json"}, b'{"payload": 3}', 422),
        ({"content-type": "application/json"}, b'{"payload": {}, "bogus": 1}', 422),
        ({"content-type": "application/json"}, b'{"task_id": "a b", "payload": {}}', 422),
        ({"content-type": "application/json"}, b'{"priority": 300, "payload": {}}', 422),
        ({"content-type": "application/json"}, b'{"task_type": "nope", "payload": {}}', 422),
        (
            {"content-type": "application/json"},
            b'{"payload": {"x": "' + b"a" * (1 << 20) + b'"}}',
            413,
        ),
    ],
)
async def test_bad_submissions_get_clear_errors(
    base_url: str, headers: dict[str, str], body: bytes, status: int
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        resp = await client.post("/tasks", content=body, headers=headers)
    assert resp.status_code == status, resp.text
    assert "detail" in resp.json()


async def test_bad_task_id_in_routes_is_422(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        assert (await client.get("/status/a%0Db")).status_code == 422
        assert (await client.get("/status/" + "x" * 5000)).status_code == 422
        assert (await client.get("/status/unknown-task")).status_code == 404


async def test_dev_shows_the_execution_graph_of_a_handed_off_task(base_url: str) -> None:
    """The routed demo: a hand-off is a manual_retry_to edge between two attempts."""
    with anyio.fail_after(30):
        async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
            task_id = await _submit(client, {"text": "abc", "steps": 2, "mode": "handoff"})
            await _events(client, task_id)
            graph: dict[str, object] = {}
            while True:  # the observation sink writes off the hot path: poll for it
                resp = await client.get(f"/executions/{task_id}/graph")
                assert resp.status_code == 200
                graph = resp.json()
                kinds = [e["kind"] for e in graph["edges"]]  # type: ignore[index]
                if "manual_retry_to" in kinds and graph["summary"]["status"] == "completed":  # type: ignore[index]
                    break
                await anyio.sleep(0.05)
            assert graph["topology_kind"] == "routed_tasks_shared_status_sharded_aggregation"
            assert graph["summary"]["graph_completeness"] == "full"  # type: ignore[index]
            attempts = [n for n in graph["nodes"] if n["kind"] == "task_attempt"]  # type: ignore[union-attr,index]
            assert [a["annotations"]["task_type"] for a in attempts] == [
                "demo.process",
                "demo.review",
            ]
            mermaid = await client.get(f"/executions/{task_id}/graph?format=mermaid")
            assert "-->|manual_retry_to|" in mermaid.text
            doc = (await client.get("/relayna/capabilities")).json()
            assert "execution.graph" in doc["supported_routes"]
            feed = (await client.get("/events/feed", params={"limit": 500})).json()
            assert task_id in {item["task_id"] for item in feed["items"]}
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200
            assert "relayna_tasks_acked_total{" in metrics.text
            assert "relayna_hub_events_written_total{" in metrics.text
            assert "relayna_sse_events_sent_total{" in metrics.text
            assert task_id not in metrics.text


async def test_a_live_duplicate_task_id_is_409(base_url: str) -> None:
    body = {"task_id": "twice", "payload": {"steps": 1}}
    with anyio.fail_after(30):
        async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
            assert (await client.post("/tasks", json=body)).status_code == 202
            again = await client.post("/tasks", json=body)
            assert again.status_code == 409
            assert "twice" in again.json()["detail"]
            events = await _events(client, "twice")
            assert [e["status"] for e in events].count("completed") == 1  # it ran once
            finished = await client.post("/tasks", json=body)  # its statuses are live
            assert finished.status_code == 409


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"mode": "explode"}, "mode"),
        ({"mode": None}, "mode"),
        ({"steps": "5"}, "steps"),
        ({"steps": 0}, "steps"),
        ({"steps": 21}, "steps"),
        ({"steps": True}, "steps"),
        ({"text": 7}, "text"),
    ],
)
async def test_demo_payload_values_outside_the_demo_are_422(
    base_url: str, payload: dict[str, object], field: str
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        resp = await client.post("/tasks", json={"payload": payload})
    assert resp.status_code == 422, resp.text
    [error] = resp.json()["detail"]
    assert error["loc"] == ["body", "payload", field]


async def test_health_routes_are_on(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        live = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"store": "ok", "broker": "ok"}}


async def test_access_log_lists_requests(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="hypercorn.access")
    config = DevConfig(port=free_port(), step_seconds=0.01, access_log=True, drain_timeout=5)
    shutdown = anyio.Event()
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            url = await tg.start(run_dev, config, shutdown)
            async with httpx.AsyncClient(base_url=url) as client:
                assert (await client.get("/healthz?probe=access")).status_code == 200
            shutdown.set()
    lines = [r.getMessage() for r in caplog.records if r.name == "hypercorn.access"]
    assert any('"GET /healthz' in line and " 200 " in line for line in lines), lines


async def test_a_dead_lettered_demo_task_is_found_and_replayed_over_http(base_url: str) -> None:
    with anyio.fail_after(30):
        async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
            task_id = await _submit(client, {"steps": 2, "mode": "fail_always"})
            statuses = [e["status"] for e in await _events(client, task_id)]
            assert statuses[-1] == "failed"
            listed = (await client.get("/dlq/messages", params={"task_id": task_id})).json()
            [item] = listed["items"]
            assert item["reason"] == "handler_error"
            live = (await client.get("/broker/dlq/messages")).json()["items"]
            assert task_id in [m["task_id"] for m in live]
            failed = (await client.get(f"/failed-tasks/{item['dlq_id']}")).json()
            assert failed["latest_status"]["status"] == "failed"
            replay = await client.post(
                f"/dlq/messages/{item['dlq_id']}/replay", params={"direct": "true"}
            )
            assert replay.status_code == 200, replay.text
            # the demo task fails every time: the replayed copy dead-letters again, as a new record
            while True:
                items = (await client.get("/dlq/messages", params={"task_id": task_id})).json()
                if len(items["items"]) == 2:
                    break
                await anyio.sleep(0.05)
            states = sorted(i["state"] for i in items["items"])
            assert states == ["dead_lettered", "replayed"]


async def _graph_until(client: httpx.AsyncClient, task_id: str, ok: Any) -> dict[str, Any]:
    """The task's execution graph once ``ok(graph)`` (observations land off the hot path)."""
    while True:
        graph: dict[str, Any] = (await client.get(f"/executions/{task_id}/graph")).json()
        if ok(graph):
            return graph
        await anyio.sleep(0.05)


async def test_a_fanout_runs_its_children_on_the_aggregation_consumer(base_url: str) -> None:
    """The parent queues its children on its aggregation shard and returns; the
    aggregation consumer runs them and the last one completes the parent."""
    with anyio.fail_after(30):
        async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
            task_id = await _submit(client, {"steps": 3, "mode": "fanout"})
            events = await _events(client, task_id)
            statuses = [e["status"] for e in events]
            assert statuses.count("completed") == 1, statuses
            assert statuses[-1] == "completed", statuses
            children = [f"{task_id}.{n}" for n in (1, 2, 3)]
            assert events[-1]["result"] == {
                "children": {c: {"part": n, "steps": 2} for n, c in enumerate(children, 1)}
            }
            for child in children:
                child_events = await _events(client, child)
                assert child_events[0]["status"] == "queued"
                assert child_events[-1]["status"] == "completed"
                assert child_events[0]["meta"]["aggregation_role"] == "aggregation"
                assert {e["meta"]["parent_task_id"] for e in child_events} == {task_id}

            def linked(graph: dict[str, Any]) -> bool:
                attempts = {n["task_id"] for n in graph["nodes"] if n["kind"] == "task_attempt"}
                return attempts >= {task_id, *children}

            graph = await _graph_until(client, task_id, linked)
            nodes = graph["nodes"]
            assert (
                sorted(n["task_id"] for n in nodes if n["kind"] == "aggregation_child") == children
            )
            assert sorted(graph["related_task_ids"]) == children
            kinds = {e["kind"] for e in graph["edges"]}
            assert {"aggregated_into", "received_by", "published_status"} <= kinds
            child_attempts = [
                n for n in nodes if n["kind"] == "task_attempt" and n["task_id"] in children
            ]
            assert {n["annotations"]["consumer_name"] for n in child_attempts} == {
                "relayna-dev-aggregator"
            }


async def test_more_fanouts_than_the_prefetch_do_not_starve_their_children(
    base_url: str,
) -> None:
    """12 fan-outs of 5 children at once, with a worker prefetch of 8: a parent no
    longer holds its slot while its children run, so every one completes."""
    with anyio.fail_after(30):
        async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
            parents = [await _submit(client, {"steps": 5, "mode": "fanout"}) for _ in range(12)]
            for parent in parents:
                events = await _events(client, parent)
                assert events[-1]["status"] == "completed"
                assert len(events[-1]["result"]["children"]) == 5


async def test_a_workflow_task_runs_both_stages_and_its_graph_shows_them(base_url: str) -> None:
    """demo.workflow: planner hands to worker (whose first attempt fails once); the
    statuses, the run state, the topology and the execution graph all show both stages."""
    with anyio.fail_after(30):
        async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
            body = {"task_type": "demo.workflow", "payload": {"text": "a b", "mode": "fail_once"}}
            posted = await client.post("/tasks", json=body)
            assert posted.status_code == 202, posted.text
            task_id = posted.json()["task_id"]
            assert posted.json()["task_type"] == "demo.workflow"
            taken = await client.post("/tasks", json={**body, "task_id": task_id})
            assert taken.status_code == 409, taken.text
            events = await _events(client, task_id)
            assert events[-1]["status"] == "completed"
            assert events[-1]["result"] == {"parts": ["A", "B"], "attempts": 2}
            assert {e["meta"].get("stage") for e in events} == {"planner", "worker"}

            run = (await client.get(f"/workflow/runs/{task_id}")).json()
            assert run["run"]["status"] == "completed"
            assert {s["stage"]: s["status"] for s in run["run"]["stages"]} == {
                "planner": "completed",
                "worker": "completed",
            }
            topology = (await client.get("/workflow/topology")).json()
            assert [(e["source"], e["target"]) for e in topology["edges"]] == [
                ("planner", "worker")
            ]

            def both_stages(graph: dict[str, Any]) -> bool:
                stages = [n for n in graph["nodes"] if n["kind"] == "stage_attempt"]
                return len(stages) == 3 and graph["summary"]["status"] == "completed"

            graph = await _graph_until(client, task_id, both_stages)
            by_id = {n["id"]: n for n in graph["nodes"]}
            planner = f"stage-attempt:{task_id}:planner:1"
            assert {f"stage-attempt:{task_id}:worker:{n}" for n in (1, 2)} | {planner} == {
                i for i, n in by_id.items() if n["kind"] == "stage_attempt"
            }
            [hop] = [e for e in graph["edges"] if e["kind"] == "stage_transitioned_to"]
            assert hop["source"] == planner
            assert by_id[hop["target"]]["kind"] == "workflow_message"
            entered = {
                (e["source"], e["target"]) for e in graph["edges"] if e["kind"] == "entered_stage"
            }
            assert (hop["target"], f"stage-attempt:{task_id}:worker:1") in entered
            assert any(n["kind"] == "retry" for n in graph["nodes"])  # the worker's retry


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"mode": "fanout"}, "mode"),
        ({"steps": 0}, "steps"),
        ({"text": ["a"]}, "text"),
        ({"parts": ["x"]}, "parts"),  # the planner's contract: no unknown fields
    ],
)
async def test_workflow_payloads_outside_the_planner_contract_are_422(
    base_url: str, payload: dict[str, object], field: str
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        resp = await client.post("/tasks", json={"task_type": "demo.workflow", "payload": payload})
    assert resp.status_code == 422, resp.text
    [error] = resp.json()["detail"]
    assert error["loc"] == ["body", "payload", field]


async def test_a_task_that_fails_until_replayed_completes_after_its_replay(
    base_url: str,
) -> None:
    with anyio.fail_after(30):
        async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
            task_id = await _submit(client, {"steps": 2, "mode": "fail_until_replayed"})
            statuses = [e["status"] for e in await _events(client, task_id)]
            assert statuses[-1] == "failed"
            assert statuses.count("retrying") == 2
            [item] = (await client.get("/dlq/messages", params={"task_id": task_id})).json()[
                "items"
            ]
            replay = await client.post(f"/dlq/messages/{item['dlq_id']}/replay")
            assert replay.status_code == 200, replay.text
            latest: dict[str, object] = {}
            while latest.get("status") != "completed":
                await anyio.sleep(0.05)
                latest = (await client.get(f"/status/{task_id}")).json()["event"]
            listed = (await client.get("/dlq/messages", params={"task_id": task_id})).json()
            assert [i["state"] for i in listed["items"]] == ["replayed"]  # no new dead letter
