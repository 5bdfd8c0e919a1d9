"""``TaskConsumer``: the per-message flow for task queues.

Per delivery: classify (poison → DLQ with a reason, handler never called;
batch → fan out), idempotency check (completed key → ack, no handler),
lease (optional; a conflict is requeued after ``conflict_delay``, a lost
lease cancels the handler), "processing" status, middleware + handler, then
:func:`decide` and the settler: "completed" status + idempotency mark + ack,
broker retry, DLQ, reject or requeue. A manual retry publishes ``manual_retrying`` and the
hand-off copy (through the tasks exchange, also to task types that only
another service's topology binds), then acks; a hand-off nobody can take
(unroutable) keeps the original: retry policy, else the dead-letter queue.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping
from functools import partial
from typing import Any

import anyio
import attrs

from relayna.contracts import TaskEnvelope
from relayna.errors import (
    ConfigurationError,
)
from relayna.observability import (
    DuplicateSuppressed,
    TaskHandlerFailed,
    TaskMessageReceived,
    TaskMessageRejected,
    TaskResourceSampled,
    extract_trace,
    log_context,
    sample_process_resources,
)
from relayna.rabbitmq import RelaynaClient, TaskTopology
from relayna.transport import Delivery

from ._base import HandlerT
from ._cancel import Running
from ._context import ManualRetryRequest, TaskContext
from ._decide import (
    Expired,
    Failed,
    Outcome,
    Poison,
    Stop,
    Succeeded,
)
from ._handoff import fan_out
from ._inbound import InboundBatch, InboundTask, parse_task
from ._lease import LeaseLost, LeasePolicy, LeaseStore, call_with_lease
from ._settle import MessageInfo, Settler
from ._task_end import TaskSettlement

__all__ = ["TaskConsumer"]

logger = logging.getLogger("relayna.consumer")


@attrs.define(eq=False, kw_only=True)
class TaskConsumer(TaskSettlement):
    """Consume a task queue with retries, DLQ, statuses, idempotency and drain.

    Args:
        topology: a task topology (shared or routed).
        handler: ``async def handler(task, ctx)`` (or sync: run in a worker
            thread through ``thread_limiter``), or a mapping ``task_type ->
            handler`` (tasks of other types are dead-lettered ``no_handler``).
        broker: an open :class:`~relayna.transport.Broker` or a URL (opened,
            and re-opened after connection loss, by :meth:`run`).
        queue: defaults to the topology's tasks queue.
        prefetch: unsettled deliveries and concurrent handlers (default: the
            topology's ``prefetch_count``); 1 keeps ordering.
        retry_policy: broker-delayed retries, then ``<queue>.dlq``. Without
            one a failure is rejected or requeued per ``failure_action``.
        idempotency: durable keys; a completed key is acked without a call.
        leases: one worker per task id at a time (``lease_id = task_id``),
            renewed while the handler runs (see :mod:`relayna.consumer._lease`).
        lease_policy: TTL, renewal interval and conflict delay.
        lease_owner: this worker's owner id (default: unique per instance).
        cancels, cancel_grace, deadline_tolerance, on_expiry: see
            :class:`CancellableConsumer`; with ``cancels`` the worker applies
            cancels (before the handler starts, and to running handlers
            through the control exchange) and decides every task's one
            terminal status in the store.
        failure_action, idempotency: see :class:`TaskSettlement`.
    """

    handler: HandlerT | Mapping[str, HandlerT]
    queue: str | None = None
    consumer_name: str = "relayna-task-consumer"
    batch_publish_concurrency: int = 16
    leases: LeaseStore | None = None
    lease_policy: LeasePolicy = attrs.field(factory=LeasePolicy)
    lease_owner: str | None = None
    # Resolved once: isinstance on a runtime Protocol costs tens of µs per call.
    _queue_name: str = attrs.field(init=False, default="")
    _routed: frozenset[str] | None = attrs.field(init=False, default=None)
    _known: frozenset[str] | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.lease_owner is None:
            host = socket.gethostname()[:64]
            self.lease_owner = f"{self.consumer_name}@{host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        if not isinstance(self.topology, TaskTopology):
            raise ConfigurationError(f"{type(self.topology).__name__} is not a task topology")
        if self.batch_publish_concurrency < 1:
            raise ConfigurationError("batch_publish_concurrency must be >= 1")
        self._queue_name = self.queue if self.queue is not None else self.topology.tasks_queue
        types = getattr(self.topology, "task_types", None)
        self._routed = frozenset(types) if types else None
        self._known = frozenset(self.handler) if isinstance(self.handler, Mapping) else self._routed

    @property
    def queue_name(self) -> str:
        return self._queue_name

    def _handler_for(self, task: TaskEnvelope) -> HandlerT:
        if isinstance(self.handler, Mapping):
            return self.handler[task.task_type or ""]
        return self.handler

    async def _declare(self, client: RelaynaClient) -> None:
        await self._declare_dlq(client)

    async def _process(self, client: RelaynaClient, settler: Settler, delivery: Delivery) -> None:
        parsed = parse_task(
            delivery.body,
            delivery.properties,
            limits=self.limits,
            aliases=self.aliases,
            routed_task_types=self._routed,
            known_task_types=self._known,
        )
        if isinstance(parsed, Poison):
            await self._poison(settler, delivery, parsed)
        elif isinstance(parsed, InboundBatch):
            await self._fan_out(client, settler, delivery, parsed)
        else:
            await self._handle(client, settler, delivery, parsed)

    async def _fan_out(
        self, client: RelaynaClient, settler: Settler, delivery: Delivery, inbound: InboundBatch
    ) -> None:
        await fan_out(client, inbound, queue=self.queue_name, limits=self.limits,
                      concurrency=self.batch_publish_concurrency)  # fmt: skip
        self.stats.batches_fanned_out += 1
        info = MessageInfo(
            task_id=None,
            correlation_id=inbound.batch.batch_id,
            attempt=inbound.attempt,
            headers=inbound.headers,
        )
        await settler.ack(delivery, info)

    async def _handle(
        self, client: RelaynaClient, settler: Settler, delivery: Delivery, inbound: InboundTask
    ) -> None:
        task = inbound.task
        correlation_id = task.correlation_id or task.task_id
        with (
            self._delivery_span(
                "relayna.consumer.task_message",
                delivery,
                inbound.headers,
                task.task_id,
                correlation_id,
                inbound.attempt,
            ),
            log_context(task_id=task.task_id, correlation_id=correlation_id),
        ):
            await self._handle_in_span(client, settler, delivery, inbound)

    async def _handle_in_span(
        self, client: RelaynaClient, settler: Settler, delivery: Delivery, inbound: InboundTask
    ) -> None:
        task = inbound.task
        correlation_id = task.correlation_id or task.task_id
        info = MessageInfo(
            task_id=task.task_id,
            correlation_id=correlation_id,
            attempt=inbound.attempt,
            headers=inbound.headers,
            task_type=task.task_type,
        )
        common: dict[str, Any] = {
            "consumer_name": self.consumer_name,
            "queue_name": self.queue_name,
            "task_id": task.task_id,
            "correlation_id": correlation_id,
            "retry_attempt": inbound.attempt,
            "task_type": task.task_type,
        }
        observe = self._pump.enabled  # no sink: build no observation at all
        if observe:
            self._emit(TaskMessageReceived(redelivered=delivery.redelivered, **common))
        key = self.idempotency.key_for(task) if self.idempotency is not None else None
        if (
            self.cancels is None
            and key is not None
            and self.idempotency is not None
            and await self.idempotency.is_completed(key)
        ):
            self.stats.duplicates_suppressed += 1
            self._emit(DuplicateSuppressed(idempotency_key=key, **common))
            await settler.ack(delivery, info)
            return
        ctx = self._context(
            client,
            delivery,
            task=task,
            task_id=task.task_id,
            correlation_id=correlation_id,
            attempt=inbound.attempt,
            headers=inbound.headers,
            batch_id=inbound.batch_id,
            batch_index=inbound.batch_index,
            batch_size=inbound.batch_size,
            manual_retry_count=inbound.manual_retry_count,
            manual_retry_previous_task_type=inbound.manual_retry_previous_task_type,
            manual_retry_source_consumer=inbound.manual_retry_source_consumer,
            manual_retry_reason=inbound.manual_retry_reason,
            deadline=inbound.deadline,
            cancel_grace=self.cancel_grace,
        )
        lineage = ctx.lineage()
        if lineage is not None:  # lifecycle statuses of a handed-off task carry it too
            info.meta["manual_retry"] = lineage
        trace = extract_trace(inbound.headers)
        if trace is not None:
            ctx.trace = trace  # ctx.otel_context is built from it when a handler asks
        with self.runs.track(task.task_id, inbound.batch_id, ctx) as run:
            await self._run_tracked(client, settler, delivery, inbound, info, ctx, run, key, common)

    async def _run_tracked(
        self,
        client: RelaynaClient,
        settler: Settler,
        delivery: Delivery,
        inbound: InboundTask,
        info: MessageInfo,
        ctx: TaskContext,
        run: Running,
        key: str | None,
        common: dict[str, Any],
    ) -> None:
        task = inbound.task
        observe = self._pump.enabled
        if self.cancels is not None and (
            key is not None or self.runs.may_be_cancelled(task.task_id, inbound.batch_id)
        ):
            step = self.cancels.start_step(
                task.task_id, batch_id=inbound.batch_id, idempotency_key=key
            )
            gate = await self._step(self.cancels, step)
            if gate.state == "duplicate":
                self.stats.duplicates_suppressed += 1
                self._emit(DuplicateSuppressed(idempotency_key=key or "", **common))
                await settler.ack(delivery, info)
                return
            if gate.state != "run":  # cancelled now, or earlier (then say nothing again)
                status = "cancelled" if gate.state == "cancelled" else None
                stop = Stop(status, "cancelled", gate.detail or None, "before_start")
                await settler.settle(delivery, stop, info)
                return
        if self._expired(inbound.deadline):
            await self._finish(settler, delivery, inbound, info, Expired("before_start"))
            return
        owner = self.lease_owner or self.consumer_name
        if self.leases is not None and not await self.leases.acquire(
            task.task_id, owner, self.lease_policy.ttl
        ):
            await anyio.sleep(self.lease_policy.conflict_delay)  # no hot loop; a drain cuts it
            await self._requeue_for_lease(delivery, "lease_conflict", common)
            return
        await settler.status(info, self.statuses.processing)
        call = partial(self._run_handler, run, self._handler_for(task), task, ctx)
        if observe:
            self._emit_resources("start", common)
        started = time.perf_counter()
        outcome: Outcome | ManualRetryRequest
        if self.leases is None:
            outcome = await call()
        else:
            result = await call_with_lease(
                self.leases, self.lease_policy, task.task_id, owner, call
            )
            if isinstance(result, LeaseLost):
                await self._requeue_for_lease(delivery, "lease_lost", common)
                return
            outcome = result
        if self.metrics is not None:
            kind = (
                "failed"
                if isinstance(outcome, Failed)
                else ("manual_retry" if isinstance(outcome, ManualRetryRequest) else "succeeded")
            )
            self.metrics.observe_handler(
                self.queue_name, self.consumer_name, kind, time.perf_counter() - started
            )
        if observe:
            self._emit_resources("end", common)
        handed_off = isinstance(outcome, ManualRetryRequest)
        if isinstance(outcome, ManualRetryRequest):
            outcome = await self._manual_retry(client, ctx, inbound, outcome)
        if isinstance(outcome, Failed) and observe:
            self._emit(
                TaskHandlerFailed(
                    exception_type=outcome.exception_type,
                    exception_message=outcome.exception_message,
                    **common,
                )
            )
        # a published hand-off ends nothing: the copy (same task id) goes on
        handed_off = handed_off and isinstance(outcome, Succeeded)
        await self._finish(settler, delivery, inbound, info, outcome, key=key, claim=not handed_off)

    async def _run_handler(
        self, run: Running, handler: HandlerT, task: TaskEnvelope, ctx: TaskContext
    ) -> Outcome | ManualRetryRequest:
        """The handler inside its cancel scope; a cancel or the deadline is an outcome."""
        return await self._in_scope(
            run, ctx.deadline, partial(self._call_handler, handler, task, ctx)
        )

    def _emit_resources(self, kind: str, common: dict[str, Any]) -> None:
        cpu, rss = sample_process_resources()
        self._emit(TaskResourceSampled(sample_kind=kind, cpu_process_seconds=cpu,
                                       memory_rss_bytes=rss, **common))  # fmt: skip

    async def _requeue_for_lease(
        self, delivery: Delivery, reason: str, common: dict[str, Any]
    ) -> None:
        if reason == "lease_conflict":
            self.stats.lease_conflicts += 1
        else:
            self.stats.leases_lost += 1
        await delivery.nack(requeue=True)
        self.stats.requeued += 1
        self._emit(TaskMessageRejected(reason=reason, requeue=True, **common))
