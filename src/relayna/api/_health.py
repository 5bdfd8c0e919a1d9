"""Liveness and readiness routes: ``GET /healthz`` and ``GET /readyz``.

``/healthz`` answers as long as the process serves HTTP (a liveness probe
restarts a process that stopped answering). ``/readyz`` answers 200 only when
the runtime is running and its broker and store answer within ``timeout``
(a readiness probe takes the instance out of a load balancer while they do
not, without restarting it).
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from relayna.api._lifespan import RelaynaRuntime
from relayna.api._openapi import Operation, ResponseSpec, document, json_content
from relayna.api._routes import JSONResponse
from relayna.errors import RelaynaError

__all__ = ["health_routes"]


async def _check(probe: Any, within: float) -> str:
    try:
        with anyio.fail_after(within):
            await probe()
    except TimeoutError:
        return f"error: no answer within {within:g}s"
    except RelaynaError as exc:
        return f"error: {type(exc).__name__}: {exc}"[:300]
    return "ok"


async def readiness(runtime: RelaynaRuntime | None, within: float) -> tuple[bool, dict[str, Any]]:
    """``(ready, body)`` of ``/readyz`` for ``runtime``: store ping + a broker round trip."""
    if runtime is None:
        return False, {"status": "unavailable", "detail": "relayna runtime is not running"}
    if runtime.shutdown_event.is_set():
        return False, {"status": "unavailable", "detail": "shutting down"}
    checks = {"store": await _check(runtime.store.ping, within)}
    broker, queue = runtime.broker, runtime.status_queue
    if broker is not None:
        if queue is not None:

            async def probe() -> None:
                await broker.inspect_queue(queue)  # a round trip on the connection

            checks["broker"] = await _check(probe, within)
        else:
            checks["broker"] = "ok"
    ready = all(value == "ok" for value in checks.values())
    return ready, {"status": "ready" if ready else "unavailable", "checks": checks}


_LIVE = {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}}
_READY = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"enum": ["ready", "unavailable"]},
        "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        "detail": {"type": "string"},
    },
}


def _liveness_operation() -> Operation:
    return Operation(
        summary="Liveness: the process serves HTTP",
        responses={200: ResponseSpec("Alive", json_content(_LIVE))},
        tags=("health",),
        operation_id="healthz",
    )


def _readiness_operation() -> Operation:
    return Operation(
        summary="Readiness: the runtime runs and its store and broker answer",
        responses={
            200: ResponseSpec("Ready", json_content(_READY)),
            503: ResponseSpec(
                "Not ready (a failing check, starting or stopping)", json_content(_READY)
            ),
        },
        tags=("health",),
        operation_id="readyz",
    )


def health_routes(
    *,
    liveness_path: str = "/healthz",
    readiness_path: str = "/readyz",
    state_key: str = "relayna",
    timeout: float = 2.0,
) -> list[BaseRoute]:
    """``GET {liveness_path}`` and ``GET {readiness_path}`` for any Starlette app.

    Liveness: always ``200 {"status": "ok"}``. Readiness: ``200 {"status":
    "ready", "checks": {"store": "ok", "broker": "ok"}}``, or ``503`` with
    ``"status": "unavailable"`` and the failing check's error (or a
    ``detail`` when the runtime is not running or shutting down). The
    runtime is the one :func:`relayna_lifespan` put on ``request.state``.
    """

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        runtime = getattr(request.state, state_key, None)
        ready, body = await readiness(
            runtime if isinstance(runtime, RelaynaRuntime) else None, timeout
        )
        return JSONResponse(body, status_code=200 if ready else 503)

    return [
        document(Route(liveness_path, healthz, methods=["GET"]), get=_liveness_operation()),
        document(Route(readiness_path, readyz, methods=["GET"]), get=_readiness_operation()),
    ]
