"""The broker conformance suite over every adapter x async backend.

``memory`` runs on asyncio and trio; the native ``amqp`` adapter (both
backends) and ``aiormq`` (asyncio only) against the real RabbitMQ node,
and both again against a 3-node cluster through a URL naming every node
(slow tier).
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
_CLUSTER = (pytest.mark.rabbitmq, pytest.mark.slow_tier)
_COMBOS = [
    pytest.param("memory", "asyncio", id="memory-asyncio"),
    pytest.param("memory", "trio", id="memory-trio"),
    pytest.param("amqp", "asyncio", id="amqp-asyncio", marks=pytest.mark.rabbitmq),
    pytest.param("amqp", "trio", id="amqp-trio", marks=pytest.mark.rabbitmq),
    pytest.param("aiormq", "asyncio", id="aiormq-asyncio", marks=pytest.mark.rabbitmq),
    # a 3-node RabbitMQ cluster through a URL naming every node (slow tier: the
    # cluster takes about a minute to start)
    pytest.param("cluster-amqp", "asyncio", id="cluster-amqp-asyncio", marks=_CLUSTER),
    pytest.param("cluster-amqp", "trio", id="cluster-amqp-trio", marks=_CLUSTER),
    pytest.param("cluster-aiormq", "asyncio", id="cluster-aiormq-asyncio", marks=_CLUSTER),
]

CAPABILITIES = BrokerCapabilities()


def _opener(
    adapter: str, request: pytest.FixtureRequest
) -> Callable[[], AbstractAsyncContextManager[Broker]]:
    from relayna.transport import open_broker

    if adapter == "memory":
        return lambda: open_broker("memory://")
    if adapter.startswith("cluster-"):
        # shuffled: a check's connections land on different nodes
        url = request.getfixturevalue("rabbit_cluster").amqp_url + "?host_order=shuffle"
        adapter = adapter.removeprefix("cluster-")
    else:
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


@pytest.mark.parametrize(("adapter", "anyio_backend"), _COMBOS)
async def test_consumer_reports_its_buffered_deliveries(
    adapter: str, unique: str, request: pytest.FixtureRequest
) -> None:
    # The status hub writes a lone event inline only when ``buffered`` is 0;
    # a count that stayed 0 with deliveries waiting would break its batching.
    from relayna.testing._broker_support import _eventually
    from relayna.transport import QueueSpec

    queue = f"relayna-conf.{unique}.buffered"
    with anyio.fail_after(20):
        async with _opener(adapter, request)() as broker:
            await broker.declare_queue(QueueSpec(name=queue, durable=False))
            try:
                for i in range(5):
                    await broker.publish("", queue, str(i).encode())
                async with broker.consume(queue, prefetch=3) as consumer:

                    async def buffered() -> int:
                        return int(consumer.buffered)  # type: ignore[attr-defined]

                    await _eventually(buffered, 3, "deliveries buffered")
                    # The prefetch bound: the broker holds the other two back.
                    assert (await broker.inspect_queue(queue)).message_count == 2
                    assert consumer.buffered == 3  # type: ignore[attr-defined]
                    it = aiter(consumer)
                    first = await anext(it)
                    assert consumer.buffered == 2  # type: ignore[attr-defined]
                    await first.ack()
                    await _eventually(buffered, 3, "buffered after the ack returned credit")
                    for _ in range(4):
                        await (await anext(it)).ack()
                    assert consumer.buffered == 0  # type: ignore[attr-defined]
            finally:
                await broker.delete_queue(queue)
