"""TaskConsumer on the real RabbitMQ: poison/DLQ accounting, drain, retry delay accuracy."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

import anyio
import pytest

from relayna.consumer import InMemoryDLQRecorder, RetryPolicy, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.errors import ContractError, UnroutableError
from relayna.rabbitmq import open_relayna_client
from relayna.transport import Broker, Properties

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq]


async def _until(predicate: Any) -> None:
    while not predicate():  # noqa: ASYNC110 - polling a test condition
        await anyio.sleep(0.01)


async def test_publish_confirms_and_bad_input(broker: Broker, topology: Any) -> None:
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client:
            await client.publish_tasks([{"task_id": f"p{i}"} for i in range(50)], concurrency=16)
            with pytest.raises(UnroutableError):
                await client.publish_raw(topology.tasks_exchange, "unbound-key", b"{}")
            with pytest.raises(ContractError):
                await client.publish_task({"task_id": "bad\r\nid"})
            with pytest.raises(ContractError):
                await client.publish_task({"task_id": "p", "priority": 300})
            info = await broker.inspect_queue(topology.tasks_queue)
    assert info.message_count == 50


async def test_poison_and_always_failing_tasks_end_in_the_dlq(
    broker: Broker, topology: Any
) -> None:
    attempts: dict[str, list[int]] = defaultdict(list)

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        attempts[task.task_id].append(ctx.attempt)
        raise RuntimeError("always")

    recorder = InMemoryDLQRecorder()
    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        prefetch=16,
        retry_policy=RetryPolicy(max_retries=2, delay_ms=50),
        dlq_recorder=recorder,
    )
    malformed = [
        (b"\xff\xfe", Properties(), "decode_error"),
        (b'{"task_id":', Properties(), "invalid_json"),
        (b"[]", Properties(), "schema"),
        (b'{"task_id":"a b"}', Properties(), "schema"),
        (
            b'{"task_id":"a"}',
            Properties(headers={"relayna-retry-attempt": "abc"}),
            "invalid_header",
        ),
    ]
    with anyio.fail_after(30):
        async with open_relayna_client(topology, broker) as client, anyio.create_task_group() as tg:
            await tg.start(consumer.run)
            await client.publish_tasks([{"task_id": f"f{i}"} for i in range(20)])
            for body, props, _ in malformed:
                await broker.publish("", topology.tasks_queue, body, props)
            await _until(lambda: consumer.stats.dead_lettered == 25)
            tg.cancel_scope.cancel()
    assert len(attempts) == 20
    assert all(seen == [0, 1, 2] for seen in attempts.values())
    reasons = recorder.reasons()
    assert reasons.count("handler_error") == 20
    assert sorted(r for r in reasons if r != "handler_error") == sorted(r for *_, r in malformed)
    dlq = await broker.inspect_queue(topology.tasks_queue + ".dlq")
    assert dlq.message_count == 25
    for name in (topology.tasks_queue, topology.tasks_queue + ".retry"):
        assert (await broker.inspect_queue(name)).message_count == 0


async def test_drain_finishes_in_flight_and_starts_nothing_new(
    broker: Broker, topology: Any
) -> None:
    started: list[str] = []
    finished: list[str] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        started.append(task.task_id)
        await anyio.sleep(0.5)
        finished.append(task.task_id)

    consumer = TaskConsumer(
        topology=topology, broker=broker, handler=handler, prefetch=8, drain_timeout=10
    )
    with anyio.fail_after(30):
        async with open_relayna_client(topology, broker) as client:
            await client.publish_tasks([{"task_id": f"d{i}"} for i in range(16)])
            async with anyio.create_task_group() as tg:
                await tg.start(consumer.run)
                await _until(lambda: len(started) == 8)
                tg.cancel_scope.cancel()
            started_at_exit = list(started)
            # the broker's counters catch up with the nacks a moment later: poll them
            while (info := await broker.inspect_queue(topology.tasks_queue)).message_count < 8:  # noqa: ASYNC110 - polling the broker
                await anyio.sleep(0.02)
    assert started == started_at_exit
    assert len(started) == 8
    assert sorted(finished) == sorted(started)
    assert consumer.stats.acked == 8
    assert info.message_count == 8
    assert info.consumer_count == 0


async def test_retry_delay_accuracy(broker: Broker, topology: Any) -> None:
    """The issue's bar: observed retry delay p99 within 20% of the configured delay."""
    delay = 2.0
    first: dict[str, float] = {}
    gaps: list[float] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        now = anyio.current_time()
        if ctx.attempt == 0:
            first[task.task_id] = now
            raise RuntimeError("fail once")
        gaps.append(now - first[task.task_id])

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        prefetch=32,
        retry_policy=RetryPolicy(max_retries=1, delay_ms=int(delay * 1000)),
    )
    with anyio.fail_after(30):
        async with open_relayna_client(topology, broker) as client, anyio.create_task_group() as tg:
            await tg.start(consumer.run)
            for batch in range(4):
                await client.publish_tasks([{"task_id": f"r{batch}-{i}"} for i in range(10)])
                await anyio.sleep(0.1)
            await _until(lambda: len(gaps) == 40)
            tg.cancel_scope.cancel()
    gaps.sort()
    p50 = statistics.median(gaps)
    p99 = gaps[-1]
    print(f"retry delay {delay}s: min {gaps[0]:.3f} p50 {p50:.3f} p99 {p99:.3f}")
    assert delay <= gaps[0]
    assert p50 <= delay * 1.1, gaps
    assert p99 <= delay * 1.2, gaps
