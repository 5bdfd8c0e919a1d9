"""Graceful drain: cancel stops new deliveries, in-flight work finishes (or is requeued)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from relayna.consumer import LifecycleStatuses, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.rabbitmq import open_relayna_client
from relayna.transport import Broker

pytestmark = pytest.mark.anyio
Until = Callable[..., Awaitable[None]]


async def test_in_flight_tasks_finish_and_are_acked_on_cancel(
    broker: Broker, topology: Any, until: Until
) -> None:
    started: list[str] = []
    finished: list[str] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        started.append(task.task_id)
        await anyio.sleep(0.3)
        await ctx.publish_status(status="late-but-delivered")
        finished.append(task.task_id)

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        prefetch=4,
        drain_timeout=60,  # far above the handlers' 0.3 s: ending early proves the drain waited for them only
        statuses=LifecycleStatuses(enabled=True, processing=None),
    )
    with anyio.fail_after(45):
        async with open_relayna_client(topology, broker) as client:
            await client.publish_tasks([{"task_id": f"d{i}"} for i in range(8)])
            async with anyio.create_task_group() as tg:
                await tg.start(consumer.run)
                await until(lambda: len(started) == 4)
                t0 = anyio.current_time()
                tg.cancel_scope.cancel()
            elapsed = anyio.current_time() - t0
    assert sorted(finished) == sorted(started)
    assert len(started) == 4  # no delivery started after cancel
    assert consumer.stats.acked == 4
    assert elapsed < 30  # not the drain timeout: the drain ended when the handlers did
    assert (await broker.inspect_queue(topology.tasks_queue)).message_count == 4
    # 4 x (custom status + completed) were confirmed before the acks
    assert (await broker.inspect_queue(topology.status_queue)).message_count == 8


async def test_drain_timeout_requeues_unfinished_work(
    broker: Broker, topology: Any, until: Until
) -> None:
    started = anyio.Event()
    cancelled: list[bool] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        started.set()
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            cancelled.append(True)
            raise

    consumer = TaskConsumer(topology=topology, broker=broker, handler=handler, drain_timeout=0.2)
    with anyio.fail_after(25):
        async with open_relayna_client(topology, broker) as client:
            await client.publish_task({"task_id": "slow"})
            async with anyio.create_task_group() as tg:
                await tg.start(consumer.run)
                await started.wait()
                t0 = anyio.current_time()
                tg.cancel_scope.cancel()
            elapsed = anyio.current_time() - t0
    assert cancelled == [True]
    assert 0.15 <= elapsed < 15  # the 0.2 s drain timeout, not the handler's 30 s sleep
    assert consumer.stats.acked == 0
    assert consumer.stats.drain_requeued == 1
    assert (await broker.inspect_queue(topology.tasks_queue)).message_count == 1


async def test_end_drain_requeues_at_once(broker: Broker, topology: Any) -> None:
    started = anyio.Event()

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        started.set()
        await anyio.sleep(30)

    consumer = TaskConsumer(topology=topology, broker=broker, handler=handler, drain_timeout=30)
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client:
            await client.publish_task({"task_id": "stuck"})
            async with anyio.create_task_group() as tg:
                await tg.start(consumer.run)
                await started.wait()
                tg.cancel_scope.cancel()
                consumer.end_drain()
    assert (await broker.inspect_queue(topology.tasks_queue)).message_count == 1


async def test_end_drain_stops_taking_deliveries(
    broker: Broker, topology: Any, until: Until
) -> None:
    # ``end_drain`` may run before the cancellation that started the drain has
    # reached the consumer (the CLI's second signal): the delivery it requeues
    # must not be taken again and run for another drain_timeout.
    starts: list[str] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        starts.append(task.task_id)
        await anyio.sleep(30)

    consumer = TaskConsumer(topology=topology, broker=broker, handler=handler, drain_timeout=30)
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client:
            await client.publish_task({"task_id": "stuck"})
            async with anyio.create_task_group() as tg:
                await tg.start(consumer.run)
                await until(lambda: starts == ["stuck"])
                consumer.end_drain()  # no cancellation at all: the consumer ends by itself
    assert starts == ["stuck"]
    assert consumer.stats.drain_requeued == 1
    assert (await broker.inspect_queue(topology.tasks_queue)).message_count == 1


async def test_cancel_while_idle_returns_promptly(broker: Broker, topology: Any) -> None:
    consumer = TaskConsumer(topology=topology, broker=broker, handler=lambda t, c: None, prefetch=8)
    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            await tg.start(consumer.run)
            tg.cancel_scope.cancel()
    assert (await broker.inspect_queue(topology.tasks_queue)).consumer_count == 0


async def test_consumer_cancelled_by_the_server_reconnects(
    broker: Broker, topology: Any, until: Until
) -> None:
    from relayna.observability import MemoryObservationCollector, TaskConsumerLoopError

    seen: list[str] = []
    collector = MemoryObservationCollector()

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        seen.append(task.task_id)

    consumer = TaskConsumer(
        topology=topology, broker=broker, handler=handler, observation_sink=collector
    )
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, anyio.create_task_group() as tg:
            await tg.start(consumer.run)
            await client.publish_task({"task_id": "before"})
            await until(lambda: seen == ["before"])
            await broker.delete_queue(topology.tasks_queue)  # server-side basic.cancel
            await until(lambda: consumer.stats.reconnects == 1)
            await until(lambda: consumer.inflight == 0 and _consuming(broker, topology))
            await client.publish_task({"task_id": "after"})
            await until(lambda: seen == ["before", "after"])
            tg.cancel_scope.cancel()
    assert len(collector.of_type(TaskConsumerLoopError)) == 1


def _consuming(broker: Any, topology: Any) -> bool:
    try:
        return bool(broker.consumer_count(topology.tasks_queue))
    except Exception:  # noqa: BLE001 - queue not re-declared yet
        return False
