"""The MCP server over streamable HTTP (a real hypercorn server on loopback), driven by
the SDK's client, for a task that went retry → DLQ on real RabbitMQ + Redis."""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import httpx
import pytest
from _mcp_stack import TOKEN, failed_task, http_server, http_session
from mcp import types
from mcp.shared.exceptions import McpError
from pydantic import AnyUrl

from relayna.mcp import AUDIT_LOGGER, MCPConfig

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis]

OPS = MCPConfig(operations=True, token=TOKEN)


def _json(result: types.ReadResourceResult) -> Any:
    [content] = result.contents
    assert isinstance(content, types.TextResourceContents)
    assert content.mimeType == "application/json"
    return json.loads(content.text)


async def test_lists_and_resources_of_a_dead_lettered_task(
    amqp_url: str, redis_url: str, unique: str
) -> None:
    with anyio.fail_after(60):
        async with (
            failed_task(amqp_url, redis_url, unique) as failed,
            http_server(failed.runtime, OPS) as (url, _mcp),
            http_session(url) as session,
        ):
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert set(tools) == {
                "get_task_status",
                "get_task_history",
                "explain_task",
                "get_execution_graph",
                "wait_for_task",
                "search_dlq",
                "list_workers",
                "inspect_topology",
                "replay_dlq_message",
                "retry_failed_task",
                "cancel_task",
            }  # fmt: skip  (publish_task needs a publisher)
            for name in ("get_task_status", "explain_task", "search_dlq", "inspect_topology"):
                hints = tools[name].annotations
                assert hints is not None
                assert (hints.readOnlyHint, hints.destructiveHint, hints.openWorldHint) == (
                    True, False, False,
                )  # fmt: skip
                assert tools[name].outputSchema is not None
            replay = tools["replay_dlq_message"].annotations
            assert replay is not None
            assert (replay.readOnlyHint, replay.destructiveHint, replay.idempotentHint) == (
                False, True, False,
            )  # fmt: skip
            assert replay.openWorldHint is True
            assert tools["get_task_status"].inputSchema["required"] == ["task_id"]

            static = {str(r.uri) for r in (await session.list_resources()).resources}
            assert static == {"relayna://topology", "relayna://dlq/queues", "relayna://workers"}
            templates = (await session.list_resource_templates()).resourceTemplates
            assert "relayna://tasks/{task_id}/graph" in {t.uriTemplate for t in templates}
            prompts = {p.name for p in (await session.list_prompts()).prompts}
            assert prompts == {"investigate_failed_task", "summarise_dlq"}

            task = failed.task_id
            status = _json(await session.read_resource(AnyUrl(f"relayna://tasks/{task}/status")))
            assert status["event"]["status"] == "failed"
            history = _json(await session.read_resource(AnyUrl(f"relayna://tasks/{task}/history")))
            statuses = [e["status"] for e in history["events"]]
            assert statuses[0] == "processing"
            assert statuses[-1] == "failed"
            assert "retrying" in statuses
            graph = _json(await session.read_resource(AnyUrl(f"relayna://tasks/{task}/graph")))
            kinds = {n["kind"] for n in graph["nodes"]}
            assert {"task", "retry", "dlq_record"} <= kinds
            mermaid = await session.read_resource(AnyUrl(f"relayna://tasks/{task}/graph.mermaid"))
            [text] = mermaid.contents
            assert isinstance(text, types.TextResourceContents)
            assert text.mimeType == "text/vnd.mermaid"
            assert text.text.startswith("flowchart")
            queues = _json(await session.read_resource(AnyUrl("relayna://dlq/queues")))["queues"]
            assert [(q["queue_name"], q["indexed_count"]) for q in queues] == [
                (failed.tasks_queue + ".dlq", 1)
            ]
            detail = _json(
                await session.read_resource(AnyUrl(f"relayna://dlq/messages/{failed.dlq_id}"))
            )
            assert detail["task_id"] == task
            assert detail["reason"] == "handler_error"
            topology = _json(await session.read_resource(AnyUrl("relayna://topology")))
            assert failed.tasks_queue in topology["topology"]["queues"]
            workers = _json(await session.read_resource(AnyUrl("relayna://workers")))
            assert workers["workers"] == []  # the worker stopped; its heartbeat is gone

            prompt = await session.get_prompt("investigate_failed_task", {"task_id": task})
            [message] = prompt.messages
            assert isinstance(message.content, types.TextContent)
            assert f"explain_task(task_id={task!r})" in message.content.text
            with pytest.raises(McpError):
                await session.read_resource(AnyUrl("relayna://tasks/a..b/status"))
            with pytest.raises(McpError):
                await session.read_resource(AnyUrl("relayna://nothing"))


