"""The store transport contract (a Redis-shaped key-value store).

Adapters: relayna's own RESP client (default), coredis (both asyncio + trio),
redis-py (asyncio only), memory.
Values are ``bytes`` on the way out; ``str`` arguments are encoded as UTF-8.
TTLs are in seconds (floats allowed; adapters round up to milliseconds).

Scripts: each relayna write is one atomic round trip. A :class:`Script`
carries its Lua source: Redis runs it with EVALSHA (re-loaded after
NOSCRIPT), and the memory store runs the same Lua in an embedded Lua 5.1
runtime over its synchronous core (no ``await`` inside, so nothing
interleaves). One source, so the two cannot drift; a differential test runs
every production script on Redis and on the memory store and compares every
key afterwards (``docs/store.md``, "Writing a store script").

Pubsub: :meth:`Store.subscribe` opens a subscription as an async context
manager yielding a :class:`Subscription` (an async iterator of
:class:`PubSubMessage`). Adapters use one pubsub connection per store and
multiplex subscribers over it, with a bounded buffer per subscriber; a
subscriber that falls behind gets :class:`~relayna.errors.SlowSubscriberError`
instead of slowing the others. After the pubsub connection was lost and
re-established, every subscriber receives one :class:`PubSubReconnected`
marker: messages may have been missed in between (Redis pubsub is at most
once), so readers re-read their durable history.

Sharded pubsub (:class:`ShardedPubSub`, Redis >= 7: ``SPUBLISH`` /
``SSUBSCRIBE``) is a separate namespace: a sharded publish reaches only
sharded subscribers of that channel, a classic one only classic subscribers.
On a Redis Cluster a sharded channel lives on the node owning its hash slot,
so a publish is not broadcast over the cluster bus; a sharded subscriber
follows the slot when it moves or its node fails over and then receives
:class:`PubSubReconnected`, as after a lost classic connection.
"""

from __future__ import annotations

import builtins
import warnings
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeAlias, runtime_checkable

import attrs

__all__ = [
    "DirectDelivery",
    "PubSubEvent",
    "PubSubMessage",
    "PubSubReconnected",
    "Script",
    "ScriptOps",
    "ShardedPubSub",
    "Store",
    "Subscription",
]

#: Values accepted as command arguments.
Value: TypeAlias = bytes | str | int | float


@runtime_checkable
class ScriptOps(Protocol):
    """Synchronous store operations of the memory store's core.

    Deprecated as a script interface: scripts no longer need a Python twin
    (the memory store runs their Lua). Kept so existing imports work.
    Semantics are those of the Redis command of the same name.
    """

    def get(self, key: str) -> bytes | None: ...
    def set(
        self, key: str, value: Value, *, ttl: float | None = None, nx: bool = False
    ) -> bool: ...
    def delete(self, *keys: str) -> int: ...
    def exists(self, key: str) -> bool: ...
    def expire(self, key: str, seconds: float) -> bool: ...
    def incr(self, key: str, amount: int = 1) -> int: ...
    def lpush(self, key: str, *values: Value) -> int: ...
    def rpush(self, key: str, *values: Value) -> int: ...
    def ltrim(self, key: str, start: int, stop: int) -> None: ...
    def lrange(self, key: str, start: int, stop: int) -> list[bytes]: ...
    def llen(self, key: str) -> int: ...
    def sadd(self, key: str, *members: Value) -> int: ...
    def srem(self, key: str, *members: Value) -> int: ...
    def smembers(self, key: str) -> builtins.set[bytes]: ...
    def zadd(self, key: str, mapping: Mapping[Value, float]) -> int: ...
    def zrem(self, key: str, *members: Value) -> int: ...
    def zrange(self, key: str, start: int, stop: int, *, desc: bool = False) -> list[bytes]: ...
    def zrangebyscore(
        self,
        key: str,
        min: float,
        max: float,
        *,
        offset: int = 0,
        count: int | None = None,
        desc: bool = False,
    ) -> list[bytes]: ...
    def zscore(self, key: str, member: Value) -> float | None: ...
    def zcard(self, key: str) -> int: ...
    def hset(self, key: str, mapping: Mapping[str, Value]) -> int: ...
    def hget(self, key: str, field: str) -> bytes | None: ...
    def hdel(self, key: str, *fields: str) -> int: ...
    def hgetall(self, key: str) -> dict[bytes, bytes]: ...
    def publish(self, channel: str, message: Value) -> int: ...


