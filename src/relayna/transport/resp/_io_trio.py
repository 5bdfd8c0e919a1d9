"""The RESP connection's byte stream on trio: the socket itself, non-blocking.

Backend adapter (trio only; ``_connect`` picks it on trio for TCP and unix
sockets, TLS keeps anyio's stream). anyio's trio stream goes through
anyio's wrapper and ``trio.SocketStream``, and each send ends with a
scheduler round trip (trio's ``cancel_shielded_checkpoint``). Here a send
writes straight into the socket and waits (``wait_writable``) only when the
kernel's buffer is full; a receive reads what is there and waits
(``wait_readable``) only when nothing is. A send is then not a checkpoint:
the connection above has its own (it checks for cancellation before queueing
a command, and a caller waiting for its reply always blocks). A receive that
found bytes without waiting still yields once (never raising cancellation:
the bytes are read), so a reader fed faster than it reads, such as a pubsub
connection during a flood, cannot starve the tasks consuming what it reads.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import anyio.abc
import trio

__all__ = ["SocketStream", "open_trio_stream"]


async def _wait(
    wait: Callable[[socket.socket], Awaitable[None]], sock: socket.socket, what: str
) -> None:
    """``wait`` for the socket, trio's resource errors as anyio's."""
    try:
        await wait(sock)
    except trio.ClosedResourceError:
        raise anyio.ClosedResourceError from None
    except trio.BusyResourceError:
        raise anyio.BusyResourceError(what) from None


class SocketStream(anyio.abc.ByteStream):
    """An :class:`anyio.abc.ByteStream` over a connected trio socket (see module docs)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._closed = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        sock = self._sock
        waited = False
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            try:
                data = sock.recv(max_bytes)
            except BlockingIOError:
                pass
            except OSError as exc:
                raise anyio.BrokenResourceError(repr(exc)) from exc
            else:
                if not data:
                    raise anyio.EndOfStream
                if not waited:
                    # Bytes were already there: yield once anyway, or a reader that
                    # keeps finding bytes (a pubsub flood) never lets the tasks it
                    # feeds run. Shielded: the bytes are read, they must not be lost.
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return data
            await _wait(trio.lowlevel.wait_readable, sock, "receiving")
            waited = True

    async def send(self, item: bytes) -> None:
        sock = self._sock
        view = memoryview(item)
        while view:
            if self._closed:
                raise anyio.ClosedResourceError
            try:
                view = view[sock.send(view) :]
                continue
            except BlockingIOError:
                pass
            except OSError as exc:
                raise anyio.BrokenResourceError(repr(exc)) from exc
            await _wait(trio.lowlevel.wait_writable, sock, "sending")

    async def send_eof(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise anyio.BrokenResourceError(repr(exc)) from exc

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self._sock)  # waiting tasks get ClosedResourceError
            self._sock.close()
        await trio.lowlevel.checkpoint()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        sock = self._sock
        return {anyio.abc.SocketAttribute.raw_socket: lambda: sock}


async def open_trio_stream(host: str | None, port: int, path: str | None) -> SocketStream:
    """Connect over TCP (``host:port``, ``TCP_NODELAY``) or a unix socket (``path``).

    Raises:
        OSError: refused or unreachable.
    """
    if path is not None:
        stream = await trio.open_unix_socket(path)
    else:
        assert host is not None
        stream = await trio.open_tcp_stream(host, port)  # sets TCP_NODELAY
    # The descriptor moves to a plain socket this stream owns (trio's own
    # wrapper would add a checkpoint to every send).
    tsock = stream.socket
    return SocketStream(socket.socket(tsock.family, tsock.type, tsock.proto, tsock.detach()))
