"""A :class:`DLQRecord` as stored: the fields of its Redis hash, and back.

The hash holds the immutable facts as one JSON document (``facts``), the raw
body bytes (``body``, binary-safe, absent when omitted) and one field per
piece of state, so that the store's scripts change state with HSET/HDEL
without ever decoding JSON. Bodies are inspected once, when the record is
added (``body_encoding``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from relayna.consumer import DLQRecord, jsonable, jsonable_headers
from relayna.contracts import format_datetime, loads
from relayna.errors import ContractError

__all__ = [
    "LIST_FIELDS",
    "STATE_FIELDS",
    "decode_record",
    "encode_record",
    "inspect_body",
    "parse_time",
    "score_of",
    "time_bytes",
]

#: Mutable fields, each its own hash field (absent = null).
STATE_FIELDS = (
    "state",
    "replay_count",
    "replayed_at",
    "replay_target_queue_name",
    "investigation_status",
    "investigated_at",
    "investigated_by",
    "investigation_note",
    "retry_status",
    "retried_at",
    "retried_by",
    "retried_task_id",
    "retry_target_queue",
    "retry_note",
    "unconfirmed_kind",
    "unconfirmed_at",
    "unconfirmed_target",
)
#: What a listing fetches per record (everything but the body).
LIST_FIELDS = ("facts", *STATE_FIELDS)
_TIME_FIELDS = frozenset({"replayed_at", "investigated_at", "retried_at"})


def inspect_body(body: bytes | None) -> tuple[Any, str]:
    """``(value, encoding)``: parsed JSON (``json``), text (``text``) or base64.

    Only JSON that relayna's strict decoder accepts (depth and size limits,
    no duplicate keys, finite numbers) is shown parsed; anything else that is
    UTF-8 is shown as text, so the view never changes what the bytes say.
    """
    if body is None:
        return None, "none"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"
    try:
        return loads(body, allow_non_finite=False), "json"
    except ContractError:
        return text, "text"


def time_bytes(value: datetime) -> bytes:
    """A state timestamp as stored (ISO-8601, UTC, ``Z``)."""
    return format_datetime(value).encode()


def score_of(when: datetime) -> int:
    """Index score: milliseconds since the epoch."""
    stamp = when if when.tzinfo else when.replace(tzinfo=UTC)
    return int(stamp.timestamp() * 1000)


def parse_time(text: str | bytes | None) -> datetime | None:
    if text is None:
        return None
    raw = text.decode() if isinstance(text, bytes) else text
    if not raw:
        return None
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


def encode_record(record: DLQRecord, *, max_body_bytes: int) -> tuple[dict[str, bytes], bool]:
    """The hash fields of a new record, and whether the body was kept."""
    body = record.body
    omitted = record.body_omitted
    if body is not None and len(body) > max_body_bytes:
        body, omitted = None, "too_large"
    _, encoding = inspect_body(record.body if body is not None else None)
    facts = {
        "dlq_id": record.dlq_id,
        "queue_name": record.queue_name,
        "source_queue_name": record.source_queue_name,
        "retry_queue_name": record.retry_queue_name,
        "task_id": record.task_id,
        "correlation_id": record.correlation_id,
        "message_id": record.message_id,
        "service_name": record.service_name,
        "reason": record.reason,
        "exception_type": record.exception_type,
        "exception_message": record.exception_message,
        "traceback": record.traceback,
        "retry_attempt": record.retry_attempt,
        "max_retries": record.max_retries,
        "headers": jsonable_headers(record.headers),
        "content_type": record.content_type,
        "body_encoding": encoding,
        "body_size": record.body_size,
        "body_omitted": omitted,
        "dead_lettered_at": format_datetime(record.dead_lettered_at),
        "worker_id": record.worker_id,
        "runtime_name": record.runtime_name,
        "runtime_version": record.runtime_version,
        "input_preview": record.input_preview,
        "metadata": jsonable(record.metadata),
        "last_logs": jsonable(record.last_logs),
        "status": record.status,
    }
    fields: dict[str, bytes] = {
        "facts": orjson.dumps(facts, default=repr),
        "state": record.state.encode(),
        "replay_count": b"%d" % record.replay_count,
        "investigation_status": record.investigation_status.encode(),
        "retry_status": record.retry_status.encode(),
    }
    if body is not None:
        fields["body"] = body
    return fields, body is not None


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


def decode_record(fields: Mapping[str, bytes | None], body: bytes | None = None) -> DLQRecord:
    """A record from its hash fields (``body`` given separately, or absent).

    Raises:
        ContractError: the stored facts are not a record (reason ``schema``).
    """
    raw = fields.get("facts")
    if raw is None:
        raise ContractError("DLQ record without facts")
    try:
        facts = orjson.loads(raw)
        state: dict[str, Any] = {}
        for name in STATE_FIELDS:
            value = fields.get(name)
            if value is None:
                continue
            if name == "replay_count":
                state[name] = int(value)
            elif name in _TIME_FIELDS:
                state[name] = parse_time(value)
            else:
                state[name] = _text(value)
        unconfirmed = None
        if state.get("unconfirmed_kind"):
            unconfirmed = {
                "kind": state.pop("unconfirmed_kind"),
                "started_at": state.pop("unconfirmed_at", None),
                "target_queue": state.pop("unconfirmed_target", None),
            }
        for name in ("unconfirmed_kind", "unconfirmed_at", "unconfirmed_target"):
            state.pop(name, None)
        return DLQRecord(
            dlq_id=facts["dlq_id"],
            queue_name=facts["queue_name"],
            source_queue_name=facts["source_queue_name"],
            retry_queue_name=facts.get("retry_queue_name"),
            task_id=facts.get("task_id"),
            correlation_id=facts.get("correlation_id"),
            message_id=facts.get("message_id"),
            service_name=facts.get("service_name") or "unknown",
            reason=facts["reason"],
            exception_type=facts.get("exception_type"),
            exception_message=facts.get("exception_message"),
            traceback=facts.get("traceback"),
            retry_attempt=int(facts.get("retry_attempt") or 0),
            max_retries=facts.get("max_retries"),
            headers=dict(facts.get("headers") or {}),
            content_type=facts.get("content_type"),
            body=body,
            body_size=int(facts.get("body_size") or 0),
            body_omitted=facts.get("body_omitted"),
            body_encoding=facts.get("body_encoding"),
            dead_lettered_at=parse_time(facts["dead_lettered_at"]) or datetime.now(UTC),
            worker_id=facts.get("worker_id"),
            runtime_name=facts.get("runtime_name") or "relayna-worker",
            runtime_version=facts.get("runtime_version"),
            input_preview=facts.get("input_preview"),
            metadata=dict(facts.get("metadata") or {}),
            last_logs=list(facts.get("last_logs") or []),
            status=facts.get("status") or "DLQ",
            unconfirmed_republish=unconfirmed,
            **state,
        )
    except (KeyError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
        raise ContractError(f"DLQ record does not decode: {exc!r}") from None
