"""Small helpers shared by the store adapters: value encoding, TTL rounding,
and unwrapping the exception groups that an adapter's internal task groups
would otherwise leak to callers."""

from __future__ import annotations

import functools
import hashlib
import math

from relayna.transport._store import Script, Value

__all__ = ["encode_value", "script_sha", "ttl_ms"]


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
    return _sha_of(script.lua)


@functools.lru_cache(maxsize=256)
def _sha_of(lua: str) -> str:  # every script call asks: hash each source once
    return hashlib.sha1(lua.encode()).hexdigest()
