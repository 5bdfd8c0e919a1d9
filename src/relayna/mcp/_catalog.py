"""What the MCP server offers, as data: tools (schemas + annotations), resources, prompts.

Nothing here does I/O. The JSON schemas carry the same input rules as the
HTTP routes (the identifier rule, the DLQ listing limits), so a client sees
them before it calls; the handlers check them again (a schema is advice to a
client, not a guarantee).

Annotations tell the truth (MCP ``ToolAnnotations``):

- read tools read relayna's own stores: ``readOnlyHint`` true, idempotent,
  ``openWorldHint`` false (a closed domain);
- operational tools: see :mod:`relayna.mcp._catalog_ops`.
"""

from __future__ import annotations

from typing import Final

from relayna.dlq import MAX_LIMIT as DLQ_MAX_LIMIT
from relayna.dlq import STATES as DLQ_STATES
from relayna.mcp._catalog_ops import OPERATION_TOOLS, WORKFLOW_TOOLS
from relayna.mcp._specs import (
    IDENTIFIER_SCHEMA,
    JSON_MIME,
    MERMAID_MIME,
    NULLABLE_OBJECT,
    OBJECT,
    TASK_ID,
    PromptSpec,
    ResourceSpec,
    ToolSpec,
    input_schema,
    output_schema,
)

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

_LIMIT = {"type": "integer", "minimum": 1, "maximum": DLQ_MAX_LIMIT, "default": 50}

READ_TOOLS: Final = (
    ToolSpec(
        name="get_task_status",
        title="Task status",
        description="The latest status event of a task (null when the store has none).",
        input_schema=input_schema(TASK_ID, ("task_id",)),
        output_schema=output_schema(
            {
                "task_id": {"type": "string"},
                "found": {"type": "boolean"},
                "event": NULLABLE_OBJECT,
            },
            ("task_id", "found", "event"),
        ),
        read_only=True,
    ),
    ToolSpec(
        name="get_task_history",
        title="Task status history",
        description="A task's status events, oldest first (at most `limit`).",
        input_schema=input_schema(
            {
                **TASK_ID,
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            },
            ("task_id",),
        ),
        output_schema=output_schema(
            {
                "task_id": {"type": "string"},
                "count": {"type": "integer"},
                "events": {"type": "array", "items": OBJECT},
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
        input_schema=input_schema(TASK_ID, ("task_id",)),
        output_schema=output_schema(
            {
                "task_id": {"type": "string"},
                "found": {"type": "boolean"},
                "state": {"type": "string"},
                "summary": {"type": "string"},
                "latest_status": NULLABLE_OBJECT,
                "attempts": {"type": "integer"},
                "retries": {"type": "integer"},
                "dead_letters": {"type": "array", "items": OBJECT},
                "graph": NULLABLE_OBJECT,
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
        input_schema=input_schema(
            {**TASK_ID, "format": {"enum": ["json", "mermaid"], "default": "json"}},
            ("task_id",),
        ),
        output_schema=output_schema(
            {
                "task_id": {"type": "string"},
                "found": {"type": "boolean"},
                "graph": NULLABLE_OBJECT,
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
        input_schema=input_schema(
            {
                **TASK_ID,
                "timeout_seconds": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": 3600,
                    "default": 60,
                },
            },
            ("task_id",),
        ),
        output_schema=output_schema(
            {
                "task_id": {"type": "string"},
                "terminal": {"type": "boolean"},
                "event": NULLABLE_OBJECT,
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
        input_schema=input_schema(
            {
                "queue_name": {"type": "string", "minLength": 1, "maxLength": 255},
                "task_id": IDENTIFIER_SCHEMA,
                "reason": {"type": "string", "minLength": 1, "maxLength": 255},
                "state": {"enum": sorted(DLQ_STATES)},
                "cursor": {"type": "string", "minLength": 1, "maxLength": 512},
                "limit": _LIMIT,
            }
        ),
        output_schema=output_schema(
            {
                "items": {"type": "array", "items": OBJECT},
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
        input_schema=input_schema({}),
        output_schema=output_schema(
            {"reported_at": {"type": "string"}, "workers": {"type": "array", "items": OBJECT}},
            ("reported_at", "workers"),
        ),
        read_only=True,
    ),
    ToolSpec(
        name="inspect_topology",
        title="Topology",
        description="The service's topology: kind, exchanges, queues, routing, stages.",
        input_schema=input_schema({}),
        output_schema=output_schema({"topology": NULLABLE_OBJECT}, ("topology",)),
        read_only=True,
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
