"""The memory store's synchronous core: Redis semantics on Python containers.

It implements :class:`~relayna.transport.ScriptOps` (the interface Python
scripts once used; the store's Lua runs through :mod:`._store_commands` on
it); nothing here awaits, so a script is atomic. Expiry
is lazy: a key past its deadline (on the injected clock, ``anyio.current_time``
in the store) is removed when it is next touched.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from relayna.errors import StoreError
from relayna.transport._pubsub_fanout import Fanout
from relayna.transport._store import Value
from relayna.transport._store_util import encode_value, ttl_ms

__all__ = ["MemoryCore", "ZsetBox"]

T = TypeVar("T")
_Zset = dict[bytes, float]


def _range(length: int, start: int, stop: int) -> tuple[int, int]:
    """Redis inclusive index range → Python slice bounds."""
    if start < 0:
        start = max(length + start, 0)
    if stop < 0:
        stop = length + stop
    stop = min(stop, length - 1)
    if start > stop:
        return 0, 0
    return start, stop + 1


class MemoryCore:
    def __init__(
        self,
        clock: Callable[[], float],
        fanout: Fanout,
        url: str,
        sharded: Fanout | None = None,
    ) -> None:
        self._clock = clock
        self._fanout = fanout
        # Sharded channels are a namespace of their own (as in Redis).
        self._sharded = sharded if sharded is not None else Fanout(url=url)
        self._url = url
        self._data: dict[str, Any] = {}
        self._expires: dict[str, float] = {}
        self._frozen: float | None = None

    # -- internals -------------------------------------------------------------
    def _live(self, key: str) -> Any:
        deadline = self._expires.get(key)
        if deadline is not None and self.now() >= deadline:
            del self._expires[key]
            self._data.pop(key, None)
        return self._data.get(key)

    def _typed(self, key: str, kind: type[T]) -> T | None:
        value = self._live(key)
        if value is not None and not isinstance(value, kind):
            raise StoreError(
                "WRONGTYPE Operation against a key holding the wrong kind of value", url=self._url
            )
        return value

    def _create(self, key: str, kind: type[T]) -> T:
        value = self._typed(key, kind)
        if value is None:
            value = self._data[key] = kind()
        return value

    def _drop_if_empty(self, key: str) -> None:
        if not self._data.get(key):
            self._data.pop(key, None)
            self._expires.pop(key, None)

    # -- primitives for the command interpreter (``_store_commands``) ---------
    def now(self) -> float:
        """The store clock, in seconds (frozen while a script runs, as in Redis)."""
        frozen = self._frozen
        return self._clock() if frozen is None else frozen

    def freeze(self) -> None:
        """Stop the clock at its current time until :meth:`thaw` (one script's run)."""
        self._frozen = self._clock()

    def thaw(self) -> None:
        self._frozen = None

    def live(self, key: str) -> Any:
        """The value held at ``key`` (None when missing or expired)."""
        return self._live(key)

    def typed(self, key: str, kind: type[T]) -> T | None:
        """The value at ``key`` if it is a ``kind`` (None when missing); WRONGTYPE otherwise."""
        return self._typed(key, kind)

    def create(self, key: str, kind: type[T]) -> T:
        """The ``kind`` at ``key``, created empty when missing; WRONGTYPE otherwise."""
        return self._create(key, kind)

    def put(self, key: str, value: Any, *, keep_ttl: bool = False) -> None:
        """Store ``value`` at ``key``, dropping its TTL unless ``keep_ttl``."""
        self._data[key] = value
        if not keep_ttl:
            self._expires.pop(key, None)

    def drop_if_empty(self, key: str) -> None:
        """Remove ``key`` when its collection became empty (as Redis does)."""
        self._drop_if_empty(key)

    def deadline(self, key: str) -> float | None:
        """When ``key`` expires on the store clock (None: no TTL or missing)."""
        return self._expires.get(key) if self._live(key) is not None else None

    def set_deadline(self, key: str, at: float | None) -> None:
        """Expire ``key`` at ``at`` (None removes its TTL); ``key`` must exist."""
        if at is None:
            self._expires.pop(key, None)
        else:
            self._expires[key] = at

    def keys(self) -> list[str]:
        """Every live key."""
        return [k for k in list(self._data) if self._live(k) is not None]

    def sweep(self) -> None:
        """Remove every expired key (the store calls this now and then)."""
        for key in [k for k, d in self._expires.items() if self.now() >= d]:
            self._live(key)

    # -- strings & keys --------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        return self._typed(key, bytes)

    def set(self, key: str, value: Value, *, ttl: float | None = None, nx: bool = False) -> bool:
        if nx and self._live(key) is not None:
            return False
        self._data[key] = encode_value(value)
        self._expires.pop(key, None)
        if ttl is not None:
            self._expires[key] = self.now() + ttl_ms(ttl) / 1000
        return True

    def delete(self, *keys: str) -> int:
        removed = 0
        for key in keys:
            if self._live(key) is not None:
                del self._data[key]
                self._expires.pop(key, None)
                removed += 1
        return removed

    def exists(self, key: str) -> bool:
        return self._live(key) is not None

    def expire(self, key: str, seconds: float) -> bool:
        if self._live(key) is None:
            return False
        self._expires[key] = self.now() + ttl_ms(seconds) / 1000
        return True

    def ttl(self, key: str) -> float | None:
        if self._live(key) is None or key not in self._expires:
            return None
        return max(self._expires[key] - self.now(), 0.0)

    def incr(self, key: str, amount: int = 1) -> int:
        raw = self._typed(key, bytes)
        try:
            value = int(raw or b"0") + amount
        except ValueError:
            raise StoreError("ERR value is not an integer or out of range", url=self._url) from None
        self._data[key] = b"%d" % value
        return value

    # -- lists -----------------------------------------------------------------
    def lpush(self, key: str, *values: Value) -> int:
        items = self._create(key, list)
        for value in values:
            items.insert(0, encode_value(value))
        return len(items)

    def rpush(self, key: str, *values: Value) -> int:
        items = self._create(key, list)
        items.extend(encode_value(v) for v in values)
        return len(items)

    def ltrim(self, key: str, start: int, stop: int) -> None:
        items = self._typed(key, list)
        if items is None:
            return
        lo, hi = _range(len(items), start, stop)
        items[:] = items[lo:hi]
        self._drop_if_empty(key)

    def lrange(self, key: str, start: int, stop: int) -> list[bytes]:
        items: list[bytes] = self._typed(key, list) or []
        lo, hi = _range(len(items), start, stop)
        return items[lo:hi]

    def lindex(self, key: str, index: int) -> bytes | None:
        items: list[bytes] = self._typed(key, list) or []
        if -len(items) <= index < len(items):
            return items[index]
        return None

    def llen(self, key: str) -> int:
        return len(self._typed(key, list) or ())

    # -- sets ------------------------------------------------------------------
    def sadd(self, key: str, *members: Value) -> int:
        items = self._create(key, set)
        before = len(items)
        items.update(encode_value(m) for m in members)
        return len(items) - before

    def srem(self, key: str, *members: Value) -> int:
        items = self._typed(key, set)
        if items is None:
            return 0
        before = len(items)
        items.difference_update(encode_value(m) for m in members)
        self._drop_if_empty(key)
        return before - len(items)

    def smembers(self, key: str) -> builtins.set[bytes]:
        return set(self._typed(key, set) or ())

    # -- sorted sets -----------------------------------------------------------
    def _zset(self, key: str) -> _Zset:
        value = self._live(key)
        if value is not None and not isinstance(value, ZsetBox):
            raise StoreError(
                "WRONGTYPE Operation against a key holding the wrong kind of value", url=self._url
            )
        return value.scores if value is not None else {}

    def _sorted(self, key: str) -> list[tuple[float, bytes]]:
        return sorted((score, member) for member, score in self._zset(key).items())

    def zadd(self, key: str, mapping: Mapping[Value, float]) -> int:
        self._zset(key)  # type check
        box = self._data.setdefault(key, ZsetBox())
        added = 0
        for member, score in mapping.items():
            raw = encode_value(member)
            added += raw not in box.scores
            box.scores[raw] = float(score)
        self._drop_if_empty(key)
        return added

    def zrem(self, key: str, *members: Value) -> int:
        scores = self._zset(key)
        removed = sum(scores.pop(encode_value(m), None) is not None for m in members)
        self._drop_if_empty(key)
        return removed

    def zrange(self, key: str, start: int, stop: int, *, desc: bool = False) -> list[bytes]:
        ordered = self._sorted(key)
        if desc:
            ordered.reverse()
        lo, hi = _range(len(ordered), start, stop)
        return [member for _, member in ordered[lo:hi]]

    def zrangebyscore(
        self,
        key: str,
        min: float,
        max: float,
        *,
        offset: int = 0,
        count: int | None = None,
        desc: bool = False,
    ) -> list[bytes]:
        ordered = [m for s, m in self._sorted(key) if min <= s <= max]
        if desc:
            ordered.reverse()
        end = None if count is None or count < 0 else offset + count
        return ordered[offset:end]

    def zscore(self, key: str, member: Value) -> float | None:
        return self._zset(key).get(encode_value(member))

    def zcard(self, key: str) -> int:
        return len(self._zset(key))

    # -- hashes ----------------------------------------------------------------
    def hset(self, key: str, mapping: Mapping[str, Value]) -> int:
        fields = self._create(key, dict)
        added = 0
        for field, value in mapping.items():
            raw = field.encode()
            added += raw not in fields
            fields[raw] = encode_value(value)
        self._drop_if_empty(key)
        return added

    def hget(self, key: str, field: str) -> bytes | None:
        fields: dict[bytes, bytes] = self._typed(key, dict) or {}
        return fields.get(field.encode())

    def hdel(self, key: str, *fields: str) -> int:
        items = self._typed(key, dict)
        if items is None:
            return 0
        removed = sum(items.pop(f.encode(), None) is not None for f in fields)
        self._drop_if_empty(key)
        return removed

    def hgetall(self, key: str) -> dict[bytes, bytes]:
        return dict(self._typed(key, dict) or {})

    # -- pubsub ----------------------------------------------------------------
    def publish(self, channel: str, message: Value) -> int:
        return self._fanout.dispatch(channel, encode_value(message))

    def spublish(self, channel: str, message: Value) -> int:
        """SPUBLISH: reaches only the subscribers of the sharded channel."""
        return self._sharded.dispatch(channel, encode_value(message))


class ZsetBox:
    """A sorted set's storage (a distinct type, so WRONGTYPE checks see it)."""

    __slots__ = ("scores",)

    def __init__(self) -> None:
        self.scores: _Zset = {}

    def __bool__(self) -> bool:
        return bool(self.scores)
