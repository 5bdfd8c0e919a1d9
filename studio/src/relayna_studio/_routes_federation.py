"""Federated routes (ANCHOR §2.2): status, history, DLQ, backpressure,
task detail, failed tasks, and the task routes dispatcher (task ids may contain ``/``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from relayna.contracts import is_valid_identifier
from relayna_studio._failed_tasks import merged_failed_tasks
from relayna_studio._federation import Federation, payload_aliases, task_path
from relayna_studio._http import (
    Ctx,
    HTTPProblem,
    JSONResponse,
    query_problem,
    read_json,
    studio_route,
)
from relayna_studio._models import validate_service_id
from relayna_studio._relay import RelayStream
from relayna_studio._routes_auth import int_param
from relayna_studio._routes_events import task_event_stream, task_events
from relayna_studio._routes_telemetry import LOG_PARAMS, METRICS_PARAMS, task_logs, task_metrics
from relayna_studio._task_detail import JOINS, task_detail
from relayna_studio._task_ref import build_task_ref, enrich_item
from relayna_studio._traces import task_trace_path, task_traces

__all__ = ["federation_routes", "task_id_param"]

_FAILED_FILTERS = (
    "service_name",
    "queue_name",
    "dlq_name",
    "error_type",
    "status",
    "task_id",
    "worker_id",
    "investigation_status",
    "failed_from",
    "failed_to",
)
_DLQ_FILTERS = ("queue_name", "task_id", "reason", "source_queue_name", "state", "cursor")
_REPLAY_PARAMS = ("force", "direct", "target_queue")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _replay_params(request: Request) -> dict[str, str]:
    """``force`` / ``direct`` (booleans as relayna reads them) and ``target_queue``,
    checked before the call so that bad input never reaches the service."""
    params = _params(request, _REPLAY_PARAMS, limit=None)
    for name in ("force", "direct"):
        if name in params:
            value = params[name].strip().lower()
            if value not in _TRUE + _FALSE:
                raise query_problem(name, "expected true or false")
            params[name] = "true" if value in _TRUE else "false"
    return params


def task_id_param(value: str, where: str = "path") -> str:
    """A task id from the path (``/`` allowed), or 422."""
    if not is_valid_identifier(value):
        raise HTTPProblem(
            422, [{"loc": [where, "task_id"], "msg": "invalid identifier", "type": "value_error"}]
        )
    return value


def _path_id(request: Request, name: str) -> str:
    """A path identifier (``dlq_id``, ``failure_id``) a service's URL may carry."""
    value = request.path_params[name]
    if not is_valid_identifier(value) or "/" in value:
        raise HTTPProblem(
            422, [{"loc": ["path", name], "msg": "invalid identifier", "type": "value_error"}]
        )
    return str(value)


def _params(
    request: Request, allowed: tuple[str, ...], *, limit: tuple[int, int, int] | None
) -> dict[str, Any]:
    names = set(allowed) | ({"limit"} if limit else set())
    unknown = sorted(set(request.query_params) - names)
    if unknown:
        raise query_problem(unknown[0], "unknown query parameter")
    out: dict[str, Any] = {}
    for name in allowed:
        value = request.query_params.get(name)
        if value is None:
            continue
        if not 0 < len(value) <= 512 or any(ord(c) < 32 for c in value):
            raise query_problem(name, "1..512 printable characters")
        if name == "task_id" and not is_valid_identifier(value):
            raise query_problem(name, "invalid identifier")
        out[name] = value
    if limit is not None:
        out["limit"] = int_param(request, "limit", *limit)
    return out


def _ref_events(body: Any, service_id: str, aliases: dict[str, str]) -> None:
    for event in body.get("events") or [] if isinstance(body, dict) else []:
        if isinstance(event, dict):
            tid = event.get("task_id") or event.get(aliases.get("task_id", "task_id"))
            if is_valid_identifier(tid):
                event["service_id"] = service_id
                event["task_id"] = tid
                event["task_ref"] = build_task_ref(
                    service_id, str(tid), events=[event], aliases=aliases
                )


