"""Dead-letter records written by the consumers (the ``DLQRecorder`` seam).

A consumer that dead-letters a message publishes the copy to ``<queue>.dlq``
(confirmed) and then hands a :class:`DLQRecord` to its recorder. The DLQ
store of :mod:`relayna.dlq` (memory or Redis) implements
:class:`DLQRecorder`; :class:`InMemoryDLQRecorder` here is a plain list for
tests.

``dlq_id`` is derived from the dead-letter *facts* (queues, correlation id,
attempt, message id, the delivery's headers and body), never from a clock: a
dead-letter copy that is redelivered and recorded again (a crash between the
DLQ publish and the ack) gets the same id, so the store keeps one record. A
message that was replayed and fails again carries the replay headers, so its
second dead-lettering is a new record.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import attrs
import orjson

__all__ = [
    "DLQRecord",
    "DLQRecorder",
    "InMemoryDLQRecorder",
    "compute_dlq_id",
    "jsonable",
    "jsonable_headers",
    "make_dlq_record",
]

#: Characters of the body kept as ``input_preview``.
INPUT_PREVIEW_CHARS = 512


@attrs.frozen(kw_only=True)
class DLQRecord:
    """One dead-lettered message: the original's record fields.

    The consumer fills the facts (identity, queues, failure, headers, body);
    the DLQ store owns the state that changes later (replay, investigation,
    manual retry). ``body`` is the raw message bytes, or ``None`` when the
    store did not keep them (``body_omitted`` says why, ``body_size`` how big
    they were).
    """

    # identity and routing
    dlq_id: str
    queue_name: str
    source_queue_name: str
    retry_queue_name: str | None
    task_id: str | None
    correlation_id: str | None
    message_id: str | None = None
    service_name: str
    # the failure
    reason: str
    exception_type: str | None
    exception_message: str | None
    traceback: str | None = None
    retry_attempt: int
    max_retries: int | None
    # the message
    headers: dict[str, Any]
    content_type: str | None
    body: bytes | None
    body_size: int = attrs.field(
        default=attrs.Factory(lambda self: len(self.body or b""), takes_self=True)
    )
    body_omitted: str | None = None
    #: ``json`` / ``text`` / ``base64`` (``none`` without a body); ``None``
    #: until the store inspected the body.
    body_encoding: str | None = None
    dead_lettered_at: datetime
    # who and what
    worker_id: str | None = None
    runtime_name: str = "relayna-worker"
    runtime_version: str | None = None
    input_preview: str | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)
    last_logs: list[Any] = attrs.field(factory=list)
    status: str = "DLQ"
    # state kept by the store
    state: str = "dead_lettered"
    replay_count: int = 0
    replayed_at: datetime | None = None
    replay_target_queue_name: str | None = None
    investigation_status: str = "unreviewed"
    investigated_at: datetime | None = None
    investigated_by: str | None = None
    investigation_note: str | None = None
    retry_status: str = "not_retried"
    retried_at: datetime | None = None
    retried_by: str | None = None
    retried_task_id: str | None = None
    retry_target_queue: str | None = None
    retry_note: str | None = None
    #: A republish (replay or manual retry) whose outcome is unknown: the
    #: process died, or the connection was lost, between publishing and
    #: recording the result. ``{"kind", "started_at", "target_queue"}``.
    unconfirmed_republish: dict[str, Any] | None = None

    @property
    def failure_id(self) -> str:
        """The failed-task id: the same as ``dlq_id``."""
        return self.dlq_id

    @property
    def failed_at(self) -> datetime:
        return self.dead_lettered_at

    @property
    def payload_available(self) -> bool:
        return self.body is not None

    @property
    def raw_body_b64(self) -> str:
        return base64.b64encode(self.body or b"").decode("ascii")


def _plain(value: Any) -> Any:
    """One AMQP field value as JSON (bytes as text when UTF-8, else base64)."""
    kind = type(value)
    if kind in _AS_IS:  # the common values: what _converted returns unchanged
        return value
    if kind is int:
        return value if _INT64_MIN <= value < 2**64 else str(value)
    return _converted(value)


def _converted(value: Any) -> Any:
    """:func:`_plain` for any value (the rules; ``_plain`` answers the common ones first)."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"$base64": base64.b64encode(raw).decode("ascii")}
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return stamp.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64_MIN <= value < 2**64:
        return str(value)  # beyond what JSON encoders round-trip
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


