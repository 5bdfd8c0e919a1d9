"""Typed observations emitted by the worker runtimes, and the bounded pump
that delivers them to a sink.

Observations are frozen attrs value classes. Their class name is the
``event_type`` Studio and the execution graph key on, so names follow the
original relayna (``TaskMessageReceived``, ``ConsumerRetryScheduled`` ...).

Delivery: a runtime never awaits a sink on its hot path. It calls
:meth:`ObservationPump.emit`, which puts the event on a bounded memory object
stream without blocking; when the buffer is full the event is dropped and
counted (:attr:`ObservationPump.dropped`). The pump's :meth:`ObservationPump.run`
task lives in the runtime's task group and hands events to the sink one by
one; a sink that raises is counted and logged, never fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeAlias, runtime_checkable

import anyio
import attrs
from anyio.abc import TaskStatus

from relayna.observability._tracing import active_trace_ids, tracing_enabled

__all__ = [
    "AggregationDeadLetterPublished",
    "AggregationHandlerFailed",
    "AggregationMessageAcked",
    "AggregationMessageReceived",
    "AggregationRetryScheduled",
    "BatchObservationSink",
    "ConsumerDLQRecordPersistFailed",
    "ConsumerDeadLetterPublished",
    "ConsumerRetryScheduled",
    "DuplicateSuppressed",
    "MemoryObservationCollector",
    "Observation",
    "ObservationPump",
    "ObservationSink",
    "TaskConsumerLoopError",
    "TaskConsumerStarted",
    "TaskHandlerFailed",
    "TaskLifecycleStatusPublished",
    "TaskManualRetryPublished",
    "TaskMessageAcked",
    "TaskMessageReceived",
    "TaskMessageRejected",
    "TaskResourceSampled",
    "WorkflowMessagePublished",
    "WorkflowMessageReceived",
    "WorkflowStageAcked",
    "WorkflowStageFailed",
    "WorkflowStageStarted",
    "observation_to_dict",
]

logger = logging.getLogger("relayna.observability")


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
    #: The active span when the observation was made (hex), when tracing is on.
    trace_id: str | None = attrs.field(factory=_trace_id)
    span_id: str | None = attrs.field(factory=_span_id)


@attrs.frozen(kw_only=True)
class TaskMessageReceived(_MessageObservation):
    redelivered: bool = False
    task_type: str | None = None


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


#: A sink receives observations one at a time.
ObservationSink: TypeAlias = Callable[[Observation], Awaitable[None]]


@runtime_checkable
class BatchObservationSink(Protocol):
    """A sink that also takes several observations at once (one round trip).

    The pump hands it everything queued (up to its batch size) per call.
    """

    async def __call__(self, event: Observation) -> None: ...

    async def send_batch(self, events: Sequence[Observation]) -> None: ...


def observation_to_dict(event: Observation) -> dict[str, Any]:
    """A JSON-ready dict: the attrs fields plus ``event_type``; timestamps ISO."""
    data = attrs.asdict(event, recurse=False)
    data["timestamp"] = event.timestamp.isoformat()
    data["event_type"] = event.event_type
    return data


class MemoryObservationCollector:
    """A sink that keeps every observation in a list (tests, ``relayna dev``)."""

    def __init__(self) -> None:
        self.events: list[Observation] = []

    async def __call__(self, event: Observation) -> None:
        self.events.append(event)

    def of_type(self, kind: type[Observation]) -> list[Observation]:
        return [e for e in self.events if isinstance(e, kind)]


class ObservationPump:
    """Bounded, non-blocking delivery of observations to one sink.

    ``emit`` never blocks: a full buffer drops the event and counts it. Start
    :meth:`run` in the owning task group; it ends when cancelled (pending
    events are dropped and counted) or after :meth:`close`.
    """

    def __init__(
        self, sink: ObservationSink | None, *, buffer: int = 1024, max_batch: int = 256
    ) -> None:
        self._sink = sink
        self._batch = sink.send_batch if isinstance(sink, BatchObservationSink) else None
        self._max_batch = max(1, max_batch)
        self._send, self._receive = anyio.create_memory_object_stream[Observation](
            max_buffer_size=buffer if sink is not None else 0
        )
        self.emitted = 0
        self.dropped = 0
        self.sink_errors = 0

    @property
    def enabled(self) -> bool:
        return self._sink is not None

    def emit(self, event: Observation) -> None:
        """Queue ``event`` for the sink; drop (and count) it when the buffer is full."""
        if self._sink is None:
            return
        try:
            self._send.send_nowait(event)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self.dropped += 1
        else:
            self.emitted += 1

    def close(self) -> None:
        """No more events: :meth:`run` returns after delivering what is queued."""
        self._send.close()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if self._sink is None:
            return
        try:
            async with self._receive:
                async for event in self._receive:
                    if self._batch is not None:
                        await self._send_batch(self._batch, event)
                        continue
                    try:
                        await self._sink(event)
                    except Exception:  # the sink is user code
                        self.sink_errors += 1
                        logger.exception("observation sink failed for %s", event.event_type)
        finally:
            self.dropped += self._receive.statistics().current_buffer_used

    async def _send_batch(
        self, send: Callable[[Sequence[Observation]], Awaitable[None]], first: Observation
    ) -> None:
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                batch.append(self._receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
        try:
            await send(batch)
        except Exception:  # the sink is user code
            self.sink_errors += 1
            logger.exception("observation sink failed for a batch of %d", len(batch))
