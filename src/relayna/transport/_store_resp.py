"""The Store commands expressed as raw Redis commands, shared by the Redis adapters.

An adapter implements one method, :meth:`RespStore._call`, which sends a
command and maps its client library's exceptions to relayna errors. This
module builds the arguments and normalises replies (RESP3 from coredis and
RESP2 plus response callbacks from redis-py come back in different shapes).

Retry policy: ``kind="read"`` commands are idempotent and the adapter may
retry them once on a fresh connection after the connection dropped;
``"write"`` and ``"script"`` commands are never retried transparently (a
dropped connection leaves it unknown whether the server applied them), they
raise :class:`~relayna.errors.StoreConnectionLost` and the caller decides.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal, Protocol, TypeVar

import anyio
from anyio.abc import TaskGroup

from relayna.errors import (
    ScriptError,
    StoreAuthenticationError,
    StoreConnectionError,
    StoreConnectionLost,
    StoreError,
    sole_exception,
)
from relayna.transport._pubsub import PubSubMultiplexer, RawPubSubConnector
from relayna.transport._store import Script, Subscription, Value
from relayna.transport._store_options import DEFAULT_PUBSUB_KEEPALIVE
from relayna.transport._store_util import encode_value, script_sha, ttl_ms

__all__ = [
    "CallKind",
    "ChannelSource",
    "LibraryRespStore",
    "NoScript",
    "RespStore",
    "reply_error",
    "server_error",
]

CallKind = Literal["read", "write", "script"]


class NoScript(StoreError):
    """Internal: EVALSHA answered NOSCRIPT (the adapter maps its library's error to this)."""


def _bytes_list(reply: Any) -> list[bytes]:
    return [bytes(x) for x in reply] if reply else []


def server_error(kind: CallKind, text: str, url: str) -> StoreError:
    """An error reply of the server: :class:`ScriptError` for a script call, else StoreError."""
    if kind == "script":
        return ScriptError(f"script failed: {text}", url=url)
    return StoreError(f"Redis error: {text}", url=url)


#: Refused credentials answered with ERR: Redis before 6, and a password sent
#: to a server that has none.
_AUTH_ERR_REPLIES = (
    "invalid password",
    "Client sent AUTH, but no password is set",
    "AUTH <password> called without any password configured",
)


def reply_error(text: str, url: str, kind: CallKind) -> StoreError:
    """The relayna error for a server's error reply ``text`` (code first: ``NOPERM ...``).

    The one decision every Redis adapter makes: each gives the reply's full
    text (the client libraries strip the code; their adapters put it back),
    so an ACL refusal or a full server maps alike whichever client is used.
    """
    code = text.split(" ", 1)[0]
    if code == "NOSCRIPT":
        return NoScript(text, url=url)
    if code in ("NOAUTH", "WRONGPASS", "NOPERM") or text.removeprefix("ERR ").startswith(
        _AUTH_ERR_REPLIES
    ):
        return StoreAuthenticationError(f"Redis refused the credentials: {text}", url=url)
    if text.startswith("ERR max number of clients"):
        return StoreConnectionError(f"Redis refused the connection: {text}", url=url)
    return server_error(kind, text, url)


class ChannelSource(Protocol):
    """Subscriptions of one kind (classic or sharded) for a store."""

    def subscribe(self, *channels: str) -> AbstractAsyncContextManager[Subscription]: ...
    def close(self) -> None: ...


class RespStore:
    """Store methods over :meth:`_call`. Subclasses set ``_url`` and ``_pubsub``;
    :func:`run_resp_store` sets ``_sharded``."""

    _url: str
    _pubsub: PubSubMultiplexer
    _sharded: ChannelSource | None = None

    async def _call(self, kind: CallKind, *args: Value) -> Any:
        raise NotImplementedError

    async def _pipeline(self, commands: Sequence[Sequence[Value]]) -> list[Any]:
        """Send ``commands`` in one round trip (no MULTI); a reply per command,
        error replies mapped to :class:`StoreError` instances (not raised)."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        return self._url

    async def ping(self) -> None:
        await self._call("read", b"PING")

    async def get(self, key: str) -> bytes | None:
        reply = await self._call("read", b"GET", key)
        return None if reply is None else bytes(reply)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        reply = await self._call("read", b"MGET", *keys)
        return [None if x is None else bytes(x) for x in reply]

    async def set(
        self, key: str, value: Value, *, ttl: float | None = None, nx: bool = False
    ) -> bool:
        args: list[Value] = [b"SET", key, encode_value(value)]
        if ttl is not None:
            args += [b"PX", ttl_ms(ttl)]
        if nx:
            args.append(b"NX")
        reply = await self._call("write", *args)
        return reply is not None and reply is not False

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        return int(await self._call("write", b"DEL", *keys))

    async def exists(self, key: str) -> bool:
        return bool(int(await self._call("read", b"EXISTS", key)))

    async def expire(self, key: str, seconds: float) -> bool:
        return bool(int(await self._call("write", b"PEXPIRE", key, ttl_ms(seconds))))

    async def ttl(self, key: str) -> float | None:
        ms = int(await self._call("read", b"PTTL", key))
        return None if ms < 0 else ms / 1000

    async def incr(self, key: str, amount: int = 1) -> int:
        return int(await self._call("write", b"INCRBY", key, amount))

    async def lpush(self, key: str, *values: Value) -> int:
        return int(await self._call("write", b"LPUSH", key, *map(encode_value, values)))

    async def rpush(self, key: str, *values: Value) -> int:
        return int(await self._call("write", b"RPUSH", key, *map(encode_value, values)))

    async def ltrim(self, key: str, start: int, stop: int) -> None:
        await self._call("write", b"LTRIM", key, start, stop)

    async def lrange(self, key: str, start: int, stop: int) -> list[bytes]:
        return _bytes_list(await self._call("read", b"LRANGE", key, start, stop))

    async def lindex(self, key: str, index: int) -> bytes | None:
        reply = await self._call("read", b"LINDEX", key, index)
        return None if reply is None else bytes(reply)

    async def llen(self, key: str) -> int:
        return int(await self._call("read", b"LLEN", key))

    async def sadd(self, key: str, *members: Value) -> int:
        return int(await self._call("write", b"SADD", key, *map(encode_value, members)))

    async def srem(self, key: str, *members: Value) -> int:
        return int(await self._call("write", b"SREM", key, *map(encode_value, members)))

    async def smembers(self, key: str) -> builtins.set[bytes]:
        return {bytes(x) for x in await self._call("read", b"SMEMBERS", key)}

    async def zadd(self, key: str, mapping: Mapping[Value, float]) -> int:
        if not mapping:
            return 0
        args: list[Value] = [b"ZADD", key]
        for member, score in mapping.items():
            args += [repr(float(score)).encode(), encode_value(member)]
        return int(await self._call("write", *args))

    async def zrem(self, key: str, *members: Value) -> int:
        return int(await self._call("write", b"ZREM", key, *map(encode_value, members)))

    async def zrange(self, key: str, start: int, stop: int, *, desc: bool = False) -> list[bytes]:
        cmd = b"ZREVRANGE" if desc else b"ZRANGE"
        return _bytes_list(await self._call("read", cmd, key, start, stop))

    async def zrangebyscore(
        self,
        key: str,
        min: float,
        max: float,
        *,
        offset: int = 0,
        count: int | None = None,
        desc: bool = False,
    ) -> list[bytes]:
        lo, hi = _score(min), _score(max)
        args: list[Value] = (
            [b"ZREVRANGEBYSCORE", key, hi, lo] if desc else [b"ZRANGEBYSCORE", key, lo, hi]
        )
        if offset or count is not None:
            args += [b"LIMIT", offset, -1 if count is None else count]
        return _bytes_list(await self._call("read", *args))

    async def zscore(self, key: str, member: Value) -> float | None:
        reply = await self._call("read", b"ZSCORE", key, encode_value(member))
        return None if reply is None else float(reply)

    async def zcard(self, key: str) -> int:
        return int(await self._call("read", b"ZCARD", key))

    async def hset(self, key: str, mapping: Mapping[str, Value]) -> int:
        if not mapping:
            return 0
        args: list[Value] = [b"HSET", key]
        for field, value in mapping.items():
            args += [field, encode_value(value)]
        return int(await self._call("write", *args))

    async def hget(self, key: str, field: str) -> bytes | None:
        reply = await self._call("read", b"HGET", key, field)
        return None if reply is None else bytes(reply)

    async def hdel(self, key: str, *fields: str) -> int:
        if not fields:
            return 0
        return int(await self._call("write", b"HDEL", key, *fields))

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        reply = await self._call("read", b"HGETALL", key)
        if isinstance(reply, Mapping):
            return {bytes(k): bytes(v) for k, v in reply.items()}
        items = list(reply or ())
        return {bytes(items[i]): bytes(items[i + 1]) for i in range(0, len(items), 2)}

    async def publish(self, channel: str, message: Value) -> int:
        return int(await self._call("write", b"PUBLISH", channel, encode_value(message)))

    async def spublish(self, channel: str, message: Value) -> int:
        return int(await self._call("write", b"SPUBLISH", channel, encode_value(message)))

    async def run_script(self, script: Script, keys: Sequence[str], args: Sequence[Value]) -> Any:
        """EVALSHA; after NOSCRIPT (script cache flushed, new server) SCRIPT LOAD and retry once."""
        sha = script_sha(script)
        call: tuple[Value, ...] = (b"EVALSHA", sha, len(keys), *keys, *map(encode_value, args))
        try:
            return await self._call("script", *call)
        except NoScript:
            await self._call("script", b"SCRIPT", b"LOAD", script.lua)
            return await self._call("script", *call)

    async def load_script(self, script: Script) -> None:
        """SCRIPT LOAD ahead of use, so the first EVALSHA is not answered NOSCRIPT."""
        await self._call("script", b"SCRIPT", b"LOAD", script.lua)

    async def run_script_many(
        self, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[Value]]]
    ) -> list[Any]:
        """EVALSHA per call in one pipeline; calls answered NOSCRIPT (not run)
        are sent again, in order, after SCRIPT LOAD."""
        if not calls:
            return []
        sha = script_sha(script)
        commands: list[tuple[Value, ...]] = [
            (b"EVALSHA", sha, len(keys), *keys, *map(encode_value, args)) for keys, args in calls
        ]
        results = await self._pipeline(commands)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScript)]
        if missing:
            await self._call("script", b"SCRIPT", b"LOAD", script.lua)
            again = await self._pipeline([commands[i] for i in missing])
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        return results

    def subscribe(self, *channels: str) -> AbstractAsyncContextManager[Subscription]:
        return self._pubsub.subscribe(*channels)

    def ssubscribe(self, *channels: str) -> AbstractAsyncContextManager[Subscription]:
        if self._sharded is None:
            raise StoreError("this store has no sharded pubsub", url=self._url)
        return self._sharded.subscribe(*channels)


def _score(value: float) -> bytes:
    if value == float("inf"):
        return b"+inf"
    if value == float("-inf"):
        return b"-inf"
    return repr(float(value)).encode()


_S = TypeVar("_S", bound=RespStore)


@asynccontextmanager
async def run_resp_store(
    make_store: Callable[[PubSubMultiplexer], _S],
    pubsub_connector: RawPubSubConnector,
    *,
    url: str,
    connect_timeout: float,
    keepalive: float = DEFAULT_PUBSUB_KEEPALIVE,
    sharded: Callable[[TaskGroup, _S], ChannelSource] | None = None,
    watch: Callable[..., Coroutine[Any, Any, None]] | None = None,
) -> AsyncIterator[_S]:
    """Own a Redis adapter's pubsub readers and check the server answers.

    Shared by the Redis adapters: the pubsub multiplexers' readers (classic
    channels, and sharded ones on a connection of their own, both started by
    their first subscriber; ``sharded`` builds another source, e.g. the
    cluster's per-node readers) and ``watch`` (a component started with
    ``tg.start`` for as long as the store is open: the native client's
    stream_timeout watchdog) live in a task group owned here; opening PINGs the server (so a
    bad address or password fails at open); an error from the caller's body
    or from one command leaves as itself, not wrapped in an exception group.
    """
    body_error: BaseException | None = None
    try:
        async with anyio.create_task_group() as tg:
            if watch is not None:
                await tg.start(watch)
            pubsub = PubSubMultiplexer(pubsub_connector, tg, url=url, keepalive=keepalive)
            store = make_store(pubsub)
            store._sharded = (
                PubSubMultiplexer(pubsub_connector, tg, url=url, keepalive=keepalive, sharded=True)
                if sharded is None
                else sharded(tg, store)
            )
            try:
                with anyio.fail_after(connect_timeout * 2 + 1):
                    await store.ping()
            except TimeoutError:
                raise StoreConnectionError(
                    "Redis accepted the connection but did not answer", url=url
                ) from None
            try:
                yield store
            except BaseException as exc:
                body_error = exc
                raise
            finally:
                pubsub.close()
                store._sharded.close()
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        leaf = sole_exception(group)
        if leaf is None or (body_error is not None and leaf is not body_error):
            raise
        raise leaf from leaf.__cause__


class LibraryRespStore(RespStore):
    """A :class:`RespStore` on a client library (coredis, redis-py).

    Subclasses send one command (:meth:`_send`) and map the library's
    exceptions (:meth:`_map_error`, for the exception types in
    ``_library_errors``); the read-retry rule lives here once.
    """

    _library_errors: tuple[type[BaseException], ...] = (OSError, TimeoutError)

    async def _send(self, *args: Value) -> Any:
        raise NotImplementedError

    def _map_error(self, exc: BaseException, kind: CallKind) -> StoreError:
        raise NotImplementedError

    async def _call(self, kind: CallKind, *args: Value) -> Any:
        """One command; a read whose connection was lost is sent once more."""
        retried = False
        while True:
            try:
                return await self._send(*args)
            except self._library_errors as exc:
                error = self._map_error(exc, kind)
                if kind == "read" and not retried and type(error) is StoreConnectionLost:
                    retried = True
                    continue
                raise error from exc
