"""How a task delivery ends: decide, claim the ending in the store, settle.

:class:`TaskSettlement` is the part of :class:`~relayna.consumer.TaskConsumer`
that runs after the handler: the ``completed`` event is built and checked
first (a refused result fails the task), :func:`decide` picks the
settlement, the store's ``finish`` step (with ``cancels``) lets a cancel that
came first win, then the status, the idempotency mark and the broker
settlement follow. A manual retry publishes its hand-off here too.
"""

from __future__ import annotations

import logging

import attrs

from relayna.errors import ContractError, EnvelopeTooLarge
from relayna.observability import TaskManualRetryPublished
from relayna.rabbitmq import RelaynaClient
from relayna.transport import Delivery

from ._cancellable import CancellableConsumer
from ._context import ManualRetryRequest, TaskContext
from ._decide import Ack, Failed, FailureAction, Outcome, Succeeded
from ._handoff import hand_off
from ._idempotency import Idempotency
from ._inbound import InboundTask
from ._settle import MessageInfo, Settler

__all__ = ["TaskSettlement"]

logger = logging.getLogger("relayna.consumer")


@attrs.define(eq=False, kw_only=True)
class TaskSettlement(CancellableConsumer):
    """The ending of a task delivery (see the module docs).

    Args:
        failure_action: without a retry policy, a failure is rejected
            (``REJECT``, default) or requeued.
        idempotency: durable keys; a completed key is acked without a call
            and marked when a task completes.
    """

    failure_action: FailureAction = FailureAction.REJECT
    idempotency: Idempotency | None = None

    async def _finish(
        self,
        settler: Settler,
        delivery: Delivery,
        inbound: InboundTask,
        info: MessageInfo,
        outcome: Outcome,
        *,
        key: str | None = None,
        claim: bool = True,
    ) -> None:
        """Decide, claim the task's ending in the store (with ``cancels``), then settle.

        The ``completed`` event is built and checked first: an event the
        contract refuses (the result plus the event's own fields over
        ``limits``) makes the outcome :class:`Failed` (reason
        ``result_too_large`` or ``invalid_result``), which the retry policy
        then settles with its own, small, ``retrying``/``failed`` status.
        """
        task = inbound.task
        prepared = None
        if isinstance(outcome, Succeeded) and claim:
            try:
                prepared = settler.prepare_status(
                    info, self.statuses.completed, result=outcome.result
                )
            except ContractError as exc:
                outcome = self._refused(info, exc)
        remaining = self._remaining_ms(inbound.deadline)
        decision = self._decide(outcome, inbound.attempt, task.task_id, self.failure_action,
                                remaining_ms=remaining)  # fmt: skip
        if self.cancels is not None and claim:
            decision = await self._claim(self.cancels, task.task_id, inbound.batch_id, decision)
        if isinstance(decision, Ack) and claim:
            if prepared is not None:
                await settler.publish_prepared(info, prepared)
            if key is not None and self.idempotency is not None:
                await self._mark(key, task.task_id)
        await settler.settle(
            delivery, decision, info, failure=outcome if isinstance(outcome, Failed) else None
        )

    async def _mark(self, key: str, task_id: str) -> None:
        """The idempotency mark; with ``cancels`` on the same store (not in the
        cluster layout, where the key is in another slot than the task's), a step of
        the worker's batched store calls instead of a call of its own."""
        assert self.idempotency is not None
        cancels = self.cancels
        if cancels is not None and not cancels.cluster and cancels.store is self.idempotency.store:
            await self._step(cancels, cancels.mark_step(task_id, key, self.idempotency.ttl_ms))
        else:
            await self.idempotency.mark_completed(key)

    def _refused(self, info: MessageInfo, exc: ContractError) -> Failed:
        reason = "result_too_large" if isinstance(exc, EnvelopeTooLarge) else "invalid_result"
        self.stats.handler_failures += 1
        logger.warning(
            "%s: task %s: the completed status was refused (%s): %s",
            self.consumer_name,
            info.task_id,
            reason,
            exc,
        )
        return Failed(
            exception_type=type(exc).__name__,
            exception_message=str(exc)[:1024],
            reason=reason,
        )

    async def _manual_retry(
        self, client: RelaynaClient, ctx: TaskContext, inbound: InboundTask, req: ManualRetryRequest
    ) -> Succeeded | Failed:
        outcome, target_type, count = await hand_off(
            client,
            ctx,
            inbound,
            req,
            consumer_name=self.consumer_name,
            status=self.statuses.manual_retrying,
        )
        if isinstance(outcome, Succeeded):
            self.stats.manual_retries += 1
            self._emit(
                TaskManualRetryPublished(
                    consumer_name=self.consumer_name,
                    queue_name=self.queue_name,
                    task_id=inbound.task.task_id,
                    correlation_id=ctx.correlation_id,
                    retry_attempt=inbound.attempt,
                    task_type=inbound.task.task_type,
                    target_task_type=target_type,
                    manual_retry_count=count,
                    reason=req.reason,
                )
            )
        return outcome
