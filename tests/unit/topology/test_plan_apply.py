"""Applying plans to brokers: idempotent when applied twice (both async backends)."""

from __future__ import annotations

import importlib.util
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings

from relayna.topology import retry_plan

from ._support import RecordingBroker, topologies

pytestmark = pytest.mark.anyio

_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_SETTINGS
@given(topology=topologies())
async def test_plan_applied_twice_to_a_recording_broker_is_idempotent(topology: Any) -> None:
    broker = RecordingBroker()
    plan = topology.plan()
    with anyio.fail_after(5):
        infos = await plan.apply(broker)  # type: ignore[arg-type]
        once = broker.state()
        first_calls = list(broker.calls)
        await plan.apply(broker)  # type: ignore[arg-type]
    assert broker.state() == once
    assert broker.calls == first_calls * 2
    assert [i.name for i in infos] == list(plan.queue_names)
    kinds = [kind for kind, _ in first_calls]
    assert kinds == sorted(kinds, key=["exchange", "queue", "bind"].index)


async def test_retry_and_aggregation_plans_apply_after_the_main_plan(
    recording_broker: RecordingBroker,
) -> None:
    from relayna.topology import SharedTasksSharedStatusShardedAggregationTopology

    from ._support import base_kwargs

    topology = SharedTasksSharedStatusShardedAggregationTopology(
        **base_kwargs(tasks_routing_key="k", shard_count=3)
    )
    with anyio.fail_after(5):
        for plan in (
            topology.plan(),
            topology.retry_plan("tasks.q", 1000),
            topology.aggregation_queue_plan([0, 2]),
            topology.plan(),
        ):
            await plan.apply(recording_broker)  # type: ignore[arg-type]
    assert set(recording_broker.queues) == {
        "status.q",
        "tasks.q",
        "tasks.q.retry",
        "tasks.q.dlq",
        "aggregation.queue.shards.0-2",
    }
    assert recording_broker.queues["tasks.q.retry"] == retry_plan("tasks.q", 1000).queues[0]


# The in-memory broker is written concurrently: generate this test only when it exists.
if importlib.util.find_spec("relayna.transport.memory_broker") is not None:

    @_SETTINGS
    @given(topology=topologies())
    async def test_plan_applied_twice_to_the_memory_broker_is_idempotent(topology: Any) -> None:
        from relayna.transport import open_broker

        plan = topology.plan()
        with anyio.fail_after(10):
            async with open_broker("memory://") as broker:
                first = await plan.apply(broker)
                second = await plan.apply(broker)
                for name in plan.queue_names:
                    info = await broker.inspect_queue(name)
                    assert info.name == name
        assert [i.name for i in first] == [i.name for i in second] == list(plan.queue_names)
