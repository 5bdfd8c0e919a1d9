"""AMQP header names relayna writes, a reader for both namings, strict parsers
and the header budget.

RabbitMQ 3.13+/4.0 treats ``x-`` headers as the broker's own, so relayna writes
``relayna-*`` names. The original wrote ``x-relayna-*``; :func:`get_header`
reads either (the new name wins), so messages parked by the original keep
their retry state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from relayna.contracts._limits import DEFAULT_LIMITS, Limits
from relayna.errors import ContractError

__all__ = [
    "BATCH_ID", "BATCH_INDEX", "BATCH_SIZE", "DEADLINE", "DLQ_ID", "EXCEPTION_TYPE", "FAILURE_REASON",
    "LEGACY_PREFIX", "MANUAL_RETRY_AT", "MANUAL_RETRY_COUNT", "MANUAL_RETRY_FROM_FAILURE_ID",
    "MANUAL_RETRY_FROM_TASK_TYPE", "MANUAL_RETRY_HEADERS", "MANUAL_RETRY_REASON",
    "MANUAL_RETRY_SOURCE_CONSUMER", "MAX_ATTEMPT_VALUE", "MAX_RETRIES", "MESSAGE_ID",
    "MESSAGE_ID_HEADER", "ORIGINAL_EXCEPTION_TYPE", "ORIGINAL_FAILURE_REASON",
    "ORIGINAL_RETRY_ATTEMPT", "ORIGIN_STAGE", "REPLAYED_AT", "REPLAYED_FROM_DLQ",
    "REPLAY_META", "REPLAY_REASON", "REPLAY_STAGE", "REPLAY_TASK_ID", "RETRY_ATTEMPT",
    "RETRY_HEADERS", "SOURCE_QUEUE", "STAGE", "STATUS", "TASK_ID", "check_header_budget",
    "get_header", "legacy_name", "parse_count_header", "read_count_header", "without_headers",
]  # fmt: skip

LEGACY_PREFIX = "x-"

# Broker retry (set on the copy sent to <queue>.retry).
RETRY_ATTEMPT = "relayna-retry-attempt"
MAX_RETRIES = "relayna-max-retries"
SOURCE_QUEUE = "relayna-source-queue"
FAILURE_REASON = "relayna-failure-reason"
EXCEPTION_TYPE = "relayna-exception-type"
# Manual retry / hand-off.
MANUAL_RETRY_COUNT = "relayna-manual-retry-count"
MANUAL_RETRY_SOURCE_CONSUMER = "relayna-manual-retry-source-consumer"
MANUAL_RETRY_FROM_TASK_TYPE = "relayna-manual-retry-from-task-type"
MANUAL_RETRY_REASON = "relayna-manual-retry-reason"
MANUAL_RETRY_FROM_FAILURE_ID = "relayna-manual-retry-from-failure-id"
MANUAL_RETRY_AT = "relayna-manual-retry-at"
# DLQ replay.
ORIGINAL_RETRY_ATTEMPT = "relayna-original-retry-attempt"
ORIGINAL_FAILURE_REASON = "relayna-original-failure-reason"
ORIGINAL_EXCEPTION_TYPE = "relayna-original-exception-type"
REPLAYED_FROM_DLQ = "relayna-replayed-from-dlq"
DLQ_ID = "relayna-dlq-id"
REPLAYED_AT = "relayna-replayed-at"
MESSAGE_ID_HEADER = "relayna-message-id"
# Workflow replay requests.
REPLAY_TASK_ID = "relayna-replay-task-id"
REPLAY_STAGE = "relayna-replay-stage"
REPLAY_REASON = "relayna-replay-reason"
REPLAY_META = "relayna-replay-meta"
# Deadlines (absolute UTC, ISO 8601; relayna.contracts._deadline).
DEADLINE = "relayna-deadline"
# Plain headers, unchanged from the original.
TASK_ID = "task_id"
STATUS = "status"
BATCH_ID = "batch_id"
BATCH_INDEX = "batch_index"
BATCH_SIZE = "batch_size"
MESSAGE_ID = "message_id"
STAGE = "stage"
ORIGIN_STAGE = "origin_stage"

RETRY_HEADERS = (RETRY_ATTEMPT, FAILURE_REASON, EXCEPTION_TYPE)
MANUAL_RETRY_HEADERS = (
    MANUAL_RETRY_COUNT, MANUAL_RETRY_SOURCE_CONSUMER, MANUAL_RETRY_FROM_TASK_TYPE,
    MANUAL_RETRY_REASON, MANUAL_RETRY_FROM_FAILURE_ID, MANUAL_RETRY_AT,
)  # fmt: skip

#: Largest accepted attempt/count header value.
MAX_ATTEMPT_VALUE = 10**6


def legacy_name(name: str) -> str:
    """The original's spelling of a relayna header (``x-relayna-...``)."""
    return LEGACY_PREFIX + name if name.startswith("relayna-") else name


