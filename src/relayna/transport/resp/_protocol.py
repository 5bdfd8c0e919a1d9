"""RESP2, sans-IO: encode commands, parse replies from bytes fed in.

:func:`encode_command` turns one command into its wire bytes;
:class:`ReplyParser` is fed whatever the socket returned and hands out
complete replies one at a time (:data:`NEED_DATA` until one is complete).
Error replies are values (:class:`ErrorReply`), not exceptions: in a
pipeline one failed command must not hide the replies after it.

Replies: simple string and bulk string → ``bytes``; integer → ``int``;
nil bulk/array → ``None``; array → ``list``. The parser refuses what a
Redis server never sends (unknown type byte, a header line without CRLF
after 64 KiB, a length beyond 512 MiB or nesting deeper than 32) with
:class:`RespProtocolError` (a :class:`~relayna.errors.StoreConnectionLost`):
the connection is then unusable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from relayna.errors import StoreConnectionLost

__all__ = [
    "NEED_DATA",
    "ErrorReply",
    "ReplyParser",
    "RespProtocolError",
    "encode_command",
]

MAX_BULK: Final = 512 * 1024 * 1024  # Redis's own proto-max-bulk-len default
MAX_LINE: Final = 64 * 1024
MAX_DEPTH: Final = 32


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()
_NOTHING: Final = object()


class RespProtocolError(StoreConnectionLost):
    """The server sent bytes that are not RESP2 (or exceed the parser's limits);
    the connection is dropped, as if the server had closed it."""


class ErrorReply:
    """An error reply (``-ERR ...``); ``code`` is its first word (``ERR``, ``NOSCRIPT``...)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    @property
    def code(self) -> str:
        return self.message.split(" ", 1)[0]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrorReply) and other.message == self.message

    def __hash__(self) -> int:
        return hash(self.message)

    def __repr__(self) -> str:
        return f"ErrorReply({self.message!r})"


def _arg(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int) and not isinstance(value, bool):
        return b"%d" % value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, float):
        return repr(value).encode()
    raise TypeError(f"unsupported Redis command argument type {type(value).__name__}")


