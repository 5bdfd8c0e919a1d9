"""Acks after replicas (``replica_acks``): a consumer acks a message only once the
store writes made for it (DLQ record, idempotency mark, cancel claims, workflow
steps) reached a replica. Memory broker + a memory store with a scripted
``wait_replicated``; the real Redis Cluster runs it in
tests/integration/cluster/test_redis_cluster_replica_acks.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from _replica_store import WaitingStore
from relayna.consumer import Idempotency, RetryPolicy, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.dlq import DLQQuery, DLQStore
from relayna.errors import ConfigurationError, StoreConnectionError
from relayna.transport import Broker, ReplicaBarrier, open_store

pytestmark = pytest.mark.anyio
Until = Callable[..., Awaitable[None]]


async def test_a_store_that_cannot_wait_is_a_no_op_by_default_and_an_error_if_asked(
    store_url: str,
) -> None:
    with anyio.fail_after(5):
        async with open_store(store_url) as store:
            barrier = ReplicaBarrier([store])
            assert (barrier.acks, barrier.enabled) == (0, False)
            await store.set("k", "v")
            await barrier.wait()  # nothing to wait for
            assert barrier.rounds == 0
    with pytest.raises(ConfigurationError, match="replica_acks=1"):
        ReplicaBarrier([store], 1)
    with pytest.raises(ConfigurationError, match="replica_acks"):
        ReplicaBarrier([store], -1)
    with pytest.raises(ConfigurationError, match="replica_wait"):
        ReplicaBarrier([store], 0, 0)


async def test_a_consumer_asking_replicas_of_a_plain_store_fails_at_construction(
    broker: Broker, topology: Any
) -> None:
    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        return None

    async with open_store("memory://") as store:
        with pytest.raises(ConfigurationError, match="replica"):
            TaskConsumer(
                topology=topology,
                broker=broker,
                handler=handler,
                idempotency=Idempotency(store=store),
                replica_acks=1,
            )
        # attached after construction (as the CLI does): refused when it starts
        consumer = TaskConsumer(topology=topology, broker=broker, handler=handler, replica_acks=1)
        consumer.dlq_recorder = DLQStore(store)
        with anyio.fail_after(5), pytest.raises(ConfigurationError, match="replica"):
            await consumer.run()


async def test_concurrent_waits_share_rounds() -> None:
    async with open_store("memory://") as raw:
        store = WaitingStore(raw)
        barrier = ReplicaBarrier([store, store])  # one store named twice: waited for once
        assert barrier.acks == 1
        store.gate = anyio.Event()
        done: list[int] = []

        async def waiter(i: int) -> None:
            await barrier.wait()
            done.append(i)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter, 0)
                await anyio.wait_all_tasks_blocked()  # round 1 is in flight, held
                assert len(store.calls) == 1
                for i in range(1, 10):
                    tg.start_soon(waiter, i)
                await anyio.wait_all_tasks_blocked()
                store.gate.set()
        # round 1 carried the first caller, round 2 the nine that came during it
        assert len(store.calls) == barrier.rounds == 2
        assert sorted(done) == list(range(10))


async def test_a_failed_round_fails_every_caller_it_may_have_carried() -> None:
    async with open_store("memory://") as raw:
        store = WaitingStore(raw, answers=[0])
        barrier = ReplicaBarrier([store], None, 0.5)
        store.gate = anyio.Event()
        failed: list[tuple[int, str]] = []

        async def waiter(i: int) -> None:
            try:
                await barrier.wait()
            except StoreConnectionError as exc:
                failed.append((i, str(exc)))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter, 0)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(waiter, 1)  # its writes may have gone the failed way too
                await anyio.wait_all_tasks_blocked()
                store.gate.set()
            assert sorted(i for i, _ in failed) == [0, 1]
            assert all("0 of 1 replicas" in text for _, text in failed)
            await barrier.wait()  # a later caller (written again) gets a round of its own
        assert store.calls == [(1, 0.5), (1, 0.5)]


async def test_a_dead_letter_is_acked_only_after_its_record_is_replicated(
    broker: Broker, topology: Any, running: Any, until: Until
) -> None:
    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        raise ValueError("always")

    async with open_store("memory://") as raw:
        store = WaitingStore(raw, answers=[0, 0])
        dlq = DLQStore(store)  # type: ignore[arg-type]
        consumer = TaskConsumer(
            topology=topology,
            broker=broker,
            handler=handler,
            retry_policy=RetryPolicy(max_retries=0),
            dlq_recorder=dlq,
            replica_wait=0.25,
        )
        with anyio.fail_after(10):
            async with running(consumer):
                await broker.publish("", topology.tasks_queue, b'{"task_id": "r-1"}')
                await until(lambda: consumer.stats.acked + consumer.stats.dead_lettered >= 1)
                await until(lambda: consumer.inflight == 0)
            page = await dlq.list_records(DLQQuery(task_id="r-1"))
    # two WAITs answered 0: the record was written again each time (one record: same id)
    assert [c for c, _ in store.calls[:3]] == [1, 1, 1]
    assert len(page.records) == 1
    assert consumer.stats.dead_lettered == 1
    assert consumer.stats.dlq_record_errors == 0


async def test_an_unreplicated_idempotency_mark_leaves_the_message_for_redelivery(
    broker: Broker, topology: Any, running: Any, until: Until
) -> None:
    calls: list[str] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        calls.append(task.task_id)

    async with open_store("memory://") as raw:
        store = WaitingStore(raw, answers=[0])
        consumer = TaskConsumer(
            topology=topology,
            broker=broker,
            handler=handler,
            idempotency=Idempotency(store=store, ttl_seconds=60),  # type: ignore[arg-type]
            replica_wait=0.25,
        )
        with anyio.fail_after(10):
            async with running(consumer):
                await broker.publish("", topology.tasks_queue, b'{"task_id": "i-1"}')
                await until(lambda: consumer.stats.acked == 1)
    # the first ack waited in vain: not acked, requeued; the redelivery found the
    # mark (written before the wait) and was acked after a WAIT that saw it
    assert calls == ["i-1"]
    assert consumer.stats.duplicates_suppressed == 1
    assert [replicas for replicas, _ in store.calls] == [1, 1]
    assert consumer.stats.acked == 1
