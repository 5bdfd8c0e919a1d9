"""Turning a :data:`Decision` into effects and exactly one settlement.

Order is the data-safety rule: every effect (retry copy, DLQ copy + record,
status) is confirmed before the delivery is acked. A failed effect raises;
the worker then requeues the delivery (nack), so nothing is lost.

The ``retrying`` and ``failed`` statuses say what happened in ``meta``
(:func:`failure_meta`): which attempt failed, the retry budget, the reason and
exception, and where the message went.
"""

from __future__ import annotations

import logging
from collections import Counter
from traceback import format_exception
from typing import Any

import anyio
import attrs

from relayna import __version__
from relayna.contracts import (
    DEFAULT_LIMITS,
    Limits,
    StatusEvent,
    is_valid_identifier,
    loads,
    without_headers,
)
from relayna.contracts import headers as h
from relayna.errors import ContractError, StoreConnectionError
from relayna.observability import (
    AggregationDeadLetterPublished,
    AggregationRetryScheduled,
    ConsumerDeadLetterPublished,
    ConsumerDLQRecordPersistFailed,
    ConsumerRetryScheduled,
    ObservationPump,
    TaskLifecycleStatusPublished,
    TaskMessageAcked,
    TaskMessageRejected,
)
from relayna.rabbitmq import RelaynaClient
from relayna.transport import Delivery, Properties, ReplicaBarrier

from ._context import LifecycleStatuses
from ._decide import Ack, DeadLetter, Decision, Failed, Reject, Requeue, Retry, RetryPolicy, Stop
from ._dlq import DLQRecorder, make_dlq_record

__all__ = [
    "EXCEPTION_MESSAGE",
    "ConsumerStats",
    "MessageInfo",
    "Settler",
    "failure_meta",
    "poison_info",
]

logger = logging.getLogger("relayna.consumer")

#: DLQ copies carry the (truncated) exception text here.
EXCEPTION_MESSAGE = "relayna-exception-message"
_MAX_EXCEPTION_TEXT = 1024
_MAX_EXCEPTION_TYPE = 255
_MAX_TRACEBACK = 4000
#: Pause before a DLQ record that was not replicated is written again.
_RECORD_RETRY_PAUSE = 0.05


def failure_meta(
    decision: Retry | DeadLetter | Reject | Requeue,
    *,
    attempt: int,
    max_retries: int | None,
    dead_letter_queue: str | None,
    include_message: bool,
    traceback: str | None = None,
) -> dict[str, Any]:
    """The ``meta`` fields of a ``retrying`` / ``failed`` status (pure).

    ``attempt`` is the attempt that failed, counting from 0 (the header's
    count); the status says ``attempt + 1``, as a person counts.
    ``dead_letter_queue`` is set for :class:`DeadLetter` (the copy's queue).
    """
    meta: dict[str, Any] = {
        "attempt": attempt + 1,
        "max_retries": max_retries if max_retries is not None else 0,
        "reason": decision.reason,
    }
    if decision.exception_type:
        meta["exception_type"] = decision.exception_type[:_MAX_EXCEPTION_TYPE]
    if include_message and decision.exception_message:
        meta["exception_message"] = decision.exception_message[:_MAX_EXCEPTION_TEXT]
    if traceback:
        meta["traceback"] = traceback[-_MAX_TRACEBACK:]
    if isinstance(decision, Retry):
        meta["retry_delay_ms"] = decision.delay_ms
    else:
        meta["dead_lettered"] = isinstance(decision, DeadLetter)
        if isinstance(decision, DeadLetter) and dead_letter_queue is not None:
            meta["dead_letter_queue"] = dead_letter_queue
        if isinstance(decision, Requeue):
            meta["requeued"] = True
    return meta


@attrs.define
class ConsumerStats:
    """Counters of one consumer (read them for metrics and tests)."""

    received: int = 0
    acked: int = 0
    rejected: int = 0
    requeued: int = 0
    retried: int = 0
    dead_lettered: int = 0
    handler_failures: int = 0
    duplicates_suppressed: int = 0
    statuses_published: int = 0
    batches_fanned_out: int = 0
    manual_retries: int = 0
    settle_errors: int = 0
    effect_errors: int = 0
    dlq_record_errors: int = 0
    reconnects: int = 0
    consumer_timeouts: int = 0  # channels the broker closed: a delivery outlived its timeout
    drain_requeued: int = 0
    lease_conflicts: int = 0
    leases_lost: int = 0
    #: Tasks that ended ``cancelled`` / ``expired``, by phase (``before_start``, ``running``).
    cancelled: Counter[str] = attrs.field(factory=Counter)
    expired: Counter[str] = attrs.field(factory=Counter)
    poison: Counter[str] = attrs.field(factory=Counter)


