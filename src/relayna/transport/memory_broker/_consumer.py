"""Consumers and deliveries of the in-memory broker.

Theory of operation: a queue pushes deliveries into a consumer synchronously
(``push``) while the consumer has credit (``prefetch`` minus unsettled). The
consumer's memory object stream has room for exactly ``prefetch`` items, so a
push never blocks and the stream is bounded. Settling a delivery returns the
credit and lets the queue dispatch again. A consumer ends in one of three
ways: the caller leaves its block (``exit``: unsettled deliveries go back to
the queue), the server cancels it (queue deleted: buffered deliveries can
still be read, then iteration raises :class:`ConsumerCancelled`), or the
broker closes (iteration just ends).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal, Protocol

import anyio
import anyio.lowlevel

from relayna.errors import ChannelClosed, ConnectionLost, ConsumerCancelled, PreconditionFailed
from relayna.transport._broker import Delivery, Properties
from relayna.transport._fair import FairReceiver

__all__ = ["ConsumerHost", "MemoryConsumer", "MemoryDelivery", "Outcome"]

Outcome = Literal["ack", "requeue", "dead-letter"]
_State = Literal["active", "cancelled", "exited", "closed"]


class ConsumerHost(Protocol):
    """The queue side of a consumer."""

    def settle(self, consumer: MemoryConsumer, item: Any, outcome: Outcome) -> None: ...


class MemoryDelivery:
    """A delivery handed out by the in-memory broker (implements ``Delivery``)."""

    __slots__ = (
        "_body",
        "_consumer",
        "_exchange",
        "_item",
        "_properties",
        "_redelivered",
        "_routing_key",
        "_settled",
        "_tag",
    )

    def __init__(
        self,
        consumer: MemoryConsumer,
        item: Any,
        tag: int,
        *,
        body: bytes,
        properties: Properties,
        exchange: str,
        routing_key: str,
        redelivered: bool,
    ) -> None:
        self._consumer = consumer
        self._item = item
        self._tag = tag
        self._body = body
        self._properties = properties
        self._exchange = exchange
        self._routing_key = routing_key
        self._redelivered = redelivered
        self._settled = False

    @property
    def body(self) -> bytes:
        return self._body

    @property
    def properties(self) -> Properties:
        return self._properties

    @property
    def exchange(self) -> str:
        return self._exchange

    @property
    def routing_key(self) -> str:
        return self._routing_key

    @property
    def redelivered(self) -> bool:
        return self._redelivered

    @property
    def delivery_tag(self) -> int:
        return self._tag

    @property
    def consumer_tag(self) -> str:
        return self._consumer.consumer_tag

    @property
    def settled(self) -> bool:
        return self._settled

    async def ack(self) -> None:
        await self._consumer.settle(self, "ack")

    async def nack(self, *, requeue: bool = True) -> None:
        await self._consumer.settle(self, "requeue" if requeue else "dead-letter")

    async def reject(self, *, requeue: bool = False) -> None:
        await self._consumer.settle(self, "requeue" if requeue else "dead-letter")

    def __repr__(self) -> str:
        return (
            f"<MemoryDelivery tag={self._tag} queue={self._consumer.queue!r} "
            f"routing_key={self._routing_key!r} settled={self._settled}>"
        )


class MemoryConsumer:
    """An active consumer of the in-memory broker (implements ``Consumer``)."""

    def __init__(
        self, host: ConsumerHost, *, queue: str, consumer_tag: str, prefetch: int, url: str
    ) -> None:
        self._host = host
        self._queue = queue
        self._tag = consumer_tag
        self.prefetch = prefetch
        self._url = url
        self._send, self._receive = anyio.create_memory_object_stream[MemoryDelivery](
            max_buffer_size=prefetch
        )
        self._unsettled: dict[int, MemoryDelivery] = {}
        self._next_tag = 1
        self.state: _State = "active"
        #: Stream consumers: the next offset to deliver.
        self.position = 0
        self._fair = FairReceiver(self._receive)

    @property
    def queue(self) -> str:
        return self._queue

    @property
    def consumer_tag(self) -> str:
        return self._tag

    @property
    def credit(self) -> int:
        if self.state != "active":
            return 0
        return self.prefetch - len(self._unsettled)

    @property
    def unsettled_count(self) -> int:
        return len(self._unsettled)

    def push(
        self,
        item: Any,
        *,
        body: bytes,
        properties: Properties,
        exchange: str,
        routing_key: str,
        redelivered: bool,
    ) -> None:
        """Hand one delivery to the consumer; the caller checked ``credit``."""
        tag = self._next_tag
        self._next_tag += 1
        delivery = MemoryDelivery(
            self,
            item,
            tag,
            body=body,
            properties=properties,
            exchange=exchange,
            routing_key=routing_key,
            redelivered=redelivered,
        )
        self._unsettled[tag] = delivery
        self._send.send_nowait(delivery)

    def take_unsettled(self) -> list[Any]:
        items = [delivery._item for delivery in self._unsettled.values()]
        self._unsettled.clear()
        return items

    def end(self, state: _State) -> list[Any]:
        """Stop the consumer; returns the items of its unsettled deliveries."""
        if self.state == "active":
            self.state = state
        self._send.close()
        if state == "exited":
            self._receive.close()
        return self.take_unsettled() if state == "exited" else []

    async def settle(self, delivery: MemoryDelivery, outcome: Outcome) -> None:
        await anyio.lowlevel.checkpoint_if_cancelled()
        if delivery._settled:
            raise PreconditionFailed(
                f"delivery tag {delivery.delivery_tag} was already settled",
                url=self._url,
                reply_code=406,
                reply_text="PRECONDITION_FAILED - unknown delivery tag",
            )
        if self.state == "exited":
            raise ChannelClosed(
                f"consumer {self._tag!r} on {self._queue!r} has ended; the delivery was requeued",
                url=self._url,
            )
        if self.state == "closed":
            raise ConnectionLost("the in-memory broker is closed", url=self._url)
        delivery._settled = True
        if self.state == "active":
            del self._unsettled[delivery.delivery_tag]
            self._host.settle(self, delivery._item, outcome)
        # No schedule point after settling: like the AMQP adapter (whose
        # settle appends a frame to the write buffer), so a batch of acks
        # costs no task switch each.

    @property
    def buffered(self) -> int:
        """Deliveries handed to this consumer and not yet taken."""
        return self._receive.statistics().current_buffer_used

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self

    async def __anext__(self) -> Delivery:
        # As the AMQP consumer: buffered deliveries without a task switch each.
        try:
            return await self._fair.receive()
        except anyio.EndOfStream:
            if self.state == "cancelled":
                raise ConsumerCancelled(
                    f"consumer {self._tag!r} cancelled: queue {self._queue!r} was deleted",
                    url=self._url,
                    queue=self._queue,
                ) from None
            raise StopAsyncIteration from None
        except anyio.ClosedResourceError:
            raise StopAsyncIteration from None

    def __repr__(self) -> str:
        return f"<MemoryConsumer tag={self._tag!r} queue={self._queue!r} state={self.state}>"
