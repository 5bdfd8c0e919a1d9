"""Quorum work queues and a replicated status stream, declared on the real node
(a one-node cluster takes the same arguments): the types RabbitMQ reports, the
retry hop through a quorum retry queue (at-least-once dead-lettering back
through the default exchange), the redeclare that tries to change a type, and
RabbitMQ refusing every argument the topology refuses for quorum queues."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from relayna.errors import PreconditionFailed
from relayna.topology import SharedTasksSharedStatusTopology
from relayna.topology._arguments import _NOT_FOR_QUORUM
from relayna.transport import Broker, Properties, QueueSpec

pytestmark = pytest.mark.anyio


def _topology(unique: str, **overrides: Any) -> SharedTasksSharedStatusTopology:
    options: dict[str, Any] = {
        "tasks_exchange": f"qt.tasks.{unique}",
        "tasks_queue": f"qt.tasks.q.{unique}",
        "tasks_routing_key": "t",
        "status_exchange": f"qt.status.{unique}",
        "status_queue": f"qt.status.q.{unique}",
        "dead_letter_exchange": f"qt.dlx.{unique}",
        "work_queue_type": "quorum",
        "delivery_limit": 10,
        "status_stream_initial_cluster_size": 1,
    }
    options.update(overrides)
    return SharedTasksSharedStatusTopology(**options)


async def _cleanup(broker: Broker, topology: SharedTasksSharedStatusTopology) -> None:
    plan = topology.plan() + topology.retry_plan(topology.tasks_queue, 100)
    for name in plan.queue_names:
        await broker.delete_queue(name)
    for exchange in plan.exchange_names:
        await broker.delete_exchange(exchange)


async def test_quorum_topology_declares_and_retries(
    broker: Broker, unique: str, services: Any
) -> None:
    topology = _topology(unique)
    tasks = topology.tasks_queue
    plan = topology.plan() + topology.retry_plan(tasks, 100)
    with anyio.fail_after(30):
        try:
            await plan.apply(broker)
            await plan.apply(broker)  # idempotent with the same arguments
            listed = await anyio.to_thread.run_sync(
                lambda: (
                    services.rabbitmqctl(
                        "list_queues", "name", "type", "--formatter", "json"
                    ).stdout
                )
            )
            types = {row["name"]: row["type"] for row in json.loads(listed)}
            assert types[tasks] == "quorum"
            assert types[f"{tasks}.retry"] == "quorum"
            assert types[f"{tasks}.dlq"] == "quorum"
            assert types[topology.status_queue] == "stream"
            # the retry hop: parked in the quorum retry queue, dead-lettered
            # (at-least-once) back to the task queue when its TTL runs out
            await broker.publish("", f"{tasks}.retry", b"again", Properties(delivery_mode=2))
            async with broker.consume(tasks, prefetch=1) as consumer:
                delivery = await consumer.__anext__()
                assert delivery.body == b"again"
                await delivery.ack()
        finally:
            with anyio.CancelScope(shield=True):
                await _cleanup(broker, topology)


async def test_changing_a_queue_type_is_refused_with_the_reason(
    broker: Broker, unique: str
) -> None:
    classic = _topology(
        unique, work_queue_type="classic", delivery_limit=None, dead_letter_exchange=None
    )
    quorum = _topology(unique, dead_letter_exchange=None)
    with anyio.fail_after(30):
        try:
            await classic.plan().apply(broker)
            with pytest.raises(PreconditionFailed) as info:
                await quorum.plan().apply(broker)
            message = str(info.value)
            assert f"queue {classic.tasks_queue!r} already exists with other arguments" in message
            assert "declares it as a quorum queue" in message
            assert "cannot change in place" in message
            assert info.value.reply_code == 406
            # the classic queue is untouched and still usable
            assert (await broker.inspect_queue(classic.tasks_queue)).name == classic.tasks_queue
        finally:
            with anyio.CancelScope(shield=True):
                await _cleanup(broker, classic)


@pytest.mark.parametrize("key", sorted(_NOT_FOR_QUORUM))
async def test_rabbitmq_refuses_what_the_topology_refuses(
    broker: Broker, unique: str, key: str
) -> None:
    value: Any = {"x-max-priority": 5, "x-queue-mode": "lazy", "x-queue-version": 2}.get(
        key, "min-masters"
    )
    name = f"qt.refused.{unique}"
    with anyio.fail_after(15), pytest.raises(PreconditionFailed, match=f"invalid arg '{key}'"):
        await broker.declare_queue(
            QueueSpec(name, durable=True, arguments={"x-queue-type": "quorum", key: value})
        )
