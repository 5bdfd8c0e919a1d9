"""The :class:`relayna.transport.Broker` contract over aiormq (asyncio only).

A second, independent implementation next to the native anyio client. It is
the only relayna module (besides the redis-py adapter) that touches asyncio:
aiormq's futures and callbacks are confined here and mapped to anyio streams
and relayna's error hierarchy.

Differences from the native client: aiormq fills in a random ``message_id``
when the publisher leaves it unset (it uses it to match ``basic.return``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import cached_property
from typing import Any

import aiormq
import aiormq.abc
import aiormq.exceptions as ae
import anyio
import sniffio
from pamqp import commands

from relayna._urls import join_urls
from relayna.errors import (
    AccessRefused,
    AuthenticationError,
    BrokerConnectionError,
    BrokerError,
    ChannelClosed,
    ConnectionLost,
    ConsumerCancelled,
    NotFound,
    PreconditionFailed,
    PublishNacked,
    UnroutableError,
    UnsupportedBackendError,
)
from relayna.transport._broker import (
    BindingSpec,
    Consumer,
    Delivery,
    ExchangeSpec,
    Properties,
    QueueInfo,
    QueueSpec,
    StreamOffset,
)
from relayna.transport.amqp._broker_impl import stream_offset_argument
from relayna.transport.amqp._codec import from_pamqp_properties, to_pamqp_properties, to_wire_table
from relayna.transport.amqp._hosts import FAILURE_MEMORY, connect_order, host_url
from relayna.transport.amqp._url import AMQPParams, parse_amqp_url
from relayna.transport.amqp._util import channel_error

__all__ = ["AiormqBroker", "open_aiormq_broker"]

_CHANNEL_ERRORS: dict[type[Exception], tuple[type[ChannelClosed], int]] = {
    ae.ChannelPreconditionFailed: (PreconditionFailed, 406),
    ae.ChannelNotFoundEntity: (NotFound, 404),
    ae.ChannelAccessRefused: (AccessRefused, 403),
    ae.ChannelLockedResource: (ChannelClosed, 405),
}


def map_error(exc: BaseException, url: str) -> BrokerError:
    """Translate an aiormq/asyncio exception into relayna's hierarchy."""
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, ae.PublishError):
        ret = exc.frame
        assert isinstance(ret, commands.Basic.Return)
        return UnroutableError(
            f"unroutable message: exchange={ret.exchange!r} routing_key={ret.routing_key!r} "
            f"({ret.reply_code} {ret.reply_text})",
            url=url,
            exchange=ret.exchange or "",
            routing_key=ret.routing_key or "",
            reply_code=ret.reply_code,
            reply_text=ret.reply_text,
        )
    if isinstance(exc, ae.DeliveryError):
        return PublishNacked(f"broker nacked the publish: {exc}", url=url)
    for kind, (cls, code) in _CHANNEL_ERRORS.items():
        if isinstance(exc, kind):
            text = str(exc.args[0]) if exc.args else ""
            if cls is not ChannelClosed:  # the native client's mapping, consumer timeout included
                return channel_error(code, text, url)
            return cls(
                f"channel closed by the server: {code} {text}",
                url=url,
                reply_code=code,
                reply_text=text,
            )
    if isinstance(exc, ae.ChannelClosed):
        ccode = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        text = str(exc.args[1]) if len(exc.args) > 1 else ""
        return ChannelClosed(
            f"channel closed: {ccode} {text}", url=url, reply_code=ccode, reply_text=text
        )
    if isinstance(exc, ae.ProbableAuthenticationError | ae.AuthenticationError):
        return AuthenticationError(f"authentication failed: {exc!r}", url=url)
    if isinstance(exc, ae.ConnectionNotAllowed):
        return BrokerConnectionError(f"connection refused by the server: {exc!r}", url=url)
    if isinstance(exc, ae.ConnectionClosed):
        rcode = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        return ConnectionLost(f"connection closed: {exc!r}", url=url, reply_code=rcode)
    return ConnectionLost(f"connection lost: {exc!r}", url=url)


_MAPPED = (
    ae.AMQPError,
    ConnectionError,
    OSError,
    ae.ChannelInvalidStateError,
    asyncio.IncompleteReadError,
)


