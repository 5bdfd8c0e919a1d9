"""Task deadlines on the wire: one absolute UTC instant in the ``relayna-deadline`` header.

A deadline is absolute (not a remaining budget), so it means the same on
every hop: the publisher's ``timeout=30`` becomes ``now + 30 s`` once, and a
retry copy, a child task or a hand-off carries that instant unchanged. The
header holds ISO 8601 UTC with milliseconds (``2026-12-07T10:20:30.123Z``):
readable in the management UI, and exact to the millisecond.

Every function here is pure (``now`` is passed in); validation raises
:class:`~relayna.errors.ContractError` with a machine-readable ``reason``:
``deadline_passed`` (publishing a task that is already late) or
``invalid_deadline`` (not a time, naive datetime, NaN, absurd timeout).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from relayna.contracts._headers import DEADLINE
from relayna.errors import ContractError

__all__ = [
    "DEADLINE",
    "MAX_TIMEOUT_SECONDS",
    "deadline_from",
    "format_deadline",
    "parse_deadline",
]

#: The longest ``timeout=`` accepted (a year): larger values are typos, not deadlines.
MAX_TIMEOUT_SECONDS = 365 * 86_400.0

_EPOCH_MAX = datetime(9999, 1, 1, tzinfo=UTC).timestamp()


def _invalid(message: str, reason: str = "invalid_deadline") -> ContractError:
    return ContractError("invalid deadline", errors=[("deadline", message)], reason=reason)


def format_deadline(epoch: float) -> str:
    """``epoch`` (seconds, UTC) as the header's ISO 8601 text, milliseconds, ``Z``."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_deadline(value: Any) -> float | None:
    """The header's deadline as epoch seconds (``None``: no deadline).

    Raises:
        ContractError: reason ``invalid_header`` for anything but ISO 8601
            text with an explicit UTC offset (a forged or corrupted header is
            a poison message, never "no deadline").
    """
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise _invalid("not ASCII", "invalid_header") from None
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        raise _invalid(f"expected ISO 8601 text, got {str(value)[:40]!r}", "invalid_header")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _invalid(f"not an ISO 8601 time: {value[:40]!r}", "invalid_header") from None
    if moment.tzinfo is None:
        raise _invalid("no UTC offset", "invalid_header")
    return moment.timestamp()


def deadline_from(
    *,
    deadline: datetime | None = None,
    timeout: float | None = None,
    now: float,
) -> float | None:
    """The absolute deadline (epoch seconds) that ``deadline=`` or ``timeout=`` asks for.

    Args:
        deadline: an aware ``datetime`` (any offset; naive is refused: its
            zone would be a guess).
        timeout: seconds from ``now``, ``0 < timeout <= MAX_TIMEOUT_SECONDS``.
        now: the current time, epoch seconds.

    Raises:
        ContractError: both given; naive or non-datetime deadline; a
            deadline at or before ``now`` (reason ``deadline_passed``);
            a timeout that is not a finite positive number of seconds up to
            a year (reason ``invalid_deadline``).
    """
    if deadline is not None and timeout is not None:
        raise _invalid("pass deadline or timeout, not both")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise _invalid(f"timeout must be a number of seconds, got {type(timeout).__name__}")
        if not math.isfinite(timeout) or not 0 < timeout <= MAX_TIMEOUT_SECONDS:
            raise _invalid(f"timeout must be > 0 and <= {MAX_TIMEOUT_SECONDS:.0f} s")
        return now + float(timeout)
    if deadline is None:
        return None
    if not isinstance(deadline, datetime):
        raise _invalid(f"deadline must be a datetime, got {type(deadline).__name__}")
    if deadline.tzinfo is None or deadline.utcoffset() is None:
        raise _invalid("deadline must be timezone-aware (UTC)")
    epoch = deadline.timestamp()
    if epoch <= now:
        raise _invalid(f"deadline {deadline.isoformat()} has passed", "deadline_passed")
    if epoch - now > MAX_TIMEOUT_SECONDS or epoch >= _EPOCH_MAX:
        raise _invalid("deadline is more than a year away")
    return epoch
