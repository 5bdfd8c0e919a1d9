"""Fixtures for consumer integration tests on the real RabbitMQ."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from relayna.topology import SharedTasksSharedStatusTopology
from relayna.transport import Broker, open_broker


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[Broker]:
    async with open_broker(amqp_url) as opened:
        yield opened


@pytest.fixture
async def topology(unique: str, broker: Broker) -> AsyncIterator[SharedTasksSharedStatusTopology]:
    topo = SharedTasksSharedStatusTopology(
        tasks_exchange=f"it-tasks-{unique}",
        tasks_queue=f"it-tasks-{unique}",
        tasks_routing_key="task",
        status_exchange=f"it-status-{unique}",
        status_queue=f"it-status-{unique}",
        status_use_streams=False,
    )
    yield topo
    for suffix in ("", ".retry", ".dlq"):
        await broker.delete_queue(topo.tasks_queue + suffix)
    await broker.delete_queue(topo.status_queue)
    await broker.delete_exchange(topo.tasks_exchange)
    await broker.delete_exchange(topo.status_exchange)
