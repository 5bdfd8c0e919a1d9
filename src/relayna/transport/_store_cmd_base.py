"""Shared pieces of the memory store's Redis command interpreter.

Replies are ``int``, ``bytes``, ``None`` (nil), ``list`` of replies, or
:class:`Status` (``+OK``); errors raise :class:`ReplyError` with Redis's
text. Arguments are parsed the way Redis 7.0 parses them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from relayna.transport._store_memory_core import MemoryCore

__all__ = [
    "NOT_INTEGER",
    "OK",
    "SYNTAX",
    "WRONGTYPE",
    "Command",
    "CommandTable",
    "Reply",
    "ReplyError",
    "Status",
    "format_double",
    "key_of",
    "parse_float",
    "parse_int",
    "ttl_ms",
    "upper_words",
]


class Status(bytes):
    """A status reply (``+OK``): a Lua table ``{ok = ...}`` inside scripts."""


class ReplyError(Exception):
    """An error reply; ``str(exc)`` is Redis's text, starting with its code."""


Reply: TypeAlias = int | bytes | list[Any] | None
Handler: TypeAlias = Callable[[MemoryCore, Sequence[bytes]], Reply]

OK = Status(b"OK")
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_INTEGER = "ERR value is not an integer or out of range"
SYNTAX = "ERR syntax error"
_FLOAT = re.compile(rb"[+-]?(?:inf|infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?)\Z", re.I)
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


class Command:
    """A command: its handler and arity (``-n``: at least ``n`` words, name included)."""

    __slots__ = ("arity", "handler", "name")

    def __init__(self, name: str, arity: int, handler: Handler) -> None:
        self.name, self.arity, self.handler = name, arity, handler


class CommandTable(dict[bytes, Command]):
    """Commands by upper-case name; :meth:`command` registers a handler."""

    def command(self, name: str, arity: int) -> Callable[[Handler], Handler]:
        """Register the decorated handler as ``name`` (arity as in ``COMMAND INFO``)."""

        def register(handler: Handler) -> Handler:
            self[name.encode()] = Command(name.lower(), arity, handler)
            return handler

        return register


# -- argument parsing -------------------------------------------------------------


def key_of(raw: bytes) -> str:
    """A key as the core stores it (any bytes round-trip)."""
    return raw.decode("utf-8", "surrogateescape")


def parse_int(raw: bytes, error: str = NOT_INTEGER) -> int:
    """Redis's strict 64-bit integer (no sign '+', no spaces, no leading zeros)."""
    try:
        value = int(raw)
    except ValueError:
        raise ReplyError(error) from None
    if b"%d" % value != raw or not INT_MIN <= value <= INT_MAX:  # only the canonical form
        raise ReplyError(error)
    return value


def parse_float(raw: bytes, error: str = "ERR value is not a valid float") -> float:
    """A double as Redis reads it (``inf``/``-inf`` allowed, ``nan`` refused)."""
    if not _FLOAT.match(raw):
        raise ReplyError(error)
    return float(raw)


def format_double(value: float) -> bytes:
    """A double as Redis 7.0 replies it (``%.17g``; ``inf``/``-inf``)."""
    return b"%.17g" % value


def ttl_ms(raw: bytes, unit: int, cmd: str) -> int:
    value = parse_int(raw, f"ERR invalid expire time in '{cmd}' command")
    ms = value * unit
    if not INT_MIN <= ms <= INT_MAX:
        raise ReplyError(f"ERR invalid expire time in '{cmd}' command")
    return ms


def upper_words(args: Sequence[bytes]) -> list[bytes]:
    return [a.upper() for a in args]
