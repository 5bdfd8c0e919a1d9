"""Fixtures for runtime tests on the in-memory broker (consumer, client, ...)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from relayna.topology import (
    RoutedTasksSharedStatusTopology,
    SharedTasksSharedStatusShardedAggregationTopology,
)
from relayna.transport import Broker, Properties, open_broker


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    async with open_broker("memory://") as opened:
        yield opened


@pytest.fixture
def topology(unique: str) -> SharedTasksSharedStatusShardedAggregationTopology:
    return SharedTasksSharedStatusShardedAggregationTopology(
        tasks_exchange=f"tasks-{unique}",
        tasks_queue=f"tasks-{unique}.q",
        tasks_routing_key="task",
        status_exchange=f"status-{unique}",
        status_queue=f"status-{unique}.q",
        status_use_streams=False,
        shard_count=4,
    )


@pytest.fixture
def routed_topology(unique: str) -> RoutedTasksSharedStatusTopology:
    return RoutedTasksSharedStatusTopology(
        tasks_exchange=f"rtasks-{unique}",
        tasks_queue=f"rtasks-{unique}.q",
        task_types=("resize", "ocr"),
        status_exchange=f"rstatus-{unique}",
        status_queue=f"rstatus-{unique}.q",
        status_use_streams=False,
    )


Message = tuple[bytes, Properties]


async def take(broker: Broker, queue: str, count: int, *, limit: float = 5.0) -> list[Message]:
    """Consume and ack ``count`` messages from ``queue``."""
    out: list[Message] = []
    if count == 0:
        return out
    with anyio.fail_after(limit):
        async with broker.consume(queue, prefetch=max(1, count)) as consumer:
            async for delivery in consumer:
                out.append((delivery.body, delivery.properties))
                await delivery.ack()
                if len(out) == count:
                    break
    return out


@pytest.fixture
def take_messages() -> Callable[..., Awaitable[list[Message]]]:
    return take


async def wait_until(predicate: Callable[[], bool], *, limit: float = 5.0) -> None:
    with anyio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110 - polling a test condition
            await anyio.sleep(0.005)


@pytest.fixture
def until() -> Callable[..., Awaitable[None]]:
    return wait_until


@asynccontextmanager
async def running_consumer(consumer: Any) -> AsyncIterator[Any]:
    """Run ``consumer`` in a task group; cancel it (drain) on exit."""
    async with anyio.create_task_group() as tg:
        await tg.start(consumer.run)
        yield consumer
        tg.cancel_scope.cancel()


@pytest.fixture
def running() -> Callable[[Any], Any]:
    return running_consumer
