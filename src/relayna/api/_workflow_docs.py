"""The OpenAPI declarations of :func:`relayna.api.workflow_routes` (the shapes
of :func:`~relayna.topology.export_workflow_graph`, the run state and the
replay answer)."""

from __future__ import annotations

from typing import Any

from relayna.api._openapi import Operation, Parameter, ResponseSpec, error_responses, json_content
from relayna.contracts import IDENTIFIER_SCHEMA

__all__ = [
    "cancel_operation",
    "replay_operation",
    "run_operation",
    "stages_operation",
    "topology_operation",
]

_TAGS = ("workflow",)
_S = {"type": "string"}
_S_N = {"type": ["string", "null"]}
_I = {"type": "integer"}
_I_N = {"type": ["integer", "null"]}
_N_N = {"type": ["number", "null"]}
_B = {"type": "boolean"}
_OBJ = {"type": "object"}
_OBJ_N = {"type": ["object", "null"]}
_STRINGS = {"type": "array", "items": _S}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


_PAYLOAD_SCHEMA = _object(name=_S, version=_S, required_fields=_STRINGS, optional_fields=_STRINGS)
_ACTION = {
    "type": "object",
    "required": ["action"],
    "properties": {"action": _S, "description": _S, "payload": _PAYLOAD_SCHEMA},
}
_JOIN = {
    "anyOf": [
        _object(
            expected={"anyOf": [_I, _STRINGS]},
            expected_count=_I,
            key=_S,
            ttl_seconds={"type": "number"},
        ),
        {"type": "null"},
    ]
}
_STAGE = _object(
    id=_S,
    name=_S,
    queue=_S,
    binding_keys=_STRINGS,
    publish_routing_key=_S,
    queue_arguments=_OBJ,
    description=_S_N,
    role=_S_N,
    owner=_S_N,
    tags=_STRINGS,
    sla_ms=_I_N,
    accepted_actions={"type": "array", "items": _ACTION},
    produced_actions={"type": "array", "items": _ACTION},
    allowed_next_stages=_STRINGS,
    terminal=_B,
    timeout_seconds=_N_N,
    max_retries=_I_N,
    retry_delay_ms=_I_N,
    max_inflight=_I_N,
    dedup_key_fields=_STRINGS,
    join=_JOIN,
)
_COMPONENTS = {"WorkflowStage": _STAGE}
_STAGES = {"type": "array", "items": _ref("WorkflowStage")}


def topology_operation() -> Operation:
    graph = _object(
        workflow_exchange=_S,
        status_queue=_S,
        stages=_STAGES,
        entry_routes={
            "type": "array",
            "items": _object(name=_S, routing_key=_S, target_stage=_S),
        },
        edges={
            "type": "array",
            "items": _object(
                source=_S, target=_S, routing_key=_S, kind={"enum": ["route", "transition"]}
            ),
        },
    )
    return Operation(
        summary="The workflow topology: stages, entry routes and edges",
        description=(
            "`kind=route` edges: the source's publish key reaches the target's bindings;"
            " `kind=transition` edges: the target is in the source's `allowed_next_stages`."
        ),
        responses={
            200: ResponseSpec("The topology graph", json_content(graph)),
            **error_responses(404, 503),
        },
        components=_COMPONENTS,
        tags=_TAGS,
        operation_id="workflow_topology",
    )


def stages_operation() -> Operation:
    return Operation(
        summary="The workflow stages with their contracts and policies",
        responses={
            200: ResponseSpec("The stages", json_content(_object(stages=_STAGES))),
            **error_responses(404, 503),
        },
        components=_COMPONENTS,
        tags=_TAGS,
        operation_id="workflow_stages",
    )


_FAN_IN = {
    "anyOf": [
        _object(arrived=_I, expected=_I, branches=_STRINGS, expires_at=_S_N),
        {"type": "null"},
    ]
}
_STAGE_STATE = _object(
    stage=_S,
    status={
        "enum": [
            "queued",
            "running",
            "waiting",
            "retrying",
            "completed",
            "dead_lettered",
            "failed",
            "cancelled",
            "expired",
        ]
    },
    attempts=_I,
    deliveries=_I,
    first_at=_S_N,
    started_at=_S_N,
    updated_at=_S_N,
    completed_at=_S_N,
    last_message_id=_S_N,
    last_error=_OBJ_N,
    queued_message_ids=_STRINGS,
    replays=_I,
    fan_in=_FAN_IN,
)
_REASON = _object(code=_S, stage=_S_N, message=_S, details=_OBJ)
_LINEAGE = _object(
    parent_message_id=_S_N,
    message_id=_S,
    source_stage=_S_N,
    target_stage=_S_N,
    correlation_id=_S_N,
)
_MESSAGE = _object(
    message_id=_S,
    stage=_S_N,
    origin_stage=_S_N,
    parent_message_id=_S_N,
    correlation_id=_S_N,
    action=_S_N,
    state=_S,
    first_at=_S_N,
)


