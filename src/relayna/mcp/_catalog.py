"""What the MCP server offers, as data: tools (schemas + annotations), resources, prompts.

Nothing here does I/O. The JSON schemas carry the same input rules as the
HTTP routes (the identifier rule, the DLQ listing limits), so a client sees
them before it calls; the handlers check them again (a schema is advice to a
client, not a guarantee).

Annotations tell the truth (MCP ``ToolAnnotations``):

- read tools read relayna's own stores: ``readOnlyHint`` true, idempotent,
  ``openWorldHint`` false (a closed domain);
- operational tools publish to RabbitMQ (with confirms): not read-only, not
  idempotent (a second call publishes again, or is refused), and open-world
  (they start handlers that reach other systems). Replaying a dead letter
  or retrying a failed task runs a handler that already failed part-way, so
  those two are ``destructiveHint`` true; publishing a new task only adds
  work (``destructiveHint`` false).
"""

from __future__ import annotations

from typing import Any, Final

import attrs

from relayna.contracts import IDENTIFIER_MAX_LENGTH
from relayna.dlq import MAX_LIMIT as DLQ_MAX_LIMIT
from relayna.dlq import STATES as DLQ_STATES

__all__ = [
    "IDENTIFIER_SCHEMA",
    "OPERATION_TOOLS",
    "PROMPTS",
    "READ_TOOLS",
    "RESOURCES",
    "RESOURCE_TEMPLATES",
    "WORKFLOW_TOOLS",
    "JSON_MIME",
    "MERMAID_MIME",
    "PromptSpec",
    "ResourceSpec",
    "ToolSpec",
    "tool_spec",
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
_OBJECT: Final[dict[str, Any]] = {"type": "object"}
_NULLABLE_OBJECT: Final[dict[str, Any]] = {"type": ["object", "null"]}


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


def _input(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def _output(properties: dict[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


_TASK_ID = {"task_id": {**IDENTIFIER_SCHEMA, "description": "the task's id"}}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": DLQ_MAX_LIMIT, "default": 50}

READ_TOOLS: Final = (
    ToolSpec(
        name="get_task_status",
        title="Task status",
        description="The latest status event of a task (null when the store has none).",
        input_schema=_input(_TASK_ID, ("task_id",)),
        output_schema=_output(
            {
                "task_id": {"type": "string"},
                "found": {"type": "boolean"},
                "event": _NULLABLE_OBJECT,
            },
            ("task_id", "found", "event"),
        ),
        read_only=True,
    ),
    ToolSpec(
        name="get_task_history",
        title="Task status history",
        description="A task's status events, oldest first (at most `limit`).",
        input_schema=_input(
            {
                **_TASK_ID,
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            },
            ("task_id",),
        ),
        output_schema=_output(
            {
                "task_id": {"type": "string"},
                "count": {"type": "integer"},
                "events": {"type": "array", "items": _OBJECT},
            },
            ("task_id", "count", "events"),
        ),
        read_only=True,
    ),
    ToolSpec(
        name="explain_task",
        title="Explain a task",
        description=(
            "Why a task is where it is: its latest status, attempts and retries, dead letters "
            "with their diagnosis, the execution graph's summary, and what to do next, "
            "summarised for a human. Reports progress while it reads a graph with many children."
        ),
        input_schema=_input(_TASK_ID, ("task_id",)),
        output_schema=_output(
            {
                "task_id": {"type": "string"},
                "found": {"type": "boolean"},
                "state": {"type": "string"},
                "summary": {"type": "string"},
                "latest_status": _NULLABLE_OBJECT,
                "attempts": {"type": "integer"},
                "retries": {"type": "integer"},
                "dead_letters": {"type": "array", "items": _OBJECT},
                "graph": _NULLABLE_OBJECT,
                "next_steps": {"type": "array", "items": {"type": "string"}},
            },
            ("task_id", "found", "state", "summary", "next_steps"),
        ),
        read_only=True,
    ),
    ToolSpec(
        name="get_execution_graph",
        title="Execution graph",
        description=(
            "The task's execution graph (nodes, edges, summary), or its Mermaid text with "
            'format="mermaid". Reports progress over the children it reads.'
        ),
        input_schema=_input(
            {**_TASK_ID, "format": {"enum": ["json", "mermaid"], "default": "json"}},
            ("task_id",),
        ),
        output_schema=_output(
            {
                "task_id": {"type": "string"},
                "found": {"type": "boolean"},
                "graph": _NULLABLE_OBJECT,
                "mermaid": {"type": ["string", "null"]},
            },
            ("task_id", "found"),
        ),
        read_only=True,
    ),
    ToolSpec(
        name="wait_for_task",
        title="Wait for a task to finish",
        description=(
            "Wait until the task reaches a terminal status (completed or failed) or "
            "`timeout_seconds` pass; reports each new status as progress. Cancel it at any time."
        ),
        input_schema=_input(
            {
                **_TASK_ID,
                "timeout_seconds": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": 3600,
                    "default": 60,
                },
            },
            ("task_id",),
        ),
        output_schema=_output(
            {
                "task_id": {"type": "string"},
                "terminal": {"type": "boolean"},
                "event": _NULLABLE_OBJECT,
            },
            ("task_id", "terminal", "event"),
        ),
        read_only=True,
    ),
    ToolSpec(
        name="search_dlq",
        title="Search dead letters",
        description=(
            "Dead-letter records, newest first, filtered by queue, task, reason or state "
            "(the /dlq/messages listing)."
        ),
        input_schema=_input(
            {
                "queue_name": {"type": "string", "minLength": 1, "maxLength": 255},
                "task_id": IDENTIFIER_SCHEMA,
                "reason": {"type": "string", "minLength": 1, "maxLength": 255},
                "state": {"enum": sorted(DLQ_STATES)},
                "cursor": {"type": "string", "minLength": 1, "maxLength": 512},
                "limit": _LIMIT,
            }
        ),
        output_schema=_output(
            {
                "items": {"type": "array", "items": _OBJECT},
                "next_cursor": {"type": ["string", "null"]},
            },
            ("items", "next_cursor"),
        ),
        read_only=True,
    ),
    ToolSpec(
        name="list_workers",
        title="Workers",
        description="The live workers from their heartbeats (the /relayna/health/workers document).",
        input_schema=_input({}),
        output_schema=_output(
            {"reported_at": {"type": "string"}, "workers": {"type": "array", "items": _OBJECT}},
            ("reported_at", "workers"),
        ),
        read_only=True,
    ),
    ToolSpec(
        name="inspect_topology",
        title="Topology",
        description="The service's topology: kind, exchanges, queues, routing, stages.",
        input_schema=_input({}),
        output_schema=_output({"topology": _NULLABLE_OBJECT}, ("topology",)),
        read_only=True,
    ),
)

OPERATION_TOOLS: Final = (
    ToolSpec(
        name="publish_task",
        title="Publish a task",
        description=(
            "Publish a new task of a type the service routes; returns after the broker "
            "confirm, with the task id (a new one unless given). A task_id that already "
            "exists (published, or with statuses) is refused and nothing is published."
        ),
        input_schema=_input(
            {
                "task_type": {"type": "string", "minLength": 1, "maxLength": 255},
                "payload": {"type": "object", "default": {}},
                "task_id": IDENTIFIER_SCHEMA,
                "correlation_id": IDENTIFIER_SCHEMA,
                "priority": {"type": "integer", "minimum": 0, "maximum": 255},
            },
            ("task_type",),
        ),
        output_schema=_output(
            {
                "task_id": {"type": "string"},
                "task_type": {"type": "string"},
                "published": {"type": "boolean"},
            },
            ("task_id", "task_type", "published"),
        ),
        read_only=False,
        destructive=False,
        idempotent=False,
        open_world=True,
        operational=True,
    ),
    ToolSpec(
        name="replay_dlq_message",
        title="Replay a dead letter",
        description=(
            "Republish a dead-lettered message's original bytes (to its retry queue, or its "
            "source queue with direct=true). Refused while another replay runs or after a "
            "replay unless force=true."
        ),
        input_schema=_input(
            {
                "dlq_id": IDENTIFIER_SCHEMA,
                "force": {"type": "boolean", "default": False},
                "direct": {"type": "boolean", "default": False},
            },
            ("dlq_id",),
        ),
        output_schema=_output(
            {
                "dlq_id": {"type": "string"},
                "target_queue_name": {"type": "string"},
                "state": {"type": "string"},
                "replayed_at": {"type": "string"},
                "replay_count": {"type": "integer"},
                "forced": {"type": "boolean"},
            },
            ("dlq_id", "target_queue_name", "state", "replayed_at", "replay_count", "forced"),
        ),
        read_only=False,
        destructive=True,
        idempotent=False,
        open_world=True,
        operational=True,
    ),
    ToolSpec(
        name="retry_failed_task",
        title="Retry a failed task",
        description=(
            "Publish a dead-lettered task again to its source queue (its newest dead letter, "
            "or the one named by dlq_id). Refused after an earlier retry unless force=true."
        ),
        input_schema=_input(
            {
                **_TASK_ID,
                "dlq_id": IDENTIFIER_SCHEMA,
                "force": {"type": "boolean", "default": False},
            },
            ("task_id",),
        ),
        output_schema=_output(
            {
                "failure_id": {"type": "string"},
                "target_queue": {"type": "string"},
                "retry_status": {"type": "string"},
                "retried_at": {"type": "string"},
                "retried_by": {"type": "string"},
                "retried_task_id": {"type": ["string", "null"]},
            },
            ("failure_id", "target_queue", "retry_status", "retried_at"),
        ),
        read_only=False,
        destructive=True,
        idempotent=False,
        open_world=True,
        operational=True,
    ),
)


WORKFLOW_TOOLS: Final = (
    ToolSpec(
        name="replay_workflow_stage",
        title="Replay a workflow stage",
        description=(
            "Publish the stage's last message again (or one built from `payload`) into a "
            "workflow run's stage, with replay headers. Refused while the stage runs (unless "
            "force=true), for a completed join, or when the stage never received a message "
            "and no payload is given."
        ),
        input_schema=_input(
            {
                **_TASK_ID,
                "stage": IDENTIFIER_SCHEMA,
                "payload": {"type": "object"},
                "reason": {"type": "string", "minLength": 1, "maxLength": 255, "default": "replay"},
                "force": {"type": "boolean", "default": False},
            },
            ("task_id", "stage"),
        ),
        output_schema=_output(
            {
                "task_id": {"type": "string"},
                "stage": {"type": "string"},
                "message_id": {"type": "string"},
                "previous_message_id": {"type": ["string", "null"]},
                "previous_status": {"type": ["string", "null"]},
                "replayed_at": {"type": "string"},
                "forced": {"type": "boolean"},
                "reason": {"type": "string"},
            },
            ("task_id", "stage", "message_id", "replayed_at", "forced"),
        ),
        read_only=False,
        destructive=True,
        idempotent=False,
        open_world=True,
        operational=True,
    ),
)


def tool_spec(name: str) -> ToolSpec | None:
    """The spec of a tool by name (read or operational)."""
    for spec in (*READ_TOOLS, *OPERATION_TOOLS, *WORKFLOW_TOOLS):
        if spec.name == name:
            return spec
    return None


RESOURCES: Final = (
    ResourceSpec("relayna://topology", "topology", "Topology", "The service's topology summary."),
    ResourceSpec(
        "relayna://dlq/queues", "dlq-queues", "DLQ queues", "Indexed DLQ queues with depths."
    ),
    ResourceSpec("relayna://workers", "workers", "Workers", "Live workers from their heartbeats."),
)

RESOURCE_TEMPLATES: Final = (
    ResourceSpec(
        "relayna://tasks/{task_id}/status", "task-status", "Task status", "Latest status event."
    ),
    ResourceSpec(
        "relayna://tasks/{task_id}/history", "task-history", "Task history", "Status events."
    ),
    ResourceSpec(
        "relayna://tasks/{task_id}/graph", "task-graph", "Execution graph", "Graph as JSON."
    ),
    ResourceSpec(
        "relayna://tasks/{task_id}/graph.mermaid",
        "task-graph-mermaid",
        "Execution graph (Mermaid)",
        "Graph as a Mermaid flowchart.",
        MERMAID_MIME,
    ),
    ResourceSpec(
        "relayna://dlq/messages/{dlq_id}", "dlq-message", "Dead letter", "A DLQ record's detail."
    ),
    ResourceSpec(
        "relayna://workflow/runs/{task_id}",
        "workflow-run",
        "Workflow run",
        "A workflow run's stages, diagnosis and lineage (workflow topologies).",
    ),
)

PROMPTS: Final = (
    PromptSpec(
        "investigate_failed_task",
        "Investigate a failed task",
        "Find out why a task failed and whether to replay it.",
        (("task_id", "the failed task's id"),),
    ),
    PromptSpec(
        "summarise_dlq",
        "Summarise a DLQ",
        "Group a dead-letter queue's records by reason and propose actions.",
        (("queue", "the DLQ queue name"),),
    ),
)
