"""Status route factory: latest status, the SSE event stream, stream history.

Every route validates the task id (identifier rule) before touching Redis
and answers errors as ``{"detail": ...}``. The runtime is read from
``request.state.<state_key>`` (see :func:`relayna.api.relayna_lifespan`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import anyio
import orjson
from starlette.convertors import CONVERTOR_TYPES, Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from relayna.api._history import HistoryParams, history_endpoint
from relayna.api._lifespan import RelaynaRuntime
from relayna.api._limits import StreamLimiter, client_ip
from relayna.api._openapi import document
from relayna.api._route_docs import history_operation, latest_operation, stream_operation
from relayna.api._route_ids import STATUS_EVENTS, STATUS_HISTORY, STATUS_LATEST
from relayna.api._sse import StatusEventStreamResponse, not_found_detail
from relayna.contracts import (
    ContractAliasConfig,
    TerminalStatusSet,
    is_valid_identifier,
    public_output_aliases,
)
from relayna.status import EventDict, wait_for_history

__all__ = ["JSONResponse", "error_response", "invalid_identifier", "status_routes"]


class _AnyConvertor(Convertor[str]):
    """Matches any non-empty path remainder, CR/LF included, so that a bad id
    gets a 422 from the route instead of a 404 from the router."""

    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


if "relayna_id" not in CONVERTOR_TYPES:
    register_url_convertor("relayna_id", _AnyConvertor())


class JSONResponse(Response):
    """Compact JSON via orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(status_code: int, detail: Any) -> Response:
    return JSONResponse({"detail": detail}, status_code=status_code)


def invalid_identifier(name: str, where: str = "path") -> Response:
    """The 422 answer for an id that fails the identifier rule."""
    return error_response(
        422, [{"loc": [where, name], "msg": "invalid identifier", "type": "value_error"}]
    )


class _Endpoint:
    """An ASGI endpoint that may answer with any ASGI app (the SSE response is one)."""

    def __init__(self, handler: Callable[[Request], Any]) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        response = await self.handler(request)
        await response(scope, receive, send)


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/event-stream" not in accept


