"""No handler-side failure is lost silently, and failure statuses explain themselves.

* A manual retry to a task type that another service's topology binds goes
  through the shared tasks exchange; one nobody binds keeps the original
  delivery (retry policy, else the dead-letter queue), never dropped.
* Without a retry policy a failure still publishes ``failed`` with the
  reason, even with lifecycle statuses off.
* ``retrying`` / ``failed`` carry attempt, retry budget, exception and, on
  the final failure, where the dead-lettered copy is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import orjson
import pytest

from relayna.consumer import LifecycleStatuses, RetryPolicy, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.rabbitmq import open_relayna_client
from relayna.topology import RoutedTasksSharedStatusTopology
from relayna.transport import Broker

pytestmark = pytest.mark.anyio
Take = Callable[..., Awaitable[list[Any]]]
Until = Callable[..., Awaitable[None]]


def _service(unique: str, name: str, types: tuple[str, ...]) -> RoutedTasksSharedStatusTopology:
    """One service's topology: its own queue, the shared tasks and status exchanges."""
    return RoutedTasksSharedStatusTopology(
        tasks_exchange=f"tasks-{unique}",
        tasks_queue=f"{name}-{unique}.q",
        task_types=types,
        status_exchange=f"status-{unique}",
        status_queue=f"status-{unique}.q",
        status_use_streams=False,
    )


async def _statuses(broker: Broker, queue: str, count: int, take: Take) -> list[dict[str, Any]]:
    return [orjson.loads(body) for body, _ in await take(broker, queue, count)]


async def test_manual_retry_reaches_a_type_bound_by_another_services_topology(
    broker: Broker, unique: str, running: Any, until: Until
) -> None:
    images = _service(unique, "images", ("resize",))
    texts = _service(unique, "texts", ("ocr",))
    seen: list[tuple[str, str | None, int, dict[str, Any]]] = []

    async def resize(task: TaskEnvelope, ctx: TaskContext) -> None:
        ctx.manual_retry(task_type="ocr", payload_merge={"lang": "de"}, reason="has text")

    async def ocr(task: TaskEnvelope, ctx: TaskContext) -> None:
        seen.append((task.task_id, task.task_type, ctx.manual_retry_count, dict(task.payload)))

    first = TaskConsumer(topology=images, broker=broker, handler=resize, consumer_name="images")
    second = TaskConsumer(topology=texts, broker=broker, handler=ocr, consumer_name="texts")
    with anyio.fail_after(10):
        async with (
            open_relayna_client(texts, broker),  # declares the other service's binding
            open_relayna_client(images, broker) as client,
            running(first),
            running(second),
        ):
            await client.publish_task({"task_id": "x-1", "task_type": "resize", "payload": {}})
            await until(lambda: second.stats.acked == 1)
    assert seen == [("x-1", "ocr", 1, {"lang": "de"})]
    assert first.stats.manual_retries == 1
    assert first.stats.rejected == first.stats.dead_lettered == 0


async def test_unroutable_hand_off_without_policy_is_dead_lettered_with_a_failed_status(
    broker: Broker, unique: str, running: Any, until: Until, take_messages: Take
) -> None:
    topology = _service(unique, "images", ("resize",))

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        ctx.manual_retry(task_type="nobody.binds.this")

    consumer = TaskConsumer(topology=topology, broker=broker, handler=handler)  # statuses off
    dlq = topology.tasks_queue + ".dlq"
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "u-1", "task_type": "resize", "payload": {}})
            await until(lambda: consumer.stats.dead_lettered == 1)
        [(body, props)] = await take_messages(broker, dlq, 1)
        statuses = await _statuses(broker, topology.status_queue, 2, take_messages)
    assert orjson.loads(body)["task_type"] == "resize"  # the original, unchanged
    assert props.headers["relayna-failure-reason"] == "manual_retry_unroutable"
    assert props.headers["relayna-exception-type"] == "UnroutableError"
    assert [s["status"] for s in statuses] == ["manual_retrying", "failed"]
    meta = statuses[1]["meta"]
    assert meta["reason"] == "manual_retry_unroutable"
    assert meta["exception_type"] == "UnroutableError"
    assert meta["dead_lettered"] is True
    assert meta["dead_letter_queue"] == dlq
    assert consumer.stats.rejected == 0


