"""Query parameters and time windows of the telemetry routes (logs, metrics, traces).

Every route refuses unknown parameters and text that is empty, longer than
512 characters or holds control characters (422, before any outbound call).
Times are ISO-8601 (nanoseconds kept) or epoch seconds; ``from`` after
``to`` and windows longer than the documented maximum are 422.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import anyio

from relayna.contracts import is_valid_identifier
from relayna.errors import ContractError
from relayna_studio._errors import UpstreamError
from relayna_studio._federation import Federation, check_enabled, task_path
from relayna_studio._http import HTTPProblem, query_problem
from relayna_studio._querylang import parse_time_ns
from relayna_studio._timefmt import parse_time_or_none

__all__ = [
    "DEFAULT_WINDOW_SECONDS",
    "MAX_WINDOW_SECONDS",
    "config_of",
    "last",
    "lifecycle_window",
    "query_params",
    "task_window",
    "time_window",
]

#: Without ``from``/``to`` a service page shows the last hour.
DEFAULT_WINDOW_SECONDS = 3600
#: The longest window one request may ask a provider for (Loki's default
#: ``max_query_length`` is 721 h; Prometheus has no limit of its own).
MAX_WINDOW_SECONDS = 30 * 86400
_NS = 1_000_000_000
_MISSING = {
    "log_config": "logs need a log_config (Loki) on the service",
    "metrics_config": "metrics need a metrics_config (Prometheus) on the service",
    "trace_config": "traces need a trace_config (Tempo) on the service",
}


def query_params(
    request: Any, allowed: tuple[str, ...], *, repeatable: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The request's parameters (lists for ``repeatable`` ones), checked.

    Raises:
        HTTPProblem: 422 for an unknown, repeated or malformed parameter.
    """
    params = request.query_params
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise query_problem(unknown[0], "unknown query parameter")
    out: dict[str, Any] = {}
    for name in allowed:
        values = params.getlist(name)
        if not values:
            continue
        if len(values) > 1 and name not in repeatable:
            raise query_problem(name, "given more than once")
        for value in values:
            if not 0 < len(value) <= 512 or any(ord(c) < 32 or c == "\x7f" for c in value):
                raise query_problem(name, "1..512 printable characters")
        if name in ("task_id", "correlation_id") and not is_valid_identifier(values[0]):
            raise query_problem(name, "invalid identifier")
        out[name] = values if name in repeatable else values[0]
    return out


def time_window(
    params: Mapping[str, Any], *, default_seconds: int = DEFAULT_WINDOW_SECONDS
) -> tuple[int, int] | None:
    """``(start_ns, end_ns)`` from ``from``/``to``; ``None`` when neither is given.

    One bound alone is completed with ``default_seconds`` (``to`` defaults to now).

    Raises:
        HTTPProblem: 422 for a bad time, ``from`` after ``to``, or a window
            longer than :data:`MAX_WINDOW_SECONDS`.
    """
    raw_from, raw_to = params.get("from"), params.get("to")
    if raw_from is None and raw_to is None:
        return None
    try:
        end = parse_time_ns(raw_to, "to") if raw_to is not None else time.time_ns()
        start = parse_time_ns(raw_from, "from") if raw_from is not None else None
    except ContractError as exc:
        field = exc.errors[0][0] if exc.errors else "from"
        raise query_problem(field, "expected an ISO-8601 time or epoch seconds") from None
    if start is None:
        start = end - default_seconds * _NS
    check_window(start, end)
    return start, end


def check_window(start: int, end: int) -> None:
    if start > end:
        raise query_problem("from", "must not be after to")
    if end - start > MAX_WINDOW_SECONDS * _NS:
        raise query_problem("to", f"the window is at most {MAX_WINDOW_SECONDS} seconds (30 days)")


def last(seconds: int) -> tuple[int, int]:
    end = time.time_ns()
    return end - seconds * _NS, end


async def config_of(
    fed: Federation, service_id: str, key: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(record, its ``key`` config).

    Raises:
        UpstreamError: 404 ``service_not_found``, 503 ``service_disabled``.
        HTTPProblem: 501 ``<key>_missing`` when the service has no such config.
    """
    record = await fed.record(service_id)
    check_enabled(record)
    config = record.get(key)
    if not isinstance(config, dict):
        raise HTTPProblem(
            501,
            f"service {service_id!r} has no {key}: {_MISSING[key]}",
            code=f"{key}_missing",
            service_id=service_id,
        )
    return record, config


def _stamp_ns(value: object) -> int | None:
    parsed = parse_time_or_none(value)
    return None if parsed is None else int(parsed.timestamp() * 1e6) * 1000


async def task_window(
    fed: Federation, service_id: str, task_id: str, padding_seconds: int
) -> tuple[tuple[int, int] | None, list[str]]:
    """The task's lifecycle ``(start_ns, end_ns)`` padded on both sides, from its
    execution graph summary, else the first and last history events; ``None``
    (with the reasons as warnings) when neither is available."""
    found: dict[str, Any] = {}
    warnings: list[str] = []

    async def graph() -> None:
        try:
            found["graph"] = await fed.call(
                service_id, "execution.graph", "GET",
                task_path("/executions/{task_id}/graph", task_id),
            )  # fmt: skip
        except UpstreamError as exc:
            found["graph_error"] = exc

    async def history() -> None:
        try:
            found["history"] = await fed.call(
                service_id, "status.history", "GET", "/history",
                params={"task_id": task_id, "start_offset": "first", "max_scan": 200},
            )  # fmt: skip
        except UpstreamError as exc:
            found["history_error"] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(graph)
        tg.start_soon(history)
    events = found.get("history", {}).get("events")
    window = lifecycle_window(found.get("graph"), events, padding_seconds)
    if window is None:
        for key in ("graph_error", "history_error"):
            if key in found:
                warnings.append(f"task window: {found[key].detail}")
        warnings.append("no task lifecycle found; showing the last hour")
    return window, warnings


def lifecycle_window(
    graph: object, history: object, padding_seconds: int
) -> tuple[int, int] | None:
    """The task's ``(start_ns, end_ns)`` padded on both sides: the graph summary's
    ``started_at``/``ended_at``, else the first and last history timestamps."""
    stamps: list[int] = []
    summary = graph.get("summary") if isinstance(graph, dict) else None
    if isinstance(summary, dict):
        stamps = [s for s in (_stamp_ns(summary.get(k)) for k in ("started_at", "ended_at")) if s]
    if not stamps:
        for event in history if isinstance(history, list) else []:
            stamp = _stamp_ns(event.get("timestamp")) if isinstance(event, dict) else None
            if stamp is not None:
                stamps.append(stamp)
    if not stamps:
        return None
    pad = padding_seconds * _NS
    return min(stamps) - pad, max(stamps) + pad
