"""Workflow runs over MCP: ``relayna://workflow/runs/{task_id}`` and
``replay_workflow_stage`` on a run whose last stage dead-lettered (memory transports and
real RabbitMQ + Redis, both backends)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from _mcp_stack import TOKEN, http_server, http_session, stdio_server
from mcp import ClientSession, types
from mcp.client.stdio import stdio_client
from pydantic import AnyUrl

from _transports import TRANSPORTS, open_transports
from _workflow_support import Stack, stage, started, wait_for, workflow
from relayna.api import RuntimeConfig, open_relayna_runtime
from relayna.contracts import WorkflowEnvelope
from relayna.mcp import MCPConfig
from relayna.rabbitmq import CancelStore, open_relayna_client
from relayna.workflow import WorkflowContext, WorkflowStore

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_a_stalled_run_is_read_and_its_stage_replayed(
    kind: str, request: pytest.FixtureRequest, unique: str
) -> None:
    topology = workflow(
        unique,
        stage(unique, "fetch", "store"),
        stage(unique, "store", terminal=True, max_retries=0, retry_delay_ms=50),
    )
    broken = True

    async def fetch(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        await ctx.publish_to_stage("store", {"doc": 1})

    async def store_stage(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        if broken:
            raise RuntimeError("disk full")

    with anyio.fail_after(60):
        async with open_transports(kind, request) as (broker, store):
            stack = Stack(topology, broker, store)
            stack.consumer("fetch", fetch)
            store_consumer = stack.consumer("store", store_stage)
            config = RuntimeConfig(
                store_url=store.url, broker_url=broker.url, topology=topology, run_hub=False
            )
            async with (
                open_relayna_runtime(config, broker=broker, store=store) as runtime,
                open_relayna_client(topology, broker) as client,
                started(stack),
                http_server(
                    runtime, MCPConfig(operations=True, token=TOKEN), workflow=stack.state
                ) as (url, _mcp),
                http_session(url, {"Authorization": f"Bearer {TOKEN}"}) as session,
            ):
                await client.publish_to_stage({"task_id": "r1"}, "fetch")
                await wait_for(lambda: store_consumer.stats.dead_lettered == 1)

                read = await session.read_resource(AnyUrl("relayna://workflow/runs/r1"))
                [content] = read.contents
                assert isinstance(content, types.TextResourceContents)
                run = json.loads(content.text)
                stages = {s["stage"]: s["status"] for s in run["run"]["stages"]}
                assert stages["store"] == "dead_lettered"
                codes = [r["code"] for r in run["diagnosis"]["reasons"]]
                assert "stage_dead_lettered" in codes

                tools = {t.name: t for t in (await session.list_tools()).tools}
                hints = tools["replay_workflow_stage"].annotations
                assert hints is not None
                assert hints.destructiveHint is True
                broken = False
                replayed = await session.call_tool(
                    "replay_workflow_stage",
                    {"task_id": "r1", "stage": "store", "reason": "disk replaced"},
                )
                assert replayed.isError is False, replayed.content
                assert replayed.structuredContent is not None
                assert replayed.structuredContent["previous_status"] == "dead_lettered"
                await wait_for(lambda: store_consumer.stats.acked == 1)  # it really ran again

                unknown = await session.call_tool(
                    "replay_workflow_stage", {"task_id": "nobody", "stage": "store"}
                )
                assert unknown.isError is True
                bad_stage = await session.call_tool(
                    "replay_workflow_stage", {"task_id": "r1", "stage": "nowhere"}
                )
                assert bad_stage.isError is True


STDIO_TARGET = """
from _workflow_support import stage, workflow
from relayna.api import RuntimeConfig

