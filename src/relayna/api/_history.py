"""``GET /history``: query parsing (422 on bad input, clamped limits) and the replay.

Parameters: ``task_id`` (or its HTTP alias), ``start_offset`` (``first``,
``last``, ``next``, an integer 0..2**63-1, or an ISO-8601 timestamp from
1970 on; naive = UTC),
``max_seconds`` (0 < x, clamped to 30), ``max_scan`` (>= 1, clamped to
100,000), ``limit`` (>= 1, clamped to 1,000), ``stop_on_terminal``
(``true``/``false``). At least one of task_id / max_seconds / max_scan is
required (as in the original), so an unbounded scan cannot be asked for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

import attrs

from relayna.api._lifespan import RelaynaRuntime
from relayna.contracts import TerminalStatusSet, is_valid_identifier
from relayna.errors import BrokerError, ConfigurationError
from relayna.status import HistoryReplay, StreamHistoryReader
from relayna.transport import StreamOffset, check_stream_offset

__all__ = ["MAX_LIMIT", "MAX_SCAN", "MAX_SECONDS", "HistoryParams", "history_endpoint"]

MAX_SECONDS = 30.0
MAX_SCAN = 100_000
MAX_LIMIT = 1000
DEFAULT_SECONDS = 5.0


@attrs.frozen
class HistoryParams:
    task_id: str | None
    start_offset: StreamOffset
    max_seconds: float
    max_scan: int
    limit: int
    stop_on_terminal: bool

    @classmethod
    def parse(cls, query: Mapping[str, str], *, id_name: str = "task_id") -> HistoryParams | str:
        """The parameters, or a message for a 422."""
        task_id = query.get(id_name)
        if task_id is None and id_name != "task_id":
            task_id = query.get("task_id")
        if task_id is not None and not is_valid_identifier(task_id):  # "" too: not "all tasks"
            return f"invalid {id_name}"
        raw_seconds, raw_scan = query.get("max_seconds"), query.get("max_scan")
        if task_id is None and raw_seconds is None and raw_scan is None:
            return f"one of {id_name}, max_seconds or max_scan is required"
        try:
            seconds = DEFAULT_SECONDS if raw_seconds is None else float(raw_seconds)
        except ValueError:
            return "max_seconds must be a number"
        if not math.isfinite(seconds) or seconds <= 0:
            return "max_seconds must be > 0"
        scan = _int(query.get("max_scan"), MAX_SCAN)
        limit = _int(query.get("limit"), MAX_LIMIT)
        if scan is None:
            return "max_scan must be an integer >= 1"
        if limit is None:
            return "limit must be an integer >= 1"
        offset = _offset(query.get("start_offset", "first"))
        if offset is None:
            return (
                "start_offset must be first, last, next, an integer 0..2**63-1"
                " or an ISO-8601 time from 1970-01-01T00:00:00Z on"
            )
        stop = query.get("stop_on_terminal", "true").lower()
        if stop not in {"true", "false", "1", "0"}:
            return "stop_on_terminal must be true or false"
        return cls(
            task_id=task_id,
            start_offset=offset,
            max_seconds=min(seconds, MAX_SECONDS),
            max_scan=min(scan, MAX_SCAN),
            limit=min(limit, MAX_LIMIT),
            stop_on_terminal=stop in {"true", "1"},
        )


def _int(raw: str | None, default: int) -> int | None:
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        return None
    value = int(raw)
    return value if value >= 1 else None


_NAMED_OFFSETS: dict[str, StreamOffset] = {"first": "first", "last": "last", "next": "next"}


def _offset(raw: str) -> StreamOffset | None:
    named = _NAMED_OFFSETS.get(raw)
    if named is not None:
        return named
    value: int | datetime
    if raw.isascii() and raw.isdigit():
        if len(raw) > 19:
            return None
        value = int(raw)
    else:
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            return None
    try:  # the broker contract: 0..2**63-1, or a time from 1970 on (naive = UTC)
        return check_stream_offset(value)
    except ConfigurationError:
        return None


async def history_endpoint(
    runtime: RelaynaRuntime, params: HistoryParams, *, terminal: TerminalStatusSet
) -> HistoryReplay | tuple[int, str]:
    """The replay, or ``(status_code, detail)``."""
    if runtime.broker is None or runtime.status_queue is None:
        return 400, "no status stream is configured"
    if not runtime.status_is_stream:
        return 400, "the status queue is not a stream"
    reader = StreamHistoryReader(runtime.broker, runtime.status_queue)
    try:
        replay = await reader.replay(
            params.task_id,
            start_offset=params.start_offset,
            terminal=terminal,
            stop_on_terminal=params.stop_on_terminal,
            max_seconds=params.max_seconds,
            max_scan=params.max_scan,
            limit=params.limit,
        )
    except BrokerError as exc:
        return 503, f"status stream replay failed: {exc}"
    return replay
