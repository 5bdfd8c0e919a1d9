"""The stage runtime (memory and real RabbitMQ + Redis): hand-off, contracts, timeout, retry, DLQ."""

from __future__ import annotations

from typing import Any

import anyio
import orjson
import pytest

from _workflow_support import (
    Stack,
    drain,
    planner_docsearch,
    stage,
    started,
    wait_for,
    workflow,
)
from relayna.consumer import RetryPolicy
from relayna.contracts import WorkflowEnvelope
from relayna.contracts import headers as h
from relayna.errors import EnvelopeTooLarge, WorkflowContractError
from relayna.rabbitmq import open_relayna_client
from relayna.topology import ActionSchema, PayloadSchema
from relayna.transport import Broker, Properties, Store
from relayna.workflow import JoinedMessage, WorkflowContext

pytestmark = pytest.mark.anyio


async def test_two_stage_handoff_carries_stage_origin_action_and_lineage(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = planner_docsearch(unique)
    stack = Stack(topology, broker, store)
    seen: list[dict[str, Any]] = []

    async def planner(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        await ctx.publish_status(status="planning")
        await ctx.publish_to_stage("docsearch", {"q": message.payload["topic"]}, action="search")

    async def docsearch(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        seen.append(
            {
                "stage": ctx.stage,
                "origin": ctx.origin_stage,
                "action": ctx.action,
                "payload": message.payload,
                "parent": ctx.parent_message_id,
                "attempt": ctx.attempt,
            }
        )
        await ctx.publish_status(status="completed")

    stack.consumer("planner", planner)
    stack.consumer("docsearch", docsearch)
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client, started(stack):
            first = await client.publish_to_stage(
                {"task_id": "wf-1", "payload": {"topic": "otters"}}, "planner"
            )
            await wait_for(lambda: len(stack.events("WorkflowStageAcked")) == 2)
            run = await stack.runs.get("wf-1")
        statuses = [
            orjson.loads(b)["status"] for b, _ in await drain(broker, topology.status_queue)
        ]
    assert seen == [
        {
            "stage": "docsearch",
            "origin": "planner",
            "action": "search",
            "payload": {"q": "otters"},
            "parent": first.message_id,
            "attempt": 0,
        }
    ]
    assert statuses == ["planning", "completed"]
    assert run is not None
    assert run.terminal
    assert run.status == "completed"
    assert [(s.name, s.status, s.attempts) for s in run.stages.values()] == [
        ("planner", "completed", 1),
        ("docsearch", "completed", 1),
    ]
    description = await stack.runs.describe("wf-1")
    assert description is not None
    lineage = description["lineage"]
    assert [(e["source_stage"], e["target_stage"], e["parent_message_id"]) for e in lineage] == [
        (None, "planner", None),
        ("planner", "docsearch", first.message_id),
    ]


async def test_inbound_contract_violations_are_dead_lettered_with_the_reason(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = planner_docsearch(unique)
    stack = Stack(topology, broker, store)
    calls: list[Any] = []

    async def docsearch(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        calls.append(message)

    stack.consumer("docsearch", docsearch)
    queue = topology.stage("docsearch").queue
    bad = [
        ({"task_id": "c1", "stage": "docsearch", "payload": {"q": "x"}}, "unsupported_action"),
        (
            {"task_id": "c2", "stage": "docsearch", "action": "crawl", "payload": {"q": "x"}},
            "unsupported_action",
        ),
        (
            {"task_id": "c3", "stage": "docsearch", "action": "search", "payload": {"x": 1}},
            "payload_schema_violation",
        ),
        ({"task_id": "c4", "stage": "ghost", "action": "search"}, "unknown_stage"),
        ({"task_id": "c5", "stage": "planner", "action": "search"}, "stage_mismatch"),
        ({"task_id": "c6", "stage": "docsearch", "action": "search", "payload": []}, "schema"),
    ]
    with anyio.fail_after(20):
        async with started(stack):
            for body, _ in bad:
                await broker.publish(
                    "", queue, orjson.dumps(body), Properties(content_type="application/json")
                )
            await wait_for(lambda: stack.consumers[0].stats.dead_lettered == len(bad))
        dead = await drain(broker, queue + ".dlq")
    assert calls == []
    reasons = {orjson.loads(b)["task_id"]: p.headers[h.FAILURE_REASON] for b, p in dead}
    assert reasons == {body["task_id"]: reason for body, reason in bad}


async def test_outbound_contract_violations_raise_in_the_handler_and_publish_nothing(
    broker: Broker, store: Store, unique: str
) -> None:
    big = PayloadSchema(name="big", required_fields=("q",), optional_fields=("blob",))
    topology = workflow(
        unique,
        stage(unique, "a", "b", produced_actions=(ActionSchema(action="go", payload=big),)),
        stage(unique, "b", "c", accepted_actions=(ActionSchema(action="go", payload=big),)),
        stage(unique, "c", terminal=True),
    )
    stack = Stack(topology, broker, store)
    errors: list[tuple[str, str]] = []

    async def a(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        attempts = [
            lambda: ctx.publish_to_stage("c", {"q": 1}, action="go"),  # forbidden transition
            lambda: ctx.publish_to_stage("b", {"q": 1}, action="stop"),  # not produced
            lambda: ctx.publish_to_stage("b", {"x": 1}, action="go"),  # schema
            lambda: ctx.publish_to_stage("b", {"q": 1, "blob": "x" * 2_000_000}, action="go"),
        ]
        for attempt in attempts:
            try:
                await attempt()
            except (WorkflowContractError, EnvelopeTooLarge) as exc:
                errors.append((type(exc).__name__, exc.reason))

    stack.consumer("a", a)
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client, started(stack):
            await client.publish_to_stage({"task_id": "o1"}, "a")
            await wait_for(lambda: len(stack.events("WorkflowStageAcked")) == 1)
        depth_b = (await broker.inspect_queue(topology.stage("b").queue)).message_count
        depth_c = (await broker.inspect_queue(topology.stage("c").queue)).message_count
    assert errors == [
        ("WorkflowContractError", "forbidden_transition"),
        ("WorkflowContractError", "unsupported_action"),
        ("WorkflowContractError", "payload_schema_violation"),
        ("EnvelopeTooLarge", "too_large"),
    ]
    assert (depth_b, depth_c) == (0, 0)
    assert stack.events("WorkflowMessagePublished") == []


async def test_an_unhandled_contract_violation_fails_the_stage_with_its_reason(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = planner_docsearch(unique)
    stack = Stack(topology, broker, store)

    async def planner(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        await ctx.publish_to_stage("docsearch", {"q": "x"}, action="crawl")

    stack.consumer("planner", planner)
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client, started(stack):
            await client.publish_to_stage({"task_id": "u1"}, "planner")
            await wait_for(lambda: len(stack.events("WorkflowStageFailed")) == 1)
            await wait_for(lambda: stack.consumers[0].stats.rejected == 1)
            run = await stack.runs.get("u1")
    assert stack.events("WorkflowStageFailed")[0].reason == "unsupported_action"
    assert run is not None
    assert run.stages["planner"].status == "failed"  # no retry policy: rejected
    assert run.stages["planner"].last_error is not None
    assert run.stages["planner"].last_error["reason"] == "unsupported_action"


async def test_stage_timeout_retries_then_dead_letters(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = workflow(
        unique,
        stage(
            unique, "slow", terminal=True, timeout_seconds=0.05, max_retries=1, retry_delay_ms=50
        ),
    )
    stack = Stack(topology, broker, store)
    attempts: list[int] = []

    async def slow(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        attempts.append(ctx.attempt)
        await anyio.sleep(5)

    consumer = stack.consumer("slow", slow)
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client, started(stack):
            await client.publish_to_stage({"task_id": "t1"}, "slow")
            await wait_for(lambda: consumer.stats.dead_lettered == 1)
            run = await stack.runs.get("t1")
        dead = await drain(broker, topology.stage("slow").queue + ".dlq")
    assert attempts == [0, 1]
    assert consumer.stats.retried == 1
    assert [p.headers[h.FAILURE_REASON] for _, p in dead] == ["stage_timeout"]
    assert [e.reason for e in stack.events("WorkflowStageFailed")] == ["stage_timeout"] * 2
    assert [e.reason for e in stack.events("ConsumerRetryScheduled")] == ["stage_timeout"]
    assert run is not None
    assert run.stages["slow"].status == "dead_lettered"
    assert run.stages["slow"].attempts == 2
    assert consumer.retry_policy == RetryPolicy(max_retries=1, delay_ms=50)


async def test_dedup_after_completion_runs_the_handler_once(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = workflow(unique, stage(unique, "pay", terminal=True, dedup_key_fields=("invoice",)))
    stack = Stack(topology, broker, store)
    runs: list[str] = []

    async def pay(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        runs.append(message.message_id)

    consumer = stack.consumer("pay", pay)
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client, started(stack):
            body = {"task_id": "d1", "payload": {"invoice": "inv-7", "note": "first"}}
            await client.publish_to_stage(body, "pay")
            await wait_for(lambda: consumer.stats.acked == 1)
            # the same work again, after the first finished: a new message id,
            # the payload's other fields differ, the dedup fields do not
            await client.publish_to_stage(
                {"task_id": "d1", "payload": {"invoice": "inv-7", "note": "again"}}, "pay"
            )
            # the very same message (same id) delivered twice
            copy = WorkflowEnvelope(task_id="d1", stage="pay", payload={"invoice": "inv-7"})
            await client.publish_to_stage(copy, "pay")
            await client.publish_to_stage(copy, "pay")
            await wait_for(lambda: consumer.stats.acked == 4)
            # another invoice is other work
            await client.publish_to_stage({"task_id": "d1", "payload": {"invoice": "inv-8"}}, "pay")
            await wait_for(lambda: consumer.stats.acked == 5)
    assert len(runs) == 2
    assert consumer.stats.duplicates_suppressed == 3
    assert len(stack.events("DuplicateSuppressed")) == 3


async def test_concurrent_copies_of_one_message_run_once(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = workflow(unique, stage(unique, "only", terminal=True))
    stack = Stack(topology, broker, store)
    running = anyio.Event()
    release = anyio.Event()
    runs: list[str] = []

    async def only(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        runs.append(message.message_id)
        running.set()
        await release.wait()

    consumer = stack.consumer("only", only, prefetch=4)
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client, started(stack):
            copy = WorkflowEnvelope(task_id="cc", stage="only")
            for _ in range(3):
                await client.publish_to_stage(copy, "only")
            await running.wait()
            # the copies meet the held guard and are requeued until it completes
            await wait_for(lambda: consumer.stats.lease_conflicts >= 2)
            release.set()
            await wait_for(lambda: consumer.stats.duplicates_suppressed == 2)
    assert runs == [copy.message_id]


async def test_a_crash_mid_handler_leaves_no_completion_marker(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = workflow(unique, stage(unique, "work", terminal=True))
    first = Stack(topology, broker, store)
    entered = anyio.Event()
    calls: list[str] = []

    async def hang(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        calls.append("first")
        entered.set()
        await anyio.sleep_forever()

    first.consumer("work", hang, drain_timeout=0.0)
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client:
            async with started(first):
                await client.publish_to_stage({"task_id": "k1"}, "work")
                await entered.wait()
            # the worker went away mid-handler (cancelled without a drain): the
            # delivery is back in the queue and no marker says it completed
            second = Stack(topology, broker, store)

            async def finish(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
                calls.append("second")

            consumer = second.consumer("work", finish)
            async with started(second):
                await wait_for(lambda: consumer.stats.acked == 1)
            run = await second.runs.get("k1")
    assert calls == ["first", "second"]
    assert run is not None
    assert run.stages["work"].attempts == 2
    assert run.terminal


async def test_a_dead_workers_guard_is_taken_over_after_it_expires(
    broker: Broker, store: Store, unique: str
) -> None:
    topology = workflow(unique, stage(unique, "work", terminal=True))
    stack = Stack(topology, broker, store)
    message = WorkflowEnvelope(task_id="g1", stage="work")
    calls: list[str] = []

    async def work(msg: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        calls.append(msg.message_id)

    consumer = stack.consumer("work", work)
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client, started(stack):
            # a worker that died holding the guard (never renewed, never released);
            # taken once the consumer is up, so the delivery surely finds it held
            entry = await stack.runs.workflow.enter(
                task_id="g1",
                stage="work",
                message_id=message.message_id,
                guard=f"msg:{message.message_id}",
                owner="dead-worker",
                guard_ttl_ms=1500,
                envelope=b"{}",
                lineage={},
            )
            assert entry.verdict == "go"
            await client.publish_to_stage(message, "work")
            await wait_for(lambda: consumer.stats.acked == 1)
    assert calls == [message.message_id]
    assert consumer.stats.lease_conflicts >= 1


async def test_a_join_handler_receives_a_joined_message(
    broker: Broker, store: Store, unique: str
) -> None:
    # the join's input type is documented; checked here once on the smallest join
    from relayna.topology import FanIn

    topology = workflow(
        unique,
        stage(unique, "a", "j"),
        stage(unique, "j", terminal=True, join=FanIn(expected=("a",))),
    )
    stack = Stack(topology, broker, store)
    got: list[Any] = []

    async def a(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        await ctx.publish_to_stage("j", {"n": 1})

    async def j(message: JoinedMessage, ctx: WorkflowContext) -> None:
        got.append((type(message).__name__, message.branches, message.payloads, ctx.joined))

    stack.consumer("a", a)
    stack.consumer("j", j)
    with anyio.fail_after(20):
        async with open_relayna_client(topology, broker) as client, started(stack):
            await client.publish_to_stage({"task_id": "j1"}, "a")
            await wait_for(lambda: len(got) == 1)
    name, branches, payloads, joined = got[0]
    assert (name, branches, payloads) == ("JoinedMessage", ("a",), [{"n": 1}])
    assert isinstance(joined, JoinedMessage)
