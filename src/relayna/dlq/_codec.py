"""A :class:`DLQRecord` as stored: the fields of its Redis hash, and back.

The hash holds the immutable facts as one JSON document (``facts``), the raw
body bytes (``body``, binary-safe, absent when omitted) and one field per
piece of state, so that the store's scripts change state with HSET/HDEL
without ever decoding JSON. Bodies are inspected once, when the record is
added (``body_encoding``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import orjson

from relayna.consumer import DLQRecord, jsonable, jsonable_headers
from relayna.contracts import format_datetime, loads
from relayna.errors import ContractError

__all__ = [
    "DETAIL_FIELDS",
    "LIST_ARGS",
    "LIST_FIELDS",
    "STATE_DEFAULTS",
    "STATE_FIELDS",
    "WATCHED_FIELDS",
    "decode_listed",
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
_NEW = attrs.fields_dict(DLQRecord)
#: The state fields a new record sets, with their values as stored.
STATE_DEFAULTS = {
    name: str(_NEW[name].default).encode()
    for name in ("state", "replay_count", "investigation_status", "retry_status")
}
#: State fields a new record does not have, set only by a change (a republish
#: whose outcome is unknown).
WATCHED_FIELDS = ("unconfirmed_kind",)
#: The other state fields. Every script that sets one of them also sets a field
#: of STATE_DEFAULTS to another value, or a WATCHED_FIELDS field (replayed_at
#: with ``replay_count`` >= 1, investigated_* with ``investigated``, retried_*
#: with ``retried``, unconfirmed_* with ``unconfirmed_kind``): a listing reads
#: them only for a record where one of those differs from a new record's.
DETAIL_FIELDS = tuple(
    name for name in STATE_FIELDS if name not in STATE_DEFAULTS and name not in WATCHED_FIELDS
)
#: The listing script's field arguments (see ``LIST_LUA``).
LIST_ARGS: tuple[str | bytes, ...] = (
    str(len(STATE_DEFAULTS)),
    *(x for pair in STATE_DEFAULTS.items() for x in pair),
    str(len(WATCHED_FIELDS)),
    *WATCHED_FIELDS,
    *DETAIL_FIELDS,
)
_STATE_NAMES = {name.encode(): name for name in STATE_FIELDS}
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
    state = {name: value for name in STATE_FIELDS if (value := fields.get(name)) is not None}
    return _build(fields.get("facts"), state, body)


def decode_listed(facts: bytes | None, pairs: Sequence[bytes]) -> DLQRecord:
    """A record from one entry of the listing script's reply (no body).

    ``pairs`` are ``(field, value)`` of the state fields that differ from a
    new record's (:data:`LIST_ARGS`); the others take the record's defaults.

    Raises:
        ContractError: as :func:`decode_record`.
    """
    try:
        state = {_STATE_NAMES[pairs[i]]: pairs[i + 1] for i in range(0, len(pairs), 2)}
    except (KeyError, IndexError, TypeError) as exc:
        raise ContractError(f"DLQ record does not decode: {exc!r}") from None
    return _build(facts, state, None)


def _build(raw: bytes | None, fields: Mapping[str, bytes], body: bytes | None) -> DLQRecord:
    if raw is None:
        raise ContractError("DLQ record without facts")
    try:
        facts = orjson.loads(raw)
        get = facts.get
        state: dict[str, Any] = {}
        for name, value in fields.items():
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
            retry_queue_name=get("retry_queue_name"),
            task_id=get("task_id"),
            correlation_id=get("correlation_id"),
            message_id=get("message_id"),
            service_name=get("service_name") or "unknown",
            reason=facts["reason"],
            exception_type=get("exception_type"),
            exception_message=get("exception_message"),
            traceback=get("traceback"),
            retry_attempt=int(get("retry_attempt") or 0),
            max_retries=get("max_retries"),
            headers=dict(get("headers") or {}),
            content_type=get("content_type"),
            body=body,
            body_size=int(get("body_size") or 0),
            body_omitted=get("body_omitted"),
            body_encoding=get("body_encoding"),
            dead_lettered_at=parse_time(facts["dead_lettered_at"]) or datetime.now(UTC),
            worker_id=get("worker_id"),
            runtime_name=get("runtime_name") or "relayna-worker",
            runtime_version=get("runtime_version"),
            input_preview=get("input_preview"),
            metadata=dict(get("metadata") or {}),
            last_logs=list(get("last_logs") or []),
            status=get("status") or "DLQ",
            unconfirmed_republish=unconfirmed,
            **state,
        )
    except (KeyError, TypeError, ValueError, AttributeError, orjson.JSONDecodeError) as exc:
        raise ContractError(f"DLQ record does not decode: {exc!r}") from None
