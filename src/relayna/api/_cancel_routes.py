"""``POST /tasks/{task_id}/cancel``: cancel a queued, retrying or running task over HTTP.

=======  ====================================  ====================================
method   path                                  answers
=======  ====================================  ====================================
POST     /tasks/{task_id}/cancel?batch=        202, 401/403 (hook), 404, 409, 413,
                                               415, 422, 503
=======  ====================================  ====================================

Body (optional): ``{"reason": "..."}`` (at most 500 characters, no control
characters). Answers:

* 202 ``{"task_id", "state": "requested" | "pending", "reason", "status": null}``:
  the task ends ``cancelled`` (``pending``: an earlier cancel is already
  waiting; cancelling twice changes nothing);
* 404 ``{"detail"}``: no task with that id (no publish claim, no status);
* 409 ``{"detail", "task_id", "state": "terminal", "status"}``: it already
  ended with ``status``; nothing changed;
* 422: an invalid id, body or reason; 503: the store or broker is down.

``?batch=true`` names a batch id: every item of the batch is cancelled
(a batch has no status of its own, so it is never 404).
"""

from __future__ import annotations

import inspect
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from relayna.api._body import BodyError, read_json_body
from relayna.api._dlq_common import Authorize, parse_bool
from relayna.api._lifespan import RelaynaRuntime
from relayna.api._openapi import (
    Operation,
    Parameter,
    ResponseSpec,
    document,
    error_responses,
    json_content,
)
from relayna.api._route_ids import TASK_CANCEL
from relayna.api._routes import JSONResponse, error_response
from relayna.contracts import IDENTIFIER_SCHEMA, ContractAliasConfig, is_valid_identifier
from relayna.errors import BrokerError, ContractError, StoreError
from relayna.rabbitmq import CancelStore, cancel_task

__all__ = ["cancel_routes"]

_MAX_REASON = 500


def _schemas(id_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The 202 and 409 body schemas (``task_id`` under its HTTP alias)."""
    result = {
        id_name: {"type": "string"},
        "state": {"enum": ["requested", "pending"]},
        "reason": {"type": ["string", "null"]},
        "status": {"type": "null"},
    }
    conflict = {
        "detail": {"type": "string"},
        id_name: {"type": "string"},
        "state": {"const": "terminal"},
        "status": {"type": "string"},
    }
    return (
        {"type": "object", "required": list(result), "properties": result},
        {"type": "object", "required": list(conflict), "properties": conflict},
    )


_BODY = {
    "type": "object",
    # null is the same as leaving the reason out (the reason becomes "cancelled")
    "properties": {"reason": {"type": ["string", "null"], "maxLength": _MAX_REASON}},
    "additionalProperties": False,
}


def _invalid(where: str, field: str, message: str) -> Response:
    return error_response(422, [{"loc": [where, field], "msg": message, "type": "value_error"}])


async def _reason(request: Request) -> str | Response | None:
    try:
        body = await read_json_body(request, required=False)
    except BodyError as exc:
        return error_response(exc.status, exc.detail)
    if body is None:
        return None
    if not isinstance(body, dict) or set(body) - {"reason"}:
        return _invalid("body", "reason", 'expected {"reason": "..."} (or no body)')
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        return _invalid("body", "reason", "must be a string")
    return reason


def cancel_routes(
    *,
    authorize: Authorize | None = None,
    aliases: ContractAliasConfig | None = None,
    state_key: str = "relayna",
    path: str = "/tasks",
) -> list[BaseRoute]:
    """The cancel route (see the module docs), on the app's runtime (store and broker).

    Args:
        authorize: ``authorize(request, route_id)`` before the cancel (route id
            ``tasks.cancel``); return None to allow, or a 401/403 response.
        aliases: the HTTP alias of ``task_id`` names the JSON field.
        state_key: where the runtime lives on ``request.state``.
        path: the prefix of ``{path}/{task_id}/cancel``.
    """
    id_name = (aliases.http_alias_for("task_id") if aliases else None) or "task_id"

    async def cancel(request: Request) -> Response:
        task_id = request.path_params.get("task_id")
        if not is_valid_identifier(task_id):
            return _invalid("path", id_name, "invalid identifier")
        try:
            batch = parse_bool(request.query_params.get("batch"), "batch")
        except ContractError as exc:
            return _invalid("query", "batch", str(exc))
        reason = await _reason(request)
        if isinstance(reason, Response):
            return reason
        if authorize is not None:
            refused = authorize(request, TASK_CANCEL)
            if inspect.isawaitable(refused):
                refused = await refused
            if refused is not None:
                return refused
        runtime: RelaynaRuntime | None = getattr(request.state, state_key, None)
        if runtime is None or runtime.broker is None:
            return error_response(503, "no broker: cancellation needs the runtime's broker")
        cancels = CancelStore(
            runtime.store,
            prefix=runtime.status.config.prefix,
            cluster=runtime.status.config.cluster,
        )
        try:
            result = await cancel_task(
                runtime.broker, cancels, task_id, reason, require_known=not batch
            )
        except ContractError as exc:
            return _invalid("body", "reason", str(exc))
        except StoreError as exc:
            return error_response(503, f"store unavailable: {exc}")
        except BrokerError as exc:
            return error_response(503, f"broker unavailable: {exc}")
        body: dict[str, Any] = result.as_dict()
        body[id_name] = body.pop("task_id")
        if result.state == "unknown":
            return error_response(404, f"No task found for {id_name} '{task_id}'.")
        if result.state == "terminal":
            del body["reason"]
            body["detail"] = f"Task '{task_id}' already ended with status '{result.status}'."
            return JSONResponse(body, status_code=409)
        return JSONResponse(body, status_code=202)

    result_schema, conflict_schema = _schemas(id_name)
    operation = Operation(
        "Cancel a task (queued, waiting for a retry, or running)",
        {
            202: ResponseSpec("Cancel recorded", json_content(result_schema)),
            409: ResponseSpec("The task already ended", json_content(conflict_schema)),
            **error_responses(404, 413, 415, 422, 503, *((401, 403) if authorize else ())),
        },
        parameters=[
            Parameter("task_id", "path", dict(IDENTIFIER_SCHEMA), required=True),
            Parameter("batch", "query", {"type": "boolean"}, description="the id is a batch id"),
        ],
        request_body=json_content(_BODY),
        tags=["tasks"],
        operation_id="cancel_task",
    )
    route = Route(
        f"{path}/{{task_id:relayna_id}}/cancel", cancel, methods=["POST"], name=TASK_CANCEL
    )
    return [document(route, post=operation)]
