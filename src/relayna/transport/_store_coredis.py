"""The coredis store adapter (``adapter="coredis"``): Redis through coredis, on asyncio and trio.

``async with open_coredis_store("redis://:pw@host:6379/0") as store:`` opens
the coredis client (its connection pool and the pool's task group), pings
the server so that a wrong address or password fails here, fast, with
a typed error, and owns a task group for the pubsub reader. Leaving the block
closes subscriptions (they raise StoreError), the pubsub connection and the
pool.

Errors (always naming the password-redacted URL):

* connection refused / unreachable / connect timeout → StoreConnectionError
* wrong password / ACL → StoreAuthenticationError
* connection dropped mid-command, or no reply within ``stream_timeout`` (a
  half-open link; the pool's connections are then replaced) →
  StoreConnectionLost. Reads (``kind="read"``)
  are retried once on a fresh connection first; writes and scripts never
  are, since the server may or may not have applied them.
* Lua errors → ScriptError; other server errors (WRONGTYPE…) → StoreError.

URL query options: ``connect_timeout`` (seconds, default 5),
``max_connections``, ``stream_timeout`` (seconds a command may wait for its
reply, default 30), ``pubsub_keepalive`` (seconds between PINGs on the pubsub
connection, default 15); ``unix:///path/redis.sock?db=1``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, NoReturn

import anyio
import coredis
import coredis.exceptions as cx
from coredis.parser import Parser
from coredis.retry import NoRetryPolicy

from relayna._urls import redact_url, split_url
from relayna.errors import (
    ConfigurationError,
    StoreConnectionError,
    StoreConnectionLost,
    StoreError,
    sole_exception,
    unwrap_groups,
)
from relayna.transport._pubsub import (
    PubSubMultiplexer,
    RawEvent,
    RawPubSub,
    push_event,
    subscribe_commands,
    unsubscribe_commands,
)
from relayna.transport._store import Store, Value
from relayna.transport._store_options import take_store_options
from relayna.transport._store_resp import (
    CallKind,
    LibraryRespStore,
    reply_error,
    run_resp_store,
    server_error,
)

__all__ = ["CoredisStore", "open_coredis_store"]

_SCHEMES = ("redis", "rediss", "unix")


def _raw(reply: Any, **_: Any) -> Any:
    return reply


def _request(target: Any, command: Sequence[Value]) -> Any:
    """coredis' request for one command (a client or a pipeline), reply left raw;
    relayna's commands always name themselves in bytes."""
    name = command[0]
    assert isinstance(name, bytes)
    return target.create_request(name, *command[1:], callback=_raw)


def _error_codes() -> dict[type[BaseException], str]:
    codes: dict[type[BaseException], str] = {}
    for code, target in Parser.EXCEPTION_CLASSES.items():
        for cls in target.values() if isinstance(target, dict) else (target,):
            codes.setdefault(cls, code)
    return codes


_ERROR_CODES = _error_codes()


def _reply_text(exc: BaseException) -> str:
    """The server's error text: coredis strips the code (``WRONGTYPE``, ``ERR``); put it back."""
    text = str(exc)
    code = _ERROR_CODES.get(type(exc))
    if code is None and type(exc) is cx.ResponseError:
        first = text.split(" ", 1)[0]
        code = None if first.isupper() else "ERR"  # an unmapped code was left in place
    return f"{code} {text}" if code else text


def _is_reply(exc: BaseException) -> bool:
    """An error the server answered, not one of the connection itself. coredis
    raises some replies as connection errors (``LOADING``, ``max number of
    clients``); the plain ConnectionError is a reply only with that text."""
    if type(exc) is cx.ConnectionError:
        return str(exc).lower().startswith("max number of clients")
    return isinstance(exc, cx.ResponseError) or type(exc) in _ERROR_CODES


def map_coredis_error(exc: BaseException, url: str, kind: CallKind = "write") -> StoreError:
    """Translate a coredis (or socket) exception into the relayna hierarchy."""
    if isinstance(exc, StoreError):
        return exc
    if _is_reply(exc):
        return reply_error(_reply_text(exc), url, kind)
    if isinstance(exc, cx.ConnectionError):
        text = str(exc)
        if "Unable to establish" in text or "Invalid Database" in text:
            cause = exc.__cause__
            while cause is not None and cause.__cause__ is not None:  # the root: OSError, SSLError
                cause = cause.__cause__
            detail = f" ({cause})" if cause is not None else ""
            return StoreConnectionError(f"cannot connect to Redis: {text}{detail}", url=url)
        return StoreConnectionLost(f"Redis connection lost: {text}", url=url)
    if isinstance(exc, TimeoutError):
        return StoreConnectionLost("Redis did not answer in time", url=url)
    if isinstance(exc, OSError):
        return StoreConnectionError(f"cannot connect to Redis: {exc}", url=url)
    if isinstance(exc, cx.RedisError):
        return server_error(kind, str(exc), url)
    return StoreError(f"unexpected error from coredis: {exc!r}", url=url)


