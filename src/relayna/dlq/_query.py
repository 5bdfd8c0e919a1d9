"""Listing queries: filters, the page cursor, and parsing them from strings.

Pure code, shared by the routes, the CLI and the store. Every bad value
raises :class:`~relayna.errors.ContractError` (the routes answer 422).

The cursor names a position in the newest-first order, ``"<score>:<dlq_id>"``
(dead-letter time in ms, then the id as a tie-break), never a list index:
records added or removed while a client pages neither repeat nor skip items.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

import attrs

from relayna.errors import ContractError

__all__ = [
    "DEFAULT_LIMIT",
    "INVESTIGATION_STATES",
    "MAX_LIMIT",
    "STATES",
    "Cursor",
    "DLQQuery",
    "check_filter",
    "parse_datetime",
    "parse_limit",
    "parse_query",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
#: Record states; ``replaying`` while a replay holds the record's lock.
STATES = ("dead_lettered", "replaying", "replayed")
INVESTIGATION_STATES = ("unreviewed", "investigated")

_CURSOR = re.compile(r"(\d{1,16}):([A-Za-z0-9_\-]{1,128})")
_MAX_FILTER_CHARS = 1024
_SPACED_OFFSET = re.compile(r" (\d{2}:\d{2})$")
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+ -]\d{2}:\d{2})?"
)


def _bad(field: str, message: str) -> ContractError:
    return ContractError(f"invalid {field}", errors=[(field, message)], reason="invalid_query")


@attrs.frozen
class Cursor:
    """A position after which the next page starts."""

    score: int
    dlq_id: str

    def encode(self) -> str:
        return f"{self.score}:{self.dlq_id}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        match = _CURSOR.fullmatch(text)
        if match is None:
            raise _bad("cursor", "malformed cursor")
        return cls(int(match.group(1)), match.group(2))


@attrs.frozen(kw_only=True)
class DLQQuery:
    """Filters of a listing (every one optional; all must match).

    ``failed_from`` / ``failed_to`` bound the dead-letter time (inclusive).
    """

    queue_name: str | None = None
    source_queue_name: str | None = None
    reason: str | None = None
    task_id: str | None = None
    state: str | None = None
    service_name: str | None = None
    error_type: str | None = None
    status: str | None = None
    worker_id: str | None = None
    investigation_status: str | None = None
    failed_from: datetime | None = None
    failed_to: datetime | None = None

    def __attrs_post_init__(self) -> None:
        if self.state is not None and self.state not in STATES:
            raise _bad("state", f"expected one of {', '.join(STATES)}")
        inv = self.investigation_status
        if inv is not None and inv not in INVESTIGATION_STATES:
            raise _bad("investigation_status", f"expected one of {', '.join(INVESTIGATION_STATES)}")
        for name, value in attrs.asdict(self).items():
            if isinstance(value, str):
                check_filter(name, value)
        if self.failed_from and self.failed_to and self.failed_from > self.failed_to:
            raise _bad("failed_from", "after failed_to")

    def index_filters(self) -> list[tuple[str, str]]:
        """``(index field, value)`` for every set filter that has an index."""
        pairs = [
            ("queue", self.queue_name),
            ("source", self.source_queue_name),
            ("reason", self.reason),
            ("task", self.task_id),
            ("state", self.state),
            ("service", self.service_name),
            ("error_type", self.error_type),
            ("status", self.status),
            ("worker", self.worker_id),
            ("investigation", self.investigation_status),
        ]
        return [(field, value) for field, value in pairs if value is not None]


def check_filter(name: str, value: str) -> str:
    """A text filter: 1..1024 characters."""
    if not 0 < len(value) <= _MAX_FILTER_CHARS:
        raise _bad(name, f"must be 1..{_MAX_FILTER_CHARS} characters")
    return value


def parse_limit(text: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """A page size ``1..maximum``; anything else raises."""
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise _bad("limit", f"expected an integer 1..{maximum}")
    value = int(text)
    if not 1 <= value <= maximum:
        raise _bad("limit", f"expected an integer 1..{maximum}")
    return value


def parse_datetime(text: str, field: str) -> datetime:
    """ISO-8601 date and time (``Z`` or an offset; none = UTC); a bare date is refused."""
    if len(text) > 64 or _DATETIME.fullmatch(text) is None:
        raise _bad(field, "not an ISO-8601 date-time")
    # "+02:00" in a query string arrives as " 02:00" when the client did not encode it
    normalized = _SPACED_OFFSET.sub(r"+\1", text.replace("Z", "+00:00").replace("z", "+00:00"))
    try:
        value = datetime.fromisoformat(normalized)
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        value.astimezone(UTC).timestamp()  # representable as a score
    except (ValueError, OverflowError):
        raise _bad(field, "not an ISO-8601 date-time") from None
    return value


def parse_query(
    params: Mapping[str, str], *, task_param: str = "task_id", extended: bool = False
) -> tuple[DLQQuery, Cursor | None, int]:
    """Filters, cursor and limit from query parameters.

    ``extended`` selects the failed-task filters (``queue_name`` then means
    the *source* queue and ``dlq_name`` the DLQ, as in the original).
    """

    def get(name: str) -> str | None:
        return params.get(name) or None  # an empty text filter is no filter

    def typed(name: str) -> str | None:
        return params.get(name)  # an empty enum / date / number is invalid

    task_id = get(task_param)
    if extended:
        failed_from, failed_to = typed("failed_from"), typed("failed_to")
        query = DLQQuery(
            task_id=task_id,
            source_queue_name=get("queue_name"),
            queue_name=get("dlq_name"),
            service_name=get("service_name"),
            error_type=get("error_type"),
            status=get("status"),
            worker_id=get("worker_id"),
            investigation_status=typed("investigation_status"),
            failed_from=None if failed_from is None else parse_datetime(failed_from, "failed_from"),
            failed_to=None if failed_to is None else parse_datetime(failed_to, "failed_to"),
        )
    else:
        query = DLQQuery(
            task_id=task_id,
            queue_name=get("queue_name"),
            source_queue_name=get("source_queue_name"),
            reason=get("reason"),
            state=typed("state"),
        )
    cursor_text = get("cursor")
    cursor = Cursor.parse(cursor_text) if cursor_text is not None else None
    return query, cursor, parse_limit(typed("limit"))
