from __future__ import annotations

import hashlib
from typing import Any

import pytest

from relayna.errors import ContractError, TopologyError
from relayna.topology import (
    RoutedTasksSharedStatusShardedAggregationTopology,
    SharedTasksSharedStatusShardedAggregationTopology,
    SharedTasksSharedStatusTopology,
)
from relayna.transport import BindingSpec, ExchangeSpec, QueueSpec

from ._support import base_kwargs


def sharded(**kw: Any) -> SharedTasksSharedStatusShardedAggregationTopology:
    return SharedTasksSharedStatusShardedAggregationTopology(
        **base_kwargs(tasks_routing_key="tasks", **{"shard_count": 4, **kw})
    )


def test_is_a_shared_topology_with_the_same_static_plan() -> None:
    topology = sharded()
    assert isinstance(topology, SharedTasksSharedStatusTopology)
    plain = SharedTasksSharedStatusTopology(**base_kwargs(tasks_routing_key="tasks"))
    assert topology.plan() == plain.plan()


def test_aggregation_routing_uses_the_original_hash() -> None:
    topology = sharded()
    for parent in ("p1", "p2", "parent-xyz", "ünïcode"):
        expected = int(hashlib.sha256(parent.encode()).hexdigest(), 16) % 4
        assert topology.shard_for(parent) == expected
        assert topology.aggregation_routing_key(parent) == f"agg.{expected}"
    with pytest.raises(ContractError, match="shard key"):
        topology.aggregation_routing_key(None)


def test_aggregation_queue_names() -> None:
    topology = sharded()
    assert topology.aggregation_queue_name([2]) == "aggregation.queue.2"
    assert topology.aggregation_queue_name([3, 1, 3]) == "aggregation.queue.shards.1-3"
    assert topology.aggregation_queue_name([1], queue_name="mine") == "mine"
    assert topology.aggregation_binding_keys([3, 0]) == ("agg.0", "agg.3")
    with pytest.raises(TopologyError):
        topology.aggregation_queue_name([4])
    with pytest.raises(TopologyError):
        topology.aggregation_queue_name([])


def test_aggregation_queue_plan_is_self_contained() -> None:
    topology = sharded(aggregation_max_priority=3, aggregation_single_active_consumer=True)
    plan = topology.aggregation_queue_plan([0, 2])
    assert plan.exchanges == (ExchangeSpec("status.x", "topic", durable=True),)
    name = "aggregation.queue.shards.0-2"
    assert plan.queues == (
        QueueSpec(name, arguments={"x-single-active-consumer": True, "x-max-priority": 3}),
    )
    assert plan.bindings == (
        BindingSpec(name, "status.x", "agg.0"),
        BindingSpec(name, "status.x", "agg.2"),
    )
    assert topology.max_priority_for(name) == 3
    assert topology.max_priority_for("aggregation.queue.1") == 3
    assert topology.max_priority_for("aggregation.queue.9") is None
    with pytest.raises(TopologyError, match="clashes"):
        topology.aggregation_queue_plan([1], queue_name="tasks.q")


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"shard_count": 0}, "shard_count"),
        ({"aggregation_routing_prefix": "agg.#"}, "aggregation_routing_prefix"),
        ({"aggregation_queue_template": "agg.{nope}"}, "placeholder"),
        ({"aggregation_queue_template": "fixed"}, "{shard}"),
        ({"aggregation_queue_template": "tasks.{shard}", "tasks_queue": "tasks.1"}, "clash"),
        ({"aggregation_max_priority": 0}, "1..255"),
        (
            {"aggregation_queue_type": "quorum", "aggregation_queue_kwargs": {"x-queue-type": "x"}},
            "set in both",
        ),
    ],
)
def test_bad_aggregation_config(kw: dict[str, Any], fragment: str) -> None:
    with pytest.raises(TopologyError) as info:
        sharded(**kw)
    assert any(fragment in p for p in info.value.problems), info.value.problems


def test_routed_sharded_variant() -> None:
    topology = RoutedTasksSharedStatusShardedAggregationTopology(
        **base_kwargs(task_types=("a", "b"), shard_count=2)
    )
    assert topology.task_routing_key("b") == "b"
    assert topology.aggregation_queue_name([0, 1]) == "aggregation.queue.shards.0-1"
    assert topology.aggregation_routing_key("p") in ("agg.0", "agg.1")
