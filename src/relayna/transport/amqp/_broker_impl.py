"""The :class:`relayna.transport.Broker` implementation on the native client.

Channel layout: one confirm-mode channel for publishing (pipelined: many
publishes in flight, each awaiting its own confirm), one channel for
declarations (re-opened transparently after the server closed it, e.g. on
PRECONDITION_FAILED) and one channel per consumer with ``basic.qos(prefetch)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
from pamqp import commands
from pamqp.base import Frame as MethodFrame

from relayna._urls import join_urls
from relayna.errors import BrokerError, PublishNacked
from relayna.transport._broker import (
    BindingSpec,
    Consumer,
    ExchangeSpec,
    PeekedMessage,
    Properties,
    QueueInfo,
    QueueSpec,
    StreamOffset,
    check_stream_offset,
)
from relayna.transport.amqp._channel import Channel
from relayna.transport.amqp._codec import to_pamqp_properties, to_wire_table
from relayna.transport.amqp._connection import AMQPConnection, open_connection

__all__ = ["AMQPBroker", "open_amqp_broker", "stream_offset_argument"]

_CLEANUP_TIMEOUT = 5.0


def stream_offset_argument(offset: StreamOffset) -> Any:
    """The ``x-stream-offset`` consume argument for an offset (validated by
    :func:`~relayna.transport.check_stream_offset`)."""
    return check_stream_offset(offset)


class AMQPBroker:
    """A :class:`~relayna.transport.Broker` over one native AMQP connection."""

    def __init__(self, conn: AMQPConnection) -> None:
        self.connection = conn
        self._url = conn.url
        self._pub: Channel | None = None
        self._decl: Channel | None = None
        self._pub_lock = anyio.Lock()
        self._retired: set[Channel] = set()  # publish channels closed after their last confirm
        self._decl_lock = anyio.Lock()

    @property
    def url(self) -> str:
        return self._url

    @property
    def blocked(self) -> bool:
        """True while the server has the connection ``connection.blocked``."""
        return self.connection.blocked

    async def wait_closed(self) -> None:
        """Return once the connection is closed or lost (a failing-over broker
        watches it to reconnect before the next caller finds it dead)."""
        await self.connection.closed.wait()

    def statistics(self) -> dict[str, int]:
        """``blocked`` (0/1, the ``relayna_connection_blocked`` gauge),
        ``publish_blocked_total``, ``channels``, ``outbound_bytes``."""
        return self.connection.statistics()

    # -- channels -----------------------------------------------------------
    async def _declaration_channel(self) -> Channel:
        ch = self._decl
        if ch is not None and ch.is_open:
            return ch
        async with self._decl_lock:
            if self._decl is None or not self._decl.is_open:
                self._decl = await self.connection.open_channel()
            return self._decl

    async def _publish_channel(self) -> Channel:
        ch = self._pub
        if ch is not None and ch.is_open:
            return ch
        async with self._pub_lock:
            if self._pub is None or not self._pub.is_open:
                ch = await self.connection.open_channel()
                await ch.confirm_select()
                self._pub = ch
            return self._pub

    async def _rpc(self, method: MethodFrame) -> MethodFrame:
        channel = await self._declaration_channel()
        return await channel.rpc(method)

    # -- topology -----------------------------------------------------------
    async def declare_exchange(self, spec: ExchangeSpec) -> None:
        if not spec.name:
            return
        await self._rpc(
            commands.Exchange.Declare(
                exchange=spec.name,
                exchange_type=spec.type,
                durable=spec.durable,
                auto_delete=spec.auto_delete,
                internal=spec.internal,
                arguments=to_wire_table(spec.arguments),
            )
        )

    async def declare_queue(self, spec: QueueSpec) -> QueueInfo:
        reply = await self._rpc(
            commands.Queue.Declare(
                queue=spec.name,
                durable=spec.durable,
                exclusive=spec.exclusive,
                auto_delete=spec.auto_delete,
                arguments=to_wire_table(spec.arguments),
            )
        )
        assert isinstance(reply, commands.Queue.DeclareOk)
        return QueueInfo(reply.queue or "", reply.message_count or 0, reply.consumer_count or 0)

    async def bind_queue(self, spec: BindingSpec) -> None:
        await self._rpc(
            commands.Queue.Bind(
                queue=spec.queue,
                exchange=spec.exchange,
                routing_key=spec.routing_key,
                arguments=to_wire_table(spec.arguments),
            )
        )

    async def inspect_queue(self, name: str) -> QueueInfo:
        reply = await self._rpc(commands.Queue.Declare(queue=name, passive=True))
        assert isinstance(reply, commands.Queue.DeclareOk)
        return QueueInfo(reply.queue or "", reply.message_count or 0, reply.consumer_count or 0)

    async def delete_queue(self, name: str) -> int:
        reply = await self._rpc(commands.Queue.Delete(queue=name))
        assert isinstance(reply, commands.Queue.DeleteOk)
        return reply.message_count or 0

    async def delete_exchange(self, name: str) -> None:
        if name:
            await self._rpc(commands.Exchange.Delete(exchange=name))

    async def purge_queue(self, name: str) -> int:
        reply = await self._rpc(commands.Queue.Purge(queue=name))
        assert isinstance(reply, commands.Queue.PurgeOk)
        return reply.message_count or 0

    # -- messages -----------------------------------------------------------
    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Properties | None = None,
        *,
        mandatory: bool = True,
    ) -> None:
        channel = await self._publish_channel()
        try:
            await channel.publish(
                exchange,
                routing_key,
                bytes(body),
                to_pamqp_properties(properties),
                mandatory=mandatory,
            )
        except PublishNacked:
            self._retire(channel)
            raise
        finally:
            if channel in self._retired and not channel.pending_confirms:
                self._retired.discard(channel)  # its last publish: close it
                with anyio.CancelScope(shield=True), anyio.move_on_after(_CLEANUP_TIMEOUT):
                    await channel.aclose()

    def _retire(self, channel: Channel) -> None:
        """Publish on a new channel from now on: the broker nacked one on this one.

        RabbitMQ (seen on 3.10) keeps nacking every publish to a quorum queue on
        a channel that first published to it while its leader's node had just
        died, long after a new leader was elected, while a new channel's
        publishes are confirmed at once. The retired channel is closed by the
        last publish still waiting on it.
        """
        if self._pub is channel:
            self._pub = None
            self._retired.add(channel)

    async def peek(self, queue: str, *, limit: int) -> list[PeekedMessage]:
        """Read up to ``limit`` ready messages of ``queue`` and leave them there.

        One channel of its own: ``basic.get`` (unacked) until ``limit`` or
        get-empty, then one ``basic.nack(multiple, requeue)`` and the channel
        closes. Nothing is ever acked, so a failure at any point (this task
        cancelled, the connection lost) leaves every message in the queue: the
        broker requeues unsettled deliveries when the channel goes. The broker
        marks the messages ``redelivered``.

        Raises:
            NotFound: the queue does not exist.
        """
        if limit < 1:
            return []
        channel = await self.connection.open_channel()
        try:
            taken: list[PeekedMessage] = []
            last = 0
            while len(taken) < limit:
                delivery = await channel.get(queue)
                if delivery is None:
                    break
                last = delivery.delivery_tag
                taken.append(
                    PeekedMessage(
                        body=delivery.body,
                        properties=delivery.properties,
                        redelivered=delivery.redelivered,
                        exchange=delivery.exchange,
                        routing_key=delivery.routing_key,
                    )
                )
            if last:
                channel.nack_all(last)
            return taken
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLEANUP_TIMEOUT):
                await channel.aclose()

    @asynccontextmanager
    async def consume(
        self,
        queue: str,
        *,
        prefetch: int = 1,
        offset: StreamOffset | None = None,
        arguments: Mapping[str, Any] | None = None,
        consumer_tag: str | None = None,
    ) -> AsyncIterator[Consumer]:
        args = dict(arguments or {})
        if offset is not None:
            args["x-stream-offset"] = stream_offset_argument(offset)
        channel = await self.connection.open_channel()
        try:
            await channel.qos(prefetch)
            consumer = await channel.consume(
                queue, prefetch=prefetch, arguments=args or None, consumer_tag=consumer_tag
            )
            try:
                yield consumer
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(_CLEANUP_TIMEOUT):
                    try:
                        await channel.cancel(consumer.consumer_tag)
                    except BrokerError:
                        pass  # channel already gone: the broker requeued everything
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLEANUP_TIMEOUT):
                await channel.aclose()


@asynccontextmanager
async def open_amqp_broker(url: str | Sequence[str]) -> AsyncIterator[AMQPBroker]:
    """Open a :class:`~relayna.transport.Broker` on the native anyio client.

    ``url`` may list several nodes (``amqp://u:p@h1:5672,h2:5673/``) or be a list
    of URLs differing only in their host (see :func:`open_connection`).

    Raises the errors of :func:`open_connection`; see :class:`relayna.transport.Broker`
    for the per-operation semantics.
    """
    async with open_connection(join_urls(url)) as conn:
        yield AMQPBroker(conn)
