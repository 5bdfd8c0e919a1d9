"""TaskConsumer on the in-memory broker: success, retry, DLQ, statuses, poison."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import orjson
import pytest

from relayna.consumer import (
    FailureAction,
    InMemoryDLQRecorder,
    LifecycleStatuses,
    RetryPolicy,
    TaskConsumer,
    TaskContext,
)
from relayna.contracts import TaskEnvelope
from relayna.observability import (
    ConsumerDeadLetterPublished,
    ConsumerRetryScheduled,
    MemoryObservationCollector,
    TaskConsumerStarted,
    TaskHandlerFailed,
    TaskMessageAcked,
    TaskMessageReceived,
    TaskMessageRejected,
)
from relayna.rabbitmq import open_relayna_client
from relayna.transport import Broker, Properties

pytestmark = pytest.mark.anyio
Take = Callable[..., Awaitable[list[Any]]]
Until = Callable[..., Awaitable[None]]


def statuses_of(messages: list[tuple[bytes, Properties]]) -> list[tuple[str, str, str | None]]:
    out = []
    for body, _ in messages:
        data = orjson.loads(body)
        out.append((data["task_id"], data["status"], data.get("message")))
    return out


async def test_success_publishes_lifecycle_statuses_and_acks(
    broker: Broker, topology: Any, running: Any, until: Until, take_messages: Take
) -> None:
    seen: list[tuple[str, int, bool]] = []
    collector = MemoryObservationCollector()

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        seen.append((task.task_id, ctx.attempt, ctx.redelivered))
        await ctx.publish_status(status="halfway", meta={"p": 50})

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        statuses=LifecycleStatuses(enabled=True),
        observation_sink=collector,
    )
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            assert (await broker.inspect_queue(topology.tasks_queue)).consumer_count == 1
            await client.publish_task({"task_id": "ok-1"})
            await until(lambda: consumer.stats.acked == 1)
        statuses = statuses_of(await take_messages(broker, topology.status_queue, 3))
    assert seen == [("ok-1", 0, False)]
    assert [s[1] for s in statuses] == ["processing", "halfway", "completed"]
    assert (await broker.inspect_queue(topology.tasks_queue)).message_count == 0
    kinds = [type(e) for e in collector.events]
    assert kinds[0] is TaskConsumerStarted
    assert TaskMessageReceived in kinds
    assert TaskMessageAcked in kinds


async def test_retry_then_dead_letter_with_headers_record_and_statuses(
    broker: Broker, topology: Any, running: Any, until: Until, take_messages: Take
) -> None:
    attempts: list[int] = []
    recorder = InMemoryDLQRecorder()
    collector = MemoryObservationCollector()

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        attempts.append(ctx.attempt)
        assert ctx.max_retries == 2
        raise ValueError(f"bad input {ctx.attempt}")

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        retry_policy=RetryPolicy(max_retries=2, delay_ms=20),
        statuses=LifecycleStatuses(enabled=True, processing=None),
        dlq_recorder=recorder,
        observation_sink=collector,
    )
    dlq = topology.tasks_queue + ".dlq"
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "bad-1"}, headers={"user": "kept"})
            await until(lambda: consumer.stats.dead_lettered == 1)
        [(body, props)] = await take_messages(broker, dlq, 1)
        statuses = statuses_of(await take_messages(broker, topology.status_queue, 3))
    assert attempts == [0, 1, 2]
    assert orjson.loads(body)["task_id"] == "bad-1"
    headers = props.headers
    assert headers["relayna-retry-attempt"] == 2
    assert headers["relayna-max-retries"] == 2
    assert headers["relayna-failure-reason"] == "handler_error"
    assert headers["relayna-exception-type"] == "ValueError"
    assert headers["relayna-exception-message"] == "bad input 2"
    assert headers["relayna-source-queue"] == topology.tasks_queue
    assert headers["user"] == "kept"
    assert props.delivery_mode == 2
    [record] = recorder.records
    assert (record.task_id, record.reason, record.retry_attempt) == ("bad-1", "handler_error", 2)
    assert record.exception_type == "ValueError"
    assert record.body == body
    assert statuses == [
        ("bad-1", "retrying", "Task processing failed. Scheduling retry 1/2."),
        ("bad-1", "retrying", "Task processing failed. Scheduling retry 2/2."),
        ("bad-1", "failed", "bad input 2"),
    ]
    assert len(collector.of_type(ConsumerRetryScheduled)) == 2
    assert len(collector.of_type(ConsumerDeadLetterPublished)) == 1
    assert len(collector.of_type(TaskHandlerFailed)) == 3
    for name in (topology.tasks_queue, topology.tasks_queue + ".retry"):
        assert (await broker.inspect_queue(name)).message_count == 0


def parse_the_payload(task: TaskEnvelope) -> None:
    raise ValueError(f"cannot parse {task.task_id}")


async def test_a_handler_failure_is_logged_once_where_it_is_decided_with_its_traceback(
    broker: Broker, topology: Any, running: Any, until: Until, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        parse_the_payload(task)

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        retry_policy=RetryPolicy(max_retries=1, delay_ms=20),
    )
    caplog.set_level(logging.WARNING, logger="relayna.consumer")
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "bad-log"})
            await until(lambda: consumer.stats.dead_lettered == 1)
    failures = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert [(r.attempt, r.decision) for r in failures] == [(0, "Retry"), (1, "DeadLetter")]
    for record in failures:
        assert (record.task_id, record.queue) == ("bad-log", topology.tasks_queue)
        assert record.consumer == consumer.consumer_name
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], ValueError)
        assert "cannot parse bad-log" in record.getMessage()
    assert caplog.text.count("in parse_the_payload") == 2  # each log carries the traceback


async def test_legacy_attempt_header_is_honoured(
    broker: Broker, topology: Any, running: Any, until: Until
) -> None:
    attempts: list[int] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        attempts.append(ctx.attempt)
        raise RuntimeError("x")

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        retry_policy=RetryPolicy(max_retries=3, delay_ms=10),
    )
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "old"}, headers={"x-relayna-retry-attempt": 3})
            await until(lambda: consumer.stats.dead_lettered == 1)
    assert attempts == [3]


@pytest.mark.parametrize("action", [FailureAction.REJECT, FailureAction.REQUEUE])
async def test_without_policy_failure_action_applies(
    broker: Broker, topology: Any, running: Any, until: Until, action: FailureAction
) -> None:
    calls: list[bool] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        calls.append(ctx.redelivered)
        if len(calls) == 1:
            raise RuntimeError("once")

    collector = MemoryObservationCollector()
    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        failure_action=action,
        observation_sink=collector,
    )
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "f"})
            if action is FailureAction.REQUEUE:
                await until(lambda: consumer.stats.acked == 1)
            else:
                await until(lambda: consumer.stats.rejected == 1)
    if action is FailureAction.REQUEUE:
        assert calls == [False, True]
    else:
        assert calls == [False]
    [rejected] = collector.of_type(TaskMessageRejected)
    assert rejected.requeue is (action is FailureAction.REQUEUE)  # type: ignore[attr-defined]


async def test_prefetch_one_keeps_order(
    broker: Broker, topology: Any, running: Any, until: Until
) -> None:
    order: list[str] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        await anyio.lowlevel.checkpoint()
        order.append(task.task_id)

    consumer = TaskConsumer(topology=topology, broker=broker, handler=handler, prefetch=1)
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_tasks([{"task_id": f"t{i:03}"} for i in range(50)], concurrency=1)
            await until(lambda: consumer.stats.acked == 50)
    assert order == [f"t{i:03}" for i in range(50)]


async def test_prefetch_bounds_concurrency(
    broker: Broker, topology: Any, running: Any, until: Until
) -> None:
    active = peak = 0

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await anyio.sleep(0.01)
        active -= 1

    consumer = TaskConsumer(topology=topology, broker=broker, handler=handler, prefetch=5)
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_tasks([{"task_id": f"t{i}"} for i in range(40)])
            await until(lambda: consumer.stats.acked == 40)
    assert peak == 5


async def test_sync_handler_runs_in_a_thread(
    broker: Broker, topology: Any, running: Any, until: Until
) -> None:
    import threading

    threads: list[int] = []

    def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        threads.append(threading.get_ident())

    consumer = TaskConsumer(topology=topology, broker=broker, handler=handler, prefetch=2)
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_tasks([{"task_id": "s1"}, {"task_id": "s2"}])
            await until(lambda: consumer.stats.acked == 2)
    assert threading.get_ident() not in threads


async def test_middleware_wraps_the_handler_in_order(
    broker: Broker, topology: Any, running: Any, until: Until
) -> None:
    from contextlib import asynccontextmanager

    log: list[str] = []

    def make(name: str) -> Any:
        @asynccontextmanager
        async def mw(task: TaskEnvelope, ctx: TaskContext) -> Any:
            log.append(f"{name}:before")
            try:
                yield
            except RuntimeError:
                log.append(f"{name}:error")
                raise
            finally:
                log.append(f"{name}:after")

        return mw

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        log.append("handler")
        raise RuntimeError("x")

    consumer = TaskConsumer(
        topology=topology, broker=broker, handler=handler, middleware=[make("a"), make("b")]
    )
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "m"})
            await until(lambda: consumer.stats.rejected == 1)
    assert log == ["a:before", "b:before", "handler", "b:error", "b:after", "a:error", "a:after"]


async def test_consumer_on_a_url_opens_its_broker_gets_ready_and_stops_on_cancel(
    topology: Any,
) -> None:
    # memory:// opens a private broker per URL: run() reports ready once it
    # consumes, and a cancel is a clean stop (no error, nothing settled).
    consumer = TaskConsumer(topology=topology, broker="memory://", handler=lambda t, c: None)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(consumer.run)
            tg.cancel_scope.cancel()
    assert tg.cancel_scope.cancelled_caught
    assert (consumer.stats.acked, consumer.stats.handler_failures) == (0, 0)


async def test_startup_error_is_raised_not_retried(broker: Broker, topology: Any) -> None:
    from relayna.errors import PreconditionFailed
    from relayna.transport import QueueSpec

    await broker.declare_queue(
        QueueSpec(topology.tasks_queue + ".dlq", arguments={"x-max-length": 1})
    )
    consumer = TaskConsumer(topology=topology, broker=broker, handler=lambda t, c: None)
    with anyio.fail_after(5), pytest.raises(PreconditionFailed):
        await consumer.run()
