"""One Redis connection and the pool of them, on anyio.

A command connection is used by one caller at a time: the caller writes its
commands and reads their replies itself (no reader task, no hand-over), so a
round trip costs the socket's wake-up and nothing else. A caller cancelled
or failing between writing and the last reply leaves the connection out of
step with the server: it is closed, never returned to the pool.

The pool hands out an idle connection (after a non-blocking peek shows the
server has not closed it while it sat idle) or opens a new one, up to
``max_connections``; callers beyond that wait for one to come back.
"""

from __future__ import annotations

import select
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc

from relayna.errors import (
    ConfigurationError,
    StoreAuthenticationError,
    StoreConnectionError,
    StoreConnectionLost,
)
from relayna.transport.resp._protocol import NEED_DATA, ErrorReply, ReplyParser, encode_command
from relayna.transport.resp._url import RespParams

__all__ = ["IO_ERRORS", "ConnectionPool", "RespConnection", "open_connection"]

READ_SIZE = 1 << 16
_poll = getattr(select, "poll", None)  # not on Windows: idle connections are then not checked
IO_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class RespConnection:
    """A connected, authenticated stream plus its reply parser."""

    def __init__(self, stream: anyio.abc.ByteStream, params: RespParams) -> None:
        self.stream = stream
        self.params = params
        self.parser = ReplyParser()
        self.broken = False

    async def send(self, data: bytes) -> None:
        try:
            await self.stream.send(data)
        except IO_ERRORS as exc:
            self.broken = True
            raise StoreConnectionLost(
                f"Redis connection lost: {exc!r}", url=self.params.url
            ) from None

    async def read_reply(self) -> Any:
        """The next reply (an :class:`ErrorReply` is returned, not raised).

        Raises:
            StoreConnectionLost: closed by the server, or not RESP.
        """
        parser = self.parser
        while True:
            try:
                reply = parser.next_reply()
            except StoreConnectionLost:
                self.broken = True
                raise
            if reply is not NEED_DATA:
                return reply
            try:
                data = await self.stream.receive(READ_SIZE)
            except IO_ERRORS as exc:
                self.broken = True
                what = "closed the connection" if isinstance(exc, anyio.EndOfStream) else repr(exc)
                raise StoreConnectionLost(f"Redis {what}", url=self.params.url) from None
            parser.feed(data)

    async def roundtrip(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send ``commands`` in one write and read one reply each, in order."""
        done = False
        try:
            await self.send(b"".join([encode_command(c) for c in commands]))
            replies = [await self.read_reply() for _ in commands]
            done = True
            return replies
        finally:
            if not done:  # cancelled or failed mid-exchange: out of step
                self.broken = True

    def closed_by_peer(self) -> bool:
        """True when the server closed (or wrote unasked to) this idle connection."""
        if self.parser.buffered:
            return True
        raw = self.stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        if raw is None or _poll is None:
            return False
        fd = raw.fileno()
        if fd < 0:
            return True
        poller = _poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))  # readable while idle: EOF, reset or unasked bytes

    async def aclose(self) -> None:
        self.broken = True
        await anyio.aclose_forcefully(self.stream)


def _ssl_context(params: RespParams) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=params.cafile)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot load ssl_ca_certs={params.cafile!r}: {exc} in {params.url}"
        ) from None
    if not params.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def _connect_stream(params: RespParams) -> anyio.abc.ByteStream:
    where = params.path or f"{params.host}:{params.port}"
    try:
        with anyio.fail_after(params.connect_timeout):
            if params.path is not None:
                return await anyio.connect_unix(params.path)
            if params.tls:
                return await anyio.connect_tcp(
                    params.host,
                    params.port,
                    ssl_context=_ssl_context(params),
                    tls_standard_compatible=False,
                )
            return await anyio.connect_tcp(params.host, params.port)
    except TimeoutError:
        raise StoreConnectionError(
            f"cannot connect to Redis at {where}: no answer within {params.connect_timeout:g}s",
            url=params.url,
        ) from None
    except (OSError, ssl.SSLError) as exc:
        raise StoreConnectionError(
            f"cannot connect to Redis at {where}: {exc}", url=params.url
        ) from None


def _handshake(params: RespParams) -> list[tuple[Any, ...]]:
    commands: list[tuple[Any, ...]] = []
    if params.password is not None:
        if params.username:
            commands.append((b"AUTH", params.username, params.password))
        else:
            commands.append((b"AUTH", params.password))
    if params.db:
        commands.append((b"SELECT", params.db))
    return commands


async def open_connection(params: RespParams) -> RespConnection:
    """Connect, AUTH and SELECT, within ``connect_timeout``.

    Raises:
        StoreConnectionError: unreachable, refused, TLS failure, no answer.
        StoreAuthenticationError: the server refused the credentials.
    """
    conn = RespConnection(await _connect_stream(params), params)
    commands = _handshake(params)
    if not commands:
        return conn
    try:
        with anyio.fail_after(params.connect_timeout):
            replies = await conn.roundtrip(commands)
    except BaseException as exc:
        await conn.aclose()
        if isinstance(exc, TimeoutError):
            raise StoreConnectionError(
                "Redis accepted the connection but did not answer AUTH/SELECT", url=params.url
            ) from None
        raise
    for command, reply in zip(commands, replies, strict=True):
        if isinstance(reply, ErrorReply):
            await conn.aclose()
            if command[0] == b"AUTH":
                raise StoreAuthenticationError(
                    f"Redis refused the credentials: {reply.message}", url=params.url
                )
            raise StoreConnectionError(
                f"Redis refused SELECT {params.db}: {reply.message}", url=params.url
            )
    return conn


class ConnectionPool:
    """Up to ``max_connections`` command connections, each used by one caller at a time."""

    def __init__(self, params: RespParams) -> None:
        self.params = params
        self._idle: list[RespConnection] = []
        self._slots = anyio.Semaphore(params.max_connections)
        self._closed = False

    @property
    def idle(self) -> int:
        return len(self._idle)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[RespConnection]:
        try:
            self._slots.acquire_nowait()
        except anyio.WouldBlock:
            await self._slots.acquire()
        try:
            conn = await self._take()
            try:
                yield conn
            finally:
                if conn.broken or self._closed:
                    with anyio.CancelScope(shield=True):
                        await conn.aclose()
                else:
                    self._idle.append(conn)
        finally:
            self._slots.release()

    async def _take(self) -> RespConnection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed_by_peer():
                return conn
            await conn.aclose()
        if self._closed:
            raise StoreConnectionError("the store was closed", url=self.params.url)
        return await open_connection(self.params)

    async def roundtrip(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """One round trip on a pooled connection, bounded by ``stream_timeout``.

        Raises:
            StoreConnectionLost: the connection dropped (or timed out) mid-exchange.
            StoreConnectionError: no connection could be opened.
        """
        async with self.connection() as conn:
            timeout = self.params.stream_timeout
            if timeout is None:
                return await conn.roundtrip(commands)
            with anyio.move_on_after(timeout):
                return await conn.roundtrip(commands)
            raise StoreConnectionLost(
                f"Redis did not answer within stream_timeout={timeout:g}s", url=self.params.url
            )

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        with anyio.CancelScope(shield=True):
            for conn in idle:
                await conn.aclose()
