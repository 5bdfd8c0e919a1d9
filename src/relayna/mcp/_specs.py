"""The shapes of the MCP catalog: tool, resource and prompt specs and schema helpers.

Pure data; :mod:`relayna.mcp._catalog` (read tools, resources, prompts) and
:mod:`relayna.mcp._catalog_ops` (operational tools) are built from these.
"""

from __future__ import annotations

from typing import Any, Final

import attrs

from relayna.contracts import IDENTIFIER_MAX_LENGTH

__all__ = [
    "IDENTIFIER_SCHEMA",
    "JSON_MIME",
    "MERMAID_MIME",
    "NULLABLE_OBJECT",
    "OBJECT",
    "TASK_ID",
    "PromptSpec",
    "ResourceSpec",
    "ToolSpec",
    "input_schema",
    "output_schema",
]

JSON_MIME: Final = "application/json"
MERMAID_MIME: Final = "text/vnd.mermaid"
#: The identifier rule of relayna.contracts as a JSON-schema pattern (``..`` is
#: checked by the handlers: JSON-schema regexes have no lookahead everywhere).
IDENTIFIER_SCHEMA: Final[dict[str, Any]] = {
    "type": "string",
    "minLength": 1,
    "maxLength": IDENTIFIER_MAX_LENGTH,
    "pattern": r"^[A-Za-z0-9_:@/+=\-]([A-Za-z0-9._:@/+=\-]*[A-Za-z0-9_:@/+=\-])?$",
}
OBJECT: Final[dict[str, Any]] = {"type": "object"}
NULLABLE_OBJECT: Final[dict[str, Any]] = {"type": ["object", "null"]}


@attrs.frozen
class ToolSpec:
    """One tool: its schemas, its annotations, and whether it is operational."""

    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    read_only: bool
    destructive: bool = False
    idempotent: bool = True
    open_world: bool = False
    #: Operational tools are off unless the server enables them (and, over
    #: HTTP, the caller presents the bearer token).
    operational: bool = False


@attrs.frozen
class ResourceSpec:
    uri: str  # a URI or a URI template (RFC 6570 level 1)
    name: str
    title: str
    description: str
    mime_type: str = JSON_MIME


@attrs.frozen
class PromptSpec:
    name: str
    title: str
    description: str
    arguments: tuple[tuple[str, str], ...]  # (name, description), all required


def input_schema(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def output_schema(properties: dict[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


TASK_ID: Final[dict[str, Any]] = {"task_id": {**IDENTIFIER_SCHEMA, "description": "the task's id"}}
