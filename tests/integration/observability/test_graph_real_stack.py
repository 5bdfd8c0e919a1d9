"""Execution graphs of tasks run by real workers on the real RabbitMQ + Redis, per
topology kind (shared retry, retry → DLQ, routed manual retry, sharded
aggregation with children), both backends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from _topologies import real_runtime, shared_topology

from relayna.api import RelaynaRuntime
from relayna.consumer import (
    AggregationConsumer,
    LifecycleStatuses,
    RetryPolicy,
    TaskConsumer,
    TaskContext,
)
from relayna.contracts import StatusEvent, TaskEnvelope
from relayna.observability import (
    ExecutionGraph,
    make_observation_sink,
)
from relayna.rabbitmq import open_relayna_client
from relayna.topology import (
    RoutedTasksSharedStatusTopology,
    SharedTasksSharedStatusShardedAggregationTopology,
)

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis]


def worker(runtime: RelaynaRuntime, handler: Any, **options: Any) -> TaskConsumer:
    assert runtime.broker is not None
    assert runtime.observations is not None
    return TaskConsumer(
        topology=runtime.config.topology,  # type: ignore[arg-type]
        broker=runtime.broker,
        handler=handler,
        statuses=LifecycleStatuses(enabled=True),
        observation_sink=make_observation_sink(runtime.observations, runtime.feed),
        **options,
    )


async def graph_when(
    runtime: RelaynaRuntime, task_id: str, done: Callable[[ExecutionGraph], bool]
) -> ExecutionGraph:
    """Poll the graph until ``done`` (observations are written off the hot path)."""
    assert runtime.graphs is not None
    while True:
        graph = await runtime.graphs.get_graph(task_id)
        if graph is not None and done(graph):
            return graph
        await anyio.sleep(0.05)


def edge_kinds(graph: ExecutionGraph) -> set[tuple[str, str, str]]:
    return {(e.source, e.target, e.kind) for e in graph.edges}


async def run(
    runtime: RelaynaRuntime,
    workers: list[Any],
    publish: Callable[[Any], Awaitable[None]],
    check: Callable[[], Awaitable[ExecutionGraph]],
) -> ExecutionGraph:
    assert runtime.broker is not None
    async with anyio.create_task_group() as tg:
        for w in workers:
            await tg.start(w.run)
        topology = runtime.config.topology
        assert topology is not None
        async with open_relayna_client(topology, runtime.broker, declare=False) as client:  # type: ignore[arg-type]
            await publish(client)
        graph = await check()
        tg.cancel_scope.cancel()
    return graph


async def test_shared_retry_then_success(amqp_url: str, redis_url: str, unique: str) -> None:
    topology = shared_topology(f"gt.{unique}")

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        if ctx.attempt == 0:
            raise RuntimeError("first attempt fails")

    with anyio.fail_after(60):
        async with real_runtime(topology, amqp_url, redis_url, unique) as runtime:
            graph = await run(
                runtime,
                [worker(runtime, handler, retry_policy=RetryPolicy(max_retries=2, delay_ms=50))],
                lambda client: client.publish_task({"task_id": "s-1"}),
                lambda: graph_when(
                    runtime,
                    "s-1",
                    lambda g: (
                        g.summary.status == "completed" and len(g.of_kind("task_attempt")) == 2
                    ),
                ),
            )
    assert graph.summary.graph_completeness == "full"
    assert {n.kind for n in graph.nodes} == {"task", "task_attempt", "retry", "status_event"}
    edges = edge_kinds(graph)
    assert ("task:s-1", "task-attempt:s-1:1", "received_by") in edges
    assert ("task-attempt:s-1:1", "retry:s-1:1", "retried_as") in edges
    assert ("retry:s-1:1", "task-attempt:s-1:2", "received_by") in edges
    assert ("task-attempt:s-1:2", "status:s-1:4", "published_status") in edges
    assert [n.label for n in graph.of_kind("status_event")] == [
        "processing",
        "retrying",
        "processing",
        "completed",
    ]


async def test_retry_then_dead_letter(amqp_url: str, redis_url: str, unique: str) -> None:
    topology = shared_topology(f"gd.{unique}")

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        raise RuntimeError("always fails")

    with anyio.fail_after(60):
        async with real_runtime(topology, amqp_url, redis_url, unique) as runtime:
            graph = await run(
                runtime,
                [worker(runtime, handler, retry_policy=RetryPolicy(max_retries=1, delay_ms=50))],
                lambda client: client.publish_task({"task_id": "d-1"}),
                lambda: graph_when(
                    runtime,
                    "d-1",
                    lambda g: g.summary.status == "failed" and bool(g.of_kind("dlq_record")),
                ),
            )
    [dlq] = graph.of_kind("dlq_record")
    assert dlq.label == "handler_error"
    assert dlq.annotations["queue_name"] == f"gd.{unique}.tasks.dlq"
    assert ("task-attempt:d-1:2", dlq.id, "dead_lettered_to") in edge_kinds(graph)


async def test_routed_manual_retry(amqp_url: str, redis_url: str, unique: str) -> None:
    topology = RoutedTasksSharedStatusTopology(
        tasks_exchange=f"gr.{unique}",
        tasks_queue=f"gr.{unique}",
        task_types=("draft", "review"),
        status_exchange=f"grx.{unique}",
        status_queue=f"grq.{unique}",
        status_use_streams=False,
    )

    async def draft(task: TaskEnvelope, ctx: TaskContext) -> None:
        ctx.manual_retry(task_type="review", reason="needs a review")

    async def review(task: TaskEnvelope, ctx: TaskContext) -> str:
        return "reviewed"

    with anyio.fail_after(60):
        async with real_runtime(topology, amqp_url, redis_url, unique) as runtime:
            graph = await run(
                runtime,
                [worker(runtime, {"draft": draft, "review": review})],
                lambda client: client.publish_task({"task_id": "r-1", "task_type": "draft"}),
                lambda: graph_when(
                    runtime,
                    "r-1",
                    lambda g: (
                        g.summary.status == "completed" and bool(g.edges_of_kind("manual_retry_to"))
                    ),
                ),
            )
    [handoff] = graph.edges_of_kind("manual_retry_to")
    assert (handoff.source, handoff.target) == ("task-attempt:r-1:1", "task-attempt:r-1:2")
    types = [n.annotations.get("task_type") for n in graph.of_kind("task_attempt")]
    assert types == ["draft", "review"]
    assert graph.annotations["task_types"] == ["draft", "review"]
    assert "manual_retrying" in [n.label for n in graph.of_kind("status_event")]


async def test_sharded_aggregation_children(amqp_url: str, redis_url: str, unique: str) -> None:
    topology = SharedTasksSharedStatusShardedAggregationTopology(
        tasks_exchange=f"ga.{unique}",
        tasks_queue=f"ga.{unique}",
        tasks_routing_key="task",
        status_exchange=f"gax.{unique}",
        status_queue=f"gaq.{unique}",
        status_use_streams=False,
        shard_count=2,
    )
    children = [f"a-1.part{i}" for i in range(3)]

    async def parent(task: TaskEnvelope, ctx: TaskContext) -> None:
        for child in children:  # the parent delegates to shard-owned aggregation work
            await ctx.client.publish_aggregation_status(
                StatusEvent(task_id=child, status="queued", meta={"parent_task_id": task.task_id})
            )

    async def aggregate(event: StatusEvent, ctx: TaskContext) -> None:
        return None

    with anyio.fail_after(60):
        async with real_runtime(topology, amqp_url, redis_url, unique) as runtime:
            assert runtime.broker is not None
            assert runtime.observations is not None
            aggregator = AggregationConsumer(
                topology=topology,
                broker=runtime.broker,
                handler=aggregate,
                shards=[0, 1],
                observation_sink=make_observation_sink(runtime.observations),
            )
            graph = await run(
                runtime,
                [worker(runtime, parent), aggregator],
                lambda client: client.publish_task({"task_id": "a-1"}),
                lambda: graph_when(
                    runtime,
                    "a-1",
                    lambda g: (
                        g.summary.status == "completed" and len(g.of_kind("task_attempt")) == 4
                    ),
                ),
            )
    assert graph.related_task_ids == tuple(children)
    assert [n.id for n in graph.of_kind("aggregation_child")] == [
        f"aggregation_child:{c}" for c in children
    ]
    edges = edge_kinds(graph)
    for child in children:
        assert (f"aggregation_child:{child}", "task:a-1", "aggregated_into") in edges
        assert (f"aggregation_child:{child}", f"task-attempt:{child}:1", "received_by") in edges