def encode_command(args: Sequence[Any]) -> bytes:
    """``args`` (bytes, str as UTF-8, int, float) as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for value in args:
        data = _arg(value)
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(b"\r\n")
    return b"".join(parts)


_TYPES = frozenset(b"$*:+-")


class _Incomplete(Exception):
    """Internal: the buffer ends inside a value; ``need`` is a lower bound on the buffer size."""

    def __init__(self, need: int) -> None:
        self.need = need


class _ArrayHeader:
    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count


def _shown(header: bytes) -> str:
    return repr(header[:40] + (b"..." if len(header) > 40 else b""))


class ReplyParser:
    """Buffers bytes and parses complete replies, in order.

    Parsing is incremental: the elements of an array that arrived are kept
    (and their bytes dropped) while the rest is awaited, so a large reply
    fed in many chunks costs linear time.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._need = 0  # don't try again before the buffer holds this many bytes
        self._stack: list[tuple[list[Any], int]] = []  # arrays being filled

    @property
    def buffered(self) -> int:
        """Bytes received and not yet part of a returned reply (0: idle, in step)."""
        return len(self._buf) - self._pos + len(self._stack)

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._need -= self._pos
            self._pos = 0
        self._buf += data

    def next_reply(self) -> Any:
        """The next complete reply, or :data:`NEED_DATA`.

        Raises:
            RespProtocolError: the bytes are not a valid reply.
        """
        buf = self._buf
        stack = self._stack
        while True:
            value: Any = _NOTHING
            if stack:  # an array being filled: take its bulk strings in one go
                items, count = stack[-1]
                pos = self._bulks(self._pos, items, count)
                if pos != self._pos:
                    self._pos = pos
                    self._need = 0  # it was for an element now parsed
                if len(items) == count:
                    stack.pop()
                    value = items
            if value is _NOTHING:
                if len(buf) <= self._pos or len(buf) < self._need:
                    return NEED_DATA
                try:
                    value, self._pos = self._value(self._pos)
                except _Incomplete as exc:
                    self._need = exc.need
                    return NEED_DATA
                self._need = 0
                if isinstance(value, _ArrayHeader):
                    if len(stack) >= MAX_DEPTH:
                        raise RespProtocolError(f"reply nested deeper than {MAX_DEPTH} arrays")
                    if value.count:
                        stack.append(([], value.count))
                        continue
                    value = []
            while stack:
                items, count = stack[-1]
                items.append(value)
                if len(items) < count:
                    break
                stack.pop()
                value = items
            else:
                if self._pos == len(buf):
                    buf.clear()
                    self._pos = 0
                return value

    def _bulks(self, pos: int, items: list[Any], count: int) -> int:
        """Fast path: append the complete, well-formed bulk strings and nils at
        ``pos`` (up to ``count`` items in all); return where they end.

        Anything else (another type, a partial or malformed element) stops
        it; the general path then parses or refuses that element.
        """
        buf = self._buf
        size = len(buf)
        find = buf.find
        while len(items) < count and pos < size and buf[pos] == 36:  # $
            end = find(b"\r\n", pos + 1, pos + 14)  # "$" + at most 9 digits (MAX_BULK)
            if end < 0:
                break
            digits = buf[pos + 1 : end]
            if not digits.isdigit():
                if digits == b"-1":  # nil (HMGET of a missing field): common, kept here
                    items.append(None)
                    pos = end + 2
                    continue
                break
            start = end + 2
            stop = start + int(digits)
            if stop + 2 > size or buf[stop] != 13 or buf[stop + 1] != 10:
                break
            if stop - start > MAX_BULK:
                break
            items.append(bytes(buf[start:stop]))
            pos = stop + 2
        return pos

    def _line(self, pos: int) -> int:
        end = self._buf.find(b"\r\n", pos, pos + MAX_LINE + 2)
        if end < 0:
            if len(self._buf) - pos >= MAX_LINE + 2:
                raise RespProtocolError("reply header longer than 64 KiB")
            raise _Incomplete(len(self._buf) + 1)
        return end

    def _number(self, pos: int, end: int, what: str) -> int:
        text = bytes(self._buf[pos + 1 : end])
        digits = text[1:] if text[:1] == b"-" else text
        if not digits.isdigit():
            raise RespProtocolError(f"bad {what} in reply {_shown(bytes(self._buf[pos:end]))}")
        return int(text)

    def _length(self, pos: int, end: int) -> int:
        n = self._number(pos, end, "length")
        if n < -1:
            raise RespProtocolError(f"negative length {n} in reply header")
        if n > MAX_BULK:
            raise RespProtocolError(f"reply length {n} exceeds the {MAX_BULK}-byte limit")
        return n

    def _value(self, pos: int) -> tuple[Any, int]:
        """One scalar (or an array's header) starting at ``pos``, and where it ends."""
        buf = self._buf
        kind = buf[pos]
        if kind not in _TYPES:  # fail now, not after 64 KiB or a timeout
            raise RespProtocolError(f"unknown RESP type byte {bytes([kind])!r}")
        end = self._line(pos)
        if kind == 36:  # $ bulk string
            n = self._length(pos, end)
            if n < 0:
                return None, end + 2
            start = end + 2
            stop = start + n
            if len(buf) < stop + 2:
                raise _Incomplete(stop + 2)
            if buf[stop : stop + 2] != b"\r\n":
                raise RespProtocolError("bulk string not terminated by CRLF")
            return bytes(buf[start:stop]), stop + 2
        if kind == 42:  # * array
            n = self._length(pos, end)
            if n < 0:
                return None, end + 2
            return _ArrayHeader(n), end + 2
        if kind == 58:  # : integer
            return self._number(pos, end, "integer"), end + 2
        if kind == 43:  # + simple string
            return bytes(buf[pos + 1 : end]), end + 2
        if kind == 45:  # - error
            return ErrorReply(buf[pos + 1 : end].decode("utf-8", "replace")), end + 2
        raise RespProtocolError(f"unknown RESP type byte {bytes([kind])!r}")