topology = workflow(
    {unique!r},
    stage({unique!r}, "fetch", "store"),
    stage({unique!r}, "store", terminal=True, max_retries=0, retry_delay_ms=50),
)
config = RuntimeConfig(store_url={redis!r}, broker_url={amqp!r}, topology=topology)
"""


@pytest.mark.rabbitmq
@pytest.mark.redis
async def test_stdio_reads_a_run_and_replays_its_stage(
    amqp_url: str,
    redis_url: str,
    unique: str,
    tmp_path: Path,
    anyio_backend: str,
    request: pytest.FixtureRequest,
) -> None:
    """``relayna mcp --workflow-prefix`` (a subprocess on the test's backend) over a run on
    real RabbitMQ + Redis whose last stage dead-lettered: read it, replay the stage."""
    (tmp_path / "mcp_target.py").write_text(
        STDIO_TARGET.format(unique=unique, amqp=amqp_url, redis=redis_url)
    )
    topology = workflow(
        unique,
        stage(unique, "fetch", "store"),
        stage(unique, "store", terminal=True, max_retries=0, retry_delay_ms=50),
    )
    attempts: list[dict[str, Any]] = []

    async def fetch(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        await ctx.publish_to_stage("store", {"doc": 1})

    async def store_stage(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        attempts.append(dict(message.payload))
        if len(attempts) == 1:
            raise RuntimeError("disk full")

    task_id = f"run-{unique}"
    with anyio.fail_after(90):
        async with open_transports("real", request) as (broker, store):
            stack = Stack(topology, broker, store)
            stack.consumer("fetch", fetch)
            store_consumer = stack.consumer("store", store_stage)
            params = stdio_server(
                tmp_path,
                anyio_backend,
                "--allow-operations",
                "--workflow-prefix",
                stack.state.prefix,
            )
            async with (
                open_relayna_client(topology, broker) as client,
                started(stack),
            ):
                await client.publish_to_stage({"task_id": task_id}, "fetch")
                await wait_for(lambda: store_consumer.stats.dead_lettered == 1, limit=30)
                async with (
                    stdio_client(params) as (read, write),
                    ClientSession(read, write) as session,
                ):
                    await session.initialize()
                    uri = AnyUrl(f"relayna://workflow/runs/{task_id}")
                    [content] = (await session.read_resource(uri)).contents
                    assert isinstance(content, types.TextResourceContents)
                    run = json.loads(content.text)
                    stages = {s["stage"]: s["status"] for s in run["run"]["stages"]}
                    assert stages == {"fetch": "completed", "store": "dead_lettered"}

                    replayed = await session.call_tool(
                        "replay_workflow_stage", {"task_id": task_id, "stage": "store"}
                    )
                    assert replayed.isError is False, replayed.content
                    assert replayed.structuredContent is not None
                    assert replayed.structuredContent["stage"] == "store"
                    await wait_for(lambda: store_consumer.stats.acked == 1, limit=30)
                    assert attempts == [{"doc": 1}, {"doc": 1}]  # the same message, run again


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_cancel_task_with_workflow_cancels_a_running_run(
    kind: str, request: pytest.FixtureRequest, unique: str
) -> None:
    """``cancel_task`` with ``workflow: true``: the route's path for a run — its running
    stage handler is cancelled (its ``finally`` runs), the run ends ``cancelled``, a
    second cancel answers ``terminal``; an unknown run, a completed run and ``batch`` with
    ``workflow`` are answered as the route answers them."""
    topology = workflow(
        unique, stage(unique, "fetch", "store"), stage(unique, "store", terminal=True)
    )
    blocked, done, nobody = f"blocked-{unique}", f"done-{unique}", f"nobody-{unique}"
    entered, cleaned = anyio.Event(), anyio.Event()

    async def fetch(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        if message.task_id == blocked:
            entered.set()
            try:
                await anyio.sleep_forever()
            finally:
                cleaned.set()
        await ctx.publish_to_stage("store", {"doc": 1})

    async def store_stage(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        return None

    with anyio.fail_after(60):
        async with open_transports(kind, request) as (broker, store):
            config = RuntimeConfig(
                store_url=store.url, broker_url=broker.url, topology=topology, run_hub=False
            )
            async with open_relayna_runtime(config, broker=broker, store=store) as runtime:
                cancels = CancelStore(store, prefix=runtime.status.config.prefix)
                stack = Stack(topology, broker, store)
                fetcher = stack.consumer("fetch", fetch, cancels=cancels)
                storer = stack.consumer("store", store_stage, cancels=cancels)
                async with (
                    open_relayna_client(topology, broker) as client,
                    started(stack),
                    http_server(
                        runtime, MCPConfig(operations=True, token=TOKEN), workflow=stack.state
                    ) as (url, _mcp),
                    http_session(url, {"Authorization": f"Bearer {TOKEN}"}) as session,
                ):
                    await client.publish_to_stage({"task_id": blocked}, "fetch")
                    await entered.wait()
                    first = await session.call_tool(
                        "cancel_task", {"task_id": blocked, "reason": "stop", "workflow": True}
                    )
                    await cleaned.wait()
                    await wait_for(lambda: fetcher.stats.cancelled["running"] == 1)
                    again = await session.call_tool(
                        "cancel_task", {"task_id": blocked, "workflow": True}
                    )
                    await client.publish_to_stage({"task_id": done}, "fetch")
                    await wait_for(lambda: storer.stats.acked == 1)
                    ended = await session.call_tool(
                        "cancel_task", {"task_id": done, "workflow": True}
                    )
                    unknown = await session.call_tool(
                        "cancel_task", {"task_id": nobody, "workflow": True}
                    )
                    both = await session.call_tool(
                        "cancel_task", {"task_id": blocked, "workflow": True, "batch": True}
                    )
                    run = await WorkflowStore(store, stack.state).read_run(blocked)
    assert first.isError is False, first.content
    assert first.structuredContent == {
        "task_id": blocked, "state": "requested", "reason": "stop", "status": None,
    }  # fmt: skip
    assert again.structuredContent is not None
    assert (again.structuredContent["state"], again.structuredContent["status"]) == (
        "terminal", "cancelled",
    )  # fmt: skip
    assert ended.structuredContent is not None
    assert (ended.structuredContent["state"], ended.structuredContent["status"]) == (
        "terminal", "completed",
    )  # fmt: skip
    assert unknown.isError is True
    assert both.isError is True
    assert json.loads(run[b"run"])["cancel_reason"] == "stop"
