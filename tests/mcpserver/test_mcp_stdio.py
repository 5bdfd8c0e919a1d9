"""``relayna mcp --app module:attr`` as a subprocess, driven by the SDK's stdio client, over
a task that went retry → DLQ on real RabbitMQ + Redis. The server runs on the test's
backend (``--backend``), so stdio is checked on asyncio and trio."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest
from _mcp_stack import failed_task, stdio_server
from mcp import ClientSession, types
from mcp.client.stdio import stdio_client
from pydantic import AnyUrl

from relayna.transport import open_broker

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis]

TARGET = """
from _mcp_stack import runtime_config

config = runtime_config({amqp!r}, {redis!r}, {unique!r})
"""


async def test_stdio_server_reads_and_replays(
    amqp_url: str, redis_url: str, unique: str, tmp_path: Path, anyio_backend: str
) -> None:
    (tmp_path / "mcp_target.py").write_text(
        TARGET.format(amqp=amqp_url, redis=redis_url, unique=unique)
    )
    with anyio.fail_after(90):
        async with failed_task(amqp_url, redis_url, unique) as failed:
            params = stdio_server(tmp_path, anyio_backend, "--allow-operations")
            async with (
                stdio_client(params) as (read, write),
                ClientSession(read, write) as session,
            ):
                init = await session.initialize()
                assert init.serverInfo.name == "relayna"
                tools = {t.name for t in (await session.list_tools()).tools}
                assert {"explain_task", "replay_dlq_message", "retry_failed_task"} <= tools
                assert "publish_task" not in tools  # a RuntimeConfig target has no publisher

                uri = AnyUrl(f"relayna://tasks/{failed.task_id}/status")
                [content] = (await session.read_resource(uri)).contents
                assert isinstance(content, types.TextResourceContents)
                assert json.loads(content.text)["event"]["status"] == "failed"

                explained = await session.call_tool("explain_task", {"task_id": failed.task_id})
                assert explained.structuredContent is not None
                assert explained.structuredContent["state"] == "dead_lettered"

                bad = await session.call_tool("get_task_status", {"task_id": "no spaces"})
                assert bad.isError is True

                # over stdio the launching user is the caller: no token, but audited
                replayed = await session.call_tool("replay_dlq_message", {"dlq_id": failed.dlq_id})
                assert replayed.isError is False, replayed.content
                assert replayed.structuredContent is not None
                assert replayed.structuredContent["state"] == "replayed"
            assert failed.runtime.observations is not None
            observations = await failed.runtime.observations.history(failed.task_id)
            [audit] = [o for o in observations if o["event_type"] == "MCPOperationCalled"]
            assert audit["caller"].startswith("stdio:")
            assert audit["outcome"] == "ok"
            record = await failed.runtime.dlq.store.get(failed.dlq_id)  # type: ignore[union-attr]
            assert record is not None
            assert record.state == "replayed"


async def test_stdio_server_keeps_operations_off_by_default(
    amqp_url: str, redis_url: str, unique: str, tmp_path: Path, anyio_backend: str
) -> None:
    (tmp_path / "mcp_target.py").write_text(
        TARGET.format(amqp=amqp_url, redis=redis_url, unique=unique)
    )
    with anyio.fail_after(60):
        async with (
            stdio_client(stdio_server(tmp_path, anyio_backend)) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = {t.name for t in (await session.list_tools()).tools}
            assert "replay_dlq_message" not in tools
            refused = await session.call_tool("replay_dlq_message", {"dlq_id": "d1"})
            assert refused.isError is True
            assert "disabled" in " ".join(
                c.text for c in refused.content if isinstance(c, types.TextContent)
            )


APP_TARGET = """
import relayna

app = relayna.App(name={name!r}, broker={amqp!r}, store={redis!r})


@app.task("mcp.greet")
async def greet(ctx, payload):
    return {{"hello": payload.get("who")}}
"""


async def test_stdio_server_publishes_for_an_app(
    amqp_url: str, redis_url: str, unique: str, tmp_path: Path, anyio_backend: str
) -> None:
    name = f"mcpapp-{unique}"
    task_id = f"greet-{unique}"  # the real Redis outlives a test run
    (tmp_path / "mcp_app_target.py").write_text(
        APP_TARGET.format(name=name, amqp=amqp_url, redis=redis_url)
    )
    params = stdio_server(
        tmp_path, anyio_backend, "--allow-operations", target="mcp_app_target:app"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import mcp_app_target  # the same App, to find its queue

        topology = mcp_app_target.app.topology
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mcp_app_target", None)
    with anyio.fail_after(60):
        async with open_broker(amqp_url) as broker:
            try:
                async with (
                    stdio_client(params) as (read, write),
                    ClientSession(read, write) as session,
                ):
                    await session.initialize()
                    tools = {t.name for t in (await session.list_tools()).tools}
                    assert "publish_task" in tools
                    published = await session.call_tool(
                        "publish_task",
                        {"task_type": "mcp.greet", "payload": {"who": "mcp"}, "task_id": task_id},
                    )
                    assert published.structuredContent == {
                        "task_id": task_id, "task_type": "mcp.greet", "published": True,
                    }  # fmt: skip
                    again = await session.call_tool(
                        "publish_task", {"task_type": "mcp.greet", "task_id": task_id}
                    )
                    assert again.isError is True  # the id exists: refused, nothing published
                    unrouted = await session.call_tool("publish_task", {"task_type": "nope"})
                    assert unrouted.isError is True
                # confirmed by the broker: the task waits in the app's queue (no worker runs)
                depth = (await broker.inspect_queue(topology.tasks_queue)).message_count
                assert depth == 1
            finally:
                with anyio.CancelScope(shield=True):
                    for queue in topology.plan().queue_names:
                        await broker.delete_queue(queue)
