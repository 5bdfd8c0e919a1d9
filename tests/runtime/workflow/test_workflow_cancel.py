"""Cancelling workflow runs and run deadlines across hand-offs (memory and real
RabbitMQ + Redis, both backends): a run cancelled while queued at stage 2, while
stage 2 runs, racing the last stage's completion; a join of a cancelled run
never releases; a deadline expiring between stages and during a stage."""

from __future__ import annotations

import random
import time
from typing import Any

import anyio
import orjson
import pytest

from _workflow_support import (
    Cancellable,
    Stack,
    drain,
    fan_in_topology,
    planner_docsearch,
    running,
    wait_for,
)
from relayna.consumer import RetryPolicy
from relayna.contracts import WorkflowEnvelope
from relayna.errors import WorkflowConflict
from relayna.rabbitmq import open_relayna_client
from relayna.transport import Broker, Store
from relayna.workflow import JoinedMessage, WorkflowContext

pytestmark = pytest.mark.anyio


async def statuses(stack: Stack) -> list[dict[str, Any]]:
    return [orjson.loads(b) for b, _ in await drain(stack.broker, stack.topology.status_queue)]


def endings(events: list[dict[str, Any]]) -> list[str]:
    return [e["status"] for e in events if e["status"] in ("cancelled", "expired", "completed")]


