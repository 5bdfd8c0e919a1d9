"""Poison messages never reach the handler and never stop the worker; batches fan out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import orjson
import pytest

from relayna.consumer import InMemoryDLQRecorder, RetryPolicy, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.rabbitmq import open_relayna_client
from relayna.transport import Broker, Properties

pytestmark = pytest.mark.anyio
Take = Callable[..., Awaitable[list[Any]]]
Until = Callable[..., Awaitable[None]]
JSON = "application/json"

POISON: list[tuple[str, bytes, Properties, str]] = [
    ("utf8", b"\xff\xfe{", Properties(content_type=JSON), "decode_error"),
    ("truncated", b'{"task_id":', Properties(content_type=JSON), "invalid_json"),
    ("array", b"[]", Properties(), "schema"),
    ("no-id", b'{"payload":{}}', Properties(), "schema"),
    ("crlf", b'{"task_id":"a\\r\\nb"}', Properties(), "schema"),
    ("dup", b'{"task_id":"a","task_id":"b"}', Properties(), "schema"),
    (
        "deep",
        b'{"task_id":"a","payload":{"x":' + b"[" * 1000 + b"]" * 1000 + b"}}",
        Properties(),
        "too_deep",
    ),
    (
        "big",
        b'{"task_id":"a","payload":{"x":"' + b"x" * (1024 * 1024) + b'"}}',
        Properties(),
        "too_large",
    ),
    (
        "pickle",
        b'{"task_id":"a"}',
        Properties(content_type="application/x-python-pickle"),
        "unsupported_content_type",
    ),
    (
        "attempt",
        b'{"task_id":"a"}',
        Properties(headers={"relayna-retry-attempt": "abc"}),
        "invalid_header",
    ),
    (
        "headers",
        b'{"task_id":"a"}',
        Properties(headers={f"h{i}": "v" * 10 for i in range(200)}),
        "invalid_header",
    ),
    (
        "mixed-batch",
        orjson.dumps(
            {
                "batch_id": "b",
                "tasks": [
                    {"task_id": "1", "task_type": "resize"},
                    {"task_id": "2", "task_type": "ocr"},
                ],
            }
        ),
        Properties(),
        "mixed_task_type_batch",
    ),
    (
        "no-handler",
        orjson.dumps({"task_id": "a", "task_type": "unknown"}),
        Properties(),
        "no_handler",
    ),
]


@pytest.mark.parametrize("with_policy", [True, False], ids=["policy", "no-policy"])
async def test_poison_goes_to_dlq_with_reason_and_worker_keeps_running(
    broker: Broker,
    routed_topology: Any,
    running: Any,
    until: Until,
    take_messages: Take,
    with_policy: bool,
) -> None:
    calls: list[str] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        calls.append(task.task_id)

    recorder = InMemoryDLQRecorder()
    consumer = TaskConsumer(
        topology=routed_topology,
        broker=broker,
        handler=handler,
        dlq_recorder=recorder,
        retry_policy=RetryPolicy(max_retries=1, delay_ms=10) if with_policy else None,
    )
    queue = routed_topology.tasks_queue
    with anyio.fail_after(10):
        async with open_relayna_client(routed_topology, broker) as client, running(consumer):
            for _, body, props, _ in POISON:
                # straight to the queue: a hostile producer bypasses client validation
                await client.broker.publish("", queue, body, props)
            await client.publish_task({"task_id": "good", "task_type": "ocr"})
            await until(
                lambda: consumer.stats.dead_lettered == len(POISON) and consumer.stats.acked == 1
            )
        dead = await take_messages(broker, queue + ".dlq", len(POISON))
    assert calls == ["good"]
    expected = sorted(reason for *_, reason in POISON)
    assert sorted(recorder.reasons()) == expected
    assert sorted(p.headers["relayna-failure-reason"] for _, p in dead) == expected
    assert sum(consumer.stats.poison.values()) == len(POISON)
    assert (await broker.inspect_queue(queue)).message_count == 0


async def test_batch_fans_out_into_single_tasks_with_batch_headers(
    broker: Broker, topology: Any, running: Any, until: Until
) -> None:
    seen: list[tuple[str, str | None, int | None, int | None]] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        seen.append((task.task_id, ctx.batch_id, ctx.batch_index, ctx.batch_size))

    consumer = TaskConsumer(
        topology=topology, broker=broker, handler=handler, prefetch=1, batch_publish_concurrency=2
    )
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_batch([{"task_id": f"i{i}"} for i in range(5)], batch_id="batch-1")
            await until(lambda: consumer.stats.acked == 6)
    assert consumer.stats.batches_fanned_out == 1
    assert sorted(seen) == [(f"i{i}", "batch-1", i, 5) for i in range(5)]
