"""Observability route factories: execution graph, service event feed, worker
health and the capability document.

Each route carries its route id as its Starlette ``name`` (see
:mod:`relayna.api._route_ids`); the capability document is built from the
names of the routes actually mounted. Mount :func:`feed_routes` *before*
:func:`~relayna.api.status_routes`: ``/events/feed`` would otherwise match
``/events/{task_id}``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import anyio
from anyio.abc import TaskStatus
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from relayna import __version__
from relayna.api._lifespan import RelaynaRuntime
from relayna.api._observe_docs import (
    capabilities_operation,
    feed_operation,
    graph_operation,
    health_operation,
    metrics_operation,
)
from relayna.api._openapi import document
from relayna.api._route_ids import (
    EVENTS_FEED,
    EXECUTION_GRAPH,
    HEALTH_WORKERS,
    KNOWN_ROUTE_IDS,
    METRICS,
    ROUTE_ID_ALIASES,
)
from relayna.api._routes import JSONResponse, error_response, invalid_identifier
from relayna.api._serve import serve_asgi
from relayna.consumer import list_worker_heartbeats
from relayna.contracts import ContractAliasConfig, alias_map, is_valid_identifier
from relayna.errors import ContractError
from relayna.observability import (
    CONTENT_TYPE_LATEST,
    FEED_MAX_LIMIT,
    RelaynaMetrics,
    execution_graph_mermaid,
)
from relayna.topology import summarize_topology

__all__ = [
    "CAPABILITY_PATH",
    "capabilities_routes",
    "execution_routes",
    "feed_routes",
    "metrics_routes",
    "mounted_route_ids",
    "serve_metrics",
    "worker_health_document",
    "worker_health_routes",
]

CAPABILITY_PATH = "/relayna/capabilities"
MERMAID_MEDIA_TYPE = "text/vnd.mermaid"


def _runtime(request: Request, state_key: str) -> RelaynaRuntime | None:
    runtime = getattr(request.state, state_key, None)
    return runtime if isinstance(runtime, RelaynaRuntime) else None


def _not_running() -> Response:
    return error_response(503, "relayna runtime is not running")


def execution_routes(
    *,
    aliases: ContractAliasConfig | None = None,
    base_path: str = "/executions",
    state_key: str = "relayna",
) -> list[BaseRoute]:
    """``GET {base_path}/{task_id}/graph`` (``?format=mermaid`` for ``text/vnd.mermaid``).

    The path parameter takes the HTTP alias of ``task_id`` and the JSON field
    its payload alias. 404 only when no status, observation or DLQ record
    exists for the task; 422 for an id that fails the identifier rule.
    """
    id_name = (aliases.http_alias_for("task_id") if aliases else None) or "task_id"
    field = (aliases.payload_alias_for("task_id") if aliases else None) or "task_id"

    async def graph(request: Request) -> Response:
        task_id = request.path_params.get(id_name)
        if not is_valid_identifier(task_id):
            return invalid_identifier(id_name)
        fmt = request.query_params.get("format", "json")
        if fmt not in ("json", "mermaid"):
            return error_response(
                422, [{"loc": ["query", "format"], "msg": "expected json or mermaid"}]
            )
        runtime = _runtime(request, state_key)
        if runtime is None or runtime.graphs is None:
            return _not_running()
        result = await runtime.graphs.get_graph(str(task_id))
        if result is None:
            return error_response(404, f"No execution data found for {id_name} '{task_id}'")
        if fmt == "mermaid":
            return PlainTextResponse(execution_graph_mermaid(result), media_type=MERMAID_MEDIA_TYPE)
        return JSONResponse(result.to_dict(task_id_field=field))

    path = f"{base_path}/{{{id_name}:relayna_id}}/graph"
    route = Route(path, graph, methods=["GET"], name=EXECUTION_GRAPH)
    return [document(route, get=graph_operation(id_name, field))]


def feed_routes(*, path: str = "/events/feed", state_key: str = "relayna") -> list[BaseRoute]:
    """``GET {path}?after=<cursor>&limit=<1..500, default 100>``.

    Answers ``{count, items, next_cursor, reset, has_more}``, items oldest
    first; 422 for a malformed cursor, a cursor ahead of the feed, or a limit
    out of range; 404 when the service runs without a feed.
    """

    async def feed(request: Request) -> Response:
        raw_limit = request.query_params.get("limit", "100")
        try:
            limit = int(raw_limit)
        except ValueError:
            limit = -1
        if not 1 <= limit <= FEED_MAX_LIMIT:
            return error_response(
                422, [{"loc": ["query", "limit"], "msg": f"must be an integer 1..{FEED_MAX_LIMIT}"}]
            )
        after = request.query_params.get("after") or None
        runtime = _runtime(request, state_key)
        if runtime is None:
            return _not_running()
        if runtime.feed is None:
            return error_response(404, "this service has no event feed")
        try:
            body = await runtime.feed.read_json(after, limit)
        except ContractError as exc:
            return error_response(422, [{"loc": ["query", "after"], "msg": str(exc)}])
        return Response(body, media_type="application/json")

    return [document(Route(path, feed, methods=["GET"], name=EVENTS_FEED), get=feed_operation())]


async def worker_health_document(
    runtime: RelaynaRuntime, *, stale_after: float = 90.0
) -> dict[str, Any]:
    """The live worker heartbeats as ``GET /relayna/health/workers`` answers them.

    Each worker: the original's ``worker_name``, ``running``,
    ``last_heartbeat_at``, ``active_leases``, plus ``worker_id``, ``state``,
    ``last_heartbeat_age_seconds``, ``stale`` (older than ``stale_after``
    seconds), ``in_flight``, ``processed``, ``queue_name``, ``pid``, ``host``.
    """
    beats = await list_worker_heartbeats(
        runtime.store, runtime.config.heartbeat_prefix, cluster=runtime.config.store.cluster
    )
    now = time.time()
    out: list[dict[str, Any]] = []
    for hb in beats:
        age = max(0.0, now - hb.last_heartbeat)
        out.append(
            {
                "worker_name": hb.consumer_name,
                "worker_id": hb.worker_id,
                "running": hb.state in ("running", "starting", "draining", "reconnecting"),
                "state": hb.state,
                "last_heartbeat_at": datetime.fromtimestamp(hb.last_heartbeat, UTC).isoformat(),
                "last_heartbeat_age_seconds": round(age, 3),
                "stale": age > stale_after,
                "in_flight": hb.in_flight,
                "processed": hb.processed,
                "queue_name": hb.queue_name,
                "pid": hb.pid,
                "host": hb.host,
                "started_at": datetime.fromtimestamp(hb.started_at, UTC).isoformat(),
                "active_leases": [],
            }
        )
    return {
        "reported_at": datetime.now(UTC).isoformat(),
        "stale_after_seconds": stale_after,
        "workers": out,
    }


def worker_health_routes(
    *,
    prefix: str = "/relayna/health",
    stale_after: float = 90.0,
    state_key: str = "relayna",
) -> list[BaseRoute]:
    """``GET {prefix}/workers``: the live worker heartbeats (:func:`worker_health_document`)."""

    async def workers(request: Request) -> Response:
        runtime = _runtime(request, state_key)
        if runtime is None:
            return _not_running()
        return JSONResponse(await worker_health_document(runtime, stale_after=stale_after))

    route = Route(f"{prefix}/workers", workers, methods=["GET"], name=HEALTH_WORKERS)
    return [document(route, get=health_operation())]


def metrics_routes(
    metrics: RelaynaMetrics | None = None, *, path: str = "/metrics", state_key: str = "relayna"
) -> list[BaseRoute]:
    """``GET {path}``: Prometheus text exposition of ``metrics`` (default: the runtime's)."""

    async def scrape(request: Request) -> Response:
        source = metrics
        if source is None:
            runtime = _runtime(request, state_key)
            if runtime is None:
                return _not_running()
            source = runtime.metrics
        return Response(source.exposition(), media_type=CONTENT_TYPE_LATEST)

    return [document(Route(path, scrape, methods=["GET"], name=METRICS), get=metrics_operation())]


async def serve_metrics(
    metrics: RelaynaMetrics,
    *,
    host: str,
    port: int,
    shutdown_trigger: Callable[[], Awaitable[None]],
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``GET /metrics`` of ``metrics`` until ``shutdown_trigger`` returns.

    For worker processes (``relayna worker --metrics-port``): an ASGI server
    in the caller's task group, reporting its URL through ``task_status``.
    """
    app = Starlette(routes=metrics_routes(metrics))
    await serve_asgi(
        app,
        host=host,
        port=port,
        shutdown_trigger=shutdown_trigger,
        graceful_timeout=1.0,
        task_status=task_status,
    )


def mounted_route_ids(routes: Iterable[BaseRoute], known: Iterable[str] = ()) -> list[str]:
    """The route ids (route names) among ``routes``, searched through Mounts, plus
    the further ids of those routes (:data:`ROUTE_ID_ALIASES`)."""
    wanted = KNOWN_ROUTE_IDS | frozenset(known)
    found: set[str] = set()
    stack = list(routes)
    while stack:
        route = stack.pop()
        if isinstance(route, Mount):
            stack.extend(route.routes)
        name = getattr(route, "name", None)
        if isinstance(name, str) and name in wanted:
            found.add(name)
            found.update(ROUTE_ID_ALIASES.get(name, ()))
    return sorted(found)


def capabilities_routes(
    *,
    path: str = CAPABILITY_PATH,
    aliases: ContractAliasConfig | None = None,
    service_title: str | None = None,
    extra_route_ids: Iterable[str] = (),
    feature_flags: dict[str, bool] | None = None,
    state_key: str = "relayna",
) -> list[BaseRoute]:
    """``GET {path}``: the capability document (the original's shape, ``capabilities_v1``).

    ``supported_routes`` is computed from the routes mounted in the app, so a
    route that is not mounted is never advertised. ``extra_route_ids`` names
    ids of other packages' routes (``dlq.*`` ...) to recognise.
    """
    extra = tuple(extra_route_ids)

    async def capability_document(request: Request) -> Response:
        runtime = _runtime(request, state_key)
        app = request.scope.get("app")
        routes = getattr(app, "routes", ())
        supported = mounted_route_ids(routes, extra)
        flags = {
            "observations": runtime is not None and runtime.observations is not None,
            "service_event_feed": runtime is not None and runtime.feed is not None,
            "status_hub": runtime is not None and runtime.hub is not None,
        }
        flags.update(feature_flags or {})
        topology = runtime.config.topology if runtime is not None else None
        payload_aliases = {k: v for k, v in alias_map(aliases).items() if k != v}
        http_aliases = alias_map(aliases, source="http")
        title = service_title or (runtime.config.service_title if runtime else "relayna")
        return JSONResponse(
            {
                "relayna_version": __version__,
                "topology_kind": runtime.topology_kind if runtime is not None else "unknown",
                "topology_summary": summarize_topology(topology) if topology is not None else None,
                "alias_config_summary": {
                    "aliasing_enabled": aliases is not None,
                    "payload_aliases": payload_aliases,
                    "http_aliases": http_aliases,
                },
                "supported_routes": supported,
                "feature_flags": flags,
                "service_metadata": {
                    "service_title": title,
                    "capability_path": path,
                    "discovery_source": "live",
                    "compatibility": "capabilities_v1",
                },
            }
        )

    return [
        document(Route(path, capability_document, methods=["GET"]), get=capabilities_operation())
    ]
