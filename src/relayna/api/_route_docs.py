"""The OpenAPI declarations of :func:`relayna.api.status_routes`.

Kept next to the routes so that a change of a route's answers is a change of
its declaration (schemathesis runs the generated document against a live
server and fails on any answer the declaration does not list).
"""

from __future__ import annotations

from typing import Any

from relayna.api._history import MAX_LIMIT, MAX_SCAN, MAX_SECONDS
from relayna.api._openapi import Operation, Parameter, ResponseSpec, error_responses, json_content
from relayna.contracts import (
    IDENTIFIER_SCHEMA,
    ContractAliasConfig,
    StatusEvent,
    json_schema,
    public_output_aliases,
)

__all__ = ["SSE_EVENT_SCHEMA", "history_operation", "latest_operation", "stream_operation"]

_INT_DIGITS = 10**18 - 1  # /history parses at most 18 digits
_BOOL_TEXT = r"^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|1|0)$"
_TAGS = ("status",)

#: One event of the ``text/event-stream`` answer (OpenAPI 3.1 reads the schema of
#: an event-stream media type per event, as the WHATWG parser yields them):
#: ``ready`` first, then ``status`` events (``id`` = the event id, ``data`` = the
#: status event as JSON), ``resync`` when ``Last-Event-ID`` is unknown.
SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["ready", "status", "resync"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0},
    },
}


def _event_schema(aliases: ContractAliasConfig | None) -> tuple[str, dict[str, Any]]:
    """(component name, schema) of a status event as the routes return it."""
    schema = json_schema(StatusEvent, required=("event_id", "correlation_id"))
    if aliases is None:
        return "StatusEvent", schema
    properties = public_output_aliases(schema["properties"], aliases)
    required = sorted(
        next(iter(public_output_aliases({r: 0}, aliases))) for r in schema["required"]
    )
    name = "StatusEvent." + ".".join(sorted(set(properties) - set(schema["properties"])))
    return name, {**schema, "properties": properties, "required": required, "title": name}


def _id_parameter(id_name: str) -> Parameter:
    return Parameter(id_name, "path", IDENTIFIER_SCHEMA, description="the task id")


def latest_operation(id_name: str, aliases: ContractAliasConfig | None) -> Operation:
    name, event = _event_schema(aliases)
    body = {
        "type": "object",
        "required": [id_name, "event"],
        "properties": {
            id_name: IDENTIFIER_SCHEMA,
            "event": {"$ref": f"#/components/schemas/{name}"},
        },
    }
    return Operation(
        summary="The latest status of a task",
        parameters=[_id_parameter(id_name)],
        responses={
            200: ResponseSpec("The newest stored status event", json_content(body)),
            **error_responses(404, 422, 503),
        },
        components={name: event},
        tags=_TAGS,
        operation_id=f"latest_status_{id_name}",
    )


def stream_operation(
    id_name: str, aliases: ContractAliasConfig | None, *, max_wait: float = 300.0
) -> Operation:
    name, event = _event_schema(aliases)
    snapshot = {
        "type": "object",
        "required": [id_name, "count", "terminal", "events"],
        "properties": {
            id_name: IDENTIFIER_SCHEMA,
            "count": {"type": "integer", "minimum": 0},
            "terminal": {"type": "boolean"},
            "events": {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}},
        },
    }
    return Operation(
        summary="Follow a task's status events (Server-Sent Events)",
        description=(
            "`text/event-stream`: `ready`, the stored history (after `Last-Event-ID` when"
            " given, with one `resync` event when it is unknown), then live events, until a"
            " terminal status. `Accept: application/json` answers a JSON snapshot instead."
            " A resume after the terminal event answers 204. Without `wait` a task with no"
            " status yet is waited for as long as the stream lives; with `wait` the answer"
            " is held until its first status and is 404 when none came in that time."
        ),
        parameters=[
            _id_parameter(id_name),
            Parameter("Last-Event-ID", "header", description="resume after this event id"),
            Parameter(
                "last_event_id", "query", description="the same, for clients without headers"
            ),
            Parameter(
                "wait",
                "query",
                {"type": "number", "minimum": 0},
                description=(
                    "seconds to wait for a task with no status at all, then 404"
                    f" (clamped to {max_wait:g}; not a number >= 0: 422)"
                ),
            ),
        ],
        responses={
            200: ResponseSpec(
                "The event stream, or a JSON snapshot for Accept: application/json",
                {"text/event-stream": SSE_EVENT_SCHEMA, **json_content(snapshot)},
            ),
            204: ResponseSpec("Resumed after the terminal event: nothing more will come"),
            **error_responses(404, 422, 503),
            429: ResponseSpec(
                "Too many concurrent streams from this client",
                json_content({"$ref": "#/components/schemas/Error"}),
                headers={"Retry-After": {"type": "integer"}},
            ),
        },
        components={name: event},
        tags=_TAGS,
        operation_id=f"status_events_{id_name}",
    )


def history_operation(id_name: str, aliases: ContractAliasConfig | None) -> Operation:
    name, event = _event_schema(aliases)
    body = {
        "type": "object",
        "required": ["count", "events", "stopped_by", "scanned", "skipped"],
        "properties": {
            id_name: IDENTIFIER_SCHEMA,
            "count": {"type": "integer", "minimum": 0},
            "events": {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}},
            "stopped_by": {
                "enum": ["terminal", "limit", "max_scan", "idle", "max_seconds", "consumer_ended"]
            },
            "scanned": {"type": "integer", "minimum": 0},
            "skipped": {"type": "integer", "minimum": 0},
        },
    }
    ids = [Parameter(id_name, "query", IDENTIFIER_SCHEMA, description="only this task's events")]
    if id_name != "task_id":
        ids.append(Parameter("task_id", "query", IDENTIFIER_SCHEMA, description="the same"))
    counts = {"type": "integer", "minimum": 1, "maximum": _INT_DIGITS}
    return Operation(
        summary="Replay status events from the status stream",
        description=(
            "A bounded replay of the RabbitMQ status stream (not Redis). At least one of"
            f" {id_name}, max_seconds or max_scan is required (else 422)."
        ),
        parameters=[
            *ids,
            Parameter(
                "start_offset",
                "query",
                description=(
                    "first (default), last, next, an integer 0..2**63-1, or an ISO-8601"
                    " time from 1970-01-01T00:00:00Z on (naive = UTC); else 422"
                ),
            ),
            Parameter(
                "max_seconds",
                "query",
                {"type": "number", "exclusiveMinimum": 0},
                description=f"time budget in seconds (default 5, clamped to {MAX_SECONDS:g})",
            ),
            Parameter("max_scan", "query", counts, description=f"clamped to {MAX_SCAN}"),
            Parameter("limit", "query", counts, description=f"clamped to {MAX_LIMIT}"),
            Parameter("stop_on_terminal", "query", {"type": "string", "pattern": _BOOL_TEXT}),
        ],
        responses={
            200: ResponseSpec(
                "The events, oldest first, and why the replay stopped", json_content(body)
            ),
            **error_responses(400, 422, 503),
        },
        components={name: event},
        tags=_TAGS,
        operation_id=f"status_history_{id_name}",
    )
