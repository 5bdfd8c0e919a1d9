"""Leases for long tasks on the memory store: acquire, renew, lose, conflict, release."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest

from relayna.consumer import LeasePolicy, LeaseStore, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.errors import ConfigurationError
from relayna.observability import MemoryObservationCollector, TaskMessageRejected
from relayna.rabbitmq import open_relayna_client
from relayna.transport import Broker, MemoryStore, Store, open_store

pytestmark = pytest.mark.anyio
Until = Callable[..., Awaitable[None]]


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    async with open_store("memory://") as opened:
        yield opened


async def test_lease_store_owner_semantics(store: Store) -> None:
    leases = LeaseStore(store, prefix="t:lease")
    assert await leases.acquire("task-1", "a", 5.0)
    assert await leases.acquire("task-1", "a", 5.0)  # same owner: refreshed
    assert not await leases.acquire("task-1", "b", 5.0)
    assert await leases.owner("task-1") == "a"
    assert not await leases.renew("task-1", "b", 5.0)
    assert await leases.renew("task-1", "a", 5.0)
    assert not await leases.release("task-1", "b")
    assert await leases.owner("task-1") == "a"
    assert await leases.release("task-1", "a")
    assert await leases.owner("task-1") is None
    assert not await leases.renew("task-1", "a", 5.0)  # gone: renew does not re-create
    assert await store.get("t:lease:task-1") is None


async def test_lease_expires_after_ttl() -> None:
    now = [1000.0]  # the memory store on a clock this test moves
    store = MemoryStore("memory://", clock=lambda: now[0])
    leases = LeaseStore(store)
    with anyio.fail_after(5):
        assert await leases.acquire("task-2", "a", 0.1)
        now[0] += 0.099
        assert not await leases.acquire("task-2", "b", 5.0)  # not yet
        now[0] += 0.002
        assert await leases.acquire("task-2", "b", 5.0)
    assert await leases.owner("task-2") == "b"
    store.close()


def test_lease_policy_validation() -> None:
    with pytest.raises(ConfigurationError):
        LeasePolicy(ttl=1.0, heartbeat_interval=1.0)
    with pytest.raises(ConfigurationError):
        LeasePolicy(ttl=0)
    with pytest.raises(ConfigurationError):
        LeasePolicy(conflict_delay=-1)


async def test_lease_held_and_renewed_during_a_long_handler_then_released(
    broker: Broker, topology: Any, running: Any, until: Until, store: Store
) -> None:
    leases = LeaseStore(store)
    owners: list[str | None] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        for _ in range(4):  # 0.6 s, twice the TTL: only renewals keep it
            owners.append(await leases.owner(task.task_id))
            await anyio.sleep(0.15)

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        leases=leases,
        lease_policy=LeasePolicy(ttl=0.3, heartbeat_interval=0.05),
        lease_owner="worker-a",
    )
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "long-1"})
            await until(lambda: consumer.stats.acked == 1)
    assert owners == ["worker-a"] * 4
    assert await leases.owner("long-1") is None
    assert consumer.stats.leases_lost == 0


async def test_conflict_is_requeued_after_a_delay_not_hot_looped(
    broker: Broker, topology: Any, running: Any, until: Until, store: Store
) -> None:
    leases = LeaseStore(store)
    calls: list[str] = []
    collector = MemoryObservationCollector()

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        calls.append(task.task_id)

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        leases=leases,
        lease_policy=LeasePolicy(conflict_delay=0.2),
        prefetch=1,
        observation_sink=collector,
    )
    assert await leases.acquire("busy-1", "other-worker", 30.0)
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            start = anyio.current_time()
            await client.publish_task({"task_id": "busy-1"})
            await until(lambda: consumer.stats.lease_conflicts >= 3)
            elapsed = anyio.current_time() - start
            conflicts = consumer.stats.lease_conflicts
            # one per conflict_delay (0.2 s), not thousands: a slow box only lowers it
            assert conflicts <= elapsed / 0.2 + 1
            assert calls == []
            assert await leases.owner("busy-1") == "other-worker"  # never stolen
            assert await leases.release("busy-1", "other-worker")
            await until(lambda: consumer.stats.acked == 1)
    assert calls == ["busy-1"]
    rejected = collector.of_type(TaskMessageRejected)
    assert rejected
    assert all(e.reason == "lease_conflict" and e.requeue for e in rejected)  # type: ignore[attr-defined]


async def test_lost_lease_cancels_the_handler_and_requeues(
    broker: Broker, topology: Any, running: Any, until: Until, store: Store
) -> None:
    leases = LeaseStore(store)
    started = anyio.Event()
    finished: list[str] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        started.set()
        await anyio.sleep(5)
        finished.append(task.task_id)

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        leases=leases,
        lease_policy=LeasePolicy(ttl=1.0, heartbeat_interval=0.05, conflict_delay=0.2),
        lease_owner="worker-a",
        prefetch=1,
    )
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "stolen-1"})
            await started.wait()
            await store.set(leases.key("stolen-1"), "worker-b", ttl=30)  # taken over
            await until(lambda: consumer.stats.leases_lost == 1)
            await until(lambda: consumer.stats.lease_conflicts >= 1)  # redelivered, still b's
    assert finished == []
    assert consumer.stats.acked == 0
    assert await leases.owner("stolen-1") == "worker-b"  # release never deletes b's lease


async def test_drain_cuts_the_conflict_delay_short(
    broker: Broker, topology: Any, until: Until, store: Store
) -> None:
    leases = LeaseStore(store)

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        raise AssertionError("not called")

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        leases=leases,
        lease_policy=LeasePolicy(conflict_delay=60.0),
        drain_timeout=0.2,
    )
    assert await leases.acquire("busy-2", "other-worker", 30.0)
    with anyio.fail_after(5):
        async with open_relayna_client(topology, broker) as client:
            async with anyio.create_task_group() as tg:
                await tg.start(consumer.run)
                await client.publish_task({"task_id": "busy-2"})
                await until(lambda: consumer.inflight == 1)
                tg.cancel_scope.cancel()
    assert consumer.stats.acked == 0
    assert consumer.stats.drain_requeued == 1
    assert (await broker.inspect_queue(topology.tasks_queue)).message_count == 1
