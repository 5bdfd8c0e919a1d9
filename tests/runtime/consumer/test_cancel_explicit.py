"""Cancellation with the explicit API (TaskConsumer + client), its counters, and the
control queue's bad input; memory transports, both backends (issue 27)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest

from relayna.consumer import LifecycleStatuses, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.errors import PreconditionFailed, StoreError
from relayna.observability import RelaynaMetrics
from relayna.rabbitmq import CancelStore, ControlMessage, TaskIds, open_relayna_client
from relayna.transport import Broker, ExchangeSpec, Properties, open_store

pytestmark = pytest.mark.anyio


async def test_counters_by_phase_and_malformed_control_messages(
    anyio_backend: str, broker: Broker, topology: Any, running: Callable[[Any], Any], unique: str
) -> None:
    started, gate = anyio.Event(), anyio.Event()
    seen: list[str] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        seen.append(task.task_id)
        if task.payload.get("block"):
            started.set()
            await gate.wait()

    metrics = RelaynaMetrics(service="cx")
    async with open_store("memory://") as store:
        cancels = CancelStore(store, prefix=f"p-{unique}", control_exchange=f"ctl-{unique}")
        consumer = TaskConsumer(
            topology=topology,
            broker=broker,
            handler=handler,
            prefetch=1,
            cancels=cancels,
            statuses=LifecycleStatuses(enabled=True),
            metrics=metrics,
        )
        with anyio.fail_after(15):
            async with (
                open_relayna_client(
                    topology,
                    broker,
                    task_ids=TaskIds(store, prefix=cancels.prefix),
                    cancels=cancels,
                ) as client,
                running(consumer),
            ):
                # junk on the control exchange is acked and counted, never fatal
                for body in (
                    b"",
                    b"{",
                    b"[]",
                    b'{"action":"cancel"}',
                    b'{"action":"x","task_id":"a"}',
                ):
                    await broker.publish(f"ctl-{unique}", "", body, Properties(), mandatory=False)
                await client.publish_task({"task_id": "a", "payload": {"block": True}})
                await started.wait()
                await client.publish_task({"task_id": "b", "payload": {}})  # queued behind a
                assert (await client.cancel("b", "queued one")).state == "requested"
                assert (await client.cancel("a", "running one")).state == "requested"
                while consumer.stats.cancelled.total() < 2:  # noqa: ASYNC110
                    await anyio.sleep(0.005)
        assert seen == ["a"]
        assert dict(consumer.stats.cancelled) == {"running": 1, "before_start": 1}
        assert consumer.runs.malformed == 5
        assert len(consumer.runs) == 0  # nothing tracked after the run
        text = metrics.exposition().decode()
        labels = (
            f'consumer="{consumer.consumer_name}",phase="running",queue="{consumer.queue_name}"'
        )
        assert f'relayna_tasks_cancelled_total{{{labels},service="cx"}} 1.0' in text
        assert "relayna_tasks_expired_total" in text


def test_control_messages_decode_only_valid_cancels() -> None:
    message = ControlMessage(task_id="t-1", reason="why")
    assert ControlMessage.decode(message.encode()) == message
    for body in (b"", b"null", b'{"action": "cancel", "task_id": "a b", "reason": "r"}',
                 b'{"action": "cancel", "task_id": "t", "reason": 5}', b"\xff\xfe"):  # fmt: skip
        assert ControlMessage.decode(body) is None


async def test_a_control_exchange_of_another_type_fails_the_worker_at_start(
    anyio_backend: str, broker: Broker, topology: Any, unique: str
) -> None:
    await broker.declare_exchange(ExchangeSpec(f"ctl-{unique}", type="direct"))
    async with open_store("memory://") as store:
        consumer = TaskConsumer(
            topology=topology,
            broker=broker,
            handler=lambda task, ctx: None,
            cancels=CancelStore(store, control_exchange=f"ctl-{unique}"),
        )
        with anyio.fail_after(10), pytest.raises(PreconditionFailed) as caught:
            await consumer.run()
        assert "ctl-" in str(caught.value)


async def test_a_store_that_cannot_list_pending_cancels_does_not_stop_the_worker(
    anyio_backend: str,
    broker: Broker,
    topology: Any,
    running: Callable[[Any], Any],
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    done = anyio.Event()

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        done.set()

    async def unreadable(*args: Any, **kwargs: Any) -> list[bytes]:
        raise StoreError("pending cancels unreadable")

    async with open_store("memory://") as store:
        monkeypatch.setattr(store, "zrangebyscore", unreadable)
        cancels = CancelStore(store, prefix=f"p-{unique}", control_exchange=f"ctl-{unique}")
        consumer = TaskConsumer(topology=topology, broker=broker, handler=handler, cancels=cancels)
        with anyio.fail_after(10):
            async with (
                open_relayna_client(topology, broker, cancels=cancels) as client,
                running(consumer),
            ):
                assert not consumer.runs.listening  # every delivery asks the store
                await client.publish_task({"task_id": "t", "payload": {}})
                await done.wait()
