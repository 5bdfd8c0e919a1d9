"""Preparing publishes (pure, no I/O): what the client sends for each kind of
message, from the caller's input and the topology. Each function validates
and encodes (a bad input raises before anything is sent) and resolves the
routing key and properties; the building blocks are :mod:`._messages`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from relayna.contracts import (
    BatchTaskEnvelope,
    ContractAliasConfig,
    Limits,
    StatusEvent,
    TaskEnvelope,
    WorkflowEnvelope,
    encode,
    ensure_event_id,
)
from relayna.contracts import headers as h
from relayna.errors import ContractError
from relayna.rabbitmq import _messages as m
from relayna.rabbitmq._protocols import AggregationTopology, TaskTopology, WorkflowTopology
from relayna.rabbitmq._workflow import validate_publish
from relayna.transport import Properties

__all__ = [
    "aggregation_event",
    "entry_message",
    "prepare_batch",
    "prepare_status",
    "prepare_task",
    "prepare_workflow",
    "stage_message",
]


def prepare_task(
    topology: TaskTopology,
    task: TaskEnvelope | Mapping[str, Any],
    headers: Mapping[str, Any] | None,
    *,
    limits: Limits,
    aliases: ContractAliasConfig | None,
    known_only: bool = True,
) -> tuple[TaskEnvelope, str, str, bytes, Properties]:
    """``(task, exchange, routing_key, body, properties)`` for one task.

    ``known_only=False`` also routes task types the topology does not bind
    (see :meth:`~relayna.topology.RoutedTasksSharedStatusTopology.task_routing_key`).
    """
    envelope = m.as_task(task, aliases)
    m.check_priority(
        envelope.priority, topology.max_priority_for(topology.tasks_queue), topology.tasks_queue
    )
    routing_key = topology.task_routing_key(
        envelope.task_type, envelope.task_id, known_only=known_only
    )
    body = encode(envelope, limits=limits)
    props = m.build_properties(
        correlation_id=envelope.correlation_id or envelope.task_id,
        headers=m.task_headers(envelope, m.user_headers(headers, limits)),
        priority=envelope.priority,
        limits=limits,
    )
    return envelope, topology.tasks_exchange, routing_key, body, props


def prepare_batch(
    topology: TaskTopology,
    tasks: Iterable[TaskEnvelope | Mapping[str, Any]],
    *,
    batch_id: str,
    meta: Mapping[str, Any] | None,
    headers: Mapping[str, Any] | None,
    limits: Limits,
    aliases: ContractAliasConfig | None,
) -> tuple[BatchTaskEnvelope, str, bytes, Properties]:
    """``(batch, routing_key, body, properties)``: the first task's routing key,
    the tasks' one shared priority (or none) as the AMQP priority."""
    envelopes = [m.as_task(task, aliases) for task in tasks]
    if not envelopes:
        raise ContractError("invalid batch", errors=[("tasks", "must hold at least one task")])
    priorities = {t.priority for t in envelopes}
    if len(priorities) > 1:
        raise ContractError(
            "invalid batch",
            errors=[("tasks", f"mixed priorities {sorted(map(str, priorities))}")],
        )
    priority = priorities.pop()
    m.check_priority(
        priority, topology.max_priority_for(topology.tasks_queue), topology.tasks_queue
    )
    batch = m.as_batch(batch_id, envelopes, meta)
    first = envelopes[0]
    routing_key = topology.task_routing_key(first.task_type, first.task_id)
    body = encode(batch, limits=limits)
    table = m.user_headers(headers, limits)
    table[h.BATCH_ID] = batch.batch_id
    table[h.BATCH_SIZE] = len(envelopes)
    props = m.build_properties(
        correlation_id=batch.batch_id, headers=table, priority=priority, limits=limits
    )
    return batch, routing_key, body, props


def prepare_status(
    event: StatusEvent | Mapping[str, Any],
    *,
    limits: Limits,
    aliases: ContractAliasConfig | None,
) -> tuple[StatusEvent, bytes]:
    """The status event (``event_id`` filled) and its body."""
    envelope = ensure_event_id(m.as_status(event, aliases))
    return envelope, encode(envelope, limits=limits)


def aggregation_event(
    topology: AggregationTopology,
    event: StatusEvent | Mapping[str, Any],
    aliases: ContractAliasConfig | None,
) -> tuple[StatusEvent, str]:
    """The event marked for its parent's aggregation shard, and the parent task id."""
    envelope = m.as_status(event, aliases)
    parent = envelope.meta.get("parent_task_id")
    if not isinstance(parent, str) or not parent:
        raise ContractError(
            "invalid aggregation event",
            errors=[("meta.parent_task_id", "required to route an aggregation event")],
        )
    shard = topology.shard_for(parent)
    envelope = m.with_meta(envelope, aggregation_shard=shard, aggregation_role="aggregation")
    return envelope, parent


def stage_message(
    message: WorkflowEnvelope | Mapping[str, Any],
    stage: str | None,
    aliases: ContractAliasConfig | None,
) -> WorkflowEnvelope:
    """The workflow message, moved to ``stage`` if one is given."""
    if not isinstance(message, WorkflowEnvelope):
        data = dict(message)
        if stage is not None:
            data["stage"] = stage
        message = m.as_workflow(data, aliases)
    elif stage is not None and message.stage != stage:
        message = attrs.evolve(message, stage=stage)
    return message


def entry_message(
    message: WorkflowEnvelope | Mapping[str, Any],
    entry: Any,
    aliases: ContractAliasConfig | None,
) -> WorkflowEnvelope:
    """The workflow message, moved to the target stage of entry route ``entry``."""
    data = (
        attrs.asdict(message, recurse=False)
        if isinstance(message, WorkflowEnvelope)
        else dict(message)
    )
    data["stage"] = entry.target_stage
    if isinstance(message, WorkflowEnvelope):
        extra = data.pop("extra")
        return WorkflowEnvelope(**data, extra=extra)
    return m.as_workflow(data, aliases)


def prepare_workflow(
    topology: WorkflowTopology,
    message: WorkflowEnvelope,
    target: Any,
    headers: Mapping[str, Any] | None,
    *,
    routing_key: str | None,
    limits: Limits,
) -> tuple[str, bytes, Properties]:
    """``(routing_key, body, properties)`` for a message to stage ``target``.

    Raises:
        WorkflowContractError: the stage contract forbids this message.
    """
    validate_publish(topology, message, target)
    if message.priority is not None:  # the topology's plan is not free to compute
        m.check_priority(message.priority, topology.max_priority_for(target.queue), target.queue)
    body = encode(message, limits=limits)
    table = {
        h.TASK_ID: message.task_id,
        h.MESSAGE_ID: message.message_id,
        h.STAGE: message.stage,
    }
    if message.origin_stage is not None:
        table[h.ORIGIN_STAGE] = message.origin_stage
    table.update(m.user_headers(headers, limits))
    props = m.build_properties(
        correlation_id=message.correlation_id or message.task_id,
        headers=table,
        priority=message.priority,
        message_id=message.message_id,
        limits=limits,
    )
    key = routing_key if routing_key is not None else target.publish_routing_key
    return key, body, props
