"""Registry, health and Gateway catalog routes (ANCHOR §2.2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from relayna_studio._capabilities import fetch_capabilities
from relayna_studio._errors import EgressDenied
from relayna_studio._gateway import build_gateway_catalog
from relayna_studio._health_service import HealthService
from relayna_studio._http import Ctx, JSONResponse, read_json, studio_route
from relayna_studio._models import (
    apply_update,
    config_urls,
    parse_create,
    parse_update,
    validate_service_id,
)
from relayna_studio._runtime import StudioRuntime
from relayna_studio._timefmt import format_time, now_utc
from relayna_studio._urls import parse_base_url

__all__ = ["check_egress", "registry_routes"]


async def check_egress(runtime: StudioRuntime, record: Mapping[str, Any]) -> None:
    """Every URL of ``record`` against the egress policy, resolved addresses included.

    A name that does not resolve (yet) is accepted here: nothing can be
    reached through it, and every request checks again at connect time.

    Raises:
        EgressDenied: with the field in the message.
    """
    for field, url in config_urls(record):
        target = parse_base_url(url, field)
        try:
            with anyio.fail_after(runtime.settings.federation_timeout_seconds):
                await runtime.egress.backend.addresses(target.host, target.effective_port)
        except TimeoutError:
            continue
        except EgressDenied as exc:
            if exc.reason == "resolution_failed":
                continue
            raise EgressDenied(f"{field}: {exc}", reason=exc.reason, host=exc.host) from None


def _sort_key(record: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(record["environment"]), str(record["name"]).lower(), str(record["service_id"]))


def registry_routes() -> list[BaseRoute]:
    async def with_health(ctx: Ctx, record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "health": await HealthService(ctx.runtime).document(record)}

    async def create(request: Request, ctx: Ctx) -> Response:
        record = parse_create(await read_json(request, ctx.runtime.settings.request_max_body_bytes))
        await check_egress(ctx.runtime, record)
        created = await ctx.runtime.registry.create(record)
        return JSONResponse(await with_health(ctx, created), status_code=201)

    async def list_services(request: Request, ctx: Ctx) -> Response:
        records = sorted(await ctx.runtime.registry.list(), key=_sort_key)
        docs = await HealthService(ctx.runtime).documents(records)
        services = [{**r, "health": d} for r, d in zip(records, docs, strict=True)]
        return JSONResponse({"count": len(services), "services": services})

    async def gateway(request: Request, ctx: Ctx) -> Response:
        records = sorted(await ctx.runtime.registry.list(), key=_sort_key)
        docs = await HealthService(ctx.runtime).documents(records)
        overall = {
            str(r["service_id"]): d["overall_status"]
            for r, d in zip(records, docs, strict=True)
            if d["overall_status"] != "unknown"
        }
        return JSONResponse(build_gateway_catalog(records, overall))

    def service_id_of(request: Request) -> str:
        return validate_service_id(request.path_params["service_id"])

    async def get_service(request: Request, ctx: Ctx) -> Response:
        record = await ctx.runtime.registry.require(service_id_of(request))
        return JSONResponse(await with_health(ctx, record))

    async def update(request: Request, ctx: Ctx) -> Response:
        service_id = service_id_of(request)
        changes = parse_update(
            await read_json(request, ctx.runtime.settings.request_max_body_bytes)
        )
        current = await ctx.runtime.registry.require(service_id)
        await check_egress(ctx.runtime, apply_update(current, changes))

        def change(record: dict[str, Any]) -> dict[str, Any]:
            return apply_update(record, changes)

        _old, new = await ctx.runtime.registry.update(service_id, change)
        return JSONResponse(await with_health(ctx, new))

    async def delete(request: Request, ctx: Ctx) -> Response:
        service_id = service_id_of(request)
        await ctx.runtime.registry.delete(service_id)
        await HealthService(ctx.runtime).store.delete(service_id)
        for hook in ctx.runtime.on_service_deleted:
            await hook(service_id)
        return Response(status_code=204)

    async def refresh(request: Request, ctx: Ctx) -> Response:
        service_id = service_id_of(request)
        record = await ctx.runtime.registry.require(service_id)
        document = await fetch_capabilities(ctx.runtime.egress, service_id, str(record["base_url"]))

        def change(current: dict[str, Any]) -> dict[str, Any]:
            status = current["status"] if current["status"] == "disabled" else "healthy"
            return {
                **current,
                "capabilities": document,
                "last_seen_at": format_time(now_utc()),
                "status": status,
            }

        await ctx.runtime.registry.update(service_id, change)
        await HealthService(ctx.runtime).refresh(service_id)
        return JSONResponse(await with_health(ctx, await ctx.runtime.registry.require(service_id)))

    async def get_health(request: Request, ctx: Ctx) -> Response:
        record = await ctx.runtime.registry.require(service_id_of(request))
        return JSONResponse(await HealthService(ctx.runtime).document(record))

    async def refresh_health(request: Request, ctx: Ctx) -> Response:
        return JSONResponse(await HealthService(ctx.runtime).refresh(service_id_of(request)))

    one = "/studio/services/{service_id}"
    return [
        studio_route(
            "/studio/services",
            create,
            methods=["POST"],
            role="admin",
            action="service.create",
            status=201,
        ),
        studio_route("/studio/services", list_services, methods=["GET"], role="reader"),
        studio_route("/studio/gateway/services", gateway, methods=["GET"], role="reader"),
        studio_route(one, get_service, methods=["GET"], role="reader"),
        studio_route(one, update, methods=["PATCH"], role="admin", action="service.update"),
        studio_route(one, delete, methods=["DELETE"], role="admin", action="service.delete"),
        studio_route(
            f"{one}/refresh",
            refresh,
            methods=["POST"],
            role="operator",
            action="service.refresh",
            body=False,
        ),
        studio_route(f"{one}/health", get_health, methods=["GET"], role="reader"),
        studio_route(
            f"{one}/health/refresh",
            refresh_health,
            methods=["POST"],
            role="operator",
            action="service.health_refresh",
            body=False,
        ),
    ]
