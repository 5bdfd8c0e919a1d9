"""Fan-in: a join stage records each branch and runs its handler once, with all of them.

Theory of operation. Each branch message that reaches a join stage goes
through one script (:data:`~relayna.workflow._scripts.FANIN_ARRIVE_SCRIPT`):
it records the branch (the first copy of a branch wins; a duplicate is
never counted twice), refreshes the partial join's TTL, and, when the
expected branches are all in and no live worker holds the join, claims the
join's guard and returns every branch. The delivery that got the claim runs
the handler; every other delivery is acked once its branch is recorded
(``waiting``), or after the join completed (``done``: a late duplicate), or
waits and is requeued while another worker runs the join (``busy``).

Exactly once: the claim is a guard renewed while the handler runs; the
completion script marks the join done and releases the guard before the
ack. If the claiming worker dies, its delivery returns to the queue and the
next delivery of any branch after the guard's TTL claims the join again (the
handler runs again: it never completed). A failed join is settled like any
stage (retry copy, DLQ); the copy re-enters as an arrival and re-claims.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import TYPE_CHECKING

from relayna.consumer import InboundWorkflow, Poison, Settler
from relayna.contracts import WorkflowEnvelope, decode_workflow
from relayna.observability import WorkflowFanInArrived, WorkflowFanInReleased
from relayna.rabbitmq import RelaynaClient
from relayna.topology import FanIn
from relayna.transport import Delivery

from ._context import JoinedMessage
from ._store import lineage_of

if TYPE_CHECKING:
    from ._consumer import WorkflowConsumer

__all__ = ["arrive", "branch_of", "join_message_id"]

_MAX_BRANCH = 256


def join_message_id(task_id: str, stage: str) -> str:
    """The join's own message id (its hand-offs derive theirs from it)."""
    return hashlib.sha256(f"join\x00{task_id}\x00{stage}".encode()).hexdigest()[:32]


def branch_of(join: FanIn, message: WorkflowEnvelope) -> str | Poison:
    """The branch key of ``message`` at the join, or why the join refuses it."""
    key = join.branch_key
    value: object
    if key == "origin_stage":
        value = message.origin_stage
    elif key == "message_id":
        value = message.message_id
    else:
        part, name = key.split(".", 1)
        source = message.payload if part == "payload" else message.meta
        value = source.get(name)
    if value is None:
        return Poison("fan_in_key_missing", f"the join key {key!r} is missing from the message")
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if not text or len(text) > _MAX_BRANCH:
        return Poison("fan_in_key_invalid", f"the join key {key!r} must be 1..{_MAX_BRANCH} chars")
    if key == "origin_stage" and join.expected_stages and text not in join.expected_stages:
        return Poison(
            "unexpected_branch",
            f"stage {text[:64]!r} is not a branch of this join "
            f"(expected: {', '.join(join.expected_stages)})",
        )
    return text


async def arrive(
    consumer: WorkflowConsumer,
    client: RelaynaClient,
    settler: Settler,
    delivery: Delivery,
    inbound: InboundWorkflow,
) -> None:
    """Record one branch; run the join when this delivery completes it."""
    message = inbound.message
    join = consumer.workflow_stage.join
    workflow = consumer._workflow
    assert join is not None
    assert workflow is not None
    branch = branch_of(join, message)
    if isinstance(branch, Poison):
        await consumer._poison(settler, delivery, branch)
        return
    owner = uuid.uuid4().hex
    arrival = await workflow.arrive(
        task_id=message.task_id,
        stage=consumer.stage,
        branch=branch,
        message_id=message.message_id,
        envelope=delivery.body,
        expected=join.expected_count,
        fanin_ttl_ms=max(1, int(join.ttl_seconds * 1000)),
        owner=owner,
        guard_ttl_ms=consumer.lease_policy.ttl_ms,
        lineage=lineage_of(message),
    )
    common = consumer.common(message, inbound.attempt)
    fields = consumer.workflow_fields(message.message_id, message)
    consumer._emit(
        WorkflowFanInArrived(
            branch=branch,
            arrived=arrival.arrived,
            expected=join.expected_count,
            action=message.action,
            duplicate=not arrival.new,
            **common,
            **fields,
        )
    )
    if arrival.verdict == "busy":
        await consumer.requeue_busy(delivery, common)
        return
    if arrival.verdict != "release":  # waiting, or the join completed before
        if arrival.verdict == "done" or not arrival.new:
            await consumer.ack_duplicate(delivery, common, f"{consumer.stage}:{branch}")
            return
        await consumer.await_replicas()  # the arrival is on the replicas
        await delivery.ack()
        consumer.stats.acked += 1
        return
    messages = tuple(
        decode_workflow(body, limits=consumer.limits, aliases=consumer.aliases)
        for _, body in arrival.branches
    )
    join_id = join_message_id(message.task_id, consumer.stage)
    joined = JoinedMessage(
        task_id=message.task_id,
        stage=consumer.stage,
        message_id=join_id,
        branches=tuple(b for b, _ in arrival.branches),
        messages=messages,
    )
    consumer._emit(
        WorkflowFanInReleased(
            branches=joined.branches,
            branch_message_ids=tuple(m.message_id for m in messages),
            branch_origin_stages=tuple(m.origin_stage for m in messages),
            **common,
            stage=consumer.stage,
            message_id=join_id,
        )
    )
    ctx = consumer.make_context(client, delivery, inbound, join_id, message=None, joined=joined)
    await consumer.run_and_settle(
        settler, delivery, inbound, ctx, joined, guard="join", owner=owner, signature=None,
        join=True,
    )  # fmt: skip
