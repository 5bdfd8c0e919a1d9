"""Server-Sent Events frame encoding (sans-IO).

Every frame is built from single lines: ``data:`` carries one line of compact
JSON (orjson escapes CR, LF and every other control character inside
strings), so a status text such as ``"\\n\\ndata: {...}"`` can never forge a
frame. ``id:`` and ``event:`` values are checked for CR, LF and NUL (the
SSE parser would otherwise split or ignore them).
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["KEEPALIVE", "encode_comment", "encode_frame", "encode_retry"]

_FORBIDDEN = ("\r", "\n", "\x00")


def _field(name: str, value: str) -> bytes:
    if any(ch in value for ch in _FORBIDDEN):
        raise ValueError(f"SSE {name} must not contain CR, LF or NUL: {value!r}")
    return f"{name}: {value}\n".encode()


def encode_frame(
    *,
    data: Any,
    event: str | None = None,
    id: str | None = None,
    retry_ms: int | None = None,
) -> bytes:
    """One SSE event: optional ``id:``, ``event:``, ``retry:``, then one ``data:`` line.

    ``data`` is any JSON-serialisable value, or ``bytes`` that already are
    one line of JSON (checked: no CR/LF).

    Raises:
        ValueError: a field contains CR, LF or NUL, or ``retry_ms`` < 0.
        TypeError: ``data`` is not JSON-serialisable.
    """
    out = bytearray()
    if id is not None:
        out += _field("id", id)
    if event is not None:
        out += _field("event", event)
    if retry_ms is not None:
        out += encode_retry(retry_ms)[:-1]
    if isinstance(data, bytes):
        if b"\r" in data or b"\n" in data:
            raise ValueError("SSE data bytes must be one line")
        line = data
    else:
        line = orjson.dumps(data)
    out += b"data: " + line + b"\n\n"
    return bytes(out)


def encode_retry(retry_ms: int) -> bytes:
    """A ``retry:`` field on its own (tells EventSource its reconnect delay)."""
    if retry_ms < 0:
        raise ValueError("retry must be >= 0")
    return f"retry: {int(retry_ms)}\n\n".encode()


def encode_comment(text: str = "") -> bytes:
    """A comment line (ignored by clients; used for keep-alives)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return b"".join(f": {line}\n".encode() for line in lines) + b"\n"


#: The keep-alive comment sent when a stream was idle for the keep-alive interval.
KEEPALIVE = encode_comment("keepalive")
