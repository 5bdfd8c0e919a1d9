"""Token management, stream tickets, ``whoami`` and the audit log."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from relayna.errors import ContractError
from relayna_studio._http import (
    Ctx,
    HTTPProblem,
    JSONResponse,
    query_problem,
    read_json,
    studio_route,
)
from relayna_studio._models import validate_service_id

__all__ = ["auth_routes", "int_param"]

_AUDIT_FILTERS = ("actor", "action", "target", "outcome")


def int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise query_problem(name, f"must be an integer {low}..{high}")
    return int(raw)


def auth_routes() -> list[BaseRoute]:
    async def whoami(request: Request, ctx: Ctx) -> Response:
        p = ctx.principal
        return JSONResponse(
            {
                "actor": p.actor,
                "role": p.role,
                "token_id": p.token_id,
                "service_id": p.service_id,
                "auth_enabled": ctx.runtime.settings.auth_enabled,
            }
        )

    async def ticket(request: Request, ctx: Ctx) -> Response:
        value, ttl = await ctx.runtime.tokens.issue_ticket(ctx.principal)
        return JSONResponse({"ticket": value, "expires_in": ttl}, status_code=201)

    async def list_tokens(request: Request, ctx: Ctx) -> Response:
        tokens = await ctx.runtime.tokens.list()
        return JSONResponse({"count": len(tokens), "tokens": tokens})

    async def create_token(request: Request, ctx: Ctx) -> Response:
        body = await read_json(request, ctx.runtime.settings.request_max_body_bytes)
        if not isinstance(body, dict):
            raise ContractError("invalid token request", errors=[("body", "expected an object")])
        unknown = sorted(set(body) - {"name", "role", "service_id"})
        if unknown:
            raise ContractError(
                "invalid token request", errors=[(k, "unknown field") for k in unknown]
            )
        service_id = body.get("service_id")
        if service_id is not None:
            service_id = validate_service_id(service_id)
        name, role = body.get("name"), body.get("role")
        token, record = await ctx.runtime.tokens.create(  # "" fails create's own checks
            name=name if isinstance(name, str) else "",
            role=role if isinstance(role, str) else "",
            service_id=service_id,
            created_by=ctx.principal.actor,
        )
        return JSONResponse({"token": token, **record}, status_code=201)

    async def revoke_token(request: Request, ctx: Ctx) -> Response:
        if not await ctx.runtime.tokens.revoke(str(request.path_params["token_id"])):
            raise HTTPProblem(404, "no such token")
        return Response(status_code=204)

    async def audit(request: Request, ctx: Ctx) -> Response:
        limit = int_param(request, "limit", 100, 1, 500)
        before = int_param(request, "before", None, 1, 2**62)
        filters = {}
        for name in _AUDIT_FILTERS:
            value = request.query_params.get(name)
            if value is not None:
                if not value or len(value) > 256:
                    raise query_problem(name, "1..256 characters")
                filters[name] = value
        unknown = sorted(set(request.query_params) - {"limit", "before", *_AUDIT_FILTERS})
        if unknown:
            raise query_problem(unknown[0], "unknown query parameter")
        assert limit is not None
        items, cursor = await ctx.runtime.audit.page(limit=limit, before=before, filters=filters)
        return JSONResponse(
            {
                "count": len(items),
                "items": items,
                "next_cursor": None if cursor is None else str(cursor),
            }
        )

    return [
        studio_route("/studio/auth/whoami", whoami, methods=["GET"], role=None),
        studio_route(
            "/studio/auth/stream-ticket",
            ticket,
            methods=["POST"],
            role="reader",
            status=201,
            body=False,
        ),
        studio_route("/studio/auth/tokens", list_tokens, methods=["GET"], role="admin"),
        studio_route(
            "/studio/auth/tokens",
            create_token,
            methods=["POST"],
            role="admin",
            action="token.create",
            status=201,
        ),
        studio_route(
            "/studio/auth/tokens/{token_id}",
            revoke_token,
            methods=["DELETE"],
            role="admin",
            action="token.revoke",
        ),
        studio_route(
            "/studio/audit",
            audit,
            methods=["GET"],
            role="admin",
            query=("limit", "before", *_AUDIT_FILTERS),
        ),
    ]
