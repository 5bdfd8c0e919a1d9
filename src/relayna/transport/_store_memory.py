"""The in-memory store (``memory://``): Redis semantics with no server.

A product feature, not a test fake: ``relayna dev`` and users' tests run on
it. It passes the same conformance suite as the Redis adapters. Differences,
by design:

* Each ``open_memory_store`` block is its own database (nothing is shared
  between blocks or processes) and it is gone when the block exits.
* TTLs run on ``anyio.current_time()`` (so a test clock applies); expired
  keys are removed lazily when touched.
* Scripts run their own Lua, in a Lua 5.1 runtime as in Redis, against the
  synchronous core (:mod:`relayna.transport._store_lua`); nothing awaits
  inside, so a script is atomic. Commands that need an absolute wall-clock
  time (``EXPIREAT``, ``SET ... PXAT``) are not offered to scripts, and a
  script is stopped after ``SCRIPT_TIME_LIMIT`` CPU seconds.
* Pubsub never disconnects, so :class:`PubSubReconnected` is never sent.
  Sharded pubsub (``spublish``/``ssubscribe``, ``SPUBLISH`` in scripts) is
  a separate namespace, as in Redis.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
from anyio.lowlevel import checkpoint

from relayna._urls import redact_url, split_url
from relayna.errors import ScriptError, StoreError
from relayna.transport._pubsub_fanout import DEFAULT_SUBSCRIBER_BUFFER, Fanout
from relayna.transport._store import Script, Store, Subscription, Value
from relayna.transport._store_lua import LuaScripts, ScriptFailure
from relayna.transport._store_memory_core import MemoryCore
from relayna.transport._store_util import encode_value

__all__ = ["MemoryStore", "open_memory_store"]


class MemoryStore:
    """A :class:`~relayna.transport.Store` in process memory (see module docs)."""

    def __init__(
        self,
        url: str,
        *,
        buffer_size: int = DEFAULT_SUBSCRIBER_BUFFER,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        self._url = url
        self._fanout = Fanout(buffer_size=buffer_size, url=url)
        self._sharded = Fanout(buffer_size=buffer_size, url=url)
        self.core = MemoryCore(clock, self._fanout, url, self._sharded)
        self._scripts = LuaScripts(self.core)
        self._closed = False

    @property
    def url(self) -> str:
        return self._url

    async def _enter(self) -> MemoryCore:
        await checkpoint()
        if self._closed:
            raise StoreError("the store is closed", url=self._url)
        return self.core

    async def ping(self) -> None:
        await self._enter()

    async def get(self, key: str) -> bytes | None:
        return (await self._enter()).get(key)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        core = await self._enter()
        return [core.get(k) if isinstance(core._live(k), bytes) else None for k in keys]

    async def set(
        self, key: str, value: Value, *, ttl: float | None = None, nx: bool = False
    ) -> bool:
        return (await self._enter()).set(key, value, ttl=ttl, nx=nx)

    async def delete(self, *keys: str) -> int:
        return (await self._enter()).delete(*keys)

    async def exists(self, key: str) -> bool:
        return (await self._enter()).exists(key)

    async def expire(self, key: str, seconds: float) -> bool:
        return (await self._enter()).expire(key, seconds)

    async def ttl(self, key: str) -> float | None:
        return (await self._enter()).ttl(key)

    async def incr(self, key: str, amount: int = 1) -> int:
        return (await self._enter()).incr(key, amount)

    async def lpush(self, key: str, *values: Value) -> int:
        return (await self._enter()).lpush(key, *values)

    async def rpush(self, key: str, *values: Value) -> int:
        return (await self._enter()).rpush(key, *values)

    async def ltrim(self, key: str, start: int, stop: int) -> None:
        (await self._enter()).ltrim(key, start, stop)

    async def lrange(self, key: str, start: int, stop: int) -> list[bytes]:
        return (await self._enter()).lrange(key, start, stop)

    async def lindex(self, key: str, index: int) -> bytes | None:
        return (await self._enter()).lindex(key, index)

    async def llen(self, key: str) -> int:
        return (await self._enter()).llen(key)

    async def sadd(self, key: str, *members: Value) -> int:
        return (await self._enter()).sadd(key, *members)

    async def srem(self, key: str, *members: Value) -> int:
        return (await self._enter()).srem(key, *members)

    async def smembers(self, key: str) -> builtins.set[bytes]:
        return (await self._enter()).smembers(key)

    async def zadd(self, key: str, mapping: Mapping[Value, float]) -> int:
        return (await self._enter()).zadd(key, mapping)

    async def zrem(self, key: str, *members: Value) -> int:
        return (await self._enter()).zrem(key, *members)

    async def zrange(self, key: str, start: int, stop: int, *, desc: bool = False) -> list[bytes]:
        return (await self._enter()).zrange(key, start, stop, desc=desc)

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
        core = await self._enter()
        return core.zrangebyscore(key, min, max, offset=offset, count=count, desc=desc)

    async def zscore(self, key: str, member: Value) -> float | None:
        return (await self._enter()).zscore(key, member)

    async def zcard(self, key: str) -> int:
        return (await self._enter()).zcard(key)

    async def hset(self, key: str, mapping: Mapping[str, Value]) -> int:
        return (await self._enter()).hset(key, mapping)

    async def hget(self, key: str, field: str) -> bytes | None:
        return (await self._enter()).hget(key, field)

    async def hdel(self, key: str, *fields: str) -> int:
        return (await self._enter()).hdel(key, *fields)

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        return (await self._enter()).hgetall(key)

    async def publish(self, channel: str, message: Value) -> int:
        return (await self._enter()).publish(channel, message)

    async def spublish(self, channel: str, message: Value) -> int:
        return (await self._enter()).spublish(channel, message)

    async def run_script(self, script: Script, keys: Sequence[str], args: Sequence[Value]) -> Any:
        """Run the script's Lua atomically against the core (as Redis would)."""
        await self._enter()
        try:
            return self._scripts.run(script.lua, keys, [encode_value(a) for a in args])
        except ScriptFailure as exc:
            raise ScriptError(f"script {script.name!r} failed: {exc}", url=self._url) from None

    async def run_script_many(
        self, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[Value]]]
    ) -> list[Any]:
        """``run_script`` per call, in order; a failed call's error is its entry."""
        results: list[Any] = []
        for keys, args in calls:
            try:
                results.append(await self.run_script(script, keys, args))
            except ScriptError as exc:
                results.append(exc)
        return results

    def subscribe(self, *channels: str) -> AbstractAsyncContextManager[Subscription]:
        return self._subscription(self._fanout, tuple(dict.fromkeys(channels)))

    def ssubscribe(self, *channels: str) -> AbstractAsyncContextManager[Subscription]:
        return self._subscription(self._sharded, tuple(dict.fromkeys(channels)))

    @asynccontextmanager
    async def _subscription(
        self, fanout: Fanout, channels: tuple[str, ...]
    ) -> AsyncIterator[Subscription]:
        if not channels:
            raise ValueError("subscribe() needs at least one channel")
        await self._enter()
        sub = fanout.add(channels)
        try:
            yield sub
        finally:
            fanout.remove(sub)

    def close(self) -> None:
        self._closed = True
        for fanout in (self._fanout, self._sharded):
            fanout.close(StoreError("the store was closed", url=self._url))


@asynccontextmanager
async def open_memory_store(
    url: str = "memory://", *, buffer_size: int = DEFAULT_SUBSCRIBER_BUFFER
) -> AsyncIterator[Store]:
    """Open a fresh in-memory store. ``url`` must use the ``memory://`` scheme."""
    split_url(url, schemes=("memory",))
    store = MemoryStore(redact_url(url), buffer_size=buffer_size)
    try:
        yield store
    finally:
        store.close()
