"""A worker's side of cancellation: the handlers it is running, and the control queue.

Theory of operation
-------------------
Each delivery whose handler runs is *tracked* (:meth:`InFlight.track`) under
its task id and its batch id, with the :class:`~anyio.CancelScope` the handler
runs in and its :class:`TaskContext`. Tracking starts before the store's
``start`` step, so a cancel is never missed: either ``start`` sees the
marker, or the delivery was already tracked when the control message came
(a scope cancelled before it is entered cancels its first checkpoint).

The ``start`` step costs a store round trip, so a worker asks it only about
deliveries that may be cancelled (or that have an idempotency key, checked in
the same step): it keeps the set of pending cancel ids, read from the store
when its control queue is bound and kept current by the control messages.
While the control queue is not listening, every delivery asks the store.

:func:`run_control_listener` consumes the worker's exclusive queue on the
control exchange (fanout: every worker receives every cancel) and cancels
the tracked scopes of the named task or batch. An async handler is
interrupted at its next ``await`` and its ``finally`` blocks run (async
cleanup inside :meth:`TaskContext.cleanup_scope`, bounded by the grace
period); a sync handler in a worker thread sees ``ctx.cancelled``. Which
status the task ends with is still decided by the store's ``finish`` step.

The store's ``start`` and ``finish`` steps of concurrent deliveries go
through a :class:`StepBatcher`: whatever steps are waiting when a call
leaves run in the next one (group commit), so a busy worker pays about one
store round trip per batch, not two per task.

A control message that names nothing this worker runs is acked and dropped:
the marker in the store covers queued tasks. Malformed control messages are
acked, counted and logged once per session: they cannot be retried into sense.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import anyio
import attrs
from anyio import CancelScope
from anyio.abc import TaskStatus

from relayna.errors import StoreError
from relayna.rabbitmq import CancelStore, ControlMessage, GateResult, Step, declare_control
from relayna.transport import BindingSpec, Broker, QueueSpec

from ._context import TaskContext
from ._group_commit import GroupCommit

__all__ = ["InFlight", "Running", "StepBatcher", "run_control_listener"]

logger = logging.getLogger("relayna.consumer")


@attrs.define(eq=False)
class Running:
    """One handler run a cancel can reach (``ctx``: attached once the context exists)."""

    task_id: str
    batch_id: str | None
    ctx: TaskContext | None = None
    scope: CancelScope = attrs.field(factory=CancelScope)
    _reason: str | None = None

    @property
    def reason(self) -> str | None:
        return self._reason

    def attach(self, ctx: TaskContext) -> None:
        """Give the run its context (a cancel that came before shows in ``ctx.cancelled``)."""
        self.ctx = ctx
        if self._reason is not None and ctx.cancel_reason is None:
            ctx.cancel_reason = self._reason

    def cancel(self, reason: str) -> None:
        """Mark the context cancelled (sync handlers poll it), then cancel the scope."""
        if self._reason is None:
            self._reason = reason
        if self.ctx is not None and self.ctx.cancel_reason is None:
            self.ctx.cancel_reason = reason
        self.scope.cancel()


@attrs.define(eq=False)
class InFlight:
    """The handler runs of one worker, by task id and by batch id."""

    _by_key: dict[str, set[Running]] = attrs.field(factory=dict)
    #: Task and batch ids with a cancel marker, as far as this worker knows: loaded
    #: from the store when the control queue is bound, then added by control messages.
    pending: set[str] = attrs.field(factory=set)
    #: Whether :attr:`pending` is complete (the control queue is bound and was loaded).
    listening: bool = False
    #: Control messages received / that reached a running handler / malformed.
    received: int = 0
    applied: int = 0
    malformed: int = 0

    def __len__(self) -> int:
        return len({id(r) for runs in self._by_key.values() for r in runs})

    @contextmanager
    def track(
        self, task_id: str, batch_id: str | None, ctx: TaskContext | None = None
    ) -> Iterator[Running]:
        run = Running(task_id=task_id, batch_id=batch_id, ctx=ctx)
        keys = [task_id] if batch_id is None or batch_id == task_id else [task_id, batch_id]
        for key in keys:
            self._by_key.setdefault(key, set()).add(run)
        try:
            yield run
        finally:
            for key in keys:
                runs = self._by_key.get(key)
                if runs is not None:
                    runs.discard(run)
                    if not runs:
                        del self._by_key[key]

    def may_be_cancelled(self, task_id: str, batch_id: str | None) -> bool:
        """Whether the store must be asked before ``task_id`` starts (see :attr:`pending`)."""
        if not self.listening:
            return True
        return task_id in self.pending or (batch_id is not None and batch_id in self.pending)

    def cancel(self, key: str, reason: str) -> int:
        """Cancel every run of task (or batch) ``key``; how many there were."""
        runs = list(self._by_key.get(key, ()))
        for run in runs:
            run.cancel(reason)
        return len(runs)


def control_queue_name(exchange: str) -> str:
    """A worker's own queue on the control exchange (exclusive, auto-deleted)."""
    return f"{exchange}.{uuid.uuid4().hex}"


async def run_control_listener(
    broker: Broker,
    cancels: CancelStore,
    inflight: InFlight,
    *,
    consumer_name: str,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Receive cancels until cancelled (started: after the control queue's consume-ok
    and the load of the pending ids).

    The queue is exclusive and auto-deleted: it goes with this connection, so
    a killed worker leaves nothing behind; the next session declares a new one.
    The pending ids are read from the store *after* the queue is bound, so a
    cancel is either in what was read or in the queue: none falls between.

    Raises:
        BrokerError: the declarations or the consumer failed (the session's
            connection is then gone too; the consumer reconnects).

    A store that cannot be read leaves the pending ids unknown: every delivery
    then asks the store's ``start`` step (and fails, and is requeued, while the
    store is down).
    """
    exchange = cancels.control_exchange
    queue = control_queue_name(exchange)
    await declare_control(broker, exchange)
    await broker.declare_queue(QueueSpec(queue, durable=False, exclusive=True, auto_delete=True))
    await broker.bind_queue(BindingSpec(queue=queue, exchange=exchange))
    async with broker.consume(queue, prefetch=256) as consumer:
        try:
            inflight.pending = await cancels.pending_ids()
            inflight.listening = True
        except StoreError as exc:  # every delivery asks the store until the next session
            logger.warning("%s: pending cancels not read (%s)", consumer_name, exc)
        task_status.started()
        try:
            async for delivery in consumer:
                inflight.received += 1
                message = ControlMessage.decode(delivery.body)
                if message is None:
                    inflight.malformed += 1
                    if inflight.malformed == 1:
                        logger.warning("%s: malformed control message dropped", consumer_name)
                else:
                    inflight.pending.add(message.task_id)
                    if inflight.cancel(message.task_id, message.reason):
                        inflight.applied += 1
                await delivery.ack()
        finally:
            inflight.listening = False


@attrs.define(eq=False)
class StepBatcher(GroupCommit[Step, GateResult]):
    """Group commit of the cancellation steps of one worker's deliveries: one
    :meth:`~relayna.rabbitmq.CancelStore.steps` call per batch (see
    :class:`GroupCommit`)."""

    cancels: CancelStore

    async def call(self, items: Sequence[Step]) -> Sequence[GateResult | Exception]:
        return await self.cancels.steps(items)
