"""Fixtures of the workflow runtime tests: each runs on the memory transports and
on real RabbitMQ + Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from _transports import TRANSPORTS, open_transports
from relayna.transport import Broker, Store


@pytest.fixture(params=TRANSPORTS)
async def transports(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Broker, Store]]:
    """Every test runs on the memory transports and on real RabbitMQ + Redis."""
    async with open_transports(request.param, request) as opened:
        yield opened


@pytest.fixture
def broker(transports: tuple[Broker, Store]) -> Broker:
    return transports[0]


@pytest.fixture
def store(transports: tuple[Broker, Store]) -> Store:
    return transports[1]
