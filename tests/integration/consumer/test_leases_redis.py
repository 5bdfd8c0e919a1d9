"""Leases on the real Redis (Lua scripts) with a worker on the real RabbitMQ."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from relayna.consumer import LeasePolicy, LeaseStore, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.rabbitmq import open_relayna_client
from relayna.topology import SharedTasksSharedStatusTopology
from relayna.transport import Broker, Store, open_store

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    async with open_store(redis_url) as opened:
        yield opened


async def test_lease_scripts_on_redis(store: Store, unique: str) -> None:
    leases = LeaseStore(store, prefix=f"it:{unique}:lease")
    with anyio.fail_after(10):
        assert await leases.acquire("t", "a", 5.0)
        assert await leases.acquire("t", "a", 5.0)
        assert not await leases.acquire("t", "b", 5.0)
        assert not await leases.renew("t", "b", 5.0)
        assert await leases.renew("t", "a", 0.2)
        ttl = await store.ttl(leases.key("t"))
        assert ttl is not None
        assert 0 < ttl <= 0.2
        assert not await leases.release("t", "b")
        assert await leases.release("t", "a")
        assert await leases.owner("t") is None
        assert not await leases.renew("t", "a", 5.0)
        assert await leases.acquire("t2", "a", 0.1)
        # Redis expires a's 0.1 s lease; then b acquires it (polled, ceiling above).
        while not await leases.acquire("t2", "b", 5.0):  # noqa: ASYNC110
            await anyio.sleep(0.02)
        assert await leases.owner("t2") == "b"
        await leases.release("t2", "b")


async def test_worker_lease_renewal_and_conflict_on_redis(
    broker: Broker, topology: SharedTasksSharedStatusTopology, store: Store, unique: str
) -> None:
    leases = LeaseStore(store, prefix=f"it:{unique}:lease")
    owners: list[str | None] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        for _ in range(3):
            owners.append(await leases.owner(task.task_id))
            await anyio.sleep(0.15)

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        leases=leases,
        lease_policy=LeasePolicy(ttl=0.25, heartbeat_interval=0.05, conflict_delay=0.1),
        lease_owner="w-a",
        prefetch=2,
    )
    assert await leases.acquire("held", "w-b", 30.0)
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client:
            async with anyio.create_task_group() as tg:
                await tg.start(consumer.run)
                await client.publish_task({"task_id": "free"})
                await client.publish_task({"task_id": "held"})
                while consumer.stats.acked < 1 or consumer.stats.lease_conflicts < 1:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
                assert await leases.release("held", "w-b")
                while consumer.stats.acked < 2:  # noqa: ASYNC110 - polling a test condition
                    await anyio.sleep(0.02)
                tg.cancel_scope.cancel()
    assert owners == ["w-a"] * 6
    assert await leases.owner("free") is None
    assert await leases.owner("held") is None