def _suffix(field: str) -> str:
    return "" if field == "task_id" else f".{field}"


def run_operation(id_name: str, field: str) -> Operation:
    suffix = _suffix(field)
    run = _object(
        **{field: _S},
        status=_S,
        current_stage=_S_N,
        current_stages=_STRINGS,
        terminal=_B,
        terminal_stage=_S_N,
        created_at=_S_N,
        updated_at=_S_N,
        completed_at=_S_N,
        last_error=_OBJ_N,
        cancelled_at=_S_N,
        cancel_reason=_S_N,
        stages={"type": "array", "items": _ref("WorkflowStageState")},
    )
    diagnosis = _object(
        **{field: _S}, status=_S, stalled=_B, reasons={"type": "array", "items": _REASON}
    )
    body = _object(
        **{field: _S},
        run=_ref(f"WorkflowRun{suffix}"),
        diagnosis=_ref(f"WorkflowDiagnosis{suffix}"),
        lineage={"type": "array", "items": _LINEAGE},
        messages={"type": "array", "items": _MESSAGE},
    )
    return Operation(
        summary="A workflow run: its state, why it is stalled, its lineage",
        description="404 when no run state exists (never started, or expired).",
        parameters=[Parameter(id_name, "path", IDENTIFIER_SCHEMA, description="the task id")],
        responses={
            200: ResponseSpec("The run", json_content(_ref(f"WorkflowRunDetail{suffix}"))),
            **error_responses(404, 422, 503),
        },
        components={
            f"WorkflowRunDetail{suffix}": body,
            f"WorkflowRun{suffix}": run,
            f"WorkflowDiagnosis{suffix}": diagnosis,
            "WorkflowStageState": _STAGE_STATE,
        },
        tags=_TAGS,
        operation_id=f"workflow_run_{id_name}",
    )


def replay_operation(id_name: str, field: str, *, authorized: bool) -> Operation:
    request = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "stage": {**_S, "description": "the stage to replay; absent: resume the run"},
            "payload": {**_OBJ, "description": "replace the message's payload"},
            "reason": {"type": "string", "minLength": 1, "maxLength": 255},
            "force": {**_B, "description": "replay a running or waiting stage anyway"},
        },
    }
    answer = _object(
        **{field: _S},
        stage=_S,
        message_id=_S,
        previous_message_id=_S_N,
        previous_status=_S_N,
        replayed_at=_S,
        forced=_B,
        reason=_S,
    )
    conflict = _object(detail=_S, error=_S)
    codes = (401, 403) if authorized else ()
    return Operation(
        summary="Replay a stage of a run, or resume a stalled run",
        description=(
            "Publishes for real (broker confirm) with `x-relayna-replay-*` headers."
            " 409 `error`: `stage_running`, `join_completed`, `nothing_to_replay`,"
            " `run_completed`, `nothing_to_resume`."
        ),
        parameters=[Parameter(id_name, "path", IDENTIFIER_SCHEMA, description="the task id")],
        request_body=json_content(request),
        responses={
            200: ResponseSpec("Published", json_content(answer)),
            409: ResponseSpec("Refused by the run's state", json_content(conflict)),
            **{c: ResponseSpec("Not authorized", json_content(_OBJ)) for c in codes},
            **error_responses(404, 413, 415, 422, 503),
        },
        tags=_TAGS,
        operation_id=f"workflow_replay_{id_name}",
    )


def cancel_operation(id_name: str, field: str, *, authorized: bool) -> Operation:
    """``POST {prefix}/runs/{task_id}/cancel``: the task cancel route's shapes."""
    request = {
        "type": "object",
        "additionalProperties": False,
        # null is the same as leaving the reason out
        "properties": {"reason": {"type": ["string", "null"], "maxLength": 500}},
    }
    answer = _object(
        **{field: _S},
        state={"enum": ["requested", "pending"]},
        reason=_S_N,
        status={"type": "null"},
    )
    conflict = _object(detail=_S, error=_S, **{field: _S}, state={"const": "terminal"}, status=_S)
    codes = (401, 403) if authorized else ()
    return Operation(
        summary="Cancel a workflow run (no stage is entered any more; a running stage is cancelled)",
        description=(
            "202 `state`: `requested` (recorded now) or `pending` (an earlier cancel waits)."
            " 409 `error`: `run_ended` (the run completed, or a stage already ended it)."
        ),
        parameters=[Parameter(id_name, "path", IDENTIFIER_SCHEMA, description="the task id")],
        request_body=json_content(request),
        responses={
            202: ResponseSpec("Cancel recorded", json_content(answer)),
            409: ResponseSpec("The run already ended", json_content(conflict)),
            **{c: ResponseSpec("Not authorized", json_content(_OBJ)) for c in codes},
            **error_responses(404, 413, 415, 422, 503),
        },
        tags=_TAGS,
        operation_id=f"workflow_cancel_{id_name}",
    )
