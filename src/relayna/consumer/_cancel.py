"""A worker's side of cancellation: the handlers it is running, and the control queue.

Theory of operation
-------------------
Each delivery whose handler runs is *tracked* (:meth:`InFlight.track`) under
its task id and its batch id, with the :class:`~anyio.CancelScope` the handler
runs in and its :class:`TaskContext`. Tracking starts before the store's
``start`` step, so a cancel is never missed: either ``start`` sees the
marker, or the delivery was already tracked when the control message came
(a scope cancelled before it is entered cancels its first checkpoint).

:func:`run_control_listener` consumes the worker's exclusive queue on the
control exchange (fanout: every worker receives every cancel) and cancels
the tracked scopes of the named task or batch. An async handler is
interrupted at its next ``await`` and its ``finally`` blocks run (async
cleanup inside :meth:`TaskContext.cleanup_scope`, bounded by the grace
period); a sync handler in a worker thread sees ``ctx.cancelled``. Which
status the task ends with is still decided by the store's ``finish`` step.

A control message that names nothing this worker runs is acked and dropped:
the marker in the store covers queued tasks. Malformed control messages are
acked, counted and logged once per session: they cannot be retried into sense.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import attrs
from anyio import CancelScope
from anyio.abc import TaskStatus

from relayna.rabbitmq import ControlMessage, declare_control
from relayna.transport import BindingSpec, Broker, QueueSpec

from ._context import TaskContext

__all__ = ["InFlight", "Running", "run_control_listener"]

logger = logging.getLogger("relayna.consumer")


@attrs.define(eq=False)
class Running:
    """One handler run a cancel can reach."""

    task_id: str
    batch_id: str | None
    ctx: TaskContext
    scope: CancelScope = attrs.field(factory=CancelScope)

    @property
    def reason(self) -> str | None:
        return self.ctx.cancel_reason

    def cancel(self, reason: str) -> None:
        """Mark the context cancelled (sync handlers poll it), then cancel the scope."""
        if self.ctx.cancel_reason is None:
            self.ctx.cancel_reason = reason
        self.scope.cancel()


@attrs.define(eq=False)
class InFlight:
    """The handler runs of one worker, by task id and by batch id."""

    _by_key: dict[str, set[Running]] = attrs.field(factory=dict)
    #: Control messages received / that reached a running handler / malformed.
    received: int = 0
    applied: int = 0
    malformed: int = 0

    def __len__(self) -> int:
        return len({id(r) for runs in self._by_key.values() for r in runs})

    @contextmanager
    def track(self, task_id: str, batch_id: str | None, ctx: TaskContext) -> Iterator[Running]:
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
    exchange: str,
    inflight: InFlight,
    *,
    consumer_name: str,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Receive cancels until cancelled (started: after the control queue's consume-ok).

    The queue is exclusive and auto-deleted: it goes with this connection, so
    a killed worker leaves nothing behind; the next session declares a new one.

    Raises:
        BrokerError: the declarations or the consumer failed (the session's
            connection is then gone too; the consumer reconnects).
    """
    queue = control_queue_name(exchange)
    await declare_control(broker, exchange)
    await broker.declare_queue(QueueSpec(queue, durable=False, exclusive=True, auto_delete=True))
    await broker.bind_queue(BindingSpec(queue=queue, exchange=exchange))
    async with broker.consume(queue, prefetch=256) as consumer:
        task_status.started()
        async for delivery in consumer:
            inflight.received += 1
            message = ControlMessage.decode(delivery.body)
            if message is None:
                inflight.malformed += 1
                if inflight.malformed == 1:
                    logger.warning("%s: malformed control message dropped", consumer_name)
            elif inflight.cancel(message.task_id, message.reason):
                inflight.applied += 1
            await delivery.ack()
