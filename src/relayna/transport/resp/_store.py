"""The native Redis store: :class:`RespStore` commands over the pool, and pubsub.

Error replies map to the relayna hierarchy by the rule every Redis adapter
shares (:func:`~relayna.transport._store_resp.reply_error`): NOSCRIPT → the
internal ``NoScript`` (the store loads the script and retries),
WRONGPASS/NOAUTH/NOPERM → :class:`~relayna.errors.StoreAuthenticationError`,
a full server → :class:`~relayna.errors.StoreConnectionError`, errors of a
script call → :class:`~relayna.errors.ScriptError`, others →
:class:`~relayna.errors.StoreError`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio

from relayna.errors import StoreConnectionError, StoreConnectionLost
from relayna.transport._pubsub import (
    PubSubMultiplexer,
    RawEvent,
    RawPubSub,
    SubscribeBySend,
    push_event,
)
from relayna.transport._store import Store, Value
from relayna.transport._store_resp import CallKind, RespStore, reply_error, run_resp_store
from relayna.transport.resp._connect import SharedConnection, open_connection
from relayna.transport.resp._connection import RespConnection
from relayna.transport.resp._protocol import ErrorReply, encode_command
from relayna.transport.resp._url import RespParams, parse_resp_url

__all__ = ["NativeRespStore", "open_native_store"]


class NativeRespStore(RespStore):
    """A :class:`~relayna.transport.Store` on relayna's own RESP2 client."""

    def __init__(self, connection: SharedConnection, pubsub: PubSubMultiplexer) -> None:
        self._connection = connection
        self._url = connection.params.url
        self._pubsub = pubsub

    async def _call(self, kind: CallKind, *args: Value) -> Any:
        retried = False
        while True:
            try:
                (reply,) = await self._connection.roundtrip((args,))
            except StoreConnectionLost:
                # A connection the server closed while idle was already replaced;
                # this loss happened mid-command: only reads are retried.
                if kind == "read" and not retried:
                    retried = True
                    continue
                raise
            if isinstance(reply, ErrorReply):
                raise reply_error(reply.message, self._url, kind)
            return reply

    async def _pipeline(self, commands: Sequence[Sequence[Value]]) -> list[Any]:
        replies = await self._connection.roundtrip(commands)
        return [
            reply_error(r.message, self._url, "script") if isinstance(r, ErrorReply) else r
            for r in replies
        ]


class _NativePubSub(SubscribeBySend):
    """:class:`RawPubSub` on a dedicated connection; the multiplexer's reader
    task reads it directly (RESP2: SUBSCRIBE confirmations and PING answers
    arrive as arrays among the messages)."""

    def __init__(self, conn: RespConnection) -> None:
        self._conn = conn
        self._send_lock = anyio.Lock()
        self._pongs: deque[anyio.Event] = deque()

    async def _send(self, *args: Any) -> None:
        async with self._send_lock:
            await self._conn.send(encode_command(args))

    async def ping(self) -> None:
        answered = anyio.Event()
        self._pongs.append(answered)
        await self._send(b"PING")
        await answered.wait()

    async def next_event(self) -> RawEvent:
        while True:
            reply = await self._conn.read_reply()
            if isinstance(reply, ErrorReply):
                # -BUSY / -LOADING to SUBSCRIBE or the keepalive PING: this
                # connection's state is unknown; reconnect and subscribe again.
                error = reply_error(reply.message, self._conn.params.url, "read")
                if isinstance(error, StoreConnectionError):
                    raise error
                raise StoreConnectionLost(
                    f"Redis answered the pubsub connection with an error: {reply.message}",
                    url=self._conn.params.url,
                )
            event = push_event(reply)
            if event is not None:
                return event
            if reply == b"PONG" or (  # PING while subscribed to nothing, or to something
                isinstance(reply, list) and reply and reply[0] in (b"pong", b"PONG")
            ):
                self._answered()

    def _answered(self) -> None:
        if self._pongs:
            self._pongs.popleft().set()


def _pubsub_connector(params: RespParams) -> AbstractAsyncContextManager[RawPubSub]:
    @asynccontextmanager
    async def connect() -> AsyncIterator[RawPubSub]:
        conn = await open_connection(params)
        try:
            yield _NativePubSub(conn)
        finally:
            with anyio.CancelScope(shield=True):
                await conn.aclose()

    return connect()


@asynccontextmanager
async def open_native_store(url: str) -> AsyncIterator[Store]:
    """Open the Redis at ``url`` with relayna's own client (any anyio backend).

    Raises:
        ConfigurationError: unparseable URL, unsupported scheme or option.
        StoreConnectionError: the server cannot be reached within the connect timeout.
        StoreAuthenticationError: the server refused the password.
    """
    params = parse_resp_url(url)
    connection = SharedConnection(params)
    try:
        async with run_resp_store(
            lambda pubsub: NativeRespStore(connection, pubsub),
            lambda: _pubsub_connector(params),
            url=params.url,
            connect_timeout=params.connect_timeout,
            keepalive=params.pubsub_keepalive,
            watch=None if params.stream_timeout is None else connection.run,
        ) as store:
            yield store
    finally:
        await connection.aclose()
