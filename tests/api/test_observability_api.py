"""Execution graph, event feed, capability document and worker health routes over
real HTTP (hypercorn on loopback + httpx), a real worker on the memory
transports, both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from relayna.api import (
    EVENTS_FEED,
    EXECUTION_GRAPH,
    EXECUTIONS_GRAPH,
    HEALTH_WORKERS,
    HISTORY_LIST,
    STATUS_EVENTS,
    STATUS_HISTORY,
    STATUS_LATEST,
    RelaynaRuntime,
    RuntimeConfig,
    capabilities_routes,
    execution_routes,
    feed_routes,
    open_relayna_runtime,
    status_routes,
    worker_health_routes,
)
from relayna.consumer import (
    LifecycleStatuses,
    RetryPolicy,
    TaskConsumer,
    TaskContext,
    WorkerHeartbeats,
)
from relayna.contracts import ContractAliasConfig, TaskEnvelope
from relayna.observability import make_observation_sink
from relayna.rabbitmq import open_relayna_client
from relayna.topology import SharedTasksSharedStatusTopology

pytestmark = pytest.mark.anyio

Serve = Callable[[Any], Any]
BAD_IDS = ["a%20b", "x" * 300, "bad%0D%0Aid", "a..b", "a*b", ".x"]


def topology(unique: str) -> SharedTasksSharedStatusTopology:
    return SharedTasksSharedStatusTopology(
        tasks_exchange=f"tx.{unique}",
        tasks_queue=f"tq.{unique}",
        tasks_routing_key="task",
        status_exchange=f"sx.{unique}",
        status_queue=f"sq.{unique}",
        status_use_streams=False,
    )


@asynccontextmanager
async def service(
    serve: Serve, unique: str, routes: Callable[[], list[BaseRoute]]
) -> AsyncIterator[tuple[RelaynaRuntime, httpx.AsyncClient]]:
    config = RuntimeConfig(store_url="memory://", broker_url="memory://", topology=topology(unique))
    async with open_relayna_runtime(config) as runtime:

        @asynccontextmanager
        async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
            yield {"relayna": runtime}

        app = Starlette(routes=routes(), lifespan=lifespan)
        async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
            try:
                yield runtime, client
            finally:
                runtime.request_shutdown()


async def run_fail_once(runtime: RelaynaRuntime, task_ids: list[str], **consumer: Any) -> None:
    """A real worker (retry policy, statuses, observation sink) handles each task: the
    first attempt fails, the broker-delayed retry succeeds."""
    assert runtime.broker is not None
    assert runtime.observations is not None
    topo = runtime.config.topology
    assert isinstance(topo, SharedTasksSharedStatusTopology)
    attempts: dict[str, int] = {}

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> str:
        attempts[task.task_id] = attempts.get(task.task_id, 0) + 1
        if ctx.attempt == 0:
            raise RuntimeError("first attempt fails")
        return "ok"

    worker = TaskConsumer(
        topology=topo,
        broker=runtime.broker,
        handler=handler,
        retry_policy=RetryPolicy(max_retries=2, delay_ms=20),
        statuses=LifecycleStatuses(enabled=True),
        observation_sink=make_observation_sink(runtime.observations, runtime.feed),
        **consumer,
    )
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        async with open_relayna_client(topo, runtime.broker, declare=False) as client:
            await client.publish_tasks([{"task_id": t} for t in task_ids])
        while True:  # until every task is completed in the store and observed
            done = [(await runtime.status.latest(t)) or {} for t in task_ids]
            seen = [len(await runtime.observations.history(t)) for t in task_ids]
            if all(d.get("status") == "completed" for d in done) and all(n >= 6 for n in seen):
                break
            await anyio.sleep(0.01)
        tg.cancel_scope.cancel()


def all_routes() -> list[BaseRoute]:
    return [
        *feed_routes(),
        *execution_routes(),
        *worker_health_routes(stale_after=3600),
        *capabilities_routes(service_title="orders"),
        *status_routes(),
    ]


async def test_graph_route_of_a_retried_task(serve: Serve, unique: str) -> None:
    with anyio.fail_after(30):
        async with service(serve, unique, all_routes) as (runtime, client):
            await run_fail_once(runtime, ["job-1"])
            response = await client.get("/executions/job-1/graph")
            assert response.status_code == 200
            graph = response.json()
            assert graph["task_id"] == "job-1"
            assert graph["topology_kind"] == "shared_tasks_shared_status"
            assert graph["summary"]["graph_completeness"] == "full"
            assert graph["summary"]["status"] == "completed"
            kinds = [n["kind"] for n in graph["nodes"]]
            assert kinds.count("task_attempt") == 2
            assert kinds.count("retry") == 1
            assert "status_event" in kinds
            edges = {(e["source"], e["target"], e["kind"]) for e in graph["edges"]}
            assert ("task:job-1", "task-attempt:job-1:1", "received_by") in edges
            assert ("task-attempt:job-1:1", "retry:job-1:1", "retried_as") in edges
            assert ("retry:job-1:1", "task-attempt:job-1:2", "received_by") in edges
            assert any(k == "published_status" for *_, k in edges)

            mermaid = await client.get("/executions/job-1/graph", params={"format": "mermaid"})
            assert mermaid.status_code == 200
            assert mermaid.headers["content-type"].startswith("text/vnd.mermaid")
            assert mermaid.text.startswith("flowchart LR\n")
            assert "-->|retried_as|" in mermaid.text

            assert (await client.get("/executions/nobody/graph")).status_code == 404
            for bad in BAD_IDS:
                assert (await client.get(f"/executions/{bad}/graph")).status_code == 422, bad
            bad_format = await client.get("/executions/job-1/graph", params={"format": "xml"})
            assert bad_format.status_code == 422


async def test_graph_without_observations_is_partial(serve: Serve, unique: str) -> None:
    with anyio.fail_after(10):
        async with service(serve, unique, execution_routes) as (runtime, client):
            await runtime.status.write({"task_id": "p1", "event_id": "e1", "status": "queued"})
            graph = (await client.get("/executions/p1/graph")).json()
            assert graph["summary"]["graph_completeness"] == "partial"
            assert [n["kind"] for n in graph["nodes"]] == ["task", "status_event"]


async def test_graph_route_follows_aliases(serve: Serve, unique: str) -> None:
    aliases = ContractAliasConfig(
        field_aliases={"task_id": "documentId"}, http_aliases={"task_id": "attempt_id"}
    )
    with anyio.fail_after(10):
        async with service(serve, unique, lambda: execution_routes(aliases=aliases)) as (
            runtime,
            client,
        ):
            await runtime.status.write({"task_id": "d1", "event_id": "e1", "status": "queued"})
            body = (await client.get("/executions/d1/graph")).json()
            assert body["documentId"] == "d1"
            assert "task_id" not in body
            detail = (await client.get("/executions/a%20b/graph")).json()["detail"]
            assert detail[0]["loc"] == ["path", "attempt_id"]


async def test_feed_route_pages_statuses_and_observations(serve: Serve, unique: str) -> None:
    with anyio.fail_after(30):
        async with service(serve, unique, all_routes) as (runtime, client):
            await run_fail_once(runtime, ["f1", "f2"])
            items: list[dict[str, Any]] = []
            cursor = None
            while True:
                params = {"limit": "5"} if cursor is None else {"limit": "5", "after": cursor}
                page = (await client.get("/events/feed", params=params)).json()
                assert page["count"] == len(page["items"]) <= 5
                assert page["reset"] is False
                items.extend(page["items"])
                cursor = page["next_cursor"]
                if not page["has_more"]:
                    break
            kinds = {i["source_kind"] for i in items}
            assert kinds == {"status", "observation"}
            assert {i["task_id"] for i in items} == {"f1", "f2"}
            assert "status.completed" in {i["event_type"] for i in items}
            cursors = [i["cursor"] for i in items]
            assert len(set(cursors)) == len(cursors)
            for params in (
                {"after": "garbage"},
                {"after": "-1"},
                {"limit": "0"},
                {"limit": "501"},
                {"limit": "abc"},
            ):
                assert (await client.get("/events/feed", params=params)).status_code == 422
            # a status route mounted after the feed route does not shadow it
            assert (
                (await client.get("/events/feed"))
                .headers["content-type"]
                .startswith("application/json")
            )


async def test_capability_document_lists_only_mounted_routes(serve: Serve, unique: str) -> None:
    def some_routes() -> list[BaseRoute]:
        return [*execution_routes(), *capabilities_routes(), *status_routes(history_path=None)]

    with anyio.fail_after(10):
        async with service(serve, unique, some_routes) as (_runtime, client):
            doc = (await client.get("/relayna/capabilities")).json()
            # the graph route under the original's id and the (Studio reads either);
            # status history is not mounted, so neither of its ids is advertised
            assert doc["supported_routes"] == sorted(
                [EXECUTION_GRAPH, EXECUTIONS_GRAPH, STATUS_EVENTS, STATUS_LATEST]
            )
            assert doc["topology_kind"] == "shared_tasks_shared_status"
            assert doc["service_metadata"]["compatibility"] == "capabilities_v1"
            assert doc["alias_config_summary"]["aliasing_enabled"] is False
            assert doc["feature_flags"]["service_event_feed"] is True
        async with service(serve, unique + "b", all_routes) as (_runtime, client):
            doc = (await client.get("/relayna/capabilities")).json()
            assert set(doc["supported_routes"]) >= {
                EVENTS_FEED,
                HEALTH_WORKERS,
                EXECUTION_GRAPH,
                EXECUTIONS_GRAPH,
                STATUS_HISTORY,
                HISTORY_LIST,
            }
            assert doc["service_metadata"]["service_title"] == "orders"


async def test_worker_health_lists_live_heartbeats(serve: Serve, unique: str) -> None:
    with anyio.fail_after(30):
        async with service(serve, unique, all_routes) as (runtime, client):
            beats = WorkerHeartbeats(store=runtime.store, interval=0.05, ttl=5)
            await run_fail_once(runtime, ["h1"], heartbeats=beats, consumer_name="health-w")
            body = (await client.get("/relayna/health/workers")).json()
            [worker] = body["workers"]
            assert worker["worker_name"] == "health-w"
            assert worker["state"] == "stopped"  # the final record after the drain
            assert worker["running"] is False
            assert worker["stale"] is False
            assert worker["queue_name"] == runtime.config.topology.tasks_queue  # type: ignore[union-attr]
            assert worker["pid"] > 0
            assert worker["last_heartbeat_age_seconds"] >= 0
            assert body["stale_after_seconds"] == 3600
