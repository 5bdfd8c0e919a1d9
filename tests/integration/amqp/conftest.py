"""Fixtures for the AMQP adapter integration tests (real RabbitMQ).

Tests that take the ``adapter`` fixture run as native x asyncio, native x trio and
aiormq x asyncio; the unsupported aiormq x trio combination is never generated
(``test_aiormq_refuses_trio`` checks that it raises instead).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from relayna.transport import _open
from relayna.transport._broker import Broker

COMBINATIONS = [
    pytest.param("asyncio", "native", id="native-asyncio"),
    pytest.param("trio", "native", id="native-trio"),
    pytest.param("asyncio", "aiormq", id="aiormq-asyncio"),
]


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "adapter" in metafunc.fixturenames:
        metafunc.parametrize(("anyio_backend", "adapter"), COMBINATIONS)


@pytest.fixture
async def broker(adapter: str, amqp_url: str) -> AsyncIterator[Broker]:
    async with _open.open_broker(amqp_url, adapter=adapter) as b:  # type: ignore[arg-type]
        yield b
