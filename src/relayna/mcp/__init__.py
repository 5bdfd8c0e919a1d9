"""relayna's Model Context Protocol server (the official ``mcp`` SDK; ``pip install relayna[mcp]``).

Tools, resources and prompts over an open runtime, served over stdio
(``relayna mcp --app module:attr``) or streamable HTTP (:func:`mcp_routes`)::

    mcp = mcp_routes(runtime, config=MCPConfig(operations=True, token=secret))
    app = Starlette(routes=[*mcp, ...])
    await tg.start(mcp.run)
"""

from relayna.mcp._audit import AUDIT_LOGGER, MCPOperationCalled
from relayna.mcp._catalog import (
    OPERATION_TOOLS,
    PROMPTS,
    READ_TOOLS,
    RESOURCE_TEMPLATES,
    RESOURCES,
    WORKFLOW_TOOLS,
    PromptSpec,
    ResourceSpec,
    ToolSpec,
)
from relayna.mcp._explain import TERMINAL_STATUSES, explain
from relayna.mcp._guard import MCPConfig, bearer_token, check_arguments, token_matches
from relayna.mcp._http import MCP_ROUTE_NAME, MCPRoutes, mcp_routes
from relayna.mcp._resources import parse_uri
from relayna.mcp._server import INSTRUCTIONS, MCPStatistics, Publish, RelaynaMCP

__all__ = [
    "AUDIT_LOGGER",
    "INSTRUCTIONS",
    "MCP_ROUTE_NAME",
    "OPERATION_TOOLS",
    "PROMPTS",
    "READ_TOOLS",
    "RESOURCES",
    "RESOURCE_TEMPLATES",
    "TERMINAL_STATUSES",
    "WORKFLOW_TOOLS",
    "MCPConfig",
    "MCPOperationCalled",
    "MCPRoutes",
    "MCPStatistics",
    "PromptSpec",
    "Publish",
    "RelaynaMCP",
    "ResourceSpec",
    "ToolSpec",
    "bearer_token",
    "check_arguments",
    "explain",
    "mcp_routes",
    "parse_uri",
    "token_matches",
]
