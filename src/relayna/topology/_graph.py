"""Workflow graph export (a JSON-ready dict) and its Mermaid rendering."""

from __future__ import annotations

import re
from typing import Any

from relayna.topology._routing import topic_matches
from relayna.topology._workflow import SharedStatusWorkflowTopology, WorkflowStage

__all__ = ["export_workflow_graph", "serialize_workflow_stage", "workflow_graph_mermaid"]


def serialize_workflow_stage(
    stage: WorkflowStage, *, queue_arguments: dict[str, Any]
) -> dict[str, Any]:
    """A stage as plain JSON-ready data (the original's serialized form)."""
    return {
        "id": stage.name,
        "name": stage.name,
        "queue": stage.queue,
        "binding_keys": list(stage.binding_keys),
        "publish_routing_key": stage.publish_routing_key,
        "queue_arguments": dict(queue_arguments),
        "description": stage.description,
        "role": stage.role,
        "owner": stage.owner,
        "tags": list(stage.tags),
        "sla_ms": stage.sla_ms,
        "accepted_actions": [a.to_dict() for a in stage.accepted_actions],
        "produced_actions": [a.to_dict() for a in stage.produced_actions],
        "allowed_next_stages": list(stage.allowed_next_stages),
        "terminal": stage.terminal,
        "timeout_seconds": stage.timeout_seconds,
        "max_retries": stage.max_retries,
        "retry_delay_ms": stage.retry_delay_ms,
        "max_inflight": stage.max_inflight,
        "dedup_key_fields": list(stage.dedup_key_fields),
        "join": stage.join.to_dict() if stage.join is not None else None,
    }


def export_workflow_graph(topology: SharedStatusWorkflowTopology) -> dict[str, Any]:
    """``{workflow_exchange, status_queue, stages, entry_routes, edges}``.

    Edges, each ``{source, target, routing_key, kind}``:

    * ``kind="route"`` (the original's edges): ``source``'s publish key
      matches a binding of ``target`` under topic semantics — publishing to
      ``source`` also reaches ``target``. Self-edges are omitted.
    * ``kind="transition"``: ``target`` is in ``source.allowed_next_stages``;
      ``routing_key`` is the key used to publish to ``target``.
    """
    names = topology.workflow_stage_names()
    edges: list[dict[str, str]] = []
    for source in names:
        key = topology.workflow_publish_routing_key(source)
        for target in names:
            if target != source and any(
                topic_matches(b, key) for b in topology.workflow_binding_keys(target)
            ):
                edges.append(
                    {"source": source, "target": target, "routing_key": key, "kind": "route"}
                )
    for stage in topology.stages:
        for target in stage.allowed_next_stages:
            edges.append(
                {
                    "source": stage.name,
                    "target": target,
                    "routing_key": topology.workflow_publish_routing_key(target),
                    "kind": "transition",
                }
            )
    return {
        "workflow_exchange": topology.workflow_exchange,
        "status_queue": topology.status_queue,
        "stages": [
            serialize_workflow_stage(s, queue_arguments=topology.workflow_queue_arguments(s.name))
            for s in topology.stages
        ],
        "entry_routes": [
            {"name": r.name, "routing_key": r.routing_key, "target_stage": r.target_stage}
            for r in topology.entry_routes
        ],
        "edges": edges,
    }


_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


class _NodeIds:
    """Mermaid-safe node ids: sanitized, never colliding, never a keyword."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}
        self._used: set[str] = set()

    def __call__(self, key: str) -> str:
        if key in self._ids:
            return self._ids[key]
        base = _UNSAFE.sub("_", key) or "node"
        if base[0].isdigit() or base.lower() in ("end", "graph", "subgraph", "flowchart"):
            base = f"n_{base}"
        candidate, n = base, 2
        while candidate in self._used:
            candidate, n = f"{base}_{n}", n + 1
        self._ids[key] = candidate
        self._used.add(candidate)
        return candidate


def _label(*parts: str) -> str:
    text = "<br/>".join(p.replace('"', "#quot;") for p in parts)
    return f'"{text}"'


def workflow_graph_mermaid(topology: SharedStatusWorkflowTopology) -> str:
    """A ``flowchart LR``: entry routes (stadium nodes), stages, transitions and routes."""
    graph = export_workflow_graph(topology)
    ids = _NodeIds()
    lines = ["flowchart LR"]
    for stage in graph["stages"]:
        shape = ("[[", "]]") if stage["terminal"] else ("[", "]")
        node = ids("stage:" + stage["id"])
        lines.append(f"    {node}{shape[0]}{_label(stage['id'], stage['queue'])}{shape[1]}")
    for route in graph["entry_routes"]:
        node = ids("entry:" + route["name"])
        target = ids("stage:" + route["target_stage"])
        lines.append(f"    {node}([{_label(route['name'], route['routing_key'])}]) --> {target}")
    for edge in graph["edges"]:
        source, target = ids("stage:" + edge["source"]), ids("stage:" + edge["target"])
        arrow = "-->" if edge["kind"] == "transition" else "-.->"
        lines.append(f"    {source} {arrow}|{_label(edge['routing_key'])}| {target}")
    return "\n".join(lines)