_INT64_MIN = -(2**63)
_AS_IS = frozenset({str, bool, float, type(None)})


def jsonable(value: Any) -> Any:
    """Any field-table-like value as plain JSON (see :func:`jsonable_headers`)."""
    return _plain(value)


def jsonable_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """AMQP headers as JSON values (datetimes ISO, decimals as strings,
    non-UTF-8 bytes as ``{"$base64": ...}``)."""
    return {str(k): _plain(v) for k, v in (headers or {}).items()}


def compute_dlq_id(
    *,
    queue_name: str,
    source_queue_name: str,
    correlation_id: str | None,
    retry_attempt: int,
    message_id: str | None,
    headers: Mapping[str, Any] | None,
    body: bytes,
) -> str:
    """The sha256 (hex) of the dead-letter facts; no clock is involved."""
    digest = hashlib.sha256()
    for part in (
        queue_name,
        source_queue_name,
        correlation_id or "",
        str(retry_attempt),
        message_id or "",
    ):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    digest.update(orjson.dumps(jsonable_headers(headers), option=orjson.OPT_SORT_KEYS))
    digest.update(b"\x00")
    digest.update(body)
    return digest.hexdigest()


def _preview(body: bytes) -> str | None:
    if not body:
        return None
    text = body[: INPUT_PREVIEW_CHARS * 4].decode("utf-8", "replace")
    return text[:INPUT_PREVIEW_CHARS]


def make_dlq_record(
    *,
    queue_name: str,
    source_queue_name: str,
    retry_queue_name: str | None,
    task_id: str | None,
    correlation_id: str | None,
    service_name: str,
    reason: str,
    exception_type: str | None,
    exception_message: str | None,
    retry_attempt: int,
    max_retries: int | None,
    headers: Mapping[str, Any],
    content_type: str | None,
    body: bytes,
    identity_headers: Mapping[str, Any] | None = None,
    message_id: str | None = None,
    worker_id: str | None = None,
    runtime_version: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    dead_lettered_at: datetime | None = None,
) -> DLQRecord:
    """Build the record of one dead-letter.

    ``headers`` are the DLQ copy's headers (stored, replayed);
    ``identity_headers`` are the delivery's own headers, which identify the
    message across redeliveries (default: ``headers``).
    """
    return DLQRecord(
        dlq_id=compute_dlq_id(
            queue_name=queue_name,
            source_queue_name=source_queue_name,
            correlation_id=correlation_id,
            retry_attempt=retry_attempt,
            message_id=message_id,
            headers=headers if identity_headers is None else identity_headers,
            body=body,
        ),
        queue_name=queue_name,
        source_queue_name=source_queue_name,
        retry_queue_name=retry_queue_name,
        task_id=task_id,
        correlation_id=correlation_id,
        message_id=message_id,
        service_name=service_name,
        reason=reason,
        exception_type=exception_type,
        exception_message=exception_message,
        retry_attempt=retry_attempt,
        max_retries=max_retries,
        headers=dict(headers),
        content_type=content_type,
        body=body,
        dead_lettered_at=dead_lettered_at or datetime.now(UTC),
        worker_id=worker_id,
        runtime_version=runtime_version,
        input_preview=_preview(body),
        metadata=dict(metadata or {}),
    )


@runtime_checkable
class DLQRecorder(Protocol):
    """Persists DLQ records. ``add`` raising is counted and observed, never fatal."""

    async def add(self, record: DLQRecord) -> Any: ...


class InMemoryDLQRecorder:
    """Keeps records in a list (tests)."""

    def __init__(self) -> None:
        self.records: list[DLQRecord] = []

    async def add(self, record: DLQRecord) -> None:
        self.records.append(record)

    def reasons(self) -> list[str]:
        return [r.reason for r in self.records]
