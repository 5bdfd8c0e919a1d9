"""Shared infrastructure of the broker conformance suite.

:class:`BrokerCapabilities`, :class:`BrokerCheck` and the helpers every
``check_*`` coroutine uses: resource bookkeeping, the pumping inbox and small
assertion helpers.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import attrs

from relayna.errors import BrokerError
from relayna.transport import (
    BindingSpec,
    Broker,
    Delivery,
    ExchangeSpec,
    ExchangeType,
    QueueSpec,
    StreamOffset,
)

_E = TypeVar("_E", bound=BaseException)


@attrs.frozen
class BrokerCapabilities:
    """What the broker under test supports; checks needing more are skipped.

    ``ttl_accuracy`` is the relative tolerance of TTL timing checks (0.1 = ±10 %).
    ``ttl_late_slack`` is added to the upper bound only, in seconds: a message
    dead-lettered *before* its TTL is a broker bug, one handed to the consumer a
    little *after* it is usually the host scheduling the consumer late (a busy
    CI machine), not the broker.
    """

    streams: bool = True
    quorum: bool = True
    priorities: bool = True
    delivery_limit: bool = True
    ttl_accuracy: float = 0.1
    ttl_late_slack: float = 0.5


CheckFunction = Callable[[Broker, str, BrokerCapabilities], Awaitable[None]]


@attrs.frozen
class BrokerCheck:
    """One named check and the capabilities it needs."""

    name: str
    run: CheckFunction
    requires: frozenset[str] = frozenset()

    def applies(self, caps: BrokerCapabilities) -> bool:
        return all(getattr(caps, name) for name in self.requires)


# -- helpers -------------------------------------------------------------------


def _expect(condition: object, message: str) -> None:
    if not condition:
        raise AssertionError(message)


async def _raises(kind: type[_E], operation: Coroutine[Any, Any, object], what: str) -> _E:
    try:
        await operation
    except kind as exc:
        return exc
    raise AssertionError(f"{what}: expected {kind.__name__}, nothing was raised")


async def _eventually(
    probe: Callable[[], Awaitable[object]], expected: object, what: str, within: float = 5.0
) -> None:
    """Poll ``probe`` until it returns ``expected`` (queue stats settle asynchronously)."""
    value: object = None
    with anyio.move_on_after(within):
        while True:
            value = await probe()
            if value == expected:
                return
            await anyio.sleep(0.02)
    raise AssertionError(f"{what}: expected {expected!r}, still {value!r} after {within}s")


class _Resources:
    """Declares queues/exchanges and deletes them again at exit."""

    def __init__(self, broker: Broker, prefix: str) -> None:
        self.broker = broker
        self.prefix = prefix
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    async def queue(self, suffix: str, **arguments: Any) -> str:
        name = f"{self.prefix}.{suffix}"
        self.queues.append(name)
        await self.broker.declare_queue(QueueSpec(name, arguments=arguments))
        return name

    async def exchange(self, suffix: str, kind: ExchangeType = "direct") -> str:
        name = f"{self.prefix}.{suffix}"
        self.exchanges.append(name)
        await self.broker.declare_exchange(ExchangeSpec(name, kind))
        return name

    async def bind(self, queue: str, exchange: str, key: str = "", **arguments: Any) -> None:
        await self.broker.bind_queue(BindingSpec(queue, exchange, key, arguments=arguments))

    async def cleanup(self) -> None:
        with anyio.CancelScope(shield=True), anyio.fail_after(15):
            for name in self.queues:
                await self.broker.delete_queue(name)
            for name in self.exchanges:
                await self.broker.delete_exchange(name)


@asynccontextmanager
async def _resources(broker: Broker, prefix: str) -> AsyncIterator[_Resources]:
    res = _Resources(broker, prefix)
    try:
        yield res
    finally:
        await res.cleanup()


@attrs.frozen
class _End:
    error: BaseException | None


class _Inbox:
    def __init__(self, receive: anyio.abc.ObjectReceiveStream[Delivery | _End], queue: str) -> None:
        self._receive = receive
        self.queue = queue

    async def next(self, within: float = 5.0) -> Delivery:
        try:
            with anyio.fail_after(within):
                item = await self._receive.receive()
        except TimeoutError:
            raise AssertionError(f"no delivery from {self.queue!r} within {within}s") from None
        if isinstance(item, _End):
            if item.error is not None:
                raise item.error
            raise AssertionError(f"consumer of {self.queue!r} ended unexpectedly")
        return item

    async def take(self, count: int, *, ack: bool = True, within: float = 5.0) -> list[Delivery]:
        deliveries = [await self.next(within) for _ in range(count)]
        if ack:
            for delivery in deliveries:
                await delivery.ack()
        return deliveries

    async def quiet(self, seconds: float) -> None:
        """Assert that nothing is delivered for ``seconds``."""
        with anyio.move_on_after(seconds):
            item = await self._receive.receive()
            raise AssertionError(f"unexpected delivery from {self.queue!r}: {item!r}")


@asynccontextmanager
async def _consuming(
    broker: Broker, queue: str, *, prefetch: int = 10, offset: StreamOffset | None = None
) -> AsyncIterator[_Inbox]:
    send, receive = anyio.create_memory_object_stream[Delivery | _End](math.inf)

    async def pump() -> None:
        async with send:
            try:
                async for delivery in consumer:
                    await send.send(delivery)
            except BrokerError as exc:  # handed to the check, which re-raises it
                await send.send(_End(exc))
            else:
                await send.send(_End(None))

    async with broker.consume(queue, prefetch=prefetch, offset=offset) as consumer:
        async with anyio.create_task_group() as tg, receive:
            tg.start_soon(pump)
            yield _Inbox(receive, queue)
            tg.cancel_scope.cancel()


async def _bodies(broker: Broker, queue: str, count: int) -> list[bytes]:
    async with _consuming(broker, queue, prefetch=max(count, 1)) as inbox:
        deliveries = await inbox.take(count)
        await inbox.quiet(0.1)
    return [d.body for d in deliveries]


def _deaths(delivery: Delivery) -> list[dict[str, Any]]:
    deaths = delivery.properties.headers.get("x-death")
    _expect(
        isinstance(deaths, list) and deaths, f"no x-death header: {delivery.properties.headers!r}"
    )
    assert isinstance(deaths, list)
    return [dict(entry) for entry in deaths]


def _within(elapsed: float, delay: float, caps: BrokerCapabilities, what: str) -> None:
    low = delay * (1 - caps.ttl_accuracy)
    high = delay * (1 + caps.ttl_accuracy) + caps.ttl_late_slack
    _expect(low <= elapsed <= high, f"{what}: took {elapsed:.3f}s, expected {low:.3f}..{high:.3f}s")
