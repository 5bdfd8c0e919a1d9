"""DLQ and failed-task route factory (the original's paths, JSON shapes and codes).

=======  =================================================  =====================
method   path                                               answers
=======  =================================================  =====================
GET      /dlq/queues                                        200
GET      /dlq/messages                                      200, 422
GET      /dlq/messages/{dlq_id}                             200, 404, 422
POST     /dlq/messages/{dlq_id}/replay?force=               200, 404, 409, 422
GET      /broker/dlq/queues                                 200 (with an allowlist)
GET      /broker/dlq/messages                               200, 400, 422
POST     /broker/dlq/messages/import?queue_name=&limit=     200, 400, 422
GET      /failed-tasks                                      200, 422
GET      /failed-tasks/{failure_id}                         200, 404
POST     /failed-tasks/{failure_id}/mark-investigated       200, 404
POST     /failed-tasks/{failure_id}/mark-uninvestigated     200, 404
POST     /failed-tasks/{failure_id}/retry                   200, 404, 409, 422
DELETE   /failed-tasks/{failure_id}                         204, 404, 409
=======  =================================================  =====================

Errors are ``{"detail": ...}``; a store or broker outage is 503.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from relayna.api._dlq_common import (
    Authorize,
    DLQRouteContext,
    InspectorOption,
    parse_bool,
)
from relayna.api._dlq_docs import DLQDocs
from relayna.api._failed_routes import failed_task_routes
from relayna.api._openapi import Operation, document
from relayna.api._route_ids import (
    BROKER_DLQ_IMPORT_ROUTE_ID,
    BROKER_DLQ_MESSAGES_ROUTE_ID,
    BROKER_DLQ_QUEUES_ROUTE_ID,
    DLQ_MESSAGE_DETAIL_ROUTE_ID,
    DLQ_MESSAGES_ROUTE_ID,
    DLQ_QUEUES_ROUTE_ID,
    DLQ_REPLAY_ROUTE_ID,
)
from relayna.api._routes import JSONResponse, error_response
from relayna.contracts import ContractAliasConfig
from relayna.dlq import DLQService, DLQStoreConfig, check_filter, parse_limit, parse_query
from relayna.errors import (
    BrokerError,
    ConfigurationError,
    ContractError,
    DLQConflict,
    StoreError,
    UnroutableError,
)

__all__ = ["dlq_routes"]

Handler = Callable[[Request], Awaitable[Response]]


def guarded(handler: Handler, store: str = "DLQ store") -> Handler:
    """Map outages to 503 (the store or broker is down), never a 500."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except StoreError as exc:
            return error_response(503, f"{store} unavailable: {exc}")
        except BrokerError as exc:
            return error_response(503, f"broker unavailable: {exc}")
        except ConfigurationError as exc:
            return error_response(503, str(exc))

    return endpoint


