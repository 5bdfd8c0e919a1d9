"""Workflow publish checks: stage and entry-route resolution + stage contracts."""

from __future__ import annotations

from typing import Any

from relayna.contracts import WorkflowEnvelope
from relayna.rabbitmq._protocols import WorkflowTopology
from relayna.topology import validate_workflow_publish

__all__ = ["resolve_entry", "resolve_stage", "validate_publish"]


def resolve_stage(topology: WorkflowTopology, name: str) -> Any:
    """The stage called ``name``. Raises TopologyError for an unknown stage."""
    return topology.stage(name)  # type: ignore[attr-defined]


def resolve_entry(topology: WorkflowTopology, route: str) -> Any:
    """The entry route called ``route``. Raises TopologyError for an unknown route."""
    return topology.entry_route(route)  # type: ignore[attr-defined]


def validate_publish(topology: WorkflowTopology, message: WorkflowEnvelope, target: Any) -> None:
    """Run the stage contract checks; raises WorkflowContractError."""
    validate_workflow_publish(
        topology,  # type: ignore[arg-type]
        target_stage=target.name,
        origin_stage=message.origin_stage,
        action=message.action,
        payload=message.payload,
    )
