"""The failed-task routes (``/failed-tasks/*``), mounted by :func:`relayna.api.dlq_routes`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from relayna.api._body import BodyError, read_json_body
from relayna.api._dlq_common import (
    DLQRouteContext,
)
from relayna.api._dlq_docs import DLQDocs
from relayna.api._openapi import Operation
from relayna.api._route_ids import (
    FAILED_TASKS_DELETE_ROUTE_ID,
    FAILED_TASKS_DETAIL_ROUTE_ID,
    FAILED_TASKS_INVESTIGATE_ROUTE_ID,
    FAILED_TASKS_LIST_ROUTE_ID,
    FAILED_TASKS_RETRY_ROUTE_ID,
    FAILED_TASKS_UNINVESTIGATE_ROUTE_ID,
)
from relayna.api._routes import JSONResponse, error_response
from relayna.dlq import ManualRetry, parse_query
from relayna.errors import ContractError, DLQConflict, UnroutableError

__all__ = ["failed_task_routes", "parse_investigation", "parse_retry"]

Handler = Callable[[Request], Awaitable[Response]]

#: Longest ``investigated_by`` / ``retried_by`` and ``note`` accepted.
MAX_WHO = 256
MAX_NOTE = 10_000


def _bad(field: str, message: str) -> ContractError:
    return ContractError(f"invalid {field}", errors=[(field, message)])


def _object(data: Any, allowed: set[str]) -> Mapping[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise _bad("body", "expected a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ContractError("unknown fields", errors=[(name, "unknown field") for name in unknown])
    return data


def _text(data: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise _bad(name, f"expected a string of at most {limit} characters")
    return value


def parse_investigation(data: Any) -> tuple[str | None, str | None]:
    """``{investigated_by?, note?}`` -> (by, note)."""
    body = _object(data, {"investigated_by", "note"})
    return _text(body, "investigated_by", MAX_WHO), _text(body, "note", MAX_NOTE)


def parse_retry(data: Any) -> ManualRetry:
    """``{target_queue?, override_payload?, retried_by?, note?, force?}``."""
    body = _object(data, {"target_queue", "override_payload", "retried_by", "note", "force"})
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise _bad("force", "expected true or false")
    target = body.get("target_queue")
    if target is not None and not isinstance(target, str):
        raise _bad("target_queue", "expected a queue name")
    kwargs: dict[str, Any] = {}
    if "override_payload" in body:
        kwargs["override_payload"] = body["override_payload"]
    return ManualRetry(
        target_queue=target,
        retried_by=_text(body, "retried_by", MAX_WHO),
        note=_text(body, "note", MAX_NOTE),
        force=force,
        **kwargs,
    )


#: ``route(path, handler, method, route_id, operation)``: a guarded, documented route.
RouteMaker = Callable[[str, Handler, str, str, Operation], BaseRoute]


def failed_task_routes(ctx: DLQRouteContext, route: RouteMaker) -> list[BaseRoute]:
    """The ``/failed-tasks`` routes (guarded and documented through ``route``)."""
    docs = DLQDocs(ctx.id_name, authorized=ctx.has_authorize)

    async def listing(request: Request) -> Response:
        try:
            query, cursor, limit = parse_query(
                request.query_params, task_param=ctx.id_name, extended=True
            )
        except ContractError as exc:
            return ctx.query_error(exc)
        svc = ctx.service(request)
        if isinstance(svc, Response):
            return svc
        page = await svc.list_failed_tasks(query, cursor=cursor, limit=limit)
        page["items"] = [ctx.output(item) for item in page["items"]]
        return JSONResponse(page)

    def not_found(failure_id: str) -> Response:
        return error_response(404, f"No failed task found for failure_id '{failure_id}'.")

    async def detail(request: Request) -> Response:
        failure_id = ctx.path_id(request, "failure_id")
        if isinstance(failure_id, Response):
            return failure_id
        svc = ctx.service(request)
        if isinstance(svc, Response):
            return svc
        found = await svc.failed_task_detail(failure_id)
        return not_found(failure_id) if found is None else JSONResponse(ctx.output(found))

    async def mutating(request: Request, route_id: str) -> tuple[str, Any, Any] | Response:
        """Id, service and JSON body of a mutating request, or the answer to give."""
        failure_id = ctx.path_id(request, "failure_id")
        if isinstance(failure_id, Response):
            return failure_id
        try:
            body = await read_json_body(request, required=False)
        except BodyError as exc:
            return error_response(exc.status, exc.detail)
        svc = await ctx.mutating_service(request, route_id)
        if isinstance(svc, Response):
            return svc
        return failure_id, svc, body

    async def investigate(request: Request) -> Response:
        got = await mutating(request, FAILED_TASKS_INVESTIGATE_ROUTE_ID)
        if isinstance(got, Response):
            return got
        failure_id, svc, body = got
        try:
            by, note = parse_investigation(body)
        except ContractError as exc:
            return ctx.body_error(exc)
        found = await svc.mark_investigated(failure_id, investigated_by=by, note=note)
        return not_found(failure_id) if found is None else JSONResponse(ctx.output(found))

    async def uninvestigate(request: Request) -> Response:
        got = await mutating(request, FAILED_TASKS_UNINVESTIGATE_ROUTE_ID)
        if isinstance(got, Response):
            return got
        failure_id, svc, _ = got
        found = await svc.mark_uninvestigated(failure_id)
        return not_found(failure_id) if found is None else JSONResponse(ctx.output(found))

    async def retry(request: Request) -> Response:
        got = await mutating(request, FAILED_TASKS_RETRY_ROUTE_ID)
        if isinstance(got, Response):
            return got
        failure_id, svc, body = got
        try:
            retry_request = parse_retry(body)
            result = await svc.retry_failed_task(failure_id, retry_request)
        except ContractError as exc:
            return ctx.body_error(exc)
        except DLQConflict as exc:
            return ctx.conflict(exc, shape="error")
        except UnroutableError:
            return error_response(422, "no queue to retry to: the target queue does not exist")
        return not_found(failure_id) if result is None else JSONResponse(result.as_dict())

    async def delete(request: Request) -> Response:
        got = await mutating(request, FAILED_TASKS_DELETE_ROUTE_ID)
        if isinstance(got, Response):
            return got
        failure_id, svc, _ = got
        try:
            deleted = await svc.delete_failed_task(failure_id)
        except DLQConflict as exc:
            return ctx.conflict(exc, shape="error")
        return Response(status_code=204) if deleted else not_found(failure_id)

    item = "/failed-tasks/{failure_id:relayna_id}"
    return [
        route("/failed-tasks", listing, "GET", FAILED_TASKS_LIST_ROUTE_ID, docs.failed_list()),
        route(
            item + "/mark-investigated",
            investigate,
            "POST",
            FAILED_TASKS_INVESTIGATE_ROUTE_ID,
            docs.investigate(investigated=True),
        ),
        route(
            item + "/mark-uninvestigated",
            uninvestigate,
            "POST",
            FAILED_TASKS_UNINVESTIGATE_ROUTE_ID,
            docs.investigate(investigated=False),
        ),
        route(item + "/retry", retry, "POST", FAILED_TASKS_RETRY_ROUTE_ID, docs.retry()),
        route(item, detail, "GET", FAILED_TASKS_DETAIL_ROUTE_ID, docs.failed_detail()),
        route(item, delete, "DELETE", FAILED_TASKS_DELETE_ROUTE_ID, docs.delete()),
    ]
