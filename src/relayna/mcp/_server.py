"""``RelaynaMCP``: the relayna runtime as a Model Context Protocol server (official SDK).

Theory of operation: one :class:`RelaynaMCP` wraps an open
:class:`~relayna.api.RelaynaRuntime` and registers handlers on the SDK's
low-level ``Server``. A transport (stdio: :meth:`RelaynaMCP.serve_stdio`;
streamable HTTP: :func:`relayna.mcp.mcp_routes`) feeds it sessions; the SDK
runs each request in the session's task group, and a client's
``notifications/cancelled`` cancels that request's scope — a read in
progress (a graph over many children, ``wait_for_task``) stops at its next
checkpoint and is counted in :attr:`MCPStatistics.cancelled`.

A tool call goes: size → schema → identifier rule → (operational tools)
enabled + bearer token → handler. Every refusal and every relayna error is a
tool result with ``isError`` (the session carries on); resource errors are
JSON-RPC errors. Operational calls are audited: one structured log line on
``relayna.mcp.audit`` and one ``MCPOperationCalled`` observation (with the
task id when there is one) per call, allowed or not.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import anyio
import attrs
import mcp.types as types
import orjson
from mcp.server.lowlevel import Server
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import McpError
from pydantic import AnyUrl
from starlette.requests import Request

from relayna import __version__
from relayna.api import RelaynaRuntime
from relayna.contracts import is_valid_identifier
from relayna.errors import ContractError, RelaynaError, StoreError, ToolDenied
from relayna.mcp import _reads as reads
from relayna.mcp._audit import MCPOperationCalled, audit_log
from relayna.mcp._catalog import (
    OPERATION_TOOLS,
    READ_TOOLS,
    RESOURCE_TEMPLATES,
    RESOURCES,
    WORKFLOW_TOOLS,
    ToolSpec,
    tool_spec,
)
from relayna.mcp._guard import MCPConfig, check_arguments, check_operation
from relayna.mcp._operations import Publish, operate
from relayna.mcp._prompts import list_prompts, render_prompt
from relayna.mcp._resources import read_resource
from relayna.observability import make_observation_sink
from relayna.topology import SharedStatusWorkflowTopology
from relayna.workflow import WorkflowStoreConfig

__all__ = ["INSTRUCTIONS", "MCPStatistics", "Publish", "RelaynaMCP"]

log = logging.getLogger("relayna.mcp")

INSTRUCTIONS = (
    "relayna hands tasks to workers over RabbitMQ and keeps their statuses in Redis. "
    "Start with explain_task(task_id) for any question about one task; search_dlq finds "
    "dead letters; operational tools (replay_dlq_message, retry_failed_task, publish_task, "
    "cancel_task) act for real and may be disabled."
)


@attrs.define
class MCPStatistics:
    """Counters of one server (``RelaynaMCP.statistics()``)."""

    calls: int = 0
    errors: int = 0
    denied: int = 0
    cancelled: int = 0
    operations: int = 0
    in_flight: int = 0


def _tool(spec: ToolSpec) -> types.Tool:
    return types.Tool(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        inputSchema=spec.input_schema,
        outputSchema=spec.output_schema,
        annotations=types.ToolAnnotations(
            title=spec.title,
            readOnlyHint=spec.read_only,
            destructiveHint=spec.destructive,
            idempotentHint=spec.idempotent,
            openWorldHint=spec.open_world,
        ),
    )


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], isError=True
    )


class RelaynaMCP:
    """The MCP server over one open runtime.

    Args:
        runtime: the open runtime (store, broker, DLQ service, graphs).
        config: operations, token, origin rules, limits.
        publish: how ``publish_task`` publishes (``RelaynaClient.publish_task``
            with ``if_exists="error"``); without it the tool is not offered.
        workflow: the stage workers' key prefix and TTLs, for
            ``relayna://workflow/runs/{task_id}`` and ``replay_workflow_stage``
            (offered when the runtime's topology is a workflow topology).
    """

    def __init__(
        self,
        runtime: RelaynaRuntime,
        *,
        config: MCPConfig | None = None,
        publish: Publish | None = None,
        workflow: WorkflowStoreConfig | None = None,
    ) -> None:
        self.runtime = runtime
        self.config = config or MCPConfig()
        self.publish = publish
        self.workflow = workflow
        self.stats = MCPStatistics()
        self.server: Server[Any, Request] = Server(
            self.config.server_name, version=__version__, instructions=INSTRUCTIONS
        )
        self._register()

    def statistics(self) -> MCPStatistics:
        return self.stats

    def tool_specs(self) -> list[ToolSpec]:
        """The tools this server offers (operational ones only when enabled)."""
        specs = list(READ_TOOLS)
        if self.config.operations:
            specs += [s for s in OPERATION_TOOLS if s.name != "publish_task" or self.publish]
            if isinstance(self.runtime.config.topology, SharedStatusWorkflowTopology):
                specs += WORKFLOW_TOOLS
        return specs

    def initialization_options(self) -> Any:
        return self.server.create_initialization_options()

    async def serve_stdio(self) -> None:
        """Serve one session over this process's stdin/stdout until the client closes stdin."""
        async with stdio_server() as (read, write):
            await self.server.run(read, write, self.initialization_options())

    # -- registration ------------------------------------------------------------

    def _register(self) -> None:
        server = self.server

        @server.list_tools()  # type: ignore[no-untyped-call,untyped-decorator]
        async def _list_tools() -> list[types.Tool]:
            return [_tool(spec) for spec in self.tool_specs()]

        @server.call_tool(validate_input=False)  # type: ignore[untyped-decorator]
        async def _call_tool(name: str, arguments: dict[str, Any]) -> Any:
            return await self.call(name, arguments)

        @server.list_resources()  # type: ignore[no-untyped-call,untyped-decorator]
        async def _list_resources() -> list[types.Resource]:
            return [
                types.Resource(
                    uri=AnyUrl(r.uri),
                    name=r.name,
                    title=r.title,
                    description=r.description,
                    mimeType=r.mime_type,
                )
                for r in RESOURCES
            ]

        @server.list_resource_templates()  # type: ignore[no-untyped-call,untyped-decorator]
        async def _list_templates() -> list[types.ResourceTemplate]:
            return [
                types.ResourceTemplate(
                    uriTemplate=r.uri,
                    name=r.name,
                    title=r.title,
                    description=r.description,
                    mimeType=r.mime_type,
                )
                for r in RESOURCE_TEMPLATES
            ]

        @server.read_resource()  # type: ignore[no-untyped-call,untyped-decorator]
        async def _read(uri: AnyUrl) -> Iterable[ReadResourceContents]:
            try:
                text, mime = await read_resource(self.runtime, str(uri), workflow=self.workflow)
            except (ContractError, LookupError) as exc:
                raise McpError(
                    types.ErrorData(code=types.INVALID_PARAMS, message=str(exc))
                ) from None
            except RelaynaError as exc:
                raise McpError(
                    types.ErrorData(code=types.INTERNAL_ERROR, message=str(exc))
                ) from None
            return [ReadResourceContents(content=text, mime_type=mime)]

        @server.list_prompts()  # type: ignore[no-untyped-call,untyped-decorator]
        async def _list_prompts() -> list[types.Prompt]:
            return list_prompts()

        @server.get_prompt()  # type: ignore[no-untyped-call,untyped-decorator]
        async def _get_prompt(name: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
            try:
                return render_prompt(name, arguments or {})
            except (ContractError, LookupError) as exc:
                raise McpError(
                    types.ErrorData(code=types.INVALID_PARAMS, message=str(exc))
                ) from None

    # -- calls ---------------------------------------------------------------------

    def _http_request(self) -> Request | None:
        try:
            request = self.server.request_context.request
        except LookupError:
            return None
        return request if isinstance(request, Request) else None

    async def _progress(self, done: float, total: float | None, message: str | None) -> None:
        ctx = self.server.request_context
        token = ctx.meta.progressToken if ctx.meta is not None else None
        if token is not None:
            await ctx.session.send_progress_notification(
                token, done, total, message, related_request_id=str(ctx.request_id)
            )

    async def call(self, name: str, arguments: Mapping[str, Any]) -> Any:
        """One ``tools/call``: structured content (a dict) or an ``isError`` result."""
        self.stats.calls += 1
        spec = tool_spec(name)
        if spec is None or spec not in self.tool_specs():
            self.stats.errors += 1
            if spec is not None and spec.operational:
                self.stats.denied += 1
                await self._audit(spec, dict(arguments), "denied", "operational tools are disabled")
                return _error(f"tool {name!r} is disabled on this server")
            return _error(f"unknown tool {name!r}")
        self.stats.in_flight += 1
        try:
            check_arguments(spec, arguments, self.config.max_argument_bytes)
            if spec.operational:
                request = self._http_request()
                check_operation(
                    self.config,
                    over_http=request is not None,
                    authorization=request.headers.get("authorization") if request else None,
                )
                self.stats.operations += 1
                try:
                    result = await self._operate(spec.name, dict(arguments))
                except RelaynaError as exc:
                    await self._audit(spec, dict(arguments), "error", str(exc))
                    raise
                await self._audit(spec, dict(arguments), "ok", None)
                return result
            return await self._read(spec.name, dict(arguments))
        except anyio.get_cancelled_exc_class():
            self.stats.cancelled += 1
            raise
        except ToolDenied as exc:
            self.stats.denied += 1
            self.stats.errors += 1
            await self._audit(spec, dict(arguments), "denied", str(exc))
            return _error(str(exc))
        except RelaynaError as exc:
            self.stats.errors += 1
            code = getattr(exc, "code", None)
            return _error(f"{type(exc).__name__}{f' ({code})' if code else ''}: {exc}")
        finally:
            self.stats.in_flight -= 1

    async def _read(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        runtime = self.runtime
        if name == "get_task_status":
            return await reads.status(runtime, args["task_id"])
        if name == "get_task_history":
            return await reads.history(runtime, args["task_id"], args.get("limit", 100))
        if name == "explain_task":
            return await reads.explain_task(runtime, args["task_id"], progress=self._progress)
        if name == "get_execution_graph":
            fmt = args.get("format", "json")
            return await reads.graph(runtime, args["task_id"], fmt=fmt, progress=self._progress)
        if name == "wait_for_task":
            return await reads.wait_for_task(
                runtime,
                args["task_id"],
                wait_seconds=float(args.get("timeout_seconds", 60)),
                poll_interval=self.config.poll_interval,
                progress=self._progress,
            )
        if name == "search_dlq":
            return await reads.search_dlq(runtime, args)
        if name == "list_workers":
            return await reads.workers(runtime)
        return reads.topology(runtime)  # inspect_topology

    async def _operate(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        return await operate(
            self.runtime,
            name,
            args,
            publish=self.publish,
            workflow=self.workflow,
            caller=self._who()["who"],
        )

    # -- audit -----------------------------------------------------------------------

    def _who(self) -> dict[str, Any]:
        request = self._http_request()
        try:
            params = self.server.request_context.session.client_params
        except LookupError:
            params = None
        client = f"{params.clientInfo.name}/{params.clientInfo.version}" if params else None
        if request is not None:
            address = request.client.host if request.client else "unknown"
            return {"who": f"http:{address}", "transport": "http", "client": client}
        return {
            "who": f"stdio:{getpass.getuser()}@pid{os.getpid()}",
            "transport": "stdio",
            "client": client,
        }

    async def _audit(
        self, spec: ToolSpec, args: dict[str, Any], outcome: str, detail: str | None
    ) -> None:
        who = self._who()
        task_id = args.get("task_id")
        dlq_id = args.get("dlq_id")
        if task_id is None and is_valid_identifier(dlq_id) and self.runtime.dlq is not None:
            with contextlib.suppress(RelaynaError):  # the audit line goes out regardless
                record = await self.runtime.dlq.store.get(dlq_id)
                task_id = record.task_id if record is not None else None
        event = MCPOperationCalled(
            tool=spec.name,
            caller=who["who"],
            transport=who["transport"],
            client=who["client"],
            arguments=orjson.dumps(args).decode()[:2000],
            outcome=outcome,
            detail=detail,
            task_id=task_id if is_valid_identifier(task_id) else None,
            dlq_id=dlq_id if is_valid_identifier(dlq_id) else None,
        )
        audit_log(event)
        if self.runtime.observations is None:
            return
        sink = make_observation_sink(self.runtime.observations, self.runtime.feed)
        try:
            await sink.send_batch([event])
        except StoreError as exc:  # the log line above is the audit of record then
            log.warning("MCP audit observation not stored: %s", exc)
