"""Worker heartbeat records on the real Redis (Lua script) from a worker on RabbitMQ."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from relayna.consumer import (
    HeartbeatSnapshot,
    TaskConsumer,
    TaskContext,
    WorkerHeartbeats,
    list_worker_heartbeats,
)
from relayna.contracts import TaskEnvelope
from relayna.rabbitmq import open_relayna_client
from relayna.topology import SharedTasksSharedStatusTopology
from relayna.transport import Broker, Store, open_store

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    async with open_store(redis_url) as opened:
        yield opened


async def test_heartbeat_script_on_redis(store: Store, unique: str) -> None:
    prefix = f"it-hb-{unique}"
    snap = HeartbeatSnapshot(
        consumer_name="c", queue_name="q", in_flight=2, processed=7, state="running"
    )
    with anyio.fail_after(10):
        await WorkerHeartbeats(
            store=store, prefix=prefix, interval=0.01, ttl=0.2, worker_id="old"
        ).write(snap, started_at=1.0)
        await WorkerHeartbeats(
            store=store, prefix=prefix, interval=1, ttl=5, worker_id="new"
        ).write(snap, started_at=1.0)
        records = await list_worker_heartbeats(store, prefix)
        assert [(r.worker_id, r.in_flight, r.processed) for r in records] == [
            ("new", 2, 7),
            ("old", 2, 7),
        ]
        # "old" expires 0.2 s after its beat: polled until it is gone (ceiling above).
        while [r.worker_id for r in await list_worker_heartbeats(store, prefix)] != ["new"]:  # noqa: ASYNC110
            await anyio.sleep(0.02)
        await WorkerHeartbeats(
            store=store, prefix=prefix, interval=1, ttl=5, worker_id="new"
        ).write(snap, started_at=1.0)
        assert await store.zrange(f"{prefix}:workers", 0, -1) == [b"new"]
        index_ttl = await store.ttl(f"{prefix}:workers")
        assert index_ttl is not None
        assert 4 < index_ttl <= 5.0
        await store.delete(f"{prefix}:workers", f"{prefix}:workers:new")


async def test_worker_writes_heartbeats_to_redis(
    broker: Broker, topology: SharedTasksSharedStatusTopology, store: Store, unique: str
) -> None:
    prefix = f"it-hb-{unique}"

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        pass

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        heartbeats=WorkerHeartbeats(store=store, prefix=prefix, interval=0.05, ttl=2.0),
    )
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client:
            async with anyio.create_task_group() as tg:
                await tg.start(consumer.run)
                await client.publish_task({"task_id": "hb-redis"})
                while True:
                    records = await list_worker_heartbeats(store, prefix)
                    if records and records[0].processed == 1:
                        break
                    await anyio.sleep(0.02)
                tg.cancel_scope.cancel()
        [final] = await list_worker_heartbeats(store, prefix)
    assert records[0].state == "running"
    assert final.state == "stopped"
    assert final.consumer_name == consumer.consumer_name
    await store.delete(f"{prefix}:workers", f"{prefix}:workers:{final.worker_id}")
