"""UTC timestamps on the wire: ISO-8601 with ``Z``; parsing that never raises past a ContractError."""

from __future__ import annotations

from datetime import UTC, datetime

from relayna.errors import ContractError

__all__ = ["format_time", "now_utc", "parse_time", "parse_time_or_none"]


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
