"""Worker heartbeats, resource samples and trace context on the memory transports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest

from relayna.consumer import (
    TaskConsumer,
    TaskContext,
    WorkerHeartbeat,
    WorkerHeartbeats,
    list_worker_heartbeats,
)
from relayna.contracts import TaskEnvelope
from relayna.errors import ConfigurationError
from relayna.observability import MemoryObservationCollector, TaskResourceSampled
from relayna.rabbitmq import open_relayna_client
from relayna.transport import Broker, Store, open_store

pytestmark = pytest.mark.anyio
Until = Callable[..., Awaitable[None]]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    async with open_store("memory://") as opened:
        yield opened


async def test_heartbeat_config_validation(store: Store) -> None:
    with pytest.raises(ConfigurationError):
        WorkerHeartbeats(store=store, interval=5, ttl=5)


async def test_heartbeats_report_running_then_stopped(
    broker: Broker, topology: Any, until: Until, store: Store, unique: str
) -> None:
    gate = anyio.Event()
    prefix = f"hb-{unique}"

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        await gate.wait()

    heartbeats = WorkerHeartbeats(
        store=store, prefix=prefix, interval=0.05, ttl=5.0, worker_id="w-1"
    )
    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        prefetch=2,
        consumer_name="hb-consumer",
        heartbeats=heartbeats,
    )

    async def busy_record() -> WorkerHeartbeat | None:
        records = await list_worker_heartbeats(store, prefix)
        return records[0] if records and records[0].in_flight == 1 else None

    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client:
            async with anyio.create_task_group() as tg:
                await tg.start(consumer.run)
                await client.publish_task({"task_id": "hb-1"})
                while (record := await busy_record()) is None:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
                gate.set()
                await until(lambda: consumer.stats.acked == 1)
                # The first beat written after the ack (polled, under the 10 s ceiling).
                while (after := (await list_worker_heartbeats(store, prefix))[0]).in_flight:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
                tg.cancel_scope.cancel()
        [final] = await list_worker_heartbeats(store, prefix)
    assert record.state == "running"
    assert (record.worker_id, record.consumer_name) == ("w-1", "hb-consumer")
    assert record.queue_name == topology.tasks_queue
    assert record.pid > 0
    assert record.host
    assert record.started_at <= record.last_heartbeat
    assert after.processed == 1
    assert after.in_flight == 0
    assert after.last_heartbeat > record.last_heartbeat
    assert final.state == "stopped"
    ttl = await store.ttl(f"{prefix}:workers:w-1")
    assert ttl is not None
    assert 0 < ttl <= 5.0


async def test_expired_worker_records_are_not_listed(store: Store, unique: str) -> None:
    prefix = f"hb-{unique}"
    from relayna.consumer import HeartbeatSnapshot

    snap = HeartbeatSnapshot(
        consumer_name="c", queue_name="q", in_flight=0, processed=0, state="running"
    )
    short = WorkerHeartbeats(store=store, prefix=prefix, interval=0.01, ttl=0.1, worker_id="old")
    long = WorkerHeartbeats(store=store, prefix=prefix, interval=1, ttl=10, worker_id="new")
    with anyio.fail_after(5):
        await short.write(snap, started_at=0.0)
        await long.write(snap, started_at=0.0)
        assert [r.worker_id for r in await list_worker_heartbeats(store, prefix)] == ["new", "old"]
        # "old" expires 0.1 s after its beat: polled until it is gone (ceiling above).
        while [r.worker_id for r in await list_worker_heartbeats(store, prefix)] != ["new"]:  # noqa: ASYNC110
            await anyio.sleep(0.01)
        await long.write(snap, started_at=0.0)  # prunes the stale index entry
        assert await store.zrange(f"{prefix}:workers", 0, -1) == [b"new"]


async def test_resource_samples_and_trace_context(
    broker: Broker, topology: Any, running: Any, until: Until
) -> None:
    collector = MemoryObservationCollector()
    seen: list[Any] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        seen.append(ctx.trace)

    consumer = TaskConsumer(
        topology=topology, broker=broker, handler=handler, prefetch=1, observation_sink=collector
    )
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task(
                {"task_id": "tr-1"}, headers={"traceparent": TRACEPARENT, "tracestate": "a=1"}
            )
            await client.publish_task({"task_id": "tr-2"}, headers={"traceparent": "00-zz-bad"})
            await until(lambda: consumer.stats.acked == 2)
            await until(lambda: len(collector.of_type(TaskResourceSampled)) == 4)
    assert seen[0] is not None
    assert (seen[0].traceparent, seen[0].tracestate) == (TRACEPARENT, "a=1")
    assert seen[1] is None  # malformed: ignored, processed normally
    samples = collector.of_type(TaskResourceSampled)
    assert [s.sample_kind for s in samples] == ["start", "end", "start", "end"]  # type: ignore[attr-defined]
    for sample in samples:
        assert sample.cpu_process_seconds > 0  # type: ignore[attr-defined]
        assert sample.memory_rss_bytes is None or sample.memory_rss_bytes > 0  # type: ignore[attr-defined]


async def test_no_sink_builds_no_resource_samples(
    broker: Broker, topology: Any, running: Any, until: Until, monkeypatch: pytest.MonkeyPatch
) -> None:
    import relayna.consumer._task as task_module

    def fail() -> tuple[float, int | None]:
        raise AssertionError("sampled without a sink")

    monkeypatch.setattr(task_module, "sample_process_resources", fail)

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        pass

    consumer = TaskConsumer(topology=topology, broker=broker, handler=handler)
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "ns-1"})
            await until(lambda: consumer.stats.acked == 1)
    assert consumer.observations_dropped == 0