async def test_a_run_cancelled_while_queued_at_stage_2_never_runs_it(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = planner_docsearch(unique)
    stack = Cancellable(topology, broker, store)
    ran: list[str] = []

    async def plan(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        await ctx.publish_to_stage("docsearch", {"q": "otters"}, action="search")

    async def search(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        ran.append(message.message_id)

    planner = stack.consumer("planner", plan)
    docsearch = stack.consumer("docsearch", search)
    run_id = f"run-{unique}"
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client:
            async with running(planner):
                await client.publish_to_stage({"task_id": run_id, "payload": {}}, "planner")
                await wait_for(lambda: len(stack.events("WorkflowStageAcked")) == 1)
            result = await stack.runs.cancel(run_id, "the customer left")
            again = await stack.runs.cancel(run_id, "twice")
            async with running(docsearch):
                await wait_for(lambda: docsearch.stats.acked >= 1)
                await wait_for(lambda: docsearch.inflight == 0)
            state = await stack.runs.get(run_id)
            events = await statuses(stack)
    assert (result.state, result.reason) == ("requested", "the customer left")
    assert (again.state, again.reason) == ("pending", "the customer left")  # idempotent
    assert ran == []  # the queued hand-off was acked without a call
    cancelled = [e for e in events if e["status"] == "cancelled"]
    assert len(cancelled) == 1
    assert cancelled[0]["meta"]["phase"] == "before_start"
    assert cancelled[0]["message"] == "the customer left"
    assert state is not None
    assert (state.status, state.cancel_reason, state.terminal) == (
        "cancelled",
        "the customer left",
        False,
    )
    assert (await broker.inspect_queue(topology.stage("docsearch").queue)).message_count == 0
    with pytest.raises(WorkflowConflict) as conflict:  # a cancelled run is not replayed
        await stack.runs.replay_stage(run_id, "docsearch")
    assert conflict.value.code == "run_cancelled"


async def test_a_running_stage_is_cancelled_its_finally_runs_and_nothing_follows(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = planner_docsearch(unique, max_retries=3, retry_delay_ms=10)
    stack = Cancellable(topology, broker, store)
    entered = anyio.Event()
    cleaned: list[bool] = []

    async def plan(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        await ctx.publish_to_stage("docsearch", {"q": "otters"}, action="search")

    async def search(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        entered.set()
        try:
            await anyio.sleep_forever()
        finally:
            with ctx.cleanup_scope():
                await anyio.lowlevel.checkpoint()
                cleaned.append(ctx.cancelled)

    planner = stack.consumer("planner", plan)
    docsearch = stack.consumer("docsearch", search)
    run_id = f"run-{unique}"
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client, running(*stack.consumers):
            await client.publish_to_stage({"task_id": run_id, "payload": {}}, "planner")
            await entered.wait()
            await wait_for(lambda: planner.stats.acked == 1)  # stage 1 is over
            result = await stack.runs.cancel(run_id, "stop now")
            await wait_for(lambda: docsearch.stats.cancelled["running"] == 1)
            await wait_for(lambda: docsearch.inflight == 0)
            state = await stack.runs.get(run_id)
            events = await statuses(stack)
    assert result.state == "requested"
    assert cleaned == [True]
    assert endings(events) == ["cancelled"]
    assert next(e for e in events if e["status"] == "cancelled")["meta"]["phase"] == "running"
    assert state is not None
    assert state.status == "cancelled"
    assert state.stages["docsearch"].status == "cancelled"
    assert docsearch.stats.retried == 0  # a cancelled stage is never retried
    assert (await broker.inspect_queue(topology.stage("docsearch").queue)).message_count == 0


async def test_a_cancel_racing_the_last_stage_ends_the_run_exactly_once(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = planner_docsearch(unique)
    stack = Cancellable(topology, broker, store)
    gates: dict[str, anyio.Event] = {}
    entered: set[str] = set()

    async def plan(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        await ctx.publish_to_stage("docsearch", {"q": "x"}, action="search")

    async def search(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        entered.add(message.task_id)
        await gates[message.task_id].wait()

    planner = stack.consumer("planner", plan)
    stack.consumer("docsearch", search)
    outcomes: dict[str, str] = {}
    rounds = 8
    with anyio.fail_after(40):
        async with open_relayna_client(topology, broker) as client, running(*stack.consumers):
            for i in range(rounds):
                run_id = f"race-{i}-{unique}"
                gates[run_id] = anyio.Event()
                await client.publish_to_stage({"task_id": run_id, "payload": {}}, "planner")
                await wait_for(lambda run_id=run_id: run_id in entered)
                await wait_for(lambda i=i: planner.stats.acked == i + 1)  # the race is stage 2's

                # who leads, and by how much, is random: both orders and the near tie
                lead = random.uniform(-0.006, 0.003)

                async def cancel(run_id: str = run_id, wait: float = max(lead, 0.0)) -> None:
                    await anyio.sleep(wait)
                    try:
                        outcomes[run_id] = (await stack.runs.cancel(run_id)).state
                    except WorkflowConflict as exc:
                        outcomes[run_id] = exc.code

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel)
                    await anyio.sleep(max(-lead, 0.0))
                    gates[run_id].set()
            await wait_for(lambda: sum(c.stats.acked for c in stack.consumers) == 2 * rounds)
            states = {r: await stack.runs.get(r) for r in outcomes}
            events = await statuses(stack)
    for run_id, outcome in outcomes.items():
        state = states[run_id]
        assert state is not None
        mine = endings([e for e in events if e["task_id"] == run_id])
        if outcome == "requested":  # the cancel won: the run never completes
            assert (state.status, state.terminal, mine) == ("cancelled", False, ["cancelled"])
        else:  # the stage claimed the end first: the cancel changed nothing
            assert outcome == "run_ended"
            assert (state.status, state.terminal, mine) == ("completed", True, [])


async def test_a_join_of_a_cancelled_run_does_not_release(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = fan_in_topology(unique, branches=2)
    stack = Cancellable(topology, broker, store)
    joined: list[JoinedMessage] = []

    async def split(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        for name in ("b0", "b1"):
            await ctx.publish_to_stage(name, {})

    async def branch(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        await ctx.publish_to_stage("join", {"from": ctx.stage})

    async def join(message: JoinedMessage, ctx: WorkflowContext) -> None:
        joined.append(message)

    upstream = [stack.consumer(n, f) for n, f in (("split", split), ("b0", branch), ("b1", branch))]
    joiner = stack.consumer("join", join)
    run_id = f"fan-{unique}"
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client:
            async with running(*upstream):
                await client.publish_to_stage({"task_id": run_id, "payload": {}}, "split")
                await wait_for(lambda: len(stack.events("WorkflowStageAcked")) == 3)
            await stack.runs.cancel(run_id)
            async with running(joiner):
                await wait_for(lambda: joiner.stats.acked >= 2)
            state = await stack.runs.get(run_id)
            events = await statuses(stack)
    assert joined == []
    assert endings(events) == ["cancelled"]  # once, though two branches met the marker
    assert state is not None
    assert state.status == "cancelled"
    fan_in = await stack.runs.workflow.read_fanin(run_id, "join")
    assert b"done" not in fan_in
    assert not any(k.startswith(b"b:") for k in fan_in)


async def test_a_run_deadline_travels_with_hand_offs_and_expires_between_stages(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = planner_docsearch(unique)
    stack = Cancellable(topology, broker, store)
    ran: list[str] = []
    seen: list[float | None] = []

    async def plan(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        seen.append(ctx.deadline)
        await ctx.publish_to_stage("docsearch", {"q": "x"}, action="search")

    async def search(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        ran.append(message.task_id)

    planner = stack.consumer("planner", plan)
    docsearch = stack.consumer("docsearch", search)
    run_id = f"late-{unique}"
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client:
            async with running(planner):
                await client.publish_to_stage(
                    {"task_id": run_id, "payload": {}}, "planner", timeout=0.4
                )
                await wait_for(lambda: len(stack.events("WorkflowStageAcked")) == 1)
            assert seen[0] is not None
            deadline = seen[0]
            await wait_for(lambda: time.time() > deadline + 0.05)  # the hand-off waits, late
            async with running(docsearch):
                await wait_for(lambda: docsearch.stats.expired["before_start"] == 1)
                await wait_for(lambda: docsearch.inflight == 0)
            state = await stack.runs.get(run_id)
            events = await statuses(stack)
    assert ran == []  # the hand-off carried the deadline: stage 2 knew it was late
    expired = [e for e in events if e["status"] == "expired"]
    assert [e["meta"] for e in expired] == [
        {"reason": "deadline_exceeded", "phase": "before_start"}
    ]
    assert state is not None
    assert state.stages["docsearch"].status == "expired"
    assert state.status == "expired"


async def test_a_stage_running_past_the_run_deadline_expires_and_is_not_retried(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = planner_docsearch(unique)
    stack = Cancellable(topology, broker, store)
    cleaned: list[bool] = []
    deadlines: list[float | None] = []

    async def plan(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        deadlines.append(ctx.deadline)
        await ctx.publish_to_stage("docsearch", {"q": "x"}, action="search")

    async def search(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        deadlines.append(ctx.deadline)
        try:
            await anyio.sleep_forever()
        finally:
            cleaned.append(True)

    stack.consumer("planner", plan)
    docsearch = stack.consumer(
        "docsearch", search, retry_policy=RetryPolicy(max_retries=3, delay_ms=10)
    )
    run_id = f"slow-{unique}"
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client, running(*stack.consumers):
            await client.publish_to_stage(
                {"task_id": run_id, "payload": {}}, "planner", timeout=1.0
            )
            await wait_for(lambda: docsearch.stats.expired["running"] == 1)
            await wait_for(lambda: docsearch.inflight == 0)
            state = await stack.runs.get(run_id)
            events = await statuses(stack)
    assert len(deadlines) == 2
    assert deadlines[0] == deadlines[1]
    assert cleaned == [True]
    assert endings(events) == ["expired"]
    assert docsearch.stats.retried == 0
    assert state is not None
    assert state.stages["docsearch"].status == "expired"


async def test_a_retry_that_would_outlive_the_run_deadline_expires_instead(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = planner_docsearch(unique, max_retries=3, retry_delay_ms=60_000)
    stack = Cancellable(topology, broker, store)
    calls: list[int] = []

    async def plan(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        await ctx.publish_to_stage("docsearch", {"q": "x"}, action="search")

    async def search(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        calls.append(ctx.attempt)
        raise RuntimeError("index offline")

    stack.consumer("planner", plan)
    docsearch = stack.consumer("docsearch", search)
    run_id = f"retry-{unique}"
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client, running(*stack.consumers):
            await client.publish_to_stage({"task_id": run_id, "payload": {}}, "planner", timeout=30)
            await wait_for(lambda: docsearch.stats.expired["running"] == 1)
            await wait_for(lambda: docsearch.inflight == 0)  # its status is out
            state = await stack.runs.get(run_id)
            events = await statuses(stack)
    assert calls == [0]  # a 60 s retry delay would pass the 30 s deadline: no retry
    assert docsearch.stats.retried == 0
    expired = [e for e in events if e["status"] == "expired"]
    assert [e["meta"]["reason"] for e in expired] == ["deadline_before_retry"]
    assert state is not None
    assert state.stages["docsearch"].status == "expired"
    assert state.stages["docsearch"].last_error is not None
    assert state.stages["docsearch"].last_error["reason"] == "deadline_before_retry"


async def test_fan_out_branches_that_expire_report_the_run_expired_once(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = fan_in_topology(unique, branches=2)
    stack = Cancellable(topology, broker, store)
    ran: list[str] = []
    seen: list[float | None] = []

    async def split(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        seen.append(ctx.deadline)
        for name in ("b0", "b1"):
            await ctx.publish_to_stage(name, {})

    async def branch(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        ran.append(ctx.stage)

    splitter = stack.consumer("split", split)
    branches = [stack.consumer(n, branch) for n in ("b0", "b1")]
    run_id = f"fanlate-{unique}"
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client:
            async with running(splitter):
                await client.publish_to_stage({"task_id": run_id}, "split", timeout=0.4)
                await wait_for(lambda: splitter.stats.acked == 1)
            deadline = seen[0]
            assert deadline is not None
            await wait_for(lambda: time.time() > deadline + 0.05)
            async with running(*branches):
                await wait_for(lambda: sum(c.stats.acked for c in branches) == 2)
            events = await statuses(stack)
    assert ran == []
    assert endings(events) == ["expired"]  # two late branches, one ending
