"""What a handler sees: :class:`TaskContext`, and the status configuration."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import anyio
import attrs

from relayna.contracts import StatusEvent, TaskEnvelope, format_deadline
from relayna.contracts import headers as h
from relayna.errors import ContractError
from relayna.observability import TraceContext, extract_trace_context
from relayna.rabbitmq import RelaynaClient, with_deadline

__all__ = [
    "LifecycleStatuses",
    "ManualRetryRequested",
    "TaskCancelled",
    "TaskContext",
]

_RESERVED_TASK_FIELDS = frozenset(
    {"task_id", "correlation_id", "task_type", "service", "payload", "priority",
     "spec_version", "created_at"}
)  # fmt: skip


@attrs.frozen
class LifecycleStatuses:
    """Statuses the consumer publishes around the handler (off by default).

    ``retrying`` carries the message "Task processing failed. Scheduling retry
    n/max."; ``failed`` is published when a task is rejected, requeued or
    dead-lettered (with the exception text when ``include_error_message``).
    Both explain themselves in ``meta``: ``attempt`` (which attempt failed,
    counting from 1), ``max_retries``, ``reason``, ``exception_type``,
    ``exception_message`` (at most 1,024 characters) and, on ``failed``,
    ``dead_lettered`` (plus ``dead_letter_queue`` when a copy is there).

    ``report_failures``: a task consumer publishes ``failed`` when it
    dead-letters or rejects a task even while ``enabled`` is False, so no
    failure goes unreported. ``include_traceback`` adds ``meta.traceback``
    (the handler's, at most 4,000 characters; off by default: tracebacks
    show code paths to anyone who can read statuses).
    """

    enabled: bool = False
    processing: str | None = "processing"
    completed: str | None = "completed"
    retrying: str | None = "retrying"
    failed: str | None = "failed"
    manual_retrying: str = "manual_retrying"
    #: Published (even while ``enabled`` is False) when a task is cancelled or
    #: its deadline passes: somebody may be waiting for its end.
    cancelled: str = "cancelled"
    expired: str = "expired"
    include_error_message: bool = True
    report_failures: bool = True
    include_traceback: bool = False


@attrs.frozen
class ManualRetryRequest:
    """What :meth:`TaskContext.manual_retry` asked for."""

    task_type: str | None
    payload: dict[str, Any] | None
    payload_merge: dict[str, Any] | None
    service: str | None
    correlation_id: str | None
    priority: int | None
    reason: str | None
    message: str | None
    meta: dict[str, Any]
    headers: dict[str, Any]
    extra_fields: dict[str, Any]


class ManualRetryRequested(Exception):
    """Raised by :meth:`TaskContext.manual_retry` to end the handler.

    Middleware must let it pass; the consumer publishes the hand-off and acks.
    """

    def __init__(self, request: ManualRetryRequest) -> None:
        super().__init__(f"manual retry to task_type={request.task_type!r}")
        self.request = request


class TaskCancelled(Exception):
    """Raised by :meth:`TaskContext.raise_if_cancelled`: the task was cancelled.

    A handler (a sync one above all: a worker thread cannot be interrupted)
    may raise it, or simply return, once it sees :attr:`TaskContext.cancelled`;
    the task ends ``cancelled`` either way.
    """

    def __init__(self, task_id: str, reason: str) -> None:
        super().__init__(f"task {task_id!r} was cancelled: {reason}")
        self.task_id = task_id
        self.reason = reason


#: ``TaskContext.otel_context`` not built yet (it is, from the headers, on first read).
_FROM_TRACE: Any = object()


@attrs.define(eq=False, kw_only=True)
class TaskContext:
    """Per-delivery context handed to task handlers (and aggregation handlers).

    Attributes mirror the delivery: ``attempt`` counts from 0 (first delivery),
    ``max_retries`` is the policy's (None without a policy), ``redelivered``
    is the broker flag (a hint only; idempotency is what prevents repeats).
    ``trace`` is the message's validated W3C trace context (None when absent
    or malformed); ``otel_context`` the matching OpenTelemetry context when
    ``opentelemetry-api`` is installed (use it as the parent of your spans),
    built from the headers on first read: a handler that never asks for it
    does not pay for a second propagator run (the consumer span has its own).
    """

    client: RelaynaClient
    consumer_name: str
    source_queue: str
    task: TaskEnvelope | None
    task_id: str
    correlation_id: str
    attempt: int
    max_retries: int | None
    redelivered: bool
    headers: dict[str, Any]
    batch_id: str | None = None
    batch_index: int | None = None
    batch_size: int | None = None
    manual_retry_count: int = 0
    manual_retry_previous_task_type: str | None = None
    manual_retry_source_consumer: str | None = None
    manual_retry_reason: str | None = None
    allow_manual_retry: bool = True
    trace: TraceContext | None = None
    _otel_context: Any = _FROM_TRACE
    last_heartbeat: float = attrs.field(factory=anyio.current_time)
    statuses_published: int = 0
    #: The task's deadline, epoch seconds UTC (``None``: none).
    deadline: float | None = None
    #: Seconds a cancelled handler's :meth:`cleanup_scope` may run.
    cancel_grace: float = 5.0
    cancel_reason: str | None = None

    @property
    def otel_context(self) -> Any:
        """The OpenTelemetry context of :attr:`trace` (None without one)."""
        if self._otel_context is _FROM_TRACE:
            self._otel_context = (
                extract_trace_context(self.headers) if self.trace is not None else None
            )
        return self._otel_context

    @otel_context.setter
    def otel_context(self, value: Any) -> None:
        self._otel_context = value

    # -- cancellation and deadline -------------------------------------------

    @property
    def cancelled(self) -> bool:
        """Whether a cancel of this task reached the worker (safe to read from a thread)."""
        return self.cancel_reason is not None

    def raise_if_cancelled(self) -> None:
        """Raise :class:`TaskCancelled` when the task was cancelled (for sync handlers).

        Raises:
            TaskCancelled: :attr:`cancelled` is True.
        """
        if self.cancel_reason is not None:
            raise TaskCancelled(self.task_id, self.cancel_reason)

    @property
    def deadline_at(self) -> datetime | None:
        """The deadline as an aware UTC datetime (``None``: none)."""
        return None if self.deadline is None else datetime.fromtimestamp(self.deadline, tz=UTC)

    def remaining(self) -> float | None:
        """Seconds until the deadline (negative once passed; ``None``: no deadline)."""
        return None if self.deadline is None else self.deadline - time.time()

    def cleanup_scope(self) -> anyio.CancelScope:
        """A shielded scope bounded by the cancel grace period, for async cleanup.

        A cancelled handler is interrupted at its next ``await``; an ``await``
        in its ``finally`` would be interrupted too. Wrap it::

            finally:
                with ctx.cleanup_scope():
                    await release(resource)

        The cleanup then runs even though the task was cancelled (or its
        deadline passed), for at most ``cancel_grace`` seconds.
        """
        return anyio.move_on_after(self.cancel_grace, shield=True)

    async def publish(
        self,
        task: TaskEnvelope | Mapping[str, Any],
        *,
        headers: Mapping[str, Any] | None = None,
        deadline: datetime | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the task's time budget, not this call's
    ) -> TaskEnvelope:
        """Publish a child task that inherits this task's deadline.

        The child carries the parent's absolute deadline unless ``deadline=``
        or ``timeout=`` sets its own (which may not be later than the
        parent's: a child cannot outlive the budget it was given).

        Raises:
            ContractError: invalid task or deadline (see
                :meth:`~relayna.rabbitmq.RelaynaClient.publish_task`).
        """
        merged = self.inherit_deadline(with_deadline(headers, deadline=deadline, timeout=timeout))
        return await self.client.publish_task(task, headers=merged)

    def inherit_deadline(self, headers: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """``headers`` with this message's deadline, or their own if it is earlier."""
        if self.deadline is None:
            return headers
        own = h.get_header(headers, h.DEADLINE) if headers else None
        inherited = format_deadline(self.deadline)
        table = dict(headers or {})
        # ISO 8601 UTC with fixed width: text order is time order.
        table[h.DEADLINE] = inherited if not isinstance(own, str) else min(own, inherited)
        return table

    def heartbeat(self) -> None:
        """Record progress of a long handler (read by worker health reporting)."""
        self.last_heartbeat = anyio.current_time()

    def lineage(self) -> dict[str, Any] | None:
        """``meta.manual_retry`` of a handed-off task (``None`` if never handed off).

        Same shape as on the ``manual_retrying`` status: count, source consumer,
        previous and target task type, reason.
        """
        if not self.manual_retry_count:
            return None
        return {
            "count": self.manual_retry_count,
            "source_consumer": self.manual_retry_source_consumer,
            "previous_task_type": self.manual_retry_previous_task_type,
            "reason": self.manual_retry_reason,
            "target_task_type": self.task.task_type if self.task is not None else None,
        }

    def _event(
        self,
        event: StatusEvent | None,
        fields: Mapping[str, Any],
    ) -> StatusEvent:
        if event is not None and fields:
            raise ValueError("pass either a StatusEvent or keyword fields, not both")
        if event is None:
            if "status" not in fields:
                raise ValueError("publish_status needs status=...")
            event = StatusEvent(task_id=self.task_id, correlation_id=self.correlation_id, **fields)
        else:
            event = attrs.evolve(event, task_id=self.task_id, correlation_id=self.correlation_id)
        lineage = self.lineage()
        if lineage is not None and "manual_retry" not in event.meta:
            meta = dict(event.meta)
            meta["manual_retry"] = lineage
            event = attrs.evolve(event, meta=meta)
        return event

    async def publish_status(
        self, event: StatusEvent | None = None, /, **fields: Any
    ) -> StatusEvent:
        """Publish a status for this task (task_id and correlation_id forced).

        Pass a :class:`StatusEvent` or keyword fields (``status=``, ``message=``,
        ``meta=``, ``result=``, ``event_id=``, ``service=``), not both.
        Manual-retry lineage is merged into ``meta.manual_retry``.
        """
        published = await self.client.publish_status(self._event(event, fields))
        self.statuses_published += 1
        return published

    async def publish_aggregation_status(
        self, event: StatusEvent | None = None, /, **fields: Any
    ) -> StatusEvent:
        """Publish an aggregation status (needs ``meta.parent_task_id``)."""
        published = await self.client.publish_aggregation_status(self._event(event, fields))
        self.statuses_published += 1
        return published

    def manual_retry(
        self,
        *,
        task_type: str | None = None,
        payload: Mapping[str, Any] | None = None,
        payload_merge: Mapping[str, Any] | None = None,
        service: str | None = None,
        correlation_id: str | None = None,
        priority: int | None = None,
        reason: str | None = None,
        message: str | None = None,
        meta: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        extra_fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Hand the task off (same task_id) and end the handler.

        The consumer publishes status ``manual_retrying`` with lineage in
        ``meta.manual_retry``, republishes the task through the tasks exchange
        (routed by ``task_type``), then acks. Never returns.

        Raises:
            ManualRetryRequested: always (the signal the consumer acts on).
            ValueError: both ``payload`` and ``payload_merge``, reserved
                ``extra_fields``, or called outside a task consumer.
        """
        if not self.allow_manual_retry or self.task is None:
            raise ValueError("manual_retry is only available in a task consumer")
        if payload is not None and payload_merge is not None:
            raise ValueError("pass payload or payload_merge, not both")
        extra = dict(extra_fields or {})
        clash = _RESERVED_TASK_FIELDS.intersection(extra)
        if clash:
            raise ValueError(f"extra_fields may not set reserved fields {sorted(clash)}")
        if priority is not None and (type(priority) is not int or not 0 <= priority <= 255):
            raise ContractError("invalid priority", errors=[("priority", f"{priority!r}")])
        raise ManualRetryRequested(
            ManualRetryRequest(
                task_type=task_type,
                payload=dict(payload) if payload is not None else None,
                payload_merge=dict(payload_merge) if payload_merge is not None else None,
                service=service,
                correlation_id=correlation_id,
                priority=priority,
                reason=reason,
                message=message,
                meta=dict(meta or {}),
                headers=dict(headers or {}),
                extra_fields=extra,
            )
        )