def _no_twin(_inst: object, _attr: attrs.Attribute[Any], value: Callable[..., Any] | None) -> None:
    if value is not None:
        warnings.warn(
            "Script(python=...) is deprecated and ignored: the memory store runs the Lua",
            DeprecationWarning,
            stacklevel=4,
        )


@attrs.frozen
class Script:
    """A server-side script, in Lua: Redis and the memory store both run ``lua``.

    Attributes:
        name: a short name for errors and logs (``relayna.<area>.<verb>``).
        lua: the script body, as for ``EVAL``: ``KEYS`` and ``ARGV`` hold the
            keys and arguments (byte strings). Its reply reaches the caller as
            the RESP adapters return it: ``int`` for integers, ``bytes`` for
            bulk and status strings, ``list`` for arrays, ``None`` for nil.
        python: deprecated and ignored (the Python twin scripts once needed
            for the memory store).
    """

    name: str
    lua: str
    python: Callable[..., Any] | None = attrs.field(
        default=None, kw_only=True, validator=_no_twin, eq=False, repr=False
    )


@attrs.frozen
class PubSubMessage:
    channel: str
    data: bytes


@attrs.frozen
class PubSubReconnected:
    """The pubsub connection was re-established; messages may have been missed."""


PubSubEvent: TypeAlias = PubSubMessage | PubSubReconnected


