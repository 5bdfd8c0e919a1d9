"""Small helpers shared by the store adapters: value encoding, TTL rounding,
and unwrapping the exception groups that an adapter's internal task groups
would otherwise leak to callers."""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Sequence
from typing import Any

from relayna.errors import StoreError
from relayna.transport._store import Script, Store, Value

__all__ = ["encode_value", "run_script_calls", "script_sha", "ttl_ms"]


async def run_script_calls(
    store: Store, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[Value]]]
) -> list[Any]:
    """One reply (or the :class:`StoreError` of that call) per ``(keys, args)``
    call of ``script``: one round trip with ``run_script_many`` where the store
    has it, else one ``run_script`` each.

    Raises:
        StoreError: the round trip itself failed (``run_script_many``).
    """
    many = getattr(store, "run_script_many", None)
    if many is not None:
        return list(await many(script, calls))
    out: list[Any] = []
    for keys, args in calls:
        try:
            out.append(await store.run_script(script, keys, args))
        except StoreError as exc:
            out.append(exc)
    return out


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
