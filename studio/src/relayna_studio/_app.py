"""``create_studio_app(settings)``: the Starlette app, its runtime and its background jobs.

The app's lifespan opens the runtime (:func:`open_studio`) and starts the
background jobs in one task group that lives as long as the app; leaving
the lifespan (server shutdown) cancels them, and the runtime's exit closes
the HTTP client and the store, each bounded.

To embed Studio in another process's task group (``relayna dev``), open the
runtime yourself and use :func:`studio_app` plus :func:`run_studio_jobs`::

    async with open_studio(settings, store=store) as runtime:
        await tg.start(run_studio_jobs, runtime)
        app = studio_app(runtime)
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskStatus
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from relayna.api import Operation, ResponseSpec, document, openapi_route
from relayna.errors import RelaynaError
from relayna.transport import Store
from relayna_studio import __version__
from relayna_studio._egress_http import Resolver
from relayna_studio._health_service import HealthService
from relayna_studio._http import JSONResponse
from relayna_studio._jobs import run_periodic
from relayna_studio._leases import Leases
from relayna_studio._notify import run_notifications
from relayna_studio._pull_sync import pull_sync
from relayna_studio._routes_auth import auth_routes
from relayna_studio._routes_cancel import cancel_routes
from relayna_studio._routes_events import event_routes
from relayna_studio._routes_federation import federation_routes
from relayna_studio._routes_graphs import graph_routes
from relayna_studio._routes_notify import notify_routes
from relayna_studio._routes_registry import registry_routes
from relayna_studio._routes_search import search_routes, task_index
from relayna_studio._routes_telemetry import telemetry_routes
from relayna_studio._runtime import StudioRuntime, open_studio
from relayna_studio._search_hooks import backfill
from relayna_studio._settings import StudioSettings
from relayna_studio._ui import ui_routes

__all__ = ["create_studio_app", "run_studio_jobs", "studio_app", "studio_routes"]

log = logging.getLogger("relayna_studio.app")

_METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def _metrics(request: Request) -> Response:
    runtime: StudioRuntime = request.app.state.studio_runtime
    return Response(runtime.metrics.exposition(), media_type=_METRICS_TYPE)


def studio_routes() -> list[BaseRoute]:
    """Every Studio route. Order matters: fixed paths before ``{service_id}`` ones."""
    return [
        *auth_routes(),
        *search_routes(),  # before /studio/services/{service_id}: "search" is a valid id
        *registry_routes(),
        *event_routes(),
        *federation_routes(),
        *graph_routes(),
        *cancel_routes(),
        *telemetry_routes(),
        *notify_routes(),
        document(
            Route("/metrics", _metrics, methods=["GET"]),
            get=Operation(
                summary="Studio's own Prometheus metrics",
                responses={
                    200: ResponseSpec("Prometheus text", {"text/plain": {"type": "string"}})
                },
                tags=("meta",),
            ),
        ),
        openapi_route(title="relayna-studio", version=__version__),
    ]


async def run_studio_jobs(
    runtime: StudioRuntime, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Run every enabled background job until cancelled (a ``tg.start`` target)."""
    settings = runtime.settings
    leases = Leases(runtime.store, settings.lease_prefix)
    health = HealthService(runtime)
    index = task_index(runtime)
    if await index.is_empty():
        await backfill(runtime)
    async with anyio.create_task_group() as tg:
        if settings.health_refresh_interval_seconds is not None:
            await tg.start(
                partial(
                    run_periodic,
                    runtime,
                    leases,
                    "health",
                    settings.health_refresh_interval_seconds,
                    health.refresh,
                )
            )
        if settings.pull_sync_interval_seconds is not None:
            await tg.start(
                partial(
                    run_periodic,
                    runtime,
                    leases,
                    "pull_sync",
                    settings.pull_sync_interval_seconds,
                    partial(pull_sync, runtime),
                )
            )
        if settings.retention_prune_interval_seconds is not None:
            tg.start_soon(_retention, runtime, settings.retention_prune_interval_seconds)
        if settings.notifications_configured:
            await tg.start(run_notifications, runtime)
        task_status.started()


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no route) and 405 (wrong method), as JSON like every other answer."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _retention(runtime: StudioRuntime, interval: float) -> None:
    """Delete expired task documents, once per interval across replicas."""
    leases = Leases(runtime.store, runtime.settings.lease_prefix)
    index = task_index(runtime)
    while True:
        if await leases.acquire("retention", "*", interval):
            started = time.perf_counter()
            try:
                await index.prune()
                outcome = "ok"
            except RelaynaError as exc:
                outcome = "error"
                log.warning("retention failed: %s", exc)
            runtime.metrics.job_duration.labels("retention", outcome).observe(
                time.perf_counter() - started
            )
        await anyio.sleep(interval)


def _app(lifespan: Callable[[Starlette], AbstractAsyncContextManager[Any]]) -> Starlette:
    return Starlette(
        routes=[*studio_routes(), *ui_routes()],  # the UI's catch-all goes last
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_exception},
    )


def studio_app(runtime: StudioRuntime) -> Starlette:
    """The app serving an already-open runtime (its lifespan only exposes it)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        app.state.studio_runtime = runtime
        yield {runtime.settings.app_state_key: runtime}

    return _app(lifespan)


def create_studio_app(
    settings: StudioSettings | None = None,
    *,
    store: Store | None = None,
    resolver: Resolver | None = None,
) -> Starlette:
    """The Studio app; its lifespan owns the runtime and the background jobs.

    Args:
        settings: defaults to :meth:`StudioSettings.from_env`.
        store: an already-open store to use instead of ``settings.redis_url``.
        resolver: hostname resolver for the egress policy (tests).
    """
    settings = settings or StudioSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with open_studio(settings, store=store, resolver=resolver) as runtime:
            app.state.studio_runtime = runtime
            async with anyio.create_task_group() as tg:
                await tg.start(run_studio_jobs, runtime)
                try:
                    yield {settings.app_state_key: runtime}
                finally:
                    tg.cancel_scope.cancel()

    return _app(lifespan)