class AiormqDelivery:
    def __init__(self, message: aiormq.abc.DeliveredMessage, url: str) -> None:
        deliver = message.delivery
        assert isinstance(deliver, commands.Basic.Deliver)
        self._message = message
        self._url = url
        self._settled = False
        self.body: bytes = message.body
        self.exchange: str = deliver.exchange or ""
        self.routing_key: str = deliver.routing_key or ""
        self.redelivered: bool = bool(deliver.redelivered)
        self.delivery_tag: int = deliver.delivery_tag or 0
        self.consumer_tag: str = deliver.consumer_tag or ""

    @cached_property
    def properties(self) -> Properties:
        return from_pamqp_properties(self._message.header.properties)

    @property
    def settled(self) -> bool:
        return self._settled

    async def _do(self, op: str, **kwargs: Any) -> None:
        if self._settled:
            raise BrokerError(f"delivery {self.delivery_tag} already settled", url=self._url)
        channel = self._message.channel
        try:
            await getattr(channel, op)(self.delivery_tag, **kwargs)
        except _MAPPED as exc:
            raise map_error(exc, self._url) from exc
        self._settled = True

    async def ack(self) -> None:
        await self._do("basic_ack")

    async def nack(self, *, requeue: bool = True) -> None:
        await self._do("basic_nack", requeue=requeue)

    async def reject(self, *, requeue: bool = False) -> None:
        await self._do("basic_reject", requeue=requeue)


class AiormqConsumer:
    def __init__(self, queue: str, consumer_tag: str, receive: Any) -> None:
        self.queue = queue
        self.consumer_tag = consumer_tag
        self._receive = receive
        self.error: BrokerError | None = None

    @property
    def buffered(self) -> int:
        """Deliveries received and not yet taken."""
        return int(self._receive.statistics().current_buffer_used)

    def __aiter__(self) -> AiormqConsumer:
        return self

    async def __anext__(self) -> Delivery:
        try:
            item: AiormqDelivery = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if self.error is not None:
                raise self.error from None
            raise StopAsyncIteration from None
        return item


class AiormqBroker:
    """A :class:`~relayna.transport.Broker` over one aiormq connection."""

    def __init__(self, connection: aiormq.abc.AbstractConnection, url: str) -> None:
        self._conn = connection
        self._url = url
        self._pub: aiormq.abc.AbstractChannel | None = None
        self._decl: aiormq.abc.AbstractChannel | None = None
        self._lock = anyio.Lock()

    @property
    def url(self) -> str:
        return self._url

    async def wait_closed(self) -> None:
        """Return once the connection is closed or lost (a failing-over broker
        watches it to reconnect before the next caller finds it dead)."""
        try:
            await self._conn.closing  # an observer of its own: cancelling it is harmless
        except asyncio.CancelledError:
            if not self._conn.is_closed:
                raise  # our caller was cancelled
        except Exception:  # noqa: BLE001 - closed with an error is closed too
            pass

    async def _channel(self, confirms: bool) -> aiormq.abc.AbstractChannel:
        current = self._pub if confirms else self._decl
        if current is not None and not current.is_closed:
            return current
        async with self._lock:
            current = self._pub if confirms else self._decl
            if current is None or current.is_closed:
                try:
                    current = await self._conn.channel(publisher_confirms=confirms)
                except _MAPPED as exc:
                    raise map_error(exc, self._url) from exc
                if confirms:
                    self._pub = current
                else:
                    self._decl = current
            return current

    async def _call(self, name: str, **kwargs: Any) -> Any:
        channel = await self._channel(False)
        try:
            return await getattr(channel, name)(**kwargs)
        except _MAPPED as exc:
            raise map_error(exc, self._url) from exc

    async def declare_exchange(self, spec: ExchangeSpec) -> None:
        if spec.name:
            await self._call(
                "exchange_declare",
                exchange=spec.name,
                exchange_type=spec.type,
                durable=spec.durable,
                auto_delete=spec.auto_delete,
                internal=spec.internal,
                arguments=to_wire_table(spec.arguments),
            )

    async def declare_queue(self, spec: QueueSpec) -> QueueInfo:
        ok = await self._call(
            "queue_declare",
            queue=spec.name,
            durable=spec.durable,
            exclusive=spec.exclusive,
            auto_delete=spec.auto_delete,
            arguments=to_wire_table(spec.arguments),
        )
        return QueueInfo(ok.queue or "", ok.message_count or 0, ok.consumer_count or 0)

    async def bind_queue(self, spec: BindingSpec) -> None:
        await self._call(
            "queue_bind",
            queue=spec.queue,
            exchange=spec.exchange,
            routing_key=spec.routing_key,
            arguments=to_wire_table(spec.arguments),
        )

    async def inspect_queue(self, name: str) -> QueueInfo:
        ok = await self._call("queue_declare", queue=name, passive=True)
        return QueueInfo(ok.queue or "", ok.message_count or 0, ok.consumer_count or 0)

    async def delete_queue(self, name: str) -> int:
        ok = await self._call("queue_delete", queue=name)
        return int(ok.message_count or 0)

    async def delete_exchange(self, name: str) -> None:
        if name:
            await self._call("exchange_delete", exchange=name)

    async def purge_queue(self, name: str) -> int:
        ok = await self._call("queue_purge", queue=name)
        return int(ok.message_count or 0)

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Properties | None = None,
        *,
        mandatory: bool = True,
    ) -> None:
        channel = await self._channel(True)
        props = to_pamqp_properties(properties)
        if properties is None:
            props = commands.Basic.Properties()  # aiormq mutates message_id in place
        try:
            result = await channel.basic_publish(
                bytes(body),
                exchange=exchange,
                routing_key=routing_key,
                properties=props,
                mandatory=mandatory,
            )
        except _MAPPED as exc:
            raise map_error(exc, self._url) from exc
        if isinstance(result, commands.Basic.Nack):
            raise PublishNacked("broker nacked the publish", url=self._url)

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
        url = self._url
        try:
            channel = await self._conn.channel(publisher_confirms=False)
        except _MAPPED as exc:
            raise map_error(exc, url) from exc
        send, receive = anyio.create_memory_object_stream[AiormqDelivery](max(prefetch, 1))
        consumer = AiormqConsumer(queue, consumer_tag or "", receive)

        async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            try:
                await send.send(AiormqDelivery(message, url))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                if not channel.is_closed:
                    await channel.basic_reject(message.delivery_tag or 0, requeue=True)

        def on_cancel(frame: Any) -> None:
            consumer.error = ConsumerCancelled(
                f"consumer on queue {queue!r} was cancelled by the server", url=url, queue=queue
            )
            send.close()

        async def watch_channel() -> None:
            try:
                await asyncio.shield(channel.closing)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - the channel's close reason, mapped below
                if consumer.error is None:
                    consumer.error = map_error(exc, url)
            else:
                if consumer.error is None:
                    consumer.error = ConnectionLost("channel closed", url=url)
            send.close()

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch_channel)
                try:
                    channel.on_consumer_cancel_callbacks.add(on_cancel)
                    await channel.basic_qos(prefetch_count=prefetch)
                    ok = await channel.basic_consume(
                        queue, on_message, arguments=to_wire_table(args), consumer_tag=consumer_tag
                    )
                    consumer.consumer_tag = ok.consumer_tag or ""
                except _MAPPED as exc:
                    raise map_error(exc, url) from exc
                try:
                    yield consumer
                finally:
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            receive.close()
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                if not channel.is_closed:
                    try:
                        await channel.close()
                    except _MAPPED:
                        pass  # already closing: the broker requeues unsettled deliveries