async def test_explain_task_on_a_dead_lettered_task(
    amqp_url: str, redis_url: str, unique: str
) -> None:
    with anyio.fail_after(60):
        async with (
            failed_task(amqp_url, redis_url, unique) as failed,
            http_server(failed.runtime) as (url, _mcp),
            http_session(url) as session,
        ):
            result = await session.call_tool("explain_task", {"task_id": failed.task_id})
            assert result.isError is False
            explained = result.structuredContent
            assert explained is not None
            assert explained["state"] == "dead_lettered"
            assert (explained["attempts"], explained["retries"]) == (2, 1)
            [letter] = explained["dead_letters"]
            assert letter["dlq_id"] == failed.dlq_id
            assert "RuntimeError" in explained["summary"]
            assert f"replay_dlq_message(dlq_id={failed.dlq_id!r})" in explained["next_steps"][0]
            [text] = result.content
            assert isinstance(text, types.TextContent)
            assert json.loads(text.text) == explained  # the text mirrors the structure

            found = await session.call_tool("search_dlq", {"task_id": failed.task_id})
            assert found.structuredContent is not None
            assert [i["dlq_id"] for i in found.structuredContent["items"]] == [failed.dlq_id]


async def test_replay_needs_the_token_and_publishes_for_real(
    amqp_url: str, redis_url: str, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    with anyio.fail_after(60):
        async with (
            failed_task(amqp_url, redis_url, unique) as failed,
            http_server(failed.runtime, OPS) as (url, mcp),
        ):
            broker = failed.runtime.broker
            assert broker is not None
            async with http_session(url) as anonymous:
                denied = await anonymous.call_tool("replay_dlq_message", {"dlq_id": failed.dlq_id})
                assert denied.isError is True
                assert "bearer token" in str(denied.content[0])
            async with http_session(url, {"Authorization": "Bearer wrong-token-0123456789"}) as bad:
                wrong = await bad.call_tool("replay_dlq_message", {"dlq_id": failed.dlq_id})
                assert wrong.isError is True
            depth = (await broker.inspect_queue(failed.tasks_queue + ".retry")).message_count
            assert depth == 0  # nothing was published for the refused calls

            async with http_session(url, {"Authorization": f"Bearer {TOKEN}"}) as operator:
                done = await operator.call_tool("replay_dlq_message", {"dlq_id": failed.dlq_id})
                assert done.isError is False, done.content
                replayed = done.structuredContent
                assert replayed is not None
                assert (replayed["state"], replayed["replay_count"]) == ("replayed", 1)
                assert replayed["target_queue_name"] == failed.tasks_queue + ".retry"
                again = await operator.call_tool("replay_dlq_message", {"dlq_id": failed.dlq_id})
                assert again.isError is True
                assert "already_replayed" in str(again.content[0])
            # the replay is a real, confirmed publish to the retry queue; after its delay the
            # broker moves the copy to the tasks queue (no worker runs): wait for that state
            # (reading both queues while the broker moves it would see it in neither or both)
            while True:
                depths = [
                    (await broker.inspect_queue(failed.tasks_queue + s)).message_count
                    for s in (".retry", "")
                ]
                if depths == [0, 1]:
                    break
                await anyio.sleep(0.05)
            assert mcp.mcp.statistics().denied == 2
            outcomes = [r.audit["outcome"] for r in caplog.records if hasattr(r, "audit")]
            assert outcomes == ["denied", "denied", "ok", "error"]
            assert all(r.audit["caller"].startswith("http:127.0.0.1") for r in caplog.records
                       if hasattr(r, "audit"))  # fmt: skip
            observations = await failed.runtime.observations.history(failed.task_id)  # type: ignore[union-attr]
            audits = [o for o in observations if o["event_type"] == "MCPOperationCalled"]
            # calls within one millisecond may be stored in either order
            assert sorted(a["outcome"] for a in audits) == ["denied", "denied", "error", "ok"]


async def test_a_foreign_origin_is_rejected(amqp_url: str, redis_url: str, unique: str) -> None:
    with anyio.fail_after(60):
        async with (
            failed_task(amqp_url, redis_url, unique) as failed,
            http_server(failed.runtime) as (url, _mcp),
            httpx.AsyncClient() as http,
        ):
            body = {
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "evil", "version": "1"}},
            }  # fmt: skip
            headers = {"Accept": "application/json, text/event-stream"}
            evil = await http.post(
                url, json=body, headers={**headers, "Origin": "http://evil.example"}
            )
            assert evil.status_code == 403
            rebound = await http.post(url, json=body, headers={**headers, "Host": "evil.example"})
            assert rebound.status_code == 421
            local = await http.post(
                url, json=body, headers={**headers, "Origin": url.rsplit("/", 1)[0]}
            )
            assert local.status_code == 200
            portless = await http.post(url, json=body, headers={**headers, "Host": "localhost"})
            assert portless.status_code == 200  # port 80 behind a local proxy: no port in Host
