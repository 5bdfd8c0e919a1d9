"""What a stage handler sees: :class:`WorkflowContext`, and a join's input.

Hand-offs go through :meth:`WorkflowContext.publish_to_stage`: the outbound
contract (allowed transitions from this stage, actions it produces, the
target's accepted action and payload schema, the size limit) is checked
before anything is sent, and a violation raises in the handler — it is a bug
in the handler, not in the message. Each hand-off is confirmed by the broker
before the handler returns, so before the inbound message is acked.

Message ids of hand-offs are derived from the inbound message id, the target
and the hand-off's position in the handler: a handler that runs again for the
same message (retry, redelivery after a crash) publishes the *same* ids, and
the target stage recognises the copies it already completed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from relayna.consumer import TaskContext
from relayna.contracts import WorkflowEnvelope
from relayna.contracts import headers as h
from relayna.errors import TopologyError
from relayna.rabbitmq import WorkflowTopology
from relayna.topology import topic_matches

__all__ = ["JoinedMessage", "WorkflowContext", "derive_message_id"]


def derive_message_id(parent: str, target: str, index: int) -> str:
    """The id of the ``index``-th hand-off to ``target`` by the handler of ``parent``."""
    digest = hashlib.sha256(f"{parent}\x00{target}\x00{index}".encode()).hexdigest()
    return digest[:32]


@attrs.frozen
class JoinedMessage:
    """What a join stage's handler receives: every branch, in arrival order.

    ``branches`` are the branch keys (e.g. origin stages); ``messages`` the
    branch envelopes; ``payloads`` their payloads; ``by_branch`` maps a branch
    key to its envelope.
    """

    task_id: str
    stage: str
    message_id: str
    branches: tuple[str, ...]
    messages: tuple[WorkflowEnvelope, ...]

    @property
    def payloads(self) -> list[dict[str, Any]]:
        return [m.payload for m in self.messages]

    @property
    def by_branch(self) -> dict[str, WorkflowEnvelope]:
        return dict(zip(self.branches, self.messages, strict=True))


@attrs.define(eq=False, kw_only=True)
class WorkflowContext(TaskContext):
    """Per-delivery context of a stage handler: all of :class:`TaskContext`
    (``publish_status``, ``attempt``, ``headers``, ``trace`` ...) plus the
    workflow message's ``stage``, ``origin_stage``, ``message_id``,
    ``parent_message_id`` and ``action``, and the hand-off methods.

    ``message`` is the inbound envelope (None for a join, whose input is
    ``joined``). ``handoffs`` lists what this handler published so far.
    ``replayed`` is True for a message re-published by ``replay_stage``.
    """

    topology: WorkflowTopology
    stage: str
    message_id: str
    origin_stage: str | None = None
    parent_message_id: str | None = None
    action: str | None = None
    message: WorkflowEnvelope | None = None
    joined: JoinedMessage | None = None
    handoffs: list[WorkflowEnvelope] = attrs.field(factory=list)
    on_publish: Callable[[WorkflowEnvelope], None] | None = None

    @property
    def replayed(self) -> bool:
        return h.get_header(self.headers, h.REPLAY_STAGE) is not None

    async def publish_to_stage(
        self,
        stage: str,
        payload: Mapping[str, Any] | None = None,
        *,
        action: str | None = None,
        meta: Mapping[str, Any] | None = None,
        priority: int | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> WorkflowEnvelope:
        """Hand off to ``stage`` (same task, this stage as origin) and wait for the confirm.

        The hand-off carries the run's deadline (``headers`` may set an
        earlier one, never a later one). Nothing is published when any of
        the errors below is raised.

        Raises:
            TaskCancelled: the run was cancelled (no further hand-off).
            WorkflowContractError: the outbound contract forbids it
                (``terminal_stage_handoff``, ``forbidden_transition``,
                ``unsupported_action``, ``payload_schema_violation``).
            EnvelopeTooLarge: the message exceeds the size limit.
            TopologyError: ``stage`` is not a stage of the topology.
            BrokerError: the broker refused or lost it.
        """
        self.raise_if_cancelled()
        index = sum(1 for m in self.handoffs if m.stage == stage)
        envelope = WorkflowEnvelope(
            task_id=self.task_id,
            stage=stage,
            message_id=derive_message_id(self.message_id, stage, index),
            correlation_id=self.correlation_id,
            origin_stage=self.stage,
            parent_message_id=self.message_id,
            action=action,
            payload=dict(payload or {}),
            meta=dict(meta or {}),
            priority=priority,
        )
        published = await self.client.publish_to_stage(
            envelope, headers=self.inherit_deadline(headers)
        )
        self.handoffs.append(published)
        if self.on_publish is not None:
            self.on_publish(published)
        return published

    async def publish_workflow_message(
        self,
        routing_key: str,
        payload: Mapping[str, Any] | None = None,
        *,
        action: str | None = None,
        meta: Mapping[str, Any] | None = None,
        priority: int | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> WorkflowEnvelope:
        """Hand off to the stage ``routing_key`` leads to (see :meth:`resolve_routing_key`)."""
        stage = self.resolve_routing_key(routing_key)
        return await self.publish_to_stage(
            stage, payload, action=action, meta=meta, priority=priority, headers=headers
        )

    def resolve_routing_key(self, routing_key: str) -> str:
        """The stage of ``routing_key``: first an exact publish key, then an exact
        binding key, then an entry route's key, then a topic-wildcard binding.

        Raises:
            TopologyError: no stage receives ``routing_key``.
        """
        stages = self.topology.stages
        for match in (
            lambda s: s.publish_routing_key.strip() == routing_key,
            lambda s: routing_key in (k.strip() for k in s.binding_keys),
        ):
            for stage in stages:
                if match(stage):
                    return str(stage.name)
        for route in self.topology.entry_routes:
            if route.routing_key.strip() == routing_key:
                return str(route.target_stage)
        for stage in stages:
            if any(topic_matches(k.strip(), routing_key) for k in stage.binding_keys):
                return str(stage.name)
        raise TopologyError(f"no workflow stage receives routing key {routing_key!r}")
