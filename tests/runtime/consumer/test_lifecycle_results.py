"""Lifecycle statuses: the handler's result, the failure text, hand-off lineage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import orjson
import pytest

from relayna.consumer import LifecycleStatuses, RetryPolicy, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.rabbitmq import open_relayna_client
from relayna.transport import Broker

pytestmark = pytest.mark.anyio
Take = Callable[..., Awaitable[list[Any]]]
Until = Callable[..., Awaitable[None]]
ON = LifecycleStatuses(enabled=True)


async def _statuses(broker: Broker, queue: str, count: int, take: Take) -> list[dict[str, Any]]:
    return [orjson.loads(body) for body, _ in await take(broker, queue, count)]


async def test_handler_result_is_the_completed_status_result(
    broker: Broker, topology: Any, running: Any, until: Until, take_messages: Take
) -> None:
    async def handler(task: TaskEnvelope, ctx: TaskContext) -> dict[str, Any]:
        return {"upper": str(task.payload["text"]).upper(), "n": 2**70}

    def sync_handler(task: TaskEnvelope, ctx: TaskContext) -> list[int]:
        return [1, 2, 3]

    for fn, expected in (
        (handler, {"upper": "HI", "n": 2**70}),
        (sync_handler, {"value": [1, 2, 3]}),
    ):
        consumer = TaskConsumer(topology=topology, broker=broker, handler=fn, statuses=ON)
        with anyio.fail_after(10):
            async with open_relayna_client(topology, broker) as client, running(consumer):
                await client.publish_task({"task_id": "r-1", "payload": {"text": "hi"}})
                await until(lambda c=consumer: c.stats.acked == 1)
            events = await _statuses(broker, topology.status_queue, 2, take_messages)
        assert [e["status"] for e in events] == ["processing", "completed"]
        assert events[1]["result"] == expected
        assert "result" not in events[0] or events[0]["result"] is None


async def test_unserialisable_result_is_a_failure_with_a_reason(
    broker: Broker, topology: Any, running: Any, until: Until, take_messages: Take
) -> None:
    async def handler(task: TaskEnvelope, ctx: TaskContext) -> object:
        return object()

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        statuses=ON,
        retry_policy=RetryPolicy(max_retries=0, delay_ms=100),
    )
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "r-2"})
            await until(lambda: consumer.stats.dead_lettered == 1)
        events = await _statuses(broker, topology.status_queue, 2, take_messages)
    assert [e["status"] for e in events] == ["processing", "failed"]
    assert "not JSON-serialisable" in events[1]["message"]


@pytest.mark.parametrize("requeue", [False, True])
async def test_failure_without_policy_reports_the_exception_text(
    broker: Broker, topology: Any, running: Any, until: Until, take_messages: Take, requeue: bool
) -> None:
    from relayna.consumer import FailureAction

    calls = 0

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("boom: disk full")

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        statuses=ON,
        failure_action=FailureAction.REQUEUE if requeue else FailureAction.REJECT,
    )
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "r-3"})
            await until(lambda: consumer.stats.requeued + consumer.stats.rejected == 1)
            if requeue:
                await until(lambda: consumer.stats.acked == 1)
        events = await _statuses(broker, topology.status_queue, 2, take_messages)
    assert events[1]["status"] == "failed"
    assert events[1]["message"] == "boom: disk full"


async def test_lifecycle_statuses_after_a_hand_off_carry_the_lineage(
    broker: Broker, routed_topology: Any, running: Any, until: Until, take_messages: Take
) -> None:
    async def handler(task: TaskEnvelope, ctx: TaskContext) -> str:
        if task.task_type == "resize":
            ctx.manual_retry(task_type="ocr", reason="needs text")
        return "ok"

    consumer = TaskConsumer(
        topology=routed_topology, broker=broker, handler=handler, consumer_name="w1", statuses=ON
    )
    with anyio.fail_after(10):
        async with open_relayna_client(routed_topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "h-2", "task_type": "resize"})
            await until(lambda: consumer.stats.acked == 2)
        events = await _statuses(broker, routed_topology.status_queue, 4, take_messages)
    assert [e["status"] for e in events] == [
        "processing",
        "manual_retrying",
        "processing",
        "completed",
    ]
    handoff = events[1]["meta"]["manual_retry"]
    assert "manual_retry" not in events[0]["meta"]
    assert events[2]["meta"]["manual_retry"] == handoff
    assert events[3]["meta"]["manual_retry"] == handoff
    assert events[3]["result"] == {"value": "ok"}
