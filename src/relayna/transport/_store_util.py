"""Small helpers shared by the store adapters: value encoding, TTL rounding,
and unwrapping the exception groups that an adapter's internal task groups
would otherwise leak to callers."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

from relayna.transport._store import Script, Value

__all__ = ["encode_value", "script_sha", "sole_exception", "ttl_ms"]


def encode_value(value: Value) -> bytes:
    """Encode a command argument the way Redis clients do (str as UTF-8, numbers as text)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        raise TypeError("bool is not a store value; use 0/1 or a string")
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, float):
        return repr(value).encode()
    raise TypeError(f"unsupported store value type {type(value).__name__}")


def ttl_ms(seconds: float) -> int:
    """A TTL in seconds rounded *up* to whole milliseconds (at least 1 ms)."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"TTL must be a positive number of seconds, got {seconds!r}")
    return max(1, math.ceil(seconds * 1000))


def script_sha(script: Script) -> str:
    """The SHA1 that Redis uses to identify the script's Lua source."""
    return hashlib.sha1(script.lua.encode()).hexdigest()


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def sole_exception(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one leaf exception of a (possibly nested) group, or ``None`` if several.

    Adapters own internal task groups (the Redis client's pool, the pubsub
    reader); an error raised by the caller's code or by one command passes
    through them wrapped. When exactly one exception is inside, the adapter
    re-raises it unwrapped so callers see ``StoreError`` rather than a group.
    """
    leaves = list(_leaves(group))
    if len(leaves) == 1:
        return leaves[0]
    return None
