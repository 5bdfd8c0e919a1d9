"""The part of a :class:`~relayna.workflow.WorkflowConsumer` that runs a stage's
handler and settles the delivery after it.

:meth:`StageRunner.run_and_settle` runs the handler under the in-flight
guard (renewed by the consumer's :class:`GuardKeeper`), the stage's
``timeout_seconds``, the run's deadline and its cancel scope, then ends the
delivery: on success the completion script (markers, hand-offs queued,
terminal flag, guard released) and the ack; otherwise the run state records
the failure and the task consumer's settler applies the decision (``.retry``
copy, DLQ copy + record, reject). Deliveries settled without a handler call
(a duplicate, a busy guard) end here too.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from functools import partial
from typing import Any

import anyio
import attrs

from relayna.consumer import (
    Ack,
    CancellableConsumer,
    Cancelled,
    Decision,
    Expired,
    Failed,
    HandlerT,
    InboundWorkflow,
    LeaseLost,
    LeasePolicy,
    LeaseStore,
    Retry,
    Running,
    Settler,
    Stop,
    Succeeded,
    call_with_lease,
)
from relayna.consumer import DeadLetter as DeadLetterDecision
from relayna.consumer import Reject as RejectDecision
from relayna.contracts import WorkflowEnvelope
from relayna.errors import WorkflowContractError
from relayna.observability import (
    DuplicateSuppressed,
    TaskMessageRejected,
    WorkflowStageAcked,
    WorkflowStageFailed,
)
from relayna.topology import WorkflowStage
from relayna.transport import Delivery, Store

from ._batch import StageStepBatcher
from ._context import WorkflowContext
from ._gate import info_of, stage_ending
from ._keeper import GuardKeeper
from ._store import Handoff, WorkflowStore, WorkflowStoreConfig, lineage_of

__all__ = ["RUN", "StageRunner"]

logger = logging.getLogger("relayna.workflow")

#: The run entry of the delivery being processed (for the handler's cancel scope).
RUN: ContextVar[Running | None] = ContextVar("relayna_workflow_run", default=None)


def _status_of(decision: Any) -> str:
    if isinstance(decision, Stop):
        return decision.status or "cancelled"
    if isinstance(decision, Retry):
        return "retrying"
    if isinstance(decision, DeadLetterDecision):
        return "dead_lettered"
    if isinstance(decision, RejectDecision):
        return "failed"
    return "queued"  # requeued


@attrs.define(eq=False, kw_only=True)
class StageRunner(CancellableConsumer):
    """A stage's handler call and settlement (fields: see :class:`WorkflowConsumer`)."""

    stage: str
    handler: HandlerT
    store: Store | None = None
    state: WorkflowStoreConfig = attrs.field(factory=WorkflowStoreConfig)
    lease_policy: LeasePolicy = attrs.field(factory=LeasePolicy)
    leases: LeaseStore | None = None
    _stage: WorkflowStage = attrs.field(init=False, default=None)
    _workflow: WorkflowStore | None = attrs.field(init=False, default=None)
    _keeper: GuardKeeper = attrs.field(init=False, default=None)
    _batcher: StageStepBatcher = attrs.field(init=False, default=None)

    @property
    def workflow_store(self) -> WorkflowStore | None:
        """The run state, dedup and join keys (None without a ``store``)."""
        return self._workflow

    def common(self, message: WorkflowEnvelope, attempt: int) -> dict[str, Any]:
        return {
            "consumer_name": self.consumer_name,
            "queue_name": self.queue_name,
            "task_id": message.task_id,
            "correlation_id": message.correlation_id or message.task_id,
            "retry_attempt": attempt,
        }

    def workflow_fields(self, message_id: str, message: WorkflowEnvelope | None) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "message_id": message_id,
            "origin_stage": message.origin_stage if message is not None else None,
            "parent_message_id": message.parent_message_id if message is not None else None,
        }

    async def run_and_settle(
        self,
        settler: Settler,
        delivery: Delivery,
        inbound: InboundWorkflow,
        ctx: WorkflowContext,
        handler_input: Any,
        *,
        guard: str,
        owner: str,
        signature: str | None,
        join: bool,
    ) -> None:
        """Run the handler (guard renewed, timeout and deadline applied, cancellable)
        and settle the delivery."""
        message = inbound.message
        common = self.common(message, inbound.attempt)
        fields = self.workflow_fields(ctx.message_id, ctx.message)
        run = RUN.get()
        if run is not None:
            run.attach(ctx)
        started = time.perf_counter()
        outcome = await self._guarded_call(ctx, handler_input, guard, owner, message.message_id)
        if outcome is None:  # the guard was lost: another worker took the message over
            await self.requeue_busy(delivery, common, reason="guard_lost", wait=False)
            return
        if self.metrics is not None:
            kind = "succeeded" if isinstance(outcome, Succeeded) else "failed"
            self.metrics.observe_handler(
                self.queue_name, self.consumer_name, kind, time.perf_counter() - started
            )
        workflow = self._workflow
        step = {"task_id": message.task_id, "stage": self.stage, "message_id": ctx.message_id,
                "guard": guard, "owner": owner}  # fmt: skip
        decision: Decision | None = None
        if isinstance(outcome, Succeeded) and self._stage.terminal and self.cancels is not None:
            # the run ends here: claim "completed" unless a cancel came first
            decision = await self._claim(self.cancels, message.task_id, None, Ack())
            if isinstance(decision, Ack):
                decision = None
        if isinstance(outcome, Succeeded) and decision is None:
            if workflow is not None:
                held = await self._batcher.step(
                    workflow.complete_step(
                        **step,
                        handoffs=[
                            Handoff(m.stage, m.message_id, lineage_of(m)) for m in ctx.handoffs
                        ],
                        terminal=self._stage.terminal,
                        dedup_signature=signature,
                        join=join,
                    )
                )
                if not held:
                    logger.warning(
                        "%s: task %s stage %s: the in-flight guard expired before completion; "
                        "another worker may have run message %s too (raise lease_policy.ttl)",
                        self.consumer_name,
                        message.task_id,
                        self.stage,
                        ctx.message_id,
                    )
            await self.await_replicas()  # the completion step is on the replicas
            await delivery.ack()
            self.stats.acked += 1
            self._emit(WorkflowStageAcked(**common, **fields))
            return
        error: dict[str, Any]
        if isinstance(outcome, Failed):
            self._emit(
                WorkflowStageFailed(
                    exception_type=outcome.exception_type,
                    exception_message=outcome.exception_message,
                    reason=outcome.reason,
                    **common,
                    **fields,
                )
            )
            error = {
                "reason": outcome.reason,
                "exception_type": outcome.exception_type,
                "message": outcome.exception_message[:500],
                "attempt": inbound.attempt,
            }
        else:  # cancelled or expired while running, or a cancel won the claim
            error = {"reason": "cancelled", "phase": "running", "attempt": inbound.attempt}
        if decision is None:
            assert not isinstance(outcome, Succeeded)
            decision = await stage_ending(self, outcome, inbound)
        if isinstance(decision, Stop) and decision.status == "expired":
            error["reason"] = decision.reason  # deadline_exceeded, deadline_before_retry
        if workflow is not None:
            await self._batcher.step(
                workflow.fail_step(
                    **step,
                    status=_status_of(decision),
                    error=error,
                )
            )
        failure = outcome if isinstance(outcome, Failed) else None
        await settler.settle(delivery, decision, info_of(inbound), failure=failure)

    async def _guarded_call(
        self, ctx: WorkflowContext, handler_input: Any, guard: str, owner: str, message_id: str
    ) -> Succeeded | Failed | Cancelled | Expired | None:
        call = partial(self._scoped_call, ctx, handler_input)
        if self._workflow is not None and self._keeper.running:
            guarded = self._workflow.guard(self.stage, ctx.task_id)
            return await self._keeper.call(guarded, guard, owner, call)
        if self._workflow is not None:  # not started through run(): a renewal task per call
            result = await call_with_lease(
                self._workflow.guard(self.stage, ctx.task_id),
                self.lease_policy,
                guard,
                owner,
                call,
                release=False,  # released by the completion / failure script
            )
        elif self.leases is not None:
            if not await self.leases.acquire(message_id, owner, self.lease_policy.ttl):
                return None
            result = await call_with_lease(self.leases, self.lease_policy, message_id, owner, call)
        else:
            result = await call()
        return None if isinstance(result, LeaseLost) else result

    async def _scoped_call(
        self, ctx: WorkflowContext, handler_input: Any
    ) -> Succeeded | Failed | Cancelled | Expired:
        """The handler in the run's cancel scope, held to the run's deadline."""
        run = RUN.get()
        call = partial(self._timed_call, ctx, handler_input)
        if run is None:
            return await call()
        return await self._in_scope(run, ctx.deadline, call)

    async def _timed_call(self, ctx: WorkflowContext, handler_input: Any) -> Succeeded | Failed:
        timeout = self._stage.timeout_seconds
        with anyio.move_on_after(timeout if timeout is not None else float("inf")) as scope:
            outcome = await self._call_handler(self.handler, handler_input, ctx)
        if scope.cancelled_caught:
            self.stats.handler_failures += 1
            return Failed(
                exception_type="TimeoutError",
                exception_message=f"stage {self.stage!r} handler exceeded {timeout:g}s",
                reason="stage_timeout",
            )
        if isinstance(outcome, Failed) and isinstance(outcome.exception, WorkflowContractError):
            return attrs.evolve(outcome, reason=outcome.exception.reason)
        if not isinstance(outcome, Succeeded | Failed):  # a manual retry: refused here
            return Failed("ValueError", "manual_retry is not available in a workflow stage")
        return outcome

    # -- settlements without a handler call -----------------------------------------

    async def ack_duplicate(self, delivery: Delivery, common: dict[str, Any], key: str) -> None:
        self.stats.duplicates_suppressed += 1
        self._emit(DuplicateSuppressed(idempotency_key=key, **common))
        await self.await_replicas()  # the marker that made it a duplicate, if this worker wrote it
        await delivery.ack()
        self.stats.acked += 1

    async def requeue_busy(
        self,
        delivery: Delivery,
        common: dict[str, Any],
        *,
        reason: str = "in_flight",
        wait: bool = True,
    ) -> None:
        """Another worker runs this message: wait (a drain cuts it short), then requeue."""
        self.stats.lease_conflicts += 1
        if wait:
            await anyio.sleep(self.lease_policy.conflict_delay)
        await delivery.nack(requeue=True)
        self.stats.requeued += 1
        self._emit(TaskMessageRejected(reason=reason, requeue=True, **common))
