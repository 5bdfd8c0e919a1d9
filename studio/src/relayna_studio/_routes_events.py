"""Event routes: push ingest, service and task event lists, live activity streams."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from relayna.contracts import is_valid_identifier
from relayna.errors import ContractError
from relayna_studio._event_model import fixed_time
from relayna_studio._events import EventStore, IngestResult
from relayna_studio._http import (
    Ctx,
    HTTPProblem,
    JSONResponse,
    query_problem,
    read_json,
    studio_route,
)
from relayna_studio._models import is_valid_service_id, validate_service_id
from relayna_studio._routes_auth import int_param
from relayna_studio._runtime import StudioRuntime
from relayna_studio._sse import ChannelStream
from relayna_studio._timefmt import parse_time

__all__ = [
    "event_routes",
    "event_store",
    "service_events",
    "count_ingest",
    "store_events",
    "task_events",
    "task_event_stream",
]

_DEDUPE_KEY = re.compile(r"[A-Za-z0-9._:@/+=\-]{1,700}")
_LIST_PARAMS = {"task_id", "source_kind", "event_type", "from", "to", "before", "limit"}


def event_store(runtime: StudioRuntime) -> EventStore:
    s = runtime.settings
    return EventStore(
        runtime.store,
        s.event_store_prefix,
        ttl_seconds=s.event_store_ttl_seconds,
        maxlen=s.event_history_maxlen,
        cluster=s.cluster_keys,
    )


async def store_events(
    runtime: StudioRuntime, service_id: str, raws: list[Any], method: str
) -> IngestResult:
    """Insert events and feed every hook (search index) with what was new (pull sync
    inserts pages itself and batches pages per hook call with :func:`run_event_hooks`)."""
    result = await event_store(runtime).insert_many(service_id, raws, method)
    count_ingest(runtime, method, result)
    await run_event_hooks(runtime, service_id, result.stored)
    return result


def count_ingest(runtime: StudioRuntime, method: str, result: IngestResult) -> None:
    metrics = runtime.metrics.ingested_events
    metrics.labels(method, "inserted").inc(result.inserted)
    metrics.labels(method, "duplicate").inc(result.duplicate)
    metrics.labels(method, "invalid").inc(result.invalid)


async def run_event_hooks(
    runtime: StudioRuntime, service_id: str, events: list[dict[str, Any]]
) -> None:
    if events:
        for hook in runtime.on_events_stored:
            await hook(service_id, events)


def _time_param(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return fixed_time(parse_time(raw, name))
    except ContractError:
        raise query_problem(name, "expected an ISO-8601 time") from None


def _list_query(request: Request, *, task_scope: bool) -> dict[str, Any]:
    allowed = {"before", "limit"} if task_scope else _LIST_PARAMS
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise query_problem(unknown[0], "unknown query parameter")
    filters: dict[str, str] = {}
    if not task_scope:
        task_id = request.query_params.get("task_id")
        if task_id is not None:
            if not is_valid_identifier(task_id):
                raise query_problem("task_id", "invalid identifier")
            filters["task_id"] = task_id
        kind = request.query_params.get("source_kind")
        if kind is not None:
            if kind not in ("status", "observation"):
                raise query_problem("source_kind", "must be status or observation")
            filters["source_kind"] = kind
        event_type = request.query_params.get("event_type")
        if event_type is not None:
            if not 0 < len(event_type) <= 200:
                raise query_problem("event_type", "1..200 characters")
            filters["event_type"] = event_type
    time_from = None if task_scope else _time_param(request, "from")
    time_to = None if task_scope else _time_param(request, "to")
    if time_from is not None and time_to is not None and time_from > time_to:
        raise query_problem("from", "must not be after 'to'")
    before = request.query_params.get("before")
    if before is not None and _DEDUPE_KEY.fullmatch(before) is None:
        raise query_problem("before", "not a cursor from a previous page")
    return {
        "filters": filters,
        "time_from": time_from,
        "time_to": time_to,
        "before": before,
        "limit": int_param(request, "limit", 100, 1, 500),
    }


async def service_events(request: Request, ctx: Ctx, service_id: str) -> Response:
    await ctx.runtime.registry.require(service_id)
    query = _list_query(request, task_scope=False)
    items, cursor = await event_store(ctx.runtime).page(service_id, task_id=None, **query)
    return JSONResponse({"count": len(items), "items": items, "next_cursor": cursor})


async def task_events(request: Request, ctx: Ctx, service_id: str, task_id: str) -> Response:
    await ctx.runtime.registry.require(service_id)
    query = _list_query(request, task_scope=True)
    items, cursor = await event_store(ctx.runtime).page(service_id, task_id=task_id, **query)
    return JSONResponse({"count": len(items), "items": items, "next_cursor": cursor})


async def task_event_stream(request: Request, ctx: Ctx, service_id: str, task_id: str) -> Any:
    await ctx.runtime.registry.require(service_id)
    keys = event_store(ctx.runtime).keys
    return ChannelStream(
        ctx.runtime.store,
        keys.task_channel(service_id, task_id),
        shutdown=ctx.runtime.shutdown_event,
        sharded=keys.cluster,
    )


def event_routes() -> list[BaseRoute]:
    async def ingest(request: Request, ctx: Ctx) -> Response:
        settings = ctx.runtime.settings
        if not settings.push_ingest_enabled:
            raise HTTPProblem(403, "push ingest is disabled (RELAYNA_STUDIO_PUSH_INGEST_ENABLED)")
        body = await read_json(request, settings.push_ingest_max_bytes)
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            raise ContractError("invalid ingest body", errors=[("events", "expected a list")])
        if set(body) - {"events"}:
            raise ContractError(
                "invalid ingest body", errors=[(k, "unknown field") for k in set(body) - {"events"}]
            )
        envelopes = body["events"]
        if len(envelopes) > settings.push_ingest_max_events:
            raise HTTPProblem(413, f"more than {settings.push_ingest_max_events} events")
        principal = ctx.principal
        total = {"inserted": 0, "duplicate": 0, "invalid": 0}
        by_service: dict[str, list[Any]] = {}
        known: dict[str, bool] = {}
        for envelope in envelopes:
            raw_sid = envelope.get("service_id") if isinstance(envelope, dict) else None
            sid = raw_sid if isinstance(raw_sid, str) else ""
            ok = (
                isinstance(envelope, dict)
                and set(envelope) <= {"service_id", "ingest_method", "event"}
                and envelope.get("ingest_method", "push") in ("push", "pull")
                and is_valid_service_id(sid)
                and (principal.role != "ingest" or principal.service_id == sid)
            )
            if ok and sid not in known:
                known[sid] = await ctx.runtime.registry.get(sid) is not None
            if not ok or not known[sid]:
                total["invalid"] += 1
                continue
            by_service.setdefault(sid, []).append(envelope.get("event"))
        for sid, raws in by_service.items():
            result = await store_events(ctx.runtime, sid, raws, "push")
            for key, value in result.to_json().items():
                total[key] += value
        return JSONResponse(total)

    async def list_service(request: Request, ctx: Ctx) -> Response:
        return await service_events(
            request, ctx, validate_service_id(request.path_params["service_id"])
        )

    async def stream_service(request: Request, ctx: Ctx) -> Any:
        service_id = validate_service_id(request.path_params["service_id"])
        await ctx.runtime.registry.require(service_id)
        keys = event_store(ctx.runtime).keys
        return ChannelStream(
            ctx.runtime.store,
            keys.service_channel(service_id),
            shutdown=ctx.runtime.shutdown_event,
            sharded=keys.cluster,
        )

    one = "/studio/services/{service_id}"
    return [
        studio_route(
            "/studio/ingest/events", ingest, methods=["POST"], role="ingest", action="events.ingest"
        ),
        studio_route(
            f"{one}/events",
            list_service,
            methods=["GET"],
            role="reader",
            query=tuple(sorted(_LIST_PARAMS)),
        ),
        studio_route(
            f"{one}/events/stream",
            stream_service,
            methods=["GET"],
            role="reader",
            allow_ticket=True,
            stream=True,
            query=("ticket",),
        ),
    ]
