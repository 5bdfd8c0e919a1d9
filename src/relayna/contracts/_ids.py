"""The identifier rule: what a task_id, correlation_id, stage or batch_id may be.

Identifiers become Redis keys, pub/sub channel names, URL path segments, SSE
``id:`` fields, AMQP headers and log fields, so they are checked at every
ingress: 1..256 characters of ``[A-Za-z0-9._:@/+=-]``, no leading or trailing
dot and no ``..``. That excludes whitespace, CR/LF, glob characters (``*``,
``?``, ``[``), quotes, ``%`` and anything non-ASCII.
"""

from __future__ import annotations

import re
from typing import TypeGuard

from relayna.errors import ContractError

__all__ = ["IDENTIFIER_MAX_LENGTH", "is_valid_identifier", "validate_identifier"]

IDENTIFIER_MAX_LENGTH = 256

_IDENTIFIER = re.compile(r"[A-Za-z0-9_:@/+=\-](?:[A-Za-z0-9._:@/+=\-]{0,254}[A-Za-z0-9_:@/+=\-])?")

#: Recently validated identifiers that needed the regex (task ids and
#: correlation ids recur across a task's status events). Only valid values are
#: added, so a hit is always a correct answer; the set is cleared when full.
RECENT_IDENTIFIERS: set[str] = set()
_RECENT_LIMIT = 4096


def is_valid_identifier(value: object) -> TypeGuard[str]:
    """True when ``value`` is a string that satisfies the identifier rule."""
    if type(value) is not str:
        return False
    # Fast path: ASCII letters/digits only (hex digests, plain ids) need no
    # regex; bytes.isalnum is a table lookup, str.isalnum a Unicode one.
    if value.isascii() and value.encode().isalnum():
        return len(value) <= IDENTIFIER_MAX_LENGTH
    if value in RECENT_IDENTIFIERS:
        return True
    if _IDENTIFIER.fullmatch(value) is None or ".." in value:
        return False
    if len(RECENT_IDENTIFIERS) >= _RECENT_LIMIT:
        RECENT_IDENTIFIERS.clear()
    RECENT_IDENTIFIERS.add(value)
    return True


def _describe(value: str) -> str:
    if not value:
        return "must not be empty"
    if len(value) > IDENTIFIER_MAX_LENGTH:
        return f"longer than {IDENTIFIER_MAX_LENGTH} characters ({len(value)})"
    if value[0] == "." or value[-1] == ".":
        return "must not start or end with '.'"
    if ".." in value:
        return "must not contain '..'"
    bad = next((ch for ch in value if not _IDENTIFIER.fullmatch(ch)), None)
    return f"character {bad!r} not allowed (use A-Z a-z 0-9 . _ : @ / + = -)"


def validate_identifier(value: object, field: str = "task_id") -> str:
    """Return ``value`` when it is a valid identifier.

    Raises:
        ContractError: reason ``schema``, with ``field`` as the error path.
    """
    if is_valid_identifier(value):
        return value
    if not isinstance(value, str):
        msg = f"must be a string, got {type(value).__name__}"
    else:
        msg = _describe(value)
    raise ContractError(f"invalid {field}", errors=[(field, msg)], reason="schema")
