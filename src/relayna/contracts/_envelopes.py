"""Wire envelopes as frozen attrs value classes.

They validate their values (identifiers, priority range, non-empty batches) but
know nothing of JSON: :mod:`relayna.contracts._codec` owns the wire format.
Unknown top-level fields of a decoded message are kept in ``extra`` and written
back on encode, so a relayna hop never drops a field another service added.

The four envelopes have no ``__weakref__`` slot: values, not resources, and the
layout :mod:`._fast` needs to build them without re-running the validators.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import attrs

from relayna.contracts._ids import validate_identifier
from relayna.errors import ContractError

__all__ = [
    "SPEC_VERSION",
    "BatchTaskEnvelope",
    "StatusEvent",
    "TaskEnvelope",
    "TerminalStatusSet",
    "WorkflowEnvelope",
]

SPEC_VERSION = "1.0"


def _fail(field: str, msg: str) -> ContractError:
    return ContractError(f"invalid {field}", errors=[(field, msg)], reason="schema")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is UTC:
        return value
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if value.utcoffset():
        try:
            return value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00+05:00 is before datetime.min in UTC
            raise ContractError(
                "invalid date-time",
                errors=[("", f"{value.isoformat()} is out of range in UTC")],
                reason="schema",
            ) from None
    return value


def _identifier(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    validate_identifier(value, attribute.name)


def _optional_identifier(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        validate_identifier(value, attribute.name)


def _optional_str(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and type(value) is not str:
        raise _fail(attribute.name, f"must be a string, got {type(value).__name__}")


def _non_empty_str(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not str or not value.strip():
        raise _fail(attribute.name, "must be a non-empty string")


def _mapping(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not dict:
        raise _fail(attribute.name, f"must be an object, got {type(value).__name__}")


def _optional_mapping(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _mapping(_inst, attribute, value)


def _priority(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if type(value) is not int or not 0 <= value <= 255:
        raise _fail(attribute.name, f"must be an integer 0..255, got {value!r}")


def _extra_validator(known: frozenset[str]) -> Any:
    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not dict:
            raise _fail("extra", "must be a dict")
        if value and not known.isdisjoint(value):
            clash = known.intersection(value)
            raise _fail("extra", f"keys {sorted(clash)} are envelope fields")

    return check


_TASK_FIELDS = frozenset(
    {"task_id", "payload", "created_at", "service", "task_type", "correlation_id",
     "priority", "spec_version"}
)  # fmt: skip


@attrs.frozen(weakref_slot=False)
class TaskEnvelope:
    """One task for a worker. ``priority`` None means "unset" (distinct from 0)."""

    task_id: str = attrs.field(validator=_identifier)
    payload: dict[str, Any] = attrs.field(factory=dict, validator=_mapping)
    created_at: datetime = attrs.field(factory=_utcnow, converter=_as_utc)
    service: str | None = attrs.field(default=None, validator=_optional_str)
    task_type: str | None = attrs.field(default=None, validator=_optional_str)
    correlation_id: str | None = attrs.field(default=None, validator=_optional_identifier)
    priority: int | None = attrs.field(default=None, validator=_priority)
    spec_version: str = attrs.field(default=SPEC_VERSION, validator=_non_empty_str)
    extra: dict[str, Any] = attrs.field(factory=dict, validator=_extra_validator(_TASK_FIELDS))


def _tasks(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not tuple or not value:
        raise _fail("tasks", "must hold at least one task")
    for index, task in enumerate(value):
        if not isinstance(task, TaskEnvelope):
            raise _fail(f"tasks[{index}]", "must be a TaskEnvelope")


def _to_tuple(value: Iterable[TaskEnvelope]) -> tuple[TaskEnvelope, ...]:
    return value if type(value) is tuple else tuple(value)


_BATCH_FIELDS = frozenset({"batch_id", "tasks", "meta", "created_at", "spec_version"})


@attrs.frozen(weakref_slot=False)
class BatchTaskEnvelope:
    """Several tasks sent as one message; workers fan it out into single tasks."""

    batch_id: str = attrs.field(validator=_identifier)
    tasks: tuple[TaskEnvelope, ...] = attrs.field(converter=_to_tuple, validator=_tasks)
    meta: dict[str, Any] = attrs.field(factory=dict, validator=_mapping)
    created_at: datetime = attrs.field(factory=_utcnow, converter=_as_utc)
    spec_version: str = attrs.field(default=SPEC_VERSION, validator=_non_empty_str)
    extra: dict[str, Any] = attrs.field(factory=dict, validator=_extra_validator(_BATCH_FIELDS))


_STATUS_FIELDS = frozenset(
    {"task_id", "status", "timestamp", "message", "meta", "result", "correlation_id",
     "event_id", "service", "spec_version"}
)  # fmt: skip


@attrs.frozen(weakref_slot=False)
class StatusEvent:
    """A status update for one task. ``event_id`` None is filled on encode
    (see :func:`relayna.contracts.ensure_event_id`)."""

    task_id: str = attrs.field(validator=_identifier)
    status: str = attrs.field(validator=_non_empty_str)
    timestamp: datetime = attrs.field(factory=_utcnow, converter=_as_utc)
    message: str | None = attrs.field(default=None, validator=_optional_str)
    meta: dict[str, Any] = attrs.field(factory=dict, validator=_mapping)
    result: dict[str, Any] | None = attrs.field(default=None, validator=_optional_mapping)
    correlation_id: str | None = attrs.field(default=None, validator=_optional_identifier)
    event_id: str | None = attrs.field(default=None, validator=_optional_identifier)
    service: str | None = attrs.field(default=None, validator=_optional_str)
    spec_version: str = attrs.field(default=SPEC_VERSION, validator=_non_empty_str)
    extra: dict[str, Any] = attrs.field(factory=dict, validator=_extra_validator(_STATUS_FIELDS))


def _uuid_hex() -> str:
    return uuid.uuid4().hex


_WORKFLOW_FIELDS = frozenset(
    {"task_id", "message_id", "correlation_id", "stage", "origin_stage", "parent_message_id",
     "action", "payload", "meta", "priority", "spec_version"}
)  # fmt: skip


@attrs.frozen(weakref_slot=False)
class WorkflowEnvelope:
    """A message handed to a workflow stage.

    ``parent_message_id`` is the ``message_id`` of the message whose handler
    published this one (None for a message that entered the workflow from
    outside). The original had no such field and its lineage took the
    ``correlation_id`` for the parent; relayna carries the real parent.
    """

    task_id: str = attrs.field(validator=_identifier)
    stage: str = attrs.field(validator=_identifier)
    message_id: str = attrs.field(factory=_uuid_hex, validator=_identifier)
    correlation_id: str | None = attrs.field(default=None, validator=_optional_identifier)
    origin_stage: str | None = attrs.field(default=None, validator=_optional_identifier)
    parent_message_id: str | None = attrs.field(default=None, validator=_optional_identifier)
    action: str | None = attrs.field(default=None, validator=_optional_str)
    payload: dict[str, Any] = attrs.field(factory=dict, validator=_mapping)
    meta: dict[str, Any] = attrs.field(factory=dict, validator=_mapping)
    priority: int | None = attrs.field(default=None, validator=_priority)
    spec_version: str = attrs.field(default=SPEC_VERSION, validator=_non_empty_str)
    extra: dict[str, Any] = attrs.field(factory=dict, validator=_extra_validator(_WORKFLOW_FIELDS))


def _lowered(values: Iterable[str]) -> frozenset[str]:
    result = frozenset(v.strip().lower() for v in values)
    if not result or "" in result:
        raise ValueError("terminal statuses must be non-empty strings")
    return result


@attrs.frozen
class TerminalStatusSet:
    """Statuses that end a task's status stream, compared case-insensitively."""

    statuses: frozenset[str] = attrs.field(
        default=frozenset({"completed", "failed", "cancelled", "expired"}), converter=_lowered
    )

    def is_terminal(self, status: str | None) -> bool:
        return status is not None and status.strip().lower() in self.statuses