def _enrich_items(body: Any, service_id: str, aliases: dict[str, str]) -> None:
    items = body.get("items") if isinstance(body, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            enrich_item(item, service_id, aliases)


def federation_routes() -> list[BaseRoute]:
    def sid(request: Request) -> str:
        return validate_service_id(request.path_params["service_id"])

    async def status(request: Request, ctx: Ctx) -> Response:
        service_id = sid(request)
        task_id = task_id_param(request.path_params["task_id"])
        record, body = await Federation(ctx.runtime).fetch(
            service_id, "status.latest", "GET", task_path("/status/{task_id}", task_id)
        )
        aliases = payload_aliases(record.get("capabilities"))
        body.update(
            service_id=service_id,
            task_id=task_id,
            task_ref=build_task_ref(
                service_id, task_id, events=[body.get("event")], aliases=aliases
            ),
        )
        return JSONResponse(body)

    async def history(request: Request, ctx: Ctx) -> Response:
        service_id = sid(request)
        params = _params(
            request, ("task_id", "start_offset", "max_seconds", "max_scan"), limit=None
        )
        params.setdefault("start_offset", "first")
        fed = Federation(ctx.runtime)
        record = await fed.service(service_id)
        body = await fed.call(
            service_id, "status.history", "GET", "/history", params=params, record=record
        )
        _ref_events(body, service_id, payload_aliases(record.get("capabilities")))
        return JSONResponse(body)

    def passthrough(
        route: str,
        path: str,
        allowed: tuple[str, ...],
        limit: tuple[int, int, int] | None,
        wrap_items: bool = False,
    ) -> Callable[[Request, Ctx], Awaitable[Response]]:
        async def handler(request: Request, ctx: Ctx) -> Response:
            service_id = sid(request)
            params = _params(request, allowed, limit=limit)
            record, body = await Federation(ctx.runtime).fetch(
                service_id, route, "GET", path, params=params
            )
            if wrap_items:
                return JSONResponse({"service_id": service_id, "items": body.get("items") or []})
            _enrich_items(body, service_id, payload_aliases(record.get("capabilities")))
            body["service_id"] = service_id
            return JSONResponse(body)

        return handler

    async def replay(request: Request, ctx: Ctx) -> Response:
        """Replay a service's DLQ record (relayna's ``POST /dlq/messages/{dlq_id}/replay``)."""
        service_id = sid(request)
        dlq_id = _path_id(request, "dlq_id")
        result = await Federation(ctx.runtime).call(
            service_id,
            "dlq.replay",
            "POST",
            f"/dlq/messages/{quote(dlq_id, safe='')}/replay",
            params=_replay_params(request),
            keep=(409, 422),
        )
        result["service_id"] = service_id
        return JSONResponse(result)

    async def submit(request: Request, ctx: Ctx) -> Response:
        """Submit a task to a service (its ``POST /tasks``, e.g. ``relayna dev``'s)."""
        service_id = sid(request)
        body = await read_json(request, ctx.runtime.settings.request_max_body_bytes)
        if not isinstance(body, dict):
            raise HTTPProblem(
                422, [{"loc": ["body"], "msg": "expected a JSON object", "type": "value_error"}]
            )
        result = await Federation(ctx.runtime).call(
            service_id, "tasks.submit", "POST", "/tasks", json=body, keep=(409, 422)
        )
        result["service_id"] = service_id
        if is_valid_identifier(result.get("task_id")):
            result["task_ref"] = build_task_ref(service_id, result["task_id"])
        return JSONResponse(result)

    async def tasks(request: Request, ctx: Ctx) -> Any:
        service_id = sid(request)
        rest = str(request.path_params["rest"])
        for suffix, handler in (
            ("/events/stream", task_event_stream),
            ("/events", task_events),
            ("/logs", task_logs),
            ("/metrics", task_metrics),
            ("/traces", task_traces),
            ("/trace-path", task_trace_path),
        ):
            if rest.endswith(suffix):
                return await handler(request, ctx, service_id, task_id_param(rest[: -len(suffix)]))
        if rest.endswith("/stream"):
            task_id = task_id_param(rest[: -len("/stream")])
            last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
            if last is not None and (len(last) > 512 or any(ord(c) < 32 for c in last)):
                raise query_problem("last_event_id", "at most 512 printable characters")
            return RelayStream(Federation(ctx.runtime), service_id, task_id, last)
        task_id = task_id_param(rest)
        join = request.query_params.get("join", "none")
        if join not in JOINS:
            raise query_problem("join", "one of none, correlation, lineage, all")
        unknown = sorted(set(request.query_params) - {"join"})
        if unknown:
            raise query_problem(unknown[0], "unknown query parameter")
        return JSONResponse(await task_detail(Federation(ctx.runtime), service_id, task_id, join))

    async def failed_list(request: Request, ctx: Ctx) -> Response:
        params = _params(request, ("service_id", *_FAILED_FILTERS, "cursor"), limit=(50, 1, 200))
        fed = Federation(ctx.runtime)
        service_id = params.pop("service_id", None)
        if service_id is not None:
            service_id = validate_service_id(service_id)
            record, body = await fed.fetch(
                service_id, "failed_tasks.list", "GET", "/failed-tasks", params=params
            )
            _enrich_items(body, service_id, payload_aliases(record.get("capabilities")))
            body.setdefault("errors", [])
            body["scanned_services"] = [service_id]
            return JSONResponse(body)
        cursor = params.pop("cursor", None)
        limit = params.pop("limit")
        return JSONResponse(await merged_failed_tasks(fed, params, limit, cursor))

    def failed_one(
        method: str, route: str, suffix: str, body: bool
    ) -> Callable[[Request, Ctx], Awaitable[Response]]:
        async def handler(request: Request, ctx: Ctx) -> Response:
            service_id = sid(request)
            failure_id = _path_id(request, "failure_id")
            payload = None
            if body and request.headers.get("content-length", "0") != "0":
                payload = await read_json(request, ctx.runtime.settings.request_max_body_bytes)
                if not isinstance(payload, dict):
                    raise HTTPProblem(
                        422,
                        [{"loc": ["body"], "msg": "expected a JSON object", "type": "value_error"}],
                    )
            record, result = await Federation(ctx.runtime).fetch(
                service_id,
                route,
                method,
                f"/failed-tasks/{failure_id}{suffix}",
                json=payload,
                keep=(409, 422) if route == "failed_tasks.retry" else (),
            )
            if method == "DELETE":
                return JSONResponse(
                    {"service_id": service_id, "failure_id": failure_id, "deleted": True}
                )
            enrich_item(result, service_id, payload_aliases(record.get("capabilities")))
            return JSONResponse(result)

        return handler

    one = "/studio/services/{service_id}"
    ft = "/studio/failed-tasks/{service_id}/{failure_id}"
    return [
        studio_route(f"{one}/status/{{task_id:path}}", status, methods=["GET"], role="reader"),
        studio_route(
            f"{one}/history",
            history,
            methods=["GET"],
            role="reader",
            query=("task_id", "start_offset", "max_seconds", "max_scan"),
        ),
        studio_route(
            f"{one}/dlq/messages",
            passthrough("dlq.messages", "/dlq/messages", _DLQ_FILTERS, (50, 1, 200)),
            methods=["GET"],
            role="reader",
            query=(*_DLQ_FILTERS, "limit"),
        ),
        studio_route(
            f"{one}/dlq/messages/{{dlq_id}}/replay",
            replay,
            methods=["POST"],
            role="operator",
            action="dlq.replay",
            query=_REPLAY_PARAMS,
            body=False,
        ),
        studio_route(
            f"{one}/tasks", submit, methods=["POST"], role="operator", action="task.submit"
        ),
        studio_route(
            f"{one}/broker/dlq/messages",
            passthrough(
                "broker.dlq.messages",
                "/broker/dlq/messages",
                ("queue_name", "task_id"),
                (50, 1, 200),
                wrap_items=True,
            ),
            methods=["GET"],
            role="reader",
        ),
        studio_route(
            f"{one}/runtime/backpressure",
            passthrough("runtime.backpressure", "/relayna/runtime/backpressure", (), None),
            methods=["GET"],
            role="reader",
        ),
        studio_route(
            "/studio/tasks/{service_id}/{rest:path}",
            tasks,
            methods=["GET"],
            role="reader",
            allow_ticket=True,
            query=tuple(
                dict.fromkeys(
                    (
                        "join",
                        "ticket",
                        "last_event_id",
                        "before",
                        "limit",
                        "trace_id",
                        *LOG_PARAMS,
                        *METRICS_PARAMS,
                    )
                )
            ),
        ),
        studio_route(
            "/studio/failed-tasks",
            failed_list,
            methods=["GET"],
            role="reader",
            query=("service_id", *_FAILED_FILTERS, "cursor", "limit"),
        ),
        studio_route(
            ft, failed_one("GET", "failed_tasks.detail", "", False), methods=["GET"], role="reader"
        ),
        studio_route(
            ft,
            failed_one("DELETE", "failed_tasks.delete", "", False),
            status=200,
            methods=["DELETE"],
            role="operator",
            action="failed_task.delete",
        ),
        studio_route(
            f"{ft}/mark-investigated",
            failed_one("POST", "failed_tasks.investigate", "/mark-investigated", True),
            methods=["POST"],
            role="operator",
            action="failed_task.investigate",
        ),
        studio_route(
            f"{ft}/mark-uninvestigated",
            failed_one("POST", "failed_tasks.uninvestigate", "/mark-uninvestigated", False),
            methods=["POST"],
            role="operator",
            action="failed_task.uninvestigate",
            body=False,
        ),
        studio_route(
            f"{ft}/retry",
            failed_one("POST", "failed_tasks.retry", "/retry", True),
            methods=["POST"],
            role="operator",
            action="failed_task.retry",
        ),
    ]
