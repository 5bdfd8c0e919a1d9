"""Consumers recording dead-letters into the DLQStore (memory broker + memory store)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from relayna.consumer import (
    AggregationConsumer,
    DLQRecord,
    RetryPolicy,
    TaskConsumer,
    TaskContext,
    make_dlq_record,
)
from relayna.contracts import StatusEvent, TaskEnvelope
from relayna.dlq import DLQQuery, DLQService, DLQStore, DLQStoreConfig
from relayna.observability import ConsumerDLQRecordPersistFailed, MemoryObservationCollector
from relayna.rabbitmq import open_relayna_client
from relayna.transport import Broker, open_store

pytestmark = pytest.mark.anyio
Until = Callable[..., Awaitable[None]]


async def test_task_dead_letters_become_indexed_records(
    broker: Broker, topology: Any, running: Any, until: Until
) -> None:
    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        raise ValueError("always")

    async with open_store("memory://") as store:
        dlq = DLQStore(store, DLQStoreConfig(prefix="rt"))
        consumer = TaskConsumer(
            topology=topology,
            broker=broker,
            handler=handler,
            consumer_name="orders-worker",
            retry_policy=RetryPolicy(max_retries=1, delay_ms=10),
            dlq_recorder=dlq,
        )
        with anyio.fail_after(10):
            async with open_relayna_client(topology, broker) as client, running(consumer):
                await client.publish_task({"task_id": "d-1", "payload": {"n": 1}})
                await until(lambda: consumer.stats.dead_lettered == 1)
            page = await dlq.list_records(DLQQuery(task_id="d-1"))
            graph_view = await DLQService(dlq).records_for_task("d-1", 200)
    [record] = page.records
    assert [(r["dlq_id"], r["reason"], r["retry_attempt"]) for r in graph_view] == [
        (record.dlq_id, "handler_error", 1)
    ]
    assert record.queue_name == topology.tasks_queue + ".dlq"
    assert record.source_queue_name == topology.tasks_queue
    assert record.retry_queue_name == topology.tasks_queue + ".retry"
    assert (record.reason, record.exception_type, record.exception_message) == (
        "handler_error",
        "ValueError",
        "always",
    )
    assert (record.retry_attempt, record.max_retries) == (1, 1)
    assert record.service_name == "orders-worker"
    assert record.worker_id is not None
    assert record.worker_id.startswith("orders-worker@")
    assert record.runtime_version is not None
    assert record.input_preview is not None
    assert '"d-1"' in record.input_preview
    assert consumer.stats.dlq_record_errors == 0


async def test_a_redelivered_dead_letter_keeps_one_record() -> None:
    async with open_store("memory://") as store:
        dlq = DLQStore(store)
        facts: dict[str, Any] = {
            "queue_name": "q.dlq",
            "source_queue_name": "q",
            "retry_queue_name": "q.retry",
            "task_id": "t",
            "correlation_id": "c",
            "service_name": "w",
            "reason": "handler_error",
            "exception_type": "E",
            "exception_message": "first text",
            "retry_attempt": 2,
            "max_retries": 2,
            "headers": {"relayna-failure-reason": "handler_error"},
            "identity_headers": {"relayna-retry-attempt": 2},
            "content_type": "application/json",
            "body": b"{}",
        }
        with anyio.fail_after(5):
            assert await dlq.add(make_dlq_record(**facts))
            # the same delivery again (a crash before its ack): other clock, other text
            facts["exception_message"] = "second text"
            assert not await dlq.add(make_dlq_record(**facts))
            assert len((await dlq.list_records()).records) == 1


class SlowRecorder:
    def __init__(self) -> None:
        self.release = anyio.Event()

    async def add(self, record: DLQRecord) -> None:
        await self.release.wait()


async def test_a_hanging_recorder_never_holds_back_the_ack(
    broker: Broker, topology: Any, running: Any, until: Until
) -> None:
    recorder = SlowRecorder()
    collector = MemoryObservationCollector()

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        raise RuntimeError("x")

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        retry_policy=RetryPolicy(max_retries=0, delay_ms=10),
        dlq_recorder=recorder,
        dlq_record_timeout=0.2,
        observation_sink=collector,
    )
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "slow-1"})
            await until(lambda: consumer.stats.dlq_record_errors == 1)
            await until(lambda: (consumer.stats.dead_lettered, consumer.inflight) == (1, 0))
        recorder.release.set()
    dlq = topology.tasks_queue + ".dlq"
    assert (await broker.inspect_queue(dlq)).message_count == 1
    assert (await broker.inspect_queue(topology.tasks_queue)).message_count == 0
    [failed] = collector.of_type(ConsumerDLQRecordPersistFailed)
    assert failed.exception_type == "TimeoutError"  # type: ignore[attr-defined]


async def test_aggregation_dead_letters_keep_the_parent_task_id(
    broker: Broker, topology: Any, running: Any, until: Until
) -> None:
    async def handler(event: StatusEvent, ctx: TaskContext) -> None:
        raise RuntimeError("cannot aggregate")

    async with open_store("memory://") as store:
        dlq = DLQStore(store)
        consumer = AggregationConsumer(
            topology=topology,
            broker=broker,
            handler=handler,
            shards=range(topology.shard_count),
            retry_policy=RetryPolicy(max_retries=0, delay_ms=10),
            dlq_recorder=dlq,
        )
        with anyio.fail_after(10):
            async with open_relayna_client(topology, broker) as client, running(consumer):
                await client.publish_aggregation_status(
                    {"task_id": "child-1", "status": "done", "meta": {"parent_task_id": "p-1"}}
                )
                await until(lambda: consumer.stats.dead_lettered == 1)
            [record] = (await dlq.list_records(DLQQuery(task_id="child-1"))).records
    assert record.metadata["parent_task_id"] == "p-1"
    assert record.reason == "handler_error"
