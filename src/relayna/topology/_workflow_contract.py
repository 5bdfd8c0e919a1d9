"""Workflow stage contracts, checked on publish and on consume (pure functions).

Reasons (``WorkflowContractError.reason``): ``terminal_stage_handoff``,
``forbidden_transition``, ``unsupported_action``, ``payload_schema_violation``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from relayna.errors import TopologyError, WorkflowContractError
from relayna.topology._routing import topic_matches
from relayna.topology._schemas import ActionSchema
from relayna.topology._workflow import SharedStatusWorkflowTopology, WorkflowStage

__all__ = [
    "resolve_stage_for_routing_key",
    "stages_for_routing_key",
    "validate_workflow_inbound",
    "validate_workflow_publish",
]


class HasStages(Protocol):
    """What the contract check needs of a workflow topology: its stages by name."""

    def stage(self, name: str) -> WorkflowStage: ...


def validate_workflow_publish(
    topology: HasStages,
    *,
    target_stage: str,
    origin_stage: str | None = None,
    action: str | None = None,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """Check a handoff to ``target_stage`` (from ``origin_stage`` when set).

    With an origin: a terminal origin fails (``terminal_stage_handoff``); a
    target outside a non-empty ``allowed_next_stages`` fails
    (``forbidden_transition``); a non-empty ``produced_actions`` must contain
    the action. Always: a non-empty ``accepted_actions`` of the target must
    contain the action (``unsupported_action``) and its payload schema must
    accept the payload (``payload_schema_violation``).

    Raises:
        WorkflowContractError: the first violation, with ``stage``, ``source``,
            ``target`` and ``action`` set.
        TopologyError: ``target_stage`` or ``origin_stage`` is not a stage.
    """
    data: Mapping[str, Any] = payload or {}
    target = topology.stage(target_stage)
    if origin_stage:
        source = topology.stage(origin_stage)
        if source.terminal:
            raise WorkflowContractError(
                f"workflow stage {origin_stage!r} is terminal and cannot hand off to {target_stage!r}",
                reason="terminal_stage_handoff",
                stage=origin_stage,
                source=origin_stage,
                target=target_stage,
                action=action,
            )
        if source.allowed_next_stages and target_stage not in source.allowed_next_stages:
            raise WorkflowContractError(
                f"workflow stage {origin_stage!r} cannot hand off to {target_stage!r} "
                f"(allowed: {', '.join(source.allowed_next_stages)})",
                reason="forbidden_transition",
                stage=origin_stage,
                source=origin_stage,
                target=target_stage,
                action=action,
            )
        _check_action(
            source.produced_actions,
            action,
            data,
            source.name,
            "produce",
            source=origin_stage,
            target=target_stage,
        )
    _check_action(
        target.accepted_actions,
        action,
        data,
        target.name,
        "accept",
        source=origin_stage,
        target=target_stage,
    )


def validate_workflow_inbound(
    stage: WorkflowStage, action: str | None, payload: Mapping[str, Any] | None = None
) -> None:
    """Check a message consumed by ``stage`` against its ``accepted_actions``.

    Raises:
        WorkflowContractError: ``unsupported_action`` or ``payload_schema_violation``.
    """
    _check_action(
        stage.accepted_actions,
        action,
        payload or {},
        stage.name,
        "accept",
        source=None,
        target=stage.name,
    )


def _check_action(
    actions: tuple[ActionSchema, ...],
    action: str | None,
    payload: Mapping[str, Any],
    stage: str,
    verb: str,
    *,
    source: str | None,
    target: str | None,
) -> None:
    if not actions:
        return
    name = (action or "").strip()
    if not name:
        raise WorkflowContractError(
            f"workflow stage {stage!r} requires an action ({verb}s: "
            f"{', '.join(a.action for a in actions)})",
            reason="unsupported_action",
            stage=stage,
            source=source,
            target=target,
            action=action,
        )
    schema = next((a for a in actions if a.action == name), None)
    if schema is None:
        raise WorkflowContractError(
            f"workflow stage {stage!r} does not {verb} action {name!r}",
            reason="unsupported_action",
            stage=stage,
            source=source,
            target=target,
            action=name,
        )
    errors = schema.validate_payload(payload)
    if errors:
        raise WorkflowContractError(
            f"workflow stage {stage!r} rejected action {name!r}: {'; '.join(errors)}",
            reason="payload_schema_violation",
            stage=stage,
            source=source,
            target=target,
            action=name,
        )


def stages_for_routing_key(
    topology: SharedStatusWorkflowTopology, routing_key: str
) -> tuple[str, ...]:
    """Every stage whose inbox receives ``routing_key`` (declaration order)."""
    return tuple(
        stage.name
        for stage in topology.stages
        if any(topic_matches(k, routing_key) for k in topology.workflow_binding_keys(stage.name))
    )


def resolve_stage_for_routing_key(topology: SharedStatusWorkflowTopology, routing_key: str) -> str:
    """The one stage that receives ``routing_key``.

    Raises:
        TopologyError: no stage, or several stages, receive it.
    """
    matches = stages_for_routing_key(topology, routing_key)
    if len(matches) != 1:
        found = ", ".join(matches) if matches else "none"
        raise TopologyError(
            f"routing key {routing_key!r} must reach exactly one workflow stage (reaches: {found})"
        )
    return matches[0]
