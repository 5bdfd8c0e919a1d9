"""The operational MCP tools, as data: they change the system and are off unless enabled.

Annotations tell the truth (MCP ``ToolAnnotations``): every operational tool
publishes to RabbitMQ (with confirms), so none is read-only, and all are
open-world (they start or stop handlers that reach other systems).

- ``publish_task`` only adds work: not destructive; not idempotent (a second
  call publishes again, or is refused for an existing id).
- ``replay_dlq_message``, ``retry_failed_task``, ``replay_workflow_stage``
  run a handler that already failed part-way: destructive, not idempotent.
- ``cancel_task`` stops a handler part-way (its ``finally`` blocks run):
  destructive; idempotent (a second cancel of the same task changes nothing:
  it answers ``pending`` or ``terminal``).
"""

from __future__ import annotations

from typing import Final

import attrs

from relayna.mcp._specs import (
    IDENTIFIER_SCHEMA,
    TASK_ID,
    ToolSpec,
    input_schema,
    output_schema,
)
from relayna.rabbitmq import CancelStore

__all__ = ["CANCEL_REASON_MAX", "OPERATION_TOOLS", "WORKFLOW_TOOLS"]

#: The cancel path's reason limit (``CancelStore.max_reason_length``; the route's too).
_REASON_MAX = attrs.fields(CancelStore).max_reason_length.default
assert isinstance(_REASON_MAX, int)
CANCEL_REASON_MAX: Final[int] = _REASON_MAX

OPERATION_TOOLS: Final = (
    ToolSpec(
        name="publish_task",
        title="Publish a task",
        description=(
            "Publish a new task of a type the service routes; returns after the broker "
            "confirm, with the task id (a new one unless given). A task_id that already "
            "exists (published, or with statuses) is refused and nothing is published."
        ),
        input_schema=input_schema(
            {
                "task_type": {"type": "string", "minLength": 1, "maxLength": 255},
                "payload": {"type": "object", "default": {}},
                "task_id": IDENTIFIER_SCHEMA,
                "correlation_id": IDENTIFIER_SCHEMA,
                "priority": {"type": "integer", "minimum": 0, "maximum": 255},
            },
            ("task_type",),
        ),
        output_schema=output_schema(
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
        input_schema=input_schema(
            {
                "dlq_id": IDENTIFIER_SCHEMA,
                "force": {"type": "boolean", "default": False},
                "direct": {"type": "boolean", "default": False},
            },
            ("dlq_id",),
        ),
        output_schema=output_schema(
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
        input_schema=input_schema(
            {
                **TASK_ID,
                "dlq_id": IDENTIFIER_SCHEMA,
                "force": {"type": "boolean", "default": False},
            },
            ("task_id",),
        ),
        output_schema=output_schema(
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
    ToolSpec(
        name="cancel_task",
        title="Cancel a task",
        description=(
            "Cancel a queued, retrying or running task (or, with batch=true, every item of a "
            "batch id), through the same path as POST /tasks/{task_id}/cancel. Answers the "
            "state: requested (recorded now; the task ends cancelled), pending (an earlier "
            "cancel is waiting; nothing new), or terminal (it already ended with `status`; "
            "nothing changed). An unknown task id is an error result. With workflow=true it "
            "cancels the workflow run of task_id instead (POST /workflow/runs/{task_id}/cancel:"
            " no further stage is entered, a running stage is cancelled); terminal then also "
            "means the run completed."
        ),
        input_schema=input_schema(
            {
                **TASK_ID,
                "reason": {"type": "string", "minLength": 1, "maxLength": CANCEL_REASON_MAX},
                "batch": {"type": "boolean", "default": False},
                "workflow": {"type": "boolean", "default": False},
            },
            ("task_id",),
        ),
        output_schema=output_schema(
            {
                "task_id": {"type": "string"},
                "state": {"enum": ["requested", "pending", "terminal"]},
                "reason": {"type": ["string", "null"]},
                "status": {"type": ["string", "null"]},
            },
            ("task_id", "state", "reason", "status"),
        ),
        read_only=False,
        destructive=True,
        idempotent=True,
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
        input_schema=input_schema(
            {
                **TASK_ID,
                "stage": IDENTIFIER_SCHEMA,
                "payload": {"type": "object"},
                "reason": {"type": "string", "minLength": 1, "maxLength": 255, "default": "replay"},
                "force": {"type": "boolean", "default": False},
            },
            ("task_id", "stage"),
        ),
        output_schema=output_schema(
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