def dlq_routes(
    *,
    store_config: DLQStoreConfig | None = None,
    service: DLQService | None = None,
    broker_queue_names: Sequence[str] | None = None,
    inspector: InspectorOption = None,
    authorize: Authorize | None = None,
    aliases: ContractAliasConfig | None = None,
    failed_tasks: bool = True,
    service_id: str | None = None,
    state_key: str = "relayna",
) -> list[BaseRoute]:
    """The DLQ routes (and the failed-task routes unless ``failed_tasks=False``).

    Args:
        store_config: where the records are (the consumers' ``DLQStore`` config);
            the store, broker and status store come from the app's runtime.
        service: a ready :class:`~relayna.dlq.DLQService` instead (then
            ``store_config`` / ``inspector`` / ``broker_queue_names`` are its).
        broker_queue_names: the DLQ queues ``/broker/dlq/*`` may read; ``None``
            leaves those routes out.
        inspector: reads live DLQ messages: a
            :class:`~relayna.dlq.ManagementDLQInspector`, ``"peek"`` (through
            the runtime's broker connection: ``basic.get`` + requeue), or None.
        authorize: ``authorize(request, route_id)`` before mutating routes;
            return None to allow or a response (401/403) to refuse.
        aliases: the HTTP alias of ``task_id`` names the query parameter and
            the JSON field.
        service_id: reported in failed-task views.
    """
    if service is not None and broker_queue_names is None and service.broker_queue_names:
        broker_queue_names = service.broker_queue_names
    ctx = DLQRouteContext(
        service=service,
        store_config=store_config,
        inspector=inspector,
        broker_queue_names=broker_queue_names,
        authorize=authorize,
        aliases=aliases,
        state_key=state_key,
        service_id=service_id,
    )

    async def queues(request: Request) -> Response:
        svc = ctx.service(request)
        if isinstance(svc, Response):
            return svc
        return JSONResponse({"queues": await svc.queue_summaries()})

    async def messages(request: Request) -> Response:
        try:
            query, cursor, limit = parse_query(request.query_params, task_param=ctx.id_name)
        except ContractError as exc:
            return ctx.query_error(exc)
        svc = ctx.service(request)
        if isinstance(svc, Response):
            return svc
        page = await svc.list_messages(query, cursor=cursor, limit=limit)
        page["items"] = [ctx.output(item) for item in page["items"]]
        return JSONResponse(page)

    async def detail(request: Request) -> Response:
        dlq_id = ctx.path_id(request, "dlq_id")
        if isinstance(dlq_id, Response):
            return dlq_id
        svc = ctx.service(request)
        if isinstance(svc, Response):
            return svc
        found = await svc.message_detail(dlq_id)
        if found is None:
            return error_response(404, f"No DLQ message found for dlq_id '{dlq_id}'.")
        return JSONResponse(ctx.output(found))

    async def replay(request: Request) -> Response:
        dlq_id = ctx.path_id(request, "dlq_id")
        if isinstance(dlq_id, Response):
            return dlq_id
        params = request.query_params
        try:
            force = parse_bool(params.get("force"), "force")
            direct = parse_bool(params.get("direct"), "direct")
        except ContractError as exc:
            return ctx.query_error(exc)
        target = params.get("target_queue") or None
        svc = await ctx.mutating_service(request, DLQ_REPLAY_ROUTE_ID)
        if isinstance(svc, Response):
            return svc
        try:
            result = await svc.replay(dlq_id, force=force, direct=direct, target_queue=target)
        except DLQConflict as exc:
            return ctx.conflict(exc, shape="detail")
        except ContractError as exc:
            return ctx.query_error(exc)
        except UnroutableError as exc:
            if target is None:
                return error_response(503, f"could not publish the replay: {exc}")
            return error_response(422, f"no queue {target!r} to replay to")
        if result is None:
            return error_response(404, f"No DLQ message found for dlq_id '{dlq_id}'.")
        return JSONResponse(result.as_dict())

    async def broker_queues(request: Request) -> Response:
        svc = ctx.service(request)
        if isinstance(svc, Response):
            return svc
        return JSONResponse({"queues": await svc.broker_queue_summaries()})

    async def broker_messages(request: Request) -> Response:
        params = request.query_params
        queue_name = params.get("queue_name") or None
        task_id = params.get(ctx.id_name) or None
        try:
            limit = parse_limit(params.get("limit"))
            for name, value in (("queue_name", queue_name), (ctx.id_name, task_id)):
                if value is not None:
                    check_filter(name, value)
        except ContractError as exc:
            return ctx.query_error(exc)
        svc = ctx.service(request)
        if isinstance(svc, Response):
            return svc
        if svc.inspector is None:
            return error_response(503, "no broker DLQ inspector is configured")
        try:
            items = await svc.list_broker_messages(
                queue_name=queue_name, task_id=task_id, limit=limit
            )
        except ContractError as exc:
            return error_response(400, str(exc))
        return JSONResponse({"items": [ctx.output(item.as_dict()) for item in items]})

    async def broker_import(request: Request) -> Response:
        params = request.query_params
        queue_name = params.get("queue_name")
        try:
            limit = parse_limit(params.get("limit"))
            if not queue_name:
                raise ContractError(
                    "invalid queue_name",
                    errors=[("queue_name", "required")],
                    reason="invalid_query",
                )
            check_filter("queue_name", queue_name)
        except ContractError as exc:
            return ctx.query_error(exc)
        svc = await ctx.mutating_service(request, BROKER_DLQ_IMPORT_ROUTE_ID)
        if isinstance(svc, Response):
            return svc
        try:
            imported = await svc.import_broker_messages(queue_name, limit=limit)
        except ContractError as exc:  # outside the allowlist
            return error_response(400, str(exc))
        return JSONResponse(imported.as_dict())

    docs = DLQDocs(ctx.id_name, authorized=authorize is not None)

    def route(path: str, handler: Handler, method: str, name: str, op: Operation) -> BaseRoute:
        return document(
            Route(path, guarded(handler), methods=[method], name=name), **{method.lower(): op}
        )

    item = "/dlq/messages/{dlq_id:relayna_id}"
    routes: list[BaseRoute] = [
        route("/dlq/queues", queues, "GET", DLQ_QUEUES_ROUTE_ID, docs.queues(broker=False)),
        route("/dlq/messages", messages, "GET", DLQ_MESSAGES_ROUTE_ID, docs.messages()),
        route(item + "/replay", replay, "POST", DLQ_REPLAY_ROUTE_ID, docs.replay()),
        route(item, detail, "GET", DLQ_MESSAGE_DETAIL_ROUTE_ID, docs.detail()),
    ]
    if ctx.broker_queue_names is not None:
        routes.append(
            route(
                "/broker/dlq/queues",
                broker_queues,
                "GET",
                BROKER_DLQ_QUEUES_ROUTE_ID,
                docs.queues(broker=True),
            )
        )
        if ctx.has_inspector:
            routes.append(
                route(
                    "/broker/dlq/messages",
                    broker_messages,
                    "GET",
                    BROKER_DLQ_MESSAGES_ROUTE_ID,
                    docs.broker_messages(),
                )
            )
            routes.append(
                route(
                    "/broker/dlq/messages/import",
                    broker_import,
                    "POST",
                    BROKER_DLQ_IMPORT_ROUTE_ID,
                    docs.broker_import(),
                )
            )
    if failed_tasks:
        routes += failed_task_routes(ctx, route)
    return routes
