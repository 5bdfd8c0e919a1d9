"""Typed observations emitted by the worker runtimes (their delivery is :mod:`._pump`).

Observations are frozen attrs value classes. Their class name is the
``event_type`` Studio and the execution graph key on, so names follow the
original relayna (``TaskMessageReceived``, ``ConsumerRetryScheduled`` ...).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs

from relayna.observability._tracing import active_trace_ids, tracing_enabled

__all__ = [
    "AggregationDeadLetterPublished",
    "AggregationHandlerFailed",
    "AggregationMessageAcked",
    "AggregationMessageReceived",
    "AggregationRetryScheduled",
    "ConsumerDLQRecordPersistFailed",
    "ConsumerDeadLetterPublished",
    "ConsumerRetryScheduled",
    "DuplicateSuppressed",
    "Observation",
    "TaskConsumerLoopError",
    "TaskConsumerStarted",
    "TaskHandlerFailed",
    "TaskLifecycleStatusPublished",
    "TaskManualRetryPublished",
    "TaskMessageAcked",
    "TaskMessageReceived",
    "TaskMessageRejected",
    "TaskResourceSampled",
    "WorkflowFanInArrived",
    "WorkflowFanInReleased",
    "WorkflowMessagePublished",
    "WorkflowMessageReceived",
    "WorkflowStageAcked",
    "WorkflowStageFailed",
    "WorkflowStageStarted",
    "observation_to_dict",
]


def _now() -> datetime:
    return datetime.now(UTC)


@attrs.frozen(kw_only=True)
class Observation:
    """Base class: every observation has a UTC timestamp and a component."""

    timestamp: datetime = attrs.field(factory=_now)
    component: str = "task_consumer"

    @property
    def event_type(self) -> str:
        return type(self).__name__


@attrs.frozen(kw_only=True)
class TaskConsumerStarted(Observation):
    consumer_name: str
    queue_name: str
    prefetch: int


@attrs.frozen(kw_only=True)
class TaskConsumerLoopError(Observation):
    consumer_name: str
    queue_name: str
    exception_type: str
    exception_message: str
    reconnect_in_seconds: float


def _trace_id() -> str | None:
    return active_trace_ids()[0] if tracing_enabled() else None


def _span_id() -> str | None:
    return active_trace_ids()[1] if tracing_enabled() else None


@attrs.frozen(kw_only=True)
class _MessageObservation(Observation):
    consumer_name: str
    queue_name: str
    task_id: str | None = None
    correlation_id: str | None = None
    retry_attempt: int = 0
    #: The task's ``task_type`` (routed topologies), on every observation of an attempt.
    task_type: str | None = None
    #: The active span when the observation was made (hex), when tracing is on.
    trace_id: str | None = attrs.field(factory=_trace_id)
    span_id: str | None = attrs.field(factory=_span_id)


@attrs.frozen(kw_only=True)
class TaskMessageReceived(_MessageObservation):
    redelivered: bool = False


@attrs.frozen(kw_only=True)
class TaskMessageAcked(_MessageObservation):
    pass


@attrs.frozen(kw_only=True)
class TaskMessageRejected(_MessageObservation):
    reason: str
    requeue: bool = False


@attrs.frozen(kw_only=True)
class TaskHandlerFailed(_MessageObservation):
    exception_type: str
    exception_message: str


@attrs.frozen(kw_only=True)
class TaskLifecycleStatusPublished(_MessageObservation):
    status: str


@attrs.frozen(kw_only=True)
class TaskManualRetryPublished(_MessageObservation):
    target_task_type: str | None
    manual_retry_count: int
    reason: str | None = None


@attrs.frozen(kw_only=True)
class DuplicateSuppressed(_MessageObservation):
    idempotency_key: str


@attrs.frozen(kw_only=True)
class ConsumerRetryScheduled(_MessageObservation):
    next_attempt: int
    max_retries: int
    retry_queue_name: str
    delay_ms: int
    reason: str = "handler_error"


@attrs.frozen(kw_only=True)
class ConsumerDeadLetterPublished(_MessageObservation):
    dead_letter_queue_name: str
    reason: str
    exception_type: str | None = None
    exception_message: str | None = None


@attrs.frozen(kw_only=True)
class ConsumerDLQRecordPersistFailed(_MessageObservation):
    dead_letter_queue_name: str
    exception_type: str
    exception_message: str


@attrs.frozen(kw_only=True)
class TaskResourceSampled(_MessageObservation):
    """Process CPU seconds and RSS at handler start (``sample_kind="start"``) or end."""

    sample_kind: str
    cpu_process_seconds: float
    memory_rss_bytes: int | None = None


@attrs.frozen(kw_only=True)
class AggregationMessageReceived(TaskMessageReceived):
    component: str = "aggregation_consumer"
    parent_task_id: str | None = None


@attrs.frozen(kw_only=True)
class AggregationMessageAcked(TaskMessageAcked):
    component: str = "aggregation_consumer"
    parent_task_id: str | None = None


@attrs.frozen(kw_only=True)
class AggregationHandlerFailed(TaskHandlerFailed):
    component: str = "aggregation_consumer"
    parent_task_id: str | None = None


@attrs.frozen(kw_only=True)
class AggregationRetryScheduled(ConsumerRetryScheduled):
    component: str = "aggregation_consumer"
    parent_task_id: str | None = None


@attrs.frozen(kw_only=True)
class AggregationDeadLetterPublished(ConsumerDeadLetterPublished):
    component: str = "aggregation_consumer"
    parent_task_id: str | None = None


@attrs.frozen(kw_only=True)
class _WorkflowObservation(_MessageObservation):
    component: str = "workflow_consumer"
    stage: str
    message_id: str | None = None
    origin_stage: str | None = None
    parent_message_id: str | None = None


@attrs.frozen(kw_only=True)
class WorkflowStageStarted(Observation):
    component: str = "workflow_consumer"
    consumer_name: str
    queue_name: str
    stage: str


@attrs.frozen(kw_only=True)
class WorkflowMessageReceived(_WorkflowObservation):
    """A stage worker took a workflow message (one stage attempt)."""

    action: str | None = None
    redelivered: bool = False


@attrs.frozen(kw_only=True)
class WorkflowMessagePublished(_WorkflowObservation):
    """A workflow message was published to ``stage`` (from ``origin_stage``)."""

    action: str | None = None


@attrs.frozen(kw_only=True)
class WorkflowStageAcked(_WorkflowObservation):
    pass


@attrs.frozen(kw_only=True)
class WorkflowStageFailed(_WorkflowObservation):
    exception_type: str
    exception_message: str
    reason: str = "handler_error"


@attrs.frozen(kw_only=True)
class WorkflowFanInArrived(_WorkflowObservation):
    """A branch message reached the join ``stage`` (recorded, not yet joined).

    ``duplicate``: this branch had already arrived (nothing was counted).
    """

    branch: str
    arrived: int
    expected: int
    action: str | None = None
    duplicate: bool = False


@attrs.frozen(kw_only=True)
class WorkflowFanInReleased(_WorkflowObservation):
    """Every branch of the join ``stage`` arrived: its handler runs once, now.

    ``message_id`` is the join's own id; ``branch_message_ids`` and
    ``branch_origin_stages`` list the joined messages in arrival order.
    """

    branches: tuple[str, ...]
    branch_message_ids: tuple[str, ...]
    branch_origin_stages: tuple[str | None, ...]


def observation_to_dict(event: Observation) -> dict[str, Any]:
    """A JSON-ready dict: the attrs fields plus ``event_type``; timestamps ISO."""
    data = attrs.asdict(event, recurse=False)
    data["timestamp"] = event.timestamp.isoformat()
    data["event_type"] = event.event_type
    return data
