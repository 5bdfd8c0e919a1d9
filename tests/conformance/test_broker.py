"""The broker conformance suite over every adapter x async backend.

``memory`` runs on asyncio and trio; the native ``amqp`` adapter (both
backends) and ``aiormq`` (asyncio only) against the real RabbitMQ, once
their modules exist.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import anyio
import pytest

from relayna.testing._broker_conformance import BROKER_CHECKS, BrokerCapabilities, BrokerCheck
from relayna.transport import Broker

pytestmark = pytest.mark.anyio


# aiormq is asyncio-only: its trio combination is not generated (never skipped).
_COMBOS = [
    pytest.param("memory", "asyncio", id="memory-asyncio"),
    pytest.param("memory", "trio", id="memory-trio"),
    pytest.param("amqp", "asyncio", id="amqp-asyncio", marks=pytest.mark.rabbitmq),
    pytest.param("amqp", "trio", id="amqp-trio", marks=pytest.mark.rabbitmq),
    pytest.param("aiormq", "asyncio", id="aiormq-asyncio", marks=pytest.mark.rabbitmq),
]

CAPABILITIES = BrokerCapabilities()


def _opener(
    adapter: str, request: pytest.FixtureRequest
) -> Callable[[], AbstractAsyncContextManager[Broker]]:
    from relayna.transport import open_broker

    if adapter == "memory":
        return lambda: open_broker("memory://")
    url = str(request.getfixturevalue("amqp_url"))
    if adapter == "aiormq":
        return lambda: open_broker(url, adapter="aiormq")
    return lambda: open_broker(url)


@pytest.mark.parametrize(("adapter", "anyio_backend"), _COMBOS)
@pytest.mark.parametrize("check", BROKER_CHECKS, ids=lambda check: check.name)
async def test_broker_conformance(
    adapter: str, check: BrokerCheck, unique: str, request: pytest.FixtureRequest
) -> None:
    assert check.applies(CAPABILITIES), f"{adapter} lacks {sorted(check.requires)}"
    open_ = _opener(adapter, request)
    with anyio.fail_after(60):
        async with open_() as broker:
            await check.run(broker, f"relayna-conf.{unique}.{check.name}", CAPABILITIES)
