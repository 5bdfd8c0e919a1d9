"""The trace path, task windows and trace-id discovery against running relayna services.

* ``relayna dev`` in-process (memory broker and store, its real HTTP routes on
  loopback) with OpenTelemetry on: a demo task that fails, retries and
  dead-letters; its spans go over OTLP/HTTP to the local Tempo (Tempo is not
  installable here; the stand-in implements its documented API). Studio reads
  the task's detail, graph and DLQ items from the service, pulls its event
  feed, and joins them with the spans.
* A service on the real RabbitMQ + Redis that mounts no execution graph: the
  path is built from the status history, and the DLQ item hangs off it with a
  ``dead_lettered_to`` edge.

Every assertion on the path names the node a span, an event or a DLQ item
must reach, so removing or weakening a join fails the test. Both backends.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import anyio
import httpx
import pytest
from services import free_port  # scripts/ is on sys.path (relayna's tests/conftest.py)
from starlette.applications import Starlette

from relayna.api import (
    RuntimeConfig,
    capabilities_routes,
    dlq_routes,
    relayna_lifespan,
    status_routes,
)
from relayna.consumer import LifecycleStatuses, RetryPolicy, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.devserver import DevConfig, run_dev
from relayna.dlq import DLQStore, DLQStoreConfig
from relayna.rabbitmq import open_relayna_client
from relayna.status import StatusStore, StatusStoreConfig
from relayna.topology import SharedTasksSharedStatusTopology
from relayna.transport import Store, open_broker, open_store
from relayna_studio._pull_sync import pull_sync
from studio_support import Studio, TableResolver, open_test_studio, settings_for
from telemetry_servers import LocalLoki, LocalTempo, serve_on

pytestmark = pytest.mark.anyio

HOST = "127.0.0.2"
PADDING = 60


def ns(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1e6) * 1000


async def register(studio: Studio, service_id: str, port: int, **configs: Any) -> None:
    created = await studio.client.post(
        "/studio/services",
        json={"service_id": service_id, "name": service_id, "environment": service_id,
              "base_url": f"http://svc.test:{port}", "auth_mode": "internal_network", **configs},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    refreshed = await studio.client.post(f"/studio/services/{service_id}/refresh")
    assert refreshed.status_code == 200, refreshed.text


async def failed_demo_task(service: httpx.AsyncClient) -> str:
    submitted = await service.post(
        "/tasks", json={"payload": {"text": "abc", "steps": 1, "mode": "fail_always"}}
    )
    assert submitted.status_code == 202, submitted.text
    task_id = str(submitted.json()["task_id"])
    while True:  # polling the service; the test's fail_after bounds it
        graph = await service.get(f"/executions/{task_id}/graph")
        dlq = await service.get("/dlq/messages", params={"task_id": task_id})
        if (
            graph.status_code == 200
            and graph.json()["summary"]["status"] == "failed"
            and any(n["kind"] == "dlq_record" for n in graph.json()["nodes"])
            and dlq.json()["items"]
        ):
            return task_id
        await anyio.sleep(0.05)


async def test_trace_path_joins_graph_dlq_events_and_spans(otlp_provider: Any) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    tempo, loki = LocalTempo(), LocalLoki()
    resolver = TableResolver({"tempo.test": [HOST], "loki.test": [HOST], "svc.test": [HOST]})
    settings = settings_for(
        "memory://", f"path:{uuid.uuid4().hex[:8]}", allowed_hosts=(".test",),
        allowed_networks=(f"{HOST}/32",), telemetry_timeout_seconds=5.0,
        federation_timeout_seconds=5.0,
    )  # fmt: skip
    config = DevConfig(host=HOST, port=free_port(), step_seconds=0.01, retry_delay_ms=50,
                       max_retries=1, drain_timeout=5)  # fmt: skip
    shutdown = anyio.Event()
    with anyio.fail_after(60):
        async with (
            serve_on(tempo.app(), HOST) as tempo_port,
            serve_on(loki.app(), HOST) as loki_port,
            open_test_studio(settings, resolver=resolver) as studio,
            anyio.create_task_group() as tg,
        ):
            processor = BatchSpanProcessor(
                OTLPSpanExporter(endpoint=f"http://{HOST}:{tempo_port}/v1/traces")
            )
            otlp_provider.add_span_processor(processor)
            url = await tg.start(run_dev, config, shutdown)
            try:
                async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=10) as service:
                    task_id = await failed_demo_task(service)
                    graph = (await service.get(f"/executions/{task_id}/graph")).json()
                    (dlq_item,) = (await service.get(f"/dlq/messages?task_id={task_id}")).json()[
                        "items"
                    ]
                assert await anyio.to_thread.run_sync(processor.force_flush)
                trace_config = {"base_url": f"http://tempo.test:{tempo_port}"}
                await register(studio, "dev", config.port, trace_config=trace_config)
                await register(studio, "dev-logs", config.port, trace_config=trace_config,
                               log_config={"base_url": f"http://loki.test:{loki_port}",
                                           "service_selector_labels": {"service": "dev"}},
                               metrics_config={"base_url": "http://prometheus.test:9",
                                               "service_selector_labels": {"service": "dev"},
                                               "task_window_padding_seconds": PADDING})  # fmt: skip
                assert await pull_sync(studio.runtime, "dev") > 0
                await check_discovery(studio, task_id, tempo)
                await check_path(studio, task_id, graph, dlq_item)
                await check_window_from_graph(studio, task_id, graph, loki)
            finally:
                shutdown.set()


async def check_discovery(studio: Studio, task_id: str, tempo: LocalTempo) -> None:
    """No log_config: the trace id can only come from the task's detail, read from
    the running service."""
    body = (await studio.client.get(f"/studio/tasks/dev/{task_id}/traces")).json()
    assert body["errors"] == []
    assert not [w for w in body["warnings"] if w.startswith("task detail")], body["warnings"]
    consumers = [s for s in body["spans"] if s["name"] == "relayna.consumer.task_message"]
    assert len(consumers) == 2  # both attempts, read back from Tempo
    assert {s["trace_id"] for s in consumers} <= set(body["trace_ids"])
    assert set(body["trace_ids"]) <= set(tempo.traces)


async def check_path(
    studio: Studio, task_id: str, graph: dict[str, Any], dlq_item: dict[str, Any]
) -> None:
    answer = await studio.client.get(f"/studio/tasks/dev/{task_id}/trace-path")
    assert answer.status_code == 200, answer.text
    path = answer.json()
    assert path["errors"] == []
    nodes = {n["id"]: n for n in path["nodes"]}
    assert set(nodes) >= {n["id"] for n in graph["nodes"]}  # the graph is the base
    spans = {s["span_id"]: s for s in path["spans"]}

    # spans -> attempts, in time order; status publishes and hub writes -> status nodes
    attempts = sorted((n for n in graph["nodes"] if n["kind"] == "task_attempt"),
                      key=lambda n: n["timestamp"])  # fmt: skip
    consumers = sorted((s for s in path["spans"] if s["name"] == "relayna.consumer.task_message"),
                       key=lambda s: s["start_time"])  # fmt: skip
    assert len(attempts) == len(consumers) == 2
    for attempt, span in zip(attempts, consumers, strict=True):
        assert span["span_id"] in nodes[attempt["id"]]["span_ids"]
        assert (
            span["attributes"]["relayna.retry_attempt"] == attempt["annotations"]["retry_attempt"]
        )
    statuses = [n for n in graph["nodes"] if n["kind"] == "status_event"]
    for status in statuses:
        attached = [spans[i] for i in nodes[status["id"]]["span_ids"]]
        hub = [s for s in attached if s["name"] == "relayna.status_hub.write"]
        assert len(hub) == 1, (status["label"], [s["name"] for s in attached])
        assert hub[0]["attributes"]["messaging.message.id"] == status["annotations"]["event_id"]
    matched = {i for n in path["nodes"] if n["kind"] != "span" for i in n["span_ids"]}
    assert path["summary"]["matched_span_count"] == len(matched)
    for node in (n for n in path["nodes"] if n["kind"] == "span"):  # the rest hang off parents
        (span_id,) = node["span_ids"]
        edge = next(e for e in path["edges"] if e["target"] == node["id"])
        parent = spans[span_id]["parent_span_id"]
        if parent in spans:
            assert parent in nodes[edge["source"]]["span_ids"]

    # the DLQ item joins the graph's dlq_record node: no second node, no extra edge
    dlq_nodes = [n for n in path["nodes"] if n["kind"] == "dlq_record"]
    assert [n["dlq_ids"] for n in dlq_nodes] == [[dlq_item["dlq_id"]]]
    assert dlq_nodes[0]["id"] in {n["id"] for n in graph["nodes"]}

    def dead_letters(edges: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return sorted((e["source"], e["target"]) for e in edges if e["kind"] == "dead_lettered_to")

    assert dead_letters(path["edges"]) == dead_letters(graph["edges"])  # the graph's own edge
    assert path["summary"]["dlq_message_count"] == 1

    # Studio's events (pulled from the service's feed) join their nodes
    events = (await studio.client.get(f"/studio/tasks/dev/{task_id}/events?limit=200")).json()
    keys = {e["dedupe_key"]: e for e in events["items"]}
    assert path["summary"]["event_count"] == len(keys)
    placed = {k: n["id"] for n in path["nodes"] for k in n["event_keys"]}
    assert set(placed) == set(keys)  # every event is somewhere, once
    by_event_id = {s["annotations"]["event_id"]: s["id"] for s in statuses}
    by_attempt = {a["annotations"]["retry_attempt"]: a["id"] for a in attempts}
    seen = set()
    for key, event in keys.items():
        payload = event["payload"]
        if event["source_kind"] == "status":
            assert placed[key] == by_event_id[payload["event_id"]], event["event_type"]
        elif event["event_type"] == "ConsumerDeadLetterPublished":
            assert placed[key] == dlq_nodes[0]["id"]
        elif payload.get("retry_attempt") is not None:
            assert placed[key] == by_attempt[payload["retry_attempt"]], event["event_type"]
        seen.add(event["event_type"])
    assert {"status.processing", "status.failed", "TaskMessageReceived",
            "ConsumerDeadLetterPublished"} <= seen  # fmt: skip
    assert dlq_item["correlation_id"] == task_id  # dev's default: no separate correlation id
    assert path["log_metadata"] == {"task_id": task_id, "correlation_id": None,
                                    "suggested_query": task_id}  # fmt: skip


async def check_window_from_graph(
    studio: Studio, task_id: str, graph: dict[str, Any], loki: LocalLoki
) -> None:
    """Task logs and metrics without ``from``/``to``: the window is the graph summary's
    ``started_at``..``ended_at`` padded by the service's ``task_window_padding_seconds``."""
    answer = await studio.client.get(f"/studio/tasks/dev-logs/{task_id}/logs")
    assert answer.status_code == 200, answer.text
    query = loki.queries[-1]
    summary = graph["summary"]
    assert int(query["start"]) == ns(summary["started_at"]) - PADDING * 10**9
    assert int(query["end"]) == ns(summary["ended_at"]) + PADDING * 10**9 + 1


