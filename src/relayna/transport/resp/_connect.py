"""Opening connections (TCP, TLS, unix; AUTH, SELECT) and the store's shared one.

:class:`SharedConnection` keeps the store's one command connection: opened on
first use, replaced after it broke, and, while idle, checked with a
non-blocking poll before use so that a connection the server closed meanwhile
(restart, ``CLIENT KILL``, idle timeout) is replaced before a write is sent
on it instead of failing that write.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Sequence
from typing import Any, TypeGuard

import anyio
import anyio.abc
import sniffio

from relayna.errors import (
    ConfigurationError,
    StoreAuthenticationError,
    StoreConnectionError,
    StoreConnectionLost,
)
from relayna.transport.resp._connection import RespConnection
from relayna.transport.resp._protocol import ErrorReply
from relayna.transport.resp._url import RespParams

__all__ = ["SharedConnection", "open_connection"]


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


async def _open_plain(params: RespParams) -> anyio.abc.ByteStream | None:
    """A stream on the running backend's own sockets (see ``_io_asyncio``,
    ``_io_trio``); None on another backend."""
    library = sniffio.current_async_library()
    if library == "asyncio":
        from relayna.transport.resp._io_asyncio import open_asyncio_stream

        return await open_asyncio_stream(params.host, params.port, params.path)
    if library == "trio":
        from relayna.transport.resp._io_trio import open_trio_stream

        return await open_trio_stream(params.host, params.port, params.path)
    return None


async def _connect_stream(params: RespParams) -> anyio.abc.ByteStream:
    where = params.path or f"{params.host}:{params.port}"
    context = _ssl_context(params) if params.tls else None
    try:
        with anyio.fail_after(params.connect_timeout):
            if context is None and (stream := await _open_plain(params)) is not None:
                return stream
            if params.path is not None:
                return await anyio.connect_unix(params.path)
            if context is not None:
                return await anyio.connect_tcp(
                    params.host, params.port, ssl_context=context, tls_standard_compatible=False
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
        ConfigurationError: the ``ssl_ca_certs`` file cannot be loaded.
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
        with anyio.CancelScope(shield=True):
            await conn.aclose()
        if isinstance(exc, TimeoutError):
            raise StoreConnectionError(
                "Redis accepted the connection but did not answer AUTH/SELECT", url=params.url
            ) from None
        raise
    for command, reply in zip(commands, replies, strict=True):
        if isinstance(reply, ErrorReply):
            with anyio.CancelScope(shield=True):
                await conn.aclose()
            if command[0] == b"AUTH":
                raise StoreAuthenticationError(
                    f"Redis refused the credentials: {reply.message}", url=params.url
                )
            raise StoreConnectionError(
                f"Redis refused SELECT {params.db}: {reply.message}", url=params.url
            )
    return conn


class SharedConnection:
    """The store's command connection (see module docs)."""

    def __init__(self, params: RespParams) -> None:
        self.params = params
        self.current: RespConnection | None = None
        self._opening = anyio.Lock()
        self._closed = False
        self._watched = False  # run() enforces stream_timeout

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Enforce ``stream_timeout`` for every caller, while this runs.

        Once the oldest command still waiting for its reply has waited
        ``stream_timeout``, the connection fails (every caller queued on it
        gets :class:`StoreConnectionLost` at that moment) and is closed, as
        :meth:`roundtrip` does on its own. One sleeping task instead of a
        cancel scope per round trip, which cost as much CPU as the parsing
        of the reply.
        """
        timeout = self.params.stream_timeout
        if timeout is None:
            raise ValueError("run() needs a stream_timeout")
        self._watched = True
        task_status.started()
        try:
            while True:
                conn = self.current
                since = conn.oldest_since() if conn is not None and not conn.broken else None
                now = time.monotonic()
                if conn is not None and since is not None and now - since >= timeout:
                    await self._time_out(conn, timeout)
                    continue
                await anyio.sleep(timeout if since is None else since + timeout - now)
        finally:
            self._watched = False

    async def _time_out(self, conn: RespConnection, limit: float) -> StoreConnectionLost:
        error = StoreConnectionLost(
            f"Redis did not answer within stream_timeout={limit:g}s", url=self.params.url
        )
        conn.fail(error)  # whoever still waits on it would wait as long
        with anyio.CancelScope(shield=True):
            await conn.aclose()
        return error

    def _usable(self, conn: RespConnection | None) -> TypeGuard[RespConnection]:
        return conn is not None and not conn.broken and not (conn.idle and conn.closed_by_peer())

    async def get(self) -> RespConnection:
        conn = self.current
        if self._usable(conn):
            return conn
        async with self._opening:  # one connect at a time; the others use its result
            conn = self.current
            if self._usable(conn):
                return conn
            if self._closed:
                raise StoreConnectionError("the store was closed", url=self.params.url)
            if conn is not None:
                with anyio.CancelScope(shield=True):
                    await conn.aclose()
            self.current = conn = await open_connection(self.params)
            return conn

    async def roundtrip(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """One round trip, bounded by ``stream_timeout``.

        Raises:
            StoreConnectionLost: the connection broke (or timed out) before the replies.
            StoreConnectionError: no connection could be opened.
        """
        conn = await self.get()
        timeout = self.params.stream_timeout
        if timeout is None or self._watched:
            return await conn.roundtrip(commands)
        with anyio.move_on_after(timeout):
            return await conn.roundtrip(commands)
        raise await self._time_out(conn, timeout)

    async def aclose(self) -> None:
        self._closed = True
        conn, self.current = self.current, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await conn.aclose()
