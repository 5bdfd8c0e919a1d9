"""Federated task detail: status, history, DLQ and graph concurrently; joins across services.

Sections are fetched in one task group; a section that fails becomes an
entry of ``errors[]`` (a FederatedError plus ``section``), never a failed
response. When the status route is unsupported, the latest status is the
last history event.

Joins (``join=correlation|lineage|all``): every candidate value (the
correlation id; for lineage also parent and child task ids) is looked up as
an exact task id in every other non-disabled service (status route,
falling back to history), at most 8 services at a time. A candidate whose
scan hit a service error is skipped with ``incomplete_join_candidate_scan``;
one found in more than one service is skipped with
``ambiguous_join_candidate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio

from relayna_studio._errors import UpstreamError
from relayna_studio._federation import Federation, payload_aliases, task_path
from relayna_studio._task_ref import build_task_ref

__all__ = ["JOIN_FANOUT", "task_detail"]

JOIN_FANOUT = 8
JOINS = ("none", "correlation", "lineage", "all")


async def _history(fed: Federation, service_id: str, task_id: str, record: Any) -> list[Any]:
    body = await fed.call(
        service_id,
        "status.history",
        "GET",
        "/history",
        params={"task_id": task_id, "start_offset": "first", "max_scan": 200},
        record=record,
    )
    events = body.get("events")
    return list(events) if isinstance(events, list) else []


async def task_detail(fed: Federation, service_id: str, task_id: str, join: str) -> dict[str, Any]:
    record = await fed.service(service_id)
    aliases = payload_aliases(record.get("capabilities"))
    sections: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []

    async def fetch(name: str, route: str, path: str, params: dict[str, Any] | None) -> None:
        try:
            sections[name] = await fed.call(
                service_id, route, "GET", path, params=params, record=record
            )
        except UpstreamError as exc:
            errors.append({**exc.to_json(), "section": name})

    async with anyio.create_task_group() as tg:
        tg.start_soon(
            fetch, "status", "status.latest", task_path("/status/{task_id}", task_id), None
        )
        tg.start_soon(
            fetch,
            "history",
            "status.history",
            "/history",
            {"task_id": task_id, "start_offset": "first", "max_scan": 200},
        )
        tg.start_soon(
            fetch, "dlq", "dlq.messages", "/dlq/messages", {"task_id": task_id, "limit": 50}
        )
        tg.start_soon(
            fetch,
            "graph",
            "execution.graph",
            task_path("/executions/{task_id}/graph", task_id),
            None,
        )
    history = sections.get("history", {}).get("events") or []
    if not isinstance(history, list):
        history = []
    latest = sections.get("status", {}).get("event")
    if latest is None and history:
        latest = history[-1]
    dlq_items = sections.get("dlq", {}).get("items") or []
    graph = sections.get("graph")
    ref = build_task_ref(
        service_id, task_id, events=[latest, *history], graph=graph, aliases=aliases
    )
    for item in dlq_items if isinstance(dlq_items, list) else []:
        if isinstance(item, dict):
            item["service_id"] = service_id
            item["task_ref"] = ref
    joined: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    if join in ("correlation", "lineage", "all"):
        candidates: list[str] = []
        if ref["correlation_id"]:
            candidates.append(ref["correlation_id"])
        if join in ("lineage", "all"):
            for r in [*ref["parent_refs"], *ref["child_refs"]]:
                if r["task_id"] not in candidates:
                    candidates.append(r["task_id"])
        joined, warnings = await _joins(fed, service_id, task_id, candidates)
    return {
        "service": {k: v for k, v in record.items() if not k.endswith("_config")},
        "service_id": service_id,
        "task_id": task_id,
        "task_ref": ref,
        "latest_status": latest,
        "history": history,
        "dlq_messages": dlq_items,
        "execution_graph": graph,
        "joined_refs": joined,
        "join_warnings": warnings,
        "errors": errors,
    }


async def _exists(fed: Federation, record: Mapping[str, Any], task_id: str) -> bool:
    """Whether the service knows ``task_id`` (status route, falling back to history)."""
    sid = str(record["service_id"])
    try:
        await fed.call(
            sid, "status.latest", "GET", task_path("/status/{task_id}", task_id), record=record
        )
        return True
    except UpstreamError as exc:
        if exc.code == "upstream_not_found":
            return False
        if exc.code != "unsupported_route":
            raise
    return bool(await _history(fed, sid, task_id, record))


async def _joins(
    fed: Federation, service_id: str, task_id: str, candidates: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    records = [
        r
        for r in await fed.runtime.registry.list()
        if r["status"] != "disabled" and r["auth_mode"] == "internal_network"
    ]
    limiter = anyio.CapacityLimiter(JOIN_FANOUT)
    joined: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    for candidate in candidates:
        found: list[str] = []
        failed: list[str] = []

        async def probe(
            record: Mapping[str, Any],
            candidate: str = candidate,
            found: list[str] = found,
            failed: list[str] = failed,
        ) -> None:
            async with limiter:
                sid = str(record["service_id"])
                if sid == service_id and candidate == task_id:
                    return
                try:
                    if await _exists(fed, record, candidate):
                        found.append(sid)
                except UpstreamError:
                    failed.append(sid)

        async with anyio.create_task_group() as tg:
            for record in records:
                tg.start_soon(probe, record)
        others = sorted(s for s in found if s != service_id)
        if failed:
            warnings.append(
                {
                    "code": "incomplete_join_candidate_scan",
                    "candidate": candidate,
                    "services": sorted(failed),
                }
            )
            continue
        if len(others) > 1:
            warnings.append(
                {"code": "ambiguous_join_candidate", "candidate": candidate, "services": others}
            )
            continue
        for sid in sorted(found):
            joined.append({"service_id": sid, "task_id": candidate})
    return joined, warnings