@pytest.mark.rabbitmq
@pytest.mark.redis
async def test_without_a_graph_the_path_is_the_history_and_the_dlq_item_hangs_off_it(
    amqp_url: str, redis_url: str, unique: str
) -> None:
    """A service on the real RabbitMQ + Redis with status, DLQ and capability routes but
    no execution graph: a task that retried and dead-lettered."""
    topology = SharedTasksSharedStatusTopology(
        tasks_exchange=f"tp-{unique}", tasks_queue=f"tp-{unique}", tasks_routing_key="task",
        status_exchange=f"tp-status-{unique}", status_queue=f"tp-status-{unique}",
        status_use_streams=True,  # /history reads the status stream
    )  # fmt: skip
    dlq_config = DLQStoreConfig(prefix=f"tp-dlq:{unique}")
    status_config = StatusStoreConfig(prefix=f"tp-status:{unique}")
    runtime = RuntimeConfig(store_url=redis_url, broker_url=amqp_url, topology=topology,
                            store=status_config)  # fmt: skip
    app = Starlette(
        routes=[*capabilities_routes(service_title="no graph"), *status_routes(),
                *dlq_routes(store_config=dlq_config)],
        lifespan=relayna_lifespan(runtime),
    )  # fmt: skip
    tempo, loki = LocalTempo(), LocalLoki()
    resolver = TableResolver({"tempo.test": [HOST], "loki.test": [HOST], "svc.test": [HOST]})
    settings = settings_for("memory://", f"path:{uuid.uuid4().hex[:8]}", allowed_hosts=(".test",),
                            allowed_networks=(f"{HOST}/32",), federation_timeout_seconds=5.0)  # fmt: skip

    async def failing(task: TaskEnvelope, ctx: TaskContext) -> None:
        raise RuntimeError("downstream is down")

    with anyio.fail_after(60):
        async with (
            open_broker(amqp_url) as broker,
            open_store(redis_url) as store,
            serve_on(app, HOST) as port,
            serve_on(tempo.app(), HOST) as tempo_port,
            serve_on(loki.app(), HOST) as loki_port,
            open_test_studio(settings, resolver=resolver) as studio,
        ):
            try:
                consumer = TaskConsumer(
                    topology=topology, broker=broker, handler=failing,
                    retry_policy=RetryPolicy(max_retries=1, delay_ms=50),
                    statuses=LifecycleStatuses(enabled=True),
                    dlq_recorder=DLQStore(store, dlq_config), drain_timeout=2.0,
                )  # fmt: skip
                statuses = StatusStore(store, status_config)
                async with anyio.create_task_group() as tg:
                    await tg.start(consumer.run)
                    async with open_relayna_client(topology, broker, declare=False) as client:
                        await client.publish_task({"task_id": "job-1", "correlation_id": "corr-1"})
                    while (latest := await statuses.latest("job-1")) is None or latest[  # noqa: ASYNC110 - polling the hub's writes
                        "status"
                    ] != "failed":
                        await anyio.sleep(0.05)
                    tg.cancel_scope.cancel()
                await register(studio, "plain", port,
                               trace_config={"base_url": f"http://tempo.test:{tempo_port}"},
                               log_config={"base_url": f"http://loki.test:{loki_port}",
                                           "service_selector_labels": {"service": "plain"}},
                               metrics_config={"base_url": "http://prometheus.test:9",
                                               "service_selector_labels": {"service": "plain"},
                                               "task_window_padding_seconds": PADDING})  # fmt: skip
                await check_history_path(studio, store, dlq_config, loki)
            finally:
                with anyio.CancelScope(shield=True):
                    for name in ("", ".retry", ".dlq"):
                        await broker.delete_queue(topology.tasks_queue + name)
                    await broker.delete_queue(topology.status_queue)


