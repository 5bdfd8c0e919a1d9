"""Bad input for execution graphs: a parent with 100,000 children, undecodable
observation entries (memory store and real Redis, both backends)."""

from __future__ import annotations

import anyio
import pytest

from relayna.observability import (
    ExecutionGraphService,
    ObservationStore,
    ObservationStoreConfig,
    TaskMessageReceived,
)
from relayna.status import StatusStore, StatusStoreConfig
from relayna.transport import open_store

pytestmark = pytest.mark.anyio


async def test_a_hundred_thousand_children_are_capped_in_bounded_time(
    store_url: str, unique: str
) -> None:
    async with open_store(store_url) as store:
        status = StatusStore(store, StatusStoreConfig(prefix=f"kids-{unique}"))
        await status.write({"task_id": "parent", "event_id": "e0", "status": "running"})
        key = status.children_key("parent")
        with anyio.fail_after(60):  # setup: the children index as the hub would leave it
            for start in range(0, 100_000, 10_000):
                await store.sadd(key, *(f"child-{i:06d}" for i in range(start, start + 10_000)))
        await status.write(
            {
                "task_id": "child-000003",
                "event_id": "c",
                "status": "completed",
                "meta": {"parent_task_id": "parent"},
            }
        )
        service = ExecutionGraphService(topology_kind="k", status=status, max_children=50)
        with anyio.fail_after(10):  # bounded: 50 children read, not 100,000
            graph = await service.get_graph("parent")
        assert graph is not None
        assert graph.annotations == {"children_truncated": True, "children_limit": 50}
        children = graph.of_kind("aggregation_child")
        assert [c.task_id for c in children][:4] == [f"child-{i:06d}" for i in range(4)]
        assert len(children) == 50
        assert len(graph.related_task_ids) == 50
        await store.delete(key)


async def test_undecodable_observations_do_not_break_the_graph(store_url: str, unique: str) -> None:
    with anyio.fail_after(10):
        async with open_store(store_url) as store:
            status = StatusStore(store, StatusStoreConfig(prefix=f"s-{unique}"))
            observations = ObservationStore(store, ObservationStoreConfig(prefix=f"o-{unique}"))
            await observations.write(
                TaskMessageReceived(consumer_name="w", queue_name="q", task_id="t1")
            )
            await store.lpush(observations.history_key("t1"), b"\x00garbage", b'"a string"')
            await store.lpush(observations.history_key("only-garbage"), b"{not json")
            service = ExecutionGraphService(
                topology_kind="k", status=status, observations=observations
            )
            graph = await service.get_graph("t1")
            assert graph is not None
            assert [n.kind for n in graph.nodes] == ["task", "task_attempt"]
            assert observations.bad_entries == 2
            # nothing readable: no graph, the route's 404
            assert await service.get_graph("only-garbage") is None
            assert await service.get_graph("nobody") is None
