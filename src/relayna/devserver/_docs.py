"""The OpenAPI declarations of the dev service's own routes (``/`` and ``POST /tasks``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from relayna.api import Link, Operation, ResponseSpec, error_responses, json_content
from relayna.contracts import IDENTIFIER_SCHEMA
from relayna.devserver._demo import MODES

__all__ = ["page_operation", "submit_links", "submit_operation"]


def _nullable(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"anyOf": [dict(schema), {"type": "null"}]}


_TASK_ID = "$response.body#/task_id"


def submit_links(*, graph: bool, dlq: bool) -> dict[str, Link]:
    """Where an accepted task can be followed: the status routes always, the
    execution graph and dead letters when the app serves them."""
    links = {
        "status": Link("latest_status_task_id", {"path.task_id": _TASK_ID}),
        "events": Link("status_events_task_id", {"path.task_id": _TASK_ID}),
        "history": Link("status_history_task_id", {"query.task_id": _TASK_ID}),
    }
    if graph:
        links["graph"] = Link("execution_graph_task_id", {"path.task_id": _TASK_ID})
    if dlq:
        links["dead_letters"] = Link("dlq_messages", {"query.task_id": _TASK_ID})
    return links


def submit_operation(
    task_types: Sequence[str], links: Mapping[str, Link] | None = None
) -> Operation:
    payload = {  # the demo handler's inputs (check_demo_payload); other keys are kept
        "type": "object",
        "properties": {
            "mode": {"enum": list(MODES)},
            "steps": {"type": "integer", "minimum": 1, "maximum": 20},
            "text": {"type": "string"},
        },
    }
    body = {
        "type": "object",
        "properties": {
            "payload": payload,
            # null means "absent": a generated task id, the default task type.
            "task_id": _nullable(IDENTIFIER_SCHEMA),
            "task_type": _nullable({"enum": list(task_types)}),
            "correlation_id": _nullable(IDENTIFIER_SCHEMA),
            "priority": _nullable({"type": "integer", "minimum": 0, "maximum": 255}),
            "service": _nullable({"type": "string"}),
        },
        "additionalProperties": False,
    }
    accepted = {
        "type": "object",
        "required": ["task_id", "task_type", "status_url", "events_url"],
        "properties": {
            "task_id": IDENTIFIER_SCHEMA,
            "task_type": {"type": "string"},
            "status_url": {"type": "string"},
            "events_url": {"type": "string"},
        },
    }
    return Operation(
        summary="Submit a demo task",
        description=(
            "Publishes a task to the demo topology (task id generated unless given) and"
            " answers where to follow it. The body is read with the contracts' codec:"
            " duplicate keys, NaN and nesting deeper than 64 are refused; integers stay exact."
            " A task id that exists (published before, or with statuses) is 409; a payload"
            " the demo cannot run (an unknown mode, steps outside 1..20) is 422."
        ),
        request_body=json_content(body),
        responses={
            202: ResponseSpec("Published", json_content(accepted), links=links or {}),
            **error_responses(400, 409, 413, 415, 422, 503),
        },
        tags=("dev",),
        operation_id="submit_task",
    )


def page_operation() -> Operation:
    return Operation(
        summary="The dev page: submit tasks and watch them live",
        responses={200: ResponseSpec("The page", {"text/html": {"type": "string"}})},
        tags=("dev",),
        operation_id="dev_page",
    )