def status_routes(
    *,
    aliases: ContractAliasConfig | None = None,
    events_path: str = "/events",
    status_path: str = "/status",
    history_path: str | None = "/history",
    terminal_statuses: Iterable[str] | None = None,
    keepalive: float = 15.0,
    buffer_size: int = 1000,
    retry_ms: int | None = None,
    state_key: str = "relayna",
    latest_retry_attempts: int = 0,
    latest_retry_delay: float = 0.05,
    max_streams_per_client: int | None = 100,
    stream_limit_retry_after: int = 5,
    principal: Callable[[Request], str] = client_ip,
    max_wait: float = 300.0,
) -> list[BaseRoute]:
    """Routes ``GET {status_path}/{id}``, ``GET {events_path}/{id}`` and ``GET {history_path}``.

    Args:
        aliases: the HTTP alias of ``task_id`` (e.g. ``documentId``) names the
            path parameter, the ``/history`` query parameter and the JSON
            field; payload aliases rename keys of the returned events.
        terminal_statuses: where SSE streams stop (default completed, failed,
            cancelled, expired).
        keepalive / buffer_size / retry_ms: SSE keep-alive interval, per-client
            buffer (items), and the ``retry:`` hint sent with ``ready``.
        state_key: where the runtime lives on ``request.state``.
        latest_retry_attempts / latest_retry_delay: ``/status`` re-reads while
            nothing is stored yet (0 = answer 404 at once).
        history_path: ``None`` leaves out the stream history route.
        max_streams_per_client: concurrent SSE streams per principal (client
            IP by default, see ``principal``); one more is answered ``429``
            with ``Retry-After: stream_limit_retry_after``. ``None``: no limit.
        max_wait: the largest ``/events/{id}?wait=`` (seconds); larger values
            are clamped to it. Without ``wait`` a stream for a task with no
            status waits as long as it lives (the task may be queued); with
            it, the answer is ``404`` once ``wait`` seconds pass with nothing
            stored.
    """
    limiter = StreamLimiter(max_streams_per_client, principal)
    id_name = (aliases.http_alias_for("task_id") if aliases else None) or "task_id"
    terminal = (
        TerminalStatusSet(frozenset(terminal_statuses))
        if terminal_statuses
        else TerminalStatusSet()
    )

    def output(event: EventDict) -> Mapping[str, Any]:
        return public_output_aliases(event, aliases)

    def runtime_of(request: Request) -> RelaynaRuntime | None:
        runtime = getattr(request.state, state_key, None)
        return runtime if isinstance(runtime, RelaynaRuntime) else None

    def task_id_of(request: Request) -> str | Response:
        task_id = request.path_params.get(id_name)
        if not is_valid_identifier(task_id):
            return invalid_identifier(id_name)
        return str(task_id)

    async def latest(request: Request) -> Response:
        task_id = task_id_of(request)
        if isinstance(task_id, Response):
            return task_id
        runtime = runtime_of(request)
        if runtime is None:
            return error_response(503, "relayna runtime is not running")
        event = await runtime.status.latest(task_id)
        for _ in range(max(latest_retry_attempts, 0)):
            if event is not None:
                break
            await anyio.sleep(latest_retry_delay)
            event = await runtime.status.latest(task_id)
        if event is None:
            return error_response(404, f"No status found for {id_name} '{task_id}'")
        return JSONResponse({id_name: task_id, "event": output(event)})

    def wait_of(request: Request) -> float | Response | None:
        raw = request.query_params.get("wait")
        if raw is None:
            return None
        try:
            wait = float(raw)
        except ValueError:
            wait = math.nan
        if not (math.isfinite(wait) and wait >= 0):
            return error_response(
                422,
                [{"loc": ["query", "wait"], "msg": "seconds >= 0", "type": "value_error"}],
            )
        return min(wait, max_wait)

    async def events(request: Request) -> Any:
        task_id = task_id_of(request)
        if isinstance(task_id, Response):
            return task_id
        wait = wait_of(request)
        if isinstance(wait, Response):
            return wait
        runtime = runtime_of(request)
        if runtime is None:
            return error_response(503, "relayna runtime is not running")
        if _wants_json(request):
            if wait is None:
                newest_first: list[EventDict] | None = await runtime.status.history(task_id)
            else:
                newest_first = await wait_for_history(runtime.status, task_id, wait)
            if newest_first is None:
                return error_response(404, not_found_detail(id_name, task_id, wait or 0))
            history = newest_first[::-1]
            done = bool(history) and terminal.is_terminal(history[-1].get("status"))
            return JSONResponse(
                {
                    id_name: task_id,
                    "count": len(history),
                    "terminal": done,
                    "events": [output(e) for e in history],
                }
            )
        key = limiter.principal(request)
        if not limiter.try_acquire(key):
            runtime.stream_stats.rejected_over_limit += 1
            return JSONResponse(
                {"detail": "too many concurrent streams"},
                status_code=429,
                headers={"retry-after": str(stream_limit_retry_after)},
            )
        last_event_id = request.headers.get("last-event-id")
        if last_event_id is None:
            last_event_id = request.query_params.get("last_event_id")
        return StatusEventStreamResponse(
            runtime.status,
            task_id,
            last_event_id=last_event_id,
            terminal_statuses=terminal.statuses,
            keepalive=keepalive,
            buffer_size=buffer_size,
            shutdown=runtime.shutdown_event,
            stats=runtime.stream_stats,
            retry_ms=retry_ms,
            output=output,
            on_close=lambda: limiter.release(key),
            wait=wait,
            id_name=id_name,
        )

    async def history(request: Request) -> Response:
        runtime = runtime_of(request)
        params = HistoryParams.parse(request.query_params, id_name=id_name)
        if isinstance(params, str):
            return error_response(422, params)
        if runtime is None:
            return error_response(503, "relayna runtime is not running")
        result = await history_endpoint(runtime, params, terminal=terminal)
        if isinstance(result, tuple):
            return error_response(*result)
        events_out = [output(e) for e in result.events]
        body: dict[str, Any] = {
            "count": len(events_out),
            "events": events_out,
            "stopped_by": result.stopped_by,
            "scanned": result.scanned,
            "skipped": result.skipped,
        }
        if params.task_id is not None:
            body[id_name] = params.task_id
        return JSONResponse(body)

    routes: list[BaseRoute] = [
        document(
            Route(
                f"{status_path}/{{{id_name}:relayna_id}}",
                _Endpoint(latest),
                methods=["GET"],
                name=STATUS_LATEST,
            ),
            get=latest_operation(id_name, aliases),
        ),
        document(
            Route(
                f"{events_path}/{{{id_name}:relayna_id}}",
                _Endpoint(events),
                methods=["GET"],
                name=STATUS_EVENTS,
            ),
            get=stream_operation(id_name, aliases, max_wait=max_wait),
        ),
    ]
    if history_path is not None:
        routes.append(
            document(
                Route(history_path, _Endpoint(history), methods=["GET"], name=STATUS_HISTORY),
                get=history_operation(id_name, aliases),
            )
        )
    return routes
