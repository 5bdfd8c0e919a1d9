from __future__ import annotations

import json

from relayna.topology import (
    RelaynaTopology,
    RoutedTasksSharedStatusShardedAggregationTopology,
    RoutedTasksSharedStatusTopology,
    SharedTasksSharedStatusShardedAggregationTopology,
    SharedTasksSharedStatusTopology,
    summarize_topology,
    topology_kind,
    validate_topology,
)

from ._support import base_kwargs


def test_kinds_and_summaries() -> None:
    cases = [
        (
            SharedTasksSharedStatusTopology(**base_kwargs(tasks_routing_key="k")),
            "shared_tasks_shared_status",
        ),
        (
            RoutedTasksSharedStatusTopology(**base_kwargs(task_types=("a",))),
            "routed_tasks_shared_status",
        ),
        (
            SharedTasksSharedStatusShardedAggregationTopology(**base_kwargs(tasks_routing_key="k")),
            "shared_tasks_shared_status_sharded_aggregation",
        ),
        (
            RoutedTasksSharedStatusShardedAggregationTopology(**base_kwargs(task_types=("a",))),
            "routed_tasks_shared_status_sharded_aggregation",
        ),
    ]
    for topology, kind in cases:
        assert isinstance(topology, RelaynaTopology)
        assert topology_kind(topology) == kind
        assert validate_topology(topology) == []
        summary = summarize_topology(topology)
        json.dumps(summary)
        assert summary["kind"] == kind
        assert summary["task_queue"] == "tasks.q"
        assert summary["status_stream"] is True
        assert summary["queues"] == ["status.q", "tasks.q"]
    assert summarize_topology(cases[2][0])["shard_count"] == 1
