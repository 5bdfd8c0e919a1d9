"""Topologies as data: exchanges, queues, bindings, arguments, routing, workflow graphs.

A topology is a frozen attrs value validated at construction (a bad one
raises :class:`~relayna.errors.TopologyError` listing every problem). It
compiles to an ordered :class:`DeclarationPlan` that any broker adapter
applies with ``await topology.plan().apply(broker)``. No I/O happens here.
"""

from relayna.topology._arguments import (
    QUEUE_TYPES,
    QueueType,
    merge_queue_arguments,
    queue_builtin_arguments,
    status_builtin_arguments,
)
from relayna.topology._graph import (
    export_workflow_graph,
    serialize_workflow_stage,
    workflow_graph_mermaid,
)
from relayna.topology._plan import DeclarationPlan, retry_plan
from relayna.topology._routing import normalize_shards, shard_for_key, topic_matches
from relayna.topology._schemas import ActionSchema, PayloadSchema
from relayna.topology._sharded import (
    RoutedTasksSharedStatusShardedAggregationTopology,
    ShardedAggregationMixin,
    SharedTasksSharedStatusShardedAggregationTopology,
)
from relayna.topology._status import StatusTopologyBase
from relayna.topology._summary import (
    RelaynaTopology,
    summarize_topology,
    topology_kind,
    validate_topology,
)
from relayna.topology._tasks import (
    RoutedTasksSharedStatusTopology,
    SharedTasksSharedStatusTopology,
    TaskTopologyBase,
)
from relayna.topology._templates import (
    build_linear_workflow_topology,
    build_search_aggregate_workflow_topology,
)
from relayna.topology._workflow import (
    SharedStatusWorkflowTopology,
    WorkflowEntryRoute,
    WorkflowStage,
)
from relayna.topology._workflow_contract import (
    resolve_stage_for_routing_key,
    stages_for_routing_key,
    validate_workflow_inbound,
    validate_workflow_publish,
)
from relayna.topology._workflow_join import FAN_IN_KEYS, FanIn, transition_cycle

__all__ = [
    # topologies
    "RelaynaTopology",
    "StatusTopologyBase",
    "TaskTopologyBase",
    "ShardedAggregationMixin",
    "SharedTasksSharedStatusTopology",
    "RoutedTasksSharedStatusTopology",
    "SharedTasksSharedStatusShardedAggregationTopology",
    "RoutedTasksSharedStatusShardedAggregationTopology",
    "SharedStatusWorkflowTopology",
    "WorkflowStage",
    "WorkflowEntryRoute",
    "FanIn",
    "FAN_IN_KEYS",
    "transition_cycle",
    "PayloadSchema",
    "ActionSchema",
    # plans and arguments
    "DeclarationPlan",
    "retry_plan",
    "QUEUE_TYPES",
    "QueueType",
    "merge_queue_arguments",
    "queue_builtin_arguments",
    "status_builtin_arguments",
    # routing
    "topic_matches",
    "shard_for_key",
    "normalize_shards",
    # workflow contract and graph
    "validate_workflow_publish",
    "validate_workflow_inbound",
    "resolve_stage_for_routing_key",
    "stages_for_routing_key",
    "export_workflow_graph",
    "serialize_workflow_stage",
    "workflow_graph_mermaid",
    "build_linear_workflow_topology",
    "build_search_aggregate_workflow_topology",
    # inspection
    "topology_kind",
    "validate_topology",
    "summarize_topology",
]
