"""``GET /studio/tasks/search`` and ``GET /studio/services/search`` (ANCHOR §3.5).

Task search needs at least one filter or a time range (422 otherwise).
Service search runs over the registry itself (a few hundred records at
most): ``query`` terms each match as a prefix of an alphanumeric token of
the id, name, environment or tags (all terms must match; ``matched_fields``
lists the fields in which every term matched), filters ``environment``,
``status``, ``health``, ``tag``; sorted by lower-case name then id; the
cursor is URL-safe base64 JSON ``{name, service_id}``. (The original kept a
token index in Redis for this; the registry answers it directly here, so
those keys are not written.)
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from relayna.contracts import is_valid_identifier
from relayna.errors import ContractError
from relayna_studio._health_service import HealthService
from relayna_studio._http import Ctx, HTTPProblem, JSONResponse, query_problem, studio_route
from relayna_studio._routes_auth import int_param
from relayna_studio._runtime import StudioRuntime
from relayna_studio._search import TaskIndex
from relayna_studio._search_keys import FILTER_FIELDS
from relayna_studio._timefmt import parse_time

__all__ = ["search_routes", "task_index"]

_TOKEN = re.compile(r"[a-z0-9]+")


def task_index(runtime: StudioRuntime) -> TaskIndex:
    s = runtime.settings
    return TaskIndex(
        runtime.store,
        s.task_search_index_prefix,
        s.effective_task_index_ttl_seconds,
        cluster=s.cluster_keys,
    )


def _tokens(value: object) -> list[str]:
    return _TOKEN.findall(str(value).lower()) if value is not None else []


def _service_match(doc: Mapping[str, Any], terms: list[str]) -> list[str] | None:
    fields = {
        "service_id": _tokens(doc["service_id"]),
        "name": _tokens(doc["name"]),
        "environment": _tokens(doc["environment"]),
        "tags": [t for tag in doc.get("tags") or [] for t in _tokens(tag)],
    }
    if not terms:
        return []
    matched = [
        field
        for field, toks in fields.items()
        if all(any(t.startswith(term) for t in toks) for term in terms)
    ]
    every = all(
        any(any(t.startswith(term) for t in toks) for toks in fields.values()) for term in terms
    )
    return matched if every else None


def search_routes() -> list[BaseRoute]:
    async def tasks(request: Request, ctx: Ctx) -> Response:
        allowed = {*FILTER_FIELDS, "from", "to", "limit", "cursor"}
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise query_problem(unknown[0], "unknown query parameter")
        filters: dict[str, str] = {}
        for field in FILTER_FIELDS:
            value = request.query_params.get(field)
            if value is None:
                continue
            if field in ("service_id", "task_id", "correlation_id"):
                if not is_valid_identifier(value):
                    raise query_problem(field, "invalid identifier")
            elif not 0 < len(value) <= 200 or any(ord(c) < 32 for c in value):
                raise query_problem(field, "1..200 printable characters")
            filters[field] = value
        times = {}
        for name in ("from", "to"):
            raw = request.query_params.get(name)
            if raw is not None:
                try:
                    times[name] = parse_time(raw, name)
                except ContractError:
                    raise query_problem(name, "expected an ISO-8601 time") from None
        if "from" in times and "to" in times and times["from"] > times["to"]:
            raise query_problem("from", "must not be after 'to'")
        if not filters and not times:
            raise query_problem("query", "give at least one filter or a time range")
        limit = int_param(request, "limit", 50, 1, 200)
        assert limit is not None
        cursor = request.query_params.get("cursor")
        try:
            items, nxt = await task_index(ctx.runtime).search(
                filters,
                time_from=times.get("from"),
                time_to=times.get("to"),
                limit=limit,
                cursor=cursor,
            )
        except ContractError:
            raise HTTPProblem(
                422, [{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}]
            ) from None
        return JSONResponse({"count": len(items), "items": items, "next_cursor": nxt})

    async def services(request: Request, ctx: Ctx) -> Response:
        allowed = {"query", "environment", "status", "health", "tag", "limit", "cursor"}
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise query_problem(unknown[0], "unknown query parameter")
        for name in allowed - {"limit"}:
            value = request.query_params.get(name)
            if value is not None and (len(value) > 200 or any(ord(c) < 32 for c in value)):
                raise query_problem(name, "at most 200 printable characters")
        limit = int_param(request, "limit", 50, 1, 200)
        assert limit is not None
        after: tuple[str, str] | None = None
        cursor = request.query_params.get("cursor")
        if cursor:
            try:
                data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
                after = (str(data["name"]).lower(), str(data["service_id"]))
            except (binascii.Error, ValueError, TypeError, KeyError, orjson.JSONDecodeError):
                raise query_problem("cursor", "invalid cursor") from None
        terms = _tokens(request.query_params.get("query", ""))
        records = await ctx.runtime.registry.list()
        healths = await HealthService(ctx.runtime).documents(records)
        q = request.query_params
        hits = []
        for record, health in zip(records, healths, strict=True):
            doc = {
                "service_id": record["service_id"],
                "name": record["name"],
                "environment": record["environment"],
                "tags": record.get("tags") or [],
                "status": record["status"],
                "health_status": health["overall_status"],
                "base_url": record["base_url"],
                "auth_mode": record["auth_mode"],
                "last_seen_at": record.get("last_seen_at"),
            }
            if q.get("environment") not in (None, doc["environment"]):
                continue
            if q.get("status") not in (None, doc["status"]):
                continue
            if q.get("health") not in (None, doc["health_status"]):
                continue
            if q.get("tag") is not None and q["tag"] not in doc["tags"]:
                continue
            matched = _service_match(doc, terms)
            if matched is None:
                continue
            key = (str(doc["name"]).lower(), str(doc["service_id"]))
            if after is not None and key <= after:
                continue
            hits.append((key, {**doc, "matched_fields": matched}))
        hits.sort(key=lambda h: h[0])
        page = [doc for _, doc in hits[:limit]]
        nxt = None
        if len(hits) > limit:
            last = page[-1]
            nxt = (
                base64.urlsafe_b64encode(
                    orjson.dumps({"name": last["name"], "service_id": last["service_id"]})
                )
                .decode()
                .rstrip("=")
            )
        return JSONResponse({"count": len(page), "items": page, "next_cursor": nxt})

    return [
        studio_route(
            "/studio/tasks/search",
            tasks,
            methods=["GET"],
            role="reader",
            query=(*FILTER_FIELDS, "from", "to", "limit", "cursor"),
        ),
        studio_route(
            "/studio/services/search",
            services,
            methods=["GET"],
            role="reader",
            query=("query", "environment", "status", "health", "tag", "limit", "cursor"),
        ),
    ]