async def test_unroutable_hand_off_with_a_policy_is_retried_then_dead_lettered(
    broker: Broker, unique: str, running: Any, until: Until, take_messages: Take
) -> None:
    topology = _service(unique, "images", ("resize",))
    attempts: list[int] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        attempts.append(ctx.attempt)
        ctx.manual_retry(task_type="nobody.binds.this")

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        retry_policy=RetryPolicy(max_retries=1, delay_ms=10),
    )
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "u-2", "task_type": "resize", "payload": {}})
            await until(lambda: consumer.stats.dead_lettered == 1)
        [(_, props)] = await take_messages(broker, topology.tasks_queue + ".dlq", 1)
    assert attempts == [0, 1]
    assert consumer.stats.retried == 1
    assert props.headers["relayna-failure-reason"] == "manual_retry_unroutable"


async def test_failure_without_policy_publishes_failed_even_with_statuses_off(
    broker: Broker, topology: Any, running: Any, until: Until, take_messages: Take
) -> None:
    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        raise KeyError("customer 42")

    consumer = TaskConsumer(topology=topology, broker=broker, handler=handler)
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "lost-1"})
            await until(lambda: consumer.stats.rejected == 1)
        [event] = await _statuses(broker, topology.status_queue, 1, take_messages)
        depth = (await broker.inspect_queue(topology.status_queue)).message_count
    assert depth == 0  # only the failure is reported: statuses are off
    assert (event["task_id"], event["status"]) == ("lost-1", "failed")
    assert event["meta"]["reason"] == "handler_error"
    assert event["meta"]["exception_type"] == "KeyError"
    assert event["meta"]["exception_message"] == "'customer 42'"
    assert event["meta"]["dead_lettered"] is False  # rejected: see docs/worker.md


async def test_report_failures_off_keeps_a_silent_consumer_silent(
    broker: Broker, topology: Any, running: Any, until: Until
) -> None:
    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        raise RuntimeError("quiet")

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        statuses=LifecycleStatuses(report_failures=False),
    )
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "quiet-1"})
            await until(lambda: consumer.stats.rejected == 1)
        assert (await broker.inspect_queue(topology.status_queue)).message_count == 0
    assert consumer.stats.statuses_published == 0


async def test_retrying_and_failed_statuses_explain_themselves(
    broker: Broker, topology: Any, running: Any, until: Until, take_messages: Take
) -> None:
    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        raise ValueError("bad input " + "x" * 5000)

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        retry_policy=RetryPolicy(max_retries=1, delay_ms=10),
        statuses=LifecycleStatuses(enabled=True, processing=None),
    )
    dlq = topology.tasks_queue + ".dlq"
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "why-1"})
            await until(lambda: consumer.stats.dead_lettered == 1)
        retrying, failed = await _statuses(broker, topology.status_queue, 2, take_messages)
    error = {
        "max_retries": 1,
        "reason": "handler_error",
        "exception_type": "ValueError",
        "exception_message": ("bad input " + "x" * 5000)[:1024],
    }
    assert retrying["status"] == "retrying"
    assert retrying["meta"] == {"attempt": 1, **error, "retry_delay_ms": 10}
    assert failed["status"] == "failed"
    assert failed["meta"] == {
        "attempt": 2,
        **error,
        "dead_lettered": True,
        "dead_letter_queue": dlq,
    }


async def test_traceback_only_when_asked_and_error_text_can_be_left_out(
    broker: Broker, topology: Any, running: Any, until: Until, take_messages: Take
) -> None:
    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        raise RuntimeError("secret detail")

    for n, statuses in enumerate(
        (LifecycleStatuses(include_traceback=True), LifecycleStatuses(include_error_message=False))
    ):
        consumer = TaskConsumer(
            topology=topology, broker=broker, handler=handler, statuses=statuses
        )
        with anyio.fail_after(10):
            async with open_relayna_client(topology, broker) as client, running(consumer):
                await client.publish_task({"task_id": f"tb-{n}"})
                await until(lambda c=consumer: c.stats.rejected == 1)
            [event] = await _statuses(broker, topology.status_queue, 1, take_messages)
        meta = event["meta"]
        if statuses.include_traceback:
            assert meta["traceback"].startswith("Traceback (most recent call last)")
            assert "RuntimeError: secret detail" in meta["traceback"]
        else:
            assert "traceback" not in meta
            assert "exception_message" not in meta
            assert "secret" not in str(event.get("message"))
            assert meta["exception_type"] == "RuntimeError"
