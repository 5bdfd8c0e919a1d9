"""Consuming from the in-memory broker: attaching a :class:`MemoryConsumer` to
a queue, and the context manager ``MemoryBroker.consume`` returns, which
attaches on entry and detaches on exit (unsettled deliveries are requeued).
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

import anyio.lowlevel

from relayna.errors import PreconditionFailed
from relayna.transport._broker import Consumer, StreamOffset
from relayna.transport.memory_broker._consumer import MemoryConsumer
from relayna.transport.memory_broker._queues import ClassicQueue, StreamQueue

__all__ = ["AnyQueue", "ConsumeContext", "attach_consumer"]

MAX_PREFETCH = 65535  # AMQP prefetch-count is a short; 0 ("unlimited") maps here
AnyQueue = ClassicQueue | StreamQueue


def attach_consumer(
    queue: AnyQueue,
    name: str,
    *,
    prefetch: int,
    offset: StreamOffset | None,
    tag: str | None,
    new_tag: Callable[[], str],
    url: str,
) -> MemoryConsumer:
    """Attach a new consumer to ``queue`` (tagged by ``new_tag()`` if ``tag`` is None).

    Raises:
        PreconditionFailed: an ``offset`` for a queue that is not a stream.
    """
    if offset is not None and not isinstance(queue, StreamQueue):
        raise PreconditionFailed(
            f"a stream offset was given but queue {name!r} is not a stream",
            url=url,
            reply_code=406,
            reply_text="PRECONDITION_FAILED - not a stream",
        )
    if tag is None:
        tag = new_tag()
    consumer = MemoryConsumer(
        queue,
        queue=name,
        consumer_tag=tag,
        prefetch=prefetch if prefetch > 0 else MAX_PREFETCH,
        url=url,
    )
    if isinstance(queue, StreamQueue):
        queue.attach_at(consumer, offset)
    else:
        queue.attach(consumer)
    return consumer


class ConsumeContext:
    """``async with``: ``start()`` attaches a consumer on entry; exit detaches it."""

    def __init__(self, start: Callable[[], tuple[AnyQueue, MemoryConsumer]]) -> None:
        self._start = start
        self._queue: AnyQueue | None = None
        self._consumer: MemoryConsumer | None = None

    async def __aenter__(self) -> Consumer:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._queue, self._consumer = self._start()
        await anyio.lowlevel.cancel_shielded_checkpoint()
        return self._consumer

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        queue, consumer = self._queue, self._consumer
        if queue is not None and consumer is not None:
            if consumer.state == "active":
                queue.detach(consumer)
            else:
                consumer.end("exited")
