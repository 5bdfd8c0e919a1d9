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

__all__ = ["TRANSPORTS", "open_transports"]

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
