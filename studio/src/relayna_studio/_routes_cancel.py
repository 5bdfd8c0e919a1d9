"""``POST /studio/services/{service_id}/tasks/{task_id}/cancel``: cancel a task of a
registered service through relayna's ``POST /tasks/{task_id}/cancel``; and
``POST /studio/services/{service_id}/workflow/runs/{task_id}/cancel``: cancel a
workflow run through ``POST /workflow/runs/{task_id}/cancel`` (capability
``workflow.cancel``, audited as ``workflow.cancel``; the same body and answers, but
a run that ended is the service's 409 with its own code ``run_ended``).

Operator role, audited (action ``task.cancel``, target ``{service_id}/{task_id}``) like
the DLQ replay route. The service's capability document must list ``tasks.cancel``
(otherwise 501 ``unsupported_route`` without a call). Body (optional):
``{"reason": "..."}``, at most 500 characters, checked before the call.

Answers the service's own: 202 ``{service_id, task_id, state: requested | pending,
reason, status: null}``; 409 ``already_terminal`` when the task already ended (the
service's detail names its status; nothing changed); 422 from the service as it came;
404 ``upstream_not_found`` for a task the service does not know.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from relayna.contracts import is_valid_identifier
from relayna_studio._errors import UpstreamError
from relayna_studio._federation import Federation, task_path
from relayna_studio._http import Ctx, HTTPProblem, JSONResponse, read_json, studio_route
from relayna_studio._models import validate_service_id
from relayna_studio._task_ref import build_task_ref

__all__ = ["CANCEL_ROUTE_ID", "RUN_CANCEL_ROUTE_ID", "cancel_routes"]

#: The capability id of relayna's cancel route.
CANCEL_ROUTE_ID = "tasks.cancel"
#: The capability id of relayna's workflow run cancel route.
RUN_CANCEL_ROUTE_ID = "workflow.cancel"
_MAX_REASON = 500


def _invalid(loc: list[str], message: str) -> HTTPProblem:
    return HTTPProblem(422, [{"loc": loc, "msg": message, "type": "value_error"}])


async def _body(request: Request, max_bytes: int) -> dict[str, Any] | None:
    """``None`` (no body) or ``{"reason": str}`` (1..500 characters)."""
    if request.headers.get("content-length", "0") == "0" and "chunked" not in request.headers.get(
        "transfer-encoding", ""
    ):
        return None
    body = await read_json(request, max_bytes)
    if body is None:
        return None
    if not isinstance(body, dict) or set(body) - {"reason"}:
        raise _invalid(["body"], 'expected {"reason": "..."} (or no body)')
    reason = body.get("reason")
    if reason is None:
        return None
    if not isinstance(reason, str) or not 0 < len(reason) <= _MAX_REASON:
        raise _invalid(["body", "reason"], f"a string of 1..{_MAX_REASON} characters")
    return {"reason": reason}


def _canceller(route_id: str, upstream: str) -> Any:
    """The handler that cancels through the service's ``upstream`` path (``route_id``)."""

    async def cancel(request: Request, ctx: Ctx) -> Response:
        service_id = validate_service_id(request.path_params["service_id"])
        task_id = request.path_params["task_id"]
        if not is_valid_identifier(task_id):
            raise _invalid(["path", "task_id"], "invalid identifier")
        body = await _body(request, ctx.runtime.settings.request_max_body_bytes)
        try:
            result = await Federation(ctx.runtime).call(
                service_id,
                route_id,
                "POST",
                task_path(upstream, task_id),
                json=body,
                keep=(409, 422),
            )
        except UpstreamError as exc:
            if exc.status == 409 and exc.code == "upstream_conflict":
                exc.code = "already_terminal"  # relayna's 409 body has no code of its own
            raise
        result.update(
            service_id=service_id,
            task_id=task_id,
            task_ref=build_task_ref(service_id, task_id),
        )
        return JSONResponse(result, status_code=202)

    return cancel


def cancel_routes() -> list[BaseRoute]:
    one = "/studio/services/{service_id}"
    return [
        studio_route(
            f"{one}/tasks/{{task_id:path}}/cancel",
            _canceller(CANCEL_ROUTE_ID, "/tasks/{task_id}/cancel"),
            methods=["POST"],
            role="operator",
            action="task.cancel",
            status=202,
        ),
        studio_route(
            f"{one}/workflow/runs/{{task_id:path}}/cancel",
            _canceller(RUN_CANCEL_ROUTE_ID, "/workflow/runs/{task_id}/cancel"),
            methods=["POST"],
            role="operator",
            action="workflow.cancel",
            status=202,
        ),
    ]
