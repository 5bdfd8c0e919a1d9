"""Traces through Studio: relayna's own spans, exported with the standard OTLP/HTTP
exporter by a real worker on the real RabbitMQ, found by Studio from the task's logs
and read back from the local Tempo (Tempo is not installable here; the stand-in
implements its documented trace-by-id API and OTLP receiver). Both backends.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import anyio
import orjson
import pytest

from relayna.consumer import LifecycleStatuses, RetryPolicy, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.observability import LogContextFilter
from relayna.rabbitmq import open_relayna_client
from relayna.topology import SharedTasksSharedStatusTopology
from relayna.transport import open_broker
from studio_support import Studio, TableResolver, open_test_studio, settings_for
from telemetry_servers import LocalLoki, LocalTempo, serve_on

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq]

HOST = "127.0.0.2"


class LokiShipper(logging.Handler):
    """What promtail would do: JSON lines with the record's task and trace ids."""

    def __init__(self, loki: LocalLoki) -> None:
        super().__init__()
        self.loki = loki
        self.addFilter(LogContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        line = orjson.dumps({
            "msg": record.getMessage(), "level": record.levelname.lower(),
            "task_id": getattr(record, "task_id", None), "trace_id": getattr(record, "trace_id", None),
        }).decode()  # fmt: skip
        self.loki.push({"service": "checkout", "app": "worker"}, int(record.created * 1e9), line)


async def run_task(amqp_url: str, name: str) -> None:
    topology = SharedTasksSharedStatusTopology(
        tasks_exchange=f"{name}.tasks", tasks_queue=f"{name}.tasks", tasks_routing_key="task",
        status_exchange=f"{name}.status", status_queue=f"{name}.status", status_use_streams=False,
    )  # fmt: skip
    log = logging.getLogger("checkout.worker")

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        log.warning("handling %s, attempt %s", task.task_id, ctx.attempt)
        if ctx.attempt == 0:
            raise RuntimeError("fails once")

    async with open_broker(amqp_url) as broker:
        consumer = TaskConsumer(
            topology=topology, broker=broker, handler=handler, consumer_name="traced",
            retry_policy=RetryPolicy(max_retries=2, delay_ms=10),
            statuses=LifecycleStatuses(enabled=True),
        )  # fmt: skip
        async with anyio.create_task_group() as tg:
            await tg.start(consumer.run)
            async with open_relayna_client(topology, broker) as client:
                await client.publish_tasks([{"task_id": "t-1"}])
            while consumer.stats.acked < 1:  # noqa: ASYNC110 - test polling
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
        for suffix in ("", ".retry", ".dlq"):
            await broker.delete_queue(topology.tasks_queue + suffix)
        await broker.delete_queue(topology.status_queue)


async def register(studio: Studio, loki_port: int, tempo_port: int) -> None:
    response = await studio.client.post(
        "/studio/services",
        json={
            "service_id": "checkout", "name": "Checkout", "environment": "test",
            "base_url": "http://svc.test:9", "auth_mode": "internal_network",
            "log_config": {"base_url": f"http://loki.test:{loki_port}",
                           "service_selector_labels": {"service": "checkout"},
                           "task_match_mode": "contains"},
            "trace_config": {"base_url": f"http://tempo.test:{tempo_port}", "tenant_id": "ops",
                             "public_base_url": "https://tempo.example.test"},
        },
    )  # fmt: skip
    assert response.status_code == 201, response.text


async def test_relayna_spans_show_up_for_the_task(
    anyio_backend: str, amqp_url: str, unique: str, otlp_provider: Any
) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    loki, tempo = LocalLoki(), LocalTempo()
    shipper = LokiShipper(loki)
    logging.getLogger("checkout.worker").addHandler(shipper)
    resolver = TableResolver({"loki.test": [HOST], "tempo.test": [HOST], "svc.test": [HOST]})
    settings = settings_for(
        "memory://", f"traces:{uuid.uuid4().hex[:8]}", allowed_hosts=(".test",),
        allowed_networks=(f"{HOST}/32",), telemetry_timeout_seconds=2.0,
        federation_timeout_seconds=1.0,
    )  # fmt: skip
    try:
        with anyio.fail_after(60):
            async with (
                serve_on(loki.app(), HOST) as loki_port,
                serve_on(tempo.app(), HOST) as tempo_port,
                open_test_studio(settings, resolver=resolver) as studio,
            ):
                processor = BatchSpanProcessor(
                    OTLPSpanExporter(endpoint=f"http://{HOST}:{tempo_port}/v1/traces")
                )
                otlp_provider.add_span_processor(processor)
                await run_task(amqp_url, f"traces.{unique}")
                assert await anyio.to_thread.run_sync(processor.force_flush)
                await register(studio, loki_port, tempo_port)
                await check(studio, tempo)
    finally:
        logging.getLogger("checkout.worker").removeHandler(shipper)


async def check(studio: Studio, tempo: LocalTempo) -> None:
    client = studio.client
    answer = await client.get("/studio/tasks/checkout/t-1/traces")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    (trace_id,) = body["trace_ids"]
    assert body["backend_url"] == "https://tempo.example.test"
    assert any(w.startswith("task detail:") for w in body["warnings"])  # the service is down
    names = [s["name"] for s in body["spans"]]
    assert names.count("relayna.consumer.task_message") == 2  # first attempt and the retry
    assert "relayna.rabbitmq.publish_task" in names
    consumers = [s for s in body["spans"] if s["name"] == "relayna.consumer.task_message"]
    assert all(s["attributes"]["relayna.task_id"] == "t-1" for s in consumers)
    assert all(s["kind"] == "consumer" and s["trace_id"] == trace_id for s in consumers)
    assert {s["service_name"] for s in body["spans"]} == {"checkout-worker"}
    assert all(s["duration_ms"] is not None and s["duration_ms"] >= 0 for s in body["spans"])
    assert set(tempo.tenants) == {"ops"}
    spans_by_shape = {}
    for shape in ("batches", "resourceSpans", "resource_spans"):
        tempo.shape = shape
        again = await client.get(f"/studio/tasks/checkout/t-1/traces?trace_id={trace_id}")
        spans_by_shape[shape] = again.json()["spans"]
    assert (
        spans_by_shape["batches"]
        == spans_by_shape["resourceSpans"]
        == spans_by_shape["resource_spans"]
    )
    assert spans_by_shape["batches"] == body["spans"]

    path = (await client.get("/studio/tasks/checkout/t-1/trace-path")).json()
    assert path["summary"]["trace_ids"] == [trace_id]
    assert path["summary"]["span_count"] == len(body["spans"])
    assert path["log_metadata"]["task_id"] == "t-1"
    assert {n["kind"] for n in path["nodes"]} >= {"task", "span"}

    unknown = await client.get("/studio/tasks/checkout/t-1/traces?trace_id=" + "ab" * 16)
    assert unknown.status_code == 200
    assert unknown.json()["spans"] == []
    assert any("not in Tempo" in w for w in unknown.json()["warnings"])
    for bad in ("xyz", "0" * 32, "AB" * 16, "a" * 33):
        response = await client.get(f"/studio/tasks/checkout/t-1/traces?trace_id={bad}")
        assert response.status_code == 422, bad
    tempo.raw_answer = (200, b"[1, 2]")
    garbage = await client.get(f"/studio/tasks/checkout/t-1/traces?trace_id={trace_id}")
    assert garbage.status_code == 502
    assert garbage.json()["code"] == "invalid_response_shape"
    tempo.raw_answer = (503, b'{"error": "ingester down"}')
    down = await client.get(f"/studio/tasks/checkout/t-1/traces?trace_id={trace_id}")
    assert (down.status_code, down.json()["code"], down.json()["retryable"]) == (
        502,
        "provider_error",
        True,
    )
    tempo.raw_answer = None
    tempo.delay = 30.0
    started = anyio.current_time()
    slow = await client.get(f"/studio/tasks/checkout/t-1/traces?trace_id={trace_id}")
    assert slow.status_code == 504
    assert anyio.current_time() - started < 5
    missing = await client.patch("/studio/services/checkout", json={"trace_config": None})
    assert missing.status_code == 200
    none = await client.get("/studio/tasks/checkout/t-1/traces")
    assert none.status_code == 501
    assert none.json()["code"] == "trace_config_missing"
