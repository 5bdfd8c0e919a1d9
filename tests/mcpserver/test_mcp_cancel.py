"""``cancel_task`` over MCP (issue 27): the cancel path of ``POST /tasks/{task_id}/cancel``
on an App whose worker runs in this process (memory transports and real RabbitMQ + Redis,
both backends), driven by the SDK's client over streamable HTTP."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
from _mcp_stack import TOKEN, http_server, http_session
from mcp import types

import relayna
from _cancel_support import assert_one_ending, running  # tests/ is on sys.path
from _transports import TRANSPORTS
from relayna.consumer import RetryPolicy, TaskContext
from relayna.mcp import MCPConfig

pytestmark = pytest.mark.anyio


def _text(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_cancel_task_stops_a_running_handler(
    kind: str, request: pytest.FixtureRequest, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    urls = ("memory://", "memory://")
    if kind == "real":
        urls = (request.getfixturevalue("amqp_url"), request.getfixturevalue("redis_url"))
    app = relayna.App(
        name=f"mcpcx-{unique}",
        broker=urls[0],
        store=urls[1],
        retry=RetryPolicy(max_retries=3, delay_ms=100),
        cancel_grace=2.0,
    )
    started, effects = anyio.Event(), []

    @app.task("slow")
    async def slow(ctx: TaskContext, payload: dict[str, Any]) -> None:
        started.set()
        try:
            await anyio.sleep(60)
            effects.append("finished")
        finally:
            effects.append("finally")

    caplog.set_level(logging.INFO, logger="relayna.mcp.audit")
    config = MCPConfig(operations=True, token=TOKEN)
    with anyio.fail_after(45):
        async with running(app), http_server(app.runtime, config) as (url, _mcp):
            handle = await app.publish("slow")
            await started.wait()
            async with http_session(url) as anonymous:
                refused = await anonymous.call_tool("cancel_task", {"task_id": handle.task_id})
                assert refused.isError is True
                assert "token" in _text(refused)
            assert effects == []  # the refused call changed nothing

            async with http_session(url, {"Authorization": f"Bearer {TOKEN}"}) as operator:
                tools = {t.name: t for t in (await operator.list_tools()).tools}
                hints = tools["cancel_task"].annotations
                assert hints is not None
                assert (hints.readOnlyHint, hints.destructiveHint) == (False, True)
                assert (hints.idempotentHint, hints.openWorldHint) == (True, True)

                done = await operator.call_tool(
                    "cancel_task", {"task_id": handle.task_id, "reason": "operator stop"}
                )
                assert done.isError is False, done.content
                assert done.structuredContent == {
                    "task_id": handle.task_id,
                    "state": "requested",
                    "reason": "operator stop",
                    "status": None,
                }
                event = await handle.wait()
                assert (event["status"], event["message"]) == ("cancelled", "operator stop")
                assert effects == ["finally"]  # its scope was cancelled: finally ran
                assert assert_one_ending(await handle.history()) == "cancelled"

                # idempotent: cancelling an ended task answers what it ended with
                again = await operator.call_tool("cancel_task", {"task_id": handle.task_id})
                assert again.isError is False
                assert again.structuredContent is not None
                assert (again.structuredContent["state"], again.structuredContent["status"]) == (
                    "terminal",
                    "cancelled",
                )

                bad = {
                    "no spaces": {"task_id": "no spaces"},
                    "dots": {"task_id": "a..b"},
                    "unknown": {"task_id": f"nobody-{unique}"},
                    "long reason": {"task_id": handle.task_id, "reason": "x" * 501},
                    "extra": {"task_id": handle.task_id, "when": "now"},
                    "batch not bool": {"task_id": handle.task_id, "batch": "yes"},
                }
                for label, arguments in bad.items():
                    answer = await operator.call_tool("cancel_task", arguments)
                    assert answer.isError is True, label
                unknown = await operator.call_tool("cancel_task", {"task_id": f"nobody-{unique}"})
                assert "no task" in _text(unknown)

    outcomes = [r.audit["outcome"] for r in caplog.records if hasattr(r, "audit")]
    assert outcomes[:3] == ["denied", "ok", "ok"]
    assert all(r.audit["tool"] == "cancel_task" for r in caplog.records if hasattr(r, "audit"))
