"""Task traces (Tempo) and the trace path.

``GET /studio/tasks/{service_id}/{task_id}/traces[?trace_id=…]`` →
``{service_id, task_id, trace_ids[], spans[StudioTraceSpan], warnings[],
backend_url, errors[]}``. Without ``trace_id`` the ids are discovered in
the task's detail (status, history, DLQ, graph; :func:`task_detail`) and in
its logs (when the service has a ``log_config``; 100 lines of the task
window). At most :data:`~relayna_studio._tempo.MAX_TRACE_IDS` traces are
fetched, concurrently; a trace Tempo does not know (404) is a warning, a
failed fetch an entry of ``errors[]``; only when every fetch failed does
the route answer the error itself.

``GET /studio/tasks/{service_id}/{task_id}/trace-path`` joins the same
spans with the graph, DLQ items and Studio's retained task events
(:mod:`relayna_studio._trace_path`).
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from relayna.errors import ContractError
from relayna_studio._errors import UpstreamError
from relayna_studio._federation import Federation
from relayna_studio._http import Ctx, HTTPProblem, JSONResponse, query_problem
from relayna_studio._providers import provider_get, raise_first, shape_error
from relayna_studio._querylang import format_ns
from relayna_studio._routes_events import event_store
from relayna_studio._routes_telemetry import fetch_logs
from relayna_studio._task_detail import task_detail
from relayna_studio._telemetry_params import config_of, lifecycle_window, query_params
from relayna_studio._tempo import (
    MAX_TRACE_IDS,
    discover_trace_ids,
    normalize_trace,
    public_url,
    trace_url,
    validate_trace_id,
)
from relayna_studio._trace_path import MAX_EVENTS, build_trace_path

__all__ = ["fetch_traces", "task_trace_path", "task_traces"]


async def _discover(
    fed: Federation, record: dict[str, Any], task_id: str
) -> tuple[list[str], dict[str, Any] | None, list[str]]:
    """(trace ids, the task detail or ``None``, warnings)."""
    service_id = str(record["service_id"])
    warnings: list[str] = []
    detail: dict[str, Any] | None = None
    try:
        detail = await task_detail(fed, service_id, task_id, "none")
    except UpstreamError as exc:
        warnings.append(f"task detail: {exc.detail}")
    else:
        sections = sorted({str(e["section"]) for e in detail["errors"]})
        if sections:
            warnings.append(f"task detail: could not read {', '.join(sections)}")
    logs: dict[str, Any] | None = None
    if isinstance(record.get("log_config"), dict):
        params: dict[str, Any] = {"limit": "100"}
        padding = (record.get("metrics_config") or {}).get("task_window_padding_seconds", 120)
        window = (
            lifecycle_window(detail.get("execution_graph"), detail.get("history"), padding)
            if detail
            else None
        )
        if window is not None:
            params["from"], params["to"] = format_ns(window[0]), format_ns(window[1])
        try:
            logs = await fetch_logs(fed, service_id, params, task_id=task_id)
        except UpstreamError as exc:
            warnings.append(f"task logs: {exc.detail}")
        except HTTPProblem as exc:
            warnings.append(f"task logs: {exc.detail}")
    return discover_trace_ids(detail, logs), detail, warnings


async def fetch_traces(
    fed: Federation, service_id: str, task_id: str, requested: list[str]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the traces answer, the task detail when it was read for discovery)."""
    record, config = await config_of(fed, service_id, "trace_config")
    detail = None
    warnings: list[str] = []
    if requested:
        ids = []
        for value in requested:
            try:
                ids.append(validate_trace_id(value))
            except ContractError:
                raise query_problem(
                    "trace_id", "32 lower-case hex characters, not all zero"
                ) from None
    else:
        ids, detail, warnings = await _discover(fed, record, task_id)
    if len(ids) > MAX_TRACE_IDS:
        warnings.append(f"{len(ids)} trace ids found; only the first {MAX_TRACE_IDS} are shown")
        ids = ids[:MAX_TRACE_IDS]
    if not ids and not requested:
        warnings.append("no trace id found in the task's detail or logs")
    spans: dict[str, list[dict[str, Any]]] = {}
    errors: list[dict[str, Any]] = []

    async def one(trace_id: str) -> None:
        try:
            body = await provider_get(
                fed.runtime, "tempo", service_id, trace_url(config, trace_id),
                tenant_id=config.get("tenant_id"), allow_404=True,
            )  # fmt: skip
            if body is None:
                warnings.append(f"trace {trace_id} is not in Tempo (yet)")
                return
            try:
                found, notes = normalize_trace(body)
            except ContractError as exc:
                raise shape_error("tempo", service_id, exc) from None
            spans[trace_id] = found
            warnings.extend(f"trace {trace_id}: {n}" for n in notes)
        except UpstreamError as exc:
            errors.append({**exc.to_json(), "section": f"trace:{trace_id}"})

    async with anyio.create_task_group() as tg:
        for trace_id in ids:
            tg.start_soon(one, trace_id)
    if errors and not spans and len(errors) == len(ids):
        raise_first(errors, service_id)
    all_spans = sorted(
        (s for t in ids for s in spans.get(t, [])),
        key=lambda s: (s["start_time"] or "", s["span_id"]),
    )
    answer = {
        "service_id": service_id,
        "task_id": task_id,
        "trace_ids": ids,
        "spans": all_spans,
        "warnings": sorted(warnings),
        "backend_url": public_url(config),
        "errors": sorted(errors, key=lambda e: str(e["section"])),
    }
    return answer, detail


async def task_traces(request: Request, ctx: Ctx, service_id: str, task_id: str) -> Response:
    params = query_params(request, ("trace_id",), repeatable=("trace_id",))
    answer, _ = await fetch_traces(
        Federation(ctx.runtime), service_id, task_id, params.get("trace_id") or []
    )
    return JSONResponse(answer)


async def task_trace_path(request: Request, ctx: Ctx, service_id: str, task_id: str) -> Response:
    query_params(request, ())
    fed = Federation(ctx.runtime)
    traces, detail = await fetch_traces(fed, service_id, task_id, [])
    if detail is None:
        detail = await task_detail(fed, service_id, task_id, "none")
    events, _ = await event_store(ctx.runtime).page(
        service_id, task_id=task_id, filters={}, time_from=None, time_to=None, before=None,
        limit=MAX_EVENTS + 1,
    )  # fmt: skip
    path = build_trace_path(
        task_id,
        graph=detail.get("execution_graph"),
        history=list(detail.get("history") or []),
        dlq_items=list(detail.get("dlq_messages") or []),
        events=events,
        spans=traces["spans"],
        correlation_id=(detail.get("task_ref") or {}).get("correlation_id"),
    )
    path["warnings"] = sorted(traces["warnings"] + path["warnings"])
    path["errors"] = traces["errors"] + list(detail.get("errors") or [])
    path["service_id"] = service_id
    path["backend_url"] = traces["backend_url"]
    return JSONResponse(path)