async def _connect_aiormq(url: str, params: AMQPParams) -> aiormq.abc.AbstractConnection:
    """The first node of ``url`` that answers, in the native client's order
    (``host_order``; nodes that failed recently last), one single-host URL each."""
    addresses = params.addresses
    failures: list[str] = []
    for address in connect_order(addresses, params.host_order, FAILURE_MEMORY.recent(addresses)):
        single = host_url(url, address) if len(addresses) > 1 else url
        try:
            with anyio.fail_after(params.connect_timeout):
                connection = await aiormq.connect(single)
        except TimeoutError:
            err: BrokerError = BrokerConnectionError(
                f"timed out connecting to {address[0]}:{address[1]}", url=params.url
            )
        except _MAPPED as exc:
            err = map_error(exc, params.url)
            if type(err) is ConnectionLost:
                err = BrokerConnectionError(
                    f"cannot connect to {address[0]}:{address[1]}: {exc!r}", url=params.url
                )
        else:
            FAILURE_MEMORY.succeeded(address)
            return connection
        if isinstance(err, AuthenticationError) or len(addresses) == 1:
            raise err from None
        FAILURE_MEMORY.failed(address)
        failures.append(str(err))
    raise BrokerConnectionError(
        f"no node of {len(addresses)} answered: " + "; ".join(failures), url=params.url
    )


@asynccontextmanager
async def open_aiormq_broker(url: str | Sequence[str]) -> AsyncIterator[AiormqBroker]:
    """Open a :class:`~relayna.transport.Broker` on aiormq.

    A URL listing several nodes is accepted like by the native client: aiormq
    is given one single-node URL per node, in ``host_order``, until one answers.

    Raises:
        UnsupportedBackendError: not running under asyncio.
        BrokerConnectionError / AuthenticationError: as for the native client.
    """
    if sniffio.current_async_library() != "asyncio":
        raise UnsupportedBackendError(
            f"the aiormq adapter runs on asyncio only, not {sniffio.current_async_library()}"
        )
    url = join_urls(url)
    params = parse_amqp_url(url)
    connection = await _connect_aiormq(url, params)
    try:
        yield AiormqBroker(connection, params.url)
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await connection.close()