@attrs.frozen
class MessageInfo:
    task_id: str | None
    correlation_id: str | None
    attempt: int
    headers: dict[str, Any]
    meta: dict[str, Any] = attrs.field(factory=dict)
    parent_task_id: str | None = None
    #: Carried into every observation of the attempt.
    task_type: str | None = None


@attrs.define(eq=False)
class Settler:
    client: RelaynaClient
    queue: str
    consumer_name: str
    policy: RetryPolicy | None
    statuses: LifecycleStatuses
    recorder: DLQRecorder | None
    pump: ObservationPump
    stats: ConsumerStats
    aggregation: bool = False
    worker_id: str | None = None
    #: Longest wait for the DLQ recorder; the copy is acked either way.
    record_timeout: float = 5.0
    #: The store writes made for a message reach replicas before its ack.
    replicas: ReplicaBarrier | None = None

    async def durable(self) -> None:
        """Before an ack: the message's store writes reached the replicas.

        Raises:
            StoreConnectionError: not in time: the delivery is not acked.
        """
        if self.replicas is not None:
            await self.replicas.wait()

    @property
    def dead_letter_queue(self) -> str:
        return (self.policy or RetryPolicy()).dead_letter_queue(self.queue)

    def _common(self, info: MessageInfo) -> dict[str, Any]:
        common: dict[str, Any] = {
            "consumer_name": self.consumer_name,
            "queue_name": self.queue,
            "task_id": info.task_id,
            "correlation_id": info.correlation_id,
            "retry_attempt": info.attempt,
            "task_type": info.task_type,
        }
        if self.aggregation:
            common["parent_task_id"] = info.parent_task_id
        return common

    async def status(
        self,
        info: MessageInfo,
        status: str | None,
        message: str | None = None,
        *,
        result: Any = None,
        meta: dict[str, Any] | None = None,
        final_failure: bool = False,
    ) -> None:
        """Publish a lifecycle status (when enabled and the message has a task id).

        ``final_failure``: the task is dead-lettered or rejected; a task
        consumer reports that even with statuses disabled (``report_failures``).
        """
        prepared = self.prepare_status(
            info, status, message, result=result, meta=meta, final_failure=final_failure
        )
        if prepared is not None:
            await self.publish_prepared(info, prepared)

    def prepare_status(
        self,
        info: MessageInfo,
        status: str | None,
        message: str | None = None,
        *,
        result: Any = None,
        meta: dict[str, Any] | None = None,
        final_failure: bool = False,
    ) -> tuple[StatusEvent, bytes] | None:
        """The event :meth:`status` would publish, validated and encoded (``None``: none).

        Raises:
            ContractError: the event does not fit the contract (e.g. too large).
        """
        statuses = self.statuses
        if status is None or info.task_id is None:
            return None
        if not statuses.enabled and not (
            final_failure and statuses.report_failures and not self.aggregation
        ):
            return None
        event = StatusEvent(
            task_id=info.task_id,
            status=status,
            message=message,
            meta={**info.meta, **meta} if meta else dict(info.meta),
            result=result,
            correlation_id=info.correlation_id,
        )
        return self.client.prepare_status(event)

    async def publish_prepared(
        self, info: MessageInfo, prepared: tuple[StatusEvent, bytes]
    ) -> None:
        """Publish an event from :meth:`prepare_status`."""
        await self.client.publish_prepared_status(*prepared)
        self.stats.statuses_published += 1
        if self.pump.enabled:
            self.pump.emit(
                TaskLifecycleStatusPublished(
                    status=prepared[0].status, **_task_fields(self._common(info))
                )
            )

    def _error_text(self, text: str | None) -> str | None:
        if not self.statuses.include_error_message or not text:
            return None
        return text[:_MAX_EXCEPTION_TEXT]

    async def ack(self, delivery: Delivery, info: MessageInfo) -> None:
        await self.durable()
        await delivery.ack()
        self.stats.acked += 1
        if self.pump.enabled:
            self.pump.emit(TaskMessageAcked(**_task_fields(self._common(info))))

    def _failure_meta(
        self,
        decision: Retry | DeadLetter | Reject | Requeue,
        info: MessageInfo,
        failure: Failed | None,
    ) -> dict[str, Any]:
        statuses = self.statuses
        trace = None
        if statuses.include_traceback and failure is not None and failure.exception is not None:
            trace = "".join(format_exception(failure.exception))
        return failure_meta(
            decision,
            attempt=info.attempt,
            max_retries=self.policy.max_retries if self.policy is not None else None,
            dead_letter_queue=self.dead_letter_queue,
            include_message=statuses.include_error_message,
            traceback=trace,
        )

    async def settle(
        self,
        delivery: Delivery,
        decision: Decision,
        info: MessageInfo,
        *,
        failure: Failed | None = None,
    ) -> None:
        """Apply ``decision``: effects first (confirmed), then one settlement.

        ``failure``: the handler's failure, whose traceback goes into
        ``meta.traceback`` when the statuses include it.
        """
        if isinstance(decision, Ack):
            await self.ack(delivery, info)
        elif isinstance(decision, Stop):
            await self._stop(delivery, decision, info)
        elif isinstance(decision, Retry):
            await self._retry(delivery, decision, info, failure)
        elif isinstance(decision, DeadLetter):
            await self._dead_letter(delivery, decision, info, failure)
        elif isinstance(decision, Reject):
            text = decision.exception_message or decision.reason
            await self.status(
                info,
                self.statuses.failed,
                self._error_text(text),
                meta=self._failure_meta(decision, info, failure),
                final_failure=True,
            )
            await delivery.reject(requeue=False)
            self.stats.rejected += 1
            self.pump.emit(
                TaskMessageRejected(
                    reason=decision.reason, requeue=False, **_task_fields(self._common(info))
                )
            )
        elif isinstance(decision, Requeue):
            text = decision.exception_message or decision.reason
            await self.status(
                info,
                self.statuses.failed,
                self._error_text(text),
                meta=self._failure_meta(decision, info, failure),
            )
            await delivery.nack(requeue=True)
            self.stats.requeued += 1
            self.pump.emit(
                TaskMessageRejected(
                    reason=decision.reason, requeue=True, **_task_fields(self._common(info))
                )
            )

    async def _stop(self, delivery: Delivery, decision: Stop, info: MessageInfo) -> None:
        """A cancelled or expired task: its status (even with statuses off), then ack."""
        if decision.status == "cancelled":
            self.stats.cancelled[decision.phase] += 1
            status: str | None = self.statuses.cancelled
        elif decision.status == "expired":
            self.stats.expired[decision.phase] += 1
            status = self.statuses.expired
        else:
            status = decision.status
        if status is not None:
            await self.status(
                info,
                status,
                decision.message,
                meta={"reason": decision.reason, "phase": decision.phase},
                final_failure=True,
            )
        await self.ack(delivery, info)

    def _copy_properties(
        self, delivery: Delivery, headers: dict[str, Any], priority: int | None
    ) -> Properties:
        props = delivery.properties
        return Properties(
            content_type=props.content_type,
            content_encoding=props.content_encoding,
            headers=headers,
            delivery_mode=2,
            priority=priority if priority is not None else props.priority,
            correlation_id=props.correlation_id,
            message_id=props.message_id,
            type=props.type,
            app_id=props.app_id,
        )

    async def _retry(
        self, delivery: Delivery, decision: Retry, info: MessageInfo, failure: Failed | None
    ) -> None:
        policy = self.policy
        assert policy is not None
        retry_queue = policy.retry_queue(self.queue)
        headers = without_headers(info.headers, (*h.RETRY_HEADERS, EXCEPTION_MESSAGE))
        headers.update(
            {
                h.RETRY_ATTEMPT: decision.attempt,
                h.MAX_RETRIES: policy.max_retries,
                h.SOURCE_QUEUE: self.queue,
                h.FAILURE_REASON: decision.reason,
                h.EXCEPTION_TYPE: decision.exception_type[:255],
            }
        )
        props = self._copy_properties(delivery, headers, policy.retry_priority(decision.attempt))
        await self.client.publish_raw("", retry_queue, delivery.body, props, check_size=False)
        kind = AggregationRetryScheduled if self.aggregation else ConsumerRetryScheduled
        self.pump.emit(
            kind(
                next_attempt=decision.attempt,
                max_retries=policy.max_retries,
                retry_queue_name=retry_queue,
                delay_ms=decision.delay_ms,
                reason=decision.reason,
                **self._common(info),
            )
        )
        await self.status(
            info,
            self.statuses.retrying,
            f"Task processing failed. Scheduling retry {decision.attempt}/{policy.max_retries}.",
            meta=self._failure_meta(decision, info, failure),
        )
        await self.durable()
        await delivery.ack()
        self.stats.retried += 1

    async def _dead_letter(
        self,
        delivery: Delivery,
        decision: DeadLetter,
        info: MessageInfo,
        failure: Failed | None,
    ) -> None:
        dlq = self.dead_letter_queue
        headers = without_headers(
            info.headers, (h.FAILURE_REASON, h.EXCEPTION_TYPE, EXCEPTION_MESSAGE)
        )
        headers.update(
            {
                h.RETRY_ATTEMPT: decision.attempt,
                h.SOURCE_QUEUE: self.queue,
                h.FAILURE_REASON: decision.reason,
            }
        )
        if self.policy is not None:
            headers[h.MAX_RETRIES] = self.policy.max_retries
        if decision.exception_type:
            headers[h.EXCEPTION_TYPE] = decision.exception_type[:255]
        if decision.exception_message:
            headers[EXCEPTION_MESSAGE] = decision.exception_message[:_MAX_EXCEPTION_TEXT]
        props = self._copy_properties(delivery, headers, None)
        await self.client.publish_raw("", dlq, delivery.body, props, check_size=False)
        self.stats.dead_lettered += 1
        kind = AggregationDeadLetterPublished if self.aggregation else ConsumerDeadLetterPublished
        self.pump.emit(
            kind(
                dead_letter_queue_name=dlq,
                reason=decision.reason,
                exception_type=decision.exception_type,
                exception_message=decision.exception_message,
                **self._common(info),
            )
        )
        await self._record(delivery, decision, info, dlq, headers)
        await self.status(
            info,
            self.statuses.failed,
            self._error_text(decision.exception_message or decision.reason),
            meta=self._failure_meta(decision, info, failure),
            final_failure=True,
        )
        await self.durable()
        await delivery.ack()

    async def _record(
        self,
        delivery: Delivery,
        decision: DeadLetter,
        info: MessageInfo,
        dlq: str,
        headers: dict[str, Any],
    ) -> None:
        if self.recorder is None:
            return
        metadata = dict(info.meta)
        if info.parent_task_id is not None:
            metadata.setdefault("parent_task_id", info.parent_task_id)
        record = make_dlq_record(
            queue_name=dlq,
            source_queue_name=self.queue,
            retry_queue_name=self.policy.retry_queue(self.queue) if self.policy else None,
            task_id=info.task_id,
            correlation_id=info.correlation_id or delivery.properties.correlation_id,
            service_name=self.consumer_name,
            reason=decision.reason,
            exception_type=decision.exception_type,
            exception_message=decision.exception_message,
            retry_attempt=decision.attempt,
            max_retries=self.policy.max_retries if self.policy else None,
            headers=headers,
            content_type=delivery.properties.content_type,
            body=delivery.body,
            identity_headers=info.headers,
            message_id=delivery.properties.message_id,
            worker_id=self.worker_id,
            runtime_version=__version__,
            metadata=metadata,
        )
        try:
            # Bounded: a slow store never holds back the ack of a copy the
            # broker already confirmed.
            with anyio.fail_after(self.record_timeout):
                await self._add_durably(record)
        except Exception as exc:  # the recorder is user code; TimeoutError included
            # The DLQ copy is already confirmed in the broker: count, observe,
            # log, and still ack (a requeue would only duplicate the copy).
            self.stats.dlq_record_errors += 1
            logger.exception("DLQ record for %s could not be persisted", info.task_id)
            self.pump.emit(
                ConsumerDLQRecordPersistFailed(
                    dead_letter_queue_name=dlq,
                    exception_type=type(exc).__name__,
                    exception_message=str(exc)[:_MAX_EXCEPTION_TEXT],
                    **_task_fields(self._common(info)),
                )
            )

    async def _add_durably(self, record: Any) -> None:
        """``recorder.add``; waiting for replicas, written again until they have
        it (the add is idempotent: the record's id comes from the dead-letter's
        facts) -- bounded by the caller's ``record_timeout``."""
        assert self.recorder is not None
        if self.replicas is None or not self.replicas.enabled:
            await self.recorder.add(record)
            return
        while True:
            try:
                await self.recorder.add(record)
                await self.replicas.wait()
                return
            except StoreConnectionError as exc:  # a failover: write again, then wait
                logger.info("DLQ record %s not replicated yet: %s", record.dlq_id, exc)
                await anyio.sleep(_RECORD_RETRY_PAUSE)


def _task_fields(common: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in common.items() if k != "parent_task_id"}


def poison_info(delivery: Delivery, *, limits: Limits = DEFAULT_LIMITS) -> MessageInfo:
    """What a poison message can safely tell (invalid ids are dropped).

    The task id comes from the ``task_id`` header, else from the body's
    ``task_id`` (or ``documentId``) when the body is a JSON object within
    ``limits``: a task that names itself gets its ``failed`` status even when
    the rest of it is refused, so nobody waits forever on it.
    """
    headers = dict(delivery.properties.headers)
    task_id = headers.get(h.TASK_ID)
    if not is_valid_identifier(task_id):
        task_id = _body_task_id(delivery.body, limits)
    correlation = delivery.properties.correlation_id
    return MessageInfo(
        task_id=task_id if is_valid_identifier(task_id) else None,
        correlation_id=correlation if is_valid_identifier(correlation) else None,
        attempt=0,
        headers=headers,
    )


def _body_task_id(body: bytes, limits: Limits) -> str | None:
    try:
        data = loads(body, limits=limits)
    except ContractError:
        return None
    if type(data) is not dict:
        return None
    task_id = data.get("task_id", data.get("documentId"))
    return task_id if is_valid_identifier(task_id) else None
