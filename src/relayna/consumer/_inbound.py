"""Classify an inbound delivery: a task, a batch, a status event, or poison.

Pure functions over ``(body, properties)``; no broker. Checks run cheapest
first and before any JSON parser sees the body: header budget, attempt
header, content type/encoding, body size and depth (in
:func:`relayna.contracts.loads`), then the envelope schema. A poison message
gets one machine-readable reason (bad-input list): ``invalid_header``,
``unsupported_content_type``, ``too_large``, ``too_deep``, ``decode_error``,
``invalid_json``, ``schema``, ``mixed_task_type_batch``, ``no_handler``, or
``decoder_error`` when classification itself failed unexpectedly (so that
no delivery can raise out of it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from relayna.contracts import (
    BatchTaskEnvelope,
    ContractAliasConfig,
    Limits,
    StatusEvent,
    TaskEnvelope,
    WorkflowEnvelope,
    check_header_budget,
    decoder_failure,
    get_header,
    is_batch_task_payload,
    is_valid_identifier,
    loads,
    parse_deadline,
    read_count_header,
    structure,
)
from relayna.contracts import headers as h
from relayna.errors import ContractError
from relayna.transport import Properties

from ._decide import Poison

__all__ = [
    "Inbound",
    "InboundBatch",
    "InboundStatus",
    "InboundTask",
    "InboundWorkflow",
    "parse_status",
    "parse_task",
    "parse_workflow",
]

_JSON_TYPES = ("application/json", "text/json")


@attrs.frozen
class Inbound:
    attempt: int
    headers: dict[str, Any]


@attrs.frozen
class InboundTask(Inbound):
    task: TaskEnvelope
    batch_id: str | None = None
    batch_index: int | None = None
    batch_size: int | None = None
    manual_retry_count: int = 0
    manual_retry_previous_task_type: str | None = None
    manual_retry_source_consumer: str | None = None
    manual_retry_reason: str | None = None
    #: The ``relayna-deadline`` header as epoch seconds (``None``: no deadline).
    deadline: float | None = None


@attrs.frozen
class InboundBatch(Inbound):
    batch: BatchTaskEnvelope


@attrs.frozen
class InboundStatus(Inbound):
    event: StatusEvent


@attrs.frozen
class InboundWorkflow(Inbound):
    message: WorkflowEnvelope
    #: The ``relayna-deadline`` header as epoch seconds (``None``: no deadline).
    deadline: float | None = None


def _poison(exc: ContractError) -> Poison:
    return Poison(reason=exc.reason, detail=str(exc)[:500])


def _check_envelope(properties: Properties, limits: Limits) -> tuple[dict[str, Any], int]:
    headers = dict(properties.headers)
    check_header_budget(headers, limits)
    attempt = read_count_header(headers, h.RETRY_ATTEMPT)
    content_type = properties.content_type
    if content_type is not None:
        base = content_type.split(";", 1)[0].strip().lower()
        if base not in _JSON_TYPES:
            raise ContractError(
                "unsupported content type",
                errors=[("content_type", content_type[:64])],
                reason="unsupported_content_type",
            )
    encoding = properties.content_encoding
    if encoding is not None and encoding.strip().lower() not in ("", "identity", "utf-8", "utf8"):
        raise ContractError(
            "unsupported content encoding",
            errors=[("content_encoding", encoding[:64])],
            reason="unsupported_content_type",
        )
    return headers, attempt


def _optional_str(headers: Mapping[str, Any], name: str) -> str | None:
    value = get_header(headers, name)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value[:256] if isinstance(value, str) else None


def _batch_headers(headers: Mapping[str, Any]) -> tuple[str | None, int | None, int | None]:
    batch_id = get_header(headers, h.BATCH_ID)
    if batch_id is None:
        return None, None, None
    if not is_valid_identifier(batch_id):
        raise ContractError(
            "invalid header batch_id",
            errors=[(h.BATCH_ID, "not an identifier")],
            reason="invalid_header",
        )
    index = read_count_header(headers, h.BATCH_INDEX)
    size = read_count_header(headers, h.BATCH_SIZE)
    return batch_id, index, size


def parse_task(
    body: bytes,
    properties: Properties,
    *,
    limits: Limits,
    aliases: ContractAliasConfig | None = None,
    routed_task_types: frozenset[str] | None = None,
    known_task_types: frozenset[str] | None = None,
) -> InboundTask | InboundBatch | Poison:
    """Classify a task-queue delivery.

    Args:
        routed_task_types: the topology's task types when tasks are routed by
            type (a batch mixing several types is poison there).
        known_task_types: task types a handler exists for (None: any).
    """
    try:
        headers, attempt = _check_envelope(properties, limits)
        data = loads(body, limits=limits)
        if type(data) is dict and is_batch_task_payload(data):
            batch = structure(data, BatchTaskEnvelope, aliases=aliases)
            types = {t.task_type for t in batch.tasks}
            if routed_task_types is not None and len(types) > 1:
                return Poison("mixed_task_type_batch", f"task types {sorted(map(str, types))}")
            return InboundBatch(attempt=attempt, headers=headers, batch=batch)
        task = structure(data, TaskEnvelope, aliases=aliases)
        if known_task_types is not None and task.task_type not in known_task_types:
            return Poison("no_handler", f"no handler for task_type {str(task.task_type)[:64]!r}")
        batch_id, batch_index, batch_size = _batch_headers(headers)
        manual_count = read_count_header(headers, h.MANUAL_RETRY_COUNT)
        deadline = parse_deadline(get_header(headers, h.DEADLINE))
    except ContractError as exc:
        return _poison(exc)
    except Exception as exc:  # noqa: BLE001 - the decode boundary: see decoder_failure
        return _poison(decoder_failure(exc, "task message"))
    return InboundTask(
        attempt=attempt,
        headers=headers,
        task=task,
        batch_id=batch_id,
        batch_index=batch_index,
        batch_size=batch_size,
        manual_retry_count=manual_count,
        manual_retry_previous_task_type=_optional_str(headers, h.MANUAL_RETRY_FROM_TASK_TYPE),
        manual_retry_source_consumer=_optional_str(headers, h.MANUAL_RETRY_SOURCE_CONSUMER),
        manual_retry_reason=_optional_str(headers, h.MANUAL_RETRY_REASON),
        deadline=deadline,
    )


def parse_status(
    body: bytes,
    properties: Properties,
    *,
    limits: Limits,
    aliases: ContractAliasConfig | None = None,
) -> InboundStatus | Poison:
    """Classify an aggregation-queue delivery (a status event)."""
    try:
        headers, attempt = _check_envelope(properties, limits)
        event = structure(loads(body, limits=limits), StatusEvent, aliases=aliases)
    except ContractError as exc:
        return _poison(exc)
    except Exception as exc:  # noqa: BLE001 - the decode boundary: see decoder_failure
        return _poison(decoder_failure(exc, "status message"))
    return InboundStatus(attempt=attempt, headers=headers, event=event)


def parse_workflow(
    body: bytes,
    properties: Properties,
    *,
    limits: Limits,
    aliases: ContractAliasConfig | None = None,
) -> InboundWorkflow | Poison:
    """Classify a workflow stage delivery (a :class:`WorkflowEnvelope`).

    Stage and contract checks are the workflow runtime's; this only decides
    whether the message is a well-formed envelope.
    """
    try:
        headers, attempt = _check_envelope(properties, limits)
        message = structure(loads(body, limits=limits), WorkflowEnvelope, aliases=aliases)
        deadline = parse_deadline(get_header(headers, h.DEADLINE))
    except ContractError as exc:
        return _poison(exc)
    except Exception as exc:  # noqa: BLE001 - the decode boundary: see decoder_failure
        return _poison(decoder_failure(exc, "workflow message"))
    return InboundWorkflow(attempt=attempt, headers=headers, message=message, deadline=deadline)
