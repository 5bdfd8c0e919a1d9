"""The sans-IO AMQP 0-9-1 connection: bytes in, events out, bytes to send.

Theory of operation
-------------------
:class:`ConnectionCore` knows nothing about sockets or event loops (compare
h11's ``Connection``). The I/O shell

1. calls :meth:`ConnectionCore.initiate` and writes the protocol header,
2. feeds every chunk it reads to :meth:`receive_data`, then drains
   :meth:`next_event` until it returns :data:`NEED_DATA`,
3. writes whatever :meth:`data_to_send` returns (automatic replies such as
   ``start-ok``, ``tune-ok``, ``close-ok``, heartbeats),
4. encodes its own requests with :meth:`send_method` / :meth:`send_publish`,
5. asks :meth:`heartbeat_check` periodically with the current time.

Connection states::

    AWAIT_START --start/start-ok--> AWAIT_TUNE --tune/tune-ok+open--> AWAIT_OPEN_OK
        --open-ok--> OPEN --close (either side)--> CLOSING --close-ok--> CLOSED

A ``connection.close`` from the server in any state moves to CLOSED (the
close-ok is queued) and is reported as :class:`ConnectionClosedByPeer` with
``during_handshake`` telling an authentication/vhost refusal from a later
close. Frames on channel N>0 are routed to that channel's
:class:`~._channel_core.ChannelCore`. Frames that break the protocol raise
:class:`~._frames.FrameError`; the shell then drops the connection.

Heartbeats: any frame received refreshes the receive clock; a heartbeat is
due when nothing was sent for ``heartbeat / 2`` seconds; the peer is dead when
nothing arrived for ``2 * heartbeat`` seconds.
"""

from __future__ import annotations

import enum
import platform
from collections import deque
from typing import Any, Final, Literal

from pamqp import commands, header
from pamqp.base import Frame as MethodFrame

from relayna.transport.amqp._channel_core import ChannelCore, ChannelState
from relayna.transport.amqp._events import (
    Blocked,
    ConnectionClosedByPeer,
    ConnectionCloseOk,
    Event,
    HandshakeComplete,
    MethodReply,
    Unblocked,
)
from relayna.transport.amqp._fastcodec import encode_publish
from relayna.transport.amqp._frames import (
    FRAME_BODY,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    HEARTBEAT_BYTES,
    NEED_DATA,
    PROTOCOL_HEADER,
    FrameError,
    FrameReader,
    NeedData,
    encode_content,
    encode_method,
)

__all__ = ["ConnState", "ConnectionCore", "NEED_DATA", "client_properties"]

CAPABILITIES: Final = {
    "publisher_confirms": True,
    "consumer_cancel_notify": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
}


def client_properties(connection_name: str | None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "product": "relayna",
        "platform": f"Python {platform.python_version()}",
        "capabilities": dict(CAPABILITIES),
        "information": "relayna native AMQP client (anyio)",
    }
    if connection_name:
        props["connection_name"] = connection_name
    return props


class ConnState(enum.Enum):
    AWAIT_START = "AWAIT_START"
    AWAIT_TUNE = "AWAIT_TUNE"
    AWAIT_OPEN_OK = "AWAIT_OPEN_OK"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"


def _negotiate(client: int, server: int) -> int:
    """0 means "no limit" on either side."""
    if client == 0 or server == 0:
        return max(client, server)
    return min(client, server)