def get_header(headers: Mapping[str, Any] | None, name: str) -> Any:
    """The value of ``name``, else of its legacy ``x-`` spelling, else None."""
    if not headers:
        return None
    value = headers.get(name)
    if value is None and name.startswith("relayna-"):
        value = headers.get(LEGACY_PREFIX + name)
    return value


def without_headers(headers: Mapping[str, Any] | None, names: Iterable[str]) -> dict[str, Any]:
    """A copy of ``headers`` without ``names`` in either spelling."""
    drop: set[str] = set()
    for name in names:
        drop.add(name)
        drop.add(legacy_name(name))
    return {k: v for k, v in (headers or {}).items() if k not in drop}


def _invalid(name: str, msg: str) -> ContractError:
    return ContractError(f"invalid header {name}", errors=[(name, msg)], reason="invalid_header")


def parse_count_header(value: Any, name: str = RETRY_ATTEMPT) -> int:
    """Parse an attempt/count header strictly.

    Accepts a non-bool int, or an ASCII decimal string/bytes, in
    ``0..MAX_ATTEMPT_VALUE``; None means 0.

    Raises:
        ContractError: reason ``invalid_header`` for anything else (``"abc"``,
            ``-1``, ``2**70``, NaN, floats, booleans).
    """
    if value is None:
        return 0
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise _invalid(name, "not ASCII") from None
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 7:
            raise _invalid(name, f"not a decimal count: {value[:32]!r}")
        number = int(text)
    elif type(value) is int:
        number = value
    elif (isinstance(value, float) and not math.isfinite(value)) or (
        isinstance(value, Decimal) and not value.is_finite()  # math.isfinite raises on sNaN
    ):
        raise _invalid(name, "not a finite number")
    else:
        raise _invalid(name, f"expected an integer, got {type(value).__name__}")
    if not 0 <= number <= MAX_ATTEMPT_VALUE:
        raise _invalid(name, f"out of range 0..{MAX_ATTEMPT_VALUE}")
    return number


def read_count_header(headers: Mapping[str, Any] | None, name: str = RETRY_ATTEMPT) -> int:
    """:func:`parse_count_header` of :func:`get_header` (absent -> 0)."""
    return parse_count_header(get_header(headers, name), name)


def _scalar_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    if isinstance(value, Decimal):
        return 5
    return 8


def check_header_budget(headers: Mapping[str, Any] | None, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse header tables over the budget before anything reads them.

    Counts every entry, nested tables and arrays included, and the approximate
    encoded size of keys and values; stops as soon as a limit is crossed, so a
    10,000-entry table costs no more than the budget.

    Raises:
        ContractError: reason ``invalid_header``.
    """
    if not headers:
        return
    entries = 0
    size = 0
    stack: list[tuple[Any, int]] = [(headers, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > limits.max_depth:
            raise _invalid("headers", f"nested deeper than {limits.max_depth}")
        items = container.items() if isinstance(container, Mapping) else enumerate(container)
        for key, value in items:
            entries += 1
            if entries > limits.max_header_entries:
                raise _invalid("headers", f"more than {limits.max_header_entries} entries")
            if isinstance(key, str):
                size += len(key.encode("utf-8", "surrogatepass"))
            if isinstance(value, Mapping | list | tuple):
                stack.append((value, depth + 1))
            else:
                size += _scalar_size(value)
            if size > limits.max_header_bytes:
                raise _invalid("headers", f"larger than {limits.max_header_bytes} bytes")
