"""Joins, replay, resume and diagnosis (memory and real RabbitMQ + Redis)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from _workflow_support import Stack, fan_in_topology, stage, started, wait_for, workflow
from relayna.contracts import WorkflowEnvelope
from relayna.contracts import headers as h
from relayna.errors import WorkflowConflict, WorkflowRunNotFound
from relayna.observability import TaskRecords, build_execution_graph, observation_record
from relayna.rabbitmq import open_relayna_client
from relayna.topology import FanIn
from relayna.transport import Broker, Store
from relayna.workflow import JoinedMessage, WorkflowContext, WorkflowWorkerRuntime

pytestmark = pytest.mark.anyio


async def test_a_join_of_three_branches_on_three_workers_runs_once_despite_duplicates(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = fan_in_topology(unique)
    stack = Stack(topology, broker, store)
    joined: list[tuple[tuple[str, ...], list[dict[str, Any]]]] = []

    async def split(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        for name in ("b0", "b1", "b2"):
            await ctx.publish_to_stage(name, {"part": name})

    def branch(name: str) -> Any:
        async def handle(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
            await anyio.sleep(0.01)
            out = await ctx.publish_to_stage("join", {"from": name, **message.payload})
            # a duplicate delivery of the same hand-off (same message id)
            await ctx.client.publish_to_stage(out, "join")

        return handle

    async def join(message: JoinedMessage, ctx: WorkflowContext) -> None:
        joined.append((message.branches, message.payloads))
        await ctx.publish_status(status="completed")

    stack.consumer("split", split)
    for name in ("b0", "b1", "b2"):
        stack.consumer(name, branch(name))
    for _ in range(3):  # three workers of the join stage
        stack.consumer("join", join, prefetch=2)
    with anyio.fail_after(30):
        async with open_relayna_client(topology, broker) as client, started(stack):
            await client.publish_to_stage({"task_id": "f1"}, "split")
            await wait_for(lambda: len(stack.events("WorkflowStageAcked")) == 5)
            await wait_for(lambda: sum(c.stats.duplicates_suppressed for c in stack.consumers) == 3)
            run = await stack.runs.get("f1")
    assert len(joined) == 1
    branches, payloads = joined[0]
    assert sorted(branches) == ["b0", "b1", "b2"]
    assert sorted(p["from"] for p in payloads) == ["b0", "b1", "b2"]
    # every branch counted once; copies arriving while the join ran waited
    # (requeued) and were then acked as duplicates
    arrivals = stack.events("WorkflowFanInArrived")
    assert sorted(e.branch for e in arrivals if not e.duplicate) == ["b0", "b1", "b2"]
    assert sum(c.stats.duplicates_suppressed for c in stack.consumers) == 3
    assert len(stack.events("WorkflowFanInReleased")) == 1
    assert run is not None
    assert run.terminal
    assert run.stages["join"].status == "completed"
    assert run.stages["join"].attempts == 1
    assert run.stages["join"].fan_in is not None
    assert sorted(run.stages["join"].fan_in.branches) == ["b0", "b1", "b2"]

    # the execution graph shows the join: one attempt, three incoming transitions
    records = TaskRecords(
        "f1", observations=[observation_record(e) for e in stack.collector.events]
    )
    graph = build_execution_graph(records, topology_kind="shared_status_workflow")
    join_attempts = [n.id for n in graph.nodes if n.id.startswith("stage-attempt:f1:join:")]
    assert join_attempts == ["stage-attempt:f1:join:1"]
    incoming = [e for e in graph.edges if e.target == join_attempts[0]]
    transitions = sorted(e.source for e in incoming if e.kind == "stage_transitioned_to")
    assert transitions == [f"stage-attempt:f1:{b}:1" for b in ("b0", "b1", "b2")]
    assert len([e for e in incoming if e.kind == "entered_stage"]) == 3


async def test_a_waiting_join_is_diagnosed_with_the_missing_branch(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = fan_in_topology(unique)
    stack = Stack(topology, broker, store)

    async def join(message: JoinedMessage, ctx: WorkflowContext) -> None:
        raise AssertionError("the join must not run with a missing branch")

    stack.consumer("join", join)
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client, started(stack):
            for origin in ("b0", "b2"):
                await client.publish_to_stage(
                    WorkflowEnvelope(task_id="w1", stage="join", origin_stage=origin), "join"
                )
            await wait_for(lambda: len(stack.events("WorkflowFanInArrived")) == 2)
            diagnosis = await stack.runs.diagnose("w1")
    codes = [(r.code, r.stage) for r in diagnosis.reasons]
    assert ("fan_in_waiting", "join") in codes
    waiting = next(r for r in diagnosis.reasons if r.code == "fan_in_waiting")
    assert waiting.details["missing"] == ["b1"]
    assert waiting.details["arrived"] == 2


async def test_a_branch_the_join_does_not_expect_is_dead_lettered(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = workflow(
        unique,
        stage(unique, "a", "j"),
        stage(unique, "b", "j"),
        stage(unique, "j", terminal=True, join=FanIn(expected=("a",))),
    )
    stack = Stack(topology, broker, store)

    async def j(message: JoinedMessage, ctx: WorkflowContext) -> None:
        raise AssertionError("never")

    consumer = stack.consumer("j", j)
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client, started(stack):
            await client.publish_to_stage(
                WorkflowEnvelope(task_id="x1", stage="j", origin_stage="b"), "j"
            )
            await client.publish_to_stage(WorkflowEnvelope(task_id="x2", stage="j"), "j")
            await wait_for(lambda: consumer.stats.dead_lettered == 2)
    assert dict(consumer.stats.poison) == {"unexpected_branch": 1, "fan_in_key_missing": 1}


async def test_replay_into_a_failed_stage_finishes_the_run(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = workflow(
        unique,
        stage(unique, "fetch", "store"),
        stage(unique, "store", terminal=True, max_retries=0, retry_delay_ms=50),
    )
    stack = Stack(topology, broker, store)
    broken = True
    seen_headers: list[dict[str, Any]] = []

    async def fetch(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        await ctx.publish_to_stage("store", {"doc": 1})

    async def store_stage(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        if broken:
            raise RuntimeError("disk full")
        seen_headers.append({"replayed": ctx.replayed, "reason": ctx.headers.get(h.REPLAY_REASON)})

    stack.consumer("fetch", fetch)
    store_consumer = stack.consumer("store", store_stage)
    with anyio.fail_after(30):
        async with open_relayna_client(topology, broker) as client, started(stack):
            await client.publish_to_stage({"task_id": "r1"}, "fetch")
            await wait_for(lambda: store_consumer.stats.dead_lettered == 1)
            before = await stack.runs.diagnose("r1")
            broken = False
            result = await stack.runs.replay_stage("r1", "store", reason="disk replaced")
            await wait_for(lambda: store_consumer.stats.acked == 1)
            run = await stack.runs.get("r1")
    assert [r.code for r in before.reasons] == ["stage_dead_lettered", "no_terminal_stage"]
    assert before.stalled
    assert result.previous_status == "dead_lettered"
    assert seen_headers == [{"replayed": True, "reason": "disk replaced"}]
    assert run is not None
    assert run.terminal
    assert run.stages["store"].status == "completed"
    assert run.stages["store"].replays == 1
    assert run.stages["store"].attempts == 2


async def test_replay_refuses_a_running_stage_unless_forced_and_an_unknown_run(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = workflow(unique, stage(unique, "long", terminal=True))
    stack = Stack(topology, broker, store)
    entered = anyio.Event()
    release = anyio.Event()
    calls: list[str] = []

    async def long(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        calls.append(message.message_id)
        entered.set()
        await release.wait()

    consumer = stack.consumer("long", long, prefetch=2)
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client, started(stack):
            with pytest.raises(WorkflowRunNotFound):
                await stack.runs.replay_stage("nobody", "long")
            await client.publish_to_stage({"task_id": "p1"}, "long")
            await entered.wait()
            with pytest.raises(WorkflowConflict) as info:
                await stack.runs.replay_stage("p1", "long")
            assert info.value.code == "stage_running"
            forced = await stack.runs.replay_stage("p1", "long", force=True)
            await wait_for(lambda: len(calls) == 2)
            release.set()
            await wait_for(lambda: consumer.stats.acked == 2)
    assert forced.forced
    assert calls[1] == forced.message_id


async def test_resume_continues_a_stalled_run_from_its_last_incomplete_stage(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = workflow(
        unique,
        stage(unique, "one", "two"),
        stage(unique, "two", "three", max_retries=0, retry_delay_ms=50),
        stage(unique, "three", terminal=True),
    )
    broken = {"two": True}

    async def one(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        await ctx.publish_to_stage("two", {"step": 2})

    async def two(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        if broken["two"]:
            raise RuntimeError("flaky")
        await ctx.publish_to_stage("three", {"step": 3})

    async def three(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        pass

    runtime = WorkflowWorkerRuntime(
        topology=topology,
        broker=broker,
        store=store,
        handlers={"one": one, "two": two, "three": three},
        options={"state": Stack(topology, broker, store).state, "drain_timeout": 1.0},
    )
    stack = Stack(topology, broker, store)
    with anyio.fail_after(30):
        async with open_relayna_client(topology, broker) as client, anyio.create_task_group() as tg:
            await tg.start(runtime.run)
            await client.publish_to_stage({"task_id": "s1"}, "one")
            await wait_for(lambda: runtime.consumer("two").stats.dead_lettered == 1)
            broken["two"] = False
            resumed = await stack.runs.resume("s1")
            await wait_for(lambda: runtime.consumer("three").stats.acked == 1)
            run = await stack.runs.get("s1")
            with pytest.raises(WorkflowConflict) as info:
                await stack.runs.resume("s1")
            tg.cancel_scope.cancel()
    assert resumed.stage == "two"
    assert resumed.reason == "resume"
    assert run is not None
    assert run.terminal
    assert info.value.code == "run_completed"
    assert [c.consumer_name for c in runtime.consumers] == [
        "relayna-workflow.one",
        "relayna-workflow.two",
        "relayna-workflow.three",
    ]
