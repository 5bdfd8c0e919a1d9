"""``relayna dev`` serves ``/mcp``: the read tools on, the operational tools off."""

from __future__ import annotations

import anyio
import pytest
from _mcp_stack import http_session
from services import free_port

from relayna.devserver import DevConfig, run_dev

pytestmark = pytest.mark.anyio


async def test_dev_mounts_mcp_with_read_tools_only() -> None:
    config = DevConfig(port=free_port(), step_seconds=0.001, drain_timeout=1.0)
    shutdown = anyio.Event()
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            url = await tg.start(run_dev, config, shutdown)
            async with http_session(f"{url}mcp") as session:
                tools = {t.name: t for t in (await session.list_tools()).tools}
                assert "explain_task" in tools
                assert not any(t.annotations and t.annotations.readOnlyHint is False
                               for t in tools.values())  # fmt: skip
                topology = await session.call_tool("inspect_topology", {})
                assert topology.structuredContent is not None
                assert topology.structuredContent["topology"]["queues"]
                refused = await session.call_tool("replay_dlq_message", {"dlq_id": "d1"})
                assert refused.isError is True
            shutdown.set()  # the MCP sessions end with the dev server; run_dev returns
