"""A RabbitMQ memory alarm (issue 26, RELIABILITY T6) on a private node.

``rabbitmqctl set_vm_memory_high_watermark 0.0001`` raises the alarm (it is
node-wide: the ``private_rabbit`` fixture keeps it away from other tests).
RabbitMQ then blocks every connection that publishes (it stops reading its
socket) and tells it with ``connection.blocked``; connections that only
consume go on.

* A producer's publish fails with ``PublishBlocked`` after its
  ``publish_timeout`` (never hangs), ``blocked`` reports the alarm, and once
  the alarm clears it publishes again.
* A worker on its own connection that publishes nothing (no lifecycle
  statuses) keeps consuming and acking during the alarm: the tasks queued
  before it are all handled while the producer is blocked.
* A worker that publishes lifecycle statuses is blocked with its connection:
  its status publishes fail typed, its deliveries go back to the queue
  (nothing dead-lettered, nothing lost), and every task completes after the
  alarm clears.

The history checker (published ok / unknown vs consumed) requires 0 lost and
0 unexpected. Both backends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import orjson
import pytest
from services import Services

from _history_checker import History  # tests/ is on sys.path
from relayna.consumer import LifecycleStatuses, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.errors import PublishBlocked
from relayna.rabbitmq import RelaynaClient, open_relayna_client
from relayna.topology import SharedTasksSharedStatusTopology
from relayna.transport import Broker, open_broker

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq]

PUBLISH_TIMEOUT = 1.0
BEFORE, AFTER = 40, 10  # tasks published before the alarm and after it cleared


async def _ctl(svc: Services, *args: str) -> None:
    res = await anyio.to_thread.run_sync(lambda: svc.rabbitmqctl(*args))
    assert res.returncode == 0, res.stdout + res.stderr


@asynccontextmanager
async def _alarm(svc: Services) -> AsyncIterator[None]:
    await _ctl(svc, "set_vm_memory_high_watermark", "0.0001")
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):
            await _ctl(svc, "set_vm_memory_high_watermark", "0.4")


def _topology(unique: str) -> SharedTasksSharedStatusTopology:
    return SharedTasksSharedStatusTopology(
        tasks_exchange=f"al-{unique}",
        tasks_queue=f"al-{unique}",
        tasks_routing_key="task",
        status_exchange=f"als-{unique}",
        status_queue=f"als-{unique}",
        status_use_streams=False,
    )


async def _publish(client: RelaynaClient, history: History, task_id: str) -> None:
    try:
        await client.publish_task({"task_id": task_id})
    except PublishBlocked:
        history.publish(task_id, "unknown")  # sent, maybe: the socket was not read
        raise
    history.publish(task_id, "ok")


async def _until_blocked(client: RelaynaClient, broker: Broker, history: History) -> float:
    """Publish until one publish fails with PublishBlocked; return how long it took."""
    for n in range(1000):
        started = anyio.current_time()
        try:
            with anyio.fail_after(PUBLISH_TIMEOUT + 10):  # a hang guard: typed error or confirm
                await _publish(client, history, f"during-{n}")
        except PublishBlocked:
            assert broker.blocked
            return anyio.current_time() - started
    raise AssertionError("publishes never blocked")


async def _cleanup(admin: Broker, topology: SharedTasksSharedStatusTopology) -> None:
    for queue in (topology.tasks_queue, topology.tasks_queue + ".dlq", topology.status_queue):
        await admin.delete_queue(queue)


async def test_producer_blocks_and_a_consume_only_worker_keeps_acking(
    private_rabbit: Services, unique: str
) -> None:
    topology = _topology(unique)
    url = f"{private_rabbit.amqp_url}?publish_timeout={PUBLISH_TIMEOUT:g}"
    history = History()

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        history.consume(task.task_id)

    with anyio.fail_after(90):
        async with (
            open_broker(private_rabbit.amqp_url) as admin,  # never publishes: never blocked
            open_broker(url) as producer_broker,
            open_relayna_client(topology, producer_broker) as producer,
        ):
            for n in range(BEFORE):
                await _publish(producer, history, f"before-{n}")
            consumer = TaskConsumer(topology=topology, broker=url, handler=handler, prefetch=4)
            async with anyio.create_task_group() as tg:
                async with _alarm(private_rabbit):
                    blocked_after = await _until_blocked(producer, producer_broker, history)
                    await tg.start(consumer.run)  # connects during the alarm
                    while consumer.stats.acked < BEFORE:  # noqa: ASYNC110 - the worker's counter
                        await anyio.sleep(0.02)
                    # every task queued before the alarm was handled and acked meanwhile
                    depth_during = (await admin.inspect_queue(topology.tasks_queue)).message_count
                    still_blocked = producer_broker.blocked
                while producer_broker.blocked:  # noqa: ASYNC110 - connection.unblocked arrives
                    await anyio.sleep(0.02)
                for n in range(AFTER):
                    await _publish(producer, history, f"after-{n}")
                while not history.confirmed() <= set(history.consumed):  # noqa: ASYNC110
                    await anyio.sleep(0.02)
                tg.cancel_scope.cancel()
            await _cleanup(admin, topology)

    verdict = history.verdict()
    print(f"\nalarm, consume-only worker: {verdict.summary()} blocked after {blocked_after:.2f}s")
    assert PUBLISH_TIMEOUT - 0.2 <= blocked_after < PUBLISH_TIMEOUT + 5
    assert still_blocked
    assert depth_during == 0
    assert consumer.stats.reconnects == 0
    assert not verdict.lost, verdict.summary()
    assert not verdict.unexpected, verdict.summary()
    expected = {f"before-{n}" for n in range(BEFORE)} | {f"after-{n}" for n in range(AFTER)}
    assert expected <= history.confirmed()


async def test_status_publishing_worker_waits_out_the_alarm_and_loses_nothing(
    private_rabbit: Services, unique: str
) -> None:
    topology = _topology(unique)
    url = f"{private_rabbit.amqp_url}?publish_timeout={PUBLISH_TIMEOUT:g}"
    history = History()
    completed: set[str] = set()
    tasks = [f"t{n}" for n in range(10)]

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        history.consume(task.task_id)

    with anyio.fail_after(90):
        async with (
            open_broker(private_rabbit.amqp_url) as admin,
            open_relayna_client(topology, admin) as producer,
        ):
            for task_id in tasks:
                await _publish(producer, history, task_id)
            consumer = TaskConsumer(
                topology=topology,
                broker=url,
                handler=handler,
                prefetch=4,
                statuses=LifecycleStatuses(enabled=True),
            )
            async with anyio.create_task_group() as tg:
                async with _alarm(private_rabbit):
                    await tg.start(consumer.run)
                    # its first status publish blocks the worker's connection
                    while consumer.stats.effect_errors < 1:  # noqa: ASYNC110
                        await anyio.sleep(0.02)
                    handled_during = len(history.consumed)
                async with admin.consume(topology.status_queue, prefetch=50) as statuses:
                    async for delivery in statuses:
                        event = orjson.loads(delivery.body)
                        if event["status"] == "completed":
                            completed.add(event["task_id"])
                        await delivery.ack()
                        if completed == set(tasks):
                            break
                tg.cancel_scope.cancel()
            depth = (await admin.inspect_queue(topology.tasks_queue)).message_count
            dlq = (await admin.inspect_queue(topology.tasks_queue + ".dlq")).message_count
            await _cleanup(admin, topology)

    verdict = history.verdict()
    print(f"\nalarm, status-publishing worker: {verdict.summary()} {consumer.stats}")
    assert handled_during == 0  # no handler ran without its "processing" status
    assert consumer.stats.dead_lettered == 0
    assert dlq == 0
    assert depth == 0
    assert completed == set(tasks)
    assert not verdict.lost, verdict.summary()
    assert not verdict.unexpected, verdict.summary()
