"""Dead-letter records written by the consumers (the ``DLQRecorder`` seam).

A consumer that dead-letters a message publishes the copy to ``<queue>.dlq``
(confirmed) and then hands a :class:`DLQRecord` to its recorder. The Redis
DLQ store of :mod:`relayna.dlq` implements :class:`DLQRecorder`; the
:class:`InMemoryDLQRecorder` here serves tests and ``relayna dev``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = ["DLQRecord", "DLQRecorder", "InMemoryDLQRecorder", "make_dlq_record"]


@attrs.frozen(kw_only=True)
class DLQRecord:
    """One dead-lettered message (a subset of the original's record fields).

    ``body`` is the raw message bytes; ``dlq_id`` is the sha256 of queue,
    source queue, correlation id, attempt, time and body (as the original).
    """

    dlq_id: str
    queue_name: str
    source_queue_name: str
    retry_queue_name: str | None
    task_id: str | None
    correlation_id: str | None
    service_name: str
    reason: str
    exception_type: str | None
    exception_message: str | None
    retry_attempt: int
    max_retries: int | None
    headers: dict[str, Any]
    content_type: str | None
    body: bytes
    dead_lettered_at: datetime

    @property
    def raw_body_b64(self) -> str:
        return base64.b64encode(self.body).decode("ascii")


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
) -> DLQRecord:
    now = datetime.now(UTC)
    digest = hashlib.sha256()
    for part in (
        queue_name,
        source_queue_name,
        correlation_id or "",
        str(retry_attempt),
        now.isoformat(),
    ):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    digest.update(body)
    return DLQRecord(
        dlq_id=digest.hexdigest(),
        queue_name=queue_name,
        source_queue_name=source_queue_name,
        retry_queue_name=retry_queue_name,
        task_id=task_id,
        correlation_id=correlation_id,
        service_name=service_name,
        reason=reason,
        exception_type=exception_type,
        exception_message=exception_message,
        retry_attempt=retry_attempt,
        max_retries=max_retries,
        headers=dict(headers),
        content_type=content_type,
        body=body,
        dead_lettered_at=now,
    )


@runtime_checkable
class DLQRecorder(Protocol):
    """Persists DLQ records. ``add`` raising is counted and observed, never fatal."""

    async def add(self, record: DLQRecord) -> None: ...


class InMemoryDLQRecorder:
    """Keeps records in a list (tests, ``relayna dev``)."""

    def __init__(self) -> None:
        self.records: list[DLQRecord] = []

    async def add(self, record: DLQRecord) -> None:
        self.records.append(record)

    def reasons(self) -> list[str]:
        return [r.reason for r in self.records]
