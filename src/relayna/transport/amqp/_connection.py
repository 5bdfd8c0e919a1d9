"""The anyio shell around :class:`~._core.ConnectionCore`.

``async with open_connection(url) as conn`` connects (TCP or TLS) and performs
the handshake (both in :mod:`._establish`), then runs its service tasks in a
task group it owns: the reader (bytes -> core -> events -> channels), the
writer (drains one outbound buffer, so every frame sequence appended
synchronously is written contiguously), the heartbeat and a watchdog that fails
publishes stuck behind ``connection.blocked`` for longer than
``publish_timeout``. Leaving the block sends ``connection.close`` (shielded,
bounded) and stops the tasks. A lost connection fails every waiter with
``ConnectionLost`` but never cancels the caller's code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
from pamqp import commands

from relayna.errors import (
    AuthenticationError,
    BrokerConnectionError,
    BrokerError,
    ConnectionLost,
    ProtocolError,
    PublishBlocked,
    unwrap_groups,
)
from relayna.transport.amqp import _events as ev
from relayna.transport.amqp._channel import Channel
from relayna.transport.amqp._core import NEED_DATA, ConnectionCore
from relayna.transport.amqp._establish import IO_ERRORS, READ_SIZE, connect, handshake
from relayna.transport.amqp._frames import FrameError
from relayna.transport.amqp._hosts import FAILURE_MEMORY, connect_order
from relayna.transport.amqp._url import AMQPParams, parse_amqp_url

__all__ = ["AMQPConnection", "open_connection"]

_HIGH_WATER = 1 << 20
_CLOSE_TIMEOUT = 5.0


class AMQPConnection:
    """An open AMQP connection. Create with :func:`open_connection`."""

    def __init__(self, params: AMQPParams, stream: anyio.abc.ByteStream) -> None:
        self.params = params
        self.url = params.url
        self._stream = stream
        self.core = ConnectionCore(
            username=params.username,
            password=params.password,
            vhost=params.vhost,
            heartbeat=params.heartbeat,
            frame_max=params.frame_max,
            channel_max=params.channel_max,
            connection_name=params.connection_name,
        )
        self.channels: dict[int, Channel] = {}
        self.error: BrokerError | None = None
        self.closed = anyio.Event()
        self._outbox = bytearray()
        self._outbox_ready = anyio.Event()
        self._drained = anyio.Event()
        self._unblocked = anyio.Event()
        self._unblocked.set()
        self._blocked_event = anyio.Event()
        self.blocked_reason = ""
        self.publish_blocked_total = 0
        self._services = anyio.CancelScope()
        self.server_properties: dict[str, Any] = {}

    # -- writing ------------------------------------------------------------
    def send_nowait(self, data: bytes) -> None:
        """Append bytes to the outbound buffer; atomic with respect to other senders."""
        if self.error is not None:
            raise self.error
        self._outbox += data
        if not self._outbox_ready.is_set():
            self._outbox_ready.set()

    @property
    def blocked(self) -> bool:
        """True while the server has this connection ``connection.blocked``."""
        return self.core.blocked

    def publish_blocked(self) -> PublishBlocked:
        self.publish_blocked_total += 1
        return PublishBlocked(
            f"connection blocked by the server ({self.blocked_reason or 'resource alarm'}) "
            f"for more than publish_timeout={self.params.publish_timeout:g}s",
            url=self.url,
        )

    async def wait_writable(self) -> None:
        """Backpressure: wait while the outbound buffer is above the high-water mark,
        and while the server has the connection ``blocked`` (at most
        ``publish_timeout``, then :class:`PublishBlocked`)."""
        deadline: float | None = None
        while True:
            if self.error is not None:
                raise self.error
            if self.core.blocked:
                if deadline is None:
                    deadline = anyio.current_time() + self.params.publish_timeout
                with anyio.CancelScope(deadline=deadline):
                    await self._unblocked.wait()
                if self.core.blocked and anyio.current_time() >= deadline:
                    raise self.publish_blocked()
            elif len(self._outbox) > _HIGH_WATER:
                await self._drained.wait()
            else:
                return

    async def _writer(self) -> None:
        try:
            while True:
                await self._outbox_ready.wait()
                self._outbox_ready = anyio.Event()
                while self._outbox:
                    data = bytes(self._outbox)
                    self._outbox.clear()
                    self.core.note_sent(anyio.current_time())
                    await self._stream.send(data)
                self._drained.set()
                self._drained = anyio.Event()
        except IO_ERRORS as exc:
            self.lost(ConnectionLost(f"connection lost while writing: {exc!r}", url=self.url))

    # -- reading ------------------------------------------------------------
    async def _reader(self) -> None:
        core = self.core
        try:
            while True:
                # Parse every complete frame of the chunk; deliveries go to their
                # consumer's buffer without a task switch unless it is full.
                while (event := core.next_event()) is not NEED_DATA:
                    if type(event) is ev.DeliveryReady:
                        channel = self.channels[event.channel]
                        if not channel.deliver_nowait(event):
                            await channel.on_delivery(event)
                    else:
                        self._dispatch(event)
                out = core.data_to_send()
                if out:
                    self.send_nowait(out)
                data = await self._stream.receive(READ_SIZE)
                core.receive_data(data, anyio.current_time())
        except FrameError as exc:
            self.lost(ProtocolError(f"protocol error from the server: {exc}", url=self.url))
        except IO_ERRORS as exc:
            self.lost(ConnectionLost(f"connection lost: {exc!r}", url=self.url))

    def _dispatch(self, event: ev.Event) -> None:
        if isinstance(event, ev.Confirmed):
            self.channels[event.channel].on_confirm(event)
        elif isinstance(event, ev.MethodReply):
            self.channels[event.channel].on_reply(event.method)
        elif isinstance(event, ev.ChannelClosedByPeer):
            channel = self.channels.pop(event.channel, None)
            self.core.release_channel(event.channel)
            if channel is not None:
                channel.on_closed_by_peer(event.reply_code, event.reply_text)
        elif isinstance(event, ev.ConsumerCancelledByPeer):
            self.channels[event.channel].on_consumer_cancelled(event.consumer_tag)
        elif isinstance(event, ev.ConnectionClosedByPeer):
            out = self.core.data_to_send()
            if out:
                self._outbox += out
            self.lost(
                ConnectionLost(
                    f"connection closed by the server: {event.reply_code} {event.reply_text}",
                    url=self.url,
                    reply_code=event.reply_code,
                    reply_text=event.reply_text,
                )
            )
        elif isinstance(event, ev.ConnectionCloseOk):
            self.closed.set()
        elif isinstance(event, ev.Blocked):
            self.blocked_reason = event.reason or ""
            if self._unblocked.is_set():  # a second alarm keeps the same wait
                self._unblocked = anyio.Event()
                self._blocked_event.set()
                # Publishers waiting for the buffer to drain (it will not while the
                # server reads nothing) re-check and wait with their deadline.
                drained, self._drained = self._drained, anyio.Event()
                drained.set()
        elif isinstance(event, ev.Unblocked):
            self._unblocked.set()

    async def _block_watchdog(self) -> None:
        """Fail publishes awaiting a confirm once a block outlives ``publish_timeout``
        (the server stopped reading them; they may still be enqueued later)."""
        while True:
            await self._blocked_event.wait()
            self._blocked_event = anyio.Event()
            unblocked = self._unblocked
            with anyio.move_on_after(self.params.publish_timeout):
                await unblocked.wait()
            if not unblocked.is_set():
                for channel in list(self.channels.values()):
                    channel.fail_confirms(self.publish_blocked)

    async def _heartbeat(self) -> None:
        interval = max(self.core.heartbeat / 4, 0.05)
        while True:
            await anyio.sleep(interval)
            now = anyio.current_time()
            action = self.core.heartbeat_check(now)
            if action == "send":
                self.send_nowait(self.core.heartbeat_frame(now))
            elif action == "dead":
                self.lost(
                    ConnectionLost(
                        f"missed heartbeats from the server ({self.core.heartbeat}s)", url=self.url
                    )
                )
                return

    async def _run_services(self) -> None:
        with self._services:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._reader)
                tg.start_soon(self._writer)
                tg.start_soon(self._block_watchdog)
                if self.core.heartbeat:
                    tg.start_soon(self._heartbeat)

    def lost(self, error: BrokerError) -> None:
        """Mark the connection dead: fail every waiter and stop the service tasks."""
        if self.error is not None:
            return
        self.error = error
        for channel in list(self.channels.values()):
            channel.on_connection_lost(error)
        self.channels.clear()
        self._unblocked.set()
        self._drained.set()
        self.closed.set()
        self._services.cancel()

    def statistics(self) -> dict[str, int]:
        """Gauges/counters; ``blocked`` feeds ``relayna_connection_blocked``."""
        return {
            "blocked": int(self.core.blocked),
            "publish_blocked_total": self.publish_blocked_total,
            "channels": len(self.channels),
            "outbound_bytes": len(self._outbox),
        }

    # -- channels -----------------------------------------------------------
    async def open_channel(self) -> Channel:
        """Open a channel; close it with :meth:`Channel.aclose` (or use :meth:`channel`)."""
        if self.error is not None:
            raise self.error
        core, data = self.core.open_channel()
        channel = Channel(self, core)
        self.channels[core.id] = channel
        await channel.rpc_encoded(data)
        return channel

    @asynccontextmanager
    async def channel(self) -> AsyncIterator[Channel]:
        channel = await self.open_channel()
        try:
            yield channel
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
                await channel.aclose()

    def forget_channel(self, channel_id: int) -> None:
        self.channels.pop(channel_id, None)
        self.core.release_channel(channel_id)

    # -- lifecycle ----------------------------------------------------------
    async def handshake(self) -> None:
        """Run the AMQP handshake on the bare stream (see :func:`._establish.handshake`)."""
        self.server_properties = await handshake(self._stream, self.core, self.url)

    async def aclose(self) -> None:
        """Close gracefully (``connection.close`` + wait for close-ok, bounded)."""
        if self.error is None and not self.closed.is_set():
            with anyio.move_on_after(_CLOSE_TIMEOUT):
                try:
                    self.send_nowait(
                        self.core.send_method(
                            0,
                            commands.Connection.Close(
                                reply_code=200,
                                reply_text="Normal shutdown",
                                class_id=0,
                                method_id=0,
                            ),
                        )
                    )
                    await self.closed.wait()
                except BrokerError:
                    pass  # already lost: nothing left to close
        self._services.cancel()


async def _establish(params: AMQPParams) -> tuple[AMQPConnection, anyio.abc.ByteStream]:
    """Connect to one node and run the handshake; the stream is closed on failure."""
    stream = await connect(params)
    conn = AMQPConnection(params, stream)
    try:
        try:
            with anyio.fail_after(params.connect_timeout):
                await conn.handshake()
        except TimeoutError:
            raise BrokerConnectionError(
                f"timed out during the AMQP handshake with {params.host}:{params.port}",
                url=params.url,
            ) from None
        except IO_ERRORS as exc:
            raise BrokerConnectionError(
                f"handshake with {params.host}:{params.port} failed: {exc!r}", url=params.url
            ) from None
    except BaseException:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
        raise
    return conn, stream


async def _establish_any(params: AMQPParams) -> tuple[AMQPConnection, anyio.abc.ByteStream]:
    """The first node of the URL that answers (see :func:`._hosts.connect_order`).

    A refused credential (:class:`AuthenticationError`) or a protocol error
    stops the search: the nodes of one cluster share users and speak the same
    protocol. Otherwise every node is tried once.
    """
    addresses = params.addresses
    order = connect_order(addresses, params.host_order, FAILURE_MEMORY.recent(addresses))
    failures: list[str] = []
    for address in order:
        try:
            established = await _establish(params.for_host(address))
        except (AuthenticationError, ProtocolError):
            raise
        except BrokerConnectionError as exc:
            FAILURE_MEMORY.failed(address)
            if len(addresses) == 1:
                raise
            failures.append(str(exc))
            continue
        FAILURE_MEMORY.succeeded(address)
        return established
    raise BrokerConnectionError(
        f"no node of {len(addresses)} answered: " + "; ".join(failures), url=params.url
    )


@asynccontextmanager
async def open_connection(url: str | AMQPParams) -> AsyncIterator[AMQPConnection]:
    """Connect to an AMQP 0-9-1 broker: the first node that answers when the
    URL lists several (``host_order``: ``ordered`` or ``shuffle``; nodes that
    failed recently are tried last).

    Raises:
        ConfigurationError: a bad URL.
        BrokerConnectionError: refused, DNS/TLS failure, handshake timeout, unknown
            vhost (on every node of the list).
        AuthenticationError: wrong credentials.
        ProtocolError: the peer does not speak AMQP 0-9-1.

    Cancellation / resources: the reader, writer and heartbeat tasks live in a
    task group owned by this context manager; leaving it closes the connection.
    A connection lost to anything but its own closing marks its node as failed,
    so the supervisor's next attempt starts at the next node.
    """
    params = url if isinstance(url, AMQPParams) else parse_amqp_url(url)
    conn, stream = await _establish_any(params)
    try:
        with unwrap_groups():
            async with anyio.create_task_group() as tg:
                tg.start_soon(conn._run_services)
                try:
                    yield conn
                finally:
                    if isinstance(conn.error, ConnectionLost):
                        FAILURE_MEMORY.failed((conn.params.host, conn.params.port))
                    with anyio.CancelScope(shield=True):
                        await conn.aclose()
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
