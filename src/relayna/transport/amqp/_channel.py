"""Channels, deliveries and consumers of the native client (anyio shell).

Every request is encoded synchronously by the sans-IO core and appended to the
connection's outbound buffer in one step, so a cancelled caller can never leave
half a message on the wire. Synchronous replies are matched in order through a
FIFO of waiters; a waiter whose caller was cancelled still consumes its reply.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pamqp import commands
from pamqp.base import Frame as MethodFrame

from relayna.errors import (
    BrokerError,
    ChannelClosed,
    ConsumerCancelled,
    PublishNacked,
    UnroutableError,
)
from relayna.transport._broker import Delivery, Properties
from relayna.transport._fair import FairReceiver
from relayna.transport.amqp import _events as ev
from relayna.transport.amqp._channel_core import ChannelCore, ChannelState
from relayna.transport.amqp._codec import from_pamqp_properties, to_wire_table
from relayna.transport.amqp._frames import encode_ack, encode_method
from relayna.transport.amqp._util import Waiter, channel_error

if TYPE_CHECKING:
    from relayna.transport.amqp._connection import AMQPConnection

__all__ = ["AMQPConsumer", "AMQPDelivery", "Channel"]


class AMQPDelivery:
    """A message delivered to a consumer; implements :class:`relayna.transport.Delivery`."""

    def __init__(self, channel: Channel, event: ev.DeliveryReady) -> None:
        method = event.method
        self._channel = channel
        self._raw_properties = event.properties
        self._settled = False
        self.body = event.body
        self.consumer_tag: str = getattr(method, "consumer_tag", "")
        self.delivery_tag: int = method.delivery_tag or 0
        self.exchange: str = method.exchange or ""
        self.routing_key: str = method.routing_key or ""
        self.redelivered: bool = method.redelivered

    @cached_property
    def properties(self) -> Properties:
        return from_pamqp_properties(self._raw_properties)

    @property
    def settled(self) -> bool:
        return self._settled

    def _settle(self, data: bytes) -> None:
        if self._settled:
            raise BrokerError(
                f"delivery {self.delivery_tag} already settled", url=self._channel.url
            )
        self._channel.check()
        self._channel.conn.send_nowait(data)
        self._settled = True

    async def ack(self) -> None:
        self._settle(encode_ack(self._channel.id, self.delivery_tag))

    async def nack(self, *, requeue: bool = True) -> None:
        self._settle(
            encode_method(
                self._channel.id,
                commands.Basic.Nack(
                    delivery_tag=self.delivery_tag, multiple=False, requeue=requeue
                ),
            )
        )

    async def reject(self, *, requeue: bool = False) -> None:
        self._settle(
            encode_method(
                self._channel.id,
                commands.Basic.Reject(delivery_tag=self.delivery_tag, requeue=requeue),
            )
        )


class AMQPConsumer:
    """An active consumer; iterate it for :class:`AMQPDelivery` objects."""

    def __init__(
        self,
        queue: str,
        consumer_tag: str,
        receive: MemoryObjectReceiveStream[AMQPDelivery],
    ) -> None:
        self.queue = queue
        self.consumer_tag = consumer_tag
        self._receive = receive
        self._fair = FairReceiver(receive)
        self.error: BrokerError | None = None

    @property
    def buffered(self) -> int:
        """Deliveries received and not yet taken."""
        return self._receive.statistics().current_buffer_used

    def __aiter__(self) -> AMQPConsumer:
        return self

    async def __anext__(self) -> Delivery:
        # Buffered deliveries are taken without a task switch each, so the
        # acks of a whole batch leave in one write (see _fair).
        try:
            return await self._fair.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return self._end()

    def _end(self) -> NoReturn:
        if self.error is not None:
            raise self.error from None
        raise StopAsyncIteration from None


class _Sink:
    __slots__ = ("consumer", "send")

    def __init__(self, send: MemoryObjectSendStream[AMQPDelivery], consumer: AMQPConsumer) -> None:
        self.send = send
        self.consumer = consumer

    def finish(self, error: BrokerError | None) -> None:
        if self.consumer.error is None:
            self.consumer.error = error
        self.send.close()


class Channel:
    """An open AMQP channel. Obtain via ``async with conn.channel() as ch``."""

    def __init__(self, conn: AMQPConnection, core: ChannelCore) -> None:
        self.conn = conn
        self.core = core
        self.id = core.id
        self.url = conn.url
        self.error: BrokerError | None = None
        # Replies in order; a basic.get-ok arrives as an AMQPDelivery.
        self._rpc: deque[Waiter[Any]] = deque()
        self._confirms: dict[int, Waiter[None]] = {}
        self._consumers: dict[str, _Sink] = {}

    @property
    def pending_confirms(self) -> int:
        """Publishes on this channel still waiting for their confirm."""
        return len(self._confirms)

    @property
    def is_open(self) -> bool:
        return self.error is None

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    # -- requests -------------------------------------------------------------
    async def rpc_encoded(self, data: bytes) -> MethodFrame:
        reply: MethodFrame = await self._request(data)
        return reply

    async def _request(self, data: bytes) -> Any:
        self.check()
        self.conn.send_nowait(data)
        waiter: Waiter[Any] = Waiter()
        self._rpc.append(waiter)
        return await waiter.wait()

    async def get(self, queue: str) -> AMQPDelivery | None:
        """``basic.get`` without auto-ack: the next ready message (unsettled), or None."""
        self.check()
        reply = await self._request(
            self.conn.core.send_method(self.id, commands.Basic.Get(queue=queue, no_ack=False))
        )
        return reply if isinstance(reply, AMQPDelivery) else None

    def nack_all(self, delivery_tag: int) -> None:
        """``basic.nack(multiple, requeue)``: every unsettled delivery up to the tag goes back."""
        self.check()
        self.conn.send_nowait(
            encode_method(
                self.id,
                commands.Basic.Nack(delivery_tag=delivery_tag, multiple=True, requeue=True),
            )
        )

    async def rpc(self, method: MethodFrame) -> MethodFrame:
        """Send a synchronous method and return the server's reply.

        Raises the typed :class:`ChannelClosed` subclass if the server closes the
        channel instead (the connection stays usable).
        """
        self.check()
        return await self.rpc_encoded(self.conn.core.send_method(self.id, method))

    async def qos(self, prefetch_count: int) -> None:
        await self.rpc(commands.Basic.Qos(prefetch_count=prefetch_count))

    async def confirm_select(self) -> None:
        await self.rpc(commands.Confirm.Select())

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: commands.Basic.Properties,
        *,
        mandatory: bool = False,
    ) -> None:
        """Publish; in confirm mode, wait for the broker's confirm.

        Raises:
            UnroutableError: ``mandatory`` and unroutable (confirm mode only).
            PublishNacked: the broker nacked the message.
            ChannelClosed / ConnectionLost: the channel or connection died first.
        """
        self.check()
        conn = self.conn
        await conn.wait_writable()
        self.check()
        tag, data = conn.core.send_publish(
            self.id, exchange, routing_key, mandatory, properties, body
        )
        conn.send_nowait(data)
        if tag:
            waiter: Waiter[None] = Waiter()
            self._confirms[tag] = waiter
            await waiter.wait()

    async def consume(
        self,
        queue: str,
        *,
        prefetch: int,
        arguments: dict[str, Any] | None = None,
        consumer_tag: str | None = None,
        no_ack: bool = False,
    ) -> AMQPConsumer:
        """Start a consumer; deliveries are buffered in a stream sized by ``prefetch``."""
        tag = consumer_tag or f"relayna.{uuid.uuid4().hex}"
        send, receive = anyio.create_memory_object_stream[AMQPDelivery](
            max(prefetch, 1) if prefetch else 1000
        )
        consumer = AMQPConsumer(queue, tag, receive)
        self._consumers[tag] = _Sink(send, consumer)
        try:
            await self.rpc(
                commands.Basic.Consume(
                    queue=queue, consumer_tag=tag, no_ack=no_ack, arguments=to_wire_table(arguments)
                )
            )
        except BaseException:
            sink = self._consumers.pop(tag, None)
            if sink is not None:
                sink.finish(None)
            receive.close()
            raise
        return consumer

    async def cancel(self, consumer_tag: str) -> None:
        """``basic.cancel``; iteration of the consumer then ends."""
        try:
            if self.error is None:
                await self.rpc(commands.Basic.Cancel(consumer_tag=consumer_tag))
        finally:
            sink = self._consumers.pop(consumer_tag, None)
            if sink is not None:
                sink.finish(None)

    async def aclose(self) -> None:
        """Close the channel (unsettled deliveries are requeued by the broker)."""
        if self.error is not None:
            if self.conn.channels.get(self.id) is self:
                self.conn.forget_channel(self.id)
            return
        try:
            await self.rpc(
                commands.Channel.Close(
                    reply_code=200, reply_text="Normal shutdown", class_id=0, method_id=0
                )
            )
        except BrokerError:
            pass  # the channel or connection is already gone: nothing left to close
        finally:
            if self.error is None:
                self._fail(
                    ChannelClosed("channel closed by the client", url=self.url, reply_code=200)
                )
            if self.conn.channels.get(self.id) is self:
                self.conn.forget_channel(self.id)

    # -- events from the reader --------------------------------------------------
    def on_reply(self, method: MethodFrame) -> None:
        if self._rpc:
            self._rpc.popleft().set(method)

    def on_confirm(self, event: ev.Confirmed) -> None:
        waiter = self._confirms.pop(event.delivery_tag, None)
        if waiter is None:
            return
        if event.outcome == "ack":
            waiter.set(None)
        elif event.outcome == "nack":
            waiter.fail(PublishNacked(f"broker nacked publish #{event.delivery_tag}", url=self.url))
        else:
            info = event.returned
            assert info is not None
            waiter.fail(
                UnroutableError(
                    f"unroutable message: exchange={info.exchange!r} routing_key={info.routing_key!r} "
                    f"({info.reply_code} {info.reply_text})",
                    url=self.url,
                    exchange=info.exchange,
                    routing_key=info.routing_key,
                    reply_code=info.reply_code,
                    reply_text=info.reply_text,
                )
            )

    def deliver_nowait(self, event: ev.DeliveryReady) -> bool:
        """Fast path: buffer a delivery without blocking; False if that is not possible."""
        if type(event.method) is commands.Basic.GetOk:
            if self._rpc:
                self._rpc.popleft().set(AMQPDelivery(self, event))
            return True
        sink = self._consumers.get(getattr(event.method, "consumer_tag", ""))
        if sink is None:
            return False
        try:
            sink.send.send_nowait(AMQPDelivery(self, event))
        except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
        return True

    async def on_delivery(self, event: ev.DeliveryReady) -> None:
        delivery = AMQPDelivery(self, event)
        sink = self._consumers.get(delivery.consumer_tag)
        if sink is not None:
            try:
                await sink.send.send(delivery)
                return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
        # Nobody listens any more: give the message back to the queue.
        if self.error is None and self.core.state is ChannelState.OPEN:
            self.conn.send_nowait(
                encode_method(
                    self.id, commands.Basic.Reject(delivery_tag=delivery.delivery_tag, requeue=True)
                )
            )

    def fail_confirms(self, make_error: Callable[[], BrokerError]) -> None:
        """Fail every publish awaiting its confirm (late confirms are then ignored)."""
        for waiter in self._confirms.values():
            waiter.fail(make_error())
        self._confirms.clear()

    def on_consumer_cancelled(self, consumer_tag: str) -> None:
        sink = self._consumers.pop(consumer_tag, None)
        if sink is not None:
            sink.finish(
                ConsumerCancelled(
                    f"consumer {consumer_tag!r} on queue {sink.consumer.queue!r} was cancelled by the server",
                    url=self.url,
                    queue=sink.consumer.queue,
                )
            )

    def on_closed_by_peer(self, reply_code: int, reply_text: str) -> None:
        self._fail(channel_error(reply_code, reply_text, self.url))

    def on_connection_lost(self, error: BrokerError) -> None:
        self._fail(error)

    def _fail(self, error: BrokerError) -> None:
        if self.error is not None:
            return
        self.error = error
        while self._rpc:
            self._rpc.popleft().fail(error)
        for waiter in self._confirms.values():
            waiter.fail(error)
        self._confirms.clear()
        self.core.forget_publishes()
        for sink in self._consumers.values():
            sink.finish(error)
        self._consumers.clear()
