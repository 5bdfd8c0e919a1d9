"""Telemetry routes (ANCHOR §2.2): Loki logs, Prometheus metrics and pods, Tempo traces.

::

    GET /studio/services/{service_id}/logs       {count, items[StudioLogEntry], next_cursor}
    GET /studio/tasks/{service_id}/{task_id}/logs
    GET /studio/services/{service_id}/metrics    StudioMetricsResponse
    GET /studio/tasks/{service_id}/{task_id}/metrics
    GET /studio/services/{service_id}/pods       {service_id, count, pods[]}
    GET /studio/tasks/{service_id}/{task_id}/traces

Errors: 404 ``service_not_found``, 501 ``<config>_missing``, 422 for bad
parameters (before any outbound call), 502/504 for provider failures
(:mod:`relayna_studio._providers`). Metrics groups are fetched concurrently
and fail one by one: a failed group is an entry of ``errors[]`` (and a
warning), unless every group failed (then the route answers that error).
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from relayna.errors import ContractError
from relayna_studio._errors import UpstreamError
from relayna_studio._federation import Federation
from relayna_studio._http import Ctx, JSONResponse, query_problem, studio_route
from relayna_studio._loki import (
    MAX_LIMIT,
    LogRequest,
    boundary_to_complete,
    build_logql,
    group_params,
    loki_page,
    loki_params,
    parse_cursor,
)
from relayna_studio._models import validate_service_id
from relayna_studio._promql import (
    GROUPS,
    MetricsRequest,
    group_query,
    parse_matrix,
    pod_queries,
    pods_from,
    window_problem,
)
from relayna_studio._providers import provider_get, raise_first, shape_error
from relayna_studio._querylang import format_ns
from relayna_studio._telemetry_params import (
    DEFAULT_WINDOW_SECONDS,
    MAX_WINDOW_SECONDS,
    config_of,
    last,
    query_params,
    task_window,
    time_window,
)

__all__ = [
    "LOG_PARAMS",
    "METRICS_PARAMS",
    "fetch_logs",
    "task_logs",
    "task_metrics",
    "telemetry_routes",
]

LOG_PARAMS = (
    "task_id", "correlation_id", "level", "source", "pod", "query", "before", "from", "to", "limit",
)  # fmt: skip
METRICS_PARAMS = ("from", "to", "step", "group", "pod", "split_by_pod")
#: Prometheus range queries in flight for one request.
GROUP_CONCURRENCY = 8
_NS = 1_000_000_000
APPROXIMATE_WARNING = (
    "pod-level approximation: the series cover the pods that ran during the task window, "
    "not the task alone"
)


def _limit(params: dict[str, Any]) -> int:
    raw = params.get("limit")
    if raw is None:
        return 100
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise query_problem("limit", f"must be an integer 1..{MAX_LIMIT}")
    return int(raw)


async def fetch_logs(
    fed: Federation,
    service_id: str,
    params: dict[str, Any],
    *,
    task_id: str | None = None,
) -> dict[str, Any]:
    """One page of logs (service route, or task route with ``task_id``)."""
    record, config = await config_of(fed, service_id, "log_config")
    window = time_window(params)
    if window is None and task_id is not None:
        padding = (record.get("metrics_config") or {}).get("task_window_padding_seconds", 120)
        window, _ = await task_window(fed, service_id, task_id, padding)
    start, end = window or last(DEFAULT_WINDOW_SECONDS)
    try:
        cursor = parse_cursor(params["before"]) if "before" in params else None
        request = LogRequest(
            start_ns=start,
            end_ns=end + 1,  # ``to`` is inclusive; Loki's end is not
            limit=_limit(params),
            task_id=task_id if task_id is not None else params.get("task_id"),
            correlation_id=params.get("correlation_id"),
            level=params.get("level"),
            source=params.get("source"),
            pod=params.get("pod"),
            text=params.get("query"),
            cursor=cursor,
        )
        namespace = (record.get("metrics_config") or {}).get("namespace") or ""
        logql = build_logql(config, service_id, request, namespace=namespace)
    except ContractError as exc:
        field, message = exc.errors[0] if exc.errors else ("query", str(exc))
        raise query_problem(field, message) from None
    body = await provider_get(
        fed.runtime,
        "loki",
        service_id,
        str(config["base_url"]) + "/loki/api/v1/query_range",
        params=loki_params(logql, request),
        tenant_id=config.get("tenant_id"),
    )
    try:
        ns = boundary_to_complete(request, body)
        group = None
        if ns is not None:  # the page ends inside a nanosecond Loki may have cut
            group = await provider_get(
                fed.runtime, "loki", service_id,
                str(config["base_url"]) + "/loki/api/v1/query_range",
                params=group_params(logql, ns), tenant_id=config.get("tenant_id"),
            )  # fmt: skip
        return loki_page(config, service_id, request, body, group)
    except ContractError as exc:
        raise shape_error("loki", service_id, exc) from None


async def task_logs(request: Request, ctx: Ctx, service_id: str, task_id: str) -> Response:
    params = query_params(request, tuple(p for p in LOG_PARAMS if p != "task_id"))
    return JSONResponse(
        await fetch_logs(Federation(ctx.runtime), service_id, params, task_id=task_id)
    )


def _metrics_request(
    params: dict[str, Any], config: dict[str, Any], window: tuple[int, int]
) -> MetricsRequest:
    step = config.get("step_seconds", 30)
    if "step" in params:
        raw = params["step"]
        if not raw.isdigit() or not 5 <= int(raw) <= 3600:
            raise query_problem("step", "must be an integer 5..3600")
        step = int(raw)
    groups: list[str] = []
    for value in params.get("group") or []:
        for name in value.split(","):
            name = name.strip()
            if name not in GROUPS:
                raise query_problem("group", f"unknown group {name!r}; groups: {', '.join(GROUPS)}")
            if name not in groups:
                groups.append(name)
    split = params.get("split_by_pod", "false").lower()
    if split not in ("true", "false", "1", "0"):
        raise query_problem("split_by_pod", "true or false")
    start, end = window[0] / _NS, window[1] / _NS
    problem = window_problem(start, end, step, MAX_WINDOW_SECONDS)
    if problem is not None:
        field, message = problem.errors[0]
        raise query_problem(field, message)
    return MetricsRequest(
        start=start,
        end=end,
        step=step,
        groups=tuple(groups or GROUPS),
        pod=params.get("pod"),
        split_by_pod=split in ("true", "1"),
    )


async def fetch_metrics(
    fed: Federation, service_id: str, params: dict[str, Any], *, task_id: str | None = None
) -> dict[str, Any]:
    _record, config = await config_of(fed, service_id, "metrics_config")
    warnings: list[str] = []
    window = time_window(params)
    if window is None and task_id is not None:
        window, warnings = await task_window(
            fed, service_id, task_id, int(config.get("task_window_padding_seconds", 120))
        )
    window = window or last(DEFAULT_WINDOW_SECONDS)
    request = _metrics_request(params, config, window)
    series: dict[str, list[dict[str, Any]]] = {}
    errors: list[dict[str, Any]] = []
    limiter = anyio.CapacityLimiter(GROUP_CONCURRENCY)
    url = str(config["base_url"]) + "/api/v1/query_range"

    async def one(group: str) -> None:
        query = group_query(config, service_id, group, request)
        async with limiter:
            try:
                body = await provider_get(
                    fed.runtime, "prometheus", service_id, url,
                    params={"query": query, "start": f"{request.start:.3f}",
                            "end": f"{request.end:.3f}", "step": str(request.step)},
                )  # fmt: skip
                try:
                    series[group] = parse_matrix(body, group)
                except ContractError as exc:
                    raise shape_error("prometheus", service_id, exc) from None
            except UpstreamError as exc:
                errors.append({**exc.to_json(), "section": group})

    async with anyio.create_task_group() as tg:
        for group in request.groups:
            tg.start_soon(one, group)
    if errors and not series:
        raise_first(errors, service_id)
    errors.sort(key=lambda e: request.groups.index(e["section"]))
    warnings += [f"{e['section']}: {e['detail']}" for e in errors]
    if task_id is not None:
        warnings.insert(0, APPROXIMATE_WARNING)
    ordered = [s for g in request.groups for s in series.get(g, [])]
    return {
        "service_id": service_id,
        "task_id": task_id,
        "from": format_ns(int(request.start * _NS)),
        "to": format_ns(int(request.end * _NS)),
        "step_seconds": request.step,
        "approximate": task_id is not None,
        "warnings": warnings,
        "series": ordered,
        "errors": errors,
    }


async def task_metrics(request: Request, ctx: Ctx, service_id: str, task_id: str) -> Response:
    params = query_params(request, METRICS_PARAMS, repeatable=("group",))
    fed = Federation(ctx.runtime)
    return JSONResponse(await fetch_metrics(fed, service_id, params, task_id=task_id))


async def fetch_pods(fed: Federation, service_id: str) -> dict[str, Any]:
    _record, config = await config_of(fed, service_id, "metrics_config")
    labels_query, phase_query = pod_queries(config)
    url = str(config["base_url"]) + "/api/v1/query"
    answers: dict[str, Any] = {}
    failures: list[UpstreamError] = []

    async def one(name: str, query: str) -> None:
        try:
            answers[name] = await provider_get(
                fed.runtime, "prometheus", service_id, url, params={"query": query}
            )
        except UpstreamError as exc:  # one answer for the request, not an exception group
            failures.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, "labels", labels_query)
        tg.start_soon(one, "phase", phase_query)
    if failures:
        raise failures[0]
    try:
        pods = pods_from(config, answers["labels"], answers["phase"])
    except ContractError as exc:
        raise shape_error("prometheus", service_id, exc) from None
    return {"service_id": service_id, "count": len(pods), "pods": pods}


def telemetry_routes() -> list[BaseRoute]:
    def sid(request: Request) -> str:
        return validate_service_id(request.path_params["service_id"])

    async def service_logs(request: Request, ctx: Ctx) -> Response:
        """Logs of a service (Loki): newest first, paged with ``before``."""
        params = query_params(request, LOG_PARAMS)
        return JSONResponse(await fetch_logs(Federation(ctx.runtime), sid(request), params))

    async def service_metrics(request: Request, ctx: Ctx) -> Response:
        """Metrics of a service (Prometheus): Kubernetes and relayna runtime groups."""
        params = query_params(request, METRICS_PARAMS, repeatable=("group",))
        return JSONResponse(await fetch_metrics(Federation(ctx.runtime), sid(request), params))

    async def service_pods(request: Request, ctx: Ctx) -> Response:
        """The service's pods (``kube_pod_labels`` ownership) with phase and labels."""
        query_params(request, ())
        return JSONResponse(await fetch_pods(Federation(ctx.runtime), sid(request)))

    one = "/studio/services/{service_id}"
    return [
        studio_route(f"{one}/logs", service_logs, methods=["GET"], role="reader", query=LOG_PARAMS),
        studio_route(
            f"{one}/metrics", service_metrics, methods=["GET"], role="reader", query=METRICS_PARAMS
        ),
        studio_route(f"{one}/pods", service_pods, methods=["GET"], role="reader"),
    ]
