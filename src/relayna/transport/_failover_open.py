"""Opening the failing-over broker, and the helpers around it (see :mod:`._failover`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Literal

import anyio

from relayna._urls import join_urls, redact_url
from relayna.errors import ConfigurationError, PublishOutcomeUnknown, unwrap_groups
from relayna.transport._broker import Broker, PeekedMessage, Properties, SupportsPeek
from relayna.transport._failover import FailoverBroker, Opener
from relayna.transport._open import open_broker

__all__ = [
    "PeekingFailoverBroker",
    "broker_opener",
    "open_failover_broker",
    "publish_idempotent",
]

log = logging.getLogger("relayna.transport.failover")

#: Seconds ``open_failover_broker`` waits for a clean close on exit.
_STOP_TIMEOUT = 6.0


def broker_opener(
    url: str | None, adapter: Literal["native", "aiormq"] = "native"
) -> Opener | None:
    """How to open one more connection to ``url``: ``None`` without a URL or for
    the memory broker (it cannot be lost). The status hub's ``reconnect=`` and
    the runtime's :class:`FailoverBroker` share it."""
    if url is None or url.startswith("memory:"):
        return None
    return lambda: open_broker(url, adapter=adapter)


class PeekingFailoverBroker(FailoverBroker):
    """A :class:`FailoverBroker` over an adapter that can peek (the native client)."""

    async def peek(self, queue: str, *, limit: int) -> list[PeekedMessage]:
        """As :meth:`SupportsPeek.peek` (nothing is taken, so it runs again after a loss)."""

        async def peek(broker: Broker) -> list[PeekedMessage]:
            if not isinstance(broker, SupportsPeek):
                raise ConfigurationError(f"the broker at {broker.url} cannot peek")
            return await broker.peek(queue, limit=limit)

        return await self._call("idempotent", peek)


async def publish_idempotent(
    broker: Broker,
    exchange: str,
    routing_key: str,
    body: bytes,
    properties: Properties | None = None,
    *,
    mandatory: bool = True,
) -> None:
    """Publish a message of which a second copy is harmless (a cancel's control
    message): after :class:`~relayna.errors.PublishOutcomeUnknown` it is
    published once more (on the next connection) instead of raising."""
    try:
        await broker.publish(exchange, routing_key, body, properties, mandatory=mandatory)
    except PublishOutcomeUnknown as exc:
        log.info("publish outcome unknown (%s); publishing the idempotent message again", exc)
        await broker.publish(exchange, routing_key, body, properties, mandatory=mandatory)


@asynccontextmanager
async def open_failover_broker(
    url: str | Sequence[str],
    *,
    adapter: Literal["native", "aiormq"] = "native",
    unavailable_timeout: float = 5.0,
) -> AsyncIterator[Broker]:
    """Open the broker at ``url`` as a :class:`FailoverBroker` (its ``run`` in a
    task group of this block); ``memory://`` opens the memory broker as it is.

    Raises:
        ConfigurationError: a bad URL or adapter.
        BrokerError: the first connection could not be opened.
    """
    joined = join_urls(url)
    opener = broker_opener(joined, adapter)
    if opener is None:
        async with open_broker(joined, adapter=adapter) as memory:
            yield memory
        return
    kind = PeekingFailoverBroker if adapter == "native" else FailoverBroker
    failover = kind(opener, redact_url(joined), unavailable_timeout=unavailable_timeout)
    with unwrap_groups():  # callers see BrokerError, not a group
        async with anyio.create_task_group() as tg:
            await tg.start(failover.run)
            try:
                yield failover
            finally:
                failover.stop()  # run closes the connection and returns
                # (bounded: a connection attempt in progress is not waited out)
                tg.cancel_scope.deadline = anyio.current_time() + _STOP_TIMEOUT
