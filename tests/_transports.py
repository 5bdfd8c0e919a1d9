"""One test, two sets of transports: the memory ones and the real RabbitMQ + Redis.

``@pytest.mark.parametrize("kind", TRANSPORTS)`` and ``async with
open_transports(kind, request) as (broker, store)``; the real servers'
fixtures are only requested by the real variant.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from relayna.transport import Broker, Store, open_broker, open_store

__all__ = ["REDIS_ADAPTERS", "TRANSPORTS", "open_transports"]

#: ``(adapter, backend)`` for every Redis store adapter on the backends it runs on.
REDIS_ADAPTERS = [
    pytest.param(("native", "asyncio"), id="native-asyncio"),
    pytest.param(("native", "trio"), id="native-trio"),
    pytest.param(("coredis", "asyncio"), id="coredis-asyncio"),
    pytest.param(("coredis", "trio"), id="coredis-trio"),
    pytest.param(("redis-py", "asyncio"), id="redispy-asyncio"),
]

TRANSPORTS = [
    pytest.param("memory", id="memory"),
    pytest.param("real", id="rabbitmq+redis", marks=[pytest.mark.rabbitmq, pytest.mark.redis]),
]


@asynccontextmanager
async def open_transports(
    kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Broker, Store]]:
    urls = ("memory://", "memory://")
    if kind == "real":
        urls = (request.getfixturevalue("amqp_url"), request.getfixturevalue("redis_url"))
    async with open_broker(urls[0]) as broker, open_store(urls[1]) as store:
        yield broker, store
