"""UTC timestamps on the wire: ISO-8601 with ``Z``; parsing that never raises past a ContractError."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from relayna.contracts import loads
from relayna.errors import ContractError

__all__ = ["format_time", "load_object", "now_utc", "parse_time", "parse_time_or_none"]


def load_object(raw: bytes | None) -> dict[str, Any] | None:
    """A stored JSON object, or ``None`` when missing or unreadable (never raises)."""
    if raw is None:
        return None
    try:
        value = loads(raw)
    except ContractError:
        return None
    return value if isinstance(value, dict) else None


def now_utc() -> datetime:
    return datetime.now(UTC)


def format_time(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: object, field: str = "timestamp") -> datetime:
    """An aware UTC datetime from ISO-8601 text (naive means UTC).

    Raises:
        ContractError: not a string, not ISO-8601, or out of range.
    """
    if not isinstance(value, str) or not value or len(value) > 64:
        raise ContractError(f"invalid {field}", errors=[(field, "expected an ISO-8601 time")])
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ContractError(
            f"invalid {field}", errors=[(field, "expected an ISO-8601 time")]
        ) from None


def parse_time_or_none(value: object) -> datetime | None:
    try:
        return parse_time(value)
    except ContractError:
        return None