async def check_history_path(
    studio: Studio, store: Store, dlq_config: DLQStoreConfig, loki: LocalLoki
) -> None:
    (record,) = (await DLQStore(store, dlq_config).list_records()).records
    answer = await studio.client.get("/studio/tasks/plain/job-1/trace-path")
    assert answer.status_code == 200, answer.text
    path = answer.json()
    assert [e["section"] for e in path["errors"]] == ["graph"], path["errors"]  # not served
    history = (await studio.client.get("/studio/tasks/plain/job-1")).json()["history"]
    assert [e["status"] for e in history] == ["processing", "retrying", "processing", "failed"]
    nodes = {n["id"]: n for n in path["nodes"]}
    task = nodes["task:job-1"]
    status_nodes = [n for n in path["nodes"] if n["kind"] == "status_event"]
    assert [(n["label"], n["timestamp"], n["annotations"]["event_id"]) for n in status_nodes] == [
        (e["status"], e["timestamp"], e["event_id"]) for e in history
    ]
    published = [
        (e["source"], e["target"]) for e in path["edges"] if e["kind"] == "published_status"
    ]
    assert sorted(published) == sorted((task["id"], n["id"]) for n in status_nodes)
    (dlq_node,) = [n for n in path["nodes"] if n["kind"] == "dlq_record"]
    assert dlq_node["dlq_ids"] == [record.dlq_id]
    assert dlq_node["label"] == record.queue_name
    (edge,) = [e for e in path["edges"] if e["kind"] == "dead_lettered_to"]
    assert (edge["source"], edge["target"], edge["state"]) == (
        task["id"],
        dlq_node["id"],
        "blocked",
    )
    item = path["dlq_messages"][0]
    assert edge["timestamp"] == item["dead_lettered_at"] == dlq_node["timestamp"]
    assert path["summary"]["dlq_message_count"] == 1
    assert path["log_metadata"]["suggested_query"] == "job-1 OR corr-1"
    assert "no trace id found in the task's detail or logs" in path["warnings"]

    # the task window without a graph: the first and last history events, padded
    answer = await studio.client.get("/studio/tasks/plain/job-1/logs")
    assert answer.status_code == 200, answer.text
    query = loki.queries[-1]
    assert int(query["start"]) == ns(history[0]["timestamp"]) - PADDING * 10**9
    assert int(query["end"]) == ns(history[-1]["timestamp"]) + PADDING * 10**9 + 1
