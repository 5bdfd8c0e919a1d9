"""``task_ref`` normalisation (pure): who a task is across services.

``StudioTaskRef{service_id, task_id, correlation_id, parent_refs[], child_refs[]}``.
Payload values are read through the service's payload aliases (e.g.
``task_id`` ↔ ``documentId``). The correlation id comes from the status
event, history or graph nodes and is dropped when it equals the task id;
parents come from ``meta.parent_task_id``; children from the graph's
``related_task_ids`` and ``aggregation_child`` nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from relayna.contracts import is_valid_identifier

__all__ = ["aliased", "build_task_ref", "enrich_item", "event_correlation", "event_parent"]


def aliased(event: Mapping[str, Any], field: str, aliases: Mapping[str, str]) -> Any:
    value = event.get(field)
    if value is None and field in aliases:
        value = event.get(aliases[field])
    return value


def event_correlation(event: object, aliases: Mapping[str, str]) -> str | None:
    if not isinstance(event, Mapping):
        return None
    value = aliased(event, "correlation_id", aliases)
    return value if is_valid_identifier(value) else None


def event_parent(event: object, aliases: Mapping[str, str]) -> str | None:
    if not isinstance(event, Mapping):
        return None
    meta = event.get("meta")
    if isinstance(meta, Mapping):
        value = aliased(meta, "parent_task_id", aliases)
        if is_valid_identifier(value):
            return str(value)
    return None


def _ref(service_id: str, task_id: str) -> dict[str, str]:
    return {"service_id": service_id, "task_id": task_id}


def build_task_ref(
    service_id: str,
    task_id: str,
    *,
    events: Iterable[object] = (),
    graph: object = None,
    aliases: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    aliases = aliases or {}
    correlation: str | None = None
    parents: list[str] = []
    for event in events:
        correlation = correlation or event_correlation(event, aliases)
        parent = event_parent(event, aliases)
        if parent and parent != task_id and parent not in parents:
            parents.append(parent)
    children: list[str] = []
    if isinstance(graph, Mapping):
        for related in graph.get("related_task_ids") or []:
            if is_valid_identifier(related) and related != task_id and related not in children:
                children.append(related)
        for node in graph.get("nodes") or []:
            if not isinstance(node, Mapping):
                continue
            correlation = correlation or event_correlation(node, aliases)
            if node.get("kind") == "aggregation_child":
                child = node.get("task_id")
                if is_valid_identifier(child) and child != task_id and child not in children:
                    children.append(str(child))
    if correlation == task_id:
        correlation = None
    return {
        "service_id": service_id,
        "task_id": task_id,
        "correlation_id": correlation,
        "parent_refs": [_ref(service_id, p) for p in parents],
        "child_refs": [_ref(service_id, c) for c in children],
    }


def enrich_item(item: dict[str, Any], service_id: str, aliases: Mapping[str, str]) -> None:
    """A listed record of a service (failed task, DLQ message), in place: ``service_id``,
    the canonical ``task_id`` when the service sends it under its payload alias, and
    ``task_ref`` (the record's own correlation id; no graph or history is fetched)."""
    item["service_id"] = service_id
    task_id = aliased(item, "task_id", aliases)
    if not is_valid_identifier(task_id):
        return
    item.setdefault("task_id", task_id)
    item["task_ref"] = build_task_ref(service_id, str(task_id), events=[item], aliases=aliases)
