"""Copies a task worker publishes onward: a manual-retry hand-off (the same task id,
republished for another task type) and the items of a batch it fans out."""

from __future__ import annotations

from relayna.contracts import Limits, TaskEnvelope, encode, without_headers
from relayna.contracts import headers as h
from relayna.errors import ContractError, TopologyError, UnroutableError
from relayna.rabbitmq import RelaynaClient
from relayna.transport import Properties

from ._context import ManualRetryRequest, TaskContext
from ._decide import Failed, Succeeded
from ._inbound import InboundBatch, InboundTask
from ._settle import EXCEPTION_MESSAGE

__all__ = ["HANDOFF_DROP", "fan_out", "hand_off"]

#: Headers a hand-off or a batch item does not inherit (retry state, batch identity).
HANDOFF_DROP = (
    *h.RETRY_HEADERS,
    *h.MANUAL_RETRY_HEADERS,
    h.MAX_RETRIES,
    h.SOURCE_QUEUE,
    EXCEPTION_MESSAGE,
    h.BATCH_ID,
    h.BATCH_INDEX,
    h.BATCH_SIZE,
)


def _kept(exc: Exception, reason: str) -> Failed:
    """A hand-off that could not be made: the original is retried or dead-lettered."""
    return Failed(
        exception_type=type(exc).__name__,
        exception_message=str(exc)[:1024],
        reason=reason,
        exception=exc,
        never_drop=True,
    )


async def hand_off(
    client: RelaynaClient,
    ctx: TaskContext,
    inbound: InboundTask,
    req: ManualRetryRequest,
    *,
    consumer_name: str,
    status: str,
) -> tuple[Succeeded | Failed, str | None, int]:
    """Publish the hand-off of ``ctx.manual_retry(...)``: ``(outcome, target type, count)``.

    Status ``manual_retrying`` (lineage in ``meta.manual_retry``) first, then
    the copy through the tasks exchange (mandatory: a type nobody binds is
    :class:`Failed` ``manual_retry_unroutable``, and the original is kept).
    The copy keeps the task's deadline (a hand-off does not reset the budget).
    """
    task = inbound.task
    payload = dict(task.payload)
    if req.payload is not None:
        payload = req.payload
    elif req.payload_merge is not None:
        payload.update(req.payload_merge)
    extra = dict(task.extra)
    extra.update(req.extra_fields)
    count = inbound.manual_retry_count + 1
    headers = without_headers(inbound.headers, HANDOFF_DROP)
    headers.update(
        {
            h.TASK_ID: task.task_id,
            h.MANUAL_RETRY_COUNT: count,
            h.MANUAL_RETRY_SOURCE_CONSUMER: consumer_name,
        }
    )
    if task.task_type is not None:
        headers[h.MANUAL_RETRY_FROM_TASK_TYPE] = task.task_type
    if req.reason is not None:
        headers[h.MANUAL_RETRY_REASON] = req.reason[:255]
    headers.update(req.headers)
    try:
        new_task = TaskEnvelope(
            task_id=task.task_id,
            payload=payload,
            service=req.service or task.service,
            task_type=req.task_type or task.task_type,
            correlation_id=req.correlation_id or task.correlation_id,
            priority=req.priority if req.priority is not None else task.priority,
            extra=extra,
        )
        # Another service's topology may bind the target type on the same
        # exchange: route it, and let the mandatory flag find out.
        prepared = client.prepare_task(new_task, headers, known_only=False)
    except (ContractError, TopologyError) as exc:
        return _kept(exc, "manual_retry_invalid"), None, count
    lineage = {
        "count": count,
        "source_consumer": consumer_name,
        "previous_task_type": task.task_type,
        "reason": req.reason,
        "target_task_type": new_task.task_type,
    }
    meta = dict(req.meta)
    meta["manual_retry"] = lineage
    await ctx.publish_status(
        status=status,
        message=req.message or req.reason or "Task handed off for manual retry.",
        meta=meta,
    )
    _, exchange, routing_key, body, props = prepared
    try:
        await client.publish_raw(exchange, routing_key, body, props)
    except UnroutableError as exc:  # nobody binds the type: keep the original
        return _kept(exc, "manual_retry_unroutable"), None, count
    return Succeeded(), new_task.task_type, count


async def fan_out(
    client: RelaynaClient, inbound: InboundBatch, *, queue: str, limits: Limits, concurrency: int
) -> None:
    """Publish each task of a batch to ``queue`` on its own (batch id, index and size
    in its headers), at most ``concurrency`` publishes at a time."""
    batch = inbound.batch
    size = len(batch.tasks)
    messages: list[tuple[str, str, bytes, Properties]] = []
    for index, task in enumerate(batch.tasks):
        headers = without_headers(inbound.headers, HANDOFF_DROP)
        headers.update(
            {
                h.TASK_ID: task.task_id,
                h.BATCH_ID: batch.batch_id,
                h.BATCH_INDEX: index,
                h.BATCH_SIZE: size,
            }
        )
        props = Properties(
            content_type="application/json",
            delivery_mode=2,
            correlation_id=task.correlation_id or task.task_id,
            priority=task.priority,
            headers=headers,
        )
        messages.append(("", queue, encode(task, limits=limits), props))
    await client.publish_many_raw(messages, concurrency=concurrency)
