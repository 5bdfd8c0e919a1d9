"""Manual retry hand-off, durable idempotency, aggregation consumer, observations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import orjson
import pytest

from relayna.consumer import (
    AggregationConsumer,
    Idempotency,
    InMemoryDLQRecorder,
    LifecycleStatuses,
    RetryPolicy,
    TaskConsumer,
    TaskContext,
)
from relayna.contracts import StatusEvent, TaskEnvelope
from relayna.observability import (
    AggregationMessageAcked,
    AggregationRetryScheduled,
    DuplicateSuppressed,
    MemoryObservationCollector,
    Observation,
)
from relayna.rabbitmq import CancelStore, open_relayna_client
from relayna.transport import Broker, open_store

pytestmark = pytest.mark.anyio
Take = Callable[..., Awaitable[list[Any]]]
Until = Callable[..., Awaitable[None]]


async def test_manual_retry_hands_off_with_lineage(
    broker: Broker, routed_topology: Any, running: Any, until: Until, take_messages: Take
) -> None:
    seen: list[tuple[str, str | None, int, str | None, dict[str, Any]]] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        seen.append(
            (
                task.task_id,
                task.task_type,
                ctx.manual_retry_count,
                ctx.manual_retry_previous_task_type,
                dict(task.payload),
            )
        )
        if task.task_type == "resize":
            ctx.manual_retry(task_type="ocr", payload_merge={"lang": "de"}, reason="needs text")
        await ctx.publish_status(status="done")

    consumer = TaskConsumer(
        topology=routed_topology, broker=broker, handler=handler, consumer_name="w1", prefetch=1
    )
    with anyio.fail_after(10):
        async with open_relayna_client(routed_topology, broker) as client, running(consumer):
            await client.publish_task(
                {"task_id": "h-1", "task_type": "resize", "payload": {"n": 1}}
            )
            await until(lambda: consumer.stats.acked == 2)
        statuses = [
            orjson.loads(b) for b, _ in await take_messages(broker, routed_topology.status_queue, 2)
        ]
    assert seen == [
        ("h-1", "resize", 0, None, {"n": 1}),
        ("h-1", "ocr", 1, "resize", {"n": 1, "lang": "de"}),
    ]
    assert statuses[0]["status"] == "manual_retrying"
    assert statuses[0]["message"] == "needs text"
    assert statuses[0]["meta"]["manual_retry"] == {
        "count": 1,
        "source_consumer": "w1",
        "previous_task_type": "resize",
        "reason": "needs text",
        "target_task_type": "ocr",
    }
    # downstream statuses carry the lineage automatically
    assert statuses[1]["status"] == "done"
    assert statuses[1]["meta"]["manual_retry"]["count"] == 1
    assert consumer.stats.manual_retries == 1


async def test_manual_retry_misuse_is_a_handler_failure(
    broker: Broker, topology: Any, running: Any, until: Until
) -> None:
    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        ctx.manual_retry(payload={"a": 1}, payload_merge={"b": 2})

    consumer = TaskConsumer(topology=topology, broker=broker, handler=handler)
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "mis"})
            await until(lambda: consumer.stats.rejected == 1)
    assert consumer.stats.handler_failures == 1


@pytest.mark.parametrize("with_cancels", [False, True], ids=["alone", "with-cancels"])
async def test_completed_idempotency_key_skips_the_handler(
    broker: Broker, topology: Any, running: Any, until: Until, with_cancels: bool
) -> None:
    """With ``cancels`` the check is the start step and the mark a batched step of the
    cancellation script; the key, its TTL and the outcome are the same."""
    calls: list[str] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        calls.append(task.task_id)
        if task.payload.get("fail"):
            raise RuntimeError("fail")

    collector = MemoryObservationCollector()
    with anyio.fail_after(10):
        async with open_store("memory://") as store:
            consumer = TaskConsumer(
                topology=topology,
                broker=broker,
                handler=handler,
                prefetch=1,
                idempotency=Idempotency(store=store, ttl_seconds=60),
                observation_sink=collector,
                cancels=CancelStore(store, prefix="idem-cx") if with_cancels else None,
            )
            async with open_relayna_client(topology, broker) as client, running(consumer):
                await client.publish_task({"task_id": "i-1"})
                await client.publish_task({"task_id": "i-1"})  # a duplicate
                await client.publish_task({"task_id": "i-2", "idempotency_key": "k-2"})
                await client.publish_task({"task_id": "i-3", "idempotency_key": "k-2"})
                await until(lambda: consumer.stats.acked == 4)
            assert await store.get("relayna:idempotency:i-1") == b"done"
            ttl = await store.ttl("relayna:idempotency:k-2")
    assert ttl is not None
    assert 0 < ttl <= 60
    assert calls == ["i-1", "i-2"]
    assert consumer.stats.duplicates_suppressed == 2
    assert len(collector.of_type(DuplicateSuppressed)) == 2


async def test_aggregation_consumer_handles_retries_and_keeps_meta(
    broker: Broker, topology: Any, running: Any, until: Until, take_messages: Take
) -> None:
    seen: list[tuple[str, int]] = []

    async def handler(event: StatusEvent, ctx: TaskContext) -> None:
        seen.append((event.task_id, ctx.attempt))
        if ctx.attempt == 0:
            raise RuntimeError("not yet")
        with pytest.raises(ValueError, match="manual_retry"):
            ctx.manual_retry(task_type="x")

    collector = MemoryObservationCollector()
    consumer = AggregationConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        shards=range(topology.shard_count),
        retry_policy=RetryPolicy(max_retries=1, delay_ms=10),
        observation_sink=collector,
        dlq_recorder=InMemoryDLQRecorder(),
    )
    assert consumer.queue_name == "aggregation.queue.shards.0-1-2-3"
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_aggregation_status(
                {"task_id": "child-1", "status": "done", "meta": {"parent_task_id": "p-1"}}
            )
            await until(lambda: consumer.stats.acked == 1)
    assert seen == [("child-1", 0), ("child-1", 1)]
    [acked] = collector.of_type(AggregationMessageAcked)
    assert acked.parent_task_id == "p-1"  # type: ignore[attr-defined]
    [retry] = collector.of_type(AggregationRetryScheduled)
    assert retry.parent_task_id == "p-1"  # type: ignore[attr-defined]


async def test_slow_sink_drops_are_counted_not_blocking(
    broker: Broker, topology: Any, running: Any, until: Until
) -> None:
    gate = anyio.Event()

    async def sink(event: Observation) -> None:
        await gate.wait()

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=lambda t, c: None,
        prefetch=4,
        observation_sink=sink,
        observation_buffer=2,
    )
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_tasks([{"task_id": f"o{i}"} for i in range(20)])
            await until(lambda: consumer.stats.acked == 20)
            gate.set()
    assert consumer.observations_dropped > 0


async def test_every_observation_of_an_attempt_carries_its_task_type(
    broker: Broker, routed_topology: Any, running: Any, until: Until
) -> None:
    """Received, resources, failure, retry, lifecycle status, hand-off and ack
    observations all name the attempt's task type (the graph and Studio filter
    on it), not only ``TaskMessageReceived``."""
    collector = MemoryObservationCollector()

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        if ctx.attempt == 0:
            raise RuntimeError("once more")
        if task.task_type == "resize":
            ctx.manual_retry(task_type="ocr", reason="needs text")

    consumer = TaskConsumer(
        topology=routed_topology,
        broker=broker,
        handler=handler,
        prefetch=1,
        retry_policy=RetryPolicy(max_retries=2, delay_ms=1),
        statuses=LifecycleStatuses(enabled=True),
        observation_sink=collector,
    )

    def acked() -> int:
        return sum(e.event_type == "TaskMessageAcked" for e in collector.events)

    with anyio.fail_after(10):
        async with open_relayna_client(routed_topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "tt-1", "task_type": "resize"})
            # resize: fails, retried, hands off; ocr: fails, retried, completes
            await until(lambda: acked() == 2)
    of_task = [e for e in collector.events if getattr(e, "task_id", None) == "tt-1"]
    kinds = {e.event_type for e in of_task}
    assert {
        "TaskMessageReceived",
        "TaskResourceSampled",
        "TaskHandlerFailed",
        "ConsumerRetryScheduled",
        "TaskLifecycleStatusPublished",
        "TaskManualRetryPublished",
        "TaskMessageAcked",
    } <= kinds
    handed_off = next(e for e in of_task if e.event_type == "TaskManualRetryPublished")
    assert getattr(handed_off, "task_type", None) == "resize"
    assert getattr(handed_off, "target_task_type", None) == "ocr"
    # every observation names the type of the attempt it belongs to
    types = [getattr(e, "task_type", "missing") for e in of_task]
    assert set(types) == {"resize", "ocr"}
    first_ocr = types.index("ocr")
    assert types[:first_ocr] == ["resize"] * first_ocr
    assert types[first_ocr:] == ["ocr"] * (len(types) - first_ocr)
