"""The broker transport contract.

Every broker adapter (native AMQP on anyio, aiormq, in-memory) implements
:class:`Broker`. Semantics follow AMQP 0-9-1 as RabbitMQ implements it; the
conformance suite in :mod:`relayna.testing` is the executable specification.

Lifecycle: adapters are opened with ``async with open_broker(url) as broker``
(see :mod:`relayna.transport`). The broker owns its connection and any reader /
heartbeat tasks in a task group entered by that ``async with``. Leaving the
block closes everything; nothing keeps running afterwards.

Publishing: :meth:`Broker.publish` returns only after the broker confirmed the
message. Many publishes may be in flight at once (from concurrent tasks); each
awaits its own confirm. A ``mandatory`` publish that reaches no queue raises
:class:`~relayna.errors.UnroutableError`.

Consuming: :meth:`Broker.consume` is an async context manager yielding a
:class:`Consumer`, an async iterator of :class:`Delivery`. The number of
unsettled deliveries never exceeds ``prefetch``. Leaving the block cancels the
consumer (``basic.cancel``); deliveries that were not settled are requeued by
the broker (marked ``redelivered``). A consumer cancelled by the server (queue
deleted) ends iteration by raising :class:`~relayna.errors.ConsumerCancelled`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

import attrs

from relayna.errors import ConfigurationError

__all__ = [
    "BindingSpec",
    "Broker",
    "Consumer",
    "Delivery",
    "ExchangeSpec",
    "ExchangeType",
    "FieldTable",
    "FieldValue",
    "PeekedMessage",
    "Properties",
    "QueueInfo",
    "QueueSpec",
    "StreamOffset",
    "MAX_STREAM_OFFSET",
    "check_stream_offset",
    "SupportsPeek",
]

ExchangeType: TypeAlias = Literal["direct", "topic", "fanout", "headers"]

#: AMQP field-table values: what headers and arguments may hold.
FieldValue: TypeAlias = (
    bool
    | int
    | float
    | str
    | bytes
    | Decimal
    | datetime
    | list["FieldValue"]
    | dict[str, "FieldValue"]
    | None
)
FieldTable: TypeAlias = dict[str, FieldValue]

#: Where a stream consumer starts: ``"first"``, ``"last"``, ``"next"``, a
#: numeric offset, or a timestamp (RabbitMQ has 1 s accuracy on 0-9-1).
StreamOffset: TypeAlias = Literal["first", "last", "next"] | int | datetime

#: Largest numeric stream offset (AMQP encodes it as a signed 64-bit integer).
MAX_STREAM_OFFSET = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def check_stream_offset(offset: object) -> StreamOffset:
    """Validate a stream offset; return it normalised (timestamps in UTC).

    The contract every broker adapter applies before it consumes:

    * ``"first"``, ``"last"``, ``"next"``;
    * an integer ``0 .. 2**63 - 1``; past the end of the stream the consumer
      waits for that offset (RabbitMQ's behaviour, which the memory broker
      follows);
    * a datetime (naive = UTC) from 1970-01-01 UTC on; one after the newest
      message starts at the next message published (as ``"next"``).

    Raises:
        ConfigurationError: anything else: another string, ``bool``, a
            negative or too large integer, a timestamp before 1970 (AMQP
            timestamps are unsigned) or one out of range in UTC.
    """
    if isinstance(offset, bool):
        raise ConfigurationError(f"invalid stream offset {offset!r}")
    if isinstance(offset, int):
        if not 0 <= offset <= MAX_STREAM_OFFSET:
            raise ConfigurationError(f"stream offset {offset} is outside 0..2**63-1")
        return offset
    if isinstance(offset, datetime):
        if offset.tzinfo is None:
            offset = offset.replace(tzinfo=UTC)
        try:
            moment = offset.astimezone(UTC)
        except OverflowError:
            raise ConfigurationError(
                f"stream timestamp {offset.isoformat()} is out of range"
            ) from None
        if moment < _EPOCH:
            raise ConfigurationError(
                f"stream timestamp {moment.isoformat()} is before 1970-01-01T00:00:00Z"
            )
        return moment
    if offset in ("first", "last", "next"):
        return offset
    raise ConfigurationError(f"invalid stream offset {str(offset)[:64]!r}")


def _frozen_table(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


@attrs.frozen
class ExchangeSpec:
    """An exchange to declare. ``name=""`` is the default exchange (never declared)."""

    name: str
    type: ExchangeType = "direct"
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False
    arguments: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_table)


@attrs.frozen
class QueueSpec:
    """A queue to declare. Arguments carry ``x-*`` keys (TTL, DLX, queue type ...)."""

    name: str
    durable: bool = True
    exclusive: bool = False
    auto_delete: bool = False
    arguments: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_table)


@attrs.frozen
class BindingSpec:
    """Bind ``queue`` to ``exchange`` with ``routing_key`` (and headers-exchange arguments)."""

    queue: str
    exchange: str
    routing_key: str = ""
    arguments: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_table)


@attrs.frozen
class QueueInfo:
    """Result of a declare or passive inspect."""

    name: str
    message_count: int
    consumer_count: int


@attrs.frozen
class Properties:
    """AMQP basic properties. ``None`` means unset (distinct from ``priority=0``).

    ``expiration`` is a per-message TTL in milliseconds, as a string as on the wire.
    ``timestamp`` is a timezone-aware datetime with second precision.
    """

    content_type: str | None = None
    content_encoding: str | None = None
    headers: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_table)
    delivery_mode: int | None = None
    priority: int | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    expiration: str | None = None
    message_id: str | None = None
    timestamp: datetime | None = None
    type: str | None = None
    user_id: str | None = None
    app_id: str | None = None

    @property
    def persistent(self) -> bool:
        """``delivery_mode == 2``: written to disk by durable queues."""
        return self.delivery_mode == 2


@attrs.frozen
class PeekedMessage:
    """A message read by :meth:`SupportsPeek.peek` and left in its queue."""

    body: bytes
    properties: Properties
    redelivered: bool
    exchange: str = ""
    routing_key: str = ""


@runtime_checkable
class SupportsPeek(Protocol):
    """Optional broker capability: read ready messages without taking them.

    The native AMQP adapter (``basic.get`` + ``basic.nack(requeue)``) and the
    memory broker have it; aiormq does not.
    """

    async def peek(self, queue: str, *, limit: int) -> list[PeekedMessage]:
        """Up to ``limit`` ready messages of ``queue``, head first, left in the queue.

        Raises:
            NotFound: the queue does not exist.
        """
        ...


@runtime_checkable
class Delivery(Protocol):
    """One message handed to a consumer. Settle it exactly once.

    Settling a delivery whose channel is gone raises a
    :class:`~relayna.errors.BrokerError`; the broker requeues it anyway.
    """

    @property
    def body(self) -> bytes:
        """The message body, as published."""
        ...

    @property
    def properties(self) -> Properties:
        """The AMQP basic properties (headers included)."""
        ...

    @property
    def exchange(self) -> str:
        """The exchange the message was published to (``""``: the default exchange)."""
        ...

    @property
    def routing_key(self) -> str:
        """The routing key it was published (or dead-lettered) with."""
        ...

    @property
    def redelivered(self) -> bool:
        """The broker delivered it before (a hint, not proof it was handled)."""
        ...

    @property
    def delivery_tag(self) -> int:
        """The channel-scoped tag that settles it."""
        ...

    @property
    def consumer_tag(self) -> str:
        """The tag of the consumer (server- or caller-chosen)."""
        ...

    @property
    def settled(self) -> bool:
        """Whether ack, nack or reject was already called."""
        ...

    async def ack(self) -> None:
        """Acknowledge: the broker forgets the message."""
        ...

    async def nack(self, *, requeue: bool = True) -> None:
        """Negative-acknowledge: requeue it, or (``requeue=False``) dead-letter or drop it."""
        ...

    async def reject(self, *, requeue: bool = False) -> None:
        """Reject it: dead-lettered (or dropped) unless ``requeue``."""
        ...


@runtime_checkable
class Consumer(Protocol):
    """An active consumer: iterate it for deliveries."""

    @property
    def queue(self) -> str:
        """The queue being consumed."""
        ...

    @property
    def consumer_tag(self) -> str:
        """The tag of the consumer (server- or caller-chosen)."""
        ...

    def __aiter__(self) -> AsyncIterator[Delivery]: ...

    # Adapters may also offer ``buffered: int``: deliveries that the next
    # iteration returns without waiting for the broker (the hub writes a lone
    # event inline when it is 0). Absent means unknown.


@runtime_checkable
class Broker(Protocol):
    """An open broker connection (see module docstring for the semantics)."""

    @property
    def url(self) -> str:
        """The connection URL with the password redacted."""
        ...

    async def declare_exchange(self, spec: ExchangeSpec) -> None:
        """Declare an exchange (idempotent; other settings than the existing ones raise
        :class:`~relayna.errors.PreconditionFailed`)."""
        ...

    async def declare_queue(self, spec: QueueSpec) -> QueueInfo:
        """Declare a queue (idempotent, as for exchanges); returns its depth and consumers."""
        ...

    async def bind_queue(self, spec: BindingSpec) -> None:
        """Bind a queue to an exchange (idempotent); a missing side raises NotFound."""
        ...

    async def inspect_queue(self, name: str) -> QueueInfo:
        """Passive declare: raises :class:`~relayna.errors.NotFound` for a missing queue."""
        ...

    async def delete_queue(self, name: str) -> int:
        """Delete a queue (if it exists); returns the number of messages dropped."""
        ...

    async def delete_exchange(self, name: str) -> None:
        """Delete an exchange if it exists."""
        ...

    async def purge_queue(self, name: str) -> int:
        """Drop a queue's ready messages; returns how many."""
        ...

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Properties | None = None,
        *,
        mandatory: bool = True,
    ) -> None:
        """Publish and wait for the broker confirm.

        Raises:
            UnroutableError: ``mandatory`` and no queue matched.
            NotFound: the exchange does not exist.
            PublishNacked: the broker nacked the message.
            ConnectionLost: the connection died before the confirm.

        Cancellation: cancelling the caller never leaves a partial message on
        the wire; the publish may or may not have reached the broker.
        """
        ...

    def consume(
        self,
        queue: str,
        *,
        prefetch: int = 1,
        offset: StreamOffset | None = None,
        arguments: Mapping[str, Any] | None = None,
        consumer_tag: str | None = None,
    ) -> AbstractAsyncContextManager[Consumer]:
        """Consume ``queue`` with at most ``prefetch`` unsettled deliveries.

        ``offset`` is required semantics for stream queues (``x-stream-offset``);
        on other queue types it raises :class:`~relayna.errors.PreconditionFailed`.
        """
        ...
