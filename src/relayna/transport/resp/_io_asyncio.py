"""The RESP connection's byte stream on asyncio: a ``Protocol``, read always on.

Backend adapter (asyncio only; ``_connect`` picks it on asyncio for TCP and
unix sockets, TLS keeps anyio's stream). anyio's asyncio socket stream pauses
the transport's reading after each receive and resumes it before the next
(two ``epoll_ctl`` calls per round trip) and yields to the loop on every
send; at one round trip per store step that was a large part of the
client's CPU. Here the protocol keeps reading (pausing only past
:data:`HIGH_WATER` unread bytes), ``data_received`` wakes the one waiting
receiver, and ``send`` hands the bytes to the transport and waits only when
its buffer is full. The replies are parsed by the same sans-IO parser, and
the connection above sees an ordinary :class:`anyio.abc.ByteStream`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

__all__ = ["HIGH_WATER", "ProtocolStream", "open_asyncio_stream"]

HIGH_WATER = 1 << 20  # unread bytes at which reading pauses until the reader catches up


class _ReadProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: list[bytes] = []
        self.unread = 0
        self.paused_reading = False
        self.eof = False
        self.lost: Exception | None = None
        self.closed = False  # connection_lost was called
        self.waiter: asyncio.Future[None] | None = None  # a receiver waiting for bytes
        self.drained: asyncio.Future[None] | None = None  # a sender waiting for room

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.unread += len(data)
        if self.unread >= HIGH_WATER and not self.paused_reading and self.transport is not None:
            self.paused_reading = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = exc
        self._wake()
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def pause_writing(self) -> None:
        if self.drained is None:
            self.drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)


class ProtocolStream(anyio.abc.ByteStream):
    """An :class:`anyio.abc.ByteStream` over :class:`_ReadProtocol` (see module docs)."""

    def __init__(self, transport: asyncio.Transport, protocol: _ReadProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._closed = False  # closed by us

    def _check_open(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if self._protocol.closed:
            lost = self._protocol.lost
            raise anyio.BrokenResourceError(repr(lost) if lost else "connection closed")

    async def receive(self, max_bytes: int = 65536) -> bytes:
        protocol = self._protocol
        if not protocol.chunks:
            self._check_open()
            if protocol.eof:
                raise anyio.EndOfStream
            if protocol.waiter is not None:
                raise anyio.BusyResourceError("receiving")
            waiter = protocol.waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                protocol.waiter = None
            if not protocol.chunks:
                self._check_open()
                raise anyio.EndOfStream
        chunks = protocol.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        if len(data) > max_bytes:
            chunks.append(data[max_bytes:])
            data = data[:max_bytes]
        protocol.unread -= len(data)
        if protocol.paused_reading and protocol.unread < HIGH_WATER // 2:
            protocol.paused_reading = False
            self._transport.resume_reading()
        return data

    async def send(self, item: bytes) -> None:
        self._check_open()
        self._transport.write(item)
        drained = self._protocol.drained
        if drained is not None:  # the transport's buffer is above its high-water mark
            await asyncio.shield(drained)
            self._check_open()

    async def send_eof(self) -> None:
        self._check_open()
        self._transport.write_eof()

    def peer_closed(self) -> bool:
        """The server closed, or sent bytes nobody asked for (checked while idle)."""
        protocol = self._protocol
        return protocol.closed or protocol.eof or bool(protocol.chunks)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._transport.close()
        await anyio.lowlevel.checkpoint()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        sock = self._transport.get_extra_info("socket")
        return {anyio.abc.SocketAttribute.raw_socket: lambda: sock}


async def open_asyncio_stream(host: str | None, port: int, path: str | None) -> ProtocolStream:
    """Connect over TCP (``host:port``) or a unix socket (``path``).

    Raises:
        OSError: refused or unreachable.
    """
    loop = asyncio.get_running_loop()
    if path is not None:
        transport, protocol = await loop.create_unix_connection(_ReadProtocol, path)
    else:
        assert host is not None
        transport, protocol = await loop.create_connection(_ReadProtocol, host, port)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert isinstance(transport, asyncio.Transport)
    return ProtocolStream(transport, protocol)