@runtime_checkable
class Subscription(Protocol):
    """Messages for the subscribed channels, in publish order per channel.

    Iteration raises :class:`~relayna.errors.SlowSubscriberError` when this
    subscriber's buffer overflowed, and :class:`~relayna.errors.StoreError`
    when the store is gone for good.
    """

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels this subscription receives."""
        ...

    def __aiter__(self) -> AsyncIterator[PubSubEvent]:
        """Messages (and reconnect markers) in arrival order."""
        ...


@runtime_checkable
class DirectDelivery(Protocol):
    """A :class:`Subscription` that can hand messages to a callback instead of buffering.

    ``deliver_directly(handler)`` succeeds (True) only while nothing is
    buffered. From then on, each message is passed to ``handler`` in the task
    that dispatches it (the pubsub reader), which saves the subscriber one
    task switch per message. The handler must not block or raise. Any other
    event (:class:`PubSubReconnected`) switches back to buffering and is
    buffered, so the iterating owner handles it and then arms again. All
    adapters shipped with relayna support it.
    """

    def deliver_directly(self, handler: Callable[[PubSubMessage], None]) -> bool:
        """Hand messages to ``handler`` from now on; False while something is buffered."""
        ...


@runtime_checkable
class Store(Protocol):
    """An open store. Commands raise :class:`~relayna.errors.StoreError` subclasses."""

    @property
    def url(self) -> str:
        """The connection URL with the password redacted."""
        ...

    async def ping(self) -> None:
        """Check the store answers (PING)."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The string at ``key`` (None when missing)."""
        ...

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """The strings at ``keys``, None for missing ones or other types (MGET)."""
        ...

    async def set(
        self, key: str, value: Value, *, ttl: float | None = None, nx: bool = False
    ) -> bool:
        """Set ``key``; ``ttl`` seconds, ``nx`` only if absent. False when ``nx`` found it."""
        ...

    async def delete(self, *keys: str) -> int:
        """Delete ``keys``; returns how many existed."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""
        ...

    async def expire(self, key: str, seconds: float) -> bool:
        """Set a TTL (seconds, rounded up to ms); False when ``key`` does not exist."""
        ...

    async def ttl(self, key: str) -> float | None:
        """Remaining TTL in seconds; ``None`` when the key has none or does not exist."""
        ...

    async def incr(self, key: str, amount: int = 1) -> int:
        """Add ``amount`` to the integer at ``key`` (0 when missing); returns the new value."""
        ...

    async def lpush(self, key: str, *values: Value) -> int:
        """Push ``values`` at the head of a list, one by one; returns its length."""
        ...

    async def rpush(self, key: str, *values: Value) -> int:
        """Append ``values`` to a list; returns its length."""
        ...

    async def ltrim(self, key: str, start: int, stop: int) -> None:
        """Keep only the inclusive range ``start..stop`` of a list (negative: from the end)."""
        ...

    async def lrange(self, key: str, start: int, stop: int) -> list[bytes]:
        """The inclusive range ``start..stop`` of a list (``0, -1``: all of it)."""
        ...

    async def lindex(self, key: str, index: int) -> bytes | None:
        """The list element at ``index`` (None out of range)."""
        ...

    async def llen(self, key: str) -> int:
        """The length of a list (0 when missing)."""
        ...

    async def sadd(self, key: str, *members: Value) -> int:
        """Add set members; returns how many were new."""
        ...

    async def srem(self, key: str, *members: Value) -> int:
        """Remove set members; returns how many were there."""
        ...

    async def smembers(self, key: str) -> builtins.set[bytes]:
        """The members of a set (empty when missing)."""
        ...

    async def zadd(self, key: str, mapping: Mapping[Value, float]) -> int:
        """Add or re-score sorted-set members; returns how many were new."""
        ...

    async def zrem(self, key: str, *members: Value) -> int:
        """Remove sorted-set members; returns how many were there."""
        ...

    async def zrange(self, key: str, start: int, stop: int, *, desc: bool = False) -> list[bytes]:
        """Members by rank, inclusive ``start..stop`` (``desc``: highest score first)."""
        ...

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
        """Members with ``min <= score <= max`` in score order, ``offset``/``count`` paged."""
        ...

    async def zscore(self, key: str, member: Value) -> float | None:
        """The score of ``member`` (None when absent)."""
        ...

    async def zcard(self, key: str) -> int:
        """The number of members of a sorted set."""
        ...

    async def hset(self, key: str, mapping: Mapping[str, Value]) -> int:
        """Set hash fields; returns how many were new."""
        ...

    async def hget(self, key: str, field: str) -> bytes | None:
        """One hash field (None when absent)."""
        ...

    async def hdel(self, key: str, *fields: str) -> int:
        """Delete hash fields; returns how many were there."""
        ...

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        """All fields of a hash (empty when missing)."""
        ...

    async def publish(self, channel: str, message: Value) -> int:
        """Publish on a pubsub channel; returns how many subscribers received it (at most once)."""
        ...

    async def run_script(self, script: Script, keys: Sequence[str], args: Sequence[Value]) -> Any:
        """Run ``script`` atomically (EVALSHA, loading it after NOSCRIPT)."""
        ...

    async def run_script_many(
        self, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[Value]]]
    ) -> list[Any]:
        """Run ``script`` once per ``(keys, args)`` call, in order, in one round trip.

        Optional for third-party stores (callers fall back to ``run_script``).
        Each call is atomic on its own, the batch is not. Returns one entry
        per call: the script's reply, or the :class:`~relayna.errors.StoreError`
        (usually :class:`~relayna.errors.ScriptError`) that call failed with.

        Raises:
            StoreError: the round trip itself failed (connection lost): it is
                unknown which calls ran.
        """
        ...

    def subscribe(self, *channels: str) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe to ``channels`` for the ``async with`` block (see the module docs)."""
        ...


@runtime_checkable
class ShardedPubSub(Protocol):
    """A store offering sharded pubsub (``SPUBLISH``/``SSUBSCRIBE``), besides :class:`Store`.

    Every store shipped with relayna implements it; the status store's
    cluster key layout needs it (its channels are sharded).
    """

    async def spublish(self, channel: str, message: Value) -> int:
        """Publish on a sharded channel; returns how many sharded subscribers got it."""
        ...

    def ssubscribe(self, *channels: str) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe to sharded ``channels`` for the ``async with`` block."""
        ...
