"""Store adapter on redis-py's ``redis.asyncio`` (asyncio only).

``open_redispy_store(url_or_client)`` accepts a URL (the adapter creates and
closes the client, with no transparent retries; relayna's URL options
``connect_timeout`` (default 5 s), ``stream_timeout`` (default 30 s, redis-py's
``socket_timeout``) and ``pubsub_keepalive`` (default 15 s) apply) or
an existing ``redis.asyncio.Redis`` (the caller keeps owning it; its own retry
policy applies, and it must not use ``decode_responses=True``). Under trio it
raises :class:`~relayna.errors.UnsupportedBackendError`.

Commands, scripts and error mapping are shared with the coredis adapter
(:mod:`relayna.transport._store_resp`); pubsub uses the shared
:class:`~relayna.transport.PubSubMultiplexer` over one dedicated
redis-py connection. This is the only store module that may import
asyncio-specific code.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, NoReturn

import anyio
import sniffio

from relayna._urls import redact_url, split_url
from relayna.errors import (
    ConfigurationError,
    StoreAuthenticationError,
    StoreConnectionError,
    StoreConnectionLost,
    StoreError,
    UnsupportedBackendError,
)
from relayna.transport._pubsub import (
    PubSubMultiplexer,
    RawEvent,
    RawPubSub,
    SubscribeBySend,
    push_event,
)
from relayna.transport._store import Store, Value
from relayna.transport._store_options import StoreOptions, take_store_options
from relayna.transport._store_resp import (
    CallKind,
    LibraryRespStore,
    reply_error,
    run_resp_store,
    server_error,
)

__all__ = ["RedisPyStore", "open_redispy_store"]


def _reply_text(exc: BaseException) -> str | None:
    """The server's error reply, code first, or None for an error of the
    connection itself: redis-py keeps a reply's code in ``status_code``
    and strips it from the text."""
    code = getattr(exc, "status_code", None)
    if not isinstance(code, str):
        return None
    text = str(exc)
    return text if text.startswith(code) else f"{code} {text}"


def map_redispy_error(exc: BaseException, url: str, kind: CallKind = "write") -> StoreError:
    """Translate a redis-py exception into the relayna hierarchy."""
    import redis.exceptions as rx

    if isinstance(exc, StoreError):
        return exc
    reply = _reply_text(exc)
    if reply is not None:
        return reply_error(reply, url, kind)
    if isinstance(exc, rx.AuthenticationError):  # not a reply: redis-py's own handshake check
        return StoreAuthenticationError(f"Redis refused the credentials: {exc}", url=url)
    if isinstance(exc, rx.ConnectionError | rx.TimeoutError | OSError | TimeoutError):
        text = str(exc)
        if "connecting to" in text or isinstance(exc, ConnectionRefusedError):
            return StoreConnectionError(f"cannot connect to Redis: {text}", url=url)
        return StoreConnectionLost(f"Redis connection lost: {text or type(exc).__name__}", url=url)
    if isinstance(exc, rx.RedisError):
        return server_error(kind, str(exc), url)
    return StoreError(f"unexpected error from redis-py: {exc!r}", url=url)


class RedisPyStore(LibraryRespStore):
    """A :class:`~relayna.transport.Store` on a ``redis.asyncio.Redis`` client."""

    def __init__(self, client: Any, url: str, pubsub: PubSubMultiplexer) -> None:
        import redis.exceptions as rx

        self._client = client
        self._url = url
        self._pubsub = pubsub
        self._library_errors = (rx.RedisError, OSError, TimeoutError)

    async def _send(self, *args: Value) -> Any:
        return await self._client.execute_command(*args)

    def _map_error(self, exc: BaseException, kind: CallKind) -> StoreError:
        return map_redispy_error(exc, self._url, kind)

    async def _pipeline(self, commands: Sequence[Sequence[Value]]) -> list[Any]:
        import redis.exceptions as rx

        pipe = self._client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        try:
            replies = await pipe.execute(raise_on_error=False)
        except (rx.RedisError, OSError, TimeoutError) as exc:
            raise map_redispy_error(exc, self._url, "script") from exc
        finally:
            await pipe.reset()
        return [
            map_redispy_error(r, self._url, "script") if isinstance(r, Exception) else r
            for r in replies
        ]


class _RedisPyRawPubSub(SubscribeBySend):
    """A :class:`~relayna.transport.RawPubSub` on one redis-py connection (RESP2)."""

    def __init__(self, conn: Any, url: str) -> None:
        self._conn = conn
        self._url = url
        self._send_lock = anyio.Lock()
        self._pongs: deque[anyio.Event] = deque()

    def _fail(self, exc: BaseException) -> NoReturn:
        raise map_redispy_error(exc, self._url) from exc

    async def _send(self, *args: Any) -> None:
        import redis.exceptions as rx

        try:
            async with self._send_lock:
                await self._conn.send_command(*args, check_health=False)
        except (rx.RedisError, OSError) as exc:
            self._fail(exc)

    async def ping(self) -> None:
        # The reply arrives through next_event, which sets the event: a PING
        # that is never answered is how a half-open connection shows.
        answered = anyio.Event()
        self._pongs.append(answered)
        await self._send("PING")
        await answered.wait()

    async def next_event(self) -> RawEvent:
        import redis.exceptions as rx

        while True:
            try:
                reply = await self._conn.read_response(timeout=math.inf, push_request=True)
            except (rx.RedisError, OSError) as exc:
                self._fail(exc)
            event = push_event(reply)
            if event is not None:
                return event
            pong = reply == b"PONG" or (  # PING while subscribed to nothing, or to something
                isinstance(reply, list) and bool(reply) and bytes(reply[0]).lower() == b"pong"
            )
            if pong and self._pongs:
                self._pongs.popleft().set()


def _pubsub_connector(client: Any, url: str) -> AbstractAsyncContextManager[RawPubSub]:
    @asynccontextmanager
    async def connect() -> AsyncIterator[RawPubSub]:
        import redis.exceptions as rx

        conn = client.connection_pool.make_connection()
        try:
            try:
                await conn.connect()
            except (rx.RedisError, OSError) as exc:
                raise map_redispy_error(exc, url) from exc
            yield _RedisPyRawPubSub(conn, url)
        finally:
            with anyio.CancelScope(shield=True):
                await conn.disconnect()

    return connect()


def _client_url(client: Any) -> str:
    kw = client.connection_pool.connection_kwargs
    if "path" in kw:
        return f"unix://{kw['path']}?db={kw.get('db', 0)}"
    return f"redis://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


@asynccontextmanager
async def open_redispy_store(url_or_client: Any) -> AsyncIterator[Store]:
    """Open a store on redis-py: from a URL, or around the caller's ``redis.asyncio.Redis``.

    Raises:
        UnsupportedBackendError: not running under asyncio.
        ConfigurationError: bad URL, or a client with ``decode_responses=True``.
        StoreConnectionError / StoreAuthenticationError: as for the coredis adapter.
    """
    backend = sniffio.current_async_library()
    if backend != "asyncio":
        raise UnsupportedBackendError(
            f"the redis-py store adapter runs on asyncio only, not {backend}; "
            "use the default native adapter or coredis"
        )
    import redis.asyncio as aredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    owned = isinstance(url_or_client, str)
    options = StoreOptions("")
    if isinstance(url_or_client, str):
        split_url(url_or_client, schemes=("redis", "rediss", "unix"))
        safe = redact_url(url_or_client)
        options = take_store_options(url_or_client)
        try:
            client = aredis.Redis.from_url(
                options.url,
                socket_connect_timeout=options.connect_timeout,
                socket_timeout=options.stream_timeout,  # the pubsub reader waits without it
                retry=Retry(NoBackoff(), 0),
                decode_responses=False,
            )
        except ValueError as exc:
            raise ConfigurationError(f"invalid Redis URL {safe}: {exc}") from None
    else:
        client = url_or_client
        if not isinstance(client, aredis.Redis):
            raise ConfigurationError(f"expected a URL or a redis.asyncio.Redis, got {client!r}")
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ConfigurationError("the redis-py client must not use decode_responses=True")
        safe = redact_url(_client_url(client))
    try:
        async with run_resp_store(
            lambda pubsub: RedisPyStore(client, safe, pubsub),
            lambda: _pubsub_connector(client, safe),
            url=safe,
            connect_timeout=options.connect_timeout,
            keepalive=options.pubsub_keepalive,
        ) as store:
            yield store
    finally:
        if owned:
            with anyio.CancelScope(shield=True):
                await client.aclose()
