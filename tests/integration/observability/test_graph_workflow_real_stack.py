"""The execution graph of a two-stage workflow run by real stage workers on the
real RabbitMQ + Redis (observations through the Redis observation sink,
statuses through the status hub), both backends."""

from __future__ import annotations

import anyio
import pytest
from _topologies import real_runtime

from _workflow_support import planner_docsearch
from relayna.contracts import WorkflowEnvelope
from relayna.observability import ExecutionGraph, make_observation_sink
from relayna.rabbitmq import open_relayna_client
from relayna.workflow import WorkflowConsumer, WorkflowContext, WorkflowStoreConfig

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis]


def finished(graph: ExecutionGraph | None) -> bool:
    return (
        graph is not None
        and graph.summary.status == "completed"
        and len(graph.of_kind("stage_attempt")) == 2
        and bool(graph.edges_of_kind("stage_transitioned_to"))
    )


async def test_two_stage_workflow_graph(amqp_url: str, redis_url: str, unique: str) -> None:
    topology = planner_docsearch(f"gw-{unique}")
    handed_off: list[WorkflowEnvelope] = []

    async def planner(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        await ctx.publish_status(status="planning")
        out = await ctx.publish_to_stage(
            "docsearch", {"q": message.payload["topic"]}, action="search"
        )
        handed_off.append(out)

    async def docsearch(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        await ctx.publish_status(status="completed")

    with anyio.fail_after(60):
        async with real_runtime(topology, amqp_url, redis_url, unique) as runtime:
            assert runtime.broker is not None
            assert runtime.observations is not None
            assert runtime.graphs is not None
            sink = make_observation_sink(runtime.observations, runtime.feed)
            workers = [
                WorkflowConsumer(
                    topology=topology,
                    broker=runtime.broker,
                    stage=name,
                    handler=handler,
                    store=runtime.store,
                    state=WorkflowStoreConfig(prefix=f"gww-{unique}"),
                    observation_sink=sink,
                )
                for name, handler in (("planner", planner), ("docsearch", docsearch))
            ]
            async with anyio.create_task_group() as tg:
                for w in workers:
                    await tg.start(w.run)
                async with open_relayna_client(topology, runtime.broker) as client:
                    first = await client.publish_to_stage(
                        {"task_id": "w-1", "payload": {"topic": "otters"}}, "planner"
                    )
                # observations are written off the hot path: poll the graph
                while not finished(graph := await runtime.graphs.get_graph("w-1")):  # noqa: ASYNC110
                    await anyio.sleep(0.05)
                tg.cancel_scope.cancel()

    [second] = handed_off
    assert graph is not None
    assert graph.topology_kind == "shared_status_workflow"
    assert graph.summary.graph_completeness == "full"  # built from the stored observations
    kinds = {n.kind for n in graph.nodes}
    assert {"task", "workflow_message", "stage_attempt", "status_event"} <= kinds
    planner_attempt, docsearch_attempt = (
        "stage-attempt:w-1:planner:1",
        "stage-attempt:w-1:docsearch:1",
    )
    assert sorted(n.id for n in graph.of_kind("stage_attempt")) == sorted(
        [docsearch_attempt, planner_attempt]
    )
    messages = {n.id for n in graph.of_kind("workflow_message")}
    assert messages == {
        f"workflow-message:{first.message_id}",
        f"workflow-message:{second.message_id}",
    }
    edges = {(e.source, e.target, e.kind) for e in graph.edges}
    # the first message enters the planner; the planner's hand-off enters docsearch
    assert (f"workflow-message:{first.message_id}", planner_attempt, "entered_stage") in edges
    assert (
        planner_attempt,
        f"workflow-message:{second.message_id}",
        "stage_transitioned_to",
    ) in edges
    assert (f"workflow-message:{second.message_id}", docsearch_attempt, "entered_stage") in edges
    # statuses attach to the stage attempt that published them
    published = {
        (e.source, next(n.label for n in graph.nodes if n.id == e.target))
        for e in graph.edges_of_kind("published_status")
    }
    assert (planner_attempt, "planning") in published
    assert (docsearch_attempt, "completed") in published
