"""The HTTP edge of Studio: authentication, roles, audit, error mapping, bodies.

Every ``/studio`` route is built with :func:`studio_route`, which

1. authenticates the caller (``Authorization: Bearer <token>``; a stream
   route also takes a single-use ``?ticket=``) unless auth is off,
2. checks the route's role,
3. runs the handler and maps every typed error to one answer (never a 500
   for bad input; an unexpected exception is logged once and answered 500),
4. appends an audit entry for every mutating method (POST, PATCH, DELETE),
   including refused attempts,
5. counts the request by route template, method and status class.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from relayna.api import (
    Operation,
    Parameter,
    ResponseSpec,
    document,
    error_responses,
    json_content,
)
from relayna.contracts import Limits, loads
from relayna.errors import ContractError, EnvelopeTooLarge, StoreError
from relayna_studio._auth import Principal
from relayna_studio._errors import (
    AccessDenied,
    EgressDenied,
    RegistryConflict,
    ServiceNotFound,
    UpstreamError,
)

if TYPE_CHECKING:
    from relayna_studio._runtime import StudioRuntime

__all__ = [
    "Ctx",
    "HTTPProblem",
    "JSONResponse",
    "error_response",
    "read_json",
    "studio_route",
]

log = logging.getLogger("relayna_studio.http")

_MUTATING = frozenset({"POST", "PATCH", "PUT", "DELETE"})
ANONYMOUS = Principal(actor="anonymous", role="admin")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(status: int, detail: Any, **extra: Any) -> Response:
    headers = {"www-authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


class HTTPProblem(Exception):
    """A handler's own 4xx answer (bad query parameter, unsupported media type...)."""

    def __init__(self, status: int, detail: Any, **extra: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail
        self.extra = extra


def query_problem(name: str, message: str) -> HTTPProblem:
    return HTTPProblem(422, [{"loc": ["query", name], "msg": message, "type": "value_error"}])


async def read_json(request: Request, max_bytes: int) -> Any:
    """The request body through relayna's strict JSON codec, size-bounded while reading.

    Raises:
        HTTPProblem: 415 (not JSON), 413 (too large), 400 (not valid JSON).
    """
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise HTTPProblem(415, "Content-Type must be application/json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise HTTPProblem(413, f"body larger than {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HTTPProblem(413, f"body larger than {max_bytes} bytes")
    try:
        return loads(bytes(body), limits=Limits(max_body_bytes=max_bytes), allow_non_finite=False)
    except EnvelopeTooLarge:
        raise HTTPProblem(413, f"body larger than {max_bytes} bytes") from None
    except ContractError as exc:
        raise HTTPProblem(400, f"body is not valid JSON: {exc}") from None


def contract_detail(exc: ContractError) -> list[dict[str, Any]]:
    if not exc.errors:
        return [{"loc": ["body"], "msg": str(exc), "type": exc.reason}]
    return [
        {
            "loc": ["body", *[p for p in path.split(".") if p and p != "body"]],
            "msg": msg,
            "type": exc.reason,
        }
        for path, msg in exc.errors
    ]


def map_error(exc: Exception, runtime: StudioRuntime) -> Response | None:
    """The answer for a typed error, or ``None`` when ``exc`` is not one."""
    if isinstance(exc, HTTPProblem):
        return error_response(exc.status, exc.detail, **exc.extra)
    if isinstance(exc, AccessDenied):
        return error_response(exc.status, str(exc))
    if isinstance(exc, UpstreamError):
        return JSONResponse(exc.to_json(), status_code=exc.status)
    if isinstance(exc, ServiceNotFound):
        return JSONResponse(
            {
                "detail": str(exc),
                "code": "service_not_found",
                "service_id": exc.service_id,
                "upstream_status": None,
                "retryable": False,
            },
            status_code=404,
        )
    if isinstance(exc, RegistryConflict):
        return error_response(409, str(exc), code="conflict", field=exc.field)
    if isinstance(exc, EgressDenied):
        runtime.metrics.egress_denied.labels(exc.reason).inc()
        return error_response(422, str(exc), code="egress_denied", reason=exc.reason)
    if isinstance(exc, EnvelopeTooLarge):
        return error_response(413, str(exc))
    if isinstance(exc, ContractError):
        return error_response(422, contract_detail(exc))
    if isinstance(exc, StoreError):
        log.warning("store error answering a request: %s", exc)
        return error_response(503, "the Studio store is unavailable", retryable=True)
    return None


@attrs.frozen
class Ctx:
    """What a handler gets besides the request."""

    runtime: StudioRuntime
    principal: Principal


Handler = Callable[[Request, Ctx], Awaitable[Any]]


def _target(params: Mapping[str, Any]) -> str | None:
    values = [str(v) for v in params.values()]
    return "/".join(values) if values else None


class _Endpoint:
    def __init__(
        self,
        handler: Handler,
        *,
        template: str,
        role: str | None,
        action: str | None,
        allow_ticket: bool,
    ) -> None:
        self.handler = handler
        self.template = template
        self.role = role
        self.action = action
        self.allow_ticket = allow_ticket

    async def _principal(self, request: Request, runtime: StudioRuntime) -> Principal:
        if not runtime.settings.auth_enabled:
            return ANONYMOUS
        header = request.headers.get("authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AccessDenied("Authorization must be 'Bearer <token>'", status=401)
            principal = await runtime.tokens.authenticate(token.strip())
            if principal is None:
                raise AccessDenied("invalid or revoked token", status=401)
            return principal
        ticket = request.query_params.get("ticket")
        if self.allow_ticket and ticket:
            principal = await runtime.tokens.redeem_ticket(ticket)
            if principal is None:
                raise AccessDenied("invalid, used or expired stream ticket", status=401)
            return principal
        raise AccessDenied("authentication required: Authorization: Bearer <token>", status=401)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        runtime: StudioRuntime = request.app.state.studio_runtime
        principal: Principal | None = None
        response: Any
        try:
            principal = await self._principal(request, runtime)
            if self.role is not None and not principal.allows(self.role):
                raise AccessDenied(
                    f"role {principal.role!r} may not do this (needs {self.role})", status=403
                )
            response = await self.handler(request, Ctx(runtime, principal))
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            mapped = map_error(exc, runtime)
            if mapped is None:
                log.exception("unexpected error in %s %s", request.method, self.template)
                mapped = error_response(500, "internal error")
            response = mapped
        status = int(getattr(response, "status_code", 200))
        if self.action is not None and request.method in _MUTATING:
            await self._audit(request, runtime, principal, status)
        runtime.metrics.http_requests.labels(
            self.template, request.method, f"{status // 100}xx"
        ).inc()
        await response(scope, receive, send)

    async def _audit(
        self, request: Request, runtime: StudioRuntime, principal: Principal | None, status: int
    ) -> None:
        outcome = "success" if status < 400 else "denied" if status in (401, 403) else "failure"
        entry = {
            "actor": principal.actor if principal else None,
            "token_id": principal.token_id if principal else None,
            "role": principal.role if principal else None,
            "action": self.action,
            "target": _target(request.path_params),
            "method": request.method,
            "path": request.url.path,
            "outcome": outcome,
            "status_code": status,
        }
        try:
            await runtime.audit.append(entry)
        except StoreError as exc:  # the answer stands; the failure is visible in the log
            log.error("could not write the audit entry for %s %s: %s", request.method, exc, entry)
            return
        runtime.metrics.audit_entries.labels(outcome).inc()


_PATH_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
_ERROR_CODES = (400, 401, 403, 404, 409, 413, 415, 422, 429, 501, 502, 503, 504)
_SUCCESS = {"POST": 200, "PATCH": 200, "GET": 200, "DELETE": 204}


def _operation(
    path: str,
    method: str,
    handler: Handler,
    *,
    role: str | None,
    query: tuple[str, ...],
    status: int | None,
    stream: bool,
    body: bool,
) -> Operation:
    """The OpenAPI operation of a Studio route, from what the route declares."""
    doc = (handler.__doc__ or "").strip().splitlines()
    summary = doc[0] if doc else f"{method} {path}"
    code = status or _SUCCESS[method]
    if code == 204:
        success = ResponseSpec("Done (no body)")
    elif stream:
        success = ResponseSpec("Server-Sent Events", {"text/event-stream": {"type": "string"}})
    else:
        success = ResponseSpec("OK", json_content({"type": "object"}))
    parameters = [Parameter(name, "path", required=True) for name in _PATH_PARAM.findall(path)]
    parameters += [Parameter(name, "query") for name in query]
    if role is not None:
        parameters.append(
            Parameter("authorization", "header", description=f"Bearer token (role {role} or above)")
        )
    return Operation(
        summary=summary,
        responses={code: success, **error_responses(*_ERROR_CODES)},
        parameters=parameters,
        request_body=json_content({"type": "object"}) if body else None,
        tags=("studio",),
        description=f"Needs role: {role or 'any authenticated caller'}.",
    )


def studio_route(
    path: str,
    handler: Handler,
    *,
    methods: list[str],
    role: str | None,
    action: str | None = None,
    allow_ticket: bool = False,
    query: tuple[str, ...] = (),
    status: int | None = None,
    stream: bool = False,
    body: bool | None = None,
) -> Route:
    """A Starlette route with Studio's auth, roles, audit, error mapping and its
    OpenAPI operation (relayna's :func:`relayna.api.document`)."""
    route = Route(
        path,
        _Endpoint(handler, template=path, role=role, action=action, allow_ticket=allow_ticket),
        methods=methods,
    )
    for method in methods:
        has_body = body if body is not None else method in ("POST", "PATCH")
        operation = _operation(
            path,
            method,
            handler,
            role=role,
            query=query,
            status=status,
            stream=stream,
            body=has_body,
        )
        document(route, **{method.lower(): operation})
    return route
