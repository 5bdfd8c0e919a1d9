"""Topology kinds, validation and summaries, plus the common topology protocol."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from relayna.topology._graph import serialize_workflow_stage
from relayna.topology._plan import DeclarationPlan
from relayna.topology._sharded import (
    RoutedTasksSharedStatusShardedAggregationTopology,
    SharedTasksSharedStatusShardedAggregationTopology,
)
from relayna.topology._status import StatusTopologyBase
from relayna.topology._tasks import (
    RoutedTasksSharedStatusTopology,
    SharedTasksSharedStatusTopology,
    TaskTopologyBase,
)
from relayna.topology._workflow import SharedStatusWorkflowTopology
from relayna.transport import StreamOffset

__all__ = ["RelaynaTopology", "summarize_topology", "topology_kind", "validate_topology"]


@runtime_checkable
class RelaynaTopology(Protocol):
    """What the client and runtimes need from any topology."""

    @property
    def prefetch_count(self) -> int: ...
    @property
    def status_exchange(self) -> str: ...
    @property
    def status_queue(self) -> str: ...
    @property
    def status_consume_offset(self) -> StreamOffset | None: ...

    def plan(self) -> DeclarationPlan: ...
    def task_routing_key(self, task_type: str | None = None, task_id: str | None = None) -> str: ...
    def status_routing_key(self, task_id: str | None) -> str: ...
    def max_priority_for(self, queue: str) -> int | None: ...
    def retry_plan(
        self,
        source_queue: str,
        delay_ms: int,
        *,
        retry_suffix: str = ".retry",
        dlq_suffix: str = ".dlq",
    ) -> DeclarationPlan: ...


_KINDS: tuple[tuple[type[object], str], ...] = (
    (SharedStatusWorkflowTopology, "shared_status_workflow"),
    (
        RoutedTasksSharedStatusShardedAggregationTopology,
        "routed_tasks_shared_status_sharded_aggregation",
    ),
    (
        SharedTasksSharedStatusShardedAggregationTopology,
        "shared_tasks_shared_status_sharded_aggregation",
    ),
    (RoutedTasksSharedStatusTopology, "routed_tasks_shared_status"),
    (SharedTasksSharedStatusTopology, "shared_tasks_shared_status"),
)


def topology_kind(topology: object) -> str:
    """The wire name of the topology's kind; the class name for anything else."""
    for cls, kind in _KINDS:
        if isinstance(topology, cls):
            return kind
    return type(topology).__name__


def validate_topology(topology: object) -> list[str]:
    """Every problem with ``topology`` as readable strings (empty when valid).

    relayna topologies validate themselves at construction, so for them this
    re-checks and normally returns ``[]``; any other object is reported as
    unsupported.
    """
    if isinstance(topology, StatusTopologyBase):
        return topology.problems()
    return [f"unsupported topology type {type(topology).__name__!r}"]


def summarize_topology(topology: StatusTopologyBase) -> dict[str, Any]:
    """A small JSON-ready description: kind, prefetch, queues, exchanges, stages."""
    plan = topology.plan()
    summary: dict[str, Any] = {
        "kind": topology_kind(topology),
        "prefetch_count": topology.prefetch_count,
        "status_exchange": topology.status_exchange,
        "status_queue": topology.status_queue,
        "status_stream": topology.status_consume_offset is not None,
        "exchanges": [{"name": e.name, "type": e.type} for e in plan.exchanges],
        "queues": list(plan.queue_names),
    }
    if isinstance(topology, SharedStatusWorkflowTopology):
        summary["workflow_exchange"] = topology.workflow_exchange
        summary["workflow_stages"] = [
            serialize_workflow_stage(s, queue_arguments=topology.workflow_queue_arguments(s.name))
            for s in topology.stages
        ]
        summary["entry_routes"] = [r.name for r in topology.entry_routes]
    elif isinstance(topology, TaskTopologyBase):
        summary["task_queue"] = topology.tasks_queue
        summary["task_binding_keys"] = list(topology.task_binding_keys())
    if isinstance(
        topology,
        SharedTasksSharedStatusShardedAggregationTopology
        | RoutedTasksSharedStatusShardedAggregationTopology,
    ):
        summary["shard_count"] = topology.shard_count
        summary["aggregation_routing_prefix"] = topology.aggregation_routing_prefix
    return summary
