"""The JSON shapes of the DLQ and failed-task routes (the original's, plus a few
additive fields), built from records. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from relayna.consumer import DLQRecord
from relayna.contracts import format_datetime
from relayna.dlq._codec import inspect_body

__all__ = [
    "diagnosis",
    "dlq_detail",
    "dlq_summary",
    "failed_detail",
    "failed_summary",
]

#: Reasons after which a replay is likely to fail the same way.
_REVIEW_REASONS = frozenset(
    {"malformed_json", "invalid_envelope", "unsupported_action", "dedup_conflict", "invalid_json",
     "schema", "decode_error", "too_large", "invalid_header", "unsupported_content_type"}
)  # fmt: skip


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_datetime(value)


def _encoding(record: DLQRecord) -> str:
    if record.body_encoding is not None:
        return record.body_encoding
    return inspect_body(record.body)[1]


def _unconfirmed(record: DLQRecord) -> dict[str, Any] | None:
    info = record.unconfirmed_republish
    if not info:
        return None
    return {
        "kind": info.get("kind"),
        "started_at": info.get("started_at") or None,
        "target_queue": info.get("target_queue") or None,
    }


def dlq_summary(record: DLQRecord) -> dict[str, Any]:
    """``DLQMessageSummary``."""
    return {
        "dlq_id": record.dlq_id,
        "queue_name": record.queue_name,
        "source_queue_name": record.source_queue_name,
        "retry_queue_name": record.retry_queue_name,
        "task_id": record.task_id,
        "correlation_id": record.correlation_id,
        "reason": record.reason,
        "exception_type": record.exception_type,
        "retry_attempt": record.retry_attempt,
        "max_retries": record.max_retries,
        "content_type": record.content_type,
        "body_encoding": _encoding(record),
        "dead_lettered_at": _time(record.dead_lettered_at),
        "state": record.state,
        "replay_count": record.replay_count,
        "replayed_at": _time(record.replayed_at),
        "replay_target_queue_name": record.replay_target_queue_name,
        # additive
        "payload_available": record.payload_available,
        "unconfirmed_republish": _unconfirmed(record),
    }


def _sniff(value: Any, name: str) -> str | None:
    if not isinstance(value, Mapping):
        return None
    found = value.get(name)
    if found is None:
        return None
    text = str(found).strip()
    return text or None


def diagnosis(record: DLQRecord) -> dict[str, Any]:
    """The diagnosis bundle: failure, retry, ownership, envelope, replay guidance."""
    body, encoding = (
        inspect_body(record.body) if record.body is not None else (None, _encoding(record))
    )
    warnings: list[str] = []
    if record.reason in _REVIEW_REASONS:
        warnings.append(f"Replay may fail again until '{record.reason}' is resolved.")
    if record.max_retries is not None and record.retry_attempt >= record.max_retries:
        warnings.append("Message reached the configured retry limit.")
    if not record.payload_available:
        warnings.append(f"The payload was not kept ({record.body_omitted}); it cannot be replayed.")
    if record.unconfirmed_republish:
        warnings.append(
            "An earlier republish did not confirm; the message may be in flight. "
            "Check the task status before replaying (force=true)."
        )
    return {
        "failure": {
            "reason": record.reason,
            "exception_type": record.exception_type,
            "terminal_retry_attempt": record.retry_attempt,
        },
        "retry": {
            "attempt": record.retry_attempt,
            "max_retries": record.max_retries,
            "source_queue_name": record.source_queue_name,
            "retry_queue_name": record.retry_queue_name,
            "policy_name": None,
            "policy_reason": record.reason,
        },
        "ownership": {
            "consumer_name": record.service_name,
            "task_id": record.task_id,
            "correlation_id": record.correlation_id,
        },
        "envelope": {
            "task_type": _sniff(body, "task_type"),
            "workflow_stage": _sniff(body, "stage"),
            "action": _sniff(body, "action"),
            "content_type": record.content_type,
            "body_encoding": encoding,
        },
        "replay": {"recommended_action": "review_before_replay", "warnings": warnings},
    }


def _body_fields(record: DLQRecord) -> dict[str, Any]:
    body, encoding = inspect_body(record.body)
    return {
        "body": body,
        "body_encoding": encoding if record.body is not None else _encoding(record),
        "raw_body_b64": record.raw_body_b64 if record.body is not None else None,
        "body_size": record.body_size,
        "body_omitted": record.body_omitted,
    }


def dlq_detail(
    record: DLQRecord,
    *,
    latest_status: Mapping[str, Any] | None,
    status_history: Sequence[Mapping[str, Any]],
    execution_graph_url: str | None,
) -> dict[str, Any]:
    """``DLQMessageDetail``: the summary plus headers, body, statuses, diagnosis."""
    out = dlq_summary(record)
    out.update(
        headers=dict(record.headers),
        **_body_fields(record),
        latest_status=None if latest_status is None else dict(latest_status),
        status_history=[dict(e) for e in status_history],
        diagnosis=diagnosis(record),
        exception_message=record.exception_message,
        execution_graph_url=execution_graph_url,
    )
    return out


def failed_summary(record: DLQRecord, *, service_id: str | None = None) -> dict[str, Any]:
    """``FailedTaskSummary``."""
    return {
        "failure_id": record.failure_id,
        "service_id": service_id,
        "service_name": record.service_name,
        "task_id": record.task_id,
        "correlation_id": record.correlation_id,
        "queue_name": record.source_queue_name,
        "source_queue_name": record.source_queue_name,
        "retry_queue_name": record.retry_queue_name,
        "dlq_name": record.queue_name,
        "status": record.status,
        "attempt": record.retry_attempt,
        "max_attempts": record.max_retries,
        "failed_at": _time(record.failed_at),
        "error_type": record.exception_type,
        "error_message": record.exception_message or record.reason,
        "worker_id": record.worker_id,
        "runtime_name": record.runtime_name,
        "runtime_version": record.runtime_version,
        "investigation_status": record.investigation_status,
        "investigated_at": _time(record.investigated_at),
        "investigated_by": record.investigated_by,
        "retry_status": record.retry_status,
        "retried_at": _time(record.retried_at),
        "retried_by": record.retried_by,
        "retried_task_id": record.retried_task_id,
        "retry_target_queue": record.retry_target_queue,
        "payload_available": record.payload_available,
    }


def failed_detail(
    record: DLQRecord,
    *,
    latest_status: Mapping[str, Any] | None,
    status_history: Sequence[Mapping[str, Any]],
    service_id: str | None = None,
) -> dict[str, Any]:
    """``FailedTaskDetail``."""
    out = failed_summary(record, service_id=service_id)
    history = [dict(e) for e in status_history]
    out.update(
        dlq_id=record.dlq_id,
        reason=record.reason,
        headers=dict(record.headers),
        content_type=record.content_type,
        **_body_fields(record),
        traceback=record.traceback,
        input_preview=record.input_preview,
        metadata=dict(record.metadata),
        last_logs=list(record.last_logs) or history[:100],
        latest_status=None if latest_status is None else dict(latest_status),
        status_history=history,
        investigation_note=record.investigation_note,
        retry_note=record.retry_note,
        diagnosis=diagnosis(record),
        unconfirmed_republish=_unconfirmed(record),
    )
    return out
