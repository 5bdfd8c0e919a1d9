"""Pure helpers: field-table copies, routing matchers, argument equivalence.

No state and no I/O; everything here is plain synchronous code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "KNOWN_QUEUE_ARGUMENTS",
    "copy_table",
    "copy_value",
    "freeze",
    "headers_match",
    "topic_matches",
    "utc_seconds",
]

#: Queue arguments RabbitMQ compares on redeclare (others are ignored there too).
KNOWN_QUEUE_ARGUMENTS = frozenset(
    {
        "x-expires",
        "x-message-ttl",
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
        "x-max-length",
        "x-max-length-bytes",
        "x-max-in-memory-length",
        "x-max-in-memory-bytes",
        "x-max-priority",
        "x-overflow",
        "x-queue-mode",
        "x-single-active-consumer",
        "x-queue-type",
        "x-quorum-initial-group-size",
        "x-delivery-limit",
        "x-dead-letter-strategy",
        "x-queue-master-locator",
        "x-initial-cluster-size",
        "x-max-age",
        "x-stream-max-segment-size-bytes",
    }
)


def utc_seconds(value: datetime) -> datetime:
    """AMQP timestamps carry whole seconds; naive datetimes are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def copy_value(value: Any) -> Any:
    """Deep-copy a field value the way a round trip over the wire would."""
    if isinstance(value, Mapping):
        return copy_table(value)
    if isinstance(value, (list, tuple)):
        return [copy_value(item) for item in value]
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, datetime):
        return utc_seconds(value)
    return value


def copy_table(table: Mapping[str, Any] | None) -> dict[str, Any]:
    return {str(key): copy_value(value) for key, value in (table or {}).items()}


def freeze(value: Any) -> Any:
    """A hashable, order-insensitive (for tables) form of a field value."""
    if isinstance(value, Mapping):
        return frozenset((str(k), freeze(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    if isinstance(value, (bool, int, float, str, bytes, Decimal, datetime)) or value is None:
        return (type(value).__name__, value) if isinstance(value, bool) else value
    return repr(value)


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more words."""
    return _topic(pattern.split("."), routing_key.split("."))


def _topic(pattern: Sequence[str], words: Sequence[str]) -> bool:
    # Dynamic programming over (pattern index, word index).
    reachable = {0}
    for word in [*words, None]:
        expanded: set[int] = set()
        stack = list(reachable)
        while stack:  # '#' may match zero words: close over it
            i = stack.pop()
            if i in expanded:
                continue
            expanded.add(i)
            if i < len(pattern) and pattern[i] == "#":
                stack.append(i + 1)
        if word is None:
            return len(pattern) in expanded
        reachable = set()
        for i in expanded:
            if i >= len(pattern):
                continue
            token = pattern[i]
            if token == "#":
                reachable.add(i)
            elif token in ("*", word):
                reachable.add(i + 1)
        if not reachable:
            return False
    return False  # pragma: no cover - loop always returns


def headers_match(binding_args: Mapping[str, Any], headers: Mapping[str, Any]) -> bool:
    """Headers-exchange matching with ``x-match`` all / any (/ all-with-x / any-with-x)."""
    mode = str(binding_args.get("x-match", "all"))
    with_x = mode.endswith("-with-x")
    wanted = {
        key: value
        for key, value in binding_args.items()
        if key != "x-match" and (with_x or not key.startswith("x-"))
    }
    if mode.startswith("any"):
        return any(_header_matches(key, value, headers) for key, value in wanted.items())
    return all(_header_matches(key, value, headers) for key, value in wanted.items())


def _header_matches(key: str, value: Any, headers: Mapping[str, Any]) -> bool:
    if key not in headers:
        return False
    if value is None:  # a void binding value matches on presence
        return True
    return bool(freeze(headers[key]) == freeze(value))
