"""The streamable HTTP transport: ``mcp_routes(runtime, ...)`` for a relayna Starlette app.

The SDK's ``StreamableHTTPSessionManager`` owns a task group in which every
session runs; :meth:`MCPRoutes.run` enters it as a relayna component (start
it with ``await tg.start(mcp.run)`` in the app's lifespan or the task group
that serves the app), so sessions end with the app and nothing is left
running. Until it runs, the endpoint answers 503.

Security (the MCP specification's guidance): the SDK's DNS-rebinding
protection checks ``Host`` (421) and ``Origin`` (403) against
:class:`MCPConfig`'s allowlists (loopback by default), and bodies larger
than the argument limit are refused before parsing (413). Operational tools
check the bearer token per call (see :mod:`relayna.mcp._guard`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskStatus
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from relayna.api import RelaynaRuntime, error_response
from relayna.errors import ConfigurationError
from relayna.mcp._guard import MCPConfig
from relayna.mcp._server import Publish, RelaynaMCP
from relayna.workflow import WorkflowStoreConfig

__all__ = ["MCP_ROUTE_NAME", "MCPRoutes", "mcp_routes"]

MCP_ROUTE_NAME = "mcp"
#: Room for the JSON-RPC envelope around the largest accepted arguments.
_ENVELOPE_SLACK = 64 * 1024


class _Endpoint:
    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        self.manager = manager
        self.running = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.running:
            response = error_response(503, "the MCP endpoint is not running (start MCPRoutes.run)")
            await response(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)


class MCPRoutes(list[BaseRoute]):
    """The endpoint's route (a list to splice into ``Starlette(routes=...)``) and its runner.

    Attributes:
        mcp: the :class:`RelaynaMCP` server (``mcp.statistics()``).
    """

    def __init__(self, route: BaseRoute, endpoint: _Endpoint, server: RelaynaMCP) -> None:
        super().__init__([route])
        self._endpoint = endpoint
        self.mcp = server

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the session manager until cancelled; cancelling ends every session.

        Raises:
            RuntimeError: run twice (the SDK's manager runs once).
        """
        async with self._endpoint.manager.run():
            self._endpoint.running = True
            try:
                task_status.started()
                await anyio.sleep_forever()
            finally:
                self._endpoint.running = False

    @asynccontextmanager
    async def running(self) -> AsyncIterator[MCPRoutes]:
        """``async with mcp.running():`` — :meth:`run` for the block (e.g. in a lifespan)."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.run)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()


def mcp_routes(
    runtime: RelaynaRuntime,
    *,
    config: MCPConfig | None = None,
    publish: Publish | None = None,
    workflow: WorkflowStoreConfig | None = None,
    path: str = "/mcp",
) -> MCPRoutes:
    """The MCP streamable HTTP endpoint at ``path`` over ``runtime``.

    ::

        mcp = mcp_routes(runtime, config=MCPConfig())          # read tools only
        app = Starlette(routes=[*mcp, *status_routes()], lifespan=...)
        async with anyio.create_task_group() as tg:
            await tg.start(mcp.run)
            ...serve app...

    Raises:
        ConfigurationError: operational tools enabled without a token.
    """
    config = config or MCPConfig()
    if config.operations and config.token is None:
        raise ConfigurationError("MCP operational tools over HTTP need a bearer token")
    server = RelaynaMCP(runtime, config=config, publish=publish, workflow=workflow)
    manager = StreamableHTTPSessionManager(
        app=server.server,
        security_settings=TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=list(config.allowed_hosts),
            allowed_origins=list(config.allowed_origins),
        ),
        max_request_body_size=config.max_argument_bytes + _ENVELOPE_SLACK,
    )
    endpoint = _Endpoint(manager)
    return MCPRoutes(Route(path, endpoint, name=MCP_ROUTE_NAME), endpoint, server)