class CoredisStore(LibraryRespStore):
    """A :class:`~relayna.transport.Store` on a coredis client (see module docs)."""

    def __init__(self, client: coredis.Redis[bytes], url: str, pubsub: PubSubMultiplexer):
        self._client = client
        self._url = url
        self._pubsub = pubsub

    _library_errors = (cx.RedisError, OSError, TimeoutError)

    async def _send(self, *args: Value) -> Any:
        try:
            return await _request(self._client, args)
        except TimeoutError:
            self._drop_connections()
            raise

    def _drop_connections(self) -> None:
        """After a reply did not come within ``stream_timeout``: coredis keeps
        its multiplexed connection (it invalidates only blocking commands'), so
        on a half-open link every later command would time out too. Its pool
        replaces invalidated connections on the next command."""
        self._client.connection_pool.disconnect()

    def _map_error(self, exc: BaseException, kind: CallKind) -> StoreError:
        return map_coredis_error(exc, self._url, kind)

    async def _pipeline(self, commands: Sequence[Sequence[Value]]) -> list[Any]:
        try:
            async with self._client.pipeline(transaction=False, raise_on_error=False) as pipe:
                requests = [_request(pipe, command) for command in commands]
        except (cx.RedisError, OSError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                self._drop_connections()
            raise map_coredis_error(exc, self._url, "script") from exc
        results: list[Any] = []
        for request in requests:
            try:
                results.append(await request)
            except (cx.RedisError, OSError, TimeoutError) as exc:
                if isinstance(exc, TimeoutError):
                    self._drop_connections()
                results.append(map_coredis_error(exc, self._url, "script"))
        return results


class _CoredisRawPubSub:
    """A :class:`~relayna.transport.RawPubSub` on one dedicated coredis connection."""

    def __init__(self, conn: coredis.BaseConnection, url: str) -> None:
        self._conn = conn
        self._url = url
        self._messages = conn.push_messages

    def _fail(self, exc: BaseException) -> NoReturn:
        raise map_coredis_error(exc, self._url) from exc

    async def subscribe(self, channels: Sequence[str], *, sharded: bool = False) -> None:
        try:
            for name, args in subscribe_commands(channels, sharded=sharded):
                self._conn.send_command(name, *args)
        except cx.RedisError as exc:
            self._fail(exc)

    async def unsubscribe(self, channels: Sequence[str], *, sharded: bool = False) -> None:
        try:
            for name, args in unsubscribe_commands(channels, sharded=sharded):
                self._conn.send_command(name, *args)
        except cx.RedisError as exc:
            self._fail(exc)

    async def ping(self) -> None:
        try:
            await self._conn.create_request(b"PING")
        except cx.RedisError as exc:
            self._fail(exc)

    async def next_event(self) -> RawEvent:
        while True:
            try:
                push = await self._messages.__anext__()
            except (cx.RedisError, StopAsyncIteration) as exc:
                if isinstance(exc, StopAsyncIteration):
                    exc = cx.ConnectionError("pubsub connection closed")
                self._fail(exc)
            event = push_event(push)
            if event is not None:
                return event

    async def aclose(self) -> None:
        await self._messages.aclose()


def _pubsub_connector(
    pool: coredis.ConnectionPool[Any], url: str
) -> AbstractAsyncContextManager[RawPubSub]:
    @asynccontextmanager
    async def connect() -> AsyncIterator[RawPubSub]:
        assert pool.location is not None
        conn = pool.connection_class(pool.location, **pool.connection_kwargs)
        try:
            async with anyio.create_task_group() as tg:
                try:
                    await tg.start(conn.run)
                except (cx.RedisError, OSError, TimeoutError) as exc:
                    raise map_coredis_error(exc, url) from exc
                raw = _CoredisRawPubSub(conn, url)
                try:
                    yield raw
                finally:
                    with anyio.CancelScope(shield=True):
                        await raw.aclose()
                    conn.invalidate()
        except BaseExceptionGroup as group:
            leaf = sole_exception(group)
            if leaf is None:
                raise
            raise leaf from leaf.__cause__

    return connect()


@asynccontextmanager
async def open_coredis_store(url: str) -> AsyncIterator[Store]:
    """Open the Redis at ``url`` (``redis://``, ``rediss://``, ``unix://``) with coredis.

    Raises:
        ConfigurationError: unparseable URL or unsupported scheme.
        StoreConnectionError: the server cannot be reached within the connect timeout.
        StoreAuthenticationError: the server refused the password.
    """
    split_url(url, schemes=_SCHEMES)
    safe = redact_url(url)
    options = take_store_options(url)
    try:
        client: coredis.Redis[bytes] = coredis.Redis.from_url(
            options.url,
            retry_policy=NoRetryPolicy(),
            decode_responses=False,
            connect_timeout=options.connect_timeout,
            stream_timeout=options.stream_timeout,
        )
    except (ValueError, TypeError, OSError, cx.RedisError) as exc:  # OSError: ssl_ca_certs
        raise ConfigurationError(f"invalid Redis URL {safe}: {exc}") from None
    with unwrap_groups():  # coredis's own task group wraps errors too
        async with (
            client,
            run_resp_store(
                lambda pubsub: CoredisStore(client, safe, pubsub),
                lambda: _pubsub_connector(client.connection_pool, safe),
                url=safe,
                connect_timeout=options.connect_timeout,
                keepalive=options.pubsub_keepalive,
            ) as store,
        ):
            yield store
