"""Property tests of declaration plans (pure: no event loop)."""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import given, settings

from relayna.topology import DeclarationPlan, validate_topology

from ._support import topologies


@settings(max_examples=150, deadline=None)
@given(topologies())
def test_plans_are_deterministic(topology: Any) -> None:
    first, second = topology.plan(), topology.plan()
    assert first == second
    rebuilt = attrs.evolve(topology)
    assert rebuilt == topology
    assert rebuilt.plan() == first
    assert validate_topology(topology) == []


@settings(max_examples=150, deadline=None)
@given(topologies())
def test_plan_order_and_consistency(topology: Any) -> None:
    plan: DeclarationPlan = topology.plan()
    if topology.dead_letter_exchange:
        assert plan.exchanges[0].name == topology.dead_letter_exchange
        assert plan.exchanges[0].type == "fanout"
    assert plan.queues[0].name == topology.status_queue
    assert len(set(plan.queue_names)) == len(plan.queue_names)
    assert len(set(plan.exchange_names)) == len(plan.exchange_names)
    # A plan is a fixed point of merging with itself.
    assert plan.merge(plan) == plan
    # Every queue is durable; status is a stream exactly when streams are on.
    assert all(q.durable for q in plan.queues)
    assert (plan.queues[0].arguments.get("x-queue-type") == "stream") == topology.status_use_streams
