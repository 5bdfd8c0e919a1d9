"""Workflow publish checks: stage and entry-route resolution + stage contracts."""

from __future__ import annotations

from relayna.contracts import WorkflowEnvelope
from relayna.rabbitmq._protocols import WorkflowTopology
from relayna.topology import WorkflowEntryRoute, WorkflowStage, validate_workflow_publish

__all__ = ["resolve_entry", "resolve_stage", "validate_publish"]


def resolve_stage(topology: WorkflowTopology, name: str) -> WorkflowStage:
    """The stage called ``name``. Raises TopologyError for an unknown stage."""
    return topology.stage(name)


def resolve_entry(topology: WorkflowTopology, route: str) -> WorkflowEntryRoute:
    """The entry route called ``route``. Raises TopologyError for an unknown route."""
    return topology.entry_route(route)


def validate_publish(
    topology: WorkflowTopology, message: WorkflowEnvelope, target: WorkflowStage
) -> None:
    """Run the stage contract checks; raises WorkflowContractError."""
    validate_workflow_publish(
        topology,
        target_stage=target.name,
        origin_stage=message.origin_stage,
        action=message.action,
        payload=message.payload,
    )