class ConnectionCore:
    def __init__(
        self,
        *,
        username: str,
        password: str,
        vhost: str = "/",
        heartbeat: int = 60,
        frame_max: int = 131072,
        channel_max: int = 2047,
        connection_name: str | None = None,
    ) -> None:
        self.state = ConnState.AWAIT_START
        self._username = username
        self._password = password
        self._vhost = vhost
        self.heartbeat = heartbeat
        self.frame_max = frame_max
        self.channel_max = channel_max
        self._connection_name = connection_name
        self._reader = FrameReader(frame_max=max(frame_max, 131072) if frame_max else 0)
        self._outbound = bytearray()
        self._events: deque[Event] = deque()
        self.channels: dict[int, ChannelCore] = {}
        self.server_properties: dict[str, Any] = {}
        self.blocked = False
        self._last_received = 0.0
        self._last_sent = 0.0
        self._publish_cache: dict[tuple[int, str, str, bool], bytes] = {}

    # -- output -------------------------------------------------------------
    def initiate(self, now: float = 0.0) -> bytes:
        self._last_received = self._last_sent = now
        return PROTOCOL_HEADER

    def data_to_send(self) -> bytes:
        data = bytes(self._outbound)
        self._outbound.clear()
        return data

    def _queue(self, channel: int, method: MethodFrame) -> None:
        self._outbound += encode_method(channel, method)

    def note_sent(self, now: float) -> None:
        self._last_sent = now

    def send_method(self, channel: int, method: MethodFrame) -> bytes:
        if self.state is ConnState.CLOSED:
            raise RuntimeError("connection is closed")
        if isinstance(method, commands.Connection.Close):
            self.state = ConnState.CLOSING
        elif isinstance(method, commands.Channel.Close) and channel in self.channels:
            self.channels[channel].state = ChannelState.CLOSING
        return encode_method(channel, method)

    def send_publish(
        self,
        channel: int,
        exchange: str,
        routing_key: str,
        mandatory: bool,
        properties: commands.Basic.Properties,
        body: bytes,
    ) -> tuple[int, bytes]:
        """Encode a publish (method + header + body frames split at frame-max).

        Returns the delivery tag (0 when the channel is not in confirm mode) and
        the bytes, which the shell must write contiguously.
        """
        ch = self.channels[channel]
        key = (channel, exchange, routing_key, mandatory)
        method_bytes = self._publish_cache.get(key)
        if method_bytes is None:
            if len(self._publish_cache) > 1024:
                self._publish_cache.clear()
            method_bytes = encode_publish(channel, exchange, routing_key, mandatory)
            if method_bytes is None:  # pamqp validates (and raises)
                method_bytes = encode_method(
                    channel,
                    commands.Basic.Publish(
                        exchange=exchange, routing_key=routing_key, mandatory=mandatory
                    ),
                )
            self._publish_cache[key] = method_bytes
        tag = ch.register_publish(exchange, routing_key, body)
        return tag, encode_content(
            channel, None, properties, body, self.frame_max, method_bytes=method_bytes
        )

    # -- channels -----------------------------------------------------------
    def open_channel(self) -> tuple[ChannelCore, bytes]:
        limit = self.channel_max or 65535
        for cid in range(1, limit + 1):
            if cid not in self.channels:
                break
        else:
            raise RuntimeError(f"no free channel (channel-max {limit})")
        ch = ChannelCore(cid)
        self.channels[cid] = ch
        return ch, encode_method(cid, commands.Channel.Open())

    def release_channel(self, channel: int) -> None:
        self.channels.pop(channel, None)
        for key in [k for k in self._publish_cache if k[0] == channel]:
            del self._publish_cache[key]

    # -- input --------------------------------------------------------------
    def receive_data(self, data: bytes, now: float = 0.0) -> None:
        self._reader.feed(data)
        self._last_received = now

    def next_event(self) -> Event | NeedData:
        while not self._events:
            frame = self._reader.next_frame()
            if frame is NEED_DATA:
                return NEED_DATA
            ftype, channel, payload = frame
            if ftype == FRAME_HEARTBEAT:
                continue
            if channel == 0:
                if ftype != FRAME_METHOD or not isinstance(payload, MethodFrame):
                    raise FrameError("content frame on channel 0")
                self._handle_connection_method(payload)
                continue
            ch = self.channels.get(channel)
            if ch is None or ch.state is ChannelState.CLOSED:
                if isinstance(payload, commands.Channel.CloseOk):
                    continue
                if ch is None:
                    raise FrameError(f"frame for unknown channel {channel}")
                continue  # late frames on a channel we consider closed
            if ftype == FRAME_METHOD:
                assert isinstance(payload, MethodFrame)
                events = ch.handle_method(payload)
            elif ftype == FRAME_HEADER:
                assert isinstance(payload, header.ContentHeader)
                events = ch.handle_header(payload)
            elif ftype == FRAME_BODY:
                assert isinstance(payload, bytes)
                events = ch.handle_body(payload)
            else:  # pragma: no cover - FrameReader filters types
                raise FrameError(f"unexpected frame type {ftype}")
            if ch.outbound:
                for reply in ch.outbound:
                    self._queue(channel, reply)
                ch.outbound.clear()
            self._events.extend(events)
        return self._events.popleft()

    def _handle_connection_method(self, method: MethodFrame) -> None:
        if isinstance(method, commands.Connection.Close):
            during = self.state not in (ConnState.OPEN, ConnState.CLOSING)
            self._queue(0, commands.Connection.CloseOk())
            self.state = ConnState.CLOSED
            self._events.append(
                ConnectionClosedByPeer(method.reply_code or 0, method.reply_text or "", during)
            )
        elif isinstance(method, commands.Connection.CloseOk):
            self.state = ConnState.CLOSED
            self._events.append(ConnectionCloseOk())
        elif isinstance(method, commands.Connection.Blocked):
            self.blocked = True
            self._events.append(Blocked(method.reason))
        elif isinstance(method, commands.Connection.Unblocked):
            self.blocked = False
            self._events.append(Unblocked())
        elif self.state is ConnState.AWAIT_START and isinstance(method, commands.Connection.Start):
            mechanisms = method.mechanisms.split()
            if "PLAIN" not in mechanisms:
                raise FrameError(f"server does not offer PLAIN auth ({method.mechanisms})")
            self.server_properties = dict(method.server_properties or {})
            self._queue(
                0,
                commands.Connection.StartOk(
                    client_properties=client_properties(self._connection_name),
                    mechanism="PLAIN",
                    response=f"\0{self._username}\0{self._password}",
                    locale="en_US",
                ),
            )
            self.state = ConnState.AWAIT_TUNE
        elif self.state is ConnState.AWAIT_TUNE and isinstance(method, commands.Connection.Tune):
            self.channel_max = _negotiate(self.channel_max, method.channel_max)
            self.frame_max = _negotiate(self.frame_max, method.frame_max)
            self.heartbeat = _negotiate(self.heartbeat, method.heartbeat) if self.heartbeat else 0
            self._reader.frame_max = self.frame_max
            self._queue(
                0,
                commands.Connection.TuneOk(
                    channel_max=self.channel_max, frame_max=self.frame_max, heartbeat=self.heartbeat
                ),
            )
            self._queue(0, commands.Connection.Open(virtual_host=self._vhost))
            self.state = ConnState.AWAIT_OPEN_OK
        elif self.state is ConnState.AWAIT_OPEN_OK and isinstance(
            method, commands.Connection.OpenOk
        ):
            self.state = ConnState.OPEN
            self._events.append(
                HandshakeComplete(
                    self.channel_max, self.frame_max, self.heartbeat, self.server_properties
                )
            )
        elif isinstance(method, commands.Connection.UpdateSecretOk):
            self._events.append(MethodReply(0, method))
        else:
            raise FrameError(f"unexpected {method.name} in state {self.state.name}")

    # -- heartbeats ---------------------------------------------------------
    def heartbeat_check(self, now: float) -> Literal["ok", "send", "dead"]:
        """What the shell should do now about heartbeats."""
        if not self.heartbeat or self.state is not ConnState.OPEN:
            return "ok"
        if now - self._last_received > 2 * self.heartbeat:
            return "dead"
        if now - self._last_sent >= self.heartbeat / 2:
            return "send"
        return "ok"

    def heartbeat_frame(self, now: float) -> bytes:
        self._last_sent = now
        return HEARTBEAT_BYTES
