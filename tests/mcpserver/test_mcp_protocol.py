"""The MCP server's protocol behaviour on the memory transports (a product feature, not a
fake), served over streamable HTTP on loopback: bad input, disabled tools, progress and
the client's cancellation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from _mcp_stack import TOKEN, http_server, http_session
from mcp import ClientSession, types
from mcp.shared.exceptions import McpError

from relayna.api import RelaynaRuntime, RuntimeConfig, open_relayna_runtime
from relayna.mcp import MCPConfig, MCPRoutes

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def served(
    config: MCPConfig | None = None, headers: dict[str, str] | None = None
) -> AsyncIterator[tuple[RelaynaRuntime, ClientSession, MCPRoutes]]:
    async with (
        open_relayna_runtime(RuntimeConfig(store_url="memory://")) as runtime,
        http_server(runtime, config) as (url, mcp),
        http_session(url, headers) as session,
    ):
        yield runtime, session, mcp


def _event(task_id: str, status: str, **meta: str) -> dict[str, Any]:
    return {"task_id": task_id, "status": status, "event_id": uuid.uuid4().hex, "meta": meta}


def _text(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


BAD_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("no_such_tool", {}, "unknown tool"),
    ("get_task_status", {}, "'task_id' is a required property"),
    ("get_task_status", {"task_id": 7}, "is not of type 'string'"),
    ("get_task_status", {"task_id": "t1", "extra": 1}, "Additional properties"),
    ("get_task_status", {"task_id": "bad id"}, "task_id"),
    ("get_task_status", {"task_id": "a..b"}, "'..'"),
    ("get_task_status", {"task_id": "x" * 257}, "task_id"),
    ("get_task_status", {"task_id": "é"}, "task_id"),
    ("get_task_history", {"task_id": "t1", "limit": 0}, "limit"),
    ("search_dlq", {"state": "gone"}, "state"),
    ("search_dlq", {"cursor": "not-a-cursor"}, "cursor"),
    ("wait_for_task", {"task_id": "t1", "timeout_seconds": -1}, "timeout_seconds"),
    ("get_execution_graph", {"task_id": "t1", "format": "svg"}, "format"),
    ("get_task_status", {"task_id": "t1", "pad": "x" * 70_000}, "too large"),
    ("replay_dlq_message", {"dlq_id": "d1"}, "disabled"),
    ("retry_failed_task", {"task_id": "t1"}, "disabled"),
    ("cancel_task", {"task_id": "t1"}, "disabled"),
    ("publish_task", {"task_type": "x"}, "disabled"),
]


@pytest.mark.parametrize(("tool", "arguments", "says"), BAD_CALLS)
async def test_bad_calls_are_tool_errors_and_the_session_lives_on(
    tool: str, arguments: dict[str, Any], says: str
) -> None:
    config = MCPConfig(max_argument_bytes=64 * 1024)
    with anyio.fail_after(30):
        async with served(config) as (_runtime, session, mcp):
            result = await session.call_tool(tool, arguments)
            assert result.isError is True
            assert says in _text(result)
            ok = await session.call_tool("get_task_status", {"task_id": "t1"})  # still serving
            assert ok.isError is False
            assert ok.structuredContent == {"task_id": "t1", "found": False, "event": None}
            stats = mcp.mcp.statistics()
            assert (stats.calls, stats.errors, stats.in_flight) == (2, 1, 0)


async def test_operational_tools_are_not_offered_while_disabled() -> None:
    with anyio.fail_after(30):
        async with served() as (_runtime, session, _mcp):
            names = {t.name for t in (await session.list_tools()).tools}
            assert names.isdisjoint(
                {"publish_task", "replay_dlq_message", "retry_failed_task", "cancel_task"}
            )
            assert "explain_task" in names


async def test_a_body_over_the_limit_is_refused_before_parsing() -> None:
    config = MCPConfig(max_argument_bytes=1024)
    call = {
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "get_task_status", "arguments": {"task_id": "t", "p": "x" * 200_000}},
    }  # fmt: skip
    with anyio.fail_after(30):
        async with (
            open_relayna_runtime(RuntimeConfig(store_url="memory://")) as runtime,
            http_server(runtime, config) as (url, _mcp),
            httpx.AsyncClient() as http,
        ):
            headers = {"Accept": "application/json, text/event-stream"}
            response = await http.post(url, json=call, headers=headers)
            assert response.status_code == 413


async def test_graph_progress_reaches_the_client() -> None:
    children = [f"child-{i:03d}" for i in range(40)]
    progress: list[tuple[float, float | None]] = []

    async def on_progress(done: float, total: float | None, _message: str | None) -> None:
        progress.append((done, total))

    with anyio.fail_after(30):
        async with served() as (runtime, session, _mcp):
            await runtime.status.write(_event("parent", "processing"))
            for child in children:
                await runtime.status.write(_event(child, "completed", parent_task_id="parent"))
            result = await session.call_tool(
                "get_execution_graph", {"task_id": "parent"}, progress_callback=on_progress
            )
            assert result.isError is False
            assert result.structuredContent is not None
            graph = result.structuredContent["graph"]
            assert sum(1 for n in graph["nodes"] if n["task_id"] in children) >= len(children)
    # progress is delivered in order; the last one says all children were read
    assert progress[0] == (0, 40)
    assert progress[-1] == (40, 40)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


async def test_the_clients_cancel_cancels_the_read() -> None:
    first_progress = anyio.Event()

    async def on_progress(done: float, total: float | None, _message: str | None) -> None:
        first_progress.set()

    with anyio.fail_after(30):
        async with served() as (runtime, session, mcp):
            await runtime.status.write(_event("slow", "processing"))
            errors: list[BaseException] = []

            async def wait() -> None:
                try:
                    await session.call_tool(
                        "wait_for_task",
                        {"task_id": "slow", "timeout_seconds": 600},
                        progress_callback=on_progress,
                    )
                except McpError as exc:  # the server answers the cancelled request with an error
                    errors.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await first_progress.wait()  # the read is running on the server
                assert mcp.mcp.statistics().in_flight == 1
                # the SDK's client uses the request id as the progress token; the wait is the
                # session's second request (initialize was the first)
                await session.send_notification(
                    types.ClientNotification(
                        types.CancelledNotification(
                            params=types.CancelledNotificationParams(requestId=1, reason="bored")
                        )
                    )
                )
            stats = mcp.mcp.statistics()
            assert (stats.cancelled, stats.in_flight) == (1, 0)
            assert errors
            assert "cancelled" in str(errors[0]).lower()
            ok = await session.call_tool("get_task_status", {"task_id": "slow"})  # session lives
            assert ok.structuredContent is not None
            assert ok.structuredContent["event"]["status"] == "processing"


async def test_operations_need_a_token_over_http() -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with anyio.fail_after(30):
        async with served(MCPConfig(operations=True, token=TOKEN), headers) as (_r, session, _m):
            # no DLQ store in this runtime: an error result, not a crashed session
            result = await session.call_tool("replay_dlq_message", {"dlq_id": "d1"})
            assert result.isError is True
            assert "no DLQ records" in _text(result)
