"""``cjson.encode`` / ``cjson.decode`` for scripts in the memory store.

Redis bundles lua-cjson; this is its behaviour with Redis's defaults, written
in Python over the Lua runtime: numbers as ``%.14g``, ``/`` escaped as
``\\/``, an empty table encodes as ``{}``, a table whose keys are the
integers 1..n (not more than half holes, or n <= 10) is an array, tables
nest at most 1000 deep, NaN and infinity cannot be encoded. Object members
come out in the order Lua's ``next`` walks the table, as in Redis (both run
Lua 5.1's table implementation). Decoding builds tables in document order;
JSON ``null`` becomes ``cjson.null``.

Both functions return ``(ok, value_or_error)``; the Lua side raises the error.
"""

from __future__ import annotations

import json
import math
from typing import Any

import lupa.lua51 as lua

__all__ = ["CjsonCodec"]

_MAX_DEPTH = 1000
_ESCAPES = {i: b"\\u%04x" % i for i in range(32)} | {
    ord("\b"): b"\\b",
    ord("\t"): b"\\t",
    ord("\n"): b"\\n",
    ord("\f"): b"\\f",
    ord("\r"): b"\\r",
    ord('"'): b'\\"',
    ord("\\"): b"\\\\",
    ord("/"): b"\\/",
    127: b"\\u007f",
}
_ESCAPE_TABLE = {k: v.decode() for k, v in _ESCAPES.items()}


class _EncodeError(Exception):
    pass


def _number(value: float) -> bytes:
    if math.isnan(value) or math.isinf(value):
        raise _EncodeError("Cannot serialise number: must not be NaN or Infinity")
    return b"%.14g" % value


def _string(value: bytes) -> bytes:
    text = value.decode("latin-1").translate(_ESCAPE_TABLE)
    return b'"' + text.encode("latin-1") + b'"'


class CjsonCodec:
    """cjson for one Lua runtime (it builds that runtime's tables)."""

    def __init__(self, runtime: Any) -> None:
        self._table = runtime.table_from

    def encode(self, value: Any) -> tuple[bool, bytes]:
        try:
            return True, self._encode(value, 0)
        except _EncodeError as exc:
            return False, str(exc).encode()

    def _encode(self, value: Any, depth: int) -> bytes:
        if value is None:
            return b"null"
        if value is True:
            return b"true"
        if value is False:
            return b"false"
        if isinstance(value, (int, float)):
            return _number(float(value))
        if isinstance(value, bytes):
            return _string(value)
        kind = lua.lua_type(value)
        if kind == "userdata":  # cjson.null is the only userdata a script can reach
            return b"null"
        if kind != "table":
            raise _EncodeError(f"Cannot serialise {kind}: type not supported")
        if depth + 1 > _MAX_DEPTH:
            raise _EncodeError(f"Cannot serialise, excessive nesting ({depth + 1})")
        items = list(value.items())
        length = _array_length(items)
        if length > 0:
            parts = [self._encode(value[i], depth + 1) for i in range(1, length + 1)]
            return b"[" + b",".join(parts) + b"]"
        members = []
        for key, item in items:
            if isinstance(key, bytes):
                name = _string(key)
            elif isinstance(key, (int, float)) and not isinstance(key, bool):
                name = b'"' + _number(float(key)) + b'"'
            else:
                raise _EncodeError("Cannot serialise table: table key must be a number or string")
            members.append(name + b":" + self._encode(item, depth + 1))
        return b"{" + b",".join(members) + b"}"

    def decode(self, text: Any, null: Any) -> tuple[bool, Any]:
        if not isinstance(text, bytes):
            return False, b"bad argument #1 to 'decode' (string expected)"
        try:
            document = json.loads(text, parse_float=float, parse_constant=_reject)
        except (ValueError, RecursionError) as exc:
            return False, f"Expected value but found invalid token: {exc}".encode()
        return True, self._to_lua(document, null)

    def _to_lua(self, value: Any, null: Any) -> Any:
        if value is None:
            return null
        if isinstance(value, str):
            return value.encode("utf-8", "surrogatepass")
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return float(value) if abs(value) < 2**1023 else math.copysign(math.inf, value)
        if isinstance(value, list):
            return self._table([self._to_lua(v, null) for v in value])
        if isinstance(value, dict):
            return self._table(
                {
                    k.encode("utf-8", "surrogatepass"): self._to_lua(v, null)
                    for k, v in value.items()
                }
            )
        return value


def _array_length(items: list[tuple[Any, Any]]) -> int:
    """lua-cjson's array test: keys 1..n with few holes → n; otherwise 0 (an object)."""
    highest = 0
    for key, _ in items:
        if not isinstance(key, (int, float)) or isinstance(key, bool):
            return 0
        if key < 1 or key != math.floor(key):
            return 0
        highest = max(highest, int(key))
    if highest > 10 and highest > 2 * len(items):
        raise _EncodeError("Cannot serialise table: excessively sparse array")
    return highest


def _reject(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
