"""Building outbound messages: envelope validation, body, properties, headers.

Pure functions, no I/O: every check that can refuse a publish runs here,
before anything is sent (bad identifiers, priority out of range or above the
queue's ``x-max-priority``, body over the size limit, header budget).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from relayna.contracts import (
    DEFAULT_LIMITS,
    BatchTaskEnvelope,
    ContractAliasConfig,
    Limits,
    StatusEvent,
    TaskEnvelope,
    WorkflowEnvelope,
    check_header_budget,
    structure,
)
from relayna.contracts import headers as h
from relayna.errors import ContractError
from relayna.observability import inject_trace_headers
from relayna.transport import Properties

__all__ = [
    "CONTENT_TYPE",
    "as_batch",
    "as_status",
    "as_task",
    "as_workflow",
    "build_properties",
    "check_priority",
    "user_headers",
]

CONTENT_TYPE = "application/json"
PERSISTENT = 2


def as_task(
    task: TaskEnvelope | Mapping[str, Any], aliases: ContractAliasConfig | None
) -> TaskEnvelope:
    if isinstance(task, TaskEnvelope):
        return task
    return structure(dict(task), TaskEnvelope, aliases=aliases)


def as_status(
    event: StatusEvent | Mapping[str, Any], aliases: ContractAliasConfig | None
) -> StatusEvent:
    if isinstance(event, StatusEvent):
        return event
    return structure(dict(event), StatusEvent, aliases=aliases)


def as_workflow(
    message: WorkflowEnvelope | Mapping[str, Any], aliases: ContractAliasConfig | None
) -> WorkflowEnvelope:
    if isinstance(message, WorkflowEnvelope):
        return message
    return structure(dict(message), WorkflowEnvelope, aliases=aliases)


def as_batch(
    batch_id: str,
    tasks: list[TaskEnvelope],
    meta: Mapping[str, Any] | None,
) -> BatchTaskEnvelope:
    return BatchTaskEnvelope(batch_id=batch_id, tasks=tuple(tasks), meta=dict(meta or {}))


def check_priority(priority: int | None, max_priority: int | None, queue: str) -> None:
    """Refuse a priority the target queue cannot honour (bad input #19).

    Raises:
        ContractError: reason ``schema``: a priority on a queue without
            ``x-max-priority`` or above it.
    """
    if priority is None:
        return
    if max_priority is None:
        if priority == 0:
            return
        raise ContractError(
            "invalid priority",
            errors=[
                (
                    "priority",
                    f"queue {queue!r} has no x-max-priority; priority {priority} would be ignored",
                )
            ],
        )
    if priority > max_priority:
        raise ContractError(
            "invalid priority",
            errors=[
                ("priority", f"{priority} exceeds x-max-priority {max_priority} of queue {queue!r}")
            ],
        )


def user_headers(
    headers: Mapping[str, Any] | None, limits: Limits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """Copy and check user headers (string keys, header budget)."""
    result = dict(headers or {})
    for key in result:
        if not isinstance(key, str) or not key or len(key) > 255:
            raise ContractError(
                "invalid header name", errors=[("headers", f"{key!r}")], reason="invalid_header"
            )
    check_header_budget(result, limits)
    return result


def build_properties(
    *,
    correlation_id: str | None,
    headers: Mapping[str, Any],
    priority: int | None = None,
    message_id: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Properties:
    """Persistent JSON properties with trace context injected into ``headers``."""
    table = dict(headers)
    inject_trace_headers(table)
    check_header_budget(table, limits)
    return Properties(
        content_type=CONTENT_TYPE,
        delivery_mode=PERSISTENT,
        correlation_id=correlation_id,
        priority=priority,
        message_id=message_id,
        headers=table,
    )


def task_headers(task: TaskEnvelope, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    table: dict[str, Any] = {h.TASK_ID: task.task_id}
    table.update(extra or {})
    return table


def status_headers(event: StatusEvent) -> dict[str, Any]:
    return {h.TASK_ID: event.task_id, h.STATUS: event.status}


def with_meta(event: StatusEvent, **meta: Any) -> StatusEvent:
    merged = dict(event.meta)
    merged.update(meta)
    return attrs.evolve(event, meta=merged)
