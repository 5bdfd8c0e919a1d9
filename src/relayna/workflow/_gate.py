"""Where a workflow run's cancel and deadline meet a stage delivery.

A run is cancelled, and given a deadline, by its task id, with the task
worker's store steps (:class:`~relayna.rabbitmq.CancelStore`):

* before a stage is entered (before the dedup/guard script, before a join
  records the branch) the ``start`` step tells whether the run was cancelled:
  the first delivery to meet the marker claims the run's ending and reports
  ``cancelled`` (phase ``before_start``); later ones are acked silently. A
  delivery whose run deadline passed is acked as ``expired``;
* a stage that does not succeed (failed, cancelled or expired while running)
  and a terminal stage that succeeds claim the run's ending in the ``finish``
  step: a cancel that reached the store first wins, so a run ends once. An
  expiry claims with the ``end`` step instead: the first ending claimed wins,
  so fan-out branches that all meet the deadline report ``expired`` once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relayna.consumer import (
    Cancelled,
    Decision,
    Expired,
    Failed,
    FailureAction,
    InboundWorkflow,
    MessageInfo,
    Settler,
    Stop,
)
from relayna.transport import Delivery

if TYPE_CHECKING:
    from ._stage_run import StageRunner

__all__ = ["info_of", "stage_ending", "stop_before_entry"]


def info_of(inbound: InboundWorkflow) -> MessageInfo:
    """The settler's view of a stage delivery."""
    message = inbound.message
    return MessageInfo(
        task_id=message.task_id,
        correlation_id=message.correlation_id or message.task_id,
        attempt=inbound.attempt,
        headers=inbound.headers,
    )


async def stop_before_entry(
    consumer: StageRunner, settler: Settler, delivery: Delivery, inbound: InboundWorkflow
) -> bool:
    """Stop a delivery of a cancelled run, or one past the run's deadline, before
    the stage is entered (a join's branch is then not recorded: the join never
    releases). True: it was stopped (acked, the run's end reported once)."""
    message = inbound.message
    cancels = consumer.cancels
    decision: Decision | None = None
    if cancels is not None and consumer.runs.may_be_cancelled(message.task_id, None):
        gate = await consumer._step(cancels, cancels.start_step(message.task_id))
        if gate.state not in ("run", "duplicate"):  # cancelled now, or reported before
            status = "cancelled" if gate.state == "cancelled" else None
            decision = Stop(status, "cancelled", gate.detail or None, "before_start")
    if decision is None and consumer._expired(inbound.deadline):
        decision = await stage_ending(consumer, Expired("before_start"), inbound)
        workflow = consumer.workflow_store
        if workflow is not None and isinstance(decision, Stop) and decision.status:
            await workflow.fail(
                task_id=message.task_id,
                stage=consumer.stage,
                message_id=message.message_id,
                guard=f"msg:{message.message_id}",
                owner="-",  # no guard was taken: nothing to release
                status=decision.status,
                error={"reason": "deadline_exceeded", "phase": "before_start",
                       "attempt": inbound.attempt},
            )  # fmt: skip
    if decision is None:
        return False
    await settler.settle(delivery, decision, info_of(inbound))
    return True


async def stage_ending(
    consumer: StageRunner, outcome: Cancelled | Expired | Failed, inbound: InboundWorkflow
) -> Decision:
    """The decision for a stage that did not succeed (retries clamped to the run's
    deadline), with the run's ending claimed in the store (a cancel that came first wins)."""
    message = inbound.message
    remaining = consumer._remaining_ms(inbound.deadline)
    decision = consumer._decide(outcome, inbound.attempt, message.task_id, FailureAction.REJECT,
                                remaining_ms=remaining)  # fmt: skip
    if consumer.cancels is not None:
        expired = isinstance(decision, Stop) and decision.status == "expired"
        decision = await consumer._claim(
            consumer.cancels, message.task_id, None, decision, once=expired
        )
    return decision
